//! Place commands: admins add, change and remove bins and recycling centers; a user keeps up to
//! 20 saved places with at most one default. Every change of a user's places records the whole
//! list (`user.places_changed`), so the read model keeps one default in any delivery order.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use events::{Category, GeoPoint, PlaceKind, PlaceSaved};
use platform::{
    auth::{AdminUser, AuthUser},
    error::{ApiError, ApiJson, ApiPath},
    http::RequestId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    consistency_headers,
    content::{Edited, edited},
};
use crate::{
    AppState, SOURCE,
    content::{ContentKind, must_exist, places, rules},
    domain,
    services::{accounts, saved_places},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_place))
        .routes(routes!(put_place, delete_place))
        .routes(routes!(add_mine))
        .routes(routes!(put_mine, delete_mine))
}

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
    let mut tx = state.outbox.begin().await?;
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
    must_exist(&state.db, ContentKind::Place, id).await?;
    let mut tx = state.outbox.begin().await?;
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
    must_exist(&state.db, ContentKind::Place, id).await?;
    let mut tx = state.outbox.begin().await?;
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
    domain::places::check_new(&body.label, body.latitude, body.longitude, body.address.as_deref())
        .map_err(ApiError::Validation)?;
    let user_id = claims.sub;
    let mut tx = state.outbox.begin().await?;
    accounts::lock_live(&mut tx, user_id).await?;
    let existing = saved_places::count(&mut tx, user_id).await?;
    if !domain::places::room_for_another(existing) {
        let max = domain::places::MAX_SAVED;
        return Err(ApiError::conflict("too_many_places", format!("at most {max} saved places; remove one first")));
    }
    let at = GeoPoint { latitude: body.latitude, longitude: body.longitude };
    let is_default = domain::places::new_place_is_default(body.is_default, existing);
    let id = saved_places::add(&mut tx, user_id, &body.label, at, body.address.as_deref(), is_default).await?;
    let event = saved_places::record_list(&mut tx, user_id, request_id).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, consistency_headers(vec![event]), Json(SavedPlaceAccepted { saved_place_id: id })))
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
    let change = domain::places::PlaceChange {
        label: body.label,
        latitude: body.latitude,
        longitude: body.longitude,
        address: body.address,
        is_default: body.is_default,
    };
    domain::places::check_change(&change).map_err(ApiError::Validation)?;
    let user_id = claims.sub;
    let mut tx = state.outbox.begin().await?;
    accounts::lock_live(&mut tx, user_id).await?;
    saved_places::owned(&mut tx, user_id, id).await?;
    saved_places::change(&mut tx, user_id, id, &change).await?;
    let event = saved_places::record_list(&mut tx, user_id, request_id).await?;
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
    let mut tx = state.outbox.begin().await?;
    accounts::lock_live(&mut tx, user_id).await?;
    saved_places::owned(&mut tx, user_id, id).await?;
    saved_places::remove(&mut tx, user_id, id).await?;
    let event = saved_places::record_list(&mut tx, user_id, request_id).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, consistency_headers(vec![event]), Json(SavedPlaceAccepted { saved_place_id: id })))
}
