//! workers: the outbox relay and the projectors (DESIGN §2), plus the `ecoctl` operations CLI.
//!
//! One process runs every role by default; `WORKER_ROLES` (comma-separated: `relay`,
//! `points-policy`, `projection.profiles`, `projection.activities`, `projection.leaderboards`, `projection.guide`, `projection.places`, `mailer`, `ingest`)
//! narrows it, so roles can be scaled separately. All roles share one
//! [`CancellationToken`]: on SIGTERM the relay finishes its confirm round, each consumer
//! finishes and acknowledges the batch in hand, and the process exits.

mod backoff;
pub mod consumer;
pub mod gauges;
pub mod ingest;
pub mod mailer;
pub mod ops;
pub mod policies;
pub mod projections;
pub mod rebuild;
pub mod relay;
pub mod seed;

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use platform::{
    Settings, amqp,
    http::{Readiness, Server},
    redis::Redis,
    topology::{ACTIVITIES, CONSUMERS, GUIDE, INGEST, LEADERBOARDS, MAILER, PLACES, POINTS_POLICY, PROFILES, Topology},
};
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{
    consumer::ConsumerContext,
    policies::points::PointsPolicy,
    projections::{
        activities::ActivitiesProjector, guide::GuideProjector, leaderboards::LeaderboardsProjector,
        places::PlacesProjector, profiles::ProfilesProjector,
    },
    relay::Relay,
};

/// Default port of the workers' `/health`, `/ready` and `/metrics`.
pub const DEFAULT_PORT: u16 = 8083;

/// A role this process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The outbox relay.
    Relay,
    /// The points policy.
    PointsPolicy,
    /// The profiles projector.
    Profiles,
    /// The activity history projector.
    Activities,
    /// The leaderboards projector.
    Leaderboards,
    /// The recycling guide projector.
    Guide,
    /// The places projector.
    Places,
    /// The mail worker.
    Mailer,
    /// Stores other services' events in the log.
    Ingest,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 9] = [
        Role::Relay,
        Role::PointsPolicy,
        Role::Profiles,
        Role::Activities,
        Role::Leaderboards,
        Role::Guide,
        Role::Places,
        Role::Mailer,
        Role::Ingest,
    ];

    /// The role's name in `WORKER_ROLES`: `relay` or the consumer's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Relay => "relay",
            Self::PointsPolicy => POINTS_POLICY.name,
            Self::Profiles => PROFILES.name,
            Self::Activities => ACTIVITIES.name,
            Self::Leaderboards => LEADERBOARDS.name,
            Self::Guide => GUIDE.name,
            Self::Places => PLACES.name,
            Self::Mailer => MAILER.name,
            Self::Ingest => INGEST.name,
        }
    }

    /// Parses `WORKER_ROLES`; empty means all.
    pub fn parse_list(list: &str) -> anyhow::Result<Vec<Role>> {
        let names: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        if names.is_empty() {
            return Ok(Self::ALL.to_vec());
        }
        names
            .into_iter()
            .map(|n| {
                Self::ALL.into_iter().find(|r| r.name() == n).with_context(|| {
                    let known: Vec<_> = Self::ALL.iter().map(|r| r.name()).collect();
                    format!("unknown worker role `{n}`; known roles: {}", known.join(", "))
                })
            })
            .collect()
    }
}

/// A built, not yet running workers process.
pub struct App {
    db: PgPool,
    redis: Redis,
    settings: Settings,
    roles: Vec<Role>,
    server: Server,
}

impl App {
    /// Connects, applies migrations, declares the AMQP topology and binds the ops listener.
    pub async fn build(settings: Settings, roles: Vec<Role>) -> anyhow::Result<Self> {
        let db = platform::db::connect(&settings).await?;
        let redis = Redis::new(&settings)?;
        declare_topology(&settings).await?;
        let readiness = Readiness::new(db.clone(), redis.clone(), &settings.amqp_url);
        let server =
            Server::bind("workers", settings.bind_addr_or(DEFAULT_PORT), Router::new(), None, readiness).await?;
        Ok(Self { db, redis, settings, roles, server })
    }

