//! What every HTTP surface shares: request ids, request spans and metrics, the operations
//! routes (`/health`, `/ready`, `/metrics`), the docs routes and graceful serving.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, StatusCode},
    middleware::Next,
    response::{Html, IntoResponse, Response},
    routing::get,
};
use lapin::Connection;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::{amqp, redis::Redis, telemetry};

/// The header carrying the request id, in and out.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: Uuid;
}

/// The id of the request being served on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(|id| id.to_string()).ok()
}

/// The request id, as an extension on every request. It is also the correlation id of every
/// event the request causes.
#[derive(Debug, Clone, Copy)]
pub struct RequestId(pub Uuid);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<RequestId>().copied().unwrap_or_else(|| RequestId(Uuid::now_v7())))
    }
}

/// Middleware: takes the caller's `x-request-id` when it is a UUID (so a client or gateway can
/// correlate), otherwise mints a v7; opens the request span; records
/// `http_requests_total` and `http_request_duration_seconds` by route and status; echoes the id.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_else(Uuid::now_v7);
    req.extensions_mut().insert(RequestId(id));
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let span = tracing::info_span!("http_request", request_id = %id, method = %method, route = %route);
    let started = Instant::now();
    let mut response = REQUEST_ID.scope(id, next.run(req)).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let labels = [("method", method.to_string()), ("route", route), ("status", status.to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    span.in_scope(|| tracing::info!(status, latency_ms = elapsed.as_secs_f64() * 1000.0, "request finished"));
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}

/// What `/ready` checks.
#[derive(Clone)]
pub struct Readiness {
    db: PgPool,
    redis: Redis,
    amqp_url: String,
    amqp: Arc<Mutex<Option<Connection>>>,
}

impl Readiness {
    /// Checks `db`, `redis` and the broker at `amqp_url`.
    pub fn new(db: PgPool, redis: Redis, amqp_url: &str) -> Self {
        Self { db, redis, amqp_url: amqp_url.to_owned(), amqp: Arc::default() }
    }

    async fn check_amqp(&self) -> anyhow::Result<()> {
        let mut conn = self.amqp.lock().await;
        if conn.as_ref().is_some_and(|c| c.status().connected()) {
            return Ok(());
        }
        *conn = Some(amqp::connect(&self.amqp_url, "readiness-probe").await?);
        Ok(())
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(r): State<Readiness>) -> Response {
    let limit = Duration::from_secs(2);
    let status = |res: Result<anyhow::Result<()>, tokio::time::error::Elapsed>| match res {
        Ok(Ok(())) => "up".to_owned(),
        Ok(Err(e)) => format!("down: {e:#}"),
        Err(_) => "down: timed out".to_owned(),
    };
    let (pg, redis, rabbit) = tokio::join!(
        tokio::time::timeout(limit, async {
            sqlx::query("select 1").execute(&r.db).await.map(|_| ()).map_err(Into::into)
        }),
        tokio::time::timeout(limit, r.redis.ping()),
        tokio::time::timeout(limit, r.check_amqp()),
    );
    let checks = json!({"postgres": status(pg), "redis": status(redis), "rabbitmq": status(rabbit)});
    let all_up = checks.as_object().is_some_and(|m| m.values().all(|v| v == "up"));
    let code = if all_up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(json!({"status": if all_up { "ready" } else { "not_ready" }, "checks": checks}))).into_response()
}

async fn metrics_text() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], telemetry::prometheus().render())
}

/// `/health`, `/ready` and `/metrics`.
pub fn ops_routes(readiness: Readiness) -> Router {
    // Install the recorder now, so metrics recorded before the first scrape are kept.
    telemetry::prometheus();
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(readiness)
        .route("/metrics", get(metrics_text))
}

/// `/openapi.json` and `/docs`: a ReDoc page rendering the spec. The page loads ReDoc's script
/// in the reader's browser; nothing is downloaded at build time.
pub fn docs_routes(spec: utoipa::openapi::OpenApi) -> Router {
    let title = spec.info.title.clone();
    let json = Arc::new(spec);
    let page = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="/openapi.json"></redoc>
<noscript>The machine-readable API description is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<script src="https://cdn.redoc.ly/redoc/latest/bundles/redoc.standalone.js"></script></body></html>"#
    );
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move { Json((*json).clone()) }
            }),
        )
        .route(
            "/docs",
            get(move || {
                let page = page.clone();
                async move { Html(page) }
            }),
        )
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// The client's IP address: from `TRUSTED_PROXY_HEADER` when one is configured (its last,
/// i.e. proxy-appended, entry), otherwise the TCP peer. A client-sent header is never trusted
/// unless the deployment says a proxy sets it.
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl<S> axum::extract::FromRequestParts<S> for ClientIp
where
    Arc<crate::Settings>: axum::extract::FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        let settings = <Arc<crate::Settings> as axum::extract::FromRef<S>>::from_ref(state);
        if let Some(header) = &settings.trusted_proxy_header
            && let Some(ip) = parts
                .headers
                .get_all(header.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .rfind(|v| !v.is_empty())
        {
            return Ok(Self(ip.to_owned()));
        }
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".to_owned());
        Ok(Self(peer))
    }
}

/// Adds the `bearer` security scheme (JWT access token) to an OpenAPI document.
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// An HTTP listener with everything every process serves: the API (if any), `/openapi.json`
/// and `/docs` (with a spec), `/health`, `/ready`, `/metrics`, and the request middleware.
pub struct Server {
    name: &'static str,
    listener: tokio::net::TcpListener,
    router: Router,
}

impl Server {
    /// Assembles the routes and binds `addr` (port 0 picks a free port).
    pub async fn bind(
        name: &'static str,
        addr: std::net::SocketAddr,
        api: Router,
        spec: Option<utoipa::openapi::OpenApi>,
        readiness: Readiness,
    ) -> anyhow::Result<Self> {
        let mut router = api.merge(ops_routes(readiness));
        if let Some(spec) = spec {
            router = router.merge(docs_routes(spec));
        }
        let router = router.layer(axum::middleware::from_fn(request_context));
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
        Ok(Self { name, listener, router })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown`, then drains in-flight requests.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.listener.local_addr()?, "{} listening", self.name);
        serve(self.listener, self.router, shutdown).await.map_err(|e| anyhow::anyhow!("serving {}: {e}", self.name))
    }
}
