//! The activity history: `activities`, one row per scan, recycle, check-in, invite, points
//! award and level-up, keyed by the event id (so applying twice cannot add a row twice).
//!
//! Order-tolerant: a scan shows the points it earned whether the award arrives before or after
//! the scan itself (each side fills in the other). `user.deleted` removes the person's history.

use events::{Event, EventData};
use platform::topology::{ACTIVITIES, ConsumerSpec};
use serde_json::json;
use sqlx::PgConnection;

use crate::consumer::{ApplyError, Projector};

/// Builds `activities`.
pub struct ActivitiesProjector;

impl Projector for ActivitiesProjector {
    const TABLES: &'static [&'static str] = &["activities", "activities_tombstones"];

    fn spec(&self) -> &'static ConsumerSpec {
        &ACTIVITIES
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        let (user_id, action, metadata) = match &event.data {
            EventData::ScanRecorded(s) => (
                s.user_id,
                "scan",
                json!({"scan_id": s.scan_id, "category": s.category, "item_name": s.item_name, "confidence": s.confidence}),
            ),
            EventData::RecycleCompleted(r) => (
                r.user_id,
                "recycle",
                json!({"recycle_id": r.recycle_id, "category": r.category, "bin_id": r.bin_id, "center_id": r.center_id, "location": r.location}),
            ),
            EventData::AttendanceCheckedIn(a) => (a.user_id, "attendance", json!({"date": a.date})),
            EventData::InviteAccepted(i) => (i.inviter_id, "invite", json!({"invitee_id": i.invitee_id})),
            EventData::PointsEarned(p) => (
                p.user_id,
                "points",
                json!({"amount": p.amount, "reason": p.reason, "source_event_id": p.source_event_id}),
            ),
            EventData::LevelReached(l) => (l.user_id, "level_up", json!({"level": l.level, "points": l.points})),
            EventData::UserDeleted(d) => {
                sqlx::query("delete from activities where user_id = $1").bind(d.user_id).execute(&mut *tx).await?;
                sqlx::query("insert into activities_tombstones (user_id) values ($1) on conflict do nothing")
                    .bind(d.user_id)
                    .execute(&mut *tx)
                    .await?;
                return Ok(());
            }
            _ => return Ok(()),
        };
        let amount = match &event.data {
            EventData::PointsEarned(p) => p.amount,
            _ => 0,
        };
        // The points a scan/recycle/... earned, when its award was applied first.
        sqlx::query(
            "insert into activities (id, user_id, action, points_earned, metadata, created_at)
             select $1, $2, $3,
                    case when $3 = 'points' then $4
                         else coalesce((select a.points_earned from activities a
                                        where a.user_id = $2 and a.action = 'points'
                                          and a.metadata->>'source_event_id' = $1::text), 0) end,
                    $5, $6
             where not exists (select 1 from activities_tombstones where user_id = $2)
             on conflict (id) do nothing",
        )
        .bind(event.id)
        .bind(user_id)
        .bind(action)
        .bind(amount)
        .bind(&metadata)
        .bind(event.occurred_at)
        .execute(&mut *tx)
        .await?;
        if let EventData::PointsEarned(p) = &event.data {
            sqlx::query("update activities set points_earned = $2 where id = $1 and action <> 'points'")
                .bind(p.source_event_id)
                .bind(p.amount)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }
}

impl crate::registry::Build for ActivitiesProjector {
    fn build(_: &crate::registry::Deps) -> anyhow::Result<Self> {
        Ok(Self)
    }
}
