//! Recycling guide commands: admins edit items, questions and regional rules (each change is a
//! `guide.*` event that projection.guide applies and that invalidates the guide caches); any
//! signed-in user can mark an answer helpful, once.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use events::{
    Category, Event, FaqMarkedHelpful, GuideFaqRemoved, GuideFaqSaved, GuideItemRemoved, GuideItemSaved,
    GuideRegionSaved, RegionRule,
};
use platform::{
    auth::{AdminUser, AuthUser},
    error::{ApiError, ApiJson, ApiPath},
    eventstore,
    http::RequestId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    consistency_headers,
    content::{Edited, edited},
};
use crate::{
    AppState, SOURCE,
    content::{ContentKind, Saved, must_exist, rules, save},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_item))
        .routes(routes!(put_item, delete_item))
        .routes(routes!(create_faq))
        .routes(routes!(put_faq, delete_faq))
        .routes(routes!(put_rules))
        .routes(routes!(helpful))
}

/// An item of the guide, whole.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ItemRequest {
    /// Its category.
    pub category: Category,
    /// Korean name, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name_ko: String,
    /// English name, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name_en: String,
    /// How to dispose of it, 1 to 2000 characters.
    #[schema(min_length = 1, max_length = 2000)]
    pub disposal: String,
    /// What not to do (up to 20, each 1 to 300 characters).
    #[serde(default)]
    #[schema(schema_with = donts_schema)]
    pub donts: Vec<String>,
    /// Search keywords (up to 50, each 1 to 50 characters).
    #[serde(default)]
    #[schema(schema_with = keywords_schema)]
    pub keywords: Vec<String>,
}

fn donts_schema() -> utoipa::openapi::schema::Array {
    platform::openapi::text_list(20, 300, "What not to do (up to 20, each 1 to 300 characters)")
}

fn keywords_schema() -> utoipa::openapi::schema::Array {
    platform::openapi::text_list(50, 50, "Search keywords (up to 50, each 1 to 50 characters)")
}

impl ItemRequest {
    fn into_event(self, item_id: Uuid) -> Result<GuideItemSaved, ApiError> {
        let event = GuideItemSaved {
            item_id,
            category: self.category,
            name_ko: self.name_ko.trim().into(),
            name_en: self.name_en.trim().into(),
            disposal: self.disposal.trim().into(),
            donts: self.donts.iter().map(|d| d.trim().to_owned()).collect(),
            keywords: self.keywords.iter().map(|k| k.trim().to_owned()).collect(),
        };
        rules::item(&event).map_err(ApiError::Validation)?;
        Ok(event)
    }
}

async fn record(
    state: &AppState,
    kind: ContentKind,
    id: Uuid,
    data: events::EventData,
    request_id: Uuid,
) -> Result<Saved, ApiError> {
    let mut tx = state.outbox.begin().await?;
    let saved = save(&mut tx, kind, id, data, SOURCE, Some(request_id)).await?;
    tx.commit().await?;
    Ok(saved)
}

