//! Configuration from environment variables, with working local defaults (DESIGN §5).

use std::{net::SocketAddr, path::Path, time::Duration};

use anyhow::{Context, bail};
use chrono_tz::Tz;

use crate::devkeys::{DEV_PRIVATE_KEY_PEM, DEV_PUBLIC_KEY_PEM};

/// Where the process runs; `production` refuses development keys and default secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    /// Local use and tests.
    Development,
    /// Real users.
    Production,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log shippers.
    Json,
    /// Human-readable.
    Pretty,
}

/// One OAuth provider's client and endpoints (`GOOGLE_*`, `KAKAO_*`).
#[derive(Debug, Clone)]
pub struct OAuthProvider {
    /// `*_CLIENT_ID`; social login with this provider is off while empty.
    pub client_id: String,
    /// `*_CLIENT_SECRET`.
    pub client_secret: String,
    /// `*_AUTH_URL`: the authorization endpoint.
    pub auth_url: String,
    /// `*_TOKEN_URL`: the token endpoint.
    pub token_url: String,
    /// `*_USERINFO_URL`: the user-info endpoint.
    pub userinfo_url: String,
}

impl OAuthProvider {
    fn read(get: &impl Fn(&str) -> Option<String>, prefix: &str, defaults: [&str; 3]) -> Self {
        let var = |name: &str, default: &str| {
            get(&format!("{prefix}_{name}")).filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
        };
        Self {
            client_id: var("CLIENT_ID", ""),
            client_secret: var("CLIENT_SECRET", ""),
            auth_url: var("AUTH_URL", defaults[0]),
            token_url: var("TOKEN_URL", defaults[1]),
            userinfo_url: var("USERINFO_URL", defaults[2]),
        }
    }

    /// Points every endpoint at `base` (`{base}/authorize`, `/token`, `/userinfo`), for tests
    /// against a local fake provider.
    pub fn at(base: &str) -> Self {
        Self {
            client_id: "test-client".into(),
            client_secret: "test-secret".into(),
            auth_url: format!("{base}/authorize"),
            token_url: format!("{base}/token"),
            userinfo_url: format!("{base}/userinfo"),
        }
    }
}

const GOOGLE_DEFAULTS: [&str; 3] = [
    "https://accounts.google.com/o/oauth2/v2/auth",
    "https://oauth2.googleapis.com/token",
    "https://openidconnect.googleapis.com/v1/userinfo",
];
const KAKAO_DEFAULTS: [&str; 3] = [
    "https://kauth.kakao.com/oauth/authorize",
    "https://kauth.kakao.com/oauth/token",
    "https://kapi.kakao.com/v2/user/me",
];

