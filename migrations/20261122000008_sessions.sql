-- Refresh tokens, one row per token issued (its `jti`). Tokens of one sign-in form a family:
-- each refresh spends its token and issues the next one in the same family. Presenting a spent
-- token again (after a short grace window) means it was stolen: the whole family is revoked.
create table auth.refresh_tokens (
    jti          uuid primary key,
    family_id    uuid not null,
    user_id      uuid not null references auth.users (id),
    issued_at    timestamptz not null default now(),
    expires_at   timestamptz not null,
    spent_at     timestamptz,
    replaced_by  uuid,
    revoked_at   timestamptz
);
create index refresh_tokens_family_idx on auth.refresh_tokens (family_id);
create index refresh_tokens_live_user_idx on auth.refresh_tokens (user_id) where revoked_at is null;

-- Access tokens refused before their expiry (logout). Mirrored into Redis, which is what
-- requests check; this table rebuilds Redis after a flush and answers while Redis is down.
create table auth.revoked_access_tokens (
    jti         uuid primary key,
    user_id     uuid not null,
    expires_at  timestamptz not null
);
create index revoked_access_tokens_expiry_idx on auth.revoked_access_tokens (expires_at);
