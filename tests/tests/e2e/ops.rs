//! What operators do with `ecoctl`: look at parked events, requeue them, drop them, read status.

use std::time::Duration;

use events::{Event, Provider, UserProfileUpdated, UserRegistered};
use platform::topology::PROFILES;
use tests::TestSystem;
use uuid::Uuid;
use workers::ops;

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeued_parked_event_applies_once_and_status_shows_it() {
    let system = TestSystem::start().await;
    let (_conn, channel) = support::broker(&system).await;
    let user = Uuid::now_v7();
    let mut rename = Event::new(
        "profile-service",
        user,
        UserProfileUpdated { nickname: Some("돌아온".into()), ..Default::default() }.into(),
    );
    rename.sequence = Some(2);
    support::publish_raw(&channel, &system, "user.profile_updated", &rename.to_json_bytes()).await;

    let parked = system
        .eventually(Duration::from_secs(15), "the rename parked after its retries", || async {
            let list = ops::parked_list(&system.settings, &PROFILES, 10).await.unwrap();
            (list.len() == 1).then_some(list)
        })
        .await;
    assert_eq!(parked[0].event_id.as_deref(), Some(rename.id.to_string().as_str()));
    assert_eq!(parked[0].reason, "retries_exhausted");
    assert_eq!(ops::parked_list(&system.settings, &PROFILES, 10).await.unwrap().len(), 1, "listing leaves it in place");
    let status = ops::status(&system.settings, &system.db).await.unwrap();
    let profiles = status.iter().find(|s| s.consumer == "projection.profiles").unwrap();
    assert_eq!(profiles.parked, Some(1));

    // The cause is fixed (the registration arrives), then the operator requeues.
    let registered = Event::new(
        "signup-service",
        user,
        UserRegistered {
            user_id: user,
            username: "returning".into(),
            nickname: "old".into(),
            provider: Provider::Local,
            invited_by: None,
        }
        .into(),
    );
    support::publish_raw(&channel, &system, "user.registered", &registered.to_json_bytes()).await;
    let wrong = ops::parked_requeue(&system.settings, &PROFILES, Some(&Uuid::now_v7().to_string())).await.unwrap();
    assert!(wrong.is_empty(), "an unknown id touches nothing");
    let done = ops::parked_requeue(&system.settings, &PROFILES, None).await.unwrap();
    assert_eq!(done.len(), 1);
    let nickname: String = system
        .eventually(Duration::from_secs(15), "the requeued rename applied", || async {
            sqlx::query_scalar::<_, String>(
                "select nickname from read.profiles where user_id = $1 and nickname = '돌아온'",
            )
            .bind(user)
            .fetch_optional(&system.db)
            .await
            .unwrap()
        })
        .await;
    assert_eq!(nickname, "돌아온");
    // Requeueing the same bytes again changes nothing: applied once.
    support::publish_raw(&channel, &system, "user.profile_updated", &rename.to_json_bytes()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let applied: i64 = sqlx::query_scalar(
        "select count(*) from projection.applied_events where projection = 'profiles' and event_id = $1",
    )
    .bind(rename.id)
    .fetch_one(&system.db)
    .await
    .unwrap();
    assert_eq!(applied, 1);
    assert!(ops::parked_list(&system.settings, &PROFILES, 10).await.unwrap().is_empty());

    support::publish_raw(&channel, &system, "user.registered", b"garbage").await;
    system
        .eventually(Duration::from_secs(15), "garbage parked", || async {
            (ops::parked_list(&system.settings, &PROFILES, 10).await.unwrap().len() == 1).then_some(())
        })
        .await;
    assert_eq!(ops::parked_purge(&system.settings, &PROFILES, None).await.unwrap().len(), 1);
    assert!(ops::parked_list(&system.settings, &PROFILES, 10).await.unwrap().is_empty());
    assert!(ops::consumer("nope").unwrap_err().to_string().contains("projection.profiles"));
}
