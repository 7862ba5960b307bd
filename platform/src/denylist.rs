//! Access tokens refused before they expire (after logout), checked on every authenticated
//! request by both APIs.
//!
//! Redis holds `{prefix}:revoked:{jti}` with a TTL ending when the token would have expired.
//! PostgreSQL (`auth.revoked_access_tokens`) is the durable copy: after a Redis flush the
//! `{prefix}:revoked:ready` marker is gone, the check falls back to PostgreSQL and the set is
//! reloaded; while Redis is down every check goes to PostgreSQL. A revoked token is never
//! accepted just because Redis lost it.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::redis::Redis;

/// The revoked-token list.
#[derive(Clone)]
pub struct Denylist {
    /// Where revocations are recorded (the source of truth); pooled, shared by every request.
    db: PgPool,
    /// Where every request checks them (a mirror with TTLs); pooled, shared by every request.
    redis: Redis,
}

impl Denylist {
    /// A list stored in `db`, mirrored in `redis`.
    pub fn new(db: PgPool, redis: Redis) -> Self {
        Self { db, redis }
    }

    fn key(&self, jti: Uuid) -> String {
        self.redis.key(format_args!("revoked:{jti}"))
    }

    fn ready_key(&self) -> String {
        self.redis.key("revoked:ready")
    }

    /// Refuses `jti` until `expires_at`.
    pub async fn revoke(&self, jti: Uuid, user_id: Uuid, expires_at: DateTime<Utc>) -> anyhow::Result<()> {
        sqlx::query("insert into auth.revoked_access_tokens (jti, user_id, expires_at) values ($1, $2, $3) on conflict do nothing")
            .bind(jti)
            .bind(user_id)
            .bind(expires_at)
            .execute(&self.db)
            .await?;
        if let Err(e) = self.mirror(jti, expires_at).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "revoked token not mirrored to Redis; checks fall back to PostgreSQL"
            );
        }
        Ok(())
    }

    async fn mirror(&self, jti: Uuid, expires_at: DateTime<Utc>) -> anyhow::Result<()> {
        let ttl = (expires_at - Utc::now()).num_seconds().max(1);
        let key = self.key(jti);
        self.redis
            .run(move |mut c| async move {
                redis::cmd("SET").arg(key).arg("1").arg("EX").arg(ttl).query_async::<()>(&mut c).await
            })
            .await
    }

    /// Whether `jti` was revoked.
    pub async fn is_revoked(&self, jti: Uuid) -> anyhow::Result<bool> {
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
            "select exists (select 1 from auth.revoked_access_tokens where jti = $1 and expires_at > now())",
        )
        .bind(jti)
        .fetch_one(&self.db)
        .await?)
    }

    /// Copies every unexpired revocation into Redis and marks the set complete.
    async fn reload(&self) -> anyhow::Result<()> {
        /// A revoked access token.
        #[derive(sqlx::FromRow)]
        struct Revoked {
            jti: Uuid,
            expires_at: DateTime<Utc>,
        }
        let rows: Vec<Revoked> =
            sqlx::query_as("select jti, expires_at from auth.revoked_access_tokens where expires_at > now()")
                .fetch_all(&self.db)
                .await?;
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
