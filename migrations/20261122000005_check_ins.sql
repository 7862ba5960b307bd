-- Write model of the daily check-in: one row per user and local date, so a second check-in on
-- the same day is refused by the primary key.
create schema app;

create table app.check_ins (
    user_id     uuid not null,
    local_date  date not null,
    event_id    uuid not null,
    checked_in_at timestamptz not null default now(),
    primary key (user_id, local_date)
);
