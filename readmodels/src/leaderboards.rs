//! Leaderboards in Redis sorted sets, with `read.leaderboard_scores` in PostgreSQL as their
//! durable source. Written by the leaderboards projector, read (and rebuilt) by query-api.
//!
//! One sorted set per period key (`{prefix}:lb:weekly:2026-W47`), member = user id. The score
//! packs the points and the tie-break into one exact double: `points · 2^29 + (2^29 − 1 − s)`,
//! where `s` is the seconds from 2024-01-01 to when the user reached those points, so among
//! equal points whoever got there first sorts higher. 24 bits of points (16.7 million, far past
//! any real total; larger totals saturate) and 29 bits of seconds (17 years) fit the 53-bit
//! mantissa. Points only grow, so writes use `ZADD GT`: replaying or racing writers can only
//! move a score forward, never back.
//!
//! A set is trusted only when its `…:ready` marker exists; the marker is set after a full
//! rebuild from PostgreSQL. Flushing Redis removes both, and the next query rebuilds.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use platform::redis::Redis;

const TIME_BITS: u32 = 29;
const POINTS_CAP: i64 = (1 << 24) - 1;
const EPOCH_SECS: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z

/// The sorted-set score of `points` reached at `reached_at`.
pub fn score(points: i64, reached_at: DateTime<Utc>) -> f64 {
    let slot = (1i64 << TIME_BITS) - 1;
    let secs = (reached_at.timestamp() - EPOCH_SECS).clamp(0, slot);
    (points.clamp(0, POINTS_CAP) * (1 << TIME_BITS) + (slot - secs)) as f64
}

/// The points a score encodes.
pub fn points_of(score: f64) -> i64 {
    (score as i64) >> TIME_BITS
}

/// The lowest score of anyone with more than `points`.
pub fn min_score_above(points: i64) -> f64 {
    ((points.clamp(0, POINTS_CAP) + 1) * (1 << TIME_BITS)) as f64
}

/// The sorted set of a period key.
pub fn key(redis: &Redis, period_key: &str) -> String {
    redis.key(format_args!("lb:{period_key}"))
}

/// The marker saying the set of `period_key` is complete.
pub fn ready_key(redis: &Redis, period_key: &str) -> String {
    redis.key(format_args!("lb:{period_key}:ready"))
}

/// The set of every period key that has a sorted set (to forget a user everywhere).
pub fn index_key(redis: &Redis) -> String {
    redis.key("lb:periods")
}

/// A row of `read.leaderboard_scores`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScoreRow {
    /// Period key.
    pub period_key: String,
    /// User.
    pub user_id: Uuid,
    /// Points in the period.
    pub points: i64,
    /// When they reached them.
    pub reached_at: DateTime<Utc>,
}

/// Writes scores with `ZADD GT` (never lowers one).
pub async fn write(redis: &Redis, rows: &[ScoreRow]) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for row in rows {
        pipe.cmd("ZADD")
            .arg(key(redis, &row.period_key))
            .arg("GT")
            .arg(score(row.points, row.reached_at))
            .arg(row.user_id.to_string())
            .ignore();
        pipe.cmd("SADD").arg(index_key(redis)).arg(&row.period_key).ignore();
    }
    redis.run(move |mut c| async move { pipe.query_async::<()>(&mut c).await }).await
}

/// Removes a user from every leaderboard.
pub async fn forget(redis: &Redis, user_id: Uuid) -> anyhow::Result<()> {
    let index = index_key(redis);
    let periods: Vec<String> =
        redis.run(move |mut c| async move { redis::cmd("SMEMBERS").arg(index).query_async(&mut c).await }).await?;
    let mut pipe = redis::pipe();
    for period in periods {
        pipe.cmd("ZREM").arg(key(redis, &period)).arg(user_id.to_string()).ignore();
    }
    redis.run(move |mut c| async move { pipe.query_async::<()>(&mut c).await }).await
}

