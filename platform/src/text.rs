//! One rule for text from clients: no control characters.
//!
//! PostgreSQL cannot store NUL (`\u0000`) in `text` or `jsonb`, and no other control character
//! (C0, DEL, C1) belongs in a name, a query or an identifier either. The extractors
//! [`crate::error::ApiJson`], [`crate::error::ApiQuery`] and [`crate::error::ApiPath`] run every
//! string a client sends (JSON bodies, keys included; query parameters; path segments) through
//! [`check`] before a handler sees it, and refuse with 422 naming the field. Line breaks and tabs
//! are allowed only in the long free-text fields of [`MULTILINE_FIELDS`].

use serde_json::Value;

use crate::error::FieldError;

/// Fields (by their JSON name) whose text may span lines: line feed, carriage return and tab
/// are allowed there, and nowhere else.
pub const MULTILINE_FIELDS: &[&str] = &["bio", "disposal", "donts", "question", "answer", "schedule", "rule"];

/// Whether `field` is free text that may hold line breaks and tabs.
fn multiline(field: &str) -> bool {
    let name = field.rsplit('.').next().unwrap_or(field);
    let name = name.split('[').next().unwrap_or(name);
    MULTILINE_FIELDS.contains(&name)
}

/// The problem with `value` in `field`, if it holds a control character the rule refuses.
pub fn check(field: &str, value: &str) -> Option<FieldError> {
    let allowed = |c: char| multiline(field) && matches!(c, '\n' | '\r' | '\t');
    let bad = value.chars().find(|&c| c.is_control() && !allowed(c))?;
    let what =
        if bad == '\0' { "a NUL character".to_owned() } else { format!("the control character U+{:04X}", bad as u32) };
    Some(FieldError::new(field, format!("must not contain {what}")))
}

/// Every field of a JSON body that breaks the rule, by its path (`items[2].name`).
pub fn check_json(value: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    walk(value, "", &mut errors);
    errors
}

fn walk(value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    match value {
        Value::String(s) => errors.extend(check(if path.is_empty() { "body" } else { path }, s)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), errors);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let field = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                if let Some(mut e) = check(&field, key) {
                    e.message = format!("the key {}", e.message);
                    errors.push(e);
                    continue;
                }
                walk(item, &field, errors);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nul_and_control_characters_are_refused_with_the_field() {
        let errors = check_json(&json!({"item_name": "a\u{0}b", "nested": {"list": ["ok", "b\u{7}"]}}));
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["item_name", "nested.list[1]"]);
        assert!(errors[0].message.contains("NUL"), "{}", errors[0].message);
        assert!(errors[1].message.contains("U+0007"), "{}", errors[1].message);
    }

    #[test]
    fn line_breaks_only_in_free_text() {
        assert!(check("bio", "line one\nline two\ttabbed").is_none());
        assert!(check("donts[0]", "a\r\nb").is_none());
        assert!(check("nickname", "two\nlines").is_some());
        assert!(check("bio", "nul\u{0}").is_some(), "NUL is refused even in free text");
        assert!(check("q", "plain 한국어 text").is_none());
    }

    #[test]
    fn keys_are_checked_too() {
        let errors = check_json(&json!({"a\u{0}": 1}));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.starts_with("the key"));
    }
}
