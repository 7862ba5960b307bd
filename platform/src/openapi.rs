//! Completes an API's OpenAPI document with what every operation shares, so the published
//! contract lists every status a client can meet and shows an example of every schema:
//!
//! * **Statuses.** The errors the shared pipeline can answer on an operation are added where the
//!   operation does not document them itself: 400 (unreadable input), 401 (when it needs a
//!   token), 403 (admin operations), 404 (operations on a resource by id), 413 and 415 (with a
//!   body), 422 (with a body or parameters), 429 (the rate limits) and 500, each as
//!   problem+json naming the `code` values it carries.
//! * **Examples.** Every component schema without an `example` gets one built from its own
//!   description of itself (types, formats, enums, bounds, and the field names of this API), so
//!   the example always fits the schema.
//! * **The text rule.** Every string a client sends (parameters, body fields and keys) carries
//!   the `pattern` of [`crate::text`]'s control-character rule, single- or multi-line by field
//!   name (trimmed where a minimum length is counted on the trimmed value), request objects
//!   take no undeclared fields, and a position needs both coordinates, so the published request
//!   schemas refuse what the server refuses.

use serde_json::{Map, Value, json};

use crate::text;

/// `spec` with the shared statuses, the text rule and the examples (see the module docs), as
/// JSON: it uses a JSON Schema keyword utoipa's types do not have (`dependentRequired`).
pub fn complete(spec: &utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(spec).expect("an OpenAPI document serialises");
    add_statuses(&mut doc);
    add_text_rule(&mut doc);
    add_examples(&mut doc);
    doc
}

/// Requires at least one property of each of `schemas` (components of `spec`): for partial
/// updates, where an empty body changes nothing. (utoipa-gen 5.5 writes its `min_properties`
/// attribute as `maxProperties`, so this is set here rather than on the type.)
pub fn require_a_property(spec: &mut utoipa::openapi::OpenApi, schemas: &[&str]) {
    let Some(components) = spec.components.as_mut() else { return };
    for name in schemas {
        if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(object))) =
            components.schemas.get_mut(*name)
        {
            object.min_properties = Some(1);
        }
    }
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn problem(description: String) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn add_statuses(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        let path_params = path.contains('{');
        let api = path.starts_with("/api/v1/");
        let admin = path.starts_with("/api/v1/admin/");
        for method in METHODS {
            let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) else { continue };
            let body = op.contains_key("requestBody");
            let params: Vec<String> = op
                .get("parameters")
                .and_then(Value::as_array)
                .map(|ps| ps.iter().filter_map(|p| p["in"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            let query = params.iter().any(|p| p == "query");
            let consistency = op
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "x-consistency-token"));
            let secured = op.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
            let mut bad_request = Vec::new();
            if body {
                bad_request.extend(["malformed_json", "unreadable_body"]);
            }
            if query {
                bad_request.extend(["invalid_query", "invalid_cursor"]);
            }
            if path_params {
                bad_request.push("invalid_path");
            }
            if consistency {
                bad_request.push("invalid_consistency_token");
            }
            let mut add = Vec::new();
            if !bad_request.is_empty() {
                add.push(("400", codes("The request could not be read", &bad_request)));
            }
            if secured {
                add.push((
                    "401",
                    codes(
                        "No valid access token",
                        &["missing_token", "invalid_token", "token_expired", "token_revoked"],
                    ),
                ));
            }
            if admin {
                add.push(("403", codes("The token's user is not an admin", &["forbidden"])));
            }
            if path_params {
                add.push(("404", "Nothing with that id (see `code`)".to_owned()));
            }
            if body {
                add.push(("413", codes("The body is larger than this operation accepts", &["payload_too_large"])));
                add.push((
                    "415",
                    codes("The body is not `Content-Type: application/json`", &["unsupported_media_type"]),
                ));
            }
            if body || !params.is_empty() || path_params {
                add.push((
                    "422",
                    codes("A field is invalid; `errors` names each field and what is wrong", &["validation_failed"]),
                ));
            }
            if api {
                add.push(("429", codes("Over a rate limit; retry after `Retry-After` seconds", &["rate_limited"])));
            }
            add.push(("500", codes("A bug or an unexpected failure; quote `request_id`", &["internal_error"])));
            let responses = op.entry("responses").or_insert_with(|| json!({}));
            let Some(responses) = responses.as_object_mut() else { continue };
            for (status, description) in add {
                if !responses.contains_key(status) {
                    let mut response = problem(description);
                    if status == "429" {
                        response["headers"] = json!({
                            "Retry-After": {"description": "Seconds until a retry may succeed", "schema": {"type": "integer"}}
                        });
                    }
                    responses.insert(status.to_owned(), response);
                }
            }
            // Every response says what it is, even those the operation declared bare.
            for (status, response) in responses.iter_mut() {
                if response.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
                    response["description"] = json!(default_description(status));
                }
            }
        }
    }
}

