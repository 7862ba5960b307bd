//! What to do with something just scanned: the guide item that best matches it, the disposal
//! rule of the user's region, and the nearest bin that takes its category. `POST /scans`
//! (command-api) answers it at once; `GET /scans/{id}/guidance` (query-api) answers it for any
//! scan of the caller, including those recorded by other services. Read from the read models
//! (`read.guide_items`, `read.saved_places`, `read.guide_regions`, `read.places`).

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::search::{MIN_SCORE, QueryKeys, SEARCH_SQL};

/// How far the nearest bin may be, in metres.
pub const BIN_RADIUS_M: f64 = 20_000.0;

/// What to do with a scanned item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Guidance {
    /// The guide item that best matches the scanned name within the scan's category (any
    /// category when none does); null when nothing in the guide matches.
    pub item: Option<GuidanceItem>,
    /// The rule for the category in the region of the user's default saved place; null without
    /// a default place, or when its address names no region we know.
    pub region_rule: Option<RegionalRule>,
    /// The nearest bin that takes the category, within 20 km of the default saved place; null
    /// without a default place or such a bin.
    pub nearest_bin: Option<NearestBin>,
}

/// A guide item, as guidance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct GuidanceItem {
    /// The item's id.
    #[sqlx(rename = "item_id")]
    pub id: Uuid,
    /// Its category.
    pub category: String,
    /// Korean name.
    pub name_ko: String,
    /// English name.
    pub name_en: String,
    /// How to dispose of it.
    pub disposal: String,
    /// What not to do.
    pub donts: Vec<String>,
}

/// A region's rule for one category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegionalRule {
    /// Region code, e.g. `seoul`.
    pub region: String,
    /// Korean name of the region.
    pub name_ko: String,
    /// English name of the region.
    pub name_en: String,
    /// The category.
    pub category: String,
    /// How, in this region.
    pub rule: String,
    /// When and where household waste goes out there.
    pub schedule: String,
}

/// The nearest bin that takes a category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct NearestBin {
    /// The bin's id.
    #[sqlx(rename = "place_id")]
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its address.
    pub address: String,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// From the default saved place, in metres.
    pub distance_m: f64,
}

/// Region codes by how addresses start (`서울 마포구 …`, `경기도 광주시 …`, `충북 청주시 …`):
/// the first word of a Korean address names its metropolitan city or province.
const REGION_PREFIXES: [(&str, &[&str]); 17] = [
    ("seoul", &["서울"]),
    ("busan", &["부산"]),
    ("daegu", &["대구"]),
    ("incheon", &["인천"]),
    ("gwangju", &["광주"]),
    ("daejeon", &["대전"]),
    ("ulsan", &["울산"]),
    ("sejong", &["세종"]),
    ("gyeonggi", &["경기"]),
    ("gangwon", &["강원"]),
    ("chungbuk", &["충북", "충청북도"]),
    ("chungnam", &["충남", "충청남도"]),
    ("jeonbuk", &["전북", "전라북도"]),
    ("jeonnam", &["전남", "전라남도"]),
    ("gyeongbuk", &["경북", "경상북도"]),
    ("gyeongnam", &["경남", "경상남도"]),
    ("jeju", &["제주"]),
];

/// The region code an address is in, from its first word (Korean, or the region's code).
pub fn region_of_address(address: &str) -> Option<&'static str> {
    let first = address.split_whitespace().next()?;
    let lower = first.to_lowercase();
    REGION_PREFIXES
        .iter()
        .find(|(code, prefixes)| prefixes.iter().any(|p| first.starts_with(p)) || lower.starts_with(code))
        .map(|(code, _)| *code)
}

/// Guidance for `user_id` having scanned `item_name` as `category`.
pub async fn for_scan(db: &PgPool, user_id: Uuid, item_name: &str, category: &str) -> sqlx::Result<Guidance> {
    let item = match best_item(db, item_name, Some(category)).await? {
        Some(item) => Some(item),
        None => best_item(db, item_name, None).await?,
    };
    let Some(home) = crate::places::default_place(db, user_id).await? else {
        return Ok(Guidance { item, region_rule: None, nearest_bin: None });
    };
    let region_rule = match home.address.as_deref().and_then(region_of_address) {
        Some(code) => region_rule(db, code, category).await?,
        None => None,
    };
    let nearest_bin = sqlx::query_as(
        "select place_id, name, address, latitude, longitude,
                earth_distance(ll_to_earth($1, $2), ll_to_earth(latitude, longitude)) as distance_m
         from read.places
         where not removed and kind = 'bin' and $3 = any(categories)
           and earth_box(ll_to_earth($1, $2), $4) @> ll_to_earth(latitude, longitude)
           and earth_distance(ll_to_earth($1, $2), ll_to_earth(latitude, longitude)) <= $4
         order by distance_m, place_id limit 1",
    )
    .bind(home.latitude)
    .bind(home.longitude)
    .bind(category)
    .bind(BIN_RADIUS_M)
    .fetch_optional(db)
    .await?;
    Ok(Guidance { item, region_rule, nearest_bin })
}

async fn best_item(db: &PgPool, item_name: &str, category: Option<&str>) -> sqlx::Result<Option<GuidanceItem>> {
    let keys = QueryKeys::new(item_name.trim());
    sqlx::query_as(SEARCH_SQL)
        .bind(&keys.exact)
        .bind(&keys.korean)
        .bind(&keys.english)
        .bind(&keys.initials)
        .bind(category)
        .bind(MIN_SCORE)
        .bind(1_i64)
        .fetch_optional(db)
        .await
}

async fn region_rule(db: &PgPool, code: &str, category: &str) -> sqlx::Result<Option<RegionalRule>> {
    /// A region with its rule for one category, if it has one.
    #[derive(sqlx::FromRow)]
    struct Row {
        code: String,
        name_ko: String,
        name_en: String,
        schedule: String,
        rule: Option<String>,
    }
    let row: Option<Row> = sqlx::query_as(
        "select code, name_ko, name_en, schedule,
                (select r->>'rule' from jsonb_array_elements(rules) r where r->>'category' = $2 limit 1) as rule
         from read.guide_regions where code = $1",
    )
    .bind(code)
    .bind(category)
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|r| {
        Some(RegionalRule {
            region: r.code,
            name_ko: r.name_ko,
            name_en: r.name_en,
            category: category.to_owned(),
            rule: r.rule?,
            schedule: r.schedule,
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_word_of_an_address_names_its_region() {
        assert_eq!(region_of_address("서울 마포구 하늘공원로 86"), Some("seoul"));
        assert_eq!(region_of_address("서울특별시 중구 세종대로 110"), Some("seoul"));
        assert_eq!(region_of_address("경기도 광주시 광주대로 1"), Some("gyeonggi"), "not Gwangju city");
        assert_eq!(region_of_address("광주광역시 북구 용봉로 77"), Some("gwangju"));
        assert_eq!(region_of_address("충청남도 천안시"), Some("chungnam"));
        assert_eq!(region_of_address("충북 청주시"), Some("chungbuk"));
        assert_eq!(region_of_address("Seoul, Jung-gu"), Some("seoul"));
        assert_eq!(region_of_address("  "), None);
        assert_eq!(region_of_address("Tokyo"), None);
    }
}
