//! Sign-up, sign-in and the public keys.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
};
use chrono::{DateTime, Utc};
use events::Event;
use platform::{
    auth::{AuthUser, Role, TokenError, TokenType},
    error::{ApiError, ApiJson, ValidJson},
    http::{ClientIp, RequestId},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{consistency_headers, invalid};
use crate::services::sessions::Tokens;
use crate::{
    AppState, SOURCE, domain, limits, password,
    services::{
        accounts,
        sessions::{self, SessionRow, issue_tokens},
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

pub fn well_known() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(jwks))
}

/// A local sign-up.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3 to 32 letters, digits, `_` or `.`; unique.
    #[schema(pattern = r"^[A-Za-z0-9_.]{3,32}$")]
    pub username: String,
    /// Unique; never shared with other services.
    #[schema(format = "email", max_length = 254)]
    pub email: String,
    /// 8 to 128 characters, not the username or the e-mail address.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    /// Display name, up to 40 characters; defaults to the username.
    #[schema(max_length = 40)]
    pub nickname: Option<String>,
    /// A friend's invite code (8 characters, from their profile); the friend earns 100 points.
    #[schema(pattern = r"^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{8}$")]
    pub invite_code: Option<String>,
}

/// The account as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    /// User id.
    pub id: Uuid,
    /// Handle.
    pub username: String,
    /// Display name.
    pub nickname: String,
    /// E-mail address.
    pub email: String,
    /// Sign-up time.
    pub created_at: DateTime<Utc>,
}

/// Answer to a sign-up.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    /// The new account.
    pub user: AccountView,
    /// Its tokens.
    #[serde(flatten)]
    pub tokens: Tokens,
}

/// Create an account with e-mail and password.
///
/// Stores the account and its `user.registered` event in one transaction. The response's
/// `X-Consistency-Token` lets the next query wait for the profile to exist.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, body = RegisterResponse, headers(("x-consistency-token" = String, description = "Send to query-api to read this write"))),
        (status = 409, description = "E-mail or username taken", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
async fn register(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let input = domain::Registration {
        username: body.username,
        email: body.email,
        password: body.password,
        nickname: body.nickname,
    };
    let mut account = domain::register(&input, Uuid::now_v7()).map_err(invalid)?;
    if let Some(code) = body.invite_code.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        let inviter = accounts::find_inviter(&state.db, code)
            .await?
            .ok_or_else(|| ApiError::invalid("invite_code", "is not a known invite code"))?;
        domain::accept_invite(&mut account, inviter).map_err(invalid)?;
    }
    let password_hash = password::hash(input.password).await?;
    // An invitation is about the inviter: it lands in their stream and history.
    let events: Vec<Event> = std::mem::take(&mut account.events)
        .into_iter()
        .map(|data| {
            let about = match &data {
                events::EventData::InviteAccepted(i) => i.inviter_id,
                _ => account.user_id,
            };
            Event::new(SOURCE, about, data).caused_by(Some(request_id), None)
        })
        .collect();
    let created = accounts::create_local(&state, &account, &password_hash, events, request_id).await?;
    tracing::info!(user.id = %account.user_id, "account registered");
    let body = RegisterResponse {
        user: AccountView {
            id: account.user_id,
            username: account.username,
            nickname: account.nickname,
            email: account.email,
            created_at: created.created_at,
        },
        tokens: created.tokens,
    };
    Ok((StatusCode::CREATED, consistency_headers(created.event_ids), Json(body)))
}

/// Credentials.
#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
pub struct LoginRequest {
    /// E-mail address.
    #[validate(length(min = 1, max = 254, message = "is required"))]
    #[schema(min_length = 1, max_length = 254)]
    pub email: String,
    /// Password.
    #[validate(length(min = 1, max = 1024, message = "is required"))]
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
}

#[derive(sqlx::FromRow)]
struct Credentials {
    id: Uuid,
    username: String,
    role: Role,
    password_hash: Option<String>,
}

