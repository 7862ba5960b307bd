-- The points ledger, owned by the points policy. One row per award; the primary key is the
-- rule and the domain key of what earned it (the scan, the recycle, the user and day of a
-- check-in, the invitee), so a redelivered, replayed or re-published event never pays twice.
create schema points;

create table points.balances (
    user_id     uuid primary key,
    points      bigint not null default 0,
    level       integer not null default 1,
    updated_at  timestamptz not null default now()
);

create table points.ledger (
    rule            text not null,
    source_key      uuid not null,
    user_id         uuid not null,
    amount          bigint not null,
    source_event_id uuid not null,
    earned_event_id uuid not null,
    local_date      date not null,
    earned_at       timestamptz not null,
    primary key (rule, source_key)
);
create index ledger_user_rule_day_idx on points.ledger (user_id, rule, local_date);

-- Image hashes that already earned a scan reward (anyone's).
create table points.rewarded_images (
    image_sha256    text primary key,
    user_id         uuid not null,
    source_event_id uuid not null,
    rewarded_at     timestamptz not null default now()
);
