-- Notifications (issue #17): the in-app feed (a projection), push devices (command side) and
-- the record of pushes sent (the notifier's deduplication per event and device).
create table read.notifications (
    id          uuid primary key,
    user_id     uuid not null,
    kind        text not null,
    data        jsonb not null,
    created_at  timestamptz not null
);
create index notifications_user_newest_idx on read.notifications (user_id, created_at desc, id desc);
-- Everything at or before (up_to_at, up_to_id) in the feed's order is read.
create table read.notification_marks (
    user_id    uuid primary key,
    up_to_at   timestamptz not null,
    up_to_id   uuid not null
);
create table read.notifications_tombstones (like read.profiles_tombstones including all);

-- Push devices, registered by the apps (PUT /users/me/devices/{token}). Personal data: kept out
-- of events, removed with the account or when the provider reports the token unregistered.
create table app.devices (
    token          text primary key,
    user_id        uuid not null,
    platform       text not null check (platform in ('android', 'ios', 'web')),
    registered_at  timestamptz not null default now(),
    updated_at     timestamptz not null default now()
);
create index devices_user_idx on app.devices (user_id);

-- What the notifier decided per notice (pushing, deferred to the end of quiet hours, or skipped
-- with its reason) and did per notice and device: retries and redeliveries never push twice or
-- decide again. Devices are named by the SHA-256 of their token, so no token outlives its device
-- here.
create schema notify;
create table notify.notices (
    notice_id   uuid primary key,
    user_id     uuid not null,
    outcome     text not null,
    at          timestamptz not null default now()
);
create index notices_user_idx on notify.notices (user_id);
create table notify.pushes (
    notice_id   uuid not null,
    token_hash  text not null,
    user_id     uuid not null,
    outcome     text not null,
    at          timestamptz not null default now(),
    primary key (notice_id, token_hash)
);
create index pushes_user_idx on notify.pushes (user_id);
-- Notices held back by quiet hours, sent once they end.
create table notify.deferred (
    notice_id   uuid primary key,
    user_id     uuid not null,
    kind        text not null,
    data        jsonb not null,
    not_before  timestamptz not null
);
create index deferred_due_idx on notify.deferred (not_before);
