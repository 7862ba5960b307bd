//! The push notifier: tells people's devices what the feed tells them (the notices of
//! `readmodels::notifications`), through Firebase Cloud Messaging's HTTP v1 API.
//!
//! - **Who and when.** A notice is pushed to every device the person registered, unless their
//!   `notification_enabled` setting is off (skipped). In quiet hours (`QUIET_HOURS`, app time
//!   zone) it waits in `notify.deferred` and goes out when they end ([`run_deferred`]). The feed
//!   has it at once either way. Without `FCM_PROJECT_ID` nothing is pushed.
//! - **Once per notice and device.** The decision about a notice (`notify.notices`) and each
//!   device's outcome (`notify.pushes`, the device named by its token's SHA-256) are written
//!   through the pool at once, outside the delivery's transaction: a retry after a later device
//!   failed neither decides again nor pushes again. A crash between the provider's answer and
//!   that write can push twice (at-least-once).
//! - **Provider errors.** A device the provider reports `UNREGISTERED` is removed. An outage
//!   (network, 403, 404 without that code, 429, 5xx) fails the delivery transiently: it waits in the notifier's retry tiers
//!   (growing delays), then is parked with the reason; other consumers never wait for it.
//! - **Metrics.** `pushes_total{outcome="sent"|"failed"|"skipped", reason}`.
//!
//! Access tokens are minted from the service-account key (a JWT signed RS256, exchanged at its
//! `token_uri`, OAuth 2.0 JWT bearer grant) and reused until a minute before they expire.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use events::{Event, EventData};
use platform::topology::{ConsumerSpec, NOTIFIER};
use readmodels::notifications::{Names, Notice, Templates, notices};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::consumer::{ApplyError, Projector};

/// What a push came to.
#[derive(Debug)]
pub enum PushError {
    /// The provider no longer knows the device.
    Unregistered,
    /// The provider refused this message for good (a malformed token, say).
    Rejected(String),
    /// Try again later (network, rate limit, outage, an expired credential).
    Transient(anyhow::Error),
}

/// A service-account key, as Google issues it (only the fields used).
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceAccount {
    /// Who the tokens are for.
    pub client_email: String,
    /// RSA private key, PKCS#8 PEM.
    pub private_key: String,
    /// Where tokens are minted.
    pub token_uri: String,
}

/// The FCM HTTP v1 client.
pub struct Fcm {
    http: reqwest::Client,
    send_url: String,
    account: ServiceAccount,
    key: jsonwebtoken::EncodingKey,
    token: Mutex<Option<(String, Instant)>>,
}

#[derive(serde::Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct Minted {
    access_token: String,
    expires_in: u64,
}

impl Fcm {
    /// A client for `project_id` at `endpoint`, with the service-account key `key_json`.
    pub fn new(endpoint: &str, project_id: &str, key_json: &str) -> anyhow::Result<Self> {
        let account: ServiceAccount =
            serde_json::from_str(key_json).context("FCM_SERVICE_ACCOUNT_JSON is not a service-account key")?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .context("the service-account key's private_key is not an RSA PEM key")?;
        Ok(Self {
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
            send_url: format!("{endpoint}/v1/projects/{project_id}/messages:send"),
            account,
            key,
            token: Mutex::new(None),
        })
    }

