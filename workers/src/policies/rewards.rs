//! The rewards policy: awards the badges of the catalogue and unlocks its characters (DESIGN
//! §4), recording `badge.earned` and `character.unlocked` through the outbox in the same
//! transaction as its own rows.
//!
//! It keeps what the criteria look at per user (`rewards.progress`: scans and categories from
//! `scan.recorded`, paid recycles from `points.earned`, invites from `invite.accepted`, the
//! level from `level.reached`, the best streak from the check-in days, the best final ranks
//! from `leaderboard.period_closed`), locks that row before it reads anything, and after each change
//! evaluates the pure criteria of `events::rules::rewards` for every badge and character not yet
//! awarded. `(user, badge)` and `(user, character)` are primary keys, so each is awarded at most
//! once whatever is redelivered or replayed; the framework applies each event once besides.
//!
//! **Runs of scans** (most of what it sees) are decided together: every scanner's progress row
//! is locked in one statement (in user order), their awards and the catalogues read in four
//! more, and each scan then moves its person's progress in memory and is decided in order, with
//! what the run awarded before it ([`decide_scans`], pure, unit-tested against deciding the same
//! scans one by one); the progress rows and each table of awards are then written in one
//! statement each, and the events handed to the batch, which appends them before it commits.
//! Events that change nothing here travel in a run; anything else is applied on its own, in
//! order.
//!
//! The catalogues are read at decision time, once per run (an entry edited while a run is being
//! decided counts from the next): a badge added later is awarded at the user's next event that
//! moves their progress. `user.deleted` empties the person's progress and awards and
//! marks the row forgotten, so a late event awards nothing.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use events::{
    BadgeEarned, Category, CharacterUnlocked, Event, EventData, PointsReason, UnlockReason,
    rules::{
        rewards::{Criterion, Progress, UnlockRule},
        streaks,
    },
};
use platform::{
    eventstore,
    topology::{ConsumerSpec, REWARDS_POLICY},
};
use readmodels::rewards::readable;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::consumer::{ApplyError, Part, Projector, parts};

/// The `source` of the events this policy records.
pub const SOURCE: &str = "rewards-policy";

/// The rewards policy.
#[derive(Debug, Clone, Default)]
pub struct RewardsPolicy;

/// How an event moves one user's progress.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    /// Nothing but making sure the row exists (a registration: level 1).
    Start,
    Scan(Category),
    PaidRecycle,
    Invite,
    Level(i32),
    CheckIn(chrono::NaiveDate),
    WeeklyRank(i64),
    MonthlyRank(i64),
}

