//! Badges, characters, streaks and closed periods, through the REST APIs and the bus.

use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use events::{AttendanceCheckedIn, Category, Event, PointsEarned, PointsReason, ScanRecorded};
use readmodels::periods::Period;
use reqwest::Method;
use serde_json::{Value, json};
use tests::{Options, Registered, StatusCode, TestSystem};
use uuid::Uuid;

use crate::support;

async fn scan(system: &TestSystem, user: &Registered, category: Category) -> String {
    let res = system
        .command("/api/v1/scans", &user.access_token, &json!({"category": category.code(), "item_name": "thing"}))
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    res.header("x-consistency-token").unwrap()
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    let mut ids: Vec<String> =
        list["items"].as_array().unwrap().iter().map(|i| i[field].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

async fn fresh(system: &TestSystem, path: &str, user: &Registered, token: &str) -> Value {
    let res = system.query(&format!("/api/v1{path}"), &user.access_token, Some(token)).await;
    assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.body);
    assert_eq!(res.header("x-consistency").as_deref(), Some("fresh"), "{path}");
    res.body
}

/// How many `type` events about `user` (and `badge_id`/`character_id`, when given) the log holds.
async fn logged(system: &TestSystem, event_type: &str, user: Uuid, field: &str, value: &str) -> i64 {
    sqlx::query_scalar(
        "select count(*) from eventstore.events where type = $1 and (data->>'user_id')::uuid = $2 and data->>$3 = $4",
    )
    .bind(event_type)
    .bind(user)
    .bind(field)
    .bind(value)
    .fetch_one(&system.db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn badges_come_at_their_boundary_once_and_characters_unlock_by_level_and_badge() {
    let system = TestSystem::start().await;
    workers::seed::seed(&system.db).await.unwrap();
    let catalogue = system.get("/badges").await;
    assert!(catalogue.body["items"].as_array().unwrap().len() >= 20, "{}", catalogue.body);
    assert_eq!(catalogue.body["items"][1]["criterion"], json!({"kind": "scans", "count": 10}));
    let characters = system.get("/characters").await;
    assert!(characters.body["items"].as_array().unwrap().len() >= 8);

    let user = system.register("badger").await;
    let mine = fresh(&system, "/users/me/characters", &user, &user.consistency_token).await;
    assert_eq!(ids(&mine, "character_id"), ["sprout"], "everyone starts with the level-1 character");
    assert_eq!(mine["items"][0]["reason"], "level");
    assert_eq!(mine["selected_character_id"], Value::Null);

    // Nine scans, one of every category: the first-scan and every-category badges, not ten scans.
    let mut token = String::new();
    for category in Category::ALL {
        token = scan(&system, &user, category).await;
    }
    let badges = fresh(&system, "/users/me/badges", &user, &token).await;
    assert_eq!(ids(&badges, "badge_id"), ["all-categories", "first-scan"], "nine scans: {badges}");
    let locked = system
        .send(Method::PUT, "/users/me/character", &user.access_token, Some(json!({"character_id": "scan-scout"})))
        .await;
    locked.assert_problem(StatusCode::CONFLICT, "character_locked");

    // The tenth: its badge and the character that badge unlocks.
    let tenth = scan(&system, &user, Category::Paper).await;
    let badges = fresh(&system, "/users/me/badges", &user, &tenth).await;
    assert_eq!(ids(&badges, "badge_id"), ["all-categories", "first-scan", "scans-10"]);
    let mine = fresh(&system, "/users/me/characters", &user, &tenth).await;
    let scout = mine["items"].as_array().unwrap().iter().find(|c| c["character_id"] == "scan-scout").unwrap();
    assert_eq!(scout["reason"], "badge");

    let early = system
        .send(Method::PUT, "/users/me/character", &user.access_token, Some(json!({"character_id": "bottle-buddy"})))
        .await;
    early.assert_problem(StatusCode::CONFLICT, "character_locked");

    // The eleventh makes 110 points: level 2, its badge, and two characters (one needs the
    // every-category badge held since the ninth scan: unlocked by the level).
    let eleventh = scan(&system, &user, Category::Metal).await;
    let mine = fresh(&system, "/users/me/characters", &user, &eleventh).await;
    assert_eq!(ids(&mine, "character_id"), ["bottle-buddy", "rainbow-sorter", "scan-scout", "sprout"]);
    let rainbow = mine["items"].as_array().unwrap().iter().find(|c| c["character_id"] == "rainbow-sorter").unwrap();
    assert_eq!(rainbow["reason"], "level");
    assert!(ids(&fresh(&system, "/users/me/badges", &user, &eleventh).await, "badge_id").contains(&"level-2".into()));

    // Selecting: unknown 404, locked 409, unlocked 202 and shown on the profile and the board.
    let unknown = system
        .send(Method::PUT, "/users/me/character", &user.access_token, Some(json!({"character_id": "no-such-one"})))
        .await;
    unknown.assert_problem(StatusCode::NOT_FOUND, "character_not_found");
    let bad = system
        .send(Method::PUT, "/users/me/character", &user.access_token, Some(json!({"character_id": "Bad Id"})))
        .await;
    bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let picked = system
        .send(Method::PUT, "/users/me/character", &user.access_token, Some(json!({"character_id": "bottle-buddy"})))
        .await;
    assert_eq!(picked.status, StatusCode::ACCEPTED, "{}", picked.body);
    let picked_token = picked.header("x-consistency-token").unwrap();
    let me = fresh(&system, "/users/me", &user, &picked_token).await;
    assert_eq!(me["character_id"], "bottle-buddy");
    let board = system
        .eventually(Duration::from_secs(20), "the board shows the character", || async {
            let res = system.query("/api/v1/leaderboards/weekly", &user.access_token, None).await;
            (res.body["items"][0]["character_id"] == "bottle-buddy").then_some(res.body)
        })
        .await;
    assert_eq!(board["items"][0]["user_id"], json!(user.user_id));
    let mine = fresh(&system, "/users/me/characters", &user, &picked_token).await;
    assert_eq!(mine["selected_character_id"], "bottle-buddy");

    // Redelivered (the same event again) and re-published (the tenth scan under a new id):
    // nothing is awarded twice.
    let (_conn, channel) = support::broker(&system).await;
    let tenth_event: Vec<u8> = sqlx::query_scalar(
        "select convert_to(json_build_object('id', id, 'type', type, 'version', version, 'source', source,
                'aggregate_type', aggregate_type, 'aggregate_id', aggregate_id, 'sequence', sequence,
                'occurred_at', occurred_at, 'correlation_id', correlation_id, 'causation_id', causation_id,
                'data', data)::text, 'utf8')
         from eventstore.events where type = 'scan.recorded' and aggregate_id = $1 order by position offset 9 limit 1",
    )
    .bind(user.user_id)
    .fetch_one(&system.db)
    .await
    .unwrap();
    support::publish_raw(&channel, &system, "scan.recorded", &tenth_event).await;
    let mut again: Value = serde_json::from_slice(&tenth_event).unwrap();
    again["id"] = json!(Uuid::now_v7());
    support::publish_raw(&channel, &system, "scan.recorded", again.to_string().as_bytes()).await;
    system.settle(Duration::from_secs(30)).await;
    for badge in ["first-scan", "all-categories", "scans-10", "level-2"] {
        assert_eq!(logged(&system, "badge.earned", user.user_id, "badge_id", badge).await, 1, "{badge}");
    }
    for character in ["sprout", "scan-scout", "bottle-buddy", "rainbow-sorter"] {
        assert_eq!(
            logged(&system, "character.unlocked", user.user_id, "character_id", character).await,
            1,
            "{character}"
        );
    }
    let badges = system.query("/api/v1/users/me/badges", &user.access_token, None).await;
    assert_eq!(badges.body["items"].as_array().unwrap().len(), 4);

    // A badge added by an admin is awarded at the next event that moves the person's progress.
    let admin_user = system.register("curator").await;
    let admin = system.promote_to_admin(&admin_user).await;
    let added = system
        .send(
            Method::PUT,
            "/admin/badges/scans-12",
            &admin,
            Some(json!({"name_ko": "스캔 12회", "name_en": "12 scans", "description_ko": "", "description_en": "",
                        "criterion": {"kind": "scans", "count": 12}})),
        )
        .await;
    assert_eq!((added.status, added.body["result"].clone()), (StatusCode::OK, json!("created")), "{}", added.body);
    let refused = system
        .send(
            Method::PUT,
            "/admin/characters/ghost",
            &admin,
            Some(json!({"name_ko": "유령", "name_en": "Ghost", "description_ko": "", "description_en": "",
                        "rule": {"badge_id": "no-such-badge"}})),
        )
        .await;
    refused.assert_problem(StatusCode::NOT_FOUND, "badge_not_found");
    let not_admin = system.send(Method::PUT, "/admin/badges/x", &user.access_token, Some(json!({}))).await;
    assert_eq!(not_admin.status, StatusCode::FORBIDDEN);
    // Twelve scans are counted (the re-published one counted as a scan), but the new badge waits
    // for an event that moves the person's progress: the next scan awards it.
    let next = scan(&system, &user, Category::Glass).await;
    let badges = fresh(&system, "/users/me/badges", &user, &next).await;
    assert!(ids(&badges, "badge_id").contains(&"scans-12".into()), "{badges}");
}

/// Scans arriving in a burst are decided a run at a time, with what one by one decides: each
/// badge comes with the scan that crosses its boundary, once, and the character it unlocks
/// with it; the progress counts every scan and category. (A batch that fails is applied again
/// one event at a time, which would hide a run's error, but a lone scan takes the same path as
/// a run, so only the run's bookkeeping could hide there: `decide_scans`'s unit test covers it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_scans_earns_each_badge_at_the_scan_that_crosses_its_boundary() {
    // Batches linger, so the burst meets in runs rather than trickling in one scan at a time.
    let configure = |s: &mut platform::Settings| s.projector_batch_linger = Duration::from_millis(300);
    let system = TestSystem::start_with(Options { configure, ..Default::default() }).await;
    workers::seed::seed(&system.db).await.unwrap();
    let user = system.register("burster").await;
    let (_conn, channel) = support::broker(&system).await;
    let scans: Vec<Event> = Category::ALL
        .into_iter()
        .chain([Category::Paper, Category::Metal])
        .map(|category| {
            let scan = ScanRecorded {
                scan_id: Uuid::now_v7(),
                user_id: user.user_id,
                category,
                item_name: "thing".into(),
                confidence: None,
                image_sha256: None,
                scanned_at: Utc::now(),
            };
            Event::new("scan-service", user.user_id, scan.into())
        })
        .collect();
    let mut confirms = Vec::new();
    for scan in &scans {
        confirms.push(support::publish_unconfirmed(&channel, &system, "scan.recorded", &scan.to_json_bytes()).await);
    }
    for confirm in confirms {
        confirm.await.unwrap();
    }
    system.settle(Duration::from_secs(30)).await;

    let caused = |event_type: &'static str, field: &'static str, value: &'static str| {
        let db = system.db.clone();
        async move {
            sqlx::query_scalar::<_, Uuid>(
                "select causation_id from eventstore.events where type = $1 and aggregate_id = $2 and data->>$3 = $4",
            )
            .bind(event_type)
            .bind(user.user_id)
            .bind(field)
            .bind(value)
            .fetch_all(&db)
            .await
            .unwrap()
        }
    };
    assert_eq!(caused("badge.earned", "badge_id", "first-scan").await, [scans[0].id], "the first scan");
    assert_eq!(caused("badge.earned", "badge_id", "all-categories").await, [scans[8].id], "the ninth category");
    assert_eq!(caused("badge.earned", "badge_id", "scans-10").await, [scans[9].id], "the tenth scan");
    assert_eq!(caused("character.unlocked", "character_id", "scan-scout").await, [scans[9].id], "with its badge");
    let progress: (i64, i32) =
        sqlx::query_as("select scans, cardinality(categories) from rewards.progress where user_id = $1")
            .bind(user.user_id)
            .fetch_one(&system.db)
            .await
            .unwrap();
    assert_eq!(progress, (11, 9));
    // Eleven scans make 110 points: level 2 and its badge, from the level's own event.
    let badges = system.query("/api/v1/users/me/badges", &user.access_token, None).await;
    assert_eq!(ids(&badges.body, "badge_id"), ["all-categories", "first-scan", "level-2", "scans-10"]);
}

