//! Upgrading to the read models' processing group: what waits in the queues the projections had
//! before (one each) is applied once, and nothing new goes there.

use std::time::Duration;

use events::{Event, Provider, UserRegistered};
use lapin::{BasicProperties, options::BasicPublishOptions, types::FieldTable};
use platform::topology::{ACTIVITIES, PROFILES, READ_MODELS};
use tests::{Options, StatusCode, TestSystem, proxy::TcpProxy};
use tokio_util::sync::CancellationToken;
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

/// The broker goes away between the workers' start-up (topology declared) and their first
/// connections, as when it restarts while pods start, in the middle of an upgrade: every part
/// keeps trying, and once the broker is back the old queues are still unbound and drained.
/// (The look for the old queues once gave up on its first error, and took the relay and every
/// consumer down with it, without a word.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_whose_broker_goes_away_as_they_start_still_drain_the_old_queues() {
    let base = tests::isolated_settings();
    let (upstream, via) = crate::broker::split_amqp_url(&base.amqp_url);
    let proxy = TcpProxy::start(upstream).await;
    let system = TestSystem::start_with(Options { workers: false, ..Default::default() }).await;
    let (conn, channel) = support::broker(&system).await;
    let topology = system.topology();
    topology.declare(&channel, &[PROFILES]).await.unwrap();
    let waiting = system.live_account(Uuid::now_v7()).await;
    put(&channel, &topology.queue(&PROFILES), &registered(waiting, "waiting").to_json_bytes(), FieldTable::default())
        .await;

    let mut settings = system.settings.clone();
    settings.amqp_url = via(proxy.addr());
    settings.migrate_on_start = false;
    let app = workers::App::build(settings, workers::Role::all()).await.expect("workers");
    proxy.sever();
    let stop = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(stop.clone()));
    let user = system.register("while_away").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!running.is_finished(), "the workers gave up while the broker was away");
    proxy.restore();

    system
        .eventually(Duration::from_secs(30), "both registrations projected once the broker is back", || async {
            (system.count("select count(*) from read.profiles").await == 2).then_some(())
        })
        .await;
    let res = system.query("/api/v1/users/me", &user.access_token, Some(&user.consistency_token)).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body["username"], user.username);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the workers stop in time")
        .unwrap()
        .expect("the workers ran without error");

    // The old queue was unbound: with the workers stopped, a new event waits in the group's only.
    let third = system.live_account(Uuid::now_v7()).await;
    support::publish_raw(&channel, &system, "user.registered", &registered(third, "third").to_json_bytes()).await;
    assert_eq!(workers::ops::queue_depth(&conn, &topology.queue(&READ_MODELS)).await, Some(1));
    assert_eq!(workers::ops::queue_depth(&conn, &topology.queue(&PROFILES)).await, Some(0));
    // The operator's part (the test system cleans up only the current topology).
    for queue in topology.queues_of(&PROFILES) {
        channel.queue_delete(&queue, Default::default()).await.unwrap();
    }
}

/// An index a migration builds concurrently, and that migration's statement.
const AWARD_SOURCE_INDEX: &str = "read.activities_award_source_idx";

fn award_source_index_migration() -> String {
    let migration = platform::db::MIGRATOR.iter().find(|m| m.version == 20261124000026).expect("migration 26");
    assert!(migration.sql.contains("create index concurrently if not exists activities_award_source_idx"));
    migration.sql.to_string()
}

async fn index_valid(db: &sqlx::PgPool, index: &str) -> Option<bool> {
    sqlx::query_scalar("select (select indisvalid from pg_index where indexrelid = to_regclass($1::text))")
        .bind(index)
        .fetch_one(db)
        .await
        .unwrap()
}

/// A concurrent index build that is interrupted (here: cancelled while it waits for a writer,
/// as a killed migration would be) leaves an invalid index, which its migration's
/// `if not exists` would then skip for ever. The next migration run rebuilds it; a build under
/// way is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_left_invalid_by_an_interrupted_build_is_rebuilt_by_the_next_migration_run() {
    let system = TestSystem::start_with(Options { workers: false, ..Default::default() }).await;
    let db = &system.db;
    let build = award_source_index_migration();
    sqlx::query(&format!("drop index {AWARD_SOURCE_INDEX}")).execute(db).await.unwrap();

    // A writer holds the table: the build creates its index, invalid, then waits for the writer.
    let mut writer = db.begin().await.unwrap();
    sqlx::query("lock table read.activities in row exclusive mode").execute(&mut *writer).await.unwrap();
    let mut builder = db.acquire().await.unwrap().detach();
    let pid: i32 = sqlx::query_scalar("select pg_backend_pid()").fetch_one(&mut builder).await.unwrap();
    let building = {
        let build = build.clone();
        tokio::spawn(async move { sqlx::query(&build).execute(&mut builder).await })
    };
    system
        .eventually(Duration::from_secs(10), "the build waiting for the writer", || async {
            let phase: Option<String> =
                sqlx::query_scalar("select phase from pg_stat_progress_create_index where pid = $1")
                    .bind(pid)
                    .fetch_optional(db)
                    .await
                    .unwrap();
            (phase.as_deref() == Some("waiting for writers before build")).then_some(())
        })
        .await;
    assert_eq!(index_valid(db, AWARD_SOURCE_INDEX).await, Some(false), "invalid while it is built");
    let repaired = tokio::time::timeout(Duration::from_secs(5), platform::db::repair_invalid_indexes(db)).await;
    assert_eq!(repaired.expect("the repair does not wait for a build").unwrap(), Vec::<String>::new());

    sqlx::query("select pg_cancel_backend($1)").bind(pid).execute(db).await.unwrap();
    let cancelled = building.await.unwrap().expect_err("the build is cancelled");
    writer.rollback().await.unwrap();
    assert_eq!(index_valid(db, AWARD_SOURCE_INDEX).await, Some(false), "left invalid by: {cancelled}");

    // What the migration would do again changes nothing.
    sqlx::raw_sql(&build).execute(db).await.unwrap();
    assert_eq!(index_valid(db, AWARD_SOURCE_INDEX).await, Some(false), "skipped by `if not exists`");

    platform::db::migrate(db).await.unwrap();
    assert_eq!(index_valid(db, AWARD_SOURCE_INDEX).await, Some(true), "rebuilt by the migration run");
    assert_eq!(platform::db::repair_invalid_indexes(db).await.unwrap(), Vec::<String>::new(), "nothing left to do");
}
