//! Read-model shapes shared by their writer (a projector in `workers`) and their reader
//! (query-api), with their Redis cache entries.
//!
//! Cache entries are versioned: `"{version}|{json}"`. A writer only replaces an entry with a
//! higher version ([`Redis::set_if_newer`]), so a slow reader filling the cache from an older
//! database snapshot can never overwrite what the projector wrote after a newer commit.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::redis::Redis;

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

const SET_IF_NEWER: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local v = tonumber(string.match(cur, '^(%d+)|'))
  if v and v >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[3])
return 1
";

/// The version a tombstone carries: higher than any real version, so nothing overwrites it.
pub const TOMBSTONE_VERSION: i64 = i64::MAX;

impl Redis {
    /// Stores `json` under `key` unless the entry there has the same or a higher version.
    pub async fn set_if_newer(&self, key: &str, version: i64, json: &str, ttl_secs: u64) -> anyhow::Result<bool> {
        let script = deadpool_redis::redis::Script::new(SET_IF_NEWER);
        let (key, json) = (key.to_owned(), json.to_owned());
        self.run(move |mut c| async move {
            script.key(key).arg(version).arg(json).arg(ttl_secs).invoke_async::<i32>(&mut c).await
        })
        .await
        .map(|n| n == 1)
    }

    /// Reads a versioned entry: `Some(None)` is a tombstone (the thing was deleted).
    pub async fn get_versioned(&self, key: &str) -> anyhow::Result<Option<Option<String>>> {
        let key = key.to_owned();
        let raw: Option<String> = self
            .run(move |mut c| async move { deadpool_redis::redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await?;
        Ok(raw.and_then(|r| {
            let (version, json) = r.split_once('|')?;
            Some((version != TOMBSTONE_VERSION.to_string()).then(|| json.to_owned()))
        }))
    }
}
