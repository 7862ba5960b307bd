//! One opaque cursor format for every list: `next_cursor` is base64url (no padding) of
//! `{"list": LIST, "after": POSITION}`, where the list names what it pages (so a cursor of one
//! list is refused by another) and the position is that list's own keyset. Clients must treat it
//! as opaque; anything that does not decode to a cursor of the list asked is one clear
//! 400 `invalid_cursor`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use crate::error::ApiError;

/// `next_cursor` for the page of `list` that ends at `after`.
pub fn encode<T: Serialize>(list: &str, after: &T) -> String {
    URL_SAFE_NO_PAD.encode(json!({"list": list, "after": after}).to_string())
}

/// The position a cursor of `list` points after; 400 `invalid_cursor` for anything else.
pub fn decode<T: DeserializeOwned>(list: &str, cursor: &str) -> Result<T, ApiError> {
    let decoded = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .filter(|v| v["list"] == list)
        .and_then(|mut v| serde_json::from_value(v["after"].take()).ok());
    decoded.ok_or_else(|| {
        ApiError::bad_request("invalid_cursor", "`cursor` must be a `next_cursor` this list returned, unchanged")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_only_on_its_own_list() {
        let c = encode("activities", &("2026-11-23T00:00:00Z", 7));
        let back: (String, i64) = decode("activities", &c).unwrap();
        assert_eq!(back, ("2026-11-23T00:00:00Z".to_owned(), 7));
        assert!(decode::<(String, i64)>("leaderboard", &c).is_err(), "another list's cursor");
        assert!(decode::<(String, i64)>("activities", "not-a-cursor").is_err());
        assert!(decode::<i64>("activities", &c).is_err(), "wrong position shape");
    }
}
