//! Retention: what is no longer kept is deleted on schedule, and nothing still in use is.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use tests::{Options, TestSystem};
use uuid::Uuid;

/// Rows of every purged kind, each past or within its retention, for `user`. Returns the ids
/// (as text) of the rows that must go and of those that must stay.
async fn plant(system: &TestSystem, user: Uuid) -> (Vec<String>, Vec<String>) {
    let now = Utc::now();
    let days = |n: i64| now + TimeDelta::days(n);
    let (mut gone, mut kept) = (Vec::new(), Vec::new());
    for (expires, purged) in [(days(-8), true), (days(-1), false), (days(30), false)] {
        let jti = Uuid::now_v7();
        sqlx::query("insert into auth.refresh_tokens (jti, family_id, user_id, expires_at) values ($1, $1, $2, $3)")
            .bind(jti)
            .bind(user)
            .bind(expires)
            .execute(&system.db)
            .await
            .unwrap();
        if purged { &mut gone } else { &mut kept }.push(jti.to_string());
    }
    for (expires, purged) in [(now - TimeDelta::minutes(1), true), (now + TimeDelta::minutes(10), false)] {
        let jti = Uuid::now_v7();
        sqlx::query("insert into auth.revoked_access_tokens (jti, user_id, expires_at) values ($1, $2, $3)")
            .bind(jti)
            .bind(user)
            .bind(expires)
            .execute(&system.db)
            .await
            .unwrap();
        if purged { &mut gone } else { &mut kept }.push(jti.to_string());
        let state = Uuid::now_v7();
        sqlx::query(
            "insert into auth.oauth_states (state_hash, provider, code_verifier, expires_at) values ($1, 'kakao', 'v', $2)",
        )
        .bind(state.as_bytes().as_slice())
        .bind(expires)
        .execute(&system.db)
        .await
        .unwrap();
        if purged { &mut gone } else { &mut kept }.push(state.to_string());
    }
    // Used two days ago, expired two days ago, used an hour ago, still valid.
    for (used, expires, purged) in [
        (Some(days(-2)), days(5), true),
        (None, days(-2), true),
        (Some(now - TimeDelta::hours(1)), days(1), false),
        (None, days(1), false),
    ] {
        let token = Uuid::now_v7();
        sqlx::query(
            "insert into auth.email_tokens (token_hash, user_id, purpose, expires_at, used_at) values ($1, $2, 'verify_email', $3, $4)",
        )
        .bind(token.as_bytes().as_slice())
        .bind(user)
        .bind(expires)
        .bind(used)
        .execute(&system.db)
        .await
        .unwrap();
        if purged { &mut gone } else { &mut kept }.push(token.to_string());
    }
    // Sent eight days ago, sent an hour ago, never sent and queued a month ago (parked), queued
    // a day ago and not sent yet.
    for (created, sent, purged) in [
        (days(-9), Some(days(-8)), true),
        (days(-1), Some(now - TimeDelta::hours(1)), false),
        (days(-30), None, true),
        (days(-1), None, false),
    ] {
        let id = Uuid::now_v7();
        sqlx::query(
            "insert into auth.mail_outbox (id, user_id, recipient, template, created_at, sent_at) values ($1, $2, 'a@example.com', 'verify_email', $3, $4)",
        )
        .bind(id)
        .bind(user)
        .bind(created)
        .bind(sent)
        .execute(&system.db)
        .await
        .unwrap();
        if purged { &mut gone } else { &mut kept }.push(id.to_string());
    }
    (gone, kept)
}

/// Which of `ids` are still stored anywhere retention looks.
async fn present(system: &TestSystem, ids: &[String]) -> Vec<String> {
    sqlx::query_scalar(
        "select id from (
             select jti::text as id from auth.refresh_tokens
             union all select jti::text from auth.revoked_access_tokens
             union all select encode(state_hash, 'hex') from auth.oauth_states
             union all select encode(token_hash, 'hex') from auth.email_tokens
             union all select id::text from auth.mail_outbox
         ) t where id = any($1)",
    )
    .bind(ids.iter().map(|id| id.replace('-', "")).chain(ids.iter().cloned()).collect::<Vec<_>>())
    .fetch_all(&system.db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_delete_what_is_no_longer_kept_and_nothing_else() {
    let system = TestSystem::start_with(Options {
        configure: |s| s.retention_interval = Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let user = system.register("retained").await;
    let (gone, kept) = plant(&system, user.user_id).await;
    assert_eq!(present(&system, &gone).await.len(), gone.len(), "planted");

    system
        .eventually(Duration::from_secs(20), "the scheduled purge", || async {
            present(&system, &gone).await.is_empty().then_some(())
        })
        .await;
    assert_eq!(present(&system, &kept).await.len(), kept.len(), "everything within its retention stays");
    // The registration's own session still works.
    let res = system.query("/api/v1/users/me", &user.access_token, Some(&user.consistency_token)).await;
    assert_eq!(res.status, tests::StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_counts_what_it_deleted_by_kind() {
    let system = TestSystem::start_with(Options { workers: false, ..Default::default() }).await;
    let user = system.register("counted").await;
    plant(&system, user.user_id).await;
    let policy = workers::retention::Policy::of(&system.settings);
    let purged = workers::retention::purge(&system.db, policy, Utc::now()).await.unwrap();
    assert_eq!(
        purged.counts(),
        [("sessions", 1), ("revoked_tokens", 1), ("email_tokens", 2), ("oauth_states", 1), ("sent_mail", 2)]
    );
    let again = workers::retention::purge(&system.db, policy, Utc::now()).await.unwrap();
    assert_eq!(again, workers::retention::Purged::default(), "nothing left to delete");
}
