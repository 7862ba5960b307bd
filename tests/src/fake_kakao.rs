//! A local stand-in for the Kakao Local API (`/v2/local/search/address.json`,
//! `/v2/local/geo/coord2address.json`, `/v2/local/search/keyword.json`), answering in Kakao's
//! shapes, with switches for failure: 500s, slowness past any timeout, and the quota error.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

/// How the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Like Kakao on a good day.
    Normal,
    /// 500 with a Kakao error body.
    Down,
    /// Sleeps 5 s before answering.
    Slow,
    /// 429 with `code: -10` (API limit exceeded).
    OverQuota,
}

#[derive(Clone)]
struct Shared {
    mode: Arc<Mutex<Mode>>,
    calls: Arc<AtomicUsize>,
}

/// The fake Kakao Local API.
#[derive(Clone)]
pub struct FakeKakao {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    shared: Shared,
}

/// The key the fake accepts (`Authorization: KakaoAK test-kakao-key`).
pub const KEY: &str = "test-kakao-key";

async fn failure(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    shared.calls.fetch_add(1, Ordering::SeqCst);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("KakaoAK {KEY}")) {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"errorType": "AccessDeniedError", "message": "wrong appkey", "code": -401})),
            )
                .into_response(),
        );
    }
    let mode = *shared.mode.lock().unwrap();
    match mode {
        Mode::Normal => None,
        Mode::Down => Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"errorType": "InternalError", "message": "internal error", "code": -1})),
            )
                .into_response(),
        ),
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Some(Json(json!({"documents": [], "meta": {"total_count": 0}})).into_response())
        }
        Mode::OverQuota => Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"errorType": "RequestThrottled", "message": "API limit has been exceeded.", "code": -10})),
            )
                .into_response(),
        ),
    }
}

async fn address(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> Response {
    if let Some(r) = failure(&s, &headers).await {
        return r;
    }
    let query = q.iter().find(|(k, _)| k == "query").map(|(_, v)| v.clone()).unwrap_or_default();
    let documents = if query.contains("세종대로 110") {
        vec![json!({
            "address_name": "서울 중구 태평로1가 31", "address_type": "ROAD_ADDR", "x": "126.978652", "y": "37.566826",
            "address": {"address_name": "서울 중구 태평로1가 31", "region_1depth_name": "서울", "region_2depth_name": "중구", "region_3depth_name": "태평로1가"},
            "road_address": {"address_name": "서울 중구 세종대로 110", "region_1depth_name": "서울", "road_name": "세종대로", "building_name": "서울특별시청"}
        })]
    } else if query.contains("해운대") {
        vec![json!({
            "address_name": "부산 해운대구 우동", "address_type": "REGION", "x": "129.158", "y": "35.163",
            "address": {"address_name": "부산 해운대구 우동", "region_1depth_name": "부산", "region_2depth_name": "해운대구"},
            "road_address": null
        })]
    } else {
        vec![]
    };
    let n = documents.len();
    Json(json!({"documents": documents, "meta": {"total_count": n, "pageable_count": n, "is_end": true}}))
        .into_response()
}

async fn coord2address(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(r) = failure(&s, &headers).await {
        return r;
    }
    let x: f64 = q.iter().find(|(k, _)| k == "x").and_then(|(_, v)| v.parse().ok()).unwrap_or(0.0);
    let documents: Vec<Value> = if (124.0..132.0).contains(&x) {
        if x > 128.5 {
            vec![
                json!({"road_address": null, "address": {"address_name": "제주특별자치도 제주시 연동", "region_1depth_name": "제주특별자치도", "region_2depth_name": "제주시"}}),
            ]
        } else {
            vec![json!({
                "road_address": {"address_name": "서울 중구 세종대로 110", "region_1depth_name": "서울"},
                "address": {"address_name": "서울 중구 태평로1가 31", "region_1depth_name": "서울", "region_2depth_name": "중구", "region_3depth_name": "태평로1가"}
            })]
        }
    } else {
        vec![]
    };
    let n = documents.len();
    Json(json!({"documents": documents, "meta": {"total_count": n}})).into_response()
}

async fn keyword(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> Response {
    if let Some(r) = failure(&s, &headers).await {
        return r;
    }
    let query = q.iter().find(|(k, _)| k == "query").map(|(_, v)| v.clone()).unwrap_or_default();
    let documents = if query.contains("재활용") {
        vec![
            json!({"id": "1", "place_name": "중구 재활용선별장", "category_name": "사회,공공기관 > 행정기관", "phone": "02-3396-4114",
                   "address_name": "서울 중구 신당동 1", "road_address_name": "서울 중구 다산로 1", "x": "127.0120", "y": "37.5600",
                   "distance": "1502", "place_url": "http://place.map.kakao.com/1"}),
            json!({"id": "2", "place_name": "종로 자원순환센터", "category_name": "사회,공공기관", "phone": "",
                   "address_name": "서울 종로구 1", "road_address_name": "", "x": "126.9900", "y": "37.5800",
                   "distance": "2210", "place_url": "http://place.map.kakao.com/2"}),
        ]
    } else {
        vec![]
    };
    let n = documents.len();
    Json(json!({"documents": documents, "meta": {"total_count": n, "is_end": true}})).into_response()
}

impl FakeKakao {
    /// Starts the fake on a free port.
    pub async fn start() -> Self {
        let shared = Shared { mode: Arc::new(Mutex::new(Mode::Normal)), calls: Arc::new(AtomicUsize::new(0)) };
        let app = Router::new()
            .route("/v2/local/search/address.json", get(address))
            .route("/v2/local/geo/coord2address.json", get(coord2address))
            .route("/v2/local/search/keyword.json", get(keyword))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, shared }
    }

    /// Changes how it answers from now on.
    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Requests it has received.
    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }
}
