//! The points policy: pays for what users do (DESIGN §4) and announces level-ups.
//!
//! It consumes `scan.recorded`, `recycle.completed`, `attendance.checked_in` and
//! `invite.accepted` whoever published them, and records `points.earned` (and `level.reached`
//! for each level crossed) through the outbox **in the same transaction** as its ledger row,
//! so an award and its announcement commit together or not at all.
//!
//! Idempotent twice over: the framework applies each event once per `(points-policy, event id)`,
//! and the ledger's key is the rule plus the *domain* key of what earned it (the scan id, the
//! recycle id, the user and day of a check-in, the invitee), so even the same scan re-published
//! under a new event id pays once. Awards for one user are serialised by locking their
//! `points.balances` row first, which keeps the daily cap exact with several workers running.
//! An admin's `points.earned` (`reason: bonus`) is not paid again; it only moves the balance and
//! may announce a level.
//!
//! Each award is decided by a pure function ([`PointsPolicy::decide`]) over facts that one SQL
//! query gathers ([`Facts`]); the SQL around it only locks, claims and records.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use events::{
    AttendanceCheckedIn, Event, EventData, LevelReached, PointsEarned, PointsReason,
    rules::{ATTENDANCE_POINTS, INVITE_POINTS, RECYCLE_POINTS, SCAN_POINTS, STREAK_BONUS_EVERY, level_for, streaks},
};
use platform::{
    eventstore,
    topology::{ConsumerSpec, POINTS_POLICY},
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::consumer::{ApplyError, Projector};

/// The `source` of the events this policy records.
pub const SOURCE: &str = "points-policy";

/// What the policy is configured with.
#[derive(Debug, Clone)]
pub struct PointsPolicy {
    /// App time zone, for the day of the scan cap.
    pub timezone: Tz,
    /// Rewarded scans per user per local day.
    pub scan_daily_cap: i64,
    /// Pay an image hash only once.
    pub unique_images: bool,
    /// Pay a recycle only this close (metres) to a known bin or center.
    pub recycle_max_distance_m: f64,
    /// Points for every 7th consecutive check-in day (0: none).
    pub streak_bonus_points: i64,
}

/// One possible award, decided from the event alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The ledger rule.
    pub rule: &'static str,
    /// The domain key of what earned it.
    pub source_key: Uuid,
    /// Who gets the points.
    pub user_id: Uuid,
    /// How many.
    pub amount: i64,
    /// Why.
    pub reason: PointsReason,
    /// For scans: the image hash.
    pub image_sha256: Option<String>,
}

/// The award an event asks for, before caps and ledger (pure).
pub fn candidate(event: &Event) -> Option<Candidate> {
    let (rule, source_key, user_id, amount, reason, image) = match &event.data {
        EventData::ScanRecorded(s) => {
            ("scan", s.scan_id, s.user_id, SCAN_POINTS, PointsReason::Scan, s.image_sha256.clone())
        }
        EventData::RecycleCompleted(r) => {
            ("recycle", r.recycle_id, r.user_id, RECYCLE_POINTS, PointsReason::Recycle, None)
        }
        EventData::AttendanceCheckedIn(a) => {
            let day_key = Uuid::new_v5(&a.user_id, a.date.to_string().as_bytes());
            ("attendance", day_key, a.user_id, ATTENDANCE_POINTS, PointsReason::Attendance, None)
        }
        EventData::InviteAccepted(i) => {
            ("invite", i.invitee_id, i.inviter_id, INVITE_POINTS, PointsReason::Invite, None)
        }
        _ => return None,
    };
    Some(Candidate { rule, source_key, user_id, amount, reason, image_sha256: image })
}

/// The `level.reached` events for going from `before` to `after` points: one per level crossed.
pub fn levels_crossed(user_id: Uuid, before: i64, after: i64) -> Vec<EventData> {
    ((level_for(before) + 1)..=level_for(after))
        .map(|level| LevelReached { user_id, level, points: after }.into())
        .collect()
}

/// What the policy knows when it decides, gathered under the user's balance lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Facts {
    /// For a recycle: whether it happened near a known bin or center.
    #[sqlx(skip)]
    pub near_place: Option<bool>,
    /// Scans already paid to the user on the local day of this one.
    pub scans_paid_today: i64,
    /// Whether the scan's image was rewarded before (to anyone).
    pub image_rewarded: bool,
    /// Whether the ledger already holds this award (same rule and domain key).
    pub already_paid: bool,
}

