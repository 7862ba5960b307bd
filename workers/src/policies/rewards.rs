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
//! The catalogues are read at decision time: a badge added later is awarded at the user's next
//! event that moves their progress. `user.deleted` empties the person's progress and awards and
//! marks the row forgotten, so a late event awards nothing.

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

use crate::consumer::{ApplyError, Projector};

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

#[derive(sqlx::FromRow)]
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
        let forgotten: bool = sqlx::query_scalar(
            "insert into rewards.progress (user_id) values ($1)
             on conflict (user_id) do update set updated_at = now() returning forgotten",
        )
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
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
        Ok(sqlx::query_as(
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
             returning scans, categories, paid_recycles, invites, level, best_streak, best_weekly_rank,
                       best_monthly_rank, forgotten",
        )
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

    /// Awards what `user`'s progress now earns, recording the events after `source`.
    async fn award(tx: &mut PgConnection, source: &Event, user: Uuid, row: &ProgressRow) -> Result<(), ApplyError> {
        if row.forgotten {
            return Ok(());
        }
        let locked_badges: Vec<(String, Criterion)> =
            not_yet(tx, "rewards.badges", "criterion", "rewards.earned_badges", "badge_id", user).await?;
        let locked_characters: Vec<(String, UnlockRule)> =
            not_yet(tx, "rewards.characters", "rule", "rewards.unlocked_characters", "character_id", user).await?;
        let held: Vec<String> = if locked_characters.is_empty() {
            Vec::new()
        } else {
            sqlx::query_scalar("select badge_id from rewards.earned_badges where user_id = $1")
                .bind(user)
                .fetch_all(&mut *tx)
                .await?
        };
        let awards = decide(&row.progress(), &locked_badges, &locked_characters, &held);
        if awards == Awards::default() {
            return Ok(());
        }
        let caused = |data: EventData| Event::new(SOURCE, user, data).caused_by(source.correlation_id, Some(source.id));
        let mut events: Vec<Event> = Vec::new();
        for badge_id in awards.badges {
            let event =
                caused(BadgeEarned { user_id: user, badge_id: badge_id.clone(), source_event_id: source.id }.into());
            sqlx::query(
                "insert into rewards.earned_badges (user_id, badge_id, event_id, earned_at) values ($1, $2, $3, $4)",
            )
            .bind(user)
            .bind(&badge_id)
            .bind(event.id)
            .bind(event.occurred_at)
            .execute(&mut *tx)
            .await?;
            events.push(event);
        }
        for (character_id, reason) in awards.characters {
            let event = caused(CharacterUnlocked { user_id: user, character_id: character_id.clone(), reason }.into());
            sqlx::query(
                "insert into rewards.unlocked_characters (user_id, character_id, event_id, unlocked_at)
                 values ($1, $2, $3, $4)",
            )
            .bind(user)
            .bind(&character_id)
            .bind(event.id)
            .bind(event.occurred_at)
            .execute(&mut *tx)
            .await?;
            events.push(event);
        }
        tracing::debug!(user.id = %user, events = events.len(), "rewards awarded");
        eventstore::append_at_end(tx, events).await?;
        Ok(())
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

/// The entries of a catalogue (`table`, criterion or rule in `spec_column`) not yet awarded to
/// `user` (in `awarded`, keyed by `key`), in display order; an entry this version cannot read is
/// left out ([`readable`]), as `GET /badges` does.
async fn not_yet<T: serde::de::DeserializeOwned>(
    tx: &mut PgConnection,
    table: &str,
    spec_column: &str,
    awarded: &str,
    key: &str,
    user: Uuid,
) -> sqlx::Result<Vec<(String, T)>> {
    let rows: Vec<(String, serde_json::Value)> = sqlx::query_as(&format!(
        "select c.id, c.{spec_column} from {table} c
         where not exists (select 1 from {awarded} a where a.user_id = $1 and a.{key} = c.id)
         order by c.sort_order, c.id"
    ))
    .bind(user)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().filter_map(|(id, spec)| readable(&id, spec).map(|spec| (id, spec))).collect())
}

impl Projector for RewardsPolicy {
    const RECORDS_EVENTS: bool = true;

    fn spec(&self) -> &'static ConsumerSpec {
        &REWARDS_POLICY
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        if let EventData::UserDeleted(d) = &event.data {
            return Self::forget(tx, d.user_id).await;
        }
        let mut changes = changes(event);
        // Several users (a period's standings): lock their rows in one order.
        changes.sort_by_key(|(user, _)| *user);
        for (user, change) in changes {
            let row = Self::update(tx, user, &change).await?;
            Self::award(tx, event, user, &row).await?;
        }
        Ok(())
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
