//! Leaderboard periods in the app's time zone: weeks start Monday 00:00, months on the 1st.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// A leaderboard period kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// ISO week (Monday to Sunday), key `2026-W47`.
    Weekly,
    /// Calendar month, key `2026-11`.
    Monthly,
    /// Everything, key `all`.
    AllTime,
}

impl Period {
    /// Every period kind.
    pub const ALL: [Period; 3] = [Period::Weekly, Period::Monthly, Period::AllTime];

    /// The name used in URLs: `weekly`, `monthly`, `all-time`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::AllTime => "all-time",
        }
    }

    /// Parses a URL name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The keys of the weekly, monthly and all-time periods containing `at`: where something
    /// that happened at `at` counts.
    pub fn keys_at(at: DateTime<Utc>, tz: Tz) -> Vec<String> {
        Self::ALL.iter().map(|p| p.key_at(at, tz)).collect()
    }

    /// The key of the period containing `at`, e.g. `weekly:2026-W47`.
    pub fn key_at(self, at: DateTime<Utc>, tz: Tz) -> String {
        let local = at.with_timezone(&tz).date_naive();
        match self {
            Self::Weekly => {
                let week = local.iso_week();
                format!("weekly:{}-W{:02}", week.year(), week.week())
            }
            Self::Monthly => format!("monthly:{}-{:02}", local.year(), local.month()),
            Self::AllTime => "all-time:all".to_owned(),
        }
    }

    /// A key as clients see it, in every answer: `2026-W47`, `2026-11` or `all` (the stored key
    /// without its period prefix).
    pub fn public_key(key: &str) -> &str {
        key.split_once(':').map_or(key, |(_, k)| k)
    }

    /// Checks a past period's key as a client writes it (`2026-W47`, `2026-11`), returning the
    /// full key.
    pub fn parse_key(self, value: &str) -> Option<String> {
        let ok = match self {
            Self::Weekly => {
                let (y, w) = value.split_once("-W")?;
                let (y, w) = (y.parse::<i32>().ok()?, w.parse::<u32>().ok()?);
                w >= 1 && NaiveDate::from_isoywd_opt(y, w, chrono::Weekday::Mon).is_some() && value.len() == 8
            }
            Self::Monthly => {
                let (y, m) = value.split_once('-')?;
                y.len() == 4 && m.len() == 2 && NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1).is_some()
            }
            Self::AllTime => value == "all",
        };
        ok.then(|| format!("{}:{value}", self.name()))
    }

    /// Whether `value` has the shape of some period's key (`2026-W47`, `2026-11`, `all`), real
    /// or not: a well-shaped key a board does not have is "not found", not "invalid".
    pub fn is_key_shaped(value: &str) -> bool {
        let b = value.as_bytes();
        let number = |d: &[u8]| {
            d.iter().all(u8::is_ascii_digit).then(|| d.iter().fold(0u32, |n, c| n * 10 + u32::from(c - b'0')))
        };
        let year = b.len() >= 7 && number(&b[..4]).is_some();
        value == "all"
            || (year && b.len() == 8 && &b[4..6] == b"-W" && number(&b[6..]).is_some_and(|w| (1..=53).contains(&w)))
            || (year && b.len() == 7 && b[4] == b'-' && number(&b[5..]).is_some_and(|m| (1..=12).contains(&m)))
    }

    /// When the period containing `at` began, in UTC; `None` for all-time.
    pub fn start_at(self, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&tz).date_naive();
        let start = match self {
            Self::Weekly => local - chrono::Days::new(u64::from(local.weekday().num_days_from_monday())),
            Self::Monthly => NaiveDate::from_ymd_opt(local.year(), local.month(), 1)?,
            Self::AllTime => return None,
        };
        local_start_of(start, tz)
    }

    /// When the period containing `now` ends (the next one starts), in UTC; `None` for all-time.
    pub fn next_reset_at(self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&tz).date_naive();
        let next_start = match self {
            Self::Weekly => local + chrono::Days::new(u64::from(7 - local.weekday().num_days_from_monday())),
            Self::Monthly => {
                let (y, m) =
                    if local.month() == 12 { (local.year() + 1, 1) } else { (local.year(), local.month() + 1) };
                NaiveDate::from_ymd_opt(y, m, 1)?
            }
            Self::AllTime => return None,
        };
        local_start_of(next_start, tz)
    }
}

