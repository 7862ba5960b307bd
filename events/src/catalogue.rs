//! The v1 catalogue of DESIGN §2: one struct per event type, and [`EventData`] over all of them.

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decode::DecodeError;
pub use crate::guide::*;
pub use crate::personal::{PERSONAL_FIELD_TYPES, Personal, PersonalField, Sealed};
pub use crate::places::*;
pub use crate::rewards::*;
pub use crate::values::{Category, GeoPoint, integer_param, json_integer, json_integer_opt};
use crate::values::{Validate, check_len, check_year};

/// Declares the catalogue once: each entry is `Variant(Payload) = "type", version, aggregate`.
/// Generates [`EventData`], its `(type, version)` dispatch, and [`CATALOGUE`].
macro_rules! catalogue {
    ($($variant:ident($payload:ty) = $type:literal, version $version:literal;)+) => {
        /// Every event payload the system understands, in its current version.
        #[derive(Debug, Clone, PartialEq)]
        pub enum EventData {
            $(#[doc = concat!("`", $type, "`")] $variant($payload),)+
        }

        /// `(type, current version)` of every event in the catalogue.
        pub const CATALOGUE: &[(&str, u32)] = &[$(($type, $version),)+];

        impl EventData {
            /// The event type; the routing key.
            pub fn event_type(&self) -> &'static str {
                match self { $(Self::$variant(_) => $type,)+ }
            }

            /// The schema version this payload serialises as.
            pub fn version(&self) -> u32 {
                match self { $(Self::$variant(_) => $version,)+ }
            }

            /// The payload as JSON.
            pub fn to_json(&self) -> serde_json::Value {
                match self {
                    // Serialising these plain structs cannot fail.
                    $(Self::$variant(p) => serde_json::to_value(p).unwrap_or_default(),)+
                }
            }

            /// Interprets `data` sent as `(event_type, version)`, upcasting older versions to
            /// the current shape.
            pub fn from_parts(event_type: &str, version: u32, data: serde_json::Value) -> Result<Self, DecodeError> {
                let invalid = |message: String| DecodeError::InvalidData {
                    event_type: event_type.to_owned(),
                    version,
                    message,
                };
                match (event_type, version) {
                    $(($type, $version) => {
                        let payload: $payload = serde_json::from_value(data).map_err(|e| invalid(e.to_string()))?;
                        payload.validate().map_err(invalid)?;
                        Ok(Self::$variant(payload))
                    })+
                    _ => match crate::legacy::decode(event_type, version, data) {
                        Some(upcast) => upcast,
                        None if CATALOGUE.iter().any(|(t, _)| *t == event_type) => {
                            Err(DecodeError::UnsupportedVersion { event_type: event_type.to_owned(), version })
                        }
                        None => Err(DecodeError::UnknownType(event_type.to_owned())),
                    },
                }
            }
        }

        $(impl From<$payload> for EventData {
            fn from(payload: $payload) -> Self { Self::$variant(payload) }
        })+

        /// JSON Schemas of every `(type, version)` consumers accept, as `(file stem, schema)`,
        /// e.g. `("scan.recorded.v1", …)`: the current versions and the older ones still
        /// upcast. `events/schemas/` holds exactly these.
        pub fn schemas() -> Vec<(String, serde_json::Value)> {
            let mut all = vec![$((format!("{}.v{}", $type, $version), schemars::schema_for!($payload).to_value()),)+];
            all.extend(crate::legacy::schemas());
            all.into_iter().map(|(stem, schema)| { let published = crate::contract::published(&stem, schema); (stem, published) }).collect()
        }
    };
}

