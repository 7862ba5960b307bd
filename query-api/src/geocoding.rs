//! The Kakao Local API (address → coordinates, coordinates → address, keyword search), behind
//! a cache, a timeout and a circuit breaker.
//!
//! * **Cache**: in this process, at most [`CACHE_ENTRIES`] answers keyed by
//!   `{kind}:{sha256 of the normalised request}` (least recently used go first); geocoding and
//!   reverse geocoding for 24 h (addresses do not move), keyword searches for 1 h. Answers
//!   "nothing found" are cached too. Kept out of Redis because the keys are whatever anonymous
//!   clients ask: a shared cache would let any client grow Redis without bound.
//! * **Timeout**: `KAKAO_LOCAL_TIMEOUT_MS` per call.
//! * **Circuit breaker** (`failsafe`): five consecutive failures (timeouts, connection errors,
//!   5xx, quota) open it for 30 s, during which calls fail at once with 503
//!   `geocoding_unavailable` instead of waiting on a dead dependency; then one call tries again.
//! * **Errors**: Kakao's quota error (`code: -10`) is 503 `geocoding_quota_exceeded`; other
//!   failures are 503 `geocoding_unavailable`; no key configured is 503
//!   `geocoding_not_configured`. All with `Retry-After`.

use std::time::Duration;

use failsafe::{Config, Error as Breaker, StateMachine, backoff, failure_policy, futures::CircuitBreaker};
use platform::{Settings, error::ApiError};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use sha2::{Digest, Sha256};

type Policy = failure_policy::ConsecutiveFailures<backoff::Constant>;

/// Why a Kakao call failed.
#[derive(Debug)]
enum Failure {
    /// Over quota (`code: -10`).
    Quota,
    /// Down, slow or answering nonsense.
    Down(String),
}

/// Answers of the geocoding cache.
pub const CACHE_ENTRIES: usize = 10_000;

/// A Kakao Local client.
pub struct Kakao {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
    breaker: StateMachine<Policy, ()>,
    /// Answers as JSON, with the time they stop being fresh.
    cache: quick_cache::sync::Cache<String, (std::time::Instant, std::sync::Arc<str>)>,
}

impl Kakao {
    /// A client from the settings.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(settings.kakao_local_timeout).build()?;
        let policy = failure_policy::consecutive_failures(5, backoff::constant(Duration::from_secs(30)));
        Ok(Self {
            http,
            base: settings.kakao_local_url.clone(),
            key: settings.kakao_rest_api_key.clone(),
            breaker: Config::new().failure_policy(policy).build(),
            cache: quick_cache::sync::Cache::new(CACHE_ENTRIES),
        })
    }

    /// `GET {base}{path}?{query}` → JSON, cached under `kind` for `ttl`.
    pub async fn get<T: Serialize + DeserializeOwned>(
        &self,
        kind: &str,
        ttl: Duration,
        path: &str,
        query: &[(&str, String)],
        parse: impl FnOnce(Value) -> T,
    ) -> Result<T, ApiError> {
        let digest: String =
            Sha256::digest(format!("{path}?{query:?}").as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        let key = format!("{kind}:{digest}");
        let hit = self
            .cache
            .get(&key)
            .filter(|(expires, _)| *expires > std::time::Instant::now())
            .and_then(|(_, json)| serde_json::from_str(&json).ok());
        if let Some(value) = hit {
            metrics::counter!("cache_requests_total", "cache" => "geocoding", "result" => "hit").increment(1);
            return Ok(value);
        }
        metrics::counter!("cache_requests_total", "cache" => "geocoding", "result" => "miss").increment(1);
        let Some(api_key) = &self.key else {
            return Err(ApiError::DependencyUnavailable {
                code: "geocoding_not_configured",
                detail: "Geocoding is not configured on this server (KAKAO_REST_API_KEY).".into(),
                retry_after_secs: 3600,
            });
        };
        let call = async {
            let res = self
                .http
                .get(format!("{}{path}", self.base))
                .header("Authorization", format!("KakaoAK {api_key}"))
                .query(query)
                .send()
                .await
                .map_err(|e| Failure::Down(if e.is_timeout() { "timed out".into() } else { e.to_string() }))?;
            let status = res.status();
            let body: Value = res.json().await.map_err(|e| Failure::Down(format!("unreadable answer: {e}")))?;
            if body["code"].as_i64() == Some(-10) {
                return Err(Failure::Quota);
            }
            if !status.is_success() {
                return Err(Failure::Down(format!("answered {status}: {}", body["message"].as_str().unwrap_or(""))));
            }
            Ok(body)
        };
        let started = std::time::Instant::now();
        let outcome = self.breaker.call(call).await;
        metrics::histogram!("kakao_local_seconds").record(started.elapsed().as_secs_f64());
        let body = match outcome {
            Ok(body) => body,
            Err(Breaker::Rejected) => {
                metrics::counter!("kakao_local_calls_total", "outcome" => "rejected").increment(1);
                return Err(ApiError::DependencyUnavailable {
                    code: "geocoding_unavailable",
                    detail: "The geocoding service failed repeatedly; not calling it for a while.".into(),
                    retry_after_secs: 30,
                });
            }
            Err(Breaker::Inner(Failure::Quota)) => {
                metrics::counter!("kakao_local_calls_total", "outcome" => "quota").increment(1);
                tracing::warn!("Kakao Local API quota exceeded");
                return Err(ApiError::DependencyUnavailable {
                    code: "geocoding_quota_exceeded",
                    detail: "The geocoding quota is used up for now.".into(),
                    retry_after_secs: 3600,
                });
            }
            Err(Breaker::Inner(Failure::Down(why))) => {
                metrics::counter!("kakao_local_calls_total", "outcome" => "failed").increment(1);
                tracing::warn!(error = %why, "Kakao Local API call failed");
                return Err(ApiError::DependencyUnavailable {
                    code: "geocoding_unavailable",
                    detail: format!("The geocoding service is unavailable ({why})."),
                    retry_after_secs: 30,
                });
            }
        };
        metrics::counter!("kakao_local_calls_total", "outcome" => "ok").increment(1);
        let value = parse(body);
        if let Ok(json) = serde_json::to_string(&value) {
            self.cache.insert(key, (std::time::Instant::now() + ttl, json.into()));
        }
        Ok(value)
    }
}

/// Our region code for Kakao's `region_1depth_name` (`서울`, `경기`, `강원특별자치도`, …).
pub fn region_code(region_1depth: &str) -> Option<&'static str> {
    const PREFIXES: [(&str, &str); 17] = [
        ("서울", "seoul"),
        ("부산", "busan"),
        ("대구", "daegu"),
        ("인천", "incheon"),
        ("광주", "gwangju"),
        ("대전", "daejeon"),
        ("울산", "ulsan"),
        ("세종", "sejong"),
        ("경기", "gyeonggi"),
        ("강원", "gangwon"),
        ("충북", "chungbuk"),
        ("충남", "chungnam"),
        ("전북", "jeonbuk"),
        ("전남", "jeonnam"),
        ("경북", "gyeongbuk"),
        ("경남", "gyeongnam"),
        ("제주", "jeju"),
    ];
    let name = region_1depth
        .replace("충청북도", "충북")
        .replace("충청남도", "충남")
        .replace("전라북도", "전북")
        .replace("전라남도", "전남")
        .replace("경상북도", "경북")
        .replace("경상남도", "경남");
    PREFIXES.iter().find(|(prefix, _)| name.starts_with(prefix)).map(|(_, code)| *code)
}
