//! Retention: expired sessions, revoked access tokens, e-mail tokens, OAuth states and sent mail
//! are deleted on a schedule (README "What is kept, and for how long").
//!
//! Every workers process runs [`run`]; each round takes a transaction-scoped advisory lock
//! first, so replicas never purge at once (a replica that finds it taken skips the round).
//! Deletes go in chunks of [`CHUNK`] rows, so a large backlog never holds long locks.

use std::time::Duration;

use chrono::{DateTime, Utc};
use platform::{Settings, auth::LEEWAY_SECS};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Rows per delete statement.
const CHUNK: i64 = 5_000;

/// How long each kind of row is kept past its end (settings `RETENTION_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Refresh tokens, after they expired (`RETENTION_SESSIONS_DAYS`, default 7): long enough
    /// to answer "was this session ours" questions, never needed to refuse one.
    pub sessions: Duration,
    /// E-mail tokens, after they were used or expired (`RETENTION_EMAIL_TOKENS_DAYS`, default 1).
    pub email_tokens: Duration,
    /// Mail records (the mailer erases the address and link at sending), after sending, or
    /// after queueing for mail never sent (parked: its link expired long before)
    /// (`RETENTION_SENT_MAIL_DAYS`, default 7).
    pub sent_mail: Duration,
}

impl Policy {
    /// The policy of `settings`.
    pub fn of(settings: &Settings) -> Self {
        Self {
            sessions: settings.retention_sessions,
            email_tokens: settings.retention_email_tokens,
            sent_mail: settings.retention_sent_mail,
        }
    }
}

/// What one purge deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    /// Refresh tokens.
    pub sessions: u64,
    /// Access-token revocations past the tokens' expiry.
    pub revoked_tokens: u64,
    /// E-mail verification and password-reset tokens.
    pub email_tokens: u64,
    /// OAuth sign-in states.
    pub oauth_states: u64,
    /// Sent mail.
    pub sent_mail: u64,
}

impl Purged {
    /// Every kind with its count, for logs, metrics and `ecoctl`.
    pub fn counts(&self) -> [(&'static str, u64); 5] {
        [
            ("sessions", self.sessions),
            ("revoked_tokens", self.revoked_tokens),
            ("email_tokens", self.email_tokens),
            ("oauth_states", self.oauth_states),
            ("sent_mail", self.sent_mail),
        ]
    }
}

/// `keep` before `now` (the beginning of time for a keep longer than history).
fn before(now: DateTime<Utc>, keep: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(keep)
        .ok()
        .and_then(|keep| now.checked_sub_signed(keep))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Deletes, in chunks, the rows of `table` matching `condition` (which binds `$1`, a time). The
/// condition is checked again on the rows themselves, in case one changed since it was picked.
async fn delete(db: &PgPool, table: &str, condition: &str, cutoff: DateTime<Utc>) -> sqlx::Result<u64> {
    let sql = format!(
        "delete from {table} where ctid = any(array(select ctid from {table} where {condition} limit {CHUNK}))
           and ({condition})"
    );
    let mut total = 0;
    loop {
        let n = sqlx::query(&sql).bind(cutoff).execute(db).await?.rows_affected();
        total += n;
        if n < CHUNK as u64 {
            return Ok(total);
        }
    }
}

/// Deletes everything `policy` no longer keeps at `now`.
pub async fn purge(db: &PgPool, policy: Policy, now: DateTime<Utc>) -> sqlx::Result<Purged> {
    Ok(Purged {
        sessions: delete(db, "auth.refresh_tokens", "expires_at < $1", before(now, policy.sessions)).await?,
        // Refused until 30 s past expiry (the verifier's leeway), so kept that long.
        revoked_tokens: delete(
            db,
            "auth.revoked_access_tokens",
            "expires_at < $1",
            before(now, Duration::from_secs(LEEWAY_SECS.unsigned_abs())),
        )
        .await?,
        email_tokens: delete(
            db,
            "auth.email_tokens",
            "(used_at is not null and used_at < $1) or expires_at < $1",
            before(now, policy.email_tokens),
        )
        .await?,
        oauth_states: delete(db, "auth.oauth_states", "expires_at < $1", now).await?,
        sent_mail: delete(db, "auth.mail_outbox", "coalesce(sent_at, created_at) < $1", before(now, policy.sent_mail))
            .await?,
    })
}

/// Purges every `RETENTION_INTERVAL_SECS` (the first round a minute after start) until
/// `shutdown`, one replica per round; never when the interval is 0.
pub async fn run(settings: Settings, db: PgPool, shutdown: CancellationToken) {
    if settings.retention_interval.is_zero() {
        tracing::info!("retention off (RETENTION_INTERVAL_SECS=0): nothing expired is deleted");
        return;
    }
    let policy = Policy::of(&settings);
    let mut first = true;
    loop {
        let wait =
            if first { settings.retention_interval.min(Duration::from_secs(60)) } else { settings.retention_interval };
        first = false;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match round(&db, policy).await {
            Ok(Some(purged)) => {
                for (what, n) in purged.counts() {
                    metrics::counter!("retention_purged_total", "what" => what).increment(n);
                }
                if purged != Purged::default() {
                    tracing::info!(?purged, "retention: expired rows deleted");
                }
            }
            Ok(None) => tracing::debug!("retention: another replica is purging"),
            Err(e) => tracing::warn!(error = %e, "retention purge failed; trying again next round"),
        }
    }
}

/// One round under the lock; `None` when another replica holds it.
async fn round(db: &PgPool, policy: Policy) -> sqlx::Result<Option<Purged>> {
    let mut lock = db.begin().await?;
    let got: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock(hashtext('ecoeco.retention'))")
        .fetch_one(&mut *lock)
        .await?;
    if !got {
        return Ok(None);
    }
    let purged = purge(db, policy, Utc::now()).await?;
    lock.commit().await?;
    Ok(Some(purged))
}
