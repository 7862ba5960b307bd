//! Writing the guide's tables, for the guide projector, inside its batch transaction.
//!
//! Content events carry the whole new state and the per-aggregate `sequence` assigned when they
//! were appended: a row only moves to a higher sequence, so redelivered or late events cannot
//! bring back an older state, and a removal leaves a `removed` row for the same reason.
//! Helpful marks and statistics are commutative additions.

use chrono::{DateTime, Utc};
use events::{Category, GuideFaqSaved, GuideItemSaved, GuideRegionSaved};
use sqlx::PgConnection;
use uuid::Uuid;

use super::search::ItemKeys;

/// The tables whose rows carry a content sequence and can be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removable {
    /// `guide_items`.
    Item,
    /// `guide_faqs`.
    Faq,
}

/// Stores an item's whole state with its search keys, if newer than the row's.
pub async fn save_item(
    tx: &mut PgConnection,
    i: &GuideItemSaved,
    sequence: i64,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let keys = ItemKeys::new(&i.name_ko, &i.name_en, &i.keywords);
    sqlx::query(
        "insert into guide_items (item_id, category, name_ko, name_en, disposal, donts, keywords,
           search_korean, search_english, search_initials, exact_names, exact_terms, removed, sequence, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, false, $13, $14)
         on conflict (item_id) do update set
           category = excluded.category, name_ko = excluded.name_ko, name_en = excluded.name_en,
           disposal = excluded.disposal, donts = excluded.donts, keywords = excluded.keywords,
           search_korean = excluded.search_korean, search_english = excluded.search_english,
           search_initials = excluded.search_initials, exact_names = excluded.exact_names,
           exact_terms = excluded.exact_terms, removed = false, sequence = excluded.sequence,
           updated_at = excluded.updated_at
         where guide_items.sequence < excluded.sequence",
    )
    .bind(i.item_id)
    .bind(i.category.code())
    .bind(&i.name_ko)
    .bind(&i.name_en)
    .bind(&i.disposal)
    .bind(&i.donts)
    .bind(&i.keywords)
    .bind(&keys.korean)
    .bind(&keys.english)
    .bind(&keys.initials)
    .bind(&keys.names)
    .bind(&keys.terms)
    .bind(sequence)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Stores a question's whole state, if newer than the row's.
pub async fn save_faq(tx: &mut PgConnection, f: &GuideFaqSaved, sequence: i64, at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query(
        "insert into guide_faqs (faq_id, category, question, answer, position, removed, sequence, updated_at)
         values ($1, $2, $3, $4, $5, false, $6, $7)
         on conflict (faq_id) do update set
           category = excluded.category, question = excluded.question, answer = excluded.answer,
           position = excluded.position, removed = false, sequence = excluded.sequence, updated_at = excluded.updated_at
         where guide_faqs.sequence < excluded.sequence",
    )
    .bind(f.faq_id)
    .bind(f.category.map(Category::code))
    .bind(&f.question)
    .bind(&f.answer)
    .bind(f.position)
    .bind(sequence)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Marks an item or question removed, if the removal is newer than the row.
pub async fn remove(
    tx: &mut PgConnection,
    what: Removable,
    id: Uuid,
    sequence: i64,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let (table, key) = match what {
        Removable::Item => ("guide_items", "item_id"),
        Removable::Faq => ("guide_faqs", "faq_id"),
    };
    sqlx::query(&format!(
        "insert into {table} ({key}, removed, sequence, updated_at) values ($1, true, $2, $3)
         on conflict ({key}) do update set removed = true, sequence = excluded.sequence, updated_at = excluded.updated_at
         where {table}.sequence < excluded.sequence"
    ))
    .bind(id)
    .bind(sequence)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Stores a region's whole state, if newer than the row's.
pub async fn save_region(
    tx: &mut PgConnection,
    r: &GuideRegionSaved,
    sequence: i64,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into guide_regions (region_id, code, name_ko, name_en, schedule, rules, sequence, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (region_id) do update set
           code = excluded.code, name_ko = excluded.name_ko, name_en = excluded.name_en,
           schedule = excluded.schedule, rules = excluded.rules, sequence = excluded.sequence,
           updated_at = excluded.updated_at
         where guide_regions.sequence < excluded.sequence",
    )
    .bind(r.region_id)
    .bind(&r.code)
    .bind(&r.name_ko)
    .bind(&r.name_en)
    .bind(&r.schedule)
    .bind(sqlx::types::Json(&r.rules))
    .bind(sequence)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Counts one more "helpful" on a question; `false` when the question is not there (yet).
pub async fn mark_helpful(tx: &mut PgConnection, faq_id: Uuid) -> sqlx::Result<bool> {
    let updated = sqlx::query("update guide_faqs set helpful = helpful + 1 where faq_id = $1")
        .bind(faq_id)
        .execute(&mut *tx)
        .await?;
    Ok(updated.rows_affected() == 1)
}

/// Adds scans and recycles of `category` to the statistics of each period in `keys`.
pub async fn count(
    tx: &mut PgConnection,
    keys: &[String],
    category: Category,
    scans: i64,
    recycles: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into guide_stats (period_key, category, scans, recycles)
         select k, $2, $3, $4 from unnest($1::text[]) as k
         on conflict (period_key, category) do update
           set scans = guide_stats.scans + excluded.scans, recycles = guide_stats.recycles + excluded.recycles",
    )
    .bind(keys)
    .bind(category.code())
    .bind(scans)
    .bind(recycles)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
