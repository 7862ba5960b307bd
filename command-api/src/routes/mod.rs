//! HTTP adapters of command-api: parse, call the domain, persist, answer.

mod account;
mod activity;
mod admin;
mod auth;
mod avatar;
mod content;
mod email;
mod guide;
mod notifications;
mod oauth;
mod places;
mod rewards;

use axum::http::{HeaderMap, HeaderValue};
use platform::consistency::{ConsistencyToken, TOKEN_HEADER};
use platform::error::ApiError;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::AppState;

/// Routes under `/api/v1`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(activity::router())
        .merge(account::router())
        .merge(avatar::router())
        .merge(email::router())
        .merge(oauth::router())
        .merge(admin::router())
        .merge(guide::router())
        .merge(places::router())
        .merge(rewards::router())
        .merge(notifications::router())
}

/// Routes outside `/api/v1`.
pub fn well_known() -> OpenApiRouter<AppState> {
    auth::well_known()
}

/// Records one event about `user` (who must still have a live account) and answers 202 with
/// `body` and the consistency token. A deleted account's access tokens live until they expire;
/// this keeps them from recording anything meanwhile.
async fn record_one(
    state: &crate::AppState,
    user: Uuid,
    request_id: Uuid,
    data: events::EventData,
    body: serde_json::Value,
) -> Result<impl axum::response::IntoResponse + use<>, ApiError> {
    let mut events = [events::Event::new(crate::SOURCE, user, data).caused_by(Some(request_id), None)];
    let mut tx = state.outbox.begin().await?;
    if !is_live(&mut *tx, user).await? {
        return Err(ApiError::not_found("account_not_found", "This account no longer exists."));
    }
    platform::eventstore::append(&mut tx, &mut events).await?;
    tx.commit().await?;
    Ok((axum::http::StatusCode::ACCEPTED, consistency_headers(vec![events[0].id]), axum::Json(body)))
}

/// Whether `user` has a live (not deleted) account.
async fn is_live(db: impl sqlx::PgExecutor<'_>, user: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("select exists (select 1 from auth.users where id = $1 and deleted_at is null)")
        .bind(user)
        .fetch_one(db)
        .await
}

/// A 422 listing every invalid field the domain found.
fn invalid(problems: Vec<crate::domain::Invalid>) -> ApiError {
    ApiError::Validation(problems.into_iter().map(|p| platform::error::FieldError::new(p.field, p.message)).collect())
}

/// The `X-Consistency-Token` header for the events a command wrote.
fn consistency_headers(event_ids: Vec<Uuid>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&ConsistencyToken::new(event_ids).encode()) {
        headers.insert(TOKEN_HEADER, v);
    }
    headers
}

/// Maps a unique violation of one of `conflicts` (constraint or unique index name, machine
/// code, human detail) to a 409; any other database error stays a 500.
pub(crate) fn on_constraint(e: sqlx::Error, conflicts: &[(&str, &'static str, &str)]) -> ApiError {
    let violated = e.as_database_error().and_then(|d| d.constraint());
    match conflicts.iter().find(|(name, _, _)| Some(*name) == violated) {
        Some((_, code, detail)) => ApiError::conflict(code, *detail),
        None => e.into(),
    }
}
