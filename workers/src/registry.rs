//! The one list of the bus's consumers. Each entry names its queue and bindings (a
//! [`ConsumerSpec`] of `platform::topology`, which query-api also reads for its read-your-writes
//! waits), its deployment group, how it is built, and whether it is a projection (its effects
//! are its tables, so it can be rebuilt from the log). Everything that enumerates consumers
//! derives from [`CONSUMERS`]: the AMQP topology, `WORKER_ROLES`, `ecoctl projections
//! rebuild|replay|status` and their help, `ecoctl parked`, and the gauges.
//!
//! Adding a projector: a migration for its tables; a file with the projector (its
//! [`Projector`] and [`Build`] impls); its `ConsumerSpec` in `platform::topology`; one line in
//! [`CONSUMERS`].

use std::sync::Arc;

use futures::future::{BoxFuture, LocalBoxFuture};
use platform::{
    Settings,
    redis::Redis,
    topology::{
        ACTIVITIES, AVATARS, ConsumerSpec, GUIDE, INGEST, LEADERBOARDS, MAILER, NOTIFICATIONS, NOTIFIER, PLACES,
        POINTS_POLICY, PROFILES, READ_MODELS, REWARDS, REWARDS_POLICY,
    },
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    avatars::Avatars,
    backoff::Backoff,
    consumer::{self, ConsumerContext, Projector},
    ingest::Ingest,
    mailer::Mailer,
    notifier::Notifier,
    policies::{points::PointsPolicy, rewards::RewardsPolicy},
    projections::{
        activities::ActivitiesProjector, group::ReadModels, guide::GuideProjector, leaderboards::LeaderboardsProjector,
        notifications::NotificationsProjector, places::PlacesProjector, profiles::ProfilesProjector,
        rewards::RewardsProjector,
    },
    rebuild::{Progress, RebuildReport, ReplayReport},
};

/// Every consumer of the bus, in the order operators see them listed: the projections (which
/// consume through their processing group's queue), the group itself, and the consumers with
/// queues of their own.
pub static CONSUMERS: [Entry; 14] = [
    projection::<ProfilesProjector>(&PROFILES),
    consumer::<PointsPolicy>(&POINTS_POLICY, Group::Policies),
    consumer::<RewardsPolicy>(&REWARDS_POLICY, Group::Policies),
    consumer::<Avatars>(&AVATARS, Group::Policies),
    projection::<ActivitiesProjector>(&ACTIVITIES),
    projection::<LeaderboardsProjector>(&LEADERBOARDS),
    projection::<GuideProjector>(&GUIDE),
    projection::<PlacesProjector>(&PLACES),
    projection::<RewardsProjector>(&REWARDS),
    projection::<NotificationsProjector>(&NOTIFICATIONS),
    Entry {
        spec: &READ_MODELS,
        group: Group::Projections,
        start: start_read_models,
        rebuildable: None,
        drain: None,
        queue: &READ_MODELS,
    },
    consumer::<Mailer>(&MAILER, Group::Mailer),
    consumer::<Notifier>(&NOTIFIER, Group::Mailer),
    consumer::<Ingest>(&INGEST, Group::Ingest),
];

/// The consumers with a queue of their own (the processing group, not its members): what the
/// AMQP topology declares and what `WORKER_ROLES` runs.
pub fn queues() -> impl Iterator<Item = &'static Entry> {
    CONSUMERS.iter().filter(|c| c.spec.name == c.queue.name)
}

/// The queue specs of every consumer (what the AMQP topology declares).
pub fn specs() -> Vec<ConsumerSpec> {
    queues().map(|c| *c.spec).collect()
}

/// The consumers that keep their own deduplication (all but a processing group): those with a
/// lag and a place in `ecoctl projections status`.
pub fn deduplicating() -> impl Iterator<Item = &'static Entry> {
    CONSUMERS.iter().filter(|c| c.spec.projection.is_some())
}

/// The consumer called `name` (`projection.profiles`, or a projection's short name `profiles`).
pub fn find(name: &str) -> Option<&'static Entry> {
    CONSUMERS.iter().find(|c| c.spec.name == name || c.spec.projection == Some(name))
}

/// The short names of the projections (`profiles`, …), for help texts and errors.
pub fn projection_names() -> Vec<&'static str> {
    CONSUMERS.iter().filter(|c| c.is_projection()).filter_map(|c| c.spec.projection).collect()
}

/// What consumers are built from.
#[derive(Clone)]
pub struct Deps {
    /// The database.
    pub db: PgPool,
    /// Redis (caches and leaderboards).
    pub redis: Redis,
    /// The settings.
    pub settings: Settings,
}

