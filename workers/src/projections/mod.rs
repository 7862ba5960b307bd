//! The projectors, one module each.

pub mod activities;
pub mod group;
pub mod guide;
pub mod leaderboards;
pub mod notifications;
pub mod places;
pub mod profiles;
pub mod rewards;
