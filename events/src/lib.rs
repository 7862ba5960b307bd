//! The EcoEco event contract.
//!
//! Every event travels in an [`Envelope`]: the envelope's `type` is also the AMQP routing key and
//! the AMQP `type` property, its `id` is the AMQP `message_id` and the key every consumer
//! deduplicates on. `data` holds the payload whose shape is fixed by `(type, version)`.
//!
//! Other services code against this crate (or against the JSON Schemas in `events/schemas/`,
//! which a test keeps identical to these types). Events never change once written: a new shape
//! is a new `version`, and [`Event::decode`] upcasts every version still in the log to the
//! current Rust type.

mod catalogue;
pub mod contract;
mod decode;
mod envelope;
mod guide;
pub mod legacy;
mod personal;
mod places;
mod rewards;
pub mod rules;
mod values;

pub use catalogue::*;
pub use decode::DecodeError;
pub use envelope::*;

/// Headers a consumer sets on what it retries and parks; `ecoctl parked`, the tests and the
/// AsyncAPI document use them by these names.
pub mod parking {
    /// The prefix every parking header starts with.
    pub const PARKED_PREFIX: &str = "x-parked-";
    /// Machine-readable parking reason, e.g. `schema_violation`.
    pub const PARKED_REASON: &str = "x-parked-reason";
    /// Human detail of the parking reason.
    pub const PARKED_DETAIL: &str = "x-parked-detail";
    /// When it was parked (RFC 3339).
    pub const PARKED_AT: &str = "x-parked-at";
    /// How many retry tiers it went through.
    pub const RETRY_COUNT: &str = "x-retry-count";
    /// The last error of a retried message.
    pub const LAST_ERROR: &str = "x-last-error";
    /// The routing key (event type) the message was first published with. A retry tier
    /// dead-letters back to the consumer's queue under the queue's name, so the delivery's own
    /// routing key no longer says the type after the first retry; this header keeps it.
    pub const ORIGINAL_ROUTING_KEY: &str = "x-original-routing-key";
}