async fn check_in(system: &TestSystem, channel: &lapin::Channel, user: Uuid, date: NaiveDate) -> Event {
    // The check-in of `date` as the app sends it: a second before Seoul midnight ends it.
    let occurred_at =
        chrono_tz::Asia::Seoul.from_local_datetime(&date.and_hms_opt(23, 59, 59).unwrap()).unwrap().with_timezone(&Utc);
    let mut e = Event::new("attendance-kiosk", user, AttendanceCheckedIn { user_id: user, date }.into());
    e.occurred_at = occurred_at;
    support::publish_raw(channel, system, "attendance.checked_in", &e.to_json_bytes()).await;
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streak_runs_across_seoul_midnights_pays_every_seventh_day_once_and_ends_with_a_missed_day() {
    let system = TestSystem::start().await;
    workers::seed::seed(&system.db).await.unwrap();
    let (_conn, channel) = support::broker(&system).await;
    let today = Utc::now().with_timezone(&chrono_tz::Asia::Seoul).date_naive();
    let day = |back: u64| today - chrono::Days::new(back);

    // Seven days in a row up to yesterday, arriving out of order (the 4th last).
    let steady = system.register("steady").await;
    fresh(&system, "/users/me", &steady, &steady.consistency_token).await;
    let mut seventh = None;
    for back in [7, 6, 5, 3, 2, 1, 4] {
        let e = check_in(&system, &channel, steady.user_id, day(back)).await;
        if back == 1 {
            seventh = Some(e);
        }
    }
    let points = |user: &Registered, points: i64| {
        let system = &system;
        let token = user.access_token.clone();
        async move {
            system
                .eventually(Duration::from_secs(20), &format!("{points} points"), || async {
                    let res = system.query("/api/v1/users/me", &token, None).await;
                    (res.body["points"] == points).then_some(res.body)
                })
                .await
        }
    };
    // 7 × 5 for the days, 20 for the seventh consecutive one.
    let me = points(&steady, 55).await;
    assert_eq!((me["current_streak"].as_i64(), me["best_streak"].as_i64()), (Some(7), Some(7)), "{me}");
    assert_eq!(me["last_check_in"], json!(day(1)));
    // The seventh day again, redelivered and re-sent under a new id: nothing more is paid.
    support::publish_raw(&channel, &system, "attendance.checked_in", &seventh.clone().unwrap().to_json_bytes()).await;
    check_in(&system, &channel, steady.user_id, day(1)).await;
    system.settle(Duration::from_secs(30)).await;
    let me = system.query("/api/v1/users/me", &steady.access_token, None).await;
    assert_eq!(me.body["points"], 55, "each streak day pays once");
    let streak_awards: i64 = sqlx::query_scalar(
        "select count(*) from eventstore.events where type = 'points.earned' and data->>'reason' = 'streak'
           and (data->>'user_id')::uuid = $1",
    )
    .bind(steady.user_id)
    .fetch_one(&system.db)
    .await
    .unwrap();
    assert_eq!(streak_awards, 1);
    let badges = system.query("/api/v1/users/me/badges", &steady.access_token, None).await;
    let earned = ids(&badges.body, "badge_id");
    assert!(earned.contains(&"streak-7".into()) && earned.contains(&"streak-3".into()), "{earned:?}");
    assert!(!earned.contains(&"streak-30".into()));
    let history = system.query("/api/v1/users/me/activities?limit=50", &steady.access_token, None).await;
    let bonus: Vec<&Value> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "points" && i["metadata"]["reason"] == "streak")
        .collect();
    assert_eq!(bonus.len(), 1, "the bonus shows in the history: {}", history.body);

    // A missed day: six days that ended three days ago, then a check-in today.
    let lapsed = system.register("lapsed").await;
    fresh(&system, "/users/me", &lapsed, &lapsed.consistency_token).await;
    for back in (3..=8).rev() {
        check_in(&system, &channel, lapsed.user_id, day(back)).await;
    }
    let me = points(&lapsed, 30).await;
    assert_eq!((me["current_streak"].as_i64(), me["best_streak"].as_i64()), (Some(0), Some(6)), "{me}");
    check_in(&system, &channel, lapsed.user_id, today).await;
    let me = points(&lapsed, 35).await;
    assert_eq!((me["current_streak"].as_i64(), me["best_streak"].as_i64()), (Some(1), Some(6)), "no bonus: {me}");
}

