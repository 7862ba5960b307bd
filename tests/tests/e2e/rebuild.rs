//! Rebuilding projections from the log and replaying ranges of it, as `ecoctl` does.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

use chrono::Utc;
use platform::redis::Redis;
use readmodels::leaderboards as leaderboard;
use serde_json::{Value, json};
use tests::{Registered, StatusCode, TestSystem};
use workers::rebuild::Named;

/// Every user-visible column of the three projections, as JSON, rows in a fixed order.
/// Left out: `updated_at`/`forgotten_at` (wall-clock bookkeeping) and `profiles.version` (the
/// cache's change counter, which counts stale updates skipped differently in another order).
pub(crate) async fn read_models(system: &TestSystem) -> Value {
    let queries = [
        (
            "profiles",
            "select user_id, username, nickname, bio, avatar_url, provider, points, level, total_scans,
                    total_recycles, invite_code, created_at, profile_sequence, character_id, character_sequence,
                    streak_run, best_streak, last_check_in from read.profiles",
            "user_id",
        ),
        (
            "settings",
            "select user_id, notification_enabled, language, theme, settings_sequence from read.settings",
            "user_id",
        ),
        ("profiles_tombstones", "select user_id from read.profiles_tombstones", "user_id"),
        ("activities", "select * from read.activities", "id"),
        ("activities_tombstones", "select user_id from read.activities_tombstones", "user_id"),
        ("leaderboard_scores", "select * from read.leaderboard_scores", "period_key, user_id"),
        ("leaderboard_tombstones", "select user_id from read.leaderboard_tombstones", "user_id"),
        ("guide_stats", "select * from read.guide_stats", "period_key, category"),
        ("places_tombstones", "select user_id from read.places_tombstones", "user_id"),
        ("attendance_days", "select * from read.attendance_days", "user_id, day"),
        ("user_badges", "select * from read.user_badges", "user_id, badge_id"),
        ("user_characters", "select * from read.user_characters", "user_id, character_id"),
        ("rewards_tombstones", "select user_id from read.rewards_tombstones", "user_id"),
        ("period_results", "select * from read.period_results", "period_key"),
    ];
    let mut out = serde_json::Map::new();
    for (name, select, order) in queries {
        let rows: Option<Value> = sqlx::query_scalar(&format!("select json_agg(t order by {order}) from ({select}) t"))
            .fetch_one(&system.db)
            .await
            .unwrap();
        out.insert(name.into(), rows.unwrap_or(json!([])));
    }
    Value::Object(out)
}

async fn scan(system: &TestSystem, user: &Registered) -> bool {
    let res = system
        .command("/api/v1/scans", &user.access_token, &json!({"category": "paper", "item_name": "milk carton"}))
        .await;
    res.status == StatusCode::ACCEPTED
}

fn deps(system: &TestSystem, redis: platform::redis::Redis) -> workers::registry::Deps {
    workers::registry::Deps { db: system.db.clone(), redis, settings: system.settings.clone() }
}

