//! Social login: reading providers' identities and deciding whether to link or create.

use events::Provider;
use uuid::Uuid;

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
