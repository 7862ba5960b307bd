//! The push notifier: tells people's devices what the feed tells them (the notices of
//! `readmodels::notifications`), through Firebase Cloud Messaging's HTTP v1 API.
//!
//! - **Who and when.** A notice is pushed to every device the person registered, unless their
//!   `notification_enabled` setting is off or it is quiet hours (`QUIET_HOURS`, app time zone);
//!   such pushes are skipped for good (the feed still has the notice). Without `FCM_PROJECT_ID`
//!   nothing is pushed.
//! - **Once per event and device.** Each outcome is written to `notify.pushes` through the pool
//!   right after the provider answered, outside the delivery's transaction: when a later device
//!   fails and the delivery is retried, those already pushed are not pushed again. A crash
//!   between the provider's answer and that write can push twice (at-least-once).
//! - **Provider errors.** A device the provider reports unregistered is removed. An outage
//!   (network, 429, 5xx) fails the delivery transiently: it waits in the notifier's retry tiers
//!   (growing delays), then is parked with the reason; other consumers never wait for it.
//! - **Metrics.** `pushes_total{outcome="sent"|"failed"|"skipped", reason}`.
//!
//! Access tokens are minted from the service-account key (a JWT signed RS256, exchanged at its
//! `token_uri`, OAuth 2.0 JWT bearer grant) and reused until a minute before they expire.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{NaiveTime, Utc};
use chrono_tz::Tz;
use events::{Event, EventData};
use platform::topology::{ConsumerSpec, NOTIFIER};
use readmodels::notifications::{Names, Templates, notices};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Mutex;
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
            404 => Err(PushError::Unregistered),
            400 if code == "UNREGISTERED" => Err(PushError::Unregistered),
            401 => {
                *self.token.lock().await = None;
                Err(PushError::Transient(anyhow::anyhow!("FCM refused the access token; minting a new one")))
            }
            429 | 500..=599 => Err(PushError::Transient(anyhow::anyhow!("FCM answered HTTP {status} {code}"))),
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

impl Notifier {
    /// Records what happened to the push of `event` to `token`, at once (see the module docs).
    async fn record(&self, event: Uuid, token: &str, user: Uuid, outcome: &str) -> Result<(), ApplyError> {
        sqlx::query(
            "insert into notify.pushes (event_id, token, user_id, outcome) values ($1, $2, $3, $4) on conflict do nothing",
        )
        .bind(event)
        .bind(token)
        .bind(user)
        .bind(outcome)
        .execute(&self.db)
        .await?;
        Ok(())
    }
}

impl Projector for Notifier {
    fn spec(&self) -> &'static ConsumerSpec {
        &NOTIFIER
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        if let EventData::UserDeleted(d) = &event.data {
            sqlx::query("delete from notify.pushes where user_id = $1").bind(d.user_id).execute(&mut *tx).await?;
            return Ok(());
        }
        let told = notices(event);
        if told.is_empty() {
            return Ok(());
        }
        let Some(fcm) = &self.fcm else {
            told.iter().for_each(|_| count("skipped", "not_configured"));
            return Ok(());
        };
        let names = if told.iter().any(|n| n.kind == "badge_earned" || n.kind == "character_unlocked") {
            Names::load(&self.db).await?
        } else {
            Names::default()
        };
        let now = Utc::now().with_timezone(&self.timezone).time();
        for notice in told {
            // The settings as projected; before the profile exists, the defaults a registration
            // gets (the notice may overtake the projection); none for someone forgotten.
            let settings: Option<(bool, String)> = sqlx::query_as(
                "select coalesce(s.notification_enabled, true), coalesce(s.language, 'ko')
                 from (select $1::uuid as user_id) u left join read.settings s using (user_id)
                 where not exists (select 1 from read.profiles_tombstones t where t.user_id = $1)",
            )
            .bind(notice.user_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((enabled, language)) = settings else {
                count("skipped", "no_account");
                continue;
            };
            if !enabled {
                count("skipped", "disabled");
                continue;
            }
            if quiet(self.quiet_hours, now) {
                count("skipped", "quiet_hours");
                continue;
            }
            let devices: Vec<String> = sqlx::query_scalar(
                "select d.token from app.devices d where d.user_id = $1
                   and not exists (select 1 from notify.pushes p where p.event_id = $2 and p.token = d.token)
                 order by d.token",
            )
            .bind(notice.user_id)
            .bind(event.id)
            .fetch_all(&self.db)
            .await?;
            if devices.is_empty() {
                count("skipped", "no_device");
                continue;
            }
            let text = self.templates.render(notice.kind, &notice.data, &language, &names);
            let mut data = notice.data.clone();
            data["kind"] = json!(notice.kind);
            data["notification_id"] = json!(notice.id);
            for token in devices {
                match fcm.send(&token, &text.title, &text.body, &data).await {
                    Ok(()) => {
                        self.record(event.id, &token, notice.user_id, "sent").await?;
                        count("sent", "sent");
                    }
                    Err(PushError::Unregistered) => {
                        sqlx::query("delete from app.devices where token = $1").bind(&token).execute(&self.db).await?;
                        self.record(event.id, &token, notice.user_id, "unregistered").await?;
                        tracing::info!(user.id = %notice.user_id, "device unregistered at the provider; removed");
                        count("failed", "unregistered");
                    }
                    Err(PushError::Rejected(why)) => {
                        self.record(event.id, &token, notice.user_id, "rejected").await?;
                        tracing::warn!(user.id = %notice.user_id, why, "push refused by the provider");
                        count("failed", "rejected");
                    }
                    Err(PushError::Transient(e)) => {
                        count("failed", "provider_unavailable");
                        return Err(ApplyError::Transient(e));
                    }
                }
            }
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
