//! The log is the truth: hostile and broken messages from other services change nothing that a
//! rebuild from the log would not reproduce, and each is parked with its reason.

use std::{collections::BTreeMap, time::Duration};

use chrono::Utc;
use events::{Category, Event, PointsEarned, PointsReason, ScanRecorded};
use platform::topology::{INGEST, POINTS_POLICY, READ_MODELS};
use serde_json::json;
use tests::TestSystem;
use uuid::Uuid;

use crate::{rebuild, support};

fn scan(user_id: Uuid, item_name: &str) -> Event {
    Event::new(
        "scan-service",
        user_id,
        ScanRecorded {
            scan_id: Uuid::now_v7(),
            user_id,
            category: Category::Plastic,
            item_name: item_name.into(),
            confidence: Some(0.9),
            image_sha256: None,
            scanned_at: Utc::now(),
        }
        .into(),
    )
}

/// Reasons of everything parked in `queue`, counted.
async fn parked_reasons(channel: &lapin::Channel, queue: &str, expected: usize) -> BTreeMap<String, usize> {
    let mut reasons = BTreeMap::new();
    for p in support::take_parked(channel, queue, expected).await {
        eprintln!("parked in {queue}: {} ({})", p.reason, p.detail);
        *reasons.entry(p.reason).or_default() += 1;
    }
    reasons
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_change_nothing_a_rebuild_would_not_reproduce() {
    let system = TestSystem::start().await;
    let user = system.register("honest").await;
    system.query("/api/v1/users/me", &user.access_token, Some(&user.consistency_token)).await;
    let (_conn, channel) = support::broker(&system).await;
    let publish = |routing_key: &'static str, body: Vec<u8>| {
        let (channel, system) = (&channel, &system);
        async move { support::publish_raw(channel, system, routing_key, &body).await }
    };

    // One valid scan from the scan service, sent three times: pays once.
    let valid = scan(user.user_id, "생수병");
    for _ in 0..3 {
        publish("scan.recorded", valid.to_json_bytes()).await;
    }
    // The same id with another body: the first one stands.
    let mut forged = valid.to_raw();
    forged.data["item_name"] = json!("금괴");
    forged.data["category"] = json!("metal");
    publish("scan.recorded", serde_json::to_vec(&forged).unwrap()).await;
    // A NUL the log cannot store: refused by the contract before any effect.
    publish("scan.recorded", scan(user.user_id, "a\u{0}b").to_json_bytes()).await;
    // A user without an account: refused, nothing paid.
    publish("scan.recorded", scan(Uuid::now_v7(), "ghost bottle").to_json_bytes()).await;
    // A deleted-looking user: an account row without a live account.
    let gone = system.live_account(Uuid::now_v7()).await;
    sqlx::query("update auth.users set deleted_at = now() where id = $1").bind(gone).execute(&system.db).await.unwrap();
    publish("scan.recorded", scan(gone, "ghost can").to_json_bytes()).await;
    // A reward too large for any balance, a date the log cannot hold, and plain garbage.
    let huge = Event::new(
        "admin-tool",
        user.user_id,
        PointsEarned { user_id: user.user_id, amount: 1, reason: PointsReason::Bonus, source_event_id: Uuid::now_v7() }
            .into(),
    );
    let mut huge = huge.to_raw();
    huge.data["amount"] = json!(9_000_000_000_000_000_000u64);
    publish("points.earned", serde_json::to_vec(&huge).unwrap()).await;
    let mut ancient = scan(user.user_id, "fossil").to_raw();
    ancient.occurred_at = "1500-01-01T00:00:00Z".parse().unwrap();
    publish("scan.recorded", serde_json::to_vec(&ancient).unwrap()).await;
    publish("scan.recorded", b"{not json".to_vec()).await;
    let mut unknown = scan(user.user_id, "what is this").to_raw();
    unknown.event_type = "scan.exploded".into();
    publish("scan.exploded", serde_json::to_vec(&unknown).unwrap()).await;
    let mut future_version = scan(user.user_id, "from the future").to_raw();
    future_version.version = 7;
    publish("scan.recorded", serde_json::to_vec(&future_version).unwrap()).await;

    // Ingest sees every message and parks what it must, each with its reason.
    let ingest = parked_reasons(&channel, &system.topology().parked_queue(&INGEST), 10).await;
    let expected: BTreeMap<String, usize> = [
        ("conflicting_duplicate", 1),
        ("malformed_envelope", 1),
        ("schema_violation", 3),
        ("unknown_type", 1),
        ("unknown_user", 2),
        ("unsupported_version", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(ingest, expected, "ingest parks every bad message with its reason");
    // The points policy refuses the same ones the same way (it never sees the unknown type).
    let policy = parked_reasons(&channel, &system.topology().parked_queue(&POINTS_POLICY), 7).await;
    assert_eq!(policy.get("unknown_user"), Some(&2), "{policy:?}");
    assert_eq!(policy.get("schema_violation"), Some(&3), "{policy:?}");
    assert!(!policy.contains_key("retries_exhausted"), "nothing half-applied and retried: {policy:?}");

    // Exactly one scan paid, the first body's.
    let profile = system
        .eventually(Duration::from_secs(20), "the valid scan paid", || async {
            let res = system.query("/api/v1/users/me", &user.access_token, None).await;
            (res.body["points"] == 10 && res.body["total_scans"] == 1).then_some(res.body)
        })
        .await;
    system.settle(Duration::from_secs(3)).await;
    let again = system.query("/api/v1/users/me", &user.access_token, None).await.body;
    assert_eq!((again["points"].clone(), again["total_scans"].clone()), (json!(10), json!(1)), "{profile}");
    let logged: String = sqlx::query_scalar("select data->>'item_name' from eventstore.events where id = $1")
        .bind(valid.id)
        .fetch_one(&system.db)
        .await
        .unwrap();
    assert_eq!(logged, "생수병", "the first body is the one in the log");
    assert_eq!(
        system
            .count(
                "select count(*) from points.ledger l
                 where not exists (select 1 from eventstore.events e where e.id = l.source_event_id)"
            )
            .await,
        0,
        "every award is for an event in the log"
    );
    assert_eq!(
        system.count("select count(*) from eventstore.events where aggregate_type = 'user' and aggregate_id not in (select id from auth.users)").await,
        0,
        "no event about someone without an account reached the log"
    );
    let parked_profiles = parked_reasons(&channel, &system.topology().parked_queue(&READ_MODELS), 7).await;
    assert!(!parked_profiles.contains_key("retries_exhausted"), "{parked_profiles:?}");

    // The log is the truth: rebuilding every projection from it gives the live read models.
    let live = rebuild::read_models(&system).await;
    for name in ["profiles", "activities", "leaderboards", "guide", "places"] {
        let report = rebuild::projector(&system, name).rebuild(&system.db, |_| {}).await.unwrap();
        assert_eq!(report.skipped, 0, "{name}: {:?}", report.skipped_samples);
    }
    assert_eq!(rebuild::read_models(&system).await, live, "a rebuild from the log reproduces every read model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_database_refusal_parks_at_once() {
    let system = TestSystem::start().await;
    let user = system.register("overflow").await;
    system.query("/api/v1/users/me", &user.access_token, Some(&user.consistency_token)).await;
    // A profile one award away from what a bigint holds: adding the next award overflows
    // (SQLSTATE 22003), which no retry can fix.
    sqlx::query("update read.profiles set points = $2 where user_id = $1")
        .bind(user.user_id)
        .bind(i64::MAX - 5)
        .execute(&system.db)
        .await
        .unwrap();
    let (_conn, channel) = support::broker(&system).await;
    let bonus = Event::new(
        "admin-tool",
        user.user_id,
        PointsEarned {
            user_id: user.user_id,
            amount: 10,
            reason: PointsReason::Bonus,
            source_event_id: Uuid::now_v7(),
        }
        .into(),
    );
    support::publish_raw(&channel, &system, "points.earned", &bonus.to_json_bytes()).await;
    let parked = support::take_parked(&channel, &system.topology().parked_queue(&READ_MODELS), 1).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].reason, "rejected_by_database", "{}", parked[0].detail);
    assert_eq!(parked[0].retry_count, 0, "parked at once, not after the retry tiers");
    assert_eq!(parked[0].routing_key, "points.earned");
}
