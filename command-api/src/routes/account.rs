//! The signed-in user's account: profile, settings, password, deletion.

use axum::{extract::State, http::StatusCode, response::IntoResponse};
use chrono::{DateTime, Utc};
use events::{Event, UserDeleted};
use platform::{
    auth::AuthUser,
    error::{ApiError, ApiJson},
    eventstore,
    http::RequestId,
};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{consistency_headers, invalid, record_one};
use crate::{
    AppState, SOURCE, domain, password,
    services::{
        accounts::{self, AccountBy},
        sessions::revoke_sessions,
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(update_profile, delete_account))
        .routes(routes!(update_settings))
        .routes(routes!(change_password))
}

/// Profile fields to change (at least one).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProfileRequest {
    /// Display name, 1 to 40 characters.
    #[schema(min_length = 1, max_length = 40)]
    pub nickname: Option<String>,
    /// About me, up to 500 characters; empty clears it.
    #[schema(max_length = 500)]
    pub bio: Option<String>,
    /// Picture URL (http or https), up to 2048 characters; empty clears it.
    #[schema(
        max_length = 2048,
        pattern = r"^(?:https?://[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*)?$"
    )]
    pub avatar_url: Option<String>,
}

/// Change my profile.
#[utoipa::path(patch, path = "/users/me", tag = "account", request_body = ProfileRequest, security(("bearer" = [])),
    responses((status = 202, description = "Recorded", headers(("x-consistency-token" = String))),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn update_profile(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<ProfileRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let changes = domain::ProfileChanges { nickname: body.nickname, bio: body.bio, avatar_url: body.avatar_url };
    let data = domain::update_profile(changes).map_err(invalid)?;
    record_one(&state, claims.sub, request_id, data, serde_json::json!({})).await
}

/// Settings to change (at least one).
#[derive(Debug, Deserialize, ToSchema)]
pub struct SettingsRequest {
    /// Push notifications.
    pub notification_enabled: Option<bool>,
    /// The app's language.
    #[schema(schema_with = language_schema)]
    pub language: Option<String>,
    /// The app's theme.
    #[schema(schema_with = theme_schema)]
    pub theme: Option<String>,
}

fn language_schema() -> utoipa::openapi::Object {
    platform::openapi::string_enum(&domain::LANGUAGES, "The app's language")
}

fn theme_schema() -> utoipa::openapi::Object {
    platform::openapi::string_enum(&domain::THEMES, "The app's theme")
}

/// Change my settings.
#[utoipa::path(patch, path = "/users/me/settings", tag = "account", request_body = SettingsRequest, security(("bearer" = [])),
    responses((status = 202, description = "Recorded", headers(("x-consistency-token" = String))),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn update_settings(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<SettingsRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let data = domain::update_settings(body.notification_enabled, body.language, body.theme).map_err(invalid)?;
    record_one(&state, claims.sub, request_id, data, serde_json::json!({})).await
}

/// A password change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordRequest {
    /// The password now.
    #[schema(max_length = 1024)]
    pub current_password: String,
    /// The new password: 8 to 128 characters, not the username or the e-mail address.
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

/// Change my password. Every other session is signed out.
#[utoipa::path(patch, path = "/users/me/password", tag = "account", request_body = PasswordRequest, security(("bearer" = [])),
    responses((status = 204, description = "Changed"),
              (status = 401, description = "Current password wrong", body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn change_password(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ApiJson(body): ApiJson<PasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let account = accounts::find(&state.db, AccountBy::LiveId(claims.sub))
        .await?
        .ok_or_else(|| ApiError::not_found("account_not_found", "This account no longer exists."))?;
    if account.password_hash.is_some() && !password::verify(body.current_password, account.password_hash).await? {
        return Err(ApiError::InvalidCredentials("The current password is wrong.".into()));
    }
    domain::check_password(&body.new_password, &account.username, &account.email)
        .map_err(|m| ApiError::invalid("new_password", m))?;
    let hash = password::hash(body.new_password).await?;
    let mut tx = state.db.begin().await?;
    sqlx::query("update auth.users set password_hash = $2 where id = $1")
        .bind(claims.sub)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    let revoked = revoke_sessions(&mut tx, claims.sub, claims.sid).await?;
    tx.commit().await?;
    tracing::info!(user.id = %claims.sub, sessions_revoked = revoked, "password changed");
    Ok(StatusCode::NO_CONTENT)
}

/// Confirmation of a deletion.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DeleteRequest {
    /// The password, for accounts that have one.
    #[schema(max_length = 1024)]
    pub password: Option<String>,
}

/// Delete my account. Every read model and cache forgets me; my e-mail address is free again.
#[utoipa::path(delete, path = "/users/me", tag = "account", request_body = DeleteRequest, security(("bearer" = [])),
    responses((status = 202, description = "Deleted; read models follow", headers(("x-consistency-token" = String))),
              (status = 401, description = "Password wrong", body = platform::error::Problem, content_type = "application/problem+json")))]
async fn delete_account(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<DeleteRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let stored: Option<Option<String>> =
        sqlx::query_scalar("select password_hash from auth.users where id = $1 and deleted_at is null")
            .bind(claims.sub)
            .fetch_optional(&state.db)
            .await?;
    let stored = stored.ok_or_else(|| ApiError::not_found("account_not_found", "This account no longer exists."))?;
    if stored.is_some() {
        let given = body.password.ok_or_else(|| ApiError::invalid("password", "is required to delete an account"))?;
        if !password::verify(given, stored).await? {
            return Err(ApiError::InvalidCredentials("The password is wrong.".into()));
        }
    }
    let mut events =
        [Event::new(SOURCE, claims.sub, UserDeleted { user_id: claims.sub }.into()).caused_by(Some(request_id), None)];
    let mut tx = state.outbox.begin().await?;
    // Soft delete: the row stays for audit, the unique indexes (live accounts only) free the
    // e-mail and username, and personal data that identifies the person is scrubbed.
    sqlx::query(
        "update auth.users set deleted_at = now(), email = 'deleted+' || id || '@invalid', username = 'deleted-' || id,
            password_hash = null
         where id = $1",
    )
    .bind(claims.sub)
    .execute(&mut *tx)
    .await?;
    // The providers' ids for the person, and the address and link of mail not sent yet (the
    // mailer skips a message stamped sent; retention deletes the record).
    sqlx::query("delete from auth.identities where user_id = $1").bind(claims.sub).execute(&mut *tx).await?;
    sqlx::query(
        "update auth.mail_outbox set recipient = null, link = null, sent_at = coalesce(sent_at, now()) where user_id = $1",
    )
    .bind(claims.sub)
    .execute(&mut *tx)
    .await?;
    revoke_sessions(&mut tx, claims.sub, None).await?;
    // Where the person kept places is theirs too; read models forget them on `user.deleted`.
    sqlx::query("delete from app.saved_places where user_id = $1").bind(claims.sub).execute(&mut *tx).await?;
    // Push device tokens too; the notifier forgets its record of pushes on `user.deleted`.
    sqlx::query("delete from app.devices where user_id = $1").bind(claims.sub).execute(&mut *tx).await?;
    eventstore::append(&mut tx, &mut events).await?;
    tx.commit().await?;
    let expires_at: DateTime<Utc> = DateTime::from_timestamp(claims.exp, 0).unwrap_or_else(Utc::now);
    state.denylist.revoke(claims.jti, claims.sub, expires_at).await?;
    tracing::info!(user.id = %claims.sub, "account deleted");
    Ok((StatusCode::ACCEPTED, consistency_headers(vec![events[0].id])))
}
