//! Notification commands: push devices (kept on the command side only: a device token is
//! personal data and never travels in an event) and read marks of the in-app feed.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use events::UserNotificationsRead;
use platform::{
    auth::AuthUser,
    error::{ApiError, ApiJson, ApiPath},
    http::RequestId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::record_one;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(put_device, delete_device)).routes(routes!(mark_read))
}

/// A device's platform.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Android.
    Android,
    /// iOS.
    Ios,
    /// A browser.
    Web,
}

/// The device being registered.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRequest {
    /// Its platform.
    pub platform: Platform,
}

/// A registered device.
#[derive(Debug, Serialize, ToSchema)]
pub struct Device {
    /// Its platform.
    pub platform: Platform,
    /// `created` or `updated`.
    pub result: String,
}

fn check_token(token: &str) -> Result<(), ApiError> {
    let ok = (1..=512).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.' | b'-'));
    if ok { Ok(()) } else { Err(ApiError::invalid("token", "must be a push token: letters, digits and : _ . -")) }
}

/// Register (or move to me) a device for push notifications, with the token the provider
/// (Firebase Cloud Messaging) gave the app. A token registered by someone else before moves to
/// me: a device belongs to whoever signed in on it last.
#[utoipa::path(put, path = "/users/me/devices/{token}", tag = "notifications", request_body = DeviceRequest, security(("bearer" = [])),
    params(("token" = String, Path, description = "The provider's registration token", pattern = r"^[A-Za-z0-9:_.\-]{1,512}$")),
    responses((status = 200, body = Device),
              (status = 404, description = "The account no longer exists", body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn put_device(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ApiPath(token): ApiPath<String>,
    ApiJson(body): ApiJson<DeviceRequest>,
) -> Result<Json<Device>, ApiError> {
    check_token(&token)?;
    let platform = serde_json::to_value(body.platform).ok().and_then(|v| v.as_str().map(str::to_owned));
    let created: bool = sqlx::query_scalar(
        "insert into app.devices (token, user_id, platform)
         select $1, $2, $3 where exists (select 1 from auth.users where id = $2 and deleted_at is null)
         on conflict (token) do update set user_id = excluded.user_id, platform = excluded.platform, updated_at = now()
         returning (xmax = 0)",
    )
    .bind(&token)
    .bind(claims.sub)
    .bind(platform)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found("account_not_found", "This account no longer exists."))?;
    Ok(Json(Device { platform: body.platform, result: if created { "created" } else { "updated" }.into() }))
}

/// Remove one of my devices: nothing is pushed to it any more.
#[utoipa::path(delete, path = "/users/me/devices/{token}", tag = "notifications", security(("bearer" = [])),
    params(("token" = String, Path, description = "The provider's registration token", pattern = r"^[A-Za-z0-9:_.\-]{1,512}$")),
    responses((status = 204, description = "Removed"),
              (status = 404, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn delete_device(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ApiPath(token): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    check_token(&token)?;
    let removed = sqlx::query("delete from app.devices where token = $1 and user_id = $2")
        .bind(&token)
        .bind(claims.sub)
        .execute(&state.db)
        .await?;
    if removed.rows_affected() == 0 {
        return Err(ApiError::not_found("device_not_found", "No such device of yours."));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// How far I have read.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// The newest notification read (an `id` of `GET /users/me/notifications`): it and every
    /// older one count as read.
    pub up_to_id: Uuid,
}

/// Mark my notifications read, up to and including one of them. Records
/// `user.notifications_read`; 404 when the id is not in my feed.
#[utoipa::path(post, path = "/users/me/notifications/read", tag = "notifications", request_body = MarkRead, security(("bearer" = [])),
    responses((status = 202, body = Object, headers(("x-consistency-token" = String))),
              (status = 404, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn mark_read(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<MarkRead>,
) -> Result<impl IntoResponse, ApiError> {
    // The feed is a read model; a command that names one of its items checks it is there.
    if !readmodels::notifications::exists(&state.db, claims.sub, body.up_to_id).await? {
        return Err(ApiError::not_found("notification_not_found", "No such notification in your feed."));
    }
    let data = UserNotificationsRead { user_id: claims.sub, up_to_id: body.up_to_id };
    record_one(&state, claims.sub, request_id, data.into(), serde_json::json!({"up_to_id": body.up_to_id})).await
}