    /// The bound port of the ops listener.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Runs every role until `shutdown`, then waits for each to finish its work in hand.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let topology = Topology::new(&self.settings.amqp_prefix, &self.settings.retry_delays);
        let ctx = ConsumerContext {
            db: self.db.clone(),
            amqp_url: self.settings.amqp_url.clone(),
            topology: topology.clone(),
            batch_size: self.settings.projector_batch_size,
        };
        let mut tasks = JoinSet::new();
        for role in &self.roles {
            let stop = shutdown.clone();
            match role {
                Role::Relay => {
                    let relay = Relay::new(
                        self.db.clone(),
                        &self.settings.amqp_url,
                        topology.exchange(),
                        self.settings.relay_batch_size,
                    );
                    tasks.spawn(relay.run(stop));
                }
                Role::PointsPolicy => {
                    let policy = PointsPolicy {
                        timezone: self.settings.app_timezone,
                        scan_daily_cap: self.settings.scan_daily_cap,
                        unique_images: self.settings.scan_unique_images,
                        recycle_max_distance_m: self.settings.recycle_max_distance_m,
                    };
                    tasks.spawn(consumer::run(ctx.clone(), Arc::new(policy), stop));
                }
                Role::Profiles => {
                    let projector = Arc::new(ProfilesProjector::new(self.db.clone(), self.redis.clone()));
                    tasks.spawn(consumer::run(ctx.clone(), projector, stop));
                }
                Role::Activities => {
                    tasks.spawn(consumer::run(ctx.clone(), Arc::new(ActivitiesProjector), stop));
                }
                Role::Leaderboards => {
                    let projector =
                        LeaderboardsProjector::new(self.db.clone(), self.redis.clone(), self.settings.app_timezone);
                    tasks.spawn(consumer::run(ctx.clone(), Arc::new(projector), stop));
                }
                Role::Guide => {
                    let projector = GuideProjector::new(self.redis.clone(), self.settings.app_timezone);
                    tasks.spawn(consumer::run(ctx.clone(), Arc::new(projector), stop));
                }
                Role::Places => {
                    tasks.spawn(consumer::run(ctx.clone(), Arc::new(PlacesProjector), stop));
                }
                Role::Ingest => {
                    tasks.spawn(consumer::run(ctx.clone(), Arc::new(ingest::Ingest), stop));
                }
                Role::Mailer => {
                    let transport = mailer::Transport::from_setting(&self.settings.mail_transport)?;
                    let mailer = mailer::Mailer::new(transport, &self.settings.mail_from)?;
                    tasks.spawn(consumer::run(ctx.clone(), Arc::new(mailer), stop));
                }
            }
        }
        tasks.spawn(gauges::run(self.settings.clone(), self.db.clone(), shutdown.clone()));
        tracing::info!(roles = ?self.roles, "workers running");
        let server = self.server.run(shutdown.clone());
        let (served, ()) = tokio::join!(server, async {
            while let Some(joined) = tasks.join_next().await {
                if let Err(e) = joined {
                    tracing::error!(error = %e, "a worker task panicked");
                }
            }
        });
        served
    }
}

/// The `workers` process: settings from the environment, roles from `WORKER_ROLES`, until
/// SIGTERM or Ctrl-C.
pub async fn main_from_env() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    platform::telemetry::init_tracing(&settings);
    let roles = Role::parse_list(&std::env::var("WORKER_ROLES").unwrap_or_default())?;
    let stop = CancellationToken::new();
    platform::shutdown::on_signal(stop.clone());
    App::build(settings, roles).await?.run_until_stopped(stop).await
}

/// Declares the exchange and every consumer's queues (idempotent).
pub async fn declare_topology(settings: &Settings) -> anyhow::Result<()> {
    let conn = amqp::connect(&settings.amqp_url, "topology").await?;
    let channel = conn.create_channel().await.context("opening a channel")?;
    Topology::new(&settings.amqp_prefix, &settings.retry_delays).declare(&channel, CONSUMERS).await?;
    let _ = conn.close(200, "topology declared").await;
    Ok(())
}
