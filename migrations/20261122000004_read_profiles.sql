-- The profile read model behind GET /users/me and GET /auth/me, owned by the profiles projector.
create schema read;

create table read.profiles (
    user_id         uuid primary key,
    username        text not null,
    nickname        text not null,
    bio             text not null default '',
    avatar_url      text not null default '',
    provider        text not null,
    points          bigint not null default 0,
    level           integer not null default 1,
    total_scans     bigint not null default 0,
    total_recycles  bigint not null default 0,
    invite_code     text not null,
    created_at      timestamptz not null,
    updated_at      timestamptz not null default now(),
    -- the last per-user sequence applied to the nickname/bio/avatar fields
    profile_sequence bigint not null default 0,
    -- bumped on every change; the Redis cache only ever moves to a higher version
    version         bigint not null default 1
);

create unique index profiles_invite_code_key on read.profiles (invite_code);

-- Users whose `user.deleted` was applied: a late `user.registered` must not bring them back.
-- Holds ids only, nothing about the person.
create table read.forgotten_users (
    user_id     uuid primary key,
    forgotten_at timestamptz not null default now()
);
