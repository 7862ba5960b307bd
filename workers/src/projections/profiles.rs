//! The profiles projection: `profiles` and `settings` (SQL in `readmodels::profiles::write`)
//! and the Redis profile cache.
//!
//! Idempotent because the framework applies each event at most once, and order-tolerant per
//! user: `user.registered` inserts only if absent and never after `user.deleted` (the
//! `profiles_tombstones` tombstone); `user.profile_updated` only moves `profile_sequence`
//! forward, and waits (transient error, retried) when it overtakes the registration; counters
//! and points are commutative additions, and the level is derived from the points; the
//! character selection moves its own sequence forward; streaks are recomputed from the set of
//! check-in days (`attendance_days`), whatever order the days arrive in.

use events::{Event, EventData};
use platform::{
    changes,
    redis::Redis,
    topology::{ConsumerSpec, PROFILES},
};
use readmodels::profiles::write::{self, Bump, Written};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::consumer::{ApplyError, Projector};

/// Builds `profiles`.
pub struct ProfilesProjector {
    db: PgPool,
    redis: Redis,
}

impl ProfilesProjector {
    /// A projector writing to `db` and caching in `redis`.
    pub fn new(db: PgPool, redis: Redis) -> Self {
        Self { db, redis }
    }
}

impl Projector for ProfilesProjector {
    const TABLES: &'static [&'static str] = &["profiles", "settings", "profiles_tombstones", "attendance_days"];

    fn spec(&self) -> &'static ConsumerSpec {
        &PROFILES
    }

    async fn after_rebuild(&self) {
        match self.redis.delete_matching("profile:*").await {
            Ok(n) => tracing::info!(keys = n, "profile cache dropped after the rebuild"),
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "profile cache not dropped; entries expire with their TTL")
            }
        }
        changes::publish(&self.redis, PROFILES.name, &[]).await;
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        let user = event.aggregate_id;
        let written = match &event.data {
            EventData::UserRegistered(e) => {
                write::register(tx, e, event.occurred_at, event.sequence).await?;
                Written::Done
            }
            EventData::UserProfileUpdated(e) => write::update_profile(tx, user, e, event.sequence).await?,
            EventData::UserSettingsUpdated(e) => write::update_settings(tx, user, e, event.sequence).await?,
            EventData::ScanRecorded(_) => write::bump(tx, user, Bump::Scan).await?,
            EventData::RecycleCompleted(_) => write::bump(tx, user, Bump::Recycle).await?,
            EventData::PointsEarned(p) => write::bump(tx, user, Bump::Points(p.amount)).await?,
            EventData::AttendanceCheckedIn(a) => write::check_in(tx, a.user_id, a.date).await?,
            EventData::UserCharacterSelected(c) => {
                write::select_character(tx, c.user_id, &c.character_id, event.sequence).await?
            }
            EventData::UserDeleted(e) => {
                write::forget(tx, e.user_id).await?;
                Written::Done
            }
            _ => Written::Done,
        };
        match written {
            Written::Done => Ok(()),
            Written::NotYet => Err(ApplyError::Transient(anyhow::anyhow!("profile {user} does not exist yet"))),
        }
    }

    async fn after_commit(&self, applied: &[Event]) {
        let mut users: Vec<Uuid> = applied.iter().map(|e| e.aggregate_id).collect();
        users.sort();
        users.dedup();
        if users.is_empty() {
            return;
        }
        readmodels::profiles::refresh_cache(&self.db, &self.redis, &users).await;
        // After the cache holds the committed state: what the API instances hold in memory goes.
        changes::publish(&self.redis, PROFILES.name, &users).await;
    }
}

impl crate::registry::Build for ProfilesProjector {
    fn build(deps: &crate::registry::Deps) -> anyhow::Result<Self> {
        Ok(Self::new(deps.db.clone(), deps.redis.clone()))
    }
}