/// Every setting a process reads. Build it with [`Settings::from_env`]; tests start from
/// [`Settings::local`] and change what they need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `APP_ENV`: `development` (default) or `production`.
    pub app_env: AppEnv,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `DATABASE_MAX_CONNECTIONS` per pool (default 10).
    pub database_max_connections: u32,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `AMQP_URL`.
    pub amqp_url: String,
    /// `BIND_ADDR`: the HTTP listener; `None` means the process's own default port.
    pub bind_addr: Option<SocketAddr>,
    /// `AMQP_PREFIX` for every exchange and queue name (default `eco`).
    pub amqp_prefix: String,
    /// `REDIS_PREFIX` for every Redis key (default `eco`).
    pub redis_prefix: String,
    /// `APP_TIMEZONE` (default `Asia/Seoul`): local dates, weeks and months.
    pub app_timezone: Tz,
    /// `JWT_PRIVATE_KEY` or `JWT_PRIVATE_KEY_FILE`: Ed25519 PKCS#8 PEM that signs tokens.
    pub jwt_private_key_pem: String,
    /// `JWT_PUBLIC_KEY` or `JWT_PUBLIC_KEY_FILE`: one or more Ed25519 public PEM blocks; the
    /// first matches the private key, the rest are previous keys still accepted.
    pub jwt_public_keys_pem: String,
    /// `LOG_FORMAT`: `json` or `pretty` (default `pretty` in development, `json` in production).
    pub log_format: LogFormat,
    /// `MIGRATE_ON_START` (default `true`): apply pending migrations when the process starts.
    pub migrate_on_start: bool,
    /// `CONSISTENCY_TIMEOUT_MS` (default 2000): how long a query waits for a consistency token.
    pub consistency_timeout: Duration,
    /// `RELAY_BATCH_SIZE` (default 500): outbox rows published per confirm round.
    pub relay_batch_size: i64,
    /// `PROJECTOR_BATCH_SIZE` (default 200): deliveries applied per transaction; also the
    /// consumer prefetch.
    pub projector_batch_size: u16,
    /// `PROJECTOR_BATCH_LINGER_MS` (default 0): how long a consumer's batch waits for more
    /// deliveries after its first, trading that much latency for fewer transactions.
    pub projector_batch_linger: Duration,
    /// How often each workers process samples the operator gauges (outbox backlog, lag, parked).
    pub gauge_interval: Duration,
    /// A recycle pays only within this many metres of a known bin or center.
    pub recycle_max_distance_m: f64,
    /// `KAKAO_REST_API_KEY`: the Kakao Local API key; geocoding answers 503 while unset.
    pub kakao_rest_api_key: Option<String>,
    /// `KAKAO_LOCAL_URL`: base URL of the Kakao Local API.
    pub kakao_local_url: String,
    /// `KAKAO_LOCAL_TIMEOUT_MS`: how long a Kakao Local call may take.
    pub kakao_local_timeout: Duration,
    /// `RETRY_DELAYS_MS` (default `1000,10000,60000`): the delay of each retry tier; an event
    /// that still fails after the last one is parked.
    pub retry_delays: Vec<Duration>,
    /// `TRUSTED_PROXY_HEADER` (e.g. `x-forwarded-for`): where the client IP comes from behind
    /// a proxy; unset means the TCP peer address.
    pub trusted_proxy_header: Option<String>,
    /// `REFRESH_GRACE_SECS` (default 10): how long a spent refresh token is still honoured, so
    /// two concurrent refreshes from one app do not log it out.
    pub refresh_grace: Duration,
    /// `MAIL_TRANSPORT`: `log` (default: the message is logged), `file:DIR` (one `.eml` file per
    /// message) or `smtp://host:port` / `smtps://user:pass@host:port`.
    pub mail_transport: String,
    /// `MAIL_FROM` (default `EcoEco <no-reply@ecoeco.local>`).
    pub mail_from: String,
    /// `APP_BASE_URL` (default `http://127.0.0.1:3000`): where links in mail point.
    pub app_base_url: String,
    /// Google sign-in (`GOOGLE_CLIENT_ID`, `GOOGLE_CLIENT_SECRET`, `GOOGLE_AUTH_URL`,
    /// `GOOGLE_TOKEN_URL`, `GOOGLE_USERINFO_URL`).
    pub google: OAuthProvider,
    /// Kakao sign-in (`KAKAO_CLIENT_ID`, `KAKAO_CLIENT_SECRET`, `KAKAO_AUTH_URL`,
    /// `KAKAO_TOKEN_URL`, `KAKAO_USERINFO_URL`).
    pub kakao: OAuthProvider,
    /// `OAUTH_REDIRECT_URI` (default `{APP_BASE_URL}/oauth/callback`): where providers send the
    /// user back; the app then posts the code to `/auth/oauth/{provider}/callback`.
    pub oauth_redirect_uri: String,
    /// `SCAN_DAILY_CAP` (default 30): rewarded scans per user per local day.
    pub scan_daily_cap: i64,
    /// `SCAN_UNIQUE_IMAGES` (default `true`): a scan whose image hash was already rewarded pays
    /// nothing.
    pub scan_unique_images: bool,
    /// `STREAK_BONUS_POINTS` (default 20, 0: none): paid on every 7th consecutive check-in day.
    pub streak_bonus_points: i64,
    /// `PERIOD_CLOSE_INTERVAL_SECS` (default 60, 0: never): how often workers look for weeks
    /// and months that ended and record their final standings (also once at start).
    pub period_close_interval: Duration,
    /// `PERIOD_CLOSE_GRACE_SECS` (default 60): a period is closed this long after it ended, so
    /// awards committed around the boundary are in its standings.
    pub period_close_grace: Duration,
    /// `FCM_PROJECT_ID`: the Firebase project push notifications go through; unset, nothing is
    /// pushed (the in-app feed still fills).
    pub fcm_project_id: Option<String>,
    /// `FCM_SERVICE_ACCOUNT_JSON` or `FCM_SERVICE_ACCOUNT_JSON_FILE`: the service-account key
    /// (JSON with `client_email`, `private_key`, `token_uri`) the access tokens are minted from.
    pub fcm_service_account: Option<String>,
    /// `FCM_ENDPOINT` (default `https://fcm.googleapis.com`): the HTTP v1 API's base URL.
    pub fcm_endpoint: String,
    /// `QUIET_HOURS` (default `22:00-08:00`, app time zone; `off` for none): nothing is pushed
    /// then; pushes wait until they end (the feed records at once).
    pub quiet_hours: Option<(chrono::NaiveTime, chrono::NaiveTime)>,
    /// `HTTP_HEADER_READ_TIMEOUT_MS` (default 10000): a request's headers must arrive within
    /// this time of connecting or of the previous response.
    pub http_header_read_timeout: Duration,
    /// `HTTP_IDLE_TIMEOUT_MS` (default 60000): a connection with no byte moving either way for
    /// this long is closed.
    pub http_idle_timeout: Duration,
    /// `HTTP_MAX_HEADER_BYTES` (default 16384): larger request headers get 431.
    pub http_max_header_bytes: usize,
    /// `RATE_LIMIT_AUTH_PER_MIN` (default 30): sign-up, sign-in, token refresh and account
    /// recovery requests per client address per minute.
    pub rate_limit_auth_per_min: u32,
    /// `RATE_LIMIT_COMMANDS_PER_MIN` (default 300): other commands per user (or client address
    /// without a token) per minute.
    pub rate_limit_commands_per_min: u32,
    /// `RATE_LIMIT_READS_PER_MIN` (default 3000): reads per user (or client address without a
    /// token) per minute.
    pub rate_limit_reads_per_min: u32,
    /// `RETENTION_INTERVAL_SECS` (default 3600): how often workers delete what is no longer kept
    /// (0: never).
    pub retention_interval: Duration,
    /// `RETENTION_SESSIONS_DAYS` (default 7): refresh tokens are kept this long after they expire.
    pub retention_sessions: Duration,
    /// `RETENTION_EMAIL_TOKENS_DAYS` (default 1): e-mail tokens are kept this long after they
    /// were used or expired.
    pub retention_email_tokens: Duration,
    /// `RETENTION_SENT_MAIL_DAYS` (default 7): a mail record is kept this long after sending
    /// (after queueing when it was never sent).
    pub retention_sent_mail: Duration,
    /// `STORAGE_URL` (default `file:data/objects`): where uploaded files and their renditions
    /// live, through the `object_store` crate: `file:DIR` (a local directory, created when
    /// missing; shared by every process, so one volume in Kubernetes) or `s3://BUCKET[/PREFIX]`
    /// (any S3-compatible store, with the `S3_*` settings).
    pub storage_url: String,
    /// The S3-compatible store's connection (`S3_ENDPOINT`, `S3_REGION`, `S3_ACCESS_KEY_ID`,
    /// `S3_SECRET_ACCESS_KEY` or `S3_SECRET_ACCESS_KEY_FILE`); used when `STORAGE_URL` is `s3://`.
    pub s3: S3Settings,
    /// `AVATAR_MAX_BYTES` (default 5242880, 5 MiB): the largest avatar upload.
    pub avatar_max_bytes: usize,
    /// `AVATAR_MAX_PIXELS` (default 16000000): the most pixels an uploaded image may declare
    /// (a decompression bomb declares far more than it sends); each side is also capped at 12000.
    pub avatar_max_pixels: u64,
    /// `AVATAR_BASE_URL` (default `http://127.0.0.1:8082/api/v1/avatars`): the public address of
    /// query-api's avatar route (behind a CDN, the CDN's); profiles' `avatar_url` start with it.
    pub avatar_base_url: String,
}

