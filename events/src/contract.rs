//! The published contract, generated from the catalogue: the JSON Schema files of
//! `events/schemas/` and the AsyncAPI 3.0 document of the bus (`docs/asyncapi.yaml`). Nothing
//! here is written by hand; tests keep the committed files equal to what this module produces.

use serde_json::{Map, Value, json};

use crate::{CATALOGUE, RawEnvelope, parking};

/// Where the schemas live, as `$id` prefixes: `urn:ecoeco:events:scan.recorded.v1`.
const ID_PREFIX: &str = "urn:ecoeco:events:";

/// The JSON Schema formats of draft 2020-12; schemars also emits OpenAPI's `int32`, `uint32`,
/// `double`… which JSON Schema validators do not know, so those are dropped.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Every reason a consumer parks a message with (`x-parked-reason`), and what it means.
pub const PARKING_REASONS: &[(&str, &str)] = &[
    ("malformed_envelope", "not JSON, or an envelope field missing or of the wrong type"),
    ("unknown_type", "`type` is not in the catalogue"),
    ("unsupported_version", "the type is known, this `version` is not"),
    (
        "schema_violation",
        "`data` does not match the schema of its type and version, or holds what the log cannot store",
    ),
    ("unknown_user", "the event names a user without a live account"),
    ("conflicting_duplicate", "(ingest) the id is in the log with a different body; the logged one stands"),
    ("rejected_by_database", "PostgreSQL refused what the event asked a consumer to store; parked at once"),
    ("retries_exhausted", "valid, but a consumer could not apply it after every retry tier"),
];

/// A schema as published: with `$id`, standard formats only, and descriptions free of Rust
/// doc-link syntax.
pub fn published(stem: &str, mut schema: Value) -> Value {
    tidy(&mut schema);
    if let Value::Object(map) = &mut schema {
        map.insert("$id".into(), json!(format!("{ID_PREFIX}{stem}")));
    }
    schema
}

fn tidy(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(f)) = map.get("format")
                && !STANDARD_FORMATS.contains(&f.as_str())
            {
                map.remove("format");
            }
            if let Some(Value::String(d)) = map.get_mut("description") {
                *d = d.replace("[`", "`").replace("`]", "`");
            }
            map.values_mut().for_each(tidy);
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

/// The envelope schema, which selects the schema of `data` by `type` and `version`: every
/// `(type, version)` the catalogue accepts, with its data schema under `$defs`.
pub fn envelope_schema(data_schemas: &[(String, Value)]) -> Value {
    let mut schema = published("envelope", schemars::schema_for!(RawEnvelope).to_value());
    let mut defs = Map::new();
    let mut cases = Vec::new();
    for (stem, data) in data_schemas {
        let Some((event_type, version)) = split_stem(stem) else { continue };
        // A data schema's own definitions move up beside it; its local references follow.
        let mut data = data.clone();
        if let Some(Value::Object(own)) = data.as_object_mut().and_then(|m| m.remove("$defs")) {
            for (name, def) in own {
                defs.insert(format!("{stem}.{name}"), def);
            }
            retarget(&mut data, stem);
            for (name, def) in defs.iter_mut() {
                if name.starts_with(&format!("{stem}.")) {
                    retarget(def, stem);
                }
            }
        }
        // Embedded, a data schema is no resource of its own: with its `$id` its local
        // references would resolve against itself rather than the envelope.
        if let Value::Object(m) = &mut data {
            m.remove("$schema");
            m.remove("$id");
        }
        defs.insert(stem.clone(), data);
        cases.push(json!({
            "if": {"properties": {"type": {"const": event_type}, "version": {"const": version}}, "required": ["type", "version"]},
            "then": {"properties": {"data": {"$ref": format!("#/$defs/{stem}")}}}
        }));
    }
    if let Value::Object(map) = &mut schema {
        map.insert("$defs".into(), Value::Object(defs));
        map.insert("allOf".into(), Value::Array(cases));
    }
    schema
}

/// `#/$defs/X` inside the data schema `stem` becomes `#/$defs/{stem}.X`.
fn retarget(value: &mut Value, stem: &str) {
    rebase(value, "#/$defs/", &format!("#/$defs/{stem}."));
}

