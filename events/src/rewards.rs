//! The reward events (DESIGN §2, §4): badges earned, characters unlocked and selected, and the
//! final standings of a closed leaderboard period.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{Validate, check_len, check_year};

/// A badge or character id: a slug of the catalogue, e.g. `scans-10`.
pub fn check_slug(field: &str, value: &str) -> Result<(), String> {
    check_len(field, value, 1, 48)?;
    let ok = value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if !ok {
        return Err(format!("{field} must be lowercase letters, digits and inner hyphens"));
    }
    Ok(())
}

/// `badge.earned` v1: the rewards policy awarded a badge of the catalogue, once per user and badge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BadgeEarned {
    /// Who earned it.
    pub user_id: Uuid,
    /// The badge (a catalogue slug, e.g. `scans-10`).
    #[schemars(length(min = 1, max = 48), regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"))]
    pub badge_id: String,
    /// The event that completed the criterion.
    pub source_event_id: Uuid,
}
impl Validate for BadgeEarned {
    fn validate(&self) -> Result<(), String> {
        check_slug("badge_id", &self.badge_id)
    }
}

/// What unlocked a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnlockReason {
    /// A level was reached (and the badge the rule asks for, if any, was held already).
    Level,
    /// A badge was earned (and the level the rule asks for, if any, was reached already).
    Badge,
}

/// `character.unlocked` v1: a character of the catalogue became selectable for a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CharacterUnlocked {
    /// Whose.
    pub user_id: Uuid,
    /// The character (a catalogue slug).
    #[schemars(length(min = 1, max = 48), regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"))]
    pub character_id: String,
    /// What completed its unlock rule.
    pub reason: UnlockReason,
}
impl Validate for CharacterUnlocked {
    fn validate(&self) -> Result<(), String> {
        check_slug("character_id", &self.character_id)
    }
}

/// `user.character_selected` v1: a user chose one of their unlocked characters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserCharacterSelected {
    /// Who.
    pub user_id: Uuid,
    /// The character now shown on their profile and leaderboard entries.
    #[schemars(length(min = 1, max = 48), regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"))]
    pub character_id: String,
}
impl Validate for UserCharacterSelected {
    fn validate(&self) -> Result<(), String> {
        check_slug("character_id", &self.character_id)
    }
}

/// The kind of a period that closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClosedPeriod {
    /// A week, Monday 00:00 to Monday 00:00 in the app's time zone.
    Weekly,
    /// A calendar month in the app's time zone.
    Monthly,
}

impl ClosedPeriod {
    /// The name used in URLs and keys: `weekly`, `monthly`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
        }
    }
}

/// One place in a closed period's final standings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct FinalStanding {
    /// Competition rank (1, 2, 2, 4).
    #[schemars(range(min = 1))]
    pub rank: i64,
    /// Who.
    pub user_id: Uuid,
    /// Points earned in the period.
    #[schemars(range(min = 0))]
    pub points: i64,
}

/// The most standings a `leaderboard.period_closed` carries.
pub const MAX_STANDINGS: usize = 100;

/// `leaderboard.period_closed` v1: a week or month ended; its final standings (top 100 by rank
/// and reaching time) and how many took part. Recorded once per period by one worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LeaderboardPeriodClosed {
    /// Which kind of period.
    pub period: ClosedPeriod,
    /// Its key as clients write it: `2026-W47` or `2026-11`.
    #[schemars(length(min = 7, max = 8))]
    pub period_key: String,
    /// When it was closed (at or after the period's end).
    pub closed_at: DateTime<Utc>,
    /// Everyone with points in the period.
    #[schemars(range(min = 0))]
    pub participants: i64,
    /// The top 100, best first.
    #[schemars(length(max = 100))]
    pub standings: Vec<FinalStanding>,
}
impl Validate for LeaderboardPeriodClosed {
    fn validate(&self) -> Result<(), String> {
        check_len("period_key", &self.period_key, 7, 8)?;
        check_year("closed_at", chrono::Datelike::year(&self.closed_at))?;
        if self.standings.len() > MAX_STANDINGS {
            return Err(format!("standings holds at most {MAX_STANDINGS} entries"));
        }
        if self.participants < self.standings.len() as i64 {
            return Err("participants must count at least every standing".into());
        }
        if self.standings.iter().any(|s| s.rank < 1 || s.points < 0) {
            return Err("ranks start at 1 and points are not negative".into());
        }
        Ok(())
    }
}

/// The aggregate id of a period's events: stable per `(period, key)`.
pub fn period_aggregate_id(period: ClosedPeriod, period_key: &str) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x0ec0_ec00_1ead_4b0a_8d5e_7e4b_1c3a_9f27);
    Uuid::new_v5(&NAMESPACE, format!("{}:{period_key}", period.name()).as_bytes())
}

/// `user.notifications_read` v1: a user marked their in-app notifications read, up to and
/// including one of them (in the feed's order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserNotificationsRead {
    /// Whose.
    pub user_id: Uuid,
    /// The newest notification read (a feed item's `id`).
    pub up_to_id: Uuid,
}
impl Validate for UserNotificationsRead {}
