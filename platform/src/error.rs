//! RFC 9457 problem details for every API error.
//!
//! Every error a client can see is an [`ApiError`]: a status, a stable machine `code`, a human
//! `detail`, and for validation failures `errors: [{field, message}]`. JSON and path rejections
//! go through [`ApiJson`] and [`ApiPath`] so they get the same shape. A 5xx is logged once with
//! its cause chain; the client only sees a generic message and the request id.

use axum::{
    Json,
    extract::{
        FromRequest, FromRequestParts,
        rejection::{JsonRejection, PathRejection, QueryRejection},
    },
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};
use utoipa::ToSchema;

pub use crate::field::FieldError;
use crate::request_id::current_request_id;

/// Why a token was refused. All of them mean 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    Missing,
    /// Expired.
    #[error("token expired")]
    Expired,
    /// Signed by a key this service does not know.
    #[error("token signed by an unknown key")]
    UnknownKey,
    /// A refresh token where an access token is needed, or the reverse.
    #[error("wrong token type")]
    WrongType,
    /// Signed out, or its session was revoked.
    #[error("token revoked")]
    Revoked,
    /// A spent refresh token presented again: its session is now revoked.
    #[error("refresh token already used; the session was revoked")]
    Reused,
    /// Anything else: not a JWT, bad signature, wrong algorithm.
    #[error("invalid token")]
    Invalid,
}

/// The problem+json body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:ecoeco:problem:{code}`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// Stable machine-readable code.
    pub code: String,
    /// The request id (also in `x-request-id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Invalid fields, for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Every error an API returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 422: fields failed validation.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 400: the request cannot be understood.
    #[error("{detail}")]
    BadRequest {
        /// Machine code.
        code: &'static str,
        /// Human detail.
        detail: String,
    },
    /// 401.
    #[error(transparent)]
    Unauthorized(#[from] TokenError),
    /// 401 for wrong credentials.
    #[error("{0}")]
    InvalidCredentials(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{detail}")]
    NotFound {
        /// Machine code.
        code: &'static str,
        /// Human detail.
        detail: String,
    },
    /// 409.
    #[error("{detail}")]
    Conflict {
        /// Machine code.
        code: &'static str,
        /// Human detail.
        detail: String,
    },
    /// 413: the body is larger than the route accepts.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429, with `Retry-After` seconds.
    #[error("too many requests")]
    TooManyRequests {
        /// Seconds until the client may try again.
        retry_after_secs: u64,
    },
    /// 503: a dependency we need for this request is down.
    #[error("{0}")]
    Unavailable(String),
    /// 503 with a specific code (e.g. an external API down or over quota), and `Retry-After`.
    #[error("{detail}")]
    DependencyUnavailable {
        /// Machine code.
        code: &'static str,
        /// Human detail.
        detail: String,
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// Any other status the HTTP layer answers by itself (the router's 404 and 405, 431, …).
    #[error("{detail}")]
    Http {
        /// The status.
        status: StatusCode,
        /// Machine code.
        code: &'static str,
        /// Human detail.
        detail: String,
    },
    /// 500: a bug or an unexpected failure; logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl ApiError {
    /// A 400 with `code`.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest { code, detail: detail.into() }
    }

    /// A 404 with `code`.
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::NotFound { code, detail: detail.into() }
    }

    /// A 409 with `code`.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict { code, detail: detail.into() }
    }

    /// A 422 for one field.
    pub fn invalid(field: &str, message: &str) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "Validation failed"),
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code, "Bad request"),
            Self::Unauthorized(TokenError::Expired) => (StatusCode::UNAUTHORIZED, "token_expired", "Unauthorized"),
            Self::Unauthorized(TokenError::Missing) => (StatusCode::UNAUTHORIZED, "missing_token", "Unauthorized"),
            Self::Unauthorized(TokenError::Revoked) => (StatusCode::UNAUTHORIZED, "token_revoked", "Unauthorized"),
            Self::Unauthorized(TokenError::Reused) => {
                (StatusCode::UNAUTHORIZED, "refresh_token_reused", "Unauthorized")
            }
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "invalid_token", "Unauthorized"),
            Self::InvalidCredentials(_) => (StatusCode::UNAUTHORIZED, "invalid_credentials", "Unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::NotFound { code, .. } => (StatusCode::NOT_FOUND, code, "Not found"),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code, "Conflict"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "Payload too large"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Unsupported media type")
            }
            Self::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too many requests"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            Self::Http { status, code, .. } => (*status, code, status.canonical_reason().unwrap_or("Error")),
            Self::DependencyUnavailable { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code, "Service unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Internal server error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, title) = self.parts();
        let request_id = current_request_id();
        let detail = match &self {
            Self::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "request failed");
                "An unexpected error occurred; quote the request id when reporting it.".to_owned()
            }
            Self::Validation(errors) => {
                errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
            }
            Self::TooManyRequests { retry_after_secs } => {
                format!("Too many attempts; try again in {retry_after_secs} s.")
            }
            other => other.to_string(),
        };
        let errors = match self {
            Self::Validation(ref errors) => errors.clone(),
            _ => Vec::new(),
        };
        let body = Problem {
            problem_type: format!("urn:ecoeco:problem:{code}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            request_id,
            errors,
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Self::TooManyRequests { retry_after_secs } | Self::DependencyUnavailable { retry_after_secs, .. } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            headers.insert(header::RETRY_AFTER, v);
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => {
                // serde says e.g. "missing field `email` at line 1 column 20" or
                // "body.password: invalid type: integer `1`, expected a string".
                let message = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_else(|| e.body_text());
                Self::Validation(vec![serde_field_error(&message)])
            }
            JsonRejection::JsonSyntaxError(e) => Self::bad_request(
                "malformed_json",
                format!(
                    "The body is not valid JSON: {}",
                    std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()
                ),
            ),
            JsonRejection::MissingJsonContentType(_) => {
                Self::UnsupportedMediaType("Send the body as `Content-Type: application/json`.".into())
            }
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge("The body is larger than this endpoint accepts.".into())
            }
            other => Self::bad_request("unreadable_body", other.body_text()),
        }
    }
}

