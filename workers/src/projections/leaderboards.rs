//! The leaderboards projection: per-period scores in `leaderboard_scores`, mirrored into
//! Redis sorted sets after each commit (SQL and Redis codec in `readmodels::leaderboards`).
//!
//! Commutative, so order-free: a `points.earned` adds its amount to the weekly, monthly and
//! all-time rows of the period its `occurred_at` falls in (app time zone), and `reached_at`
//! only moves forward. `user.deleted` removes the person from every board.
//! `leaderboard.period_closed` stores the period's final standings (`period_results`), once.

use std::collections::BTreeSet;

use chrono_tz::Tz;
use events::{Event, EventData};
use platform::{
    changes,
    redis::Redis,
    topology::{ConsumerSpec, LEADERBOARDS},
};
use readmodels::{leaderboards as leaderboard, periods::Period};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::consumer::{ApplyError, Part, Projector, parts};

/// Builds `leaderboard_scores` and the Redis boards.
pub struct LeaderboardsProjector {
    db: PgPool,
    redis: Redis,
    timezone: Tz,
}

impl LeaderboardsProjector {
    /// A projector for boards in `timezone`.
    pub fn new(db: PgPool, redis: Redis, timezone: Tz) -> Self {
        Self { db, redis, timezone }
    }

    /// The boards an event at `event`'s time counts on.
    fn keys(&self, event: &Event) -> Vec<String> {
        Period::keys_at(event.occurred_at, self.timezone)
    }
}

impl Projector for LeaderboardsProjector {
    const TABLES: &'static [&'static str] = &["leaderboard_scores", "leaderboard_tombstones", "period_results"];

    fn spec(&self) -> &'static ConsumerSpec {
        &LEADERBOARDS
    }

    async fn after_rebuild(&self) {
        if let Err(e) = leaderboard::reset(&self.redis).await {
            tracing::warn!(error = format!("{e:#}"), "Redis leaderboards not reset after the rebuild");
        }
        changes::publish(&self.redis, LEADERBOARDS.name, &[]).await;
    }

    /// Runs of points go in one statement each ([`leaderboard::write::add_all`]); anything else
    /// is applied on its own, in order.
    async fn apply_all(&self, tx: &mut PgConnection, events: &[Event]) -> Result<(), ApplyError> {
        for part in parts(events, |e| matches!(e.data, EventData::PointsEarned(_))) {
            match part {
                Part::Run(run) => {
                    let awards: Vec<leaderboard::write::Award> = run
                        .iter()
                        .filter_map(|event| match &event.data {
                            EventData::PointsEarned(p) => Some(leaderboard::write::Award {
                                keys: self.keys(event),
                                user_id: p.user_id,
                                amount: p.amount,
                                at: event.occurred_at,
                            }),
                            _ => None,
                        })
                        .collect();
                    leaderboard::write::add_all(tx, &awards).await?;
                }
                Part::Alone(event) => self.apply(tx, event).await?,
            }
        }
        Ok(())
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        match &event.data {
            EventData::PointsEarned(p) => {
                leaderboard::write::add_points(tx, &self.keys(event), p.user_id, p.amount, event.occurred_at).await?
            }
            EventData::UserDeleted(d) => leaderboard::write::forget(tx, d.user_id).await?,
            EventData::LeaderboardPeriodClosed(c) => {
                let key = format!("{}:{}", c.period.name(), c.period_key);
                leaderboard::write::period_closed(tx, &key, c).await?
            }
            _ => {}
        }
        Ok(())
    }

    async fn after_commit(&self, applied: &[Event]) {
        let mut earners = BTreeSet::<Uuid>::new();
        let mut forgotten = Vec::new();
        let mut keys = BTreeSet::<String>::new();
        for event in applied {
            match &event.data {
                EventData::PointsEarned(p) => {
                    earners.insert(p.user_id);
                    keys.extend(self.keys(event));
                }
                EventData::UserDeleted(d) => {
                    if let Err(e) = leaderboard::forget(&self.redis, d.user_id).await {
                        tracing::debug!(error = format!("{e:#}"), "leaderboards not updated in Redis");
                    }
                    forgotten.push(d.user_id);
                }
                _ => {}
            }
        }
        if earners.is_empty() && forgotten.is_empty() {
            return;
        }
        let (earners, keys): (Vec<Uuid>, Vec<String>) = (earners.into_iter().collect(), keys.into_iter().collect());
        if !earners.is_empty()
            && let Err(e) = leaderboard::mirror(&self.db, &self.redis, &earners, &keys).await
        {
            // PostgreSQL has the truth; Redis catches up on the next write or rebuild.
            tracing::debug!(error = format!("{e:#}"), "leaderboards not updated in Redis");
        }
        // After the sets changed: what the API instances hold in memory goes.
        let changed: Vec<Uuid> = earners.into_iter().chain(forgotten).collect();
        changes::publish(&self.redis, LEADERBOARDS.name, &changed).await;
    }
}

impl crate::registry::Build for LeaderboardsProjector {
    fn build(deps: &crate::registry::Deps) -> anyhow::Result<Self> {
        Ok(Self::new(deps.db.clone(), deps.redis.clone(), deps.settings.app_timezone))
    }
}
