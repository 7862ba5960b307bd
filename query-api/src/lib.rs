//! query-api: the read side over REST (DESIGN §3), served from read models and Redis.
//!
//! Reads go to Redis first and fall back to PostgreSQL when the entry is missing or Redis is
//! down. A request carrying `X-Consistency-Token` first waits (bounded by
//! `CONSISTENCY_TIMEOUT_MS`) until the projections behind the endpoint applied the token's
//! events, then reads PostgreSQL directly, so what it returns is never older than those events.

mod consistency;
pub mod geocoding;
mod local;
pub(crate) mod routes;

use std::sync::Arc;

use axum::extract::FromRef;
use platform::{
    Settings,
    auth::Verifier,
    denylist::{self, Denylist},
    http::{BearerAuth, HttpLimits, Needs, Readiness, Server},
    ratelimit::{self, RateLimits},
    redis::Redis,
};
use sqlx::PgPool;
use tokio::sync::Notify;
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
    /// Signed-out access tokens (answered from memory while their announcements are received).
    pub denylist: Denylist,
    /// The revocations announced to this process.
    pub revocations: Arc<denylist::Pushed>,
    /// Hot reads held in memory, evicted by pushed read-model changes.
    pub hot: Arc<local::LocalReads>,
    /// Woken whenever a projection commits (PostgreSQL `LISTEN`).
    pub applied: Arc<Notify>,
    /// The Kakao Local API client.
    pub kakao: Arc<geocoding::Kakao>,
    /// Answers keyed by what anonymous clients send (search queries, ids, cursors), as JSON:
    /// kept in this process, at most [`LOCAL_CACHE_ENTRIES`], so no client can grow Redis.
    pub local_cache: Arc<quick_cache::sync::Cache<String, Arc<str>>>,
    /// Object storage (avatar renditions).
    pub store: platform::storage::Store,
}

/// Entries of [`AppState::local_cache`] (least recently used ones go first).
pub const LOCAL_CACHE_ENTRIES: usize = 10_000;

#[derive(OpenApi)]
#[openapi(
    info(title = "EcoEco query API", description = "Queries of the EcoEco recycling app. Send a command's `X-Consistency-Token` to read your own writes. Errors are RFC 9457 problem+json."),
    components(schemas(platform::error::Problem, platform::error::FieldError)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// A built, bound, not yet running query-api.
pub struct App {
    server: Server,
    state: AppState,
}

impl App {
    /// Connects, loads the verification keys and binds `BIND_ADDR` (port 0 for tests).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let db = platform::db::connect(&settings).await?;
        let redis = Redis::new(&settings)?;
        let verifier = Arc::new(Verifier::from_pem_bundle(&settings.jwt_public_keys_pem)?);
        let revocations = Arc::new(denylist::Pushed::default());
        let state = AppState {
            db: db.clone(),
            redis: redis.clone(),
            verifier,
            settings: settings.clone(),
            denylist: Denylist::new(db.clone(), redis.clone()).with_pushed(revocations.clone()),
            revocations,
            hot: Arc::new(local::LocalReads::default()),
            applied: Arc::new(Notify::new()),
            kakao: Arc::new(geocoding::Kakao::new(&settings)?),
            local_cache: Arc::new(quick_cache::sync::Cache::new(LOCAL_CACHE_ENTRIES)),
            store: platform::storage::open(&settings)?,
        };
        let (api, mut spec) =
            OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", routes::router()).split_for_parts();
        platform::openapi::require_a_property(&mut spec, &["UnlockRule"]);
        let limits = RateLimits::new(redis.clone(), state.verifier.clone(), settings.clone());
        let api = api.with_state(state.clone()).layer(axum::middleware::from_fn_with_state(limits, ratelimit::enforce));
        let readiness = Readiness::new(db, redis, &settings.amqp_url, Needs::Postgres);
        let addr = settings.bind_addr_or(DEFAULT_PORT);
        let http = HttpLimits::from_settings(&settings);
        let server = Server::bind("query-api", addr, http, api, Some(spec), readiness).await?;
        Ok(Self { server, state })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Serves until `shutdown`, then drains in-flight requests. The listeners get a moment to say
    /// goodbye (so revocations stop waiting for this instance) and are then dropped.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(consistency::listen(
            self.state.db.clone(),
            self.state.redis.clone(),
            self.state.applied.clone(),
            self.state.revocations.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(self.state.hot.clone().subscribe(
            self.state.settings.redis_url.clone(),
            self.state.redis.clone(),
            shutdown.clone(),
        ));
        let (served, supervised) = tokio::join!(
            self.server.run(shutdown.clone()),
            platform::shutdown::supervise(tasks, shutdown, std::time::Duration::from_secs(2))
        );
        served.and(supervised)
    }
}
