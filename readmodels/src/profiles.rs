//! The profile read model (`read.profiles`): its shape, columns and cache key, the layered read
//! query-api serves from ([`load`]: Redis, else PostgreSQL, refilling Redis) and the cache
//! refresh its projector runs after each commit ([`refresh_cache`]).
//!
//! Cache entries are versioned: `"{version}|{json}"`. A writer only replaces an entry with a
//! higher version ([`Redis::set_if_newer`]), so a slow reader filling the cache from an older
//! database snapshot can never overwrite what the projector wrote after a newer commit.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use platform::redis::Redis;
pub use platform::redis::TOMBSTONE_VERSION;
use sqlx::PgPool;

/// How long a cached profile lives without being touched.
pub const PROFILE_CACHE_TTL_SECS: u64 = 3600;

/// A user's public profile: `GET /users/me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Profile {
    /// User id.
    #[sqlx(rename = "user_id")]
    pub id: Uuid,
    /// Handle.
    pub username: String,
    /// Display name.
    pub nickname: String,
    /// About me.
    pub bio: String,
    /// Picture URL, empty when none.
    pub avatar_url: String,
    /// Points balance.
    pub points: i64,
    /// Level, 1 to 5.
    pub level: i32,
    /// Scans recorded.
    pub total_scans: i64,
    /// Recycles completed.
    pub total_recycles: i64,
    /// Code friends register with.
    pub invite_code: String,
    /// Sign-up time.
    pub created_at: DateTime<Utc>,
    /// The character shown with the user (`GET /characters`); `null` until one is selected.
    pub character_id: Option<String>,
    /// Consecutive local days checked in, up to today or yesterday; 0 once a day was missed.
    #[sqlx(rename = "streak_run")]
    pub current_streak: i64,
    /// The longest run of consecutive check-in days.
    pub best_streak: i64,
    /// The local day of the last check-in.
    pub last_check_in: Option<NaiveDate>,
    /// Read-model version; bumps on every change.
    #[serde(skip_serializing)]
    #[serde(default)]
    pub version: i64,
}

/// Columns of [`Profile`].
pub const PROFILE_COLUMNS: &str = "user_id, username, nickname, bio, avatar_url, points, level, total_scans, total_recycles, invite_code, created_at, character_id, streak_run, best_streak, last_check_in, version";

impl Profile {
    /// The profile as of the local day `today`: the stored run is the streak only while the
    /// last check-in was today or yesterday.
    pub fn as_of(mut self, today: NaiveDate) -> Self {
        self.current_streak = events::rules::streaks::current(self.current_streak, self.last_check_in, today);
        self
    }
}

/// The cache key of a profile.
pub fn profile_key(redis: &Redis, user_id: Uuid) -> String {
    redis.key(format_args!("profile:{user_id}"))
}

/// Reads a profile: from Redis unless `fresh_required`, else (or on a miss, or with Redis down)
/// from PostgreSQL, refilling the cache. `None` when there is none (or it was deleted).
pub async fn load(db: &PgPool, redis: &Redis, user_id: Uuid, fresh_required: bool) -> sqlx::Result<Option<Profile>> {
    let key = profile_key(redis, user_id);
    if !fresh_required {
        match redis.get_versioned(&key).await {
            Ok(Some(Some(json))) => {
                if let Ok(profile) = serde_json::from_str::<Profile>(&json) {
                    metrics::counter!("cache_requests_total", "cache" => "profile", "result" => "hit").increment(1);
                    return Ok(Some(profile));
                }
            }
            Ok(Some(None)) => return Ok(None), // deleted
            Ok(None) => {}
            Err(e) => tracing::debug!(error = format!("{e:#}"), "profile cache unavailable"),
        }
        metrics::counter!("cache_requests_total", "cache" => "profile", "result" => "miss").increment(1);
    }
    let profile: Option<Profile> =
        sqlx::query_as(&format!("select {PROFILE_COLUMNS} from read.profiles where user_id = $1"))
            .bind(user_id)
            .fetch_optional(db)
            .await?;
    if let Some(p) = &profile
        && let Ok(json) = serde_json::to_string(p)
        && let Err(e) = redis.set_if_newer(&key, p.version, &json, PROFILE_CACHE_TTL_SECS).await
    {
        tracing::debug!(error = format!("{e:#}"), "profile cache not filled");
    }
    Ok(profile)
}

