//! The read models: for each, its tables' names and shapes, its cache keys and codecs, the
//! rules that derive it (periods, search keys) and its layered reads (Redis, else PostgreSQL:
//! `profiles::load`, `leaderboards::{page, position}`) and cache refreshes, so its projector
//! (writing, in `workers`) and query-api (reading) share one definition.
//!
//! | model | tables | caches |
//! |---|---|---|
//! | [`profiles`] | `read.profiles`, `read.settings` | `{prefix}:profile:{user}`, versioned |
//! | [`leaderboards`] | `read.leaderboard_scores` | sorted sets per period |
//! | [`guide`] | `read.guide_items`, `…_faqs`, `…_regions`, `…_stats` | answers under the guide's generation |
//!
//! Calendar periods ([`periods`]) belong to the leaderboards and the guide's statistics.

pub mod guide;
pub mod leaderboards;
pub mod periods;
pub mod profiles;
