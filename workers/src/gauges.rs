//! Operator gauges, sampled every `GAUGE_INTERVAL_MS` by each workers process and served on its
//! `/metrics` (every process reports the same cluster-wide values; graph them with `max`):
//!
//! | gauge | labels | meaning |
//! |---|---|---|
//! | `outbox_backlog_events` | | events in the log not yet acknowledged by the broker |
//! | `outbox_oldest_unpublished_age_seconds` | | age of the oldest of them (0 when none) |
//! | `projection_lag_events` | `consumer` | published events of its types, recorded in the last 24 h, it has not applied |
//! | `projection_lag_seconds` | `consumer` | age of the oldest of them (0 when none) |
//! | `queue_messages` | `consumer` | deliveries waiting in its queue |
//! | `parked_messages` | `consumer` | messages in its parked queue |
//! | `parked_oldest_age_seconds` | `consumer` | how long the oldest parked message has waited (0 when none), from the dates consumers record in `projection.parked` when they park |
//!
//! Counters come from the code paths themselves: `events_consumed_total{consumer, type, outcome}`
//! (`applied`, `duplicate`, `retried`, `parked`), `events_published_total{type}`,
//! `events_ingested_total{type, source}`.

use std::{collections::HashMap, time::Duration};

use platform::Settings;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::ops;

/// How far back projection lag looks: older unapplied events (parked ones) show in
/// `ecoctl projections status` and in the parked gauges instead.
const LAG_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Samples the gauges until `shutdown`, over one broker connection kept between ticks (opened
/// again only after it is lost).
pub async fn run(settings: Settings, db: PgPool, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(settings.gauge_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut broker: Option<ops::Broker> = None;
    let mut cursors = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if broker.as_ref().is_none_or(|b| !b.conn.status().connected()) {
            broker = ops::broker(&settings)
                .await
                .inspect_err(|e| tracing::debug!(error = format!("{e:#}"), "gauges: broker unreachable"))
                .ok();
        }
        if let Err(e) = sample(&db, broker.as_ref(), &mut cursors).await {
            tracing::debug!(error = format!("{e:#}"), "operator gauges not sampled");
            // PostgreSQL may have restarted (and lost its last transaction ids) or failed over:
            // the next samples read their whole window again.
            cursors.clear();
        }
    }
    if let Some(broker) = broker {
        let _ = broker.conn.close(200, "shutting down").await;
    }
}

async fn sample(
    db: &PgPool,
    broker: Option<&ops::Broker>,
    cursors: &mut HashMap<&'static str, ops::LagCursor>,
) -> anyhow::Result<()> {
    let outbox: ops::Backlog = sqlx::query_as(
        "select count(*) as events, min(recorded_at) as oldest from eventstore.events where published_at is null",
    )
    .fetch_one(db)
    .await?;
    metrics::gauge!("outbox_backlog_events").set(outbox.events as f64);
    metrics::gauge!("outbox_oldest_unpublished_age_seconds").set(outbox.oldest.map_or(0.0, ops::age_seconds));
    for spec in crate::registry::deduplicating().map(|c| c.spec) {
        let cursor = cursors.entry(spec.name).or_default();
        let ops::Lag { events, seconds } = ops::lag_since(db, spec, LAG_WINDOW, cursor).await?;
        metrics::gauge!("projection_lag_events", "consumer" => spec.name).set(events as f64);
        metrics::gauge!("projection_lag_seconds", "consumer" => spec.name).set(seconds);
    }
    let Some(broker) = broker else { return Ok(()) };
    for spec in crate::registry::queues().map(|c| c.spec) {
        if let Some(n) = ops::queue_depth(&broker.conn, &broker.topology.queue(spec)).await {
            metrics::gauge!("queue_messages", "consumer" => spec.name).set(f64::from(n));
        }
        let parked_queue = broker.topology.parked_queue(spec);
        let Some(parked) = ops::queue_depth(&broker.conn, &parked_queue).await else { continue };
        metrics::gauge!("parked_messages", "consumer" => spec.name).set(f64::from(parked));
        let age = ops::oldest_parked_at(db, spec.name, parked).await?.map_or(0.0, ops::age_seconds);
        metrics::gauge!("parked_oldest_age_seconds", "consumer" => spec.name).set(age);
    }
    Ok(())
}
