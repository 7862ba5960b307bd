//! Geocoding through the Kakao Local API, against a local fake that answers in Kakao's shapes
//! and fails on demand.

use serde_json::{Value, json};
use tests::{
    Options, StatusCode, TestSystem,
    fake_kakao::{FakeKakao, Mode},
};

async fn with_kakao() -> (TestSystem, FakeKakao) {
    let kakao = FakeKakao::start().await;
    let system = TestSystem::start_with(Options {
        workers: false,
        kakao_local_base: Some(kakao.base.clone()),
        ..Default::default()
    })
    .await;
    (system, kakao)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_and_positions_resolve_through_kakao_and_are_cached() {
    let (system, kakao) = with_kakao().await;
    let res = system.post_query("/locations/geocode", &json!({"address": "서울 중구  세종대로 110"})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["road_address"], "서울 중구 세종대로 110");
    assert_eq!(res.body["region"], "seoul");
    assert!((res.body["latitude"].as_f64().unwrap() - 37.5668).abs() < 0.001);
    let calls = kakao.calls();
    let again = system.post_query("/locations/geocode", &json!({"address": "서울 중구 세종대로 110"})).await;
    assert_eq!(again.body, res.body);
    assert_eq!(kakao.calls(), calls, "the second lookup (same address, other spacing) came from the cache");
    system
        .post_query("/locations/geocode", &json!({"address": "없는 주소 999"}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "address_not_found");
    let busan = system.post_query("/locations/geocode", &json!({"address": "부산 해운대"})).await;
    assert_eq!((busan.body["region"].as_str(), busan.body["road_address"].clone()), (Some("busan"), Value::Null));

    let here = system.post_query("/locations/reverse", &json!({"latitude": 37.5668, "longitude": 126.9786})).await;
    assert_eq!(here.status, StatusCode::OK, "{}", here.body);
    assert_eq!((here.body["region"].as_str(), here.body["region_name"].as_str()), (Some("seoul"), Some("서울")));
    assert_eq!(here.body["address"], "서울 중구 태평로1가 31");
    let jeju = system.post_query("/locations/reverse", &json!({"latitude": 33.49, "longitude": 129.0})).await;
    assert_eq!(jeju.body["region"], "jeju", "{}", jeju.body);
    system
        .post_query("/locations/reverse", &json!({"latitude": 0.0, "longitude": 0.0}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "address_not_found");

    let centers = system
        .get("/locations/keyword?q=%EC%9E%AC%ED%99%9C%EC%9A%A9%EC%84%BC%ED%84%B0&latitude=37.5665&longitude=126.978")
        .await;
    assert_eq!(centers.status, StatusCode::OK, "{}", centers.body);
    let places = centers.body["items"].as_array().unwrap();
    assert_eq!(places.len(), 2);
    assert_eq!(places[0]["name"], "중구 재활용선별장");
    assert_eq!(places[0]["distance_m"], 1502.0);
    assert_eq!(places[1]["phone"], Value::Null, "empty strings become null");
    let default_query = system.get("/locations/keyword?latitude=37.5665&longitude=126.978").await;
    assert_eq!(default_query.body["items"].as_array().unwrap().len(), 2, "the default keyword is 재활용센터");

    for (path, body) in [
        ("/locations/geocode", json!({"address": ""})),
        ("/locations/geocode", json!({"address": "가".repeat(201)})),
        ("/locations/reverse", json!({"latitude": 91.0, "longitude": 0.0})),
        ("/locations/reverse", json!({"latitude": 0.0, "longitude": -181.0})),
    ] {
        system.post_query(path, &body).await.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    system
        .post_query("/locations/reverse", &json!({"latitude": "north"}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    for bad in [
        "/locations/keyword?latitude=37.5",
        "/locations/keyword?latitude=37.5&longitude=127&radius=50000",
        "/locations/keyword?latitude=99&longitude=127",
    ] {
        system.get(bad).await.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kakao_errors_timeouts_and_quota_are_clear_503s_and_the_breaker_opens() {
    let (system, kakao) = with_kakao().await;
    // Over quota: Kakao's code -10.
    kakao.set_mode(Mode::OverQuota);
    let res = system.post_query("/locations/geocode", &json!({"address": "서울 중구 세종대로 110"})).await;
    res.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "geocoding_quota_exceeded");
    assert!(res.header("retry-after").is_some());
    // Down, then slow past the 500 ms timeout: 503 geocoding_unavailable, never a 500.
    kakao.set_mode(Mode::Down);
    system
        .post_query("/locations/geocode", &json!({"address": "다른 주소 1"}))
        .await
        .assert_problem(StatusCode::SERVICE_UNAVAILABLE, "geocoding_unavailable");
    kakao.set_mode(Mode::Slow);
    let started = std::time::Instant::now();
    let slow = system.post_query("/locations/reverse", &json!({"latitude": 37.1, "longitude": 127.1})).await;
    slow.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "geocoding_unavailable");
    assert!(slow.body["detail"].as_str().unwrap().contains("timed out"), "{}", slow.body);
    assert!(started.elapsed().as_secs_f64() < 3.0, "the timeout cut the wait");
    // Two more failures make five in a row: the breaker opens and Kakao is left alone.
    kakao.set_mode(Mode::Down);
    for i in 0..2 {
        system.post_query("/locations/geocode", &json!({"address": format!("주소 {i}")})).await;
    }
    let before = kakao.calls();
    kakao.set_mode(Mode::Normal);
    let rejected = system.post_query("/locations/geocode", &json!({"address": "부산 해운대"})).await;
    rejected.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "geocoding_unavailable");
    assert!(rejected.body["detail"].as_str().unwrap().contains("not calling it"), "{}", rejected.body);
    assert_eq!(kakao.calls(), before, "an open breaker does not call Kakao");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_geocoding_says_it_is_not_configured() {
    let system = TestSystem::start_with(Options { workers: false, ..Default::default() }).await;
    system
        .post_query("/locations/geocode", &json!({"address": "서울 중구 세종대로 110"}))
        .await
        .assert_problem(StatusCode::SERVICE_UNAVAILABLE, "geocoding_not_configured");
}
