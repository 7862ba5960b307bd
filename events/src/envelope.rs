use chrono::{DateTime, SubsecRound, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{catalogue::EventData, decode::DecodeError};

/// AMQP header carrying the correlation id (also in the envelope).
pub const HEADER_CORRELATION_ID: &str = "x-correlation-id";
/// AMQP header carrying the causation id (also in the envelope).
pub const HEADER_CAUSATION_ID: &str = "x-causation-id";
/// AMQP header carrying the schema version of `data`.
pub const HEADER_EVENT_VERSION: &str = "x-event-version";

/// The wire form of every event: metadata plus a `data` payload.
///
/// `D` is `serde_json::Value` for an envelope that has not been interpreted yet
/// ([`RawEnvelope`]) and [`EventData`] once decoded ([`Event`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope<D> {
    /// Unique id (UUID v7 preferred); the AMQP `message_id` and the deduplication key.
    pub id: Uuid,
    /// Event type, e.g. `scan.recorded`; the AMQP routing key.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Schema version of `data` for this type.
    pub version: u32,
    /// The producing service, e.g. `command-api`.
    pub source: String,
    /// The kind of aggregate the event is about; `user` for every v1 event.
    pub aggregate_type: String,
    /// The aggregate (user) the event is about; the ordering key.
    pub aggregate_id: Uuid,
    /// Per-aggregate sequence number when the producer knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
    /// When the fact happened.
    pub occurred_at: DateTime<Utc>,
    /// The request or flow this event belongs to, carried through every hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The event or command that caused this one.
    #[serde(default)]
    pub causation_id: Option<Uuid>,
    /// The payload.
    pub data: D,
}

/// An envelope whose `data` has not been checked against its type yet.
pub type RawEnvelope = Envelope<serde_json::Value>;

/// A decoded, validated event whose `data` is the current Rust shape of its type.
pub type Event = Envelope<EventData>;

impl RawEnvelope {
    /// Parses the envelope without interpreting `data`.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(bytes).map_err(|e| DecodeError::MalformedEnvelope(e.to_string()))
    }

    /// Interprets `data` according to `(type, version)`, upcasting older versions.
    ///
    /// An envelope the event log could not store is refused here, before any consumer acts on
    /// it, as a schema violation: every consumer (ingest included) parks it the same way, so no
    /// effect can come of an event the log does not hold. See [`storable`].
    pub fn decode(mut self) -> Result<Event, DecodeError> {
        if let Err(message) = storable(&self) {
            return Err(DecodeError::InvalidData { event_type: self.event_type, version: self.version, message });
        }
        let data = EventData::from_parts(&self.event_type, self.version, std::mem::take(&mut self.data))?;
        let version = data.version();
        Ok(Envelope { version, ..self.with_data(data) })
    }
}

/// The earliest and latest `occurred_at` the log accepts. PostgreSQL's `timestamptz` spans
/// 4713 BC to 294276 AD; an event from before 2000 or after 9999 is a producer's bug.
const OCCURRED_AT_YEARS: std::ops::RangeInclusive<i32> = 2000..=9999;

/// Why the event log could not store `envelope`, if it could not: PostgreSQL refuses the NUL
/// character (`\u0000`) in `text` and `jsonb`, anywhere in a string or an object key, and
/// timestamps outside its range.
pub fn storable(envelope: &RawEnvelope) -> Result<(), String> {
    for (field, value) in
        [("type", &envelope.event_type), ("source", &envelope.source), ("aggregate_type", &envelope.aggregate_type)]
    {
        if value.contains('\0') {
            return Err(format!("`{field}` contains a NUL character, which the event log cannot store"));
        }
    }
    if !OCCURRED_AT_YEARS.contains(&chrono::Datelike::year(&envelope.occurred_at)) {
        return Err(format!(
            "`occurred_at` must be between the years {} and {}",
            OCCURRED_AT_YEARS.start(),
            OCCURRED_AT_YEARS.end()
        ));
    }
    match first_nul(&envelope.data, "data") {
        Some(path) => Err(format!("`{path}` contains a NUL character, which the event log cannot store")),
        None => Ok(()),
    }
}

/// The JSON path of the first string or key holding a NUL character.
fn first_nul(value: &serde_json::Value, path: &str) -> Option<String> {
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(path.to_owned()),
        serde_json::Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, v)| first_nul(v, &format!("{path}[{i}]")))
        }
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') { Some(format!("{path} key")) } else { first_nul(v, &format!("{path}.{k}")) }
        }),
        _ => None,
    }
}

impl<D> Envelope<D> {
    /// The same metadata around another payload.
    pub fn with_data<E>(self, data: E) -> Envelope<E> {
        Envelope {
            id: self.id,
            event_type: self.event_type,
            version: self.version,
            source: self.source,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            sequence: self.sequence,
            occurred_at: self.occurred_at,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            data,
        }
    }
}

impl Event {
    /// Parses and decodes an event from its JSON bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        RawEnvelope::from_slice(bytes)?.decode()
    }

    /// Builds a new event about `aggregate_id` with a fresh v7 id, stamped now.
    pub fn new(source: &str, aggregate_id: Uuid, data: EventData) -> Self {
        Envelope {
            id: Uuid::now_v7(),
            event_type: data.event_type().to_owned(),
            version: data.version(),
            source: source.to_owned(),
            aggregate_type: data.aggregate_type().to_owned(),
            aggregate_id,
            sequence: None,
            // Microseconds: what PostgreSQL stores, so an event reads back equal to itself.
            occurred_at: Utc::now().trunc_subsecs(6),
            correlation_id: None,
            causation_id: None,
            data,
        }
    }

    /// Sets the correlation and causation ids.
    #[must_use]
    pub fn caused_by(mut self, correlation_id: Option<Uuid>, causation_id: Option<Uuid>) -> Self {
        self.correlation_id = correlation_id;
        self.causation_id = causation_id;
        self
    }

    /// The wire form: the envelope with `data` as plain JSON.
    pub fn to_raw(&self) -> RawEnvelope {
        self.clone().with_data(self.data.to_json())
    }

    /// The JSON bytes published on the bus.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        // Serialising plain structs of strings, numbers and uuids cannot fail.
        serde_json::to_vec(&self.to_raw()).unwrap_or_default()
    }
}

impl Event {
    /// Every user this event is about: [`EventData::users`], plus the aggregate when it is a
    /// user.
    pub fn users(&self) -> Vec<Uuid> {
        let mut users = self.data.users();
        if self.aggregate_type == "user" && !users.contains(&self.aggregate_id) {
            users.push(self.aggregate_id);
        }
        users
    }
}