/// Drops every board and its ready marker (after their source table was rebuilt); the next
/// query of each rebuilds it from PostgreSQL. `ZADD GT` could not lower a score, so a rebuilt
/// table that holds less than Redis must not be merged into the old sets.
pub async fn reset(redis: &Redis) -> anyhow::Result<()> {
    let index = index_key(redis);
    let periods: Vec<String> =
        redis.run(move |mut c| async move { redis::cmd("SMEMBERS").arg(index).query_async(&mut c).await }).await?;
    let mut pipe = redis::pipe();
    for period in periods {
        pipe.cmd("UNLINK").arg(ready_key(redis, &period)).arg(key(redis, &period)).ignore();
    }
    redis.run(move |mut c| async move { pipe.query_async::<()>(&mut c).await }).await
}

/// A scored user, before names are attached.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Scored {
    /// Competition rank (ties share it).
    pub rank: i64,
    /// Who.
    pub user_id: Uuid,
    /// Points in the period.
    pub points: i64,
}

/// Where a user stands on a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Standing {
    /// 0-based position (ties broken by who got there first).
    pub position: i64,
    /// Points in the period.
    pub points: i64,
}

/// Reads boards from Redis, rebuilding a missing one from PostgreSQL.
struct RedisBoard<'a> {
    redis: &'a Redis,
    db: &'a sqlx::PgPool,
    key: &'a str,
}

impl RedisBoard<'_> {
    async fn ensure_built(&self) -> anyhow::Result<()> {
        let ready = ready_key(self.redis, self.key);
        let check = ready.clone();
        let exists: bool = self
            .redis
            .run(move |mut c| async move { redis::cmd("EXISTS").arg(check).query_async(&mut c).await })
            .await?;
        if exists {
            return Ok(());
        }
        let rows = scores(self.db, None, &[self.key.to_owned()]).await?;
        for chunk in rows.chunks(1000) {
            write(self.redis, chunk).await?;
        }
        self.redis
            .run(move |mut c| async move { redis::cmd("SET").arg(ready).arg("1").query_async::<()>(&mut c).await })
            .await?;
        tracing::info!(period = self.key, users = rows.len(), "leaderboard rebuilt in Redis from PostgreSQL");
        Ok(())
    }

    /// Entries at positions `offset..offset + limit` (0-based), with competition ranks.
    async fn page(&self, offset: i64, limit: i64) -> anyhow::Result<Vec<Scored>> {
        self.ensure_built().await?;
        let key = key(self.redis, self.key);
        let k = key.clone();
        let raw: Vec<(String, f64)> = self
            .redis
            .run(move |mut c| async move {
                redis::cmd("ZREVRANGE")
                    .arg(k)
                    .arg(offset)
                    .arg(offset + limit - 1)
                    .arg("WITHSCORES")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let mut out: Vec<Scored> = Vec::with_capacity(raw.len());
        for (i, (member, score)) in raw.into_iter().enumerate() {
            let points = points_of(score);
            let rank = match out.last() {
                Some(prev) if prev.points == points => prev.rank,
                Some(_) => offset + i as i64 + 1,
                None => {
                    let k = key.clone();
                    let above: i64 = self
                        .redis
                        .run(move |mut c| async move {
                            redis::cmd("ZCOUNT")
                                .arg(k)
                                .arg(min_score_above(points))
                                .arg("+inf")
                                .query_async(&mut c)
                                .await
                        })
                        .await?;
                    above + 1
                }
            };
            out.push(Scored { rank, user_id: member.parse()?, points });
        }
        Ok(out)
    }

    /// My 0-based position and points.
    async fn position(&self, user_id: Uuid) -> anyhow::Result<Option<Standing>> {
        self.ensure_built().await?;
        let key = key(self.redis, self.key);
        let member = user_id.to_string();
        let (pos, score): (Option<i64>, Option<f64>) = self
            .redis
            .run(move |mut c| async move {
                redis::pipe()
                    .cmd("ZREVRANK")
                    .arg(&key)
                    .arg(&member)
                    .cmd("ZSCORE")
                    .arg(&key)
                    .arg(&member)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(pos.zip(score).map(|(position, score)| Standing { position, points: points_of(score) }))
    }
}

/// The same reads straight from PostgreSQL.
async fn pg_page(db: &sqlx::PgPool, key: &str, offset: i64, limit: i64) -> sqlx::Result<Vec<Scored>> {
    sqlx::query_as(
        "select rank, user_id, points from (
           select rank() over (order by points desc)::bigint as rank, user_id, points, reached_at
           from read.leaderboard_scores where period_key = $1) ranked
         order by points desc, reached_at asc, user_id limit $2 offset $3",
    )
    .bind(key)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await
}

async fn pg_position(db: &sqlx::PgPool, key: &str, user_id: Uuid) -> sqlx::Result<Option<Standing>> {
    sqlx::query_as(
        "select position, points from (
           select row_number() over (order by points desc, reached_at asc, user_id)::bigint - 1 as position, user_id, points
           from read.leaderboard_scores where period_key = $1) ranked
         where user_id = $2",
    )
    .bind(key)
    .bind(user_id)
    .fetch_optional(db)
    .await
}

/// Entries at positions `offset..offset + limit` (0-based) of the board `key`: from Redis
/// (rebuilding a missing board from PostgreSQL) unless `primary`, else or with Redis down from
/// PostgreSQL.
pub async fn page(
    db: &sqlx::PgPool,
    redis: &Redis,
    key: &str,
    offset: i64,
    limit: i64,
    primary: bool,
) -> sqlx::Result<Vec<Scored>> {
    if !primary {
        match (RedisBoard { redis, db, key }).page(offset, limit).await {
            Ok(page) => return Ok(page),
            Err(e) => tracing::debug!(error = format!("{e:#}"), "leaderboard from PostgreSQL: Redis unavailable"),
        }
    }
    pg_page(db, key, offset, limit).await
}

/// A user's 0-based position and points on the board `key` (layered like [`page`]).
pub async fn position(
    db: &sqlx::PgPool,
    redis: &Redis,
    key: &str,
    user_id: Uuid,
    primary: bool,
) -> sqlx::Result<Option<Standing>> {
    if !primary {
        match (RedisBoard { redis, db, key }).position(user_id).await {
            Ok(p) => return Ok(p),
            Err(e) => tracing::debug!(error = format!("{e:#}"), "leaderboard from PostgreSQL: Redis unavailable"),
        }
    }
    pg_position(db, key, user_id).await
}

/// A user's points on the board `key` (PostgreSQL), `None` when they have none there.
pub async fn points(db: &sqlx::PgPool, key: &str, user_id: Uuid) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("select points from read.leaderboard_scores where period_key = $1 and user_id = $2")
        .bind(key)
        .bind(user_id)
        .fetch_optional(db)
        .await
}