/// An S3-compatible object store's connection.
#[derive(Clone, Default)]
pub struct S3Settings {
    /// `S3_ENDPOINT`: the store's URL (MinIO, Ceph, a cloud's S3 API); unset, AWS's own.
    pub endpoint: Option<String>,
    /// `S3_REGION` (default `us-east-1`).
    pub region: String,
    /// `S3_ACCESS_KEY_ID`; unset, the AWS credential chain (instance or pod identity).
    pub access_key_id: Option<String>,
    /// `S3_SECRET_ACCESS_KEY` or `S3_SECRET_ACCESS_KEY_FILE`.
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// One day.
const DAY: Duration = Duration::from_secs(24 * 3600);

impl Settings {
    /// Local defaults: the services of a developer machine, the development signing key.
    pub fn local() -> Self {
        Self {
            app_env: AppEnv::Development,
            database_url: "postgres://postgres:postgres@127.0.0.1:5432/ecoeco".into(),
            database_max_connections: 10,
            redis_url: "redis://127.0.0.1:6379".into(),
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            bind_addr: None,
            amqp_prefix: "eco".into(),
            redis_prefix: "eco".into(),
            app_timezone: chrono_tz::Asia::Seoul,
            jwt_private_key_pem: DEV_PRIVATE_KEY_PEM.into(),
            jwt_public_keys_pem: DEV_PUBLIC_KEY_PEM.into(),
            log_format: LogFormat::Pretty,
            migrate_on_start: true,
            consistency_timeout: Duration::from_millis(2000),
            relay_batch_size: 500,
            projector_batch_size: 200,
            projector_batch_linger: Duration::ZERO,
            gauge_interval: Duration::from_secs(15),
            recycle_max_distance_m: 150.0,
            kakao_rest_api_key: None,
            kakao_local_url: "https://dapi.kakao.com".into(),
            kakao_local_timeout: Duration::from_millis(2000),
            retry_delays: vec![Duration::from_secs(1), Duration::from_secs(10), Duration::from_secs(60)],
            trusted_proxy_header: None,
            refresh_grace: Duration::from_secs(10),
            mail_transport: "log".into(),
            mail_from: "EcoEco <no-reply@ecoeco.local>".into(),
            app_base_url: "http://127.0.0.1:3000".into(),
            google: OAuthProvider::read(&|_| None, "GOOGLE", GOOGLE_DEFAULTS),
            kakao: OAuthProvider::read(&|_| None, "KAKAO", KAKAO_DEFAULTS),
            oauth_redirect_uri: "http://127.0.0.1:3000/oauth/callback".into(),
            scan_daily_cap: 30,
            scan_unique_images: true,
            streak_bonus_points: events::rules::STREAK_BONUS_POINTS,
            period_close_interval: Duration::from_secs(60),
            period_close_grace: Duration::from_secs(60),
            fcm_project_id: None,
            fcm_service_account: None,
            fcm_endpoint: "https://fcm.googleapis.com".into(),
            quiet_hours: parse_quiet_hours("22:00-08:00").ok().flatten(),
            http_header_read_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(60),
            http_max_header_bytes: 16 * 1024,
            rate_limit_auth_per_min: 30,
            rate_limit_commands_per_min: 300,
            rate_limit_reads_per_min: 3000,
            retention_interval: Duration::from_secs(3600),
            retention_sessions: DAY * 7,
            retention_email_tokens: DAY,
            retention_sent_mail: DAY * 7,
            storage_url: "file:data/objects".into(),
            s3: S3Settings { region: "us-east-1".into(), ..S3Settings::default() },
            avatar_max_bytes: 5 * 1024 * 1024,
            avatar_max_pixels: 16_000_000,
            avatar_base_url: "http://127.0.0.1:8082/api/v1/avatars".into(),
        }
    }

