//! The projector framework: consume a batch, apply it in one transaction, ack after commit.
//! This module runs the consume loop; [`batch`] applies a batch (admission, deduplication, the
//! projector's changes); [`parking`] settles what could not be applied (retry tiers, parking).
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

use std::{collections::HashMap, sync::Arc};

use anyhow::Context;
use events::Event;
use futures::StreamExt;
use lapin::{
    Channel,
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions},
    types::FieldTable,
};
use platform::{
    amqp,
    topology::{ConsumerSpec, INGEST, Topology},
    wake::Wake,
};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::{admission::Refusal, backoff::Backoff};

mod batch;
mod parking;

pub(crate) use batch::{Applied, apply_live, count_outcomes, projection_lock};
pub use batch::{BatchError, apply_in};
use batch::{DbFailure, db_failure};
pub use batch::{Incoming, Target, projection_name};
pub use parking::{event_id_of, note_parked, original_routing_key, parked_key};

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
    /// Ingest: published by our relay from the log, so already stored.
    Ours,
}

impl Outcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Retried => "retried",
            Self::Parked => "parked",
            Self::Ours => "ours",
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

    /// Applies `events`, each new to it, in the order they came, inside the batch transaction.
    /// By default one by one with [`Projector::apply`]; a projector whose changes commute
    /// overrides it to write a run of them in one statement (a round trip per run instead of
    /// per event). On an error the batch fails as a whole and the consumer applies its events
    /// one by one, so the event at fault is the one retried or parked.
    fn apply_all(
        &self,
        tx: &mut PgConnection,
        events: &[Event],
    ) -> impl Future<Output = Result<(), ApplyError>> + Send {
        async move {
            for event in events {
                let span = tracing::debug_span!(
                    "apply_event",
                    consumer = self.spec().name,
                    event.id = %event.id,
                    event.type = %event.event_type,
                    correlation_id = ?event.correlation_id,
                );
                self.apply(&mut *tx, event).instrument(span).await?;
            }
            Ok(())
        }
    }

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

    /// Whether it appends events to the log (a policy): the relay is then woken after each
    /// batch it commits.
    const RECORDS_EVENTS: bool = false;
}

/// A piece of a projector's share of a batch, as an [`Projector::apply_all`] that writes runs
/// set-based walks it: a run of events that commute, written together, or one event applied on
/// its own.
#[derive(Debug, PartialEq)]
pub enum Part<'a> {
    /// Consecutive events `in_run` accepted.
    Run(&'a [Event]),
    /// An event between runs.
    Alone(&'a Event),
}

/// Splits `events` into the longest runs of those `in_run` accepts and, between them, the
/// others one at a time, in order.
pub fn parts<'a>(events: &'a [Event], in_run: impl Fn(&Event) -> bool) -> Vec<Part<'a>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, event) in events.iter().enumerate() {
        if !in_run(event) {
            if start < i {
                out.push(Part::Run(&events[start..i]));
            }
            out.push(Part::Alone(event));
            start = i + 1;
        }
    }
    if start < events.len() {
        out.push(Part::Run(&events[start..]));
    }
    out
}

/// What the consume loop drives: every [`Projector`] is one, and so is a processing group of
/// projections sharing the database (`crate::projections::group`), which applies each batch to
/// all its members in one transaction.
pub trait Consume: Send + Sync + 'static {
    /// Its queue and bindings.
    fn spec(&self) -> &'static ConsumerSpec;

    /// Applies admitted `events` inside the batch transaction, deduplicating per projection;
    /// returns the events that were new (to any member, for a group).
    fn apply_batch<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        events: &'a [Event],
    ) -> impl Future<Output = Result<Vec<Event>, BatchError>> + Send + 'a;

    /// After the transaction committed (see [`Projector::after_commit`]).
    fn after_commit(&self, applied: &[Event]) -> impl Future<Output = ()> + Send;

    /// Whether its batches append events to the log (then the relay is woken after each).
    const RECORDS_EVENTS: bool;
}

