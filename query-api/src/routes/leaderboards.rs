//! Weekly, monthly and all-time leaderboards, current and past.
//!
//! Served from Redis sorted sets (rebuilt from PostgreSQL when missing, e.g. after a flush)
//! and from PostgreSQL directly when Redis is down or the caller sent a consistency token
//! (`readmodels::leaderboards::{page, position}`).
//! Ranks are competition ranks (1, 2, 2, 4); among equal points, whoever reached them first is
//! listed first.

use std::sync::Arc;

use axum::{Json, extract::State, http::HeaderMap};
use chrono::{DateTime, Utc};
use platform::{
    auth::AuthUser,
    error::{ApiError, ApiPath, ApiQuery},
    topology::LEADERBOARDS,
};
use readmodels::{leaderboards as leaderboard, periods::Period, profiles};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{AppState, consistency::Consistency, local::Page};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(board)).routes(routes!(my_rank)).routes(routes!(results))
}

/// Query parameters of a board.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BoardParams {
    /// Entries per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// A past period: `2026-W46` (weekly), `2026-10` (monthly), `all` (all-time). Default: the
    /// current one. A key of another kind than the board, or a week the year does not have,
    /// answers 404.
    #[param(pattern = r"^(?:[0-9]{4}-W(?:0[1-9]|[1-4][0-9]|5[0-3])|[0-9]{4}-(?:0[1-9]|1[0-2])|all)$")]
    pub period_key: Option<String>,
}

/// One line of a board.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Entry {
    /// Competition rank.
    pub rank: i64,
    /// User.
    pub user_id: Uuid,
    /// Display name.
    pub nickname: String,
    /// The character they show (`GET /characters`); `null` when none was selected.
    pub character_id: Option<String>,
    /// Points in the period.
    pub points: i64,
    /// Overall level.
    pub level: i32,
}

/// A page of a board.
#[derive(Debug, Serialize, ToSchema)]
pub struct Board {
    /// The period, e.g. `2026-W47`, `2026-11` or `all`.
    pub period_key: String,
    /// When the current period ends (app time zone); `null` for all-time and past periods.
    pub next_reset_at: Option<DateTime<Utc>>,
    /// Entries, best first.
    pub items: Vec<Entry>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// My place on a board.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyRank {
    /// The period.
    pub period_key: String,
    /// When the current period ends.
    pub next_reset_at: Option<DateTime<Utc>>,
    /// My rank; `null` when I have no points in the period.
    pub rank: Option<i64>,
    /// My points in the period.
    pub points: i64,
    /// Up to two entries above me, me, and up to two below.
    pub entries: Vec<Entry>,
}

/// The resolved period of a request.
struct Target {
    key: String,
    client_key: String,
    next_reset_at: Option<DateTime<Utc>>,
}

fn target(state: &AppState, period: &str, past: Option<&str>) -> Result<Target, ApiError> {
    let period = Period::from_name(period).ok_or_else(|| {
        ApiError::not_found("unknown_period", format!("No leaderboard `{period}`; use weekly, monthly or all-time."))
    })?;
    let now = Utc::now();
    let current = period.key_at(now, state.settings.app_timezone);
    let key = match past {
        Some(value) => period_key(period, value)?,
        None => current.clone(),
    };
    let next_reset_at = if key == current { period.next_reset_at(now, state.settings.app_timezone) } else { None };
    let client_key = Period::public_key(&key).to_owned();
    Ok(Target { key, client_key, next_reset_at })
}

/// The full key of a period as a client wrote it: 404 for a well-shaped key the board does
/// not have (another kind's, a week the year lacks), 422 for anything else.
fn period_key(period: Period, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    match period.parse_key(value) {
        Some(key) => Ok(key),
        None if Period::is_key_shaped(value) => Err(ApiError::not_found(
            "unknown_period_key",
            format!("The {} board has no period `{value}`.", period.name()),
        )),
        None => Err(ApiError::invalid(
            "period_key",
            "must look like 2026-W47 (weekly), 2026-11 (monthly) or all (all-time)",
        )),
    }
}

/// Attaches nicknames and levels.
async fn named(state: &AppState, scored: Vec<leaderboard::Scored>) -> Result<Vec<Entry>, ApiError> {
    let ids: Vec<Uuid> = scored.iter().map(|s| s.user_id).collect();
    let names = profiles::names(&state.db, &ids).await?;
    Ok(scored
        .into_iter()
        .filter_map(|s| {
            // A user deleted a moment ago may linger in Redis; never show them.
            let name = names.get(&s.user_id)?.clone();
            Some(Entry {
                rank: s.rank,
                user_id: s.user_id,
                nickname: name.nickname,
                character_id: name.character_id,
                points: s.points,
                level: name.level,
            })
        })
        .collect())
}

