//! HTTP adapters of query-api.

mod users;

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Routes under `/api/v1`.
pub fn router() -> OpenApiRouter<AppState> {
    users::router()
}
