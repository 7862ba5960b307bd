//! The projector framework: consume a batch, apply it in one transaction, ack after commit.
//!
//! A projector implements [`Projector`]: which consumer it is and how one event changes its
//! tables. The framework does the rest:
//!
//! * **Batches.** Up to `PROJECTOR_BATCH_SIZE` deliveries that are already waiting (no extra
//!   latency is added to wait for more) are applied in one transaction, then acknowledged with
//!   one `ack multiple`.
//! * **At most once.** The `(projection, event_id)` rows of `projection.applied_events` are
//!   inserted in that same transaction; an event whose row already exists is skipped. A
//!   redelivery (broker restart, ack lost, worker killed after commit) therefore changes
//!   nothing. Acks happen only after the commit, so nothing is lost either.
//! * **Poison never blocks.** Bytes that cannot be an event (bad JSON, unknown type or version,
//!   schema violation) are parked at once in `{queue}.parked` with `x-parked-reason`
//!   (machine code), `x-parked-detail`, `x-parked-at` and `x-retry-count` headers.
//! * **Retry with growing delay.** When a batch fails in the projector's own logic, its events
//!   are applied one by one so the others go through; an event that still fails is sent to the
//!   next retry tier (`{queue}.retry.N`, whose TTL returns it to the queue later) and parked after
//!   the last tier. When the *database* is unreachable, nothing is retried or parked: the
//!   consumer returns its deliveries and reconnects with backoff, because no event is at fault.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use anyhow::Context;
use chrono::Utc;
use events::Event;
use futures::StreamExt;
use lapin::{
    BasicProperties, Channel,
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions},
    publisher_confirm::Confirmation,
    types::{AMQPValue, FieldTable},
};
use platform::{
    amqp::{self, header_int, long_string},
    consistency::APPLIED_CHANNEL,
    topology::{ConsumerSpec, INGEST, Topology, headers},
};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    admission::{self, Admitted, Refusal},
    backoff::Backoff,
};

/// Why a projector could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// May succeed later (a row it depends on is not there yet, a deadlock): retried.
    #[error("{0:#}")]
    Transient(anyhow::Error),
    /// Can never succeed: parked with this code and detail.
    #[error("{code}: {detail}")]
    Permanent {
        /// Machine-readable reason.
        code: &'static str,
        /// Human detail.
        detail: String,
    },
}

/// Parking reason: the event failed in every retry tier.
pub const RETRIES_EXHAUSTED: &str = "retries_exhausted";

/// Parking reason: PostgreSQL refused what the event asked it to store (a data exception or
/// an integrity violation); the same event would be refused again.
pub const REJECTED_BY_DATABASE: &str = "rejected_by_database";

impl From<sqlx::Error> for ApplyError {
    /// Data exceptions (class 22) and integrity violations (class 23) are permanent: the same
    /// statement with the same event fails the same way, so retrying only delays parking.
    /// Everything else (serialization failures, deadlocks, lock timeouts, outages) may pass later.
    fn from(e: sqlx::Error) -> Self {
        match db_failure(&e) {
            DbFailure::Rejected => Self::Permanent { code: REJECTED_BY_DATABASE, detail: e.to_string() },
            DbFailure::Unavailable | DbFailure::Transient => Self::Transient(e.into()),
        }
    }
}

/// What became of a delivered event (the `outcome` label of `events_consumed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied in the batch transaction.
    Applied,
    /// Already applied before (a redelivery or a duplicate id): skipped.
    Duplicate,
    /// Failed; sent to the next retry tier.
    Retried,
    /// Parked with its reason.
    Parked,
}

impl Outcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Retried => "retried",
            Self::Parked => "parked",
        }
    }
}

