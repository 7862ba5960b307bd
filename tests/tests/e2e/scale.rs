//! Scaling out and dying hard: several `workers` OS processes on the same queues, and a worker
//! killed with SIGKILL in the middle of its work.

use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use serde_json::json;
use tests::{Options, Registered, StatusCode, TestSystem};
use uuid::Uuid;

use crate::support;

/// The shipped workers process, as a binary this test can start and kill.
const WORKERS: &str = env!("CARGO_BIN_EXE_workers-under-test");

/// `(total_scans, total_recycles, points)` of a user's profile, from PostgreSQL.
async fn totals(system: &TestSystem, user: &Registered) -> (i64, i64, i64) {
    sqlx::query_as("select total_scans, total_recycles, points from read.profiles where user_id = $1")
        .bind(user.user_id)
        .fetch_one(&system.db)
        .await
        .unwrap()
}

async fn count_for(system: &TestSystem, sql: &str, user: &Registered) -> i64 {
    sqlx::query_scalar(sql).bind(user.user_id).fetch_one(&system.db).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_build_exactly_what_one_would() {
    let system = TestSystem::start_with(Options { workers: false, ..Default::default() }).await;
    let first = system.spawn_workers_process(WORKERS);
    let second = system.spawn_workers_process(WORKERS);
    first.ready(&system.http).await;
    second.ready(&system.http).await;

    let mut users = Vec::new();
    for i in 0..6 {
        users.push(system.register(format!("pair{i}")).await);
    }
    // Every user acts at once: six scans, a recycle and a check-in each, all in flight together.
    system.add_bin(37.5665, 126.978).await;
    let scan = json!({"category": "metal", "item_name": "can"});
    let recycle = json!({"category": "glass", "latitude": 37.5667, "longitude": 126.9781});
    let check_in = json!({});
    let mut calls = Vec::new();
    for user in &users {
        for _ in 0..6 {
            calls.push(system.command("/api/v1/scans", &user.access_token, &scan));
        }
        calls.push(system.command("/api/v1/recycles", &user.access_token, &recycle));
        calls.push(system.command("/api/v1/attendance", &user.access_token, &check_in));
    }
    for res in join_all(calls).await {
        assert!(res.status == StatusCode::ACCEPTED || res.status == StatusCode::CREATED, "{}", res.body);
    }
    system.settle(Duration::from_secs(60)).await;

    for user in &users {
        // 6 scans × 10 + recycle 50 + check-in 5: one award per action, never two.
        assert_eq!(totals(&system, user).await, (6, 1, 115), "{}", user.username);
        let awards = "select count(*) from eventstore.events where type = 'points.earned' and aggregate_id = $1";
        assert_eq!(count_for(&system, awards, user).await, 8);
        let levels = "select count(*) from eventstore.events where type = 'level.reached' and aggregate_id = $1";
        assert_eq!(count_for(&system, levels, user).await, 1, "115 points is level 2, reached once");
        let history = "select count(*) from read.activities where user_id = $1";
        assert_eq!(count_for(&system, history, user).await, 6 + 1 + 1 + 8 + 1);
        let board = "select points from read.leaderboard_scores where user_id = $1 and period_key = 'all-time:all'";
        assert_eq!(count_for(&system, board, user).await, 115);
    }
    // Both processes really shared the work.
    for process in [&first, &second] {
        let applied = process
            .metric(
                &system.http,
                "events_consumed_total",
                &[r#"consumer="projection.profiles""#, r#"outcome="applied""#],
            )
            .await;
        assert!(applied > 0.0, "each process applied part of the profile events");
    }
    // Ingest stores other services' events; ours are in the log already and cost it nothing.
    let (mut ours, mut transactions) = (0.0, 0.0);
    for process in [&first, &second] {
        let consumed = ["events_consumed_total", "consumer_transactions_total"];
        ours += process.metric(&system.http, consumed[0], &[r#"consumer="ingest""#, r#"outcome="ours""#]).await;
        transactions += process.metric(&system.http, consumed[1], &[r#"consumer="ingest""#]).await;
    }
    assert_eq!(ours as i64, system.count("select count(*) from eventstore.events").await, "every event was ours");
    assert_eq!(transactions, 0.0, "ingest opened no transaction for our own events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_with_sigkill_mid_stream_loses_and_doubles_nothing() {
    let system = TestSystem::start_with(Options { workers: false, ..Default::default() }).await;
    let doomed = system.spawn_workers_process(WORKERS);
    let mut users = Vec::new();
    for i in 0..40 {
        users.push(system.register(format!("kill{i}")).await);
    }
    let profiles = "select count(*) from read.profiles";
    system
        .eventually(Duration::from_secs(30), "every profile projected", || async {
            (system.count(profiles).await == users.len() as i64).then_some(())
        })
        .await;

    // The scan service publishes a burst straight to the bus: 25 scans per user, 1000 in all.
    let (_conn, channel) = support::broker(&system).await;
    let scans_each = 25;
    let mut confirms = Vec::new();
    for round in 0..scans_each {
        for user in &users {
            let event = events::Event::new(
                "scan-service",
                user.user_id,
                events::ScanRecorded {
                    scan_id: Uuid::now_v7(),
                    user_id: user.user_id,
                    category: events::Category::Paper,
                    item_name: format!("box {round}"),
                    confidence: Some(0.9),
                    image_sha256: None,
                    scanned_at: Utc::now(),
                }
                .into(),
            );
            confirms
                .push(support::publish_unconfirmed(&channel, &system, "scan.recorded", &event.to_json_bytes()).await);
        }
    }
    for confirm in confirms {
        assert!(confirm.await.unwrap().is_ack());
    }
    // Profile events in all: registrations, scans and one award per scan.
    let expected = users.len() as i64 * (1 + 2 * scans_each as i64);
    let applied = "select count(*) from projection.applied_events where projection = 'profiles'";
    system
        .eventually(Duration::from_secs(60), "the first worker is part-way through", || async {
            (system.count(applied).await >= expected / 4).then_some(())
        })
        .await;
    doomed.kill().await;
    let at_kill = system.count(applied).await;
    eprintln!("killed the worker with {at_kill} of {expected} profile events applied");
    assert!(at_kill < expected, "killed mid-stream: {at_kill} of {expected} profile events applied");

    let survivor = system.spawn_workers_process(WORKERS);
    survivor.ready(&system.http).await;
    system.settle(Duration::from_secs(90)).await;
    for user in &users {
        // 25 scans, of which the daily cap (30) rewards all: 250 points, each scan paid once.
        assert_eq!(totals(&system, user).await, (scans_each as i64, 0, 250), "{}", user.username);
        let awards = "select count(*) from eventstore.events where type = 'points.earned' and aggregate_id = $1";
        assert_eq!(count_for(&system, awards, user).await, scans_each as i64);
        let history = "select count(*) from read.activities where user_id = $1 and action in ('scan', 'points')";
        assert_eq!(count_for(&system, history, user).await, 2 * scans_each as i64);
    }
}