catalogue! {
    UserRegistered(UserRegistered) = "user.registered", version 2;
    UserEmailVerified(UserEmailVerified) = "user.email_verified", version 1;
    UserProfileUpdated(UserProfileUpdated) = "user.profile_updated", version 2;
    UserSettingsUpdated(UserSettingsUpdated) = "user.settings_updated", version 1;
    UserDeleted(UserDeleted) = "user.deleted", version 1;
    ScanRecorded(ScanRecorded) = "scan.recorded", version 1;
    RecycleCompleted(RecycleCompleted) = "recycle.completed", version 2;
    AttendanceCheckedIn(AttendanceCheckedIn) = "attendance.checked_in", version 1;
    InviteAccepted(InviteAccepted) = "invite.accepted", version 1;
    PointsEarned(PointsEarned) = "points.earned", version 1;
    LevelReached(LevelReached) = "level.reached", version 1;
    MailRequested(MailRequested) = "mail.requested", version 1;
    GuideItemSaved(GuideItemSaved) = "guide.item_saved", version 1;
    GuideItemRemoved(GuideItemRemoved) = "guide.item_removed", version 1;
    GuideFaqSaved(GuideFaqSaved) = "guide.faq_saved", version 1;
    GuideFaqRemoved(GuideFaqRemoved) = "guide.faq_removed", version 1;
    GuideRegionSaved(GuideRegionSaved) = "guide.region_saved", version 1;
    FaqMarkedHelpful(FaqMarkedHelpful) = "faq.marked_helpful", version 1;
    PlaceSaved(PlaceSaved) = "place.saved", version 1;
    PlaceRemoved(PlaceRemoved) = "place.removed", version 1;
    UserPlacesChanged(UserPlacesChanged) = "user.places_changed", version 2;
    BadgeEarned(BadgeEarned) = "badge.earned", version 1;
    CharacterUnlocked(CharacterUnlocked) = "character.unlocked", version 1;
    UserCharacterSelected(UserCharacterSelected) = "user.character_selected", version 1;
    LeaderboardPeriodClosed(LeaderboardPeriodClosed) = "leaderboard.period_closed", version 1;
    UserNotificationsRead(UserNotificationsRead) = "user.notifications_read", version 1;
    AvatarUploaded(AvatarUploaded) = "avatar.uploaded", version 1;
}

impl EventData {
    /// What the event is about: `guide` for guide content (its `aggregate_id` is the item,
    /// question or region), `place` for bins and centers, `user` for everything else.
    pub fn aggregate_type(&self) -> &'static str {
        match self {
            Self::GuideItemSaved(_)
            | Self::GuideItemRemoved(_)
            | Self::GuideFaqSaved(_)
            | Self::GuideFaqRemoved(_)
            | Self::GuideRegionSaved(_) => "guide",
            Self::PlaceSaved(_) | Self::PlaceRemoved(_) => "place",
            Self::LeaderboardPeriodClosed(_) => "leaderboard",
            _ => "user",
        }
    }
}

impl EventData {
    /// Every user the payload names: the people an event is about or pays. An event from
    /// another service that names someone without a live account is refused (`unknown_user`).
    pub fn users(&self) -> Vec<Uuid> {
        match self {
            Self::UserRegistered(e) => [Some(e.user_id), e.invited_by].into_iter().flatten().collect(),
            Self::UserEmailVerified(e) => vec![e.user_id],
            Self::UserDeleted(e) => vec![e.user_id],
            Self::ScanRecorded(e) => vec![e.user_id],
            Self::RecycleCompleted(e) => vec![e.user_id],
            Self::AttendanceCheckedIn(e) => vec![e.user_id],
            Self::InviteAccepted(e) => vec![e.inviter_id, e.invitee_id],
            Self::PointsEarned(e) => vec![e.user_id],
            Self::LevelReached(e) => vec![e.user_id],
            Self::MailRequested(e) => vec![e.user_id],
            Self::FaqMarkedHelpful(e) => vec![e.user_id],
            Self::UserPlacesChanged(e) => vec![e.user_id],
            Self::BadgeEarned(e) => vec![e.user_id],
            Self::CharacterUnlocked(e) => vec![e.user_id],
            Self::UserCharacterSelected(e) => vec![e.user_id],
            Self::UserNotificationsRead(e) => vec![e.user_id],
            Self::AvatarUploaded(e) => vec![e.user_id],
            Self::UserProfileUpdated(_)
            | Self::UserSettingsUpdated(_)
            | Self::GuideItemSaved(_)
            | Self::GuideItemRemoved(_)
            | Self::GuideFaqSaved(_)
            | Self::GuideFaqRemoved(_)
            | Self::GuideRegionSaved(_)
            | Self::PlaceSaved(_)
            | Self::PlaceRemoved(_)
            // Final standings name people who may have left since; the period is the subject.
            | Self::LeaderboardPeriodClosed(_) => Vec::new(),
        }
    }
}

/// The largest single award: far above any rule or admin bonus, far below what could overflow
/// a balance.
pub const MAX_POINTS_AMOUNT: i64 = 1_000_000;

