//! The profile image upload: `POST /users/me/avatar`. The upload is checked from its bytes
//! (format, declared size), stored as it came under a random id, and announced by
//! `avatar.uploaded`; the avatar worker makes the renditions and records the new `avatar_url`.

use axum::{
    extract::{
        DefaultBodyLimit, Multipart, State,
        multipart::{MultipartError, MultipartRejection},
    },
    http::StatusCode,
    response::IntoResponse,
};
use events::{AvatarUploaded, ImageFormat};
use object_store::PutPayload;
use platform::{
    auth::AuthUser,
    avatars::{self, Format, Refusal},
    error::ApiError,
    http::RequestId,
    storage,
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::record_one;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    // The size limit is AVATAR_MAX_BYTES, counted while the file part streams in.
    OpenApiRouter::new().routes(routes!(upload_avatar)).layer(DefaultBodyLimit::disable())
}

/// The upload: one file part named `image`.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the multipart body; the handler reads it as a stream
pub struct AvatarUpload {
    /// A JPEG, PNG or WebP image (detected from its bytes), up to `AVATAR_MAX_BYTES` (default
    /// 5 MiB) and `AVATAR_MAX_PIXELS` (default 16 million, 12,000 per side).
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
}

/// An accepted upload.
#[derive(Serialize, ToSchema)]
pub struct UploadAccepted {
    /// The upload; its renditions appear at the profile's `avatar_url` once made.
    pub upload_id: Uuid,
}

fn malformed(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge(e.body_text());
    }
    ApiError::bad_request("malformed_multipart", format!("The multipart body is malformed: {}", e.body_text()))
}

/// Upload my profile image. Answers 202 with the upload's id; the avatar worker decodes it,
/// strips every piece of metadata (EXIF location included), writes 512 px and 128 px square
/// JPEGs and records `user.profile_updated` with the new `avatar_url` (the 512 px one; the 128 px
/// one is the same URL ending in `/128.jpg`). The previous upload's files are deleted then. With
/// the consistency token, `GET /users/me` waits for the new `avatar_url`.
#[utoipa::path(post, path = "/users/me/avatar", tag = "account", security(("bearer" = [])),
    request_body(content = AvatarUpload, content_type = "multipart/form-data"),
    responses((status = 202, description = "Accepted; being processed", body = UploadAccepted, headers(("x-consistency-token" = String))),
              (status = 400, description = "Malformed multipart body", body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 404, description = "The account no longer exists", body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 413, description = "Larger than AVATAR_MAX_BYTES", body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 415, description = "Not multipart, or not a JPEG, PNG or WebP image", body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, description = "No image, more than one, too many pixels, or undecodable", body = platform::error::Problem, content_type = "application/problem+json")))]
async fn upload_avatar(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    RequestId(request_id): RequestId,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let mut multipart = multipart.map_err(|_| {
        ApiError::UnsupportedMediaType("Send the image as multipart/form-data with one file part named `image`.".into())
    })?;
    let max_bytes = state.settings.avatar_max_bytes;
    let mut image: Option<Vec<u8>> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        if field.name() != Some("image") {
            let name = field.name().unwrap_or("").to_owned();
            return Err(ApiError::invalid(
                "body",
                &format!("unexpected part `{name}`: send one file part named `image`"),
            ));
        }
        if image.is_some() {
            return Err(ApiError::invalid("image", "send one image, not several"));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            if bytes.len() + chunk.len() > max_bytes {
                return Err(ApiError::PayloadTooLarge(format!("The image is larger than {max_bytes} bytes.")));
            }
            bytes.extend_from_slice(&chunk);
        }
        image = Some(bytes);
    }
    let Some(bytes) = image else {
        return Err(ApiError::invalid("image", "required: one JPEG, PNG or WebP file in a part named `image`"));
    };
    let inspected = avatars::inspect(&bytes, state.settings.avatar_max_pixels).map_err(|refusal| match refusal {
        Refusal::UnsupportedFormat => ApiError::UnsupportedMediaType(format!("{refusal} (judged from its bytes).")),
        other => ApiError::invalid("image", &other.to_string()),
    })?;
    // Checked before storing, so a deleted account leaves no file behind (`record_one` checks
    // again, in the transaction that records the upload).
    if !super::is_live(&state.db, claims.sub).await? {
        return Err(ApiError::not_found("account_not_found", "This account no longer exists."));
    }
    let upload_id = Uuid::new_v4();
    let size_bytes = bytes.len() as u64;
    let path = storage::upload_path(claims.sub, upload_id);
    state.store.put(&path, PutPayload::from(bytes)).await.map_err(|e| {
        tracing::error!(error = %e, "storing an avatar upload");
        ApiError::Unavailable("File storage is unavailable; try again shortly.".into())
    })?;
    let data = AvatarUploaded {
        user_id: claims.sub,
        upload_id,
        format: match inspected.format {
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Png => ImageFormat::Png,
            Format::WebP => ImageFormat::Webp,
        },
        width: inspected.width,
        height: inspected.height,
        size_bytes,
    };
    match record_one(&state, claims.sub, request_id, data.into(), serde_json::json!(UploadAccepted { upload_id })).await
    {
        Ok(accepted) => Ok(accepted),
        Err(e) => {
            // Not recorded: no worker will ever look at the file.
            if let Err(delete) = storage::delete_quietly(&*state.store, &path).await {
                tracing::warn!(error = %delete, path = %path, "an unrecorded avatar upload could not be deleted");
            }
            Err(e)
        }
    }
}
