//! The read models' processing group (`platform::topology::READ_MODELS`, after Axon's
//! processing groups): the projections that share the database consume one queue and apply
//! each batch in one transaction.
//!
//! Each member keeps what makes it a projection: its deduplication (`apply_in` records
//! `(member, event)` in `projection.applied_events` and applies only what is new to it), its
//! shared advisory lock against a rebuild's swap, its rebuild and replay from the log (they use
//! the member alone), and its caches (`after_commit`, with the events of its types). What the
//! group changes is the cost: one delivery and one transaction per event for all five, instead
//! of one per member. An event one member cannot apply fails the batch for all of them; after
//! the retry tiers it is parked in the group's parked queue, and a requeue applies it to the
//! members that still lack it.

use events::Event;
use platform::topology::{ConsumerSpec, READ_MODELS};
use sqlx::PgConnection;

use super::{
    activities::ActivitiesProjector, guide::GuideProjector, leaderboards::LeaderboardsProjector,
    places::PlacesProjector, profiles::ProfilesProjector,
};
use crate::consumer::{BatchError, Consume, Projector, apply_in};

/// The group: every projection, in the order they apply a batch.
pub struct ReadModels {
    profiles: ProfilesProjector,
    activities: ActivitiesProjector,
    leaderboards: LeaderboardsProjector,
    guide: GuideProjector,
    places: PlacesProjector,
}

/// `events` of the types `member` handles.
fn share(member: &impl Projector, events: &[Event]) -> Vec<Event> {
    let bindings = Projector::spec(member).bindings;
    events.iter().filter(|e| bindings.contains(&e.event_type.as_str())).cloned().collect()
}

/// Applies `member`'s share of `events`; adds what was new to `applied`.
async fn apply_member(
    tx: &mut PgConnection,
    member: &impl Projector,
    events: &[Event],
    applied: &mut Vec<Event>,
) -> Result<(), BatchError> {
    let mine = share(member, events);
    if mine.is_empty() {
        return Ok(());
    }
    for event in apply_in(tx, member, &crate::consumer::Target::Live, &mine).await? {
        if !applied.iter().any(|a| a.id == event.id) {
            applied.push(event);
        }
    }
    Ok(())
}

impl Consume for ReadModels {
    fn spec(&self) -> &'static ConsumerSpec {
        &READ_MODELS
    }

    async fn apply_batch(&self, tx: &mut PgConnection, events: &[Event]) -> Result<Vec<Event>, BatchError> {
        let mut applied = Vec::with_capacity(events.len());
        apply_member(tx, &self.profiles, events, &mut applied).await?;
        apply_member(tx, &self.activities, events, &mut applied).await?;
        apply_member(tx, &self.leaderboards, events, &mut applied).await?;
        apply_member(tx, &self.guide, events, &mut applied).await?;
        apply_member(tx, &self.places, events, &mut applied).await?;
        Ok(applied)
    }

    /// Each member refreshes its caches from the new events of its types (an event new to one
    /// member only reaches the others' refresh too: refreshing is idempotent).
    async fn after_commit(&self, applied: &[Event]) {
        Projector::after_commit(&self.profiles, &share(&self.profiles, applied)).await;
        Projector::after_commit(&self.activities, &share(&self.activities, applied)).await;
        Projector::after_commit(&self.leaderboards, &share(&self.leaderboards, applied)).await;
        Projector::after_commit(&self.guide, &share(&self.guide, applied)).await;
        Projector::after_commit(&self.places, &share(&self.places, applied)).await;
    }
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
        })
    }
}