pub(crate) fn projector(system: &TestSystem, name: &str) -> Named {
    let redis = Redis::new(&system.settings).unwrap();
    Named::find(name, &deps(system, redis)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_reproduces_the_read_models_while_commands_keep_flowing() {
    let system = TestSystem::start().await;
    workers::seed::seed(&system.db).await.unwrap();
    let mut users = Vec::new();
    for i in 0..5 {
        let user = system.register(format!("rb{i}")).await;
        for _ in 0..=i {
            assert!(scan(&system, &user).await);
        }
        users.push(user);
    }
    system.add_bin(37.5665, 126.978).await;
    let near_bin = json!({"category": "glass", "latitude": 37.5665, "longitude": 126.978});
    let res = system.command("/api/v1/recycles", &users[1].access_token, &near_bin).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    system.command("/api/v1/attendance", &users[2].access_token, &json!({})).await;
    let renamed = system
        .http
        .patch(format!("{}/api/v1/users/me", system.command_url))
        .bearer_auth(&users[3].access_token)
        .json(&json!({"nickname": "새이름", "bio": "분리수거"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::ACCEPTED.as_u16());
    // Everyone starts with the sprout (level 1); users[3] shows it.
    system
        .eventually(Duration::from_secs(20), "the sprout unlocked", || async {
            let res = system.query("/api/v1/users/me/characters", &users[3].access_token, None).await;
            (res.body["items"].as_array().is_some_and(|i| i.iter().any(|c| c["character_id"] == "sprout")))
                .then_some(())
        })
        .await;
    let selected = system
        .send(
            reqwest::Method::PUT,
            "/users/me/character",
            &users[3].access_token,
            Some(json!({"character_id": "sprout"})),
        )
        .await;
    assert_eq!(selected.status, StatusCode::ACCEPTED, "{}", selected.body);
    let deleted = system
        .http
        .delete(format!("{}/api/v1/users/me", system.command_url))
        .bearer_auth(&users[4].access_token)
        .json(&json!({"password": "recycle2026"}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::ACCEPTED.as_u16());
    system.settle(Duration::from_secs(30)).await;
    let before = read_models(&system).await;
    assert_eq!(before["profiles"].as_array().unwrap().len(), 4, "the deleted user is gone");
    assert_eq!(before["activities_tombstones"].as_array().unwrap().len(), 1);
    assert_eq!(before["rewards_tombstones"].as_array().unwrap().len(), 1);
    assert!(
        before["user_badges"].as_array().unwrap().len() >= 4,
        "first scans, among others: {}",
        before["user_badges"]
    );
    assert_eq!(before["attendance_days"].as_array().unwrap().len(), 1);
    let awards = system.count("select count(*) from eventstore.events where type = 'points.earned'").await;
    let mails = system.count("select count(*) from eventstore.events where type = 'mail.requested'").await;

    // Damage the live read models, in PostgreSQL and in Redis: a rebuild recomputes them from
    // the log, it does not copy them.
    sqlx::raw_sql(
        "update read.profiles set points = 0, total_scans = 99;
         update read.guide_stats set scans = 0;
         delete from read.activities where action = 'points';
         update read.leaderboard_scores set points = points + 5000;
         delete from read.activities_tombstones;
         delete from read.user_badges;
         delete from read.user_characters;
         update read.profiles set character_id = null, best_streak = 0;
         delete from read.attendance_days;",
    )
    .execute(&system.db)
    .await
    .unwrap();
    let redis = Redis::new(&system.settings).unwrap();
    let week = readmodels::periods::Period::Weekly.key_at(Utc::now(), system.settings.app_timezone);
    let inflated =
        leaderboard::ScoreRow { period_key: week, user_id: users[0].user_id, points: 9000, reached_at: Utc::now() };
    leaderboard::write(&redis, std::slice::from_ref(&inflated)).await.unwrap();

    // Two users keep scanning throughout the rebuilds.
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicI64::new(0));
    let traffic = {
        let (stop, accepted) = (stop.clone(), accepted.clone());
        let client = system.http.clone();
        let url = system.command_url.clone();
        let tokens = [users[0].access_token.clone(), users[1].access_token.clone()];
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) && accepted.load(Ordering::SeqCst) < 24 {
                let res = client
                    .post(format!("{url}/api/v1/scans"))
                    .bearer_auth(&tokens[i % 2])
                    .json(&json!({"category": "metal", "item_name": "can"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), StatusCode::ACCEPTED.as_u16());
                accepted.fetch_add(1, Ordering::SeqCst);
                i += 1;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };
    let mut reports = Vec::new();
    for name in ["profiles", "activities", "leaderboards", "guide", "places", "rewards"] {
        let mut ticks = 0;
        let report = projector(&system, name).rebuild(&system.db, |_| ticks += 1).await.unwrap();
        assert!(ticks >= 2, "progress is reported");
        assert_eq!(report.skipped, 0, "{:?}", report.skipped_samples);
        reports.push(report);
    }
    stop.store(true, Ordering::SeqCst);
    traffic.await.unwrap();
    let during = accepted.load(Ordering::SeqCst);
    assert!(during > 0, "commands flowed during the rebuilds");
    system.settle(Duration::from_secs(30)).await;

    // Users who did nothing during the rebuild look exactly as before the damage.
    let after = read_models(&system).await;
    for table in [
        "settings",
        "profiles_tombstones",
        "activities_tombstones",
        "leaderboard_tombstones",
        "places_tombstones",
        "rewards_tombstones",
        "period_results",
    ] {
        assert_eq!(after[table], before[table], "{table}");
    }
    let quiet: Vec<String> = users[2..].iter().map(|u| u.user_id.to_string()).collect();
    let of_quiet = |v: &Value, table: &str| -> Vec<Value> {
        v[table]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| quiet.contains(&r["user_id"].as_str().unwrap().to_owned()))
            .cloned()
            .collect()
    };
    for table in ["profiles", "activities", "leaderboard_scores", "attendance_days", "user_badges", "user_characters"] {
        assert_eq!(of_quiet(&after, table), of_quiet(&before, table), "{table}");
    }
    // The two busy ones have exactly what they did: every scan once, every award once.
    let scans_of = |v: &Value, i: usize| -> i64 {
        v["profiles"].as_array().unwrap().iter().find(|p| p["user_id"] == json!(users[i].user_id)).unwrap()["total_scans"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(scans_of(&after, 0) + scans_of(&after, 1), scans_of(&before, 0) + scans_of(&before, 1) + during);
    for (i, user) in users[..2].iter().enumerate() {
        let me = system.query("/api/v1/users/me", &user.access_token, None).await;
        assert_eq!(me.body["total_scans"].as_i64(), Some(scans_of(&after, i)), "the cache serves the rebuilt row");
        let expected = scans_of(&after, i) * 10 + if i == 1 { 50 } else { 0 };
        let log: Value = sqlx::query_scalar(
            "select json_agg(json_build_object('pos', position, 'tx', transaction_id::text, 'type', type, 'applied',
                    exists (select 1 from projection.applied_events a where a.projection = 'profiles' and a.event_id = e.id)) order by position)
             from eventstore.events e where aggregate_id = $1",
        )
        .bind(user.user_id)
        .fetch_one(&system.db)
        .await
        .unwrap();
        assert_eq!(me.body["points"].as_i64(), Some(expected), "{} / {log}", me.body);
        let board = system.query("/api/v1/leaderboards/weekly/me", &user.access_token, None).await;
        assert_eq!(
            board.body["points"].as_i64(),
            Some(expected),
            "Redis was reset to the rebuilt scores: {}",
            board.body
        );
    }
    assert_eq!(
        system.count("select count(*) from eventstore.events where type = 'points.earned'").await,
        awards + during,
        "a rebuild awards nothing; only the new scans were paid"
    );
    assert_eq!(
        system.count("select count(*) from eventstore.events where type = 'mail.requested'").await,
        mails,
        "a rebuild sends no mail"
    );
    assert_eq!(
        system.count("select count(*) from information_schema.schemata where schema_name like 'rebuild_%'").await,
        0
    );

    // A second rebuild with nothing flowing changes nothing: the live result of rebuild plus
    // concurrent commands is what the log says.
    let settled = read_models(&system).await;
    for name in ["profiles", "activities", "leaderboards", "guide", "places"] {
        let report = projector(&system, name).rebuild(&system.db, |_| {}).await.unwrap();
        assert_eq!(report.tail, 0, "nothing new to catch up");
    }
    assert_eq!(read_models(&system).await, settled);
    assert!(reports.iter().all(|r| r.events > 0 && r.applied == r.events), "{reports:?}");
    // The statistics counted every scan once, across the rebuild and the scans during it.
    let scans = system.count("select count(*) from eventstore.events where type = 'scan.recorded'").await;
    assert_eq!(
        settled["guide_stats"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["period_key"] == "all-time:all")
            .map(|r| r["scans"].as_i64().unwrap())
            .sum::<i64>(),
        scans
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_applies_only_what_was_missed_and_wrong_names_or_ranges_are_refused() {
    let system = TestSystem::start().await;
    let user = system.register("replayer").await;
    for _ in 0..3 {
        assert!(scan(&system, &user).await);
    }
    system.settle(Duration::from_secs(30)).await;
    // The activities projection "missed" one scan (as if it had been parked and purged).
    let (missed, position): (uuid::Uuid, i64) = sqlx::query_as(
        "select id, position from eventstore.events where type = 'scan.recorded' order by position desc limit 1",
    )
    .fetch_one(&system.db)
    .await
    .unwrap();
    sqlx::query("delete from projection.applied_events where projection = 'activities' and event_id = $1")
        .bind(missed)
        .execute(&system.db)
        .await
        .unwrap();
    sqlx::query("delete from read.activities where id = $1").bind(missed).execute(&system.db).await.unwrap();
    let history = || async {
        system.query("/api/v1/users/me/activities?limit=100", &user.access_token, None).await.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["action"] == "scan")
            .count()
    };
    assert_eq!(history().await, 2);

    let activities = projector(&system, "projection.activities");
    let last = system.count("select max(position) from eventstore.events").await;
    let report = activities.replay(&system.db, 1, last, |_| {}).await.unwrap();
    assert_eq!(report.applied, 1, "{report:?}");
    assert_eq!(report.already_applied, report.events - 1);
    assert_eq!(history().await, 3);
    let scan_row: (i64,) = sqlx::query_as("select points_earned from read.activities where id = $1")
        .bind(missed)
        .fetch_one(&system.db)
        .await
        .unwrap();
    assert_eq!(scan_row.0, 10, "the replayed scan shows the points it earned");
    let again = activities.replay(&system.db, position, position, |_| {}).await.unwrap();
    assert_eq!((again.events, again.applied, again.already_applied), (1, 0, 1), "applied once");

    let redis = Redis::new(&system.settings).unwrap();
    let refused =
        |name: &str| Named::find(name, &deps(&system, redis.clone())).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused("points-policy").contains("not a projection"), "{}", refused("points-policy"));
    assert!(refused("mailer").contains("not a projection"));
    assert!(
        refused("profilez").contains(
            "no projection `profilez`; projections: profiles, activities, leaderboards, guide, places, rewards"
        )
    );
    let err = |r: anyhow::Result<workers::rebuild::ReplayReport>| r.unwrap_err().to_string();
    assert!(err(activities.replay(&system.db, 0, 5, |_| {}).await).contains("1 <= --from <= --to"));
    assert!(err(activities.replay(&system.db, 5, 4, |_| {}).await).contains("1 <= --from <= --to"));
    assert!(err(activities.replay(&system.db, last + 1, last + 9, |_| {}).await).contains("past the end of the log"));
}

/// `recycle.completed` as another service would publish it, in version 1 or 2.
fn recycle_event(user: &Registered, version: u32) -> (uuid::Uuid, Vec<u8>) {
    let id = uuid::Uuid::now_v7();
    let mut data = json!({"recycle_id": uuid::Uuid::now_v7(), "user_id": user.user_id, "category": "glass"});
    match version {
        1 => {
            data["latitude"] = json!(37.5665);
            data["longitude"] = json!(126.978);
        }
        _ => data["location"] = json!({"latitude": 37.5665, "longitude": 126.978}),
    }
    let envelope = json!({
        "id": id, "type": "recycle.completed", "version": version, "source": "kiosk-service",
        "aggregate_type": "user", "aggregate_id": user.user_id, "occurred_at": Utc::now(), "data": data
    });
    (id, serde_json::to_vec(&envelope).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recycle_completed_v1_and_v2_in_one_log_project_alike_and_rebuild_alike() {
    let system = TestSystem::start().await;
    system.add_bin(37.5665, 126.978).await;
    let old = system.register("kiosk_v1").await;
    let new = system.register("kiosk_v2").await;
    let (_conn, channel) = crate::support::broker(&system).await;
    let (v1_id, v1) = recycle_event(&old, 1);
    let (v2_id, v2) = recycle_event(&new, 2);
    crate::support::publish_raw(&channel, &system, "recycle.completed", &v1).await;
    crate::support::publish_raw(&channel, &system, "recycle.completed", &v2).await;
    // Our own API writes v2 too.
    let res = system
        .command(
            "/api/v1/recycles",
            &new.access_token,
            &json!({"category": "glass", "latitude": 37.5665, "longitude": 126.978}),
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    system.settle(Duration::from_secs(30)).await;

    let stored: Vec<(uuid::Uuid, i32)> =
        sqlx::query_as("select id, version from eventstore.events where type = 'recycle.completed' order by position")
            .fetch_all(&system.db)
            .await
            .unwrap();
    assert!(stored.contains(&(v1_id, 1)), "the log keeps v1 as it was sent: {stored:?}");
    assert!(stored.contains(&(v2_id, 2)));
    assert_eq!(stored.iter().filter(|(_, v)| *v == 2).count(), 2);

    let recycles = |user: &Registered| {
        let token = user.access_token.clone();
        let system = &system;
        async move {
            let me = system.query("/api/v1/users/me", &token, None).await.body;
            let history = system.query("/api/v1/users/me/activities?limit=100", &token, None).await.body;
            let mut recycled: Vec<Value> = history["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["action"] == "recycle")
                .map(|i| {
                    let mut m = i["metadata"].clone();
                    m.as_object_mut().unwrap().remove("recycle_id");
                    json!({"metadata": m, "points": i["points_earned"]})
                })
                .collect();
            recycled.truncate(1);
            (me["total_recycles"].clone(), me["points"].clone(), recycled)
        }
    };
    let (old_count, old_points, old_history) = recycles(&old).await;
    let (new_count, new_points, new_history) = recycles(&new).await;
    assert_eq!((old_count, old_points), (json!(1), json!(50)), "v1 pays like v2");
    assert_eq!((new_count, new_points), (json!(2), json!(100)));
    assert_eq!(old_history, new_history, "v1 and v2 show the same history entry");
    assert_eq!(old_history[0]["metadata"]["location"], json!({"latitude": 37.5665, "longitude": 126.978}));

    let live = read_models(&system).await;
    for name in ["profiles", "activities", "leaderboards"] {
        let report = projector(&system, name).rebuild(&system.db, |_| {}).await.unwrap();
        assert_eq!(report.skipped, 0, "{:?}", report.skipped_samples);
    }
    assert_eq!(read_models(&system).await, live, "a rebuild across the version change gives the same read models");
}
