//! The outbox relay: publishes the unpublished tail of the event log to `{prefix}.events`.
//!
//! **Woken, not polling.** After a transaction that appended events commits, its writer wakes
//! the relay on `eco_outbox` (`platform::eventstore::Outbox`, coalesced and sent outside the
//! transaction: a `NOTIFY` inside it would serialise every commit of the cluster, see
//! `platform::wake`); the relay `LISTEN`s and publishes at once. A slow fallback tick covers a
//! lost listener connection or wake-up.
//!
//! **Never skips, keeps order.** `position` comes from an identity column, so a transaction can
//! take position 5, commit after position 6 became visible, and a reader that had moved past 6
//! would skip 5 forever. The relay therefore only takes rows whose writing transaction is older
//! than every transaction still running (`transaction_id < pg_snapshot_xmin(pg_current_snapshot())`):
//! no row can appear below them any more. It publishes in `(transaction_id, position)` order, a
//! total order that no later commit can insert into.
//!
//! **One at a time.** Several relays may run (replicas, a rolling update), but only the one
//! holding the session advisory lock `hashtext('ecoeco.relay')` publishes; the others stand by
//! and take over within a second when it goes. The holder reads and stamps the outbox on the
//! very connection that holds the lock, so if that connection dies (and the lock with it) its
//! next statement fails and it stops publishing before another relay can start.
//!
//! **Marked only after the ack.** Rows are published with `mandatory` on a confirm channel and
//! stamped `published_at` only after the broker acked them, in order: the stamped set is always
//! the acked prefix of the batch. A broker restart mid-batch loses nothing: the unacked rest is
//! published again on the next connection, and consumers deduplicate by event id.

use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use lapin::{Channel, options::BasicPublishOptions, publisher_confirm::Confirmation};
use platform::{
    amqp,
    eventstore::{OUTBOX_CHANNEL, STORED_EVENT_COLUMNS, StoredEvent},
};
use sqlx::{PgConnection, PgPool, postgres::PgListener};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;

/// How often the relay looks at the outbox without being woken.
const FALLBACK_TICK: Duration = Duration::from_secs(1);

/// The relay's configuration and connections.
pub struct Relay {
    /// The pool the relay starts from: it detaches one connection to hold the advisory lock
    /// that makes other replicas stand by, and publishes every round on that very connection
    /// (so if it dies, the lock goes with it and no round runs without it); the `LISTEN`
    /// connection is another of its own.
    db: PgPool,
    /// Broker URL; the relay owns its connection and confirm channel (opened in `run`, again
    /// after a loss), shared with no other task.
    amqp_url: String,
    /// The exchange every event is published to (`{prefix}.events`).
    exchange: String,
    /// Rows per round: the unit published, confirmed and stamped `published_at` together.
    batch_size: i64,
    /// The broker user it connects as, when `AMQP_URL` names it: stamped on each message as
    /// `user_id` (RabbitMQ checks it), so ingest can tell our logged events from other
    /// services' ([`amqp::from_relay`]). Without it, ingest stores ours by id as before.
    user: Option<String>,
}

/// What one publishing round did.
enum Round {
    /// Published this many rows; the batch was full, more may wait.
    Full,
    /// Published everything visible.
    Drained,
    /// Rows exist but a running transaction holds them back; look again soon.
    HeldBack,
}

impl Relay {
    /// A relay publishing from `db` to `exchange` at `amqp_url`.
    pub fn new(db: PgPool, amqp_url: &str, exchange: String, batch_size: i64) -> Self {
        let user = amqp::username(amqp_url);
        Self { db, amqp_url: amqp_url.to_owned(), exchange, batch_size, user }
    }