/// Three players with points backdated into last week, on a system whose closer only runs at
/// start: last week is due but not closed.
async fn last_week_played(system: &TestSystem) -> (Vec<Registered>, String) {
    let (_conn, channel) = support::broker(system).await;
    let tz = system.settings.app_timezone;
    let this_week = Period::Weekly.start_at(Utc::now(), tz).unwrap();
    let last_week_key =
        Period::public_key(&Period::Weekly.key_at(this_week - chrono::TimeDelta::days(1), tz)).to_owned();
    let mut players = Vec::new();
    for (i, amount) in [30, 50, 30].into_iter().enumerate() {
        let player = system.register(format!("player{i}")).await;
        system.query("/api/v1/users/me", &player.access_token, Some(&player.consistency_token)).await;
        let mut e = Event::new(
            "admin",
            player.user_id,
            PointsEarned {
                user_id: player.user_id,
                amount,
                reason: PointsReason::Bonus,
                source_event_id: Uuid::now_v7(),
            }
            .into(),
        );
        // Tuesday of last week, player 0 an hour before player 2 (ties go to who got there first).
        e.occurred_at = this_week - chrono::TimeDelta::days(6) + chrono::TimeDelta::hours(i as i64);
        support::publish_raw(&channel, system, "points.earned", &e.to_json_bytes()).await;
        players.push(player);
    }
    system
        .eventually(Duration::from_secs(20), "last week's board", || async {
            let res = system
                .query(
                    &format!("/api/v1/leaderboards/weekly?period_key={last_week_key}"),
                    &players[0].access_token,
                    None,
                )
                .await;
            (res.body["items"].as_array().map(Vec::len) == Some(3)).then_some(())
        })
        .await;
    let early = system
        .query(
            &format!("/api/v1/leaderboards/weekly/results?period_key={last_week_key}"),
            &players[0].access_token,
            None,
        )
        .await;
    early.assert_problem(StatusCode::NOT_FOUND, "period_not_closed");
    (players, last_week_key)
}

