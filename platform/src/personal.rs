//! Crypto-shredding of personal fields (docs/forgetting.md).
//!
//! Each person has a 256-bit data key in `personal.keys`, a table nothing else is kept in.
//! [`seal_event`] (called by `eventstore::append` for every event it writes) seals each open
//! personal field with it: AES-256-GCM (RustCrypto's `aes-gcm`), a random 96-bit nonce, and
//! `"{person}:{field}"` as associated data. The append that records `user.deleted` destroys the
//! key in the same transaction ([`forget`]); a row with no key stays as the tombstone, so a late
//! event about the person is sealed under a throwaway key instead of a new one, and reads as
//! forgotten like the rest. Readers open values with [`reveal`]: `None` is a forgotten field.

use aes_gcm::{
    Aes256Gcm, Key, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use events::{Event, EventData, Personal, Sealed};
use rand::RngCore;
use sqlx::PgConnection;
use uuid::Uuid;

/// The forgotten value of a nickname, as readers show it.
pub const FORGOTTEN_NICKNAME: &str = "(deleted)";

const PREFIX: &str = "v1.";
const NONCE_BYTES: usize = 12;

fn associated_data(person: Uuid, field: &str) -> String {
    format!("{person}:{field}")
}

/// Seals `text` with `key` for `person`'s `field`.
pub fn seal(key: &[u8; 32], person: Uuid, field: &str, text: &str) -> Sealed {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = associated_data(person, field);
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: text.as_bytes(), aad: aad.as_bytes() })
        .expect("AES-GCM encryption of a short field cannot fail");
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    Sealed { sealed: format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)), key: person }
}

/// Opens `sealed` (its `field`) with `key`; `None` when it does not open (another key, or
/// tampered with).
pub fn open_with(key: &[u8; 32], field: &str, sealed: &Sealed) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed.sealed.strip_prefix(PREFIX)?).ok()?;
    if bytes.len() < NONCE_BYTES + 16 {
        return None;
    }
    let (nonce, body) = bytes.split_at(NONCE_BYTES);
    let aad = associated_data(sealed.key, field);
    let text = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: aad.as_bytes() });
    String::from_utf8(text.ok()?).ok()
}

fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

fn as_key(bytes: Vec<u8>) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

/// The person's key for writing: made on first use; `None` once the person was forgotten.
async fn key_for_writing(conn: &mut PgConnection, person: Uuid) -> sqlx::Result<Option<[u8; 32]>> {
    sqlx::query("insert into personal.keys (user_id, key) values ($1, $2) on conflict (user_id) do nothing")
        .bind(person)
        .bind(random_key().to_vec())
        .execute(&mut *conn)
        .await?;
    let key: Option<Vec<u8>> = sqlx::query_scalar("select key from personal.keys where user_id = $1")
        .bind(person)
        .fetch_one(&mut *conn)
        .await?;
    Ok(key.and_then(as_key))
}

/// The person's key for reading; `None` when forgotten (or never made).
pub async fn key_for_reading(conn: &mut PgConnection, person: Uuid) -> sqlx::Result<Option<[u8; 32]>> {
    let key: Option<Option<Vec<u8>>> = sqlx::query_scalar("select key from personal.keys where user_id = $1")
        .bind(person)
        .fetch_optional(conn)
        .await?;
    Ok(key.flatten().and_then(as_key))
}

/// Destroys the person's key, leaving the row as a tombstone.
pub async fn forget(conn: &mut PgConnection, person: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "insert into personal.keys (user_id, key, forgotten_at) values ($1, null, now())
         on conflict (user_id) do update set key = null, forgotten_at = coalesce(keys.forgotten_at, now())",
    )
    .bind(person)
    .execute(conn)
    .await?;
    Ok(())
}