    /// Runs until `shutdown`, reconnecting to the broker and the database as often as needed.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            match self.session(&shutdown, &mut backoff).await {
                Ok(()) => break,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        error = format!("{e:#}"),
                        retry_in_ms = delay.as_millis() as u64,
                        "relay interrupted; reconnecting"
                    );
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        tracing::info!("relay stopped");
    }

    async fn session(&self, shutdown: &CancellationToken, backoff: &mut Backoff) -> anyhow::Result<()> {
        let Some(mut lock) = self.take_the_lock(shutdown).await? else { return Ok(()) };
        let mut listener = PgListener::connect_with(&self.db).await.context("connecting the outbox listener")?;
        listener.listen(OUTBOX_CHANNEL).await.context("LISTEN on the outbox channel")?;
        let conn = amqp::connect(&self.amqp_url, "relay").await?;
        let channel = amqp::confirm_channel(&conn).await?;
        tracing::info!(exchange = %self.exchange, "relay connected");
        let mut held_back_wait = Duration::from_millis(2);
        loop {
            if shutdown.is_cancelled() {
                let _ = conn.close(200, "shutting down").await;
                let _ = sqlx::Connection::close(lock).await;
                return Ok(());
            }
            let round = self.publish_round(&mut lock, &channel).await?;
            backoff.reset();
            let wait = match round {
                Round::Full => continue,
                Round::HeldBack => {
                    held_back_wait = (held_back_wait * 2).min(Duration::from_millis(100));
                    held_back_wait
                }
                Round::Drained => {
                    held_back_wait = Duration::from_millis(2);
                    FALLBACK_TICK
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => {}
                notification = listener.recv() => match notification {
                    // Wake-ups that came meanwhile are covered by the next round, which reads
                    // everything committed so far: take them all now, or each would cost a round.
                    Ok(_) => while let Some(Ok(Some(_))) = listener.try_recv().now_or_never() {},
                    Err(e) => {
                        // PgListener reconnects on the next recv; the tick covers the gap.
                        tracing::warn!(error = %e, "outbox listener lost its connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Waits until this relay holds the relay lock, on a connection of its own (returned), or
    /// until `shutdown` (`None`).
    async fn take_the_lock(&self, shutdown: &CancellationToken) -> anyhow::Result<Option<PgConnection>> {
        let mut conn = self.db.acquire().await.context("connecting for the relay lock")?.detach();
        let mut said = false;
        loop {
            let held: bool = sqlx::query_scalar("select pg_try_advisory_lock(hashtext('ecoeco.relay'))")
                .fetch_one(&mut conn)
                .await
                .context("taking the relay lock")?;
            if held {
                return Ok(Some(conn));
            }
            if !said {
                tracing::info!("another relay is publishing; standing by");
                said = true;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                _ = tokio::time::sleep(FALLBACK_TICK) => {}
            }
        }
    }

    async fn publish_round(&self, db: &mut PgConnection, channel: &Channel) -> anyhow::Result<Round> {
        let rows: Vec<StoredEvent> = sqlx::query_as(&format!(
            "select {STORED_EVENT_COLUMNS} from eventstore.events
             where published_at is null and transaction_id < pg_snapshot_xmin(pg_current_snapshot())
             order by transaction_id, position
             limit $1"
        ))
        .bind(self.batch_size)
        .fetch_all(&mut *db)
        .await
        .context("reading the outbox")?;
        if rows.is_empty() {
            let pending: bool =
                sqlx::query_scalar("select exists (select 1 from eventstore.events where published_at is null)")
                    .fetch_one(&mut *db)
                    .await
                    .context("checking the outbox")?;
            return Ok(if pending { Round::HeldBack } else { Round::Drained });
        }
        let full = rows.len() as i64 == self.batch_size;
        let started = std::time::Instant::now();

        let mut in_flight = Vec::with_capacity(rows.len());
        for row in rows {
            let position = row.position;
            let envelope = row.into_envelope();
            let payload = serde_json::to_vec(&envelope).context("serialising an event")?;
            let confirm = channel
                .basic_publish(
                    &self.exchange,
                    &envelope.event_type,
                    BasicPublishOptions { mandatory: true, ..Default::default() },
                    &payload,
                    match &self.user {
                        Some(user) => amqp::from_relay(amqp::event_properties(&envelope), user),
                        None => amqp::event_properties(&envelope),
                    },
                )
                .await
                .context("publishing an event")?;
            in_flight.push((position, envelope.event_type, confirm));
        }
        let mut acked = Vec::with_capacity(in_flight.len());
        let mut failure = None;
        for (position, event_type, confirm) in in_flight {
            match confirm.await {
                Ok(Confirmation::Ack(returned)) => {
                    if returned.is_some() {
                        // No queue is bound to this type: nobody consumes it yet. It stays in
                        // the log for replays; counted so an operator can see it.
                        metrics::counter!("events_unroutable_total", "type" => event_type.clone()).increment(1);
                        tracing::debug!(event.type = %event_type, "published event had no queue bound");
                    }
                    metrics::counter!("events_published_total", "type" => event_type).increment(1);
                    acked.push(position);
                }
                Ok(other) => {
                    failure = Some(anyhow::anyhow!("broker refused an event: {other:?}"));
                    break;
                }
                Err(e) => {
                    failure = Some(anyhow::Error::new(e).context("waiting for the broker's confirm"));
                    break;
                }
            }
        }
        if !acked.is_empty() {
            // The stamp commits without waiting for the disk (`synchronous_commit` off for this
            // statement's transaction): one lost in a crash only means those events are
            // published again, which consumers deduplicate; waiting cost a WAL flush a round.
            sqlx::query(
                "with durability as (select set_config('synchronous_commit', 'off', true))
                 update eventstore.events set published_at = now() from durability where position = any($1)",
            )
            .bind(&acked)
            .execute(&mut *db)
            .await
            .context("marking events published")?;
            metrics::histogram!("relay_batch_seconds").record(started.elapsed().as_secs_f64());
            tracing::debug!(count = acked.len(), "published events");
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(if full { Round::Full } else { Round::Drained }),
        }
    }
}