impl<P: Projector> Consume for P {
    fn spec(&self) -> &'static ConsumerSpec {
        Projector::spec(self)
    }

    fn apply_batch<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        events: &'a [Event],
    ) -> impl Future<Output = Result<Vec<Event>, BatchError>> + Send + 'a {
        batch::apply_in(tx, self, &Target::Live, events)
    }

    fn after_commit(&self, applied: &[Event]) -> impl Future<Output = ()> + Send {
        Projector::after_commit(self, applied)
    }

    const RECORDS_EVENTS: bool = P::RECORDS_EVENTS;
}

/// The wake-ups a consumer sends after each batch it commits (never inside the transaction:
/// see `platform::wake`).
#[derive(Clone)]
pub struct Wakes {
    /// Read-your-writes waits of query-api (`platform::consistency::APPLIED_CHANNEL`).
    pub applied: Wake,
    /// The relay, after a batch that appended events.
    pub outbox: Wake,
}

impl Wakes {
    /// Both wake-ups, on `db`'s database (within a Tokio runtime).
    pub fn new(db: &PgPool) -> Self {
        Self {
            applied: Wake::new(db.clone(), platform::consistency::APPLIED_CHANNEL),
            outbox: Wake::new(db.clone(), platform::eventstore::OUTBOX_CHANNEL),
        }
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
    /// How long a batch waits for more deliveries after its first (`PROJECTOR_BATCH_LINGER_MS`).
    pub batch_linger: std::time::Duration,
    /// What to wake after each committed batch.
    pub wakes: Wakes,
}

/// Consumes `projector`'s queue until `shutdown`, reconnecting as needed. On shutdown the batch
/// in hand is finished and acknowledged; deliveries not yet taken return to the queue.
pub async fn run<P: Consume>(ctx: ConsumerContext, projector: Arc<P>, shutdown: CancellationToken) {
    consume(ctx, projector, false, shutdown).await
}

/// Consumes the queue a projection had before its processing group (`crate::legacy`) until an
/// operator deletes it, or until `shutdown`.
pub async fn drain<P: Consume>(ctx: ConsumerContext, projector: Arc<P>, shutdown: CancellationToken) {
    consume(ctx, projector, true, shutdown).await
}

async fn consume<P: Consume>(ctx: ConsumerContext, projector: Arc<P>, drain: bool, shutdown: CancellationToken) {
    let name = projector.spec().name;
    let mut backoff = Backoff::default();
    while !shutdown.is_cancelled() {
        if drain && !queue_exists(&ctx, projector.spec()).await {
            tracing::info!(consumer = name, "the projection's old queue is gone: draining done");
            break;
        }
        // Only ingest tells our relay's messages apart (see `handle`).
        let own_user = (name == INGEST.name).then(|| amqp::username(&ctx.amqp_url)).flatten();
        let mut consumer = Consumer { ctx: &ctx, projector: &*projector, own_user };
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

/// Whether `spec`'s queue exists (`true` when that cannot be told: the session then finds out).
async fn queue_exists(ctx: &ConsumerContext, spec: &ConsumerSpec) -> bool {
    let Ok(conn) = amqp::connect(&ctx.amqp_url, "queue check").await else { return true };
    let exists = crate::legacy::exists(&conn, &ctx.topology.queue(spec)).await.unwrap_or(true);
    let _ = conn.close(200, "checked").await;
    exists
}

/// The next batch: waits for one delivery, then takes what else arrives within `linger` of it,
/// up to `max` (with `linger` zero, only what is already there). `None` when the stream ended.
async fn next_batch<S, T>(deliveries: &mut S, max: usize, linger: std::time::Duration) -> Option<Vec<T>>
where
    S: futures::Stream<Item = T> + Unpin,
{
    let mut batch = vec![deliveries.next().await?];
    let until = tokio::time::Instant::now() + linger;
    while batch.len() < max {
        // `timeout_at` polls the stream before the clock, so what is ready is always taken.
        match tokio::time::timeout_at(until, deliveries.next()).await {
            Ok(Some(next)) => batch.push(next),
            Ok(None) | Err(_) => break,
        }
    }
    Some(batch)
}

struct Consumer<'a, P> {
    /// Shared by every consumer of the process; read-only.
    ctx: &'a ConsumerContext,
    /// The projector, shared (behind the task's `Arc`) with nothing else while the task runs;
    /// `apply` runs one batch at a time, so it needs no locking of its own.
    projector: &'a P,
    /// Ingest's broker user: deliveries our relay stamped with it are already in the log.
    own_user: Option<String>,
}

/// A delivery the batch could not apply, and what to do with it.
enum Failed {
    Retry(String),
    Park { code: &'static str, detail: String },
}

impl<P: Consume> Consumer<'_, P> {
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
        let tag = format!("{}-{}", spec.name, Uuid::now_v7());
        let deliveries = channel
            .basic_consume(&queue, &tag, BasicConsumeOptions::default(), FieldTable::default())
            .await
            .with_context(|| format!("consuming {queue}"))?;
        tracing::info!(consumer = spec.name, queue = %queue, "consuming");
        let mut deliveries = deliveries;
        let (max, linger) = (usize::from(self.ctx.batch_size), self.ctx.batch_linger);
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
                batch = next_batch(&mut deliveries, max, linger) => {
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
        metrics::counter!("consumer_deliveries_total", "consumer" => consumer).increment(batch.len() as u64);
        let mut events = Vec::with_capacity(batch.len());
        let mut failed = Vec::new();
        for delivery in batch {
            // Ingest stores what other services publish; our relay's messages come from the log
            // already, so they cost it no transaction (acknowledged with the batch).
            if let Some(user) = &self.own_user
                && amqp::is_from_relay(&delivery.properties, user)
            {
                let kind = delivery.properties.kind().as_ref().map(|k| k.to_string()).unwrap_or_default();
                metrics::counter!("events_consumed_total", "consumer" => consumer, "type" => kind, "outcome" => Outcome::Ours.as_str()).increment(1);
                continue;
            }
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
    /// After the commit, wakes read-your-writes waits (and the relay, for a policy).
    async fn apply_batch(&self, events: &[Incoming<'_>]) -> Result<Applied, BatchError> {
        let done = apply_live(&self.ctx.db, self.projector, events).await?;
        if !done.applied.is_empty() {
            self.ctx.wakes.applied.wake();
            if P::RECORDS_EVENTS {
                self.ctx.wakes.outbox.wake();
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::next_batch;

    #[test]
    fn a_batch_splits_into_runs_and_the_events_between_them_in_order() {
        use events::{Event, UserDeleted};
        use uuid::Uuid;

        use super::{Part, parts};
        let user = Uuid::now_v7();
        let deleted = || Event::new("x", user, UserDeleted { user_id: user }.into());
        let other = || Event::new("x", user, events::LevelReached { user_id: user, level: 2, points: 101 }.into());
        let events = [other(), other(), deleted(), deleted(), other()];
        let in_run = |e: &Event| e.event_type != "user.deleted";
        assert_eq!(
            parts(&events, in_run),
            [Part::Run(&events[0..2]), Part::Alone(&events[2]), Part::Alone(&events[3]), Part::Run(&events[4..])]
        );
        assert_eq!(parts(&events[2..4], in_run), [Part::Alone(&events[2]), Part::Alone(&events[3])]);
        assert!(parts(&[], in_run).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_takes_what_is_ready_up_to_the_limit() {
        let mut ready = futures::stream::iter(1..=5);
        assert_eq!(next_batch(&mut ready, 3, Duration::ZERO).await, Some(vec![1, 2, 3]));
        assert_eq!(next_batch(&mut ready, 3, Duration::ZERO).await, Some(vec![4, 5]));
        assert_eq!(next_batch(&mut ready, 3, Duration::ZERO).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_lingers_for_late_deliveries_only_as_long_as_told() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) });
        tx.send(1).unwrap();
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(3)).await;
            late.send(2).unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
            late.send(3).unwrap();
        });
        let mut stream = std::pin::pin!(stream);
        assert_eq!(next_batch(&mut stream, 10, Duration::from_millis(5)).await, Some(vec![1, 2]));
        assert_eq!(next_batch(&mut stream, 10, Duration::ZERO).await, Some(vec![3]));
    }
}
