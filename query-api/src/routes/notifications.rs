//! My in-app notification feed.

use axum::{Json, extract::State, http::HeaderMap};
use chrono::{DateTime, Utc};
use platform::{
    auth::AuthUser,
    error::{ApiError, ApiQuery},
    topology::{NOTIFICATIONS, PROFILES},
};
use readmodels::{
    notifications::{self, Names, Templates},
    profiles,
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::me::{PageParams, decode_cursor, encode_cursor};
use crate::{AppState, consistency::Consistency};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(feed))
}

/// One notification.
#[derive(Debug, Serialize, ToSchema)]
pub struct Notification {
    /// Its id (pass as `up_to_id` to mark it and everything older read).
    pub id: Uuid,
    /// `level_reached`, `badge_earned`, `character_unlocked`, `friend_joined`, `bonus_granted`
    /// or `period_result`.
    pub kind: String,
    /// Title, in my language.
    pub title: String,
    /// Text, in my language.
    pub body: String,
    /// What it is about (`level`, `badge_id`, `character_id`, `amount`, `period`, `period_key`,
    /// `rank`, `points`, as the kind has them).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Whether I marked it read.
    pub read: bool,
}

/// A page of my feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Feed {
    /// Newest first.
    pub items: Vec<Notification>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// How many of mine are unread (all pages).
    pub unread_count: i64,
}

/// My notifications, newest first, in my language (`PATCH /users/me/settings`), with how many
/// are unread. Keyset pagination on `(created_at, id)`.
#[utoipa::path(get, path = "/users/me/notifications", tag = "notifications", security(("bearer" = [])),
    params(PageParams, ("x-consistency-token" = Option<String>, Header, description = "Token from a command response")),
    responses((status = 200, body = Feed), (status = 400, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn feed(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    consistency: Consistency,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<(HeaderMap, Json<Feed>), ApiError> {
    let limit = page.limit()?;
    let after = page.cursor.as_deref().map(|c| decode_cursor("notifications", c)).transpose()?;
    let freshness = consistency.wait(&state, &[&NOTIFICATIONS, &PROFILES]).await?;
    let (rows, more) = notifications::page(&state.db, claims.sub, after, limit).await?;
    let language = profiles::settings(&state.db, claims.sub).await?.map_or_else(|| "ko".to_owned(), |s| s.language);
    let names = if rows.iter().any(|r| r.kind == "badge_earned" || r.kind == "character_unlocked") {
        Names::load(&state.db).await?
    } else {
        Names::default()
    };
    let next_cursor = if more { rows.last().map(|r| encode_cursor("notifications", r.created_at, r.id)) } else { None };
    let templates = Templates::shipped();
    let items = rows
        .into_iter()
        .map(|r| {
            let text = templates.render(&r.kind, &r.data, &language, &names);
            Notification {
                id: r.id,
                kind: r.kind,
                title: text.title,
                body: text.body,
                data: r.data,
                created_at: r.created_at,
                read: r.read,
            }
        })
        .collect();
    let unread_count = notifications::unread(&state.db, claims.sub).await?;
    Ok((freshness.headers(), Json(Feed { items, next_cursor, unread_count })))
}
