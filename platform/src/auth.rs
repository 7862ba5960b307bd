//! Access and refresh tokens: Ed25519-signed JWTs (`alg: EdDSA`) with a `kid`, verified by
//! every API against the public keys it is configured with and published as a JWKS.
//!
//! Asymmetric keys let other services verify tokens without sharing a secret. The `kid` is the
//! RFC 7638 thumbprint of the public key, so it is stable and needs no configuration.

use std::sync::Arc;

use anyhow::{Context, bail};
use axum::{extract::FromRef, extract::FromRequestParts, http::request::Parts};
use base64::{Engine, engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{denylist::Denylist, error::ApiError};

pub use crate::devkeys::{DEV_PRIVATE_KEY_PEM, DEV_PUBLIC_KEY_PEM};
pub use crate::error::TokenError;

/// Clock skew tolerated on `exp`: a token is accepted until 30 s after it expires, so anything
/// that must refuse it (the denylist) must hold it that long too.
pub const LEEWAY_SECS: i64 = 30;

/// Access tokens live 30 minutes.
pub const ACCESS_TOKEN_TTL_SECS: i64 = 30 * 60;
/// Refresh tokens live 7 days.
pub const REFRESH_TOKEN_TTL_SECS: i64 = 7 * 24 * 60 * 60;

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// Calls the APIs.
    Access,
    /// Obtains a new token pair.
    Refresh,
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Role {
    /// Everyone.
    User,
    /// Operators of the content and of bonuses.
    Admin,
}

/// The claims of DESIGN §3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The user's handle.
    pub username: String,
    /// The user's role.
    pub role: Role,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Unique token id; logout refuses it from then on.
    pub jti: Uuid,
    /// Access or refresh.
    #[serde(rename = "type")]
    pub token_type: TokenType,
    /// The sign-in session (refresh-token family) the token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
}

impl Claims {
    /// Claims for a new token of `token_type` issued now.
    pub fn new(sub: Uuid, username: &str, role: Role, token_type: TokenType) -> Self {
        let now = chrono::Utc::now().timestamp();
        let ttl = match token_type {
            TokenType::Access => ACCESS_TOKEN_TTL_SECS,
            TokenType::Refresh => REFRESH_TOKEN_TTL_SECS,
        };
        Self {
            sub,
            username: username.to_owned(),
            role,
            exp: now + ttl,
            iat: now,
            jti: Uuid::now_v7(),
            token_type,
            sid: None,
        }
    }
}

struct PublicKey {
    kid: String,
    x: String,
    decoding: DecodingKey,
}

/// Verifies tokens against one or more Ed25519 public keys, chosen by `kid`.
///
/// Signatures already checked are remembered ([`VERIFIED_CACHE_ENTRIES`] tokens, by their
/// exact text): an Ed25519 verification costs tens of microseconds of CPU on every request,
/// and a token's claims cannot change. A remembered token is still checked for expiry and
/// type on every use, and revocation is the denylist's, checked per request by the extractors.
pub struct Verifier {
    keys: Vec<PublicKey>,
    validation: Validation,
    verified: quick_cache::sync::Cache<String, Claims>,
}

/// Verified tokens remembered per process (about 500 bytes each).
pub const VERIFIED_CACHE_ENTRIES: usize = 4096;

impl Verifier {
    /// Reads every `PUBLIC KEY` PEM block of `pem_bundle`; the first is the current key.
    pub fn from_pem_bundle(pem_bundle: &str) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        for block in pem_blocks(pem_bundle, "PUBLIC KEY") {
            let der = STANDARD.decode(&block).context("JWT public key is not valid base64 PEM")?;
            // An Ed25519 SubjectPublicKeyInfo is a fixed 12-byte prefix and the 32-byte key.
            const PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
            if der.len() != 44 || der[..12] != PREFIX {
                bail!("JWT public key must be an Ed25519 SubjectPublicKeyInfo PEM");
            }
            let x = URL_SAFE_NO_PAD.encode(&der[12..]);
            let thumbprint = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
            let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint.as_bytes()));
            let decoding = DecodingKey::from_ed_components(&x).context("JWT public key")?;
            keys.push(PublicKey { kid, x, decoding });
        }
        if keys.is_empty() {
            bail!("JWT_PUBLIC_KEY holds no `-----BEGIN PUBLIC KEY-----` block");
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS as u64;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        Ok(Self { keys, validation, verified: quick_cache::sync::Cache::new(VERIFIED_CACHE_ENTRIES) })
    }

    /// The `kid` of the current key.
    pub fn current_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// Checks signature, expiry and type.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, TokenError> {
        let claims = match self.verified.get(token) {
            Some(claims) => {
                let leeway = self.validation.leeway as i64;
                if claims.exp + leeway < chrono::Utc::now().timestamp() {
                    self.verified.remove(token);
                    return Err(TokenError::Expired);
                }
                claims
            }
            None => {
                let claims = self.check_signature(token)?;
                self.verified.insert(token.to_owned(), claims.clone());
                claims
            }
        };
        if claims.token_type != expected {
            return Err(TokenError::WrongType);
        }
        Ok(claims)
    }

    /// Checks signature and expiry.
    fn check_signature(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.keys.iter().find(|k| k.kid == kid).ok_or(TokenError::UnknownKey)?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?
            .claims;
        Ok(claims)
    }

    /// The JSON Web Key Set of every accepted key.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self
            .keys
            .iter()
            .map(|k| serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": k.kid, "x": k.x}))
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

/// Signs tokens with the private key; its `kid` is the first public key's.
pub struct Signer {
    kid: String,
    encoding: EncodingKey,
}

impl Signer {
    /// Loads the private key and proves it matches the verifier's current public key.
    pub fn new(private_pem: &str, verifier: &Verifier) -> anyhow::Result<Self> {
        let encoding = EncodingKey::from_ed_pem(private_pem.as_bytes())
            .context("JWT_PRIVATE_KEY must be an Ed25519 PKCS#8 PEM")?;
        let signer = Self { kid: verifier.current_kid().to_owned(), encoding };
        let probe = signer.sign(&Claims::new(Uuid::nil(), "probe", Role::User, TokenType::Access))?;
        verifier
            .verify(&probe, TokenType::Access)
            .map_err(|_| anyhow::anyhow!("JWT_PRIVATE_KEY does not match the first key of JWT_PUBLIC_KEY"))?;
        Ok(signer)
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).context("signing a token")
    }
}

