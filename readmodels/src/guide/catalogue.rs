//! Reading the guide's tables (`read.guide_items`, `…_faqs`, `…_regions`, `…_stats`): what
//! query-api serves, before its generation cache.

use events::Category;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::search::{MIN_SCORE, QueryKeys, SEARCH_SQL};

/// An item of the guide: what it is and how to dispose of it.
#[derive(Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Item {
    /// Id.
    #[sqlx(rename = "item_id")]
    pub id: Uuid,
    /// Category code.
    pub category: String,
    /// Korean name.
    pub name_ko: String,
    /// English name.
    pub name_en: String,
    /// How to dispose of it.
    pub disposal: String,
    /// What not to do.
    pub donts: Vec<String>,
    /// Search keywords.
    pub keywords: Vec<String>,
}

const ITEM_COLUMNS: &str = "item_id, category, name_ko, name_en, disposal, donts, keywords";

/// A search hit.
#[derive(Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Hit {
    /// The item.
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub item: Item,
    /// Relevance; higher is better.
    pub score: f64,
}

/// A region's disposal rules.
#[derive(Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct RegionRules {
    /// Code, e.g. `seoul`.
    pub code: String,
    /// Korean name.
    pub name_ko: String,
    /// English name.
    pub name_en: String,
    /// When and where household waste goes out.
    pub schedule: String,
    /// Per category: `{category, rule}`.
    #[schema(value_type = Vec<Object>)]
    pub rules: sqlx::types::Json<serde_json::Value>,
}

/// A question of the FAQ.
#[derive(Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Faq {
    /// Id.
    #[sqlx(rename = "faq_id")]
    pub id: Uuid,
    /// Category it is about, if one.
    pub category: Option<String>,
    /// Question.
    pub question: String,
    /// Answer.
    pub answer: String,
    /// How many people found it helpful.
    pub helpful: i64,
}

/// Scans and recycles of a category in a period.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct CategoryStats {
    /// Category code.
    pub category: String,
    /// Scans.
    pub scans: i64,
    /// Completed recycles.
    pub recycles: i64,
}

/// How many items (not removed) each category has, in [`Category::ALL`]'s order.
pub async fn item_counts(db: &PgPool) -> sqlx::Result<Vec<(Category, i64)>> {
    #[derive(sqlx::FromRow)]
    struct Count {
        category: String,
        items: i64,
    }
    let counts: Vec<Count> =
        sqlx::query_as("select category, count(*) as items from read.guide_items where not removed group by category")
            .fetch_all(db)
            .await?;
    Ok(Category::ALL
        .iter()
        .map(|c| (*c, counts.iter().find(|n| n.category == c.code()).map_or(0, |n| n.items)))
        .collect())
}

/// Items in Korean alphabetical order, of one category or all: up to `limit` after `after`
/// (`(name_ko, id)` of the last one seen), and whether more follow.
pub async fn items(
    db: &PgPool,
    category: Option<&str>,
    after: Option<&(String, Uuid)>,
    limit: i64,
) -> sqlx::Result<(Vec<Item>, bool)> {
    let rows: Vec<Item> = sqlx::query_as(&format!(
        "select {ITEM_COLUMNS} from read.guide_items
         where not removed and ($1::text is null or category = $1)
           and ($2::text is null or (name_ko, item_id) > ($2, $3))
         order by name_ko, item_id limit $4"
    ))
    .bind(category)
    .bind(after.map(|a| &a.0))
    .bind(after.map(|a| a.1))
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    Ok(crate::page_of(rows, limit))
}

/// One item, unless removed.
pub async fn item(db: &PgPool, id: Uuid) -> sqlx::Result<Option<Item>> {
    sqlx::query_as(&format!("select {ITEM_COLUMNS} from read.guide_items where item_id = $1 and not removed"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The best `limit` items for a query (see [`super::search`]), scores rounded to 3 decimals.
pub async fn search(db: &PgPool, keys: &QueryKeys, category: Option<&str>, limit: i64) -> sqlx::Result<Vec<Hit>> {
    let mut hits: Vec<Hit> = sqlx::query_as(SEARCH_SQL)
        .bind(&keys.exact)
        .bind(&keys.korean)
        .bind(&keys.english)
        .bind(&keys.initials)
        .bind(category)
        .bind(MIN_SCORE)
        .bind(limit)
        .fetch_all(db)
        .await?;
    for hit in &mut hits {
        hit.score = (hit.score * 1000.0).round() / 1000.0;
    }
    Ok(hits)
}

/// A region by code, English name (lower-cased) or Korean name.
pub async fn region(db: &PgPool, wanted: &str) -> sqlx::Result<Option<RegionRules>> {
    sqlx::query_as(
        "select code, name_ko, name_en, schedule, rules from read.guide_regions
         where code = $1 or lower(name_en) = $1 or name_ko = $1",
    )
    .bind(wanted)
    .fetch_optional(db)
    .await
}

/// Every region's code, sorted.
pub async fn region_codes(db: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("select code from read.guide_regions order by code").fetch_all(db).await
}

/// The FAQ in order, of one category or all.
pub async fn faqs(db: &PgPool, category: Option<&str>) -> sqlx::Result<Vec<Faq>> {
    sqlx::query_as(
        "select faq_id, category, question, answer, helpful from read.guide_faqs
         where not removed and ($1::text is null or category = $1) order by position, faq_id",
    )
    .bind(category)
    .fetch_all(db)
    .await
}

/// One question, unless removed.
pub async fn faq(db: &PgPool, id: Uuid) -> sqlx::Result<Option<Faq>> {
    sqlx::query_as(
        "select faq_id, category, question, answer, helpful from read.guide_faqs where faq_id = $1 and not removed",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Every category's scans and recycles in the period `period_key` (zero when none), most
/// scanned first.
pub async fn stats(db: &PgPool, period_key: &str) -> sqlx::Result<Vec<CategoryStats>> {
    let rows: Vec<CategoryStats> =
        sqlx::query_as("select category, scans, recycles from read.guide_stats where period_key = $1")
            .bind(period_key)
            .fetch_all(db)
            .await?;
    let mut all: Vec<CategoryStats> = Category::ALL
        .iter()
        .map(|c| {
            let found = rows.iter().find(|r| r.category == c.code());
            CategoryStats {
                category: c.code().to_owned(),
                scans: found.map_or(0, |r| r.scans),
                recycles: found.map_or(0, |r| r.recycles),
            }
        })
        .collect();
    all.sort_by(|a, b| b.scans.cmp(&a.scans).then(b.recycles.cmp(&a.recycles)));
    Ok(all)
}
