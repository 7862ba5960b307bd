//! The recycling guide: categories, items, search, regional rules, FAQ and statistics. Public
//! (no sign-in needed: the app shows the guide before an account exists).
//!
//! Served from `read.guide_*` (projection.guide) through a Redis cache keyed by the guide's
//! generation (see `readmodels::guide`): a content change bumps the generation and every cached
//! answer is invalidated at once. Redis down: answers come from PostgreSQL. A caller holding a
//! consistency token from an admin edit waits for it and reads PostgreSQL directly.
//!
//! **Search** matches Korean and English: lower-cased names and keywords of each item against
//! the query by trigram word similarity (partial words and typos: `페트` finds `페트병`,
//! `botle` finds `bottle`), plus full-text matching of whole words (`simple` dictionary, which
//! suits Korean's space-separated words without a morphological analyser). The ranking puts
//! exact names first, then name similarity, then keyword similarity and text rank.

use axum::{Json, extract::State, http::HeaderMap};
use chrono::Utc;
use events::Category;
use platform::{
    error::{ApiError, ApiJson, ApiPath, ApiQuery, FieldError},
    topology::GUIDE,
};
use readmodels::{
    guide::{
        CACHE_TTL_SECS, cache_key,
        catalogue::{self, CategoryStats, Faq, Hit, Item, RegionRules},
        generation_key,
    },
    periods::Period,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{AppState, consistency::Consistency};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(categories))
        .routes(routes!(items))
        .routes(routes!(item))
        .routes(routes!(search))
        .routes(routes!(search_post))
        .routes(routes!(rules))
        .routes(routes!(faqs))
        .routes(routes!(faq))
        .routes(routes!(stats))
}

/// The nine categories: code, Korean and English name.
/// `value` as a category code, or what is wrong with `field`.
pub(super) fn known_category(field: &str, value: &str) -> Result<&'static str, FieldError> {
    Category::ALL.iter().map(|c| c.code()).find(|c| *c == value).ok_or_else(|| {
        let known: Vec<&str> = Category::ALL.iter().map(|c| c.code()).collect();
        FieldError::new(field, format!("must be one of {}", known.join(", ")))
    })
}

fn category_code(value: &str) -> Result<&'static str, ApiError> {
    known_category("category", value).map_err(|e| ApiError::Validation(vec![e]))
}

/// Where a cached answer lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Redis, shared by every replica: answers from a fixed, small set of keys.
    Shared,
    /// This process, bounded ([`crate::LOCAL_CACHE_ENTRIES`]): answers keyed by what a client
    /// sends (queries, ids, cursors), which anyone could vary without end.
    Local,
}

/// Answers `what` from the cache of the current guide generation, or computes and caches it.
/// `fresh`: the caller waited for a token; read PostgreSQL and leave the cache alone. While
/// Redis is down the generation is unknown, so nothing is cached or served from a cache.
async fn cached<T, F>(state: &AppState, what: &str, scope: Scope, fresh: bool, compute: F) -> Result<T, ApiError>
where
    T: Serialize + DeserializeOwned,
    F: Future<Output = Result<T, ApiError>>,
{
    if fresh {
        return compute.await;
    }
    let redis = &state.redis;
    // INCR stores the generation as a bare number, which reads as JSON.
    let generation: Option<i64> = redis.get_json(&generation_key(redis)).await;
    if scope == Scope::Local && generation.is_none() {
        return compute.await;
    }
    let key = cache_key(redis, generation.unwrap_or(0), what);
    let hit: Option<T> = match scope {
        Scope::Shared => redis.get_json(&key).await,
        Scope::Local => state.local_cache.get(&key).and_then(|json| serde_json::from_str(&json).ok()),
    };
    if let Some(value) = hit {
        metrics::counter!("cache_requests_total", "cache" => "guide", "result" => "hit").increment(1);
        return Ok(value);
    }
    metrics::counter!("cache_requests_total", "cache" => "guide", "result" => "miss").increment(1);
    let value = compute.await?;
    match scope {
        Scope::Shared => redis.set_json(key, &value, CACHE_TTL_SECS).await,
        Scope::Local => {
            if let Ok(json) = serde_json::to_string(&value) {
                state.local_cache.insert(key, json.into());
            }
        }
    }
    Ok(value)
}

