//! Read-your-writes: waiting for the projections behind an endpoint to apply a command's events.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, request::Parts},
};
use platform::{
    consistency::{APPLIED_CHANNEL, ConsistencyToken, STATE_HEADER, TOKEN_HEADER},
    denylist::{Pushed, REVOKED_CHANNEL},
    error::ApiError,
    redis::Redis,
    topology::{AVATARS, ConsumerSpec, POINTS_POLICY, REWARDS_POLICY},
};
use sqlx::{PgPool, postgres::PgListener};
use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::AppState;

/// The `X-Consistency-Token` of a request, if it sent one.
pub struct Consistency(pub Option<ConsistencyToken>);

impl<S: Send + Sync> FromRequestParts<S> for Consistency {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(TOKEN_HEADER) else { return Ok(Self(None)) };
        let token = value.to_str().ok().and_then(ConsistencyToken::decode).ok_or_else(|| {
            ApiError::bad_request("invalid_consistency_token", "X-Consistency-Token is not a token a command returned.")
        })?;
        Ok(Self(Some(token)))
    }
}

/// Whether the read that follows is known to include the token's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// No token was sent.
    Unknown,
    /// Every event of the token is applied.
    Fresh,
    /// The wait ran out first.
    Stale,
}

impl Freshness {
    /// Whether the caller must bypass caches (it sent a token).
    pub fn requires_primary(self) -> bool {
        self != Self::Unknown
    }

    /// The `X-Consistency` response header, when a token was sent.
    pub fn headers(self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = match self {
            Self::Unknown => return headers,
            Self::Fresh => "fresh",
            Self::Stale => "stale",
        };
        headers.insert(STATE_HEADER, HeaderValue::from_static(value));
        headers
    }
}

/// Consumers that derive events from events (a scan's `points.earned` and `level.reached`, its
/// `badge.earned` and `character.unlocked`, an avatar upload's `user.profile_updated`, recorded
/// with their cause as `causation_id`). A token covers what its events cause, so a
/// wait also needs each of these to have handled the token's events (their derived events exist
/// only then), and the projections to have applied those derived events in turn.
const DERIVING: &[&ConsumerSpec] = &[&POINTS_POLICY, &REWARDS_POLICY, &AVATARS];

impl Consistency {
    /// Waits until the projections of `specs` have applied the token's events **and the events
    /// they caused** (followed through `causation_id`, transitively, once every deriving
    /// consumer has handled them), or until the configured timeout. Each projection is waited
    /// on only for the event types it consumes.
    pub async fn wait(&self, state: &AppState, specs: &[&ConsumerSpec]) -> Result<Freshness, ApiError> {
        let Some(token) = &self.0 else { return Ok(Freshness::Unknown) };
        let mut projections = Vec::new();
        let mut types = Vec::new();
        for spec in specs.iter().chain(DERIVING) {
            for t in spec.bindings {
                projections.push(spec.projection.unwrap_or(spec.name));
                types.push(*t);
            }
        }
        let deadline = Instant::now() + state.settings.consistency_timeout;
        loop {
            // Registered before the check, so a commit between check and wait still wakes us.
            let notified = state.applied.notified();
            // One snapshot for the walk and the count: a derived event committed between them
            // would otherwise be missed while its cause already counts as handled.
            let mut snapshot = state.db.begin().await?;
            sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *snapshot).await?;
            let caused = caused_by(&mut snapshot, &token.event_ids).await?;
            let missing: i64 = sqlx::query_scalar(
                "select count(*) from eventstore.events e
                 join unnest($2::text[], $3::text[]) as p(projection, event_type) on p.event_type = e.type
                 where e.id = any($1)
                   and not exists (select 1 from projection.applied_events a where a.projection = p.projection and a.event_id = e.id)",
            )
            .bind(&caused)
            .bind(&projections)
            .bind(&types)
            .fetch_one(&mut *snapshot)
            .await?;
            snapshot.commit().await?;
            if missing == 0 {
                return Ok(Freshness::Fresh);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Freshness::Stale);
            }
            // Re-check at least every 50 ms in case a notification was missed.
            let _ = tokio::time::timeout((deadline - now).min(Duration::from_millis(50)), notified).await;
        }
    }
}

