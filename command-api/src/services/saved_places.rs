//! Saved places on the write side (`app.saved_places`): each change runs under the user's lock
//! (`accounts::lock_live`) and records the user's whole list (`user.places_changed`) in the
//! same transaction, so the read model keeps one default whatever order events arrive in.

use events::{Event, GeoPoint, SavedPlace, UserPlacesChanged};
use platform::{error::ApiError, eventstore};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{SOURCE, domain::places::PlaceChange};

/// A saved place as its table holds it.
#[derive(sqlx::FromRow)]
struct Row {
    saved_place_id: Uuid,
    label: String,
    latitude: f64,
    longitude: f64,
    address: Option<String>,
    is_default: bool,
}

/// How many places the user has.
pub async fn count(tx: &mut PgConnection, user_id: Uuid) -> Result<usize, ApiError> {
    let n: i64 = sqlx::query_scalar("select count(*) from app.saved_places where user_id = $1")
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// 404 unless place `id` is the user's.
pub async fn owned(tx: &mut PgConnection, user_id: Uuid, id: Uuid) -> Result<(), ApiError> {
    let mine: bool =
        sqlx::query_scalar("select exists (select 1 from app.saved_places where saved_place_id = $1 and user_id = $2)")
            .bind(id)
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
    if mine { Ok(()) } else { Err(ApiError::not_found("place_not_found", format!("you have no saved place {id}"))) }
}

async fn clear_default(tx: &mut PgConnection, user_id: Uuid) -> Result<(), ApiError> {
    sqlx::query("update app.saved_places set is_default = false where user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Adds a place (trimmed); when it is the default, the previous one stops being it.
pub async fn add(
    tx: &mut PgConnection,
    user_id: Uuid,
    label: &str,
    at: GeoPoint,
    address: Option<&str>,
    is_default: bool,
) -> Result<Uuid, ApiError> {
    if is_default {
        clear_default(tx, user_id).await?;
    }
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into app.saved_places (saved_place_id, user_id, label, latitude, longitude, address, is_default)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(user_id)
    .bind(label.trim())
    .bind(at.latitude)
    .bind(at.longitude)
    .bind(address.map(str::trim))
    .bind(is_default)
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

/// Applies a checked change to place `id`.
pub async fn change(tx: &mut PgConnection, user_id: Uuid, id: Uuid, change: &PlaceChange) -> Result<(), ApiError> {
    let make_default = change.is_default == Some(true);
    if make_default {
        clear_default(tx, user_id).await?;
    }
    sqlx::query(
        "update app.saved_places set label = coalesce($2, label), latitude = coalesce($3, latitude),
           longitude = coalesce($4, longitude), address = coalesce($5, address), is_default = is_default or $6
         where saved_place_id = $1",
    )
    .bind(id)
    .bind(change.label.as_deref().map(str::trim))
    .bind(change.latitude)
    .bind(change.longitude)
    .bind(change.address.as_deref().map(str::trim))
    .bind(make_default)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Removes place `id`; when it was the default, the oldest remaining place becomes it.
pub async fn remove(tx: &mut PgConnection, user_id: Uuid, id: Uuid) -> Result<(), ApiError> {
    sqlx::query("delete from app.saved_places where saved_place_id = $1").bind(id).execute(&mut *tx).await?;
    sqlx::query(
        "update app.saved_places set is_default = true where saved_place_id = (
           select saved_place_id from app.saved_places where user_id = $1 order by created_at, saved_place_id limit 1)
         and not exists (select 1 from app.saved_places where user_id = $1 and is_default)",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records the user's whole list after a change, in the same transaction; the event's id.
pub async fn record_list(tx: &mut PgConnection, user_id: Uuid, request_id: Uuid) -> Result<Uuid, ApiError> {
    let rows: Vec<Row> = sqlx::query_as(
        "select saved_place_id, label, latitude, longitude, address, is_default from app.saved_places
         where user_id = $1 order by created_at, saved_place_id",
    )
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await?;
    let places = rows
        .into_iter()
        .map(|r| SavedPlace {
            saved_place_id: r.saved_place_id,
            label: r.label.into(),
            location: GeoPoint { latitude: r.latitude, longitude: r.longitude },
            address: r.address.map(Into::into),
            is_default: r.is_default,
        })
        .collect();
    let mut events =
        [Event::new(SOURCE, user_id, UserPlacesChanged { user_id, places }.into()).caused_by(Some(request_id), None)];
    eventstore::append(tx, &mut events).await?;
    Ok(events[0].id)
}
