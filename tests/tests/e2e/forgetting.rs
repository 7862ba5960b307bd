//! Forgetting for real (issue #18, point 3; docs/forgetting.md): after `DELETE /users/me`, no
//! byte of the person's personal data is left in any table (the event log and outbox, the
//! command side, every read model), in Redis or in object storage; a rebuild of every
//! projection keeps it so; what is not personal (others' boards, category statistics) stands.

use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectStore;
use redis::AsyncCommands;
use serde_json::json;
use tests::{Registered, StatusCode, TestSystem, images};

use crate::rebuild::projector;

/// Every row of every table of the database, as text: what a dump holds.
async fn database_text(system: &TestSystem) -> String {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "select table_schema::text, table_name::text from information_schema.tables
         where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')",
    )
    .fetch_all(&system.db)
    .await
    .unwrap();
    assert!(tables.len() > 30, "the whole database: {} tables", tables.len());
    let mut out = String::new();
    for (schema, table) in tables {
        let rows: String = sqlx::query_scalar(&format!(
            "select coalesce(string_agg(t::text, E'\\n'), '') from \"{schema}\".\"{table}\" t"
        ))
        .fetch_one(&system.db)
        .await
        .unwrap();
        out.push_str(&format!("== {schema}.{table}\n{rows}\n"));
    }
    out
}

/// Every key of the system's Redis keyspace with its value, as text.
async fn redis_text(system: &TestSystem) -> String {
    let client = redis::Client::open(system.settings.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}:*", system.settings.redis_prefix)).query_async(&mut conn).await.unwrap();
    let mut out = String::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.unwrap();
        let value: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![conn.get(&key).await.unwrap()],
            "hash" => conn.hgetall::<_, Vec<Vec<u8>>>(&key).await.unwrap(),
            "zset" => conn.zrange_withscores::<_, Vec<Vec<u8>>>(&key, 0, -1).await.unwrap(),
            "set" => conn.smembers(&key).await.unwrap(),
            "list" => conn.lrange(&key, 0, -1).await.unwrap(),
            _ => Vec::new(),
        };
        out.push_str(&key);
        for v in value {
            out.push(' ');
            out.push_str(&String::from_utf8_lossy(&v));
        }
        out.push('\n');
    }
    out
}

/// Every object name in storage.
async fn stored(system: &TestSystem) -> Vec<String> {
    let store = platform::storage::open(&system.settings).unwrap();
    store.list(None).map_ok(|m| m.location.to_string()).try_collect().await.unwrap()
}

/// The person's nickname as the log's `user.profile_updated` holds it, opened with their key if
/// it still exists.
async fn logged_nickname(system: &TestSystem, user: &Registered) -> Option<String> {
    opened_nickname_as(system, user, user.user_id).await
}

/// The same, opened as if it were `owner`'s field (a sealed value copied into another
/// person's event must not open).
async fn opened_nickname_as(system: &TestSystem, user: &Registered, owner: uuid::Uuid) -> Option<String> {
    let raw: serde_json::Value = sqlx::query_scalar(
        "select data from eventstore.events where type = 'user.profile_updated' and aggregate_id = $1 and data ? 'nickname'",
    )
    .bind(user.user_id)
    .fetch_one(&system.db)
    .await
    .unwrap();
    let sealed: events::Personal = serde_json::from_value(raw["nickname"].clone()).unwrap();
    assert!(matches!(sealed, events::Personal::Sealed(_)), "sealed in the log: {raw}");
    let mut conn = system.db.acquire().await.unwrap();
    platform::personal::reveal(&mut conn, owner, "nickname", &sealed).await.unwrap()
}

/// Which of `needles` appear in `haystack`.
fn found<'a>(haystack: &str, needles: &[&'a str]) -> Vec<&'a str> {
    needles.iter().copied().filter(|n| haystack.contains(n)).collect()
}

async fn ok(res: tests::Response) -> String {
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    res.header("x-consistency-token").unwrap()
}

