//! Points, levels, history and leaderboards, through the REST APIs and the bus.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use events::{Category, Event, PointsEarned, PointsReason, ScanRecorded};
use serde_json::{Value, json};
use tests::{Options, Registered, StatusCode, TestSystem};
use uuid::Uuid;

use crate::support;

/// Waits until `user` has `points` on `GET /users/me/points`, and returns that body.
async fn points_reach(system: &TestSystem, user: &Registered, points: i64) -> Value {
    system
        .eventually(Duration::from_secs(20), &format!("{} reaches {points} points", user.username), || async {
            let res = system.query("/api/v1/users/me/points", &user.access_token, None).await;
            (res.status == StatusCode::OK && res.body["points"] == points).then_some(res.body)
        })
        .await
}

async fn scan(system: &TestSystem, user: &Registered, image: Option<&str>) -> String {
    let res = system
        .command(
            "/api/v1/scans",
            &user.access_token,
            &json!({"category": "plastic", "item_name": "PET bottle", "image_sha256": image}),
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    assert!(res.body["scan_id"].is_string());
    res.header("x-consistency-token").unwrap()
}

/// A recycle at Seoul City Hall, where a bin stands (see [`TestSystem::add_bin`]).
async fn recycle(system: &TestSystem, user: &Registered) {
    let res = system
        .command(
            "/api/v1/recycles",
            &user.access_token,
            &json!({"category": "glass", "latitude": 37.5665, "longitude": 126.978}),
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    assert_eq!(res.body["points_eligible"], true, "{}", res.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_action_pays_by_the_rules_and_levels_follow_the_thresholds() {
    let system = TestSystem::start().await;
    system.add_bin(37.5665, 126.978).await;
    let user = system.register("eco").await;

    let token = scan(&system, &user, None).await;
    let profile = system.query("/api/v1/users/me", &user.access_token, Some(&token)).await;
    assert_eq!(profile.header("x-consistency").as_deref(), Some("fresh"));
    assert_eq!(profile.body["total_scans"], 1, "the token covers the scan itself");
    points_reach(&system, &user, 10).await;

    recycle(&system, &user).await;
    points_reach(&system, &user, 60).await;
    let res = system.command("/api/v1/attendance", &user.access_token, &json!({})).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    let again = system.command("/api/v1/attendance", &user.access_token, &json!({})).await;
    again.assert_problem(StatusCode::CONFLICT, "already_checked_in");
    points_reach(&system, &user, 65).await;

    // 65 + 35 (3 scans, a second recycle would overshoot) ... reach exactly 100, still level 1.
    for _ in 0..3 {
        scan(&system, &user, None).await;
    }
    let body = points_reach(&system, &user, 95).await;
    assert_eq!(body["level"], 1);
    assert_eq!(body["points_to_next_level"], 6);
    scan(&system, &user, None).await;
    points_reach(&system, &user, 105).await;
    // This week's points come from the leaderboards projection, which may trail the profile's.
    let body = system
        .eventually(Duration::from_secs(20), "105 points this week", || async {
            let res = system.query("/api/v1/users/me/points", &user.access_token, None).await;
            (res.body["weekly_points"] == 105).then_some(res.body)
        })
        .await;
    assert_eq!(body["level"], 2, "101 and up is level 2");
    assert_eq!(body["points_to_next_level"], 301 - 105);

    let level = system.query("/api/v1/users/me/level", &user.access_token, None).await;
    assert_eq!(level.body["current_level_min_points"], 101);
    assert_eq!(level.body["next_level_min_points"], 301);
    assert_eq!(level.body["thresholds"].as_array().unwrap().len(), 5);

    let profile = system.query("/api/v1/users/me", &user.access_token, None).await;
    assert_eq!((profile.body["total_scans"].as_i64(), profile.body["total_recycles"].as_i64()), (Some(5), Some(1)));

    // The history holds every action, award and the level-up, newest first.
    let history = system
        .eventually(Duration::from_secs(10), "history complete", || async {
            let res = system.query("/api/v1/users/me/activities?limit=100", &user.access_token, None).await;
            (res.body["items"].as_array().map(Vec::len) == Some(15)).then_some(res.body)
        })
        .await;
    let actions: Vec<&str> =
        history["items"].as_array().unwrap().iter().map(|i| i["action"].as_str().unwrap()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "scan").count(), 5);
    assert_eq!(actions.iter().filter(|a| **a == "points").count(), 7);
    assert_eq!(actions.iter().filter(|a| **a == "level_up").count(), 1);
    assert!(actions.contains(&"recycle") && actions.contains(&"attendance"));
    let scans_paid: Vec<i64> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "scan")
        .map(|i| i["points_earned"].as_i64().unwrap())
        .collect();
    assert_eq!(scans_paid, [10; 5], "each scan shows what it earned");
    let times: Vec<&str> =
        history["items"].as_array().unwrap().iter().map(|i| i["created_at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_cap_and_the_image_rule_limit_scan_rewards() {
    let system = TestSystem::start_with(Options { configure: |s| s.scan_daily_cap = 3, ..Default::default() }).await;
    let user = system.register("capped").await;
    for _ in 0..5 {
        scan(&system, &user, None).await;
    }
    let token = scan(&system, &user, Some(&"a1".repeat(32))).await;
    system.query("/api/v1/users/me", &user.access_token, Some(&token)).await;
    points_reach(&system, &user, 30).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let profile = system.query("/api/v1/users/me", &user.access_token, None).await;
    assert_eq!(profile.body["points"], 30, "three rewarded scans a day");
    assert_eq!(profile.body["total_scans"], 6, "every scan still counts as a scan");

    let other = system.register("copycat").await;
    scan(&system, &other, Some(&"b2".repeat(32))).await;
    points_reach(&system, &other, 10).await;
    // The same picture again, by the same or another user, pays nothing.
    scan(&system, &other, Some(&"b2".repeat(32))).await;
    let third = system.register("third").await;
    let token = scan(&system, &third, Some(&"B2".repeat(32))).await;
    system.query("/api/v1/users/me", &third.access_token, Some(&token)).await;
    scan(&system, &third, None).await;
    points_reach(&system, &third, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(system.query("/api/v1/users/me/points", &other.access_token, None).await.body["points"], 10);
    assert_eq!(system.query("/api/v1/users/me/points", &third.access_token, None).await.body["points"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_pays_the_inviter_once_and_bad_codes_are_refused() {
    let system = TestSystem::start().await;
    let inviter = system.register("host").await;
    let me = system.query("/api/v1/users/me", &inviter.access_token, Some(&inviter.consistency_token)).await;
    let code = me.body["invite_code"].as_str().unwrap().to_owned();
    let friend = system.register_with("friend", Some(&code.to_lowercase())).await;
    points_reach(&system, &inviter, 100).await;
    let second = system.register_with("friend2", Some(&code)).await;
    points_reach(&system, &inviter, 200).await;
    assert_eq!(system.query("/api/v1/users/me/points", &friend.access_token, None).await.body["points"], 0);
    let _ = second;

    let res = system
        .post("/api/v1/auth/register", &json!({"username": "nocode", "email": "nocode@example.com", "password": "recycle2026", "invite_code": "ZZZZZZZZ"}))
        .await;
    let body = res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["errors"][0]["field"], "invite_code");

    // The same invitation re-published by another service pays nothing more.
    let (_conn, channel) = support::broker(&system).await;
    let replay = Event::new(
        "legacy-service",
        inviter.user_id,
        events::InviteAccepted { inviter_id: inviter.user_id, invitee_id: friend.user_id }.into(),
    );
    support::publish_raw(&channel, &system, "invite.accepted", &replay.to_json_bytes()).await;
    system
        .eventually(Duration::from_secs(10), "replayed invite consumed", || async {
            let n: i64 = sqlx::query_scalar("select count(*) from projection.applied_events where event_id = $1")
                .bind(replay.id)
                .fetch_one(&system.db)
                .await
                .unwrap();
            (n >= 2).then_some(())
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(system.query("/api/v1/users/me/points", &inviter.access_token, None).await.body["points"], 200);
}

fn external_scan(user_id: Uuid, scan_id: Uuid) -> Event {
    Event::new(
        "scan-service",
        user_id,
        ScanRecorded {
            scan_id,
            user_id,
            category: Category::Metal,
            item_name: "can".into(),
            confidence: Some(0.97),
            image_sha256: None,
            scanned_at: Utc::now(),
        }
        .into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_from_the_scan_service_pay_like_ours_once_however_often_they_arrive() {
    let system = TestSystem::start().await;
    let user = system.register("svc").await;
    system.query("/api/v1/users/me", &user.access_token, Some(&user.consistency_token)).await;
    let (_conn, channel) = support::broker(&system).await;
    let scan_id = Uuid::now_v7();
    let first = external_scan(user.user_id, scan_id);
    for _ in 0..3 {
        support::publish_raw(&channel, &system, "scan.recorded", &first.to_json_bytes()).await;
    }
    // Re-published under a new event id: the same scan, still paid once.
    let again = external_scan(user.user_id, scan_id);
    support::publish_raw(&channel, &system, "scan.recorded", &again.to_json_bytes()).await;
    support::publish_raw(
        &channel,
        &system,
        "scan.recorded",
        &external_scan(user.user_id, Uuid::now_v7()).to_json_bytes(),
    )
    .await;
    points_reach(&system, &user, 20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(system.query("/api/v1/users/me/points", &user.access_token, None).await.body["points"], 20);
    assert_eq!(system.count("select count(*) from points.ledger").await, 2);
}

/// A registration of `user` published by another service.
fn registration(user: Uuid, username: &str) -> Event {
    Event::new(
        "signup-service",
        user,
        events::UserRegistered {
            user_id: user,
            username: username.into(),
            nickname: "late".into(),
            provider: events::Provider::Local,
            invited_by: None,
        }
        .into(),
    )
}

/// Waits until `user`'s profile row has these `(points, total_scans)`.
async fn profile_reaches(system: &TestSystem, user: Uuid, expected: (i64, i64)) -> (i64, i64) {
    system
        .eventually(Duration::from_secs(30), &format!("profile {user} at {expected:?}"), || async {
            let row: Option<(i64, i64)> =
                sqlx::query_as("select points, total_scans from read.profiles where user_id = $1")
                    .bind(user)
                    .fetch_optional(&system.db)
                    .await
                    .unwrap();
            row.filter(|r| *r == expected)
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_events_arriving_out_of_order_give_the_same_profile() {
    let system = TestSystem::start().await;
    let (_conn, channel) = support::broker(&system).await;
    let user = system.live_account(Uuid::now_v7()).await;
    // The scan and an award arrive before the registration they depend on.
    support::publish_raw(&channel, &system, "scan.recorded", &external_scan(user, Uuid::now_v7()).to_json_bytes())
        .await;
    let bonus = Event::new(
        "admin",
        user,
        PointsEarned { user_id: user, amount: 7, reason: PointsReason::Bonus, source_event_id: Uuid::now_v7() }.into(),
    );
    support::publish_raw(&channel, &system, "points.earned", &bonus.to_json_bytes()).await;
    support::publish_raw(&channel, &system, "user.registered", &registration(user, "late_reg").to_json_bytes()).await;
    let (points, scans) = profile_reaches(&system, user, (17, 1)).await;
    assert_eq!((points, scans), (17, 1));
}

/// A burst of one person's events is applied in runs (a statement per run, not per event):
/// the profile, history and boards end as the events applied one by one would leave them; and
/// a run that reaches a profile not registered yet waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_scans_and_bonuses_lands_as_if_applied_one_by_one() {
    let system = TestSystem::start().await;
    let user = system.register("burst").await;
    system.query("/api/v1/users/me", &user.access_token, Some(&user.consistency_token)).await;
    let (_conn, channel) = support::broker(&system).await;
    let bonus = |to: Uuid| {
        Event::new(
            "admin",
            to,
            PointsEarned { user_id: to, amount: 7, reason: PointsReason::Bonus, source_event_id: Uuid::now_v7() }
                .into(),
        )
    };
    let mut confirms = Vec::new();
    for i in 0..25 {
        let scan = external_scan(user.user_id, Uuid::now_v7());
        confirms.push(support::publish_unconfirmed(&channel, &system, "scan.recorded", &scan.to_json_bytes()).await);
        if i % 2 == 0 {
            let body = bonus(user.user_id).to_json_bytes();
            confirms.push(support::publish_unconfirmed(&channel, &system, "points.earned", &body).await);
        }
    }
    for confirm in confirms.drain(..) {
        confirm.await.unwrap();
    }

    // 25 scans at 10 points (under the daily cap of 30) and 13 bonuses of 7: 341 points, level 3.
    let expected = 25 * events::rules::SCAN_POINTS + 13 * 7;
    let body = points_reach(&system, &user, expected).await;
    assert_eq!(body["level"], events::rules::level_for(expected), "{body}");
    let me = system.query("/api/v1/users/me", &user.access_token, None).await;
    assert_eq!(me.body["total_scans"], 25, "{}", me.body);
    // The cache's change counter moved once per change, however the batches fell.
    let version: i64 = sqlx::query_scalar("select version from read.profiles where user_id = $1")
        .bind(user.user_id)
        .fetch_one(&system.db)
        .await
        .unwrap();
    assert_eq!(version, 1 + 25 + 25 + 13, "registration, scans, their awards, bonuses");
    // Every scan in the history shows the points it earned, whichever was applied first.
    let history = system
        .count(&format!(
            "select count(*) from read.activities where user_id = '{}' and action = 'scan' and points_earned = {}",
            user.user_id,
            events::rules::SCAN_POINTS
        ))
        .await;
    assert_eq!(history, 25);
    let all_time: i64 = sqlx::query_scalar(
        "select points from read.leaderboard_scores where user_id = $1 and period_key = 'all-time:all'",
    )
    .bind(user.user_id)
    .fetch_one(&system.db)
    .await
    .unwrap();
    assert_eq!(all_time, expected);

    // Scans of someone whose registration comes after them: their runs wait for the profile.
    let late = system.live_account(Uuid::now_v7()).await;
    for _ in 0..5 {
        let scan = external_scan(late, Uuid::now_v7());
        confirms.push(support::publish_unconfirmed(&channel, &system, "scan.recorded", &scan.to_json_bytes()).await);
    }
    let registered = registration(late, "late_burst").to_json_bytes();
    confirms.push(support::publish_unconfirmed(&channel, &system, "user.registered", &registered).await);
    for confirm in confirms {
        confirm.await.unwrap();
    }
    let (points, scans) = profile_reaches(&system, late, (5 * events::rules::SCAN_POINTS, 5)).await;
    assert_eq!((points, scans), (50, 5));
}

/// Scans arriving in a burst are paid a run at a time, and every rule holds as if they came one
/// by one: the daily cap counts only what was paid, an image pays once (across people too), a
/// scan re-published under a new event id pays nothing more, and each level crossed is
/// announced once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_scans_is_paid_by_the_same_rules_as_one_by_one() {
    // Batches linger, so the burst meets in runs rather than trickling in one scan at a time.
    let configure = |s: &mut platform::Settings| {
        s.scan_daily_cap = 12;
        s.projector_batch_linger = Duration::from_millis(300);
    };
    let system = TestSystem::start_with(Options { configure, ..Default::default() }).await;
    let (alice, bob) = (system.register("burst_a").await, system.register("burst_b").await);
    system.query("/api/v1/users/me", &bob.access_token, Some(&bob.consistency_token)).await;
    let (_conn, channel) = support::broker(&system).await;
    let picture = "c3".repeat(32);
    let with_image = |user: Uuid, image: Option<&str>| {
        let mut scan = external_scan(user, Uuid::now_v7());
        if let events::EventData::ScanRecorded(s) = &mut scan.data {
            s.image_sha256 = image.map(str::to_owned);
        }
        scan
    };
    let mut scans = vec![with_image(alice.user_id, Some(&picture)), with_image(alice.user_id, Some(&picture))];
    scans.extend((0..15).map(|_| with_image(alice.user_id, None)));
    let mut again = with_image(alice.user_id, None);
    again.data = scans[3].data.clone(); // the same scan, a new event id
    scans.insert(5, again);
    // Bob's copy of the picture among Alice's scans, then his own.
    scans.insert(7, with_image(bob.user_id, Some(&picture)));
    scans.extend((0..3).map(|_| with_image(bob.user_id, None)));
    let mut confirms = Vec::new();
    for scan in &scans {
        confirms.push(support::publish_unconfirmed(&channel, &system, "scan.recorded", &scan.to_json_bytes()).await);
    }
    for confirm in confirms {
        confirm.await.unwrap();
    }

    // Alice: the picture once, then 11 more up to the cap of 12 = 120 points, level 2. Bob: his
    // copy of her picture pays nothing, his three other scans 30.
    let body = points_reach(&system, &alice, 12 * events::rules::SCAN_POINTS).await;
    assert_eq!(body["level"], 2, "{body}");
    points_reach(&system, &bob, 3 * events::rules::SCAN_POINTS).await;
    system.settle(Duration::from_secs(30)).await;
    assert_eq!(system.query("/api/v1/users/me/points", &alice.access_token, None).await.body["points"], 120);
    assert_eq!(system.query("/api/v1/users/me/points", &bob.access_token, None).await.body["points"], 30);
    assert_eq!(system.count("select count(*) from points.ledger").await, 15, "one entry per paid scan");
    let levels = system
        .count(&format!(
            "select count(*) from eventstore.events where type = 'level.reached' and aggregate_id = '{}'",
            alice.user_id
        ))
        .await;
    assert_eq!(levels, 1, "level 2 announced once");
    let balances: Vec<(i64, i32)> =
        sqlx::query_as("select points, level from points.balances where user_id = any($1) order by points desc")
            .bind(vec![alice.user_id, bob.user_id])
            .fetch_all(&system.db)
            .await
            .unwrap();
    assert_eq!(balances, [(120, 2), (30, 1)], "the policy's own balances agree");
    let me = system.query("/api/v1/users/me", &alice.access_token, None).await;
    assert_eq!(me.body["total_scans"], 18, "every scan counts as a scan, paid or not: {}", me.body);
}

/// The set-based writes of a run against the one-by-one ones, on the same events in crafted
/// orders: a history entry gets the sum of its awards whether they come before it, after it or
/// in the same run; boards sum awards that meet on one row; bumps wait for a missing profile
/// and skip a forgotten one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_written_at_once_match_the_events_written_one_by_one() {
    use events::AttendanceCheckedIn;
    use readmodels::{
        activities, leaderboards,
        profiles::write::{self as profiles, Bump, Written},
    };

    let system = TestSystem::start().await;
    let (batched, single) = (Uuid::now_v7(), Uuid::now_v7());
    let check_in = |user: Uuid| {
        Event::new(
            "attendance-service",
            user,
            AttendanceCheckedIn { user_id: user, date: Utc::now().date_naive() }.into(),
        )
    };
    let award = |source: &Event, amount: i64, reason: PointsReason| {
        let user = source.aggregate_id;
        Event::new(
            "points-policy",
            user,
            PointsEarned { user_id: user, amount, reason, source_event_id: source.id }.into(),
        )
    };
    let mut tx = system.db.begin().await.unwrap();
    sqlx::query("set local search_path = read, public").execute(&mut *tx).await.unwrap();

    // A check-in and its two awards (attendance and a streak bonus): one run, award first.
    let day = check_in(batched);
    let run = [award(&day, 5, PointsReason::Attendance), day.clone(), award(&day, 20, PointsReason::Streak)];
    activities::record_all(&mut tx, &run).await.unwrap();
    // The same one by one, awards on both sides of the entry.
    let other = check_in(single);
    for event in [award(&other, 20, PointsReason::Streak), other.clone(), award(&other, 5, PointsReason::Attendance)] {
        activities::record(&mut tx, &event).await.unwrap();
    }
    let entry = |id: Uuid| sqlx::query_scalar::<_, i64>("select points_earned from activities where id = $1").bind(id);
    assert_eq!(entry(day.id).fetch_one(&mut *tx).await.unwrap(), 25, "run: the sum of its awards");
    assert_eq!(entry(other.id).fetch_one(&mut *tx).await.unwrap(), 25, "one by one: the same");

    // Two awards of one person on the same boards in one statement add up.
    let at = Utc::now();
    let keys = vec!["weekly:test".to_owned(), "all-time:all".to_owned()];
    let awards: Vec<leaderboards::write::Award> = [3, 4]
        .into_iter()
        .map(|amount| leaderboards::write::Award { keys: keys.clone(), user_id: batched, amount, at })
        .collect();
    leaderboards::write::add_all(&mut tx, &awards).await.unwrap();
    let board: Vec<i64> =
        sqlx::query_scalar("select points from leaderboard_scores where user_id = $1 order by period_key")
            .bind(batched)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(board, [7, 7]);

    // Bumps: a run reaching a profile that does not exist yet waits; a forgotten one is skipped.
    let nobody = [(Uuid::now_v7(), Bump::Scan), (Uuid::now_v7(), Bump::Points(10))];
    assert_eq!(profiles::bump_all(&mut tx, &nobody).await.unwrap(), Written::NotYet);
    let forgotten = Uuid::now_v7();
    sqlx::query("insert into profiles_tombstones (user_id) values ($1)")
        .bind(forgotten)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(profiles::bump_all(&mut tx, &[(forgotten, Bump::Scan)]).await.unwrap(), Written::Done);
    tx.rollback().await.unwrap();
}

async fn seed_points(
    system: &TestSystem,
    channel: &lapin::Channel,
    user: Uuid,
    amount: i64,
    at: chrono::DateTime<Utc>,
) {
    let mut e = Event::new(
        "admin",
        user,
        PointsEarned { user_id: user, amount, reason: PointsReason::Bonus, source_event_id: Uuid::now_v7() }.into(),
    );
    e.occurred_at = at;
    support::publish_raw(channel, system, "points.earned", &e.to_json_bytes()).await;
}

async fn board(system: &TestSystem, bearer: &str, path: &str) -> Value {
    let res = system.query(path, bearer, None).await;
    assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.body);
    res.body
}

fn ranks(board: &Value) -> Vec<(i64, i64)> {
    board["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["rank"].as_i64().unwrap(), e["points"].as_i64().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaderboards_rank_with_ties_by_period_and_survive_a_redis_flush() {
    let system = TestSystem::start().await;
    let (_conn, channel) = support::broker(&system).await;
    let users = futures::future::join_all((0..4).map(|i| system.register(format!("r{i}")))).await;
    for u in &users {
        system.query("/api/v1/users/me", &u.access_token, Some(&u.consistency_token)).await;
    }
    let now = Utc::now();
    // users[1] and users[2] tie at 10; users[1] got there first.
    seed_points(&system, &channel, users[0].user_id, 50, now - chrono::TimeDelta::seconds(50)).await;
    seed_points(&system, &channel, users[1].user_id, 10, now - chrono::TimeDelta::seconds(40)).await;
    seed_points(&system, &channel, users[2].user_id, 10, now - chrono::TimeDelta::seconds(30)).await;
    seed_points(&system, &channel, users[3].user_id, 5, now - chrono::TimeDelta::seconds(20)).await;
    let viewer = &users[3].access_token;
    let weekly = system
        .eventually(Duration::from_secs(15), "weekly board", || async {
            let b = board(&system, viewer, "/api/v1/leaderboards/weekly").await;
            (b["items"].as_array().unwrap().len() == 4).then_some(b)
        })
        .await;
    assert_eq!(ranks(&weekly), [(1, 50), (2, 10), (2, 10), (4, 5)], "competition ranking");
    assert_eq!(weekly["items"][1]["user_id"], users[1].user_id.to_string(), "the tie goes to whoever got there first");
    assert_eq!(weekly["items"][0]["nickname"], users[0].username);
    assert!(weekly["next_reset_at"].as_str().is_some());
    assert_eq!(
        weekly["period_key"],
        readmodels::periods::Period::Weekly.key_at(now, chrono_tz::Asia::Seoul).split_once(':').unwrap().1
    );

    let page1 = board(&system, viewer, "/api/v1/leaderboards/all-time?limit=2").await;
    assert_eq!(ranks(&page1), [(1, 50), (2, 10)]);
    assert_eq!(page1["next_reset_at"], Value::Null);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2 = board(&system, viewer, &format!("/api/v1/leaderboards/all-time?limit=2&cursor={cursor}")).await;
    assert_eq!(ranks(&page2), [(2, 10), (4, 5)]);
    assert_eq!(page2["next_cursor"], Value::Null);

    let me = board(&system, &users[2].access_token, "/api/v1/leaderboards/monthly/me").await;
    assert_eq!((me["rank"].as_i64(), me["points"].as_i64()), (Some(2), Some(10)));
    assert_eq!(me["entries"].as_array().unwrap().len(), 4, "two above, me, one below");

    // Flush this test's Redis keys: the boards come back from PostgreSQL.
    let client = redis::Client::open(system.settings.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}:*", system.settings.redis_prefix)).query_async(&mut conn).await.unwrap();
    assert!(keys.iter().any(|k| k.contains(":lb:")), "boards were in Redis: {keys:?}");
    let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.unwrap();
    // A page query-api does not hold in memory yet (another limit), so it goes to Redis.
    let after = board(&system, viewer, "/api/v1/leaderboards/weekly?limit=10").await;
    assert_eq!(ranks(&after), ranks(&weekly));
    let exists: bool = redis::cmd("EXISTS")
        .arg(format!(
            "{}:lb:{}",
            system.settings.redis_prefix,
            readmodels::periods::Period::Weekly.key_at(now, chrono_tz::Asia::Seoul)
        ))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(exists, "rebuilt in Redis on demand");

    let bad = system.query("/api/v1/leaderboards/daily", viewer, None).await;
    bad.assert_problem(StatusCode::NOT_FOUND, "unknown_period");
    let bad = system.query("/api/v1/leaderboards/weekly?period_key=2026-13", viewer, None).await;
    bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    // Well formed, but not a period of this board (a month on the weekly one; a week 2025 lacks).
    let none = system.query("/api/v1/leaderboards/weekly?period_key=2026-11", viewer, None).await;
    none.assert_problem(StatusCode::NOT_FOUND, "unknown_period_key");
    let none = system.query("/api/v1/leaderboards/weekly/me?period_key=2025-W53", viewer, None).await;
    none.assert_problem(StatusCode::NOT_FOUND, "unknown_period_key");
    let bad = system.query("/api/v1/leaderboards/weekly?limit=1000", viewer, None).await;
    bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_land_in_the_week_and_month_of_seoul_time() {
    let system = TestSystem::start().await;
    let (_conn, channel) = support::broker(&system).await;
    let user = system.register("boundary").await;
    system.query("/api/v1/users/me", &user.access_token, Some(&user.consistency_token)).await;
    // Sunday 2026-11-29 23:59:59 KST (week 48, November) and Monday 2026-11-30 00:00:00 KST
    // (week 49, still November); then Tuesday 2026-12-01 00:00:00 KST (December).
    let sunday = Utc.with_ymd_and_hms(2026, 11, 29, 14, 59, 59).unwrap();
    seed_points(&system, &channel, user.user_id, 1, sunday).await;
    seed_points(&system, &channel, user.user_id, 20, sunday + chrono::TimeDelta::seconds(1)).await;
    seed_points(&system, &channel, user.user_id, 300, Utc.with_ymd_and_hms(2026, 11, 30, 15, 0, 0).unwrap()).await;
    let token = &user.access_token;
    let check = |path: &'static str, expected: i64| {
        let system = &system;
        async move {
            system
                .eventually(Duration::from_secs(15), path, || async {
                    let b = board(system, token, path).await;
                    (b["points"] == expected).then_some(())
                })
                .await
        }
    };
    check("/api/v1/leaderboards/weekly/me?period_key=2026-W48", 1).await;
    check("/api/v1/leaderboards/weekly/me?period_key=2026-W49", 320).await;
    check("/api/v1/leaderboards/monthly/me?period_key=2026-11", 21).await;
    check("/api/v1/leaderboards/monthly/me?period_key=2026-12", 300).await;
    check("/api/v1/leaderboards/all-time/me", 321).await;
    let week = board(&system, token, "/api/v1/leaderboards/weekly?period_key=2026-W48").await;
    assert_eq!(week["period_key"], "2026-W48");
    assert_eq!(ranks(&week), [(1, 1)]);
    let past = board(&system, token, "/api/v1/leaderboards/weekly?period_key=2025-W40").await;
    assert_eq!(past["next_reset_at"], Value::Null, "a past period does not reset");
    assert_eq!(past["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_every_query_still_answers_from_postgres() {
    let system = TestSystem::start_with(Options {
        configure: |s| s.redis_url = "redis://127.0.0.1:1".into(),
        ..Default::default()
    })
    .await;
    let user = system.register("noredis").await;
    let token = scan(&system, &user, None).await;
    let res = system.query("/api/v1/users/me", &user.access_token, Some(&token)).await;
    assert_eq!(res.status, StatusCode::OK);
    points_reach(&system, &user, 10).await;
    // The board comes from the leaderboards projection, which may trail the profile's.
    system
        .eventually(Duration::from_secs(20), "on the weekly board from PostgreSQL", || async {
            let b = board(&system, &user.access_token, "/api/v1/leaderboards/weekly").await;
            (ranks(&b) == [(1, 10)]).then_some(())
        })
        .await;
    let me = board(&system, &user.access_token, "/api/v1/leaderboards/weekly/me").await;
    assert_eq!(me["rank"], 1);
    // The API still serves, so it stays ready; its readiness says what is degraded.
    let ready = system.http.get(format!("{}/ready", system.query_url)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK, "an API that answers from PostgreSQL stays in its Service");
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "degraded", "{body}");
    assert!(body["checks"]["redis"].as_str().unwrap().starts_with("down"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_grants_a_bonus_and_it_can_level_a_user_up() {
    let system = TestSystem::start().await;
    let user = system.register("lucky").await;
    let admin = system.register("boss").await;
    let body = json!({"user_id": user.user_id, "amount": 700});
    system
        .command("/api/v1/admin/points/bonus", &admin.access_token, &body)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");

    let admin_token = &system.promote_to_admin(&admin).await;
    let res =
        system.command("/api/v1/admin/points/bonus", admin_token, &json!({"user_id": user.user_id, "amount": 0})).await;
    res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let res = system
        .command("/api/v1/admin/points/bonus", admin_token, &json!({"user_id": Uuid::now_v7(), "amount": 5}))
        .await;
    res.assert_problem(StatusCode::NOT_FOUND, "user_not_found");
    let res = system.command("/api/v1/admin/points/bonus", admin_token, &body).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);

    let points = points_reach(&system, &user, 700).await;
    assert_eq!(points["level"], 4, "601-1000 is level 4");
    let levels = system
        .eventually(Duration::from_secs(10), "level-ups in history", || async {
            let res = system.query("/api/v1/users/me/activities", &user.access_token, None).await;
            let levels: Vec<i64> = res.body["items"]
                .as_array()?
                .iter()
                .filter(|i| i["action"] == "level_up")
                .map(|i| i["metadata"]["level"].as_i64().unwrap())
                .collect();
            (levels.len() == 3).then_some(levels)
        })
        .await;
    let mut sorted = levels.clone();
    sorted.sort();
    assert_eq!(sorted, [2, 3, 4], "one level.reached per level crossed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_pages_stay_stable_while_new_activity_arrives() {
    let system = TestSystem::start().await;
    let user = system.register("pager").await;
    for _ in 0..6 {
        scan(&system, &user, None).await;
    }
    system
        .eventually(Duration::from_secs(15), "12 activities", || async {
            let res = system.query("/api/v1/users/me/activities?limit=100", &user.access_token, None).await;
            (res.body["items"].as_array().map(Vec::len) == Some(12)).then_some(())
        })
        .await;
    let first = system.query("/api/v1/users/me/activities?limit=5", &user.access_token, None).await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    // New activity arrives between pages; the next page continues where the first ended.
    let token = scan(&system, &user, None).await;
    system.query("/api/v1/users/me/activities", &user.access_token, Some(&token)).await;
    let mut seen: Vec<String> =
        first.body["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect();
    let mut next = Some(cursor);
    while let Some(c) = next {
        let page =
            system.query(&format!("/api/v1/users/me/activities?limit=5&cursor={c}"), &user.access_token, None).await;
        seen.extend(page.body["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        next = page.body["next_cursor"].as_str().map(str::to_owned);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no item twice");
    assert_eq!(seen.len(), 12, "every item that existed when paging began, exactly once");
    let bad = system.query("/api/v1/users/me/activities?cursor=nonsense", &user.access_token, None).await;
    bad.assert_problem(StatusCode::BAD_REQUEST, "invalid_cursor");
    let bad = system.query("/api/v1/users/me/activities?limit=abc", &user.access_token, None).await;
    bad.assert_problem(StatusCode::BAD_REQUEST, "invalid_query");
    let bad = system.query("/api/v1/users/me/activities?limit=0", &user.access_token, None).await;
    bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recycle_pays_only_near_a_known_bin_or_center_and_says_why() {
    let system = TestSystem::start().await;
    let bin = system.add_bin(37.5665, 126.978).await;
    let user = system.register("honest").await;
    let send = |body: Value| {
        let system = &system;
        let token = user.access_token.clone();
        async move { system.command("/api/v1/recycles", &token, &body).await }
    };
    // 60 m from the bin: pays.
    let near = send(json!({"category": "glass", "latitude": 37.5670, "longitude": 126.9782})).await;
    assert_eq!(near.body["points_eligible"], true, "{}", near.body);
    assert_eq!(near.body["reason"], "near_known_place");
    assert_eq!(near.body["place_id"], json!(bin));
    let metres = near.body["distance_m"].as_f64().unwrap();
    assert!((50.0..70.0).contains(&metres), "{metres}");
    points_reach(&system, &user, 50).await;

    // 1.1 km away, and no position at all: recorded, not paid.
    let far = send(json!({"category": "glass", "latitude": 37.5765, "longitude": 126.978})).await;
    assert_eq!(
        (far.body["points_eligible"].clone(), far.body["reason"].clone()),
        (json!(false), json!("no_known_place_nearby"))
    );
    let nowhere = send(json!({"category": "glass"})).await;
    assert_eq!(
        (nowhere.body["points_eligible"].clone(), nowhere.body["reason"].clone()),
        (json!(false), json!("no_location"))
    );
    let token = nowhere.header("x-consistency-token").unwrap();
    let me = system.query("/api/v1/users/me", &user.access_token, Some(&token)).await;
    assert_eq!(me.body["total_recycles"], 3, "every recycle is in the history");
    system.settle(Duration::from_secs(20)).await;
    let me = system.query("/api/v1/users/me", &user.access_token, None).await;
    assert_eq!(me.body["points"], 50, "only the one near the bin paid");
    let history = system.query("/api/v1/users/me/activities?limit=100", &user.access_token, None).await;
    let recycles: Vec<i64> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "recycle")
        .map(|i| i["points_earned"].as_i64().unwrap())
        .collect();
    assert_eq!(recycles.len(), 3);
    assert_eq!(recycles.iter().sum::<i64>(), 50);

    // Half a position is a validation error, as before.
    send(json!({"category": "glass", "latitude": 37.5}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    send(json!({"category": "glass", "latitude": 95.0, "longitude": 0.0}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_a_commands_token_shows_what_the_command_caused_every_time() {
    let system = TestSystem::start().await;
    let user = system.register("causal").await;
    for k in 1..=11i64 {
        let res = system
            .command(
                "/api/v1/scans",
                &user.access_token,
                &json!({"category": "metal", "item_name": format!("can {k}")}),
            )
            .await;
        assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
        let token = res.header("x-consistency-token").unwrap();
        // The token names only the scan; the points.earned (and at 110 points the level.reached)
        // the points policy derived from it are waited for too.
        let me = system.query("/api/v1/users/me", &user.access_token, Some(&token)).await;
        assert_eq!(me.header("x-consistency").as_deref(), Some("fresh"));
        assert_eq!((me.body["total_scans"].as_i64(), me.body["points"].as_i64()), (Some(k), Some(10 * k)), "scan {k}");
        let history = system.query("/api/v1/users/me/activities?limit=3", &user.access_token, Some(&token)).await;
        let newest_scan = history.body["items"].as_array().unwrap().iter().find(|a| a["action"] == "scan").unwrap();
        assert_eq!(newest_scan["points_earned"], 10, "scan {k}: {}", history.body);
        if k == 11 {
            let level = system.query("/api/v1/users/me/level", &user.access_token, Some(&token)).await;
            assert_eq!(level.body["level"], 2, "the level the scan reached: {}", level.body);
            assert_eq!(history.body["items"][0]["action"], "level_up", "{}", history.body);
        }
    }
}

/// query-api answers hot reads from memory (`query-api/src/local.rs`); what the projectors push
/// after each change must evict them, so a client that never sends a token still sees its scan,
/// its points, its place on the board and a renamed neighbour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_held_in_memory_follow_every_change_without_a_token() {
    let system = TestSystem::start().await;
    let leader = system.register("holder").await;
    let viewer = system.register("watcher").await;
    for u in [&leader, &viewer] {
        system.query("/api/v1/users/me", &u.access_token, Some(&u.consistency_token)).await;
    }
    let token = &viewer.access_token;
    // Once query-api is subscribed to changes (its caches are off until then) …
    let client = redis::Client::open(system.settings.redis_url.as_str()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let channel = format!("{}:changes", system.settings.redis_prefix);
    system
        .eventually(Duration::from_secs(10), "query-api subscribed to read-model changes", || {
            let (mut conn, channel) = (conn.clone(), channel.clone());
            async move {
                let (_, n): (String, i64) =
                    redis::cmd("PUBSUB").arg("NUMSUB").arg(channel).query_async(&mut conn).await.unwrap();
                (n >= 1).then_some(())
            }
        })
        .await;
    // … warm every cache: the second read of each is served from memory.
    for _ in 0..2 {
        assert_eq!(system.query("/api/v1/users/me", &leader.access_token, None).await.body["total_scans"], 0);
        assert_eq!(system.query("/api/v1/users/me/points", &leader.access_token, None).await.body["weekly_points"], 0);
        assert_eq!(board(&system, token, "/api/v1/leaderboards/weekly").await["items"], json!([]));
        assert_eq!(board(&system, &leader.access_token, "/api/v1/leaderboards/weekly/me").await["rank"], Value::Null);
    }

    // Served from memory: a change behind the projector's back (no event, no published change)
    // goes unseen, in PostgreSQL and in Redis alike.
    sqlx::query("update read.profiles set bio = 'behind its back' where user_id = $1")
        .bind(leader.user_id)
        .execute(&system.db)
        .await
        .unwrap();
    let mut redis = conn.clone();
    let profile_key = format!("{}:profile:{}", system.settings.redis_prefix, leader.user_id);
    let _: () = redis::cmd("DEL").arg(&profile_key).query_async(&mut redis).await.unwrap();
    assert_eq!(system.query("/api/v1/users/me", &leader.access_token, None).await.body["bio"], "");

    scan(&system, &leader, None).await;
    let wait = Duration::from_secs(10);
    system
        .eventually(wait, "the scan on the profile", || async {
            let me = system.query("/api/v1/users/me", &leader.access_token, None).await;
            let seen = me.body["total_scans"] == 1 && me.body["points"].as_i64() > Some(0);
            (seen && me.body["bio"] == "behind its back").then_some(())
        })
        .await;
    let points = system.query("/api/v1/users/me/points", &leader.access_token, None).await.body;
    system
        .eventually(wait, "this week's points", || async {
            let p = system.query("/api/v1/users/me/points", &leader.access_token, None).await.body;
            (p["weekly_points"] == points["points"]).then_some(())
        })
        .await;
    system
        .eventually(wait, "the board", || async {
            let b = board(&system, token, "/api/v1/leaderboards/weekly").await;
            (b["items"].as_array().unwrap().len() == 1).then_some(())
        })
        .await;
    system
        .eventually(wait, "my rank", || async {
            let me = board(&system, &leader.access_token, "/api/v1/leaderboards/weekly/me").await;
            (me["rank"] == 1).then_some(())
        })
        .await;

    let req = system
        .http
        .patch(format!("{}/api/v1/users/me", system.command_url))
        .bearer_auth(&leader.access_token)
        .json(&json!({"nickname": "새 이름"}));
    assert_eq!(req.send().await.unwrap().status(), StatusCode::ACCEPTED);
    system
        .eventually(wait, "the new name on the board", || async {
            let b = board(&system, token, "/api/v1/leaderboards/weekly").await;
            (b["items"][0]["nickname"] == "새 이름").then_some(())
        })
        .await;
}