impl Facts {
    /// Reads the facts about `award` (one query).
    async fn gather(
        tx: &mut PgConnection,
        award: &Candidate,
        local_date: chrono::NaiveDate,
        near_place: Option<bool>,
    ) -> Result<Self, ApplyError> {
        let facts: Facts = sqlx::query_as(
            "select (select count(*) from points.ledger where user_id = $1 and rule = 'scan' and local_date = $2) as scans_paid_today,
                    exists (select 1 from points.rewarded_images where image_sha256 = $3) as image_rewarded,
                    exists (select 1 from points.ledger where rule = $4 and source_key = $5) as already_paid",
        )
        .bind(award.user_id)
        .bind(local_date)
        .bind(&award.image_sha256)
        .bind(award.rule)
        .bind(award.source_key)
        .fetch_one(&mut *tx)
        .await?;
        Ok(Facts { near_place, ..facts })
    }
}

/// Whether an award is paid, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Pay it.
    Pay,
    /// Paid before (same rule and domain key).
    AlreadyPaid,
    /// A recycle far from every known bin and center.
    NotNearPlace,
    /// The user's rewarded scans for the day are used up.
    DailyCapReached,
    /// The scan's image was rewarded before.
    ImageAlreadyRewarded,
}

impl PointsPolicy {
    /// Decides an award from the facts (pure).
    pub fn decide(&self, award: &Candidate, facts: &Facts) -> Decision {
        if facts.already_paid {
            return Decision::AlreadyPaid;
        }
        if facts.near_place == Some(false) {
            return Decision::NotNearPlace;
        }
        if award.rule == "scan" {
            if facts.scans_paid_today >= self.scan_daily_cap {
                return Decision::DailyCapReached;
            }
            if self.unique_images && award.image_sha256.is_some() && facts.image_rewarded {
                return Decision::ImageAlreadyRewarded;
            }
        }
        Decision::Pay
    }

    fn local_date(&self, at: DateTime<Utc>) -> chrono::NaiveDate {
        at.with_timezone(&self.timezone).date_naive()
    }

    /// Locks the user's balance row (creating it) and returns their points.
    async fn lock_balance(tx: &mut PgConnection, user_id: Uuid) -> Result<i64, ApplyError> {
        Ok(sqlx::query_scalar(
            "insert into points.balances (user_id) values ($1)
             on conflict (user_id) do update set updated_at = now()
             returning points",
        )
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?)
    }

    /// The balance after `amount` more points (refused past what a balance can hold).
    fn after(before: i64, amount: i64) -> Result<i64, ApplyError> {
        before.checked_add(amount).ok_or_else(|| ApplyError::Permanent {
            code: crate::consumer::REJECTED_BY_DATABASE,
            detail: format!("a balance of {before} cannot take {amount} more points"),
        })
    }

    /// Records, after `source`, what a balance going from `before` to `after` points says:
    /// `earned` (the award, whose id its ledger row holds) and a `level.reached` per level
    /// crossed.
    async fn announce(
        tx: &mut PgConnection,
        source: &Event,
        user_id: Uuid,
        (before, after): (i64, i64),
        earned: Option<Event>,
    ) -> Result<(), ApplyError> {
        let events: Vec<Event> = earned
            .into_iter()
            .chain(levels_crossed(user_id, before, after).into_iter().map(|data| Event::new(SOURCE, user_id, data)))
            .map(|e| e.caused_by(source.correlation_id, Some(source.id)))
            .collect();
        eventstore::append_at_end(tx, events).await?;
        Ok(())
    }
}

impl Projector for PointsPolicy {
    const RECORDS_EVENTS: bool = true;

    fn spec(&self) -> &'static ConsumerSpec {
        &POINTS_POLICY
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        self.award(tx, event).await?;
        if let EventData::AttendanceCheckedIn(a) = &event.data {
            self.streak_bonuses(tx, event, a).await?;
        }
        Ok(())
    }
}

impl PointsPolicy {
    /// Records the check-in day and pays the streak bonus of every day whose run of consecutive
    /// days it makes a multiple of [`STREAK_BONUS_EVERY`] (the day itself, or, for a day that
    /// arrives late, the days after it). Keyed in the ledger by user and day: once per streak day.
    async fn streak_bonuses(
        &self,
        tx: &mut PgConnection,
        event: &Event,
        a: &AttendanceCheckedIn,
    ) -> Result<(), ApplyError> {
        // The balance lock serialises the user's check-ins (taken by the award before).
        let mut balance = Self::lock_balance(tx, a.user_id).await?;
        let days = readmodels::check_ins::record(tx, "points.check_in_days", a.user_id, a.date).await?;
        if self.streak_bonus_points <= 0 {
            return Ok(());
        }
        for day in streaks::bonus_days(&days, a.date, STREAK_BONUS_EVERY) {
            let bonus = Candidate {
                rule: "streak",
                source_key: Uuid::new_v5(&a.user_id, format!("streak:{day}").as_bytes()),
                user_id: a.user_id,
                amount: self.streak_bonus_points,
                reason: PointsReason::Streak,
                image_sha256: None,
            };
            if let Some(after) = Self::pay(tx, event, &bonus, day, balance).await? {
                balance = after;
            }
        }
        Ok(())
    }

