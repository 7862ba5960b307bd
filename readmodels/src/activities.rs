//! The activity history (`read.activities`): one row per scan, recycle, check-in, invite,
//! points award and level-up, keyed by the event id (so applying twice cannot add a row twice).
//! Written by its projector ([`record`], and [`record_all`] for a run of events; [`forget`]),
//! read by query-api ([`page`]).
//!
//! Order-tolerant: an entry shows the sum of the awards paid for it whether they arrive before
//! or after the entry itself (each side fills in the other).

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
/// A points award also adds its points to the entry it was paid for (see [`record_all`]).
pub async fn record(tx: &mut PgConnection, event: &Event) -> sqlx::Result<()> {
    record_all(tx, std::slice::from_ref(event)).await
}

/// Records the history entries of `events` in two statements: one inserts every entry, one
/// sets, on each entry that awards among `events` were paid for, the sum of every award paid
/// for it (a check-in earns its attendance points and, on a streak day, a bonus). An entry's
/// points are thus the sum of its awards whatever order they and it arrive in, so a rebuild
/// that batches differently gives the same history.
pub async fn record_all(tx: &mut PgConnection, events: &[Event]) -> sqlx::Result<()> {
    let (mut ids, mut users, mut actions, mut amounts, mut metadata, mut at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut sources = Vec::new();
    for event in events {
        let Some((user_id, action, details)) = entry(event) else { continue };
        let amount = match &event.data {
            EventData::PointsEarned(p) => {
                sources.push(p.source_event_id);
                p.amount
            }
            _ => 0,
        };
        ids.push(event.id);
        users.push(user_id);
        actions.push(action);
        amounts.push(amount);
        metadata.push(details);
        at.push(event.occurred_at);
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "insert into activities (id, user_id, action, points_earned, metadata, created_at)
         select e.id, e.user_id, e.action,
                case when e.action = 'points' then e.amount
                     else coalesce((select sum(a.points_earned) from activities a
                                    where a.user_id = e.user_id and a.action = 'points'
                                      and a.metadata->>'source_event_id' = e.id::text), 0) end,
                e.metadata, e.created_at
         from unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::jsonb[], $6::timestamptz[])
              as e(id, user_id, action, amount, metadata, created_at)
         where not exists (select 1 from activities_tombstones t where t.user_id = e.user_id)
         on conflict (id) do nothing",
    )
    .bind(&ids)
    .bind(&users)
    .bind(&actions)
    .bind(&amounts)
    .bind(&metadata)
    .bind(&at)
    .execute(&mut *tx)
    .await?;
    if !sources.is_empty() {
        sqlx::query(
            "update activities a set points_earned = coalesce((select sum(p.points_earned) from activities p
                                                               where p.user_id = a.user_id and p.action = 'points'
                                                                 and p.metadata->>'source_event_id' = a.id::text), 0)
             where a.id = any($1) and a.action <> 'points'",
        )
        .bind(&sources)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Forgets a person's history, with a tombstone so late events stay out.
pub async fn forget(tx: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    crate::forget_person(tx, user_id, &["activities"], "activities_tombstones").await
}
