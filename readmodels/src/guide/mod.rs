//! The recycling guide's read model: its reads ([`catalogue`]), its writes ([`write`], for the
//! projector), its search keys ([`search`]), what a scan is told ([`guidance`]), and its cache keys, shared by its projector (which invalidates) and
//! query-api (which caches).
//!
//! Every cached guide answer lives under the current *generation*: `{prefix}:guide:{gen}:{what}`.
//! The projector increments `{prefix}:guide:gen` after each commit that changed content, so all
//! cached answers are invalidated at once without scanning keys; the old ones expire by TTL.

use platform::redis::Redis;

pub mod catalogue;
pub mod guidance;
pub mod search;
pub mod write;

/// How long a cached guide answer lives.
pub const CACHE_TTL_SECS: u64 = 600;

/// The generation counter.
pub fn generation_key(redis: &Redis) -> String {
    redis.key("guide:gen")
}

/// Moves to the next generation: every cached guide answer is stale from now on.
pub async fn invalidate(redis: &Redis) -> anyhow::Result<i64> {
    let key = generation_key(redis);
    redis.run(move |mut c| async move { redis::cmd("INCR").arg(key).query_async::<i64>(&mut c).await }).await
}

/// The key of a cached answer `what` in generation `generation`.
pub fn cache_key(redis: &Redis, generation: i64, what: &str) -> String {
    redis.key(format_args!("guide:{generation}:{what}"))
}
