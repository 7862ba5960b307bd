//! Access tokens refused before they expire (after logout), checked on every authenticated
//! request by both APIs.
//!
//! Redis holds `{prefix}:revoked:{jti}` with a TTL ending when the token would have expired.
//! PostgreSQL (`auth.revoked_access_tokens`) is the durable copy: after a Redis flush the
//! `{prefix}:revoked:ready` marker is gone, the check falls back to PostgreSQL and the set is
//! reloaded; while Redis is down every check goes to PostgreSQL. A revoked token is never
//! accepted just because Redis lost it.
//!
//! A process that listens for revocations ([`Pushed`]: query-api does) answers from memory
//! instead, without a round trip: each revocation is announced on [`REVOKED_CHANNEL`] in the
//! transaction that records it, and the listener loads the whole list after its `LISTEN` is in
//! place, so it misses none. While the listener is disconnected, checks go to Redis as above.
//! Each listener confirms what it records, and beats, in Redis; [`Denylist::revoke`] returns
//! once every live listener has confirmed (at most [`SEEN_WAIT`]), so a client's next request
//! after its logout is refused everywhere.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{auth::LEEWAY_SECS, redis::Redis};

/// The PostgreSQL channel a revocation is announced on, in the transaction that records it
/// (payload: `{jti} {expires_at as Unix seconds}`).
pub const REVOKED_CHANNEL: &str = "eco_token_revoked";

/// The revoked-token list.
#[derive(Clone)]
pub struct Denylist {
    /// Where revocations are recorded (the source of truth); pooled, shared by every request.
    db: PgPool,
    /// Where every request checks them (a mirror with TTLs); pooled, shared by every request.
    redis: Redis,
    /// The list pushed to this process, when it listens for revocations.
    pushed: Option<Arc<Pushed>>,
}

impl Denylist {
    /// A list stored in `db`, mirrored in `redis`.
    pub fn new(db: PgPool, redis: Redis) -> Self {
        Self { db, redis, pushed: None }
    }

    /// The same list, answered from `pushed` while its listener is connected.
    pub fn with_pushed(mut self, pushed: Arc<Pushed>) -> Self {
        self.pushed = Some(pushed);
        self
    }

    fn key(&self, jti: Uuid) -> String {
        self.redis.key(format_args!("revoked:{jti}"))
    }

    fn ready_key(&self) -> String {
        self.redis.key("revoked:ready")
    }

