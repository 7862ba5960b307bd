//! The ingest consumer: every event published on `{prefix}.events` is stored in the event log,
//! so replays and rebuilds include what other services published (e.g. the scan service's
//! `scan.recorded`).
//!
//! Idempotent by event id: `eventstore.events` has a unique id, and an event already in the log
//! (all of ours, which the relay published from there, and any redelivery) is skipped. Stored
//! rows are born `published_at = now()`: they are on the bus already and the relay must not
//! publish them again. Bytes that are not a valid event of a known type and version never get
//! here: the consumer framework parks them in `{prefix}.ingest.parked` with the reason.

use events::{Event, RawEnvelope};
use platform::{
    eventstore,
    topology::{ConsumerSpec, INGEST},
};
use sqlx::PgConnection;

use crate::consumer::{ApplyError, Projector};

/// Stores bus events in the log.
pub struct Ingest;

impl Projector for Ingest {
    fn spec(&self) -> &'static ConsumerSpec {
        &INGEST
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        self.apply_sent(tx, event, None).await
    }

    /// Stores the envelope as it was sent (an older version stays that version: events never
    /// change once written; readers upcast), falling back to the decoded form without bytes.
    async fn apply_sent(&self, tx: &mut PgConnection, event: &Event, sent: Option<&[u8]>) -> Result<(), ApplyError> {
        let raw = sent.and_then(|bytes| RawEnvelope::from_slice(bytes).ok()).unwrap_or_else(|| event.to_raw());
        let stored = eventstore::insert(tx, vec![raw], true).await?;
        if stored == 1 {
            metrics::counter!("events_ingested_total", "type" => event.event_type.clone(), "source" => event.source.clone()).increment(1);
        }
        Ok(())
    }

    async fn after_commit(&self, _applied: &[Event]) {}
}
