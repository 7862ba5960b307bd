//! The projectors, one module each.

pub mod activities;
pub mod leaderboards;
pub mod profiles;
