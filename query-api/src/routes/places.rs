//! Places: bins and recycling centers near a point (nearest first, with the distance in metres,
//! through the earthdistance GiST index on `read.places`), and my saved places.

use axum::{Json, extract::State, http::HeaderMap};
use platform::{
    auth::AuthUser,
    error::{ApiError, ApiQuery, FieldError},
    topology::PLACES,
};
use readmodels::places::{self, Place, SavedPlace};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::guide::known_category;
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
    if let Some(Err(wrong)) = p.category.as_deref().map(|c| known_category("type", c)) {
        errors.push(wrong);
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let near = places::Near {
        kind,
        latitude: events::GeoPoint::round(p.latitude.unwrap_or_default()),
        longitude: events::GeoPoint::round(p.longitude.unwrap_or_default()),
        radius,
        category: p.category.as_deref(),
        limit,
    };
    let items = places::nearby(&state.db, &near).await?;
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
    let items = places::saved(&state.db, claims.sub).await?;
    Ok((freshness.headers(), Json(SavedPlaces { items, next_cursor: None })))
}

/// My saved places (at most 20: one page).
#[derive(Debug, Serialize, ToSchema)]
pub struct SavedPlaces {
    /// In the order I added them.
    pub items: Vec<SavedPlace>,
    /// Always `null`: every saved place fits in one page.
    pub next_cursor: Option<String>,
}
