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
    topology::{ACTIVITIES, ConsumerSpec, GUIDE, INGEST, LEADERBOARDS, MAILER, PLACES, POINTS_POLICY, PROFILES},
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    consumer::{self, ConsumerContext, Projector},
    ingest::Ingest,
    mailer::Mailer,
    policies::points::PointsPolicy,
    projections::{
        activities::ActivitiesProjector, guide::GuideProjector, leaderboards::LeaderboardsProjector,
        places::PlacesProjector, profiles::ProfilesProjector,
    },
    rebuild::{Progress, RebuildReport, ReplayReport},
};

/// Every consumer of the bus, in the order operators see them listed.
pub static CONSUMERS: [Entry; 8] = [
    projection::<ProfilesProjector>(&PROFILES),
    consumer::<PointsPolicy>(&POINTS_POLICY, Group::Policies),
    projection::<ActivitiesProjector>(&ACTIVITIES),
    projection::<LeaderboardsProjector>(&LEADERBOARDS),
    projection::<GuideProjector>(&GUIDE),
    projection::<PlacesProjector>(&PLACES),
    consumer::<Mailer>(&MAILER, Group::Mailer),
    consumer::<Ingest>(&INGEST, Group::Ingest),
];

/// The queue specs of every consumer (what the AMQP topology declares).
pub fn specs() -> Vec<ConsumerSpec> {
    CONSUMERS.iter().map(|c| *c.spec).collect()
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
    /// Policies that record events of their own (points).
    Policies,
    /// The mail sender.
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

const fn projection<P: Build>(spec: &'static ConsumerSpec) -> Entry {
    Entry { spec, group: Group::Projections, start: start::<P>, rebuildable: Some(rebuildable::<P>) }
}

const fn consumer<P: Build>(spec: &'static ConsumerSpec, group: Group) -> Entry {
    Entry { spec, group, start: start::<P>, rebuildable: None }
}

fn start<P: Build>(
    deps: &Deps,
    ctx: ConsumerContext,
    shutdown: CancellationToken,
) -> anyhow::Result<BoxFuture<'static, ()>> {
    let consumer = Arc::new(P::build(deps)?);
    Ok(Box::pin(consumer::run(ctx, consumer, shutdown)))
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
        assert_eq!(projection_names(), ["profiles", "activities", "leaderboards", "guide", "places"]);
        assert!(find("profiles").is_some_and(Entry::is_projection));
        assert!(find("points-policy").is_some_and(|c| !c.is_projection()));
        assert!(find("nope").is_none());
    }
}
