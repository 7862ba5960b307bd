//! The projectors, one module each.

pub mod activities;
pub mod guide;
pub mod leaderboards;
pub mod profiles;
