//! Rewards: the badge and character catalogues (`rewards.badges`, `rewards.characters`,
//! content the rewards policy decides with, read here for `GET /badges` and `GET /characters`)
//! and the rewards read model (`read.user_badges`, `read.user_characters`), written by the
//! rewards projector from `badge.earned` and `character.unlocked` ([`write`]) and read by
//! query-api for `GET /users/me/badges` and `GET /users/me/characters`.

use chrono::{DateTime, Utc};
use events::rules::rewards::{Criterion, UnlockRule};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// A badge of the catalogue.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Badge {
    /// Its slug, e.g. `scans-10`.
    pub id: String,
    /// Korean name.
    pub name_ko: String,
    /// English name.
    pub name_en: String,
    /// Korean description.
    pub description_ko: String,
    /// English description.
    pub description_en: String,
    /// When it is earned.
    pub criterion: Criterion,
}

/// A character of the catalogue.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Character {
    /// Its slug, e.g. `sprout`.
    pub id: String,
    /// Korean name.
    pub name_ko: String,
    /// English name.
    pub name_en: String,
    /// Korean description.
    pub description_ko: String,
    /// English description.
    pub description_en: String,
    /// When it unlocks.
    pub rule: UnlockRule,
}

#[derive(sqlx::FromRow)]
struct CatalogueRow {
    id: String,
    name_ko: String,
    name_en: String,
    description_ko: String,
    description_en: String,
    spec: serde_json::Value,
}

const CATALOGUE_COLUMNS: &str = "id, name_ko, name_en, description_ko, description_en";

/// A catalogue entry's criterion or rule, read; `None` (and a warning) for one this version
/// cannot read (written by a newer version, or by hand): such an entry is left out rather than
/// failing a list or holding up anyone's rewards.
pub fn readable<T: serde::de::DeserializeOwned>(id: &str, spec: serde_json::Value) -> Option<T> {
    match serde_json::from_value(spec) {
        Ok(spec) => Some(spec),
        Err(e) => {
            tracing::warn!(entry = id, error = %e, "rewards catalogue entry this version cannot read; left out");
            None
        }
    }
}

/// The badge catalogue, in display order (unreadable criteria left out, see [`readable`]).
pub async fn badges(db: &PgPool) -> sqlx::Result<Vec<Badge>> {
    let rows: Vec<CatalogueRow> = sqlx::query_as(&format!(
        "select {CATALOGUE_COLUMNS}, criterion as spec from rewards.badges order by sort_order, id"
    ))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(Badge {
                criterion: readable(&r.id, r.spec)?,
                id: r.id,
                name_ko: r.name_ko,
                name_en: r.name_en,
                description_ko: r.description_ko,
                description_en: r.description_en,
            })
        })
        .collect())
}

/// The character catalogue, in display order (unreadable rules left out, see [`readable`]).
pub async fn characters(db: &PgPool) -> sqlx::Result<Vec<Character>> {
    let rows: Vec<CatalogueRow> = sqlx::query_as(&format!(
        "select {CATALOGUE_COLUMNS}, rule as spec from rewards.characters order by sort_order, id"
    ))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(Character {
                rule: readable(&r.id, r.spec)?,
                id: r.id,
                name_ko: r.name_ko,
                name_en: r.name_en,
                description_ko: r.description_ko,
                description_en: r.description_en,
            })
        })
        .collect())
}

/// A badge someone earned.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct EarnedBadge {
    /// The badge.
    pub badge_id: String,
    /// When.
    pub earned_at: DateTime<Utc>,
}

/// A character someone unlocked.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UnlockedCharacter {
    /// The character.
    pub character_id: String,
    /// `level` or `badge`: what completed its rule.
    pub reason: String,
    /// When.
    pub unlocked_at: DateTime<Utc>,
}

/// A user's badges, in the order they were earned.
pub async fn earned_badges(db: &PgPool, user_id: Uuid) -> sqlx::Result<Vec<EarnedBadge>> {
    sqlx::query_as("select badge_id, earned_at from read.user_badges where user_id = $1 order by earned_at, badge_id")
        .bind(user_id)
        .fetch_all(db)
        .await
}

/// A user's unlocked characters, in the order they were unlocked.
pub async fn unlocked_characters(db: &PgPool, user_id: Uuid) -> sqlx::Result<Vec<UnlockedCharacter>> {
    sqlx::query_as(
        "select character_id, reason, unlocked_at from read.user_characters where user_id = $1
         order by unlocked_at, character_id",
    )
    .bind(user_id)
    .fetch_all(db)
    .await
}

/// Writing, for the rewards projector, inside its batch transaction (tables unqualified).
/// Each row is keyed by user and badge or character, so applying twice changes nothing; a
/// deletion removes the person's rows and leaves a tombstone so late events stay out.
pub mod write {
    use chrono::{DateTime, Utc};
    use sqlx::PgConnection;
    use uuid::Uuid;

    /// Records an earned badge.
    pub async fn badge(tx: &mut PgConnection, user_id: Uuid, badge_id: &str, at: DateTime<Utc>) -> sqlx::Result<()> {
        sqlx::query(
            "insert into user_badges (user_id, badge_id, earned_at) select $1, $2, $3
             where not exists (select 1 from rewards_tombstones where user_id = $1)
             on conflict do nothing",
        )
        .bind(user_id)
        .bind(badge_id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Records an unlocked character.
    pub async fn character(
        tx: &mut PgConnection,
        user_id: Uuid,
        character_id: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "insert into user_characters (user_id, character_id, reason, unlocked_at) select $1, $2, $3, $4
             where not exists (select 1 from rewards_tombstones where user_id = $1)
             on conflict do nothing",
        )
        .bind(user_id)
        .bind(character_id)
        .bind(reason)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Forgets a person's badges and characters for good.
    pub async fn forget(tx: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
        crate::forget_person(tx, user_id, &["user_badges", "user_characters"], "rewards_tombstones").await
    }
}
