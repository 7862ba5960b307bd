//! Redis pool and key naming.
//!
//! Redis only holds caches and rebuildable read models: every caller treats a Redis error as a
//! cache miss and carries on from PostgreSQL. Hence the short timeouts: a Redis that is down
//! must cost a request milliseconds, not seconds.

use std::time::Duration;

use anyhow::Context;
use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};

use crate::settings::Settings;

/// How long one Redis operation may take before the caller falls back to PostgreSQL.
pub const OP_TIMEOUT: Duration = Duration::from_millis(250);

/// A Redis pool plus the key prefix of this deployment (`REDIS_PREFIX`).
#[derive(Clone)]
pub struct Redis {
    /// The pool. Connections are made lazily, so a process starts while Redis is down.
    pub pool: Pool,
    prefix: String,
}

impl Redis {
    /// Builds the pool (no connection is attempted yet).
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let mut config = Config::from_url(&settings.redis_url);
        config.pool = Some(PoolConfig {
            max_size: 32,
            timeouts: Timeouts { wait: Some(OP_TIMEOUT), create: Some(OP_TIMEOUT), recycle: Some(OP_TIMEOUT) },
            ..PoolConfig::default()
        });
        let pool = config.create_pool(Some(Runtime::Tokio1)).context("building the Redis pool (REDIS_URL)")?;
        Ok(Self { pool, prefix: settings.redis_prefix.clone() })
    }

    /// `{prefix}:{suffix}`, e.g. `eco:profile:{user_id}`.
    pub fn key(&self, suffix: impl std::fmt::Display) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Runs `op` on a pooled connection within [`OP_TIMEOUT`].
    pub async fn run<T, F, Fut>(&self, op: F) -> anyhow::Result<T>
    where
        F: FnOnce(deadpool_redis::Connection) -> Fut,
        Fut: Future<Output = deadpool_redis::redis::RedisResult<T>>,
    {
        let work = async {
            let conn = self.pool.get().await.context("getting a Redis connection")?;
            op(conn).await.context("Redis command")
        };
        tokio::time::timeout(OP_TIMEOUT, work).await.context("Redis timed out")?
    }

    /// `PING`, for readiness.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.run(|mut c| async move { deadpool_redis::redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(|_| ())
    }

    /// Deletes every key under this prefix matching `suffix_pattern` (a `SCAN MATCH` glob after
    /// the prefix), in rounds of `SCAN`, so the server is never blocked. Returns how many went.
    pub async fn delete_matching(&self, suffix_pattern: &str) -> anyhow::Result<u64> {
        let pattern = self.key(suffix_pattern);
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let p = pattern.clone();
            let (next, keys): (u64, Vec<String>) = self
                .run(move |mut c| async move {
                    deadpool_redis::redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(p)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            if !keys.is_empty() {
                deleted += self
                    .run(move |mut c| async move {
                        deadpool_redis::redis::cmd("UNLINK").arg(keys).query_async::<u64>(&mut c).await
                    })
                    .await?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    /// The JSON value cached at `key`, if there is one that parses as `T` (Redis errors count as
    /// a miss: caches are optional).
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        let key = key.to_owned();
        let hit: Option<String> = self
            .run(move |mut c| async move { deadpool_redis::redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await
            .ok()
            .flatten();
        serde_json::from_str(&hit?).ok()
    }

    /// Caches `value` as JSON at `key` for `ttl_secs` (best effort).
    pub async fn set_json<T: serde::Serialize>(&self, key: String, value: &T, ttl_secs: u64) {
        let Ok(json) = serde_json::to_string(value) else { return };
        let stored = self
            .run(move |mut c| async move {
                deadpool_redis::redis::cmd("SET")
                    .arg(key)
                    .arg(json)
                    .arg("EX")
                    .arg(ttl_secs)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
        if let Err(e) = stored {
            tracing::debug!(error = format!("{e:#}"), "not cached");
        }
    }
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
