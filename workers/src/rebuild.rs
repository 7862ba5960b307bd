//! Rebuilding a projection from the event log, and replaying a range of the log into one.
//!
//! **Rebuild** (`ecoctl projections rebuild NAME`) recomputes a projection's tables from the
//! whole log while the live projector keeps consuming:
//!
//! 1. A shadow schema `rebuild_{projection}` gets empty copies of the projector's tables
//!    (`like … including all`) and its own `applied_events`.
//! 2. Catch-up passes read the log in `(transaction_id, position)` order, only below the oldest
//!    running transaction (the relay's rule, so no row can later appear behind the cursor), and
//!    apply each batch with the projector's own `apply`, its unqualified table names resolving to
//!    the shadow schema. Nothing else runs: no cache refresh, no publish, no points award, no
//!    mail. Policies and the mailer, whose effects are outside their tables, cannot be rebuilt.
//! 3. The swap, in one transaction: take the projection's advisory lock exclusively (live
//!    batches hold it shared, so the live projector pauses for this transaction only), apply the
//!    tail of the log the passes had not reached, replace the live rows with the shadow's, and
//!    add the shadow's applied ids to `projection.applied_events`. Readers see the old rows until
//!    the commit and the new ones after; deliveries still in the broker that the shadow already
//!    covered are then skipped as duplicates, and later ones apply on top.
//! 4. Caches built from the old rows are dropped (`Projector::after_rebuild`), and the shadow
//!    schema with them.
//!
//! Rows are copied rather than tables renamed so that the live tables keep their names, indexes,
//! grants and the migrations' view of them.
//!
//! **Replay** (`ecoctl events replay --projection NAME --from --to`) applies the log's events in
//! a position range to the live projection through the same deduplication as the consumer: what
//! was applied already is counted and skipped, what was missed (a purged parked event, say) is
//! applied once.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use events::{Event, RawEnvelope};
use platform::eventstore::{STORED_EVENT_COLUMNS, StoredEvent};
use sqlx::{PgConnection, PgPool, Row};

use crate::consumer::{
    ApplyError, BatchError, Incoming, Projector, Target, apply_in, apply_live, projection_lock, projection_name,
};

/// Log rows read per round of the catch-up (and per transaction when applied alone).
const BATCH: i64 = 2000;

/// Transactions a catch-up round applies in parallel, each with the events of a share of the
/// users (a round trip per statement leaves the database idle between them otherwise).
const PARALLEL: usize = 4;

