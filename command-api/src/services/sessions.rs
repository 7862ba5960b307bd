//! Sessions: signing a token pair (its refresh token recorded in a family), and revoking
//! families.

use chrono::{DateTime, Utc};
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

#[derive(sqlx::FromRow)]
/// A refresh token's record and its account, as a refresh needs them.
pub struct SessionRow {
    /// The session it belongs to.
    pub family_id: Uuid,
    /// When it was rotated, if it was.
    pub spent_at: Option<DateTime<Utc>>,
    /// When its session was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The account's username.
    pub username: String,
    /// The account's role.
    pub role: Role,
    /// When the account was deleted, if it was.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// The refresh token `jti` of `user` with its account, locked for the rest of the transaction.
pub async fn lock_refresh_token(
    tx: &mut sqlx::PgConnection,
    jti: Uuid,
    user: Uuid,
) -> Result<Option<SessionRow>, ApiError> {
    Ok(sqlx::query_as(
        "select t.family_id, t.spent_at, t.revoked_at, u.username, u.role, u.deleted_at
         from auth.refresh_tokens t join auth.users u on u.id = t.user_id
         where t.jti = $1 and t.user_id = $2 for update of t",
    )
    .bind(jti)
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?)
}

/// Revokes every token of a session (a family); how many were still live.
pub async fn revoke_family(tx: &mut sqlx::PgConnection, family: Uuid) -> Result<u64, ApiError> {
    Ok(sqlx::query("update auth.refresh_tokens set revoked_at = now() where family_id = $1 and revoked_at is null")
        .bind(family)
        .execute(&mut *tx)
        .await?
        .rows_affected())
}

/// Marks a refresh token spent (rotated).
pub async fn mark_spent(tx: &mut sqlx::PgConnection, jti: Uuid) -> Result<(), ApiError> {
    sqlx::query("update auth.refresh_tokens set spent_at = now() where jti = $1").bind(jti).execute(&mut *tx).await?;
    Ok(())
}
