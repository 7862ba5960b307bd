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

/// A scan as the app sent it.
#[derive(Debug, Clone)]
pub struct ScanInput {
    /// What the classifier decided.
    pub category: events::Category,
    /// The item.
    pub item_name: String,
    /// Classifier confidence, 0 to 1.
    pub confidence: Option<f64>,
    /// SHA-256 of the image, hex.
    pub image_sha256: Option<String>,
    /// When it was taken; defaults to now.
    pub scanned_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// How far in the past a scan may be reported (offline phones sync late).
pub const SCAN_MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// Clock skew tolerated for `scanned_at` in the future.
pub const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Checks a scan and returns its `scan.recorded` event.
pub fn record_scan(
    user_id: Uuid,
    scan_id: Uuid,
    input: ScanInput,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<EventData, Vec<Invalid>> {
    let mut problems = Vec::new();
    let item_name = input.item_name.trim().to_owned();
    if item_name.is_empty() || item_name.chars().count() > 200 {
        problems.push(invalid("item_name", "must be 1 to 200 characters long"));
    }
    if let Some(c) = input.confidence
        && !(0.0..=1.0).contains(&c)
    {
        problems.push(invalid("confidence", "must be between 0 and 1"));
    }
    let image_sha256 = input.image_sha256.map(|h| h.trim().to_ascii_lowercase());
    if let Some(h) = &image_sha256
        && !(h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        problems.push(invalid("image_sha256", "must be the 64 hex digits of a SHA-256"));
    }
    let scanned_at = input.scanned_at.unwrap_or(now);
    if scanned_at > now + CLOCK_SKEW {
        problems.push(invalid("scanned_at", "must not be in the future"));
    } else if scanned_at < now - SCAN_MAX_AGE {
        problems.push(invalid("scanned_at", "must be within the last 7 days"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(events::ScanRecorded {
        scan_id,
        user_id,
        category: input.category,
        item_name,
        confidence: input.confidence,
        image_sha256,
        scanned_at: chrono::SubsecRound::trunc_subsecs(scanned_at, 6),
    }
    .into())
}

/// A recycle as the app sent it.
#[derive(Debug, Clone)]
pub struct RecycleInput {
    /// What was recycled.
    pub category: events::Category,
    /// The bin used.
    pub bin_id: Option<Uuid>,
    /// The center used.
    pub center_id: Option<Uuid>,
    /// Where.
    pub latitude: Option<f64>,
    /// Where.
    pub longitude: Option<f64>,
}

/// Checks a recycle and returns its `recycle.completed` event.
pub fn complete_recycle(user_id: Uuid, recycle_id: Uuid, input: RecycleInput) -> Result<EventData, Vec<Invalid>> {
    let mut problems = Vec::new();
    match (input.latitude, input.longitude) {
        (Some(lat), Some(lon)) => {
            if !(-90.0..=90.0).contains(&lat) {
                problems.push(invalid("latitude", "must be between -90 and 90"));
            }
            if !(-180.0..=180.0).contains(&lon) {
                problems.push(invalid("longitude", "must be between -180 and 180"));
            }
        }
        (None, None) => {}
        (Some(_), None) => problems.push(invalid("longitude", "is required with latitude")),
        (None, Some(_)) => problems.push(invalid("latitude", "is required with longitude")),
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(events::RecycleCompleted {
        recycle_id,
        user_id,
        category: input.category,
        bin_id: input.bin_id,
        center_id: input.center_id,
        location: input
            .latitude
            .zip(input.longitude)
            .map(|(latitude, longitude)| events::GeoPoint { latitude, longitude }),
    }
    .into())
}

/// The daily check-in: the local date of `now` in the app's time zone. Whether the user already
/// checked in that day is the write model's unique key, not this function's business.
pub fn check_in(user_id: Uuid, now: chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz) -> EventData {
    events::AttendanceCheckedIn { user_id, date: now.with_timezone(&tz).date_naive() }.into()
}

/// Registration with an invite code: the invitee's `user.registered` names the inviter, and an
/// `invite.accepted` pays the inviter. Refuses a code that would make a user invite themselves.
pub fn accept_invite(account: &mut NewAccount, inviter_id: Uuid) -> Result<(), Vec<Invalid>> {
    if inviter_id == account.user_id {
        return Err(vec![invalid("invite_code", "you cannot invite yourself")]);
    }
    for e in &mut account.events {
        if let EventData::UserRegistered(r) = e {
            r.invited_by = Some(inviter_id);
        }
    }
    account.events.push(events::InviteAccepted { inviter_id, invitee_id: account.user_id }.into());
    Ok(())
}

#[cfg(test)]
mod gamification_tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn scan(at: Option<chrono::DateTime<Utc>>) -> ScanInput {
        ScanInput {
            category: events::Category::Plastic,
            item_name: " PET bottle ".into(),
            confidence: Some(0.9),
            image_sha256: Some("AB".repeat(32)),
            scanned_at: at,
        }
    }

    #[test]
    fn a_scan_is_normalised_and_stamped() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap();
        let EventData::ScanRecorded(e) = record_scan(Uuid::nil(), Uuid::nil(), scan(None), now).unwrap() else {
            panic!()
        };
        assert_eq!(e.item_name, "PET bottle");
        assert_eq!(e.image_sha256.as_deref(), Some("ab".repeat(32).as_str()));
        assert_eq!(e.scanned_at, now);
    }

    #[test]
    fn scans_from_the_future_or_long_ago_are_refused() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap();
        let future = record_scan(Uuid::nil(), Uuid::nil(), scan(Some(now + chrono::TimeDelta::hours(1))), now);
        assert_eq!(future.unwrap_err()[0].field, "scanned_at");
        let old = record_scan(Uuid::nil(), Uuid::nil(), scan(Some(now - chrono::TimeDelta::days(8))), now);
        assert_eq!(old.unwrap_err()[0].message, "must be within the last 7 days");
        let mut bad = scan(None);
        bad.confidence = Some(1.2);
        bad.image_sha256 = Some("xyz".into());
        let fields: Vec<_> =
            record_scan(Uuid::nil(), Uuid::nil(), bad, now).unwrap_err().iter().map(|p| p.field).collect();
        assert_eq!(fields, ["confidence", "image_sha256"]);
    }

    #[test]
    fn a_recycle_needs_both_coordinates_or_none() {
        let input = RecycleInput {
            category: events::Category::Glass,
            bin_id: None,
            center_id: None,
            latitude: Some(37.5),
            longitude: None,
        };
        assert_eq!(complete_recycle(Uuid::nil(), Uuid::nil(), input).unwrap_err()[0].field, "longitude");
    }

    #[test]
    fn check_in_uses_the_local_date_of_the_app_time_zone() {
        // 2026-11-22 15:30 UTC is already 2026-11-23 00:30 in Seoul.
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 15, 30, 0).unwrap();
        let EventData::AttendanceCheckedIn(e) = check_in(Uuid::nil(), now, chrono_tz::Asia::Seoul) else { panic!() };
        assert_eq!(e.date.to_string(), "2026-11-23");
    }

    #[test]
    fn an_invite_names_the_inviter_and_pays_them() {
        let mut account = register(
            &Registration {
                username: "jun".into(),
                email: "j@x.io".into(),
                password: "recycle2026".into(),
                nickname: None,
            },
            Uuid::now_v7(),
        )
        .unwrap();
        let inviter = Uuid::now_v7();
        accept_invite(&mut account, inviter).unwrap();
        assert!(matches!(&account.events[0], EventData::UserRegistered(r) if r.invited_by == Some(inviter)));
        assert!(matches!(&account.events[1], EventData::InviteAccepted(i) if i.inviter_id == inviter));
        let own = account.user_id;
        assert_eq!(accept_invite(&mut account, own).unwrap_err()[0].field, "invite_code");
    }
}

/// What a presented refresh token's record says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshRecord {
    /// When it was spent by a refresh, if it was.
    pub spent_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When its family was revoked, if it was.
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What to do with a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Spend it and issue the next token of the family.
    Rotate,
    /// Spent a moment ago (a concurrent refresh of the same app): issue another pair in the
    /// family without revoking anything.
    Grace,
    /// Spent earlier: someone replays a stolen token. Revoke the whole family.
    Reuse,
    /// The family was revoked (logout, reuse, password change).
    Revoked,
}

/// Judges a refresh (rotation with reuse detection); `grace` is how long a spent token is still
/// honoured.
pub fn judge_refresh(
    record: RefreshRecord,
    now: chrono::DateTime<chrono::Utc>,
    grace: chrono::TimeDelta,
) -> RefreshDecision {
    match record {
        RefreshRecord { revoked_at: Some(_), .. } => RefreshDecision::Revoked,
        RefreshRecord { spent_at: None, .. } => RefreshDecision::Rotate,
        RefreshRecord { spent_at: Some(at), .. } if now - at <= grace => RefreshDecision::Grace,
        RefreshRecord { spent_at: Some(_), .. } => RefreshDecision::Reuse,
    }
}

#[cfg(test)]
mod refresh_tests {
    use chrono::{TimeDelta, Utc};

