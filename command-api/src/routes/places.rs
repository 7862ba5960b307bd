//! Place commands: admins add, change and remove bins and recycling centers; a user keeps up to
//! 20 saved places with at most one default. Every change of a user's places records the whole
//! list (`user.places_changed`), so the read model keeps one default in any delivery order.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use events::{Category, Event, GeoPoint, PlaceKind, PlaceSaved, SavedPlace, UserPlacesChanged};
use platform::{
    auth::{AdminUser, AuthUser},
    error::{ApiError, ApiJson, ApiPath},
    eventstore,
    http::RequestId,
};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    consistency_headers,
    content::{Edited, edited},
};
use crate::{
    AppState, SOURCE,
    content::{
        ContentKind, exists, places,
        rules::{self, Checks},
    },
    services::accounts,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_place))
        .routes(routes!(put_place, delete_place))
        .routes(routes!(add_mine))
        .routes(routes!(put_mine, delete_mine))
}

/// Most saved places a user can keep.
const MAX_SAVED: usize = 20;

/// A bin or center, whole.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PlaceRequest {
    /// A bin or a center.
    pub kind: PlaceKind,
    /// Name, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Address, up to 200 characters.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub address: String,
    /// Latitude, -90 to 90.
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub latitude: f64,
    /// Longitude, -180 to 180.
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub longitude: f64,
    /// Categories it takes (at least one).
    #[schema(min_items = 1)]
    pub categories: Vec<Category>,
    /// Opening hours, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub opening_hours: Option<String>,
    /// Phone number, 3 to 30 characters.
    #[schema(min_length = 3, max_length = 30)]
    pub phone: Option<String>,
}

impl PlaceRequest {
    fn into_event(self, place_id: Uuid) -> Result<PlaceSaved, ApiError> {
        let event = PlaceSaved {
            place_id,
            kind: self.kind,
            name: self.name.trim().into(),
            address: self.address.trim().into(),
            location: GeoPoint { latitude: self.latitude, longitude: self.longitude },
            categories: self.categories,
            opening_hours: self.opening_hours,
            phone: self.phone,
        };
        rules::place(&event).map_err(ApiError::Validation)?;
        Ok(event)
    }
}