/// Where a long operation is, for progress output.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Events handled so far.
    pub done: u64,
    /// Events to handle (an estimate while commands keep appending).
    pub total: u64,
}

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct RebuildReport {
    /// The projection.
    pub projection: &'static str,
    /// Log events of its types read.
    pub events: u64,
    /// Events applied to the shadow (the rest were ids seen twice or undecodable).
    pub applied: u64,
    /// Events that could not be applied (undecodable, or refused by the projector the way the
    /// live consumer would have parked them), with a sample of reasons.
    pub skipped: u64,
    /// Up to five `event id: reason` lines for the skipped events.
    pub skipped_samples: Vec<String>,
    /// Events applied inside the swap transaction (the tail written during the rebuild).
    pub tail: u64,
    /// Rows per table after the swap.
    pub rows: Vec<(&'static str, i64)>,
    /// Wall time.
    pub elapsed: Duration,
    /// Time the live projector was paused for the swap.
    pub swap: Duration,
}

impl RebuildReport {
    /// Events per second over the whole rebuild.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// Log events of the projection's types in the range.
    pub events: u64,
    /// Applied now (they had been missed).
    pub applied: u64,
    /// Already applied before, left alone.
    pub already_applied: u64,
    /// Could not be applied, with a sample of reasons.
    pub skipped: u64,
    /// Up to five `event id: reason` lines.
    pub skipped_samples: Vec<String>,
}

/// Event types `projector` consumes (`None`: every type).
fn types_of<P: Projector>(projector: &P) -> Option<Vec<String>> {
    let bindings = projector.spec().bindings;
    if bindings.contains(&"#") { None } else { Some(bindings.iter().map(|t| (*t).to_owned()).collect()) }
}

/// Decodes log rows; undecodable ones are returned apart with their reason.
fn decode(rows: Vec<StoredEvent>) -> (Vec<Event>, Vec<String>) {
    let mut events = Vec::with_capacity(rows.len());
    let mut bad = Vec::new();
    for row in rows {
        let id = row.id;
        match RawEnvelope::decode(row.into_envelope()) {
            Ok(e) => events.push(e),
            Err(e) => bad.push(format!("{id}: {}: {e}", e.code())),
        }
    }
    (events, bad)
}

/// Applies `events` inside `conn`'s transaction, each batch in a savepoint: when the batch
/// fails, its events are applied one by one, and those that still fail are skipped (the live
/// consumer would have parked them). Database outages abort.
async fn apply_skipping<P: Projector>(
    conn: &mut PgConnection,
    projector: &P,
    target: &Target,
    events: &[Event],
    skipped: &mut Vec<String>,
) -> anyhow::Result<u64> {
    sqlx::query("savepoint batch").execute(&mut *conn).await?;
    match apply_in(&mut *conn, projector, target, events).await {
        Ok(applied) => {
            sqlx::query("release savepoint batch").execute(&mut *conn).await?;
            return Ok(applied.len() as u64);
        }
        Err(BatchError::Database(e)) => return Err(e.context("applying a batch")),
        Err(BatchError::Apply(_)) => sqlx::query("rollback to savepoint batch").execute(&mut *conn).await?,
    };
    let mut applied = 0;
    for event in events {
        sqlx::query("savepoint one").execute(&mut *conn).await?;
        match apply_in(&mut *conn, projector, target, std::slice::from_ref(event)).await {
            Ok(done) => {
                sqlx::query("release savepoint one").execute(&mut *conn).await?;
                applied += done.len() as u64;
            }
            Err(BatchError::Database(e)) => return Err(e.context("applying an event")),
            Err(BatchError::Apply(e)) => {
                sqlx::query("rollback to savepoint one").execute(&mut *conn).await?;
                let reason = match e {
                    ApplyError::Transient(e) => format!("{e:#}"),
                    ApplyError::Permanent { code, detail } => format!("{code}: {detail}"),
                };
                skipped.push(format!("{}: {reason}", event.id));
            }
        }
    }
    Ok(applied)
}

/// Rebuilds `projector`'s tables from the log and swaps them in (see the module docs).
pub async fn rebuild<P: Projector>(
    db: &PgPool,
    projector: &P,
    mut progress: impl FnMut(Progress),
) -> anyhow::Result<RebuildReport> {
    let projection = projection_name(projector.spec());
    if P::TABLES.is_empty() {
        bail!(
            "`{}` cannot be rebuilt: its effects are outside its tables (points awards, mail, the log itself); \
             rebuildable: {}",
            projector.spec().name,
            crate::registry::projection_names().join(", ")
        );
    }
    let started = Instant::now();
    // One rebuild per projection at a time: a session lock held on a dedicated connection.
    let mut guard = db.acquire().await.context("connecting")?;
    let got: bool = sqlx::query_scalar("select pg_try_advisory_lock(hashtext('ecoeco.rebuild'), hashtext($1))")
        .bind(projection)
        .fetch_one(&mut *guard)
        .await?;
    if !got {
        bail!("a rebuild of `{projection}` is already running");
    }
    let schema = format!("rebuild_{}", projection.replace('-', "_"));
    let result = rebuild_into(db, projector, &schema, started, &mut progress).await;
    // Whatever happened, the shadow copy goes (a failed rebuild leaves the live tables as they were).
    let dropped = sqlx::query(&format!("drop schema if exists {schema} cascade")).execute(db).await;
    let _ = sqlx::query("select pg_advisory_unlock(hashtext('ecoeco.rebuild'), hashtext($1))")
        .bind(projection)
        .execute(&mut *guard)
        .await;
    let report = result?;
    // The swap committed: caches built from the old rows go even if the cleanup failed.
    projector.after_rebuild().await;
    dropped.context("dropping the shadow schema")?;
    Ok(report)
}

async fn rebuild_into<P: Projector>(
    db: &PgPool,
    projector: &P,
    schema: &str,
    started: Instant,
    progress: &mut impl FnMut(Progress),
) -> anyhow::Result<RebuildReport> {
    let projection = projection_name(projector.spec());
    let target = Target::Shadow(schema.to_owned());
    let types = types_of(projector);
    let mut ddl = format!(
        "drop schema if exists {schema} cascade; create schema {schema};
         create table {schema}.applied_events (event_id uuid primary key);"
    );
    for table in P::TABLES {
        ddl.push_str(&format!("create table {schema}.{table} (like read.{table} including all);"));
    }
    sqlx::raw_sql(&ddl).execute(db).await.context("creating the shadow schema")?;

    let total: i64 =
        sqlx::query_scalar("select count(*) from eventstore.events where $1::text[] is null or type = any($1)")
            .bind(&types)
            .fetch_one(db)
            .await?;
    let mut report = RebuildReport {
        projection,
        events: 0,
        applied: 0,
        skipped: 0,
        skipped_samples: Vec::new(),
        tail: 0,
        rows: Vec::new(),
        elapsed: Duration::ZERO,
        swap: Duration::ZERO,
    };
    let mut skipped = Vec::new();
    let mut cursor: (String, i64) = ("0".to_owned(), 0);
    progress(Progress { done: 0, total: total as u64 });

    // Catch-up passes, below the oldest running transaction.
    loop {
        let rows = read_after(db, &cursor, types.as_deref(), true).await?;
        let Some(last) = rows.last() else { break };
        cursor = (last.1.clone(), last.0.position);
        let full = rows.len() as i64 == BATCH;
        report.events += rows.len() as u64;
        let (events, bad) = decode(rows.into_iter().map(|(e, _)| e).collect());
        skipped.extend(bad);
        // Each user's events in order, different users' in parallel transactions when the
        // projection's rows each belong to one aggregate (`PARTITIONED_BY_AGGREGATE`), so
        // partitions never touch the same rows; otherwise one transaction at a time.
        let parallel = if P::PARTITIONED_BY_AGGREGATE { PARALLEL } else { 1 };
        let mut partitions: Vec<Vec<Event>> = vec![Vec::new(); parallel];
        for event in events {
            let slot = (event.aggregate_id.as_u128() % parallel as u128) as usize;
            partitions[slot].push(event);
        }
        let applied = futures::future::try_join_all(partitions.iter().filter(|p| !p.is_empty()).map(|part| {
            let target = &target;
            async move {
                let mut skipped = Vec::new();
                let mut tx = db.begin().await?;
                let applied = apply_skipping(&mut tx, projector, target, part, &mut skipped).await?;
                tx.commit().await?;
                anyhow::Ok((applied, skipped))
            }
        }))
        .await?;
        for (n, bad) in applied {
            report.applied += n;
            skipped.extend(bad);
        }
        progress(Progress { done: report.events, total: (total as u64).max(report.events) });
        if !full {
            break;
        }
    }

    // The swap: pause the live projector, apply the tail, copy the rows over, commit.
    let swap_started = Instant::now();
    let mut tx = db.begin().await?;
    sqlx::query(&format!("select pg_advisory_xact_lock({})", projection_lock("$1")))
        .bind(projection)
        .execute(&mut *tx)
        .await?;
    loop {
        let rows = read_after(&mut *tx, &cursor, types.as_deref(), false).await?;
        let Some(last) = rows.last() else { break };
        cursor = (last.1.clone(), last.0.position);
        let n = rows.len() as u64;
        report.events += n;
        report.tail += n;
        let (events, bad) = decode(rows.into_iter().map(|(e, _)| e).collect());
        skipped.extend(bad);
        report.applied += apply_skipping(&mut tx, projector, &target, &events, &mut skipped).await?;
        if (n as i64) < BATCH {
            break;
        }
    }
    sqlx::query("select set_config('search_path', 'read, public', true)").execute(&mut *tx).await?;
    for table in P::TABLES {
        sqlx::query(&format!("delete from read.{table}")).execute(&mut *tx).await?;
        sqlx::query(&format!("insert into read.{table} select * from {schema}.{table}")).execute(&mut *tx).await?;
        let rows: i64 = sqlx::query_scalar(&format!("select count(*) from read.{table}")).fetch_one(&mut *tx).await?;
        report.rows.push((table, rows));
    }
    sqlx::query(&format!(
        "insert into projection.applied_events (projection, event_id)
         select $1, event_id from {schema}.applied_events on conflict do nothing"
    ))
    .bind(projection)
    .execute(&mut *tx)
    .await?;
    sqlx::query("select pg_notify($1, $2)")
        .bind(platform::consistency::APPLIED_CHANNEL)
        .bind(projection)
        .execute(&mut *tx)
        .await?;
    tx.commit().await.context("swapping the rebuilt tables in")?;
    report.swap = swap_started.elapsed();
    progress(Progress { done: report.events, total: report.events });
    report.skipped = skipped.len() as u64;
    report.skipped_samples = skipped.into_iter().take(5).collect();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The next batch of log rows of `types` after `cursor` in `(transaction_id, position)` order,
/// with each row's transaction id. `settled`: only rows below the oldest running transaction.
async fn read_after<'c, E: sqlx::PgExecutor<'c>>(
    executor: E,
    cursor: &(String, i64),
    types: Option<&[String]>,
    settled: bool,
) -> anyhow::Result<Vec<(StoredEvent, String)>> {
    let rows = sqlx::query(&format!(
        "select {STORED_EVENT_COLUMNS}, transaction_id::text as txid from eventstore.events
         where (transaction_id, position) > ($1::text::xid8, $2)
           and ($3::text[] is null or type = any($3))
           and (not $4 or transaction_id < pg_snapshot_xmin(pg_current_snapshot()))
         order by transaction_id, position
         limit $5"
    ))
    .bind(&cursor.0)
    .bind(cursor.1)
    .bind(types)
    .bind(settled)
    .bind(BATCH)
    .fetch_all(executor)
    .await
    .context("reading the event log")?;
    rows.into_iter()
        .map(|row| {
            let txid: String = row.try_get("txid")?;
            Ok((sqlx::FromRow::from_row(&row)?, txid))
        })
        .collect()
}

/// Applies the log's events at positions `from..=to` of `projector`'s types to the live
/// projection; those already applied are skipped.
pub async fn replay<P: Projector>(
    db: &PgPool,
    projector: &P,
    from: i64,
    to: i64,
    mut progress: impl FnMut(Progress),
) -> anyhow::Result<ReplayReport> {
    if from < 1 || to < from {
        bail!("the range must satisfy 1 <= --from <= --to (got --from {from} --to {to})");
    }
    let last: Option<i64> = sqlx::query_scalar("select max(position) from eventstore.events").fetch_one(db).await?;
    let last = last.unwrap_or(0);
    if from > last {
        bail!("--from {from} is past the end of the log (last position {last})");
    }
    if P::TABLES.is_empty() {
        bail!(
            "`{}` is not a projection; events can be replayed into: {}",
            projector.spec().name,
            crate::registry::projection_names().join(", ")
        );
    }
    let types = types_of(projector);
    let total: i64 = sqlx::query_scalar(
        "select count(*) from eventstore.events where position between $1 and $2 and ($3::text[] is null or type = any($3))",
    )
    .bind(from)
    .bind(to)
    .bind(&types)
    .fetch_one(db)
    .await?;
    let mut report = ReplayReport::default();
    let mut skipped = Vec::new();
    let mut after = from - 1;
    progress(Progress { done: 0, total: total as u64 });
    loop {
        let rows: Vec<StoredEvent> = sqlx::query_as(&format!(
            "select {STORED_EVENT_COLUMNS} from eventstore.events
             where position > $1 and position <= $2 and ($3::text[] is null or type = any($3))
             order by position limit $4"
        ))
        .bind(after)
        .bind(to)
        .bind(&types)
        .bind(BATCH)
        .fetch_all(db)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.position;
        let n = rows.len() as u64;
        report.events += n;
        let (events, bad) = decode(rows);
        skipped.extend(bad);
        let applied = match apply_live(db, projector, &Incoming::from_log(&events)).await {
            Ok(done) => done.applied,
            Err(BatchError::Database(e)) => return Err(e.context("replaying a batch")),
            Err(BatchError::Apply(_)) => {
                let mut applied = Vec::new();
                for event in &events {
                    match apply_live(db, projector, &[Incoming { event, sent: None }]).await {
                        Ok(done) => applied.extend(done.applied),
                        Err(BatchError::Database(e)) => return Err(e.context("replaying an event")),
                        Err(BatchError::Apply(e)) => skipped.push(format!("{}: {e}", event.id)),
                    }
                }
                applied
            }
        };
        report.applied += applied.len() as u64;
        projector.after_commit(&applied).await;
        progress(Progress { done: report.events, total: total as u64 });
        if (n as i64) < BATCH {
            break;
        }
    }
    report.skipped = skipped.len() as u64;
    report.already_applied = report.events - report.applied - report.skipped;
    report.skipped_samples = skipped.into_iter().take(5).collect();
    Ok(report)
}

/// A rebuildable projector chosen by name on the command line (from the [`crate::registry`]).
pub struct Named(Box<dyn crate::registry::Rebuildable>);

impl Named {
    /// The projector called `name` (`profiles` or `projection.profiles`, …), or an error naming
    /// the ones that exist and why consumers with side effects are not among them.
    pub fn find(name: &str, deps: &crate::registry::Deps) -> anyhow::Result<Self> {
        let projections = crate::registry::projection_names().join(", ");
        let Some(consumer) = crate::registry::find(name) else {
            bail!("no projection `{name}`; projections: {projections}");
        };
        match consumer.rebuildable(deps) {
            Some(built) => Ok(Self(built?)),
            None => bail!(
                "`{name}` is not a projection: its effects (points awards, mail, the log itself) are outside its \
                 tables and must never fire twice; projections: {projections}"
            ),
        }
    }

    /// See [`rebuild`].
    pub async fn rebuild(&self, db: &PgPool, mut progress: impl FnMut(Progress)) -> anyhow::Result<RebuildReport> {
        self.0.rebuild(db, &mut progress).await
    }

    /// See [`replay`].
    pub async fn replay(
        &self,
        db: &PgPool,
        from: i64,
        to: i64,
        mut progress: impl FnMut(Progress),
    ) -> anyhow::Result<ReplayReport> {
        self.0.replay(db, from, to, &mut progress).await
    }
}
