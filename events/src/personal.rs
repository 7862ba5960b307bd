//! Personal fields in events (docs/forgetting.md): a person's username, nickname, bio, avatar
//! URL and saved places' labels and addresses travel **sealed** with a key of that person's
//! own, which is destroyed when the account is deleted. From then on every copy of those
//! fields (the log, backups, parked messages, other services' stores) is noise.
//!
//! In memory a field may be [`Personal::Open`]: written by a command before the log seals it
//! (`platform::eventstore::append` seals every open field it is given), opened by a reader
//! that holds the key, or upcast from a v1 event written before sealing existed. On the wire and
//! in the log, current versions hold only [`Sealed`] values; their schemas say so.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A sealed personal field: AES-256-GCM under its person's key, with `"{key}:{field}"` as
/// associated data (a value cannot be moved to another person or field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Sealed")]
pub struct Sealed {
    /// `v1.` then base64url (no padding) of the 12-byte nonce, the ciphertext and the 16-byte
    /// tag. Once the person is deleted, nothing can open it: readers show the field's
    /// forgotten value (`nickname` `(deleted)`, `username` and place `label`/`address` `null`,
    /// `bio` and `avatar_url` empty).
    #[schemars(regex(pattern = r"^v1\.[A-Za-z0-9_-]{38,}$"))]
    pub sealed: String,
    /// Whose key sealed it: the id of the person the event is about.
    pub key: Uuid,
}

/// A personal field: sealed (in every event written since v2 of its type), or open text in
/// memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Personal {
    /// As written to the log and the bus.
    Sealed(Sealed),
    /// Plain text, only in memory (see the module documentation).
    Open(String),
}

impl JsonSchema for Personal {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        Sealed::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // Published as the sealed form only: an open value never leaves the process.
        Sealed::json_schema(generator)
    }
}

impl Personal {
    /// The text, when open.
    pub fn as_open(&self) -> Option<&str> {
        match self {
            Self::Open(text) => Some(text),
            Self::Sealed(_) => None,
        }
    }

    /// Checks an open value's length (a sealed one was checked before it was sealed).
    pub(crate) fn check_len(&self, field: &str, min: usize, max: usize) -> Result<(), String> {
        self.as_open().map_or(Ok(()), |text| crate::values::check_len(field, text, min, max))
    }
}

impl From<String> for Personal {
    fn from(text: String) -> Self {
        Self::Open(text)
    }
}

impl From<&str> for Personal {
    fn from(text: &str) -> Self {
        Self::Open(text.to_owned())
    }
}

/// The event types with personal fields: those [`crate::EventData::personal_fields`] lists
/// fields of (for SQL and for checks on envelopes not decoded yet).
pub const PERSONAL_FIELD_TYPES: [&str; 3] = ["user.registered", "user.profile_updated", "user.places_changed"];

/// A personal field of an event, as [`crate::EventData::personal_fields`] lists them.
pub struct PersonalField<'a> {
    /// Its name (`username`, `nickname`, `bio`, `avatar_url`, `label`, `address`): part of the
    /// associated data.
    pub name: &'static str,
    /// Its value.
    pub value: &'a mut Personal,
}

impl crate::EventData {
    /// The personal fields of the payload and whose they are (the event's `aggregate_id` for
    /// `user.profile_updated`); `None` for a type without any.
    pub fn personal_fields(&mut self, aggregate_id: Uuid) -> Option<(Uuid, Vec<PersonalField<'_>>)> {
        fn field<'a>(name: &'static str, value: &'a mut Personal) -> PersonalField<'a> {
            PersonalField { name, value }
        }
        match self {
            Self::UserRegistered(e) => {
                Some((e.user_id, vec![field("username", &mut e.username), field("nickname", &mut e.nickname)]))
            }
            Self::UserProfileUpdated(e) => Some((
                aggregate_id,
                [("nickname", e.nickname.as_mut()), ("bio", e.bio.as_mut()), ("avatar_url", e.avatar_url.as_mut())]
                    .into_iter()
                    .filter_map(|(name, value)| value.map(|value| field(name, value)))
                    .collect(),
            )),
            Self::UserPlacesChanged(e) => Some((
                e.user_id,
                e.places
                    .iter_mut()
                    .flat_map(|p| {
                        std::iter::once(field("label", &mut p.label))
                            .chain(p.address.as_mut().map(|a| field("address", a)))
                    })
                    .collect(),
            )),
            _ => None,
        }
    }
}
