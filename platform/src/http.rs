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
    response::{IntoResponse, Response},
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

use crate::request_id::REQUEST_ID;
pub use crate::request_id::current_request_id;

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

/// Which dependencies a process cannot serve without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// An API: PostgreSQL. It answers from PostgreSQL while Redis is down, and command-api
    /// never talks to the broker, so those outages are reported as `degraded`, not unready:
    /// a short cache or broker outage must not take every API pod out of its Service.
    Postgres,
    /// A workers process: PostgreSQL and RabbitMQ (it consumes and publishes); Redis is only
    /// its caches' target.
    PostgresAndBroker,
}

/// What `/ready` checks, and what it needs to answer 200.
#[derive(Clone)]
pub struct Readiness {
    /// The service's own pool; a probe borrows one connection for `select 1`.
    db: PgPool,
    /// The service's Redis pool; a probe borrows one connection for `PING`.
    redis: Redis,
    /// Where the broker is, for the probe's connection below.
    amqp_url: String,
    /// The probe's own broker connection, opened on the first check and reused while it stays
    /// connected; the mutex keeps concurrent probes from opening several.
    amqp: Arc<Mutex<Option<Connection>>>,
    /// Which dependencies make the service ready; fixed at start.
    needs: Needs,
}

impl Readiness {
    /// Checks `db`, `redis` and the broker at `amqp_url`; ready when what `needs` names is up.
    pub fn new(db: PgPool, redis: Redis, amqp_url: &str, needs: Needs) -> Self {
        Self { db, redis, amqp_url: amqp_url.to_owned(), amqp: Arc::default(), needs }
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
    let (pg, redis, rabbit) = (status(pg), status(redis), status(rabbit));
    let required = |name: &str| name == "postgres" || (name == "rabbitmq" && r.needs == Needs::PostgresAndBroker);
    let mut ready = true;
    let mut degraded = false;
    let mut checks = serde_json::Map::new();
    for (name, state) in [("postgres", pg), ("redis", redis), ("rabbitmq", rabbit)] {
        let up = state == "up";
        metrics::gauge!("dependency_up", "dependency" => name).set(if up { 1.0 } else { 0.0 });
        if !up && required(name) {
            ready = false;
        } else if !up {
            degraded = true;
        }
        checks.insert(name.to_owned(), json!(state));
    }
    let (code, status) = match (ready, degraded) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        (true, true) => (StatusCode::OK, "degraded"),
        (true, false) => (StatusCode::OK, "ready"),
    };
    (code, Json(json!({"status": status, "checks": checks}))).into_response()
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

/// `/openapi.json` and `/docs`: Swagger UI rendering the spec, with every asset compiled into
/// the binary (`utoipa-swagger-ui`'s vendored bundle), so the page works with no internet and
/// nothing is fetched at build or view time.
pub fn docs_routes(spec: serde_json::Value) -> Router {
    utoipa_swagger_ui::SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", spec).into()
}

/// Limits on every HTTP connection (settings `HTTP_*`).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// `HTTP_HEADER_READ_TIMEOUT_MS`: a request's headers must arrive within this time of the
    /// connection opening or of the previous response (so it also closes an idle keep-alive
    /// connection that starts no new request). Slow-header ("slowloris") clients are cut off.
    pub header_read_timeout: Duration,
    /// `HTTP_IDLE_TIMEOUT_MS`: a connection on which no byte moved either way for this long is
    /// closed, whatever state it is in (a stalled request body, say).
    pub idle_timeout: Duration,
    /// `HTTP_MAX_HEADER_BYTES`: request line and headers larger than this are refused with a
    /// problem+json 431. (hyper itself cuts connections at four times this, with a bare 431.)
    pub max_header_bytes: usize,
}

impl HttpLimits {
    /// The limits `settings` asks for.
    pub fn from_settings(settings: &crate::Settings) -> Self {
        Self {
            header_read_timeout: settings.http_header_read_timeout,
            idle_timeout: settings.http_idle_timeout,
            max_header_bytes: settings.http_max_header_bytes,
        }
    }
}

/// Most headers a request may carry before it gets a problem+json 431.
const MAX_HEADERS: usize = 100;

/// Serves `router` on `listener` until `shutdown` is cancelled, then drains in-flight requests
/// (each connection finishes its current request; idle ones close at once).
///
/// A hand-rolled accept loop over hyper rather than `axum::serve`, for what axum's does not
/// expose: the header-read timeout, the idle timeout and the header size limits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use hyper_util::{
        rt::{TokioExecutor, TokioIo, TokioTimer},
        server::{conn::auto, graceful::GracefulShutdown},
        service::TowerToHyperService,
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(MAX_HEADERS * 4)
        .max_buf_size((limits.max_header_bytes * 4).max(8192));
    builder.http2().timer(TokioTimer::new()).max_header_list_size((limits.max_header_bytes * 4) as u32);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let (stream, last_io) = idle::Watched::new(stream);
        let router = router.clone();
        let service = TowerToHyperService::new(tower::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(axum::extract::ConnectInfo(remote));
            let router = router.clone();
            async move { tower::ServiceExt::oneshot(router, req.map(axum::body::Body::new)).await }
        }));
        let conn = graceful.watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned());
        let idle_timeout = limits.idle_timeout;
        tokio::spawn(async move {
            tokio::select! {
                result = conn => if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                },
                () = idle::expired(last_io, idle_timeout) => tracing::debug!("idle connection closed"),
            }
        });
    }
    drop(listener);
    // Lame duck: connections already open keep being served for a moment before the graceful
    // shutdown closes the idle ones. A client that took an idle keep-alive connection from its
    // pool just before the load balancer (or the caller) moved on would otherwise have its
    // request cut off mid-flight. Then requests in flight finish with `Connection: close` and
    // idle connections close.
    tokio::time::sleep(LAME_DUCK).await;
    graceful.shutdown().await;
    Ok(())
}

