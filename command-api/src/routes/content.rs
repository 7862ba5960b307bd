//! What the content commands (guide and places) answer: the outcome of an edit. (Their rules
//! are `crate::content::rules`.)

use axum::{Json, http::StatusCode, response::IntoResponse};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::consistency_headers;
use crate::content::Saved;

/// What an edit did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Edited {
    /// The item, question, region or place.
    pub id: Uuid,
    /// `created`, `changed`, `unchanged` (same content: nothing recorded) or `removed`.
    pub outcome: &'static str,
}

/// 202 with the outcome and, when something was recorded, the consistency token.
pub(super) fn edited(id: Uuid, saved: Saved, removed: bool) -> impl IntoResponse {
    let outcome = if removed && saved != Saved::Unchanged { "removed" } else { saved.as_str() };
    (StatusCode::ACCEPTED, consistency_headers(saved.event_id().into_iter().collect()), Json(Edited { id, outcome }))
}
