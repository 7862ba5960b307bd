//! Events of places: public bins and recycling centers (edited by admins, loaded by
//! `ecoctl seed`), and each user's saved places.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::personal::Personal;
use crate::values::{Category, GeoPoint, Validate, check_len};

/// A bin or a recycling center.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlaceKind {
    /// A public bin.
    Bin,
    /// A recycling center.
    Center,
}

/// `place.saved` v1: a bin or center was added or changed (whole new state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlaceSaved {
    /// The place.
    pub place_id: Uuid,
    /// Bin or center.
    pub kind: PlaceKind,
    /// Name, e.g. `시청역 분리수거함`.
    #[schemars(length(min = 1, max = 100))]
    pub name: String,
    /// Street address, in Korean.
    #[schemars(length(max = 200))]
    pub address: String,
    /// Where.
    pub location: GeoPoint,
    /// What it takes.
    pub categories: Vec<Category>,
    /// Opening hours, for centers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opening_hours: Option<String>,
    /// Phone number, for centers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}
impl Validate for PlaceSaved {
    fn validate(&self) -> Result<(), String> {
        check_len("name", &self.name, 1, 100)?;
        check_len("address", &self.address, 0, 200)?;
        GeoPoint::check(self.location.latitude, self.location.longitude)?;
        if self.categories.is_empty() {
            return Err("categories must not be empty".into());
        }
        Ok(())
    }
}

/// `place.removed` v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlaceRemoved {
    /// The place.
    pub place_id: Uuid,
}
impl Validate for PlaceRemoved {}

/// One of a user's saved places.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SavedPlace {
    /// Its id.
    pub saved_place_id: Uuid,
    /// The user's name for it, e.g. `집` (1 to 40 characters), sealed; forgotten: `null`.
    pub label: Personal,
    /// Where.
    pub location: GeoPoint,
    /// Address, if known, sealed; forgotten: `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Personal>,
    /// The user's default place (at most one is).
    pub is_default: bool,
}

/// `user.places_changed` v2: the user's saved places, whole (at most 20), labels and addresses
/// sealed with the user's key (v1 carried them in plain text). Carrying the whole list
/// keeps "one default place" true in every read model whatever order events arrive in: the
/// newest list (by sequence) wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserPlacesChanged {
    /// The user.
    pub user_id: Uuid,
    /// Every saved place, after the change.
    pub places: Vec<SavedPlace>,
}
impl Validate for UserPlacesChanged {
    fn validate(&self) -> Result<(), String> {
        if self.places.len() > 20 {
            return Err("at most 20 saved places".into());
        }
        if self.places.iter().filter(|p| p.is_default).count() > 1 {
            return Err("at most one default place".into());
        }
        for p in &self.places {
            p.label.check_len("label", 1, 40)?;
            GeoPoint::check(p.location.latitude, p.location.longitude)?;
        }
        Ok(())
    }
}
