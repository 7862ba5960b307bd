//! Harness for end-to-end tests: every EcoEco process, in-process on port 0, against the real
//! PostgreSQL, Redis and RabbitMQ of the machine, isolated per test.
//!
//! Each [`TestSystem`] gets its own database (`ecoeco_test_<id>`), AMQP prefix and Redis key
//! prefix, so tests run in parallel and never see each other's events. Dropping it stops the
//! processes and removes the database, queues, exchange and keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod fake_fcm;
pub mod fake_kakao;
pub mod fake_oauth;
pub mod images;
pub mod proxy;
pub mod s3;

use std::time::Duration;

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use platform::{Settings, topology::Topology};
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use reqwest::StatusCode;

/// Test settings: the machine's services (or `DATABASE_URL`, `REDIS_URL`, `AMQP_URL`), a fresh
/// database name and prefixes, fast retry tiers.
pub fn isolated_settings() -> Settings {
    let mut s = Settings::from_env().expect("settings");
    let id = Uuid::new_v4().simple().to_string();
    let short = &id[..12];
    s.database_url = with_database(&s.database_url, &format!("ecoeco_test_{short}"));
    s.amqp_prefix = format!("t{short}");
    s.redis_prefix = format!("t{short}");
    s.retry_delays = vec![Duration::from_millis(100), Duration::from_millis(200)];
    s.database_max_connections = 5;
    s.bind_addr = Some("127.0.0.1:0".parse().unwrap());
    // Every test talks from 127.0.0.1; the limits get a test of their own.
    s.rate_limit_auth_per_min = 100_000;
    s.rate_limit_commands_per_min = 100_000;
    s.rate_limit_reads_per_min = 1_000_000;
    s.storage_url = format!("file:{}", std::env::temp_dir().join("ecoeco-test-objects").join(short).display());
    s
}

/// The Python of the checks: `ECOECO_PYTHON`, else the virtualenv `scripts/test.sh` prepares
/// in `target/pyenv`, else `python3`.
pub fn python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("ECOECO_PYTHON") {
        return p.into();
    }
    let venv = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python");
    if venv.exists() { venv } else { "python3".into() }
}

/// `url` pointing at database `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Which processes a test starts, and where the workers reach the broker.
#[derive(Clone)]
pub struct Options {
    /// Start the relay and projectors.
    pub workers: bool,
    /// Broker URL for the workers only (e.g. through a [`proxy::TcpProxy`]).
    pub workers_amqp_url: Option<String>,
    /// Changes to every process's settings.
    pub configure: fn(&mut Settings),
    /// Base URL of a [`fake_oauth::FakeOAuth`] to use as Google and Kakao.
    pub oauth_base: Option<String>,
    /// Base URL of a [`fake_kakao::FakeKakao`] to use as the Kakao Local API (with its key).
    pub kakao_local_base: Option<String>,
    /// A [`fake_fcm::FakeFcm`] to push through.
    pub fcm: Option<fake_fcm::FakeFcm>,
    /// Object storage in an S3-compatible store (`STORAGE_URL` and its connection) instead of
    /// the test's own directory.
    pub s3: Option<(String, platform::settings::S3Settings)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            workers: true,
            workers_amqp_url: None,
            configure: |_| {},
            oauth_base: None,
            kakao_local_base: None,
            fcm: None,
            s3: None,
        }
    }
}

