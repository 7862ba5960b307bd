//! Admission: a consumer acts on a delivery only as the event the log holds.
//!
//! The log is the truth (DESIGN §2): a rebuild from it must reproduce every live read model,
//! and the points ledger may pay only for events it contains. Our own events are in the log
//! before the relay publishes them, but another service publishes straight to the bus, so its
//! event reaches every consumer bound to its type at once, ingest among them. Were a consumer
//! to act on such a delivery while ingest failed to store it (or had not yet), the read models
//! and the log would disagree.
//!
//! So every live consumer admits its batch first, **in the batch's own transaction**:
//!
//! * An event whose id is in the log is applied as the log holds it. When the delivered body
//!   differs (same id, other content: a hostile or broken producer), the logged version wins;
//!   ingest parks the delivered copy as `conflicting_duplicate` so its sender learns.
//! * An event not in the log yet (another service's, first sighting) must name only users with
//!   a live account, or it is refused (`unknown_user`) and changes nothing. Otherwise it is
//!   stored in the log exactly as sent, born published (it is on the bus already, the relay
//!   must not send it again), and then applied. Whichever consumer sees it first stores it;
//!   the others find it there. Because the store and the effect commit together, no consumer
//!   can act on an event the log does not hold, and a failed transaction leaves neither.
//!
//! Rebuilds and replays read the log, so they skip admission.

use std::collections::{HashMap, HashSet};

use events::{Event, RawEnvelope};
use platform::eventstore::{self, STORED_EVENT_COLUMNS, StoredEvent};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::consumer::Incoming;

/// Parking reason: the event names a user without a live account.
pub const UNKNOWN_USER: &str = "unknown_user";
/// Parking reason (ingest): the id is in the log with a different body.
pub const CONFLICTING_DUPLICATE: &str = "conflicting_duplicate";

/// A delivery that must not be applied, and why.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The delivery's index in the batch (several deliveries may carry one event id).
    pub index: usize,
    /// Machine-readable parking reason.
    pub code: &'static str,
    /// Human detail.
    pub detail: String,
}

/// The batch as the log holds it.
#[derive(Debug, Default)]
pub struct Admitted {
    /// Events to apply, in delivery order, each as the log holds it.
    pub events: Vec<Event>,
    /// Deliveries refused.
    pub refused: Vec<Refusal>,
}

