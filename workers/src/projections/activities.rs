//! The activity history projection: `activities` (SQL in `readmodels::activities`), one row
//! per scan, recycle, check-in, invite, points award and level-up, keyed by the event id (so
//! applying twice cannot add a row twice).
//!
//! Order-tolerant: a scan shows the points it earned whether the award arrives before or after
//! the scan itself (each side fills in the other). `user.deleted` removes the person's history.

use events::{Event, EventData};
use platform::topology::{ACTIVITIES, ConsumerSpec};
use readmodels::activities;
use sqlx::PgConnection;

use crate::consumer::{ApplyError, Part, Projector, parts};

/// Builds `activities`.
pub struct ActivitiesProjector;

impl Projector for ActivitiesProjector {
    const TABLES: &'static [&'static str] = &["activities", "activities_tombstones"];

    fn spec(&self) -> &'static ConsumerSpec {
        &ACTIVITIES
    }

    /// Runs of history entries go in two statements each ([`activities::record_all`]); a
    /// forgetting is applied on its own, in order.
    async fn apply_all(&self, tx: &mut PgConnection, events: &[Event]) -> Result<(), ApplyError> {
        for part in parts(events, |e| !matches!(e.data, EventData::UserDeleted(_))) {
            match part {
                Part::Run(run) => activities::record_all(tx, run).await?,
                Part::Alone(event) => self.apply(tx, event).await?,
            }
        }
        Ok(())
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        match &event.data {
            EventData::UserDeleted(d) => activities::forget(tx, d.user_id).await?,
            _ => activities::record(tx, event).await?,
        }
        Ok(())
    }
}

impl crate::registry::Build for ActivitiesProjector {
    fn build(_: &crate::registry::Deps) -> anyhow::Result<Self> {
        Ok(Self)
    }
}