/// A string schema allowing only `values`.
pub fn string_enum(values: &[&str], description: &str) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .build()
}

/// An array of at most `max_items` strings of 1 to `max_len` characters.
pub fn text_list(max_items: usize, max_len: usize, description: &str) -> utoipa::openapi::schema::Array {
    let item = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(max_len));
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(item)
        .max_items(Some(max_items))
        .description(Some(description))
        .build()
}

/// Fields whose value is kept exactly as sent (never trimmed), so white space at either end is theirs.
const VERBATIM_FIELDS: &[&str] = &["password", "current_password", "new_password"];

fn add_text_rule(doc: &mut Value) {
    let mut request_components = std::collections::BTreeSet::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            for method in METHODS {
                let Some(op) = item.get_mut(method) else { continue };
                if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                    for param in params {
                        let name = param["name"].as_str().unwrap_or_default().to_owned();
                        let Some(schema) = param.get_mut("schema") else { continue };
                        if name.eq_ignore_ascii_case(crate::consistency::TOKEN_HEADER.as_str()) {
                            schema["pattern"] = json!(crate::consistency::TOKEN_PATTERN);
                            schema["maxLength"] = json!(crate::consistency::TOKEN_MAX_LENGTH);
                        }
                        text_rule(schema, &name, &mut request_components);
                    }
                }
                if let Some(content) = op.pointer_mut("/requestBody/content").and_then(Value::as_object_mut) {
                    for media in content.values_mut() {
                        if let Some(schema) = media.get_mut("schema") {
                            text_rule(schema, "body", &mut request_components);
                        }
                    }
                }
            }
        }
    }
    // Components reached from a request, and the components they reach in turn.
    let mut done = std::collections::BTreeSet::new();
    while let Some(name) = request_components.iter().find(|n| !done.contains(*n)).cloned() {
        done.insert(name.clone());
        if let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")) {
            text_rule(schema, &name, &mut request_components);
        }
    }
}

/// Adds the text rule to the strings of `schema` (`field` names it), noting referenced components.
fn text_rule(schema: &mut Value, field: &str, refs: &mut std::collections::BTreeSet<String>) {
    let Some(map) = schema.as_object_mut() else { return };
    if let Some(r) = map.get("$ref").and_then(Value::as_str) {
        refs.insert(r.rsplit('/').next().unwrap_or_default().to_owned());
        return;
    }
    let is = |t: &str| match &map.get("type") {
        Some(Value::String(s)) => s == t,
        Some(Value::Array(ts)) => ts.iter().any(|x| x == t),
        _ => false,
    };
    let free_string = is("string") && !["enum", "const", "format", "pattern"].iter().any(|k| map.contains_key(*k));
    let object = is("object") || map.contains_key("properties");
    if free_string {
        // A required minimum length is counted on the trimmed value (`Checks::text`).
        let trimmed =
            map.get("minLength").and_then(Value::as_u64).is_some_and(|n| n > 0) && !VERBATIM_FIELDS.contains(&field);
        let rule = match (crate::text::is_multiline(field), trimmed) {
            (false, false) => text::SINGLE_LINE,
            (true, false) => text::MULTI_LINE,
            (false, true) => text::TRIMMED_SINGLE_LINE,
            (true, true) => text::TRIMMED_MULTI_LINE,
        };
        map.insert("pattern".into(), json!(rule));
    }
    // The server ignores fields it does not know, but still holds them to the text rule; the
    // contract simply has none.
    if object && !map.contains_key("additionalProperties") {
        map.insert("additionalProperties".into(), json!(false));
    }
    // With a minimum of properties, a property sent as null counts as absent on the server, so
    // the schema leaves null out.
    if map.get("minProperties").and_then(Value::as_u64).is_some_and(|n| n > 0)
        && let Some(props) = map.get_mut("properties").and_then(Value::as_object_mut)
    {
        props.values_mut().for_each(not_null);
    }
    // A position is both coordinates or neither (`Coordinates` in the handlers).
    if let Some(props) = map.get("properties").and_then(Value::as_object)
        && props.contains_key("latitude")
        && props.contains_key("longitude")
    {
        let required = map.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
        if !required.iter().any(|r| r == "latitude" || r == "longitude") {
            map.insert("dependentRequired".into(), json!({"latitude": ["longitude"], "longitude": ["latitude"]}));
            // A coordinate sent as null counts as absent, which would leave the other alone.
            for name in ["latitude", "longitude"] {
                if let Some(prop) = map.get_mut("properties").and_then(|p| p.get_mut(name)) {
                    not_null(prop);
                }
            }
        }
    }
    if let Some(props) = map.get_mut("properties").and_then(Value::as_object_mut) {
        for (name, prop) in props.iter_mut() {
            text_rule(prop, name, refs);
        }
    }
    if let Some(items) = map.get_mut("items") {
        text_rule(items, field, refs);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(options)) = map.get_mut(key) {
            for option in options {
                text_rule(option, field, refs);
            }
        }
    }
}

