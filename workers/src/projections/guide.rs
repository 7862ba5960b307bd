//! The recycling guide projection: items, FAQ, regional rules and scan/recycle statistics in
//! `read.guide_*`, and the generation counter that invalidates query-api's guide caches.
//!
//! Content events carry the whole new state and the per-aggregate `sequence` assigned when they
//! were appended: a row only moves to a higher sequence, so redelivered or late events cannot
//! bring back an older state, and a removal leaves a `removed` row for the same reason.
//! Helpful marks and statistics are commutative additions.

use chrono_tz::Tz;
use events::{Event, EventData};
use platform::{
    redis::Redis,
    topology::{ConsumerSpec, GUIDE},
};
use readmodels::{guide::invalidate, periods::Period};
use sqlx::PgConnection;

use crate::consumer::{ApplyError, Projector};

/// Builds `read.guide_*`.
pub struct GuideProjector {
    redis: Redis,
    timezone: Tz,
}

impl GuideProjector {
    /// A projector counting statistics in `timezone`'s periods.
    pub fn new(redis: Redis, timezone: Tz) -> Self {
        Self { redis, timezone }
    }

    async fn bump_generation(&self) {
        if let Err(e) = invalidate(&self.redis).await {
            // Cached guide answers expire on their own (readmodels::guide::CACHE_TTL_SECS).
            tracing::warn!(error = format!("{e:#}"), "guide caches not invalidated");
        }
    }
}

impl Projector for GuideProjector {
    const TABLES: &'static [&'static str] = &["guide_items", "guide_faqs", "guide_regions", "guide_stats"];
    /// Statistics rows and helpful counts are shared by every user.
    const PARTITIONED_BY_AGGREGATE: bool = false;

    fn spec(&self) -> &'static ConsumerSpec {
        &GUIDE
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        let sequence = event.sequence.unwrap_or(0);
        match &event.data {
            EventData::GuideItemSaved(i) => {
                let keys = readmodels::guide::search::ItemKeys::new(&i.name_ko, &i.name_en, &i.keywords);
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
                .bind(event.occurred_at)
                .execute(&mut *tx)
                .await?;
            }
            EventData::GuideItemRemoved(i) => {
                sqlx::query(
                    "insert into guide_items (item_id, removed, sequence, updated_at) values ($1, true, $2, $3)
                     on conflict (item_id) do update set removed = true, sequence = excluded.sequence, updated_at = excluded.updated_at
                     where guide_items.sequence < excluded.sequence",
                )
                .bind(i.item_id)
                .bind(sequence)
                .bind(event.occurred_at)
                .execute(&mut *tx)
                .await?;
            }
            EventData::GuideFaqSaved(f) => {
                sqlx::query(
                    "insert into guide_faqs (faq_id, category, question, answer, position, removed, sequence, updated_at)
                     values ($1, $2, $3, $4, $5, false, $6, $7)
                     on conflict (faq_id) do update set
                       category = excluded.category, question = excluded.question, answer = excluded.answer,
                       position = excluded.position, removed = false, sequence = excluded.sequence, updated_at = excluded.updated_at
                     where guide_faqs.sequence < excluded.sequence",
                )
                .bind(f.faq_id)
                .bind(f.category.map(events::Category::code))
                .bind(&f.question)
                .bind(&f.answer)
                .bind(f.position)
                .bind(sequence)
                .bind(event.occurred_at)
                .execute(&mut *tx)
                .await?;
            }
            EventData::GuideFaqRemoved(f) => {
                sqlx::query(
                    "insert into guide_faqs (faq_id, removed, sequence, updated_at) values ($1, true, $2, $3)
                     on conflict (faq_id) do update set removed = true, sequence = excluded.sequence, updated_at = excluded.updated_at
                     where guide_faqs.sequence < excluded.sequence",
                )
                .bind(f.faq_id)
                .bind(sequence)
                .bind(event.occurred_at)
                .execute(&mut *tx)
                .await?;
            }
            EventData::GuideRegionSaved(r) => {
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
                .bind(event.occurred_at)
                .execute(&mut *tx)
                .await?;
            }
            EventData::FaqMarkedHelpful(h) => {
                // The command accepted it only for an existing question; its row may still be
                // on its way here (transient: retried).
                let updated = sqlx::query("update guide_faqs set helpful = helpful + 1 where faq_id = $1")
                    .bind(h.faq_id)
                    .execute(&mut *tx)
                    .await?;
                if updated.rows_affected() == 0 {
                    return Err(ApplyError::Transient(anyhow::anyhow!("question {} is not projected yet", h.faq_id)));
                }
            }
            EventData::ScanRecorded(_) | EventData::RecycleCompleted(_) => {
                let (c, scans, recycles) = match &event.data {
                    EventData::ScanRecorded(s) => (s.category, 1i64, 0i64),
                    EventData::RecycleCompleted(r) => (r.category, 0, 1),
                    _ => unreachable!("matched above"),
                };
                let keys: Vec<String> =
                    Period::ALL.iter().map(|p| p.key_at(event.occurred_at, self.timezone)).collect();
                sqlx::query(
                    "insert into guide_stats (period_key, category, scans, recycles)
                     select k, $2, $3, $4 from unnest($1::text[]) as k
                     on conflict (period_key, category) do update
                       set scans = guide_stats.scans + excluded.scans, recycles = guide_stats.recycles + excluded.recycles",
                )
                .bind(&keys)
                .bind(c.code())
                .bind(scans)
                .bind(recycles)
                .execute(&mut *tx)
                .await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn after_commit(&self, applied: &[Event]) {
        if applied
            .iter()
            .any(|e| e.data.aggregate_type() == "guide" || matches!(e.data, EventData::FaqMarkedHelpful(_)))
        {
            self.bump_generation().await;
        }
    }

    async fn after_rebuild(&self) {
        self.bump_generation().await;
    }
}

impl crate::registry::Build for GuideProjector {
    fn build(deps: &crate::registry::Deps) -> anyhow::Result<Self> {
        Ok(Self::new(deps.redis.clone(), deps.settings.app_timezone))
    }
}
