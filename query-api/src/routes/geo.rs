//! Geocoding through the Kakao Local API (see `crate::geocoding` for the cache, timeout and
//! circuit breaker). These are reads, so they live here; they are POST where the input is an
//! address or a position the client would rather not put in a URL.

use std::time::Duration;

use axum::{Json, extract::State};
use platform::error::{ApiError, ApiJson, ApiQuery, FieldError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{AppState, geocoding::region_code};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(geocode)).routes(routes!(reverse)).routes(routes!(keyword))
}

const DAY: Duration = Duration::from_secs(24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);

fn number(v: &Value) -> Option<f64> {
    v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_f64())
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// An address to look up.
#[derive(Debug, Deserialize, ToSchema)]
pub struct GeocodeRequest {
    /// The address, 2 to 200 characters, e.g. `서울 중구 세종대로 110`.
    #[schema(min_length = 2, max_length = 200)]
    pub address: String,
}

/// Where an address is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Geocoded {
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// The (lot-number) address as Kakao knows it.
    pub address: String,
    /// The road address, if there is one.
    pub road_address: Option<String>,
    /// Our region code (`seoul`, …), for `GET /recycle/rules/{region}`.
    pub region: Option<String>,
}

/// Address → coordinates (cached 24 h).
#[utoipa::path(post, path = "/locations/geocode", tag = "locations", request_body = GeocodeRequest,
    responses((status = 200, body = Geocoded),
              (status = 404, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 503, description = "Kakao down, over quota, or not configured", body = platform::error::Problem, content_type = "application/problem+json")))]
async fn geocode(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<GeocodeRequest>,
) -> Result<Json<Geocoded>, ApiError> {
    let address = body.address.split_whitespace().collect::<Vec<_>>().join(" ");
    let n = address.chars().count();
    if !(2..=200).contains(&n) {
        return Err(ApiError::invalid("address", "must be 2 to 200 characters"));
    }
    let found: Option<Geocoded> = state
        .kakao
        .get("addr", DAY, "/v2/local/search/address.json", &[("query", address.clone())], |body| {
            let doc = body["documents"].get(0)?;
            Some(Geocoded {
                latitude: number(&doc["y"])?,
                longitude: number(&doc["x"])?,
                address: text(&doc["address_name"])?,
                road_address: text(&doc["road_address"]["address_name"]),
                region: text(&doc["address"]["region_1depth_name"])
                    .or_else(|| text(&doc["road_address"]["region_1depth_name"]))
                    .and_then(|r| region_code(&r).map(str::to_owned)),
            })
        })
        .await?;
    found.map(Json).ok_or_else(|| ApiError::not_found("address_not_found", format!("no place found for `{address}`")))
}

/// A position to name.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReverseRequest {
    /// Latitude, -90 to 90.
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub latitude: f64,
    /// Longitude, -180 to 180.
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub longitude: f64,
}

/// What is at a position.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Reversed {
    /// The (lot-number) address.
    pub address: String,
    /// The road address, if there is one.
    pub road_address: Option<String>,
    /// The metropolitan city or province, as Kakao names it (`서울`).
    pub region_name: String,
    /// Our region code (`seoul`, …), for `GET /recycle/rules/{region}`.
    pub region: Option<String>,
}

fn check_point(errors: &mut Vec<FieldError>, lat: f64, lon: f64, names: (&str, &str)) {
    errors.extend(events::GeoPoint::latitude_problem(lat).map(|m| FieldError::new(names.0, m)));
    errors.extend(events::GeoPoint::longitude_problem(lon).map(|m| FieldError::new(names.1, m)));
}