/// Admits `incoming` inside the caller's transaction (see the module docs).
/// `park_conflicts`: refuse a delivery whose id is logged with another body (ingest does, to
/// tell the sender; other consumers simply apply the logged event).
pub async fn admit(
    tx: &mut PgConnection,
    incoming: &[Incoming<'_>],
    park_conflicts: bool,
) -> Result<Admitted, sqlx::Error> {
    let ids: Vec<Uuid> = incoming.iter().map(|i| i.event.id).collect::<HashSet<_>>().into_iter().collect();
    let mut logged = read_logged(tx, &ids).await?;

    // First sightings: check the people they name, then store them.
    let mut unseen: Vec<&Incoming<'_>> = Vec::new();
    let mut unseen_ids = HashSet::new();
    for i in incoming {
        if !logged.contains_key(&i.event.id) && unseen_ids.insert(i.event.id) {
            unseen.push(i);
        }
    }
    let mut refused: HashMap<Uuid, (&'static str, String)> = HashMap::new();
    if !unseen.is_empty() {
        let named: Vec<Uuid> =
            unseen.iter().flat_map(|i| i.event.users()).collect::<HashSet<_>>().into_iter().collect();
        let live: HashSet<Uuid> = if named.is_empty() {
            HashSet::new()
        } else {
            sqlx::query_scalar("select id from auth.users where id = any($1) and deleted_at is null")
                .bind(&named)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect()
        };
        let mut to_store = Vec::new();
        for i in unseen {
            if let Some(missing) = i.event.users().into_iter().find(|u| !live.contains(u)) {
                refused.insert(i.event.id, (UNKNOWN_USER, format!("user {missing} has no live account")));
                continue;
            }
            // Stored as sent (an older version stays that version; readers upcast), except that
            // personal fields sent in plain text are sealed first: the log never holds them so.
            let mut raw = None;
            if events::PERSONAL_FIELD_TYPES.contains(&i.event.event_type.as_str()) {
                let mut sealed = i.event.clone();
                if platform::personal::seal_data(tx, &mut sealed.data, sealed.aggregate_id).await? {
                    sealed.version = sealed.data.version();
                    raw = Some(sealed.to_raw());
                }
            }
            let raw = raw.unwrap_or_else(|| {
                i.sent.and_then(|bytes| RawEnvelope::from_slice(bytes).ok()).unwrap_or_else(|| i.event.to_raw())
            });
            to_store.push(raw);
        }
        if !to_store.is_empty() {
            let stored = eventstore::insert_returning_ids(tx, to_store.clone(), true).await?;
            for raw in &to_store {
                if stored.contains(&raw.id) {
                    metrics::counter!("events_ingested_total", "type" => raw.event_type.clone(), "source" => raw.source.clone())
                        .increment(1);
                }
            }
            // Read back what the log now holds for these ids: what this batch stored (so a
            // second body under the same id later in the batch is told apart), or what another
            // transaction stored meanwhile.
            let ids: Vec<Uuid> = to_store.iter().map(|r| r.id).collect();
            logged.extend(read_logged(tx, &ids).await?);
        }
    }

    let mut admitted = Admitted::default();
    for (index, i) in incoming.iter().enumerate() {
        let id = i.event.id;
        if let Some((code, detail)) = refused.get(&id) {
            admitted.refused.push(Refusal { index, code, detail: detail.clone() });
            continue;
        }
        match logged.get(&id) {
            Some(stored) if let Some(field) = differing_field(stored, i) => {
                if park_conflicts {
                    admitted.refused.push(Refusal {
                        index,
                        code: CONFLICTING_DUPLICATE,
                        detail: format!(
                            "event {id} is in the log with a different `{field}` (logged {}, sent {}); the logged one stands",
                            stored.data.0,
                            i.sent.map(String::from_utf8_lossy).unwrap_or_default()
                        ),
                    });
                    continue;
                }
                match stored.clone().into_envelope().decode() {
                    Ok(event) => admitted.events.push(event),
                    Err(e) => admitted.refused.push(Refusal { index, code: e.code(), detail: e.to_string() }),
                }
            }
            // The log holds these sealed, so a second body under the id cannot be told apart:
            // apply what the log holds, as a rebuild would.
            Some(stored) if events::PERSONAL_FIELD_TYPES.contains(&stored.event_type.as_str()) => {
                match stored.clone().into_envelope().decode() {
                    Ok(event) => admitted.events.push(event),
                    Err(e) => admitted.refused.push(Refusal { index, code: e.code(), detail: e.to_string() }),
                }
            }
            _ => admitted.events.push(i.event.clone()),
        }
    }
    Ok(admitted)
}

async fn read_logged(tx: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, StoredEvent>, sqlx::Error> {
    let rows: Vec<StoredEvent> =
        sqlx::query_as(&format!("select {STORED_EVENT_COLUMNS} from eventstore.events where id = any($1)"))
            .bind(ids)
            .fetch_all(&mut *tx)
            .await?;
    Ok(rows.into_iter().map(|r| (r.id, r)).collect())
}

/// The first envelope field in which the delivery differs from the event the log holds, if
/// any. Compared as sent (the log keeps envelopes as sent); timestamps at the log's microsecond
/// precision. The payload and version of a type with personal fields are not compared: the log
/// holds them sealed (each sealing differs), so a second body under the same id of those types
/// is not told apart: the first one stands, and is what every consumer applies.
fn differing_field(stored: &StoredEvent, delivered: &Incoming<'_>) -> Option<&'static str> {
    let sent = delivered.sent.and_then(|bytes| RawEnvelope::from_slice(bytes).ok())?;
    let micros = |t: chrono::DateTime<chrono::Utc>| t.timestamp_micros();
    let sealed = events::PERSONAL_FIELD_TYPES.contains(&stored.event_type.as_str());
    [
        ("type", sent.event_type == stored.event_type),
        ("version", sealed || i64::from(sent.version) == i64::from(stored.version)),
        ("source", sent.source == stored.source),
        ("aggregate_type", sent.aggregate_type == stored.aggregate_type),
        ("aggregate_id", sent.aggregate_id == stored.aggregate_id),
        ("sequence", sent.sequence == stored.sequence),
        ("occurred_at", micros(sent.occurred_at) == micros(stored.occurred_at)),
        ("correlation_id", sent.correlation_id == stored.correlation_id),
        ("causation_id", sent.causation_id == stored.causation_id),
        ("data", sealed || sent.data == stored.data.0),
    ]
    .into_iter()
    .find_map(|(field, same)| (!same).then_some(field))
}