/// A rival's points on the board and the category statistics: what must not change.
async fn others(system: &TestSystem, rival: &Registered) -> (serde_json::Value, serde_json::Value) {
    let board = system.query("/api/v1/leaderboards/all-time/me", &rival.access_token, None).await;
    let stats = system.get("/api/v1/recycle/stats?period=all-time").await;
    (board.body["points"].clone(), stats.body["categories"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_person_leaves_no_personal_byte_behind_even_after_a_rebuild() {
    let system = TestSystem::start().await;
    let rival = system.register("rival").await;
    ok(system.command("/api/v1/scans", &rival.access_token, &json!({"category": "glass", "item_name": "jar"})).await)
        .await;

    let user = system.register("forgetme").await;
    let email = format!("{}@example.com", user.username);
    let (nickname, bio) = ("Zyxwv Forgettable", "bio-4b1d: loves the river path");
    let (label, address) = ("Hideout-7c2e", "Secret-street 42, 7c2e-dong");
    let device = "device-token-9f3a-forget";
    let mut tokens = vec![];
    tokens.push(
        ok(system
            .send(
                reqwest::Method::PATCH,
                "/users/me",
                &user.access_token,
                Some(json!({"nickname": nickname, "bio": bio})),
            )
            .await)
        .await,
    );
    tokens.push(
        ok(system
            .send(
                reqwest::Method::POST,
                "/locations/me",
                &user.access_token,
                Some(json!({"label": label, "address": address, "latitude": 37.55, "longitude": 126.99})),
            )
            .await)
        .await,
    );
    let res = system
        .send(
            reqwest::Method::PUT,
            &format!("/users/me/devices/{device}"),
            &user.access_token,
            Some(json!({"platform": "android"})),
        )
        .await;
    assert!(res.status.is_success(), "{}", res.body);
    let file = reqwest::multipart::Part::bytes(images::webp(64, 64)).file_name("me.webp");
    let req = system
        .http
        .post(format!("{}/api/v1/users/me/avatar", system.command_url))
        .bearer_auth(&user.access_token)
        .multipart(reqwest::multipart::Form::new().part("image", file));
    tokens.push(ok(tests::Response::read(req.send().await.unwrap()).await).await);
    tokens.push(
        ok(system
            .command("/api/v1/scans", &user.access_token, &json!({"category": "paper", "item_name": "box"}))
            .await)
        .await,
    );
    for token in &tokens {
        let me = system.query("/api/v1/users/me", &user.access_token, Some(token)).await;
        assert_eq!(me.header("x-consistency").as_deref(), Some("fresh"));
    }
    let me = system.query("/api/v1/users/me", &user.access_token, None).await;
    assert_eq!(me.body["nickname"], nickname);
    assert!(me.body["avatar_url"].as_str().unwrap().contains(&user.user_id.to_string()));
    // Everything is there while the account lives, readable where it is served, and the log
    // holds none of it in plain text.
    let needles = [user.username.as_str(), email.as_str(), nickname, bio, label, address, device];
    let live = database_text(&system).await;
    assert_eq!(found(&live, &needles), needles, "the live account's data is somewhere in the database");
    let log: String = sqlx::query_scalar("select string_agg(data::text, E'\\n') from eventstore.events")
        .fetch_one(&system.db)
        .await
        .unwrap();
    assert_eq!(found(&log, &needles), Vec::<&str>::new(), "the log holds personal fields sealed only");
    assert!(stored(&system).await.iter().any(|name| name.contains(&user.user_id.to_string())));
    assert_eq!(logged_nickname(&system, &user).await.as_deref(), Some(nickname), "the person's key opens it");
    assert_eq!(opened_nickname_as(&system, &user, rival.user_id).await, None, "never as someone else's");
    let before = others(&system, &rival).await;

    let res = system
        .send(reqwest::Method::DELETE, "/users/me", &user.access_token, Some(json!({"password": "recycle2026"})))
        .await;
    let deleted = ok(res).await;
    system
        .eventually(Duration::from_secs(20), "every consumer forgot the person", || async {
            let me = system.query("/api/v1/users/me", &rival.access_token, Some(&deleted)).await;
            let files = stored(&system).await;
            (me.status == StatusCode::OK && !files.iter().any(|f| f.contains(&user.user_id.to_string()))).then_some(())
        })
        .await;
    system.settle(Duration::from_secs(20)).await;

    let check = |when: &'static str| {
        let system = &system;
        let needles = &needles;
        async move {
            let db = database_text(system).await;
            assert_eq!(found(&db, needles), Vec::<&str>::new(), "{when}: personal data left in the database");
            let cache = redis_text(system).await;
            assert_eq!(found(&cache, needles), Vec::<&str>::new(), "{when}: personal data left in Redis");
            let files = stored(system).await;
            assert!(!files.iter().any(|f| f.contains(&user.user_id.to_string())), "{when}: files left: {files:?}");
        }
    };
    check("after deletion").await;
    assert_eq!(logged_nickname(&system, &user).await, None, "the key is destroyed: the log's copy is noise");
    assert_eq!(others(&system, &rival).await, before, "others' standing and the statistics stand");

    for name in workers::registry::projection_names() {
        projector(&system, name).rebuild(&system.db, |_| {}).await.unwrap();
    }
    check("after rebuilding every projection").await;
    assert_eq!(others(&system, &rival).await, before, "and after the rebuild");
    let profile: Option<String> = sqlx::query_scalar("select nickname from read.profiles where user_id = $1")
        .bind(user.user_id)
        .fetch_optional(&system.db)
        .await
        .unwrap();
    assert_eq!(profile, None, "the rebuilt profiles do not hold the person");
}

/// An event as an older EcoEco wrote it: v1, personal fields in plain text.
fn legacy(event_type: &str, user: uuid::Uuid, sequence: i64, data: serde_json::Value) -> events::RawEnvelope {
    events::RawEnvelope {
        id: uuid::Uuid::now_v7(),
        event_type: event_type.into(),
        version: 1,
        source: "command-api".into(),
        aggregate_type: "user".into(),
        aggregate_id: user,
        sequence: Some(sequence),
        occurred_at: chrono::Utc::now(),
        correlation_id: None,
        causation_id: None,
        data,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_existing_log_is_sealed_once_in_place_and_the_deleted_are_forgotten() {
    let system = TestSystem::start_with(tests::Options { workers: false, ..Default::default() }).await;
    let (kept, gone) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let mut old = Vec::new();
    for (user, name) in [(kept, "old_kept"), (gone, "old_gone")] {
        old.push(legacy(
            "user.registered",
            user,
            1,
            json!({"user_id": user, "username": name, "nickname": format!("{name} nick"), "provider": "local"}),
        ));
        old.push(legacy("user.profile_updated", user, 2, json!({"bio": format!("{name} bio")})));
        old.push(legacy(
            "user.places_changed",
            user,
            3,
            json!({"user_id": user, "places": [{"saved_place_id": uuid::Uuid::now_v7(), "label": format!("{name} home"),
                   "location": {"latitude": 37.5, "longitude": 127.0}, "address": format!("{name} street 1"), "is_default": true}]}),
        ));
    }
    old.push(legacy("user.deleted", gone, 4, json!({"user_id": gone})));
    let positions: Vec<i64> = {
        let mut conn = system.db.acquire().await.unwrap();
        platform::eventstore::insert(&mut conn, old.clone(), true).await.unwrap();
        sqlx::query_scalar("select position from eventstore.events order by position")
            .fetch_all(&system.db)
            .await
            .unwrap()
    };

    let migrated = platform::personal::migrate_log(&system.db, |_| {}).await.unwrap();
    assert_eq!(migrated, platform::personal::Migrated { sealed: 3, forgotten: 3, skipped: 0 });
    let log: String = sqlx::query_scalar("select string_agg(data::text, E'\\n') from eventstore.events")
        .fetch_one(&system.db)
        .await
        .unwrap();
    assert_eq!(found(&log, &["old_kept", "old_gone"]), Vec::<&str>::new(), "no plain text left: {log}");
    let after: Vec<(i64, i32)> = sqlx::query_as("select position, version from eventstore.events order by position")
        .fetch_all(&system.db)
        .await
        .unwrap();
    assert_eq!(after.iter().map(|(p, _)| *p).collect::<Vec<_>>(), positions, "rewritten in place");
    assert_eq!(after.iter().filter(|(_, v)| *v == 2).count(), 6);
    let rewrites: i64 = system.count("select count(*) from eventstore.rewrites").await;
    assert_eq!(rewrites, 1);
    assert_eq!(platform::personal::migrate_log(&system.db, |_| {}).await.unwrap(), Default::default(), "once");

    // The log yields the live person's data, and nothing of the deleted one.
    projector(&system, "profiles").rebuild(&system.db, |_| {}).await.unwrap();
    projector(&system, "places").rebuild(&system.db, |_| {}).await.unwrap();
    let profiles: Vec<(uuid::Uuid, String, String, String)> =
        sqlx::query_as("select user_id, username, nickname, bio from read.profiles")
            .fetch_all(&system.db)
            .await
            .unwrap();
    assert_eq!(profiles, [(kept, "old_kept".into(), "old_kept nick".into(), "old_kept bio".into())]);
    let places: Vec<(String, Option<String>)> =
        sqlx::query_as("select label, address from read.saved_places").fetch_all(&system.db).await.unwrap();
    assert_eq!(places, [("old_kept home".to_owned(), Some("old_kept street 1".to_owned()))]);
}
