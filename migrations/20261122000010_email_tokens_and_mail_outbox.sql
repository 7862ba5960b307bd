-- Single-use tokens for e-mail verification and password reset. Only their SHA-256 is kept:
-- a leaked table cannot be used to verify or reset anything.
create table auth.email_tokens (
    token_hash  bytea primary key,
    user_id     uuid not null references auth.users (id),
    purpose     text not null check (purpose in ('verify_email', 'reset_password')),
    expires_at  timestamptz not null,
    used_at     timestamptz,
    created_at  timestamptz not null default now()
);
create index email_tokens_user_idx on auth.email_tokens (user_id, purpose);

-- Messages waiting for the mail worker (announced by a `mail.requested` event written in the
-- same transaction). Private to the system: the address and the link live here, never on the
-- bus, and both are wiped once the message is sent.
create table auth.mail_outbox (
    id          uuid primary key,
    user_id     uuid not null,
    recipient   text,
    template    text not null,
    link        text,
    created_at  timestamptz not null default now(),
    sent_at     timestamptz
);
