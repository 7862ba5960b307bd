-- Forgetting for real (issue #18, docs/forgetting.md): one data key per person. Personal fields
-- in events are sealed with it; deleting the account destroys it (the row stays, keyless, as the
-- tombstone that keeps a late event from getting a new key). Nothing else is kept here.
create schema if not exists personal;
create table personal.keys (
    user_id       uuid primary key,
    key           bytea check (key is null or octet_length(key) = 32),
    created_at    timestamptz not null default now(),
    forgotten_at  timestamptz,
    check ((key is null) = (forgotten_at is not null))
);

-- The log's rewrites: the one time events are changed in place (sealing the plain-text v1
-- personal fields), with what was done.
create table eventstore.rewrites (
    id         bigint generated always as identity primary key,
    name       text not null,
    sealed     bigint not null,
    forgotten  bigint not null,
    done_at    timestamptz not null default now()
);

-- What the rewrite looks for; empty once it ran, so finding nothing costs nothing.
create index events_plain_personal_v1_idx on eventstore.events (position)
    where version = 1 and type in ('user.registered', 'user.profile_updated', 'user.places_changed');
