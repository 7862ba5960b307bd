//! What arrives on a projector's queue from elsewhere: poison, duplicates, out-of-order events,
//! and the relay's treatment of a transaction that commits late.

use std::time::Duration;

use events::{Event, EventData, Provider, UserEmailVerified, UserProfileUpdated, UserRegistered};
use platform::topology::READ_MODELS;
use serde_json::json;
use tests::{StatusCode, TestSystem};
use uuid::Uuid;

use crate::support;

fn registered(user_id: Uuid, sequence: i64) -> Event {
    let mut e = Event::new(
        "signup-service",
        user_id,
        UserRegistered {
            user_id,
            username: format!("ext_{}", &user_id.simple().to_string()[..8]).into(),
            nickname: "외부".into(),
            provider: Provider::Google,
            invited_by: None,
        }
        .into(),
    );
    e.sequence = Some(sequence);
    e
}

fn renamed(user_id: Uuid, nickname: &str, sequence: i64) -> Event {
    let mut e = Event::new(
        "profile-service",
        user_id,
        UserProfileUpdated { nickname: Some(nickname.into()), ..Default::default() }.into(),
    );
    e.sequence = Some(sequence);
    e
}

async fn nickname(system: &TestSystem, user_id: Uuid) -> Option<(String, i64)> {
    sqlx::query_as("select nickname, version from read.profiles where user_id = $1")
        .bind(user_id)
        .fetch_optional(&system.db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_parked_with_their_reason_and_the_next_event_still_flows() {
    let system = TestSystem::start().await;
    let (_conn, channel) = support::broker(&system).await;
    let good = registered(system.live_account(Uuid::now_v7()).await, 1);
    let mut wrong_version = good.to_raw();
    wrong_version.id = Uuid::now_v7();
    wrong_version.version = 9;
    let mut bad_data = good.to_raw();
    bad_data.id = Uuid::now_v7();
    bad_data.data = json!({"user_id": good.aggregate_id, "username": "x", "nickname": "n", "provider": "myspace"});

    let poison: Vec<(Vec<u8>, &str)> = vec![
        (b"this is not json".to_vec(), "malformed_envelope"),
        (serde_json::to_vec(&wrong_version).unwrap(), "unsupported_version"),
        (serde_json::to_vec(&bad_data).unwrap(), "schema_violation"),
        (br#"{"type": "user.registered", "data": {}}"#.to_vec(), "malformed_envelope"),
    ];
    for (body, _) in &poison {
        support::publish_raw(&channel, &system, "user.registered", body).await;
    }
    support::publish_raw(&channel, &system, "user.registered", &good.to_json_bytes()).await;

    system
        .eventually(Duration::from_secs(15), "the good event behind the poison applied", || async {
            nickname(&system, good.aggregate_id).await
        })
        .await;
    let parked = support::take_parked(&channel, &system.topology().parked_queue(&READ_MODELS), poison.len()).await;
    assert_eq!(parked.len(), poison.len(), "every bad message parked");
    for (p, (body, reason)) in parked.iter().zip(&poison) {
        assert_eq!(&p.body, body, "parked as sent");
        assert_eq!(p.reason, *reason, "{}", p.detail);
        assert!(!p.detail.is_empty());
    }
    assert!(parked[2].detail.contains("myspace") || parked[2].detail.contains("provider"), "{}", parked[2].detail);

    // And the REST path still works behind them.
    let user = system.register("after_poison").await;
    let res = system.query("/api/v1/users/me", &user.access_token, Some(&user.consistency_token)).await;
    assert_eq!(res.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_events_are_applied_once() {
    let system = TestSystem::start().await;
    let (_conn, channel) = support::broker(&system).await;
    let user = system.live_account(Uuid::now_v7()).await;
    let reg = registered(user, 1);
    let rename = renamed(user, "초록이", 2);
    for _ in 0..3 {
        support::publish_raw(&channel, &system, "user.registered", &reg.to_json_bytes()).await;
    }
    for _ in 0..3 {
        support::publish_raw(&channel, &system, "user.profile_updated", &rename.to_json_bytes()).await;
    }
    let (name, version) = system
        .eventually(Duration::from_secs(15), "rename applied", || async {
            nickname(&system, user).await.filter(|(n, _)| n == "초록이")
        })
        .await;
    assert_eq!(name, "초록이");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(nickname(&system, user).await.unwrap().1, version, "duplicates changed nothing");
    assert_eq!(version, 2, "one insert and one update");
    assert_eq!(system.count("select count(*) from projection.applied_events where projection = 'profiles'").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_overtakes_its_registration_waits_and_a_stale_one_is_ignored() {
    let system = TestSystem::start().await;
    let (_conn, channel) = support::broker(&system).await;
    let user = system.live_account(Uuid::now_v7()).await;
    // Sequence 3 arrives first, before the profile exists; then 1 (registration), then 2 (older).
    support::publish_raw(&channel, &system, "user.profile_updated", &renamed(user, "newest", 3).to_json_bytes()).await;
    support::publish_raw(&channel, &system, "user.registered", &registered(user, 1).to_json_bytes()).await;
    system
        .eventually(Duration::from_secs(15), "the early update applied after its retry", || async {
            nickname(&system, user).await.filter(|(n, _)| n == "newest")
        })
        .await;
    support::publish_raw(&channel, &system, "user.profile_updated", &renamed(user, "older", 2).to_json_bytes()).await;
    system
        .eventually(Duration::from_secs(15), "the stale update consumed", || async {
            (system.count("select count(*) from projection.applied_events where projection = 'profiles'").await == 3)
                .then_some(())
        })
        .await;
    assert_eq!(nickname(&system, user).await.unwrap().0, "newest", "an older update never overwrites a newer one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_keeps_failing_is_retried_with_delay_then_parked() {
    let system = TestSystem::start().await;
    let (_conn, channel) = support::broker(&system).await;
    // A live account whose profile never arrives: the projector cannot apply the rename.
    let ghost = renamed(system.live_account(Uuid::now_v7()).await, "nobody", 2);
    support::publish_raw(&channel, &system, "user.profile_updated", &ghost.to_json_bytes()).await;
    let parked = support::take_parked(&channel, &system.topology().parked_queue(&READ_MODELS), 1).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].reason, "retries_exhausted");
    assert_eq!(parked[0].retry_count, system.settings.retry_delays.len() as i64, "went through every retry tier");
    assert!(parked[0].detail.contains("does not exist yet"), "{}", parked[0].detail);
    assert_eq!(parked[0].routing_key, "user.profile_updated", "the type survives the retry tiers' re-routing");
    assert_eq!(Event::decode(&parked[0].body).unwrap().id, ghost.id);
    assert_eq!(system.count("select count(*) from projection.applied_events where projection = 'profiles'").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_never_publishes_past_a_transaction_that_commits_late() {
    let system = TestSystem::start().await;
    let (_conn, channel) = support::broker(&system).await;
    let tap = support::tap(&channel, &system).await;
    let event = |user: Uuid| Event::new("test", user, EventData::from(UserEmailVerified { user_id: user }));

    let mut slow = system.db.begin().await.unwrap();
    let mut early = [event(Uuid::now_v7())];
    platform::eventstore::append(&mut slow, &mut early).await.unwrap();
    let mut fast = system.db.begin().await.unwrap();
    let mut later = [event(Uuid::now_v7())];
    platform::eventstore::append(&mut fast, &mut later).await.unwrap();
    fast.commit().await.unwrap();

    // The later position is committed, but the relay must not move past the open transaction.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(support::drain(&channel, &tap).await.is_empty(), "nothing published while an earlier transaction is open");
    slow.commit().await.unwrap();

    let seen = system
        .eventually(Duration::from_secs(10), "both published", || async {
            let published = system.count("select count(*) from eventstore.events where published_at is not null").await;
            (published == 2).then_some(())
        })
        .await;
    let () = seen;
    let ids: Vec<String> =
        support::drain(&channel, &tap).await.iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, [early[0].id.to_string(), later[0].id.to_string()], "published in commit-safe order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_other_services_are_stored_in_the_log_once_and_bad_ones_parked() {
    let system = TestSystem::start().await;
    let (_conn, channel) = support::broker(&system).await;
    let user = system.live_account(Uuid::now_v7()).await;
    let external = registered(user, 1);
    for _ in 0..3 {
        support::publish_raw(&channel, &system, "user.registered", &external.to_json_bytes()).await;
    }
    support::publish_raw(&channel, &system, "user.exploded", br#"{"id": "nope"}"#).await;
    let ours = system.register("local").await;

    let stored: (String, bool) = system
        .eventually(Duration::from_secs(15), "the external event in the log", || async {
            sqlx::query_as("select source, published_at is not null from eventstore.events where id = $1")
                .bind(external.id)
                .fetch_optional(&system.db)
                .await
                .unwrap()
        })
        .await;
    assert_eq!(stored, ("signup-service".to_owned(), true), "stored as published: the relay must not send it again");
    let parked = support::take_parked(&channel, &system.topology().parked_queue(&platform::topology::INGEST), 1).await;
    assert_eq!(parked[0].reason, "malformed_envelope");
    // Ingest acknowledges what our relay published (logged already) without a transaction.
    system.settle(Duration::from_secs(15)).await;
    let recorded_by_ingest: i64 = sqlx::query_scalar(
        "select count(*) from projection.applied_events a join eventstore.events e on e.id = a.event_id
         where a.projection = 'ingest' and e.aggregate_id = $1",
    )
    .bind(ours.user_id)
    .fetch_one(&system.db)
    .await
    .unwrap();
    assert_eq!(recorded_by_ingest, 0, "our own events cost ingest nothing");
    assert_eq!(
        system.count(&format!("select count(*) from eventstore.events where id = '{}'", external.id)).await,
        1,
        "once"
    );
    let ours_in_log: i64 = sqlx::query_scalar("select count(*) from eventstore.events where aggregate_id = $1")
        .bind(ours.user_id)
        .fetch_one(&system.db)
        .await
        .unwrap();
    assert_eq!(ours_in_log, 2, "our events are not stored twice (registration and its mail)");
}