/// Add an item to the guide (admin only).
#[utoipa::path(post, path = "/admin/recycle/items", tag = "guide-admin", request_body = ItemRequest, security(("bearer" = [])),
    responses((status = 202, body = Edited, headers(("x-consistency-token" = String))),
              (status = 403, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn create_item(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<ItemRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let id = Uuid::now_v7();
    let data = body.into_event(id)?;
    let saved = record(&state, ContentKind::Item, id, data.into(), request_id).await?;
    tracing::info!(admin.id = %admin.sub, item.id = %id, "guide item added");
    Ok(edited(id, saved, false))
}

/// Replace an item of the guide (admin only).
#[utoipa::path(put, path = "/admin/recycle/items/{id}", tag = "guide-admin", request_body = ItemRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Item id")),
    responses((status = 202, body = Edited, headers(("x-consistency-token" = String))),
              (status = 404, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn put_item(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ItemRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let data = body.into_event(id)?;
    must_exist(&state.db, ContentKind::Item, id).await?;
    let saved = record(&state, ContentKind::Item, id, data.into(), request_id).await?;
    tracing::info!(admin.id = %admin.sub, item.id = %id, outcome = saved.as_str(), "guide item edited");
    Ok(edited(id, saved, false))
}

/// Remove an item from the guide (admin only).
#[utoipa::path(delete, path = "/admin/recycle/items/{id}", tag = "guide-admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Item id")),
    responses((status = 202, body = Edited, headers(("x-consistency-token" = String))),
              (status = 404, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn delete_item(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    must_exist(&state.db, ContentKind::Item, id).await?;
    let saved = record(&state, ContentKind::Item, id, GuideItemRemoved { item_id: id }.into(), request_id).await?;
    tracing::info!(admin.id = %admin.sub, item.id = %id, "guide item removed");
    Ok(edited(id, saved, true))
}

/// A question of the FAQ, whole.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FaqRequest {
    /// The category it is about, if one.
    pub category: Option<Category>,
    /// The question, 1 to 300 characters.
    #[schema(min_length = 1, max_length = 300)]
    pub question: String,
    /// The answer, 1 to 4000 characters.
    #[schema(min_length = 1, max_length = 4000)]
    pub answer: String,
    /// Place in the list, 0 to 10000.
    #[schema(minimum = 0, maximum = 10000)]
    #[serde(deserialize_with = "platform::error::json_integer")]
    pub position: i32,
}

impl FaqRequest {
    fn into_event(self, faq_id: Uuid) -> Result<GuideFaqSaved, ApiError> {
        let event = GuideFaqSaved {
            faq_id,
            category: self.category,
            question: self.question.trim().into(),
            answer: self.answer.trim().into(),
            position: self.position,
        };
        rules::faq(&event).map_err(ApiError::Validation)?;
        Ok(event)
    }
}

/// Add a question to the FAQ (admin only).
#[utoipa::path(post, path = "/admin/recycle/faq", tag = "guide-admin", request_body = FaqRequest, security(("bearer" = [])),
    responses((status = 202, body = Edited, headers(("x-consistency-token" = String))),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn create_faq(
    State(state): State<AppState>,
    _admin: AdminUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<FaqRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let id = Uuid::now_v7();
    let data = body.into_event(id)?;
    let saved = record(&state, ContentKind::Faq, id, data.into(), request_id).await?;
    Ok(edited(id, saved, false))
}

/// Replace a question of the FAQ (admin only).
#[utoipa::path(put, path = "/admin/recycle/faq/{id}", tag = "guide-admin", request_body = FaqRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Question id")),
    responses((status = 202, body = Edited, headers(("x-consistency-token" = String))),
              (status = 404, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn put_faq(
    State(state): State<AppState>,
    _admin: AdminUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<FaqRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let data = body.into_event(id)?;
    must_exist(&state.db, ContentKind::Faq, id).await?;
    let saved = record(&state, ContentKind::Faq, id, data.into(), request_id).await?;
    Ok(edited(id, saved, false))
}

/// Remove a question from the FAQ (admin only).
#[utoipa::path(delete, path = "/admin/recycle/faq/{id}", tag = "guide-admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Question id")),
    responses((status = 202, body = Edited, headers(("x-consistency-token" = String))),
              (status = 404, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn delete_faq(
    State(state): State<AppState>,
    _admin: AdminUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    must_exist(&state.db, ContentKind::Faq, id).await?;
    let saved = record(&state, ContentKind::Faq, id, GuideFaqRemoved { faq_id: id }.into(), request_id).await?;
    Ok(edited(id, saved, true))
}

/// A region's rules, whole.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RulesRequest {
    /// Korean name, 1 to 50 characters.
    #[schema(min_length = 1, max_length = 50)]
    pub name_ko: String,
    /// English name, 1 to 50 characters.
    #[schema(min_length = 1, max_length = 50)]
    pub name_en: String,
    /// When and where household waste goes out, 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500)]
    pub schedule: String,
    /// A rule per category (each category at most once).
    #[schema(max_items = 9)]
    pub rules: Vec<RegionRule>,
}

/// Replace a region's disposal rules (admin only). The 17 regions are fixed; their rules change.
#[utoipa::path(put, path = "/admin/recycle/rules/{region}", tag = "guide-admin", request_body = RulesRequest, security(("bearer" = [])),
    params(("region" = String, Path, description = "Region code, e.g. `seoul`")),
    responses((status = 202, body = Edited, headers(("x-consistency-token" = String))),
              (status = 404, body = platform::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn put_rules(
    State(state): State<AppState>,
    _admin: AdminUser,
    RequestId(request_id): RequestId,
    ApiPath(region): ApiPath<String>,
    ApiJson(body): ApiJson<RulesRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let mut data = GuideRegionSaved {
        region_id: Uuid::nil(),
        code: region.to_lowercase(),
        name_ko: body.name_ko.trim().into(),
        name_en: body.name_en.trim().into(),
        schedule: body.schedule.trim().into(),
        rules: body.rules,
    };
    rules::region(&data).map_err(ApiError::Validation)?;
    let id: Option<Uuid> = sqlx::query_scalar("select region_id from read.guide_regions where code = $1")
        .bind(region.to_lowercase())
        .fetch_optional(&state.db)
        .await?;
    let Some(id) = id.filter(|_| !region.is_empty()) else {
        return Err(ApiError::not_found("region_not_found", format!("no region `{region}`")));
    };
    data.region_id = id;
    let saved = record(&state, ContentKind::Region, id, data.into(), request_id).await?;
    Ok(edited(id, saved, false))
}

/// Whether the mark counted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Helpful {
    /// `true` the first time; `false` when this user had marked it already (nothing changes).
    pub counted: bool,
}

/// Mark an answer of the FAQ helpful (once per user; again is a no-op).
#[utoipa::path(post, path = "/recycle/faq/{id}/helpful", tag = "guide", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Question id")),
    responses((status = 202, body = Helpful, description = "Counted", headers(("x-consistency-token" = String))),
              (status = 200, body = Helpful, description = "Already counted"),
              (status = 404, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn helpful(
    State(state): State<AppState>,
    user: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<axum::response::Response, ApiError> {
    let user_id = user.0.sub;
    let mut tx = state.outbox.begin().await?;
    let live: bool =
        sqlx::query_scalar("select exists (select 1 from auth.users where id = $1 and deleted_at is null)")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
    if !live {
        return Err(ApiError::not_found("account_not_found", "This account no longer exists."));
    }
    must_exist(&mut *tx, ContentKind::Faq, id).await?;
    let first = sqlx::query("insert into app.faq_helpful (faq_id, user_id) values ($1, $2) on conflict do nothing")
        .bind(id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if !first {
        return Ok((StatusCode::OK, Json(Helpful { counted: false })).into_response());
    }
    let mut events =
        [Event::new(SOURCE, user_id, FaqMarkedHelpful { faq_id: id, user_id }.into())
            .caused_by(Some(request_id), None)];
    eventstore::append(&mut tx, &mut events).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, consistency_headers(vec![events[0].id]), Json(Helpful { counted: true })).into_response())
}
