//! The read models' processing group (`platform::topology::READ_MODELS`, after Axon's
//! processing groups): the projections that share the database consume one queue and apply
//! each batch in one transaction.
//!
//! Each member keeps what makes it a projection: its deduplication (`(member, event)` recorded
//! in `projection.applied_events`, in one statement for the batch, and only what is new to it
//! applied), its shared advisory lock against a rebuild's swap, its rebuild and replay from the
//! log (they use the member alone), and its caches (`after_commit`, with the events of its
//! types). What the group changes is the cost: one delivery and one transaction per event for
//! all seven, instead of one per member, and each member writes its share of a batch as a run
//! (set-based statements where its changes commute: profiles, activities, leaderboards). An
//! event one member cannot apply fails the batch for all of them; after the retry tiers it is
//! parked in the group's parked queue with the member named in its detail, and a requeue
//! applies it to the members that still lack it.

use std::collections::HashSet;

use events::Event;
use platform::topology::{ConsumerSpec, READ_MODELS};
use sqlx::PgConnection;
use tracing::Instrument;
use uuid::Uuid;

use super::{
    activities::ActivitiesProjector, guide::GuideProjector, leaderboards::LeaderboardsProjector,
    notifications::NotificationsProjector, places::PlacesProjector, profiles::ProfilesProjector,
    rewards::RewardsProjector,
};
use crate::consumer::{
    ApplyError, BatchError, Consume, Outcome, Projector, count_outcomes, projection_lock, projection_name,
};

/// The group: every projection, in the order they apply their share of a batch.
pub struct ReadModels {
    profiles: ProfilesProjector,
    activities: ActivitiesProjector,
    leaderboards: LeaderboardsProjector,
    guide: GuideProjector,
    places: PlacesProjector,
    rewards: RewardsProjector,
    notifications: NotificationsProjector,
}

/// Whether `member` handles `event`.
fn handles(member: &impl Projector, event: &Event) -> bool {
    Projector::spec(member).bindings.contains(&event.event_type.as_str())
}

/// `events` of the types `member` handles.
fn share(member: &impl Projector, events: &[Event]) -> Vec<Event> {
    events.iter().filter(|e| handles(member, e)).cloned().collect()
}

/// What one batch is doing: which `(projection, event)` pairs are new, and which events were
/// new to any member.
struct Batch {
    fresh: HashSet<(String, Uuid)>,
    applied: HashSet<Uuid>,
}

impl Batch {
    /// Applies to `member` the events of `events` it handles and that are new to it, in their
    /// order and in as few statements as it can ([`Projector::apply_all`]); names the member in
    /// an error, so a parked event says whose it is.
    async fn apply(
        &mut self,
        tx: &mut PgConnection,
        member: &impl Projector,
        events: &[Event],
    ) -> Result<(), BatchError> {
        let spec = Projector::spec(member);
        let name = projection_name(spec);
        let mut outcomes = Vec::new();
        let mut new = Vec::new();
        for event in events.iter().filter(|e| handles(member, e)) {
            let outcome = if self.fresh.remove(&(name.to_owned(), event.id)) {
                self.applied.insert(event.id);
                new.push(event.clone());
                Outcome::Applied
            } else {
                Outcome::Duplicate
            };
            outcomes.push((event, outcome));
        }
        if !new.is_empty() {
            let span = tracing::debug_span!("apply_events", consumer = spec.name, events = new.len());
            member
                .apply_all(&mut *tx, &new)
                .instrument(span)
                .await
                .map_err(|e| BatchError::from_apply(named(spec, e)))?;
        }
        count_outcomes(spec, &outcomes);
        Ok(())
    }
}

/// `e`, saying which member failed.
fn named(spec: &ConsumerSpec, e: ApplyError) -> ApplyError {
    match e {
        ApplyError::Transient(inner) => ApplyError::Transient(inner.context(format!("projection {}", spec.name))),
        ApplyError::Permanent { code, detail } => {
            ApplyError::Permanent { code, detail: format!("projection {}: {detail}", spec.name) }
        }
    }
}

