//! RabbitMQ connections and the AMQP form of an event (DESIGN §2 "AMQP properties").

use std::time::Duration;

use anyhow::Context;
use events::{HEADER_CAUSATION_ID, HEADER_CORRELATION_ID, HEADER_EVENT_VERSION, RawEnvelope};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::ConfirmSelectOptions,
    types::{AMQPValue, FieldTable, LongString},
};

/// The largest AMQP frame we negotiate unless `AMQP_URL` says otherwise (`?frame_max=`).
/// lapin keeps 32 frames of receive and of send buffer per connection, so the broker's default
/// (128 KiB) costs 8 MiB of memory per connection; events are a few KiB, and a larger body is
/// simply split across frames. At 16 KiB a connection's buffers take 1 MiB.
pub const FRAME_MAX: u32 = 16 * 1024;

/// `url` with `frame_max` set to [`FRAME_MAX`] unless it sets one.
pub fn with_frame_max(url: &str) -> std::borrow::Cow<'_, str> {
    if url.contains("frame_max=") {
        url.into()
    } else {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}frame_max={FRAME_MAX}").into()
    }
}

/// Opens a connection named `name` (shown in the management UI), failing after 10 s.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    tokio::time::timeout(Duration::from_secs(10), Connection::connect(&with_frame_max(url), props))
        .await
        .context("connecting to RabbitMQ timed out (AMQP_URL)")?
        .context("connecting to RabbitMQ (AMQP_URL)")
}

/// A channel in publisher-confirm mode.
pub async fn confirm_channel(conn: &Connection) -> anyhow::Result<Channel> {
    let channel = conn.create_channel().await.context("opening an AMQP channel")?;
    channel.confirm_select(ConfirmSelectOptions::default()).await.context("enabling publisher confirms")?;
    Ok(channel)
}

/// The `app_id` of what our relay publishes.
pub const RELAY_APP_ID: &str = "ecoeco";

/// The user name `url` authenticates with, when it names one and signs in with it (not with a
/// client certificate, `auth_mechanism=external`, where the broker's user is the certificate's).
pub fn username(url: &str) -> Option<String> {
    let uri = url.parse::<lapin::uri::AMQPUri>().ok()?;
    let named = url.split_once("://").is_some_and(|(_, rest)| rest.split('/').next().is_some_and(|a| a.contains('@')));
    let external = url.to_ascii_lowercase().contains("auth_mechanism=external");
    (named && !external).then_some(uri.authority.userinfo.username)
}

/// `properties` without `user_id`: what a consumer republishes (retries, parking, requeues) may
/// go out on a connection of another broker user, which RabbitMQ would refuse a copied one.
pub fn without_user_id(properties: &BasicProperties) -> BasicProperties {
    let mut out = BasicProperties::default();
    if let Some(v) = properties.content_type() {
        out = out.with_content_type(v.clone());
    }
    if let Some(v) = properties.content_encoding() {
        out = out.with_content_encoding(v.clone());
    }
    if let Some(v) = properties.headers() {
        out = out.with_headers(v.clone());
    }
    if let Some(v) = properties.delivery_mode() {
        out = out.with_delivery_mode(*v);
    }
    if let Some(v) = properties.priority() {
        out = out.with_priority(*v);
    }
    if let Some(v) = properties.correlation_id() {
        out = out.with_correlation_id(v.clone());
    }
    if let Some(v) = properties.reply_to() {
        out = out.with_reply_to(v.clone());
    }
    if let Some(v) = properties.expiration() {
        out = out.with_expiration(v.clone());
    }
    if let Some(v) = properties.message_id() {
        out = out.with_message_id(v.clone());
    }
    if let Some(v) = properties.timestamp() {
        out = out.with_timestamp(*v);
    }
    if let Some(v) = properties.kind() {
        out = out.with_type(v.clone());
    }
    if let Some(v) = properties.app_id() {
        out = out.with_app_id(v.clone());
    }
    if let Some(v) = properties.cluster_id() {
        out = out.with_cluster_id(v.clone());
    }
    out
}

