//! Everything held about me, as one JSON document, streamed.

use axum::{
    body::Body,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use futures::{Stream, StreamExt};
use platform::{
    auth::AuthUser,
    error::ApiError,
    topology::{ACTIVITIES, PLACES, PROFILES},
};
use readmodels::export::{self, Export, Head};
use serde::Serialize;
use tokio::sync::mpsc;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{AppState, consistency::Consistency};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(export_me))
}

/// Rows per chunk of the streamed body.
const ROWS_PER_CHUNK: usize = 256;

/// Everything the service holds about me (account, sessions, mail, profile, settings, saved
/// places, activity history, points ledger), as one JSON document.
///
/// Streamed: the history and the ledger are written as they are read, so a long history costs
/// the server no more memory than a short one. Secrets (password and token hashes, the links
/// inside mail) are left out. With `X-Consistency-Token`, waits until the read models include
/// that command's events.
#[utoipa::path(get, path = "/users/me/export", tag = "users", security(("bearer" = [])),
    params(("x-consistency-token" = Option<String>, Header, description = "Token from a command response")),
    responses(
        (status = 200, body = Export, headers(("x-consistency" = String, description = "`fresh` or `stale`, when a token was sent"))),
        (status = 401, body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No account (deleted)", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
async fn export_me(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    consistency: Consistency,
) -> Result<Response, ApiError> {
    let freshness = consistency.wait(&state, &[&PROFILES, &ACTIVITIES, &PLACES]).await?;
    let head = export::head(&state.db, claims.sub)
        .await?
        .ok_or_else(|| ApiError::not_found("account_not_found", "This account does not exist (any more)."))?;
    let (tx, rx) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::spawn(write(state.db.clone(), claims.sub, head, tx));
    let body = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) });
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().extend(freshness.headers());
    Ok(response)
}

/// Writes the document into `tx` in chunks; an error mid-way ends the body early (the client
/// sees a truncated document, never a wrong one) and is logged.
async fn write(db: sqlx::PgPool, user: Uuid, head: Head, tx: mpsc::Sender<Result<Vec<u8>, std::io::Error>>) {
    if let Err(e) = write_all(&db, user, head, &tx).await {
        tracing::warn!(error = format!("{e:#}"), user = %user, "export cut short");
        let _ = tx.send(Err(std::io::Error::other("export cut short"))).await;
    }
}

async fn write_all(
    db: &sqlx::PgPool,
    user: Uuid,
    head: Head,
    tx: &mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
) -> anyhow::Result<()> {
    let mut out = Vec::with_capacity(16 * 1024);
    out.push(b'{');
    field(&mut out, "format", &export::FORMAT)?;
    field(&mut out, "exported_at", &Utc::now())?;
    field(&mut out, "account", &head.account)?;
    field(&mut out, "sessions", &head.sessions)?;
    field(&mut out, "mail", &head.mail)?;
    field(&mut out, "profile", &head.profile)?;
    field(&mut out, "settings", &head.settings)?;
    field(&mut out, "saved_places", &head.saved_places)?;
    field(&mut out, "badges", &head.badges)?;
    field(&mut out, "characters", &head.characters)?;
    field(&mut out, "devices", &head.devices)?;
    field(&mut out, "avatar", &head.avatar)?;
    field(&mut out, "notifications", &head.notifications)?;
    out.extend_from_slice(b"\"activities\":");
    out = list(out, export::activities(db, user), tx).await?;
    out.extend_from_slice(b",\"points_ledger\":");
    out = list(out, export::ledger(db, user), tx).await?;
    out.push(b'}');
    send(tx, out).await
}

/// Appends `"name":value,`.
fn field(out: &mut Vec<u8>, name: &str, value: &impl Serialize) -> serde_json::Result<()> {
    serde_json::to_writer(&mut *out, name)?;
    out.push(b':');
    serde_json::to_writer(&mut *out, value)?;
    out.push(b',');
    Ok(())
}

/// Appends a JSON array of the rows of `rows`, sending a chunk every [`ROWS_PER_CHUNK`] rows;
/// returns the buffer to go on with.
async fn list<T: Serialize>(
    mut out: Vec<u8>,
    rows: impl Stream<Item = sqlx::Result<T>>,
    tx: &mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
) -> anyhow::Result<Vec<u8>> {
    out.push(b'[');
    let mut rows = std::pin::pin!(rows);
    let mut n = 0usize;
    while let Some(row) = rows.next().await {
        if n > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, &row?)?;
        n += 1;
        if n.is_multiple_of(ROWS_PER_CHUNK) {
            send(tx, std::mem::take(&mut out)).await?;
        }
    }
    out.push(b']');
    Ok(out)
}

async fn send(tx: &mpsc::Sender<Result<Vec<u8>, std::io::Error>>, chunk: Vec<u8>) -> anyhow::Result<()> {
    tx.send(Ok(chunk)).await.map_err(|_| anyhow::anyhow!("the client went away"))
}
