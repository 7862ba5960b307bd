//! The notifications projection: the in-app feed (`notifications`, read marks in
//! `notification_marks`; SQL in `readmodels::notifications::write`).
//!
//! Each notice's id comes from its event and person, so applying twice or rebuilding writes
//! the same rows; read marks only move forward; `user.deleted` forgets the feed and leaves a
//! tombstone so late events stay out.

use events::{Event, EventData};
use platform::topology::{ConsumerSpec, NOTIFICATIONS};
use readmodels::notifications::{notices, write};
use sqlx::PgConnection;

use crate::consumer::{ApplyError, Projector};

/// Builds `read.notifications`.
pub struct NotificationsProjector;

impl Projector for NotificationsProjector {
    const TABLES: &'static [&'static str] = &["notifications", "notification_marks", "notifications_tombstones"];
    /// A closed period tells people in other partitions, and a read mark names a notice that
    /// may come from one: a rebuild applies the log in one order.
    const PARTITIONED_BY_AGGREGATE: bool = false;

    fn spec(&self) -> &'static ConsumerSpec {
        &NOTIFICATIONS
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        match &event.data {
            EventData::UserNotificationsRead(r) => write::mark_read(tx, r.user_id, r.up_to_id).await?,
            EventData::UserDeleted(d) => write::forget(tx, d.user_id).await?,
            _ => {
                for notice in notices(event) {
                    write::record(tx, &notice, event.occurred_at).await?;
                }
            }
        }
        Ok(())
    }
}

impl crate::registry::Build for NotificationsProjector {
    fn build(_: &crate::registry::Deps) -> anyhow::Result<Self> {
        Ok(Self)
    }
}
