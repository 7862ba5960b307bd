//! The profiles projection: `profiles` and its Redis cache.
//!
//! Idempotent because the framework applies each event at most once, and order-tolerant per
//! user: `user.registered` inserts only if absent and never after `user.deleted` (the
//! `profiles_tombstones` tombstone); `user.profile_updated` only moves `profile_sequence`
//! forward, and waits (transient error, retried) when it overtakes the registration; counters
//! and points are commutative additions, and the level is derived from the points.

use events::{Event, EventData, rules::level_for};
use platform::{
    redis::Redis,
    topology::{ConsumerSpec, PROFILES},
};
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

impl ProfilesProjector {
    /// A commutative change to a profile (`set_clause` may use `$2` = `amount`): counters and
    /// points add up the same in any order. The level is recomputed from the points. Waits
    /// (transient error) when the event overtook the registration.
    async fn bump(tx: &mut PgConnection, event: &Event, set_clause: &str, amount: i64) -> Result<(), ApplyError> {
        let updated = sqlx::query(&format!(
            "update profiles set {set_clause}, version = version + 1, updated_at = now() where user_id = $1 returning points"
        ))
        .bind(event.aggregate_id)
        .bind(amount)
        .fetch_optional(&mut *tx)
        .await?;
        match updated {
            Some(points) => {
                let points: i64 = sqlx::Row::get(&points, 0);
                sqlx::query("update profiles set level = $2 where user_id = $1")
                    .bind(event.aggregate_id)
                    .bind(level_for(points))
                    .execute(&mut *tx)
                    .await?;
                Ok(())
            }
            None => Self::missing_profile(tx, event.aggregate_id).await,
        }
    }

    /// A sequence-guarded update of `table` changed nothing: the event is stale (the row is
    /// there, fine) or overtook the registration (see [`Self::missing_profile`]).
    async fn stale_or_missing(tx: &mut PgConnection, table: &str, user_id: Uuid) -> Result<(), ApplyError> {
        let exists: bool = sqlx::query_scalar(&format!("select exists (select 1 from {table} where user_id = $1)"))
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        if exists { Ok(()) } else { Self::missing_profile(tx, user_id).await }
    }

    /// A profile that is not there: gone for good (forgotten) is fine, not there yet is transient.
    async fn missing_profile(tx: &mut PgConnection, user_id: Uuid) -> Result<(), ApplyError> {
        let forgotten: bool =
            sqlx::query_scalar("select exists (select 1 from profiles_tombstones where user_id = $1)")
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?;
        if forgotten {
            return Ok(());
        }
        Err(ApplyError::Transient(anyhow::anyhow!("profile {user_id} does not exist yet")))
    }
}

impl Projector for ProfilesProjector {
    const TABLES: &'static [&'static str] = &["profiles", "settings", "profiles_tombstones"];

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
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        match &event.data {
            EventData::UserRegistered(e) => {
                sqlx::query(
                    "insert into profiles (user_id, username, nickname, provider, invite_code, created_at, profile_sequence)
                     select $1, $2, $3, $4, $5, $6, coalesce($7, 0)
                     where not exists (select 1 from profiles_tombstones where user_id = $1)
                     on conflict (user_id) do nothing",
                )
                .bind(e.user_id)
                .bind(&e.username)
                .bind(&e.nickname)
                .bind(serde_json::to_value(e.provider).ok().and_then(|v| v.as_str().map(str::to_owned)))
                .bind(command_api::domain::invite_code(e.user_id))
                .bind(event.occurred_at)
                .bind(event.sequence)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "insert into settings (user_id) select $1
                     where not exists (select 1 from profiles_tombstones where user_id = $1)
                     on conflict (user_id) do nothing",
                )
                .bind(e.user_id)
                .execute(&mut *tx)
                .await?;
            }
            EventData::UserProfileUpdated(e) => {
                let updated = sqlx::query(
                    "update profiles set
                        nickname = coalesce($2, nickname), bio = coalesce($3, bio), avatar_url = coalesce($4, avatar_url),
                        profile_sequence = coalesce($5, profile_sequence), version = version + 1, updated_at = now()
                     where user_id = $1 and ($5::bigint is null or profile_sequence < $5)",
                )
                .bind(event.aggregate_id)
                .bind(&e.nickname)
                .bind(&e.bio)
                .bind(&e.avatar_url)
                .bind(event.sequence)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 0 {
                    Self::stale_or_missing(tx, "profiles", event.aggregate_id).await?;
                }
            }
            EventData::UserSettingsUpdated(e) => {
                let updated = sqlx::query(
                    "update settings set
                        notification_enabled = coalesce($2, notification_enabled), language = coalesce($3, language),
                        theme = coalesce($4, theme), settings_sequence = coalesce($5, settings_sequence), updated_at = now()
                     where user_id = $1 and ($5::bigint is null or settings_sequence < $5)",
                )
                .bind(event.aggregate_id)
                .bind(e.notification_enabled)
                .bind(&e.language)
                .bind(&e.theme)
                .bind(event.sequence)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 0 {
                    Self::stale_or_missing(tx, "settings", event.aggregate_id).await?;
                }
            }
            EventData::ScanRecorded(_) => Self::bump(tx, event, "total_scans = total_scans + 1", 0).await?,
            EventData::RecycleCompleted(_) => Self::bump(tx, event, "total_recycles = total_recycles + 1", 0).await?,
            EventData::PointsEarned(p) => Self::bump(tx, event, "points = points + $2", p.amount).await?,
            EventData::UserDeleted(e) => {
                sqlx::query("delete from profiles where user_id = $1").bind(e.user_id).execute(&mut *tx).await?;
                sqlx::query("delete from settings where user_id = $1").bind(e.user_id).execute(&mut *tx).await?;
                sqlx::query("insert into profiles_tombstones (user_id) values ($1) on conflict do nothing")
                    .bind(e.user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn after_commit(&self, applied: &[Event]) {
        readmodels::profiles::refresh_cache(&self.db, &self.redis, applied.iter().map(|e| e.aggregate_id).collect())
            .await;
    }
}

impl crate::registry::Build for ProfilesProjector {
    fn build(deps: &crate::registry::Deps) -> anyhow::Result<Self> {
        Ok(Self::new(deps.db.clone(), deps.redis.clone()))
    }
}