/// `schema` without `null` among its types or values.
fn not_null(schema: &mut Value) {
    if let Some(Value::Array(types)) = schema.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types[0].clone();
            schema["type"] = only;
        }
    }
    if let Some(Value::Array(values)) = schema.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
}

fn codes(what: &str, codes: &[&str]) -> String {
    let list: Vec<String> = codes.iter().map(|c| format!("`{c}`")).collect();
    format!("{what} (`code`: {})", list.join(", "))
}

fn default_description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted: recorded; read models follow (send `X-Consistency-Token` to read it)",
        "204" => "Done; no body",
        "400" => "The request could not be read (see `code`)",
        "401" => "No valid access token (see `code`)",
        "403" => "Not allowed (see `code`)",
        "404" => "Not found (see `code`)",
        "409" => "Conflicts with the current state (see `code`)",
        "415" => "Unsupported media type",
        "422" => "A field is invalid (see `errors`)",
        "429" => "Too many requests (see `Retry-After`)",
        "503" => "A dependency is unavailable (see `code` and `Retry-After`)",
        _ => "See the body",
    }
}

fn add_examples(doc: &mut Value) {
    let schemas = doc["components"]["schemas"].clone();
    let Some(components) = doc.get_mut("components").and_then(|c| c.get_mut("schemas")).and_then(Value::as_object_mut)
    else {
        return;
    };
    for (name, schema) in components.iter_mut() {
        if schema.get("example").is_none() && schema.get("examples").is_none() {
            let example = example_of(schema, name, &schemas, 0);
            if let Value::Object(map) = schema {
                map.insert("examples".into(), json!([example]));
            }
        }
    }
}

/// An example value fitting `schema`, `field` being the property (or schema) it is for.
fn example_of(schema: &Value, field: &str, all: &Value, depth: usize) -> Value {
    if depth > 8 {
        return Value::Null;
    }
    if let Some(e) = schema.get("example") {
        return e.clone();
    }
    if let Some(Value::Array(es)) = schema.get("examples")
        && let Some(e) = es.first()
    {
        return e.clone();
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        return example_of(&all[name], field, all, depth + 1);
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(Value::Array(values)) = schema.get("enum")
        && let Some(v) = values.iter().find(|v| !v.is_null())
    {
        return v.clone();
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(options)) = schema.get(key)
            && let Some(first) = options.iter().find(|o| o.get("type") != Some(&json!("null")))
        {
            return example_of(first, field, all, depth + 1);
        }
    }
    let kind = match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("null").to_owned(),
        _ if schema.get("properties").is_some() => "object".to_owned(),
        _ => String::new(),
    };
    match kind.as_str() {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, prop) in props {
                    out.insert(name.clone(), example_of(prop, name, all, depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let item = schema.get("items").map_or(Value::Null, |i| example_of(i, field, all, depth + 1));
            if item.is_null() { json!([]) } else { json!([item]) }
        }
        "string" => json!(string_example(schema, field)),
        "integer" => {
            let min = schema["minimum"].as_i64().unwrap_or(0);
            let max = schema["maximum"].as_i64().unwrap_or(i64::MAX);
            let guess = match field {
                "points" | "weekly_points" => 120,
                "level" => 2,
                "limit" => 20,
                "rank" => 1,
                "amount" => 100,
                "expires_in" => 1800,
                _ => 1,
            };
            json!(guess.clamp(min, max))
        }
        "number" => {
            let guess: f64 = match field {
                "latitude" | "lat" => 37.5665,
                "longitude" | "lon" => 126.978,
                "confidence" => 0.93,
                "distance_m" => 120.0,
                "radius" => 1000.0,
                _ => 1.0,
            };
            let min = schema["minimum"].as_f64().unwrap_or(f64::MIN);
            let max = schema["maximum"].as_f64().unwrap_or(f64::MAX);
            json!(guess.clamp(min, max))
        }
        "boolean" => json!(true),
        _ => Value::Null,
    }
}