/// How many generations of caused events a wait follows (a scan causes `points.earned` and
/// `level.reached`: one generation; the bound only guards against a cycle in foreign data).
const MAX_GENERATIONS: usize = 8;

/// `ids` and every event they caused, transitively (through `causation_id`), as far as the log
/// holds them now. One indexed query per generation: a recursive CTE let the planner estimate
/// the closure at a fraction of the whole log and scan it, 150 ms at 190k events, seconds
/// under load.
async fn caused_by(db: &mut sqlx::PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    let mut all: Vec<Uuid> = ids.to_vec();
    let mut generation: Vec<Uuid> = ids.to_vec();
    for _ in 0..MAX_GENERATIONS {
        let next: Vec<Uuid> = sqlx::query_scalar("select id from eventstore.events where causation_id = any($1)")
            .bind(&generation)
            .fetch_all(&mut *db)
            .await?;
        generation = next.into_iter().filter(|id| !all.contains(id)).collect();
        if generation.is_empty() {
            break;
        }
        all.extend(&generation);
    }
    Ok(all)
}

/// Until `shutdown`: wakes every waiting request whenever a projection commits, and keeps the
/// revoked tokens announced to this process (loaded in full once `LISTEN` is in place, off
/// while the connection is lost, so checks then go to Redis).
pub async fn listen(
    db: PgPool,
    redis: Redis,
    applied: Arc<Notify>,
    revocations: Arc<Pushed>,
    shutdown: CancellationToken,
) {
    loop {
        let result = follow(&db, &redis, &applied, &revocations, &shutdown).await;
        revocations.beat(&redis, false).await;
        match result {
            Ok(()) => return,
            Err(e) => {
                revocations.lost();
                tracing::warn!(
                    error = format!("{e:#}"),
                    "not listening to PostgreSQL; waits poll, revocations are checked in Redis"
                );
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// How often the listening connection proves it still receives: it announces a ping on
/// [`REVOKED_CHANNEL`] through the pool and must hear it back before the next one. A connection
/// that silently stopped delivering (an idle connection cut by a NAT, a failover without a
/// reset) would otherwise leave revocations unseen.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// One listening connection, until it fails (`Err`) or `shutdown` (`Ok`).
async fn follow(
    db: &PgPool,
    redis: &Redis,
    applied: &Notify,
    revocations: &Pushed,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut listener = PgListener::connect_with(db).await?;
    listener.listen_all([APPLIED_CHANNEL, REVOKED_CHANNEL]).await?;
    revocations.load(db).await?;
    revocations.beat(redis, true).await;
    let me = Uuid::now_v7();
    let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
    let (mut sent, mut awaited) = (0u64, None::<String>);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = heartbeat.tick() => {
                if awaited.is_some() {
                    anyhow::bail!("the listening connection stopped delivering (a heartbeat did not come back)");
                }
                sent += 1;
                let ping = format!("{PING}{me} {sent}");
                let notify = sqlx::query("select pg_notify($1, $2)").bind(REVOKED_CHANNEL).bind(&ping).execute(db);
                tokio::time::timeout(HEARTBEAT_EVERY, notify).await??;
                awaited = Some(ping);
            }
            // `try_recv` says when the connection was lost (`recv` would reconnect silently and
            // drop what was announced meanwhile).
            n = listener.try_recv() => match n? {
                Some(n) if n.channel() == REVOKED_CHANNEL && n.payload().starts_with(PING) => {
                    if awaited.as_deref() == Some(n.payload()) {
                        awaited = None;
                        revocations.beat(redis, true).await;
                    }
                }
                Some(n) if n.channel() == REVOKED_CHANNEL => {
                    let Some(jti) = revocations.announced(n.payload()) else {
                        anyhow::bail!("an unreadable revocation announcement");
                    };
                    revocations.confirm(redis, jti).await;
                }
                Some(_) => applied.notify_waiters(),
                None => anyhow::bail!("the connection was lost"),
            }
        }
    }
}

/// What heartbeats on [`REVOKED_CHANNEL`] start with (then the listener's id and a counter).
const PING: &str = "ping ";
