//! Operations behind `ecoctl`: parked messages and projection status. Library functions, so
//! the end-to-end tests drive exactly what the CLI runs.

use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use lapin::{
    BasicProperties, Channel,
    options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, QueueDeclareOptions},
    publisher_confirm::Confirmation,
    types::FieldTable,
};
use platform::{
    Settings, amqp,
    topology::{self, ConsumerSpec, INGEST, Topology},
};
use sqlx::PgPool;
use uuid::Uuid;

/// The consumer whose queue holds what `name` consumes (a projection's is its processing
/// group's), or an error naming the known ones.
pub fn consumer(name: &str) -> anyhow::Result<&'static ConsumerSpec> {
    crate::registry::find(name).map(|c| c.queue).with_context(|| {
        let known: Vec<_> = crate::registry::CONSUMERS.iter().map(|c| c.spec.name).collect();
        format!("no consumer `{name}`; known: {}", known.join(", "))
    })
}

/// A parked message, as an operator sees it.
#[derive(Debug, Clone)]
pub struct Parked {
    /// The event id (`message_id`), when the message had one.
    pub event_id: Option<String>,
    /// The routing key it was published with.
    pub routing_key: String,
    /// Machine reason (`x-parked-reason`).
    pub reason: String,
    /// Human detail (`x-parked-detail`).
    pub detail: String,
    /// When (`x-parked-at`).
    pub parked_at: String,
    /// Tries before parking (`x-retry-count`).
    pub retry_count: i64,
    /// The body, as sent.
    pub body: Vec<u8>,
}

/// A connection for operations, with the topology's names.
pub struct Broker {
    /// The connection.
    pub conn: lapin::Connection,
    channel: Channel,
    /// Queue names.
    pub topology: Topology,
}

/// Connects for operations.
pub async fn broker(settings: &Settings) -> anyhow::Result<Broker> {
    let conn = amqp::connect(&settings.amqp_url, "ecoctl").await?;
    let channel = amqp::confirm_channel(&conn).await?;
    Ok(Broker { conn, channel, topology: Topology::new(&settings.amqp_prefix, &settings.retry_delays) })
}

fn describe(delivery: &lapin::message::Delivery) -> Parked {
    let headers = delivery.properties.headers().as_ref();
    Parked {
        event_id: crate::consumer::event_id_of(&delivery.properties, &delivery.data),
        routing_key: crate::consumer::original_routing_key(delivery),
        reason: amqp::header_str(headers, topology::headers::PARKED_REASON).unwrap_or_default(),
        detail: amqp::header_str(headers, topology::headers::PARKED_DETAIL).unwrap_or_default(),
        parked_at: amqp::header_str(headers, topology::headers::PARKED_AT).unwrap_or_default(),
        retry_count: amqp::header_int(headers, topology::headers::RETRY_COUNT).unwrap_or(0),
        body: delivery.data.clone(),
    }
}

/// What to do with each parked message taken off the queue.
enum Action {
    /// Look only; everything returns to the queue.
    Inspect,
    /// Send matching messages back to the consumer's queue (fresh retry count).
    Requeue,
    /// Drop matching messages.
    Purge,
}