/// Coordinates → address and region (cached 24 h, per ~1 m).
#[utoipa::path(post, path = "/locations/reverse", tag = "locations", request_body = ReverseRequest,
    responses((status = 200, body = Reversed),
              (status = 404, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 503, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn reverse(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ReverseRequest>,
) -> Result<Json<Reversed>, ApiError> {
    let mut errors = Vec::new();
    check_point(&mut errors, body.latitude, body.longitude, ("latitude", "longitude"));
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let query = [("x", format!("{:.5}", body.longitude)), ("y", format!("{:.5}", body.latitude))];
    let found: Option<Reversed> = state
        .kakao
        .get("rev", DAY, "/v2/local/geo/coord2address.json", &query, |body| {
            let doc = body["documents"].get(0)?;
            let region_name = text(&doc["address"]["region_1depth_name"])?;
            Some(Reversed {
                address: text(&doc["address"]["address_name"])?,
                road_address: text(&doc["road_address"]["address_name"]),
                region: region_code(&region_name).map(str::to_owned),
                region_name,
            })
        })
        .await?;
    found.map(Json).ok_or_else(|| ApiError::not_found("address_not_found", "no address at this position"))
}

/// A keyword search near a point.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeywordParams {
    /// What to look for, 1 to 100 characters (default `재활용센터`).
    #[param(min_length = 1, max_length = 100)]
    pub q: Option<String>,
    /// Latitude, -90 to 90.
    #[param(required = true, minimum = -90.0, maximum = 90.0)]
    pub latitude: Option<f64>,
    /// Longitude, -180 to 180.
    #[param(required = true, minimum = -180.0, maximum = 180.0)]
    pub longitude: Option<f64>,
    /// Radius in metres, 1 to 20000 (default 5000).
    #[param(minimum = 1, maximum = 20000)]
    pub radius: Option<u32>,
}

/// A place Kakao knows.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KakaoPlace {
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Road address.
    pub road_address: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// Metres from the point.
    pub distance_m: Option<f64>,
    /// Kakao Map page.
    pub url: Option<String>,
}

/// Places found by keyword.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeywordResult {
    /// Nearest first.
    pub items: Vec<KakaoPlace>,
    /// Always `null`: one page of Kakao's answers.
    pub next_cursor: Option<String>,
}

/// Kakao's keyword-search documents as places (documents without a name or position are skipped).
fn kakao_places(body: serde_json::Value) -> Vec<KakaoPlace> {
    body["documents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            Some(KakaoPlace {
                name: text(&d["place_name"])?,
                address: text(&d["address_name"]).unwrap_or_default(),
                road_address: text(&d["road_address_name"]),
                phone: text(&d["phone"]),
                latitude: number(&d["y"])?,
                longitude: number(&d["x"])?,
                distance_m: number(&d["distance"]),
                url: text(&d["place_url"]),
            })
        })
        .collect()
}

/// Search recycling centers (or anything) by keyword near a point, through Kakao (cached 1 h).
#[utoipa::path(get, path = "/locations/keyword", tag = "locations", params(KeywordParams),
    responses((status = 200, body = KeywordResult),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 503, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn keyword(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<KeywordParams>,
) -> Result<Json<KeywordResult>, ApiError> {
    let q = p.q.as_deref().map(str::trim).unwrap_or("재활용센터").to_owned();
    let mut errors = Vec::new();
    if !(1..=100).contains(&q.chars().count()) {
        errors.push(FieldError::new("q", "must be 1 to 100 characters"));
    }
    let (Some(lat), Some(lon)) = (p.latitude, p.longitude) else {
        return Err(ApiError::invalid("latitude", "latitude and longitude are required"));
    };
    check_point(&mut errors, lat, lon, ("latitude", "longitude"));
    let radius = p.radius.unwrap_or(5000);
    if !(1..=20_000).contains(&radius) {
        errors.push(FieldError::new("radius", "must be between 1 and 20000 metres"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let query = [
        ("query", q),
        ("x", format!("{lon:.5}")),
        ("y", format!("{lat:.5}")),
        ("radius", radius.to_string()),
        ("sort", "distance".to_owned()),
    ];
    let places = state.kakao.get("kw", HOUR, "/v2/local/search/keyword.json", &query, kakao_places).await?;
    Ok(Json(KeywordResult { items: places, next_cursor: None }))
}
