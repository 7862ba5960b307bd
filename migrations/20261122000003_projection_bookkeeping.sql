-- What each projection has applied: written in the transaction of the read-model change, so a
-- redelivered event is recognised and skipped (at-most-once application over at-least-once
-- delivery). Also what read-your-writes waits on.
create schema projection;

create table projection.applied_events (
    projection  text not null,
    event_id    uuid not null,
    applied_at  timestamptz not null default now(),
    primary key (projection, event_id)
);
