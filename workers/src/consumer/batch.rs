//! Applying a batch in one transaction: admission of foreign events, deduplication by
//! `projection.applied_events`, the projector's changes, and what a failure means (the
//! database's fault, or the events').

use std::collections::HashSet;

use events::Event;
use platform::{
    eventstore,
    topology::{ConsumerSpec, INGEST},
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{ApplyError, Consume, Outcome, Projector};
use crate::admission::{self, Admitted, Refusal};

/// Where a projector's tables are.
#[derive(Debug, Clone)]
pub enum Target {
    /// The live read models in schema `read`, deduplicated in `projection.applied_events`.
    Live,
    /// A rebuild's shadow schema, holding copies of the projector's tables and its own
    /// `applied_events (event_id)`.
    Shadow(String),
}

/// An event to apply, with the bytes it arrived as when it came from the bus.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The decoded (upcast) event.
    pub event: &'a Event,
    /// The delivery body, when there was a delivery.
    pub sent: Option<&'a [u8]>,
}

impl<'a> Incoming<'a> {
    /// Events read from the log.
    pub fn from_log(events: &'a [Event]) -> Vec<Self> {
        events.iter().map(|event| Self { event, sent: None }).collect()
    }
}

/// The advisory lock namespace of projections: live batches hold it shared, the swap of a
/// rebuild holds it exclusively, so no live batch commits between the rebuild's last catch-up
/// and its swap. The key arguments, with the projection name bound as `name_param`.
pub(crate) fn projection_lock(name_param: &str) -> String {
    format!("hashtext('ecoeco.projection'), hashtext({name_param})")
}

/// The deduplication key of a consumer.
pub fn projection_name(spec: &ConsumerSpec) -> &'static str {
    spec.projection.unwrap_or(spec.name)
}

/// What a live batch did.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// The events that were new to the projection.
    pub applied: Vec<Event>,
    /// Deliveries admission refused (to park).
    pub refused: Vec<Refusal>,
}