/// Marks a message as published by our relay from the log: `app_id` [`RELAY_APP_ID`] and
/// `user_id` the connection's user, which RabbitMQ checks against the authenticated user (a
/// publish claiming another user's id is refused), so no other service can pass its message
/// off as ours unless it connects with our credentials.
pub fn from_relay(properties: BasicProperties, user: &str) -> BasicProperties {
    properties.with_app_id(RELAY_APP_ID.into()).with_user_id(user.into())
}

/// Whether a delivery carries [`from_relay`]'s marks for `user`.
pub fn is_from_relay(properties: &BasicProperties, user: &str) -> bool {
    properties.app_id().as_ref().is_some_and(|a| a.as_str() == RELAY_APP_ID)
        && properties.user_id().as_ref().is_some_and(|u| u.as_str() == user)
}

/// Persistent JSON message properties for an event: `message_id` = event id, `type` = event
/// type, `timestamp`, and the correlation, causation and version headers.
pub fn event_properties(event: &RawEnvelope) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(id) = event.correlation_id {
        headers.insert(HEADER_CORRELATION_ID.into(), long_string(id.to_string()));
    }
    if let Some(id) = event.causation_id {
        headers.insert(HEADER_CAUSATION_ID.into(), long_string(id.to_string()));
    }
    headers.insert(HEADER_EVENT_VERSION.into(), AMQPValue::LongUInt(event.version));
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(event.id.to_string().into())
        .with_type(event.event_type.as_str().into())
        .with_timestamp(u64::try_from(event.occurred_at.timestamp()).unwrap_or(0))
        .with_headers(headers)
}

/// An AMQP long string value.
pub fn long_string(s: impl Into<String>) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.into()))
}

/// A header's value as text, when it is a string.
pub fn header_str(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// A header's value as an integer, when it is one.
pub fn header_int(headers: Option<&FieldTable>, name: &str) -> Option<i64> {
    match headers?.inner().get(name)? {
        AMQPValue::ShortShortInt(v) => Some((*v).into()),
        AMQPValue::ShortShortUInt(v) => Some((*v).into()),
        AMQPValue::ShortInt(v) => Some((*v).into()),
        AMQPValue::ShortUInt(v) => Some((*v).into()),
        AMQPValue::LongInt(v) => Some((*v).into()),
        AMQPValue::LongUInt(v) => Some((*v).into()),
        AMQPValue::LongLongInt(v) => Some(*v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_comes_from_the_url() {
        assert_eq!(username("amqp://eco:secret@rabbit:5672/%2f").as_deref(), Some("eco"));
        assert_eq!(username("amqp://rabbit:5672"), None, "the broker decides who that is");
        assert_eq!(username("amqps://eco@rabbit:5671/%2f?auth_mechanism=external"), None);
        let ours = from_relay(BasicProperties::default(), "eco");
        assert!(is_from_relay(&ours, "eco"));
        assert!(!is_from_relay(&ours, "someone-else"));
        assert!(!is_from_relay(&BasicProperties::default().with_user_id("eco".into()), "eco"));
        let copied = without_user_id(&ours.with_message_id("m".into()));
        assert_eq!((copied.user_id(), copied.message_id().as_ref().map(|m| m.as_str())), (&None, Some("m")));
    }

    #[test]
    fn frame_max_is_added_unless_the_url_sets_one() {
        assert_eq!(with_frame_max("amqp://g:g@h:5672/%2f"), "amqp://g:g@h:5672/%2f?frame_max=16384");
        assert_eq!(with_frame_max("amqp://h/%2f?heartbeat=10"), "amqp://h/%2f?heartbeat=10&frame_max=16384");
        assert_eq!(with_frame_max("amqp://h/%2f?frame_max=4096"), "amqp://h/%2f?frame_max=4096");
    }
}