fn string_example(schema: &Value, field: &str) -> String {
    match schema["format"].as_str() {
        Some("uuid") => return "0193b0c4-5e1a-7c2e-9f3d-2a6b8c4e1f07".into(),
        Some("date-time") => return "2026-11-22T03:00:00Z".into(),
        Some("date") => return "2026-11-22".into(),
        Some("email") => return "mina@example.com".into(),
        Some("uri") => return "https://example.com/".into(),
        _ => {}
    }
    let text = match field {
        f if f.ends_with("email") => "mina@example.com",
        "username" => "mina",
        "nickname" => "미나",
        "password" | "current_password" | "new_password" => "recycle2026",
        "bio" => "I sort my plastics.",
        "avatar_url" => "https://example.com/avatars/mina.png",
        f if f.ends_with("token") => "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
        "token_type" => "Bearer",
        "category" => "plastic",
        "item_name" => "PET bottle",
        "name_ko" => "투명 페트병",
        "name_en" => "Clear PET bottle",
        "name" => "Mapo recycling center",
        "label" => "Home",
        "address" => "서울특별시 마포구 월드컵로 212",
        "q" | "query" => "페트병",
        "code" | "region" => "seoul",
        "language" => "ko",
        "theme" => "system",
        "kind" => "bin",
        "period_key" => "2026-W47",
        "cursor" | "next_cursor" => "eyJsaXN0IjoiYWN0aXZpdGllcyJ9",
        "image_sha256" => "9f2d1c0b8a7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c",
        "role" => "user",
        "invite_code" => "K7Q2M9XA",
        "provider" => "kakao",
        "state" => "0b1c2d3e4f",
        "url" | "authorization_url" => "https://kauth.kakao.com/oauth/authorize?client_id=…",
        "schedule" => "Every evening from 18:00 to 24:00, in front of your building",
        "disposal" | "rule" => "Empty it, remove the label, crush it and put it in the plastics bin.",
        "question" => "Does a greasy pizza box go to paper?",
        "answer" => "No: food-soiled paper is general waste.",
        "phone" => "02-300-5000",
        "opening_hours" => "Mon–Sat 09:00–18:00",
        "outcome" => "created",
        "reason" => "near_known_place",
        "action" => "scan",
        "detail" => "item_name: must not be empty",
        "title" => "Validation failed",
        "type" => "urn:ecoeco:problem:validation_failed",
        "field" => "item_name",
        "message" => "must not be empty",
        "status" => "ready",
        _ => "example",
    };
    let mut s = text.to_owned();
    if let Some(min) = schema["minLength"].as_u64() {
        while (s.chars().count() as u64) < min {
            s.push('x');
        }
    }
    if let Some(max) = schema["maxLength"].as_u64() {
        s = s.chars().take(max as usize).collect();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_fit_their_schemas() {
        let all = json!({"Place": {"type": "object", "properties": {
            "id": {"type": "string", "format": "uuid"},
            "latitude": {"type": "number", "minimum": -90.0, "maximum": 90.0},
            "kind": {"type": "string", "enum": ["bin", "center"]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}}
        }}});
        let e = example_of(&all["Place"], "Place", &all, 0);
        assert_eq!(e["latitude"], 37.5665);
        assert_eq!(e["kind"], "bin");
        assert_eq!(e["tags"][0].as_str().unwrap().chars().count(), 3);
        assert!(e["id"].as_str().unwrap().len() == 36);
    }
}
