-- Activity history: one row per thing that happened to a user, newest first by
-- (created_at, id), which is also the pagination key.
create table read.activities (
    id             uuid primary key,
    user_id        uuid not null,
    action         text not null,
    points_earned  bigint not null default 0,
    metadata       jsonb not null default '{}',
    created_at     timestamptz not null
);
create index activities_user_newest_idx on read.activities (user_id, created_at desc, id desc);

-- Leaderboard scores per period (`weekly:2026-W47`, `monthly:2026-11`, `all-time:all`): the
-- durable source of the Redis sorted sets. `reached_at` is when the user reached this score
-- (ties go to whoever got there first).
create table read.leaderboard_scores (
    period_key  text not null,
    user_id     uuid not null,
    points      bigint not null,
    reached_at  timestamptz not null,
    primary key (period_key, user_id)
);
create index leaderboard_rank_idx on read.leaderboard_scores (period_key, points desc, reached_at asc, user_id);
