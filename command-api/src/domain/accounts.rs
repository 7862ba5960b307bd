//! Accounts: sign-up, the password policy, profile and settings changes.

use events::{EventData, Provider, UserRegistered};
use uuid::Uuid;

use super::{Invalid, invalid};

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
        username: username.as_str().into(),
        nickname: nickname.as_str().into(),
        provider: Provider::Local,
        invited_by: None,
    };
    Ok(NewAccount { user_id, username, email, nickname, events: vec![event.into()] })
}

/// The password policy: 8 to 128 characters, and not the username or the e-mail address.
/// No composition rule (letters, digits, symbols): NIST SP 800-63B §3.1.1.2 advises against
/// them, and a rule a JSON Schema cannot state portably would leave the published contract
/// looser than the server (DESIGN decisions).
pub fn check_password(password: &str, username: &str, email: &str) -> Result<(), &'static str> {
    let len = password.chars().count();
    if len < 8 {
        return Err("must be at least 8 characters long");
    }
    if len > 128 {
        return Err("must be at most 128 characters long");
    }
    let lower = password.to_lowercase();
    if lower == username.to_lowercase() || lower == email.to_lowercase() {
        return Err("must not be your username or e-mail address");
    }
    Ok(())
}

pub use events::rules::invite_code;

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
        assert_eq!(check_password("abc1234", "u", "e@x.io"), Err("must be at least 8 characters long"));
        assert_eq!(check_password("비밀번호는길어요", "u", "e@x.io"), Ok(()));
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

/// Profile fields a user changes; `None` leaves a field as it is, `""` clears bio or avatar.
#[derive(Debug, Clone, Default)]
pub struct ProfileChanges {
    /// Display name.
    pub nickname: Option<String>,
    /// About me.
    pub bio: Option<String>,
    /// Picture URL (`https://` or `http://`), or empty.
    pub avatar_url: Option<String>,
}

/// Checks a profile change and returns its `user.profile_updated` event.
pub fn update_profile(changes: ProfileChanges) -> Result<EventData, Vec<Invalid>> {
    let mut problems = Vec::new();
    let nickname = changes.nickname.map(|n| n.trim().to_owned());
    if let Some(n) = &nickname
        && (n.is_empty() || n.chars().count() > 40 || n.chars().any(char::is_control))
    {
        problems.push(invalid("nickname", "must be 1 to 40 printable characters"));
    }
    let bio = changes.bio.map(|b| b.trim().to_owned());
    if bio.as_ref().is_some_and(|b| b.chars().count() > 500) {
        problems.push(invalid("bio", "must be at most 500 characters long"));
    }
    let avatar_url = changes.avatar_url.map(|a| a.trim().to_owned());
    if let Some(a) = &avatar_url
        && !a.is_empty()
        && (a.chars().count() > 2048
            || !(a.starts_with("https://") || a.starts_with("http://"))
            || a.contains(char::is_whitespace))
    {
        problems.push(invalid("avatar_url", "must be an http(s) URL of at most 2048 characters, or empty"));
    }
    if nickname.is_none() && bio.is_none() && avatar_url.is_none() {
        problems.push(invalid("body", "change at least one of nickname, bio, avatar_url"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(events::UserProfileUpdated {
        nickname: nickname.map(Into::into),
        bio: bio.map(Into::into),
        avatar_url: avatar_url.map(Into::into),
    }
    .into())
}

/// Languages the app is translated into.
pub const LANGUAGES: [&str; 2] = ["ko", "en"];
/// Themes the app has.
pub const THEMES: [&str; 3] = ["light", "dark", "system"];

/// Checks a settings change and returns its `user.settings_updated` event.
pub fn update_settings(
    notification_enabled: Option<bool>,
    language: Option<String>,
    theme: Option<String>,
) -> Result<EventData, Vec<Invalid>> {
    let mut problems = Vec::new();
    if language.as_deref().is_some_and(|l| !LANGUAGES.contains(&l)) {
        problems.push(invalid("language", "must be one of ko, en"));
    }
    if theme.as_deref().is_some_and(|t| !THEMES.contains(&t)) {
        problems.push(invalid("theme", "must be one of light, dark, system"));
    }
    if notification_enabled.is_none() && language.is_none() && theme.is_none() {
        problems.push(invalid("body", "change at least one of notification_enabled, language, theme"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(events::UserSettingsUpdated { notification_enabled, language, theme }.into())
}

#[cfg(test)]
mod account_tests {
    use super::*;

    #[test]
    fn profile_changes_are_checked_and_empty_strings_clear() {
        let ok = update_profile(ProfileChanges { bio: Some(" ".into()), ..Default::default() }).unwrap();
        assert!(
            matches!(ok, EventData::UserProfileUpdated(p) if p.bio.as_ref().and_then(|b| b.as_open()) == Some("") && p.nickname.is_none())
        );
        let errs = update_profile(ProfileChanges {
            nickname: Some(String::new()),
            avatar_url: Some("javascript:alert(1)".into()),
            ..Default::default()
        })
        .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["nickname", "avatar_url"]);
        assert_eq!(update_profile(ProfileChanges::default()).unwrap_err()[0].field, "body");
    }

    #[test]
    fn settings_accept_only_known_values() {
        assert!(update_settings(Some(false), None, None).is_ok());
        let errs = update_settings(None, Some("fr".into()), Some("neon".into())).unwrap_err();
        assert_eq!(errs.len(), 2);
    }
}
