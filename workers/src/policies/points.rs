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
//! query gathers ([`Facts`]); the SQL around it only locks, claims and records. Scans, the
//! hot path, are paid a run at a time ([`PointsPolicy::pay_scans`]): the same locks, facts and
//! decisions, in five statements per run instead of about five per scan.

use std::collections::{HashMap, HashSet};

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

use crate::consumer::{ApplyError, Part, Projector, parts};

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
        let facts = Self::gather_all(tx, &[(award, local_date)])
            .await?
            .pop()
            .ok_or_else(|| ApplyError::Transient(anyhow::anyhow!("no facts read for an award")))?;
        Ok(Facts { near_place, ..facts })
    }

    /// Reads the facts about each award and its local day, in their order (one query).
    async fn gather_all(
        tx: &mut PgConnection,
        awards: &[(&Candidate, chrono::NaiveDate)],
    ) -> Result<Vec<Self>, ApplyError> {
        let (mut users, mut days, mut images, mut rules, mut keys) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (award, day) in awards {
            users.push(award.user_id);
            days.push(*day);
            images.push(award.image_sha256.as_deref());
            rules.push(award.rule);
            keys.push(award.source_key);
        }
        Ok(sqlx::query_as(
            "select (select count(*) from points.ledger l
                     where l.user_id = a.user_id and l.rule = 'scan' and l.local_date = a.day) as scans_paid_today,
                    exists (select 1 from points.rewarded_images r where r.image_sha256 = a.image) as image_rewarded,
                    exists (select 1 from points.ledger l where l.rule = a.rule and l.source_key = a.key) as already_paid
             from unnest($1::uuid[], $2::date[], $3::text[], $4::text[], $5::uuid[])
                  with ordinality as a(user_id, day, image, rule, key, n)
             order by a.n",
        )
        .bind(&users)
        .bind(&days)
        .bind(&images)
        .bind(&rules)
        .bind(&keys)
        .fetch_all(&mut *tx)
        .await?)
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