/// Sign in with e-mail and password.
///
/// At most 5 attempts a minute per client IP, and a growing wait per account after repeated
/// failures; both answer 429 with `Retry-After`.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = Tokens),
        (status = 401, description = "Wrong e-mail or password", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ValidJson(body): ValidJson<LoginRequest>,
) -> Result<Json<Tokens>, ApiError> {
    limits::check_ip(&state.redis, &ip).await?;
    limits::check_account(&state.redis, &body.email).await?;
    let account: Option<Credentials> = sqlx::query_as(
        "select id, username, role, password_hash from auth.users where lower(email) = lower($1) and deleted_at is null",
    )
    .bind(body.email.trim())
    .fetch_optional(&state.db)
    .await?;
    let stored = account.as_ref().and_then(|a| a.password_hash.clone());
    // Verified even when there is no account, so timing does not tell whether it exists.
    let ok = password::verify(body.password.clone(), stored.clone()).await?;
    let Some(account) = account.filter(|_| ok) else {
        limits::record_failure(&state.redis, &body.email).await;
        tracing::info!(client.ip = %ip, "sign-in refused");
        return Err(ApiError::InvalidCredentials("The e-mail address or password is wrong.".into()));
    };
    limits::record_success(&state.redis, &body.email).await;
    tracing::info!(user.id = %account.id, "signed in");
    if let Some(stored) = stored
        && let Some(upgraded) = password::upgrade(body.password, &stored).await?
    {
        sqlx::query("update auth.users set password_hash = $2 where id = $1 and password_hash = $3")
            .bind(account.id)
            .bind(upgraded)
            .bind(stored)
            .execute(&state.db)
            .await?;
    }
    let mut conn = state.db.acquire().await?;
    Ok(Json(issue_tokens(&state, &mut conn, account.id, &account.username, account.role, None).await?))
}

/// A refresh token.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// The refresh token of the current pair.
    pub refresh_token: String,
}

/// Exchange a refresh token for a new pair.
///
/// The presented token is spent. Presenting a spent token again (after a 10 s grace window for
/// concurrent refreshes) revokes every token of that sign-in: someone else has it.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, body = Tokens),
        (status = 401, description = "Invalid, expired, revoked or reused", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<Tokens>, ApiError> {
    let claims = state.verifier.verify(body.refresh_token.trim(), TokenType::Refresh)?;
    let mut tx = state.db.begin().await?;
    let record = sessions::lock_refresh_token(&mut tx, claims.jti, claims.sub).await?;
    let Some(SessionRow { family_id: family, spent_at, revoked_at, username, role, deleted_at }) = record else {
        return Err(TokenError::Invalid.into());
    };
    if deleted_at.is_some() {
        return Err(TokenError::Revoked.into());
    }
    let grace = chrono::TimeDelta::from_std(state.settings.refresh_grace).unwrap_or_default();
    match domain::judge_refresh(domain::RefreshRecord { spent_at, revoked_at }, Utc::now(), grace) {
        domain::RefreshDecision::Revoked => Err(TokenError::Revoked.into()),
        domain::RefreshDecision::Reuse => {
            let revoked = sessions::revoke_family(&mut tx, family).await?;
            tx.commit().await?;
            tracing::warn!(user.id = %claims.sub, family = %family, revoked, "refresh token reused; session revoked");
            Err(ApiError::Unauthorized(TokenError::Reused))
        }
        decision => {
            let tokens = issue_tokens(&state, &mut tx, claims.sub, &username, role, Some(family)).await?;
            if decision == domain::RefreshDecision::Rotate {
                sessions::mark_spent(&mut tx, claims.jti).await?;
            }
            tx.commit().await?;
            Ok(Json(tokens))
        }
    }
}

/// What to sign out.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct LogoutRequest {
    /// Also end this refresh token's session.
    pub refresh_token: Option<String>,
}

/// Sign out: the access token is refused from now on, and the session of `refresh_token`
/// (when given) is revoked.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body(content = LogoutRequest, description = "optional"), security(("bearer" = [])),
    responses((status = 204, description = "Signed out"), (status = 401, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn logout(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let body: LogoutRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("malformed_json", format!("The body is not a logout request: {e}")))?
    };
    let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or_else(Utc::now);
    state.denylist.revoke(claims.jti, claims.sub, expires_at).await?;
    if let Some(token) = body.refresh_token
        && let Ok(refresh) = state.verifier.verify(token.trim(), TokenType::Refresh)
        && refresh.sub == claims.sub
    {
        sqlx::query(
            "update auth.refresh_tokens set revoked_at = now()
             where family_id = (select family_id from auth.refresh_tokens where jti = $1) and revoked_at is null",
        )
        .bind(refresh.jti)
        .execute(&state.db)
        .await?;
    }
    tracing::info!(user.id = %claims.sub, "signed out");
    Ok(StatusCode::NO_CONTENT)
}

/// The public keys that verify EcoEco tokens (JWKS, RFC 7517): current and previous.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", responses((status = 200, description = "JSON Web Key Set")))]
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("public, max-age=300"));
    (headers, Json(state.verifier.jwks()))
}