    /// Reads the environment over [`Settings::local`] and checks the result.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Settings::from_env`], reading variables through `get` (testable).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut s = Self::local();
        let parse_env = |name: &str| -> Option<String> { get(name).filter(|v| !v.trim().is_empty()) };
        if let Some(v) = parse_env("APP_ENV") {
            s.app_env = match v.as_str() {
                "production" => AppEnv::Production,
                "development" | "dev" | "local" | "test" => AppEnv::Development,
                other => bail!("APP_ENV must be `development` or `production`, not `{other}`"),
            };
            if s.app_env == AppEnv::Production {
                s.log_format = LogFormat::Json;
            }
        }
        if let Some(v) = parse_env("DATABASE_URL") {
            s.database_url = v;
        }
        if let Some(v) = parse_env("DATABASE_MAX_CONNECTIONS") {
            s.database_max_connections = v.parse().context("DATABASE_MAX_CONNECTIONS must be a number")?;
        }
        if let Some(v) = parse_env("REDIS_URL") {
            s.redis_url = v;
        }
        if let Some(v) = parse_env("AMQP_URL") {
            s.amqp_url = v;
        }
        if let Some(v) = parse_env("BIND_ADDR") {
            s.bind_addr = Some(v.parse().with_context(|| format!("BIND_ADDR `{v}` is not host:port"))?);
        }
        if let Some(v) = parse_env("AMQP_PREFIX") {
            s.amqp_prefix = v;
        }
        if let Some(v) = parse_env("REDIS_PREFIX") {
            s.redis_prefix = v;
        }
        if let Some(v) = parse_env("APP_TIMEZONE") {
            s.app_timezone = v.parse().map_err(|_| anyhow::anyhow!("APP_TIMEZONE `{v}` is not an IANA time zone"))?;
        }
        if let Some(v) = secret(&get, "JWT_PRIVATE_KEY")? {
            s.jwt_private_key_pem = v;
        }
        if let Some(v) = secret(&get, "JWT_PUBLIC_KEY")? {
            s.jwt_public_keys_pem = v;
        }
        if let Some(v) = parse_env("LOG_FORMAT") {
            s.log_format = match v.as_str() {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                other => bail!("LOG_FORMAT must be `json` or `pretty`, not `{other}`"),
            };
        }
        if let Some(v) = parse_env("MIGRATE_ON_START") {
            s.migrate_on_start = matches!(v.as_str(), "1" | "true" | "yes");
        }
        if let Some(v) = parse_env("CONSISTENCY_TIMEOUT_MS") {
            s.consistency_timeout =
                Duration::from_millis(v.parse().context("CONSISTENCY_TIMEOUT_MS must be a number")?);
        }
        if let Some(v) = parse_env("RELAY_BATCH_SIZE") {
            s.relay_batch_size = v.parse().context("RELAY_BATCH_SIZE must be a number")?;
        }
        if let Some(v) = parse_env("PROJECTOR_BATCH_SIZE") {
            s.projector_batch_size = v.parse().context("PROJECTOR_BATCH_SIZE must be a number")?;
        }
        if let Some(v) = parse_env("PROJECTOR_BATCH_LINGER_MS") {
            let ms: u64 = v.parse().context("PROJECTOR_BATCH_LINGER_MS must be a number of milliseconds")?;
            s.projector_batch_linger = Duration::from_millis(ms.min(1000));
        }
        if let Some(v) = parse_env("GAUGE_INTERVAL_MS") {
            let ms: u64 = v.parse().context("GAUGE_INTERVAL_MS must be a number of milliseconds")?;
            s.gauge_interval = Duration::from_millis(ms.max(100));
        }
        s.kakao_rest_api_key = parse_env("KAKAO_REST_API_KEY");
        if let Some(v) = parse_env("KAKAO_LOCAL_URL") {
            s.kakao_local_url = v.trim_end_matches('/').to_owned();
        }
        if let Some(v) = parse_env("KAKAO_LOCAL_TIMEOUT_MS") {
            s.kakao_local_timeout =
                Duration::from_millis(v.parse().context("KAKAO_LOCAL_TIMEOUT_MS must be a number of milliseconds")?);
        }
        if let Some(v) = parse_env("RECYCLE_MAX_DISTANCE_M") {
            s.recycle_max_distance_m = v.parse().context("RECYCLE_MAX_DISTANCE_M must be a number of metres")?;
            if !(1.0..=5000.0).contains(&s.recycle_max_distance_m) {
                anyhow::bail!("RECYCLE_MAX_DISTANCE_M must be between 1 and 5000");
            }
        }
        if let Some(v) = parse_env("RETRY_DELAYS_MS") {
            s.retry_delays = v
                .split(',')
                .map(|ms| ms.trim().parse().map(Duration::from_millis))
                .collect::<Result<_, _>>()
                .context("RETRY_DELAYS_MS must be comma-separated milliseconds")?;
        }
        s.trusted_proxy_header = parse_env("TRUSTED_PROXY_HEADER").map(|v| v.to_lowercase());
        if let Some(v) = parse_env("MAIL_TRANSPORT") {
            s.mail_transport = v;
        }
        if let Some(v) = parse_env("MAIL_FROM") {
            s.mail_from = v;
        }
        if let Some(v) = parse_env("APP_BASE_URL") {
            s.app_base_url = v.trim_end_matches('/').to_owned();
        }
        s.google = OAuthProvider::read(&get, "GOOGLE", GOOGLE_DEFAULTS);
        s.kakao = OAuthProvider::read(&get, "KAKAO", KAKAO_DEFAULTS);
        s.oauth_redirect_uri =
            parse_env("OAUTH_REDIRECT_URI").unwrap_or_else(|| format!("{}/oauth/callback", s.app_base_url));
        if let Some(v) = parse_env("REFRESH_GRACE_SECS") {
            s.refresh_grace = Duration::from_secs(v.parse().context("REFRESH_GRACE_SECS must be a number")?);
        }
        if let Some(v) = parse_env("SCAN_DAILY_CAP") {
            s.scan_daily_cap = v.parse().context("SCAN_DAILY_CAP must be a number")?;
        }
        if let Some(v) = parse_env("SCAN_UNIQUE_IMAGES") {
            s.scan_unique_images = matches!(v.as_str(), "1" | "true" | "yes");
        }
        if let Some(v) = parse_env("STREAK_BONUS_POINTS") {
            s.streak_bonus_points = v.parse().context("STREAK_BONUS_POINTS must be a number")?;
        }
        for (name, field) in [
            ("PERIOD_CLOSE_INTERVAL_SECS", &mut s.period_close_interval),
            ("PERIOD_CLOSE_GRACE_SECS", &mut s.period_close_grace),
        ] {
            if let Some(v) = parse_env(name) {
                *field = Duration::from_secs(v.parse().with_context(|| format!("{name} must be a number of seconds"))?);
            }
        }
        s.fcm_project_id = parse_env("FCM_PROJECT_ID");
        s.fcm_service_account = secret(&get, "FCM_SERVICE_ACCOUNT_JSON")?;
        if let Some(v) = parse_env("FCM_ENDPOINT") {
            s.fcm_endpoint = v.trim_end_matches('/').to_owned();
        }
        if let Some(v) = parse_env("QUIET_HOURS") {
            s.quiet_hours = parse_quiet_hours(&v)?;
        }
        let millis = |name: &str, v: String| -> anyhow::Result<Duration> {
            let ms: u64 = v.parse().with_context(|| format!("{name} must be a number of milliseconds"))?;
            Ok(Duration::from_millis(ms.max(100)))
        };
        if let Some(v) = parse_env("HTTP_HEADER_READ_TIMEOUT_MS") {
            s.http_header_read_timeout = millis("HTTP_HEADER_READ_TIMEOUT_MS", v)?;
        }
        if let Some(v) = parse_env("HTTP_IDLE_TIMEOUT_MS") {
            s.http_idle_timeout = millis("HTTP_IDLE_TIMEOUT_MS", v)?;
        }
        if let Some(v) = parse_env("HTTP_MAX_HEADER_BYTES") {
            s.http_max_header_bytes = v.parse().context("HTTP_MAX_HEADER_BYTES must be a number of bytes")?;
        }
        for (name, field) in [
            ("RATE_LIMIT_AUTH_PER_MIN", &mut s.rate_limit_auth_per_min),
            ("RATE_LIMIT_COMMANDS_PER_MIN", &mut s.rate_limit_commands_per_min),
            ("RATE_LIMIT_READS_PER_MIN", &mut s.rate_limit_reads_per_min),
        ] {
            if let Some(v) = parse_env(name) {
                *field = v.parse().with_context(|| format!("{name} must be a number of requests (0: no limit)"))?;
            }
        }
        if let Some(v) = parse_env("RETENTION_INTERVAL_SECS") {
            let secs: u64 = v.parse().context("RETENTION_INTERVAL_SECS must be a number of seconds")?;
            s.retention_interval = Duration::from_secs(secs);
        }
        for (name, field) in [
            ("RETENTION_SESSIONS_DAYS", &mut s.retention_sessions),
            ("RETENTION_EMAIL_TOKENS_DAYS", &mut s.retention_email_tokens),
            ("RETENTION_SENT_MAIL_DAYS", &mut s.retention_sent_mail),
        ] {
            if let Some(v) = parse_env(name) {
                let days: u32 = v.parse().with_context(|| format!("{name} must be a whole number of days"))?;
                *field = DAY * days;
            }
        }
        if let Some(v) = parse_env("STORAGE_URL") {
            s.storage_url = v;
        }
        s.s3.endpoint = parse_env("S3_ENDPOINT");
        if let Some(v) = parse_env("S3_REGION") {
            s.s3.region = v;
        }
        s.s3.access_key_id = parse_env("S3_ACCESS_KEY_ID");
        s.s3.secret_access_key = secret(&get, "S3_SECRET_ACCESS_KEY")?;
        if let Some(v) = parse_env("AVATAR_MAX_BYTES") {
            s.avatar_max_bytes = v.parse().context("AVATAR_MAX_BYTES must be a number of bytes")?;
        }
        if let Some(v) = parse_env("AVATAR_MAX_PIXELS") {
            s.avatar_max_pixels = v.parse().context("AVATAR_MAX_PIXELS must be a number of pixels")?;
        }
        if let Some(v) = parse_env("AVATAR_BASE_URL") {
            s.avatar_base_url = v.trim_end_matches('/').to_owned();
        }
        s.check()?;
        Ok(s)
    }

