//! The mail worker: sends what command-api queued in `auth.mail_outbox`, announced by
//! `mail.requested` events.
//!
//! Idempotent: a message is sent only while its row has no `sent_at`, and the row is stamped
//! (and its address and link wiped) in the transaction that records the event as handled. A
//! crash between the SMTP hand-off and the commit can send a message twice, never zero times:
//! mail is at-least-once. A failing SMTP server makes the event go through the retry tiers.

use anyhow::Context;
use events::{Event, EventData, MailTemplate};
use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};
use platform::topology::{ConsumerSpec, MAILER};
use sqlx::PgConnection;

use crate::consumer::{ApplyError, Projector};

/// Where mail goes.
pub enum Transport {
    /// Logged (development): the link appears in the worker's log.
    Log,
    /// One `.eml` file per message in a directory.
    File(AsyncFileTransport<Tokio1Executor>),
    /// An SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl Transport {
    /// Parses `MAIL_TRANSPORT`: `log`, `file:DIR`, `smtp://[user:pass@]host:port` (plain, for
    /// local relays and test sinks) or `smtps://user:pass@host:port` (TLS).
    pub fn from_setting(value: &str) -> anyhow::Result<Self> {
        if value == "log" {
            return Ok(Self::Log);
        }
        if let Some(dir) = value.strip_prefix("file:") {
            std::fs::create_dir_all(dir).with_context(|| format!("creating mail directory {dir}"))?;
            return Ok(Self::File(AsyncFileTransport::new(dir)));
        }
        if value.starts_with("smtp://") || value.starts_with("smtps://") {
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(value)
                .context("MAIL_TRANSPORT is not a valid SMTP URL")?;
            return Ok(Self::Smtp(transport.build()));
        }
        anyhow::bail!("MAIL_TRANSPORT must be `log`, `file:DIR`, `smtp://…` or `smtps://…`, not `{value}`")
    }
}

/// Sends queued mail.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl Mailer {
    /// A mailer sending from `from` through `transport`.
    pub fn new(transport: Transport, from: &str) -> anyhow::Result<Self> {
        Ok(Self { transport, from: from.parse().context("MAIL_FROM is not an address")? })
    }

    async fn send(&self, message: Message) -> anyhow::Result<()> {
        match &self.transport {
            Transport::Log => {
                tracing::info!(message = %String::from_utf8_lossy(&message.formatted()), "mail (MAIL_TRANSPORT=log)");
                Ok(())
            }
            Transport::File(t) => t.send(message).await.map(|_| ()).context("writing mail file"),
            Transport::Smtp(t) => t.send(message).await.map(|_| ()).context("sending over SMTP"),
        }
    }
}

/// Subject and text of a template.
pub fn render(template: MailTemplate, link: &str) -> (String, String) {
    match template {
        MailTemplate::VerifyEmail => (
            "EcoEco 이메일 인증 / Confirm your e-mail address".into(),
            format!(
                "EcoEco에 오신 것을 환영합니다! 아래 링크를 눌러 이메일 주소를 인증해 주세요 (24시간 유효).\n\
                 Welcome to EcoEco! Confirm your e-mail address with this link (valid for 24 hours):\n\n{link}\n"
            ),
        ),
        MailTemplate::AccountExists => (
            "EcoEco 가입 시도 알림 / Someone tried to sign up with your address".into(),
            format!(
                "이 주소로 EcoEco 가입이 시도되었지만 이미 계정이 있습니다. 본인이라면 로그인하거나 비밀번호를 재설정하세요.\n\
                 Someone tried to create an EcoEco account with this address, which already has one. If it was you, \
                 sign in, or reset your password here:\n\n{link}\n"
            ),
        ),
        MailTemplate::ResetPassword => (
            "EcoEco 비밀번호 재설정 / Reset your password".into(),
            format!(
                "아래 링크에서 새 비밀번호를 설정하세요 (1시간 유효). 요청하지 않았다면 이 메일을 무시하세요.\n\
                 Set a new password with this link (valid for 1 hour). If you did not ask for it, ignore this mail.\n\n{link}\n"
            ),
        ),
    }
}

impl Projector for Mailer {
    fn spec(&self) -> &'static ConsumerSpec {
        &MAILER
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        let EventData::MailRequested(request) = &event.data else { return Ok(()) };
        /// A queued mail and whether it went out already.
        #[derive(sqlx::FromRow)]
        struct Queued {
            recipient: Option<String>,
            link: Option<String>,
            sent: bool,
        }
        let row: Option<Queued> = sqlx::query_as(
            "select recipient, link, sent_at is not null as sent from auth.mail_outbox where id = $1 for update",
        )
        .bind(request.mail_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (recipient, link) = match row {
            None => {
                return Err(ApplyError::Permanent {
                    code: "mail_not_found",
                    detail: format!("no queued mail {}", request.mail_id),
                });
            }
            Some(Queued { sent: true, .. }) => return Ok(()),
            Some(Queued { recipient: Some(recipient), link: Some(link), .. }) => (recipient, link),
            Some(_) => {
                return Err(ApplyError::Permanent {
                    code: "mail_incomplete",
                    detail: "queued mail has no recipient".into(),
                });
            }
        };
        let to: Mailbox =
            recipient.parse().map_err(|e| ApplyError::Permanent { code: "bad_recipient", detail: format!("{e}") })?;
        let (subject, body) = render(request.template, &link);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| ApplyError::Permanent { code: "unbuildable_mail", detail: e.to_string() })?;
        self.send(message).await.map_err(ApplyError::Transient)?;
        sqlx::query("update auth.mail_outbox set sent_at = now(), recipient = null, link = null where id = $1")
            .bind(request.mail_id)
            .execute(&mut *tx)
            .await?;
        tracing::info!(user.id = %request.user_id, template = ?request.template, "mail sent");
        Ok(())
    }
}

impl crate::registry::Build for Mailer {
    fn build(deps: &crate::registry::Deps) -> anyhow::Result<Self> {
        Self::new(Transport::from_setting(&deps.settings.mail_transport)?, &deps.settings.mail_from)
    }
}
