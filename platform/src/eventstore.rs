//! Appending to the event log (the outbox) and reading it back.

use std::collections::HashMap;

use events::{Event, RawEnvelope};
use sqlx::{PgConnection, PgPool, Postgres, Transaction, types::Json};
use uuid::Uuid;

use crate::wake::Wake;

/// The channel the relay listens on; notified after a transaction that appended events commits
/// (through [`Outbox`], or a [`Wake`] on this channel).
pub const OUTBOX_CHANNEL: &str = "eco_outbox";

/// Where events are recorded: the database, and the relay's wake-up after each commit.
#[derive(Clone)]
pub struct Outbox {
    db: PgPool,
    wake: Wake,
}

impl Outbox {
    /// Records into `db` and wakes the relay listening on that database (within a Tokio runtime).
    pub fn new(db: PgPool) -> Self {
        let wake = Wake::new(db.clone(), OUTBOX_CHANNEL);
        Self { db, wake }
    }

    /// A transaction to [`append`] in (with whatever state change goes with the events); its
    /// [`Recording::commit`] wakes the relay.
    pub async fn begin(&self) -> sqlx::Result<Recording> {
        Ok(Recording { tx: self.db.begin().await?, wake: self.wake.clone() })
    }
}

/// Wakes the relay listening on `db`'s database now: for rare appends made outside an
/// [`Outbox`] (closing a period, seeding content), after their commit.
pub async fn wake_relay(db: &PgPool) -> sqlx::Result<()> {
    sqlx::query("select pg_notify($1, '')").bind(OUTBOX_CHANNEL).execute(db).await.map(|_| ())
}

/// A transaction begun by [`Outbox::begin`]: a connection (it dereferences to one) whose
/// commit wakes the relay. Dropped without a commit, it rolls back.
pub struct Recording {
    tx: Transaction<'static, Postgres>,
    wake: Wake,
}

impl Recording {
    /// Commits, then wakes the relay.
    pub async fn commit(self) -> sqlx::Result<()> {
        self.tx.commit().await?;
        self.wake.wake();
        Ok(())
    }
}