    /// Pays what `event` earns under the rules, once.
    async fn award(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        if let EventData::PointsEarned(p) = &event.data {
            // Only an admin's bonus is news to the balance; our own awards were counted already.
            if p.reason == PointsReason::Bonus {
                let before = Self::lock_balance(tx, p.user_id).await?;
                let after = Self::after(before, p.amount)?;
                sqlx::query("update points.balances set points = $2, level = $3 where user_id = $1")
                    .bind(p.user_id)
                    .bind(after)
                    .bind(level_for(after))
                    .execute(&mut *tx)
                    .await?;
                Self::announce(tx, event, p.user_id, (before, after), None).await?;
            }
            return Ok(());
        }
        let Some(award) = candidate(event) else { return Ok(()) };
        let near_place = match &event.data {
            EventData::RecycleCompleted(r) => Some(
                command_api::content::places::judge_recycle(&mut *tx, r.location, self.recycle_max_distance_m)
                    .await?
                    .eligible(),
            ),
            _ => None,
        };
        let before = Self::lock_balance(tx, award.user_id).await?;
        let local_date = self.local_date(event.occurred_at);
        let facts = Facts::gather(tx, &award, local_date, near_place).await?;
        let decision = self.decide(&award, &facts);
        if decision != Decision::Pay {
            tracing::debug!(user.id = %award.user_id, ?decision, "no points");
            return Ok(());
        }
        if let Some(hash) = award.image_sha256.as_deref().filter(|_| self.unique_images) {
            // The claim is the guard against two users racing with one image (their balance
            // locks do not serialise them).
            let first = sqlx::query(
                "insert into points.rewarded_images (image_sha256, user_id, source_event_id) values ($1, $2, $3)
                 on conflict do nothing",
            )
            .bind(hash)
            .bind(award.user_id)
            .bind(event.id)
            .execute(&mut *tx)
            .await?;
            if first.rows_affected() == 0 {
                tracing::debug!(user.id = %award.user_id, decision = ?Decision::ImageAlreadyRewarded, "no points");
                return Ok(());
            }
        }
        Self::pay(tx, event, &award, local_date, before).await.map(|_| ())
    }

    /// Enters `award` in the ledger under its rule and domain key and, when that entry is new,
    /// credits the balance (`before`) and records `points.earned` (and any `level.reached`)
    /// after `source`. The new balance, or `None` when it had been paid already.
    async fn pay(
        tx: &mut PgConnection,
        source: &Event,
        award: &Candidate,
        local_date: chrono::NaiveDate,
        before: i64,
    ) -> Result<Option<i64>, ApplyError> {
        let earned = Event::new(
            SOURCE,
            award.user_id,
            PointsEarned {
                user_id: award.user_id,
                amount: award.amount,
                reason: award.reason,
                source_event_id: source.id,
            }
            .into(),
        );
        let after = Self::after(before, award.amount)?;
        // The ledger entry and the credit in one statement: no entry (paid before), no credit.
        let (entered, credited): (bool, bool) = sqlx::query_as(
            "with entry as (
                 insert into points.ledger (rule, source_key, user_id, amount, source_event_id, earned_event_id, local_date, earned_at)
                 values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict do nothing returning user_id),
             credit as (
                 update points.balances b set points = $9, level = $10 from entry where b.user_id = entry.user_id
                 returning b.user_id)
             select exists (select 1 from entry), exists (select 1 from credit)",
        )
        .bind(award.rule)
        .bind(award.source_key)
        .bind(award.user_id)
        .bind(award.amount)
        .bind(source.id)
        .bind(earned.id)
        .bind(local_date)
        .bind(source.occurred_at)
        .bind(after)
        .bind(level_for(after))
        .fetch_one(&mut *tx)
        .await?;
        if !entered {
            return Ok(None); // already paid for this (rule, source)
        }
        if !credited {
            // `lock_balance` creates the row first; without it the award must not commit.
            return Err(ApplyError::Transient(anyhow::anyhow!("no balance row for {} to credit", award.user_id)));
        }
        Self::announce(tx, source, award.user_id, (before, after), Some(earned)).await?;
        Ok(Some(after))
    }
}

