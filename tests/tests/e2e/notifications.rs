//! The in-app feed and push notifications, through the REST APIs, the bus and a fake FCM.

use std::time::Duration;

use chrono::Utc;
use events::{Event, PointsEarned, PointsReason};
use readmodels::periods::Period;
use reqwest::Method;
use serde_json::{Value, json};
use tests::{Options, Registered, StatusCode, TestSystem, fake_fcm::FakeFcm};
use uuid::Uuid;

use crate::support;

/// Grants `amount` bonus points to `user` as an admin; the command's consistency token.
async fn bonus(system: &TestSystem, admin: &str, user: &Registered, amount: i64) -> String {
    let res =
        system.command("/api/v1/admin/points/bonus", admin, &json!({"user_id": user.user_id, "amount": amount})).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    res.header("x-consistency-token").unwrap()
}

async fn feed(system: &TestSystem, user: &Registered, query: &str, token: Option<&str>) -> Value {
    let res = system.query(&format!("/api/v1/users/me/notifications{query}"), &user.access_token, token).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    res.body
}

fn kinds(feed: &Value) -> Vec<String> {
    let mut k: Vec<String> =
        feed["items"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap().into()).collect();
    k.sort();
    k.dedup();
    k
}

fn titled<'a>(feed: &'a Value, kind: &str) -> Vec<&'a str> {
    feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == kind)
        .map(|i| i["title"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_reaches_the_feed_in_the_readers_language_and_read_marks_count_down() {
    let mut system = TestSystem::start_with(Options {
        configure: |s| s.period_close_interval = Duration::from_secs(3600),
        ..Default::default()
    })
    .await;
    workers::seed::seed(&system.db).await.unwrap();
    let host = system.register("host").await;
    let res =
        system.send(Method::PATCH, "/users/me/settings", &host.access_token, Some(json!({"language": "en"}))).await;
    let english = res.header("x-consistency-token").unwrap();
    system.query("/api/v1/users/me/settings", &host.access_token, Some(&english)).await;
    let invite_code = system.query("/api/v1/users/me", &host.access_token, None).await.body["invite_code"].clone();
    let guest = system.register_with("guest", invite_code.as_str()).await;
    let admin_user = system.register("boss").await;
    let admin = system.promote_to_admin(&admin_user).await;

    // Points last week, so that week closes with the host first when the workers start again.
    let (_conn, channel) = support::broker(&system).await;
    let this_week = Period::Weekly.start_at(Utc::now(), system.settings.app_timezone).unwrap();
    let mut last_week = Event::new(
        "admin",
        host.user_id,
        PointsEarned { user_id: host.user_id, amount: 5, reason: PointsReason::Bonus, source_event_id: Uuid::now_v7() }
            .into(),
    );
    last_week.occurred_at = this_week - chrono::TimeDelta::days(3);
    support::publish_raw(&channel, &system, "points.earned", &last_week.to_json_bytes()).await;
    let scan =
        system.command("/api/v1/scans", &host.access_token, &json!({"category": "paper", "item_name": "box"})).await;
    assert_eq!(scan.status, StatusCode::ACCEPTED);
    bonus(&system, &admin, &host, 300).await;
    system.settle(Duration::from_secs(30)).await;
    system.stop_workers().await;
    system.start_workers(None).await;

    system
        .eventually(Duration::from_secs(30), "every kind in the host's feed", || async {
            let f = feed(&system, &host, "?limit=100", None).await;
            (kinds(&f).len() == 6).then_some(())
        })
        .await;
    system.settle(Duration::from_secs(30)).await;
    let all = feed(&system, &host, "?limit=100", None).await;
    assert_eq!(
        kinds(&all),
        ["badge_earned", "bonus_granted", "character_unlocked", "friend_joined", "level_reached", "period_result"]
    );
    assert!(titled(&all, "badge_earned").contains(&"New badge: First scan"), "{all}");
    assert!(titled(&all, "character_unlocked").contains(&"New character: Sprout"));
    assert!(titled(&all, "bonus_granted").contains(&"300 bonus points"));
    assert!(titled(&all, "bonus_granted").contains(&"5 bonus points"));
    assert!(titled(&all, "level_reached").contains(&"Level 3!"), "100 (friend) + 10 + 5 + 300 points");
    assert_eq!(titled(&all, "period_result"), ["You finished #1 this week"]);
    // The guest reads Korean (the default).
    let guests = feed(&system, &guest, "", None).await;
    assert_eq!(titled(&guests, "character_unlocked"), ["새 캐릭터: 새싹이"]);

    // Everything unread; paging by two; marking read up to the second newest.
    let total = all["items"].as_array().unwrap().len() as i64;
    assert_eq!(all["unread_count"], total);
    let first = feed(&system, &host, "?limit=2", None).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let second =
        feed(&system, &host, &format!("?limit=2&cursor={}", first["next_cursor"].as_str().unwrap()), None).await;
    assert_ne!(second["items"][0]["id"], first["items"][0]["id"]);
    let up_to = first["items"][1]["id"].clone();
    let marked =
        system.command("/api/v1/users/me/notifications/read", &host.access_token, &json!({"up_to_id": up_to})).await;
    assert_eq!(marked.status, StatusCode::ACCEPTED, "{}", marked.body);
    let after = feed(&system, &host, "?limit=100", Some(&marked.header("x-consistency-token").unwrap())).await;
    assert_eq!(after["unread_count"], 1, "only the newest is left");
    let read: Vec<bool> = after["items"].as_array().unwrap().iter().map(|i| i["read"].as_bool().unwrap()).collect();
    assert!(!read[0] && read[1..].iter().all(|r| *r), "{read:?}");
    let unknown = system
        .command("/api/v1/users/me/notifications/read", &host.access_token, &json!({"up_to_id": Uuid::now_v7()}))
        .await;
    unknown.assert_problem(StatusCode::NOT_FOUND, "notification_not_found");
    let someone_elses =
        system.command("/api/v1/users/me/notifications/read", &guest.access_token, &json!({"up_to_id": up_to})).await;
    someone_elses.assert_problem(StatusCode::NOT_FOUND, "notification_not_found");
}

fn no_quiet_hours_slow_retries(s: &mut platform::Settings) {
    s.quiet_hours = None;
    s.retry_delays =
        vec![Duration::from_millis(500), Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(4)];
}

async fn device(system: &TestSystem, user: &Registered, token: &str, platform: &str) -> tests::Response {
    system
        .send(
            Method::PUT,
            &format!("/users/me/devices/{token}"),
            &user.access_token,
            Some(json!({"platform": platform})),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_go_once_per_device_skip_when_disabled_survive_an_outage_and_drop_unregistered_devices() {
    let fcm = FakeFcm::start().await;
    let system = TestSystem::start_with(Options {
        fcm: Some(fcm.clone()),
        configure: no_quiet_hours_slow_retries,
        ..Default::default()
    })
    .await;
    let user = system.register("pushed").await;
    let admin_user = system.register("granter").await;
    let admin = system.promote_to_admin(&admin_user).await;
    assert_eq!(device(&system, &user, "phone-token:1", "android").await.body["result"], "created");
    assert_eq!(device(&system, &user, "tablet-token:2", "ios").await.body["result"], "created");
    device(&system, &user, "bad token", "ios")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    device(&system, &user, "x", "fax").await.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    bonus(&system, &admin, &user, 50).await;
    let pushed = system
        .eventually(Duration::from_secs(20), "pushed to both devices", || async {
            let p = fcm.pushed();
            (p.len() == 2).then_some(p)
        })
        .await;
    let mut tokens: Vec<&str> = pushed.iter().map(|p| p.token.as_str()).collect();
    tokens.sort_unstable();
    assert_eq!(tokens, ["phone-token:1", "tablet-token:2"]);
    assert_eq!(pushed[0].title, "보너스 50포인트", "Korean by default");
    assert_eq!(pushed[0].data["kind"], "bonus_granted");
    assert_eq!(pushed[0].data["amount"], "50", "FCM data values are strings");

    // The tablet fails once: the delivery is retried, and only the tablet is pushed again.
    fcm.fail_once("tablet-token:2");
    bonus(&system, &admin, &user, 6).await;
    let six = system
        .eventually(Duration::from_secs(20), "both devices got the retried notice", || async {
            let six: Vec<String> =
                fcm.pushed().into_iter().filter(|p| p.title == "보너스 6포인트").map(|p| p.token).collect();
            (six.len() >= 2).then_some(six)
        })
        .await;
    system.settle(Duration::from_secs(30)).await;
    let mut six_now: Vec<String> =
        fcm.pushed().into_iter().filter(|p| p.title == "보너스 6포인트").map(|p| p.token).collect();
    six_now.sort();
    assert_eq!(
        six_now,
        ["phone-token:1", "tablet-token:2"],
        "each device once, though the delivery ran twice: {six:?}"
    );
    assert!(fcm.refused() >= 1);
    let pushed_so_far = fcm.pushed().len();
    assert_eq!(pushed_so_far, 4);

    // The tablet is gone at the provider: the next push removes it.
    fcm.forget_device("tablet-token:2");
    bonus(&system, &admin, &user, 7).await;
    system
        .eventually(Duration::from_secs(20), "the tablet removed", || async {
            let left = system.count("select count(*) from app.devices where token = 'tablet-token:2'").await;
            (left == 0 && fcm.pushed().len() == 5).then_some(())
        })
        .await;

    // Provider down: the push waits in the retry tiers and goes out once it is back.
    fcm.set_down(true);
    bonus(&system, &admin, &user, 8).await;
    let refused = fcm.refused();
    system
        .eventually(Duration::from_secs(20), "refused while down", || async {
            (fcm.refused() >= refused + 2).then_some(())
        })
        .await;
    assert_eq!(fcm.pushed().len(), 5);
    fcm.set_down(false);
    system
        .eventually(Duration::from_secs(20), "pushed after the outage", || async {
            (fcm.pushed().iter().any(|p| p.title == "보너스 8포인트")).then_some(())
        })
        .await;

    // Notifications off: nothing is pushed, the feed still has it.
    let off = system
        .send(Method::PATCH, "/users/me/settings", &user.access_token, Some(json!({"notification_enabled": false})))
        .await;
    system
        .query("/api/v1/users/me/settings", &user.access_token, Some(&off.header("x-consistency-token").unwrap()))
        .await;
    let quiet = bonus(&system, &admin, &user, 9).await;
    let f = feed(&system, &user, "", Some(&quiet)).await;
    assert!(titled(&f, "bonus_granted").contains(&"보너스 9포인트"));
    system.settle(Duration::from_secs(30)).await;
    assert_eq!(fcm.pushed().len(), 6, "nothing pushed with notifications off");
    let skipped = tests::scrape(
        &system.http,
        system.workers_url.as_deref().unwrap(),
        "pushes_total",
        &["outcome=\"skipped\"", "reason=\"disabled\""],
    )
    .await;
    assert!(skipped.unwrap_or(0.0) >= 1.0);

    // Deleting the account forgets the feed, the devices and the record of pushes.
    let res =
        system.send(Method::DELETE, "/users/me", &user.access_token, Some(json!({"password": "recycle2026"}))).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    system.settle(Duration::from_secs(30)).await;
    for table in ["app.devices", "notify.pushes", "notify.notices", "read.notifications"] {
        let left = system.count(&format!("select count(*) from {table} where user_id = '{}'", user.user_id)).await;
        assert_eq!(left, 0, "{table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_pushed_in_quiet_hours_but_the_feed_has_it() {
    let fcm = FakeFcm::start().await;
    let system = TestSystem::start_with(Options {
        fcm: Some(fcm.clone()),
        configure: |s| {
            // Quiet hours around now, in the app's time zone.
            let now = Utc::now().with_timezone(&s.app_timezone).time();
            s.quiet_hours = Some((now - chrono::TimeDelta::hours(1), now + chrono::TimeDelta::hours(1)));
        },
        ..Default::default()
    })
    .await;
    let user = system.register("sleeper").await;
    let admin_user = system.register("nightowl").await;
    let admin = system.promote_to_admin(&admin_user).await;
    device(&system, &user, "night-phone", "android").await;
    let token = bonus(&system, &admin, &user, 20).await;
    let f = feed(&system, &user, "", Some(&token)).await;
    assert_eq!(titled(&f, "bonus_granted"), ["보너스 20포인트"]);
    system.settle(Duration::from_secs(30)).await;
    assert!(fcm.pushed().is_empty(), "quiet hours");
    // Held back until the quiet hours end; then sent once.
    let held = system.count("select count(*) from notify.deferred where not_before > now()").await;
    assert_eq!(held, 1);
    sqlx::query("update notify.deferred set not_before = now() - interval '1 second'")
        .execute(&system.db)
        .await
        .unwrap();
    let deps = workers::registry::Deps {
        db: system.db.clone(),
        redis: platform::redis::Redis::new(&system.settings).unwrap(),
        settings: system.settings.clone(),
    };
    let notifier = <workers::notifier::Notifier as workers::registry::Build>::build(&deps).unwrap();
    assert_eq!(notifier.send_due(10).await.unwrap(), 1);
    assert_eq!(notifier.send_due(10).await.unwrap(), 0, "sent once");
    let pushed = fcm.pushed();
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].title, "보너스 20포인트");
}
