//! A local stand-in for Google's and Kakao's OAuth endpoints (`/{provider}/token`,
//! `/{provider}/userinfo`), shaped like the real answers.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[derive(Default)]
struct Grants {
    /// code → (PKCE challenge the token request must match, user info).
    codes: HashMap<String, (Option<String>, Value)>,
    /// access token → user info.
    tokens: HashMap<String, Value>,
    /// Answer every token request with 500.
    down: bool,
}

/// The fake provider.
#[derive(Clone)]
pub struct FakeOAuth {
    /// `http://127.0.0.1:<port>`; providers live under `/google` and `/kakao`.
    pub base: String,
    grants: Arc<Mutex<Grants>>,
}

async fn token(
    State(grants): State<Arc<Mutex<Grants>>>,
    Path(_provider): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> impl IntoResponse {
    let mut g = grants.lock().unwrap();
    if g.down {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "server_error"})));
    }
    let Some((challenge, info)) = form.get("code").and_then(|c| g.codes.remove(c)) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": "authorization code not found"})),
        );
    };
    if let Some(challenge) = challenge {
        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
        if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != challenge {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_grant", "error_description": "PKCE verification failed"})),
            );
        }
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") || !form.contains_key("client_id") {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_request"})));
    }
    let access = format!("at-{}", uuid::Uuid::new_v4().simple());
    g.tokens.insert(access.clone(), info);
    (StatusCode::OK, Json(json!({"access_token": access, "token_type": "bearer", "expires_in": 3599})))
}

async fn userinfo(State(grants): State<Arc<Mutex<Grants>>>, headers: HeaderMap) -> impl IntoResponse {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    match grants.lock().unwrap().tokens.get(token) {
        Some(info) => (StatusCode::OK, Json(info.clone())),
        None => (StatusCode::UNAUTHORIZED, Json(json!({"msg": "this access token does not exist", "code": -401}))),
    }
}

impl FakeOAuth {
    /// Starts the fake on a free port.
    pub async fn start() -> Self {
        let grants = Arc::new(Mutex::new(Grants::default()));
        let app = Router::new()
            .route("/{provider}/token", post(token))
            .route("/{provider}/userinfo", get(userinfo))
            .with_state(grants.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, grants }
    }

    /// A code that yields `info` (with a PKCE `challenge` to enforce, when given).
    pub fn grant(&self, challenge: Option<String>, info: Value) -> String {
        let code = format!("code-{}", uuid::Uuid::new_v4().simple());
        self.grants.lock().unwrap().codes.insert(code.clone(), (challenge, info));
        code
    }

    /// Makes the token endpoint fail with 500 (`true`) or work again.
    pub fn set_down(&self, down: bool) {
        self.grants.lock().unwrap().down = down;
    }
}
