//! The avatar worker: turns each `avatar.uploaded` into renditions and a `user.profile_updated`
//! with the new `avatar_url`, and removes files nobody is shown any more.
//!
//! - An upload is decoded under the pixel limits (`platform::avatars`), written as square JPEGs
//!   of each size to `avatars/{user}/{upload}/{size}.jpg`, and its original deleted. The
//!   previous upload's renditions are deleted in the same step.
//! - Idempotent: rendition names come from the upload id, so a redelivery after a crash finds
//!   them written (or writes them again) and records the same change once (the consumer's
//!   deduplication); an upload older than the one shown, arriving late, is dropped.
//! - A `user.profile_updated` from anyone else that replaces or clears `avatar_url` after the
//!   upload's own change deletes that upload's renditions.
//! - `user.deleted` deletes every file of the person (both prefixes) and drops uploads that
//!   arrive later.
//!
//! A refused upload (not decodable, over the limits) is deleted and counted
//! (`avatar_uploads_total{outcome="rejected"}`); the profile keeps its avatar.

use anyhow::Context;
use chrono::{DateTime, Utc};
use events::{AvatarUploaded, Event, EventData, Personal, UserProfileUpdated};
use object_store::PutPayload;
use platform::{
    avatars, eventstore,
    storage::{self, Store},
    topology::{AVATARS, ConsumerSpec},
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::consumer::{ApplyError, Projector};

/// `source` of the events it records.
pub const SOURCE: &str = "avatars";

/// The avatar worker.
pub struct Avatars {
    store: Store,
    max_pixels: u64,
    base_url: String,
}

/// The avatar shown for a person, as the worker recorded it.
#[derive(sqlx::FromRow)]
struct Current {
    upload_id: Option<Uuid>,
    avatar_url: Option<String>,
    uploaded_at: Option<DateTime<Utc>>,
    set_at: Option<DateTime<Utc>>,
    forgotten: bool,
}

fn transient(context: &'static str) -> impl FnOnce(object_store::Error) -> ApplyError {
    move |e| ApplyError::Transient(anyhow::Error::new(e).context(context))
}

fn count(outcome: &'static str, reason: &'static str) {
    metrics::counter!("avatar_uploads_total", "outcome" => outcome, "reason" => reason).increment(1);
}

impl Avatars {
    /// A worker writing to `store`, naming renditions under `base_url`.
    pub fn new(store: Store, max_pixels: u64, base_url: &str) -> Self {
        Self { store, max_pixels, base_url: base_url.trim_end_matches('/').to_owned() }
    }

    /// The public URL of a rendition (query-api's avatar route, or a CDN in front of it).
    pub fn url(&self, user: Uuid, upload: Uuid, size: u32) -> String {
        format!("{}/{user}/{upload}/{size}.jpg", self.base_url)
    }

    /// Locks and returns the person's row (made when missing).
    async fn lock(tx: &mut PgConnection, user: Uuid) -> sqlx::Result<Current> {
        sqlx::query("insert into avatars.current (user_id) values ($1) on conflict do nothing")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        Ok(Self::locked(tx, user).await?.expect("the row was just made, and rows are never deleted"))
    }

    /// Locks and returns the person's row, if they ever uploaded or were forgotten.
    async fn locked(tx: &mut PgConnection, user: Uuid) -> sqlx::Result<Option<Current>> {
        sqlx::query_as(
            "select upload_id, avatar_url, uploaded_at, set_at, forgotten from avatars.current where user_id = $1 for update",
        )
        .bind(user)
        .fetch_optional(&mut *tx)
        .await
    }

    async fn delete_renditions(&self, user: Uuid, upload: Uuid) -> Result<(), ApplyError> {
        for size in avatars::SIZES {
            storage::delete_quietly(&*self.store, &storage::rendition_path(user, upload, size))
                .await
                .map_err(transient("deleting an old rendition"))?;
        }
        Ok(())
    }

    /// Writes the renditions of an upload unless a previous attempt did. `Ok(false)`: refused
    /// or gone, nothing written.
    async fn render(&self, upload: &AvatarUploaded) -> Result<bool, ApplyError> {
        let (user, id) = (upload.user_id, upload.upload_id);
        let last = storage::rendition_path(user, id, avatars::SIZES[avatars::SIZES.len() - 1]);
        if self.store.head(&last).await.is_ok() {
            return Ok(true);
        }
        let original = match self.store.get(&storage::upload_path(user, id)).await {
            Ok(got) => got.bytes().await.map_err(transient("reading the upload"))?,
            Err(object_store::Error::NotFound { .. }) => {
                tracing::warn!(user.id = %user, upload.id = %id, "avatar upload missing from storage: nothing to render");
                count("rejected", "missing");
                return Ok(false);
            }
            Err(e) => return Err(transient("reading the upload")(e)),
        };
        let max_pixels = self.max_pixels;
        let made = tokio::task::spawn_blocking(move || avatars::renditions(&original, max_pixels))
            .await
            .context("rendering an avatar")
            .map_err(ApplyError::Transient)?;
        let renditions = match made {
            Ok(renditions) => renditions,
            Err(refusal) => {
                tracing::warn!(user.id = %user, upload.id = %id, reason = %refusal, "avatar upload refused");
                count("rejected", refusal.code());
                return Ok(false);
            }
        };
        // The largest first and the smallest last: the smallest present means all are.
        for (size, jpeg) in renditions {
            self.store
                .put(&storage::rendition_path(user, id, size), PutPayload::from(jpeg))
                .await
                .map_err(transient("writing a rendition"))?;
        }
        Ok(true)
    }

    async fn uploaded(&self, tx: &mut PgConnection, event: &Event, upload: &AvatarUploaded) -> Result<(), ApplyError> {
        let user = upload.user_id;
        let current = Self::lock(tx, user).await?;
        let original = storage::upload_path(user, upload.upload_id);
        if current.forgotten || current.uploaded_at.is_some_and(|at| at >= event.occurred_at) {
            count(if current.forgotten { "forgotten" } else { "superseded" }, "");
            return storage::delete_quietly(&*self.store, &original).await.map_err(transient("deleting an upload"));
        }
        if !self.render(upload).await? {
            return storage::delete_quietly(&*self.store, &original).await.map_err(transient("deleting an upload"));
        }
        let avatar_url = self.url(user, upload.upload_id, avatars::SIZES[0]);
        let changed = vec![
            Event::new(
                SOURCE,
                user,
                UserProfileUpdated { avatar_url: Some(avatar_url.as_str().into()), ..Default::default() }.into(),
            )
            .caused_by(event.correlation_id, Some(event.id)),
        ];
        sqlx::query(
            "update avatars.current set upload_id = $2, avatar_url = $3, uploaded_at = $4, set_at = $5 where user_id = $1",
        )
        .bind(user)
        .bind(upload.upload_id)
        .bind(&avatar_url)
        .bind(event.occurred_at)
        .bind(changed[0].occurred_at)
        .execute(&mut *tx)
        .await?;
        // Appended at the end of the batch, like the policies' events (stream locked for the commit only).
        eventstore::append_at_end(tx, changed).await?;
        if let Some(previous) = current.upload_id.filter(|p| *p != upload.upload_id) {
            self.delete_renditions(user, previous).await?;
        }
        storage::delete_quietly(&*self.store, &original).await.map_err(transient("deleting an upload"))?;
        count("processed", "");
        tracing::info!(user.id = %user, upload.id = %upload.upload_id, "avatar rendered");
        Ok(())
    }

    /// Someone set `avatar_url` to something else after the upload's change: its files go.
    async fn profile_changed(&self, tx: &mut PgConnection, event: &Event, url: &Personal) -> Result<(), ApplyError> {
        let user = event.aggregate_id;
        // Most profile changes are by people who never uploaded: nothing to read or write then.
        let Some(current) = Self::locked(tx, user).await? else { return Ok(()) };
        let Some(upload) = current.upload_id else { return Ok(()) };
        if current.set_at.is_some_and(|at| event.occurred_at <= at) {
            return Ok(());
        }
        let url = platform::personal::reveal(&mut *tx, user, "avatar_url", url).await?;
        if current.avatar_url == url {
            return Ok(());
        }
        sqlx::query("update avatars.current set upload_id = null, avatar_url = null where user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        self.delete_renditions(user, upload).await?;
        tracing::info!(user.id = %user, upload.id = %upload, "uploaded avatar replaced: its files deleted");
        Ok(())
    }

    async fn forget(&self, tx: &mut PgConnection, user: Uuid) -> Result<(), ApplyError> {
        Self::lock(tx, user).await?;
        sqlx::query(
            "update avatars.current set upload_id = null, avatar_url = null, forgotten = true where user_id = $1",
        )
        .bind(user)
        .execute(&mut *tx)
        .await?;
        let mut deleted = 0;
        for prefix in storage::user_prefixes(user) {
            deleted +=
                storage::delete_prefix(&*self.store, &prefix).await.map_err(transient("deleting a person's files"))?;
        }
        tracing::info!(user.id = %user, files = deleted, "a deleted person's files removed");
        Ok(())
    }
}

impl Projector for Avatars {
    const RECORDS_EVENTS: bool = true;

    fn spec(&self) -> &'static ConsumerSpec {
        &AVATARS
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        match &event.data {
            EventData::AvatarUploaded(upload) => self.uploaded(tx, event, upload).await,
            EventData::UserProfileUpdated(UserProfileUpdated { avatar_url: Some(url), .. })
                if event.source != SOURCE =>
            {
                self.profile_changed(tx, event, url).await
            }
            EventData::UserDeleted(deleted) => self.forget(tx, deleted.user_id).await,
            _ => Ok(()),
        }
    }
}

impl crate::registry::Build for Avatars {
    fn build(deps: &crate::registry::Deps) -> anyhow::Result<Self> {
        let store = storage::open(&deps.settings)?;
        Ok(Self::new(store, deps.settings.avatar_max_pixels, &deps.settings.avatar_base_url))
    }
}
