//! What the content commands (guide and places) share: collecting field errors into one 422,
//! and the answer to an edit.

use axum::{Json, http::StatusCode, response::IntoResponse};
use platform::error::{ApiError, FieldError};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::consistency_headers;
use crate::content::Saved;

/// Field checks, collected so that one 422 lists every problem.
#[derive(Default)]
pub(super) struct Checks(Vec<FieldError>);

impl Checks {
    /// `value` is `min` to `max` characters (an empty or blank value fails any `min` above 0).
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) -> &mut Self {
        let n = value.trim().chars().count();
        if min > 0 && n == 0 {
            self.fail(field, "must not be empty");
        } else if n < min {
            self.fail(field, &format!("must be at least {min} characters"));
        } else if value.chars().count() > max {
            self.fail(field, &format!("must be at most {max} characters"));
        }
        self
    }

    /// At most `max_items` entries, each 1 to `max_len` characters.
    pub fn list(&mut self, field: &str, values: &[String], max_items: usize, max_len: usize) -> &mut Self {
        if values.len() > max_items {
            self.fail(field, &format!("at most {max_items} entries"));
        }
        if values.iter().any(|v| v.trim().is_empty() || v.chars().count() > max_len) {
            self.fail(field, &format!("entries must be 1 to {max_len} characters"));
        }
        self
    }

    /// A WGS84 position.
    pub fn point(&mut self, latitude: f64, longitude: f64) -> &mut Self {
        if !(-90.0..=90.0).contains(&latitude) {
            self.fail("latitude", "must be between -90 and 90");
        }
        if !(-180.0..=180.0).contains(&longitude) {
            self.fail("longitude", "must be between -180 and 180");
        }
        self
    }

    /// A problem found some other way.
    pub fn fail(&mut self, field: &str, message: &str) -> &mut Self {
        self.0.push(FieldError::new(field, message));
        self
    }

    /// 422 with every problem, if any.
    pub fn done(&mut self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::Validation(std::mem::take(&mut self.0))) }
    }
}

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
