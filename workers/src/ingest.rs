//! The ingest consumer: every event published on `{prefix}.events` is stored in the event log,
//! so replays and rebuilds include what other services published (e.g. the scan service's
//! `scan.recorded`).
//!
//! Its queue is bound to every routing key, so it is the one consumer that sees every message
//! another service sends, whatever its type: what can never be an event (bad JSON, unknown type
//! or version, schema violation, a user without a live account) is parked in
//! `{prefix}.ingest.parked` with its reason, and so is a second body under an id the log already
//! holds (`conflicting_duplicate`), so the sender can find out. The storing itself is
//! [`crate::admission`], which every live consumer runs in its own transaction before acting on
//! an event: whichever sees another service's event first stores it, exactly as sent and born
//! published, so the relay never re-sends it. Idempotent by event id (`eventstore.events` has a
//! unique id); an event already in the log is skipped.
//!
//! Our own events come from the log, so they are acknowledged without a transaction: the relay
//! stamps them `app_id = ecoeco` and `user_id` = its broker user, which RabbitMQ verifies
//! against the connection's credentials (`platform::amqp::from_relay`). Give other services
//! their own broker users: one connecting with ours could pass its events off as ours.

use events::Event;
use platform::topology::{ConsumerSpec, INGEST};
use sqlx::PgConnection;

use crate::consumer::{ApplyError, Projector};

/// Stores bus events in the log.
pub struct Ingest;

impl Projector for Ingest {
    fn spec(&self) -> &'static ConsumerSpec {
        &INGEST
    }

    /// Nothing beyond admission, which stored the event.
    async fn apply(&self, _tx: &mut PgConnection, _event: &Event) -> Result<(), ApplyError> {
        Ok(())
    }
}

impl crate::registry::Build for Ingest {
    fn build(_: &crate::registry::Deps) -> anyhow::Result<Self> {
        Ok(Self)
    }
}
