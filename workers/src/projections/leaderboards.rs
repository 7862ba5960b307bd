//! The leaderboards projection: per-period scores in `leaderboard_scores`, mirrored into
//! Redis sorted sets after each commit (see `readmodels::leaderboards`).
//!
//! Commutative, so order-free: a `points.earned` adds its amount to the weekly, monthly and
//! all-time rows of the period its `occurred_at` falls in (app time zone), and `reached_at`
//! only moves forward. `user.deleted` removes the person from every board.

use chrono_tz::Tz;
use events::{Event, EventData};
use platform::{
    redis::Redis,
    topology::{ConsumerSpec, LEADERBOARDS},
};
use readmodels::{
    leaderboards::{self as leaderboard, ScoreRow},
    periods::Period,
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::consumer::{ApplyError, Projector};

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
}

impl Projector for LeaderboardsProjector {
    const TABLES: &'static [&'static str] = &["leaderboard_scores", "leaderboard_tombstones"];

    fn spec(&self) -> &'static ConsumerSpec {
        &LEADERBOARDS
    }

    async fn after_rebuild(&self) {
        if let Err(e) = leaderboard::reset(&self.redis).await {
            tracing::warn!(error = format!("{e:#}"), "Redis leaderboards not reset after the rebuild");
        }
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        match &event.data {
            EventData::PointsEarned(p) => {
                let keys: Vec<String> =
                    Period::ALL.iter().map(|period| period.key_at(event.occurred_at, self.timezone)).collect();
                sqlx::query(
                    "insert into leaderboard_scores (period_key, user_id, points, reached_at)
                     select k, $2, $3, $4 from unnest($1::text[]) as k
                     where not exists (select 1 from leaderboard_tombstones where user_id = $2)
                     on conflict (period_key, user_id) do update
                       set points = leaderboard_scores.points + excluded.points,
                           reached_at = greatest(leaderboard_scores.reached_at, excluded.reached_at)",
                )
                .bind(&keys)
                .bind(p.user_id)
                .bind(p.amount)
                .bind(event.occurred_at)
                .execute(&mut *tx)
                .await?;
            }
            EventData::UserDeleted(d) => {
                sqlx::query("delete from leaderboard_scores where user_id = $1")
                    .bind(d.user_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("insert into leaderboard_tombstones (user_id) values ($1) on conflict do nothing")
                    .bind(d.user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn after_commit(&self, applied: &[Event]) {
        let mut earners: Vec<Uuid> = Vec::new();
        for event in applied {
            match &event.data {
                EventData::PointsEarned(p) => earners.push(p.user_id),
                EventData::UserDeleted(d) => {
                    if let Err(e) = leaderboard::forget(&self.redis, d.user_id).await {
                        tracing::debug!(error = format!("{e:#}"), "leaderboards not updated in Redis");
                    }
                }
                _ => {}
            }
        }
        if earners.is_empty() {
            return;
        }
        earners.sort();
        earners.dedup();
        let keys: Vec<String> = applied
            .iter()
            .flat_map(|e| Period::ALL.map(|p| p.key_at(e.occurred_at, self.timezone)))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let rows: Result<Vec<ScoreRow>, _> = sqlx::query_as(
            "select period_key, user_id, points, reached_at from read.leaderboard_scores
             where user_id = any($1) and period_key = any($2)",
        )
        .bind(&earners)
        .bind(&keys)
        .fetch_all(&self.db)
        .await;
        let result = match rows {
            Ok(rows) => leaderboard::write(&self.redis, &rows).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = result {
            // PostgreSQL has the truth; Redis catches up on the next write or rebuild.
            tracing::debug!(error = format!("{e:#}"), "leaderboards not updated in Redis");
        }
    }
}

impl crate::registry::Build for LeaderboardsProjector {
    fn build(deps: &crate::registry::Deps) -> anyhow::Result<Self> {
        Ok(Self::new(deps.db.clone(), deps.redis.clone(), deps.settings.app_timezone))
    }
}