/// How an account was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// E-mail and password.
    Local,
    /// Google sign-in.
    Google,
    /// Kakao sign-in.
    Kakao,
}

/// Why points were awarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PointsReason {
    /// A scan.
    Scan,
    /// A completed recycle.
    Recycle,
    /// The daily check-in.
    Attendance,
    /// A friend joined with the user's invite code.
    Invite,
    /// Granted by an admin.
    Bonus,
    /// Every 7th consecutive day of check-ins.
    Streak,
}

/// `user.registered` v2: an account was created. Carries no e-mail address and no secret; the
/// username and nickname are sealed with the person's key (v1 carried them in plain text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserRegistered {
    /// The new user.
    pub user_id: Uuid,
    /// Unique handle (3 to 32 characters), sealed; forgotten: `null`.
    pub username: Personal,
    /// Display name (1 to 40 characters), sealed; forgotten: `(deleted)`.
    pub nickname: Personal,
    /// How the account was created.
    pub provider: Provider,
    /// The inviter, when the user registered with an invite code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invited_by: Option<Uuid>,
}
impl Validate for UserRegistered {
    fn validate(&self) -> Result<(), String> {
        self.username.check_len("username", 3, 32)?;
        self.nickname.check_len("nickname", 1, 40)
    }
}

/// `user.email_verified` v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserEmailVerified {
    /// The user.
    pub user_id: Uuid,
}
impl Validate for UserEmailVerified {}

/// `user.profile_updated` v2: only the fields that changed are present, sealed with the
/// person's key (the event's `aggregate_id`); an empty value clears `bio` or `avatar_url`
/// (v1 carried them in plain text).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct UserProfileUpdated {
    /// New display name (1 to 40 characters); forgotten: `(deleted)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<Personal>,
    /// New bio (up to 500 characters); forgotten: empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bio: Option<Personal>,
    /// New avatar URL (up to 2048 characters); forgotten: empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<Personal>,
}
impl Validate for UserProfileUpdated {
    fn validate(&self) -> Result<(), String> {
        for (field, value, min, max) in
            [("nickname", &self.nickname, 1, 40), ("bio", &self.bio, 0, 500), ("avatar_url", &self.avatar_url, 0, 2048)]
        {
            if let Some(v) = value {
                v.check_len(field, min, max)?;
            }
        }
        Ok(())
    }
}

/// An avatar upload's image format, detected from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImageFormat {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// WebP.
    Webp,
}

/// `avatar.uploaded` v1: a user uploaded a profile image, kept in object storage until the
/// avatar worker has made its renditions (and recorded `user.profile_updated` with the new
/// `avatar_url`) or refused it. The image itself is never in the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AvatarUploaded {
    /// Whose.
    pub user_id: Uuid,
    /// The upload (the name of the stored original and of its renditions).
    pub upload_id: Uuid,
    /// Its format.
    pub format: ImageFormat,
    /// Declared width in pixels.
    #[schemars(range(min = 1))]
    pub width: u32,
    /// Declared height in pixels.
    #[schemars(range(min = 1))]
    pub height: u32,
    /// Its size in bytes.
    pub size_bytes: u64,
}
impl Validate for AvatarUploaded {}

/// `user.settings_updated` v1: only the fields that changed are present.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct UserSettingsUpdated {
    /// Push notifications on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_enabled: Option<bool>,
    /// BCP 47 language tag, e.g. `ko` or `en`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 16))]
    pub language: Option<String>,
    /// `light`, `dark` or `system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16))]
    pub theme: Option<String>,
}
impl Validate for UserSettingsUpdated {}

/// `user.deleted` v1: every read model must forget the person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserDeleted {
    /// The user.
    pub user_id: Uuid,
}
impl Validate for UserDeleted {}

