//! `ecoeco-bench`: drives a running EcoEco (start it with `scripts/run.sh`) and prints figures.
//!
//! ```text
//! ecoeco-bench register-latency --count 1000 --concurrency 8
//! ecoeco-bench load --concurrency 16 --requests 5000
//! ecoeco-bench rebuild --events 200000
//! ecoeco-bench sustained --rate 200 --factor 1.5 --step-secs 60
//! ```
//!
//! `rebuild` needs no running system, only PostgreSQL and Redis (see `rebuild.rs`).
//!
//! `load` prints, in one run: `POST /scans` throughput and latency at a fixed concurrency; the
//! lag from a scan accepted to its points visible on `GET /users/me`; `GET /users/me` and
//! `GET /leaderboards/weekly` throughput and latency; and the raw ceilings of the machine that
//! bound them, measured with the same concurrency: PostgreSQL single-row commits per second and
//! RabbitMQ confirmed publish + consume per second.

mod avatar;
mod rebuild;
mod sustained;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures::{StreamExt, stream};
use serde_json::json;
use uuid::Uuid;

#[derive(Parser)]
#[command(name = "ecoeco-bench", about = "Benchmarks against a running EcoEco")]
pub(crate) struct Cli {
    /// command-api base URL.
    #[arg(long, default_value = "http://127.0.0.1:8081", global = true)]
    pub(crate) command_url: String,
    /// query-api base URL.
    #[arg(long, default_value = "http://127.0.0.1:8082", global = true)]
    pub(crate) query_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register users and read each profile back with the consistency token: the end-to-end
    /// latency of the whole path (command → outbox → relay → broker → projector → query).
    RegisterLatency {
        /// Registrations.
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Concurrent clients.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// The gamification load test, with the machine's raw ceilings alongside.
    Load {
        /// Concurrent clients (and connections for the ceilings).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Requests per HTTP measurement.
        #[arg(long, default_value_t = 5000)]
        requests: usize,
        /// Scan → points lag samples.
        #[arg(long, default_value_t = 300)]
        lag_samples: usize,
        /// PostgreSQL server for the commit ceiling (a scratch table in database `ecoeco_bench`).
        #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres:postgres@127.0.0.1:5432/ecoeco")]
        database_url: String,
        /// RabbitMQ for the publish ceiling (a scratch queue).
        #[arg(long, env = "AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
        amqp_url: String,
    },
    /// Guide search (answers cached, and every query new) and bins near a point, against a
    /// running system with the shipped content loaded (`ecoeco` loads it at start).
    Guide {
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Requests per measurement.
        #[arg(long, default_value_t = 5000)]
        requests: usize,
    },
    /// Search quality over `content/search-eval.json` (Korean words, typos, initial consonants,
    /// spacing variants, English, aliases): recall@1, recall@3 and MRR, overall and per kind,
    /// and the queries that miss, against a running system with the shipped content loaded.
    SearchQuality {
        /// The query set.
        #[arg(long, default_value = "content/search-eval.json")]
        eval: std::path::PathBuf,
        /// List every query whose right answer is not in the top 3.
        #[arg(long)]
        misses: bool,
    },
    /// Open-loop mixed traffic stepped up to the highest rate sustained with scan → points p99
    /// under 1 s and no failure, with the ceilings, closed-loop reads, the cost per scan and
    /// each process's RSS and CPU (settings from the environment; see `sustained.rs`).
    Sustained(sustained::Options),
    /// Rebuild rate of each projection over a synthetic log, next to the raw batched-insert rate
    /// of the same rows (scratch database `ecoeco_bench_rebuild`; settings from the environment).
    Rebuild {
        /// Events in the synthetic log (rounded up to whole user histories of 42 events).
        #[arg(long, default_value_t = 200_000)]
        events: usize,
    },
    /// Avatar renditions of photos of growing size: time next to a plain decode of the same
    /// bytes, and the peak memory (no services needed).
    Avatar {
        /// Photo sizes in megapixels.
        #[arg(long, value_delimiter = ',', default_value = "1,4,8,12,16")]
        megapixels: Vec<f64>,
    },
}

struct Sample {
    register: Duration,
    read: Duration,
    total: Duration,
    fresh: bool,
}

async fn register_and_read(http: &reqwest::Client, cli: &Cli, run: &str, i: usize) -> anyhow::Result<Sample> {
    let username = format!("b{run}_{i}");
    let started = Instant::now();
    let res = http
        .post(format!("{}/api/v1/auth/register", cli.command_url))
        .json(&json!({"username": username, "email": format!("{username}@bench.example"), "password": "recycle2026"}))
        .send()
        .await?;
    if res.status() != reqwest::StatusCode::CREATED {
        bail!("register answered {}: {}", res.status(), res.text().await.unwrap_or_default());
    }
    let token = res.headers().get("x-consistency-token").context("no consistency token")?.to_str()?.to_owned();
    let body: serde_json::Value = res.json().await?;
    let registered = started.elapsed();
    let access = body["access_token"].as_str().context("no access token")?;
    let res = http
        .get(format!("{}/api/v1/users/me", cli.query_url))
        .bearer_auth(access)
        .header("x-consistency-token", token)
        .send()
        .await?;
    let fresh = res.headers().get("x-consistency").is_some_and(|v| v == "fresh") && res.status().is_success();
    let total = started.elapsed();
    Ok(Sample { register: registered, read: total - registered, total, fresh })
}

/// A registered user of the benchmark.
pub(crate) struct User {
    pub(crate) access: String,
}

pub(crate) async fn register(http: &reqwest::Client, cli: &Cli, name: String) -> anyhow::Result<User> {
    let res = http
        .post(format!("{}/api/v1/auth/register", cli.command_url))
        .json(&json!({"username": name, "email": format!("{name}@bench.example"), "password": "recycle2026"}))
        .send()
        .await?;
    if res.status() != reqwest::StatusCode::CREATED {
        bail!("register answered {}", res.status());
    }
    let token = res.headers().get("x-consistency-token").context("no consistency token")?.to_str()?.to_owned();
    let body: serde_json::Value = res.json().await?;
    let access = body["access_token"].as_str().context("no access token")?.to_owned();
    // Wait for the profile, so later measurements start from a projected user.
    http.get(format!("{}/api/v1/users/me", cli.query_url))
        .bearer_auth(&access)
        .header("x-consistency-token", token)
        .send()
        .await?;
    Ok(User { access })
}

/// Runs `requests` calls of `call` with `concurrency` in flight; returns (elapsed, latencies).
async fn drive<F, Fut>(requests: usize, concurrency: usize, call: F) -> anyhow::Result<(Duration, Vec<Duration>)>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let latencies: Vec<anyhow::Result<Duration>> = stream::iter(0..requests)
        .map(|i| {
            let fut = call(i);
            async move {
                let t = Instant::now();
                fut.await?;
                Ok(t.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    Ok((elapsed, latencies.into_iter().collect::<anyhow::Result<_>>()?))
}

fn throughput(name: &str, count: usize, elapsed: Duration, latencies: Vec<Duration>) -> f64 {
    let rate = count as f64 / elapsed.as_secs_f64();
    println!("{name:<34} {rate:>9.0} /s");
    report("  latency", latencies);
    rate
}

async fn expect_status(res: reqwest::Response, status: reqwest::StatusCode) -> anyhow::Result<()> {
    if res.status() != status {
        bail!("{} answered {}", res.url(), res.status());
    }
    res.bytes().await?;
    Ok(())
}

async fn load(
    cli: &Cli,
    concurrency: usize,
    requests: usize,
    lag_samples: usize,
    database_url: &str,
    amqp_url: &str,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency * 2).build()?;
    let run = Uuid::new_v4().simple().to_string()[..8].to_owned();
    println!("load: concurrency {concurrency}, {requests} requests per measurement, {lag_samples} lag samples");
    let users: Vec<User> = stream::iter(0..concurrency)
        .map(|i| register(&http, cli, format!("l{run}_{i}")))
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;

    println!("\n-- the system");
    let (elapsed, lat) = drive(requests, concurrency, |i| {
        let req = http
            .post(format!("{}/api/v1/scans", cli.command_url))
            .bearer_auth(&users[i % users.len()].access)
            .json(&json!({"category": "plastic", "item_name": "PET bottle"}));
        async move { expect_status(req.send().await?, reqwest::StatusCode::ACCEPTED).await }
    })
    .await?;
    let scans = throughput("POST /scans", requests, elapsed, lat);

    // Lag: fresh users (under the daily cap), one scan each, poll until the points show.
    let lag_users: Vec<User> = stream::iter(0..lag_samples)
        .map(|i| register(&http, cli, format!("g{run}_{i}")))
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let lags: Vec<anyhow::Result<Duration>> = stream::iter(lag_users.iter())
        .map(|u| async {
            let started = Instant::now();
            let res = http
                .post(format!("{}/api/v1/scans", cli.command_url))
                .bearer_auth(&u.access)
                .json(&json!({"category": "paper", "item_name": "box"}))
                .send()
                .await?;
            expect_status(res, reqwest::StatusCode::ACCEPTED).await?;
            loop {
                let me: serde_json::Value = http
                    .get(format!("{}/api/v1/users/me", cli.query_url))
                    .bearer_auth(&u.access)
                    .send()
                    .await?
                    .json()
                    .await?;
                if me["points"].as_i64() == Some(10) {
                    return Ok(started.elapsed());
                }
                if started.elapsed() > Duration::from_secs(30) {
                    bail!("points not visible after 30 s");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .buffer_unordered(concurrency.min(8))
        .collect()
        .await;
    let lags: Vec<Duration> = lags.into_iter().collect::<anyhow::Result<_>>()?;
    report("scan accepted → points visible", lags);

    let (elapsed, lat) = drive(requests, concurrency, |i| {
        let req = http.get(format!("{}/api/v1/users/me", cli.query_url)).bearer_auth(&users[i % users.len()].access);
        async move { expect_status(req.send().await?, reqwest::StatusCode::OK).await }
    })
    .await?;
    let me = throughput("GET /users/me", requests, elapsed, lat);
    let (elapsed, lat) = drive(requests, concurrency, |i| {
        let req = http
            .get(format!("{}/api/v1/leaderboards/weekly", cli.query_url))
            .bearer_auth(&users[i % users.len()].access);
        async move { expect_status(req.send().await?, reqwest::StatusCode::OK).await }
    })
    .await?;
    let boards = throughput("GET /leaderboards/weekly", requests, elapsed, lat);

    println!("\n-- raw ceilings of this machine (same concurrency)");
    let commits = pg_commit_ceiling(database_url, concurrency, requests).await?;
    let messages = amqp_ceiling(amqp_url, concurrency, requests).await?;
    println!("\n-- ratios");
    println!("POST /scans / PostgreSQL commits        {:>6.1} %", 100.0 * scans / commits);
    println!("POST /scans / RabbitMQ publish+consume  {:>6.1} %", 100.0 * scans / messages);
    println!("GET /users/me, /leaderboards/weekly     {me:.0} /s, {boards:.0} /s");
    Ok(())
}

/// Search and nearby-place throughput and latency.
async fn guide(http: &reqwest::Client, cli: &Cli, concurrency: usize, requests: usize) -> anyhow::Result<()> {
    const QUERIES: [&str; 10] =
        ["페트병", "botle", "캔", "스티로폼", "battery", "우유팩", "형광등", "유리", "pizza", "건전지"];
    let url = |path: String| format!("{}/api/v1{path}", cli.query_url);
    let probe = http.get(url("/recycle/search?q=%ED%8E%98%ED%8A%B8%EB%B3%91".into())).send().await?;
    let hits: serde_json::Value = probe.json().await?;
    if hits["items"].as_array().is_none_or(Vec::is_empty) {
        bail!("the guide is empty: start the system with `ecoeco` (it loads the content) or run `ecoctl seed`");
    }
    println!("guide: {requests} requests per measurement, {concurrency} concurrent clients");
    let run = Uuid::new_v4().simple().to_string();
    let get = |path: String| {
        let request = http.get(url(path));
        async move {
            let res = request.send().await?;
            if !res.status().is_success() {
                bail!("answered {}", res.status());
            }
            res.bytes().await?;
            Ok(())
        }
    };
    let (elapsed, lat) =
        drive(requests, concurrency, |i| get(format!("/recycle/search?q={}", QUERIES[i % QUERIES.len()]))).await?;
    throughput("GET /recycle/search (cached)", requests, elapsed, lat);
    let (elapsed, lat) = drive(requests, concurrency, |i| {
        get(format!("/recycle/search?q={}{}{i}", QUERIES[i % QUERIES.len()], &run[..6]))
    })
    .await?;
    throughput("GET /recycle/search (every query new)", requests, elapsed, lat);
    let (elapsed, lat) = drive(requests, concurrency, |i| {
        let (lat, lon) = (37.45 + (i % 97) as f64 * 0.002, 126.85 + (i % 89) as f64 * 0.003);
        get(format!("/locations/bins?latitude={lat:.4}&longitude={lon:.4}&radius=2000"))
    })
    .await?;
    throughput("GET /locations/bins (2 km)", requests, elapsed, lat);
    Ok(())
}

/// One query of the evaluation set.
#[derive(serde::Deserialize)]
struct EvalQuery {
    query: String,
    kind: String,
    expected: Vec<String>,
}

/// Recall@1, recall@3 and mean reciprocal rank (first right answer in the top 10), per kind of
/// query and overall.
async fn search_quality(http: &reqwest::Client, cli: &Cli, eval: &std::path::Path, misses: bool) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct Eval {
        queries: Vec<EvalQuery>,
    }
    let text = std::fs::read_to_string(eval).with_context(|| format!("reading {}", eval.display()))?;
    let set: Eval = serde_json::from_str(&text).with_context(|| format!("parsing {}", eval.display()))?;
    let mut by_kind: std::collections::BTreeMap<String, (usize, usize, usize, f64)> = Default::default();
    let mut missed = Vec::new();
    let started = Instant::now();
    for q in &set.queries {
        let expected: Vec<Uuid> = q.expected.iter().map(|slug| workers::seed::content_id("item", slug)).collect();
        let res = http
            .get(format!("{}/api/v1/recycle/search", cli.query_url))
            .query(&[("q", q.query.as_str()), ("limit", "10")])
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("searching {:?} answered {}", q.query, res.status());
        }
        let body: serde_json::Value = res.json().await?;
        let hits: Vec<(Uuid, String)> = body["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| Some((i["id"].as_str()?.parse().ok()?, i["name_ko"].as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let rank = hits.iter().position(|(id, _)| expected.contains(id)).map(|p| p + 1);
        for key in [q.kind.as_str(), "all"] {
            let entry = by_kind.entry(key.to_owned()).or_default();
            entry.0 += 1;
            entry.1 += usize::from(rank == Some(1));
            entry.2 += usize::from(rank.is_some_and(|r| r <= 3));
            entry.3 += rank.map_or(0.0, |r| 1.0 / r as f64);
        }
        if rank.is_none_or(|r| r > 3) {
            let top: Vec<&str> = hits.iter().take(3).map(|(_, name)| name.as_str()).collect();
            missed.push(format!(
                "{:<9} {:<22} rank {:<5} top 3: {}",
                q.kind,
                q.query,
                rank.map_or("-".into(), |r| r.to_string()),
                top.join(", ")
            ));
        }
    }
    println!(
        "search quality: {} queries from {} in {:.1} s (first right answer among the top 10)",
        set.queries.len(),
        eval.display(),
        started.elapsed().as_secs_f64()
    );
    println!("{:<10} {:>7} {:>9} {:>9} {:>7}", "kind", "queries", "recall@1", "recall@3", "MRR");
    let mut kinds: Vec<_> = by_kind.iter().filter(|(k, _)| *k != "all").collect();
    kinds.extend(by_kind.get_key_value("all"));
    for (kind, (n, r1, r3, rr)) in kinds {
        let n_f = *n as f64;
        println!("{kind:<10} {n:>7} {:>9.3} {:>9.3} {:>7.3}", *r1 as f64 / n_f, *r3 as f64 / n_f, rr / n_f);
    }
    println!("{} queries without a right answer in the top 3", missed.len());
    if misses {
        for line in &missed {
            println!("  {line}");
        }
    }
    Ok(())
}

/// Single-row inserts, each its own transaction, `concurrency` connections.
pub(crate) async fn pg_commit_ceiling(database_url: &str, concurrency: usize, requests: usize) -> anyhow::Result<f64> {
    let base = database_url.rsplit_once('/').map_or(database_url, |(b, _)| b);
    let url = format!("{base}/ecoeco_bench");
    platform::db::create_if_missing(&url).await?;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(concurrency as u32).connect(&url).await?;
    sqlx::query("create table if not exists commits (id bigserial primary key, payload jsonb not null)")
        .execute(&pool)
        .await?;
    let (elapsed, lat) = drive(requests, concurrency, |i| {
        let pool = pool.clone();
        async move {
            sqlx::query("insert into commits (payload) values ($1)").bind(json!({"i": i})).execute(&pool).await?;
            Ok(())
        }
    })
    .await?;
    sqlx::query("truncate commits").execute(&pool).await?;
    Ok(throughput("PostgreSQL single-row commits", requests, elapsed, lat))
}

/// Publishes with confirms from `concurrency` tasks and consumes with acks, end to end.
pub(crate) async fn amqp_ceiling(amqp_url: &str, concurrency: usize, requests: usize) -> anyhow::Result<f64> {
    use lapin::{BasicProperties, options::*, types::FieldTable};
    let conn = platform::amqp::connect(amqp_url, "bench").await?;
    let consume = conn.create_channel().await?;
    let queue = format!("bench.{}", Uuid::new_v4().simple());
    consume
        .queue_declare(&queue, QueueDeclareOptions { auto_delete: true, ..Default::default() }, FieldTable::default())
        .await?;
    consume.basic_qos(500, BasicQosOptions::default()).await?;
    let mut consumer =
        consume.basic_consume(&queue, "bench", BasicConsumeOptions::default(), FieldTable::default()).await?;
    let started = Instant::now();
    let receiving = tokio::spawn(async move {
        let mut got = 0;
        while got < requests {
            let Some(delivery) = consumer.next().await else { break };
            delivery?.ack(BasicAckOptions::default()).await?;
            got += 1;
        }
        anyhow::Ok(())
    });
    let channels: Vec<lapin::Channel> =
        futures::future::try_join_all((0..concurrency).map(|_| platform::amqp::confirm_channel(&conn))).await?;
    let (_, lat) = drive(requests, concurrency, |i| {
        let channel = channels[i % channels.len()].clone();
        let queue = queue.clone();
        async move {
            let props = BasicProperties::default().with_delivery_mode(2);
            channel
                .basic_publish("", &queue, BasicPublishOptions::default(), br#"{"bench":true}"#, props)
                .await?
                .await?;
            Ok(())
        }
    })
    .await?;
    receiving.await??;
    let elapsed = started.elapsed();
    let _ = conn.close(200, "bench done").await;
    Ok(throughput("RabbitMQ confirmed publish+consume", requests, elapsed, lat))
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

fn report(name: &str, mut values: Vec<Duration>) {
    values.sort();
    println!(
        "{name:<28} p50 {:>8.2} ms   p90 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms",
        percentile(&values, 0.50),
        percentile(&values, 0.90),
        percentile(&values, 0.99),
        percentile(&values, 1.0)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    match cli.command {
        Command::RegisterLatency { count, concurrency } => {
            let run = &Uuid::new_v4().simple().to_string()[..8];
            println!("register-latency: {count} registrations, {concurrency} concurrent clients");
            let started = Instant::now();
            let results: Vec<anyhow::Result<Sample>> = stream::iter(0..count)
                .map(|i| register_and_read(&http, &cli, run, i))
                .buffer_unordered(concurrency)
                .collect()
                .await;
            let elapsed = started.elapsed();
            let samples: Vec<Sample> = results.into_iter().collect::<anyhow::Result<_>>()?;
            let stale = samples.iter().filter(|s| !s.fresh).count();
            println!(
                "completed in {:.1} s ({:.0} registrations/s); {stale} reads stale",
                elapsed.as_secs_f64(),
                count as f64 / elapsed.as_secs_f64()
            );
            report("POST /auth/register", samples.iter().map(|s| s.register).collect());
            report("GET /users/me (token wait)", samples.iter().map(|s| s.read).collect());
            report("register → profile readable", samples.iter().map(|s| s.total).collect());
        }
        Command::Load { concurrency, requests, lag_samples, ref database_url, ref amqp_url } => {
            load(&cli, concurrency, requests, lag_samples, database_url, amqp_url).await?;
        }
        Command::Guide { concurrency, requests } => {
            guide(&http, &cli, concurrency, requests).await?;
        }
        Command::SearchQuality { ref eval, misses } => {
            search_quality(&http, &cli, eval, misses).await?;
        }
        Command::Sustained(ref opts) => {
            sustained::run(&cli, opts).await?;
        }
        Command::Rebuild { events } => {
            rebuild::run(platform::Settings::from_env()?, events).await?;
        }
        Command::Avatar { megapixels } => avatar::run(&megapixels)?,
    }
    Ok(())
}
