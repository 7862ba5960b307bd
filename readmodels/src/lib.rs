//! The read models. Each module owns its tables' SQL for both sides: the writes its projector
//! (in `workers`) runs inside its batch transaction (a `write` module or `record`/`forget`),
//! and the reads query-api serves, with named row types; plus its cache keys and codecs, the
//! rules that derive it (periods, search keys) and its layered reads (Redis, else PostgreSQL:
//! `profiles::load`, `leaderboards::{page, position}`) and cache refreshes. A projector only
//! maps events to these calls.
//!
//! | model | tables | caches |
//! |---|---|---|
//! | [`profiles`] | `read.profiles`, `read.settings` | `{prefix}:profile:{user}`, versioned |
//! | [`activities`] | `read.activities` | none |
//! | [`leaderboards`] | `read.leaderboard_scores` | sorted sets per period |
//! | [`places`] | `read.places`, `read.saved_places` | none |
//! | [`rewards`] | `read.user_badges`, `read.user_characters` (and the catalogues `rewards.*`) | none |
//! | [`guide`] | `read.guide_items`, `…_faqs`, `…_regions`, `…_stats` | answers under the guide's generation |
//!
//! Calendar periods ([`periods`]) belong to the leaderboards and the guide's statistics.

pub mod activities;
pub mod check_ins;
pub mod export;
pub mod guide;
pub mod leaderboards;
pub mod notifications;
pub mod periods;
pub mod places;
pub mod profiles;
pub mod rewards;

/// Forgets a person in one read model, for good: deletes their rows from `tables` and records
/// them in `tombstones`, which keeps events arriving later from writing them again. Table names
/// are unqualified, like all projection SQL (a rebuild puts its shadow schema first on the
/// search path); they are the caller's constants, never input.
pub(crate) async fn forget_person(
    tx: &mut sqlx::PgConnection,
    user_id: uuid::Uuid,
    tables: &[&str],
    tombstones: &str,
) -> sqlx::Result<()> {
    for table in tables {
        sqlx::query(&format!("delete from {table} where user_id = $1")).bind(user_id).execute(&mut *tx).await?;
    }
    sqlx::query(&format!("insert into {tombstones} (user_id) values ($1) on conflict do nothing"))
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A keyset page read with `limit + 1` rows: the first `limit` of them, and whether more follow.
pub(crate) fn page_of<T>(mut rows: Vec<T>, limit: i64) -> (Vec<T>, bool) {
    let limit = usize::try_from(limit).unwrap_or(0);
    let more = rows.len() > limit;
    rows.truncate(limit);
    (rows, more)
}
