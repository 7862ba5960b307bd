//! Who am I, and my profile.

use axum::{Json, extract::State, http::HeaderMap};
use chrono::{DateTime, Utc};
use platform::{
    auth::{AuthUser, Role},
    error::ApiError,
    topology::PROFILES,
};
use readmodels::profiles::{self, Profile};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{AppState, consistency::Consistency};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me)).routes(routes!(auth_me))
}

/// Reads a profile: from this process's memory unless `fresh_required`, else as
/// [`readmodels::profiles::load`] does (refilling the memory either way).
pub async fn load_profile(state: &AppState, user_id: Uuid, fresh_required: bool) -> Result<Option<Profile>, ApiError> {
    let load = || profiles::load(&state.db, &state.redis, user_id, fresh_required);
    Ok(state.hot.profiles.get_or_load(user_id, |_| !fresh_required, load).await?)
}

/// My profile.
///
/// With `X-Consistency-Token`, waits until the profile includes that command's events.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])),
    params(("x-consistency-token" = Option<String>, Header, description = "Token from a command response")),
    responses(
        (status = 200, body = Profile, headers(("x-consistency" = String, description = "`fresh` or `stale`, when a token was sent"))),
        (status = 401, body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No profile (yet)", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
async fn me(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    consistency: Consistency,
) -> Result<(HeaderMap, Json<Profile>), ApiError> {
    let freshness = consistency.wait(&state, &[&PROFILES]).await?;
    let profile = load_profile(&state, claims.sub, freshness.requires_primary()).await?.ok_or_else(|| {
        ApiError::not_found(
            "profile_not_found",
            "This account has no profile yet; retry with the X-Consistency-Token of your last command.",
        )
    })?;
    let today = Utc::now().with_timezone(&state.settings.app_timezone).date_naive();
    Ok((freshness.headers(), Json(profile.as_of(today))))
}

/// Who the token belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// User id (`sub`).
    pub id: Uuid,
    /// Handle.
    pub username: String,
    /// Display name, once the profile exists.
    pub nickname: Option<String>,
    /// `user` or `admin`.
    #[schema(value_type = String)]
    pub role: Role,
    /// When this access token expires.
    pub token_expires_at: DateTime<Utc>,
}

/// Who the token belongs to.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    params(("x-consistency-token" = Option<String>, Header, description = "Token from a command response")),
    responses(
        (status = 200, body = Me),
        (status = 401, body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
async fn auth_me(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    consistency: Consistency,
) -> Result<(HeaderMap, Json<Me>), ApiError> {
    let freshness = consistency.wait(&state, &[&PROFILES]).await?;
    let profile = load_profile(&state, claims.sub, freshness.requires_primary()).await?;
    let me = Me {
        id: claims.sub,
        username: claims.username,
        nickname: profile.map(|p| p.nickname),
        role: claims.role,
        token_expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or_default(),
    };
    Ok((freshness.headers(), Json(me)))
}
