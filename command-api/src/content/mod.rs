//! The content write side: guide items, questions, regional rules and places, each recorded as
//! an event only when it changed (a hash per piece in `app.guide_content`). Used by the admin
//! commands and by `ecoctl seed`; [`places`] adds the places' own table.

pub mod places;
pub mod rewards;
pub mod rules;

/// Kinds of guide content, as stored in `app.guide_content.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// An item.
    Item,
    /// A question of the FAQ.
    Faq,
    /// A region's rules.
    Region,
    /// A bin or recycling center.
    Place,
}

impl ContentKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Item => "item",
            Self::Faq => "faq",
            Self::Region => "region",
            Self::Place => "place",
        }
    }
}

/// What [`save`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// New content; the event recorded.
    Created(uuid::Uuid),
    /// Changed content; the event recorded.
    Changed(uuid::Uuid),
    /// Same as what is there: no event.
    Unchanged,
}

impl Saved {
    /// The event recorded, if any.
    pub fn event_id(self) -> Option<uuid::Uuid> {
        match self {
            Self::Created(id) | Self::Changed(id) => Some(id),
            Self::Unchanged => None,
        }
    }

    /// `created`, `changed` or `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created(_) => "created",
            Self::Changed(_) => "changed",
            Self::Unchanged => "unchanged",
        }
    }
}

/// Records a content change (or removal, when `data` is a `*_removed` event) in the caller's
/// transaction: `app.guide_content` keeps a hash of each piece's current state, and an event is
/// appended only when that state changes, so loading the same content twice writes nothing.
pub async fn save(
    conn: &mut sqlx::PgConnection,
    kind: ContentKind,
    id: uuid::Uuid,
    data: events::EventData,
    source: &str,
    correlation_id: Option<uuid::Uuid>,
) -> sqlx::Result<Saved> {
    use sha2::{Digest, Sha256};
    let removed = matches!(
        data,
        events::EventData::GuideItemRemoved(_)
            | events::EventData::GuideFaqRemoved(_)
            | events::EventData::PlaceRemoved(_)
    );
    let hash: String =
        Sha256::digest(data.to_json().to_string().as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let previous: Option<String> =
        sqlx::query_scalar("select content_hash from app.guide_content where kind = $1 and id = $2 for update")
            .bind(kind.as_str())
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    if previous.as_deref() == Some(hash.as_str()) {
        return Ok(Saved::Unchanged);
    }
    sqlx::query(
        "insert into app.guide_content (kind, id, content_hash, removed) values ($1, $2, $3, $4)
         on conflict (kind, id) do update set content_hash = excluded.content_hash, removed = excluded.removed",
    )
    .bind(kind.as_str())
    .bind(id)
    .bind(&hash)
    .bind(removed)
    .execute(&mut *conn)
    .await?;
    let mut event = [events::Event::new(source, id, data).caused_by(correlation_id, None)];
    platform::eventstore::append(conn, &mut event).await?;
    let id = event[0].id;
    Ok(if previous.is_some() { Saved::Changed(id) } else { Saved::Created(id) })
}

/// 404 unless live content of `kind` with `id` exists (what every admin edit of existing
/// content checks first).
pub async fn must_exist(
    db: impl sqlx::PgExecutor<'_>,
    kind: ContentKind,
    id: uuid::Uuid,
) -> Result<(), platform::error::ApiError> {
    if exists(db, kind, id).await? {
        return Ok(());
    }
    let (code, what) = match kind {
        ContentKind::Item => ("item_not_found", format!("no item {id}; add items with POST /admin/recycle/items")),
        ContentKind::Faq => ("faq_not_found", format!("no question {id}")),
        ContentKind::Region => ("region_not_found", format!("no region {id}")),
        ContentKind::Place => ("place_not_found", format!("no place {id}")),
    };
    Err(platform::error::ApiError::not_found(code, what))
}

/// Whether live (not removed) content of `kind` with `id` exists.
pub async fn exists(db: impl sqlx::PgExecutor<'_>, kind: ContentKind, id: uuid::Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("select exists (select 1 from app.guide_content where kind = $1 and id = $2 and not removed)")
        .bind(kind.as_str())
        .bind(id)
        .fetch_one(db)
        .await
}
