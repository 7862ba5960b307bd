//! The development key pair, committed so a fresh clone runs (settings default to it;
//! `APP_ENV=production` refuses it).

/// The development signing key (Ed25519, PKCS#8 PEM).
pub const DEV_PRIVATE_KEY_PEM: &str = include_str!("../dev-keys/jwt-dev-private.pem");
/// The public half of [`DEV_PRIVATE_KEY_PEM`].
pub const DEV_PUBLIC_KEY_PEM: &str = include_str!("../dev-keys/jwt-dev-public.pem");
