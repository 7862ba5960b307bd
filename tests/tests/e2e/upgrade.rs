//! Upgrading to the read models' processing group: what waits in the queues the projections had
//! before (one each) is applied once, parked messages move to the group, and the queues go.

use std::time::Duration;

use events::{Event, Provider, UserRegistered};
use lapin::{BasicProperties, options::BasicPublishOptions, types::FieldTable};
use platform::{
    amqp::long_string,
    topology::{ACTIVITIES, PROFILES, READ_MODELS, headers},
};
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
async fn projection_queues_from_before_the_group_are_drained_then_deleted() {
    let mut system = TestSystem::start_with(Options { workers: false, ..Default::default() }).await;
    let (conn, channel) = support::broker(&system).await;
    let topology = system.topology();
    // The previous version's topology: a queue per projection, bound to its types.
    topology.declare(&channel, &[PROFILES, ACTIVITIES]).await.unwrap();
    // A registration waiting in the profiles queue only, and a message parked there.
    let waiting = system.live_account(Uuid::now_v7()).await;
    put(&channel, &topology.queue(&PROFILES), &registered(waiting, "waiting").to_json_bytes(), FieldTable::default())
        .await;
    let mut parked_headers = FieldTable::default();
    parked_headers.insert(headers::PARKED_REASON.into(), long_string("malformed_envelope"));
    put(&channel, &topology.parked_queue(&PROFILES), b"{oops", parked_headers).await;

    system.start_workers(None).await;
    // Published after the upgrade: reaches the group only (the old queues were unbound).
    let later = system.live_account(Uuid::now_v7()).await;
    support::publish_raw(&channel, &system, "user.registered", &registered(later, "later").to_json_bytes()).await;

    let profiles = "select count(*) from read.profiles";
    system
        .eventually(Duration::from_secs(20), "both registrations projected", || async {
            (system.count(profiles).await == 2).then_some(())
        })
        .await;
    system
        .eventually(Duration::from_secs(30), "the old queues drained and deleted", || async {
            let mut left = Vec::new();
            for spec in [&PROFILES, &ACTIVITIES] {
                for queue in topology.queues_of(spec) {
                    if workers::ops::queue_depth(&conn, &queue).await.is_some() {
                        left.push(queue);
                    }
                }
            }
            left.is_empty().then_some(())
        })
        .await;
    let applied = "select count(*) from projection.applied_events where projection = 'profiles'";
    assert_eq!(system.count(applied).await, 2, "each registration applied once");
    let moved = support::take_parked(&channel, &topology.parked_queue(&READ_MODELS), 1).await;
    assert_eq!(moved.len(), 1);
    assert_eq!((moved[0].reason.as_str(), &moved[0].body[..]), ("malformed_envelope", &b"{oops"[..]));
}