/// `scan.recorded` v1: a waste item was scanned, by the app or by the scan service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScanRecorded {
    /// The scan.
    pub scan_id: Uuid,
    /// Who scanned.
    pub user_id: Uuid,
    /// What the classifier decided.
    pub category: Category,
    /// The item, e.g. `PET bottle`.
    #[schemars(length(min = 1, max = 200))]
    pub item_name: String,
    /// Classifier confidence, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub confidence: Option<f64>,
    /// Lowercase hex SHA-256 of the image; a hash already rewarded pays nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub image_sha256: Option<String>,
    /// When the scan was taken.
    pub scanned_at: DateTime<Utc>,
}
impl Validate for ScanRecorded {
    fn validate(&self) -> Result<(), String> {
        check_len("item_name", &self.item_name, 1, 200)?;
        check_year("scanned_at", chrono::Datelike::year(&self.scanned_at))?;
        if let Some(c) = self.confidence
            && !(0.0..=1.0).contains(&c)
        {
            return Err("confidence must be between 0 and 1".into());
        }
        if let Some(h) = &self.image_sha256
            && !(h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            return Err("image_sha256 must be 64 lowercase hex digits".into());
        }
        Ok(())
    }
}

/// `recycle.completed` v2: an item was put in a bin or brought to a center.
///
/// v2 replaces v1's two independent optional `latitude` and `longitude` with one optional
/// `location` holding both: v1 let a producer send half a position, which locates nothing, and
/// rewarding a recycle only near a known bin needs a whole point or none. v1 events (in the log
/// and from producers not yet moved) are upcast on read; see `legacy::RecycleCompletedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecycleCompleted {
    /// The recycle.
    pub recycle_id: Uuid,
    /// Who recycled.
    pub user_id: Uuid,
    /// What was recycled.
    pub category: Category,
    /// The bin used, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_id: Option<Uuid>,
    /// The center used, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub center_id: Option<Uuid>,
    /// Where it happened, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<GeoPoint>,
}
impl Validate for RecycleCompleted {
    fn validate(&self) -> Result<(), String> {
        self.location.map_or(Ok(()), |p| GeoPoint::check(p.latitude, p.longitude))
    }
}

/// `attendance.checked_in` v1: the daily check-in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AttendanceCheckedIn {
    /// Who checked in.
    pub user_id: Uuid,
    /// The local date in the app's time zone.
    pub date: NaiveDate,
}
impl Validate for AttendanceCheckedIn {
    fn validate(&self) -> Result<(), String> {
        check_year("date", chrono::Datelike::year(&self.date))
    }
}

/// `invite.accepted` v1: someone registered with an invite code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InviteAccepted {
    /// Who invited; gets the reward.
    pub inviter_id: Uuid,
    /// Who joined.
    pub invitee_id: Uuid,
}
impl Validate for InviteAccepted {
    fn validate(&self) -> Result<(), String> {
        if self.inviter_id == self.invitee_id {
            return Err("inviter_id and invitee_id must differ".into());
        }
        Ok(())
    }
}

/// `points.earned` v1: an entry of the points ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PointsEarned {
    /// Who earned.
    pub user_id: Uuid,
    /// How many points; positive, at most 1,000,000.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub amount: i64,
    /// Which rule paid.
    pub reason: PointsReason,
    /// The event that earned them; one award per (rule, source event).
    pub source_event_id: Uuid,
}
impl Validate for PointsEarned {
    fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_POINTS_AMOUNT).contains(&self.amount) {
            return Err(format!("amount must be between 1 and {MAX_POINTS_AMOUNT}"));
        }
        Ok(())
    }
}

/// `level.reached` v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LevelReached {
    /// Who levelled up.
    pub user_id: Uuid,
    /// The new level.
    #[schemars(range(min = 1, max = 100))]
    pub level: i32,
    /// Points total at that moment.
    #[schemars(range(min = 0))]
    pub points: i64,
}
impl Validate for LevelReached {
    fn validate(&self) -> Result<(), String> {
        if !(1..=100).contains(&self.level) || self.points < 0 {
            return Err("level must be between 1 and 100 and points must not be negative".into());
        }
        Ok(())
    }
}

/// Which message to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailTemplate {
    /// "Confirm your e-mail address", with a verification link.
    VerifyEmail,
    /// "Reset your password", with a reset link.
    ResetPassword,
    /// "Someone tried to sign up with your address", to the address's existing account.
    AccountExists,
}

/// `mail.requested` v1: command-api queued a message for a user. The address and any token
/// stay in command-api's private mail outbox (row `mail_id`); the event only says that there is
/// something to send, so no secret and no e-mail address travels on the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MailRequested {
    /// The outbox row to send.
    pub mail_id: Uuid,
    /// The recipient user.
    pub user_id: Uuid,
    /// Which message.
    pub template: MailTemplate,
}
impl Validate for MailRequested {}
