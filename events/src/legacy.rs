//! Older versions of event types, kept so that every event ever written still decodes: each has
//! its Rust type (the schema of that version) and an upcaster to the next version.
//!
//! | type                | version | upcast to | how                                                   |
//! |---------------------|---------|-----------|-------------------------------------------------------|
//! | `recycle.completed` | 1       | 2         | `latitude` + `longitude` become `location`; half a position (one of the two) becomes no location |
//! | `user.registered`   | 1       | 2         | `username`, `nickname` become open [`Personal`] values (the log seals them on its one rewrite, `platform::personal::migrate`) |
//! | `user.profile_updated` | 1    | 2         | `nickname`, `bio`, `avatar_url` likewise |
//! | `user.places_changed` | 1     | 2         | each place's `label` and `address` likewise |

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    Category, DecodeError, EventData, GeoPoint, Personal, Provider, RecycleCompleted, SavedPlace, UserPlacesChanged,
    UserProfileUpdated, UserRegistered,
    values::{Validate, check_len},
};

/// `recycle.completed` v1, whose position is two independent optional fields. (Its schema keeps
/// the title and description it was published with.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "RecycleCompleted",
    description = "`recycle.completed` v1: an item was put in a bin or brought to a center."
)]
pub struct RecycleCompletedV1 {
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
    /// Where, WGS84.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -90.0, max = 90.0))]
    pub latitude: Option<f64>,
    /// Where, WGS84.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -180.0, max = 180.0))]
    pub longitude: Option<f64>,
}

impl RecycleCompletedV1 {
    fn validate(&self) -> Result<(), String> {
        GeoPoint::check(self.latitude.unwrap_or(0.0), self.longitude.unwrap_or(0.0))
    }

    /// The v2 shape: a whole position or none.
    pub fn upcast(self) -> RecycleCompleted {
        RecycleCompleted {
            recycle_id: self.recycle_id,
            user_id: self.user_id,
            category: self.category,
            bin_id: self.bin_id,
            center_id: self.center_id,
            location: match (self.latitude, self.longitude) {
                (Some(latitude), Some(longitude)) => Some(GeoPoint { latitude, longitude }),
                _ => None,
            },
        }
    }
}

/// `user.registered` v1: username and nickname in plain text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "UserRegistered",
    description = "`user.registered` v1: an account was created. Carries no e-mail address and no secret."
)]
pub struct UserRegisteredV1 {
    /// The new user.
    pub user_id: Uuid,
    /// Unique handle.
    #[schemars(length(min = 3, max = 32))]
    pub username: String,
    /// Display name.
    #[schemars(length(min = 1, max = 40))]
    pub nickname: String,
    /// How the account was created.
    pub provider: Provider,
    /// The inviter, when the user registered with an invite code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invited_by: Option<Uuid>,
}

impl UserRegisteredV1 {
    fn validate(&self) -> Result<(), String> {
        check_len("username", &self.username, 3, 32)?;
        check_len("nickname", &self.nickname, 1, 40)
    }

    /// The v2 shape, its personal fields open.
    pub fn upcast(self) -> UserRegistered {
        UserRegistered {
            user_id: self.user_id,
            username: self.username.into(),
            nickname: self.nickname.into(),
            provider: self.provider,
            invited_by: self.invited_by,
        }
    }
}

/// `user.profile_updated` v1: the changed fields in plain text.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "UserProfileUpdated",
    description = "`user.profile_updated` v1: only the fields that changed are present; an empty string clears\n`bio` or `avatar_url`."
)]
pub struct UserProfileUpdatedV1 {
    /// New display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub nickname: Option<String>,
    /// New bio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 500))]
    pub bio: Option<String>,
    /// New avatar URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub avatar_url: Option<String>,
}

impl UserProfileUpdatedV1 {
    /// The v2 shape, its personal fields open.
    pub fn upcast(self) -> UserProfileUpdated {
        UserProfileUpdated {
            nickname: self.nickname.map(Personal::from),
            bio: self.bio.map(Personal::from),
            avatar_url: self.avatar_url.map(Personal::from),
        }
    }
}