    /// Refuses configurations that must never run: development keys or default credentials in
    /// production, nonsensical sizes.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.relay_batch_size < 1 || self.projector_batch_size < 1 {
            bail!("batch sizes must be at least 1");
        }
        if !(0..=events::MAX_POINTS_AMOUNT).contains(&self.streak_bonus_points) {
            bail!("STREAK_BONUS_POINTS must be between 0 and {}", events::MAX_POINTS_AMOUNT);
        }
        if self.http_max_header_bytes < 1024 {
            bail!("HTTP_MAX_HEADER_BYTES must be at least 1024");
        }
        if !(self.storage_url.starts_with("file:") || self.storage_url.starts_with("s3://")) {
            bail!("STORAGE_URL must be `file:DIR` or `s3://BUCKET[/PREFIX]`, not `{}`", self.storage_url);
        }
        if self.avatar_max_bytes < 1024 || self.avatar_max_pixels < 128 * 128 {
            bail!("AVATAR_MAX_BYTES must be at least 1024 and AVATAR_MAX_PIXELS at least 16384");
        }
        if !(self.avatar_base_url.starts_with("http://") || self.avatar_base_url.starts_with("https://")) {
            bail!("AVATAR_BASE_URL must be an http(s) URL");
        }
        if self.retry_delays.is_empty() {
            bail!("RETRY_DELAYS_MS needs at least one delay");
        }
        if self.app_env == AppEnv::Production {
            if self.jwt_private_key_pem.trim() == DEV_PRIVATE_KEY_PEM.trim()
                || self.jwt_public_keys_pem.contains(DEV_PUBLIC_KEY_PEM.trim())
            {
                bail!("APP_ENV=production refuses the development JWT key: set JWT_PRIVATE_KEY and JWT_PUBLIC_KEY");
            }
            for (name, url) in [("DATABASE_URL", &self.database_url), ("AMQP_URL", &self.amqp_url)] {
                if url.contains("postgres:postgres@") || url.contains("guest:guest@") {
                    bail!("APP_ENV=production refuses the default credentials in {name}");
                }
            }
        }
        Ok(())
    }

    /// The HTTP listener address: `BIND_ADDR`, or `127.0.0.1:default_port`.
    pub fn bind_addr_or(&self, default_port: u16) -> SocketAddr {
        self.bind_addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port)))
    }
}

