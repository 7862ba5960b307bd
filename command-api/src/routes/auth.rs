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
    auth::{ACCESS_TOKEN_TTL_SECS, Claims, Role, TokenType},
    error::{ApiError, ApiJson, FieldError},
    eventstore,
    http::RequestId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{consistency_headers, on_constraint};
use crate::{AppState, SOURCE, domain, password};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(register)).routes(routes!(login))
}

pub fn well_known() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(jwks))
}

/// A local sign-up.
#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
pub struct RegisterRequest {
    /// 3 to 32 letters, digits, `_` or `.`; unique.
    pub username: String,
    /// Unique; never shared with other services.
    pub email: String,
    /// 8 to 128 characters with a letter and a digit.
    pub password: String,
    /// Display name, up to 40 characters; defaults to the username.
    pub nickname: Option<String>,
    /// A friend's invite code; the friend earns 100 points.
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

/// A token pair.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tokens {
    /// Bearer token for the APIs; lives 30 minutes.
    pub access_token: String,
    /// Obtains a new pair; lives 7 days.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Access token lifetime in seconds.
    pub expires_in: i64,
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

fn issue_tokens(state: &AppState, user_id: Uuid, username: &str, role: Role) -> Result<Tokens, ApiError> {
    let access = state.signer.sign(&Claims::new(user_id, username, role, TokenType::Access))?;
    let refresh = state.signer.sign(&Claims::new(user_id, username, role, TokenType::Refresh))?;
    Ok(Tokens { access_token: access, refresh_token: refresh, token_type: "Bearer", expires_in: ACCESS_TOKEN_TTL_SECS })
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
    let invalid = |problems: Vec<domain::Invalid>| {
        ApiError::Validation(problems.into_iter().map(|p| FieldError::new(p.field, p.message)).collect())
    };
    let mut account = domain::register(&input, Uuid::now_v7()).map_err(invalid)?;
    if let Some(code) = body.invite_code.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        let inviter: Option<Uuid> =
            sqlx::query_scalar("select user_id from read.profiles where invite_code = upper($1)")
                .bind(code)
                .fetch_optional(&state.db)
                .await?;
        let inviter = inviter.ok_or_else(|| ApiError::invalid("invite_code", "is not a known invite code"))?;
        domain::accept_invite(&mut account, inviter).map_err(invalid)?;
    }
    let password_hash = password::hash(input.password).await?;
    let mut events: Vec<Event> = account
        .events
        .into_iter()
        .map(|data| {
            // An invitation is about the inviter: it lands in their stream and history.
            let about = match &data {
                events::EventData::InviteAccepted(i) => i.inviter_id,
                _ => account.user_id,
            };
            Event::new(SOURCE, about, data).caused_by(Some(request_id), None)
        })
        .collect();

    let mut tx = state.db.begin().await?;
    let created_at: DateTime<Utc> = sqlx::query_scalar(
        "insert into auth.users (id, username, email, password_hash) values ($1, $2, $3, $4) returning created_at",
    )
    .bind(account.user_id)
    .bind(&account.username)
    .bind(&account.email)
    .bind(&password_hash)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        on_constraint(
            e,
            &[
                ("users_email_key", "email_taken", "An account with this e-mail address already exists."),
                ("users_username_key", "username_taken", "This username is taken."),
            ],
        )
    })?;
    eventstore::append(&mut tx, &mut events).await?;
    tx.commit().await?;
    tracing::info!(user.id = %account.user_id, "account registered");

    let tokens = issue_tokens(&state, account.user_id, &account.username, Role::User)?;
    let body = RegisterResponse {
        user: AccountView {
            id: account.user_id,
            username: account.username,
            nickname: account.nickname,
            email: account.email,
            created_at,
        },
        tokens,
    };
    Ok((StatusCode::CREATED, consistency_headers(events.iter().map(|e| e.id).collect()), Json(body)))
}

/// Credentials.
#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
pub struct LoginRequest {
    /// E-mail address.
    #[validate(length(min = 1, max = 254, message = "is required"))]
    pub email: String,
    /// Password.
    #[validate(length(min = 1, max = 1024, message = "is required"))]
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
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = Tokens),
        (status = 401, description = "Wrong e-mail or password", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
async fn login(State(state): State<AppState>, ApiJson(body): ApiJson<LoginRequest>) -> Result<Json<Tokens>, ApiError> {
    let account: Option<Credentials> = sqlx::query_as(
        "select id, username, role, password_hash from auth.users where lower(email) = lower($1) and deleted_at is null",
    )
    .bind(body.email.trim())
    .fetch_optional(&state.db)
    .await?;
    let stored = account.as_ref().and_then(|a| a.password_hash.clone());
    // Verified even when there is no account, so timing does not tell whether it exists.
    let ok = password::verify(body.password, stored).await?;
    let account = account
        .filter(|_| ok)
        .ok_or_else(|| ApiError::InvalidCredentials("The e-mail address or password is wrong.".into()))?;
    tracing::info!(user.id = %account.id, "signed in");
    Ok(Json(issue_tokens(&state, account.id, &account.username, account.role)?))
}

/// The public keys that verify EcoEco tokens (JWKS, RFC 7517): current and previous.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", responses((status = 200, description = "JSON Web Key Set")))]
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("public, max-age=300"));
    (headers, Json(state.verifier.jwks()))
}