/// A read-model builder.
pub trait Projector: Send + Sync + 'static {
    /// Its queue and bindings.
    fn spec(&self) -> &'static ConsumerSpec;

    /// Applies one event inside the batch transaction. Called at most once per event (the
    /// framework deduplicates); must still tolerate events of one user arriving out of order.
    fn apply(&self, tx: &mut PgConnection, event: &Event) -> impl Future<Output = Result<(), ApplyError>> + Send;

    /// After the transaction committed: refresh caches. Best effort; must not fail the batch.
    /// Nothing by default (a projector without caches).
    fn after_commit(&self, applied: &[Event]) -> impl Future<Output = ()> + Send {
        let _ = applied;
        async {}
    }

    /// The read-model tables it owns in schema `read`, named unqualified in its SQL. A projector
    /// with tables can be rebuilt from the log into a shadow copy of them and replayed into;
    /// one without (a policy, the mailer, ingest) has effects beyond its tables and cannot.
    const TABLES: &'static [&'static str] = &[];

    /// Whether a rebuild may apply different users' events in parallel transactions: true when
    /// every row it writes belongs to one aggregate (a user, a place), so partitions never meet.
    const PARTITIONED_BY_AGGREGATE: bool = true;

    /// After a rebuild replaced its tables: drop caches built from the old rows.
    fn after_rebuild(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// What a consumer needs besides its projector.
#[derive(Clone)]
pub struct ConsumerContext {
    /// The read-model database, shared by every consumer task of the process (a pool: each
    /// batch holds one connection for its transaction).
    pub db: PgPool,
    /// Broker URL. Each consumer task opens its own connection and channels from it, so one
    /// consumer's reconnect or backpressure never stalls another.
    pub amqp_url: String,
    /// Queue names.
    pub topology: Topology,
    /// Deliveries per transaction, and the prefetch.
    pub batch_size: u16,
}

/// Consumes `projector`'s queue until `shutdown`, reconnecting as needed. On shutdown the batch
/// in hand is finished and acknowledged; deliveries not yet taken return to the queue.
pub async fn run<P: Projector>(ctx: ConsumerContext, projector: Arc<P>, shutdown: CancellationToken) {
    let name = projector.spec().name;
    let mut backoff = Backoff::default();
    while !shutdown.is_cancelled() {
        let mut consumer = Consumer { ctx: &ctx, projector: &*projector };
        match consumer.session(&shutdown, &mut backoff).await {
            Ok(()) => break,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    consumer = name,
                    error = format!("{e:#}"),
                    retry_in_ms = delay.as_millis() as u64,
                    "consumer interrupted; reconnecting"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    tracing::info!(consumer = name, "consumer stopped");
}

struct Consumer<'a, P> {
    /// Shared by every consumer of the process; read-only.
    ctx: &'a ConsumerContext,
    /// The projector, shared (behind the task's `Arc`) with nothing else while the task runs;
    /// `apply` runs one batch at a time, so it needs no locking of its own.
    projector: &'a P,
}

/// A delivery the batch could not apply, and what to do with it.
enum Failed {
    Retry(String),
    Park { code: &'static str, detail: String },
}

impl<P: Projector> Consumer<'_, P> {
    fn spec(&self) -> &'static ConsumerSpec {
        self.projector.spec()
    }

    async fn session(&mut self, shutdown: &CancellationToken, backoff: &mut Backoff) -> anyhow::Result<()> {
        let spec = self.spec();
        let queue = self.ctx.topology.queue(spec);
        let conn = amqp::connect(&self.ctx.amqp_url, &format!("consumer {}", spec.name)).await?;
        let channel = conn.create_channel().await.context("opening the consume channel")?;
        channel.basic_qos(self.ctx.batch_size, BasicQosOptions::default()).await.context("setting the prefetch")?;
        // Retry and park publishes use their own connection (publishing can be throttled by the
        // broker; consuming must not be).
        let publish_conn = amqp::connect(&self.ctx.amqp_url, &format!("consumer {} publisher", spec.name)).await?;
        let publish = amqp::confirm_channel(&publish_conn).await?;
        let deliveries = channel
            .basic_consume(
                &queue,
                &format!("{}-{}", spec.name, Uuid::now_v7()),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("consuming {queue}"))?;
        tracing::info!(consumer = spec.name, queue = %queue, "consuming");
        let mut batches = deliveries.ready_chunks(usize::from(self.ctx.batch_size));
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    // Unacked deliveries go back to the queue when the channel closes.
                    let _ = channel.close(200, "shutting down").await;
                    let _ = conn.close(200, "shutting down").await;
                    let _ = publish_conn.close(200, "shutting down").await;
                    return Ok(());
                }
                batch = batches.next() => {
                    let Some(batch) = batch else { anyhow::bail!("the broker closed the delivery stream") };
                    let batch: Vec<Delivery> = batch.into_iter().collect::<Result<_, _>>().context("receiving deliveries")?;
                    self.handle(&channel, &publish, batch).await?;
                    backoff.reset();
                }
            }
        }
    }

    async fn handle(&self, channel: &Channel, publish: &Channel, batch: Vec<Delivery>) -> anyhow::Result<()> {
        let Some(last_tag) = batch.last().map(|d| d.delivery_tag) else { return Ok(()) };
        let consumer = self.spec().name;
        let mut events = Vec::with_capacity(batch.len());
        let mut failed = Vec::new();
        for delivery in batch {
            match Event::decode(&delivery.data) {
                Ok(event) => events.push((delivery, event)),
                Err(e) => {
                    failed.push((delivery, Failed::Park { code: e.code(), detail: e.to_string() }));
                }
            }
        }
        if !events.is_empty() {
            let all: Vec<Incoming> =
                events.iter().map(|(d, event)| Incoming { event, sent: Some(&d.data[..]) }).collect();
            match self.apply_batch(&all).await {
                Ok(done) => {
                    self.projector.after_commit(&done.applied).await;
                    if !done.refused.is_empty() {
                        let mut refused: HashMap<usize, Refusal> =
                            done.refused.into_iter().map(|r| (r.index, r)).collect();
                        for (index, (delivery, _)) in events.into_iter().enumerate() {
                            if let Some(r) = refused.remove(&index) {
                                failed.push((delivery, Failed::Park { code: r.code, detail: r.detail }));
                            }
                        }
                    }
                }
                Err(BatchError::Database(e)) => {
                    self.settle_failures(channel, publish, failed, true).await?;
                    return Err(e.context("applying a batch"));
                }
                Err(BatchError::Apply(e)) => {
                    tracing::warn!(consumer, error = %e, size = events.len(), "batch failed; applying its events one by one");
                    for (delivery, event) in events {
                        match self.apply_batch(&[Incoming { event: &event, sent: Some(&delivery.data[..]) }]).await {
                            Ok(done) => {
                                self.projector.after_commit(&done.applied).await;
                                if let Some(refusal) = done.refused.into_iter().next() {
                                    failed
                                        .push((delivery, Failed::Park { code: refusal.code, detail: refusal.detail }));
                                }
                            }
                            Err(BatchError::Database(e)) => {
                                self.settle_failures(channel, publish, failed, true).await?;
                                return Err(e.context("applying an event"));
                            }
                            Err(BatchError::Apply(ApplyError::Transient(e))) => {
                                failed.push((delivery, Failed::Retry(format!("{e:#}"))))
                            }
                            Err(BatchError::Apply(ApplyError::Permanent { code, detail })) => {
                                failed.push((delivery, Failed::Park { code, detail }))
                            }
                        }
                    }
                }
            }
        }
        self.settle_failures(channel, publish, failed, false).await?;
        channel.basic_ack(last_tag, BasicAckOptions { multiple: true }).await.context("acknowledging the batch")?;
        Ok(())
    }

    /// Applies `events` in one transaction; returns those that were new and those refused.
    async fn apply_batch(&self, events: &[Incoming<'_>]) -> Result<Applied, BatchError> {
        apply_live(&self.ctx.db, self.projector, events).await
    }

    /// Sends failed deliveries to their retry tier or the parked queue (confirmed), and acks
    /// them individually when the batch will not be acked as a whole.
    async fn settle_failures(
        &self,
        channel: &Channel,
        publish: &Channel,
        failed: Vec<(Delivery, Failed)>,
        ack_each: bool,
    ) -> anyhow::Result<()> {
        let spec = self.spec();
        let tiers = self.ctx.topology.retry_delays().len();
        for (delivery, failure) in failed {
            let tried = header_int(delivery.properties.headers().as_ref(), headers::RETRY_COUNT).unwrap_or(0);
            let event_type = original_routing_key(&delivery);
            let mut headers = delivery.properties.headers().clone().unwrap_or_default();
            headers.insert(headers::ORIGINAL_ROUTING_KEY.into(), long_string(&event_type));
            let (queue, outcome) = match failure {
                Failed::Retry(error) if (tried as usize) < tiers => {
                    headers.insert(headers::RETRY_COUNT.into(), AMQPValue::LongLongInt(tried + 1));
                    headers.insert(headers::LAST_ERROR.into(), long_string(truncate(&error, 1000)));
                    tracing::warn!(consumer = spec.name, event.type = %event_type, attempt = tried + 1, error = %error, "event failed; retrying later");
                    (self.ctx.topology.retry_queue(spec, tried as usize + 1), Outcome::Retried)
                }
                Failed::Retry(error) => {
                    park_headers(&mut headers, RETRIES_EXHAUSTED, &error, tried);
                    tracing::error!(consumer = spec.name, event.type = %event_type, error = %error, "event failed after every retry; parked");
                    (self.ctx.topology.parked_queue(spec), Outcome::Parked)
                }
                Failed::Park { code, detail } => {
                    park_headers(&mut headers, code, &detail, tried);
                    tracing::warn!(consumer = spec.name, reason = code, detail = %detail, "invalid event parked");
                    (self.ctx.topology.parked_queue(spec), Outcome::Parked)
                }
            };
            let properties: BasicProperties = delivery.properties.clone().with_headers(headers);
            let confirm = publish
                .basic_publish(
                    "",
                    &queue,
                    BasicPublishOptions { mandatory: true, ..Default::default() },
                    &delivery.data,
                    properties,
                )
                .await
                .with_context(|| format!("publishing to {queue}"))?
                .await
                .with_context(|| format!("confirm from {queue}"))?;
            if !matches!(confirm, Confirmation::Ack(None)) {
                anyhow::bail!("{queue} did not take the message: {confirm:?}");
            }
            if outcome == Outcome::Parked {
                crate::ops::note_parked(
                    &self.ctx.db,
                    spec.name,
                    &crate::ops::parked_key(&delivery.properties, &delivery.data),
                )
                .await;
            }
            metrics::counter!("events_consumed_total", "consumer" => spec.name, "type" => event_type, "outcome" => outcome.as_str()).increment(1);
            if ack_each {
                channel
                    .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
                    .await
                    .context("acknowledging a settled delivery")?;
            }
        }
        Ok(())
    }
}

