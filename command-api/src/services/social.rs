//! Social sign-in once the provider has vouched for an identity: sign in the account it is
//! linked to, link it to the account of an address the provider vouches for, or create an
//! account (`domain::decide_social_link` decides), then open a session; one transaction.

use events::{Event, Provider, UserRegistered};
use platform::{error::ApiError, eventstore};
use uuid::Uuid;

use super::sessions::{Tokens, issue_tokens};
use crate::{
    AppState, SOURCE,
    domain::{self, ExternalIdentity, SocialLink},
};

/// Signs in with `identity` from provider `name`: the account, whether it was created now, and
/// a new session.
pub async fn sign_in(
    state: &AppState,
    name: &str,
    provider: Provider,
    identity: &ExternalIdentity,
    request_id: Uuid,
) -> Result<(Uuid, bool, Tokens), ApiError> {
    let mut tx = state.outbox.begin().await?;
    let identity_owner: Option<Uuid> = sqlx::query_scalar(
        "select i.user_id from auth.identities i join auth.users u on u.id = i.user_id
         where i.provider = $1 and i.subject = $2 and u.deleted_at is null",
    )
    .bind(name)
    .bind(&identity.subject)
    .fetch_optional(&mut *tx)
    .await?;
    let email_owner: Option<Uuid> = match &identity.email {
        Some(email) => {
            sqlx::query_scalar("select id from auth.users where lower(email) = $1 and deleted_at is null")
                .bind(email)
                .fetch_optional(&mut *tx)
                .await?
        }
        None => None,
    };
    let decision = domain::decide_social_link(identity_owner, email_owner, identity);
    let (user_id, created) = match decision {
        SocialLink::SignIn(user) => (user, false),
        SocialLink::LinkTo(user) => {
            link(&mut tx, name, &identity.subject, user).await?;
            sqlx::query("update auth.users set email_verified_at = coalesce(email_verified_at, now()) where id = $1")
                .bind(user)
                .execute(&mut *tx)
                .await?;
            tracing::info!(user.id = %user, provider = %name, "social identity linked to an existing account");
            (user, false)
        }
        SocialLink::Create => {
            let user = Uuid::now_v7();
            let username = domain::social_username(identity, &user.simple().to_string()[24..]);
            // An address someone else already uses stays theirs; this account gets none it can sign in with.
            let email = match (&identity.email, email_owner) {
                (Some(email), None) => email.clone(),
                _ => format!("{name}-{}@social.invalid", identity.subject),
            };
            let verified = identity.email_verified && email_owner.is_none() && identity.email.is_some();
            sqlx::query(
                "insert into auth.users (id, username, email, email_verified_at)
                 values ($1, $2, $3, case when $4 then now() end)",
            )
            .bind(user)
            .bind(&username)
            .bind(&email)
            .bind(verified)
            .execute(&mut *tx)
            .await?;
            link(&mut tx, name, &identity.subject, user).await?;
            let nickname = identity
                .nickname
                .clone()
                .filter(|n| !n.trim().is_empty() && n.chars().count() <= 40)
                .unwrap_or_else(|| username.clone());
            let registered = UserRegistered {
                user_id: user,
                username: username.into(),
                nickname: nickname.into(),
                provider,
                invited_by: None,
            };
            let mut events = [Event::new(SOURCE, user, registered.into()).caused_by(Some(request_id), None)];
            eventstore::append(&mut tx, &mut events).await?;
            tracing::info!(user.id = %user, provider = %name, "account created by social login");
            (user, true)
        }
    };
    let account = super::accounts::find(&mut *tx, super::accounts::AccountBy::Id(user_id))
        .await?
        .ok_or_else(|| ApiError::not_found("account_not_found", "This account no longer exists."))?;
    let tokens = issue_tokens(state, &mut tx, user_id, &account.username, account.role, None).await?;
    tx.commit().await?;
    Ok((user_id, created, tokens))
}

async fn link(tx: &mut sqlx::PgConnection, provider: &str, subject: &str, user: Uuid) -> Result<(), ApiError> {
    sqlx::query("insert into auth.identities (provider, subject, user_id) values ($1, $2, $3)")
        .bind(provider)
        .bind(subject)
        .bind(user)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
