//! Admin-only commands.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use events::{Event, PointsEarned, PointsReason};
use platform::{
    auth::AdminUser,
    error::{ApiError, ValidJson},
    eventstore,
    http::RequestId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::consistency_headers;
use crate::{AppState, SOURCE};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(bonus))
}

/// A bonus grant.
#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
pub struct BonusRequest {
    /// Who receives it.
    pub user_id: Uuid,
    /// Points, 1 to 10000.
    #[validate(range(min = 1, max = 10000, message = "must be between 1 and 10000"))]
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(deserialize_with = "platform::error::json_integer")]
    pub amount: i64,
}

/// Accepted grant.
#[derive(Debug, Serialize, ToSchema)]
pub struct BonusGranted {
    /// The `points.earned` event recorded.
    pub event_id: Uuid,
}

/// Grant bonus points (admin only). Records `points.earned` with `reason: bonus`.
#[utoipa::path(post, path = "/admin/points/bonus", tag = "admin", request_body = BonusRequest, security(("bearer" = [])),
    responses(
        (status = 202, body = BonusGranted, headers(("x-consistency-token" = String))),
        (status = 403, body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
async fn bonus(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    RequestId(request_id): RequestId,
    ValidJson(body): ValidJson<BonusRequest>,
) -> Result<impl IntoResponse, ApiError> {
    if !super::is_live(&state.db, body.user_id).await? {
        return Err(ApiError::not_found("user_not_found", "No such user."));
    }
    let command_id = Uuid::now_v7();
    let data = PointsEarned {
        user_id: body.user_id,
        amount: body.amount,
        reason: PointsReason::Bonus,
        source_event_id: command_id,
    };
    let mut events = [Event::new(SOURCE, body.user_id, data.into()).caused_by(Some(request_id), Some(command_id))];
    let mut tx = state.outbox.begin().await?;
    eventstore::append(&mut tx, &mut events).await?;
    tx.commit().await?;
    tracing::info!(admin.id = %admin.sub, user.id = %body.user_id, amount = body.amount, "bonus granted");
    Ok((StatusCode::ACCEPTED, consistency_headers(vec![events[0].id]), Json(BonusGranted { event_id: events[0].id })))
}