/// A saved place of `user.places_changed` v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "SavedPlace", description = "One of a user's saved places.")]
pub struct SavedPlaceV1 {
    /// Its id.
    pub saved_place_id: Uuid,
    /// The user's name for it, e.g. `집`.
    #[schemars(length(min = 1, max = 40))]
    pub label: String,
    /// Where.
    pub location: GeoPoint,
    /// Address, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The user's default place (at most one is).
    pub is_default: bool,
}

/// `user.places_changed` v1: labels and addresses in plain text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "UserPlacesChanged",
    description = "`user.places_changed` v1: the user's saved places, whole (at most 20). Carrying the whole list\nkeeps \"one default place\" true in every read model whatever order events arrive in: the\nnewest list (by sequence) wins."
)]
pub struct UserPlacesChangedV1 {
    /// The user.
    pub user_id: Uuid,
    /// Every saved place, after the change.
    pub places: Vec<SavedPlaceV1>,
}

impl UserPlacesChangedV1 {
    /// The v2 shape, its personal fields open.
    pub fn upcast(self) -> UserPlacesChanged {
        UserPlacesChanged {
            user_id: self.user_id,
            places: self
                .places
                .into_iter()
                .map(|p| SavedPlace {
                    saved_place_id: p.saved_place_id,
                    label: p.label.into(),
                    location: p.location,
                    address: p.address.map(Personal::from),
                    is_default: p.is_default,
                })
                .collect(),
        }
    }
}

/// An older version: how it becomes the current shape, checked by its own version's rules.
trait Older: serde::de::DeserializeOwned {
    fn into_current(self) -> Result<EventData, String>;
}

impl Older for RecycleCompletedV1 {
    fn into_current(self) -> Result<EventData, String> {
        self.validate()?;
        Ok(EventData::RecycleCompleted(self.upcast()))
    }
}

impl Older for UserRegisteredV1 {
    fn into_current(self) -> Result<EventData, String> {
        self.validate()?;
        Ok(EventData::UserRegistered(self.upcast()))
    }
}

impl Older for UserProfileUpdatedV1 {
    /// v1's rules are v2's on open values.
    fn into_current(self) -> Result<EventData, String> {
        let current = self.upcast();
        Validate::validate(&current)?;
        Ok(EventData::UserProfileUpdated(current))
    }
}

impl Older for UserPlacesChangedV1 {
    /// v1's rules are v2's on open values.
    fn into_current(self) -> Result<EventData, String> {
        let current = self.upcast();
        Validate::validate(&current)?;
        Ok(EventData::UserPlacesChanged(current))
    }
}

/// Decodes `data` of an older `(event_type, version)` and upcasts it to the current type;
/// `None` when that pair is not an older version this crate knows.
pub(crate) fn decode(
    event_type: &str,
    version: u32,
    data: serde_json::Value,
) -> Option<Result<EventData, DecodeError>> {
    fn decode_as<V: Older>(data: serde_json::Value) -> Result<EventData, String> {
        serde_json::from_value::<V>(data).map_err(|e| e.to_string())?.into_current()
    }
    let decoded = match (event_type, version) {
        ("recycle.completed", 1) => decode_as::<RecycleCompletedV1>(data),
        ("user.registered", 1) => decode_as::<UserRegisteredV1>(data),
        ("user.profile_updated", 1) => decode_as::<UserProfileUpdatedV1>(data),
        ("user.places_changed", 1) => decode_as::<UserPlacesChangedV1>(data),
        _ => return None,
    };
    Some(decoded.map_err(|message| DecodeError::InvalidData { event_type: event_type.to_owned(), version, message }))
}

/// Schemas of the older versions, as `(file stem, schema)`.
pub(crate) fn schemas() -> Vec<(String, serde_json::Value)> {
    vec![
        ("recycle.completed.v1".into(), schemars::schema_for!(RecycleCompletedV1).to_value()),
        ("user.registered.v1".into(), schemars::schema_for!(UserRegisteredV1).to_value()),
        ("user.profile_updated.v1".into(), schemars::schema_for!(UserProfileUpdatedV1).to_value()),
        ("user.places_changed.v1".into(), schemars::schema_for!(UserPlacesChangedV1).to_value()),
    ]
}
