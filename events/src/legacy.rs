//! Older versions of event types, kept so that every event ever written still decodes: each has
//! its Rust type (the schema of that version) and an upcaster to the next version.
//!
//! | type                | version | upcast to | how                                                   |
//! |---------------------|---------|-----------|-------------------------------------------------------|
//! | `recycle.completed` | 1       | 2         | `latitude` + `longitude` become `location`; half a position (one of the two) becomes no location |

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Category, DecodeError, EventData, GeoPoint, RecycleCompleted};

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

/// Decodes `data` of an older `(event_type, version)` and upcasts it to the current type;
/// `None` when that pair is not an older version this crate knows.
pub(crate) fn decode(
    event_type: &str,
    version: u32,
    data: serde_json::Value,
) -> Option<Result<EventData, DecodeError>> {
    let invalid = |message: String| DecodeError::InvalidData { event_type: event_type.to_owned(), version, message };
    match (event_type, version) {
        ("recycle.completed", 1) => Some(
            serde_json::from_value::<RecycleCompletedV1>(data)
                .map_err(|e| invalid(e.to_string()))
                .and_then(|v1| v1.validate().map_err(invalid).map(|()| v1))
                .map(|v1| EventData::RecycleCompleted(v1.upcast())),
        ),
        _ => None,
    }
}

/// Schemas of the older versions, as `(file stem, schema)`.
pub(crate) fn schemas() -> Vec<(String, serde_json::Value)> {
    vec![("recycle.completed.v1".into(), schemars::schema_for!(RecycleCompletedV1).to_value())]
}
