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
    fn round_trips_and_refuses_garbage() {
        let token = ConsistencyToken::new(vec![Uuid::now_v7(), Uuid::now_v7()]);
        assert_eq!(ConsistencyToken::decode(&token.encode()), Some(token));
        assert_eq!(ConsistencyToken::decode("v1.abc"), None);
        assert_eq!(ConsistencyToken::decode("v2.AAAAAAAAAAAAAAAAAAAAAA"), None);
        assert_eq!(ConsistencyToken::decode("v1."), None);
    }
}