    async fn access_token(&self) -> Result<String, PushError> {
        let mut held = self.token.lock().await;
        if let Some((token, until)) = held.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let now = Utc::now().timestamp();
        let claims = Assertion {
            iss: &self.account.client_email,
            scope: "https://www.googleapis.com/auth/firebase.messaging",
            aud: &self.account.token_uri,
            iat: now,
            exp: now + 3600,
        };
        let assertion =
            jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &self.key)
                .map_err(|e| PushError::Transient(e.into()))?;
        let res = self
            .http
            .post(&self.account.token_uri)
            .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)])
            .send()
            .await
            .map_err(|e| PushError::Transient(anyhow::Error::new(e).context("minting an FCM access token")))?;
        if !res.status().is_success() {
            return Err(PushError::Transient(anyhow::anyhow!("minting an FCM access token: HTTP {}", res.status())));
        }
        let minted: Minted = res.json().await.map_err(|e| PushError::Transient(e.into()))?;
        let lifetime = Duration::from_secs(minted.expires_in.saturating_sub(60));
        *held = Some((minted.access_token.clone(), Instant::now() + lifetime));
        Ok(minted.access_token)
    }

    /// Sends one message to one device.
    pub async fn send(&self, device: &str, title: &str, body: &str, data: &Value) -> Result<(), PushError> {
        let token = self.access_token().await?;
        // FCM's data values are strings.
        let data: serde_json::Map<String, Value> = data
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), Value::String(v.as_str().map_or_else(|| v.to_string(), str::to_owned))))
            .collect();
        let message =
            json!({"message": {"token": device, "notification": {"title": title, "body": body}, "data": data}});
        let res = self
            .http
            .post(&self.send_url)
            .bearer_auth(token)
            .json(&message)
            .send()
            .await
            .map_err(|e| PushError::Transient(anyhow::Error::new(e).context("sending to FCM")))?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let error: Value = res.json().await.unwrap_or_default();
        let code = error["error"]["details"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|d| d["errorCode"].as_str())
            .unwrap_or_else(|| error["error"]["status"].as_str().unwrap_or_default())
            .to_owned();
        match status.as_u16() {
            // Only FCM's own word: a 404 without it is a wrong project or endpoint, which must
            // not cost anyone their devices.
            _ if code == "UNREGISTERED" => Err(PushError::Unregistered),
            401 => {
                *self.token.lock().await = None;
                Err(PushError::Transient(anyhow::anyhow!("FCM refused the access token; minting a new one")))
            }
            // Our configuration (project, permissions), outages and rate limits: not the
            // message's fault; retried, then parked with the reason for an operator.
            403 | 404 | 429 | 500..=599 => {
                Err(PushError::Transient(anyhow::anyhow!("FCM answered HTTP {status} {code}")))
            }
            _ => Err(PushError::Rejected(format!("HTTP {status} {code}"))),
        }
    }
}

/// Whether `now` falls in the quiet hours `(start, end)` (which may wrap midnight).
pub fn quiet(hours: Option<(NaiveTime, NaiveTime)>, now: NaiveTime) -> bool {
    match hours {
        None => false,
        Some((start, end)) if start < end => start <= now && now < end,
        Some((start, end)) => now >= start || now < end,
    }
}

/// When the quiet hours that hold at local time `now` end (their next `end` time).
pub fn quiet_ends(end: NaiveTime, now: NaiveDateTime) -> NaiveDateTime {
    let today = now.date().and_time(end);
    if today > now { today } else { today + chrono::Days::new(1) }
}

