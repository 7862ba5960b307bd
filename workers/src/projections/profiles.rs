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

use crate::consumer::{ApplyError, Part, Projector, parts};

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

    /// Runs of scans, recycles and points (they commute) go in one statement each
    /// ([`write::bump_all`]); anything else is applied on its own, in order.
    async fn apply_all(&self, tx: &mut PgConnection, events: &[Event]) -> Result<(), ApplyError> {
        for part in parts(events, |e| bump_of(e).is_some()) {
            match part {
                Part::Run(run) => {
                    let bumps: Vec<(Uuid, Bump)> =
                        run.iter().filter_map(|e| bump_of(e).map(|bump| (e.aggregate_id, bump))).collect();
                    let written = write::bump_all(tx, &bumps).await?;
                    done(written, || "a profile among a run of bumps does not exist yet".to_owned())?;
                }
                Part::Alone(event) => self.apply(tx, event).await?,
            }
        }
        Ok(())
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        let user = event.aggregate_id;
        let missing = || format!("profile {user} does not exist yet");
        if let Some(bump) = bump_of(event) {
            return done(write::bump(tx, user, bump).await?, missing);
        }
        let written = match &event.data {
            EventData::UserRegistered(e) => {
                write::register(tx, e, event.occurred_at, event.sequence).await?;
                Written::Done
            }
            EventData::UserProfileUpdated(e) => write::update_profile(tx, user, e, event.sequence).await?,
            EventData::UserSettingsUpdated(e) => write::update_settings(tx, user, e, event.sequence).await?,
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
        done(written, missing)
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

/// The commutative change `event` makes to its person's numbers, if it makes one.
fn bump_of(event: &Event) -> Option<Bump> {
    match &event.data {
        EventData::ScanRecorded(_) => Some(Bump::Scan),
        EventData::RecycleCompleted(_) => Some(Bump::Recycle),
        EventData::PointsEarned(p) => Some(Bump::Points(p.amount)),
        _ => None,
    }
}

/// `Ok` when written; a transient error (retried) when the profile is not there yet.
fn done(written: Written, what: impl FnOnce() -> String) -> Result<(), ApplyError> {
    match written {
        Written::Done => Ok(()),
        Written::NotYet => Err(ApplyError::Transient(anyhow::anyhow!(what()))),
    }
}

impl crate::registry::Build for ProfilesProjector {
    fn build(deps: &crate::registry::Deps) -> anyhow::Result<Self> {
        Ok(Self::new(deps.db.clone(), deps.redis.clone()))
    }
}