/// An award of a run to pay: what earned it, the award, its local day, and the payee's balance
/// before and after it.
#[derive(Debug)]
pub struct Payment<'a> {
    /// The scan.
    pub source: &'a Event,
    /// The award.
    pub award: &'a Candidate,
    /// Its local day (the ledger's `local_date`).
    pub day: chrono::NaiveDate,
    /// The balance before.
    pub before: i64,
    /// The balance after.
    pub after: i64,
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

    /// Decides a run of scan awards in order (pure): each with the facts read for it plus what
    /// the earlier awards of the run paid (their scans of the day, their images, their domain
    /// keys), as the facts would show them had each been paid and committed one by one.
    /// Returns the payments, each with the payee's balance before and after it; `balances`
    /// (the locked balances) ends at the run's totals.
    pub fn decide_run<'a>(
        &self,
        awards: &'a [(&'a Event, Candidate, chrono::NaiveDate)],
        found: Vec<Facts>,
        balances: &mut HashMap<Uuid, i64>,
    ) -> Result<Vec<Payment<'a>>, ApplyError> {
        let mut paid_on: HashMap<(Uuid, chrono::NaiveDate), i64> = HashMap::new();
        let mut claimed: HashSet<&str> = HashSet::new();
        let mut entered: HashSet<Uuid> = HashSet::new();
        let mut pays = Vec::new();
        for ((source, award, day), found) in awards.iter().zip(found) {
            let facts = Facts {
                scans_paid_today: found.scans_paid_today + paid_on.get(&(award.user_id, *day)).copied().unwrap_or(0),
                image_rewarded: found.image_rewarded
                    || award.image_sha256.as_deref().is_some_and(|h| claimed.contains(h)),
                already_paid: found.already_paid || entered.contains(&award.source_key),
                near_place: None,
            };
            let decision = self.decide(award, &facts);
            if decision != Decision::Pay {
                tracing::debug!(user.id = %award.user_id, ?decision, "no points");
                continue;
            }
            if let Some(hash) = award.image_sha256.as_deref().filter(|_| self.unique_images) {
                claimed.insert(hash);
            }
            entered.insert(award.source_key);
            *paid_on.entry((award.user_id, *day)).or_default() += 1;
            let before = balances.get(&award.user_id).copied().unwrap_or(0);
            let after = Self::after(before, award.amount)?;
            balances.insert(award.user_id, after);
            pays.push(Payment { source, award, day: *day, before, after });
        }
        Ok(pays)
    }

    fn local_date(&self, at: DateTime<Utc>) -> chrono::NaiveDate {
        at.with_timezone(&self.timezone).date_naive()
    }

    /// Locks the user's balance row (creating it) and returns their points.
    async fn lock_balance(tx: &mut PgConnection, user_id: Uuid) -> Result<i64, ApplyError> {
        Self::lock_balances(tx, &[user_id])
            .await?
            .remove(&user_id)
            .ok_or_else(|| ApplyError::Transient(anyhow::anyhow!("no balance row returned for {user_id}")))
    }

    /// Locks the balance rows of `users` (creating them) in user order, in one statement, and
    /// returns their points.
    async fn lock_balances(tx: &mut PgConnection, users: &[Uuid]) -> Result<HashMap<Uuid, i64>, ApplyError> {
        let mut ordered = users.to_vec();
        ordered.sort_unstable();
        ordered.dedup();
        Ok(sqlx::query_as::<_, (Uuid, i64)>(
            "insert into points.balances (user_id) select u from unnest($1::uuid[]) as u order by u
             on conflict (user_id) do update set updated_at = now()
             returning user_id, points",
        )
        .bind(&ordered)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect())
    }

    /// The balance after `amount` more points (refused past what a balance can hold).
    fn after(before: i64, amount: i64) -> Result<i64, ApplyError> {
        before.checked_add(amount).ok_or_else(|| ApplyError::Permanent {
            code: crate::consumer::REJECTED_BY_DATABASE,
            detail: format!("a balance of {before} cannot take {amount} more points"),
        })
    }

    /// Sets each `(user, points)` balance, with the level those points make (rows already at
    /// their points are left alone).
    async fn set_balances(tx: &mut PgConnection, totals: &[(Uuid, i64)]) -> Result<(), ApplyError> {
        let (owners, points): (Vec<Uuid>, Vec<i64>) = totals.iter().copied().unzip();
        let levels: Vec<i32> = points.iter().map(|p| level_for(*p)).collect();
        sqlx::query(
            "update points.balances b set points = d.points, level = d.level
             from unnest($1::uuid[], $2::bigint[], $3::int[]) as d(user_id, points, level)
             where b.user_id = d.user_id and b.points <> d.points",
        )
        .bind(&owners)
        .bind(&points)
        .bind(&levels)
        .execute(&mut *tx)
        .await?;
        Ok(())
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

    /// Runs of scans are paid together ([`PointsPolicy::pay_scans`]: a handful of statements per
    /// run instead of per scan); our own awards are skipped without breaking a run (they are
    /// news to nobody here, see [`PointsPolicy::award`]); anything else is applied on its own,
    /// in order.
    async fn apply_all(&self, tx: &mut PgConnection, events: &[Event]) -> Result<(), ApplyError> {
        let in_run = |e: &Event| match &e.data {
            EventData::ScanRecorded(_) => true,
            EventData::PointsEarned(p) => p.reason != PointsReason::Bonus,
            _ => false,
        };
        for part in parts(events, in_run) {
            match part {
                Part::Run(run) => self.pay_scans(tx, run).await?,
                Part::Alone(event) => self.apply(tx, event).await?,
            }
        }
        Ok(())
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
                Self::set_balances(tx, &[(p.user_id, after)]).await?;
                Self::announce(tx, event, p.user_id, (before, after), None).await?;
            }
            return Ok(());
        }
        if let EventData::ScanRecorded(_) = &event.data {
            return self.pay_scans(tx, std::slice::from_ref(event)).await;
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
        Self::pay(tx, event, &award, local_date, before).await.map(|_| ())
    }

    /// Pays a run of scans as applying them one by one would, in five statements whatever the
    /// run's length: lock every payee's balance (in user order), read every scan's facts (after
    /// the locks, so no other worker's award for these people can be missing from them), decide
    /// each in order with what the earlier ones in the run paid (daily counts, images, domain
    /// keys, balances), then claim the images, enter the ledger rows and set the balances. When
    /// another worker claimed an image or entered an award meanwhile, a lone scan is simply not
    /// paid (as one by one); a run of more (whose later decisions assumed the earlier payments)
    /// fails, and the batch is applied one event at a time. Events in `scans` that earn nothing
    /// (our own awards, passed over in a run) are skipped.
    async fn pay_scans(&self, tx: &mut PgConnection, scans: &[Event]) -> Result<(), ApplyError> {
        let awards: Vec<(&Event, Candidate, chrono::NaiveDate)> =
            scans.iter().filter_map(|e| candidate(e).map(|award| (e, award, self.local_date(e.occurred_at)))).collect();
        if awards.is_empty() {
            return Ok(());
        }
        let users: Vec<Uuid> = awards.iter().map(|(_, a, _)| a.user_id).collect();
        let mut balances = Self::lock_balances(tx, &users).await?;
        let asked: Vec<(&Candidate, chrono::NaiveDate)> = awards.iter().map(|(_, award, day)| (award, *day)).collect();
        let facts = Facts::gather_all(tx, &asked).await?;

        let pays = self.decide_run(&awards, facts, &mut balances)?;
        if pays.is_empty() {
            return Ok(());
        }

        let raced =
            |what: &str| ApplyError::Transient(anyhow::anyhow!("{what} meanwhile; applying the run one by one"));
        // Claimed in hash order, so two workers claiming the same images never deadlock.
        let mut claims: Vec<(&str, Uuid, Uuid)> = pays
            .iter()
            .filter_map(|p| {
                p.award
                    .image_sha256
                    .as_deref()
                    .filter(|_| self.unique_images)
                    .map(|h| (h, p.award.user_id, p.source.id))
            })
            .collect();
        claims.sort_unstable();
        if !claims.is_empty() {
            let hashes: Vec<&str> = claims.iter().map(|c| c.0).collect();
            let owners: Vec<Uuid> = claims.iter().map(|c| c.1).collect();
            let sources: Vec<Uuid> = claims.iter().map(|c| c.2).collect();
            let first = sqlx::query(
                "insert into points.rewarded_images (image_sha256, user_id, source_event_id)
                 select * from unnest($1::text[], $2::uuid[], $3::uuid[]) on conflict do nothing",
            )
            .bind(&hashes)
            .bind(&owners)
            .bind(&sources)
            .execute(&mut *tx)
            .await?;
            if first.rows_affected() < claims.len() as u64 {
                if awards.len() > 1 {
                    return Err(raced("another worker rewarded an image"));
                }
                tracing::debug!(decision = ?Decision::ImageAlreadyRewarded, "no points");
                return Ok(());
            }
        }

        let earned: Vec<Event> = pays
            .iter()
            .map(|p| {
                let data = PointsEarned {
                    user_id: p.award.user_id,
                    amount: p.award.amount,
                    reason: p.award.reason,
                    source_event_id: p.source.id,
                };
                Event::new(SOURCE, p.award.user_id, data.into())
            })
            .collect();
        let entries = sqlx::query(
            "insert into points.ledger (rule, source_key, user_id, amount, source_event_id, earned_event_id, local_date, earned_at)
             select * from unnest($1::text[], $2::uuid[], $3::uuid[], $4::bigint[], $5::uuid[], $6::uuid[], $7::date[], $8::timestamptz[])
             on conflict do nothing",
        )
        .bind(pays.iter().map(|p| p.award.rule).collect::<Vec<_>>())
        .bind(pays.iter().map(|p| p.award.source_key).collect::<Vec<_>>())
        .bind(pays.iter().map(|p| p.award.user_id).collect::<Vec<_>>())
        .bind(pays.iter().map(|p| p.award.amount).collect::<Vec<_>>())
        .bind(pays.iter().map(|p| p.source.id).collect::<Vec<_>>())
        .bind(earned.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind(pays.iter().map(|p| p.day).collect::<Vec<_>>())
        .bind(pays.iter().map(|p| p.source.occurred_at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        if entries.rows_affected() < pays.len() as u64 {
            if awards.len() > 1 {
                return Err(raced("another worker paid one of these scans"));
            }
            return Ok(()); // already paid for this (rule, source)
        }
        let totals: Vec<(Uuid, i64)> = balances.into_iter().collect();
        Self::set_balances(tx, &totals).await?;
        for (p, earned) in pays.into_iter().zip(earned) {
            Self::announce(tx, p.source, p.award.user_id, (p.before, p.after), Some(earned)).await?;
        }
        Ok(())
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

    /// A run decided at once pays what the same scans paid one by one would: the cap counts
    /// what the run paid, an image and a domain key pay once within the run as across runs,
    /// and each payment carries the running balance.
    #[test]
    fn a_run_is_decided_as_its_scans_one_by_one() {
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let day = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let scan = |user: Uuid, image: Option<&str>| {
            let award = Candidate { user_id: user, ..scan_award(image) };
            let data = ScanRecorded {
                scan_id: award.source_key,
                user_id: user,
                category: Category::Metal,
                item_name: "can".into(),
                confidence: None,
                image_sha256: award.image_sha256.clone(),
                scanned_at: Utc::now(),
            };
            (Event::new("scan-service", user, data.into()), award)
        };
        let picture = "ab".repeat(32);
        let mut run = vec![
            scan(alice, Some(&picture)),
            scan(bob, Some(&picture)), // her picture: paid already within the run
            scan(alice, None),
            scan(alice, None), // alice's third paid scan: the cap (3) is reached
            scan(alice, None), // over the cap
            scan(bob, None),
        ];
        let again = Candidate { source_key: run[2].1.source_key, ..run[2].1.clone() };
        run.push((run[2].0.clone(), again)); // the same domain key again
        let awards: Vec<(&Event, Candidate, NaiveDate)> = run.iter().map(|(e, c)| (e, c.clone(), day)).collect();
        // Bob was paid one scan today before this run; alice has 95 points (level 1).
        let found = awards
            .iter()
            .map(|(_, a, _)| Facts { scans_paid_today: i64::from(a.user_id == bob), ..Facts::default() })
            .collect();
        let mut balances = HashMap::from([(alice, 95), (bob, 0)]);
        let pays = policy().decide_run(&awards, found, &mut balances).unwrap();
        let paid: Vec<(usize, i64, i64)> = pays
            .iter()
            .map(|p| (awards.iter().position(|a| std::ptr::eq(&a.1, p.award)).unwrap(), p.before, p.after))
            .collect();
        assert_eq!(paid, [(0, 95, 105), (2, 105, 115), (3, 115, 125), (5, 0, 10)]);
        assert_eq!(balances, HashMap::from([(alice, 125), (bob, 10)]));
        // The same awards one by one, each seeing what the earlier ones paid, decide alike.
        let mut ledger: Vec<&Candidate> = Vec::new();
        let mut one_by_one = Vec::new();
        for (i, (_, award, _)) in awards.iter().enumerate() {
            let facts = Facts {
                scans_paid_today: i64::from(award.user_id == bob)
                    + ledger.iter().filter(|p| p.user_id == award.user_id).count() as i64,
                image_rewarded: ledger.iter().any(|p| p.image_sha256.is_some() && p.image_sha256 == award.image_sha256),
                already_paid: ledger.iter().any(|p| p.source_key == award.source_key),
                near_place: None,
            };
            if policy().decide(award, &facts) == Decision::Pay {
                ledger.push(award);
                one_by_one.push(i);
            }
        }
        assert_eq!(one_by_one, paid.iter().map(|p| p.0).collect::<Vec<_>>());
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