/// Writes the committed state of `users`' profiles to the cache (a tombstone for a profile that
/// no longer exists). Best effort: the cache is an optimisation and reads fall back to PostgreSQL.
pub async fn refresh_cache(db: &PgPool, redis: &Redis, users: &[Uuid]) {
    let rows: Vec<Profile> =
        match sqlx::query_as(&format!("select {PROFILE_COLUMNS} from read.profiles where user_id = any($1)"))
            .bind(users)
            .fetch_all(db)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "could not read profiles to refresh the cache");
                return;
            }
        };
    for &user_id in users {
        let key = profile_key(redis, user_id);
        let result = match rows.iter().find(|p| p.id == user_id) {
            Some(p) => match serde_json::to_string(p) {
                Ok(json) => redis.set_if_newer(&key, p.version, &json, PROFILE_CACHE_TTL_SECS).await,
                Err(e) => Err(e.into()),
            },
            None => redis.set_if_newer(&key, TOMBSTONE_VERSION, "", PROFILE_CACHE_TTL_SECS).await,
        };
        if let Err(e) = result {
            tracing::debug!(error = format!("{e:#}"), "profile cache not refreshed");
        }
    }
}

/// How a user is shown beside a score.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Name {
    /// User id.
    pub user_id: Uuid,
    /// Display name.
    pub nickname: String,
    /// Level.
    pub level: i32,
    /// Selected character.
    pub character_id: Option<String>,
}

/// The names of those of `users` who have a profile.
pub async fn names(db: &PgPool, users: &[Uuid]) -> sqlx::Result<std::collections::HashMap<Uuid, Name>> {
    let rows: Vec<Name> =
        sqlx::query_as("select user_id, nickname, level, character_id from read.profiles where user_id = any($1)")
            .bind(users)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(|n| (n.user_id, n)).collect())
}

/// My settings.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Settings {
    /// Push notifications.
    pub notification_enabled: bool,
    /// `ko` or `en`.
    pub language: String,
    /// `light`, `dark` or `system`.
    pub theme: String,
}

/// A user's settings (`read.settings`, `GET /users/me/settings`), `None` when they have none (no account, or deleted).
pub async fn settings(db: &PgPool, user_id: Uuid) -> sqlx::Result<Option<Settings>> {
    sqlx::query_as("select notification_enabled, language, theme from read.settings where user_id = $1")
        .bind(user_id)
        .fetch_optional(db)
        .await
}

/// Writing, for the profiles projector, inside its batch transaction (tables unqualified: the
/// projector's connection has its schema, live or rebuild, on the search path).
///
/// Order-tolerant per user: a registration inserts only if absent and never after a deletion
/// (the `profiles_tombstones` tombstone); profile and settings changes only move their
/// sequence forward; counters and points are commutative additions, the level derived from the
/// points.
pub mod write {
    use chrono::{DateTime, NaiveDate, Utc};
    use events::{UserProfileUpdated, UserRegistered, UserSettingsUpdated};
    use platform::personal::{FORGOTTEN_NICKNAME, Opener};
    use sqlx::PgConnection;
    use uuid::Uuid;

