//! The projectors, one module each.

pub mod profiles;
