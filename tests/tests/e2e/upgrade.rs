//! Upgrading to the read models' processing group: what waits in the queues the projections had
//! before (one each) is applied once, and nothing new goes there.

use std::time::Duration;

use events::{Event, Provider, UserRegistered};
use lapin::{BasicProperties, options::BasicPublishOptions, types::FieldTable};
use platform::topology::{ACTIVITIES, PROFILES, READ_MODELS};
use tests::{Options, TestSystem};
use uuid::Uuid;

use crate::support;

fn registered(user_id: Uuid, username: &str) -> Event {
    Event::new(
        "signup-service",
        user_id,
        UserRegistered {
            user_id,
            username: username.into(),
            nickname: username.into(),
            provider: Provider::Google,
            invited_by: None,
        }
        .into(),
    )
}

async fn put(channel: &lapin::Channel, queue: &str, body: &[u8], headers: FieldTable) {
    let props = BasicProperties::default().with_delivery_mode(2).with_headers(headers);
    let confirm =
        channel.basic_publish("", queue, BasicPublishOptions::default(), body, props).await.unwrap().await.unwrap();
    assert!(confirm.is_ack());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_queues_from_before_the_group_are_unbound_and_drained() {
    let mut system = TestSystem::start_with(Options { workers: false, ..Default::default() }).await;
    let (conn, channel) = support::broker(&system).await;
    let topology = system.topology();
    // The previous version's topology: a queue per projection, bound to its types.
    topology.declare(&channel, &[PROFILES, ACTIVITIES]).await.unwrap();
    // A registration waiting in the profiles queue only.
    let waiting = system.live_account(Uuid::now_v7()).await;
    put(&channel, &topology.queue(&PROFILES), &registered(waiting, "waiting").to_json_bytes(), FieldTable::default())
        .await;

    system.start_workers(None).await;
    // Published after the upgrade: reaches the group's queue.
    let later = system.live_account(Uuid::now_v7()).await;
    support::publish_raw(&channel, &system, "user.registered", &registered(later, "later").to_json_bytes()).await;
    let profiles = "select count(*) from read.profiles";
    system
        .eventually(Duration::from_secs(20), "both registrations projected", || async {
            (system.count(profiles).await == 2).then_some(())
        })
        .await;
    let applied = "select count(*) from projection.applied_events where projection = 'profiles'";
    assert_eq!(system.count(applied).await, 2, "each registration applied once");

    // The old queues were unbound: with the workers stopped, a new event waits in the group's
    // queue only.
    system.stop_workers().await;
    let third = system.live_account(Uuid::now_v7()).await;
    support::publish_raw(&channel, &system, "user.registered", &registered(third, "third").to_json_bytes()).await;
    let depth = |queue: String| {
        let conn = &conn;
        async move { workers::ops::queue_depth(conn, &queue).await }
    };
    assert_eq!(depth(topology.queue(&READ_MODELS)).await, Some(1));
    assert_eq!(depth(topology.queue(&PROFILES)).await, Some(0));
    assert_eq!(depth(topology.queue(&ACTIVITIES)).await, Some(0));

    // The operator deletes the old queues; the next start drains nothing and applies the rest.
    for queue in topology.queues_of(&PROFILES).into_iter().chain(topology.queues_of(&ACTIVITIES)) {
        channel.queue_delete(&queue, Default::default()).await.unwrap();
    }
    system.start_workers(None).await;
    system
        .eventually(Duration::from_secs(20), "the third registration projected", || async {
            (system.count(profiles).await == 3).then_some(())
        })
        .await;
    assert!(!workers::legacy::exists(&conn, &topology.queue(&PROFILES)).await.unwrap());
}
