//! Command rules, as pure functions: given the command (and what they need of the current
//! state, passed in), they return the events to record or a domain error. No I/O, no clock.

use events::{EventData, Provider, UserRegistered};
use uuid::Uuid;

/// An invalid field of a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid { field, message: message.into() }
}

/// A local sign-up, as the client sent it.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Handle.
    pub username: String,
    /// E-mail address (never leaves command-api).
    pub email: String,
    /// Clear-text password, to be hashed.
    pub password: String,
    /// Display name; defaults to the username.
    pub nickname: Option<String>,
}

/// What registration decided: the normalised account and its events.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAccount {
    /// The new user's id.
    pub user_id: Uuid,
    /// Trimmed handle.
    pub username: String,
    /// Trimmed, lowercased e-mail.
    pub email: String,
    /// Display name.
    pub nickname: String,
    /// Events to record.
    pub events: Vec<EventData>,
}

/// Checks a sign-up and returns the account to create, or every problem with it at once.
pub fn register(input: &Registration, user_id: Uuid) -> Result<NewAccount, Vec<Invalid>> {
    let mut problems = Vec::new();
    let username = input.username.trim().to_owned();
    let email = input.email.trim().to_lowercase();
    let nickname = input.nickname.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or(&username).to_owned();

    let username_len = username.chars().count();
    if !(3..=32).contains(&username_len) {
        problems.push(invalid("username", "must be 3 to 32 characters long"));
    } else if !username.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
        problems.push(invalid("username", "may contain only letters, digits, `_` and `.`"));
    }
    if !is_plausible_email(&email) {
        problems.push(invalid("email", "must be an e-mail address like name@example.com"));
    }
    if let Err(message) = check_password(&input.password, &username, &email) {
        problems.push(invalid("password", message));
    }
    if nickname.chars().count() > 40 || nickname.chars().any(char::is_control) {
        problems.push(invalid("nickname", "must be at most 40 printable characters"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let event = UserRegistered {
        user_id,
        username: username.clone(),
        nickname: nickname.clone(),
        provider: Provider::Local,
        invited_by: None,
    };
    Ok(NewAccount { user_id, username, email, nickname, events: vec![event.into()] })
}

/// The password policy: 8 to 128 characters, at least one letter and one digit, and not the
/// username or the e-mail address.
pub fn check_password(password: &str, username: &str, email: &str) -> Result<(), &'static str> {
    let len = password.chars().count();
    if len < 8 {
        return Err("must be at least 8 characters long");
    }
    if len > 128 {
        return Err("must be at most 128 characters long");
    }
    if !password.chars().any(char::is_alphabetic) || !password.chars().any(|c| c.is_ascii_digit()) {
        return Err("must contain at least one letter and one digit");
    }
    let lower = password.to_lowercase();
    if lower == username.to_lowercase() || lower == email.to_lowercase() {
        return Err("must not be your username or e-mail address");
    }
    Ok(())
}

/// Syntax only (one `@`, a dotted domain, no spaces); ownership is proven by verification mail.
fn is_plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(username: &str, email: &str, password: &str) -> Registration {
        Registration { username: username.into(), email: email.into(), password: password.into(), nickname: None }
    }

    #[test]
    fn a_valid_sign_up_records_user_registered_without_the_email() {
        let id = Uuid::now_v7();
        let account = register(&input(" mina ", "Mina@Example.com", "recycle2026"), id).unwrap();
        assert_eq!(account.username, "mina");
        assert_eq!(account.email, "mina@example.com");
        assert_eq!(account.nickname, "mina", "nickname defaults to the username");
        let [EventData::UserRegistered(e)] = account.events.as_slice() else { panic!("{:?}", account.events) };
        assert_eq!((e.user_id, e.provider), (id, Provider::Local));
        assert!(!format!("{:?}", account.events).contains("example.com"), "no e-mail in events");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errs = register(&input("x", "not-an-email", "short"), Uuid::now_v7()).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["username", "email", "password"]);
    }

    #[test]
    fn password_rules_say_what_is_missing() {
        assert_eq!(check_password("abcdefgh", "u", "e@x.io"), Err("must contain at least one letter and one digit"));
        assert_eq!(check_password("12345678", "u", "e@x.io"), Err("must contain at least one letter and one digit"));
        assert_eq!(
            check_password("mina2026", "Mina2026", "e@x.io"),
            Err("must not be your username or e-mail address")
        );
        assert_eq!(check_password(&"a1".repeat(65), "u", "e@x.io"), Err("must be at most 128 characters long"));
        assert_eq!(check_password("그린지구2026", "u", "e@x.io"), Ok(()));
    }

    #[test]
    fn usernames_are_restricted_to_a_safe_alphabet() {
        let errs = register(&input("mina kim", "m@x.io", "recycle2026"), Uuid::now_v7()).unwrap_err();
        assert_eq!(errs[0].field, "username");
    }
}
