//! A user's saved places: the rules of a new place and of a change, how many one may keep, and
//! which place is the default. Pure; the SQL is in `crate::services::saved_places`.

use platform::error::FieldError;

use crate::content::rules::Checks;

/// At most this many saved places per user.
pub const MAX_SAVED: usize = 20;

/// A new place's fields.
pub fn check_new(label: &str, latitude: f64, longitude: f64, address: Option<&str>) -> Result<(), Vec<FieldError>> {
    let mut checks = Checks::default();
    checks.text("label", label, 1, 40).point(latitude, longitude);
    if let Some(a) = address {
        checks.text("address", a, 0, 200);
    }
    checks.done()
}

/// A change of a place: what it may set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlaceChange {
    /// New name.
    pub label: Option<String>,
    /// New latitude (with longitude).
    pub latitude: Option<f64>,
    /// New longitude (with latitude).
    pub longitude: Option<f64>,
    /// New address.
    pub address: Option<String>,
    /// `true` makes it the default.
    pub is_default: Option<bool>,
}

/// A change's fields: both coordinates or neither, and a place stops being the default only
/// when another becomes it.
pub fn check_change(change: &PlaceChange) -> Result<(), Vec<FieldError>> {
    let mut checks = Checks::default();
    if let Some(l) = &change.label {
        checks.text("label", l, 1, 40);
    }
    match (change.latitude, change.longitude) {
        (Some(lat), Some(lon)) => {
            checks.point(lat, lon);
        }
        (None, None) => {}
        _ => {
            checks.fail("latitude", "latitude and longitude change together");
        }
    }
    if let Some(a) = &change.address {
        checks.text("address", a, 0, 200);
    }
    if change.is_default == Some(false) {
        checks.fail("is_default", "make another place the default instead");
    }
    checks.done()
}

/// Whether one more place fits beside `existing` ones.
pub fn room_for_another(existing: usize) -> bool {
    existing < MAX_SAVED
}

/// Whether a new place becomes the default: when asked, and always for the first one.
pub fn new_place_is_default(requested: bool, existing: usize) -> bool {
    requested || existing == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_place_is_the_default_and_there_is_a_limit() {
        assert!(new_place_is_default(false, 0));
        assert!(!new_place_is_default(false, 3));
        assert!(new_place_is_default(true, 3));
        assert!(room_for_another(MAX_SAVED - 1));
        assert!(!room_for_another(MAX_SAVED));
    }

    #[test]
    fn a_change_moves_both_coordinates_and_never_unsets_the_default() {
        let fields = |c: PlaceChange| {
            check_change(&c).err().unwrap_or_default().into_iter().map(|e| e.field).collect::<Vec<_>>()
        };
        assert_eq!(fields(PlaceChange { latitude: Some(37.5), ..Default::default() }), ["latitude"]);
        assert_eq!(fields(PlaceChange { is_default: Some(false), ..Default::default() }), ["is_default"]);
        assert_eq!(fields(PlaceChange { label: Some(" ".into()), ..Default::default() }), ["label"]);
        assert!(
            check_change(&PlaceChange { latitude: Some(37.5), longitude: Some(127.0), ..Default::default() }).is_ok()
        );
        assert_eq!(check_new("집", 91.0, 0.0, None).unwrap_err()[0].field, "latitude");
    }
}
