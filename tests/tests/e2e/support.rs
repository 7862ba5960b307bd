//! Talking to the broker directly, as another service or an operator would.

use std::time::Duration;

use lapin::{
    BasicProperties, Channel, Connection,
    options::{BasicGetOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};
use platform::{amqp, topology};
use tests::TestSystem;

/// A connection and confirm channel to the test's broker.
pub async fn broker(system: &TestSystem) -> (Connection, Channel) {
    let conn = amqp::connect(&system.settings.amqp_url, "test").await.unwrap();
    let channel = amqp::confirm_channel(&conn).await.unwrap();
    (conn, channel)
}

/// Publishes `body` to the test's exchange with `routing_key`, confirmed.
pub async fn publish_raw(channel: &Channel, system: &TestSystem, routing_key: &str, body: &[u8]) {
    let props = BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
    let confirm = channel
        .basic_publish(&system.topology().exchange(), routing_key, BasicPublishOptions::default(), body, props)
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
}

/// Publishes like [`publish_raw`] but returns the pending confirm instead of waiting for it,
/// so a burst goes out at full speed.
pub async fn publish_unconfirmed(
    channel: &Channel,
    system: &TestSystem,
    routing_key: &str,
    body: &[u8],
) -> lapin::publisher_confirm::PublisherConfirm {
    let props = BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
    channel
        .basic_publish(&system.topology().exchange(), routing_key, BasicPublishOptions::default(), body, props)
        .await
        .unwrap()
}

/// A parked message: its reason header and body.
pub struct Parked {
    pub routing_key: String,
    pub reason: String,
    pub detail: String,
    pub retry_count: i64,
    pub body: Vec<u8>,
}

/// Takes up to `n` messages from `queue`, waiting up to 15 s for them to arrive.
pub async fn take_parked(channel: &Channel, queue: &str, n: usize) -> Vec<Parked> {
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while found.len() < n && tokio::time::Instant::now() < deadline {
        match channel.basic_get(queue, BasicGetOptions { no_ack: true }).await.unwrap() {
            Some(msg) => {
                let headers = msg.delivery.properties.headers().clone();
                found.push(Parked {
                    routing_key: amqp::header_str(headers.as_ref(), topology::headers::ORIGINAL_ROUTING_KEY)
                        .unwrap_or_default(),
                    reason: amqp::header_str(headers.as_ref(), topology::headers::PARKED_REASON).unwrap_or_default(),
                    detail: amqp::header_str(headers.as_ref(), topology::headers::PARKED_DETAIL).unwrap_or_default(),
                    retry_count: amqp::header_int(headers.as_ref(), topology::headers::RETRY_COUNT).unwrap_or(-1),
                    body: msg.delivery.data.clone(),
                });
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    found
}

/// A queue that receives every event on the test's exchange, in the order the broker got them.
pub async fn tap(channel: &Channel, system: &TestSystem) -> String {
    let name = format!("{}.test-tap", system.settings.amqp_prefix);
    channel
        .queue_declare(&name, QueueDeclareOptions { durable: true, ..Default::default() }, FieldTable::default())
        .await
        .unwrap();
    channel
        .queue_bind(&name, &system.topology().exchange(), "#", QueueBindOptions::default(), FieldTable::default())
        .await
        .unwrap();
    name
}

/// Reads the `type` and `id` of every message waiting in `queue`.
pub async fn drain(channel: &Channel, queue: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while let Some(msg) = channel.basic_get(queue, BasicGetOptions { no_ack: true }).await.unwrap() {
        out.push(serde_json::from_slice(&msg.delivery.data).unwrap());
    }
    out
}

/// Header table with one string header.
#[allow(dead_code)]
pub fn header(name: &str, value: &str) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert(name.into(), AMQPValue::LongString(value.into()));
    t
}

/// base64url (no padding) decoding, as JWTs use it.
pub fn b64url_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
}

/// base64url (no padding) encoding.
pub fn b64url_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The JSON header of a JWT.
pub fn jwt_header(token: &str) -> serde_json::Value {
    serde_json::from_slice(&b64url_decode(token.split('.').next().unwrap())).unwrap()
}

/// The JWKS command-api publishes.
pub async fn jwks(system: &TestSystem) -> serde_json::Value {
    let url = format!("{}/.well-known/jwks.json", system.command_url);
    system.http.get(url).send().await.unwrap().json().await.unwrap()
}
