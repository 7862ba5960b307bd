//! My points, level and activity history.

use axum::{Json, extract::State, http::HeaderMap};
use chrono::{DateTime, Utc};
use events::rules::{LEVEL_STARTS, MAX_LEVEL, level_start};
use platform::{
    auth::AuthUser,
    error::{ApiError, ApiQuery},
    topology::{ACTIVITIES, LEADERBOARDS, PROFILES},
};
use readmodels::{
    activities::{self, Activity},
    periods::Period,
    profiles::{self, Settings},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::users::load_profile;
use crate::{AppState, consistency::Consistency};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(points))
        .routes(routes!(level))
        .routes(routes!(activities))
        .routes(routes!(settings))
}

fn no_profile() -> ApiError {
    ApiError::not_found(
        "profile_not_found",
        "This account has no profile yet; retry with the X-Consistency-Token of your last command.",
    )
}

/// My points.
#[derive(Debug, Serialize, ToSchema)]
pub struct Points {
    /// Total points.
    pub points: i64,
    /// Points earned this week (Monday 00:00 in the app's time zone).
    pub weekly_points: i64,
    /// Current level.
    pub level: i32,
    /// Points still needed for the next level; `null` at the top level.
    pub points_to_next_level: Option<i64>,
}

/// My points, this week's points and level.
#[utoipa::path(get, path = "/users/me/points", tag = "users", security(("bearer" = [])),
    params(("x-consistency-token" = Option<String>, Header, description = "Token from a command response")),
    responses((status = 200, body = Points), (status = 404, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn points(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    consistency: Consistency,
) -> Result<(HeaderMap, Json<Points>), ApiError> {
    let freshness = consistency.wait(&state, &[&PROFILES, &LEADERBOARDS]).await?;
    let profile = load_profile(&state, claims.sub, freshness.requires_primary()).await?.ok_or_else(no_profile)?;
    let week = Period::Weekly.key_at(Utc::now(), state.settings.app_timezone);
    let usable = |(held, _): &(String, i64)| *held == week && !freshness.requires_primary();
    let load = || async {
        let points = readmodels::leaderboards::points(&state.db, &week, claims.sub).await?;
        Ok::<_, ApiError>((week.clone(), points.unwrap_or(0)))
    };
    let (_, weekly_points) = state.hot.weekly_points.get_or_load(claims.sub, usable, load).await?;
    let next = level_start(profile.level + 1);
    Ok((
        freshness.headers(),
        Json(Points {
            points: profile.points,
            weekly_points,
            level: profile.level,
            points_to_next_level: next.map(|n| n - profile.points),
        }),
    ))
}

/// One level's threshold.
#[derive(Debug, Serialize, ToSchema)]
pub struct Threshold {
    /// Level.
    pub level: i32,
    /// Points where it begins.
    pub min_points: i64,
}

/// My level and progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct Level {
    /// Current level.
    pub level: i32,
    /// Total points.
    pub points: i64,
    /// Where the current level began.
    pub current_level_min_points: i64,
    /// Where the next level begins; `null` at the top.
    pub next_level_min_points: Option<i64>,
    /// Progress through the current level, 0 to 1 (1 at the top level).
    pub progress: f64,
    /// Every level.
    pub thresholds: Vec<Threshold>,
}

/// My level, the thresholds and my progress to the next level.
#[utoipa::path(get, path = "/users/me/level", tag = "users", security(("bearer" = [])),
    params(("x-consistency-token" = Option<String>, Header, description = "Token from a command response")),
    responses((status = 200, body = Level), (status = 404, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn level(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    consistency: Consistency,
) -> Result<(HeaderMap, Json<Level>), ApiError> {
    let freshness = consistency.wait(&state, &[&PROFILES]).await?;
    let profile = load_profile(&state, claims.sub, freshness.requires_primary()).await?.ok_or_else(no_profile)?;
    let current = level_start(profile.level).unwrap_or(0);
    let next = level_start(profile.level + 1);
    let progress = match next {
        Some(next) if profile.level < MAX_LEVEL => {
            ((profile.points - current) as f64 / (next - current) as f64).clamp(0.0, 1.0)
        }
        _ => 1.0,
    };
    let thresholds =
        LEVEL_STARTS.iter().enumerate().map(|(i, min)| Threshold { level: i as i32 + 1, min_points: *min }).collect();
    Ok((
        freshness.headers(),
        Json(Level {
            level: profile.level,
            points: profile.points,
            current_level_min_points: current,
            next_level_min_points: next,
            progress,
            thresholds,
        }),
    ))
}

/// Page parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    /// The limit, checked.
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(20),
            Some(n) if (1..=100).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::invalid("limit", "must be between 1 and 100")),
        }
    }
}

/// A page of history.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityPage {
    /// Newest first.
    pub items: Vec<Activity>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The cursor of a newest-first list keyed by `(created_at, id)` (the position in microseconds
/// and the id), named `list` so one list's cursor is refused by another.
pub(crate) fn encode_cursor(list: &str, at: DateTime<Utc>, id: Uuid) -> String {
    platform::cursor::encode(list, &(at.timestamp_micros(), id))
}

/// Reads a cursor of [`encode_cursor`].
pub(crate) fn decode_cursor(list: &str, cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let (micros, id): (i64, Uuid) = platform::cursor::decode(list, cursor)?;
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(|| {
        ApiError::bad_request("invalid_cursor", "`cursor` must be a `next_cursor` this list returned")
    })?;
    Ok((at, id))
}

/// My activity history, newest first.
///
/// Keyset pagination on `(created_at, id)`: pages stay stable while new activity arrives.
#[utoipa::path(get, path = "/users/me/activities", tag = "users", security(("bearer" = [])),
    params(PageParams, ("x-consistency-token" = Option<String>, Header, description = "Token from a command response")),
    responses((status = 200, body = ActivityPage), (status = 400, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn activities(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    consistency: Consistency,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<(HeaderMap, Json<ActivityPage>), ApiError> {
    let limit = page.limit()?;
    let after = page.cursor.as_deref().map(|c| decode_cursor("activities", c)).transpose()?;
    let freshness = consistency.wait(&state, &[&ACTIVITIES]).await?;
    let (items, more) = activities::page(&state.db, claims.sub, after, limit).await?;
    let next_cursor = if more { items.last().map(|a| encode_cursor("activities", a.created_at, a.id)) } else { None };
    Ok((freshness.headers(), Json(ActivityPage { items, next_cursor })))
}

/// My settings.
#[utoipa::path(get, path = "/users/me/settings", tag = "users", security(("bearer" = [])),
    params(("x-consistency-token" = Option<String>, Header, description = "Token from a command response")),
    responses((status = 200, body = Settings), (status = 404, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn settings(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    consistency: Consistency,
) -> Result<(HeaderMap, Json<Settings>), ApiError> {
    let freshness = consistency.wait(&state, &[&PROFILES]).await?;
    let settings = profiles::settings(&state.db, claims.sub).await?;
    Ok((freshness.headers(), Json(settings.ok_or_else(no_profile)?)))
}
