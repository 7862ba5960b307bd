//! Social login with Google and Kakao: authorization code flow with `state` (and PKCE for
//! Google), code exchange and user info over HTTPS, then sign-in, linking or sign-up.
//!
//! An identity links to an existing account only when the provider vouches for the e-mail
//! address (Kakao: `is_email_valid` and `is_email_verified`); otherwise a new account is made.

use axum::{Json, extract::State};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use events::Provider;
use platform::{
    error::{ApiError, ApiPath, ValidJson},
    http::RequestId,
    settings::OAuthProvider,
};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    AppState,
    domain::{self, ExternalIdentity},
    services::{sessions::Tokens, social},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start)).routes(routes!(callback))
}

/// Pending authorisations live ten minutes.
const STATE_TTL: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

fn provider(state: &AppState, name: &str) -> Result<(Provider, OAuthProvider), ApiError> {
    let (provider, config) = match name {
        "google" => (Provider::Google, state.settings.google.clone()),
        "kakao" => (Provider::Kakao, state.settings.kakao.clone()),
        other => {
            return Err(ApiError::not_found(
                "unknown_provider",
                format!("No social login `{other}`; use google or kakao."),
            ));
        }
    };
    if config.client_id.is_empty() {
        return Err(ApiError::Unavailable(format!("Sign-in with {name} is not configured on this server.")));
    }
    Ok((provider, config))
}

fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// Where to send the user.
#[derive(Debug, Serialize, ToSchema)]
pub struct Authorization {
    /// Open this in a browser.
    pub authorization_url: String,
    /// Must come back with the code; single use, ten minutes.
    pub state: String,
}

/// Start a social login: the provider's authorization URL with a fresh `state`.
#[utoipa::path(get, path = "/auth/oauth/{provider}", tag = "auth",
    params(("provider" = String, Path, description = "google or kakao")),
    responses((status = 200, body = Authorization),
              (status = 404, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 503, description = "Not configured", body = platform::error::Problem, content_type = "application/problem+json")))]
async fn start(State(state): State<AppState>, ApiPath(name): ApiPath<String>) -> Result<Json<Authorization>, ApiError> {
    let (provider, config) = self::provider(&state, &name)?;
    let (oauth_state, verifier) = (random_token(), random_token());
    sqlx::query(
        "insert into auth.oauth_states (state_hash, provider, code_verifier, expires_at) values ($1, $2, $3, $4)",
    )
    .bind(Sha256::digest(oauth_state.as_bytes()).to_vec())
    .bind(&name)
    .bind(&verifier)
    .bind(Utc::now() + STATE_TTL)
    .execute(&state.db)
    .await?;
    let mut url = reqwest::Url::parse(&config.auth_url).map_err(|e| anyhow::anyhow!("{name} auth URL: {e}"))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &config.client_id)
            .append_pair("redirect_uri", &state.settings.oauth_redirect_uri)
            .append_pair("state", &oauth_state);
        if provider == Provider::Google {
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            q.append_pair("scope", "openid email profile")
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
        }
    }
    Ok(Json(Authorization { authorization_url: url.into(), state: oauth_state }))
}

/// The provider's answer, as the app received it on the redirect URI.
#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
pub struct CallbackRequest {
    /// The authorization code.
    #[validate(length(min = 1, max = 2048, message = "is required"))]
    #[schema(min_length = 1, max_length = 2048)]
    pub code: String,
    /// The `state` from the start.
    #[validate(length(min = 1, max = 200, message = "is required"))]
    #[schema(min_length = 1, max_length = 200)]
    pub state: String,
}

/// Result of a social login.
#[derive(Debug, Serialize, ToSchema)]
pub struct SocialLogin {
    /// The signed-in user.
    pub user_id: Uuid,
    /// Whether a new account was made.
    pub created: bool,
    /// Tokens.
    #[serde(flatten)]
    pub tokens: Tokens,
}

fn unavailable(provider: &str, e: reqwest::Error) -> ApiError {
    tracing::warn!(provider, error = %e, "social login provider unreachable");
    ApiError::Unavailable(format!("{provider} did not answer; try again later."))
}

async fn fetch_identity(
    state: &AppState,
    provider: Provider,
    name: &str,
    config: &OAuthProvider,
    code: &str,
    verifier: &str,
) -> Result<ExternalIdentity, ApiError> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", config.client_id.as_str()),
        ("redirect_uri", state.settings.oauth_redirect_uri.as_str()),
        ("code", code),
    ];
    if !config.client_secret.is_empty() {
        form.push(("client_secret", config.client_secret.as_str()));
    }
    if provider == Provider::Google {
        form.push(("code_verifier", verifier));
    }
    let res = state.http.post(&config.token_url).form(&form).send().await.map_err(|e| unavailable(name, e))?;
    if res.status().is_server_error() {
        return Err(ApiError::Unavailable(format!("{name} failed to exchange the code; try again later.")));
    }
    if !res.status().is_success() {
        return Err(ApiError::InvalidCredentials(format!("{name} refused the authorization code.")));
    }
    let token: serde_json::Value = res.json().await.map_err(|e| unavailable(name, e))?;
    let access =
        token["access_token"].as_str().ok_or_else(|| ApiError::Unavailable(format!("{name} sent no access token.")))?;
    let res =
        state.http.get(&config.userinfo_url).bearer_auth(access).send().await.map_err(|e| unavailable(name, e))?;
    if !res.status().is_success() {
        return Err(ApiError::Unavailable(format!("{name} did not share the user's profile.")));
    }
    let info: serde_json::Value = res.json().await.map_err(|e| unavailable(name, e))?;
    let identity = match provider {
        Provider::Kakao => domain::kakao_identity(&info),
        _ => domain::google_identity(&info),
    };
    identity.map_err(|e| ApiError::Unavailable(format!("{name} sent unusable user info: {e}")))
}

/// Finish a social login with the code and state from the provider's redirect.
#[utoipa::path(post, path = "/auth/oauth/{provider}/callback", tag = "auth", request_body = CallbackRequest,
    params(("provider" = String, Path, description = "google or kakao")),
    responses((status = 200, body = SocialLogin),
              (status = 400, description = "Unknown or expired state", body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 401, description = "The provider refused the code", body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 503, description = "The provider is unreachable", body = platform::error::Problem, content_type = "application/problem+json")))]
async fn callback(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    RequestId(request_id): RequestId,
    ValidJson(body): ValidJson<CallbackRequest>,
) -> Result<Json<SocialLogin>, ApiError> {
    let (provider, config) = self::provider(&state, &name)?;
    let verifier: Option<String> = sqlx::query_scalar(
        "update auth.oauth_states set used_at = now()
         where state_hash = $1 and provider = $2 and used_at is null and expires_at > now() returning code_verifier",
    )
    .bind(Sha256::digest(body.state.as_bytes()).to_vec())
    .bind(&name)
    .fetch_optional(&state.db)
    .await?;
    let verifier = verifier.ok_or_else(|| {
        ApiError::bad_request("invalid_state", "This sign-in expired or was already used; start again.")
    })?;
    let identity = fetch_identity(&state, provider, &name, &config, &body.code, &verifier).await?;
    let (user_id, created, tokens) = social::sign_in(&state, &name, provider, &identity, request_id).await?;
    Ok(Json(SocialLogin { user_id, created, tokens }))
}
