//! The profile read model (`read.profiles`): its shape, columns and cache key, the layered read
//! query-api serves from ([`load`]: Redis, else PostgreSQL, refilling Redis) and the cache
//! refresh its projector runs after each commit ([`refresh_cache`]).
//!
//! Cache entries are versioned: `"{version}|{json}"`. A writer only replaces an entry with a
//! higher version ([`Redis::set_if_newer`]), so a slow reader filling the cache from an older
//! database snapshot can never overwrite what the projector wrote after a newer commit.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use platform::redis::Redis;
pub use platform::redis::TOMBSTONE_VERSION;
use sqlx::PgPool;

/// How long a cached profile lives without being touched.
pub const PROFILE_CACHE_TTL_SECS: u64 = 3600;

/// A user's public profile: `GET /users/me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Profile {
    /// User id.
    #[sqlx(rename = "user_id")]
    pub id: Uuid,
    /// Handle.
    pub username: String,
    /// Display name.
    pub nickname: String,
    /// About me.
    pub bio: String,
    /// Picture URL, empty when none.
    pub avatar_url: String,
    /// Points balance.
    pub points: i64,
    /// Level, 1 to 5.
    pub level: i32,
    /// Scans recorded.
    pub total_scans: i64,
    /// Recycles completed.
    pub total_recycles: i64,
    /// Code friends register with.
    pub invite_code: String,
    /// Sign-up time.
    pub created_at: DateTime<Utc>,
    /// Read-model version; bumps on every change.
    #[serde(skip_serializing)]
    #[serde(default)]
    pub version: i64,
}

/// Columns of [`Profile`].
pub const PROFILE_COLUMNS: &str = "user_id, username, nickname, bio, avatar_url, points, level, total_scans, total_recycles, invite_code, created_at, version";

/// The cache key of a profile.
pub fn profile_key(redis: &Redis, user_id: Uuid) -> String {
    redis.key(format_args!("profile:{user_id}"))
}

/// Reads a profile: from Redis unless `fresh_required`, else (or on a miss, or with Redis down)
/// from PostgreSQL, refilling the cache. `None` when there is none (or it was deleted).
pub async fn load(db: &PgPool, redis: &Redis, user_id: Uuid, fresh_required: bool) -> sqlx::Result<Option<Profile>> {
    let key = profile_key(redis, user_id);
    if !fresh_required {
        match redis.get_versioned(&key).await {
            Ok(Some(Some(json))) => {
                if let Ok(profile) = serde_json::from_str::<Profile>(&json) {
                    metrics::counter!("cache_requests_total", "cache" => "profile", "result" => "hit").increment(1);
                    return Ok(Some(profile));
                }
            }
            Ok(Some(None)) => return Ok(None), // deleted
            Ok(None) => {}
            Err(e) => tracing::debug!(error = format!("{e:#}"), "profile cache unavailable"),
        }
        metrics::counter!("cache_requests_total", "cache" => "profile", "result" => "miss").increment(1);
    }
    let profile: Option<Profile> =
        sqlx::query_as(&format!("select {PROFILE_COLUMNS} from read.profiles where user_id = $1"))
            .bind(user_id)
            .fetch_optional(db)
            .await?;
    if let Some(p) = &profile
        && let Ok(json) = serde_json::to_string(p)
        && let Err(e) = redis.set_if_newer(&key, p.version, &json, PROFILE_CACHE_TTL_SECS).await
    {
        tracing::debug!(error = format!("{e:#}"), "profile cache not filled");
    }
    Ok(profile)
}

/// Writes the committed state of `users`' profiles to the cache (a tombstone for a profile that
/// no longer exists). Best effort: the cache is an optimisation and reads fall back to PostgreSQL.
pub async fn refresh_cache(db: &PgPool, redis: &Redis, mut users: Vec<Uuid>) {
    users.sort();
    users.dedup();
    let rows: Vec<Profile> =
        match sqlx::query_as(&format!("select {PROFILE_COLUMNS} from read.profiles where user_id = any($1)"))
            .bind(&users)
            .fetch_all(db)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "could not read profiles to refresh the cache");
                return;
            }
        };
    for user_id in users {
        let key = profile_key(redis, user_id);
        let result = match rows.iter().find(|p| p.id == user_id) {
            Some(p) => match serde_json::to_string(p) {
                Ok(json) => redis.set_if_newer(&key, p.version, &json, PROFILE_CACHE_TTL_SECS).await,
                Err(e) => Err(e.into()),
            },
            None => redis.set_if_newer(&key, TOMBSTONE_VERSION, "", PROFILE_CACHE_TTL_SECS).await,
        };
        if let Err(e) = result {
            tracing::debug!(error = format!("{e:#}"), "profile cache not refreshed");
        }
    }
}