    /// What a write found.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Written {
        /// Applied, or had nothing to do (stale, or the person is forgotten).
        Done,
        /// The profile is not there yet: the event overtook the registration.
        NotYet,
    }

    /// A commutative change to a profile's numbers.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Bump {
        /// One more scan.
        Scan,
        /// One more recycle.
        Recycle,
        /// Points earned (the level follows).
        Points(i64),
    }

    /// Creates the profile and settings of a registration (once; never after a deletion). A
    /// forgotten person's sealed names read as their forgotten values.
    pub async fn register(
        tx: &mut PgConnection,
        user: &UserRegistered,
        occurred_at: DateTime<Utc>,
        sequence: Option<i64>,
    ) -> sqlx::Result<()> {
        let opener = Opener::of(&mut *tx, user.user_id, &[&user.username, &user.nickname]).await?;
        let username = opener.open("username", &user.username).unwrap_or_default();
        let nickname = opener.open("nickname", &user.nickname).unwrap_or_else(|| FORGOTTEN_NICKNAME.to_owned());
        sqlx::query(
            "insert into profiles (user_id, username, nickname, provider, invite_code, created_at, profile_sequence)
             select $1, $2, $3, $4, $5, $6, coalesce($7, 0)
             where not exists (select 1 from profiles_tombstones where user_id = $1)
             on conflict (user_id) do nothing",
        )
        .bind(user.user_id)
        .bind(username)
        .bind(nickname)
        .bind(serde_json::to_value(user.provider).ok().and_then(|v| v.as_str().map(str::to_owned)))
        .bind(events::rules::invite_code(user.user_id))
        .bind(occurred_at)
        .bind(sequence)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "insert into settings (user_id) select $1
             where not exists (select 1 from profiles_tombstones where user_id = $1)
             on conflict (user_id) do nothing",
        )
        .bind(user.user_id)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Applies a profile change newer than the one the row holds.
    pub async fn update_profile(
        tx: &mut PgConnection,
        user_id: Uuid,
        change: &UserProfileUpdated,
        sequence: Option<i64>,
    ) -> sqlx::Result<Written> {
        let fields: Vec<&events::Personal> =
            [&change.nickname, &change.bio, &change.avatar_url].into_iter().flatten().collect();
        let opener = Opener::of(&mut *tx, user_id, &fields).await?;
        let nickname = opener.open_or("nickname", change.nickname.as_ref(), FORGOTTEN_NICKNAME);
        let bio = opener.open_or("bio", change.bio.as_ref(), "");
        let avatar_url = opener.open_or("avatar_url", change.avatar_url.as_ref(), "");
        let updated = sqlx::query(
            "update profiles set
                nickname = coalesce($2, nickname), bio = coalesce($3, bio), avatar_url = coalesce($4, avatar_url),
                profile_sequence = coalesce($5, profile_sequence), version = version + 1, updated_at = now()
             where user_id = $1 and ($5::bigint is null or profile_sequence < $5)",
        )
        .bind(user_id)
        .bind(nickname)
        .bind(bio)
        .bind(avatar_url)
        .bind(sequence)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 1 { Ok(Written::Done) } else { stale_or_missing(tx, "profiles", user_id).await }
    }

    /// Applies a settings change newer than the one the row holds.
    pub async fn update_settings(
        tx: &mut PgConnection,
        user_id: Uuid,
        change: &UserSettingsUpdated,
        sequence: Option<i64>,
    ) -> sqlx::Result<Written> {
        let updated = sqlx::query(
            "update settings set
                notification_enabled = coalesce($2, notification_enabled), language = coalesce($3, language),
                theme = coalesce($4, theme), settings_sequence = coalesce($5, settings_sequence), updated_at = now()
             where user_id = $1 and ($5::bigint is null or settings_sequence < $5)",
        )
        .bind(user_id)
        .bind(change.notification_enabled)
        .bind(&change.language)
        .bind(&change.theme)
        .bind(sequence)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 1 { Ok(Written::Done) } else { stale_or_missing(tx, "settings", user_id).await }
    }

    /// Adds to a profile's counters or points; the level is recomputed from the points.
    pub async fn bump(tx: &mut PgConnection, user_id: Uuid, bump: Bump) -> sqlx::Result<Written> {
        bump_all(tx, &[(user_id, bump)]).await
    }

    /// Applies a run of bumps in one statement: summed per person (they commute), the level
    /// recomputed from the new points (`LEVEL_STARTS`, as [`events::rules::level_for`]) and the version moved
    /// by the number of bumps, so the row is the one the bumps applied one by one would leave,
    /// however a batch cuts the run. `NotYet` when a person's profile does not exist yet (and
    /// was not forgotten): the caller fails its transaction and retries.
    pub async fn bump_all(tx: &mut PgConnection, bumps: &[(Uuid, Bump)]) -> sqlx::Result<Written> {
        let (mut users, mut scans, mut recycles, mut points) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for &(user, bump) in bumps {
            users.push(user);
            let (s, r, p) = match bump {
                Bump::Scan => (1_i64, 0_i64, 0),
                Bump::Recycle => (0, 1, 0),
                Bump::Points(amount) => (0, 0, amount),
            };
            scans.push(s);
            recycles.push(r);
            points.push(p);
        }
        let mut wanted: Vec<Uuid> = users.clone();
        wanted.sort_unstable();
        wanted.dedup();
        // Within the statement, row locks are taken in user order. Across statements and
        // instances they are not ordered: a deadlock is transient, and the batch is retried.
        let updated: Vec<Uuid> = sqlx::query_scalar(
            "with d as (
                 select user_id, sum(scans) as scans, sum(recycles) as recycles, sum(points) as points,
                        count(*) as n
                 from unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[]) as d(user_id, scans, recycles, points)
                 group by user_id),
             locked as (select p.user_id from profiles p join d using (user_id) order by p.user_id for update of p)
             update profiles p set total_scans = p.total_scans + d.scans, total_recycles = p.total_recycles + d.recycles,
                 points = p.points + d.points,
                 level = greatest(1, (select count(*) from unnest($5::bigint[]) as s(start) where p.points + d.points >= s.start))::int,
                 version = p.version + d.n, updated_at = now()
             from d where p.user_id = d.user_id and p.user_id in (select user_id from locked)
             returning p.user_id",
        )
        .bind(&users)
        .bind(&scans)
        .bind(&recycles)
        .bind(&points)
        .bind(&events::rules::LEVEL_STARTS[..])
        .fetch_all(&mut *tx)
        .await?;
        if updated.len() == wanted.len() {
            return Ok(Written::Done);
        }
        let absent: Vec<Uuid> = wanted.into_iter().filter(|u| !updated.contains(u)).collect();
        missing(tx, &absent).await
    }

    /// Records a check-in day and recomputes the streak from every day (order-free), with the
    /// profile row locked so two check-ins of one user never miss each other's day.
    pub async fn check_in(tx: &mut PgConnection, user_id: Uuid, day: NaiveDate) -> sqlx::Result<Written> {
        let locked: Option<i32> = sqlx::query_scalar("select 1 from profiles where user_id = $1 for update")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        if locked.is_none() {
            return missing(tx, &[user_id]).await;
        }
        let days = crate::check_ins::record(tx, "attendance_days", user_id, day).await?;
        let (run, best, last) = events::rules::streaks::summary(&days);
        sqlx::query(
            "update profiles set streak_run = $2, best_streak = $3, last_check_in = $4, version = version + 1,
                updated_at = now() where user_id = $1",
        )
        .bind(user_id)
        .bind(run)
        .bind(best)
        .bind(last)
        .execute(&mut *tx)
        .await?;
        Ok(Written::Done)
    }

    /// Shows the selected character, unless a later selection was applied already.
    pub async fn select_character(
        tx: &mut PgConnection,
        user_id: Uuid,
        character_id: &str,
        sequence: Option<i64>,
    ) -> sqlx::Result<Written> {
        let updated = sqlx::query(
            "update profiles set character_id = $2, character_sequence = coalesce($3, character_sequence),
                version = version + 1, updated_at = now()
             where user_id = $1 and ($3::bigint is null or character_sequence < $3)",
        )
        .bind(user_id)
        .bind(character_id)
        .bind(sequence)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 1 { Ok(Written::Done) } else { stale_or_missing(tx, "profiles", user_id).await }
    }

    /// Forgets a person: profile and settings gone, and a tombstone so late events stay out.
    pub async fn forget(tx: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
        crate::forget_person(tx, user_id, &["profiles", "attendance_days", "settings"], "profiles_tombstones").await
    }

    /// A sequence-guarded update of `table` changed nothing: the event is stale (the row is
    /// there, fine) or overtook the registration.
    async fn stale_or_missing(tx: &mut PgConnection, table: &str, user_id: Uuid) -> sqlx::Result<Written> {
        let exists: bool = sqlx::query_scalar(&format!("select exists (select 1 from {table} where user_id = $1)"))
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        if exists { Ok(Written::Done) } else { missing(tx, &[user_id]).await }
    }

    /// Profiles that are not there: done when every one is gone for good (forgotten), else
    /// some are not there yet.
    async fn missing(tx: &mut PgConnection, users: &[Uuid]) -> sqlx::Result<Written> {
        let unforgotten: bool = sqlx::query_scalar(
            "select exists (select 1 from unnest($1::uuid[]) as m
                            where not exists (select 1 from profiles_tombstones t where t.user_id = m))",
        )
        .bind(users)
        .fetch_one(&mut *tx)
        .await?;
        Ok(if unforgotten { Written::NotYet } else { Written::Done })
    }
}
