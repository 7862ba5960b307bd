//! Reward commands: a user selects one of their unlocked characters; admins edit the badge and
//! character catalogues (`crate::content::rewards`).

use axum::{Json, extract::State, response::IntoResponse};
use events::UserCharacterSelected;
use platform::{
    auth::{AdminUser, AuthUser},
    error::{ApiError, ApiJson, ApiPath},
    http::RequestId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::record_one;
use crate::{
    AppState,
    content::rewards::{self, BadgeContent, CharacterContent, Stored},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(select_character)).routes(routes!(put_badge)).routes(routes!(put_character))
}

/// The character to show.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectCharacter {
    /// One of my unlocked characters (`GET /users/me/characters`).
    #[schema(min_length = 1, max_length = 48, pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")]
    pub character_id: String,
}

/// Select the character shown on my profile and leaderboard entries. Records
/// `user.character_selected`; 409 while the character is locked for me.
#[utoipa::path(put, path = "/users/me/character", tag = "rewards", request_body = SelectCharacter, security(("bearer" = [])),
    responses(
        (status = 202, body = Object, headers(("x-consistency-token" = String))),
        (status = 404, description = "No such character", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not unlocked yet", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
async fn select_character(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<SelectCharacter>,
) -> Result<impl IntoResponse, ApiError> {
    if let Err(problem) = events::check_slug("character_id", &body.character_id) {
        return Err(ApiError::invalid("character_id", &problem));
    }
    let (known, unlocked): (bool, bool) = sqlx::query_as(
        "select exists (select 1 from rewards.characters where id = $2),
                exists (select 1 from rewards.unlocked_characters where user_id = $1 and character_id = $2)",
    )
    .bind(claims.sub)
    .bind(&body.character_id)
    .fetch_one(&state.db)
    .await?;
    if !known {
        return Err(ApiError::not_found("character_not_found", "No such character."));
    }
    if !unlocked {
        return Err(ApiError::conflict(
            "character_locked",
            "This character is not unlocked for you yet; GET /users/me/characters lists yours.",
        ));
    }
    let data = UserCharacterSelected { user_id: claims.sub, character_id: body.character_id.clone() };
    record_one(&state, claims.sub, request_id, data.into(), serde_json::json!({"character_id": body.character_id}))
        .await
}

/// What an edit of the catalogue did.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogueEdit {
    /// The entry.
    pub id: String,
    /// `created`, `changed` or `unchanged`.
    pub result: Stored,
}

/// Create or replace a badge of the catalogue (admin only). Future awards follow it; badges
/// already earned stay.
#[utoipa::path(put, path = "/admin/badges/{id}", tag = "rewards-admin", request_body = BadgeContent, security(("bearer" = [])),
    params(("id" = String, Path, description = "Badge id: lowercase letters, digits and inner hyphens",
        min_length = 1, max_length = 48, pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")),
    responses((status = 200, body = CatalogueEdit),
              (status = 403, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn put_badge(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<BadgeContent>,
) -> Result<Json<CatalogueEdit>, ApiError> {
    rewards::badge(&id, &body).map_err(ApiError::Validation)?;
    let mut conn = state.db.acquire().await?;
    let result = rewards::save_badge(&mut conn, &id, &body).await?;
    tracing::info!(admin.id = %admin.sub, badge = id, ?result, "badge edited");
    Ok(Json(CatalogueEdit { id, result }))
}

/// Create or replace a character of the catalogue (admin only). The badge its rule names must
/// be in the catalogue (404 otherwise).
#[utoipa::path(put, path = "/admin/characters/{id}", tag = "rewards-admin", request_body = CharacterContent, security(("bearer" = [])),
    params(("id" = String, Path, description = "Character id: lowercase letters, digits and inner hyphens",
        min_length = 1, max_length = 48, pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")),
    responses((status = 200, body = CatalogueEdit),
              (status = 403, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 404, description = "The rule names a badge the catalogue lacks", body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn put_character(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CharacterContent>,
) -> Result<Json<CatalogueEdit>, ApiError> {
    rewards::character(&id, &body).map_err(ApiError::Validation)?;
    let mut conn = state.db.acquire().await?;
    let Some(result) = rewards::save_character(&mut conn, &id, &body).await? else {
        return Err(ApiError::not_found("badge_not_found", "The rule's badge_id names no badge of the catalogue."));
    };
    tracing::info!(admin.id = %admin.sub, character = id, ?result, "character edited");
    Ok(Json(CatalogueEdit { id, result }))
}
