//! command-api: the write side over REST (DESIGN §3).
//!
//! A command is checked by a pure function in [`domain`]; the handler then writes the state
//! change and the resulting events in one PostgreSQL transaction ([`platform::eventstore`]) and
//! answers with an `X-Consistency-Token`. Publishing is the relay's job, so this process never
//! talks to RabbitMQ and keeps accepting commands while the broker is down.

pub mod content;
pub mod domain;
pub mod limits;
mod password;
mod routes;
pub mod services;

use std::sync::Arc;

use anyhow::Context;
use axum::extract::FromRef;
use platform::{
    Settings,
    auth::{Signer, Verifier},
    denylist::Denylist,
    http::{BearerAuth, HttpLimits, Needs, Readiness, Server},
    ratelimit::{self, RateLimits},
    redis::Redis,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// The name this service puts in the `source` of its events.
pub const SOURCE: &str = "command-api";
/// Default port.
pub const DEFAULT_PORT: u16 = 8081;

/// Shared by every handler.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// The write database.
    pub db: PgPool,
    /// Transactions that record events (their commit wakes the relay).
    pub outbox: platform::eventstore::Outbox,
    /// Rate limits, denylist.
    pub redis: Redis,
    /// Signs tokens.
    pub signer: Arc<Signer>,
    /// Verifies tokens, publishes the JWKS.
    pub verifier: Arc<Verifier>,
    /// Configuration.
    pub settings: Arc<Settings>,
    /// Signed-out access tokens.
    pub denylist: Denylist,
    /// Calls to social-login providers (10 s timeout).
    pub http: reqwest::Client,
    /// Object storage (avatar uploads).
    pub store: platform::storage::Store,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "EcoEco command API", description = "Commands of the EcoEco recycling app. Errors are RFC 9457 problem+json."),
    components(schemas(platform::error::Problem, platform::error::FieldError)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// A built, bound, not yet running command-api.
pub struct App {
    server: Server,
}

impl App {
    /// Connects to PostgreSQL (applying migrations unless told not to), loads the keys and binds
    /// `BIND_ADDR` (port 0 picks a free port, for tests).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let db = platform::db::connect(&settings).await?;
        let redis = Redis::new(&settings)?;
        let verifier = Arc::new(Verifier::from_pem_bundle(&settings.jwt_public_keys_pem)?);
        let signer = Arc::new(Signer::new(&settings.jwt_private_key_pem, &verifier)?);
        let state = AppState {
            db: db.clone(),
            outbox: platform::eventstore::Outbox::new(db.clone()),
            redis: redis.clone(),
            signer,
            verifier,
            settings: settings.clone(),
            denylist: Denylist::new(db.clone(), redis.clone()),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .context("building the HTTP client")?,
            store: platform::storage::open(&settings)?,
        };
        let (api, mut spec) = OpenApiRouter::with_openapi(ApiDoc::openapi())
            .nest("/api/v1", routes::router())
            .merge(routes::well_known())
            .split_for_parts();
        platform::openapi::require_a_property(&mut spec, &["ProfileRequest", "SettingsRequest", "UnlockRule"]);
        let limits = RateLimits::new(redis.clone(), state.verifier.clone(), settings.clone());
        let api = api.with_state(state).layer(axum::middleware::from_fn_with_state(limits, ratelimit::enforce));
        let readiness = Readiness::new(db, redis, &settings.amqp_url, Needs::Postgres);
        let addr = settings.bind_addr_or(DEFAULT_PORT);
        let http = HttpLimits::from_settings(&settings);
        Ok(Self { server: Server::bind("command-api", addr, http, api, Some(spec), readiness).await? })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.server.run(shutdown).await
    }
}