/// A category with how many items the guide has in it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CategoryInfo {
    /// Code, e.g. `plastic`.
    pub code: String,
    /// Korean name.
    pub name_ko: String,
    /// English name.
    pub name_en: String,
    /// Items of the guide in it.
    pub item_count: i64,
}

/// The categories (one page).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CategoryList {
    /// The nine categories, in a fixed order.
    pub items: Vec<CategoryInfo>,
    /// Always `null`: they fit in one page.
    pub next_cursor: Option<String>,
}

/// The nine waste categories.
#[utoipa::path(get, path = "/recycle/categories", tag = "guide", responses((status = 200, body = CategoryList)))]
async fn categories(State(state): State<AppState>) -> Result<Json<CategoryList>, ApiError> {
    let answer = cached(&state, "categories", Scope::Shared, false, async {
        Ok(catalogue::item_counts(&state.db)
            .await?
            .into_iter()
            .map(|(category, item_count)| {
                let (name_ko, name_en) = category.names();
                CategoryInfo {
                    code: category.code().into(),
                    name_ko: name_ko.into(),
                    name_en: name_en.into(),
                    item_count,
                }
            })
            .collect())
    })
    .await?;
    Ok(Json(CategoryList { items: answer, next_cursor: None }))
}

/// The list name in item cursors.
const ITEMS_CURSOR: &str = "guide-items";

