//! What operators do with `ecoctl`: look at parked events, requeue them, drop them, read status.

use std::time::Duration;

use events::{Event, Provider, UserProfileUpdated, UserRegistered};
use platform::topology::READ_MODELS;
use tests::TestSystem;
use uuid::Uuid;
use workers::ops;

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeued_parked_event_applies_once_and_status_shows_it() {
    let system = TestSystem::start().await;
    let (_conn, channel) = support::broker(&system).await;
    let user = system.live_account(Uuid::now_v7()).await;
    let mut rename = Event::new(
        "profile-service",
        user,
        UserProfileUpdated { nickname: Some("돌아온".into()), ..Default::default() }.into(),
    );
    rename.sequence = Some(2);
    support::publish_raw(&channel, &system, "user.profile_updated", &rename.to_json_bytes()).await;

    let parked = system
        .eventually(Duration::from_secs(15), "the rename parked after its retries", || async {
            let list = ops::parked_list(&system.settings, &READ_MODELS, 10).await.unwrap();
            (list.len() == 1).then_some(list)
        })
        .await;
    assert_eq!(parked[0].event_id.as_deref(), Some(rename.id.to_string().as_str()));
    assert_eq!(parked[0].reason, "retries_exhausted");
    assert_eq!(
        ops::parked_list(&system.settings, &READ_MODELS, 10).await.unwrap().len(),
        1,
        "listing leaves it in place"
    );
    let status = ops::status(&system.settings, &system.db).await.unwrap();
    let profiles = status.iter().find(|s| s.consumer == "projection.profiles").unwrap();
    assert_eq!(profiles.parked, Some(1));

    // The cause is fixed (the registration arrives), then the operator requeues.
    let registered = Event::new(
        "signup-service",
        user,
        UserRegistered {
            user_id: user,
            username: "returning".into(),
            nickname: "old".into(),
            provider: Provider::Local,
            invited_by: None,
        }
        .into(),
    );
    support::publish_raw(&channel, &system, "user.registered", &registered.to_json_bytes()).await;
    let wrong = ops::parked_requeue(&system.settings, &READ_MODELS, Some(&Uuid::now_v7().to_string())).await.unwrap();
    assert!(wrong.is_empty(), "an unknown id touches nothing");
    let done = ops::parked_requeue(&system.settings, &READ_MODELS, None).await.unwrap();
    assert_eq!(done.len(), 1);
    let nickname: String = system
        .eventually(Duration::from_secs(15), "the requeued rename applied", || async {
            sqlx::query_scalar::<_, String>(
                "select nickname from read.profiles where user_id = $1 and nickname = '돌아온'",
            )
            .bind(user)
            .fetch_optional(&system.db)
            .await
            .unwrap()
        })
        .await;
    assert_eq!(nickname, "돌아온");
    // Requeueing the same bytes again changes nothing: applied once.
    support::publish_raw(&channel, &system, "user.profile_updated", &rename.to_json_bytes()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let applied: i64 = sqlx::query_scalar(
        "select count(*) from projection.applied_events where projection = 'profiles' and event_id = $1",
    )
    .bind(rename.id)
    .fetch_one(&system.db)
    .await
    .unwrap();
    assert_eq!(applied, 1);
    assert!(ops::parked_list(&system.settings, &READ_MODELS, 10).await.unwrap().is_empty());
    // Both events are in the log (ingest stored the rename first, then the registration) and
    // both are applied: the projection is at the end of the log.
    // Positions may skip (a consumer's transaction that stored an event and rolled back spent
    // one); what counts is that both events are there and the projection reached the last.
    assert_eq!(system.count("select count(*) from eventstore.events").await, 2);
    let last = system.count("select max(position) from eventstore.events").await;
    let status = ops::status(&system.settings, &system.db).await.unwrap();
    let profiles = status.iter().find(|s| s.consumer == "projection.profiles").unwrap();
    assert_eq!(profiles.last_position, Some(last));
    assert_eq!((profiles.parked, profiles.lag_events), (Some(0), 0));

    support::publish_raw(&channel, &system, "user.registered", b"garbage").await;
    system
        .eventually(Duration::from_secs(15), "garbage parked", || async {
            (ops::parked_list(&system.settings, &READ_MODELS, 10).await.unwrap().len() == 1).then_some(())
        })
        .await;
    assert_eq!(ops::parked_purge(&system.settings, &READ_MODELS, None).await.unwrap().len(), 1);
    assert!(ops::parked_list(&system.settings, &READ_MODELS, 10).await.unwrap().is_empty());
    assert!(ops::consumer("nope").unwrap_err().to_string().contains("projection.profiles"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_gauges_show_backlog_lag_and_parked_messages() {
    let system = TestSystem::start_with(tests::Options {
        configure: |s| s.gauge_interval = Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let workers = system.workers_url.clone().unwrap();
    let gauge = |metric: &'static str, labels: &'static [&'static str]| {
        let (http, url) = (system.http.clone(), workers.clone());
        async move { tests::scrape(&http, &url, metric, labels).await }
    };
    // Someone signs up (the relay publishes, the API serves), then the trouble starts: a rename
    // for an account whose profile never arrives, which the profiles projector retries, then
    // parks.
    let signed_up = system.register("gauged").await;
    let (_conn, channel) = support::broker(&system).await;
    let mut rename = Event::new(
        "profile-service",
        system.live_account(Uuid::now_v7()).await,
        UserProfileUpdated { nickname: Some("유령".into()), ..Default::default() }.into(),
    );
    rename.sequence = Some(2);
    support::publish_raw(&channel, &system, "user.profile_updated", &rename.to_json_bytes()).await;
    // And bytes that are no event at all: ingest parks them at once.
    support::publish_raw(&channel, &system, "scan.recorded", b"{oops").await;

    let profiles = &[r#"consumer="projection.profiles""#][..];
    // The projections park in their processing group's queue.
    let group = &[r#"consumer="projections""#][..];
    let ingest = &[r#"consumer="ingest""#][..];
    // (Every test of this binary shares one metrics registry, and other tests' workers sample
    // too, if rarely: each reading is taken together, and retried until this test's sampler
    // wrote the whole set last.)
    system
        .eventually(Duration::from_secs(20), "parked and lag gauges for profiles and ingest", || async {
            // The group parked the rename (after its retries) and the garbage (at once); ingest the garbage.
            let parked = (gauge("parked_messages", group).await?, gauge("parked_messages", ingest).await?);
            let age = gauge("parked_oldest_age_seconds", group).await?;
            // The parked rename was published and is not applied: the profiles projection lags by it.
            let lag = gauge("projection_lag_events", profiles).await?;
            let lag_age = gauge("projection_lag_seconds", profiles).await?;
            let board_lag = gauge("projection_lag_events", &[r#"consumer="projection.leaderboards""#]).await?;
            let published = gauge("events_published_total", &[]).await.unwrap_or(0.0);
            (parked == (2.0, 1.0) && published > 0.0 && age > 0.0 && lag == 1.0 && lag_age > 0.0 && board_lag == 0.0)
                .then_some(())
        })
        .await;
    // Every series the Grafana dashboard graphs is one the processes export.
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../ops/grafana/ecoeco-pipeline.json")))
            .unwrap();
    let exported = system.http.get(format!("{workers}/metrics")).send().await.unwrap().text().await.unwrap();
    let mut graphed = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let names = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| {
                w.contains('_') && *w != "histogram_quantile" && !w.starts_with(|c: char| c.is_ascii_digit())
            });
            for name in names {
                let series = name.strip_suffix("_bucket").unwrap_or(name);
                assert!(
                    exported.lines().any(|l| l.starts_with(series) && !l.starts_with('#')),
                    "the dashboard graphs `{name}`, which nothing exports"
                );
                graphed += 1;
            }
        }
    }
    assert!(graphed >= 12, "{graphed} series graphed");
    // Peeking for the age leaves the parked messages where they were.
    assert_eq!(ops::parked_list(&system.settings, &READ_MODELS, 10).await.unwrap().len(), 2);

    // With the relay stopped, commands pile up in the outbox; the gauge (sampled by a workers
    // process running only a projector) shows the backlog and its age.
    let mut system = system;
    system.stop_workers().await;
    let user = system.register("backlog").await;
    assert_ne!(user.user_id, signed_up.user_id);
    let mut settings = system.settings.clone();
    settings.migrate_on_start = false;
    let app =
        workers::App::build(settings, vec![workers::Role::consumer(&platform::topology::ACTIVITIES)]).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    let http = system.http.clone();
    system
        .eventually(Duration::from_secs(20), "the outbox backlog gauge", || async {
            let backlog = tests::scrape(&http, &url, "outbox_backlog_events", &[]).await?;
            let age = tests::scrape(&http, &url, "outbox_oldest_unpublished_age_seconds", &[]).await?;
            (backlog >= 1.0 && age > 0.0).then_some(())
        })
        .await;
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// The lag gauges read the log from a cursor rather than the whole window each time: what is
/// applied drops out, and an event whose transaction commits after later ones were sampled, or
/// that is published late, is still counted when it appears (the cursor never passes a
/// transaction still running, nor an unpublished event). Past the cursor nothing is read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_samples_read_from_a_cursor_and_miss_no_late_commit() {
    let system = TestSystem::start_with(tests::Options { workers: false, ..Default::default() }).await;
    let db = &system.db;
    let spec = &platform::topology::PROFILES;
    let log = |id: Uuid, published: bool| {
        sqlx::query(
            "insert into eventstore.events
                 (id, type, version, source, aggregate_type, aggregate_id, occurred_at, data, published_at)
             values ($1, 'user.profile_updated', 1, 'profile-service', 'user', $1, now(), '{}',
                     case when $2 then now() end)",
        )
        .bind(id)
        .bind(published)
    };
    let apply = |id: Uuid| {
        sqlx::query("insert into projection.applied_events (projection, event_id) values ('profiles', $1)").bind(id)
    };
    let (window, mut cursor) = (Duration::from_secs(3600), ops::LagCursor::default());

    let mut late = db.begin().await.unwrap();
    let (late_id, early_id, later_id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    log(late_id, true).execute(&mut *late).await.unwrap();
    log(early_id, true).execute(db).await.unwrap();
    let lag = ops::lag_since(db, spec, window, &mut cursor).await.unwrap();
    assert_eq!(lag.events, 1, "the committed event");
    assert!(lag.seconds >= 0.0);
    apply(early_id).execute(db).await.unwrap();
    log(later_id, true).execute(db).await.unwrap();
    apply(later_id).execute(db).await.unwrap();
    assert_eq!(ops::lag_since(db, spec, window, &mut cursor).await.unwrap().events, 0, "applied ones drop out");

    late.commit().await.unwrap();
    assert_eq!(ops::lag_since(db, spec, window, &mut cursor).await.unwrap().events, 1, "the late commit counts");
    assert_eq!(ops::lag(db, spec).await.unwrap().events, 1, "as the whole log says");
    apply(late_id).execute(db).await.unwrap();
    assert_eq!(ops::lag_since(db, spec, window, &mut cursor).await.unwrap().events, 0);

    // Committed but not published: no lag until the relay publishes it, then counted.
    let outbox = Uuid::now_v7();
    log(outbox, false).execute(db).await.unwrap();
    assert_eq!(ops::lag_since(db, spec, window, &mut cursor).await.unwrap().events, 0, "unpublished");
    sqlx::query("update eventstore.events set published_at = now() where id = $1")
        .bind(outbox)
        .execute(db)
        .await
        .unwrap();
    assert_eq!(ops::lag_since(db, spec, window, &mut cursor).await.unwrap().events, 1, "published later");
    apply(outbox).execute(db).await.unwrap();

    // Once every transaction of the cluster older than these has ended (other tests run beside
    // this one), the cursor is past them all, and a sample no longer reads them: an applied
    // mark taken away behind it (never done outside this test) goes unseen, where a fresh cursor
    // (another process) reads the whole window and sees it.
    let newest: String =
        sqlx::query_scalar("select max(transaction_id)::text from eventstore.events").fetch_one(db).await.unwrap();
    let newest: u64 = newest.parse().unwrap();
    let cursor = tokio::sync::Mutex::new(cursor);
    system
        .eventually(Duration::from_secs(20), "the cursor past the events", || async {
            let mut cursor = cursor.lock().await;
            assert_eq!(ops::lag_since(db, spec, window, &mut cursor).await.unwrap().events, 0);
            (cursor.position().unwrap() > newest).then_some(())
        })
        .await;
    let mut cursor = cursor.into_inner();
    sqlx::query("delete from projection.applied_events where projection = 'profiles' and event_id = $1")
        .bind(early_id)
        .execute(db)
        .await
        .unwrap();
    assert_eq!(ops::lag_since(db, spec, window, &mut cursor).await.unwrap().events, 0, "behind the cursor");
    assert_eq!(ops::lag_since(db, spec, window, &mut ops::LagCursor::default()).await.unwrap().events, 1);
}