/// Applies `events` to the live read models in one transaction (under the projection's shared
/// lock, taken by [`apply_in`]) and returns the events that were new; the caller wakes
/// read-your-writes waiters after it (see [`crate::consumer::Wakes`]). Deliveries from the bus are admitted first, in the same transaction (see
/// [`crate::admission`]); events read from the log (replays) need not be.
pub(crate) async fn apply_live<C: Consume>(
    db: &PgPool,
    consumer: &C,
    events: &[Incoming<'_>],
) -> Result<Applied, BatchError> {
    let spec = consumer.spec();
    let mut tx = db.begin().await.map_err(BatchError::from_sqlx)?;
    let admitted = if events.iter().any(|i| i.sent.is_some()) {
        admission::admit(&mut tx, events, spec.name == INGEST.name).await.map_err(BatchError::from_sqlx)?
    } else {
        Admitted { events: events.iter().map(|i| i.event.clone()).collect(), refused: Vec::new() }
    };
    // What a policy records is appended last, so its streams stay locked for the commit only.
    let (applied, mut recorded) = eventstore::staging(consumer.apply_batch(&mut tx, &admitted.events)).await;
    let applied = applied?;
    eventstore::append(&mut tx, &mut recorded).await.map_err(BatchError::from_sqlx)?;
    tx.commit().await.map_err(BatchError::from_sqlx)?;
    metrics::counter!("consumer_transactions_total", "consumer" => spec.name).increment(1);
    Ok(Applied { applied, refused: admitted.refused })
}

/// Applies `events` inside the caller's transaction to `target`: records each id as applied,
/// skips ids already recorded (and repeats within `events`), and returns the new events. The
/// projector's unqualified table names resolve to the target's schema (`search_path`, local to
/// the transaction).
pub async fn apply_in<P: Projector>(
    tx: &mut PgConnection,
    projector: &P,
    target: &Target,
    events: &[Event],
) -> Result<Vec<Event>, BatchError> {
    let spec = projector.spec();
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let (search_path, dedup_sql) = match target {
        Target::Live => (
            "read, public".to_owned(),
            "insert into projection.applied_events (projection, event_id)
             select $1, unnest($2::uuid[]) on conflict do nothing returning event_id"
                .to_owned(),
        ),
        Target::Shadow(schema) => (
            format!("{schema}, public"),
            format!(
                "insert into {schema}.applied_events (event_id)
                 select unnest($2::uuid[]) where $1::text is not null on conflict do nothing returning event_id"
            ),
        ),
    };
    // Live batches also take the projection's lock shared (a rebuild's swap takes it
    // exclusively), in the same round trip.
    let prepare = match target {
        Target::Live => format!(
            "select set_config('search_path', $1, true), pg_advisory_xact_lock_shared({})",
            projection_lock("$2")
        ),
        Target::Shadow(_) => "select set_config('search_path', $1, true), $2::text".to_owned(),
    };
    sqlx::query(&prepare)
        .bind(&search_path)
        .bind(projection_name(spec))
        .execute(&mut *tx)
        .await
        .map_err(BatchError::from_sqlx)?;
    let fresh: HashSet<Uuid> = sqlx::query_scalar(&dedup_sql)
        .bind(projection_name(spec))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(BatchError::from_sqlx)?
        .into_iter()
        .collect();
    let mut seen = HashSet::with_capacity(fresh.len());
    let outcomes: Vec<(&Event, Outcome)> = events
        .iter()
        .map(|e| (e, if fresh.contains(&e.id) && seen.insert(e.id) { Outcome::Applied } else { Outcome::Duplicate }))
        .collect();
    let applied: Vec<Event> =
        outcomes.iter().filter(|(_, o)| *o == Outcome::Applied).map(|(e, _)| (*e).clone()).collect();
    projector.apply_all(&mut *tx, &applied).await.map_err(BatchError::from_apply)?;
    if matches!(target, Target::Live) {
        count_outcomes(spec, &outcomes);
    }
    Ok(applied)
}

/// Counts what became of each event of a batch once its changes are written
/// (`events_consumed_total`).
pub(crate) fn count_outcomes(spec: &ConsumerSpec, outcomes: &[(&Event, Outcome)]) {
    for (event, outcome) in outcomes {
        metrics::counter!("events_consumed_total", "consumer" => spec.name, "type" => event.event_type.clone(), "outcome" => outcome.as_str()).increment(1);
    }
}

pub enum BatchError {
    /// The database is unreachable or refused service: not the events' fault.
    Database(anyhow::Error),
    /// The projector failed on an event.
    Apply(ApplyError),
}

impl BatchError {
    pub(crate) fn from_sqlx(e: sqlx::Error) -> Self {
        match db_failure(&e) {
            DbFailure::Unavailable => Self::Database(e.into()),
            DbFailure::Rejected | DbFailure::Transient => Self::Apply(e.into()),
        }
    }

    pub(crate) fn from_apply(e: ApplyError) -> Self {
        match e {
            ApplyError::Transient(inner) => match inner.downcast_ref::<sqlx::Error>() {
                Some(db) if matches!(db_failure(db), DbFailure::Unavailable) => Self::Database(inner),
                _ => Self::Apply(ApplyError::Transient(inner)),
            },
            permanent => Self::Apply(permanent),
        }
    }
}

/// How a database error bears on the events being applied.
pub(super) enum DbFailure {
    /// The database is unreachable or refused service: no event is at fault. Class 08
    /// (connection exception), 57P (operator intervention), 53 (insufficient resources), and
    /// the pool's own errors.
    Unavailable,
    /// Refused what was asked of it, and would again: class 22 (data exception, e.g. a value
    /// out of range) and class 23 (integrity violation; our dedup conflicts are
    /// `on conflict do nothing` and never raise).
    Rejected,
    /// Anything else (serialization failures, deadlocks, lock timeouts): may pass on a retry.
    Transient,
}

pub(super) fn db_failure(e: &sqlx::Error) -> DbFailure {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => DbFailure::Unavailable,
        sqlx::Error::Database(db) => match db.code() {
            Some(c) if c.starts_with("08") || c.starts_with("57P") || c.starts_with("53") => DbFailure::Unavailable,
            Some(c) if c.starts_with("22") || c.starts_with("23") => DbFailure::Rejected,
            _ => DbFailure::Transient,
        },
        _ => DbFailure::Transient,
    }
}
