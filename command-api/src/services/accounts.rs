//! Accounts on the write side: creating a local account, locking a live account for a command,
//! finding an inviter.

use chrono::{DateTime, Utc};
use events::Event;
use platform::{auth::Role, error::ApiError, eventstore};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    mail,
    sessions::{Tokens, issue_tokens},
};
use crate::{AppState, domain::NewAccount, routes::on_constraint};

/// Locks the user's row (serialising their commands that read-modify-write, such as saved
/// places) and checks the account is live.
pub async fn lock_live(tx: &mut PgConnection, user_id: Uuid) -> Result<(), ApiError> {
    let live: Option<Uuid> =
        sqlx::query_scalar("select id from auth.users where id = $1 and deleted_at is null for update")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
    live.map(|_| ()).ok_or_else(|| ApiError::not_found("account_not_found", "This account no longer exists."))
}

/// What the write side reads of an account to check a password or issue tokens.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Account {
    /// Id.
    pub id: Uuid,
    /// Handle.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Argon2 hash; `None` for accounts made by social sign-in.
    pub password_hash: Option<String>,
    /// Role.
    pub role: Role,
}

/// How an account is looked up.
#[derive(Debug, Clone, Copy)]
pub enum AccountBy<'a> {
    /// By id (deleted accounts included; their row remains).
    Id(Uuid),
    /// A live account by id.
    LiveId(Uuid),
    /// A live account by e-mail address, case-insensitive.
    LiveEmail(&'a str),
}

/// Finds an account.
pub async fn find(db: impl sqlx::PgExecutor<'_>, by: AccountBy<'_>) -> Result<Option<Account>, ApiError> {
    const COLUMNS: &str = "id, username, email, password_hash, role";
    let query = match by {
        AccountBy::Id(_) => format!("select {COLUMNS} from auth.users where id = $1"),
        AccountBy::LiveId(_) => format!("select {COLUMNS} from auth.users where id = $1 and deleted_at is null"),
        AccountBy::LiveEmail(_) => {
            format!("select {COLUMNS} from auth.users where lower(email) = lower($1) and deleted_at is null")
        }
    };
    let query = sqlx::query_as(&query);
    let query = match by {
        AccountBy::Id(id) | AccountBy::LiveId(id) => query.bind(id),
        AccountBy::LiveEmail(email) => query.bind(email),
    };
    Ok(query.fetch_optional(db).await?)
}

/// The live account whose invite code is `code` (case-insensitive), if any.
pub async fn find_inviter(db: impl sqlx::PgExecutor<'_>, code: &str) -> Result<Option<Uuid>, ApiError> {
    Ok(sqlx::query_scalar(
        "select id from auth.users where invite_code = upper($1) and deleted_at is null order by created_at limit 1",
    )
    .bind(code)
    .fetch_optional(db)
    .await?)
}

/// A local account, created.
pub struct Created {
    /// When.
    pub created_at: DateTime<Utc>,
    /// Its first session.
    pub tokens: Tokens,
    /// The events recorded (for the consistency token).
    pub event_ids: Vec<Uuid>,
}

/// Creates `account` with `events` in one transaction: the row, the mail (a verification link,
/// or to the owner of an address that already has an account), the events and a session.
pub async fn create_local(
    state: &AppState,
    account: &NewAccount,
    password_hash: &str,
    mut events: Vec<Event>,
    request_id: Uuid,
) -> Result<Created, ApiError> {
    let mut tx = state.outbox.begin().await?;
    // No enumeration: an address that already has an account gets the same answer as a new
    // one. The registrant gets a separate account that cannot sign in by that address, and
    // the address's owner is told by mail.
    let owner: Option<Uuid> =
        sqlx::query_scalar("select id from auth.users where lower(email) = $1 and deleted_at is null")
            .bind(&account.email)
            .fetch_optional(&mut *tx)
            .await?;
    let stored_email = match owner {
        Some(_) => format!("unclaimed+{}@users.invalid", account.user_id),
        None => account.email.clone(),
    };
    let created_at: DateTime<Utc> = sqlx::query_scalar(
        "insert into auth.users (id, username, email, password_hash) values ($1, $2, $3, $4) returning created_at",
    )
    .bind(account.user_id)
    .bind(&account.username)
    .bind(&stored_email)
    .bind(password_hash)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        on_constraint(
            e,
            &[
                // Only a registration racing another for the same new address ends here.
                ("users_email_key", "registration_conflict", "Registration failed; try again."),
                ("users_username_key", "username_taken", "This username is taken."),
            ],
        )
    })?;
    let mail = match owner {
        Some(owner) => (owner, events::MailTemplate::AccountExists),
        None => (account.user_id, events::MailTemplate::VerifyEmail),
    };
    events.push(mail::queue_mail(state, &mut tx, mail.0, &account.email, mail.1, request_id).await?);
    eventstore::append(&mut tx, &mut events).await?;
    let tokens = issue_tokens(state, &mut tx, account.user_id, &account.username, Role::User, None).await?;
    tx.commit().await?;
    Ok(Created { created_at, tokens, event_ids: events.iter().map(|e| e.id).collect() })
}