    use super::*;

    const GRACE: TimeDelta = TimeDelta::seconds(10);

    #[test]
    fn a_spent_token_is_honoured_briefly_then_treated_as_stolen() {
        let now = Utc::now();
        let fresh = RefreshRecord { spent_at: None, revoked_at: None };
        assert_eq!(judge_refresh(fresh, now, GRACE), RefreshDecision::Rotate);
        let just_spent = RefreshRecord { spent_at: Some(now - TimeDelta::seconds(2)), revoked_at: None };
        assert_eq!(judge_refresh(just_spent, now, GRACE), RefreshDecision::Grace);
        let long_spent = RefreshRecord { spent_at: Some(now - TimeDelta::minutes(5)), revoked_at: None };
        assert_eq!(judge_refresh(long_spent, now, GRACE), RefreshDecision::Reuse);
        let revoked = RefreshRecord { spent_at: None, revoked_at: Some(now) };
        assert_eq!(judge_refresh(revoked, now, GRACE), RefreshDecision::Revoked);
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
    Ok(events::UserProfileUpdated { nickname, bio, avatar_url }.into())
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
        assert!(matches!(ok, EventData::UserProfileUpdated(p) if p.bio.as_deref() == Some("") && p.nickname.is_none()));
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

/// A person as a social-login provider describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// Which provider.
    pub provider: Provider,
    /// The provider's stable id of the person.
    pub subject: String,
    /// Their e-mail address, if shared.
    pub email: Option<String>,
    /// Whether the provider vouches for the address.
    pub email_verified: bool,
    /// A display name, if shared.
    pub nickname: Option<String>,
}

/// Reads Google's OpenID Connect user info.
pub fn google_identity(info: &serde_json::Value) -> Result<ExternalIdentity, String> {
    let subject = info["sub"].as_str().filter(|s| !s.is_empty()).ok_or("user info has no `sub`")?;
    Ok(ExternalIdentity {
        provider: Provider::Google,
        subject: subject.to_owned(),
        email: info["email"].as_str().map(str::to_lowercase),
        email_verified: info["email_verified"].as_bool() == Some(true),
        nickname: info["name"].as_str().map(str::to_owned),
    })
}

/// Reads Kakao's `/v2/user/me`. Kakao vouches for an address only when both
/// `is_email_valid` and `is_email_verified` are true.
pub fn kakao_identity(info: &serde_json::Value) -> Result<ExternalIdentity, String> {
    let subject = info["id"].as_i64().map(|id| id.to_string()).ok_or("user info has no numeric `id`")?;
    let account = &info["kakao_account"];
    Ok(ExternalIdentity {
        provider: Provider::Kakao,
        subject,
        email: account["email"].as_str().map(str::to_lowercase),
        email_verified: account["is_email_valid"].as_bool() == Some(true)
            && account["is_email_verified"].as_bool() == Some(true),
        nickname: account["profile"]["nickname"]
            .as_str()
            .or(info["properties"]["nickname"].as_str())
            .map(str::to_owned),
    })
}

/// What a social login does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocialLink {
    /// This identity is already linked: sign in that user.
    SignIn(Uuid),
    /// An account has this address and the provider vouches for it: link, then sign in.
    LinkTo(Uuid),
    /// A new account.
    Create,
}

/// Decides a social login from who owns the identity and who owns its address. An address the
/// provider does not vouch for never links to an existing account (that would let anyone who
/// types someone's address at a provider take over their account).
pub fn decide_social_link(
    identity_owner: Option<Uuid>,
    email_owner: Option<Uuid>,
    identity: &ExternalIdentity,
) -> SocialLink {
    match (identity_owner, email_owner) {
        (Some(owner), _) => SocialLink::SignIn(owner),
        (None, Some(owner)) if identity.email_verified => SocialLink::LinkTo(owner),
        _ => SocialLink::Create,
    }
}

/// A username for a new social account: the nickname's safe characters (or the provider), and
/// a suffix from the subject so it is unique.
pub fn social_username(identity: &ExternalIdentity, salt: &str) -> String {
    let base: String = identity
        .nickname
        .as_deref()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(20)
        .collect();
    let base = if base.len() < 3 { format!("{:?}", identity.provider).to_lowercase() } else { base };
    format!("{base}_{}", &salt[..8.min(salt.len())])
}

#[cfg(test)]
mod social_tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn kakao_vouches_only_when_the_address_is_both_valid_and_verified() {
        let info = |valid: bool, verified: bool| json!({"id": 12345, "kakao_account": {"email": "Mina@Kakao.com", "is_email_valid": valid, "is_email_verified": verified, "profile": {"nickname": "미나"}}});
        let id = kakao_identity(&info(true, true)).unwrap();
        assert_eq!(
            (id.subject.as_str(), id.email.as_deref(), id.email_verified),
            ("12345", Some("mina@kakao.com"), true)
        );
        assert!(!kakao_identity(&info(true, false)).unwrap().email_verified);
        assert!(!kakao_identity(&info(false, true)).unwrap().email_verified);
        assert!(kakao_identity(&json!({"kakao_account": {}})).is_err());
    }

    #[test]
    fn an_unverified_address_never_links_to_an_existing_account() {
        let owner = Uuid::now_v7();
        let mut id = google_identity(&json!({"sub": "g-1", "email": "x@y.io", "email_verified": false})).unwrap();
        assert_eq!(decide_social_link(None, Some(owner), &id), SocialLink::Create);
        id.email_verified = true;
        assert_eq!(decide_social_link(None, Some(owner), &id), SocialLink::LinkTo(owner));
        let linked = Uuid::now_v7();
        assert_eq!(decide_social_link(Some(linked), Some(owner), &id), SocialLink::SignIn(linked));
    }

    #[test]
    fn social_usernames_are_safe() {
        let id = ExternalIdentity {
            provider: Provider::Kakao,
            subject: "1".into(),
            email: None,
            email_verified: false,
            nickname: Some("미나".into()),
        };
        assert_eq!(social_username(&id, "abcdef123"), "kakao_abcdef12");
    }
}
