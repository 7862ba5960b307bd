//! Login abuse limits, in Redis.
//!
//! * Per client IP: at most [`IP_LIMIT`] attempts in any 60 s (a sliding log, atomic in Lua).
//! * Per account (by a hash of the e-mail, existing or not, so the limit reveals nothing):
//!   from the [`FREE_FAILURES`]th consecutive failure on, each attempt must wait 2^(n−3) s after
//!   the last failure, up to 15 minutes. A success clears it.
//!
//! Both answer 429 with `Retry-After`. When Redis is down the limits are not enforced (logged):
//! refusing every sign-in would be worse than an unthrottled minute.

use chrono::Utc;
use platform::{error::ApiError, redis::Redis};
use sha2::{Digest, Sha256};

/// Attempts per IP per minute.
pub const IP_LIMIT: i64 = 5;
/// Failures per account before back-off starts.
pub const FREE_FAILURES: i64 = 3;
const MAX_BACKOFF_SECS: i64 = 900;

const SLIDING_LOG: &str = r"
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.ceil((tonumber(oldest[2]) + 60000 - now) / 1000)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], 60000)
return 0
";

fn account_key(redis: &Redis, email: &str) -> String {
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    redis.key(format_args!("rl:login:acct:{}", hex(&digest[..16])))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fail_open(e: anyhow::Error) {
    tracing::warn!(error = format!("{e:#}"), "login rate limit not enforced: Redis unavailable");
}

/// Counts an attempt from `ip`; refuses the sixth in a minute.
pub async fn check_ip(redis: &Redis, ip: &str) -> Result<(), ApiError> {
    let key = redis.key(format!("rl:login:ip:{ip}"));
    sliding_window(redis, key, IP_LIMIT).await
}

/// At most `limit` hits on `key` in any 60 s.
async fn sliding_window(redis: &Redis, key: String, limit: i64) -> Result<(), ApiError> {
    let now = Utc::now().timestamp_millis();
    let member = format!("{now}-{}", uuid::Uuid::new_v4().simple());
    let script = redis::Script::new(SLIDING_LOG);
    let wait =
        redis
            .run(move |mut c| async move {
                script.key(key).arg(now).arg(limit).arg(member).invoke_async::<i64>(&mut c).await
            })
            .await;
    match wait {
        Ok(0) => Ok(()),
        Ok(secs) => Err(ApiError::TooManyRequests { retry_after_secs: secs.max(1) as u64 }),
        Err(e) => {
            fail_open(e);
            Ok(())
        }
    }
}

/// Refuses an attempt on `email` while its back-off runs.
pub async fn check_account(redis: &Redis, email: &str) -> Result<(), ApiError> {
    let key = account_key(redis, email);
    let state: anyhow::Result<(Option<i64>, Option<i64>)> =
        redis
            .run(move |mut c| async move {
                redis::cmd("HMGET").arg(key).arg("failures").arg("last").query_async(&mut c).await
            })
            .await;
    match state {
        Ok((Some(failures), Some(last))) if failures >= FREE_FAILURES => {
            let backoff = (1i64 << (failures - FREE_FAILURES).min(20)).min(MAX_BACKOFF_SECS);
            let wait = last + backoff - Utc::now().timestamp();
            if wait > 0 { Err(ApiError::TooManyRequests { retry_after_secs: wait as u64 }) } else { Ok(()) }
        }
        Ok(_) => Ok(()),
        Err(e) => {
            fail_open(e);
            Ok(())
        }
    }
}

/// Records a failed attempt on `email`.
pub async fn record_failure(redis: &Redis, email: &str) {
    let key = account_key(redis, email);
    let now = Utc::now().timestamp();
    let result = redis
        .run(move |mut c| async move {
            redis::pipe()
                .cmd("HINCRBY")
                .arg(&key)
                .arg("failures")
                .arg(1)
                .ignore()
                .cmd("HSET")
                .arg(&key)
                .arg("last")
                .arg(now)
                .ignore()
                .cmd("EXPIRE")
                .arg(&key)
                .arg(3600)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await;
    if let Err(e) = result {
        fail_open(e);
    }
}

/// Clears the back-off of `email` after a success.
pub async fn record_success(redis: &Redis, email: &str) {
    let key = account_key(redis, email);
    if let Err(e) =
        redis.run(move |mut c| async move { redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await }).await
    {
        fail_open(e);
    }
}

/// Mail-sending requests (forgot password, resend verification) per IP per minute.
pub const MAIL_LIMIT: i64 = 5;

/// Counts a mail-sending request from `ip`; refuses the sixth in a minute.
pub async fn check_mail(redis: &Redis, ip: &str) -> Result<(), ApiError> {
    let key = redis.key(format!("rl:mail:ip:{ip}"));
    sliding_window(redis, key, MAIL_LIMIT).await
}