/// Seals every open personal field of `data` (about `aggregate_id`) with its person's key, or
/// with a throwaway key when the person is forgotten. Returns whether anything was sealed.
pub async fn seal_data(conn: &mut PgConnection, data: &mut EventData, aggregate_id: Uuid) -> sqlx::Result<bool> {
    let Some((person, fields)) = data.personal_fields(aggregate_id) else { return Ok(false) };
    if fields.iter().all(|f| f.value.as_open().is_none()) {
        return Ok(false);
    }
    let key = key_for_writing(conn, person).await?.unwrap_or_else(random_key);
    for field in fields {
        if let Personal::Open(text) = &*field.value {
            *field.value = Personal::Sealed(seal(&key, person, field.name, text));
        }
    }
    Ok(true)
}

/// What `eventstore::append` does with every event: seals its open personal fields, and
/// destroys the key with `user.deleted`.
pub async fn seal_event(conn: &mut PgConnection, event: &mut Event) -> sqlx::Result<()> {
    if let EventData::UserDeleted(deleted) = &event.data {
        return forget(conn, deleted.user_id).await;
    }
    seal_data(conn, &mut event.data, event.aggregate_id).await?;
    Ok(())
}

/// Opens one person's fields: their key, read once for all the fields an event carries.
pub struct Opener {
    owner: Uuid,
    key: Option<[u8; 32]>,
}

impl Opener {
    /// An opener for `owner`'s fields among `values`; reads the key only when one is sealed.
    pub async fn of(conn: &mut PgConnection, owner: Uuid, values: &[&Personal]) -> sqlx::Result<Self> {
        let sealed = values.iter().any(|v| matches!(v, Personal::Sealed(s) if s.key == owner));
        let key = if sealed { key_for_reading(conn, owner).await? } else { None };
        Ok(Self { owner, key })
    }

    /// The text of the field, or `None` when it is forgotten (its person deleted). A value
    /// sealed for someone else (copied into another person's event) never opens.
    pub fn open(&self, field: &str, value: &Personal) -> Option<String> {
        match value {
            Personal::Open(text) => Some(text.clone()),
            Personal::Sealed(sealed) if sealed.key != self.owner => {
                tracing::warn!(owner = %self.owner, sealed_for = %sealed.key, field, "a sealed field of another person: read as forgotten");
                None
            }
            Personal::Sealed(sealed) => {
                let text = open_with(self.key.as_ref()?, field, sealed);
                if text.is_none() {
                    tracing::warn!(person = %sealed.key, field, "a sealed field does not open with its person's key");
                }
                text
            }
        }
    }

    /// [`Opener::open`] for an optional field: `None` stays `None`, a forgotten value reads as
    /// `forgotten`.
    pub fn open_or(&self, field: &str, value: Option<&Personal>, forgotten: &str) -> Option<String> {
        value.map(|v| self.open(field, v).unwrap_or_else(|| forgotten.to_owned()))
    }
}

/// The text of `owner`'s one personal field, or `None` when it is forgotten (see [`Opener`]).
pub async fn reveal(
    conn: &mut PgConnection,
    owner: Uuid,
    field: &str,
    value: &Personal,
) -> sqlx::Result<Option<String>> {
    Ok(Opener::of(conn, owner, &[value]).await?.open(field, value))
}

/// What [`migrate_log`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Migrated {
    /// v1 events rewritten sealed under their person's key.
    pub sealed: u64,
    /// v1 events of people deleted before sealing existed: rewritten under a throwaway key, so
    /// their fields read as forgotten.
    pub forgotten: u64,
    /// Rows that do not decode (left as they are, logged; the next run tries them again).
    pub skipped: u64,
}

/// Events per transaction of [`migrate_log`].
const MIGRATE_BATCH: i64 = 500;