fn park_headers(headers: &mut FieldTable, code: &str, detail: &str, tried: i64) {
    headers.insert(headers::PARKED_REASON.into(), long_string(code));
    headers.insert(headers::PARKED_DETAIL.into(), long_string(truncate(detail, 2000)));
    headers.insert(headers::PARKED_AT.into(), long_string(Utc::now().to_rfc3339()));
    headers.insert(headers::RETRY_COUNT.into(), AMQPValue::LongLongInt(tried));
}

/// The routing key the message was first published with: kept in a header from its first
/// retry or parking on, since retry tiers re-route it under the consumer queue's name.
pub fn original_routing_key(delivery: &Delivery) -> String {
    amqp::header_str(delivery.properties.headers().as_ref(), headers::ORIGINAL_ROUTING_KEY)
        .unwrap_or_else(|| delivery.routing_key.as_str().to_owned())
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// Where a projector's tables are.
#[derive(Debug, Clone)]
pub enum Target {
    /// The live read models in schema `read`, deduplicated in `projection.applied_events`.
    Live,
    /// A rebuild's shadow schema, holding copies of the projector's tables and its own
    /// `applied_events (event_id)`.
    Shadow(String),
}

/// An event to apply, with the bytes it arrived as when it came from the bus.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The decoded (upcast) event.
    pub event: &'a Event,
    /// The delivery body, when there was a delivery.
    pub sent: Option<&'a [u8]>,
}

