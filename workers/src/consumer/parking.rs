//! Settling what a batch could not apply: the next retry tier, or the parked queue with the
//! reason in headers (`events::parking`), dated in `projection.parked` for the gauges and
//! `ecoctl parked`.

use anyhow::Context;
use chrono::Utc;
use lapin::{
    BasicProperties, Channel,
    message::Delivery,
    options::{BasicAckOptions, BasicPublishOptions},
    publisher_confirm::Confirmation,
    types::{AMQPValue, FieldTable},
};
use platform::{
    amqp::{self, header_int, long_string},
    topology::headers,
};
use sqlx::PgPool;

use super::{Consume, Consumer, Failed, Outcome, RETRIES_EXHAUSTED};

impl<P: Consume> Consumer<'_, P> {
    /// Sends failed deliveries to their retry tier or the parked queue (confirmed), and acks
    /// them individually when the batch will not be acked as a whole.
    pub(super) async fn settle_failures(
        &self,
        channel: &Channel,
        publish: &Channel,
        failed: Vec<(Delivery, Failed)>,
        ack_each: bool,
    ) -> anyhow::Result<()> {
        let spec = self.spec();
        let tiers = self.ctx.topology.retry_delays().len();
        for (delivery, failure) in failed {
            let tried = header_int(delivery.properties.headers().as_ref(), headers::RETRY_COUNT).unwrap_or(0);
            let event_type = original_routing_key(&delivery);
            let mut headers = delivery.properties.headers().clone().unwrap_or_default();
            headers.insert(headers::ORIGINAL_ROUTING_KEY.into(), long_string(&event_type));
            let (queue, outcome) = match failure {
                Failed::Retry(error) if (tried as usize) < tiers => {
                    headers.insert(headers::RETRY_COUNT.into(), AMQPValue::LongLongInt(tried + 1));
                    headers.insert(headers::LAST_ERROR.into(), long_string(truncate(&error, 1000)));
                    tracing::warn!(consumer = spec.name, event.type = %event_type, attempt = tried + 1, error = %error, "event failed; retrying later");
                    (self.ctx.topology.retry_queue(spec, tried as usize + 1), Outcome::Retried)
                }
                Failed::Retry(error) => {
                    park_headers(&mut headers, RETRIES_EXHAUSTED, &error, tried);
                    tracing::error!(consumer = spec.name, event.type = %event_type, error = %error, "event failed after every retry; parked");
                    (self.ctx.topology.parked_queue(spec), Outcome::Parked)
                }
                Failed::Park { code, detail } => {
                    park_headers(&mut headers, code, &detail, tried);
                    tracing::warn!(consumer = spec.name, reason = code, detail = %detail, "invalid event parked");
                    (self.ctx.topology.parked_queue(spec), Outcome::Parked)
                }
            };
            let properties: BasicProperties = amqp::without_user_id(&delivery.properties).with_headers(headers);
            let confirm = publish
                .basic_publish(
                    "",
                    &queue,
                    BasicPublishOptions { mandatory: true, ..Default::default() },
                    &delivery.data,
                    properties,
                )
                .await
                .with_context(|| format!("publishing to {queue}"))?
                .await
                .with_context(|| format!("confirm from {queue}"))?;
            if !matches!(confirm, Confirmation::Ack(None)) {
                anyhow::bail!("{queue} did not take the message: {confirm:?}");
            }
            if outcome == Outcome::Parked {
                note_parked(&self.ctx.db, spec.name, &parked_key(&delivery.properties, &delivery.data)).await;
            }
            metrics::counter!("events_consumed_total", "consumer" => spec.name, "type" => event_type, "outcome" => outcome.as_str()).increment(1);
            if ack_each {
                channel
                    .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
                    .await
                    .context("acknowledging a settled delivery")?;
            }
        }
        Ok(())
    }
}

fn park_headers(headers: &mut FieldTable, code: &str, detail: &str, tried: i64) {
    headers.insert(headers::PARKED_REASON.into(), long_string(code));
    headers.insert(headers::PARKED_DETAIL.into(), long_string(truncate(detail, 2000)));
    headers.insert(headers::PARKED_AT.into(), long_string(Utc::now().to_rfc3339()));
    headers.insert(headers::RETRY_COUNT.into(), AMQPValue::LongLongInt(tried));
}

/// The routing key the message was first published with: kept in a header from its first
/// retry or parking on, since retry tiers re-route it under the consumer queue's name.
pub fn original_routing_key(delivery: &Delivery) -> String {
    amqp::header_str(delivery.properties.headers().as_ref(), headers::ORIGINAL_ROUTING_KEY)
        .unwrap_or_else(|| delivery.routing_key.as_str().to_owned())
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// The key a parked message is dated by in `projection.parked`: its event id (`message_id`, or
/// the body's `id`), else the SHA-256 of its body.
pub fn parked_key(properties: &BasicProperties, body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    event_id_of(properties, body).unwrap_or_else(|| Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect())
}

/// A message's event id: its `message_id`, else the body's `id`.
pub fn event_id_of(properties: &BasicProperties, body: &[u8]) -> Option<String> {
    properties
        .message_id()
        .as_ref()
        .map(|m| m.as_str().to_owned())
        .or_else(|| serde_json::from_slice::<serde_json::Value>(body).ok()?["id"].as_str().map(str::to_owned))
}

/// Records that `consumer` parked the message with `key` now (best effort: it only dates it).
pub async fn note_parked(db: &PgPool, consumer: &str, key: &str) {
    let noted =
        sqlx::query("insert into projection.parked (consumer, message_key) values ($1, $2) on conflict do nothing")
            .bind(consumer)
            .bind(key)
            .execute(db)
            .await;
    if let Err(e) = noted {
        tracing::debug!(error = %e, "parking not dated");
    }
}