/// A device as the notifier's records name it: the SHA-256 of its token.
fn token_hash(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

/// Pushes notices to devices.
pub struct Notifier {
    db: PgPool,
    fcm: Option<Fcm>,
    templates: &'static Templates,
    quiet_hours: Option<(NaiveTime, NaiveTime)>,
    timezone: Tz,
}

fn count(outcome: &'static str, reason: &'static str) {
    metrics::counter!("pushes_total", "outcome" => outcome, "reason" => reason).increment(1);
}

/// What was decided for a notice (`notify.notices.outcome`).
const PUSHING: &str = "pushing";
const DEFERRED: &str = "deferred";

impl Notifier {
    /// The person's `(notification_enabled, language)`: as projected, or, before the profile
    /// exists (the notice may overtake the projection), what a registration gets; `None` for
    /// someone forgotten.
    async fn settings(&self, user: Uuid) -> Result<Option<(bool, String)>, ApplyError> {
        Ok(sqlx::query_as(
            "select coalesce(s.notification_enabled, true), coalesce(s.language, 'ko')
             from (select $1::uuid as user_id) u left join read.settings s using (user_id)
             where not exists (select 1 from read.profiles_tombstones t where t.user_id = $1)",
        )
        .bind(user)
        .fetch_optional(&self.db)
        .await?)
    }

    /// Records the decision about `notice` unless one was taken (by an earlier try, or another
    /// replica), and returns the decision that holds. Counted once, when first taken.
    async fn decide(&self, notice: &Notice, outcome: &str, reason: &'static str) -> Result<String, ApplyError> {
        let (held, fresh): (String, bool) = sqlx::query_as(
            "insert into notify.notices (notice_id, user_id, outcome) values ($1, $2, $3)
             on conflict (notice_id) do update set notice_id = excluded.notice_id
             returning outcome, (xmax = 0)",
        )
        .bind(notice.id)
        .bind(notice.user_id)
        .bind(outcome)
        .fetch_one(&self.db)
        .await?;
        if fresh && outcome != PUSHING {
            count("skipped", reason);
        }
        Ok(held)
    }

    /// Pushes `notice` to every device of its person not pushed yet, each outcome recorded at
    /// once (see the module docs). A transient provider error returns, to be retried.
    async fn push(&self, fcm: &Fcm, notice: &Notice, language: &str) -> Result<(), ApplyError> {
        let devices: Vec<String> = sqlx::query_scalar(
            "select token from app.devices where user_id = $1
               and encode(sha256(convert_to(token, 'UTF8')), 'hex') not in
                   (select token_hash from notify.pushes where notice_id = $2)
             order by token",
        )
        .bind(notice.user_id)
        .bind(notice.id)
        .fetch_all(&self.db)
        .await?;
        if devices.is_empty() {
            return Ok(());
        }
        let names = if notice.kind == "badge_earned" || notice.kind == "character_unlocked" {
            Names::load(&self.db).await?
        } else {
            Names::default()
        };
        let text = self.templates.render(notice.kind, &notice.data, language, &names);
        let mut data = notice.data.clone();
        data["kind"] = json!(notice.kind);
        data["notification_id"] = json!(notice.id);
        for token in devices {
            let outcome = match fcm.send(&token, &text.title, &text.body, &data).await {
                Ok(()) => {
                    count("sent", "sent");
                    "sent"
                }
                Err(PushError::Unregistered) => {
                    sqlx::query("delete from app.devices where token = $1").bind(&token).execute(&self.db).await?;
                    tracing::info!(user.id = %notice.user_id, "device unregistered at the provider; removed");
                    count("failed", "unregistered");
                    "unregistered"
                }
                Err(PushError::Rejected(why)) => {
                    tracing::warn!(user.id = %notice.user_id, why, "push refused by the provider");
                    count("failed", "rejected");
                    "rejected"
                }
                Err(PushError::Transient(e)) => {
                    count("failed", "provider_unavailable");
                    return Err(ApplyError::Transient(e));
                }
            };
            sqlx::query(
                "insert into notify.pushes (notice_id, token_hash, user_id, outcome) values ($1, $2, $3, $4)
                 on conflict do nothing",
            )
            .bind(notice.id)
            .bind(token_hash(&token))
            .bind(notice.user_id)
            .bind(outcome)
            .execute(&self.db)
            .await?;
        }
        Ok(())
    }

    /// Decides and, when it is time, pushes one notice.
    async fn handle(&self, fcm: &Fcm, notice: &Notice) -> Result<(), ApplyError> {
        let Some((enabled, language)) = self.settings(notice.user_id).await? else {
            self.decide(notice, "skipped:no_account", "no_account").await?;
            return Ok(());
        };
        if !enabled {
            self.decide(notice, "skipped:disabled", "disabled").await?;
            return Ok(());
        }
        let has_device: bool = sqlx::query_scalar("select exists (select 1 from app.devices where user_id = $1)")
            .bind(notice.user_id)
            .fetch_one(&self.db)
            .await?;
        if !has_device {
            self.decide(notice, "skipped:no_device", "no_device").await?;
            return Ok(());
        }
        let now = Utc::now().with_timezone(&self.timezone).naive_local();
        if let Some((_, end)) = self.quiet_hours.filter(|h| quiet(Some(*h), now.time())) {
            if self.decide(notice, DEFERRED, "quiet_hours").await? == DEFERRED {
                let not_before = self
                    .timezone
                    .from_local_datetime(&quiet_ends(end, now))
                    .earliest()
                    .map_or_else(|| Utc::now() + chrono::TimeDelta::hours(1), |t| t.with_timezone(&Utc));
                sqlx::query(
                    "insert into notify.deferred (notice_id, user_id, kind, data, not_before) values ($1, $2, $3, $4, $5)
                     on conflict do nothing",
                )
                .bind(notice.id)
                .bind(notice.user_id)
                .bind(notice.kind)
                .bind(&notice.data)
                .bind(not_before)
                .execute(&self.db)
                .await?;
            }
            return Ok(());
        }
        if self.decide(notice, PUSHING, "").await? == PUSHING {
            self.push(fcm, notice, &language).await?;
        }
        Ok(())
    }

    /// Sends the deferred notices that are due (quiet hours over), at most `limit`, claiming
    /// them so replicas share the work; one that fails stays for the next round.
    pub async fn send_due(&self, limit: i64) -> anyhow::Result<usize> {
        let Some(fcm) = &self.fcm else { return Ok(0) };
        let mut tx = self.db.begin().await?;
        let due: Vec<(Uuid, Uuid, String, Value)> = sqlx::query_as(
            "select notice_id, user_id, kind, data from notify.deferred where not_before <= now()
             order by not_before limit $1 for update skip locked",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut sent = 0;
        for (notice_id, user_id, kind, data) in due {
            let kind = KINDS.iter().copied().find(|k| *k == kind);
            // Turned off meanwhile, gone, or a kind this version does not know: not pushed.
            if let (Some(kind), Some((true, language))) = (kind, self.settings(user_id).await?) {
                sqlx::query("update notify.notices set outcome = $2, at = now() where notice_id = $1")
                    .bind(notice_id)
                    .bind(PUSHING)
                    .execute(&self.db)
                    .await?;
                let notice = Notice { id: notice_id, user_id, kind, data };
                if let Err(e) = self.push(fcm, &notice, &language).await {
                    tracing::warn!(error = ?e, "a deferred push failed; the next round retries");
                    continue; // stays deferred: the row is deleted only when done
                }
                sent += 1;
            }
            sqlx::query("delete from notify.deferred where notice_id = $1").bind(notice_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(sent)
    }
}

/// Every notice kind (`readmodels::notifications::notices`).
const KINDS: [&str; 6] =
    ["level_reached", "badge_earned", "character_unlocked", "friend_joined", "bonus_granted", "period_result"];

/// Sends deferred notices as quiet hours end, every 30 s until `shutdown` (processes that run
/// the notifier).
pub async fn run_deferred(deps: crate::registry::Deps, shutdown: CancellationToken) {
    use crate::registry::Build;
    let notifier = match Notifier::build(&deps) {
        Ok(n) if n.fcm.is_some() => n,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "deferred pushes off: the notifier cannot be built");
            return;
        }
    };
    loop {
        match notifier.send_due(100).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(notices = n, "deferred pushes sent after quiet hours"),
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "sending deferred pushes failed; the next round retries")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
    }
}

impl Projector for Notifier {
    fn spec(&self) -> &'static ConsumerSpec {
        &NOTIFIER
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        if let EventData::UserDeleted(d) = &event.data {
            for table in ["notify.pushes", "notify.notices", "notify.deferred"] {
                sqlx::query(&format!("delete from {table} where user_id = $1"))
                    .bind(d.user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            return Ok(());
        }
        let told = notices(event);
        let Some(fcm) = &self.fcm else {
            told.iter().for_each(|_| count("skipped", "not_configured"));
            return Ok(());
        };
        for notice in &told {
            self.handle(fcm, notice).await?;
        }
        Ok(())
    }
}

impl crate::registry::Build for Notifier {
    fn build(deps: &crate::registry::Deps) -> anyhow::Result<Self> {
        let s = &deps.settings;
        let fcm = match (&s.fcm_project_id, &s.fcm_service_account) {
            (Some(project), Some(key)) => Some(Fcm::new(&s.fcm_endpoint, project, key)?),
            (Some(_), None) => anyhow::bail!("FCM_PROJECT_ID is set but FCM_SERVICE_ACCOUNT_JSON(_FILE) is not"),
            _ => None,
        };
        Ok(Self {
            db: deps.db.clone(),
            fcm,
            templates: Templates::shipped(),
            quiet_hours: s.quiet_hours,
            timezone: s.app_timezone,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_wrap_midnight() {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        let night = Some((t(22, 0), t(8, 0)));
        assert!(quiet(night, t(22, 0)) && quiet(night, t(3, 0)) && quiet(night, t(7, 59)));
        assert!(!quiet(night, t(8, 0)) && !quiet(night, t(21, 59)) && !quiet(night, t(12, 0)));
        let lunch = Some((t(12, 0), t(13, 0)));
        assert!(quiet(lunch, t(12, 30)) && !quiet(lunch, t(13, 0)));
        assert!(!quiet(None, t(3, 0)));
    }
}
