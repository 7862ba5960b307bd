//! Closing leaderboard periods: when a week or month ends (app time zone), one worker records
//! `leaderboard.period_closed` with its final standings (top 100) and participant count.
//!
//! Every workers process runs [`run`]: a round at start and every `PERIOD_CLOSE_INTERVAL_SECS`.
//! A round closes, per kind, every period that ended at least `PERIOD_CLOSE_GRACE_SECS` ago and
//! is not closed yet: the ones after the last closed period, or, before any was closed, from the
//! period of the first points award in the log. So a deployment that was down over a boundary
//! catches up at start, however many periods it missed (at most [`MAX_PER_ROUND`] per kind and
//! round; the next round goes on).
//!
//! Exactly once across replicas: each period is closed in one transaction that first inserts
//! its row in `rewards.closed_periods` (primary key `(period, period_key)`). A replica racing
//! for the same period waits on that key until the first commits, then finds it taken and
//! records nothing. The standings and the event are written in that same transaction.
//!
//! The standings come from the log (`points.earned` whose `occurred_at` falls in the period,
//! as the leaderboards projection counts them; people whose account was deleted left the
//! boards and are left out), ranked like the boards: competition ranks on points, ties ordered
//! by who reached their score first. The grace period lets awards committed around the boundary
//! land first; an award recorded later with an older time still counts on the period's board,
//! but not in its final standings, which are final.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use events::{ClosedPeriod, Event, FinalStanding, LeaderboardPeriodClosed, MAX_STANDINGS, period_aggregate_id};
use platform::{Settings, eventstore};
use readmodels::periods::Period;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// The `source` of `leaderboard.period_closed`.
pub const SOURCE: &str = "period-closer";

/// Periods closed per kind in one round.
pub const MAX_PER_ROUND: usize = 100;

/// One period that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Its kind.
    pub period: ClosedPeriod,
    /// Its public key (`2026-W47`, `2026-11`).
    pub key: String,
    /// Where it began.
    pub starts_at: DateTime<Utc>,
    /// Where it ended.
    pub ends_at: DateTime<Utc>,
}

fn kind(period: ClosedPeriod) -> Period {
    match period {
        ClosedPeriod::Weekly => Period::Weekly,
        ClosedPeriod::Monthly => Period::Monthly,
    }
}

/// The periods of `period` from the one containing `from` on that ended by `cutoff`, at most
/// `limit` of them (pure).
pub fn ended_since(
    period: ClosedPeriod,
    from: DateTime<Utc>,
    cutoff: DateTime<Utc>,
    tz: Tz,
    limit: usize,
) -> Vec<Ended> {
    let kind = kind(period);
    let mut out = Vec::new();
    let Some(mut start) = kind.start_at(from, tz) else { return out };
    while out.len() < limit {
        let Some(end) = kind.next_reset_at(start, tz) else { break };
        if end > cutoff {
            break;
        }
        let key = Period::public_key(&kind.key_at(start, tz)).to_owned();
        out.push(Ended { period, key, starts_at: start, ends_at: end });
        start = end;
    }
    out
}