/// Walks the parked queue of `consumer` (up to `limit` messages), applying `action` to those
/// whose event id is `only` (all when `None`). Returns the matching messages. Messages not
/// acted on return to the queue when the channel closes.
async fn walk(
    settings: &Settings,
    consumer: &ConsumerSpec,
    only: Option<&str>,
    limit: usize,
    action: Action,
) -> anyhow::Result<Vec<Parked>> {
    let b = broker(settings).await?;
    let db = match action {
        Action::Inspect => None,
        Action::Requeue | Action::Purge => Some(platform::db::connect(settings).await?),
    };
    let parked_queue = b.topology.parked_queue(consumer);
    let target = b.topology.queue(consumer);
    let reader = b.conn.create_channel().await?;
    let mut matched = Vec::new();
    let mut seen = 0;
    while seen < limit {
        let Some(message) = reader.basic_get(&parked_queue, BasicGetOptions { no_ack: false }).await? else { break };
        seen += 1;
        let parked = describe(&message.delivery);
        if only.is_some_and(|id| parked.event_id.as_deref() != Some(id)) {
            continue;
        }
        if let Some(db) = &db {
            let key = crate::consumer::parked_key(&message.delivery.properties, &message.delivery.data);
            sqlx::query("delete from projection.parked where consumer = $1 and message_key = $2")
                .bind(consumer.name)
                .bind(key)
                .execute(db)
                .await?;
        }
        match action {
            Action::Inspect => {}
            Action::Requeue => {
                let mut headers = message.delivery.properties.headers().clone().unwrap_or_default();
                let mut clean = FieldTable::default();
                for (k, v) in headers.inner().iter() {
                    // The original routing key stays: the type is still the message's type.
                    if !k.as_str().starts_with(topology::headers::PARKED_PREFIX)
                        && k.as_str() != topology::headers::RETRY_COUNT
                        && k.as_str() != topology::headers::LAST_ERROR
                        && k.as_str() != "x-death"
                    {
                        clean.insert(k.clone(), v.clone());
                    }
                }
                headers = clean;
                let props: BasicProperties = amqp::without_user_id(&message.delivery.properties).with_headers(headers);
                let confirm = b
                    .channel
                    .basic_publish(
                        "",
                        &target,
                        BasicPublishOptions { mandatory: true, ..Default::default() },
                        &message.delivery.data,
                        props,
                    )
                    .await?
                    .await?;
                if !matches!(confirm, Confirmation::Ack(None)) {
                    bail!("{target} did not take a requeued message: {confirm:?}");
                }
                reader.basic_ack(message.delivery.delivery_tag, BasicAckOptions::default()).await?;
            }
            Action::Purge => reader.basic_ack(message.delivery.delivery_tag, BasicAckOptions::default()).await?,
        }
        matched.push(parked);
    }
    let _ = reader.close(200, "done").await;
    let _ = b.conn.close(200, "done").await;
    Ok(matched)
}

/// Up to `limit` parked messages of `consumer`, left in place.
pub async fn parked_list(settings: &Settings, consumer: &ConsumerSpec, limit: usize) -> anyhow::Result<Vec<Parked>> {
    walk(settings, consumer, None, limit, Action::Inspect).await
}

/// Sends parked messages (all, or the one with `event_id`) back to the consumer's queue.
pub async fn parked_requeue(
    settings: &Settings,
    consumer: &ConsumerSpec,
    event_id: Option<&str>,
) -> anyhow::Result<Vec<Parked>> {
    walk(settings, consumer, event_id, usize::MAX, Action::Requeue).await
}

/// Drops parked messages (all, or the one with `event_id`).
pub async fn parked_purge(
    settings: &Settings,
    consumer: &ConsumerSpec,
    event_id: Option<&str>,
) -> anyhow::Result<Vec<Parked>> {
    walk(settings, consumer, event_id, usize::MAX, Action::Purge).await
}

/// One projection's health.
#[derive(Debug, Clone)]
pub struct Status {
    /// Consumer name.
    pub consumer: &'static str,
    /// Events applied.
    pub applied: i64,
    /// The highest log position among them (`None` before the first).
    pub last_position: Option<i64>,
    /// When the last one was applied.
    pub last_applied_at: Option<DateTime<Utc>>,
    /// Published events of its types not applied yet.
    pub lag_events: i64,
    /// Age of the oldest of them, in seconds.
    pub lag_seconds: f64,
    /// Messages waiting in its queue (`None`: the queue does not exist; run `ecoctl migrate`).
    pub queued: Option<u32>,
    /// Messages in its parked queue.
    pub parked: Option<u32>,
}

/// How far a consumer has got.
#[derive(sqlx::FromRow)]
struct Progress {
    applied: i64,
    last_applied_at: Option<DateTime<Utc>>,
    last_position: Option<i64>,
}

/// Published events a consumer has not applied yet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// How many.
    pub events: i64,
    /// Age in seconds of the oldest (0 when none).
    pub seconds: f64,
}

