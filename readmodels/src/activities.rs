//! The activity history (`read.activities`): one row per scan, recycle, check-in, invite,
//! points award and level-up, keyed by the event id (so applying twice cannot add a row twice).
//! Written by its projector ([`record`], [`forget`]), read by query-api ([`page`]).
//!
//! Order-tolerant: a scan shows the points it earned whether the award arrives before or after
//! the scan itself (each side fills in the other).

use chrono::{DateTime, Utc};
use events::{Event, EventData};
use serde::Serialize;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// One entry of the history.
#[derive(Debug, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Activity {
    /// The event id.
    pub id: Uuid,
    /// `scan`, `recycle`, `attendance`, `invite`, `points` or `level_up`.
    pub action: String,
    /// Points this activity earned.
    pub points_earned: i64,
    /// Details of the action.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}

/// A user's history, newest first: up to `limit` entries before `after` (`(created_at, id)`,
/// keyset pagination, so pages stay stable while new activity arrives), and whether more follow.
pub async fn page(
    db: &PgPool,
    user_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<(Vec<Activity>, bool)> {
    let items: Vec<Activity> = sqlx::query_as(
        "select id, action, points_earned, metadata, created_at from read.activities
         where user_id = $1 and ($2::timestamptz is null or (created_at, id) < ($2, $3))
         order by created_at desc, id desc limit $4",
    )
    .bind(user_id)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    Ok(crate::page_of(items, limit))
}

/// What a scan in the history was of.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScannedItem {
    /// The item name the classifier gave.
    pub item_name: String,
    /// Its category code.
    pub category: String,
}

/// What the user's scan `scan_id` was of, if it is in their history.
pub async fn scan(db: &PgPool, user_id: Uuid, scan_id: Uuid) -> sqlx::Result<Option<ScannedItem>> {
    sqlx::query_as(
        "select metadata->>'item_name' as item_name, metadata->>'category' as category from read.activities
         where user_id = $1 and action = 'scan' and metadata->>'scan_id' = $2::text",
    )
    .bind(user_id)
    .bind(scan_id)
    .fetch_optional(db)
    .await
}

/// The history entry an event makes: `(user, action, details)`, `None` for events that make none.
pub fn entry(event: &Event) -> Option<(Uuid, &'static str, serde_json::Value)> {
    Some(match &event.data {
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
        EventData::PointsEarned(p) => {
            (p.user_id, "points", json!({"amount": p.amount, "reason": p.reason, "source_event_id": p.source_event_id}))
        }
        EventData::LevelReached(l) => (l.user_id, "level_up", json!({"level": l.level, "points": l.points})),
        _ => return None,
    })
}

/// Records the history entry of `event` (see [`entry`]), unless the person is forgotten.
/// A points award also fills in the points of the entry it was paid for.
pub async fn record(tx: &mut PgConnection, event: &Event) -> sqlx::Result<()> {
    let Some((user_id, action, metadata)) = entry(event) else { return Ok(()) };
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

/// Forgets a person's history, with a tombstone so late events stay out.
pub async fn forget(tx: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    crate::forget_person(tx, user_id, &["activities"], "activities_tombstones").await
}