/// A running, isolated EcoEco.
pub struct TestSystem {
    /// The settings every process got.
    pub settings: Settings,
    /// `http://127.0.0.1:<port>` of command-api.
    pub command_url: String,
    /// `http://127.0.0.1:<port>` of query-api.
    pub query_url: String,
    /// `http://127.0.0.1:<port>` of the workers' ops routes, when started.
    pub workers_url: Option<String>,
    /// A pool on the test's database, for assertions.
    pub db: PgPool,
    /// HTTP client.
    pub http: reqwest::Client,
    stop: CancellationToken,
    workers_stop: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    workers_task: Option<JoinHandle<anyhow::Result<()>>>,
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

impl TestSystem {
    /// Every process, on the machine's broker.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// The processes `options` asks for.
    pub async fn start_with(options: Options) -> Self {
        init_logs();
        let mut settings = isolated_settings();
        (options.configure)(&mut settings);
        if let Some(base) = &options.oauth_base {
            settings.google = platform::settings::OAuthProvider::at(&format!("{base}/google"));
            settings.kakao = platform::settings::OAuthProvider::at(&format!("{base}/kakao"));
        }
        if let Some(base) = &options.kakao_local_base {
            settings.kakao_local_url = base.clone();
            settings.kakao_rest_api_key = Some(fake_kakao::KEY.into());
            settings.kakao_local_timeout = Duration::from_millis(500);
        }
        if let Some(fcm) = &options.fcm {
            settings.fcm_project_id = Some(fake_fcm::PROJECT.into());
            settings.fcm_service_account = Some(fcm.service_account());
            settings.fcm_endpoint = fcm.base.clone();
        }
        if let Some((url, s3)) = &options.s3 {
            settings.storage_url = url.clone();
            settings.s3 = s3.clone();
        }
        let db = platform::db::connect(&settings).await.expect("test database");
        let mut no_migrate = settings.clone();
        no_migrate.migrate_on_start = false;

        let stop = CancellationToken::new();
        let command = command_api::App::build(no_migrate.clone()).await.expect("command-api");
        let query = query_api::App::build(no_migrate.clone()).await.expect("query-api");
        let command_url = format!("http://127.0.0.1:{}", command.port());
        let query_url = format!("http://127.0.0.1:{}", query.port());
        let tasks = vec![
            tokio::spawn(command.run_until_stopped(stop.clone())),
            tokio::spawn(query.run_until_stopped(stop.clone())),
        ];

        let mut system = Self {
            settings,
            command_url,
            query_url,
            workers_url: None,
            db,
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            stop,
            workers_stop: CancellationToken::new(),
            tasks,
            workers_task: None,
        };
        if options.workers {
            system.start_workers(options.workers_amqp_url).await;
        } else {
            workers::declare_topology(&system.settings).await.expect("topology");
        }
        system
    }

    /// Starts (or restarts) the workers process, optionally on another broker URL.
    pub async fn start_workers(&mut self, amqp_url: Option<String>) {
        let mut settings = self.settings.clone();
        settings.migrate_on_start = false;
        if let Some(url) = amqp_url {
            settings.amqp_url = url;
        }
        self.workers_stop = CancellationToken::new();
        let app = workers::App::build(settings, workers::Role::all()).await.expect("workers");
        self.workers_url = Some(format!("http://127.0.0.1:{}", app.port()));
        self.workers_task = Some(tokio::spawn(app.run_until_stopped(self.workers_stop.clone())));
    }

    /// Stops command-api and query-api as SIGTERM would and starts them again (new ports).
    pub async fn restart_apis(&mut self) {
        self.stop.cancel();
        for task in self.tasks.drain(..) {
            tokio::time::timeout(Duration::from_secs(30), task).await.expect("APIs stop in time").unwrap().unwrap();
        }
        self.stop = CancellationToken::new();
        let mut settings = self.settings.clone();
        settings.migrate_on_start = false;
        let command = command_api::App::build(settings.clone()).await.expect("command-api");
        let query = query_api::App::build(settings).await.expect("query-api");
        self.command_url = format!("http://127.0.0.1:{}", command.port());
        self.query_url = format!("http://127.0.0.1:{}", query.port());
        self.tasks = vec![
            tokio::spawn(command.run_until_stopped(self.stop.clone())),
            tokio::spawn(query.run_until_stopped(self.stop.clone())),
        ];
    }

