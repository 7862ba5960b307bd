-- The event log: every event the system knows, in one append-only table. Commands append their
-- events in the transaction of their state change; the ingest consumer appends events other
-- services published. `position` is global and gap-tolerant (identity values of rolled-back
-- transactions are lost), `transaction_id` lets readers follow `position` without skipping a row
-- whose transaction commits after a later position became visible (see the relay).
create schema eventstore;

create table eventstore.events (
    position        bigint generated always as identity primary key,
    id              uuid not null,
    type            text not null,
    version         integer not null check (version > 0),
    source          text not null,
    aggregate_type  text not null,
    aggregate_id    uuid not null,
    sequence        bigint,
    occurred_at     timestamptz not null,
    recorded_at     timestamptz not null default now(),
    correlation_id  uuid,
    causation_id    uuid,
    data            jsonb not null,
    transaction_id  xid8 not null default pg_current_xact_id(),
    -- null until the relay saw the broker ack it; events ingested from the bus are born published
    published_at    timestamptz,
    constraint events_id_key unique (id)
);

-- The outbox is the unpublished tail of the log.
create index events_unpublished_idx on eventstore.events (position) where published_at is null;
create index events_aggregate_idx on eventstore.events (aggregate_id, position);

-- Per-aggregate sequence counters, so each event about a user carries its place in that user's
-- history and projectors can refuse stale updates.
create table eventstore.streams (
    aggregate_type  text not null,
    aggregate_id    uuid not null,
    last_sequence   bigint not null,
    primary key (aggregate_type, aggregate_id)
);
