-- Each projection keeps its own tombstones, so one projection can be rebuilt (into a shadow copy
-- of exactly its tables, then swapped in) without touching another's. Same content as the shared
-- table they replace: the ids of users whose `user.deleted` that projection applied.
create table read.profiles_tombstones (
    user_id       uuid primary key,
    forgotten_at  timestamptz not null default now()
);
create table read.activities_tombstones (like read.profiles_tombstones including all);
create table read.leaderboard_tombstones (like read.profiles_tombstones including all);

insert into read.profiles_tombstones select user_id, forgotten_at from read.forgotten_users;
insert into read.activities_tombstones select user_id, forgotten_at from read.forgotten_users;
insert into read.leaderboard_tombstones select user_id, forgotten_at from read.forgotten_users;

drop table read.forgotten_users;

-- Rebuilds read the log in the relay's (transaction_id, position) order.
create index events_transaction_order_idx on eventstore.events (transaction_id, position);

-- When each parked message was parked, by consumer and message key (its event id, or a hash of
-- its body when it has none): the source of the `parked_oldest_age_seconds` gauge. The broker's
-- parked queue stays the truth for what is parked; this only dates it (looking at a quorum
-- queue's head would reorder it).
create table projection.parked (
    consumer     text not null,
    message_key  text not null,
    parked_at    timestamptz not null default now(),
    primary key (consumer, message_key)
);