impl<'a> Incoming<'a> {
    /// Events read from the log.
    pub fn from_log(events: &'a [Event]) -> Vec<Self> {
        events.iter().map(|event| Self { event, sent: None }).collect()
    }
}

/// The advisory lock namespace of projections: live batches hold it shared, the swap of a
/// rebuild holds it exclusively, so no live batch commits between the rebuild's last catch-up
/// and its swap. The key arguments, with the projection name bound as `name_param`.
pub(crate) fn projection_lock(name_param: &str) -> String {
    format!("hashtext('ecoeco.projection'), hashtext({name_param})")
}

/// The deduplication key of a consumer.
pub fn projection_name(spec: &ConsumerSpec) -> &'static str {
    spec.projection.unwrap_or(spec.name)
}

/// What a live batch did.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// The events that were new to the projection.
    pub applied: Vec<Event>,
    /// Deliveries admission refused (to park).
    pub refused: Vec<Refusal>,
}

/// Applies `events` to the live read models in one transaction (under the projection's shared
/// lock, taken by [`apply_in`]), wakes read-your-writes waiters, and returns the events that
/// were new. Deliveries from the bus are admitted first, in the same transaction (see
/// [`crate::admission`]); events read from the log (replays) need not be.
pub(crate) async fn apply_live<P: Projector>(
    db: &PgPool,
    projector: &P,
    events: &[Incoming<'_>],
) -> Result<Applied, BatchError> {
    let spec = projector.spec();
    let projection = projection_name(spec);
    let mut tx = db.begin().await.map_err(BatchError::from_sqlx)?;
    let admitted = if events.iter().any(|i| i.sent.is_some()) {
        admission::admit(&mut tx, events, spec.name == INGEST.name).await.map_err(BatchError::from_sqlx)?
    } else {
        Admitted { events: events.iter().map(|i| i.event.clone()).collect(), refused: Vec::new() }
    };
    let applied = apply_in(&mut tx, projector, &Target::Live, &admitted.events).await?;
    sqlx::query("select pg_notify($1, $2)")
        .bind(APPLIED_CHANNEL)
        .bind(projection)
        .execute(&mut *tx)
        .await
        .map_err(BatchError::from_sqlx)?;
    tx.commit().await.map_err(BatchError::from_sqlx)?;
    Ok(Applied { applied, refused: admitted.refused })
}

/// Applies `events` inside the caller's transaction to `target`: records each id as applied,
/// skips ids already recorded (and repeats within `events`), and returns the new events. The
/// projector's unqualified table names resolve to the target's schema (`search_path`, local to
/// the transaction).
pub(crate) async fn apply_in<P: Projector>(
    tx: &mut PgConnection,
    projector: &P,
    target: &Target,
    events: &[Event],
) -> Result<Vec<Event>, BatchError> {
    let spec = projector.spec();
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let (search_path, dedup_sql) = match target {
        Target::Live => (
            "read, public".to_owned(),
            "insert into projection.applied_events (projection, event_id)
             select $1, unnest($2::uuid[]) on conflict do nothing returning event_id"
                .to_owned(),
        ),
        Target::Shadow(schema) => (
            format!("{schema}, public"),
            format!(
                "insert into {schema}.applied_events (event_id)
                 select unnest($2::uuid[]) where $1::text is not null on conflict do nothing returning event_id"
            ),
        ),
    };
    // Live batches also take the projection's lock shared (a rebuild's swap takes it
    // exclusively), in the same round trip.
    let prepare = match target {
        Target::Live => format!(
            "select set_config('search_path', $1, true), pg_advisory_xact_lock_shared({})",
            projection_lock("$2")
        ),
        Target::Shadow(_) => "select set_config('search_path', $1, true), $2::text".to_owned(),
    };
    sqlx::query(&prepare)
        .bind(&search_path)
        .bind(projection_name(spec))
        .execute(&mut *tx)
        .await
        .map_err(BatchError::from_sqlx)?;
    let fresh: HashSet<Uuid> = sqlx::query_scalar(&dedup_sql)
        .bind(projection_name(spec))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(BatchError::from_sqlx)?
        .into_iter()
        .collect();
    let live = matches!(target, Target::Live);
    let mut applied = Vec::with_capacity(fresh.len());
    let mut seen = HashSet::with_capacity(fresh.len());
    for event in events {
        let outcome = if fresh.contains(&event.id) && seen.insert(event.id) {
            let span = tracing::debug_span!(
                "apply_event",
                consumer = spec.name,
                event.id = %event.id,
                event.type = %event.event_type,
                correlation_id = ?event.correlation_id,
            );
            projector.apply(&mut *tx, event).instrument(span).await.map_err(BatchError::from_apply)?;
            applied.push(event.clone());
            Outcome::Applied
        } else {
            Outcome::Duplicate
        };
        if live {
            metrics::counter!("events_consumed_total", "consumer" => spec.name, "type" => event.event_type.clone(), "outcome" => outcome.as_str()).increment(1);
        }
    }
    Ok(applied)
}

pub(crate) enum BatchError {
    /// The database is unreachable or refused service: not the events' fault.
    Database(anyhow::Error),
    /// The projector failed on an event.
    Apply(ApplyError),
}

impl BatchError {
    fn from_sqlx(e: sqlx::Error) -> Self {
        match db_failure(&e) {
            DbFailure::Unavailable => Self::Database(e.into()),
            DbFailure::Rejected | DbFailure::Transient => Self::Apply(e.into()),
        }
    }

    fn from_apply(e: ApplyError) -> Self {
        match e {
            ApplyError::Transient(inner) => match inner.downcast_ref::<sqlx::Error>() {
                Some(db) if matches!(db_failure(db), DbFailure::Unavailable) => Self::Database(inner),
                _ => Self::Apply(ApplyError::Transient(inner)),
            },
            permanent => Self::Apply(permanent),
        }
    }
}

/// How a database error bears on the events being applied.
enum DbFailure {
    /// The database is unreachable or refused service: no event is at fault. Class 08
    /// (connection exception), 57P (operator intervention), 53 (insufficient resources), and
    /// the pool's own errors.
    Unavailable,
    /// Refused what was asked of it, and would again: class 22 (data exception, e.g. a value
    /// out of range) and class 23 (integrity violation; our dedup conflicts are
    /// `on conflict do nothing` and never raise).
    Rejected,
    /// Anything else (serialization failures, deadlocks, lock timeouts): may pass on a retry.
    Transient,
}

fn db_failure(e: &sqlx::Error) -> DbFailure {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => DbFailure::Unavailable,
        sqlx::Error::Database(db) => match db.code() {
            Some(c) if c.starts_with("08") || c.starts_with("57P") || c.starts_with("53") => DbFailure::Unavailable,
            Some(c) if c.starts_with("22") || c.starts_with("23") => DbFailure::Rejected,
            _ => DbFailure::Transient,
        },
        _ => DbFailure::Transient,
    }
}
