//! Request rate limits per route class, shared by every replica through Redis.
//!
//! | class | routes | counted per | setting (per minute) |
//! |---|---|---|---|
//! | `auth` | sign-up, sign-in, token refresh, account recovery, social login | client address | `RATE_LIMIT_AUTH_PER_MIN` (30) |
//! | `commands` | every other command (POST, PUT, PATCH, DELETE) | user, else client address | `RATE_LIMIT_COMMANDS_PER_MIN` (300) |
//! | `reads` | GET and HEAD | user, else client address | `RATE_LIMIT_READS_PER_MIN` (3000) |
//!
//! A fixed one-minute window per key (`INCR` and `EXPIRE` in one pipelined round trip). Every
//! answer under `/api/v1` carries `RateLimit-Policy` and `RateLimit` (IETF httpapi draft:
//! `"reads";q=3000;w=60` and `"reads";r=2999;t=42`); the request over the limit gets 429
//! problem+json with `Retry-After`. The user is the `sub` of a bearer token that verifies (the
//! verified claims are handed on to [`crate::auth::AuthUser`], so nothing is verified twice); a
//! token that does not verify counts against the client address.
//!
//! **While Redis is down the limits are not enforced** (fail open): every replica would
//! otherwise refuse all traffic for an outage of a cache. Each unenforced request is counted in
//! `rate_limit_unenforced_total`. The sign-in limits of `command-api` (per address and per
//! account back-off) behave the same way. A limit of 0 turns its class off.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{
    Settings,
    auth::{TokenType, VerifiedAccess, Verifier, bearer_token},
    error::ApiError,
    http::ClientIp,
    redis::Redis,
};

/// Length of a window.
const WINDOW_SECS: u64 = 60;

/// The class a request's route belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Sign-up, sign-in, refresh, recovery, social login.
    Auth,
    /// Every other command.
    Commands,
    /// Reads.
    Reads,
}

impl RouteClass {
    /// Classifies by method and path; `None` outside the API (`/health`, `/docs`, …).
    pub fn of(method: &Method, path: &str) -> Option<Self> {
        let api = path.strip_prefix("/api/v1/")?;
        if api.starts_with("auth/oauth/")
            || (api.starts_with("auth/") && *method == Method::POST && api != "auth/logout")
        {
            return Some(Self::Auth);
        }
        Some(if *method == Method::GET || *method == Method::HEAD { Self::Reads } else { Self::Commands })
    }

    /// The name in headers, keys and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Commands => "commands",
            Self::Reads => "reads",
        }
    }
}

/// The limits and what they need; the state of [`enforce`].
#[derive(Clone)]
pub struct RateLimits {
    redis: Redis,
    verifier: Arc<Verifier>,
    settings: Arc<Settings>,
}

impl RateLimits {
    /// Limits from `settings`, counted in `redis`.
    pub fn new(redis: Redis, verifier: Arc<Verifier>, settings: Arc<Settings>) -> Self {
        Self { redis, verifier, settings }
    }

    fn quota(&self, class: RouteClass) -> u64 {
        u64::from(match class {
            RouteClass::Auth => self.settings.rate_limit_auth_per_min,
            RouteClass::Commands => self.settings.rate_limit_commands_per_min,
            RouteClass::Reads => self.settings.rate_limit_reads_per_min,
        })
    }
}

/// Middleware: counts the request against its class and answers 429 over the limit.
pub async fn enforce(State(limits): State<RateLimits>, mut req: Request, next: Next) -> Response {
    let Some(class) = RouteClass::of(req.method(), req.uri().path()) else { return next.run(req).await };
    let quota = limits.quota(class);
    if quota == 0 {
        return next.run(req).await;
    }
    let user = match bearer_token(req.headers()).map(|t| limits.verifier.verify(t, TokenType::Access)) {
        Some(Ok(claims)) => {
            let sub = claims.sub;
            req.extensions_mut().insert(VerifiedAccess(claims));
            Some(sub)
        }
        _ => None,
    };
    let who = match (class, user) {
        (RouteClass::Auth, _) | (_, None) => {
            let (mut parts, body) = req.into_parts();
            let ClientIp(ip) = match <ClientIp as axum::extract::FromRequestParts<Arc<Settings>>>::from_request_parts(
                &mut parts,
                &limits.settings,
            )
            .await
            {
                Ok(ip) => ip,
                Err(never) => match never {},
            };
            req = Request::from_parts(parts, body);
            format!("ip:{ip}")
        }
        (_, Some(sub)) => format!("user:{sub}"),
    };
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let window = now / WINDOW_SECS;
    let reset = (window + 1) * WINDOW_SECS - now;
    let key = limits.redis.key(format_args!("rl:{}:{who}:{window}", class.name()));
    let counted = limits
        .redis
        .run(move |mut c| async move {
            deadpool_redis::redis::pipe()
                .cmd("INCR")
                .arg(&key)
                .cmd("EXPIRE")
                .arg(&key)
                .arg(WINDOW_SECS + 1)
                .ignore()
                .query_async::<(u64,)>(&mut c)
                .await
        })
        .await;
    let used = match counted {
        Ok((n,)) => n,
        Err(e) => {
            metrics::counter!("rate_limit_unenforced_total", "class" => class.name()).increment(1);
            tracing::debug!(
                error = format!("{e:#}"),
                class = class.name(),
                "rate limit not enforced: Redis unavailable"
            );
            return next.run(req).await;
        }
    };
    let mut response = if used > quota {
        metrics::counter!("rate_limited_total", "class" => class.name()).increment(1);
        ApiError::TooManyRequests { retry_after_secs: reset }.into_response()
    } else {
        next.run(req).await
    };
    let headers = response.headers_mut();
    let name = class.name();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{name}\";q={quota};w={WINDOW_SECS}")) {
        headers.insert("ratelimit-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{name}\";r={};t={reset}", quota.saturating_sub(used))) {
        headers.insert("ratelimit", v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fall_into_their_class() {
        let class = |m: Method, p: &str| RouteClass::of(&m, p);
        assert_eq!(class(Method::POST, "/api/v1/auth/login"), Some(RouteClass::Auth));
        assert_eq!(class(Method::POST, "/api/v1/auth/forgot-password"), Some(RouteClass::Auth));
        assert_eq!(class(Method::GET, "/api/v1/auth/oauth/kakao"), Some(RouteClass::Auth));
        assert_eq!(class(Method::POST, "/api/v1/auth/logout"), Some(RouteClass::Commands));
        assert_eq!(class(Method::POST, "/api/v1/scans"), Some(RouteClass::Commands));
        assert_eq!(class(Method::GET, "/api/v1/users/me"), Some(RouteClass::Reads));
        assert_eq!(class(Method::GET, "/health"), None);
    }
}
