//! query-api: the read side over REST (DESIGN §3), served from read models and Redis.
//!
//! Reads go to Redis first and fall back to PostgreSQL when the entry is missing or Redis is
//! down. A request carrying `X-Consistency-Token` first waits (bounded by
//! `CONSISTENCY_TIMEOUT_MS`) until the projections behind the endpoint applied the token's
//! events, then reads PostgreSQL directly, so what it returns is never older than those events.

mod consistency;
mod routes;

use std::sync::Arc;

use anyhow::Context;
use axum::{Router, extract::FromRef};
use platform::{
    Settings,
    auth::Verifier,
    denylist::Denylist,
    http::{BearerAuth, Readiness, docs_routes, ops_routes, request_context, serve},
    redis::Redis,
};
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// Default port.
pub const DEFAULT_PORT: u16 = 8082;

/// Shared by every handler.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// Read models.
    pub db: PgPool,
    /// Caches.
    pub redis: Redis,
    /// Verifies access tokens.
    pub verifier: Arc<Verifier>,
    /// Configuration.
    pub settings: Arc<Settings>,
    /// Signed-out access tokens.
    pub denylist: Denylist,
    /// Woken whenever a projection commits (PostgreSQL `LISTEN`).
    pub applied: Arc<Notify>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "EcoEco query API", description = "Queries of the EcoEco recycling app. Send a command's `X-Consistency-Token` to read your own writes. Errors are RFC 9457 problem+json."),
    components(schemas(platform::error::Problem, platform::error::FieldError)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// A built, bound, not yet running query-api.
pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl App {
    /// Connects, loads the verification keys and binds `BIND_ADDR` (port 0 for tests).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let db = platform::db::connect(&settings).await?;
        let redis = Redis::new(&settings)?;
        let verifier = Arc::new(Verifier::from_pem_bundle(&settings.jwt_public_keys_pem)?);
        let state = AppState {
            db: db.clone(),
            redis: redis.clone(),
            verifier,
            settings: settings.clone(),
            denylist: Denylist::new(db.clone(), redis.clone()),
            applied: Arc::new(Notify::new()),
        };
        let (api, spec) =
            OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", routes::router()).split_for_parts();
        let router = api
            .with_state(state.clone())
            .merge(docs_routes(spec))
            .merge(ops_routes(Readiness::new(db, redis, &settings.amqp_url)))
            .layer(axum::middleware::from_fn(request_context));
        let addr = settings.bind_addr_or(DEFAULT_PORT);
        let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        Ok(Self { listener, router, state })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown`, then drains in-flight requests.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tokio::spawn(consistency::listen_for_projections(
            self.state.db.clone(),
            self.state.applied.clone(),
            shutdown.clone(),
        ));
        tracing::info!(addr = %self.listener.local_addr()?, "query-api listening");
        serve(self.listener, self.router, shutdown).await.context("serving query-api")
    }
}