/// Rewrites every `$ref` starting with `from` to start with `to` (unless it already does).
fn rebase(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref")
                && !r.starts_with(to)
                && let Some(rest) = r.strip_prefix(from)
            {
                *r = format!("{to}{rest}");
            }
            map.values_mut().for_each(|v| rebase(v, from, to));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rebase(v, from, to)),
        _ => {}
    }
}

/// `("scan.recorded", 1)` from `"scan.recorded.v1"`.
fn split_stem(stem: &str) -> Option<(&str, u32)> {
    let (event_type, version) = stem.rsplit_once(".v")?;
    Some((event_type, version.parse().ok()?))
}

/// The AsyncAPI 3.0 document of the bus: the exchange, one message per event type and version
/// (its envelope with the data schema, AMQP bindings, headers), and the parked queues with
/// their reason codes.
pub fn asyncapi(data_schemas: &[(String, Value)]) -> Value {
    let current: Vec<(String, u32)> = CATALOGUE.iter().map(|(t, v)| ((*t).to_owned(), *v)).collect();
    let mut messages = Map::new();
    let mut schemas = Map::new();
    let mut refs = Vec::new();
    let headers = json!({
        "type": "object",
        "properties": {
            crate::HEADER_CORRELATION_ID: {"type": "string", "format": "uuid", "description": "The request or flow this event belongs to (also in the envelope)."},
            crate::HEADER_CAUSATION_ID: {"type": "string", "format": "uuid", "description": "The event or command that caused this one (also in the envelope)."},
            crate::HEADER_EVENT_VERSION: {"type": "integer", "description": "The schema version of `data` (also `version` in the envelope)."}
        }
    });
    let envelope = published("envelope", schemars::schema_for!(RawEnvelope).to_value());
    for (stem, data) in data_schemas {
        let Some((event_type, version)) = split_stem(stem) else { continue };
        let key = stem.replace('.', "_");
        let mut data = data.clone();
        if let Value::Object(m) = &mut data {
            m.remove("$schema");
            m.remove("$id");
        }
        // Its local definitions stay inside it; references follow them there.
        rebase(&mut data, "#/$defs/", &format!("#/components/schemas/{key}/$defs/"));
        schemas.insert(key.clone(), data);
        let mut payload = envelope.clone();
        if let Value::Object(m) = &mut payload {
            m.remove("$schema");
            m.remove("$id");
            if let Some(Value::Object(props)) = m.get_mut("properties") {
                props.insert(
                    "type".into(),
                    json!({"const": event_type, "description": "The event type; the routing key."}),
                );
                props.insert(
                    "version".into(),
                    json!({"const": version, "description": "The schema version of `data`."}),
                );
                props.insert("data".into(), json!({"$ref": format!("#/components/schemas/{key}")}));
            }
        }
        let is_current = current.iter().any(|(t, v)| t == event_type && *v == version);
        let title = if is_current {
            format!("{event_type} v{version}")
        } else {
            format!("{event_type} v{version} (still accepted)")
        };
        messages.insert(
            key.clone(),
            json!({
                "name": event_type,
                "title": title,
                "summary": data_summary(&schemas[&key]),
                "contentType": "application/json",
                "headers": headers,
                "payload": payload,
                "correlationId": {"location": "$message.header#/x-correlation-id"},
                "bindings": {"amqp": {"messageType": event_type, "bindingVersion": "0.3.0"}}
            }),
        );
        refs.push(json!({"$ref": format!("#/channels/events/messages/{key}")}));
    }
    let channel_messages: Map<String, Value> =
        messages.keys().map(|k| (k.clone(), json!({"$ref": format!("#/components/messages/{k}")}))).collect();
    let reasons: Vec<&str> = PARKING_REASONS.iter().map(|(code, _)| *code).collect();
    let mut component_messages = messages.clone();
    component_messages.insert(
        "parked".into(),
        json!({
            "name": "parked",
            "title": "A parked message",
            "summary": "Any message a consumer could not use, as it was sent, with the parking headers.",
            "contentType": "application/json",
            "headers": {
                "type": "object",
                "required": [parking::PARKED_REASON, parking::PARKED_AT],
                "properties": {
                    parking::PARKED_REASON: {"type": "string", "enum": reasons, "description": "Machine-readable reason."},
                    parking::PARKED_DETAIL: {"type": "string", "description": "Human detail."},
                    parking::PARKED_AT: {"type": "string", "format": "date-time", "description": "When it was parked."},
                    parking::RETRY_COUNT: {"type": "integer", "minimum": 0, "description": "How many retry tiers it went through."},
                    parking::ORIGINAL_ROUTING_KEY: {"type": "string", "description": "The routing key (event type) it was published with."}
                }
            },
            "payload": {"description": "The message body as sent (it may not be JSON at all)."}
        }),
    );
    let reason_doc: String = PARKING_REASONS.iter().map(|(code, what)| format!("- `{code}`: {what}\n")).collect();
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "EcoEco events",
            "version": "1.0.0",
            "description": "The events of the EcoEco recycling app on RabbitMQ. Every event travels in one JSON envelope whose `type` is the routing key and whose `data` is fixed by `(type, version)`. Producers publish to the `{prefix}.events` topic exchange with publisher confirms and `mandatory`, `delivery_mode` 2, `content_type` application/json, `message_id` = `id`, `type` = the event type. Consumers deduplicate by `id`. A message that cannot be used is parked in `{prefix}.{consumer}.parked` with `x-parked-reason`. Generated from the `events` crate; see docs/events.md.",
            "license": {"name": "MIT"}
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {"host": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0.9.1", "description": "A development broker (guest/guest)."}
        },
        "channels": {
            "events": {
                "address": "{prefix}.events",
                "title": "The event exchange",
                "description": "Durable topic exchange; routing key = the event `type`. Every producer publishes here; each consumer binds a durable quorum queue to the types it needs.",
                "parameters": {"prefix": {"default": "eco", "description": "`AMQP_PREFIX` of the deployment."}},
                "messages": channel_messages,
                "bindings": {"amqp": {"is": "routingKey", "exchange": {"name": "eco.events", "type": "topic", "durable": true, "autoDelete": false, "vhost": "/"}, "bindingVersion": "0.3.0"}}
            },
            "parked": {
                "address": "{prefix}.{consumer}.parked",
                "title": "Parked messages of a consumer",
                "description": format!("Durable quorum queue per consumer (e.g. `eco.ingest.parked` for what ingest could not store). A parked message keeps its body and properties and gains the headers `x-parked-reason`, `x-parked-detail`, `x-parked-at`, `x-retry-count` and `x-original-routing-key`. Reasons:\n\n{reason_doc}"),
                "parameters": {
                    "prefix": {"default": "eco", "description": "`AMQP_PREFIX` of the deployment."},
                    "consumer": {"description": "The consumer, e.g. `ingest`, `points-policy`, `projections`."}
                },
                "messages": {"parked": {"$ref": "#/components/messages/parked"}},
                "bindings": {"amqp": {"is": "queue", "queue": {"name": "eco.ingest.parked", "durable": true, "exclusive": false, "autoDelete": false, "vhost": "/"}, "bindingVersion": "0.3.0"}}
            }
        },
        "operations": {
            "publishEvent": {
                "action": "send",
                "channel": {"$ref": "#/channels/events"},
                "summary": "Publish an event (other services: e.g. the scan service's scan.recorded).",
                "messages": refs,
                "bindings": {"amqp": {"deliveryMode": 2, "mandatory": true, "timestamp": true, "ack": true, "bindingVersion": "0.3.0"}}
            },
            "receiveEvent": {
                "action": "receive",
                "channel": {"$ref": "#/channels/events"},
                "summary": "Consume events from a queue bound to the types you need.",
                "messages": refs,
                "bindings": {"amqp": {"ack": true, "bindingVersion": "0.3.0"}}
            },
            "receiveParked": {
                "action": "receive",
                "channel": {"$ref": "#/channels/parked"},
                "summary": "Inspect what a consumer parked, and why (operators: `ecoctl parked list`).",
                "messages": [{"$ref": "#/channels/parked/messages/parked"}]
            }
        },
        "components": {
            "messages": component_messages,
            "schemas": schemas
        }
    })
}

fn data_summary(schema: &Value) -> String {
    schema["description"].as_str().unwrap_or_default().lines().next().unwrap_or_default().to_owned()
}