/// The list name in board cursors; the position is the offset of the next entry.
const BOARD_CURSOR: &str = "leaderboard";

fn parse_offset(cursor: Option<&str>) -> Result<i64, ApiError> {
    match cursor {
        None => Ok(0),
        Some(c) => {
            let offset: i64 = platform::cursor::decode(BOARD_CURSOR, c)?;
            if offset < 0 {
                return Err(ApiError::bad_request(
                    "invalid_cursor",
                    "`cursor` must be a `next_cursor` this list returned",
                ));
            }
            Ok(offset)
        }
    }
}

/// A leaderboard page: `weekly`, `monthly` or `all-time`.
#[utoipa::path(get, path = "/leaderboards/{period}", tag = "leaderboards", security(("bearer" = [])),
    params(("period" = String, Path, description = "weekly, monthly or all-time"), BoardParams,
           ("x-consistency-token" = Option<String>, Header, description = "Token from a command response")),
    responses((status = 200, body = Board), (status = 404, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn board(
    State(state): State<AppState>,
    _caller: AuthUser,
    ApiPath(period): ApiPath<String>,
    consistency: Consistency,
    ApiQuery(params): ApiQuery<BoardParams>,
) -> Result<(HeaderMap, Json<Board>), ApiError> {
    let target = target(&state, &period, params.period_key.as_deref())?;
    let limit = super::me::PageParams { limit: params.limit, cursor: None }.limit()?;
    let offset = parse_offset(params.cursor.as_deref())?;
    let freshness = consistency.wait(&state, &[&LEADERBOARDS]).await?;
    let primary = freshness.requires_primary();
    let held = (target.key.clone(), offset, limit);
    let load = || async {
        let mut scored = leaderboard::page(&state.db, &state.redis, &target.key, offset, limit + 1, primary).await?;
        let more = scored.len() as i64 > limit;
        scored.truncate(limit as usize);
        Ok::<_, ApiError>(Page { entries: Arc::new(named(&state, scored).await?), more })
    };
    let page = state.hot.pages.get_or_load(held, |_| !primary, load).await?;
    let next_cursor = page.more.then(|| platform::cursor::encode(BOARD_CURSOR, &(offset + limit)));
    Ok((
        freshness.headers(),
        Json(Board {
            period_key: target.client_key,
            next_reset_at: target.next_reset_at,
            items: page.entries.to_vec(),
            next_cursor,
        }),
    ))
}

/// Where someone stands on a board: what `/me` shows besides the period.
#[derive(Debug, Clone)]
pub struct MyStanding {
    rank: Option<i64>,
    points: i64,
    entries: Arc<Vec<Entry>>,
}

/// Where `user` stands on the board of `key`, with up to two entries either side.
async fn standing(state: &AppState, key: &str, user: Uuid, primary: bool) -> Result<MyStanding, ApiError> {
    let Some(leaderboard::Standing { position: pos, points }) =
        leaderboard::position(&state.db, &state.redis, key, user, primary).await?
    else {
        return Ok(MyStanding { rank: None, points: 0, entries: Arc::default() });
    };
    let start = (pos - 2).max(0);
    let around =
        named(state, leaderboard::page(&state.db, &state.redis, key, start, pos - start + 3, primary).await?).await?;
    let rank = around.iter().find(|e| e.user_id == user).map(|e| e.rank);
    Ok(MyStanding { rank, points, entries: Arc::new(around) })
}

/// My rank and points on a board, and the entries around me.
#[utoipa::path(get, path = "/leaderboards/{period}/me", tag = "leaderboards", security(("bearer" = [])),
    params(("period" = String, Path, description = "weekly, monthly or all-time"),
           ("period_key" = Option<String>, Query, description = "A past period (as on the board)",
               pattern = r"^(?:[0-9]{4}-W(?:0[1-9]|[1-4][0-9]|5[0-3])|[0-9]{4}-(?:0[1-9]|1[0-2])|all)$"),
           ("x-consistency-token" = Option<String>, Header, description = "Token from a command response")),
    responses((status = 200, body = MyRank), (status = 404, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn my_rank(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ApiPath(period): ApiPath<String>,
    consistency: Consistency,
    ApiQuery(params): ApiQuery<BoardParams>,
) -> Result<(HeaderMap, Json<MyRank>), ApiError> {
    let target = target(&state, &period, params.period_key.as_deref())?;
    let freshness = consistency.wait(&state, &[&LEADERBOARDS]).await?;
    let primary = freshness.requires_primary();
    let held = (target.key.clone(), claims.sub);
    let load = || standing(&state, &target.key, claims.sub, primary);
    let standing = state.hot.standings.get_or_load(held, |_| !primary, load).await?;
    Ok((
        freshness.headers(),
        Json(MyRank {
            period_key: target.client_key,
            next_reset_at: target.next_reset_at,
            rank: standing.rank,
            points: standing.points,
            entries: standing.entries.to_vec(),
        }),
    ))
}

/// Which closed period's results.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResultsParams {
    /// The period: `2026-W46` (weekly) or `2026-10` (monthly). Default: the latest closed one.
    #[param(pattern = r"^(?:[0-9]{4}-W(?:0[1-9]|[1-4][0-9]|5[0-3])|[0-9]{4}-(?:0[1-9]|1[0-2]))$")]
    pub period_key: Option<String>,
}

/// One place in a closed period's final standings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FinalEntry {
    /// Competition rank.
    pub rank: i64,
    /// User.
    pub user_id: Uuid,
    /// Display name now.
    pub nickname: String,
    /// The character they show now; `null` when none.
    pub character_id: Option<String>,
    /// Points in the period.
    pub points: i64,
}

/// A closed period's final standings.
#[derive(Debug, Serialize, ToSchema)]
pub struct Results {
    /// The period, e.g. `2026-W47` or `2026-11`.
    pub period_key: String,
    /// When it was closed.
    pub closed_at: DateTime<Utc>,
    /// Everyone with points in the period.
    pub participants: i64,
    /// The top 100, best first (people who deleted their account since left out).
    pub items: Vec<FinalEntry>,
    /// Always `null`: the standings come whole.
    pub next_cursor: Option<String>,
}

/// The final standings of a closed week or month (top 100): what `leaderboard.period_closed`
/// recorded when the period ended. 404 until the period is closed (shortly after it ends).
#[utoipa::path(get, path = "/leaderboards/{period}/results", tag = "leaderboards", security(("bearer" = [])),
    params(("period" = String, Path, description = "weekly or monthly"), ResultsParams,
           ("x-consistency-token" = Option<String>, Header, description = "Token from a command response")),
    responses((status = 200, body = Results),
              (status = 404, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn results(
    State(state): State<AppState>,
    _caller: AuthUser,
    ApiPath(period): ApiPath<String>,
    consistency: Consistency,
    ApiQuery(params): ApiQuery<ResultsParams>,
) -> Result<(HeaderMap, Json<Results>), ApiError> {
    let kind = match Period::from_name(&period) {
        Some(p @ (Period::Weekly | Period::Monthly)) => p,
        Some(Period::AllTime) => {
            return Err(ApiError::not_found("unknown_period", "All-time never closes; use weekly or monthly."));
        }
        None => {
            return Err(ApiError::not_found(
                "unknown_period",
                format!("No leaderboard `{period}`; use weekly or monthly."),
            ));
        }
    };
    let key = params.period_key.as_deref().map(|value| period_key(kind, value)).transpose()?;
    let freshness = consistency.wait(&state, &[&LEADERBOARDS]).await?;
    let Some(result) = leaderboard::period_result(&state.db, kind.name(), key.as_deref()).await? else {
        return Err(ApiError::not_found(
            "period_not_closed",
            match params.period_key {
                Some(k) => format!("The {} period `{}` has not been closed (yet).", kind.name(), k.trim()),
                None => format!("No {} period has been closed yet.", kind.name()),
            },
        ));
    };
    let ids: Vec<Uuid> = result.standings.iter().map(|s| s.user_id).collect();
    let names = profiles::names(&state.db, &ids).await?;
    // Someone whose account was deleted since is left out, like from the live boards; the
    // others keep the ranks they finished with.
    let items = result
        .standings
        .0
        .into_iter()
        .filter_map(|s| {
            let name = names.get(&s.user_id)?;
            Some(FinalEntry {
                rank: s.rank,
                user_id: s.user_id,
                nickname: name.nickname.clone(),
                character_id: name.character_id.clone(),
                points: s.points,
            })
        })
        .collect();
    Ok((
        freshness.headers(),
        Json(Results {
            period_key: Period::public_key(&result.period_key).to_owned(),
            closed_at: result.closed_at,
            participants: result.participants,
            items,
            next_cursor: None,
        }),
    ))
}