impl crate::registry::Build for PointsPolicy {
    fn build(deps: &crate::registry::Deps) -> anyhow::Result<Self> {
        let s = &deps.settings;
        Ok(Self {
            timezone: s.app_timezone,
            scan_daily_cap: s.scan_daily_cap,
            unique_images: s.scan_unique_images,
            recycle_max_distance_m: s.recycle_max_distance_m,
            streak_bonus_points: s.streak_bonus_points,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use events::{AttendanceCheckedIn, Category, InviteAccepted, ScanRecorded};

    use super::*;

    #[test]
    fn each_action_pays_its_rule() {
        let user = Uuid::now_v7();
        let scan = Event::new(
            "scan-service",
            user,
            ScanRecorded {
                scan_id: Uuid::now_v7(),
                user_id: user,
                category: Category::Paper,
                item_name: "box".into(),
                confidence: None,
                image_sha256: None,
                scanned_at: Utc::now(),
            }
            .into(),
        );
        assert_eq!(candidate(&scan).map(|c| (c.rule, c.amount)), Some(("scan", 10)));
        let friend = Uuid::now_v7();
        let invite = Event::new("command-api", user, InviteAccepted { inviter_id: user, invitee_id: friend }.into());
        let c = candidate(&invite).unwrap();
        assert_eq!((c.user_id, c.source_key, c.amount), (user, friend, 100), "the inviter is paid, once per invitee");
    }

    #[test]
    fn two_check_ins_on_one_day_share_a_ledger_key() {
        let user = Uuid::now_v7();
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let a = Event::new("x", user, AttendanceCheckedIn { user_id: user, date: day }.into());
        let b = Event::new("y", user, AttendanceCheckedIn { user_id: user, date: day }.into());
        assert_ne!(a.id, b.id);
        assert_eq!(candidate(&a).unwrap().source_key, candidate(&b).unwrap().source_key);
    }

    fn policy() -> PointsPolicy {
        PointsPolicy {
            timezone: chrono_tz::Asia::Seoul,
            scan_daily_cap: 3,
            unique_images: true,
            recycle_max_distance_m: 50.0,
            streak_bonus_points: 20,
        }
    }

    fn scan_award(image: Option<&str>) -> Candidate {
        Candidate {
            rule: "scan",
            source_key: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            amount: SCAN_POINTS,
            reason: PointsReason::Scan,
            image_sha256: image.map(str::to_owned),
        }
    }

    #[test]
    fn the_daily_cap_pays_up_to_the_cap_and_not_one_more() {
        // Given a cap of 3, when 2 scans were paid today, then a third is paid…
        let facts = Facts { scans_paid_today: 2, ..Facts::default() };
        assert_eq!(policy().decide(&scan_award(None), &facts), Decision::Pay);
        // …and when 3 were, a fourth is not.
        let facts = Facts { scans_paid_today: 3, ..Facts::default() };
        assert_eq!(policy().decide(&scan_award(None), &facts), Decision::DailyCapReached);
    }

    #[test]
    fn an_image_is_paid_once_when_unique_images_are_required() {
        let rewarded = Facts { image_rewarded: true, ..Facts::default() };
        assert_eq!(policy().decide(&scan_award(Some("ab")), &rewarded), Decision::ImageAlreadyRewarded);
        assert_eq!(policy().decide(&scan_award(None), &rewarded), Decision::Pay, "no image, nothing to compare");
        let lenient = PointsPolicy { unique_images: false, ..policy() };
        assert_eq!(lenient.decide(&scan_award(Some("ab")), &rewarded), Decision::Pay);
    }

    #[test]
    fn a_recycle_far_from_places_is_not_paid_and_the_cap_is_for_scans_only() {
        let recycle =
            Candidate { rule: "recycle", amount: RECYCLE_POINTS, reason: PointsReason::Recycle, ..scan_award(None) };
        let far = Facts { near_place: Some(false), ..Facts::default() };
        assert_eq!(policy().decide(&recycle, &far), Decision::NotNearPlace);
        let near_after_many_scans = Facts { near_place: Some(true), scans_paid_today: 99, ..Facts::default() };
        assert_eq!(policy().decide(&recycle, &near_after_many_scans), Decision::Pay);
    }

    #[test]
    fn what_was_paid_is_never_paid_again() {
        let paid = Facts { already_paid: true, ..Facts::default() };
        assert_eq!(policy().decide(&scan_award(None), &paid), Decision::AlreadyPaid);
    }

    #[test]
    fn every_level_crossed_is_announced() {
        let user = Uuid::nil();
        assert!(levels_crossed(user, 90, 100).is_empty());
        let crossed: Vec<i32> = levels_crossed(user, 90, 700)
            .into_iter()
            .map(|e| match e {
                EventData::LevelReached(l) => l.level,
                _ => 0,
            })
            .collect();
        assert_eq!(crossed, [2, 3, 4]);
    }
}
