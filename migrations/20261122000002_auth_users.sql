-- Accounts: the write model of command-api. E-mail and username are unique among live accounts,
-- case-insensitively; a deleted account frees both.
create schema auth;

create table auth.users (
    id                 uuid primary key,
    username           text not null,
    email              text not null,
    password_hash      text,
    role               text not null default 'user' check (role in ('user', 'admin')),
    email_verified_at  timestamptz,
    created_at         timestamptz not null default now(),
    deleted_at         timestamptz
);

create unique index users_email_key on auth.users (lower(email)) where deleted_at is null;
create unique index users_username_key on auth.users (lower(username)) where deleted_at is null;
