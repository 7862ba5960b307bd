//! What a hostile or careless client gets: a clear 4xx problem+json, never a 500 or an empty
//! body; connections that dawdle are cut off; nothing it sends can grow Redis without bound.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{Response, StatusCode, TestSystem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn field_of(res: &Response) -> String {
    res.body["errors"][0]["field"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_are_refused_with_the_field_everywhere_text_enters() {
    let system = TestSystem::start().await;
    let user = system.register("textual").await;
    let nul = "a\u{0}b";

    // Bodies, with and without a token.
    let login = system.post("/api/v1/auth/login", &json!({"email": nul, "password": "recycle2026"})).await;
    login.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(field_of(&login), "email");
    let forgot = system.post("/api/v1/auth/forgot-password", &json!({"email": format!("x{nul}@example.com")})).await;
    forgot.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let scan =
        system.command("/api/v1/scans", &user.access_token, &json!({"category": "plastic", "item_name": nul})).await;
    scan.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(field_of(&scan), "item_name");
    assert!(scan.body["errors"][0]["message"].as_str().unwrap().contains("NUL"), "{}", scan.body);
    let bio = system.send(reqwest::Method::PATCH, "/users/me", &user.access_token, Some(json!({"bio": nul}))).await;
    bio.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(field_of(&bio), "bio");
    let label = system
        .command(
            "/api/v1/locations/me",
            &user.access_token,
            &json!({"label": "home\u{1b}", "latitude": 37.5, "longitude": 127.0}),
        )
        .await;
    label.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(field_of(&label), "label");
    // Line breaks: fine in a bio, not in a nickname.
    let ok = system
        .send(reqwest::Method::PATCH, "/users/me", &user.access_token, Some(json!({"bio": "line one\nline two"})))
        .await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "{}", ok.body);
    let two_lines = system
        .send(reqwest::Method::PATCH, "/users/me", &user.access_token, Some(json!({"nickname": "two\nlines"})))
        .await;
    assert_eq!(field_of(&two_lines), "nickname");

    // Query strings and path segments, without a token.
    let search = system.get("/recycle/search?q=a%00b").await;
    search.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(field_of(&search), "q");
    let posted = system.post_query("/recycle/items/search", &json!({"q": nul})).await;
    posted.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let rules = system.get("/recycle/rules/se%00oul").await;
    rules.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(field_of(&rules), "region");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_problem_json_including_the_routers_own() {
    let system = TestSystem::start().await;
    let user = system.register("errors").await;
    let http = &system.http;

    let missing = Response::read(http.get(format!("{}/api/v1/nowhere", system.query_url)).send().await.unwrap()).await;
    missing.assert_problem(StatusCode::NOT_FOUND, "route_not_found");

    let wrong_method =
        Response::read(http.delete(format!("{}/api/v1/scans", system.command_url)).send().await.unwrap()).await;
    wrong_method.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(wrong_method.header("allow").as_deref(), Some("POST"));

    let huge = format!(r#"{{"category": "plastic", "item_name": "{}"}}"#, "x".repeat(3 * 1024 * 1024));
    // The server answers 413 without reading the rest and closes the connection: a client of
    // its own, so no later request reuses that connection.
    let once = reqwest::Client::new();
    let too_large = Response::read(
        once.post(format!("{}/api/v1/scans", system.command_url))
            .bearer_auth(&user.access_token)
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
            .unwrap(),
    )
    .await;
    too_large.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    let wrong_type = Response::read(
        http.post(format!("{}/api/v1/scans", system.command_url))
            .bearer_auth(&user.access_token)
            .header("content-type", "text/plain")
            .body("scan please")
            .send()
            .await
            .unwrap(),
    )
    .await;
    wrong_type.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");

    let big_header = Response::read(
        http.get(format!("{}/api/v1/recycle/categories", system.query_url))
            .header("x-padding", "p".repeat(20 * 1024))
            .send()
            .await
            .unwrap(),
    )
    .await;
    big_header.assert_problem(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large");
    assert!(big_header.header("x-request-id").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_refuse_non_admins_before_reading_the_body() {
    let system = TestSystem::start().await;
    let user = system.register("not_admin").await;
    let res = system.command("/api/v1/admin/points/bonus", &user.access_token, &json!({"amount": "lots"})).await;
    res.assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let res =
        system.send(reqwest::Method::PUT, "/admin/recycle/rules/seoul", &user.access_token, Some(json!([]))).await;
    res.assert_problem(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_connections_are_closed() {
    let system = TestSystem::start_with(tests::Options {
        configure: |s| {
            s.http_header_read_timeout = Duration::from_millis(500);
            s.http_idle_timeout = Duration::from_secs(1);
        },
        ..Default::default()
    })
    .await;
    let addr = system.query_url.trim_start_matches("http://").to_owned();
    // Half the headers, then nothing.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // Nothing at all.
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    for (name, stream) in [("slow headers", &mut slow), ("silent", &mut silent)] {
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "{name}: the server closed the connection");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_searches_do_not_grow_redis() {
    let system = TestSystem::start().await;
    let redis = platform::redis::Redis::new(&system.settings).unwrap();
    let pattern = format!("{}:*", system.settings.redis_prefix);
    let count_keys = || {
        let (redis, pattern) = (redis.clone(), pattern.clone());
        async move {
            let keys: Vec<String> = redis
                .run(|mut c| async move { redis::cmd("KEYS").arg(pattern).query_async(&mut c).await })
                .await
                .unwrap();
            keys.len()
        }
    };
    let before = count_keys().await;
    for i in 0..200 {
        let res = system.get(&format!("/recycle/search?q=random{i}x&limit=5")).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let res = system.get(&format!("/recycle/items/{}", uuid::Uuid::now_v7())).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
    }
    let after = count_keys().await;
    assert!(after <= before + 5, "200 distinct searches added {} Redis keys", after - before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_parameters_are_published_in_the_query() {
    let system = TestSystem::start().await;
    for base in [&system.query_url, &system.command_url] {
        let spec: Value = system.http.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
        let mut checked = 0;
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let name = p["name"].as_str().unwrap();
                    if p["in"] == "path" {
                        assert!(path.contains(&format!("{{{name}}}")), "{path}: `{name}` is no path parameter");
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 0);
    }
    let spec: Value =
        system.http.get(format!("{}/openapi.json", system.query_url)).send().await.unwrap().json().await.unwrap();
    let search = &spec["paths"]["/api/v1/recycle/search"]["get"]["parameters"];
    assert!(search.as_array().unwrap().iter().any(|p| p["name"] == "q" && p["in"] == "query"), "{search}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_per_route_class_answer_429_with_their_headers() {
    let system = TestSystem::start_with(tests::Options {
        configure: |s| {
            s.rate_limit_auth_per_min = 3;
            s.rate_limit_reads_per_min = 5;
        },
        ..Default::default()
    })
    .await;
    let user = system.register("limited").await; // 1 of 3 sign-in class requests
    let mut last = None;
    for _ in 0..3 {
        last = Some(system.post("/api/v1/auth/refresh", &json!({"refresh_token": "nope"})).await);
    }
    let limited = last.unwrap();
    limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(limited.header("ratelimit-policy").as_deref(), Some("\"auth\";q=3;w=60"));
    assert!(limited.header("ratelimit").unwrap().starts_with("\"auth\";r=0;t="));

    // Reads count per user: this user's sixth read is refused, another user's first is not.
    for i in 0..5 {
        let res = system.query("/api/v1/users/me", &user.access_token, None).await;
        assert_ne!(res.status, StatusCode::TOO_MANY_REQUESTS, "read {i}");
        assert!(res.header("ratelimit").unwrap().starts_with("\"reads\";r="));
    }
    let sixth = system.query("/api/v1/users/me", &user.access_token, None).await;
    sixth.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Ops routes are never limited.
    let health = system.http.get(format!("{}/health", system.query_url)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_has_one_shape_and_one_cursor_format() {
    let system = TestSystem::start().await;
    workers::seed::seed(&system.db).await.unwrap();
    let user = system.register("lister").await;
    system.query("/api/v1/users/me", &user.access_token, Some(&user.consistency_token)).await;
    let public = [
        "/recycle/categories",
        "/recycle/faq",
        "/recycle/items?limit=2",
        "/recycle/search?q=bottle",
        "/locations/bins?latitude=37.5665&longitude=126.978",
        "/locations/centers?latitude=37.5665&longitude=126.978&radius=20000",
    ];
    for path in public {
        let res = system.get(path).await;
        assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.body);
        assert!(res.body["items"].is_array(), "{path}: {}", res.body);
        assert!(res.body.get("next_cursor").is_some(), "{path}: next_cursor is always there");
    }
    for path in ["/api/v1/users/me/activities", "/api/v1/leaderboards/weekly", "/api/v1/locations/me"] {
        let res = system.query(path, &user.access_token, None).await;
        assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.body);
        assert!(res.body["items"].is_array() && res.body.get("next_cursor").is_some(), "{path}: {}", res.body);
    }
    // A cursor belongs to its list: another list's cursor, or anything made up, is one clear 400.
    let page = system.get("/recycle/items?limit=2").await;
    let items_cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let wrong =
        system.query(&format!("/api/v1/users/me/activities?cursor={items_cursor}"), &user.access_token, None).await;
    wrong.assert_problem(StatusCode::BAD_REQUEST, "invalid_cursor");
    let made_up = system.get("/recycle/items?cursor=bm90LWEtY3Vyc29y").await;
    made_up.assert_problem(StatusCode::BAD_REQUEST, "invalid_cursor");
    let board = system.query("/api/v1/leaderboards/weekly?cursor=o5", &user.access_token, None).await;
    board.assert_problem(StatusCode::BAD_REQUEST, "invalid_cursor");
}
