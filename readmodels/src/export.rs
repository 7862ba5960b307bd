//! Everything the service holds about a person, for `GET /users/me/export` (a right of access).
//!
//! The one read that spans both sides on purpose: besides the read models (profile, settings,
//! history, saved places) it reads what only the write side keeps about the person (the
//! account, linked sign-in providers, sessions, the points ledger, mail sent to them) and the
//! badges and characters awarded. Secrets
//! are left out: password hashes, token hashes, the links inside mail.
//!
//! The long lists (history and ledger) are streamed row by row ([`activities`], [`ledger`]);
//! the rest is small and read at once ([`head`]).

use chrono::{DateTime, NaiveDate, Utc};
use futures::Stream;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    activities::Activity,
    places::{self, SavedPlace},
    profiles::{self, Profile, Settings},
    rewards::{self, EarnedBadge, UnlockedCharacter},
};

/// The export's format name: a consumer can tell versions apart.
pub const FORMAT: &str = "ecoeco.export.v1";

/// The whole document (its schema; the server writes it in pieces).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Export {
    /// `ecoeco.export.v1`.
    pub format: String,
    /// When it was made.
    pub exported_at: DateTime<Utc>,
    /// The account.
    pub account: Account,
    /// Sign-in sessions (refresh tokens), newest first, as long as they are kept.
    pub sessions: Vec<Session>,
    /// Mail sent or queued to me, newest first, as long as it is kept (links left out: they hold
    /// tokens).
    pub mail: Vec<Mail>,
    /// My public profile; `null` before it is projected.
    pub profile: Option<Profile>,
    /// My settings; `null` before they are projected.
    pub settings: Option<Settings>,
    /// My saved places.
    pub saved_places: Vec<SavedPlace>,
    /// My badges, in the order I earned them.
    pub badges: Vec<EarnedBadge>,
    /// My unlocked characters, in the order I unlocked them.
    pub characters: Vec<UnlockedCharacter>,
    /// My push devices.
    pub devices: Vec<Device>,
    /// My uploaded avatar's files; `null` when the avatar was never uploaded (or was replaced
    /// by a URL set by hand).
    pub avatar: Option<UploadedAvatar>,
    /// My in-app notifications, newest first (kind and data; the texts are rendered when read).
    pub notifications: Vec<NotificationRecord>,
    /// My whole activity history, newest first.
    pub activities: Vec<Activity>,
    /// Every point awarded to me, newest first.
    pub points_ledger: Vec<LedgerEntry>,
}

/// The account as the write side keeps it.
#[derive(Debug, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Account {
    /// User id.
    pub id: Uuid,
    /// Handle.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// When the address was verified; `null` while it is not.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// `user` or `admin`.
    pub role: String,
    /// Whether a password is set (accounts made by social login may have none).
    pub has_password: bool,
    /// My invite code.
    pub invite_code: String,
    /// Sign-up time.
    pub created_at: DateTime<Utc>,
    /// Linked sign-in providers.
    #[sqlx(skip)]
    pub identities: Vec<Identity>,
}

/// A linked sign-in provider.
#[derive(Debug, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Identity {
    /// `google` or `kakao`.
    pub provider: String,
    /// My id at the provider.
    pub subject: String,
    /// When it was linked.
    pub linked_at: DateTime<Utc>,
}

/// A sign-in session.
#[derive(Debug, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Session {
    /// When this refresh token was issued.
    pub issued_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// When it was exchanged for a new one (rotation).
    pub spent_at: Option<DateTime<Utc>>,
    /// When it was revoked (logout, password change, reuse detected).
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A message to me.
#[derive(Debug, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Mail {
    /// What it was: `verify_email`, `reset_password` or `account_exists`.
    pub template: String,
    /// The address it went to.
    pub recipient: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it was sent; `null` while queued.
    pub sent_at: Option<DateTime<Utc>>,
}

/// A points award.
#[derive(Debug, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct LedgerEntry {
    /// The rule that paid (`scan`, `recycle`, `attendance`, `invite`, `bonus`, …).
    pub rule: String,
    /// Points.
    pub amount: i64,
    /// The event that earned them.
    pub source_event_id: Uuid,
    /// The `points.earned` event.
    pub earned_event_id: Uuid,
    /// The local (app time zone) day it counted on.
    pub local_date: NaiveDate,
    /// When.
    pub earned_at: DateTime<Utc>,
}

/// The small part of the export, read at once; `None` when the account does not exist (or was
/// deleted).
pub struct Head {
    /// The account.
    pub account: Account,
    /// Its sessions.
    pub sessions: Vec<Session>,
    /// Its mail.
    pub mail: Vec<Mail>,
    /// Its profile.
    pub profile: Option<Profile>,
    /// Its settings.
    pub settings: Option<Settings>,
    /// Its saved places.
    pub saved_places: Vec<SavedPlace>,
    /// Its badges.
    pub badges: Vec<EarnedBadge>,
    /// Its characters.
    pub characters: Vec<UnlockedCharacter>,
    /// Its push devices.
    pub devices: Vec<Device>,
    /// Its uploaded avatar.
    pub avatar: Option<UploadedAvatar>,
    /// Its notifications.
    pub notifications: Vec<NotificationRecord>,
}