async fn closed_once(system: &TestSystem, players: &[Registered], key: &str) {
    let results = system
        .eventually(Duration::from_secs(30), "last week closed", || async {
            let res = system
                .query(&format!("/api/v1/leaderboards/weekly/results?period_key={key}"), &players[0].access_token, None)
                .await;
            (res.status == StatusCode::OK).then_some(res.body)
        })
        .await;
    assert_eq!(results["period_key"], key);
    assert_eq!(results["participants"], 3);
    let ranks: Vec<(i64, Value, i64)> = results["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["rank"].as_i64().unwrap(), i["user_id"].clone(), i["points"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        ranks,
        [(1, json!(players[1].user_id), 50), (2, json!(players[0].user_id), 30), (2, json!(players[2].user_id), 30)]
    );
    assert!(results["items"][0]["nickname"].as_str().unwrap().starts_with("player1"), "{results}");
    let latest = system.query("/api/v1/leaderboards/weekly/results", &players[0].access_token, None).await;
    assert_eq!(latest.body["period_key"], key, "the latest closed week by default");
    system.settle(Duration::from_secs(30)).await;
    let closed: i64 = sqlx::query_scalar(
        "select count(*) from eventstore.events where type = 'leaderboard.period_closed' and data->>'period_key' = $1",
    )
    .bind(key)
    .fetch_one(&system.db)
    .await
    .unwrap();
    assert_eq!(closed, 1, "one worker recorded the period");
    // The top ten of the week get their badge; the winner the champion's too.
    let champion = system.query("/api/v1/users/me/badges", &players[1].access_token, None).await;
    let earned = ids(&champion.body, "badge_id");
    assert!(earned.contains(&"weekly-top-10".into()) && earned.contains(&"weekly-champion".into()), "{earned:?}");
    let second = system.query("/api/v1/users/me/badges", &players[2].access_token, None).await;
    let earned = ids(&second.body, "badge_id");
    assert!(earned.contains(&"weekly-top-10".into()) && !earned.contains(&"weekly-champion".into()), "{earned:?}");
}

