//! The account surface: profile, settings, password change, deletion.

use std::time::Duration;

use serde_json::json;
use tests::{StatusCode, TestSystem};

async fn login(system: &TestSystem, email: &str, password: &str) -> tests::Response {
    system.post("/api/v1/auth/login", &json!({"email": email, "password": password})).await
}

async fn patch(system: &TestSystem, path: &str, bearer: &str, body: serde_json::Value) -> tests::Response {
    let req = system.http.patch(format!("{}{path}", system.command_url)).bearer_auth(bearer).json(&body);
    tests::Response::read(req.send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_and_settings_changes_are_projected_and_cached() {
    let system = TestSystem::start().await;
    let user = system.register("mina").await;
    let warm = system.query("/api/v1/users/me", &user.access_token, Some(&user.consistency_token)).await;
    assert_eq!(warm.body["bio"], "");

    let res =
        patch(&system, "/api/v1/users/me", &user.access_token, json!({"nickname": "초록 미나", "bio": "줍깅 중"}))
            .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    let token = res.header("x-consistency-token").unwrap();
    let me = system.query("/api/v1/users/me", &user.access_token, Some(&token)).await;
    assert_eq!((me.body["nickname"].as_str(), me.body["bio"].as_str()), (Some("초록 미나"), Some("줍깅 중")));
    // Without a token the cached copy answers, and it was refreshed by the projector.
    let cached = system.query("/api/v1/users/me", &user.access_token, None).await;
    assert_eq!(cached.body["nickname"], "초록 미나");

    let res = patch(&system, "/api/v1/users/me", &user.access_token, json!({"avatar_url": "ftp://x"})).await;
    res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let res = patch(&system, "/api/v1/users/me", &user.access_token, json!({})).await;
    res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    let defaults = system.query("/api/v1/users/me/settings", &user.access_token, None).await;
    assert_eq!(defaults.body, json!({"notification_enabled": true, "language": "ko", "theme": "system"}));
    let res = patch(
        &system,
        "/api/v1/users/me/settings",
        &user.access_token,
        json!({"theme": "dark", "notification_enabled": false}),
    )
    .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let token = res.header("x-consistency-token").unwrap();
    let settings = system.query("/api/v1/users/me/settings", &user.access_token, Some(&token)).await;
    assert_eq!(settings.body, json!({"notification_enabled": false, "language": "ko", "theme": "dark"}));
    let res = patch(&system, "/api/v1/users/me/settings", &user.access_token, json!({"language": "tlh"})).await;
    let body = res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["errors"][0]["field"], "language");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_signs_out_every_other_session() {
    let system = TestSystem::start_with(tests::Options { workers: false, ..Default::default() }).await;
    let user = system.register("pw").await;
    let email = format!("{}@example.com", user.username);
    let other = login(&system, &email, "recycle2026").await;
    let here = login(&system, &email, "recycle2026").await;
    let here_access = here.body["access_token"].as_str().unwrap();

    let res = patch(
        &system,
        "/api/v1/users/me/password",
        here_access,
        json!({"current_password": "nope", "new_password": "greener2027"}),
    )
    .await;
    res.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let res = patch(
        &system,
        "/api/v1/users/me/password",
        here_access,
        json!({"current_password": "recycle2026", "new_password": "short"}),
    )
    .await;
    let body = res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["errors"][0], json!({"field": "new_password", "message": "must be at least 8 characters long"}));
    let res = patch(
        &system,
        "/api/v1/users/me/password",
        here_access,
        json!({"current_password": "recycle2026", "new_password": "greener2027"}),
    )
    .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.body);

    login(&system, &email, "recycle2026").await.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(login(&system, &email, "greener2027").await.status, StatusCode::OK);
    let system = &system;
    let refresh = |token: serde_json::Value| async move {
        system.post("/api/v1/auth/refresh", &json!({"refresh_token": token})).await
    };
    refresh(other.body["refresh_token"].clone()).await.assert_problem(StatusCode::UNAUTHORIZED, "token_revoked");
    assert_eq!(refresh(here.body["refresh_token"].clone()).await.status, StatusCode::OK, "this session stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_account_is_forgotten_everywhere_and_its_email_is_free() {
    let system = TestSystem::start().await;
    let user = system.register("gone").await;
    let email = format!("{}@example.com", user.username);
    let other = login(&system, &email, "recycle2026").await;
    let other_access = other.body["access_token"].as_str().unwrap().to_owned();
    let res =
        system.command("/api/v1/scans", &user.access_token, &json!({"category": "glass", "item_name": "jar"})).await;
    let token = res.header("x-consistency-token").unwrap();
    system.query("/api/v1/users/me", &user.access_token, Some(&token)).await;
    let rival = system.register("rival").await;
    system
        .eventually(Duration::from_secs(15), "on the board", || async {
            let b = system.query("/api/v1/leaderboards/all-time", &rival.access_token, None).await;
            (b.body["items"].as_array().map(Vec::len) == Some(1)).then_some(())
        })
        .await;

    let del = |body: serde_json::Value| {
        let req = system
            .http
            .delete(format!("{}/api/v1/users/me", system.command_url))
            .bearer_auth(&user.access_token)
            .json(&body);
        async move { tests::Response::read(req.send().await.unwrap()).await }
    };
    del(json!({})).await.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    del(json!({"password": "wrong-one1"})).await.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let res = del(json!({"password": "recycle2026"})).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    let token = res.header("x-consistency-token").unwrap();

    system
        .query("/api/v1/users/me", &user.access_token, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_revoked");
    // Another session's access token lives until it expires, but finds nothing left.
    system
        .query("/api/v1/users/me", &other_access, Some(&token))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "profile_not_found");
    system
        .command("/api/v1/scans", &other_access, &json!({"category": "glass", "item_name": "jar"}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "account_not_found");
    let history = system.query("/api/v1/users/me/activities", &other_access, None).await;
    system
        .eventually(Duration::from_secs(15), "history and boards forget", || async {
            let h = system.query("/api/v1/users/me/activities", &other_access, None).await;
            let b = system.query("/api/v1/leaderboards/all-time", &rival.access_token, None).await;
            (h.body["items"] == json!([]) && b.body["items"] == json!([])).then_some(())
        })
        .await;
    let _ = history;
    login(&system, &email, "recycle2026").await.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    system
        .post("/api/v1/auth/refresh", &json!({"refresh_token": other.body["refresh_token"]}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_revoked");
    let again = system
        .post("/api/v1/auth/register", &json!({"username": user.username, "email": email, "password": "recycle2026"}))
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "e-mail and username are free again: {}", again.body);
    let rows: i64 = sqlx::query_scalar("select count(*) from auth.users where email = $1")
        .bind(&email)
        .fetch_one(&system.db)
        .await
        .unwrap();
    assert_eq!(rows, 1, "the deleted row no longer holds the address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_holds_everything_about_me_and_nothing_secret() {
    let system = TestSystem::start().await;
    workers::seed::seed(&system.db).await.unwrap();
    let user = system.register("exporter").await;
    let other = system.register("bystander").await;
    let token = &user.access_token;
    let scan = json!({"category": "plastic", "item_name": "PET bottle"});
    for _ in 0..3 {
        assert_eq!(system.command("/api/v1/scans", token, &scan).await.status, StatusCode::ACCEPTED);
    }
    let place = json!({"label": "우리집", "latitude": 37.55, "longitude": 126.99, "address": "서울 중구 세종대로 110"});
    let phone = system
        .send(reqwest::Method::PUT, "/users/me/devices/export-phone", token, Some(json!({"platform": "android"})))
        .await;
    assert_eq!(phone.status, StatusCode::OK, "{}", phone.body);
    let saved = system.send(reqwest::Method::POST, "/locations/me", token, Some(place)).await;
    assert_eq!(saved.status, StatusCode::ACCEPTED, "{}", saved.body);
    let res = patch(&system, "/api/v1/users/me", token, json!({"nickname": "내보내기", "bio": "다 보여줘"})).await;
    let consistency = res.header("x-consistency-token").unwrap();
    system.command("/api/v1/scans", &other.access_token, &scan).await;
    // The token covers the rename; the scans' history and awards came from other commands.
    system.settle(Duration::from_secs(30)).await;

    let req = system
        .http
        .get(format!("{}/api/v1/users/me/export", system.query_url))
        .bearer_auth(token)
        .header("x-consistency-token", &consistency);
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert!(res.headers().get("content-length").is_none(), "streamed");
    let text = res.text().await.unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();

    assert_eq!(doc["format"], "ecoeco.export.v1");
    assert_eq!(doc["account"]["id"], user.user_id.to_string());
    let email = format!("{}@example.com", user.username);
    assert_eq!(doc["account"]["email"], email);
    assert_eq!(doc["account"]["username"], user.username);
    assert_eq!(doc["account"]["has_password"], true);
    assert_eq!(doc["profile"]["nickname"], "내보내기");
    assert_eq!(doc["profile"]["bio"], "다 보여줘");
    assert_eq!(doc["settings"]["language"], "ko");
    assert_eq!(doc["saved_places"][0]["label"], "우리집");
    assert_eq!(doc["saved_places"][0]["address"], "서울 중구 세종대로 110");
    assert!(!doc["sessions"].as_array().unwrap().is_empty(), "the registration's session");
    let mail = &doc["mail"][0];
    assert_eq!(mail["template"], "verify_email");
    assert!(mail["recipient"] == email || mail["recipient"].is_null(), "the address until sent: {mail}");
    let actions: Vec<&str> =
        doc["activities"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "scan").count(), 3, "{actions:?}");
    let ledger = doc["points_ledger"].as_array().unwrap();
    assert_eq!(ledger.iter().filter(|e| e["rule"] == "scan").map(|e| e["amount"].as_i64().unwrap()).sum::<i64>(), 30);
    assert_eq!(doc["badges"][0]["badge_id"], "first-scan", "{}", doc["badges"]);
    assert_eq!(doc["characters"][0]["character_id"], "sprout", "{}", doc["characters"]);
    assert_eq!(doc["devices"][0]["token"], "export-phone");
    let kinds: Vec<&str> =
        doc["notifications"].as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"badge_earned") && kinds.contains(&"character_unlocked"), "{kinds:?}");
    // Only mine, and no secret: no hash, no token, no mailed link.
    assert!(!text.contains(&other.user_id.to_string()));
    for secret in ["password_hash", "argon2", "token_hash", "\"link\"", "http"] {
        assert!(!text.contains(secret), "{secret} in the export");
    }
    let none = system.query("/api/v1/users/me/export", &other.access_token, None).await;
    assert_eq!(none.status, StatusCode::OK, "another account exports its own");
}