/// Status of every consumer.
pub async fn status(settings: &Settings, db: &PgPool) -> anyhow::Result<Vec<Status>> {
    let b = broker(settings).await?;
    let mut out = Vec::new();
    for entry in crate::registry::deduplicating() {
        let spec = entry.spec;
        let projection = spec.projection.unwrap_or(spec.name);
        let progress: Progress = sqlx::query_as(
            "select count(*) as applied, max(a.applied_at) as last_applied_at, max(e.position) as last_position
             from projection.applied_events a
             left join eventstore.events e on e.id = a.event_id where a.projection = $1",
        )
        .bind(projection)
        .fetch_one(db)
        .await?;
        let Lag { events: lag_events, seconds: lag_seconds } = lag(db, spec).await?;
        let queued = queue_depth(&b.conn, &b.topology.queue(entry.queue)).await;
        let parked = queue_depth(&b.conn, &b.topology.parked_queue(entry.queue)).await;
        out.push(Status {
            consumer: spec.name,
            applied: progress.applied,
            last_position: progress.last_position,
            last_applied_at: progress.last_applied_at,
            lag_events,
            lag_seconds,
            queued,
            parked,
        });
    }
    let _ = b.conn.close(200, "done").await;
    Ok(out)
}

/// The filter of the events `spec` lags by: published, of its types, not applied by it. Ingest's
/// are only those that came from the bus (born published: `published_at` is their storing
/// transaction's time, as `recorded_at` is); ours are the relay's, logged already, and ingest
/// acknowledges them without recording anything. Binds `$1` to `$4` ([`bind_lag`]).
const LAG_FILTER: &str = "e.published_at is not null and ($3 or e.type = any($2))
    and (not $4 or e.published_at = e.recorded_at)
    and not exists (select 1 from projection.applied_events a where a.projection = $1 and a.event_id = e.id)";

fn bind_lag<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    spec: &ConsumerSpec,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    let types: Vec<String> = spec.bindings.iter().map(|t| t.to_string()).collect();
    query
        .bind(spec.projection.unwrap_or(spec.name))
        .bind(types)
        .bind(spec.bindings.contains(&"#"))
        .bind(spec.name == INGEST.name)
}

/// Published events of `spec`'s types it has not applied, and the age in seconds of the oldest
/// of them, over the whole log (`ecoctl projections status`; the gauges use [`lag_since`]).
pub async fn lag(db: &PgPool, spec: &ConsumerSpec) -> anyhow::Result<Lag> {
    let sql =
        format!("select count(*) as events, min(e.recorded_at) as oldest from eventstore.events e where {LAG_FILTER}");
    let backlog: Backlog = bind_lag(sqlx::query_as(&sql), spec).fetch_one(db).await?;
    Ok(Lag { events: backlog.events, seconds: backlog.oldest.map_or(0.0, age_seconds) })
}

/// Where a consumer's next lag sample may start reading the log: a transaction id below which
/// every published event of its types is applied (or older than the window), and below which
/// no event can still appear. Starts at the beginning; one per consumer and sampler.
#[derive(Debug, Clone, Default)]
pub struct LagCursor {
    /// An `xid8`; `None` before the first sample.
    from: Option<u64>,
}

impl LagCursor {
    /// The transaction id the next sample reads from (`None`: the whole window).
    pub fn position(&self) -> Option<u64> {
        self.from
    }
}