fn closer_only_at_start(s: &mut platform::Settings) {
    s.period_close_interval = Duration::from_secs(3600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_that_ended_while_no_worker_closed_it_is_closed_when_workers_start() {
    let mut system = TestSystem::start_with(Options { configure: closer_only_at_start, ..Default::default() }).await;
    workers::seed::seed(&system.db).await.unwrap();
    let (players, key) = last_week_played(&system).await;
    system.stop_workers().await;
    system.start_workers(None).await;
    closed_once(&system, &players, &key).await;
    // Started again: nothing closes twice.
    system.stop_workers().await;
    system.start_workers(None).await;
    system.settle(Duration::from_secs(30)).await;
    let closed = system.count("select count(*) from eventstore.events where type = 'leaderboard.period_closed'").await;
    let periods = system.count("select count(*) from rewards.closed_periods").await;
    assert_eq!(closed, periods);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_racing_to_close_a_week_record_it_once() {
    let mut system = TestSystem::start_with(Options { configure: closer_only_at_start, ..Default::default() }).await;
    workers::seed::seed(&system.db).await.unwrap();
    let (players, key) = last_week_played(&system).await;
    system.stop_workers().await;
    // Two workers start at once: this process's and a separate OS process.
    let other = system.spawn_workers_process(env!("CARGO_BIN_EXE_workers-under-test"));
    system.start_workers(None).await;
    closed_once(&system, &players, &key).await;
    assert!(other.terminate().await, "the other worker stops cleanly");
}