/// How long a stopping server keeps serving the connections it has (see [`serve`]).
const LAME_DUCK: Duration = Duration::from_millis(300);

/// Connection idleness: the time of the last byte read or written.
mod idle {
    use std::{
        pin::Pin,
        sync::{
            Arc,
            atomic::{AtomicU64, Ordering},
        },
        task::{Context, Poll},
        time::{Duration, Instant},
    };

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// Milliseconds since `EPOCH` of the last I/O on a connection.
    pub type LastIo = Arc<AtomicU64>;

    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

    fn now_ms() -> u64 {
        EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
    }

    /// A stream that stamps [`LastIo`] on every read and write that moves bytes.
    pub struct Watched<S> {
        inner: S,
        last: LastIo,
    }

    impl<S> Watched<S> {
        pub fn new(inner: S) -> (Self, LastIo) {
            let last = Arc::new(AtomicU64::new(now_ms()));
            (Self { inner, last: last.clone() }, last)
        }
    }

    /// Resolves once nothing moved on the connection for `limit`.
    pub async fn expired(last: LastIo, limit: Duration) {
        let limit_ms = limit.as_millis() as u64;
        loop {
            let quiet = now_ms().saturating_sub(last.load(Ordering::Relaxed));
            if quiet >= limit_ms {
                return;
            }
            tokio::time::sleep(Duration::from_millis(limit_ms - quiet)).await;
        }
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let before = buf.filled().len();
            let result = Pin::new(&mut self.inner).poll_read(cx, buf);
            if buf.filled().len() > before {
                self.last.store(now_ms(), Ordering::Relaxed);
            }
            result
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
            let result = Pin::new(&mut self.inner).poll_write(cx, buf);
            if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
                self.last.store(now_ms(), Ordering::Relaxed);
            }
            result
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }
}

/// Middleware: every error response is problem+json. Handlers answer with [`ApiError`]
/// already; this catches what the router and the layers answer by themselves (404 for an
/// unknown route, 405 with its `Allow` header, 413 from the body limit, 415) and refuses
/// oversized headers with 431 before any handler runs.
pub async fn problem_responses(req: Request, next: Next) -> Response {
    let header_bytes: usize = req.uri().to_string().len()
        + req.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum::<usize>();
    let limit = req.extensions().get::<HttpLimits>().map_or(usize::MAX, |l| l.max_header_bytes);
    if header_bytes > limit || req.headers().len() > MAX_HEADERS {
        return problem(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("The request's headers are too large: at most {limit} bytes and {MAX_HEADERS} fields."),
        );
    }
    let response = next.run(req).await;
    let status = response.status();
    // A JSON body is deliberate (problem+json from a handler, `/ready`'s report); what the
    // router and the layers answer by themselves is empty or plain text.
    let is_json = response.headers().get(axum::http::header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/problem+json") || v.as_bytes().starts_with(b"application/json")
    });
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("route_not_found", "No such endpoint; see /openapi.json.".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = response.headers().get(axum::http::header::ALLOW).and_then(|v| v.to_str().ok());
            (
                "method_not_allowed",
                format!("This endpoint does not accept that method; it allows {}.", allow.unwrap_or("other methods")),
            )
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("payload_too_large", "The body is larger than this endpoint accepts.".to_owned())
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "This content type is not accepted here.".to_owned())
        }
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "The request took too long to arrive.".to_owned()),
        other => ("http_error", other.canonical_reason().unwrap_or("Error").to_owned()),
    };
    let mut fixed = problem(status, code, detail);
    for name in [axum::http::header::ALLOW, axum::http::header::RETRY_AFTER] {
        if let Some(v) = response.headers().get(&name) {
            fixed.headers_mut().insert(name, v.clone());
        }
    }
    fixed
}

/// A problem+json response for a status the router or a layer produced.
fn problem(status: StatusCode, code: &'static str, detail: String) -> Response {
    crate::error::ApiError::Http { status, code, detail }.into_response()
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
    limits: HttpLimits,
}

impl Server {
    /// Assembles the routes and binds `addr` (port 0 picks a free port).
    pub async fn bind(
        name: &'static str,
        addr: std::net::SocketAddr,
        limits: HttpLimits,
        api: Router,
        spec: Option<utoipa::openapi::OpenApi>,
        readiness: Readiness,
    ) -> anyhow::Result<Self> {
        let mut router = api.merge(ops_routes(readiness));
        if let Some(spec) = spec {
            router = router.merge(docs_routes(crate::openapi::complete(&spec)));
        }
        let router = router
            .layer(axum::middleware::from_fn(problem_responses))
            .layer(axum::Extension(limits))
            .layer(axum::middleware::from_fn(request_context));
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
        Ok(Self { name, listener, router, limits })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown`, then drains in-flight requests.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.listener.local_addr()?, "{} listening", self.name);
        serve(self.listener, self.router, self.limits, shutdown)
            .await
            .map_err(|e| anyhow::anyhow!("serving {}: {e}", self.name))
    }
}