/// When `day` begins in `tz`, in UTC: its midnight, or, where a clock change skips midnight,
/// the first hour that exists.
fn local_start_of(day: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    (0..3)
        .find_map(|hour| tz.from_local_datetime(&day.and_hms_opt(hour, 0, 0)?).earliest())
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_well_shaped_key_is_told_from_a_malformed_one() {
        for shaped in ["2026-W47", "2026-W53", "2026-11", "all", "0000-01"] {
            assert!(Period::is_key_shaped(shaped), "{shaped}");
        }
        for malformed in ["2026-W54", "2026-W00", "2026-13", "2026-1", "26-11", "ALL", "2026W47", "", "weekly:2026-W47"]
        {
            assert!(!Period::is_key_shaped(malformed), "{malformed}");
        }
        // Shaped but not a period of this kind, or not a week that year has: not found.
        assert_eq!(Period::Weekly.parse_key("2026-11"), None);
        assert_eq!(Period::Weekly.parse_key("2025-W53"), None);
        assert_eq!(Period::Weekly.parse_key("2026-W47").as_deref(), Some("weekly:2026-W47"));
    }

    const SEOUL: Tz = chrono_tz::Asia::Seoul;

    #[test]
    fn weeks_turn_at_monday_midnight_in_seoul() {
        // Sunday 2026-11-22 23:59:59 KST is 14:59:59 UTC; a second later it is Monday.
        let sunday = Utc.with_ymd_and_hms(2026, 11, 22, 14, 59, 59).unwrap();
        let monday = Utc.with_ymd_and_hms(2026, 11, 22, 15, 0, 0).unwrap();
        assert_eq!(Period::Weekly.key_at(sunday, SEOUL), "weekly:2026-W47");
        assert_eq!(Period::Weekly.key_at(monday, SEOUL), "weekly:2026-W48");
        assert_eq!(Period::Weekly.next_reset_at(sunday, SEOUL), Some(monday));
        assert_eq!(Period::Weekly.next_reset_at(monday, SEOUL), Some(monday + chrono::TimeDelta::days(7)));
        assert_eq!(Period::Weekly.start_at(sunday, SEOUL), Some(monday - chrono::TimeDelta::days(7)));
        assert_eq!(Period::Weekly.start_at(monday, SEOUL), Some(monday));
    }

    #[test]
    fn months_turn_on_the_first_in_seoul() {
        let last = Utc.with_ymd_and_hms(2026, 11, 30, 14, 59, 59).unwrap();
        let first = Utc.with_ymd_and_hms(2026, 11, 30, 15, 0, 0).unwrap();
        assert_eq!(Period::Monthly.key_at(last, SEOUL), "monthly:2026-11");
        assert_eq!(Period::Monthly.key_at(first, SEOUL), "monthly:2026-12");
        assert_eq!(Period::Monthly.next_reset_at(last, SEOUL), Some(first));
        assert_eq!(Period::Monthly.start_at(first, SEOUL), Some(first));
        assert_eq!(Period::Monthly.start_at(last, SEOUL), Some(Utc.with_ymd_and_hms(2026, 10, 31, 15, 0, 0).unwrap()));
        let december = Utc.with_ymd_and_hms(2026, 12, 10, 0, 0, 0).unwrap();
        assert_eq!(
            Period::Monthly.next_reset_at(december, SEOUL),
            Some(Utc.with_ymd_and_hms(2026, 12, 31, 15, 0, 0).unwrap())
        );
    }

    #[test]
    fn past_period_keys_are_checked() {
        assert_eq!(Period::Weekly.parse_key("2026-W05").as_deref(), Some("weekly:2026-W05"));
        assert_eq!(Period::Weekly.parse_key("2026-W60"), None);
        assert_eq!(Period::Monthly.parse_key("2026-13"), None);
        assert_eq!(Period::Monthly.parse_key("2026-02").as_deref(), Some("monthly:2026-02"));
        assert_eq!(Period::AllTime.parse_key("all").as_deref(), Some("all-time:all"));
        assert_eq!(Period::from_name("all-time"), Some(Period::AllTime));
    }
}
