//! The recycling guide projection: items, FAQ, regional rules and scan/recycle statistics in
//! `read.guide_*` (SQL in `readmodels::guide::write`), and the generation counter that invalidates query-api's guide caches.
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
use readmodels::{
    guide::{
        invalidate,
        write::{self, Removable},
    },
    periods::Period,
};
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

    /// The statistics periods an event at `event`'s time counts in.
    fn keys(&self, event: &Event) -> Vec<String> {
        Period::keys_at(event.occurred_at, self.timezone)
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
        let (sequence, at) = (event.sequence.unwrap_or(0), event.occurred_at);
        match &event.data {
            EventData::GuideItemSaved(i) => write::save_item(tx, i, sequence, at).await?,
            EventData::GuideItemRemoved(i) => write::remove(tx, Removable::Item, i.item_id, sequence, at).await?,
            EventData::GuideFaqSaved(f) => write::save_faq(tx, f, sequence, at).await?,
            EventData::GuideFaqRemoved(f) => write::remove(tx, Removable::Faq, f.faq_id, sequence, at).await?,
            EventData::GuideRegionSaved(r) => write::save_region(tx, r, sequence, at).await?,
            EventData::FaqMarkedHelpful(h) => {
                // The command accepted it only for an existing question; its row may still be
                // on its way here (transient: retried).
                let found = write::mark_helpful(tx, h.faq_id).await?;
                found.then_some(()).ok_or_else(|| {
                    ApplyError::Transient(anyhow::anyhow!("question {} is not projected yet", h.faq_id))
                })?;
            }
            EventData::ScanRecorded(s) => write::count(tx, &self.keys(event), s.category, 1, 0).await?,
            EventData::RecycleCompleted(r) => write::count(tx, &self.keys(event), r.category, 0, 1).await?,
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
