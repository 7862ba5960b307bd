//! workers: the outbox relay and the projectors (DESIGN §2), plus the `ecoctl` operations CLI.
//!
//! One process runs every role by default; `WORKER_ROLES` (comma-separated: `relay` or the
//! name of a consumer of the [`registry`] with a queue of its own, e.g. `points-policy`,
//! `projections` (the read models' processing group), or the groups `relay`, `projections`,
//! `policies`, `mailer`, `ingest`) narrows it, so roles can be scaled separately. All roles share one
//! [`CancellationToken`]: on SIGTERM the relay finishes its confirm round, each consumer
//! finishes and acknowledges the batch in hand, and the process exits.

pub mod admission;
pub mod avatars;
mod backoff;
pub mod consumer;
pub mod gauges;
pub mod ingest;
pub mod legacy;
pub mod mailer;
pub mod notifier;
pub mod ops;
pub mod periods;
pub mod policies;
pub mod projections;
pub mod rebuild;
pub mod registry;
pub mod relay;
pub mod retention;
pub mod seed;

use anyhow::Context;
use axum::Router;
use futures::future::BoxFuture;
use platform::{
    Settings, amqp,
    http::{HttpLimits, Needs, Readiness, Server},
    redis::Redis,
    topology::Topology,
};
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{
    consumer::{ConsumerContext, Wakes},
    relay::Relay,
};

/// Default port of the workers' `/health`, `/ready` and `/metrics`.
pub const DEFAULT_PORT: u16 = 8083;

/// A role this process can run: the relay, or a consumer of the [`registry`] by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Role(&'static str);

impl Role {
    /// The outbox relay.
    pub const RELAY: Role = Role("relay");

    /// Every role: the relay, then every consumer of the registry.
    pub fn all() -> Vec<Role> {
        std::iter::once(Self::RELAY).chain(registry::queues().map(|c| Role(c.spec.name))).collect()
    }

    /// The role of the consumer with this spec (a projection's runs its processing group).
    pub fn consumer(spec: &platform::topology::ConsumerSpec) -> Role {
        Role(spec.name)
    }

    /// The role's name in `WORKER_ROLES`: `relay` or the consumer's name.
    pub fn name(self) -> &'static str {
        self.0
    }

    /// The deployment group a role belongs to (`WORKER_ROLES` accepts group names, so the Helm
    /// chart runs one Deployment per group): `relay`, or the consumer's [`registry::Group`].
    pub fn group(self) -> &'static str {
        registry::find(self.0).map_or("relay", |c| c.group.name())
    }

    /// Parses `WORKER_ROLES` (role or group names); empty means all.
    pub fn parse_list(list: &str) -> anyhow::Result<Vec<Role>> {
        let names: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        if names.is_empty() {
            return Ok(Self::all());
        }
        let mut roles = Vec::new();
        for n in names {
            // A projection's name (as earlier versions ran them) means its processing group.
            let n = registry::find(n).map_or(n, |c| c.queue.name);
            let matched: Vec<Role> = Self::all().into_iter().filter(|r| r.name() == n || r.group() == n).collect();
            if matched.is_empty() {
                let known: Vec<_> = Self::all().iter().map(|r| r.name()).collect();
                let groups: Vec<_> =
                    std::iter::once("relay").chain(registry::Group::ALL.iter().map(|g| g.name())).collect();
                anyhow::bail!(
                    "unknown worker role `{n}`; known roles: {}; groups: {}",
                    known.join(", "),
                    groups.join(", ")
                );
            }
            roles.extend(matched.into_iter().filter(|r| !roles.contains(r)).collect::<Vec<_>>());
        }
        Ok(roles)
    }
}

/// How long the workers' tasks have to finish their work in hand once the process stops: inside
/// the chart's 45 s termination grace, after which Kubernetes kills the process anyway.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

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
            batch_linger: self.settings.projector_batch_linger,
            wakes: Wakes::new(&self.db),
        };
        let deps = registry::Deps { db: self.db.clone(), redis: self.redis.clone(), settings: self.settings.clone() };
        // Everything that can fail is built before anything runs: once tasks are spawned, this
        // function returns only after they stopped (dropping the set would abort them mid-work).
        let mut runs: Vec<BoxFuture<'static, ()>> = Vec::new();
        let mut queues = Vec::new();
        for role in &self.roles {
            if *role == Role::RELAY {
                let relay = Relay::new(
                    self.db.clone(),
                    &self.settings.amqp_url,
                    topology.exchange(),
                    self.settings.relay_batch_size,
                );
                runs.push(Box::pin(relay.run(shutdown.clone())));
            } else if let Some(consumer) = registry::find(role.name()) {
                // Two projections of one group run it once.
                if !queues.contains(&consumer.queue.name) {
                    queues.push(consumer.queue.name);
                    runs.push(consumer.start(&deps, ctx.clone(), shutdown.clone())?);
                    if consumer.queue.name == platform::topology::READ_MODELS.name {
                        runs.push(Box::pin(registry::run_legacy_drains(deps.clone(), ctx.clone(), shutdown.clone())));
                    }
                }
            }
        }
        let mut tasks = JoinSet::new();
        for run in runs {
            tasks.spawn(run);
        }
        tasks.spawn(gauges::run(self.settings.clone(), self.db.clone(), shutdown.clone()));
        tasks.spawn(retention::run(self.settings.clone(), self.db.clone(), shutdown.clone()));
        tasks.spawn(periods::run(self.settings.clone(), self.db.clone(), shutdown.clone()));
        tasks.spawn(platform::personal::run_log_migration(self.db.clone(), shutdown.clone()));
        if self.roles.contains(&Role::consumer(&platform::topology::NOTIFIER)) {
            tasks.spawn(notifier::run_deferred(deps.clone(), shutdown.clone()));
        }
        tracing::info!(roles = ?self.roles, "workers running");
        let server = self.server.run(shutdown.clone());
        let (served, supervised) = tokio::join!(server, platform::shutdown::supervise(tasks, shutdown, SHUTDOWN_GRACE));
        served.and(supervised)
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
    let topology = Topology::new(&settings.amqp_prefix, &settings.retry_delays);
    topology.declare(&channel, &registry::specs()).await?;
    let _ = conn.close(200, "topology declared").await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_name_the_chart_deployments() {
        use platform::topology::{AVATARS, INGEST, MAILER, NOTIFIER, POINTS_POLICY, READ_MODELS, REWARDS_POLICY};
        assert_eq!(Role::parse_list("").unwrap(), Role::all());
        // The relay and one role per queue: the projections run as their processing group.
        assert_eq!(Role::all().len(), 8);
        assert_eq!(Role::parse_list("projections").unwrap(), [Role::consumer(&READ_MODELS)]);
        assert_eq!(Role::parse_list("projection.profiles,leaderboards").unwrap(), [Role::consumer(&READ_MODELS)]);
        assert_eq!(
            Role::parse_list("relay, policies, mailer").unwrap(),
            [
                Role::RELAY,
                Role::consumer(&POINTS_POLICY),
                Role::consumer(&REWARDS_POLICY),
                Role::consumer(&AVATARS),
                Role::consumer(&MAILER),
                Role::consumer(&NOTIFIER)
            ]
        );
        assert_eq!(Role::parse_list("ingest,ingest").unwrap(), [Role::consumer(&INGEST)]);
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
