//! Sessions: signing a token pair (its refresh token recorded in a family), and revoking
//! families.

use platform::{
    auth::{ACCESS_TOKEN_TTL_SECS, Claims, Role, TokenType},
    error::ApiError,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;

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

/// Signs an access token and a refresh token; records the refresh token in `family` (a new
/// family for a new sign-in).
pub async fn issue_tokens(
    state: &AppState,
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    username: &str,
    role: Role,
    family: Option<Uuid>,
) -> Result<Tokens, ApiError> {
    let mut access = Claims::new(user_id, username, role, TokenType::Access);
    let mut refresh = Claims::new(user_id, username, role, TokenType::Refresh);
    let family = family.unwrap_or(refresh.jti);
    access.sid = Some(family);
    refresh.sid = Some(family);
    sqlx::query(
        "insert into auth.refresh_tokens (jti, family_id, user_id, expires_at) values ($1, $2, $3, to_timestamp($4))",
    )
    .bind(refresh.jti)
    .bind(family)
    .bind(user_id)
    .bind(refresh.exp as f64)
    .execute(&mut *conn)
    .await?;
    Ok(Tokens {
        access_token: state.signer.sign(&access)?,
        refresh_token: state.signer.sign(&refresh)?,
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_TTL_SECS,
    })
}

/// Revokes every refresh-token family of `user` except `keep`.
pub async fn revoke_sessions(tx: &mut sqlx::PgConnection, user: Uuid, keep: Option<Uuid>) -> Result<u64, ApiError> {
    Ok(sqlx::query(
        "update auth.refresh_tokens set revoked_at = now()
         where user_id = $1 and revoked_at is null and ($2::uuid is null or family_id <> $2)",
    )
    .bind(user)
    .bind(keep)
    .execute(&mut *tx)
    .await?
    .rows_affected())
}
