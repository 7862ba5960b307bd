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
mod envelope;
mod guide;
pub mod legacy;
mod places;
pub mod rules;

pub use catalogue::*;
pub use envelope::*;