/// The deployment a consumer runs in (`WORKER_ROLES` accepts these names; the Helm chart runs
/// one Deployment per group, the relay being a group of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Read-model builders.
    Projections,
    /// Consumers that record events of their own: the points and rewards policies, and the
    /// avatar worker.
    Policies,
    /// What talks to people outside the app: the mail sender and the push notifier.
    Mailer,
    /// The log's keeper for other services' events.
    Ingest,
}

impl Group {
    /// Every group of consumers.
    pub const ALL: [Group; 4] = [Group::Projections, Group::Policies, Group::Mailer, Group::Ingest];

    /// The name in `WORKER_ROLES`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Projections => "projections",
            Self::Policies => "policies",
            Self::Mailer => "mailer",
            Self::Ingest => "ingest",
        }
    }
}

/// How a consumer is made from the process's connections and settings.
pub trait Build: Projector + Sized {
    /// The consumer, ready to run or rebuild.
    fn build(deps: &Deps) -> anyhow::Result<Self>;
}

type Start = fn(&Deps, ConsumerContext, CancellationToken) -> anyhow::Result<BoxFuture<'static, ()>>;
type MakeRebuildable = fn(&Deps) -> anyhow::Result<Box<dyn Rebuildable>>;

/// One consumer of [`CONSUMERS`].
pub struct Entry {
    /// Its queue and bindings.
    pub spec: &'static ConsumerSpec,
    /// Its deployment group.
    pub group: Group,
    start: Start,
    rebuildable: Option<MakeRebuildable>,
    /// How a projection consumes its own queue left from before its processing group.
    drain: Option<Drain>,
    /// The consumer whose queue its events arrive through: itself, or its processing group.
    pub queue: &'static ConsumerSpec,
}

impl Entry {
    /// Whether it is a projection: rebuildable from the log, and replayable into.
    pub fn is_projection(&self) -> bool {
        self.rebuildable.is_some()
    }

    /// Builds it and returns its consume loop, which runs until `shutdown`.
    pub fn start(
        &self,
        deps: &Deps,
        ctx: ConsumerContext,
        shutdown: CancellationToken,
    ) -> anyhow::Result<BoxFuture<'static, ()>> {
        (self.start)(deps, ctx, shutdown)
    }

    /// Builds it for a rebuild or a replay; `None` when it is not a projection.
    pub fn rebuildable(&self, deps: &Deps) -> Option<anyhow::Result<Box<dyn Rebuildable>>> {
        self.rebuildable.map(|make| make(deps))
    }
}

/// A projection: consumed through the read models' processing group, rebuilt and replayed alone.
const fn projection<P: Build>(spec: &'static ConsumerSpec) -> Entry {
    Entry {
        spec,
        group: Group::Projections,
        start: start_read_models,
        rebuildable: Some(rebuildable::<P>),
        drain: Some(drain::<P>),
        queue: &READ_MODELS,
    }
}

const fn consumer<P: Build>(spec: &'static ConsumerSpec, group: Group) -> Entry {
    Entry { spec, group, start: start::<P>, rebuildable: None, drain: None, queue: spec }
}

fn start_read_models(
    deps: &Deps,
    ctx: ConsumerContext,
    shutdown: CancellationToken,
) -> anyhow::Result<BoxFuture<'static, ()>> {
    let group = Arc::new(ReadModels::build(deps)?);
    Ok(Box::pin(consumer::run(ctx, group, shutdown)))
}

fn start<P: Build>(
    deps: &Deps,
    ctx: ConsumerContext,
    shutdown: CancellationToken,
) -> anyhow::Result<BoxFuture<'static, ()>> {
    let consumer = Arc::new(P::build(deps)?);
    Ok(Box::pin(consumer::run(ctx, consumer, shutdown)))
}

type Drain = fn(&Deps, ConsumerContext, CancellationToken) -> anyhow::Result<BoxFuture<'static, ()>>;

fn drain<P: Build>(
    deps: &Deps,
    ctx: ConsumerContext,
    shutdown: CancellationToken,
) -> anyhow::Result<BoxFuture<'static, ()>> {
    let projector = Arc::new(P::build(deps)?);
    Ok(Box::pin(consumer::drain(ctx, projector, shutdown)))
}