/// A page of items.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ItemPage {
    /// Items in Korean alphabetical order.
    pub items: Vec<Item>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Query parameters of the item list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemsParams {
    /// Only this category.
    #[param(value_type = Option<events::Category>)]
    pub category: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn period_schema() -> utoipa::openapi::Object {
    let names: Vec<&str> = Period::ALL.iter().map(|p| p.name()).collect();
    platform::openapi::string_enum(&names, "`weekly`, `monthly` or `all-time` (default `weekly`)")
}

fn limit(value: Option<i64>) -> Result<i64, ApiError> {
    match value.unwrap_or(20) {
        n @ 1..=100 => Ok(n),
        _ => Err(ApiError::invalid("limit", "must be between 1 and 100")),
    }
}

/// Items of the guide, by category, in pages.
#[utoipa::path(get, path = "/recycle/items", tag = "guide", params(ItemsParams),
    responses((status = 200, body = ItemPage), (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn items(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ItemsParams>,
) -> Result<Json<ItemPage>, ApiError> {
    let category = params.category.as_deref().map(category_code).transpose()?;
    let limit = limit(params.limit)?;
    let after: Option<(String, Uuid)> =
        params.cursor.as_deref().map(|c| platform::cursor::decode(ITEMS_CURSOR, c)).transpose()?;
    let what = format!("items:{}:{limit}:{}", category.unwrap_or("*"), params.cursor.as_deref().unwrap_or(""));
    let page = cached(&state, &what, Scope::Local, false, async {
        let (rows, more) = catalogue::items(&state.db, category, after.as_ref(), limit).await?;
        let next_cursor = if more {
            rows.last().map(|last| platform::cursor::encode(ITEMS_CURSOR, &(last.name_ko.clone(), last.id)))
        } else {
            None
        };
        Ok(ItemPage { items: rows, next_cursor })
    })
    .await?;
    Ok(Json(page))
}

/// One item.
#[utoipa::path(get, path = "/recycle/items/{id}", tag = "guide",
    params(("id" = Uuid, Path, description = "Item id"), ("x-consistency-token" = Option<String>, Header, description = "Token from an admin edit")),
    responses((status = 200, body = Item), (status = 404, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn item(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    consistency: Consistency,
) -> Result<(HeaderMap, Json<Item>), ApiError> {
    let fresh = consistency.wait(&state, &[&GUIDE]).await?;
    let found: Option<Item> = cached(&state, &format!("item:{id}"), Scope::Local, fresh.requires_primary(), async {
        Ok(catalogue::item(&state.db, id).await?)
    })
    .await?;
    let item = found.ok_or_else(|| ApiError::not_found("item_not_found", format!("no item {id} in the guide")))?;
    Ok((fresh.headers(), Json(item)))
}

/// Search results, best first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchResult {
    /// Hits, best first.
    pub items: Vec<Hit>,
    /// Always `null`: the best `limit` hits are the whole answer.
    pub next_cursor: Option<String>,
    /// The query as understood (trimmed, lower-cased).
    pub query: String,
}

/// A search.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// What to look for, 1 to 100 characters, Korean or English.
    #[param(required = true, min_length = 1, max_length = 100)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100)]
    pub q: Option<String>,
    /// Only this category.
    #[param(value_type = Option<events::Category>)]
    #[schema(value_type = Option<events::Category>)]
    pub category: Option<String>,
    /// Hits, 1 to 50 (default 20).
    #[param(minimum = 1, maximum = 50)]
    #[schema(minimum = 1, maximum = 50)]
    #[serde(default, deserialize_with = "events::integer_param")]
    pub limit: Option<i64>,
}

async fn run_search(state: &AppState, params: SearchParams) -> Result<SearchResult, ApiError> {
    let q = params.q.as_deref().map(str::trim).unwrap_or_default().to_lowercase();
    let len = q.chars().count();
    if len == 0 {
        return Err(ApiError::invalid("q", "must not be empty"));
    }
    if len > 100 {
        return Err(ApiError::invalid("q", "must be at most 100 characters"));
    }
    let category = params.category.as_deref().map(category_code).transpose()?;
    let limit = match params.limit.unwrap_or(20) {
        n @ 1..=50 => n,
        _ => return Err(ApiError::invalid("limit", "must be between 1 and 50")),
    };
    let what = format!("search:{}:{limit}:{q}", category.unwrap_or("*"));
    let keys = readmodels::guide::search::QueryKeys::new(&q);
    cached(state, &what, Scope::Local, false, async {
        let items = catalogue::search(&state.db, &keys, category, limit).await?;
        Ok(SearchResult { items, next_cursor: None, query: q.clone() })
    })
    .await
}

/// Search the guide (Korean or English; partial words and typos welcome).
#[utoipa::path(get, path = "/recycle/search", tag = "guide", params(SearchParams),
    responses((status = 200, body = SearchResult), (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn search(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchResult>, ApiError> {
    Ok(Json(run_search(&state, params).await?))
}

/// The same search, with the query in the body.
#[utoipa::path(post, path = "/recycle/items/search", tag = "guide", request_body = SearchParams,
    responses((status = 200, body = SearchResult), (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn search_post(
    State(state): State<AppState>,
    ApiJson(params): ApiJson<SearchParams>,
) -> Result<Json<SearchResult>, ApiError> {
    Ok(Json(run_search(&state, params).await?))
}

/// Disposal rules of one of the 17 metropolitan cities and provinces, by code (`seoul`), English
/// name (`Seoul`) or Korean name (`서울특별시`).
#[utoipa::path(get, path = "/recycle/rules/{region}", tag = "guide",
    params(("region" = String, Path, description = "Region code or name")),
    responses((status = 200, body = RegionRules), (status = 404, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn rules(State(state): State<AppState>, ApiPath(region): ApiPath<String>) -> Result<Json<RegionRules>, ApiError> {
    let wanted = region.trim().to_lowercase();
    if wanted.is_empty() || wanted.chars().count() > 50 {
        return Err(ApiError::invalid("region", "must be 1 to 50 characters"));
    }
    let found: Option<RegionRules> = cached(&state, &format!("rules:{wanted}"), Scope::Local, false, async {
        Ok(catalogue::region(&state.db, &wanted).await?)
    })
    .await?;
    match found {
        Some(r) => Ok(Json(r)),
        None => {
            let codes = catalogue::region_codes(&state.db).await?;
            Err(ApiError::not_found("region_not_found", format!("no region `{region}`; known: {}", codes.join(", "))))
        }
    }
}

/// Query parameters of the FAQ.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FaqParams {
    /// Only questions about this category.
    #[param(value_type = Option<events::Category>)]
    pub category: Option<String>,
}

/// The FAQ, in order.
#[utoipa::path(get, path = "/recycle/faq", tag = "guide", params(FaqParams),
    responses((status = 200, body = FaqList), (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn faqs(State(state): State<AppState>, ApiQuery(params): ApiQuery<FaqParams>) -> Result<Json<FaqList>, ApiError> {
    let category = params.category.as_deref().map(category_code).transpose()?;
    let list = cached(&state, &format!("faq:{}", category.unwrap_or("*")), Scope::Shared, false, async {
        Ok(catalogue::faqs(&state.db, category).await?)
    })
    .await?;
    Ok(Json(FaqList { items: list, next_cursor: None }))
}

/// The FAQ (one page: a few dozen questions).
#[derive(Debug, Serialize, ToSchema)]
pub struct FaqList {
    /// Questions, in order.
    pub items: Vec<Faq>,
    /// Always `null`: they fit in one page.
    pub next_cursor: Option<String>,
}

/// One question.
#[utoipa::path(get, path = "/recycle/faq/{id}", tag = "guide",
    params(("id" = Uuid, Path, description = "Question id"), ("x-consistency-token" = Option<String>, Header, description = "Token from a command")),
    responses((status = 200, body = Faq), (status = 404, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn faq(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    consistency: Consistency,
) -> Result<(HeaderMap, Json<Faq>), ApiError> {
    let fresh = consistency.wait(&state, &[&GUIDE]).await?;
    let found: Option<Faq> = cached(&state, &format!("faq-one:{id}"), Scope::Local, fresh.requires_primary(), async {
        Ok(catalogue::faq(&state.db, id).await?)
    })
    .await?;
    let faq = found.ok_or_else(|| ApiError::not_found("faq_not_found", format!("no question {id} in the FAQ")))?;
    Ok((fresh.headers(), Json(faq)))
}

/// What people scan and recycle.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    /// The period, e.g. `2026-W47`, `2026-11` or `all` (as on the leaderboards).
    pub period_key: String,
    /// Every category, most scanned first.
    pub categories: Vec<CategoryStats>,
    /// Scans in all.
    pub total_scans: i64,
    /// Recycles in all.
    pub total_recycles: i64,
}

/// Query parameters of the statistics.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// The current period of this kind (default `weekly`).
    #[param(schema_with = period_schema)]
    pub period: Option<String>,
}

/// What people scan and recycle, by category, in the current week, month or all time.
#[utoipa::path(get, path = "/recycle/stats", tag = "guide", params(StatsParams),
    responses((status = 200, body = Stats), (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn stats(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<StatsParams>,
) -> Result<Json<Stats>, ApiError> {
    let period = match params.period.as_deref().unwrap_or("weekly") {
        "weekly" => Period::Weekly,
        "monthly" => Period::Monthly,
        "all-time" => Period::AllTime,
        _ => return Err(ApiError::invalid("period", "must be weekly, monthly or all-time")),
    };
    let period_key = period.key_at(Utc::now(), state.settings.app_timezone);
    let categories = catalogue::stats(&state.db, &period_key).await?;
    let total_scans = categories.iter().map(|c| c.scans).sum();
    let total_recycles = categories.iter().map(|c| c.recycles).sum();
    let period_key = Period::public_key(&period_key).to_owned();
    Ok(Json(Stats { period_key, categories, total_scans, total_recycles }))
}
