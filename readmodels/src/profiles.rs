//! Read-model shapes shared by their writer (a projector in `workers`) and their reader
//! (query-api), with their Redis cache entries.
//!
//! Cache entries are versioned: `"{version}|{json}"`. A writer only replaces an entry with a
//! higher version ([`Redis::set_if_newer`]), so a slow reader filling the cache from an older
//! database snapshot can never overwrite what the projector wrote after a newer commit.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use platform::redis::Redis;
pub use platform::redis::TOMBSTONE_VERSION;

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