    /// Starts a separate `workers` OS process (every role) from `exe` (the `workers-under-test`
    /// binary: `env!("CARGO_BIN_EXE_workers-under-test")` in an integration test) on this
    /// system's database, broker prefix and Redis prefix. Killed when dropped.
    pub fn spawn_workers_process(&self, exe: &str) -> WorkersProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let s = &self.settings;
        let delays: Vec<String> = s.retry_delays.iter().map(|d| d.as_millis().to_string()).collect();
        let child = tokio::process::Command::new(exe)
            .env("DATABASE_URL", &s.database_url)
            .env("DATABASE_MAX_CONNECTIONS", s.database_max_connections.to_string())
            .env("REDIS_URL", &s.redis_url)
            .env("AMQP_URL", &s.amqp_url)
            .env("AMQP_PREFIX", &s.amqp_prefix)
            .env("REDIS_PREFIX", &s.redis_prefix)
            .env("RETRY_DELAYS_MS", delays.join(","))
            .env("PROJECTOR_BATCH_SIZE", s.projector_batch_size.to_string())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("MIGRATE_ON_START", "false")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting the workers process");
        WorkersProcess { child, url: format!("http://127.0.0.1:{port}") }
    }

    /// Stops the workers as SIGTERM would, and waits until they finished their work in hand.
    pub async fn stop_workers(&mut self) {
        self.workers_stop.cancel();
        if let Some(task) = self.workers_task.take() {
            tokio::time::timeout(Duration::from_secs(30), task).await.expect("workers stop in time").unwrap().unwrap();
        }
    }

    /// Queue and exchange names of this test.
    pub fn topology(&self) -> Topology {
        Topology::new(&self.settings.amqp_prefix, &self.settings.retry_delays)
    }

    /// POST JSON to command-api.
    pub async fn post(&self, path: &str, body: &Value) -> Response {
        Response::read(self.http.post(format!("{}{path}", self.command_url)).json(body).send().await.unwrap()).await
    }

    /// POST JSON to command-api as `bearer`.
    pub async fn command(&self, path: &str, bearer: &str, body: &Value) -> Response {
        let req = self.http.post(format!("{}{path}", self.command_url)).bearer_auth(bearer).json(body);
        Response::read(req.send().await.unwrap()).await
    }

    /// POST raw bytes to command-api as `application/json`.
    pub async fn post_raw(&self, path: &str, body: &'static str) -> Response {
        let req =
            self.http.post(format!("{}{path}", self.command_url)).header("content-type", "application/json").body(body);
        Response::read(req.send().await.unwrap()).await
    }

    /// GET from query-api with a bearer token and optional consistency token.
    pub async fn query(&self, path: &str, bearer: &str, consistency: Option<&str>) -> Response {
        let mut req = self.http.get(format!("{}{path}", self.query_url)).bearer_auth(bearer);
        if let Some(token) = consistency {
            req = req.header("x-consistency-token", token);
        }
        Response::read(req.send().await.unwrap()).await
    }

    /// Registers a user with a unique username; returns the response.
    pub async fn register(&self, name: impl std::fmt::Display) -> Registered {
        self.register_with(name, None).await
    }

