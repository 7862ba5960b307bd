//! Rolling updates lose nothing: each role stopped with SIGTERM under load, its replacement
//! already running, gives no failed request and no lost or doubled event.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::json;
use tests::{Options, StatusCode, TestSystem};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

const USERS: usize = 8;
const SCANS_PER_USER: usize = 25; // under the daily cap of 30: every scan pays

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_each_role_under_load_fails_no_request_and_loses_or_doubles_no_event() {
    let system = TestSystem::start_with(Options { workers: false, ..Default::default() }).await;
    let exe = env!("CARGO_BIN_EXE_workers-under-test");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let first_workers = system.spawn_workers_process(exe);
    first_workers.ready(&http).await;
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(system.register(format!("roller{i}")).await);
    }

    // Our own command-api replicas, so one can be stopped while the other serves.
    let mut settings = system.settings.clone();
    settings.migrate_on_start = false;
    let old_api = command_api::App::build(settings.clone()).await.unwrap();
    let old_stop = CancellationToken::new();
    let old_url = format!("http://127.0.0.1:{}", old_api.port());
    let old_task = tokio::spawn(old_api.run_until_stopped(old_stop.clone()));
    let target = Arc::new(RwLock::new(old_url));
    let old_query = query_api::App::build(settings.clone()).await.unwrap();
    let old_query_stop = CancellationToken::new();
    let read_target = Arc::new(RwLock::new(format!("http://127.0.0.1:{}", old_query.port())));
    let old_query_task = tokio::spawn(old_query.run_until_stopped(old_query_stop.clone()));

    // The load: every user scans SCANS_PER_USER times, four requests in flight at a time.
    let sent = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for chunk in users.chunks(USERS / 4) {
        let chunk: Vec<(String, uuid::Uuid)> = chunk.iter().map(|u| (u.access_token.clone(), u.user_id)).collect();
        let (http, target, sent) = (http.clone(), target.clone(), sent.clone());
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for round in 0..SCANS_PER_USER {
                for (token, _) in &chunk {
                    let url = format!("{}/api/v1/scans", target.read().await);
                    let res = http
                        .post(url)
                        .bearer_auth(token)
                        .json(&json!({"category": "plastic", "item_name": format!("bottle {round}")}))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == StatusCode::ACCEPTED => {}
                        Ok(r) => failures.push(format!("{}", r.status())),
                        Err(e) => failures.push(e.to_string()),
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            failures
        }));
    }
    // And reads, all along, from whichever query-api replica is current.
    let reading = CancellationToken::new();
    let reader = {
        let (http, target, reading, token) =
            (http.clone(), read_target.clone(), reading.clone(), users[0].access_token.clone());
        tokio::spawn(async move {
            let (mut reads, mut failures) = (0, Vec::new());
            while !reading.is_cancelled() {
                let url = format!("{}/api/v1/users/me", target.read().await);
                match http.get(url).bearer_auth(&token).send().await {
                    Ok(r) if r.status() == StatusCode::OK => reads += 1,
                    Ok(r) => failures.push(format!("{}", r.status())),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            (reads, failures)
        })
    };
    let total = USERS * SCANS_PER_USER;
    let wait_for = |n: usize| {
        let sent = sent.clone();
        async move {
            while sent.load(Ordering::Relaxed) < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };

    // A third of the way: roll command-api. The new replica takes new requests (the Service
    // stops routing to the old pod during preStop), then the old one gets SIGTERM and drains.
    wait_for(total / 3).await;
    let new_api = command_api::App::build(settings.clone()).await.unwrap();
    let new_stop = CancellationToken::new();
    *target.write().await = format!("http://127.0.0.1:{}", new_api.port());
    let new_task = tokio::spawn(new_api.run_until_stopped(new_stop.clone()));
    old_stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), old_task).await.expect("drained in time").unwrap().unwrap();

    // Half way: roll query-api the same way, under the reads.
    wait_for(total / 2).await;
    let new_query = query_api::App::build(settings.clone()).await.unwrap();
    *read_target.write().await = format!("http://127.0.0.1:{}", new_query.port());
    let new_query_task = tokio::spawn(new_query.run_until_stopped(new_stop.clone()));
    old_query_stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), old_query_task).await.expect("drained in time").unwrap().unwrap();

    // Two thirds: roll the workers. The replacement starts, then the old process gets SIGTERM
    // in the middle of its batches.
    wait_for(2 * total / 3).await;
    let second_workers = system.spawn_workers_process(exe);
    second_workers.ready(&http).await;
    assert!(first_workers.terminate().await, "the old workers process exits cleanly on SIGTERM");

    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.unwrap());
    }
    assert!(failures.is_empty(), "no command failed across the restarts: {failures:?}");
    reading.cancel();
    let (reads, read_failures) = reader.await.unwrap();
    assert!(reads > 0 && read_failures.is_empty(), "{reads} reads; failed: {read_failures:?}");

    // Every scan paid exactly once and reached every read model exactly once.
    let expected = (SCANS_PER_USER * 10) as i64;
    for user in &users {
        let points: i64 = system
            .eventually(Duration::from_secs(60), "all points visible", || async {
                let p: Option<i64> = sqlx::query_scalar("select points from read.profiles where user_id = $1")
                    .bind(user.user_id)
                    .fetch_optional(&system.db)
                    .await
                    .unwrap();
                p.filter(|p| *p >= expected)
            })
            .await;
        assert_eq!(points, expected, "{}: nothing lost, nothing doubled", user.username);
    }
    system.settle(Duration::from_secs(2)).await;
    assert_eq!(system.count("select count(*) from points.ledger").await, total as i64, "one award per scan");
    assert_eq!(
        system.count("select count(*) from read.activities where action = 'scan'").await,
        total as i64,
        "one history row per scan"
    );
    assert_eq!(
        system.count("select coalesce(sum(total_scans), 0)::bigint from read.profiles").await,
        total as i64,
        "every scan counted once"
    );
    new_stop.cancel();
    let _ = new_task.await;
    let _ = new_query_task.await;
    drop(second_workers);
}
