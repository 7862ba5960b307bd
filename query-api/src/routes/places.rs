//! Places: bins and recycling centers near a point (nearest first, with the distance in metres,
//! through the earthdistance GiST index on `read.places`), and my saved places.

use axum::{Json, extract::State, http::HeaderMap};
use platform::{
    auth::AuthUser,
    error::{ApiError, ApiQuery, FieldError},
    topology::PLACES,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::guide::CATEGORIES;
use crate::{AppState, consistency::Consistency};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(bins)).routes(routes!(centers)).routes(routes!(my_places))
}

/// Where to look.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NearParams {
    /// Latitude, -90 to 90.
    #[param(required = true, minimum = -90.0, maximum = 90.0)]
    pub latitude: Option<f64>,
    /// Longitude, -180 to 180.
    #[param(required = true, minimum = -180.0, maximum = 180.0)]
    pub longitude: Option<f64>,
    /// Radius in metres, 1 to 20000 (default 1000).
    #[param(minimum = 1.0, maximum = 20000.0)]
    pub radius: Option<f64>,
    /// Only places that take this category.
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<events::Category>)]
    pub category: Option<String>,
    /// At most this many, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// A bin or center, with how far it is.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Place {
    /// Id.
    #[sqlx(rename = "place_id")]
    pub id: Uuid,
    /// `bin` or `center`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// Categories it takes.
    pub categories: Vec<String>,
    /// Opening hours (centers).
    pub opening_hours: Option<String>,
    /// Phone (centers).
    pub phone: Option<String>,
    /// Metres from the point asked about.
    pub distance_m: f64,
}

/// Places near a point, nearest first (one page: `limit` is the page size).
#[derive(Debug, Serialize, ToSchema)]
pub struct Nearby {
    /// The places.
    pub items: Vec<Place>,
    /// Always `null`: the nearest `limit` places are the whole answer.
    pub next_cursor: Option<String>,
}

async fn near(state: &AppState, kind: &str, p: NearParams) -> Result<Json<Nearby>, ApiError> {
    let mut errors = Vec::new();
    match p.latitude {
        None => errors.push(FieldError::new("latitude", "is required")),
        Some(v) => errors.extend(events::GeoPoint::latitude_problem(v).map(|m| FieldError::new("latitude", m))),
    }
    match p.longitude {
        None => errors.push(FieldError::new("longitude", "is required")),
        Some(v) => errors.extend(events::GeoPoint::longitude_problem(v).map(|m| FieldError::new("longitude", m))),
    }
    let radius = p.radius.unwrap_or(1000.0);
    if !(1.0..=20_000.0).contains(&radius) {
        errors.push(FieldError::new("radius", "must be between 1 and 20000 metres"));
    }
    let limit = p.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        errors.push(FieldError::new("limit", "must be between 1 and 100"));
    }
    if let Some(c) = &p.category
        && !CATEGORIES.iter().any(|(_, code, _, _)| code == c)
    {
        let codes: Vec<&str> = CATEGORIES.iter().map(|(_, code, _, _)| *code).collect();
        errors.push(FieldError::new("type", format!("must be one of {}", codes.join(", "))));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (lat, lon) = (
        events::GeoPoint::round(p.latitude.unwrap_or_default()),
        events::GeoPoint::round(p.longitude.unwrap_or_default()),
    );
    let places: Vec<Place> = sqlx::query_as(
        "select * from (
           select place_id, kind, name, address, latitude, longitude, categories, opening_hours, phone,
                  earth_distance(ll_to_earth($1, $2), ll_to_earth(latitude, longitude)) as distance_m
           from read.places
           where not removed and kind = $3
             and earth_box(ll_to_earth($1, $2), $4) @> ll_to_earth(latitude, longitude)
             and ($5::text is null or $5 = any(categories))
         ) p where distance_m <= $4 order by distance_m, place_id limit $6",
    )
    .bind(lat)
    .bind(lon)
    .bind(kind)
    .bind(radius)
    .bind(&p.category)
    .bind(limit)
    .fetch_all(&state.db)
    .await?;
    let items = places.into_iter().map(|p| Place { distance_m: p.distance_m.round(), ..p }).collect();
    Ok(Json(Nearby { items, next_cursor: None }))
}

/// Bins near a point, nearest first.
#[utoipa::path(get, path = "/locations/bins", tag = "locations", params(NearParams),
    responses((status = 200, body = Nearby), (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn bins(State(state): State<AppState>, ApiQuery(p): ApiQuery<NearParams>) -> Result<Json<Nearby>, ApiError> {
    near(&state, "bin", p).await
}

/// Recycling centers near a point, nearest first.
#[utoipa::path(get, path = "/locations/centers", tag = "locations", params(NearParams),
    responses((status = 200, body = Nearby), (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn centers(State(state): State<AppState>, ApiQuery(p): ApiQuery<NearParams>) -> Result<Json<Nearby>, ApiError> {
    near(&state, "center", p).await
}

/// One of my saved places.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct SavedPlace {
    /// Id.
    #[sqlx(rename = "saved_place_id")]
    pub id: Uuid,
    /// My name for it.
    pub label: String,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// Address, if known.
    pub address: Option<String>,
    /// My default place.
    pub is_default: bool,
}

/// My saved places, in the order I added them.
#[utoipa::path(get, path = "/locations/me", tag = "locations", security(("bearer" = [])),
    params(("x-consistency-token" = Option<String>, Header, description = "Token from a command response")),
    responses((status = 200, body = SavedPlaces)))]
async fn my_places(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    consistency: Consistency,
) -> Result<(HeaderMap, Json<SavedPlaces>), ApiError> {
    let freshness = consistency.wait(&state, &[&PLACES]).await?;
    let places: Vec<SavedPlace> = sqlx::query_as(
        "select saved_place_id, label, latitude, longitude, address, is_default from read.saved_places
         where user_id = $1 order by position",
    )
    .bind(claims.sub)
    .fetch_all(&state.db)
    .await?;
    Ok((freshness.headers(), Json(SavedPlaces { items: places, next_cursor: None })))
}

/// My saved places (at most 20: one page).
#[derive(Debug, Serialize, ToSchema)]
pub struct SavedPlaces {
    /// In the order I added them.
    pub items: Vec<SavedPlace>,
    /// Always `null`: every saved place fits in one page.
    pub next_cursor: Option<String>,
}