    /// Refuses `jti` until `expires_at`.
    pub async fn revoke(&self, jti: Uuid, user_id: Uuid, expires_at: DateTime<Utc>) -> anyhow::Result<()> {
        // One statement, so one transaction: the row and its announcement commit together.
        sqlx::query(
            "with revoked as (
                 insert into auth.revoked_access_tokens (jti, user_id, expires_at) values ($1, $2, $3)
                 on conflict do nothing
             )
             select pg_notify($4, $1::text || ' ' || extract(epoch from $3::timestamptz)::bigint)",
        )
        .bind(jti)
        .bind(user_id)
        .bind(expires_at)
        .bind(REVOKED_CHANNEL)
        .execute(&self.db)
        .await?;
        if let Err(e) = self.mirror(jti, expires_at).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "revoked token not mirrored to Redis; checks fall back to PostgreSQL"
            );
            return Ok(());
        }
        self.await_seen(jti).await;
        Ok(())
    }

    /// Waits, at most [`SEEN_WAIT`], until every live listener ([`Pushed`]) has recorded the
    /// revocation, so the caller's next request is refused by every instance. An instance whose
    /// listener stopped beating is not waited for: it checks Redis instead.
    async fn await_seen(&self, jti: Uuid) {
        let (listeners, seen) = (listeners_key(&self.redis), seen_key(&self.redis, jti));
        let deadline = tokio::time::Instant::now() + SEEN_WAIT;
        loop {
            let live_since = Utc::now().timestamp_millis() - LISTENER_STALE_MS;
            let (l, s) = (listeners.clone(), seen.clone());
            let counted: anyhow::Result<(i64, i64)> = self
                .redis
                .run(move |mut c| async move {
                    redis::pipe()
                        .cmd("ZCOUNT")
                        .arg(l)
                        .arg(live_since)
                        .arg("+inf")
                        .cmd("SCARD")
                        .arg(s)
                        .query_async(&mut c)
                        .await
                })
                .await;
            match counted {
                Ok((live, seen)) if seen < live => {}
                _ => return,
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(%jti, "not every query-api instance confirmed the revocation in time");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    async fn mirror(&self, jti: Uuid, expires_at: DateTime<Utc>) -> anyhow::Result<()> {
        let ttl = (expires_at - Utc::now()).num_seconds().max(0) + LEEWAY_SECS;
        let key = self.key(jti);
        self.redis
            .run(move |mut c| async move {
                redis::cmd("SET").arg(key).arg("1").arg("EX").arg(ttl).query_async::<()>(&mut c).await
            })
            .await
    }

    /// Whether `jti` was revoked.
    pub async fn is_revoked(&self, jti: Uuid) -> anyhow::Result<bool> {
        if let Some(revoked) = self.pushed.as_ref().and_then(|p| p.check(jti)) {
            return Ok(revoked);
        }
        let (ready_key, key) = (self.ready_key(), self.key(jti));
        let fast: anyhow::Result<(bool, bool)> = self
            .redis
            .run(move |mut c| async move { redis::pipe().exists(ready_key).exists(key).query_async(&mut c).await })
            .await;
        match fast {
            Ok((true, revoked)) => Ok(revoked),
            Ok((false, _)) => {
                let revoked = self.in_database(jti).await?;
                if let Err(e) = self.reload().await {
                    tracing::debug!(error = format!("{e:#}"), "revoked tokens not reloaded into Redis");
                }
                Ok(revoked)
            }
            Err(e) => {
                tracing::debug!(error = format!("{e:#}"), "token denylist from PostgreSQL: Redis unavailable");
                self.in_database(jti).await
            }
        }
    }

    async fn in_database(&self, jti: Uuid) -> anyhow::Result<bool> {
        Ok(sqlx::query_scalar(
            "select exists (select 1 from auth.revoked_access_tokens where jti = $1 and expires_at > now() - make_interval(secs => $2))",
        )
        .bind(jti)
        .bind(LEEWAY_SECS as f64)
        .fetch_one(&self.db)
        .await?)
    }

    /// Copies every unexpired revocation into Redis and marks the set complete.
    async fn reload(&self) -> anyhow::Result<()> {
        let rows = unexpired(&self.db).await?;
        for row in &rows {
            self.mirror(row.jti, row.expires_at).await?;
        }
        let ready = self.ready_key();
        self.redis
            .run(move |mut c| async move { redis::cmd("SET").arg(ready).arg("1").query_async::<()>(&mut c).await })
            .await?;
        Ok(())
    }
}

/// A revoked access token.
#[derive(sqlx::FromRow)]
struct Revoked {
    jti: Uuid,
    expires_at: DateTime<Utc>,
}

/// Every revocation still refused (through the verifier's leeway past expiry).
async fn unexpired(db: &PgPool) -> sqlx::Result<Vec<Revoked>> {
    sqlx::query_as(
        "select jti, expires_at from auth.revoked_access_tokens where expires_at > now() - make_interval(secs => $1)",
    )
    .bind(LEEWAY_SECS as f64)
    .fetch_all(db)
    .await
}

/// How long a revocation waits for the listeners to confirm it.
const SEEN_WAIT: std::time::Duration = std::time::Duration::from_millis(500);
/// A listener whose last heartbeat is older than this is not waited for.
const LISTENER_STALE_MS: i64 = 6_000;

/// Live listeners: a sorted set of instance → last heartbeat (Unix milliseconds).
fn listeners_key(redis: &Redis) -> String {
    redis.key("revoked:listeners")
}

/// The listeners that recorded `jti`.
fn seen_key(redis: &Redis, jti: Uuid) -> String {
    redis.key(format_args!("revoked:seen:{jti}"))
}

/// The revoked tokens pushed to this process (see the module docs). It confirms each
/// revocation it records, and beats while it listens, in Redis, so a revocation returns only
/// once every live listener has it.
#[derive(Debug)]
pub struct Pushed {
    /// This listener, in the confirmations.
    instance: Uuid,
    /// Whether the listener is connected and has loaded the list.
    live: AtomicBool,
    /// jti → expiry (Unix seconds). Read by every request, written by announcements.
    revoked: RwLock<HashMap<Uuid, i64>>,
}

impl Default for Pushed {
    fn default() -> Self {
        Self { instance: Uuid::now_v7(), live: AtomicBool::new(false), revoked: RwLock::default() }
    }
}

impl Pushed {
    /// Whether `jti` is revoked; `None` while the listener is not connected.
    pub fn check(&self, jti: Uuid) -> Option<bool> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let revoked = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        Some(revoked.get(&jti).is_some_and(|exp| exp + LEEWAY_SECS > Utc::now().timestamp()))
    }

    /// Loads every unexpired revocation and goes live; call once `LISTEN` is in place.
    pub async fn load(&self, db: &PgPool) -> sqlx::Result<()> {
        let rows = unexpired(db).await?;
        let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        *revoked = rows.into_iter().map(|r| (r.jti, r.expires_at.timestamp())).collect();
        self.live.store(true, Ordering::Release);
        Ok(())
    }

    /// Records an announcement (a [`REVOKED_CHANNEL`] payload); forgets expired entries now
    /// and then. A payload that does not parse turns the list off until the next [`Self::load`]
    /// and answers `false` (it cannot happen with our own announcements, and a guess could
    /// accept a revoked token).
    pub fn announced(&self, payload: &str) -> Option<Uuid> {
        let parsed =
            payload.split_once(' ').and_then(|(jti, exp)| Some((Uuid::parse_str(jti).ok()?, exp.parse::<i64>().ok()?)));
        let Some((jti, exp)) = parsed else {
            tracing::warn!(payload, "unreadable revocation announcement; checking revocations in Redis until reloaded");
            self.lost();
            return None;
        };
        let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        revoked.insert(jti, exp);
        if revoked.len().is_power_of_two() {
            let now = Utc::now().timestamp();
            revoked.retain(|_, exp| *exp + LEEWAY_SECS > now);
        }
        Some(jti)
    }

    /// Confirms in Redis that this listener recorded `jti` (best effort: an unconfirmed
    /// revocation only makes its logout wait [`SEEN_WAIT`]).
    pub async fn confirm(&self, redis: &Redis, jti: Uuid) {
        let (key, instance) = (seen_key(redis, jti), self.instance.to_string());
        let done = redis
            .run(move |mut c| async move {
                redis::pipe()
                    .cmd("SADD")
                    .arg(&key)
                    .arg(instance)
                    .ignore()
                    .cmd("EXPIRE")
                    .arg(&key)
                    .arg(60)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
        if let Err(e) = done {
            tracing::debug!(error = format!("{e:#}"), "revocation not confirmed");
        }
    }

    /// Records in Redis that this listener is live (its heartbeat came back), or, with
    /// `live` false, that it is not; forgets listeners long gone.
    pub async fn beat(&self, redis: &Redis, live: bool) {
        let (key, instance) = (listeners_key(redis), self.instance.to_string());
        let now = Utc::now().timestamp_millis();
        let done = redis
            .run(move |mut c| async move {
                let mut pipe = redis::pipe();
                if live {
                    pipe.cmd("ZADD").arg(&key).arg(now).arg(&instance).ignore();
                } else {
                    pipe.cmd("ZREM").arg(&key).arg(&instance).ignore();
                }
                pipe.cmd("ZREMRANGEBYSCORE").arg(&key).arg("-inf").arg(now - 10 * LISTENER_STALE_MS).ignore();
                pipe.query_async::<()>(&mut c).await
            })
            .await;
        if let Err(e) = done {
            tracing::debug!(error = format!("{e:#}"), "revocation listener heartbeat not recorded");
        }
    }

    /// The listener lost its connection: answers come from Redis until the next [`Self::load`].
    pub fn lost(&self) {
        self.live.store(false, Ordering::Release);
    }
}
