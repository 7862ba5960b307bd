//! The rewards projection: `user_badges` and `user_characters` (SQL in
//! `readmodels::rewards::write`), from `badge.earned` and `character.unlocked`.
//!
//! Keyed by user and badge or character, so order-free and idempotent; `user.deleted` forgets
//! the person's rows and a tombstone keeps late events out.

use events::{Event, EventData, UnlockReason};
use platform::topology::{ConsumerSpec, REWARDS};
use readmodels::rewards::write;
use sqlx::PgConnection;

use crate::consumer::{ApplyError, Projector};

/// Builds `read.user_badges` and `read.user_characters`.
pub struct RewardsProjector;

impl Projector for RewardsProjector {
    const TABLES: &'static [&'static str] = &["user_badges", "user_characters", "rewards_tombstones"];

    fn spec(&self) -> &'static ConsumerSpec {
        &REWARDS
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        match &event.data {
            EventData::BadgeEarned(b) => write::badge(tx, b.user_id, &b.badge_id, event.occurred_at).await?,
            EventData::CharacterUnlocked(c) => {
                let reason = match c.reason {
                    UnlockReason::Level => "level",
                    UnlockReason::Badge => "badge",
                };
                write::character(tx, c.user_id, &c.character_id, reason, event.occurred_at).await?
            }
            EventData::UserDeleted(d) => write::forget(tx, d.user_id).await?,
            _ => {}
        }
        Ok(())
    }
}

impl crate::registry::Build for RewardsProjector {
    fn build(_: &crate::registry::Deps) -> anyhow::Result<Self> {
        Ok(Self)
    }
}
