//! Queueing mail: a single-use link token when the template carries one (only its SHA-256 is
//! stored), the message in the private outbox, and the `mail.requested` event to append in the
//! caller's transaction (the mail worker sends it).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use events::{Event, MailRequested, MailTemplate};
use platform::error::ApiError;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{AppState, SOURCE};

/// Verification links live a day.
const VERIFY_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// Reset links live an hour.
const RESET_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// The token purpose, link path and lifetime of a template; `None` purpose for mail without a
/// token.
fn purpose(template: MailTemplate) -> (Option<&'static str>, &'static str, chrono::TimeDelta) {
    match template {
        MailTemplate::VerifyEmail => (Some("verify_email"), "verify-email", VERIFY_TTL),
        MailTemplate::ResetPassword => (Some("reset_password"), "reset-password", RESET_TTL),
        MailTemplate::AccountExists => (None, "forgot-password", chrono::TimeDelta::zero()),
    }
}

/// Creates a token for `user` (when the template carries one), queues the message, and
/// returns the event to append in the caller's transaction.
pub async fn queue_mail(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    user_id: Uuid,
    recipient: &str,
    template: MailTemplate,
    request_id: Uuid,
) -> Result<Event, ApiError> {
    let (purpose, path, ttl) = purpose(template);
    let link = match purpose {
        Some(purpose) => {
            let mut raw = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            let token = URL_SAFE_NO_PAD.encode(raw);
            sqlx::query(
                "insert into auth.email_tokens (token_hash, user_id, purpose, expires_at) values ($1, $2, $3, $4)",
            )
            .bind(Sha256::digest(token.as_bytes()).to_vec())
            .bind(user_id)
            .bind(purpose)
            .bind(chrono::Utc::now() + ttl)
            .execute(&mut *tx)
            .await?;
            format!("{}/{path}?token={token}", state.settings.app_base_url)
        }
        None => format!("{}/{path}", state.settings.app_base_url),
    };
    let mail_id = Uuid::now_v7();
    sqlx::query("insert into auth.mail_outbox (id, user_id, recipient, template, link) values ($1, $2, $3, $4, $5)")
        .bind(mail_id)
        .bind(user_id)
        .bind(recipient)
        .bind(format!("{template:?}"))
        .bind(link)
        .execute(&mut *tx)
        .await?;
    Ok(Event::new(SOURCE, user_id, MailRequested { mail_id, user_id, template }.into())
        .caused_by(Some(request_id), None))
}