/// Turns serde's message into a field error: names the field where serde does.
fn serde_field_error(message: &str) -> FieldError {
    let message = message.split(" at line ").next().unwrap_or(message);
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some(field) = rest.split('`').next()
    {
        return FieldError::new(field, "is required");
    }
    if let Some((path, what)) = message.split_once(": ")
        && !path.contains(' ')
    {
        return FieldError::new(path, what);
    }
    FieldError::new("body", message)
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request("invalid_query", rejection.body_text())
    }
}

/// `axum::extract::Query` whose rejections are problem+json.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let errors: Vec<FieldError> = form_urlencoded::parse(query.as_bytes())
            .flat_map(|(name, value)| {
                let key = crate::text::check("query parameter", &name).map(|mut e| {
                    e.field = name.chars().filter(|c| !c.is_control()).collect();
                    e.message = format!("the name {}", e.message);
                    e
                });
                key.into_iter().chain(crate::text::check(&name, &value))
            })
            .collect();
        if !errors.is_empty() {
            return Err(Self::Rejection::Validation(errors));
        }
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request("invalid_path", rejection.body_text())
    }
}

impl From<validator::ValidationErrors> for ApiError {
    fn from(errors: validator::ValidationErrors) -> Self {
        let mut fields: Vec<FieldError> = errors
            .field_errors()
            .into_iter()
            .flat_map(|(field, errs)| {
                errs.iter().map(move |e| {
                    let message = e.message.as_ref().map(ToString::to_string).unwrap_or_else(|| e.code.to_string());
                    FieldError::new(field.to_string(), message)
                })
            })
            .collect();
        fields.sort_by(|a, b| a.field.cmp(&b.field));
        Self::Validation(fields)
    }
}

/// Integers as JSON Schema means them (`95.0` included); see [`events::json_integer`].
pub use events::{json_integer, json_integer_opt};

/// `axum::Json` whose rejections are problem+json, after the text rule. [`ValidJson`] adds the
/// value's `validator` rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    /// Reads the body as JSON, applies the text rule ([`crate::text`]) to every string in it,
    /// then deserialises.
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(json) = Json::<serde_json::Value>::from_request(req, state).await?;
        let errors = crate::text::check_json(&json);
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        let value: T = serde_path_to_error::deserialize(json).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let mut field = serde_field_error(&message);
            if path != "." && field.field == "body" {
                field.field = path;
            } else if path != "." {
                field.field = format!("{path}.{}", field.field);
            }
            ApiError::Validation(vec![field])
        })?;
        Ok(Self(value))
    }
}

/// [`ApiJson`] whose value is then checked with its `validator` rules (422 naming each field).
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidJson<T>(pub T);

impl<T, S> FromRequest<S> for ValidJson<T>
where
    T: DeserializeOwned + validator::Validate,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let ApiJson(value) = ApiJson::<T>::from_request(req, state).await?;
        value.validate()?;
        Ok(Self(value))
    }
}

/// `axum::extract::Path` whose rejections are problem+json.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Ok(raw) = axum::extract::RawPathParams::from_request_parts(parts, state).await {
            let errors: Vec<FieldError> =
                raw.iter().filter_map(|(name, value)| crate::text::check(name, value)).collect();
            if !errors.is_empty() {
                return Err(ApiError::Validation(errors));
            }
        }
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_may_be_written_as_whole_decimals() {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(deserialize_with = "json_integer")]
            n: i32,
        }
        let n = |json: &str| serde_json::from_str::<Body>(json).map(|b| b.n).map_err(|e| e.to_string());
        assert_eq!(n(r#"{"n": 95}"#), Ok(95));
        assert_eq!(n(r#"{"n": 95.0}"#), Ok(95));
        assert_eq!(n(r#"{"n": -0.0}"#), Ok(0));
        assert!(n(r#"{"n": 95.5}"#).unwrap_err().contains("whole number"));
        assert!(n(r#"{"n": 3000000000}"#).unwrap_err().contains("whole number"));
        assert!(n(r#"{"n": "95"}"#).is_err());
    }

    #[test]
    fn serde_messages_name_the_field() {
        assert_eq!(
            serde_field_error("missing field `email` at line 1 column 2"),
            FieldError::new("email", "is required")
        );
        assert_eq!(
            serde_field_error("password: invalid type: integer `1`, expected a string at line 1 column 14"),
            FieldError::new("password", "invalid type: integer `1`, expected a string")
        );
    }
}