/// The changes `event` makes, per user (pure).
fn changes(event: &Event) -> Vec<(Uuid, Change)> {
    match &event.data {
        EventData::UserRegistered(r) => vec![(r.user_id, Change::Start)],
        EventData::ScanRecorded(s) => vec![(s.user_id, Change::Scan(s.category))],
        EventData::PointsEarned(p) if p.reason == PointsReason::Recycle => vec![(p.user_id, Change::PaidRecycle)],
        EventData::InviteAccepted(i) => vec![(i.inviter_id, Change::Invite)],
        EventData::LevelReached(l) => vec![(l.user_id, Change::Level(l.level))],
        EventData::AttendanceCheckedIn(a) => vec![(a.user_id, Change::CheckIn(a.date))],
        EventData::LeaderboardPeriodClosed(c) => c
            .standings
            .iter()
            .map(|s| {
                let change = match c.period {
                    events::ClosedPeriod::Weekly => Change::WeeklyRank(s.rank),
                    events::ClosedPeriod::Monthly => Change::MonthlyRank(s.rank),
                };
                (s.user_id, change)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A person's progress row with its key.
#[derive(sqlx::FromRow)]
struct Keyed {
    user_id: Uuid,
    #[sqlx(flatten)]
    row: ProgressRow,
}

/// The columns of a progress row, as [`ProgressRow`] reads them.
const PROGRESS_COLUMNS: &str =
    "scans, categories, paid_recycles, invites, level, best_streak, best_weekly_rank, best_monthly_rank, forgotten";

#[derive(Clone, sqlx::FromRow)]
struct ProgressRow {
    scans: i64,
    categories: Vec<String>,
    paid_recycles: i64,
    invites: i64,
    level: i32,
    best_streak: i64,
    best_weekly_rank: Option<i64>,
    best_monthly_rank: Option<i64>,
    forgotten: bool,
}

impl ProgressRow {
    fn progress(&self) -> Progress {
        Progress {
            scans: self.scans,
            categories: Category::ALL.into_iter().filter(|c| self.categories.iter().any(|s| s == c.code())).collect(),
            paid_recycles: self.paid_recycles,
            invites: self.invites,
            level: self.level,
            best_streak: self.best_streak,
            best_weekly_rank: self.best_weekly_rank,
            best_monthly_rank: self.best_monthly_rank,
        }
    }
}

/// What the policy decided for one user after a change (pure).
#[derive(Debug, Default, PartialEq)]
pub struct Awards {
    /// Badges now earned.
    pub badges: Vec<String>,
    /// Characters now unlocked, with what completed their rule.
    pub characters: Vec<(String, UnlockReason)>,
}

/// The badges and characters `progress` earns among those not yet awarded (pure): `held` are
/// the badges already held; a character's reason is `badge` when its badge is one earned now.
pub fn decide(
    progress: &Progress,
    locked_badges: &[(String, Criterion)],
    locked_characters: &[(String, UnlockRule)],
    held: &[String],
) -> Awards {
    let badges: Vec<String> = locked_badges.iter().filter(|(_, c)| c.met(progress)).map(|(id, _)| id.clone()).collect();
    let all: Vec<String> = held.iter().chain(&badges).cloned().collect();
    let characters = locked_characters
        .iter()
        .filter(|(_, rule)| rule.met(progress.level, &all))
        .map(|(id, rule)| {
            // The badge completed it when it was just earned, or when the rule asks for nothing else.
            let by_badge = rule.badge_id.as_ref().is_some_and(|b| badges.contains(b) || rule.level.is_none());
            (id.clone(), if by_badge { UnlockReason::Badge } else { UnlockReason::Level })
        })
        .collect();
    Awards { badges, characters }
}

impl RewardsPolicy {
    /// Applies `change` to `user`'s progress (creating it) and returns it, locked (the row is
    /// locked before anything is read, so two events of one user never miss each other).
    async fn update(tx: &mut PgConnection, user: Uuid, change: &Change) -> Result<ProgressRow, ApplyError> {
        let forgotten = lock(tx, &[user])
            .await?
            .remove(&user)
            .ok_or_else(|| ApplyError::Transient(anyhow::anyhow!("no progress row returned for {user}")))?
            .forgotten;
        let (mut scans, mut category, mut recycles, mut invites) = (0i64, None::<&str>, 0i64, 0i64);
        let (mut level, mut streak, mut weekly, mut monthly) = (1i32, 0i64, None::<i64>, None::<i64>);
        match change {
            Change::Start => {}
            Change::Scan(c) => (scans, category) = (1, Some(c.code())),
            Change::PaidRecycle => recycles = 1,
            Change::Invite => invites = 1,
            Change::Level(l) => level = *l,
            Change::CheckIn(day) if !forgotten => {
                let days = readmodels::check_ins::record(tx, "rewards.check_in_days", user, *day).await?;
                streak = streaks::summary(&days).1;
            }
            Change::CheckIn(_) => {}
            Change::WeeklyRank(r) => weekly = Some(*r),
            Change::MonthlyRank(r) => monthly = Some(*r),
        }
        Ok(sqlx::query_as(&format!(
            "update rewards.progress set
                scans = scans + $2 * (not forgotten)::int,
                categories = case when $3::text is null or forgotten or $3 = any(categories) then categories
                                  else array_append(categories, $3) end,
                paid_recycles = paid_recycles + $4 * (not forgotten)::int,
                invites = invites + $5 * (not forgotten)::int,
                level = greatest(level, $6),
                best_streak = greatest(best_streak, $7),
                best_weekly_rank = least(best_weekly_rank, $8),
                best_monthly_rank = least(best_monthly_rank, $9),
                updated_at = now()
             where user_id = $1
             returning {PROGRESS_COLUMNS}",
        ))
        .bind(user)
        .bind(scans)
        .bind(category)
        .bind(recycles)
        .bind(invites)
        .bind(level)
        .bind(streak)
        .bind(weekly)
        .bind(monthly)
        .fetch_one(&mut *tx)
        .await?)
    }

    /// Forgets a person: progress emptied and marked forgotten, awards and check-in days gone.
    async fn forget(tx: &mut PgConnection, user: Uuid) -> Result<(), ApplyError> {
        sqlx::query(
            "insert into rewards.progress (user_id, forgotten) values ($1, true)
             on conflict (user_id) do update set scans = 0, categories = '{}', paid_recycles = 0, invites = 0,
                level = 1, best_streak = 0, best_weekly_rank = null, best_monthly_rank = null, forgotten = true,
                updated_at = now()",
        )
        .bind(user)
        .execute(&mut *tx)
        .await?;
        for table in ["rewards.earned_badges", "rewards.unlocked_characters", "rewards.check_in_days"] {
            sqlx::query(&format!("delete from {table} where user_id = $1")).bind(user).execute(&mut *tx).await?;
        }
        Ok(())
    }
}

/// Locks the progress rows of `users` (creating them) in user order, in one statement, and
/// returns them.
async fn lock(tx: &mut PgConnection, users: &[Uuid]) -> sqlx::Result<HashMap<Uuid, ProgressRow>> {
    let mut ordered = users.to_vec();
    ordered.sort_unstable();
    ordered.dedup();
    let rows: Vec<Keyed> = sqlx::query_as(&format!(
        "insert into rewards.progress (user_id) select u from unnest($1::uuid[]) as u order by u
         on conflict (user_id) do update set updated_at = now()
         returning user_id, {PROGRESS_COLUMNS}"
    ))
    .bind(&ordered)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(|k| (k.user_id, k.row)).collect())
}

/// What deciding a person's awards needs besides their progress: the catalogue entries not yet
/// awarded to them and the badges they hold. A run keeps it current in memory as it awards.
#[derive(Default)]
struct Standing {
    locked_badges: Vec<(String, Criterion)>,
    locked_characters: Vec<(String, UnlockRule)>,
    held: Vec<String>,
}

impl Standing {
    /// What `progress` earns now (pure, [`decide`]); the awards then count as held.
    fn decide(&mut self, progress: &Progress) -> Awards {
        let awards = decide(progress, &self.locked_badges, &self.locked_characters, &self.held);
        self.locked_badges.retain(|(id, _)| !awards.badges.contains(id));
        self.locked_characters.retain(|(id, _)| !awards.characters.iter().any(|(c, _)| c == id));
        self.held.extend(awards.badges.iter().cloned());
        awards
    }
}

/// Decides a run of scans (each a person and a category) in order (pure): each scan moves its
/// person's progress, then earns what that progress meets among what they do not hold yet,
/// counting what the run awarded before it. People without a standing (forgotten ones) are
/// left as they are and earn nothing. Returns each scan's awards, in the scans' order.
fn decide_scans(
    progress: &mut HashMap<Uuid, ProgressRow>,
    standings: &mut HashMap<Uuid, Standing>,
    scans: &[(Uuid, Category)],
) -> Vec<Awards> {
    scans
        .iter()
        .map(|(user, category)| {
            let (Some(row), Some(standing)) = (progress.get_mut(user), standings.get_mut(user)) else {
                return Awards::default();
            };
            row.scans += 1;
            if !row.categories.iter().any(|c| c == category.code()) {
                row.categories.push(category.code().to_owned());
            }
            standing.decide(&row.progress())
        })
        .collect()
}

/// The standings of `users`, in four queries whatever their number: both catalogues in display
/// order (an entry this version cannot read is left out, [`readable`], as `GET /badges` does)
/// and what the users hold.
async fn standings(tx: &mut PgConnection, users: &[Uuid]) -> sqlx::Result<HashMap<Uuid, Standing>> {
    let badges: Vec<(String, Criterion)> = catalogue(tx, "rewards.badges", "criterion").await?;
    let characters: Vec<(String, UnlockRule)> = catalogue(tx, "rewards.characters", "rule").await?;
    let held: Vec<(Uuid, String)> =
        sqlx::query_as("select user_id, badge_id from rewards.earned_badges where user_id = any($1)")
            .bind(users)
            .fetch_all(&mut *tx)
            .await?;
    let unlocked: Vec<(Uuid, String)> =
        sqlx::query_as("select user_id, character_id from rewards.unlocked_characters where user_id = any($1)")
            .bind(users)
            .fetch_all(&mut *tx)
            .await?;
    Ok(users
        .iter()
        .map(|&user| {
            let held: Vec<String> = held.iter().filter(|(u, _)| *u == user).map(|(_, b)| b.clone()).collect();
            let has = |id: &String| unlocked.iter().any(|(u, c)| *u == user && c == id);
            let standing = Standing {
                locked_badges: badges.iter().filter(|(id, _)| !held.contains(id)).cloned().collect(),
                locked_characters: characters.iter().filter(|(id, _)| !has(id)).cloned().collect(),
                held,
            };
            (user, standing)
        })
        .collect())
}

/// The entries of a catalogue (`table`, criterion or rule in `spec_column`) in display order,
/// those this version can read.
async fn catalogue<T: serde::de::DeserializeOwned>(
    tx: &mut PgConnection,
    table: &str,
    spec_column: &str,
) -> sqlx::Result<Vec<(String, T)>> {
    let rows: Vec<(String, serde_json::Value)> =
        sqlx::query_as(&format!("select id, {spec_column} from {table} order by sort_order, id"))
            .fetch_all(&mut *tx)
            .await?;
    Ok(rows.into_iter().filter_map(|(id, spec)| readable(&id, spec).map(|spec| (id, spec))).collect())
}

/// The badges and characters a batch awards, and the events that record them, in the order
/// they were decided; written with one statement per table ([`Recorded::write`]).
#[derive(Default)]
struct Recorded {
    events: Vec<Event>,
    badges: Rows,
    characters: Rows,
}

/// Award rows, column by column: user, badge or character, event, when.
#[derive(Default)]
struct Rows(Vec<Uuid>, Vec<String>, Vec<Uuid>, Vec<DateTime<Utc>>);

impl Rows {
    fn push(&mut self, user: Uuid, id: &str, event: &Event) {
        self.0.push(user);
        self.1.push(id.to_owned());
        self.2.push(event.id);
        self.3.push(event.occurred_at);
    }
}

impl Recorded {
    /// Records `awards` of `user`, caused by `source`.
    fn add(&mut self, source: &Event, user: Uuid, awards: Awards) {
        let caused = |data: EventData| Event::new(SOURCE, user, data).caused_by(source.correlation_id, Some(source.id));
        for badge_id in awards.badges {
            let event =
                caused(BadgeEarned { user_id: user, badge_id: badge_id.clone(), source_event_id: source.id }.into());
            self.badges.push(user, &badge_id, &event);
            self.events.push(event);
        }
        for (character_id, reason) in awards.characters {
            let event = caused(CharacterUnlocked { user_id: user, character_id: character_id.clone(), reason }.into());
            self.characters.push(user, &character_id, &event);
            self.events.push(event);
        }
    }

    /// Writes the award rows, and hands the events to the batch to append before its commit.
    async fn write(self, tx: &mut PgConnection) -> Result<(), ApplyError> {
        for (rows, sql) in [
            (
                self.badges,
                "insert into rewards.earned_badges (user_id, badge_id, event_id, earned_at)
                 select * from unnest($1::uuid[], $2::text[], $3::uuid[], $4::timestamptz[])",
            ),
            (
                self.characters,
                "insert into rewards.unlocked_characters (user_id, character_id, event_id, unlocked_at)
                 select * from unnest($1::uuid[], $2::text[], $3::uuid[], $4::timestamptz[])",
            ),
        ] {
            if rows.0.is_empty() {
                continue;
            }
            sqlx::query(sql).bind(&rows.0).bind(&rows.1).bind(&rows.2).bind(&rows.3).execute(&mut *tx).await?;
        }
        if !self.events.is_empty() {
            tracing::debug!(events = self.events.len(), "rewards awarded");
            eventstore::append_at_end(tx, self.events).await?;
        }
        Ok(())
    }
}

impl RewardsPolicy {
    /// Applies a run of scans (other events in it change nothing here) as if one by one, in a
    /// handful of statements: see the module's documentation.
    async fn scan_run(tx: &mut PgConnection, run: &[Event]) -> Result<(), ApplyError> {
        let scans: Vec<(&Event, Uuid, Category)> = run
            .iter()
            .filter_map(|e| match &e.data {
                EventData::ScanRecorded(s) => Some((e, s.user_id, s.category)),
                _ => None,
            })
            .collect();
        let mut users: Vec<Uuid> = scans.iter().map(|(_, user, _)| *user).collect();
        users.sort_unstable();
        users.dedup();
        if users.is_empty() {
            return Ok(());
        }
        // Locked before anything is read, as one event's update locks its row.
        let mut progress = lock(tx, &users).await?;
        let live: Vec<Uuid> = users.iter().copied().filter(|u| progress.get(u).is_some_and(|r| !r.forgotten)).collect();
        let mut standings = standings(tx, &live).await?;
        let moves: Vec<(Uuid, Category)> = scans.iter().map(|(_, user, category)| (*user, *category)).collect();
        let mut recorded = Recorded::default();
        for ((event, user, _), awards) in scans.iter().zip(decide_scans(&mut progress, &mut standings, &moves)) {
            recorded.add(event, *user, awards);
        }
        if live.is_empty() {
            return Ok(());
        }
        let (mut ids, mut scans, mut categories) = (Vec::new(), Vec::new(), Vec::new());
        for user in live {
            let row = &progress[&user];
            ids.push(user);
            scans.push(row.scans);
            categories.push(serde_json::json!(row.categories));
        }
        sqlx::query(
            "update rewards.progress p set scans = d.scans,
                    categories = array(select c from jsonb_array_elements_text(d.categories) with ordinality as e(c, n)
                                       order by e.n),
                    updated_at = now()
             from unnest($1::uuid[], $2::bigint[], $3::jsonb[]) as d(user_id, scans, categories)
             where p.user_id = d.user_id",
        )
        .bind(&ids)
        .bind(&scans)
        .bind(&categories)
        .execute(&mut *tx)
        .await?;
        recorded.write(tx).await
    }
}

impl Projector for RewardsPolicy {
    const RECORDS_EVENTS: bool = true;

    fn spec(&self) -> &'static ConsumerSpec {
        &REWARDS_POLICY
    }

    /// Runs of scans are decided together ([`RewardsPolicy::scan_run`]), with the events that
    /// change nothing here between them; anything else is applied on its own, in order.
    async fn apply_all(&self, tx: &mut PgConnection, events: &[Event]) -> Result<(), ApplyError> {
        let in_run = |e: &Event| match &e.data {
            EventData::ScanRecorded(_) => true,
            EventData::UserDeleted(_) => false,
            _ => changes(e).is_empty(),
        };
        for part in parts(events, in_run) {
            match part {
                Part::Run(run) => Self::scan_run(tx, run).await?,
                Part::Alone(event) => self.apply(tx, event).await?,
            }
        }
        Ok(())
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        if let EventData::UserDeleted(d) = &event.data {
            return Self::forget(tx, d.user_id).await;
        }
        if let EventData::ScanRecorded(_) = &event.data {
            return Self::scan_run(tx, std::slice::from_ref(event)).await;
        }
        let mut changes = changes(event);
        // Several users (a period's standings): lock their rows in one order, then read what
        // they hold (and the catalogues) once.
        changes.sort_by_key(|(user, _)| *user);
        let mut rows = Vec::with_capacity(changes.len());
        for (user, change) in changes {
            rows.push((user, Self::update(tx, user, &change).await?));
        }
        let live: Vec<Uuid> = rows.iter().filter(|(_, row)| !row.forgotten).map(|(user, _)| *user).collect();
        if live.is_empty() {
            return Ok(());
        }
        let mut standings = standings(tx, &live).await?;
        let mut recorded = Recorded::default();
        for (user, row) in rows {
            // A person named twice is decided twice, the second time with the first's awards.
            if let Some(standing) = standings.get_mut(&user) {
                recorded.add(event, user, standing.decide(&row.progress()));
            }
        }
        recorded.write(tx).await
    }
}

impl crate::registry::Build for RewardsPolicy {
    fn build(_: &crate::registry::Deps) -> anyhow::Result<Self> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Badges = Vec<(String, Criterion)>;
    type Characters = Vec<(String, UnlockRule)>;

    fn catalogue() -> (Badges, Characters) {
        (
            vec![
                ("first-scan".into(), Criterion::Scans { count: 1 }),
                ("scans-10".into(), Criterion::Scans { count: 10 }),
            ],
            vec![
                ("sprout".into(), UnlockRule { level: Some(1), badge_id: None }),
                ("scanner".into(), UnlockRule { level: None, badge_id: Some("scans-10".into()) }),
                ("sage".into(), UnlockRule { level: Some(2), badge_id: Some("first-scan".into()) }),
            ],
        )
    }

    #[test]
    fn given_nine_scans_when_the_tenth_arrives_then_its_badge_and_the_character_it_unlocks_are_awarded() {
        let (badges, characters) = catalogue();
        let nine = Progress { scans: 9, level: 1, ..Progress::default() };
        let locked: Vec<(String, Criterion)> = badges[1..].to_vec();
        let held = vec!["first-scan".to_owned()];
        let chars: Vec<(String, UnlockRule)> = characters[1..].to_vec();
        assert_eq!(decide(&nine, &locked, &chars, &held), Awards::default(), "nine scans earn nothing new");
        let ten = Progress { scans: 10, ..nine };
        let awards = decide(&ten, &locked, &chars, &held);
        assert_eq!(awards.badges, ["scans-10"]);
        assert_eq!(awards.characters, [("scanner".to_owned(), UnlockReason::Badge)]);
    }

    #[test]
    fn given_a_badge_held_when_the_level_arrives_then_the_character_unlocks_by_level() {
        let (_, characters) = catalogue();
        let held = vec!["first-scan".to_owned()];
        let level2 = Progress { scans: 1, level: 2, ..Progress::default() };
        let awards = decide(&level2, &[], &characters[2..], &held);
        assert_eq!(awards.characters, [("sage".to_owned(), UnlockReason::Level)]);
        let level1 = Progress { level: 1, ..level2 };
        assert!(decide(&level1, &[], &characters[2..], &held).characters.is_empty(), "locked below its level");
        // A character added later whose rule is a badge held already: the badge unlocked it.
        let held = vec!["scans-10".to_owned()];
        let awards = decide(&level1, &[], &characters[1..2], &held);
        assert_eq!(awards.characters, [("scanner".to_owned(), UnlockReason::Badge)]);
    }

    #[test]
    fn a_run_of_scans_is_decided_as_its_scans_one_by_one() {
        let badges: Badges = vec![
            ("first-scan".into(), Criterion::Scans { count: 1 }),
            ("all-categories".into(), Criterion::AllCategories),
            ("scans-3".into(), Criterion::Scans { count: 3 }),
            ("scans-5".into(), Criterion::Scans { count: 5 }),
        ];
        let characters: Characters = vec![
            ("scanner".into(), UnlockRule { level: None, badge_id: Some("scans-3".into()) }),
            ("sage".into(), UnlockRule { level: Some(1), badge_id: Some("scans-5".into()) }),
        ];
        let row = |scans: i64, categories: &[Category]| ProgressRow {
            scans,
            categories: categories.iter().map(|c| c.code().to_owned()).collect(),
            paid_recycles: 0,
            invites: 0,
            level: 1,
            best_streak: 0,
            best_weekly_rank: None,
            best_monthly_rank: None,
            forgotten: false,
        };
        let (a, b, gone) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        // A held the first-scan badge with two scans of the first eight categories; B is new.
        let eight: Vec<Category> = Category::ALL[..8].to_vec();
        let last = Category::ALL[8];
        let a_before = (row(2, &eight), vec!["first-scan".to_owned()]);
        let b_before = (row(0, &[]), Vec::new());
        let scans = [(a, last), (b, last), (gone, last), (a, last), (a, eight[0]), (b, last), (b, last), (a, last)];

        // One by one: what each scan earns, with the standing read afresh before each, as a
        // transaction per scan would read it.
        let mut expected = Vec::new();
        let mut state: HashMap<Uuid, (ProgressRow, Vec<String>, Vec<String>)> = [
            (a, (a_before.0.clone(), a_before.1.clone(), Vec::new())),
            (b, (b_before.0.clone(), b_before.1.clone(), Vec::new())),
        ]
        .into();
        for (user, category) in scans {
            let Some((row, held, unlocked)) = state.get_mut(&user) else {
                expected.push(Awards::default());
                continue;
            };
            row.scans += 1;
            if !row.categories.iter().any(|c| c == category.code()) {
                row.categories.push(category.code().to_owned());
            }
            let locked_badges: Badges = badges.iter().filter(|(id, _)| !held.contains(id)).cloned().collect();
            let locked_characters: Characters =
                characters.iter().filter(|(id, _)| !unlocked.contains(id)).cloned().collect();
            let awards = decide(&row.progress(), &locked_badges, &locked_characters, held);
            held.extend(awards.badges.iter().cloned());
            unlocked.extend(awards.characters.iter().map(|(id, _)| id.clone()));
            expected.push(awards);
        }

        let mut progress: HashMap<Uuid, ProgressRow> = [(a, a_before.0), (b, b_before.0)].into();
        let standing = |held: Vec<String>| Standing {
            locked_badges: badges.iter().filter(|(id, _)| !held.contains(id)).cloned().collect(),
            locked_characters: characters.clone(),
            held,
        };
        let mut standings: HashMap<Uuid, Standing> = [(a, standing(a_before.1)), (b, standing(b_before.1))].into();
        let decided = decide_scans(&mut progress, &mut standings, &scans);
        assert_eq!(decided, expected);
        // Spot checks of the reference: A's third scan (the run's first) completes the
        // categories and reaches three scans; B's third scan earns scans-3 and its character.
        assert_eq!(decided[0].badges, ["all-categories", "scans-3"]);
        assert_eq!(decided[6].badges, ["scans-3"]);
        assert_eq!(decided[6].characters, [("scanner".to_owned(), UnlockReason::Badge)]);
        assert_eq!(decided[4].badges, ["scans-5"], "A's fifth scan");
        assert_eq!(decided[4].characters, [("sage".to_owned(), UnlockReason::Badge)]);
        assert_eq!(decided[2], Awards::default(), "no standing: forgotten");
        assert_eq!((progress[&a].scans, progress[&b].scans), (6, 3));
        assert_eq!(progress[&a].categories.len(), 9);
    }

    #[test]
    fn a_closed_week_moves_the_rank_of_each_person_in_its_standings() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let closed = Event::new(
            "workers",
            Uuid::now_v7(),
            events::LeaderboardPeriodClosed {
                period: events::ClosedPeriod::Weekly,
                period_key: "2026-W47".into(),
                closed_at: chrono::Utc::now(),
                participants: 2,
                standings: vec![
                    events::FinalStanding { rank: 1, user_id: a, points: 30 },
                    events::FinalStanding { rank: 2, user_id: b, points: 10 },
                ],
            }
            .into(),
        );
        assert_eq!(changes(&closed), [(a, Change::WeeklyRank(1)), (b, Change::WeeklyRank(2))]);
    }
}