/// The committed scores of `users` (everyone when `None`) on the boards `keys`.
///
/// Two statements, not one with `$1 is null or user_id = any($1)`: under such a condition a
/// generic plan cannot use the primary key for the people, and would read the boards whole on
/// every refresh after a batch; as written, the people's rows are key lookups whatever plan the
/// server picks.
pub async fn scores(db: &sqlx::PgPool, users: Option<&[Uuid]>, keys: &[String]) -> sqlx::Result<Vec<ScoreRow>> {
    const COLUMNS: &str = "period_key, user_id, points, reached_at";
    match users {
        Some(users) => {
            sqlx::query_as(&format!(
                "select {COLUMNS} from read.leaderboard_scores where period_key = any($2) and user_id = any($1)"
            ))
            .bind(users)
            .bind(keys)
            .fetch_all(db)
            .await
        }
        None => {
            sqlx::query_as(&format!("select {COLUMNS} from read.leaderboard_scores where period_key = any($1)"))
                .bind(keys)
                .fetch_all(db)
                .await
        }
    }
}

/// Copies the committed scores of `users` on the boards `keys` to Redis (after the projector's
/// commit). PostgreSQL has the truth; an error leaves Redis to catch up on the next write or
/// rebuild.
pub async fn mirror(db: &sqlx::PgPool, redis: &Redis, users: &[Uuid], keys: &[String]) -> anyhow::Result<()> {
    write(redis, &scores(db, Some(users), keys).await?).await
}

