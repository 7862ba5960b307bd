//! `ecoeco-bench rebuild`: how fast a projection rebuilds from the event log, next to how fast
//! this machine can write the same rows in batches at all.
//!
//! In a scratch database (`ecoeco_bench_rebuild`, recreated each run) it writes a synthetic log
//! of realistic events (registrations, scans and their awards, recycles in both versions of
//! `recycle.completed`, profile updates), then rebuilds each projection with exactly the code
//! `ecoctl projections rebuild` runs. The raw ceiling is measured in the same run: the same rows,
//! batch for batch, inserted into an index-free copy of the log table.

use std::time::{Duration, Instant};

use chrono::Utc;
use events::{Category, Event, PointsEarned, PointsReason, Provider, ScanRecorded, UserProfileUpdated, UserRegistered};
use platform::{Settings, eventstore, redis::Redis};
use serde_json::json;
use uuid::Uuid;
use workers::rebuild::Named;

/// Rows per insert batch (and per transaction), as the log writers use.
const BATCH: usize = 1000;

/// One user's history: registration, 18 scans each with its award, a v1 and a v2 recycle each
/// with its award, and a profile update. 42 events.
fn history(user: Uuid) -> Vec<events::RawEnvelope> {
    let mut out = Vec::with_capacity(42);
    let registered: events::EventData = UserRegistered {
        user_id: user,
        username: format!("u{}", &user.simple().to_string()[12..]).into(),
        nickname: "벤치".into(),
        provider: Provider::Local,
        invited_by: None,
    }
    .into();
    let mut sequence = 0;
    let mut push = |data: events::EventData, out: &mut Vec<events::RawEnvelope>| {
        sequence += 1;
        let mut e = Event::new("bench", user, data);
        e.sequence = Some(sequence);
        let id = e.id;
        out.push(e.to_raw());
        id
    };
    push(registered, &mut out);
    let award = |source: Uuid, amount: i64, reason: PointsReason| -> events::EventData {
        PointsEarned { user_id: user, amount, reason, source_event_id: source }.into()
    };
    for i in 0..18 {
        let scan = ScanRecorded {
            scan_id: Uuid::now_v7(),
            user_id: user,
            category: Category::Plastic,
            item_name: format!("PET bottle {i}"),
            confidence: Some(0.9),
            image_sha256: None,
            scanned_at: Utc::now(),
        };
        let id = push(scan.into(), &mut out);
        push(award(id, 10, PointsReason::Scan), &mut out);
    }
    for version in [1, 2] {
        let mut e = Event::new(
            "kiosk",
            user,
            events::RecycleCompleted {
                recycle_id: Uuid::now_v7(),
                user_id: user,
                category: Category::Glass,
                bin_id: None,
                center_id: None,
                location: Some(events::GeoPoint { latitude: 37.56, longitude: 126.97 }),
            }
            .into(),
        )
        .to_raw();
        if version == 1 {
            e.version = 1;
            e.data = json!({"recycle_id": e.data["recycle_id"], "user_id": user, "category": "glass",
                            "latitude": 37.56, "longitude": 126.97});
        }
        let id = e.id;
        out.push(e);
        push(award(id, 50, PointsReason::Recycle), &mut out);
    }
    push(UserProfileUpdated { nickname: Some("재활용왕".into()), ..Default::default() }.into(), &mut out);
    out
}

/// Runs the benchmark and prints its figures.
pub async fn run(mut settings: Settings, events: usize) -> anyhow::Result<()> {
    let base = settings.database_url.rsplit_once('/').map_or(settings.database_url.as_str(), |(b, _)| b).to_owned();
    let admin = sqlx::PgPool::connect(&format!("{base}/postgres")).await?;
    sqlx::query("drop database if exists ecoeco_bench_rebuild with (force)").execute(&admin).await?;
    settings.database_url = format!("{base}/ecoeco_bench_rebuild");
    settings.redis_prefix = "bench-rebuild".into();
    settings.database_max_connections = 4;
    platform::db::create_if_missing(&settings.database_url).await?;
    let db = platform::db::connect(&settings).await?;
    platform::db::migrate(&db).await?;
    let redis = Redis::new(&settings)?;

    let users = events.div_ceil(42);
    println!("-- writing a log of {} events ({users} users × 42), batches of {BATCH}", users * 42);
    let mut log: Vec<events::RawEnvelope> = Vec::with_capacity(users * 42);
    for _ in 0..users {
        log.extend(history(Uuid::now_v7()));
    }
    // Registrations first, then the rest in order, as a live log would have them.
    log.sort_by_key(|e| e.event_type != "user.registered");
    let total = log.len();

    sqlx::query(
        "create unlogged table if not exists raw_insert (like eventstore.events including defaults including identity)",
    )
    .execute(&db)
    .await?;
    let raw = insert_all(&db, &log, true).await?;
    let stored = insert_all(&db, &log, false).await?;
    sqlx::query("drop table raw_insert").execute(&db).await?;
    let raw_rate = total as f64 / raw.as_secs_f64();
    println!(
        "raw batched insert (index-free unlogged copy)  {total} rows in {:.2} s = {raw_rate:.0} rows/s",
        raw.as_secs_f64()
    );
    println!(
        "event log insert (indexed, logged)            {total} rows in {:.2} s = {:.0} rows/s",
        stored.as_secs_f64(),
        total as f64 / stored.as_secs_f64()
    );

    println!("\n-- rebuilding each projection from the log (what `ecoctl projections rebuild` runs)");
    for name in ["profiles", "activities", "leaderboards"] {
        let projector = Named::find(
            name,
            &workers::registry::Deps { db: db.clone(), redis: redis.clone(), settings: settings.clone() },
        )?;
        let report = projector.rebuild(&db, |_| {}).await?;
        let rows: Vec<String> = report.rows.iter().map(|(t, n)| format!("{t}={n}")).collect();
        println!(
            "{name:<13} {:>7} events in {:>6.2} s = {:>6.0} events/s ({:>4.1} % of the raw insert rate); swap paused the live projector {} ms; {}",
            report.events,
            report.elapsed.as_secs_f64(),
            report.rate(),
            100.0 * report.rate() / raw_rate,
            report.swap.as_millis(),
            rows.join(" ")
        );
        anyhow::ensure!(report.skipped == 0, "{name}: skipped {:?}", report.skipped_samples);
    }
    db.close().await;
    sqlx::query("drop database if exists ecoeco_bench_rebuild with (force)").execute(&admin).await?;
    Ok(())
}

/// Inserts `log` in batches (into the log, or into `raw_insert` when `raw`), one transaction
/// per batch; returns the time it took.
async fn insert_all(db: &sqlx::PgPool, log: &[events::RawEnvelope], raw: bool) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for chunk in log.chunks(BATCH) {
        let mut tx = db.begin().await?;
        let table = if raw { "raw_insert" } else { eventstore::LOG_TABLE };
        eventstore::insert_into(&mut tx, table, chunk.to_vec(), true).await?;
        tx.commit().await?;
    }
    Ok(started.elapsed())
}