/// An uploaded avatar: the renditions kept of it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadedAvatar {
    /// The upload.
    pub upload_id: Uuid,
    /// When it was uploaded.
    pub uploaded_at: DateTime<Utc>,
    /// Links to each rendition kept (512 and 128 pixels square, JPEG).
    pub files: Vec<String>,
}

/// A push device.
#[derive(Debug, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Device {
    /// The provider's registration token.
    pub token: String,
    /// `android`, `ios` or `web`.
    pub platform: String,
    /// When it was first registered.
    pub registered_at: DateTime<Utc>,
}

/// A notification as stored.
#[derive(Debug, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct NotificationRecord {
    /// Its id.
    pub id: Uuid,
    /// Its kind.
    pub kind: String,
    /// What it is about.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Reads [`Head`].
pub async fn head(db: &PgPool, user_id: Uuid) -> sqlx::Result<Option<Head>> {
    let account: Option<Account> = sqlx::query_as(
        "select id, username, email, email_verified_at, role, password_hash is not null as has_password,
                invite_code, created_at
         from auth.users where id = $1 and deleted_at is null",
    )
    .bind(user_id)
    .fetch_optional(db)
    .await?;
    let Some(mut account) = account else { return Ok(None) };
    account.identities = sqlx::query_as(
        "select provider, subject, linked_at from auth.identities where user_id = $1 order by linked_at",
    )
    .bind(user_id)
    .fetch_all(db)
    .await?;
    let sessions = sqlx::query_as(
        "select issued_at, expires_at, spent_at, revoked_at from auth.refresh_tokens
         where user_id = $1 order by issued_at desc",
    )
    .bind(user_id)
    .fetch_all(db)
    .await?;
    let mail = sqlx::query_as(
        // Stored as the Rust variant (`VerifyEmail`); shown as in `mail.requested` (`verify_email`).
        r"select lower(regexp_replace(template, '([a-z])([A-Z])', '\1_\2', 'g')) as template, recipient, created_at, sent_at
          from auth.mail_outbox where user_id = $1 order by created_at desc",
    )
    .bind(user_id)
    .fetch_all(db)
    .await?;
    let profile: Option<Profile> =
        sqlx::query_as(&format!("select {} from read.profiles where user_id = $1", profiles::PROFILE_COLUMNS))
            .bind(user_id)
            .fetch_optional(db)
            .await?;
    Ok(Some(Head {
        account,
        sessions,
        mail,
        profile,
        settings: profiles::settings(db, user_id).await?,
        saved_places: places::saved(db, user_id).await?,
        badges: rewards::earned_badges(db, user_id).await?,
        characters: rewards::unlocked_characters(db, user_id).await?,
        devices: sqlx::query_as(
            "select token, platform, registered_at from app.devices where user_id = $1 order by registered_at",
        )
        .bind(user_id)
        .fetch_all(db)
        .await?,
        avatar: sqlx::query_as::<_, (Uuid, DateTime<Utc>, String)>(
            "select upload_id, uploaded_at, avatar_url from avatars.current
             where user_id = $1 and upload_id is not null and not forgotten",
        )
        .bind(user_id)
        .fetch_optional(db)
        .await?
        .map(|(upload_id, uploaded_at, url)| UploadedAvatar {
            upload_id,
            uploaded_at,
            files: vec![url.clone(), url.replace("/512.jpg", "/128.jpg")],
        }),
        notifications: sqlx::query_as(
            "select id, kind, data, created_at from read.notifications where user_id = $1
             order by created_at desc, id desc",
        )
        .bind(user_id)
        .fetch_all(db)
        .await?,
    }))
}

/// The whole history, newest first, row by row.
pub fn activities(db: &PgPool, user_id: Uuid) -> impl Stream<Item = sqlx::Result<Activity>> + Send + '_ {
    sqlx::query_as(
        "select id, action, points_earned, metadata, created_at from read.activities
         where user_id = $1 order by created_at desc, id desc",
    )
    .bind(user_id)
    .fetch(db)
}

/// Every award, newest first, row by row.
pub fn ledger(db: &PgPool, user_id: Uuid) -> impl Stream<Item = sqlx::Result<LedgerEntry>> + Send + '_ {
    sqlx::query_as(
        "select rule, amount, source_event_id, earned_event_id, local_date, earned_at from points.ledger
         where user_id = $1 order by earned_at desc, earned_event_id desc",
    )
    .bind(user_id)
    .fetch(db)
}
