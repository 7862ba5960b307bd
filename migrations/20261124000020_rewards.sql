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

-- The local days each user checked in, for streaks: the points policy's (streak bonus) and the
-- rewards policy's (streak badges), each owning its own (`readmodels::check_ins`).
create table points.check_in_days (
    user_id  uuid not null,
    day      date not null,
    primary key (user_id, day)
);
create table rewards.check_in_days (like points.check_in_days including all);

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
-- Keys sort by date (`2026-W05` < `2026-W47`, `2026-02` < `2026-11`): the latest is the greatest.
create index period_results_latest_idx on read.period_results (period, period_key desc);

-- Existing users: the check-in days, streaks and progress the new consumers would hold had
-- they run from the start, from the log (people whose account was deleted left out). Their
-- badges and characters are awarded at their next event that moves their progress.
with deleted as (select distinct aggregate_id as user_id from eventstore.events where type = 'user.deleted')
insert into points.check_in_days (user_id, day)
select distinct (data->>'user_id')::uuid, (data->>'date')::date from eventstore.events
where type = 'attendance.checked_in' and (data->>'user_id')::uuid not in (select user_id from deleted)
on conflict do nothing;
insert into rewards.check_in_days select * from points.check_in_days;
insert into read.attendance_days select d.* from points.check_in_days d join read.profiles p using (user_id);

with numbered as (
    select user_id, day, day - (row_number() over (partition by user_id order by day))::int as run
    from read.attendance_days),
runs as (select user_id, run, count(*) as days, max(day) as last from numbered group by user_id, run),
per_user as (select user_id, max(days) as best, max(last) as last from runs group by user_id)
update read.profiles p
set best_streak = u.best, last_check_in = u.last,
    streak_run = (select r.days from runs r where r.user_id = p.user_id and r.last = u.last)
from per_user u where u.user_id = p.user_id;

with registered as (select distinct (data->>'user_id')::uuid as user_id from eventstore.events where type = 'user.registered'),
deleted as (select distinct aggregate_id as user_id from eventstore.events where type = 'user.deleted'),
scans as (
    select (data->>'user_id')::uuid as user_id, count(*) as n, array_agg(distinct data->>'category') as categories
    from eventstore.events where type = 'scan.recorded' group by 1),
recycles as (
    select (data->>'user_id')::uuid as user_id, count(*) as n
    from eventstore.events where type = 'points.earned' and data->>'reason' = 'recycle' group by 1),
invites as (
    select (data->>'inviter_id')::uuid as user_id, count(*) as n
    from eventstore.events where type = 'invite.accepted' group by 1),
numbered as (
    select user_id, day - (row_number() over (partition by user_id order by day))::int as run
    from rewards.check_in_days),
streaks as (
    select user_id, max(days) as best from (select user_id, count(*) as days from numbered group by user_id, run) r
    group by user_id)
insert into rewards.progress (user_id, scans, categories, paid_recycles, invites, level, best_streak, forgotten)
select r.user_id, coalesce(s.n, 0), coalesce(s.categories, '{}'), coalesce(c.n, 0), coalesce(i.n, 0),
       coalesce(b.level, 1), coalesce(k.best, 0), false
from registered r
left join scans s using (user_id)
left join recycles c using (user_id)
left join invites i using (user_id)
left join points.balances b using (user_id)
left join streaks k using (user_id)
where r.user_id not in (select user_id from deleted);

insert into rewards.progress (user_id, forgotten)
select distinct aggregate_id, true from eventstore.events where type = 'user.deleted'
on conflict do nothing;
