//! The REST path: register → relay → profiles projector → query-api, and bad input.

use serde_json::json;
use tests::{StatusCode, TestSystem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_reads_their_profile_immediately_with_the_consistency_token() {
    let system = TestSystem::start().await;
    let user = system.register("mina").await;

    let res = system.query("/api/v1/users/me", &user.access_token, Some(&user.consistency_token)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.header("x-consistency").as_deref(), Some("fresh"));
    assert_eq!(res.body["id"], user.user_id.to_string());
    assert_eq!(res.body["username"], user.username);
    assert_eq!(res.body["nickname"], user.username);
    assert_eq!((res.body["points"].as_i64(), res.body["level"].as_i64()), (Some(0), Some(1)));
    assert_eq!(res.body["invite_code"].as_str().map(str::len), Some(8));
    assert!(res.body.get("email").is_none(), "the read model holds no e-mail address");

    let me = system.query("/api/v1/auth/me", &user.access_token, None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["id"], user.user_id.to_string());
    assert_eq!(me.body["role"], "user");
    assert_eq!(me.body["nickname"], user.username);

    // The second read comes from the cache the projector filled, and says the same.
    let cached = system.query("/api/v1/users/me", &user.access_token, None).await;
    assert_eq!(cached.body, res.body);
    assert!(cached.header("x-consistency").is_none(), "no token, no freshness claim");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_workers_the_token_wait_is_bounded_and_says_stale() {
    let mut system = TestSystem::start_with(tests::Options { workers: false, ..Default::default() }).await;
    let user = system.register("jun").await;
    let started = std::time::Instant::now();
    let res = system.query("/api/v1/users/me", &user.access_token, Some(&user.consistency_token)).await;
    res.assert_problem(StatusCode::NOT_FOUND, "profile_not_found");
    assert_eq!(res.header("x-consistency"), None, "an error is not a read");
    assert!(started.elapsed() >= system.settings.consistency_timeout, "it waited for the projection");
    let me = system.query("/api/v1/auth/me", &user.access_token, Some(&user.consistency_token)).await;
    assert_eq!(me.header("x-consistency").as_deref(), Some("stale"));
    assert_eq!(me.body["nickname"], serde_json::Value::Null);

    // Workers started late still deliver the event, and the same token then reads fresh.
    system.start_workers(None).await;
    let res = system.query("/api/v1/users/me", &user.access_token, Some(&user.consistency_token)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.header("x-consistency").as_deref(), Some("fresh"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_issues_tokens_that_query_api_accepts_and_jwks_verifies() {
    let system = TestSystem::start().await;
    let user = system.register("ara").await;
    let login = system
        .post(
            "/api/v1/auth/login",
            &json!({"email": format!("{}@EXAMPLE.com", user.username), "password": "recycle2026"}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.body["token_type"], "Bearer");
    assert_eq!(login.body["expires_in"], 1800);
    let access = login.body["access_token"].as_str().unwrap();
    let me = system.query("/api/v1/auth/me", access, None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["username"], user.username);

    // Another service verifies the token with nothing but the published JWKS.
    let jwks = crate::support::jwks(&system).await;
    let key = &jwks["keys"][0];
    let header = crate::support::jwt_header(access)["kid"].as_str().unwrap().to_owned();
    assert_eq!(key["kid"].as_str(), Some(header.as_str()));
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA{}\n-----END PUBLIC KEY-----",
        to_std_b64(key["x"].as_str().unwrap())
    );
    let verifier = platform::auth::Verifier::from_pem_bundle(&pem).unwrap();
    let claims = verifier.verify(access, platform::auth::TokenType::Access).unwrap();
    assert_eq!(claims.sub, user.user_id);

    // A refresh token is not an access token.
    let refresh = login.body["refresh_token"].as_str().unwrap();
    system.query("/api/v1/auth/me", refresh, None).await.assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");
    system.query("/api/v1/users/me", "garbage", None).await.assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");
}

fn to_std_b64(url_safe: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(crate::support::b64url_decode(url_safe))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_problem_that_says_what_is_wrong() {
    let system = TestSystem::start_with(tests::Options { workers: false, ..Default::default() }).await;

    let res = system.post_raw("/api/v1/auth/register", r#"{"username": "mina", "#).await;
    res.assert_problem(StatusCode::BAD_REQUEST, "malformed_json");

    let res = system.post("/api/v1/auth/register", &json!({"username": "mina", "password": "recycle2026"})).await;
    let body = res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["errors"], json!([{"field": "email", "message": "is required"}]));

    let res = system
        .post("/api/v1/auth/register", &json!({"username": "mina", "email": 42, "password": "recycle2026"}))
        .await;
    let body = res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["errors"][0]["field"], "email");

    let res =
        system.post("/api/v1/auth/register", &json!({"username": "a b", "email": "nope", "password": "short"})).await;
    let body = res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["username", "email", "password"]);
    assert_eq!(body["errors"][2]["message"], "must be at least 8 characters long");

    let res = system.http.post(format!("{}/api/v1/auth/register", system.command_url)).body("{}").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let user = system.register("dup").await;
    let res = system
        .post("/api/v1/auth/register", &json!({"username": "someone_else", "email": format!("{}@Example.COM", user.username), "password": "recycle2026"}))
        .await;
    // A taken address is not revealed: the answer has the shape of any new registration.
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(res.body["user"]["email"], format!("{}@example.com", user.username));
    assert!(res.body["access_token"].is_string() && res.header("x-consistency-token").is_some());
    assert_ne!(res.body["user"]["id"], user.user_id.to_string());
    // The address still signs in to its owner, with the owner's password only.
    let owner_login = system
        .post(
            "/api/v1/auth/login",
            &json!({"email": format!("{}@example.com", user.username), "password": "recycle2026"}),
        )
        .await;
    assert_eq!(owner_login.status, StatusCode::OK);
    let me = system.query("/api/v1/auth/me", owner_login.body["access_token"].as_str().unwrap(), None).await;
    assert_eq!(me.body["id"], user.user_id.to_string());
    let res = system
        .post(
            "/api/v1/auth/register",
            &json!({"username": user.username.to_uppercase(), "email": "other@example.com", "password": "recycle2026"}),
        )
        .await;
    res.assert_problem(StatusCode::CONFLICT, "username_taken");

    let res = system
        .post(
            "/api/v1/auth/login",
            &json!({"email": format!("{}@example.com", user.username), "password": "wrong-password1"}),
        )
        .await;
    res.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(res.header("www-authenticate").as_deref(), Some("Bearer"));
    let res =
        system.post("/api/v1/auth/login", &json!({"email": "nobody@example.com", "password": "recycle2026"})).await;
    res.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");

    let res = system.query("/api/v1/users/me", &user.access_token, Some("v1.not-a-token")).await;
    res.assert_problem(StatusCode::BAD_REQUEST, "invalid_consistency_token");
    let res = system.http.get(format!("{}/api/v1/users/me", system.query_url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_serves_health_readiness_metrics_and_docs() {
    let system = TestSystem::start().await;
    system.register("ops").await;
    for base in [&system.command_url, &system.query_url, system.workers_url.as_ref().unwrap()] {
        let health = system.http.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        let ready: serde_json::Value =
            system.http.get(format!("{base}/ready")).send().await.unwrap().json().await.unwrap();
        assert_eq!(ready["status"], "ready", "{base}: {ready}");
        let metrics = system.http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("http_requests_total"), "{base}: {metrics}");
    }
    for base in [&system.command_url, &system.query_url] {
        let spec: serde_json::Value =
            system.http.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
        assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
        assert!(!spec["paths"].as_object().unwrap().is_empty());
        // Swagger UI, every asset served by the process itself (a browser test renders it).
        let docs = system.http.get(format!("{base}/docs")).send().await.unwrap();
        assert_eq!(docs.status(), StatusCode::OK);
        assert!(docs.text().await.unwrap().contains("swagger-ui"));
        let init = system.http.get(format!("{base}/docs/swagger-initializer.js")).send().await.unwrap();
        assert!(init.text().await.unwrap().contains("\"url\": \"/openapi.json\""));
        let bundle = system.http.get(format!("{base}/docs/swagger-ui-bundle.js")).send().await.unwrap();
        assert_eq!(bundle.status(), StatusCode::OK, "the script is served, not fetched from a CDN");
    }
    let spec: serde_json::Value =
        system.http.get(format!("{}/openapi.json", system.command_url)).send().await.unwrap().json().await.unwrap();
    assert!(spec["paths"]["/api/v1/auth/register"]["post"].is_object());
    let res = system
        .http
        .get(format!("{}/health", system.query_url))
        .header("x-request-id", "0193a0b0-0000-7000-8000-000000000001")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "0193a0b0-0000-7000-8000-000000000001", "a caller's request id is kept");
}