/// Drains the projection queues left from before the processing group (`crate::legacy`): finds
/// those that still exist, unbinds each, then consumes each with its projection alone until an
/// operator deletes it, or until `shutdown`.
///
/// Runs beside the group's consumer, never before it: a broker that is away or cut while the old
/// queues are looked up is retried with backoff here, and holds up nothing else.
pub async fn run_legacy_drains(deps: Deps, ctx: ConsumerContext, shutdown: CancellationToken) {
    let mut backoff = Backoff::default();
    let drains = loop {
        let found = tokio::select! {
            _ = shutdown.cancelled() => return,
            found = legacy_drains(&deps, &ctx, &shutdown) => found,
        };
        match found {
            Ok(drains) => break drains,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    error = format!("{e:#}"),
                    retry_in_ms = delay.as_millis() as u64,
                    "looking for projection queues left from before the group failed; trying again"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    };
    futures::future::join_all(drains).await;
}

/// The drains of the projection queues that still exist, each unbound first.
async fn legacy_drains(
    deps: &Deps,
    ctx: &ConsumerContext,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<BoxFuture<'static, ()>>> {
    let conn = platform::amqp::connect(&ctx.amqp_url, "legacy check").await?;
    let remaining = crate::legacy::remaining(&conn, &ctx.topology).await;
    let mut out = Vec::new();
    let result = async {
        for spec in remaining? {
            // Built before the unbinding, so that a queue is never left unbound and undrained.
            let drain = find(spec.name).and_then(|c| c.drain).map(|start| start(deps, ctx.clone(), shutdown.clone()));
            let drain = drain.transpose()?;
            crate::legacy::unbind(&conn, &ctx.topology, spec).await?;
            if let Some(drain) = drain {
                tracing::info!(
                    projection = spec.name,
                    "draining the projection's own queue left from before its group"
                );
                out.push(drain);
            }
        }
        anyhow::Ok(())
    }
    .await;
    let _ = conn.close(200, "checked").await;
    result.map(|()| out)
}

fn rebuildable<P: Build>(deps: &Deps) -> anyhow::Result<Box<dyn Rebuildable>> {
    Ok(Box::new(P::build(deps)?))
}

/// A projection as `ecoctl projections rebuild|replay` drives it, whatever its type.
pub trait Rebuildable {
    /// See [`crate::rebuild::rebuild`].
    fn rebuild<'a>(
        &'a self,
        db: &'a PgPool,
        progress: &'a mut dyn FnMut(Progress),
    ) -> LocalBoxFuture<'a, anyhow::Result<RebuildReport>>;

    /// See [`crate::rebuild::replay`].
    fn replay<'a>(
        &'a self,
        db: &'a PgPool,
        from: i64,
        to: i64,
        progress: &'a mut dyn FnMut(Progress),
    ) -> LocalBoxFuture<'a, anyhow::Result<ReplayReport>>;
}

impl<P: Projector> Rebuildable for P {
    fn rebuild<'a>(
        &'a self,
        db: &'a PgPool,
        progress: &'a mut dyn FnMut(Progress),
    ) -> LocalBoxFuture<'a, anyhow::Result<RebuildReport>> {
        Box::pin(crate::rebuild::rebuild(db, self, progress))
    }

    fn replay<'a>(
        &'a self,
        db: &'a PgPool,
        from: i64,
        to: i64,
        progress: &'a mut dyn FnMut(Progress),
    ) -> LocalBoxFuture<'a, anyhow::Result<ReplayReport>> {
        Box::pin(crate::rebuild::replay(db, self, from, to, progress))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_holds_each_consumer_once_and_the_projections_are_those_with_tables() {
        let mut names: Vec<&str> = CONSUMERS.iter().map(|c| c.spec.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CONSUMERS.len());
        assert_eq!(
            projection_names(),
            ["profiles", "activities", "leaderboards", "guide", "places", "rewards", "notifications"]
        );
        // The projections consume through their group's queue: those are its members.
        let grouped: Vec<&str> = CONSUMERS
            .iter()
            .filter(|c| c.queue.name == READ_MODELS.name && c.spec != &READ_MODELS)
            .map(|c| c.spec.name)
            .collect();
        let members: Vec<&str> = platform::topology::READ_MODEL_MEMBERS.iter().map(|m| m.name).collect();
        assert_eq!(grouped, members);
        let queues: Vec<&str> = queues().map(|c| c.spec.name).collect();
        assert_eq!(
            queues,
            ["points-policy", "rewards-policy", "avatars", "projections", "mailer", "notifier", "ingest"]
        );
        assert!(find("profiles").is_some_and(Entry::is_projection));
        assert!(find("points-policy").is_some_and(|c| !c.is_projection()));
        assert!(find("nope").is_none());
    }
}