impl std::ops::Deref for Recording {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for Recording {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

/// Appends `events` to the log inside the caller's transaction, assigning each a per-aggregate
/// `sequence`. Write the state change in the same transaction: both commit or neither does. The
/// relay is woken after the commit (a [`Recording`] does it; no `NOTIFY` here, see
/// [`crate::wake`]).
///
/// Open personal fields are sealed on the way in (`crate::personal`).
///
/// Sequences come from `eventstore.streams`, whose row lock serialises appends per aggregate
/// (not globally), so concurrent commands about different users never wait on each other.
pub async fn append(conn: &mut PgConnection, events: &mut [Event]) -> sqlx::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut per_stream: HashMap<(String, Uuid), i64> = HashMap::new();
    for e in events.iter() {
        *per_stream.entry((e.aggregate_type.clone(), e.aggregate_id)).or_default() += 1;
    }
    // Lock streams in a fixed order so two multi-stream transactions cannot deadlock.
    let mut streams: Vec<_> = per_stream.into_iter().collect();
    streams.sort();
    let mut next_sequence = HashMap::new();
    for ((aggregate_type, aggregate_id), count) in streams {
        let last: i64 = sqlx::query_scalar(
            "insert into eventstore.streams (aggregate_type, aggregate_id, last_sequence) values ($1, $2, $3)
             on conflict (aggregate_type, aggregate_id) do update set last_sequence = streams.last_sequence + excluded.last_sequence
             returning last_sequence",
        )
        .bind(&aggregate_type)
        .bind(aggregate_id)
        .bind(count)
        .fetch_one(&mut *conn)
        .await?;
        next_sequence.insert((aggregate_type, aggregate_id), last - count + 1);
    }
    for e in events.iter_mut() {
        if let Some(seq) = next_sequence.get_mut(&(e.aggregate_type.clone(), e.aggregate_id)) {
            e.sequence = Some(*seq);
            *seq += 1;
        }
        // Personal fields never reach the log in plain text; `user.deleted` destroys the key.
        crate::personal::seal_event(&mut *conn, e).await?;
    }
    insert(conn, events.iter().map(Event::to_raw).collect(), false).await?;
    Ok(())
}

tokio::task_local! {
    /// The events [`append_at_end`] keeps for the [`staging`] around it.
    static STAGED: std::cell::RefCell<Vec<Event>>;
}

/// Runs `work` (which applies a batch inside a transaction), keeping the events it gives
/// [`append_at_end`]; returns its output and those events, for the caller to [`append`] in the
/// same transaction just before committing.
///
/// Appending takes each stream's row lock until the commit. A policy applying a batch of two
/// hundred events used to take its users' locks one by one as it went, and the users' own
/// commands (a scan appends to the same stream) waited for the whole batch; appended at the end,
/// in one statement per stream and in a fixed order, the locks are held for the commit only.
pub async fn staging<F: Future>(work: F) -> (F::Output, Vec<Event>) {
    STAGED
        .scope(std::cell::RefCell::new(Vec::new()), async {
            let out = work.await;
            (out, STAGED.with(|staged| staged.take()))
        })
        .await
}

/// Appends `events` at the end of the batch being applied inside [`staging`], or now, like
/// [`append`], outside one.
pub async fn append_at_end(conn: &mut PgConnection, mut events: Vec<Event>) -> sqlx::Result<()> {
    let kept = STAGED.try_with(|staged| staged.borrow_mut().append(&mut events));
    if kept.is_err() {
        append(conn, &mut events).await?;
    }
    Ok(())
}

/// Inserts envelopes as they are (no sequence assignment). `published` marks events that are
/// already on the bus (ingested from other services). Returns how many were new; an id already
/// in the log is skipped.
pub async fn insert(conn: &mut PgConnection, events: Vec<RawEnvelope>, published: bool) -> sqlx::Result<u64> {
    Ok(insert_into(conn, LOG_TABLE, events, published).await?.len() as u64)
}

/// [`insert`], returning the ids that were new.
pub async fn insert_returning_ids(
    conn: &mut PgConnection,
    events: Vec<RawEnvelope>,
    published: bool,
) -> sqlx::Result<std::collections::HashSet<Uuid>> {
    Ok(insert_into(conn, LOG_TABLE, events, published).await?.into_iter().collect())
}

/// The event log table.
pub const LOG_TABLE: &str = "eventstore.events";

/// [`insert`] into `table`, a table shaped like the log (benchmarks measure the same statement
/// against an index-free copy), returning the ids that were new. `table` is trusted SQL.
pub async fn insert_into(
    conn: &mut PgConnection,
    table: &str,
    events: Vec<RawEnvelope>,
    published: bool,
) -> sqlx::Result<Vec<Uuid>> {
    let mut ids = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut versions = Vec::with_capacity(events.len());
    let mut sources = Vec::with_capacity(events.len());
    let mut aggregate_types = Vec::with_capacity(events.len());
    let mut aggregate_ids = Vec::with_capacity(events.len());
    let mut sequences = Vec::with_capacity(events.len());
    let mut occurred = Vec::with_capacity(events.len());
    let mut correlations = Vec::with_capacity(events.len());
    let mut causations = Vec::with_capacity(events.len());
    let mut data = Vec::with_capacity(events.len());
    for e in events {
        ids.push(e.id);
        types.push(e.event_type);
        versions.push(i32::try_from(e.version).unwrap_or(i32::MAX));
        sources.push(e.source);
        aggregate_types.push(e.aggregate_type);
        aggregate_ids.push(e.aggregate_id);
        sequences.push(e.sequence);
        occurred.push(e.occurred_at);
        correlations.push(e.correlation_id);
        causations.push(e.causation_id);
        data.push(Json(e.data));
    }
    let sql = format!(
        "insert into {table}
           (id, type, version, source, aggregate_type, aggregate_id, sequence, occurred_at,
            correlation_id, causation_id, data, published_at)
         select *, case when $12 then now() end
         from unnest($1::uuid[], $2::text[], $3::int4[], $4::text[], $5::text[], $6::uuid[], $7::int8[],
                     $8::timestamptz[], $9::uuid[], $10::uuid[], $11::jsonb[])
         on conflict do nothing
         returning id"
    );
    sqlx::query_scalar(&sql)
        .bind(ids)
        .bind(types)
        .bind(versions)
        .bind(sources)
        .bind(aggregate_types)
        .bind(aggregate_ids)
        .bind(sequences)
        .bind(occurred)
        .bind(correlations)
        .bind(causations)
        .bind(data)
        .bind(published)
        .fetch_all(&mut *conn)
        .await
}

/// A row of the log, as the relay and replays read it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    /// Global position.
    pub position: i64,
    /// Event id.
    pub id: Uuid,
    /// Event type.
    #[sqlx(rename = "type")]
    pub event_type: String,
    /// Schema version.
    pub version: i32,
    /// Producer.
    pub source: String,
    /// Aggregate kind.
    pub aggregate_type: String,
    /// Aggregate id.
    pub aggregate_id: Uuid,
    /// Per-aggregate sequence.
    pub sequence: Option<i64>,
    /// When it happened.
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    /// Correlation id.
    pub correlation_id: Option<Uuid>,
    /// Causation id.
    pub causation_id: Option<Uuid>,
    /// Payload.
    pub data: Json<serde_json::Value>,
}

/// The columns of [`StoredEvent`], for `select` lists.
pub const STORED_EVENT_COLUMNS: &str = "position, id, type, version, source, aggregate_type, aggregate_id, sequence, occurred_at, correlation_id, causation_id, data";

impl StoredEvent {
    /// The wire envelope.
    pub fn into_envelope(self) -> RawEnvelope {
        RawEnvelope {
            id: self.id,
            event_type: self.event_type,
            version: u32::try_from(self.version).unwrap_or(0),
            source: self.source,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            sequence: self.sequence,
            occurred_at: self.occurred_at,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            data: self.data.0,
        }
    }
}
