//! The published rules of the game (DESIGN §4): what each action pays, where levels begin, and
//! how a user's invite code is derived. Pure; shared by the write side, the points policy and the
//! read models.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Points for one scan.
pub const SCAN_POINTS: i64 = 10;
/// Points for one completed recycle.
pub const RECYCLE_POINTS: i64 = 50;
/// Points for the daily check-in.
pub const ATTENDANCE_POINTS: i64 = 5;
/// Points to the inviter when an invited friend joins.
pub const INVITE_POINTS: i64 = 100;

/// The first point total of each level: level 1 from 0, 2 from 101, 3 from 301, 4 from 601,
/// 5 from 1001.
pub const LEVEL_STARTS: [i64; 5] = [0, 101, 301, 601, 1001];

/// The highest level.
pub const MAX_LEVEL: i32 = 5;

/// The level of a point total.
pub fn level_for(points: i64) -> i32 {
    LEVEL_STARTS.iter().rposition(|start| points >= *start).map_or(1, |i| i as i32 + 1)
}

/// The point total where `level` begins, if there is such a level.
pub fn level_start(level: i32) -> Option<i64> {
    usize::try_from(level - 1).ok().and_then(|i| LEVEL_STARTS.get(i)).copied()
}

/// The invite code of a user: 8 characters of Crockford base32 from a hash of the user id.
/// Derived, so a rebuild gives every user the same code again. PostgreSQL derives the same for
/// the write side (`auth.invite_code(id)`, a generated column of `auth.users`).
pub fn invite_code(user_id: Uuid) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let digest = Sha256::digest(user_id.as_bytes());
    let bits = u64::from_be_bytes([digest[0], digest[1], digest[2], digest[3], digest[4], 0, 0, 0]) >> 24;
    (0..8).rev().map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char).collect()
}

/// Points for every 7th consecutive day of check-ins (the default of `STREAK_BONUS_POINTS`).
pub const STREAK_BONUS_POINTS: i64 = 20;
/// Every this many consecutive days pays the streak bonus.
pub const STREAK_BONUS_EVERY: i64 = 7;

/// Attendance streaks over the local days someone checked in (any order, duplicates allowed).
pub mod streaks {
    use chrono::NaiveDate;

    /// The consecutive days ending at `day` (0 when `day` itself is not among `days`).
    pub fn run_ending_at(days: &[NaiveDate], day: NaiveDate) -> i64 {
        let set: std::collections::BTreeSet<NaiveDate> = days.iter().copied().collect();
        let mut n = 0;
        let mut d = day;
        while set.contains(&d) {
            n += 1;
            match d.pred_opt() {
                Some(p) => d = p,
                None => break,
            }
        }
        n
    }

    /// The days whose run becomes a multiple of `every` when `added` joins `days` (which holds
    /// it): `added` and the days right after it, as far as they follow each other. These are
    /// the streak bonuses `added` completes; earlier days' runs did not change.
    pub fn bonus_days(days: &[NaiveDate], added: NaiveDate, every: i64) -> Vec<NaiveDate> {
        let set: std::collections::BTreeSet<NaiveDate> = days.iter().copied().collect();
        let mut run = run_ending_at(days, added);
        let mut out = Vec::new();
        let mut d = added;
        while every > 0 && set.contains(&d) {
            if run % every == 0 {
                out.push(d);
            }
            match d.succ_opt() {
                Some(next) => d = next,
                None => break,
            }
            run += 1;
        }
        out
    }

    /// `(run ending at the latest day, longest run, latest day)`: what a profile shows.
    pub fn summary(days: &[NaiveDate]) -> (i64, i64, Option<NaiveDate>) {
        let mut sorted: Vec<NaiveDate> = days.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let (mut best, mut run) = (0i64, 0i64);
        for (i, d) in sorted.iter().enumerate() {
            run = if i > 0 && sorted[i - 1].succ_opt() == Some(*d) { run + 1 } else { 1 };
            best = best.max(run);
        }
        (run, best, sorted.last().copied())
    }

