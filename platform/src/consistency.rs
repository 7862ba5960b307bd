//! The read-your-writes token (DESIGN §3).
//!
//! A command answers with `X-Consistency-Token`: the ids of the events it wrote, encoded
//! opaquely (`v1.` + base64url of the 16-byte ids). A query that sends it back waits until every
//! projection behind the endpoint that consumes those events' types has applied them, then
//! answers `X-Consistency: fresh` (or `stale` when the bounded wait ran out). Event ids rather
//! than log positions, because projectors consume from the bus in no global order: there is no
//! single watermark, but "has projection P applied event E" is exactly the dedup record.

use axum::http::HeaderName;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use uuid::Uuid;

/// Response header of commands; request header of queries.
pub const TOKEN_HEADER: HeaderName = HeaderName::from_static("x-consistency-token");
/// Response header of queries that received a token: `fresh` or `stale`.
pub const STATE_HEADER: HeaderName = HeaderName::from_static("x-consistency");
/// The channel projectors notify after each commit (payload: the projection name); query-api
/// listens so a read-your-writes wait ends as soon as the events are applied.
pub const APPLIED_CHANNEL: &str = "eco_projection_applied";
/// At most this many events in one token.
pub const MAX_EVENTS: usize = 32;

/// The events a client wants to read.
/// The shape of an encoded token, as a regular expression: `v1.` and the unpadded base64url of
/// one or more 16-byte event ids (every 3 ids make 64 characters; 1 or 2 more make 22 or 43,
/// whose last character carries 2 or 4 bits only).
pub const TOKEN_PATTERN: &str =
    r"^v1\.(?:[A-Za-z0-9_-]{64})*(?:[A-Za-z0-9_-]{64}|[A-Za-z0-9_-]{21}[AQgw]|[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048])$";
/// The longest encoded token ([`MAX_EVENTS`] ids).
pub const TOKEN_MAX_LENGTH: usize = 3 + (MAX_EVENTS * 16 * 4).div_ceil(3);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyToken {
    /// Event ids, in the order the command wrote them.
    pub event_ids: Vec<Uuid>,
}

impl ConsistencyToken {
    /// A token for these events.
    pub fn new(event_ids: Vec<Uuid>) -> Self {
        Self { event_ids }
    }

    /// The header value.
    pub fn encode(&self) -> String {
        let bytes: Vec<u8> = self.event_ids.iter().flat_map(|id| *id.as_bytes()).collect();
        format!("v1.{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parses a header value; `None` when it is not a token this service issued.
    pub fn decode(value: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(value.strip_prefix("v1.")?).ok()?;
        if bytes.is_empty() || bytes.len() % 16 != 0 || bytes.len() / 16 > MAX_EVENTS {
            return None;
        }
        let event_ids = bytes.chunks_exact(16).filter_map(|c| Uuid::from_slice(c).ok()).collect();
        Some(Self { event_ids })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_pattern_fits_exactly_the_tokens_decode_accepts() {
        let fits = |value: &str| {
            jsonschema::is_valid(
                &serde_json::json!({"type": "string", "pattern": TOKEN_PATTERN, "maxLength": TOKEN_MAX_LENGTH}),
                &serde_json::json!(value),
            )
        };
        for n in [1, 2, 3, 4, 5, 6, MAX_EVENTS] {
            let token = ConsistencyToken::new((0..n).map(|_| Uuid::now_v7()).collect()).encode();
            assert!(fits(&token), "{n} ids: {token}");
        }
        let too_many = ConsistencyToken::new((0..=MAX_EVENTS).map(|_| Uuid::now_v7()).collect()).encode();
        for garbage in ["v1.abc", "v1.", "v2.AAAAAAAAAAAAAAAAAAAAAA", "v1.AAAAAAAAAAAAAAAAAAAAAB", too_many.as_str()] {
            assert!(!fits(garbage), "{garbage}");
            assert_eq!(ConsistencyToken::decode(garbage), None, "{garbage}");
        }
        assert!(fits("v1.AAAAAAAAAAAAAAAAAAAAAA") && ConsistencyToken::decode("v1.AAAAAAAAAAAAAAAAAAAAAA").is_some());
    }

    #[test]
    fn round_trips_and_refuses_garbage() {
        let token = ConsistencyToken::new(vec![Uuid::now_v7(), Uuid::now_v7()]);
        assert_eq!(ConsistencyToken::decode(&token.encode()), Some(token));
        assert_eq!(ConsistencyToken::decode("v1.abc"), None);
        assert_eq!(ConsistencyToken::decode("v2.AAAAAAAAAAAAAAAAAAAAAA"), None);
        assert_eq!(ConsistencyToken::decode("v1."), None);
    }
}
