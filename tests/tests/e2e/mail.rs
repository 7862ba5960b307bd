//! E-mail verification and password reset, through the event path and the mail worker, read
//! from the file transport as real messages.

use std::{path::PathBuf, time::Duration};

use serde_json::json;
use tests::{Options, StatusCode, TestSystem};

fn mail_options() -> Options {
    Options {
        configure: |s| {
            s.mail_transport =
                format!("file:{}", std::env::temp_dir().join(format!("ecoeco-mail-{}", s.redis_prefix)).display())
        },
        ..Default::default()
    }
}

fn mail_dir(system: &TestSystem) -> PathBuf {
    PathBuf::from(system.settings.mail_transport.strip_prefix("file:").unwrap())
}

/// A sent message: recipient, subject, text.
struct Mail {
    to: String,
    subject: String,
    text: String,
}

impl Mail {
    fn token(&self) -> String {
        let start = self.text.find("token=").expect("a link with a token") + "token=".len();
        self.text[start..].split_whitespace().next().unwrap().to_owned()
    }
}

async fn mails_to(system: &TestSystem, to: &str, count: usize) -> Vec<Mail> {
    let dir = mail_dir(system);
    system
        .eventually(Duration::from_secs(15), &format!("{count} mail(s) to {to}"), || async {
            let mut found = Vec::new();
            for entry in std::fs::read_dir(&dir).ok()?.flatten() {
                let bytes = std::fs::read(entry.path()).ok()?;
                let parsed = mailparse::parse_mail(&bytes).ok()?;
                let header = |name: &str| {
                    parsed.headers.iter().find(|h| h.get_key_ref().eq_ignore_ascii_case(name)).map(|h| h.get_value())
                };
                let mail = Mail { to: header("To")?, subject: header("Subject")?, text: parsed.get_body().ok()? };
                if mail.to.contains(to) {
                    found.push(mail);
                }
            }
            (found.len() == count).then_some(found)
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_account_confirms_its_address_with_the_mailed_single_use_token() {
    let system = TestSystem::start_with(mail_options()).await;
    let user = system.register("verify").await;
    let email = format!("{}@example.com", user.username);
    let mails = mails_to(&system, &email, 1).await;
    assert!(mails[0].subject.contains("Confirm your e-mail"), "{}", mails[0].subject);
    let token = mails[0].token();

    let verified_at = || async {
        sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
            "select email_verified_at from auth.users where id = $1",
        )
        .bind(user.user_id)
        .fetch_one(&system.db)
        .await
        .unwrap()
    };
    assert!(verified_at().await.is_none());
    let res = system.post("/api/v1/auth/verify-email", &json!({"token": token})).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.body);
    assert!(verified_at().await.is_some());
    system
        .post("/api/v1/auth/verify-email", &json!({"token": token}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_or_expired_token");
    system
        .post("/api/v1/auth/verify-email", &json!({"token": "forged"}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_or_expired_token");
    let stored: Vec<u8> = sqlx::query_scalar("select token_hash from auth.email_tokens where user_id = $1")
        .bind(user.user_id)
        .fetch_one(&system.db)
        .await
        .unwrap();
    assert_ne!(stored, token.as_bytes(), "only the hash is stored");
    let left: Option<String> = sqlx::query_scalar("select link from auth.mail_outbox where user_id = $1")
        .bind(user.user_id)
        .fetch_one(&system.db)
        .await
        .unwrap();
    assert_eq!(left, None, "the link is wiped once sent");
    let events: i64 = sqlx::query_scalar(
        "select count(*) from eventstore.events where type = 'user.email_verified' and aggregate_id = $1",
    )
    .bind(user.user_id)
    .fetch_one(&system.db)
    .await
    .unwrap();
    assert_eq!(events, 1);
    let on_bus: i64 =
        sqlx::query_scalar("select count(*) from eventstore.events where data::text like '%' || $1 || '%'")
            .bind(&email)
            .fetch_one(&system.db)
            .await
            .unwrap();
    assert_eq!(on_bus, 0, "no e-mail address in any event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_answers_alike_for_unknown_addresses_and_its_link_works_once() {
    let system = TestSystem::start_with(mail_options()).await;
    let user = system.register("forgot").await;
    let email = format!("{}@example.com", user.username);
    mails_to(&system, &email, 1).await; // the verification mail

    let known = system.post("/api/v1/auth/forgot-password", &json!({"email": email.to_uppercase()})).await;
    let unknown = system.post("/api/v1/auth/forgot-password", &json!({"email": "nobody@example.com"})).await;
    assert_eq!((known.status, unknown.status), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(known.body, unknown.body, "no enumeration");
    let mails = mails_to(&system, &email, 2).await;
    let reset = mails.iter().find(|m| m.subject.contains("Reset your password")).expect("a reset mail");
    let token = reset.token();
    assert!(mails_to(&system, "nobody@example.com", 0).await.is_empty());

    let res = system.post("/api/v1/auth/reset-password", &json!({"token": token, "new_password": "short"})).await;
    res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let res = system.post("/api/v1/auth/reset-password", &json!({"token": token, "new_password": "greener2027"})).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "the weak attempt did not spend the link: {}", res.body);
    system
        .post("/api/v1/auth/reset-password", &json!({"token": token, "new_password": "another2028"}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_or_expired_token");

    let (system, email) = (&system, &email);
    let login = |password: &'static str| async move {
        system.post("/api/v1/auth/login", &json!({"email": email, "password": password})).await
    };
    login("recycle2026").await.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(login("greener2027").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_is_refused() {
    let system = TestSystem::start_with(mail_options()).await;
    let user = system.register("late").await;
    let email = format!("{}@example.com", user.username);
    let token = mails_to(&system, &email, 1).await[0].token();
    sqlx::query("update auth.email_tokens set expires_at = now() - interval '1 second' where user_id = $1")
        .bind(user.user_id)
        .execute(&system.db)
        .await
        .unwrap();
    system
        .post("/api/v1/auth/verify-email", &json!({"token": token}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_or_expired_token");
    let res = system.command("/api/v1/auth/verify-email/resend", &user.access_token, &json!({})).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let mails = mails_to(&system, &email, 2).await;
    let fresh: Vec<String> = mails.iter().map(Mail::token).filter(|t| *t != token).collect();
    let res = system.post("/api/v1/auth/verify-email", &json!({"token": fresh[0]})).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_up_with_a_taken_address_tells_its_owner_and_reveals_nothing() {
    let system = TestSystem::start_with(mail_options()).await;
    let owner = system.register("owner").await;
    let email = format!("{}@example.com", owner.username);
    let fresh = system
        .post(
            "/api/v1/auth/register",
            &json!({"username": "fresh_one", "email": "fresh@example.com", "password": "recycle2026"}),
        )
        .await;
    let taken = system
        .post("/api/v1/auth/register", &json!({"username": "copy_cat", "email": email, "password": "recycle2026"}))
        .await;
    assert_eq!((fresh.status, taken.status), (StatusCode::CREATED, StatusCode::CREATED));
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&fresh.body), keys(&taken.body));
    assert_eq!(keys(&fresh.body["user"]), keys(&taken.body["user"]));
    let mails = mails_to(&system, &email, 2).await;
    assert!(mails.iter().any(|m| m.subject.contains("Someone tried to sign up")), "the owner is told");
    assert!(mails.iter().all(|m| !m.subject.contains("Confirm") || m.text.contains("token=")));
    mails_to(&system, "fresh@example.com", 1).await;
}