/// Closes every period due at `now` (see the module docs) and returns those this call closed.
pub async fn close_due(
    db: &PgPool,
    tz: Tz,
    grace: std::time::Duration,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Ended>> {
    let cutoff = now - chrono::TimeDelta::from_std(grace)?;
    let mut closed = Vec::new();
    for period in [ClosedPeriod::Weekly, ClosedPeriod::Monthly] {
        let last: Option<DateTime<Utc>> =
            sqlx::query_scalar("select max(ends_at) from rewards.closed_periods where period = $1")
                .bind(period.name())
                .fetch_one(db)
                .await?;
        let from = match last {
            Some(end) => end,
            None => {
                let first: Option<DateTime<Utc>> =
                    sqlx::query_scalar("select min(occurred_at) from eventstore.events where type = 'points.earned'")
                        .fetch_one(db)
                        .await?;
                match first {
                    Some(first) => first,
                    None => continue,
                }
            }
        };
        for ended in ended_since(period, from, cutoff, tz, MAX_PER_ROUND) {
            if close(db, &ended, now).await? {
                tracing::info!(period = ended.period.name(), period_key = ended.key, "period closed");
                metrics::counter!("periods_closed_total", "period" => ended.period.name()).increment(1);
                closed.push(ended);
            }
        }
    }
    Ok(closed)
}

#[derive(sqlx::FromRow)]
struct Row {
    rank: i64,
    user_id: uuid::Uuid,
    points: i64,
    participants: i64,
}

/// Closes one period unless someone did: `true` when this call recorded it.
async fn close(db: &PgPool, ended: &Ended, now: DateTime<Utc>) -> anyhow::Result<bool> {
    let mut tx = db.begin().await?;
    let event_id = uuid::Uuid::now_v7();
    let claimed = sqlx::query(
        "insert into rewards.closed_periods (period, period_key, ends_at, event_id, closed_at)
         values ($1, $2, $3, $4, $5) on conflict do nothing",
    )
    .bind(ended.period.name())
    .bind(&ended.key)
    .bind(ended.ends_at)
    .bind(event_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() == 0 {
        return Ok(false);
    }
    let rows: Vec<Row> = sqlx::query_as(
        "with scores as (
           select (data->>'user_id')::uuid as user_id, sum((data->>'amount')::bigint)::bigint as points,
                  max(occurred_at) as reached_at
           from eventstore.events
           where type = 'points.earned' and occurred_at >= $1 and occurred_at < $2
           group by 1),
         live as (
           select * from scores s
           where not exists (select 1 from eventstore.events d where d.aggregate_id = s.user_id and d.type = 'user.deleted'))
         select rank() over (order by points desc)::bigint as rank, user_id, points, count(*) over ()::bigint as participants
         from live order by points desc, reached_at asc, user_id limit $3",
    )
    .bind(ended.starts_at)
    .bind(ended.ends_at)
    .bind(MAX_STANDINGS as i64)
    .fetch_all(&mut *tx)
    .await?;
    let participants = rows.first().map_or(0, |r| r.participants);
    let standings =
        rows.into_iter().map(|r| FinalStanding { rank: r.rank, user_id: r.user_id, points: r.points }).collect();
    let data = LeaderboardPeriodClosed {
        period: ended.period,
        period_key: ended.key.clone(),
        closed_at: now,
        participants,
        standings,
    };
    let mut event = Event::new(SOURCE, period_aggregate_id(ended.period, &ended.key), data.into());
    event.id = event_id;
    let mut events = [event];
    eventstore::append(&mut tx, &mut events).await?;
    tx.commit().await?;
    if let Err(e) = eventstore::wake_relay(db).await {
        tracing::warn!(error = %e, "relay not woken; it publishes the closed period on its next tick");
    }
    Ok(true)
}

/// Closes due periods at start and every `PERIOD_CLOSE_INTERVAL_SECS` until `shutdown`.
pub async fn run(settings: Settings, db: PgPool, shutdown: CancellationToken) {
    if settings.period_close_interval.is_zero() {
        return;
    }
    loop {
        if let Err(e) = close_due(&db, settings.app_timezone, settings.period_close_grace, Utc::now()).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "closing ended leaderboard periods failed; the next round retries"
            );
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(settings.period_close_interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const SEOUL: Tz = chrono_tz::Asia::Seoul;

    #[test]
    fn given_a_first_award_two_weeks_back_then_the_two_weeks_that_ended_are_due_in_order() {
        // Wednesday 2026-11-11 (W46); now is Tuesday 2026-11-24 10:00 KST (W48).
        let first = Utc.with_ymd_and_hms(2026, 11, 11, 3, 0, 0).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 0).unwrap();
        let due = ended_since(ClosedPeriod::Weekly, first, now, SEOUL, 10);
        let keys: Vec<&str> = due.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["2026-W46", "2026-W47"]);
        // W47 ended at Monday 2026-11-23 00:00 KST.
        assert_eq!(due[1].ends_at, Utc.with_ymd_and_hms(2026, 11, 22, 15, 0, 0).unwrap());
        assert_eq!(due[0].ends_at, due[1].starts_at);
        // The month is not over.
        assert!(ended_since(ClosedPeriod::Monthly, first, now, SEOUL, 10).is_empty());
    }

    #[test]
    fn a_period_is_due_only_once_the_grace_after_its_end_has_passed() {
        let end = Utc.with_ymd_and_hms(2026, 11, 22, 15, 0, 0).unwrap();
        let inside = end - chrono::TimeDelta::hours(1);
        assert!(ended_since(ClosedPeriod::Weekly, inside, end - chrono::TimeDelta::seconds(1), SEOUL, 10).is_empty());
        assert_eq!(ended_since(ClosedPeriod::Weekly, inside, end, SEOUL, 10).len(), 1);
        assert_eq!(ended_since(ClosedPeriod::Weekly, inside - chrono::TimeDelta::days(70), end, SEOUL, 3).len(), 3);
    }
}