/// A closed period's final standings (`read.period_results`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PeriodResult {
    /// Full key, `weekly:2026-W47`.
    pub period_key: String,
    /// When it was closed.
    pub closed_at: DateTime<Utc>,
    /// How many took part.
    pub participants: i64,
    /// The top 100.
    pub standings: sqlx::types::Json<Vec<events::FinalStanding>>,
}

/// The results of the closed period `key`, or of the latest closed period of `period` when
/// `key` is `None`.
pub async fn period_result(db: &sqlx::PgPool, period: &str, key: Option<&str>) -> sqlx::Result<Option<PeriodResult>> {
    sqlx::query_as(
        "select period_key, closed_at, participants, standings from read.period_results
         where period = $1 and ($2::text is null or period_key = $2)
         order by period_key desc limit 1",
    )
    .bind(period)
    .bind(key)
    .fetch_optional(db)
    .await
}

/// Writing, for the leaderboards projector, inside its batch transaction. Commutative, so
/// order-free: points add to a board's row and `reached_at` only moves forward; a deletion
/// removes the person from every board and leaves a tombstone so late points stay out.
pub mod write {
    use chrono::{DateTime, Utc};
    use sqlx::PgConnection;
    use uuid::Uuid;

    /// Adds `amount` points reached at `at` to `user_id`'s row on each board of `keys`.
    pub async fn add_points(
        tx: &mut PgConnection,
        keys: &[String],
        user_id: Uuid,
        amount: i64,
        at: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        add_all(tx, &[Award { keys: keys.to_vec(), user_id, amount, at }]).await
    }

    /// Points to add to one person's rows on some boards.
    #[derive(Debug, Clone)]
    pub struct Award {
        /// The boards (period keys).
        pub keys: Vec<String>,
        /// Who earned them.
        pub user_id: Uuid,
        /// How many.
        pub amount: i64,
        /// When (a row's `reached_at` only moves forward).
        pub at: DateTime<Utc>,
    }

    /// Adds a run of awards in one statement, summed per board and person (they commute).
    pub async fn add_all(tx: &mut PgConnection, awards: &[Award]) -> sqlx::Result<()> {
        let (mut keys, mut users, mut amounts, mut at) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for award in awards {
            for key in &award.keys {
                keys.push(key.as_str());
                users.push(award.user_id);
                amounts.push(award.amount);
                at.push(award.at);
            }
        }
        if keys.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "insert into leaderboard_scores (period_key, user_id, points, reached_at)
             select a.key, a.user_id, sum(a.amount), max(a.at)
             from unnest($1::text[], $2::uuid[], $3::bigint[], $4::timestamptz[]) as a(key, user_id, amount, at)
             where not exists (select 1 from leaderboard_tombstones t where t.user_id = a.user_id)
             group by a.key, a.user_id
             order by a.key, a.user_id
             on conflict (period_key, user_id) do update
               set points = leaderboard_scores.points + excluded.points,
                   reached_at = greatest(leaderboard_scores.reached_at, excluded.reached_at)",
        )
        .bind(&keys)
        .bind(&users)
        .bind(&amounts)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Stores a closed period's final standings (the first record of a period wins; the
    /// closer records each once).
    pub async fn period_closed(
        tx: &mut PgConnection,
        key: &str,
        closed: &events::LeaderboardPeriodClosed,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "insert into period_results (period_key, period, closed_at, participants, standings)
             values ($1, $2, $3, $4, $5) on conflict do nothing",
        )
        .bind(key)
        .bind(closed.period.name())
        .bind(closed.closed_at)
        .bind(closed.participants)
        .bind(sqlx::types::Json(&closed.standings))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Removes a person from every board, for good.
    pub async fn forget(tx: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
        crate::forget_person(tx, user_id, &["leaderboard_scores"], "leaderboard_tombstones").await
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn more_points_rank_higher_and_ties_go_to_the_earlier() {
        let early = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        let late = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap();
        assert!(score(101, late) > score(100, early));
        assert!(score(100, early) > score(100, late));
        assert_eq!(points_of(score(12_345, late)), 12_345);
        assert!(min_score_above(100) > score(100, early));
        assert!(min_score_above(100) <= score(101, late));
    }
}