/// Add a bin or center (admin only).
#[utoipa::path(post, path = "/admin/locations", tag = "locations-admin", request_body = PlaceRequest, security(("bearer" = [])),
    responses((status = 202, body = Edited, headers(("x-consistency-token" = String))),
              (status = 403, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn create_place(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<PlaceRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let id = Uuid::now_v7();
    let place = body.into_event(id)?;
    let mut tx = state.db.begin().await?;
    let saved = places::save(&mut tx, place, SOURCE, Some(request_id)).await?;
    tx.commit().await?;
    tracing::info!(admin.id = %admin.sub, place.id = %id, "place added");
    Ok(edited(id, saved, false))
}

/// Change a bin or center (admin only).
#[utoipa::path(put, path = "/admin/locations/{id}", tag = "locations-admin", request_body = PlaceRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Place id")),
    responses((status = 202, body = Edited, headers(("x-consistency-token" = String))),
              (status = 404, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn put_place(
    State(state): State<AppState>,
    _admin: AdminUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PlaceRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let place = body.into_event(id)?;
    if !exists(&state.db, ContentKind::Place, id).await? {
        return Err(ApiError::not_found("place_not_found", format!("no place {id}")));
    }
    let mut tx = state.db.begin().await?;
    let saved = places::save(&mut tx, place, SOURCE, Some(request_id)).await?;
    tx.commit().await?;
    Ok(edited(id, saved, false))
}

/// Remove a bin or center (admin only).
#[utoipa::path(delete, path = "/admin/locations/{id}", tag = "locations-admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Place id")),
    responses((status = 202, body = Edited, headers(("x-consistency-token" = String))),
              (status = 404, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn delete_place(
    State(state): State<AppState>,
    _admin: AdminUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    if !exists(&state.db, ContentKind::Place, id).await? {
        return Err(ApiError::not_found("place_not_found", format!("no place {id}")));
    }
    let mut tx = state.db.begin().await?;
    let saved = places::remove(&mut tx, id, SOURCE, Some(request_id)).await?;
    tx.commit().await?;
    Ok(edited(id, saved, true))
}

/// A saved place to add.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SavedPlaceRequest {
    /// My name for it, 1 to 40 characters (e.g. `집`, `회사`).
    #[schema(min_length = 1, max_length = 40)]
    pub label: String,
    /// Latitude, -90 to 90.
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub latitude: f64,
    /// Longitude, -180 to 180.
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub longitude: f64,
    /// Address, up to 200 characters.
    #[schema(max_length = 200)]
    pub address: Option<String>,
    /// Make it my default place (the first place always is).
    #[serde(default)]
    pub is_default: bool,
}

/// Changes to a saved place; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SavedPlaceChange {
    /// New name, 1 to 40 characters.
    #[schema(min_length = 1, max_length = 40)]
    pub label: Option<String>,
    /// New latitude, -90 to 90 (with longitude).
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub latitude: Option<f64>,
    /// New longitude, -180 to 180 (with latitude).
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub longitude: Option<f64>,
    /// New address, up to 200 characters.
    #[schema(max_length = 200)]
    pub address: Option<String>,
    /// `true` makes it the default (the previous default stops being one). Only `true`: a
    /// place stops being the default when another becomes it.
    #[schema(schema_with = only_true)]
    pub is_default: Option<bool>,
}

/// A saved place recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct SavedPlaceAccepted {
    /// Its id.
    pub saved_place_id: Uuid,
}

fn only_true() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Boolean)
        .enum_values(Some([true]))
        .description(Some("`true` makes it the default (the previous default stops being one); only `true`"))
        .build()
}

/// Records the user's whole list after a change, in the same transaction.
async fn record_list(tx: &mut PgConnection, user_id: Uuid, request_id: Uuid) -> Result<Uuid, ApiError> {
    let rows: Vec<(Uuid, String, f64, f64, Option<String>, bool)> = sqlx::query_as(
        "select saved_place_id, label, latitude, longitude, address, is_default from app.saved_places
         where user_id = $1 order by created_at, saved_place_id",
    )
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await?;
    let places = rows
        .into_iter()
        .map(|(saved_place_id, label, latitude, longitude, address, is_default)| SavedPlace {
            saved_place_id,
            label,
            location: GeoPoint { latitude, longitude },
            address,
            is_default,
        })
        .collect();
    let mut events =
        [Event::new(SOURCE, user_id, UserPlacesChanged { user_id, places }.into()).caused_by(Some(request_id), None)];
    eventstore::append(tx, &mut events).await?;
    Ok(events[0].id)
}

/// Save a place of mine.
#[utoipa::path(post, path = "/locations/me", tag = "locations", request_body = SavedPlaceRequest, security(("bearer" = [])),
    responses((status = 202, body = SavedPlaceAccepted, headers(("x-consistency-token" = String))),
              (status = 409, description = "Already 20 places", body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn add_mine(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<SavedPlaceRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let mut checks = Checks::default();
    checks.text("label", &body.label, 1, 40).point(body.latitude, body.longitude);
    if let Some(a) = &body.address {
        checks.text("address", a, 0, 200);
    }
    checks.done().map_err(ApiError::Validation)?;
    let user_id = claims.sub;
    let mut tx = state.db.begin().await?;
    accounts::lock_live(&mut tx, user_id).await?;
    let count: i64 = sqlx::query_scalar("select count(*) from app.saved_places where user_id = $1")
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
    if count as usize >= MAX_SAVED {
        return Err(ApiError::conflict(
            "too_many_places",
            format!("at most {MAX_SAVED} saved places; remove one first"),
        ));
    }
    let make_default = body.is_default || count == 0;
    if make_default {
        sqlx::query("update app.saved_places set is_default = false where user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
    }
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into app.saved_places (saved_place_id, user_id, label, latitude, longitude, address, is_default)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(user_id)
    .bind(body.label.trim())
    .bind(body.latitude)
    .bind(body.longitude)
    .bind(body.address.as_deref().map(str::trim))
    .bind(make_default)
    .execute(&mut *tx)
    .await?;
    let event = record_list(&mut tx, user_id, request_id).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, consistency_headers(vec![event]), Json(SavedPlaceAccepted { saved_place_id: id })))
}

async fn owned(tx: &mut PgConnection, user_id: Uuid, id: Uuid) -> Result<bool, ApiError> {
    let mine: bool =
        sqlx::query_scalar("select exists (select 1 from app.saved_places where saved_place_id = $1 and user_id = $2)")
            .bind(id)
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
    if mine { Ok(true) } else { Err(ApiError::not_found("place_not_found", format!("you have no saved place {id}"))) }
}

/// Change a place of mine.
#[utoipa::path(put, path = "/locations/me/{id}", tag = "locations", request_body = SavedPlaceChange, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Saved place id")),
    responses((status = 202, body = SavedPlaceAccepted, headers(("x-consistency-token" = String))),
              (status = 404, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn put_mine(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SavedPlaceChange>,
) -> Result<impl IntoResponse, ApiError> {
    let mut checks = Checks::default();
    if let Some(l) = &body.label {
        checks.text("label", l, 1, 40);
    }
    match (body.latitude, body.longitude) {
        (Some(lat), Some(lon)) => {
            checks.point(lat, lon);
        }
        (None, None) => {}
        _ => {
            checks.fail("latitude", "latitude and longitude change together");
        }
    }
    if let Some(a) = &body.address {
        checks.text("address", a, 0, 200);
    }
    if body.is_default == Some(false) {
        checks.fail("is_default", "make another place the default instead");
    }
    checks.done().map_err(ApiError::Validation)?;
    let user_id = claims.sub;
    let mut tx = state.db.begin().await?;
    accounts::lock_live(&mut tx, user_id).await?;
    owned(&mut tx, user_id, id).await?;
    if body.is_default == Some(true) {
        sqlx::query("update app.saved_places set is_default = false where user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "update app.saved_places set label = coalesce($2, label), latitude = coalesce($3, latitude),
           longitude = coalesce($4, longitude), address = coalesce($5, address), is_default = is_default or $6
         where saved_place_id = $1",
    )
    .bind(id)
    .bind(body.label.as_deref().map(str::trim))
    .bind(body.latitude)
    .bind(body.longitude)
    .bind(body.address.as_deref().map(str::trim))
    .bind(body.is_default == Some(true))
    .execute(&mut *tx)
    .await?;
    let event = record_list(&mut tx, user_id, request_id).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, consistency_headers(vec![event]), Json(SavedPlaceAccepted { saved_place_id: id })))
}

/// Remove a place of mine. When it was the default, my oldest remaining place becomes it.
#[utoipa::path(delete, path = "/locations/me/{id}", tag = "locations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Saved place id")),
    responses((status = 202, body = SavedPlaceAccepted, headers(("x-consistency-token" = String))),
              (status = 404, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn delete_mine(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let user_id = claims.sub;
    let mut tx = state.db.begin().await?;
    accounts::lock_live(&mut tx, user_id).await?;
    owned(&mut tx, user_id, id).await?;
    sqlx::query("delete from app.saved_places where saved_place_id = $1").bind(id).execute(&mut *tx).await?;
    sqlx::query(
        "update app.saved_places set is_default = true where saved_place_id = (
           select saved_place_id from app.saved_places where user_id = $1 order by created_at, saved_place_id limit 1)
         and not exists (select 1 from app.saved_places where user_id = $1 and is_default)",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    let event = record_list(&mut tx, user_id, request_id).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, consistency_headers(vec![event]), Json(SavedPlaceAccepted { saved_place_id: id })))
}