impl Consume for ReadModels {
    fn spec(&self) -> &'static ConsumerSpec {
        &READ_MODELS
    }

    /// One statement takes the members' shared locks (against a rebuild's swap, in name order)
    /// and sets the search path, one records what is new to each member, then each member
    /// applies the events it handles and has not applied, as a run.
    async fn apply_batch(&self, tx: &mut PgConnection, events: &[Event]) -> Result<Vec<Event>, BatchError> {
        let (mut names, mut ids) = (Vec::new(), Vec::new());
        let mut wanted = HashSet::new();
        for event in events {
            for member in platform::topology::READ_MODEL_MEMBERS {
                let name = projection_name(member);
                if member.bindings.contains(&event.event_type.as_str()) && wanted.insert((name, event.id)) {
                    names.push(name.to_owned());
                    ids.push(event.id);
                }
            }
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut involved = names.clone();
        involved.sort_unstable();
        involved.dedup();
        let prepare = format!(
            "select set_config('search_path', 'read, public', true),
                    (select count(*) from (select pg_advisory_xact_lock_shared({}) from unnest($1::text[]) as m(name)) locks)",
            projection_lock("m.name")
        );
        sqlx::query(&prepare).bind(&involved).execute(&mut *tx).await.map_err(BatchError::from_sqlx)?;
        let fresh: Vec<(String, Uuid)> = sqlx::query_as(
            "insert into projection.applied_events (projection, event_id)
             select * from unnest($1::text[], $2::uuid[]) on conflict do nothing returning projection, event_id",
        )
        .bind(&names)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(BatchError::from_sqlx)?;
        let mut batch = Batch { fresh: fresh.into_iter().collect(), applied: HashSet::with_capacity(events.len()) };
        // Member by member: each writes its share in as few statements as it can. The members
        // never read each other's tables (each rebuilds alone), so the order among them is free.
        batch.apply(tx, &self.profiles, events).await?;
        batch.apply(tx, &self.activities, events).await?;
        batch.apply(tx, &self.leaderboards, events).await?;
        batch.apply(tx, &self.guide, events).await?;
        batch.apply(tx, &self.places, events).await?;
        batch.apply(tx, &self.rewards, events).await?;
        batch.apply(tx, &self.notifications, events).await?;
        Ok(events.iter().filter(|e| batch.applied.remove(&e.id)).cloned().collect())
    }

    /// Each member refreshes its caches from the new events of its types (an event new to one
    /// member only reaches the others' refresh too: refreshing is idempotent).
    async fn after_commit(&self, applied: &[Event]) {
        Projector::after_commit(&self.profiles, &share(&self.profiles, applied)).await;
        Projector::after_commit(&self.activities, &share(&self.activities, applied)).await;
        Projector::after_commit(&self.leaderboards, &share(&self.leaderboards, applied)).await;
        Projector::after_commit(&self.guide, &share(&self.guide, applied)).await;
        Projector::after_commit(&self.places, &share(&self.places, applied)).await;
        Projector::after_commit(&self.rewards, &share(&self.rewards, applied)).await;
        Projector::after_commit(&self.notifications, &share(&self.notifications, applied)).await;
    }

    const RECORDS_EVENTS: bool = false;
}

impl ReadModels {
    /// The group, its members built from `deps`.
    pub fn build(deps: &crate::registry::Deps) -> anyhow::Result<Self> {
        use crate::registry::Build;
        Ok(Self {
            profiles: ProfilesProjector::build(deps)?,
            activities: ActivitiesProjector::build(deps)?,
            leaderboards: LeaderboardsProjector::build(deps)?,
            guide: GuideProjector::build(deps)?,
            places: PlacesProjector::build(deps)?,
            rewards: RewardsProjector::build(deps)?,
            notifications: NotificationsProjector::build(deps)?,
        })
    }
}
