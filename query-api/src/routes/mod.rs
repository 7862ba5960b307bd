//! HTTP adapters of query-api.

mod avatars;
mod export;
mod geo;
mod guide;
pub(crate) mod leaderboards;
mod me;
mod notifications;
mod places;
mod rewards;
mod scans;
mod users;

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Routes under `/api/v1`.
pub fn router() -> OpenApiRouter<AppState> {
    users::router()
        .merge(me::router())
        .merge(leaderboards::router())
        .merge(guide::router())
        .merge(places::router())
        .merge(geo::router())
        .merge(scans::router())
        .merge(export::router())
        .merge(rewards::router())
        .merge(notifications::router())
        .merge(avatars::router())
}
