//! Read-your-writes: waiting for the projections behind an endpoint to apply a command's events.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, request::Parts},
};
use platform::{
    consistency::{APPLIED_CHANNEL, ConsistencyToken, STATE_HEADER, TOKEN_HEADER},
    error::ApiError,
    topology::{ConsumerSpec, POINTS_POLICY},
};
use sqlx::{PgPool, postgres::PgListener};
use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;

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

/// Consumers that derive events from events (a scan's `points.earned` and `level.reached`,
/// recorded with the scan as their `causation_id`). A token covers what its events cause, so a
/// wait also needs each of these to have handled the token's events (their derived events exist
/// only then), and the projections to have applied those derived events in turn.
const DERIVING: &[&ConsumerSpec] = &[&POINTS_POLICY];

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
            let missing: i64 = sqlx::query_scalar(
                "with recursive caused(id) as (
                   select unnest($1::uuid[])
                   union
                   select e.id from eventstore.events e join caused c on e.causation_id = c.id
                 )
                 select count(*) from eventstore.events e
                 join caused c on c.id = e.id
                 join unnest($2::text[], $3::text[]) as p(projection, event_type) on p.event_type = e.type
                 where not exists (select 1 from projection.applied_events a where a.projection = p.projection and a.event_id = e.id)",
            )
            .bind(&token.event_ids)
            .bind(&projections)
            .bind(&types)
            .fetch_one(&state.db)
            .await?;
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

/// Wakes every waiting request whenever a projection commits, until `shutdown`.
pub async fn listen_for_projections(db: PgPool, applied: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        let mut listener = match PgListener::connect_with(&db).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for projection commits; waits fall back to polling");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        if let Err(e) = listener.listen(APPLIED_CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed");
            continue;
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                n = listener.recv() => match n {
                    Ok(_) => applied.notify_waiters(),
                    Err(e) => {
                        tracing::warn!(error = %e, "projection listener lost its connection");
                        break;
                    }
                }
            }
        }
    }
}