/// [`lag`] among the events recorded within `window`, reading the log only from `cursor` on,
/// and moving `cursor` as far as it safely can.
///
/// Each sample used to read every event of the window, and with no index on `recorded_at` the
/// whole log: per consumer, every `GAUGE_INTERVAL_MS`, in every workers process. Now a sample
/// reads, through the `(transaction_id, position)` index, only what was logged since the cursor.
/// The cursor moves to the lowest of: the transaction of the oldest event the consumer still
/// lags by, the oldest transaction still running anywhere in the cluster (`pg_snapshot_xmin`:
/// whatever commits later has an id at least this), and the oldest unpublished event's
/// transaction (published later, it would lag then). All three are read in one snapshot, so no
/// event the consumer could lag by is ever behind the cursor, and `applied_events` only grows (a
/// rebuild adds to it), so what was applied stays so. What holds the cursor back, so that a
/// sample reads more: an event that stays unapplied (retrying, parked) until it leaves the
/// window, an outbox that is not being published, and a long transaction anywhere in the
/// cluster. Transaction ids can go back after PostgreSQL loses unflushed commits in a crash, or
/// on a failover or restore: a cursor ahead of the newest id is dropped, as [`crate::gauges`]
/// drops them all when a sample fails.
pub async fn lag_since(
    db: &PgPool,
    spec: &ConsumerSpec,
    window: Duration,
    cursor: &mut LagCursor,
) -> anyhow::Result<Lag> {
    let since = Utc::now() - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::days(1));
    let sql = format!(
        "with behind as (
             select e.transaction_id, e.recorded_at from eventstore.events e
             where e.transaction_id >= $5::text::xid8 and e.recorded_at >= $6 and {LAG_FILTER}
         )
         select (select count(*) from behind) as events,
                (select min(recorded_at) from behind) as oldest,
                least((select min(transaction_id) from behind),
                      pg_snapshot_xmin(pg_current_snapshot()),
                      (select min(transaction_id) from eventstore.events where published_at is null))::text as next_from,
                $5::text::xid8 > pg_snapshot_xmax(pg_current_snapshot()) as ahead"
    );
    let from = cursor.from.unwrap_or(0).to_string();
    // Planned for its values every time (a generic plan, cached on a connection, would not know
    // whether the cursor range is a few rows or the whole window); a sample is rare.
    let (events, oldest, next_from, ahead): (i64, Option<DateTime<Utc>>, String, bool) =
        bind_lag(sqlx::query_as(&sql), spec).bind(from).bind(since).persistent(false).fetch_one(db).await?;
    cursor.from = if ahead { None } else { Some(next_from.parse().context("a transaction id")?) };
    Ok(Lag { events, seconds: oldest.map_or(0.0, age_seconds) })
}

/// A count of events and when the oldest of them was recorded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Backlog {
    /// How many.
    pub events: i64,
    /// When the oldest was recorded.
    pub oldest: Option<DateTime<Utc>>,
}

/// Seconds since `t`.
pub fn age_seconds(t: DateTime<Utc>) -> f64 {
    (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
}

/// Messages in `queue`, or `None` when it does not exist (or the broker could not say: for
/// display, see [`queue_lookup`] where that matters).
pub async fn queue_depth(conn: &lapin::Connection, queue: &str) -> Option<u32> {
    queue_lookup(conn, queue).await.ok().flatten()
}

/// Messages in `queue`, `Ok(None)` only when the broker says it does not exist (404); any other
/// failure is an error. (A passive declare of a missing queue closes its channel: one channel
/// per look.)
pub async fn queue_lookup(conn: &lapin::Connection, queue: &str) -> anyhow::Result<Option<u32>> {
    let channel = conn.create_channel().await.context("opening a channel")?;
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    match channel.queue_declare(queue, passive, FieldTable::default()).await {
        Ok(q) => {
            let _ = channel.close(200, "done").await;
            Ok(Some(q.message_count()))
        }
        Err(lapin::Error::ProtocolError(e)) if e.get_id() == 404 => Ok(None),
        Err(e) => Err(e).with_context(|| format!("looking for {queue}")),
    }
}

/// When the oldest message `consumer` has parked was parked, given how many its parked queue
/// holds (the broker's count is the truth: when it is empty, stale dates are dropped).
pub async fn oldest_parked_at(db: &PgPool, consumer: &str, parked: u32) -> anyhow::Result<Option<DateTime<Utc>>> {
    if parked == 0 {
        sqlx::query("delete from projection.parked where consumer = $1").bind(consumer).execute(db).await?;
        return Ok(None);
    }
    Ok(sqlx::query_scalar("select min(parked_at) from projection.parked where consumer = $1")
        .bind(consumer)
        .fetch_one(db)
        .await?)
}

/// Parses an event id given on the command line.
pub fn event_id(value: &str) -> anyhow::Result<String> {
    Ok(Uuid::parse_str(value).with_context(|| format!("`{value}` is not an event id (a UUID)"))?.to_string())
}
