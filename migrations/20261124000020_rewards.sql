-- Rewards (DESIGN §4): badge and character catalogues, the rewards policy's state, attendance
-- streaks, closed leaderboard periods, and the read models behind /badges, /characters and
-- /leaderboards/{period}/results.
create schema rewards;

-- The catalogues: content shipped in content/rewards.json (loaded by `ecoctl seed`) and edited
-- by admins. Reference data the rewards policy decides with; what it decided is in the log.
create table rewards.badges (
    id              text primary key,
    name_ko         text not null,
    name_en         text not null,
    description_ko  text not null,
    description_en  text not null,
    criterion       jsonb not null,
    sort_order      integer not null default 0,
    updated_at      timestamptz not null default now()
);
create table rewards.characters (
    id              text primary key,
    name_ko         text not null,
    name_en         text not null,
    description_ko  text not null,
    description_en  text not null,
    rule            jsonb not null,
    sort_order      integer not null default 0,
    updated_at      timestamptz not null default now()
);

-- The rewards policy's state, per user (locked while it decides), and what it awarded: the
-- primary keys make every badge and character at most once per user.
create table rewards.progress (
    user_id            uuid primary key,
    scans              bigint not null default 0,
    categories         text[] not null default '{}',
    paid_recycles      bigint not null default 0,
    invites            bigint not null default 0,
    level              integer not null default 1,
    best_streak        bigint not null default 0,
    best_weekly_rank   bigint,
    best_monthly_rank  bigint,
    -- set by user.deleted: the counters are emptied and nothing is awarded any more
    forgotten          boolean not null default false,
    updated_at         timestamptz not null default now()
);
create table rewards.earned_badges (
    user_id    uuid not null,
    badge_id   text not null,
    event_id   uuid not null,
    earned_at  timestamptz not null,
    primary key (user_id, badge_id)
);
create table rewards.unlocked_characters (
    user_id       uuid not null,
    character_id  text not null,
    event_id      uuid not null,
    unlocked_at   timestamptz not null,
    primary key (user_id, character_id)
);

-- The local days each user checked in, written by the points policy (streak bonus) and the
-- rewards policy (streak badges) alike, each inserting the day of the event it applies.
create table points.check_in_days (
    user_id  uuid not null,
    day      date not null,
    primary key (user_id, day)
);

-- Closed leaderboard periods: the primary key is the claim that makes one worker, across all
-- replicas, record each period's `leaderboard.period_closed`.
create table rewards.closed_periods (
    period      text not null,
    period_key  text not null,
    ends_at     timestamptz not null,
    event_id    uuid not null,
    closed_at   timestamptz not null,
    primary key (period, period_key)
);
-- Final standings are computed from the log's `points.earned` of the period.
create index events_points_earned_time_idx on eventstore.events (occurred_at) where type = 'points.earned';

-- Read models. Profiles: the selected character and the attendance streak.
alter table read.profiles
    add column character_id   text,
    add column character_sequence bigint not null default 0,
    -- the run of consecutive days ending at last_check_in (the API shows 0 once a day is missed)
    add column streak_run     bigint not null default 0,
    add column best_streak    bigint not null default 0,
    add column last_check_in  date;
create table read.attendance_days (
    user_id  uuid not null,
    day      date not null,
    primary key (user_id, day)
);

-- The rewards projection: badges earned and characters unlocked, as GET /users/me/badges and
-- /users/me/characters show them.
create table read.user_badges (
    user_id    uuid not null,
    badge_id   text not null,
    earned_at  timestamptz not null,
    primary key (user_id, badge_id)
);
create table read.user_characters (
    user_id       uuid not null,
    character_id  text not null,
    reason        text not null,
    unlocked_at   timestamptz not null,
    primary key (user_id, character_id)
);
create table read.rewards_tombstones (
    user_id       uuid primary key,
    forgotten_at  timestamptz not null default now()
);

-- The leaderboards projection: closed periods' final standings (full key, `weekly:2026-W47`).
create table read.period_results (
    period_key    text primary key,
    period        text not null,
    closed_at     timestamptz not null,
    participants  bigint not null,
    standings     jsonb not null
);
create index period_results_latest_idx on read.period_results (period, closed_at desc);
