//! The published event contract, exercised from outside Rust: `examples/publish_scan.py`
//! (Python, pika) publishes to the real broker the way docs/events.md tells other teams to.

use std::{path::PathBuf, time::Duration};

use platform::topology::INGEST;
use tests::TestSystem;
use workers::ops;

async fn publish_from_python(system: &TestSystem, args: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/publish_scan.py");
    let out = tokio::process::Command::new(tests::python())
        .arg(script)
        .args(args)
        .env("AMQP_URL", &system.settings.amqp_url)
        .env("AMQP_PREFIX", &system.settings.amqp_prefix)
        .output()
        .await
        .expect("running python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'pika'"),
        "the contract example needs pika: run scripts/test.sh (it prepares target/pyenv) or `pip install pika==1.3.2`"
    );
    assert!(out.status.success(), "publish_scan.py failed: {stderr}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_service_publishes_a_scan_that_pays_and_a_broken_one_that_is_parked_with_its_reason() {
    let system = TestSystem::start().await;
    let user = system.register("pythonista").await;
    let user_id = user.user_id.to_string();

    let event_id = publish_from_python(&system, &["--user-id", &user_id, "--item", "페트병"]).await;
    let me = system
        .eventually(Duration::from_secs(20), "the Python scan counted and paid", || async {
            let me = system.query("/api/v1/users/me", &user.access_token, None).await.body;
            (me["total_scans"] == 1 && me["points"] == 10).then_some(me)
        })
        .await;
    assert_eq!(me["level"], 1);
    let (source, version): (String, i32) =
        sqlx::query_as("select source, version from eventstore.events where id = $1::uuid")
            .bind(&event_id)
            .fetch_one(&system.db)
            .await
            .unwrap();
    assert_eq!((source.as_str(), version), ("scan-service", 1), "stored in the log as sent, for replays");

    let broken = publish_from_python(&system, &["--user-id", &user_id, "--broken"]).await;
    let parked = system
        .eventually(Duration::from_secs(20), "the broken scan parked by ingest", || async {
            let list = ops::parked_list(&system.settings, &INGEST, 50).await.ok()?;
            list.into_iter().find(|p| p.event_id.as_deref() == Some(broken.as_str()))
        })
        .await;
    assert_eq!(parked.reason, "schema_violation");
    assert!(parked.detail.contains("confidence"), "{}", parked.detail);
    let stored = system.count(&format!("select count(*) from eventstore.events where id = '{broken}'")).await;
    assert_eq!(stored, 0, "an invalid event never reaches the log");
    let me = system.query("/api/v1/users/me", &user.access_token, None).await.body;
    assert_eq!(me["total_scans"], 1, "nor the read models");
}
