-- Social identities linked to accounts: (provider, subject) is the provider's stable user id.
create table auth.identities (
    provider    text not null check (provider in ('google', 'kakao')),
    subject     text not null,
    user_id     uuid not null references auth.users (id),
    linked_at   timestamptz not null default now(),
    primary key (provider, subject)
);
create index identities_user_idx on auth.identities (user_id);

-- Pending authorisations: the `state` (hashed) and PKCE verifier of each started social login,
-- single use, ten minutes.
create table auth.oauth_states (
    state_hash     bytea primary key,
    provider       text not null,
    code_verifier  text not null,
    expires_at     timestamptz not null,
    used_at        timestamptz
);