/// `QUIET_HOURS`: `HH:MM-HH:MM` (may wrap midnight), or `off`.
pub fn parse_quiet_hours(value: &str) -> anyhow::Result<Option<(chrono::NaiveTime, chrono::NaiveTime)>> {
    let value = value.trim();
    if value == "off" {
        return Ok(None);
    }
    let parse = |t: &str| chrono::NaiveTime::parse_from_str(t.trim(), "%H:%M");
    match value.split_once('-').map(|(a, b)| (parse(a), parse(b))) {
        Some((Ok(start), Ok(end))) if start != end => Ok(Some((start, end))),
        _ => bail!("QUIET_HOURS must look like 22:00-08:00 (or be `off`), not `{value}`"),
    }
}

/// Reads `NAME`, or the file named by `NAME_FILE`.
fn secret(get: &impl Fn(&str) -> Option<String>, name: &str) -> anyhow::Result<Option<String>> {
    if let Some(v) = get(name).filter(|v| !v.trim().is_empty()) {
        return Ok(Some(v));
    }
    match get(&format!("{name}_FILE")).filter(|v| !v.trim().is_empty()) {
        Some(path) => {
            std::fs::read_to_string(Path::new(&path)).map(Some).with_context(|| format!("reading {name}_FILE {path}"))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_work_locally() {
        let s = with(&[]).unwrap();
        assert_eq!(s.amqp_prefix, "eco");
        assert_eq!(s.app_timezone, chrono_tz::Asia::Seoul);
        assert_eq!(s.bind_addr_or(8081).port(), 8081);
    }

    #[test]
    fn production_refuses_the_development_key_and_default_credentials() {
        let err = with(&[("APP_ENV", "production")]).unwrap_err().to_string();
        assert!(err.contains("development JWT key"), "{err}");
        let err = with(&[("APP_ENV", "production"), ("JWT_PRIVATE_KEY", "k"), ("JWT_PUBLIC_KEY", "p")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("default credentials"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = with(&[("APP_TIMEZONE", "Mars/Olympus")]).unwrap_err().to_string();
        assert!(err.contains("APP_TIMEZONE"), "{err}");
        let err = with(&[("BIND_ADDR", "nope")]).unwrap_err().to_string();
        assert!(err.contains("BIND_ADDR"), "{err}");
    }
}
