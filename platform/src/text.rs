//! One rule for text from clients: no control characters.
//!
//! PostgreSQL cannot store NUL (`\u0000`) in `text` or `jsonb`, and no other control character
//! (C0, DEL, C1) belongs in a name, a query or an identifier either. The extractors
//! [`crate::error::ApiJson`], [`crate::error::ApiQuery`] and [`crate::error::ApiPath`] run every
//! string a client sends (JSON bodies, keys included; query parameters; path segments) through
//! [`check`] before a handler sees it, and refuse with 422 naming the field. Line breaks and tabs
//! are allowed only in the long free-text fields of [`MULTILINE_FIELDS`].

use serde_json::Value;

use crate::field::FieldError;

// The rule as regular expressions (ECMA-262 and Python alike), for the published request
// schemas (`crate::openapi`). `Cc` is U+0000–U+001F and U+007F–U+009F; white space is Rust's
// `char::is_whitespace` (Unicode White_Space), which is what `str::trim` removes.
macro_rules! cc {
    () => {
        r"\u0000-\u001F\u007F-\u009F"
    };
}
macro_rules! cc_multiline {
    () => {
        r"\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F"
    };
}
macro_rules! space {
    () => {
        r"\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}

/// Single-line text: no control character.
pub const SINGLE_LINE: &str = concat!("^[^", cc!(), "]*$");
/// Free text ([`MULTILINE_FIELDS`]): line feed, carriage return and tab allowed.
pub const MULTI_LINE: &str = concat!("^[^", cc_multiline!(), "]*$");
/// Single-line text as the server keeps it, trimmed: neither starts nor ends with white space.
pub const TRIMMED_SINGLE_LINE: &str =
    concat!("^(?:[^", cc!(), space!(), "](?:[^", cc!(), "]*[^", cc!(), space!(), "])?)?$");
/// Free text, trimmed.
pub const TRIMMED_MULTI_LINE: &str = concat!(
    "^(?:[^",
    cc_multiline!(),
    space!(),
    "](?:[^",
    cc_multiline!(),
    "]*[^",
    cc_multiline!(),
    space!(),
    "])?)?$"
);
/// A string without white space or control characters (URLs, codes).
pub const NO_SPACE: &str = concat!("[^", cc!(), space!(), "]");

/// Fields (by their JSON name) whose text may span lines: line feed, carriage return and tab
/// are allowed there, and nowhere else.
pub const MULTILINE_FIELDS: &[&str] = &["bio", "disposal", "donts", "question", "answer", "schedule", "rule"];

/// Whether `field` is free text that may hold line breaks and tabs.
pub fn is_multiline(field: &str) -> bool {
    let name = field.rsplit('.').next().unwrap_or(field);
    let name = name.split('[').next().unwrap_or(name);
    MULTILINE_FIELDS.contains(&name)
}

/// The problem with `value` in `field`, if it holds a control character the rule refuses.
pub fn check(field: &str, value: &str) -> Option<FieldError> {
    let allowed = |c: char| is_multiline(field) && matches!(c, '\n' | '\r' | '\t');
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

    fn matches(pattern: &str, value: &str) -> bool {
        jsonschema::is_valid(&json!({"type": "string", "pattern": pattern}), &json!(value))
    }

    #[test]
    fn the_published_patterns_say_what_check_says() {
        let samples = [
            "",
            "plain",
            "한글 이름",
            "tab\there",
            "line\nbreak",
            "cr\r",
            "nul\u{0}",
            "esc\u{1b}",
            "del\u{7f}",
            "c1\u{85}",
            "c1\u{9f}",
            "nbsp\u{a0}",
            " lead",
            "trail ",
            "\u{3000}ideographic",
            "x\u{2028}",
            "\t",
        ];
        for value in samples {
            assert_eq!(matches(SINGLE_LINE, value), check("name", value).is_none(), "single line: {value:?}");
            assert_eq!(matches(MULTI_LINE, value), check("bio", value).is_none(), "multi line: {value:?}");
            let trimmed = check("name", value).is_none() && value.trim() == value;
            assert_eq!(matches(TRIMMED_SINGLE_LINE, value), trimmed, "trimmed: {value:?}");
            let trimmed_multi = check("bio", value).is_none() && value.trim() == value;
            assert_eq!(matches(TRIMMED_MULTI_LINE, value), trimmed_multi, "trimmed multi: {value:?}");
        }
    }

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
