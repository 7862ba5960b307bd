//! Wake-ups on a PostgreSQL channel, sent **after** commit, coalesced, and never on a
//! transaction's own commit path.
//!
//! A `NOTIFY` inside a transaction makes its commit take a lock that is global to the cluster
//! and held through the WAL flush, so every notifying transaction commits one after another,
//! one disk flush each, whatever else it does. Under load that was the whole system's bound:
//! appends queued behind that lock while holding their streams' row locks, and the rest queued
//! behind them (most of the active backends waited on `Lock:object` at `COMMIT`). So the writers
//! of events and the consumers no longer notify in their transactions; after committing they
//! call [`Wake::wake`], and one task per channel sends the `NOTIFY` on its own with
//! `synchronous_commit` off (a lost wake-up costs only latency: the listeners also look on a
//! timer). While one is being sent, further wake-ups fold into the next, so a thousand commits
//! a second cost a few notifications, not a thousand serialised flushes.
//!
//! **At most one per [`MIN_INTERVAL`].** Under steady load the sending task would otherwise send
//! back to back, one transaction per round trip, and each `NOTIFY` makes every listening backend
//! of the database read the queue. A wake-up after a quiet spell goes out at once; one that
//! arrives within [`MIN_INTERVAL`] of the last waits for the rest of it, folded with any others.
//! The listeners (the relay, query-api's waits) then do one round for many commits.

use std::{sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio::{sync::mpsc, time::Instant};

/// The shortest time between two notifications of one [`Wake`]: the most latency it adds.
pub const MIN_INTERVAL: Duration = Duration::from_millis(5);

/// A coalescing after-commit wake-up on one channel; cheap to clone and to call.
#[derive(Clone)]
pub struct Wake {
    pending: Arc<mpsc::Sender<()>>,
}

impl Wake {
    /// Wake-ups on `channel` of `db`'s database (must be called within a Tokio runtime: the
    /// sending task starts here and ends when the last clone is dropped).
    pub fn new(db: PgPool, channel: &'static str) -> Self {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                let started = Instant::now();
                let sent = sqlx::query("select set_config('synchronous_commit', 'off', true), pg_notify($1, '')")
                    .bind(channel)
                    .execute(&db)
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(channel, error = %e, "wake-up not sent; the listener's timer covers it");
                }
                // Wake-ups meanwhile fold into the one slot of the channel.
                tokio::time::sleep_until(started + MIN_INTERVAL).await;
            }
        });
        Self { pending: Arc::new(tx) }
    }

    /// Asks for a notification on the channel. Call after the commit that the listener should
    /// see; one already waiting to be sent covers this one too.
    pub fn wake(&self) {
        let _ = self.pending.try_send(());
    }
}