    /// Registers a user, with an invite code when given.
    pub async fn register_with(&self, name: impl std::fmt::Display, invite_code: Option<&str>) -> Registered {
        let suffix = &Uuid::new_v4().simple().to_string()[..8];
        let username = format!("{name}_{suffix}");
        let res = self
            .post(
                "/api/v1/auth/register",
                &serde_json::json!({"username": username, "email": format!("{username}@example.com"), "password": "recycle2026", "invite_code": invite_code}),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        Registered {
            user_id: res.body["user"]["id"].as_str().unwrap().parse().unwrap(),
            username,
            access_token: res.body["access_token"].as_str().unwrap().to_owned(),
            consistency_token: res.header("x-consistency-token").unwrap(),
        }
    }

    /// Polls `check` every 20 ms until it returns `Some`, for at most `limit`.
    pub async fn eventually<T, F, Fut>(&self, limit: Duration, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if tokio::time::Instant::now() >= deadline {
                // A workers task that ended while nobody stopped it explains most such waits.
                let workers = match &self.workers_task {
                    Some(task) if task.is_finished() && !self.workers_stop.is_cancelled() => {
                        " (the workers had stopped on their own)"
                    }
                    _ => "",
                };
                panic!("timed out after {limit:?} waiting for: {what}{workers}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the outbox is empty and every consumer has applied every published event of
    /// its types with nothing left in its queue.
    pub async fn settle(&self, limit: Duration) {
        // The checks are separate queries: they count only if no event was appended meanwhile
        // (a consumer applying one event may append another, e.g. a points award).
        self.eventually(limit, "every event published and applied everywhere", || async {
            let last = "select coalesce(max(position), 0) from eventstore.events";
            let before = self.count(last).await;
            let unpublished = self.count("select count(*) from eventstore.events where published_at is null").await;
            let status = workers::ops::status(&self.settings, &self.db).await.ok()?;
            let settled = unpublished == 0 && status.iter().all(|s| s.lag_events == 0 && s.queued == Some(0));
            (settled && self.count(last).await == before).then_some(())
        })
        .await;
    }

    /// `GET {query-api}/api/v1{path}` without a token (public reads).
    pub async fn get(&self, path: &str) -> Response {
        Response::read(self.http.get(format!("{}/api/v1{path}", self.query_url)).send().await.unwrap()).await
    }

    /// `POST {query-api}/api/v1{path}` with a JSON body and no token (public reads by POST).
    pub async fn post_query(&self, path: &str, body: &Value) -> Response {
        Response::read(self.http.post(format!("{}/api/v1{path}", self.query_url)).json(body).send().await.unwrap())
            .await
    }

    /// Any method on `{command-api}/api/v1{path}` with `bearer`, and a JSON body if given.
    pub async fn send(&self, method: reqwest::Method, path: &str, bearer: &str, body: Option<Value>) -> Response {
        let mut req = self.http.request(method, format!("{}/api/v1{path}", self.command_url)).bearer_auth(bearer);
        if let Some(b) = body {
            req = req.json(&b);
        }
        Response::read(req.send().await.unwrap()).await
    }

    /// Makes `user` an admin and signs them in again: the admin access token.
    pub async fn promote_to_admin(&self, user: &Registered) -> String {
        sqlx::query("update auth.users set role = 'admin' where id = $1")
            .bind(user.user_id)
            .execute(&self.db)
            .await
            .unwrap();
        let login = self
            .post(
                "/api/v1/auth/login",
                &serde_json::json!({"email": format!("{}@example.com", user.username), "password": "recycle2026"}),
            )
            .await;
        login.body["access_token"].as_str().unwrap().to_owned()
    }

    /// Adds a bin at `(latitude, longitude)` the way an admin command does (recycles near it
    /// pay; see honest recycling) and returns its id.
    pub async fn add_bin(&self, latitude: f64, longitude: f64) -> Uuid {
        let place_id = Uuid::now_v7();
        let place = events::PlaceSaved {
            place_id,
            kind: events::PlaceKind::Bin,
            name: "test bin".into(),
            address: String::new(),
            location: events::GeoPoint { latitude, longitude },
            categories: vec![events::Category::Glass, events::Category::Plastic],
            opening_hours: None,
            phone: None,
        };
        let mut tx = self.db.begin().await.unwrap();
        command_api::content::places::save(&mut tx, place, "tests", None).await.unwrap();
        tx.commit().await.unwrap();
        platform::eventstore::wake_relay(&self.db).await.unwrap();
        place_id
    }

    /// Makes `user_id` a live account (as registration would on the write side), so events
    /// another service publishes about them are admitted; returns the same id.
    pub async fn live_account(&self, user_id: Uuid) -> Uuid {
        sqlx::query("insert into auth.users (id, username, email) values ($1, $2, $3) on conflict do nothing")
            .bind(user_id)
            .bind(format!("u{}", &user_id.simple().to_string()[..12]))
            .bind(format!("{}@example.test", user_id.simple()))
            .execute(&self.db)
            .await
            .expect("account row");
        user_id
    }

    /// Number of rows `sql` (a `select count(*)`) returns.
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.unwrap()
    }
}

/// A `workers` OS process started by [`TestSystem::spawn_workers_process`].
pub struct WorkersProcess {
    /// The child.
    pub child: tokio::process::Child,
    /// `http://127.0.0.1:<port>` of its `/health`, `/ready` and `/metrics`.
    pub url: String,
}

impl WorkersProcess {
    /// Waits until it reports ready (connected to everything).
    pub async fn ready(&self, http: &reqwest::Client) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(res) = http.get(format!("{}/ready", self.url)).send().await
                && res.status().is_success()
            {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "the workers process did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The sum of the `metric` samples on its `/metrics` whose labels contain every one of
    /// `labels` (e.g. `consumer="projection.profiles"`).
    pub async fn metric(&self, http: &reqwest::Client, metric: &str, labels: &[&str]) -> f64 {
        scrape(http, &self.url, metric, labels).await.unwrap_or(0.0)
    }

    /// SIGTERM, as Kubernetes sends it; waits (at most 30 s) for the process to exit and
    /// returns whether it exited cleanly.
    pub async fn terminate(mut self) -> bool {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the workers process stops within 30 s of SIGTERM")
            .unwrap();
        status.success()
    }

    /// SIGKILL: no shutdown, no acknowledgements, no goodbye.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

/// The sum of the `metric` samples on `{base_url}/metrics` whose labels contain every one of
/// `labels`; `None` when there is no such sample.
pub async fn scrape(http: &reqwest::Client, base_url: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    let text = http.get(format!("{base_url}/metrics")).send().await.ok()?.text().await.ok()?;
    let values: Vec<f64> = text
        .lines()
        .filter(|l| {
            (l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
                && labels.iter().all(|want| l.contains(want))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// A registered user.
pub struct Registered {
    /// Id.
    pub user_id: Uuid,
    /// Username.
    pub username: String,
    /// Access token.
    pub access_token: String,
    /// `X-Consistency-Token` of the registration.
    pub consistency_token: String,
}

/// A response, read whole.
pub struct Response {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl Response {
    /// Reads a whole response.
    pub async fn read(res: reqwest::Response) -> Self {
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Self { status, headers, body }
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    /// Asserts a problem+json with `status` and `code`; returns the body.
    pub fn assert_problem(&self, status: StatusCode, code: &str) -> &Value {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.header("content-type").as_deref(), Some("application/problem+json"));
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert_eq!(self.body["status"], status.as_u16());
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(self.body["request_id"].as_str(), self.header("x-request-id").as_deref());
        &self.body
    }
}

impl Drop for TestSystem {
    fn drop(&mut self) {
        self.stop.cancel();
        self.workers_stop.cancel();
        for t in &self.tasks {
            t.abort();
        }
        if let Some(t) = &self.workers_task {
            t.abort();
        }
        let settings = self.settings.clone();
        // Cleanup needs async I/O but Drop is sync: run it on a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(cleanup(settings));
        });
        let _ = cleanup.join();
    }
}

async fn cleanup(settings: Settings) {
    if let Some(dir) = settings.mail_transport.strip_prefix("file:")
        && dir.contains("ecoeco-mail-")
    {
        let _ = std::fs::remove_dir_all(dir);
    }
    if let Ok(conn) = platform::amqp::connect(&settings.amqp_url, "test cleanup").await
        && let Ok(channel) = conn.create_channel().await
    {
        let topology = Topology::new(&settings.amqp_prefix, &settings.retry_delays);
        let mut queues: Vec<String> = workers::registry::specs().iter().flat_map(|c| topology.queues_of(c)).collect();
        queues.push(format!("{}.test-tap", settings.amqp_prefix));
        for q in queues {
            let _ = channel.queue_delete(&q, QueueDeleteOptions::default()).await;
        }
        let _ = channel.exchange_delete(&topology.exchange(), ExchangeDeleteOptions::default()).await;
        let _ = conn.close(200, "cleanup").await;
    }
    if let Ok(client) = redis::Client::open(settings.redis_url.as_str())
        && let Ok(mut c) = client.get_multiplexed_async_connection().await
    {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", settings.redis_prefix))
            .query_async(&mut c)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut c).await;
        }
    }
    let name =
        settings.database_url.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default().to_owned();
    if let Ok(mut admin) = PgConnection::connect(&with_database(&settings.database_url, "postgres")).await {
        let _ = sqlx::query(&format!(r#"drop database if exists "{name}" with (force)"#)).execute(&mut admin).await;
    }
}
