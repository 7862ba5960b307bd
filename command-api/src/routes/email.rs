//! E-mail verification and password reset, by single-use expiring tokens sent by mail.
//!
//! A command stores the token's SHA-256 (`auth.email_tokens`), the message in the private mail
//! outbox and a `mail.requested` event, all in one transaction; the mail worker sends it.
//! `forgot-password` answers the same whether or not the address has an account.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use events::{Event, MailTemplate, UserEmailVerified};
use platform::{
    auth::AuthUser,
    error::{ApiError, ValidJson},
    eventstore,
    http::{ClientIp, RequestId},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::consistency_headers;
use crate::{
    AppState, SOURCE, domain, limits, password,
    services::{
        accounts::{self, AccountBy},
        mail::queue_mail,
        sessions::revoke_sessions,
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(verify_email))
        .routes(routes!(resend_verification))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
}

/// Spends a token of `purpose`: returns its user, or a 400 when it is unknown, used or expired.
async fn spend_token(tx: &mut sqlx::PgConnection, token: &str, purpose: &str) -> Result<Uuid, ApiError> {
    let user: Option<Uuid> = sqlx::query_scalar(
        "update auth.email_tokens set used_at = now()
         where token_hash = $1 and purpose = $2 and used_at is null and expires_at > now()
         returning user_id",
    )
    .bind(Sha256::digest(token.trim().as_bytes()).to_vec())
    .bind(purpose)
    .fetch_optional(&mut *tx)
    .await?;
    user.ok_or_else(|| {
        ApiError::bad_request(
            "invalid_or_expired_token",
            "This link is invalid, already used or expired; ask for a new one.",
        )
    })
}

/// A token from a mail.
#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
pub struct TokenRequest {
    /// The `token` of the link.
    #[validate(length(min = 1, max = 200, message = "is required"))]
    #[schema(min_length = 1, max_length = 200)]
    pub token: String,
}

/// Confirm an e-mail address with the token from the verification mail.
#[utoipa::path(post, path = "/auth/verify-email", tag = "auth", request_body = TokenRequest,
    responses((status = 204, description = "Verified"),
              (status = 400, description = "Invalid, used or expired", body = platform::error::Problem, content_type = "application/problem+json")))]
async fn verify_email(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ValidJson(body): ValidJson<TokenRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = state.outbox.begin().await?;
    let user_id = spend_token(&mut tx, &body.token, "verify_email").await?;
    let newly = sqlx::query("update auth.users set email_verified_at = now() where id = $1 and email_verified_at is null and deleted_at is null")
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let mut events = Vec::new();
    if newly == 1 {
        events
            .push(Event::new(SOURCE, user_id, UserEmailVerified { user_id }.into()).caused_by(Some(request_id), None));
        eventstore::append(&mut tx, &mut events).await?;
    }
    tx.commit().await?;
    tracing::info!(user.id = %user_id, "e-mail verified");
    Ok((StatusCode::NO_CONTENT, consistency_headers(events.iter().map(|e| e.id).collect())))
}

/// What the mail endpoints answer, whatever the case.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailQueued {
    /// Always `accepted`.
    pub status: &'static str,
}

/// Send the verification mail again (to the signed-in user, if not verified yet).
#[utoipa::path(post, path = "/auth/verify-email/resend", tag = "auth", security(("bearer" = [])),
    responses((status = 202, body = MailQueued)))]
async fn resend_verification(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
) -> Result<impl IntoResponse, ApiError> {
    limits::check_mail(&state.redis, &ip).await?;
    let mut tx = state.outbox.begin().await?;
    let email: Option<String> = sqlx::query_scalar(
        "select email from auth.users where id = $1 and deleted_at is null and email_verified_at is null",
    )
    .bind(claims.sub)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(email) = email {
        let mut events =
            [queue_mail(&state, &mut tx, claims.sub, &email, MailTemplate::VerifyEmail, request_id).await?];
        eventstore::append(&mut tx, &mut events).await?;
    }
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(MailQueued { status: "accepted" })))
}

/// An address that forgot its password.
#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
pub struct ForgotRequest {
    /// The account's e-mail address.
    #[validate(length(min = 1, max = 254, message = "is required"))]
    #[schema(min_length = 1, max_length = 254)]
    pub email: String,
}

/// Ask for a password-reset mail. Answers the same whether or not the address has an account.
#[utoipa::path(post, path = "/auth/forgot-password", tag = "auth", request_body = ForgotRequest,
    responses((status = 202, body = MailQueued), (status = 429, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn forgot_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    ValidJson(body): ValidJson<ForgotRequest>,
) -> Result<impl IntoResponse, ApiError> {
    limits::check_mail(&state.redis, &ip).await?;
    let mut tx = state.outbox.begin().await?;
    if let Some(account) = accounts::find(&mut *tx, AccountBy::LiveEmail(body.email.trim())).await? {
        let mail = MailTemplate::ResetPassword;
        let mut events = [queue_mail(&state, &mut tx, account.id, &account.email, mail, request_id).await?];
        eventstore::append(&mut tx, &mut events).await?;
    }
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(MailQueued { status: "accepted" })))
}

/// A new password, with the token from the reset mail.
#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
pub struct ResetRequest {
    /// The `token` of the link.
    #[validate(length(min = 1, max = 200, message = "is required"))]
    #[schema(min_length = 1, max_length = 200)]
    pub token: String,
    /// The new password: 8 to 128 characters, not the username or the e-mail address.
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

/// Set a new password with the token from the reset mail. Every session is signed out.
#[utoipa::path(post, path = "/auth/reset-password", tag = "auth", request_body = ResetRequest,
    responses((status = 204, description = "Changed"),
              (status = 400, description = "Invalid, used or expired", body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn reset_password(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin().await?;
    let user_id = spend_token(&mut tx, &body.token, "reset_password").await?;
    let account = accounts::find(&mut *tx, AccountBy::Id(user_id))
        .await?
        .ok_or_else(|| ApiError::bad_request("invalid_token", "This link is invalid, used or expired."))?;
    // Checked after spending so the rules are only revealed to the token holder; a failure
    // rolls the spend back and the link stays usable.
    domain::check_password(&body.new_password, &account.username, &account.email)
        .map_err(|m| ApiError::invalid("new_password", m))?;
    let hash = password::hash(body.new_password).await?;
    sqlx::query("update auth.users set password_hash = $2 where id = $1")
        .bind(user_id)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    let revoked = revoke_sessions(&mut tx, user_id, None).await?;
    tx.commit().await?;
    tracing::info!(user.id = %user_id, sessions_revoked = revoked, "password reset");
    Ok(StatusCode::NO_CONTENT)
}