fn pem_blocks(bundle: &str, label: &str) -> Vec<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut blocks = Vec::new();
    let mut rest = bundle;
    while let Some(start) = rest.find(&begin) {
        let body = &rest[start + begin.len()..];
        let Some(stop) = body.find(&end) else { break };
        blocks.push(body[..stop].split_whitespace().collect());
        rest = &body[stop + end.len()..];
    }
    blocks
}

/// An access token the rate limiter already verified for this request (a request extension,
/// which only server middleware can set), so [`AuthUser`] does not verify it again.
#[derive(Debug, Clone)]
pub struct VerifiedAccess(pub Claims);

/// The token of an `Authorization: Bearer …` header, if the request has one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

/// The authenticated caller of a request: extracting it verifies the bearer access token.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Claims);

impl<S> FromRequestParts<S> for AuthUser
where
    Arc<Verifier>: FromRef<S>,
    Denylist: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or(TokenError::Missing)?;
        let claims = match parts.extensions.get::<VerifiedAccess>() {
            Some(VerifiedAccess(claims)) => claims.clone(),
            None => Arc::<Verifier>::from_ref(state).verify(token, TokenType::Access)?,
        };
        if Denylist::from_ref(state).is_revoked(claims.jti).await? {
            return Err(TokenError::Revoked.into());
        }
        Ok(Self(claims))
    }
}

/// An authenticated caller with the admin role. Extract it before the body: a caller without
/// the role is refused with 403 before anything they sent is read or validated.
#[derive(Debug, Clone)]
pub struct AdminUser(pub Claims);

impl<S> FromRequestParts<S> for AdminUser
where
    Arc<Verifier>: FromRef<S>,
    Denylist: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let AuthUser(claims) = AuthUser::from_request_parts(parts, state).await?;
        if claims.role != Role::Admin {
            return Err(ApiError::Forbidden("This needs the admin role.".into()));
        }
        Ok(Self(claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> (Verifier, Signer) {
        let v = Verifier::from_pem_bundle(DEV_PUBLIC_KEY_PEM).unwrap();
        let s = Signer::new(DEV_PRIVATE_KEY_PEM, &v).unwrap();
        (v, s)
    }

    #[test]
    fn a_signed_token_verifies_and_carries_its_claims() {
        let (v, s) = dev();
        let claims = Claims::new(Uuid::now_v7(), "mina", Role::Admin, TokenType::Access);
        let token = s.sign(&claims).unwrap();
        assert_eq!(v.verify(&token, TokenType::Access).unwrap(), claims);
        assert_eq!(v.verify(&token, TokenType::Refresh).unwrap_err(), TokenError::WrongType);
    }

    #[test]
    fn tampered_expired_and_foreign_tokens_are_refused() {
        let (v, s) = dev();
        let mut claims = Claims::new(Uuid::now_v7(), "mina", Role::User, TokenType::Access);
        let token = s.sign(&claims).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        payload["role"] = "admin".into();
        parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
        assert_eq!(v.verify(&parts.join("."), TokenType::Access).unwrap_err(), TokenError::Invalid);

        claims.exp = chrono::Utc::now().timestamp() - 120;
        let expired = s.sign(&claims).unwrap();
        assert_eq!(v.verify(&expired, TokenType::Access).unwrap_err(), TokenError::Expired);

        let other = Verifier::from_pem_bundle("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----").unwrap();
        assert_eq!(other.verify(&token, TokenType::Access).unwrap_err(), TokenError::UnknownKey);
        assert_eq!(v.verify("not.a.jwt", TokenType::Access).unwrap_err(), TokenError::Invalid);
    }

    #[test]
    fn a_remembered_token_is_still_checked_for_type_and_expiry() {
        let (v, s) = dev();
        let mut claims = Claims::new(Uuid::now_v7(), "mina", Role::User, TokenType::Access);
        let token = s.sign(&claims).unwrap();
        assert_eq!(v.verify(&token, TokenType::Access).unwrap(), claims);
        assert_eq!(v.verify(&token, TokenType::Access).unwrap(), claims, "from memory");
        assert_eq!(v.verify(&token, TokenType::Refresh).unwrap_err(), TokenError::WrongType);
        // As if the remembered token's time had run out.
        claims.exp = chrono::Utc::now().timestamp() - 120;
        v.verified.insert(token.clone(), claims);
        assert_eq!(v.verify(&token, TokenType::Access).unwrap_err(), TokenError::Expired);
    }

    #[test]
    fn jwks_lists_every_key_with_its_kid() {
        let bundle = format!(
            "{DEV_PUBLIC_KEY_PEM}\n-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"
        );
        let v = Verifier::from_pem_bundle(&bundle).unwrap();
        let jwks = v.jwks();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        assert_eq!(jwks["keys"][0]["kid"], v.current_kid());
        assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    }

    #[test]
    fn a_private_key_that_does_not_match_is_refused() {
        let other = Verifier::from_pem_bundle("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----").unwrap();
        assert!(Signer::new(DEV_PRIVATE_KEY_PEM, &other).is_err());
    }
}
