//! What to do with a scan: the same guidance `POST /scans` answers, for any scan of mine,
//! including those other services recorded.

use axum::{Json, extract::State, http::HeaderMap};
use platform::{
    auth::AuthUser,
    error::{ApiError, ApiPath},
    topology::{ACTIVITIES, PLACES},
};
use readmodels::{
    activities,
    guide::guidance::{Guidance, for_scan},
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{AppState, consistency::Consistency};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(guidance))
}

/// What to do with one of my scans: the matching guide item, my default place's region rule
/// and the nearest bin that takes the category (as `POST /scans` answers).
#[utoipa::path(get, path = "/scans/{id}/guidance", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The scan's id (`scan_id`)"),
           ("x-consistency-token" = Option<String>, Header, description = "Token from a command response")),
    responses((status = 200, body = Guidance),
              (status = 404, description = "No scan of mine with that id (`scan_not_found`)", body = platform::error::Problem, content_type = "application/problem+json")))]
async fn guidance(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    consistency: Consistency,
) -> Result<(HeaderMap, Json<Guidance>), ApiError> {
    let freshness = consistency.wait(&state, &[&ACTIVITIES, &PLACES]).await?;
    let scan = activities::scan(&state.db, claims.sub, id)
        .await?
        .ok_or_else(|| ApiError::not_found("scan_not_found", format!("you have no scan {id}")))?;
    Ok((freshness.headers(), Json(for_scan(&state.db, claims.sub, &scan.item_name, &scan.category).await?)))
}
