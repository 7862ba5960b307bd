//! Avatar renditions, served from object storage: `GET /avatars/{user_id}/{upload_id}/{file}`.
//!
//! Served here rather than from the store's own URLs so that the local-directory and the S3
//! back ends behave the same, no bucket is ever public, and a deleted person's files stop being
//! served by us the moment the worker deletes them. A rendition never changes under its name (a
//! new upload gets a new id), so answers are `immutable`, with an `ETag` for revalidation; they
//! are cached for a day only (browsers and any CDN put in front, `AVATAR_BASE_URL`), the
//! longest a deleted person's avatar may outlive them in someone's cache.

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::TryStreamExt;
use platform::{
    avatars::SIZES,
    error::{ApiError, ApiPath},
    storage,
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(avatar))
}

/// A day: a file never changes under its name, but a deleted person's avatar must not live in
/// browsers and CDNs for long after the files are gone.
const CACHE_CONTROL: &str = "public, max-age=86400, immutable";

/// An avatar rendition (a square JPEG): `512.jpg` or `128.jpg`, as named by a profile's
/// `avatar_url`. Public, cacheable for a day; 304 for a matching `If-None-Match`.
#[utoipa::path(get, path = "/avatars/{user_id}/{upload_id}/{file}", tag = "users",
    params(("user_id" = Uuid, Path, description = "Whose"), ("upload_id" = Uuid, Path, description = "The upload"),
           ("file" = String, Path, description = "`512.jpg` or `128.jpg`", pattern = r"^(512|128)\.jpg$")),
    responses((status = 200, description = "The image", content_type = "image/jpeg", body = Vec<u8>,
                headers(("cache-control" = String), ("etag" = String))),
              (status = 304, description = "Not modified"),
              (status = 404, description = "No such rendition (replaced, deleted, or never made)", body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn avatar(
    State(state): State<AppState>,
    ApiPath((user, upload, file)): ApiPath<(Uuid, Uuid, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let size = SIZES
        .into_iter()
        .find(|s| file == format!("{s}.jpg"))
        .ok_or_else(|| ApiError::invalid("file", "must be 512.jpg or 128.jpg"))?;
    let got = match state.store.get(&storage::rendition_path(user, upload, size)).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(ApiError::not_found(
                "avatar_not_found",
                "No such avatar (replaced, deleted, or not made yet).",
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "reading an avatar from storage");
            return Err(ApiError::Unavailable("File storage is unavailable; try again shortly.".into()));
        }
    };
    let etag = got.meta.e_tag.clone().map(|t| if t.starts_with('"') { t } else { format!("\"{t}\"") });
    if let Some(tag) = &etag
        && matches(headers.get(header::IF_NONE_MATCH), tag)
    {
        return Ok(not_modified(tag));
    }
    let length = got.meta.size;
    let body = Body::from_stream(got.into_stream().map_err(std::io::Error::other));
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(v) = etag.and_then(|t| HeaderValue::from_str(&t).ok()) {
        h.insert(header::ETAG, v);
    }
    Ok(response)
}

/// Whether `If-None-Match` names `etag` (weakly, as RFC 9110 asks for this header) or is `*`.
fn matches(if_none_match: Option<&HeaderValue>, etag: &str) -> bool {
    let Some(value) = if_none_match.and_then(|v| v.to_str().ok()) else { return false };
    value.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

fn not_modified(etag: &str) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL));
    if let Ok(v) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}
