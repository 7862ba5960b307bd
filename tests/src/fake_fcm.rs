//! A local stand-in for Firebase Cloud Messaging's HTTP v1 API and Google's OAuth token
//! endpoint, answering in their shapes: the token endpoint checks the service account's signed
//! assertion (RS256, against the test key's public half) and mints an access token; the send
//! endpoint checks that token, records each message, reports tokens it was told are gone as
//! `UNREGISTERED` (404), and can be switched down (503 `UNAVAILABLE`).

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// The test service account's private key (PKCS#8 PEM, test-only).
pub const PRIVATE_KEY: &str = include_str!("../keys/fcm-service-account.pem");
const PUBLIC_KEY: &str = include_str!("../keys/fcm-service-account.pub.pem");
const ACCESS_TOKEN: &str = "fake-fcm-access-token";
/// The project the fake serves.
pub const PROJECT: &str = "ecoeco-test";

/// One message the fake accepted.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The device token.
    pub token: String,
    /// `notification.title`.
    pub title: String,
    /// `notification.body`.
    pub body: String,
    /// `data`.
    pub data: Value,
}

#[derive(Default)]
struct Shared {
    down: bool,
    /// Tokens whose next send fails with 503, once.
    flaky: HashSet<String>,
    gone: HashSet<String>,
    pushed: Vec<Pushed>,
    minted: usize,
    refused: usize,
}

/// The fake provider.
#[derive(Clone)]
pub struct FakeFcm {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    shared: Arc<Mutex<Shared>>,
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: String,
    assertion: String,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    scope: String,
}

async fn token(State(shared): State<Arc<Mutex<Shared>>>, Form(req): Form<TokenRequest>) -> Response {
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Claims>(&req.assertion, &key, &validation);
    match claims {
        Ok(c)
            if req.grant_type == "urn:ietf:params:oauth:grant-type:jwt-bearer"
                && c.claims.iss.ends_with(".iam.gserviceaccount.com")
                && c.claims.scope.contains("firebase.messaging") =>
        {
            shared.lock().unwrap().minted += 1;
            Json(json!({"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"})).into_response()
        }
        _ => (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant", "error_description": "Invalid JWT"})))
            .into_response(),
    }
}

fn error(status: StatusCode, name: &str, message: &str, code: Option<&str>) -> Response {
    let details: Vec<Value> = code
        .map(|c| json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": c}))
        .into_iter()
        .collect();
    (status, Json(json!({"error": {"code": status.as_u16(), "message": message, "status": name, "details": details}})))
        .into_response()
}

async fn send(State(shared): State<Arc<Mutex<Shared>>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {ACCESS_TOKEN}")) {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
            None,
        );
    }
    let mut s = shared.lock().unwrap();
    if s.down {
        s.refused += 1;
        return error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", "The service is currently unavailable.", None);
    }
    let message = &body["message"];
    let token = message["token"].as_str().unwrap_or_default().to_owned();
    if s.flaky.remove(&token) {
        s.refused += 1;
        return error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", "The service is currently unavailable.", None);
    }
    if s.gone.contains(&token) {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "Requested entity was not found.", Some("UNREGISTERED"));
    }
    s.pushed.push(Pushed {
        token,
        title: message["notification"]["title"].as_str().unwrap_or_default().into(),
        body: message["notification"]["body"].as_str().unwrap_or_default().into(),
        data: message["data"].clone(),
    });
    Json(json!({"name": format!("projects/{PROJECT}/messages/{}", s.pushed.len())})).into_response()
}

impl FakeFcm {
    /// Starts the fake on a free port.
    pub async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = Router::new()
            .route("/token", post(token))
            .route(&format!("/v1/projects/{PROJECT}/messages:send"), post(send))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, shared }
    }

    /// The service-account key JSON pointing at this fake's token endpoint.
    pub fn service_account(&self) -> String {
        json!({
            "type": "service_account",
            "project_id": PROJECT,
            "client_email": "pusher@ecoeco-test.iam.gserviceaccount.com",
            "private_key": PRIVATE_KEY,
            "token_uri": format!("{}/token", self.base),
        })
        .to_string()
    }

    /// Switches the provider down (503) or back up.
    pub fn set_down(&self, down: bool) {
        self.shared.lock().unwrap().down = down;
    }

    /// The next send to `token` fails with 503 (once).
    pub fn fail_once(&self, token: &str) {
        self.shared.lock().unwrap().flaky.insert(token.to_owned());
    }

    /// From now on, `token` is reported unregistered.
    pub fn forget_device(&self, token: &str) {
        self.shared.lock().unwrap().gone.insert(token.to_owned());
    }

    /// Every message accepted so far.
    pub fn pushed(&self) -> Vec<Pushed> {
        self.shared.lock().unwrap().pushed.clone()
    }

    /// How many sends were refused while down.
    pub fn refused(&self) -> usize {
        self.shared.lock().unwrap().refused
    }
}
