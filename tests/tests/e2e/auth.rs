//! Sessions and attacks on them: refresh rotation and reuse, logout, limits, key rotation.

use std::time::Duration;

use platform::auth::{Claims, Role, Signer, TokenType, Verifier};
use serde_json::json;
use tests::{Options, Registered, StatusCode, TestSystem};

async fn login(system: &TestSystem, user: &Registered) -> (String, String) {
    let res = system
        .post(
            "/api/v1/auth/login",
            &json!({"email": format!("{}@example.com", user.username), "password": "recycle2026"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    (res.body["access_token"].as_str().unwrap().to_owned(), res.body["refresh_token"].as_str().unwrap().to_owned())
}

async fn refresh(system: &TestSystem, token: &str) -> tests::Response {
    system.post("/api/v1/auth/refresh", &json!({"refresh_token": token})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_refresh_token_revokes_the_whole_session_after_the_grace_window() {
    let system = TestSystem::start_with(Options {
        workers: false,
        configure: |s| s.refresh_grace = Duration::from_millis(500),
        ..Default::default()
    })
    .await;
    let user = system.register("rot").await;
    let (_, first) = login(&system, &user).await;

    let rotated = refresh(&system, &first).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let second = rotated.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let access = rotated.body["access_token"].as_str().unwrap();
    assert_eq!(system.query("/api/v1/auth/me", access, None).await.status, StatusCode::OK);

    // A concurrent refresh with the same token, within the grace window, is not an attack.
    let sibling = refresh(&system, &first).await;
    assert_eq!(sibling.status, StatusCode::OK, "{}", sibling.body);

    tokio::time::sleep(Duration::from_millis(800)).await;
    refresh(&system, &first).await.assert_problem(StatusCode::UNAUTHORIZED, "refresh_token_reused");
    // Every token of that sign-in is dead now, including the legitimate newest one.
    refresh(&system, &second).await.assert_problem(StatusCode::UNAUTHORIZED, "token_revoked");
    refresh(&system, sibling.body["refresh_token"].as_str().unwrap())
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_revoked");

    // Another sign-in of the same user is a different session and still works.
    let (_, other) = login(&system, &user).await;
    assert_eq!(refresh(&system, &other).await.status, StatusCode::OK);

    // An access token is not a refresh token.
    refresh(&system, access).await.assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");
    refresh(&system, "garbage").await.assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_out_token_is_refused_by_both_apis_even_after_a_redis_flush() {
    let system = TestSystem::start().await;
    let user = system.register("bye").await;
    let (access, refresh_token) = login(&system, &user).await;
    assert_eq!(system.query("/api/v1/auth/me", &access, None).await.status, StatusCode::OK);

    let res = system.command("/api/v1/auth/logout", &access, &json!({"refresh_token": refresh_token})).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    system.query("/api/v1/auth/me", &access, None).await.assert_problem(StatusCode::UNAUTHORIZED, "token_revoked");
    system
        .command("/api/v1/scans", &access, &json!({"category": "paper", "item_name": "box"}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_revoked");
    refresh(&system, &refresh_token).await.assert_problem(StatusCode::UNAUTHORIZED, "token_revoked");
    // The registration's own token is another session: still valid.
    assert_eq!(system.query("/api/v1/auth/me", &user.access_token, None).await.status, StatusCode::OK);

    let client = redis::Client::open(system.settings.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // Flush this test's keys (the Redis server is shared with other tests).
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}:*", system.settings.redis_prefix)).query_async(&mut conn).await.unwrap();
    assert!(keys.iter().any(|k| k.contains(":revoked:")), "the revocation was in Redis: {keys:?}");
    let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.unwrap();
    system.query("/api/v1/users/me", &access, None).await.assert_problem(StatusCode::UNAUTHORIZED, "token_revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sixth_login_in_a_minute_from_one_address_gets_429() {
    let system = TestSystem::start_with(Options {
        workers: false,
        configure: |s| s.trusted_proxy_header = Some("x-forwarded-for".into()),
        ..Default::default()
    })
    .await;
    let user = system.register("limited").await;
    let attempt = |ip: &'static str, password: &'static str| {
        let req = system
            .http
            .post(format!("{}/api/v1/auth/login", system.command_url))
            .header("x-forwarded-for", format!("10.9.9.9, {ip}"))
            .json(&json!({"email": format!("{}@example.com", user.username), "password": password}));
        async move { req.send().await.unwrap() }
    };
    for _ in 0..5 {
        assert_eq!(attempt("203.0.113.7", "recycle2026").await.status(), StatusCode::OK);
    }
    let sixth = attempt("203.0.113.7", "recycle2026").await;
    assert_eq!(sixth.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = sixth.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = sixth.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    // Another client address is not limited by the first one.
    assert_eq!(attempt("198.51.100.2", "recycle2026").await.status(), StatusCode::OK);

    // Repeated failures on one account slow it down from any address.
    for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        assert_eq!(attempt(ip, "wrong-password1").await.status(), StatusCode::UNAUTHORIZED);
    }
    let slowed = attempt("192.0.2.4", "recycle2026").await;
    assert_eq!(slowed.status(), StatusCode::TOO_MANY_REQUESTS, "back-off after three failures");
    assert!(slowed.headers().contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_the_previous_key_still_work_and_unknown_keys_do_not() {
    let system = TestSystem::start_with(Options {
        workers: false,
        configure: |s| {
            s.jwt_public_keys_pem =
                format!("{}\n{}", platform::auth::DEV_PUBLIC_KEY_PEM, include_str!("../../keys/previous-public.pem"));
        },
        ..Default::default()
    })
    .await;
    let user = system.register("rotated").await;
    let jwks = crate::support::jwks(&system).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "current and previous key published");

    // A token the previous key signed before the rotation is still accepted.
    let previous = Verifier::from_pem_bundle(include_str!("../../keys/previous-public.pem")).unwrap();
    let old_signer = Signer::new(include_str!("../../keys/previous-private.pem"), &previous).unwrap();
    let old_token = old_signer.sign(&Claims::new(user.user_id, &user.username, Role::User, TokenType::Access)).unwrap();
    let me = system.query("/api/v1/auth/me", &old_token, None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);

    // New tokens carry the current key's kid.
    let kid = jwks["keys"][0]["kid"].as_str().unwrap();
    let header = crate::support::jwt_header(&user.access_token);
    assert_eq!(header["kid"], kid);

    // A system that only knows the current key refuses the old token: unknown key.
    let strict = TestSystem::start_with(Options { workers: false, ..Default::default() }).await;
    strict.query("/api/v1/auth/me", &old_token, None).await.assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");

    // Expired and tampered tokens are refused.
    let mut claims = Claims::new(user.user_id, &user.username, Role::Admin, TokenType::Access);
    claims.exp = chrono::Utc::now().timestamp() - 3600;
    let expired = old_signer.sign(&claims).unwrap();
    system.query("/api/v1/auth/me", &expired, None).await.assert_problem(StatusCode::UNAUTHORIZED, "token_expired");
    let mut parts: Vec<&str> = user.access_token.split('.').collect();
    let forged_payload = crate::support::b64url_encode(&serde_json::to_vec(&json!({"sub": user.user_id, "username": "x", "role": "admin", "exp": 4_000_000_000i64, "iat": 0, "jti": uuid::Uuid::now_v7(), "type": "access"})).unwrap());
    parts[1] = &forged_payload;
    system
        .query("/api/v1/auth/me", &parts.join("."), None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_restart_of_every_process() {
    let mut system = TestSystem::start().await;
    let user = system.register("stays").await;
    let (access, refresh_token) = login(&system, &user).await;
    let res = system.command("/api/v1/auth/logout", &user.access_token, &json!({})).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);

    system.restart_apis().await;
    system.stop_workers().await;
    system.start_workers(None).await;

    assert_eq!(system.query("/api/v1/users/me", &access, None).await.status, StatusCode::OK);
    system
        .query("/api/v1/auth/me", &user.access_token, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_revoked");
    let rotated = refresh(&system, &refresh_token).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
}