    /// The streak as of `today`: the run ending at the last check-in while that was today or
    /// yesterday, else 0 (a missed day ends it).
    pub fn current(run: i64, last: Option<NaiveDate>, today: NaiveDate) -> i64 {
        match last {
            Some(last) if last == today || last.succ_opt() == Some(today) => run,
            _ => 0,
        }
    }
}

/// Badge criteria and character unlock rules: pure functions of what a user has done
/// ([`rewards::Progress`]), evaluated by the rewards policy after every event that moves it.
pub mod rewards {
    use serde::{Deserialize, Serialize};

    use crate::Category;

    /// What the rewards policy knows about a user.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Progress {
        /// Scans recorded.
        pub scans: i64,
        /// Distinct categories scanned.
        pub categories: Vec<Category>,
        /// Recycles that were paid (done near a known bin or center).
        pub paid_recycles: i64,
        /// Friends who joined with the user's code.
        pub invites: i64,
        /// Current level.
        pub level: i32,
        /// Longest run of consecutive check-in days.
        pub best_streak: i64,
        /// Best final rank in a closed week, if ever ranked.
        pub best_weekly_rank: Option<i64>,
        /// Best final rank in a closed month, if ever ranked.
        pub best_monthly_rank: Option<i64>,
    }

    /// When a badge is earned. Catalogue entries carry one, as JSON (`{"kind": "scans", "count": 10}`).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
    #[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
    pub enum Criterion {
        /// At least `count` scans.
        Scans {
            /// How many.
            #[schema(minimum = 1)]
            #[serde(deserialize_with = "crate::json_integer")]
            count: i64,
        },
        /// Every category scanned at least once.
        AllCategories,
        /// At least `count` paid (honest) recycles.
        Recycles {
            /// How many.
            #[schema(minimum = 1)]
            #[serde(deserialize_with = "crate::json_integer")]
            count: i64,
        },
        /// At least `count` friends joined.
        Invites {
            /// How many.
            #[schema(minimum = 1)]
            #[serde(deserialize_with = "crate::json_integer")]
            count: i64,
        },
        /// `days` consecutive check-in days.
        Streak {
            /// How many.
            #[schema(minimum = 1)]
            #[serde(deserialize_with = "crate::json_integer")]
            days: i64,
        },
        /// Level `level` reached.
        Level {
            /// Which.
            #[schema(minimum = 1, maximum = 5)]
            #[serde(deserialize_with = "crate::json_integer")]
            level: i32,
        },
        /// A closed week finished at rank `rank` or better.
        WeeklyRank {
            /// The worst rank that counts.
            #[schema(minimum = 1)]
            #[serde(deserialize_with = "crate::json_integer")]
            rank: i64,
        },
        /// A closed month finished at rank `rank` or better.
        MonthlyRank {
            /// The worst rank that counts.
            #[schema(minimum = 1)]
            #[serde(deserialize_with = "crate::json_integer")]
            rank: i64,
        },
    }

    impl Criterion {
        /// Whether `progress` meets it.
        pub fn met(&self, p: &Progress) -> bool {
            match *self {
                Self::Scans { count } => p.scans >= count,
                Self::AllCategories => Category::ALL.iter().all(|c| p.categories.contains(c)),
                Self::Recycles { count } => p.paid_recycles >= count,
                Self::Invites { count } => p.invites >= count,
                Self::Streak { days } => p.best_streak >= days,
                Self::Level { level } => p.level >= level,
                Self::WeeklyRank { rank } => p.best_weekly_rank.is_some_and(|r| r <= rank),
                Self::MonthlyRank { rank } => p.best_monthly_rank.is_some_and(|r| r <= rank),
            }
        }

        /// What is wrong with it, if anything (counts and ranks positive, levels that exist).
        pub fn problem(&self) -> Option<&'static str> {
            let positive = match *self {
                Self::Scans { count } | Self::Recycles { count } | Self::Invites { count } => count,
                Self::Streak { days } => days,
                Self::WeeklyRank { rank } | Self::MonthlyRank { rank } => rank,
                Self::Level { level } => {
                    return (!(1..=super::MAX_LEVEL).contains(&level)).then_some("level must be a level that exists");
                }
                Self::AllCategories => 1,
            };
            (positive < 1).then_some("counts, days and ranks must be at least 1")
        }
    }

    /// When a character unlocks: a level, a badge, or both (at least one).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct UnlockRule {
        /// The level to reach, if any.
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::json_integer_opt")]
        #[schema(nullable = false, minimum = 1, maximum = 5)]
        pub level: Option<i32>,
        /// The badge to hold, if any.
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
        #[schema(nullable = false, min_length = 1, max_length = 48, pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")]
        pub badge_id: Option<String>,
    }

    /// A field that, when present, holds a value (`null` is refused like a wrong type).
    fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
        T::deserialize(d).map(Some)
    }

    impl UnlockRule {
        /// Whether someone at `level` holding `badges` has it unlocked.
        pub fn met(&self, level: i32, badges: &[String]) -> bool {
            self.level.is_none_or(|l| level >= l) && self.badge_id.as_ref().is_none_or(|b| badges.contains(b))
        }

        /// What is wrong with it, if anything.
        pub fn problem(&self) -> Option<&'static str> {
            if self.level.is_none() && self.badge_id.is_none() {
                return Some("a rule needs a level, a badge, or both");
            }
            if self.level.is_some_and(|l| !(1..=super::MAX_LEVEL).contains(&l)) {
                return Some("level must be a level that exists");
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn invite_codes_are_stable_and_readable() {
        let id = Uuid::now_v7();
        let code = invite_code(id);
        assert_eq!(code, invite_code(id));
        assert_eq!(code.len(), 8);
        assert!(code.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        assert!(!code.contains(['I', 'L', 'O', 'U']));
        assert_ne!(code, invite_code(Uuid::now_v7()));
        // The value the migration backfills with in SQL for the same id.
        let known = Uuid::parse_str("0193b0c4-5e1a-7c2e-9f3d-2a6b8c4e1f07").unwrap();
        assert_eq!(invite_code(known), "0FQ78XCX", "auth.invite_code() in migrations/20261124000018 gives the same");
    }

    #[test]
    fn levels_follow_the_design_table_at_every_boundary() {
        for (points, level) in
            [(0, 1), (100, 1), (101, 2), (300, 2), (301, 3), (600, 3), (601, 4), (1000, 4), (1001, 5), (99_999, 5)]
        {
            assert_eq!(level_for(points), level, "{points} points");
        }
        assert_eq!(level_for(-5), 1);
        assert_eq!(level_start(2), Some(101));
        assert_eq!(level_start(6), None);
    }

    mod given_a_users_progress {
        use super::super::rewards::{Criterion, Progress, UnlockRule};
        use crate::Category;

        #[test]
        fn when_they_have_nine_scans_then_the_ten_scan_badge_waits_and_the_tenth_earns_it() {
            let ten = Criterion::Scans { count: 10 };
            assert!(!ten.met(&Progress { scans: 9, ..Progress::default() }));
            assert!(ten.met(&Progress { scans: 10, ..Progress::default() }));
        }

        #[test]
        fn when_one_category_is_missing_then_every_category_is_not_yet_scanned() {
            let mut p = Progress { categories: Category::ALL[1..].to_vec(), ..Progress::default() };
            assert!(!Criterion::AllCategories.met(&p));
            p.categories.push(Category::ALL[0]);
            assert!(Criterion::AllCategories.met(&p));
        }

        #[test]
        fn when_a_week_closed_at_rank_eleven_then_the_top_ten_badge_waits() {
            let top10 = Criterion::WeeklyRank { rank: 10 };
            assert!(!top10.met(&Progress::default()), "never ranked");
            assert!(!top10.met(&Progress { best_weekly_rank: Some(11), ..Progress::default() }));
            assert!(top10.met(&Progress { best_weekly_rank: Some(10), ..Progress::default() }));
            assert!(
                !top10.met(&Progress { best_monthly_rank: Some(1), ..Progress::default() }),
                "a month is not a week"
            );
        }

        #[test]
        fn when_streaks_and_recycles_and_invites_reach_their_counts_then_their_badges_are_met() {
            let p = Progress { best_streak: 7, paid_recycles: 1, invites: 1, level: 3, ..Progress::default() };
            assert!(Criterion::Streak { days: 7 }.met(&p));
            assert!(!Criterion::Streak { days: 30 }.met(&p));
            assert!(Criterion::Recycles { count: 1 }.met(&p));
            assert!(Criterion::Invites { count: 1 }.met(&p));
            assert!(Criterion::Level { level: 3 }.met(&p) && !Criterion::Level { level: 4 }.met(&p));
        }

        #[test]
        fn criteria_are_read_from_the_catalogues_json_and_bad_ones_are_named() {
            let c: Criterion = serde_json::from_str(r#"{"kind": "scans", "count": 10}"#).unwrap();
            assert_eq!(c, Criterion::Scans { count: 10 });
            assert!(serde_json::from_str::<Criterion>(r#"{"kind": "scans", "count": 10, "x": 1}"#).is_err());
            assert!(Criterion::Scans { count: 0 }.problem().is_some());
            assert!(Criterion::Level { level: 6 }.problem().is_some());
            assert!(Criterion::AllCategories.problem().is_none());
        }

        #[test]
        fn a_character_rule_asks_for_a_level_a_badge_or_both() {
            let both = UnlockRule { level: Some(3), badge_id: Some("scans-100".into()) };
            assert!(!both.met(3, &[]));
            assert!(!both.met(2, &["scans-100".into()]));
            assert!(both.met(3, &["scans-100".into()]));
            assert!(UnlockRule { level: Some(1), badge_id: None }.met(1, &[]));
            assert!(UnlockRule { level: None, badge_id: None }.problem().is_some());
        }
    }

    mod given_check_in_days {
        use chrono::NaiveDate;

        use super::super::streaks::{bonus_days, current, run_ending_at, summary};

        fn d(day: u32) -> NaiveDate {
            NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
        }

        #[test]
        fn when_days_follow_each_other_then_the_run_counts_them_in_any_order() {
            let days = [d(3), d(1), d(2), d(5)];
            assert_eq!(run_ending_at(&days, d(3)), 3);
            assert_eq!(run_ending_at(&days, d(5)), 1, "the 4th was missed");
            assert_eq!(run_ending_at(&days, d(4)), 0);
            assert_eq!(summary(&days), (1, 3, Some(d(5))));
        }

        #[test]
        fn when_the_seventh_day_in_a_row_arrives_then_it_pays_and_a_late_day_pays_what_it_completes() {
            let week: Vec<NaiveDate> = (1..=7).map(d).collect();
            assert_eq!(bonus_days(&week, d(7), 7), [d(7)]);
            assert!(bonus_days(&week[..6], d(6), 7).is_empty(), "six days are not a week");
            // Days 1-5 and 7 arrived; the late 6th completes the run that now ends on the 7th.
            assert_eq!(bonus_days(&week, d(6), 7), [d(7)]);
            let fortnight: Vec<NaiveDate> = (1..=14).map(d).collect();
            assert_eq!(bonus_days(&fortnight, d(14), 7), [d(14)]);
            assert!(bonus_days(&week, d(7), 0).is_empty(), "no bonus configured");
        }

        #[test]
        fn when_a_day_is_missed_then_the_current_streak_is_over_but_the_best_stays() {
            let (run, best, last) = summary(&[d(1), d(2), d(3)]);
            assert_eq!(current(run, last, d(3)), 3, "checked in today");
            assert_eq!(current(run, last, d(4)), 3, "today is still open");
            assert_eq!(current(run, last, d(5)), 0, "yesterday was missed");
            assert_eq!(best, 3);
            assert_eq!(current(0, None, d(5)), 0);
        }
    }
}
