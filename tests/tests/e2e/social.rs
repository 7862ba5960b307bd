//! Social login against a local fake of Google's and Kakao's endpoints.

use serde_json::{Value, json};
use tests::{Options, StatusCode, TestSystem, fake_oauth::FakeOAuth};

async fn system_with(fake: &FakeOAuth) -> TestSystem {
    TestSystem::start_with(Options { oauth_base: Some(fake.base.clone()), ..Default::default() }).await
}

/// Starts a login; returns the state and the PKCE challenge in the authorization URL.
async fn start(system: &TestSystem, provider: &str) -> (String, Option<String>) {
    let res = system.http.get(format!("{}/api/v1/auth/oauth/{provider}", system.command_url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let url = reqwest::Url::parse(body["authorization_url"].as_str().unwrap()).unwrap();
    let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert_eq!(param("state").as_deref(), body["state"].as_str());
    assert_eq!(param("client_id").as_deref(), Some("test-client"));
    (body["state"].as_str().unwrap().to_owned(), param("code_challenge"))
}

async fn callback(system: &TestSystem, provider: &str, code: &str, state: &str) -> tests::Response {
    system.post(&format!("/api/v1/auth/oauth/{provider}/callback"), &json!({"code": code, "state": state})).await
}

fn kakao_user(id: i64, email: &str, valid: bool, verified: bool) -> Value {
    json!({"id": id, "kakao_account": {"email": email, "is_email_valid": valid, "is_email_verified": verified, "profile": {"nickname": "카카오친구"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_sign_up_then_sign_in_with_pkce() {
    let fake = FakeOAuth::start().await;
    let system = system_with(&fake).await;
    let (state, challenge) = start(&system, "google").await;
    assert!(challenge.is_some(), "Google gets PKCE");
    let info = json!({"sub": "google-123", "email": "Jun@Gmail.com", "email_verified": true, "name": "Jun Park"});
    let code = fake.grant(challenge, info.clone());
    let first = callback(&system, "google", &code, &state).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["created"], true);
    let access = first.body["access_token"].as_str().unwrap();
    let me = system.query("/api/v1/auth/me", access, None).await;
    assert_eq!(me.body["id"], first.body["user_id"]);
    let provider: String =
        sqlx::query_scalar("select data->>'provider' from eventstore.events where type = 'user.registered'")
            .fetch_one(&system.db)
            .await
            .unwrap();
    assert_eq!(provider, "google", "user.registered carries the provider");

    // The state is single use.
    callback(&system, "google", &fake.grant(None, info.clone()), &state)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_state");
    // The same Google account signs in to the same user.
    let (state, challenge) = start(&system, "google").await;
    let again = callback(&system, "google", &fake.grant(challenge, info), &state).await;
    assert_eq!((again.body["created"].as_bool(), &again.body["user_id"]), (Some(false), &first.body["user_id"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kakao_links_to_an_existing_account_only_when_kakao_vouches_for_the_address() {
    let fake = FakeOAuth::start().await;
    let system = system_with(&fake).await;
    let victim = system.register("victim").await;
    let email = format!("{}@example.com", victim.username);

    // Takeover attempt: an unverified Kakao address equal to the victim's.
    let (state, challenge) = start(&system, "kakao").await;
    assert!(challenge.is_none(), "no PKCE for Kakao");
    let attacker = callback(&system, "kakao", &fake.grant(None, kakao_user(666, &email, true, false)), &state).await;
    assert_eq!(attacker.status, StatusCode::OK, "{}", attacker.body);
    assert_eq!(attacker.body["created"], true, "a separate account, not the victim's");
    assert_ne!(attacker.body["user_id"], victim.user_id.to_string());
    let owner: uuid::Uuid = sqlx::query_scalar("select id from auth.users where email = $1")
        .bind(&email)
        .fetch_one(&system.db)
        .await
        .unwrap();
    assert_eq!(owner, victim.user_id, "the address still belongs to the victim");
    // Valid but not verified is not enough either.
    let (state, _) = start(&system, "kakao").await;
    let half = callback(&system, "kakao", &fake.grant(None, kakao_user(667, &email, false, true)), &state).await;
    assert_eq!(half.body["created"], true);

    // The real owner, whose Kakao account has the address verified and valid, is linked.
    let (state, _) = start(&system, "kakao").await;
    let owner_login = callback(&system, "kakao", &fake.grant(None, kakao_user(42, &email, true, true)), &state).await;
    assert_eq!(owner_login.status, StatusCode::OK, "{}", owner_login.body);
    assert_eq!(
        (owner_login.body["created"].as_bool(), owner_login.body["user_id"].as_str()),
        (Some(false), Some(victim.user_id.to_string().as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_failures_and_bad_requests_get_clear_problems() {
    let fake = FakeOAuth::start().await;
    let system = system_with(&fake).await;
    let res = system.http.get(format!("{}/api/v1/auth/oauth/myspace", system.command_url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let (state, _) = start(&system, "kakao").await;
    callback(&system, "kakao", "made-up-code", &state)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let (state, _) = start(&system, "kakao").await;
    callback(&system, "kakao", "x", "not-a-state").await.assert_problem(StatusCode::BAD_REQUEST, "invalid_state");
    fake.set_down(true);
    let code = fake.grant(None, kakao_user(1, "a@b.io", true, true));
    callback(&system, "kakao", &code, &state).await.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    let res = system.post("/api/v1/auth/oauth/kakao/callback", &json!({"state": "s"})).await;
    res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    let unconfigured = TestSystem::start_with(Options { workers: false, ..Default::default() }).await;
    let res =
        unconfigured.http.get(format!("{}/api/v1/auth/oauth/google", unconfigured.command_url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}