/// The one rewrite of the log (docs/forgetting.md): every v1 event with personal fields in
/// plain text becomes its v2 form in place (same id, position, sequence and everything else;
/// the fields sealed with the person's key, or with a throwaway key for a person the log says
/// was deleted). Idempotent and resumable (batches of 500, each its own transaction, rows taken
/// with `skip locked` so two runs share the work); a log with nothing to rewrite costs one
/// indexed query. Every workers process runs it in the background (`run_log_migration`), so
/// a long log never holds up a deployment. `progress` hears the running counts.
pub async fn migrate_log(db: &sqlx::PgPool, mut progress: impl FnMut(Migrated)) -> anyhow::Result<Migrated> {
    let mut done = Migrated::default();
    let mut skipped: Vec<Uuid> = Vec::new();
    loop {
        let mut tx = db.begin().await?;
        let rows: Vec<crate::eventstore::StoredEvent> = sqlx::query_as(&format!(
            "select {} from eventstore.events where version = 1 and type in ({}) and id <> all($2)
             order by position limit $1 for update skip locked",
            crate::eventstore::STORED_EVENT_COLUMNS,
            events::PERSONAL_FIELD_TYPES.map(|t| format!("'{t}'")).join(", ")
        ))
        .bind(MIGRATE_BATCH)
        .bind(&skipped)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            break;
        }
        for row in rows {
            let id = row.id;
            let event = match row.into_envelope().decode() {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(event.id = %id, error = %e, "a v1 event with personal fields does not decode: left as it is");
                    skipped.push(id);
                    done.skipped += 1;
                    continue;
                }
            };
            let mut data = event.data;
            let person = data.personal_fields(event.aggregate_id).map(|(person, _)| person);
            let deleted = match person {
                Some(person) => sqlx::query_scalar::<_, bool>(
                    "select exists (select 1 from eventstore.events where type = 'user.deleted' and aggregate_id = $1)",
                )
                .bind(person)
                .fetch_one(&mut *tx)
                .await?,
                None => false,
            };
            if let (true, Some(person)) = (deleted, person) {
                forget(&mut tx, person).await?;
                done.forgotten += 1;
            } else {
                done.sealed += 1;
            }
            seal_data(&mut tx, &mut data, event.aggregate_id).await?;
            let json = data.to_json();
            sqlx::query("update eventstore.events set version = $2, data = $3 where id = $1")
                .bind(id)
                .bind(i32::try_from(data.version()).unwrap_or(i32::MAX))
                .bind(sqlx::types::Json(json))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        progress(done);
    }
    if done.sealed + done.forgotten > 0 {
        sqlx::query(
            "insert into eventstore.rewrites (name, sealed, forgotten) values ('seal-personal-fields', $1, $2)",
        )
        .bind(i64::try_from(done.sealed).unwrap_or(i64::MAX))
        .bind(i64::try_from(done.forgotten).unwrap_or(i64::MAX))
        .execute(db)
        .await?;
    }
    Ok(done)
}

/// Runs [`migrate_log`] a few seconds after start and then hourly until `shutdown`: the log
/// is sealed soon after an upgrade, and anything an older process still wrote in plain text
/// during a rolling upgrade is sealed within the hour.
pub async fn run_log_migration(db: sqlx::PgPool, shutdown: tokio_util::sync::CancellationToken) {
    let mut wait = std::time::Duration::from_secs(5);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = std::time::Duration::from_secs(3600);
        let result = migrate_log(&db, |done| {
            tracing::info!(sealed = done.sealed, forgotten = done.forgotten, "sealing personal fields in the log")
        })
        .await;
        match result {
            Ok(done) if done.sealed + done.forgotten > 0 => {
                tracing::info!(?done, "the log's plain-text personal fields are sealed")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "sealing the log's personal fields failed; trying again in an hour"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_only_and_only_as_its_field() {
        let (key, other) = (random_key(), random_key());
        let person = Uuid::new_v4();
        let sealed = seal(&key, person, "nickname", "초록 미나");
        assert!(!sealed.sealed.contains("미나"));
        assert_eq!(open_with(&key, "nickname", &sealed).as_deref(), Some("초록 미나"));
        assert_eq!(open_with(&other, "nickname", &sealed), None, "another key");
        assert_eq!(open_with(&key, "bio", &sealed), None, "moved to another field");
        let moved = Sealed { key: Uuid::new_v4(), ..sealed.clone() };
        assert_eq!(open_with(&key, "nickname", &moved), None, "moved to another person");
        assert_ne!(seal(&key, person, "nickname", "초록 미나"), sealed, "a fresh nonce every time");
    }
}
