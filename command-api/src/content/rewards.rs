//! The reward catalogues' write side (`rewards.badges`, `rewards.characters`): the rules each
//! entry follows and the upsert that stores it, shared by the admin commands
//! (`PUT /admin/badges/{id}`, `PUT /admin/characters/{id}`) and `ecoctl seed`
//! (`content/rewards.json`).
//!
//! The catalogues are reference data the rewards policy reads when it decides; what it decided
//! is in the log (`badge.earned`, `character.unlocked`), so an edit changes future awards and
//! never rewrites past ones. An entry is never deleted (awards name it); its criterion or rule
//! can be edited.

use events::rules::rewards::{Criterion, UnlockRule};
use platform::error::FieldError;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;

use super::rules::Checks;

/// A badge of the catalogue, whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BadgeContent {
    /// Korean name, 1 to 50 characters, not blank.
    #[schema(min_length = 1, max_length = 50, pattern = r"\S")]
    pub name_ko: String,
    /// English name, 1 to 50 characters, not blank.
    #[schema(min_length = 1, max_length = 50, pattern = r"\S")]
    pub name_en: String,
    /// Korean description, up to 300 characters.
    #[schema(max_length = 300)]
    pub description_ko: String,
    /// English description, up to 300 characters.
    #[schema(max_length = 300)]
    pub description_en: String,
    /// When it is earned.
    pub criterion: Criterion,
    /// Place in the list (lower first); default 0.
    #[serde(default, deserialize_with = "events::json_integer")]
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    pub sort_order: i32,
}

/// A character of the catalogue, whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CharacterContent {
    /// Korean name, 1 to 50 characters, not blank.
    #[schema(min_length = 1, max_length = 50, pattern = r"\S")]
    pub name_ko: String,
    /// English name, 1 to 50 characters, not blank.
    #[schema(min_length = 1, max_length = 50, pattern = r"\S")]
    pub name_en: String,
    /// Korean description, up to 300 characters.
    #[schema(max_length = 300)]
    pub description_ko: String,
    /// English description, up to 300 characters.
    #[schema(max_length = 300)]
    pub description_en: String,
    /// When it unlocks: a level, a badge, or both.
    pub rule: UnlockRule,
    /// Place in the list (lower first); default 0.
    #[serde(default, deserialize_with = "events::json_integer")]
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    pub sort_order: i32,
}

fn names(checks: &mut Checks, id: &str, name_ko: &str, name_en: &str, desc_ko: &str, desc_en: &str) {
    if let Err(problem) = events::check_slug("id", id) {
        checks.fail("id", &problem);
    }
    checks
        .text("name_ko", name_ko, 1, 50)
        .text("name_en", name_en, 1, 50)
        .text("description_ko", desc_ko, 0, 300)
        .text("description_en", desc_en, 0, 300);
}

/// A badge's rules.
pub fn badge(id: &str, b: &BadgeContent) -> Result<(), Vec<FieldError>> {
    let mut checks = Checks::default();
    names(&mut checks, id, &b.name_ko, &b.name_en, &b.description_ko, &b.description_en);
    if let Some(problem) = b.criterion.problem() {
        checks.fail("criterion", problem);
    }
    checks.done()
}

/// A character's rules (the badge it names must exist: checked when stored).
pub fn character(id: &str, c: &CharacterContent) -> Result<(), Vec<FieldError>> {
    let mut checks = Checks::default();
    names(&mut checks, id, &c.name_ko, &c.name_en, &c.description_ko, &c.description_en);
    if let Some(problem) = c.rule.problem() {
        checks.fail("rule", problem);
    }
    if let Some(badge) = &c.rule.badge_id
        && let Err(problem) = events::check_slug("rule.badge_id", badge)
    {
        checks.fail("rule.badge_id", &problem);
    }
    checks.done()
}

/// What storing an entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stored {
    /// A new entry.
    Created,
    /// An entry that differed.
    Changed,
    /// Same as what was there.
    Unchanged,
}

fn stored(row: Option<bool>) -> Stored {
    match row {
        Some(true) => Stored::Created,
        Some(false) => Stored::Changed,
        None => Stored::Unchanged,
    }
}

/// Stores a badge (checked by [`badge`] first).
pub async fn save_badge(conn: &mut PgConnection, id: &str, b: &BadgeContent) -> sqlx::Result<Stored> {
    let texts = [&b.name_ko, &b.name_en, &b.description_ko, &b.description_en];
    upsert(conn, "rewards.badges", "criterion", id, texts, serde_json::to_value(&b.criterion), b.sort_order).await
}

/// Stores a character (checked by [`character`] first); `Ok(None)` when the badge its rule
/// names is not in the catalogue.
pub async fn save_character(conn: &mut PgConnection, id: &str, c: &CharacterContent) -> sqlx::Result<Option<Stored>> {
    if let Some(badge) = &c.rule.badge_id {
        let known: bool = sqlx::query_scalar("select exists (select 1 from rewards.badges where id = $1)")
            .bind(badge)
            .fetch_one(&mut *conn)
            .await?;
        if !known {
            return Ok(None);
        }
    }
    let texts = [&c.name_ko, &c.name_en, &c.description_ko, &c.description_en];
    let stored =
        upsert(conn, "rewards.characters", "rule", id, texts, serde_json::to_value(&c.rule), c.sort_order).await?;
    Ok(Some(stored))
}

/// Inserts or replaces an entry of a catalogue `table` (names, descriptions, the criterion or
/// rule in `spec_column`, the order), telling whether it was new, changed or the same.
async fn upsert(
    conn: &mut PgConnection,
    table: &str,
    spec_column: &str,
    id: &str,
    [name_ko, name_en, description_ko, description_en]: [&String; 4],
    spec: serde_json::Result<serde_json::Value>,
    sort_order: i32,
) -> sqlx::Result<Stored> {
    let spec = spec.map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let columns = format!("name_ko, name_en, description_ko, description_en, {spec_column}, sort_order");
    let created: Option<bool> = sqlx::query_scalar(&format!(
        "insert into {table} as t (id, {columns}) values ($1, $2, $3, $4, $5, $6, $7)
         on conflict (id) do update set ({columns}, updated_at) = (
            excluded.name_ko, excluded.name_en, excluded.description_ko, excluded.description_en,
            excluded.{spec_column}, excluded.sort_order, now())
         where (t.name_ko, t.name_en, t.description_ko, t.description_en, t.{spec_column}, t.sort_order)
               is distinct from (excluded.name_ko, excluded.name_en, excluded.description_ko,
                                 excluded.description_en, excluded.{spec_column}, excluded.sort_order)
         returning (xmax = 0)"
    ))
    .bind(id)
    .bind(name_ko)
    .bind(name_en)
    .bind(description_ko)
    .bind(description_en)
    .bind(spec)
    .bind(sort_order)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(stored(created))
}
