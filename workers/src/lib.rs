//! workers: the outbox relay and the projectors (DESIGN §2), plus the `ecoctl` operations CLI.
//!
//! One process runs every role by default; `WORKER_ROLES` (comma-separated: `relay`,
//! `points-policy`, `projection.profiles`, `projection.activities`, `projection.leaderboards`,
//! `projection.guide`, `projection.places`, `mailer`, `ingest`, or the groups `relay`,
//! `projections`, `policies`, `mailer`, `ingest`) narrows it, so roles can be scaled separately. All roles share one
//! [`CancellationToken`]: on SIGTERM the relay finishes its confirm round, each consumer
//! finishes and acknowledges the batch in hand, and the process exits.

pub mod admission;
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
    http::{HttpLimits, Needs, Readiness, Server},
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

    /// The deployment group a role belongs to (`WORKER_ROLES` accepts group names, so the Helm
    /// chart runs one Deployment per group): `relay`, `projections`, `policies`, `mailer`,
    /// `ingest`.
    pub fn group(self) -> &'static str {
        match self {
            Self::Relay => "relay",
            Self::PointsPolicy => "policies",
            Self::Profiles | Self::Activities | Self::Leaderboards | Self::Guide | Self::Places => "projections",
            Self::Mailer => "mailer",
            Self::Ingest => "ingest",
        }
    }

    /// Parses `WORKER_ROLES` (role or group names); empty means all.
    pub fn parse_list(list: &str) -> anyhow::Result<Vec<Role>> {
        let names: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        if names.is_empty() {
            return Ok(Self::ALL.to_vec());
        }
        let mut roles = Vec::new();
        for n in names {
            let matched: Vec<Role> = Self::ALL.into_iter().filter(|r| r.name() == n || r.group() == n).collect();
            if matched.is_empty() {
                let known: Vec<_> = Self::ALL.iter().map(|r| r.name()).collect();
                anyhow::bail!(
                    "unknown worker role `{n}`; known roles: {}; groups: relay, projections, policies, mailer, ingest",
                    known.join(", ")
                );
            }
            roles.extend(matched.into_iter().filter(|r| !roles.contains(r)).collect::<Vec<_>>());
        }
        Ok(roles)
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
        let readiness = Readiness::new(db.clone(), redis.clone(), &settings.amqp_url, Needs::PostgresAndBroker);
        let limits = HttpLimits::from_settings(&settings);
        let server =
            Server::bind("workers", settings.bind_addr_or(DEFAULT_PORT), limits, Router::new(), None, readiness)
                .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_name_the_chart_deployments() {
        assert_eq!(Role::parse_list("").unwrap(), Role::ALL.to_vec());
        assert_eq!(
            Role::parse_list("projections").unwrap(),
            [Role::Profiles, Role::Activities, Role::Leaderboards, Role::Guide, Role::Places]
        );
        assert_eq!(
            Role::parse_list("relay, policies, mailer").unwrap(),
            [Role::Relay, Role::PointsPolicy, Role::Mailer]
        );
        assert_eq!(Role::parse_list("ingest,ingest").unwrap(), [Role::Ingest]);
        assert!(Role::parse_list("projection.nope").unwrap_err().to_string().contains("groups"));
    }

    #[test]
    fn every_parking_reason_is_in_the_published_contract() {
        let published: Vec<&str> = events::contract::PARKING_REASONS.iter().map(|(code, _)| *code).collect();
        let decode = [
            events::DecodeError::MalformedEnvelope(String::new()),
            events::DecodeError::UnknownType(String::new()),
            events::DecodeError::UnsupportedVersion { event_type: String::new(), version: 0 },
            events::DecodeError::InvalidData { event_type: String::new(), version: 0, message: String::new() },
        ];
        let ours = [
            admission::UNKNOWN_USER,
            admission::CONFLICTING_DUPLICATE,
            consumer::REJECTED_BY_DATABASE,
            consumer::RETRIES_EXHAUSTED,
        ];
        for code in decode.iter().map(events::DecodeError::code).chain(ours) {
            assert!(published.contains(&code), "`{code}` is parked but not in events::contract::PARKING_REASONS");
        }
    }
}
