//! What several commands share, kept out of the route modules so none calls a sibling:
//! [`sessions`] (token pairs, revocation), [`mail`] (queueing a message with its link), and
//! [`accounts`] (the live-account lock, the invite-code lookup, creating a local account), and
//! [`social`] (signing in with a provider's identity), [`saved_places`] (their table and the
//! list event).

pub mod accounts;
pub mod mail;
pub mod saved_places;
pub mod sessions;
pub mod social;
