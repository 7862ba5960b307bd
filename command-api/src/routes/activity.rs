//! What users do: scan, recycle, check in. Each records one event and answers 202.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use chrono::{DateTime, Utc};
use events::{Category, Event, EventData};
use platform::{
    auth::AuthUser,
    error::{ApiError, ApiJson},
    eventstore,
    http::RequestId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{consistency_headers, invalid, on_constraint, record_one};
use crate::{
    AppState, SOURCE,
    content::places::{RecycleVerdict, judge_recycle},
    domain,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(scan)).routes(routes!(recycle)).routes(routes!(attendance))
}

/// A scan.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ScanRequest {
    /// The waste category the classifier saw.
    pub category: Category,
    /// The item, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub item_name: String,
    /// Classifier confidence, 0 to 1.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub confidence: Option<f64>,
    /// Hex SHA-256 of the image; an image already rewarded pays nothing.
    #[schema(pattern = r"^[0-9A-Fa-f]{64}$")]
    pub image_sha256: Option<String>,
    /// When the scan was taken (default now): not in the future (1 minute of clock skew
    /// allowed) and at most 7 days ago. The server refuses anything else with 422; being
    /// relative to now, the rule is not in the schema.
    pub scanned_at: Option<DateTime<Utc>>,
}

/// Accepted scan, and what to do with the item.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScanAccepted {
    /// The scan's id.
    pub scan_id: Uuid,
    /// The matching guide item, the rule of my default place's region and the nearest bin that
    /// takes the category; null only when it could not be looked up (`GET
    /// /scans/{id}/guidance` on the query API answers it again).
    pub guidance: Option<readmodels::guide::guidance::Guidance>,
}

/// Record a scan. Points (10, up to the daily cap) follow asynchronously.
#[utoipa::path(post, path = "/scans", tag = "activity", request_body = ScanRequest, security(("bearer" = [])),
    responses(
        (status = 202, body = ScanAccepted, headers(("x-consistency-token" = String))),
        (status = 422, body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
async fn scan(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<ScanRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let scan_id = Uuid::now_v7();
    let input = domain::ScanInput {
        category: body.category,
        item_name: body.item_name,
        confidence: body.confidence,
        image_sha256: body.image_sha256,
        scanned_at: body.scanned_at,
    };
    let data = domain::record_scan(claims.sub, scan_id, input, Utc::now()).map_err(invalid)?;
    let guidance = match &data {
        EventData::ScanRecorded(s) => {
            readmodels::guide::guidance::for_scan(&state.db, claims.sub, &s.item_name, s.category.code())
                .await
                .inspect_err(|e| tracing::warn!(error = %e, "scan guidance not looked up"))
                .ok()
        }
        _ => None,
    };
    record_one(&state, claims.sub, request_id, data, serde_json::json!(ScanAccepted { scan_id, guidance })).await
}

/// A recycle.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RecycleRequest {
    /// What was recycled.
    pub category: Category,
    /// The bin used.
    pub bin_id: Option<Uuid>,
    /// The center used.
    pub center_id: Option<Uuid>,
    /// Where (with longitude).
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub latitude: Option<f64>,
    /// Where (with latitude).
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub longitude: Option<f64>,
}

/// Accepted recycle.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecycleAccepted {
    /// The recycle's id.
    pub recycle_id: Uuid,
    /// Whether it earns its 50 points (they follow asynchronously).
    pub points_eligible: bool,
    /// Why: `near_known_place`, `no_location` (send latitude and longitude) or
    /// `no_known_place_nearby`.
    pub reason: &'static str,
    /// The bin or center it was judged near.
    pub place_id: Option<Uuid>,
    /// How far from it, in metres.
    pub distance_m: Option<f64>,
}

/// Record a completed recycle. It is always recorded in the history; it pays 50 points only
/// when its position is within `RECYCLE_MAX_DISTANCE_M` of a known bin or center, and the
/// answer says whether and why (the points policy applies the same rule).
#[utoipa::path(post, path = "/recycles", tag = "activity", request_body = RecycleRequest, security(("bearer" = [])),
    responses(
        (status = 202, body = RecycleAccepted, headers(("x-consistency-token" = String))),
        (status = 422, body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
async fn recycle(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<RecycleRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let recycle_id = Uuid::now_v7();
    let input = domain::RecycleInput {
        category: body.category,
        bin_id: body.bin_id,
        center_id: body.center_id,
        latitude: body.latitude,
        longitude: body.longitude,
    };
    let data = domain::complete_recycle(claims.sub, recycle_id, input).map_err(invalid)?;
    let EventData::RecycleCompleted(recycled) = &data else { unreachable!("complete_recycle returns a recycle") };
    let verdict = judge_recycle(&state.db, recycled.location, state.settings.recycle_max_distance_m).await?;
    let near = match verdict {
        RecycleVerdict::NearKnownPlace(place) => Some(place),
        _ => None,
    };
    let answer = RecycleAccepted {
        recycle_id,
        points_eligible: verdict.eligible(),
        reason: verdict.reason(),
        place_id: near.map(|p| p.place_id),
        distance_m: near.map(|p| p.distance_m.round()),
    };
    record_one(&state, claims.sub, request_id, data, serde_json::json!(answer)).await
}

/// Accepted check-in.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckedIn {
    /// The local date checked in.
    pub date: chrono::NaiveDate,
}

/// Daily check-in (5 points). Once per local day in the app's time zone.
#[utoipa::path(post, path = "/attendance", tag = "activity", security(("bearer" = [])),
    responses(
        (status = 202, body = CheckedIn, headers(("x-consistency-token" = String))),
        (status = 409, description = "Already checked in today", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
async fn attendance(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    RequestId(request_id): RequestId,
) -> Result<impl IntoResponse, ApiError> {
    let data = domain::check_in(claims.sub, Utc::now(), state.settings.app_timezone);
    let EventData::AttendanceCheckedIn(checked) = &data else { unreachable!("check_in returns a check-in") };
    let date = checked.date;
    let mut events = [Event::new(SOURCE, claims.sub, data).caused_by(Some(request_id), None)];
    let mut tx = state.outbox.begin().await?;
    sqlx::query("insert into app.check_ins (user_id, local_date, event_id) values ($1, $2, $3)")
        .bind(claims.sub)
        .bind(date)
        .bind(events[0].id)
        .execute(&mut *tx)
        .await
        .map_err(|e| on_constraint(e, &[("check_ins_pkey", "already_checked_in", "You already checked in today.")]))?;
    eventstore::append(&mut tx, &mut events).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, consistency_headers(vec![events[0].id]), Json(CheckedIn { date })))
}
