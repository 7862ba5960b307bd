//! Command rules, as pure functions: given the command (and what they need of the current
//! state, passed in), they return the events to record or a domain error. No I/O, no clock.
//! One module per subdomain, each with its tests.

mod accounts;
mod activity;
pub mod places;
mod sessions;
mod social;

pub use accounts::*;
pub use activity::*;
pub use sessions::*;
pub use social::*;

/// An invalid field of a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid { field, message: message.into() }
}
