//! Policies: consumers that react to events by recording new events.

pub mod points;
pub mod rewards;
