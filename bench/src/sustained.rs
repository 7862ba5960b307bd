//! `ecoeco-bench sustained`: open-loop load at a fixed rate of mixed traffic, stepped up to the
//! highest rate the system sustains, with the machine's ceilings measured in the same run.
//!
//! In order, against a running system (settings for PostgreSQL, Redis and RabbitMQ from the
//! environment, as the system's own):
//!
//! 1. **Ceilings**: PostgreSQL single-row commits on 16 connections; RabbitMQ confirmed
//!    publish + consume; an axum server in this process answering from memory, and with one
//!    Redis `GET` per request, driven by the same HTTP client as the system.
//! 2. **Cost per scan**: scans only, at a modest rate, then waits for the pipeline to drain and
//!    divides by the scans: events appended (the log), broker publishes and consumer deliveries
//!    (the workers' metrics), consumer transactions (metrics) and PostgreSQL commits of the whole
//!    database (`pg_stat_database`, which includes the benchmark's own few counter reads).
//!    It runs first so every user has points and standings for the reads.
//! 3. **Reads** at `--connections` (closed loop, `--read-secs` each): `GET /users/me`,
//!    `/users/me/points`, `/leaderboards/weekly` and `/leaderboards/weekly/me`, each as a ratio
//!    to the "axum + one Redis GET" ceiling.
//! 4. **Steps**: each `--step-secs` long, at a fixed request rate (open loop: requests start on
//!    schedule whether or not earlier ones finished), a mix of scans, profile reads and board
//!    reads; probe users measure scan accepted → points visible on `GET /users/me` (polling
//!    every 10 ms; those reads are printed, as load on top of the offered rate). Latencies count
//!    from when a request was due, and a request unanswered after 5 s fails. A step passes when
//!    no request fails and that lag's p99 is under 1 s. Each step prints its
//!    latencies, every process's peak RSS and mean CPU, and what a scan cost under that load
//!    (the processes' CPU, consumer transactions, commits); the last passing rate is the answer.
//!
//! Every scan must pay for the lag to be visible and the cost to be honest: start the system
//! with `SCAN_DAILY_CAP=1000000` (scripts/bench-sustained.sh does).

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures::{StreamExt, stream};
use serde_json::json;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::{Cli, User, amqp_ceiling, percentile, pg_commit_ceiling, register};

/// What to run.
#[derive(clap::Args)]
pub struct Options {
    /// First step's rate, requests per second (all kinds together).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Rate multiplier between steps.
    #[arg(long, default_value_t = 1.5)]
    pub factor: f64,
    /// Seconds per step.
    #[arg(long, default_value_t = 60)]
    pub step_secs: u64,
    /// At most this many steps.
    #[arg(long, default_value_t = 8)]
    pub max_steps: usize,
    /// Share of scans in the mix, 0 to 1 (the rest split evenly between profile and board reads).
    #[arg(long, default_value_t = 0.2)]
    pub scan_share: f64,
    /// Users sending the load.
    #[arg(long, default_value_t = 64)]
    pub users: usize,
    /// Probe users measuring scan → points visible.
    #[arg(long, default_value_t = 8)]
    pub probes: usize,
    /// Connections for the closed-loop reads and HTTP ceilings.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds per closed-loop measurement.
    #[arg(long, default_value_t = 10)]
    pub read_secs: u64,
    /// Where the workers' metrics are served (`ecoeco` serves the same registry on every port).
    #[arg(long, default_value = "http://127.0.0.1:8083/metrics")]
    pub metrics_url: String,
    /// Processes to watch (names as in /proc/*/comm), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ecoeco,command-api,query-api,workers,postgres,redis-server,beam.smp"
    )]
    pub processes: Vec<String>,
}

/// Latencies and failures of a timed run.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    failures: usize,
    first_failure: Option<String>,
}

impl Tally {
    fn line(&self, name: &str, secs: f64) -> String {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        if sorted.is_empty() {
            return format!("{name:<30} no requests");
        }
        format!(
            "{name:<30} {:>8.0} /s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  failed {}",
            sorted.len() as f64 / secs,
            percentile(&sorted, 0.50),
            percentile(&sorted, 0.99),
            percentile(&sorted, 1.0),
            self.failures
        )
    }

    fn p99_ms(&self) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        if sorted.is_empty() { f64::INFINITY } else { percentile(&sorted, 0.99) }
    }
}

/// Runs `call` with `connections` in flight, back to back, for `secs`; (requests per second, tally).
async fn closed_loop<F, Fut>(secs: u64, connections: usize, call: F) -> (f64, Tally)
where
    F: Fn(usize) -> Fut + Sync,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let until = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tallies: Vec<Tally> = stream::iter(0..connections)
        .map(|c| {
            let call = &call;
            async move {
                let mut tally = Tally::default();
                let mut i = c;
                while Instant::now() < until {
                    let t = Instant::now();
                    match call(i).await {
                        Ok(()) => tally.latencies.push(t.elapsed()),
                        Err(e) => {
                            tally.failures += 1;
                            tally.first_failure.get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                    i += connections;
                }
                tally
            }
        })
        .buffer_unordered(connections)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut all = Tally::default();
    for t in tallies {
        all.latencies.extend(t.latencies);
        all.failures += t.failures;
        if all.first_failure.is_none() {
            all.first_failure = t.first_failure;
        }
    }
    (all.latencies.len() as f64 / elapsed, all)
}

async fn ok(res: reqwest::Response, status: reqwest::StatusCode) -> anyhow::Result<()> {
    let got = res.status();
    let url = res.url().path().to_owned();
    let body = res.bytes().await?;
    if got != status {
        bail!("{url} answered {got}: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}

/// The in-process axum ceilings: from memory, and with one Redis GET per request.
async fn http_ceilings(http: &reqwest::Client, opts: &Options) -> anyhow::Result<(f64, f64)> {
    use axum::{Router, extract::State, routing::get};
    let settings = platform::Settings::from_env()?;
    let redis = platform::redis::Redis::new(&settings)?;
    let key = redis.key("bench:ceiling");
    let body = json!({"id": Uuid::nil(), "nickname": "ceiling", "points": 1234, "level": 3}).to_string();
    {
        let (key, body) = (key.clone(), body.clone());
        redis
            .run(move |mut c| async move { redis::cmd("SET").arg(key).arg(body).query_async::<()>(&mut c).await })
            .await?;
    }
    let from_memory: &'static str = Box::leak(body.into_boxed_str());
    let app = Router::new()
        .route("/mem", get(move || async move { ([("content-type", "application/json")], from_memory) }))
        .route(
            "/redis",
            get(|State((redis, key)): State<(platform::redis::Redis, String)>| async move {
                let got: anyhow::Result<Option<String>> =
                    redis.run(move |mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await }).await;
                match got {
                    Ok(Some(json)) => Ok(([("content-type", "application/json")], json)),
                    _ => Err(axum::http::StatusCode::SERVICE_UNAVAILABLE),
                }
            }),
        )
        .with_state((redis, key));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut rates = Vec::new();
    for (path, name) in [("mem", "axum from memory"), ("redis", "axum + one Redis GET")] {
        let url = format!("http://{addr}/{path}");
        let (rate, tally) = closed_loop(opts.read_secs, opts.connections, |_| {
            let req = http.get(&url);
            async move { ok(req.send().await?, reqwest::StatusCode::OK).await }
        })
        .await;
        println!("{}", tally.line(name, opts.read_secs as f64));
        rates.push(rate);
    }
    server.abort();
    Ok((rates[0], rates[1]))
}

/// Sums the samples of a Prometheus counter (every label set) in `text`.
fn counter_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What the pipeline has done so far, for deltas.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    events: f64,
    published: f64,
    delivered: f64,
    consumer_transactions: f64,
    commits: f64,
}

impl Counters {
    async fn read(http: &reqwest::Client, db: &sqlx::PgPool, metrics_url: &str) -> anyhow::Result<Self> {
        let text = http.get(metrics_url).send().await?.text().await?;
        let events: i64 = sqlx::query_scalar("select count(*) from eventstore.events").fetch_one(db).await?;
        let commits: i64 =
            sqlx::query_scalar("select xact_commit from pg_stat_database where datname = current_database()")
                .fetch_one(db)
                .await?;
        Ok(Self {
            events: events as f64,
            published: counter_sum(&text, "events_published_total"),
            delivered: counter_sum(&text, "consumer_deliveries_total"),
            consumer_transactions: counter_sum(&text, "consumer_transactions_total"),
            commits: commits as f64,
        })
    }
}

/// This machine's cores (what the processes share).
fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// Runs a ceiling while watching the system's processes and this benchmark's own: its result,
/// and the CPU they used in all, in cores (1.0 is one core busy for the whole run). Prints
/// each process's share.
async fn with_cpu<F: std::future::Future<Output = anyhow::Result<f64>>>(
    opts: &Options,
    ceiling: F,
) -> anyhow::Result<(f64, f64)> {
    let mut names = opts.processes.clone();
    names.push(BENCH_COMM.to_owned());
    let (rate, used) = watching(names, ceiling).await;
    let rate = rate?;
    let busy: f64 = used.values().map(|w| w.cpu_percent / 100.0).sum();
    let each: Vec<String> = used.iter().map(|(name, w)| format!("{name} {:.0} %", w.cpu_percent)).collect();
    println!("  CPU meanwhile: {} (of {:.0} cores: {:.0} %)", each.join(", "), cores(), 100.0 * busy / cores());
    Ok((rate, busy))
}

/// This benchmark's name in `/proc/*/comm`.
const BENCH_COMM: &str = "ecoeco-bench";

/// One process's CPU time (clock ticks) and RSS (KiB) from `/proc`.
fn proc_sample(pid: &str) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some((ticks, rss))
}

/// Every watched process: pid → (name, CPU ticks, RSS KiB).
fn processes(names: &[String]) -> BTreeMap<u32, (String, u64, u64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else { continue };
        let comm = comm.trim();
        if let Some(name) = names.iter().find(|n| n.as_str() == comm)
            && let Some((ticks, rss)) = proc_sample(&pid.to_string())
        {
            out.insert(pid, (name.clone(), ticks, rss));
        }
    }
    out
}

/// What [`watch`] saw of the processes of one name.
#[derive(Debug, Clone, Copy, Default)]
struct Watched {
    /// Peak RSS of the largest, MiB.
    rss_mib: f64,
    /// How many processes.
    count: usize,
    /// CPU, % of one core over the run.
    cpu_percent: f64,
    /// CPU seconds in all.
    cpu_secs: f64,
}

/// Runs `work` while [`watch`]ing the processes named: its output, and what was seen.
async fn watching<T>(names: Vec<String>, work: impl std::future::Future<Output = T>) -> (T, BTreeMap<String, Watched>) {
    let stop = Arc::new(tokio::sync::Notify::new());
    let watcher = tokio::spawn(watch(names, stop.clone()));
    let out = work.await;
    stop.notify_one();
    (out, watcher.await.unwrap_or_default())
}

/// Prints a line per process name.
fn print_processes(processes: &BTreeMap<String, Watched>) {
    for (name, w) in processes {
        println!(
            "  {name:<14} {:>2} process(es)  peak RSS {:>7.1} MiB (largest)  CPU {:>6.1} %",
            w.count, w.rss_mib, w.cpu_percent
        );
    }
}

/// Samples processes every second until told to stop: name → [`Watched`]. CPU is counted per
/// process id, from its first sample to its last, so processes that start or end mid-run count
/// for their share.
async fn watch(names: Vec<String>, stop: Arc<tokio::sync::Notify>) -> BTreeMap<String, Watched> {
    const TICKS_PER_SEC: f64 = 100.0; // USER_HZ on Linux
    let started = Instant::now();
    // pid → (name, first ticks, last ticks, peak RSS)
    let mut seen: BTreeMap<u32, (String, u64, u64, u64)> = BTreeMap::new();
    loop {
        for (pid, (name, ticks, rss)) in processes(&names) {
            let e = seen.entry(pid).or_insert((name, ticks, ticks, 0));
            e.2 = ticks;
            e.3 = e.3.max(rss);
        }
        tokio::select! {
            () = stop.notified() => break,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    for (pid, (_, ticks, _)) in processes(&names) {
        if let Some(e) = seen.get_mut(&pid) {
            e.2 = ticks;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let mut out: BTreeMap<String, Watched> = BTreeMap::new();
    for (name, first, last, rss) in seen.into_values() {
        let w = out.entry(name).or_default();
        w.rss_mib = w.rss_mib.max(rss as f64 / 1024.0);
        w.count += 1;
        let cpu_secs = last.saturating_sub(first) as f64 / TICKS_PER_SEC;
        w.cpu_percent += 100.0 * cpu_secs / secs;
        w.cpu_secs += cpu_secs;
    }
    out
}

/// A probe: scans, then reads its profile until the points show. Returns the lags.
async fn probe(
    http: &reqwest::Client,
    cli: &Cli,
    user: &User,
    until: Instant,
    reads: &AtomicU64,
) -> anyhow::Result<Vec<Duration>> {
    let me = format!("{}/api/v1/users/me", cli.query_url);
    let points = |v: serde_json::Value| v["points"].as_i64().context("no points on the profile");
    let mut have = points(http.get(&me).bearer_auth(&user.access).send().await?.json().await?)?;
    let mut lags = Vec::new();
    while Instant::now() < until {
        let res = http
            .post(format!("{}/api/v1/scans", cli.command_url))
            .bearer_auth(&user.access)
            .json(&json!({"category": "metal", "item_name": "can"}))
            .send()
            .await?;
        ok(res, reqwest::StatusCode::ACCEPTED).await?;
        let accepted = Instant::now();
        loop {
            reads.fetch_add(1, Ordering::Relaxed);
            let now = points(http.get(&me).bearer_auth(&user.access).send().await?.json().await?)?;
            if now > have {
                have = now;
                lags.push(accepted.elapsed());
                break;
            }
            if accepted.elapsed() > Duration::from_secs(20) {
                bail!("a scan's points were not visible after 20 s (is SCAN_DAILY_CAP high enough?)");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(lags)
}

/// What one step measured.
struct Step {
    rate: f64,
    offered: usize,
    /// Profile reads the probes made (load on top of the offered rate).
    probe_reads: u64,
    tallies: BTreeMap<&'static str, Tally>,
    lag: Tally,
    processes: BTreeMap<String, Watched>,
    /// The pipeline's counters over the step (not drained at its end: the steady state, give
    /// or take one step's backlog), when they could be read.
    counted: Option<(Counters, Counters)>,
}

impl Step {
    fn failures(&self) -> usize {
        self.tallies.values().map(|t| t.failures).sum::<usize>() + self.lag.failures
    }

    fn passed(&self) -> bool {
        self.failures() == 0 && self.lag.p99_ms() < 1000.0
    }

    /// Scans made during the step: the mix's and the probes'.
    fn scans(&self) -> usize {
        let mix = self.tallies.get("POST /scans").map_or(0, |t| t.latencies.len() + t.failures);
        mix + self.lag.latencies.len()
    }
}

/// One open-loop step at `rate` requests per second.
async fn step(
    http: &reqwest::Client,
    cli: &Cli,
    opts: &Options,
    db: &sqlx::PgPool,
    (users, probes): (&[User], &[User]),
    rate: f64,
) -> Step {
    let before = Counters::read(http, db, &opts.metrics_url).await.ok();
    let secs = opts.step_secs;
    let until = Instant::now() + Duration::from_secs(secs);
    let probe_reads = AtomicU64::new(0);
    let probing = futures::future::join_all(probes.iter().map(|u| probe(http, cli, u, until, &probe_reads)));
    let tallies: Arc<Mutex<BTreeMap<&'static str, Tally>>> = Arc::default();
    let sent = AtomicU64::new(0);
    let driving = async {
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut tasks = tokio::task::JoinSet::new();
        let scans_per_100 = (opts.scan_share * 100.0).round() as u64;
        while Instant::now() < until {
            // Latency counts from when the request was due, so a client falling behind shows.
            let due = ticker.tick().await;
            let i = sent.fetch_add(1, Ordering::Relaxed);
            let user = &users[i as usize % users.len()];
            let (kind, req) = if i % 100 < scans_per_100 {
                let req = http
                    .post(format!("{}/api/v1/scans", cli.command_url))
                    .bearer_auth(&user.access)
                    .json(&json!({"category": "plastic", "item_name": "PET bottle"}));
                ("POST /scans", req)
            } else if i.is_multiple_of(2) {
                ("GET /users/me", http.get(format!("{}/api/v1/users/me", cli.query_url)).bearer_auth(&user.access))
            } else {
                let url = format!("{}/api/v1/leaderboards/weekly", cli.query_url);
                ("GET /leaderboards/weekly", http.get(url).bearer_auth(&user.access))
            };
            let expected = if kind == "POST /scans" { reqwest::StatusCode::ACCEPTED } else { reqwest::StatusCode::OK };
            let tallies = tallies.clone();
            tasks.spawn(async move {
                let result = async { ok(req.send().await?, expected).await }.await;
                let took = due.elapsed();
                let mut tallies = tallies.lock().await;
                let tally = tallies.entry(kind).or_default();
                match result {
                    Ok(()) => tally.latencies.push(took),
                    Err(e) => {
                        tally.failures += 1;
                        tally.first_failure.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    };
    let ((probed, ()), processes) = watching(opts.processes.clone(), async { tokio::join!(probing, driving) }).await;
    let after = Counters::read(http, db, &opts.metrics_url).await.ok();
    let mut lag = Tally::default();
    for p in probed {
        match p {
            Ok(lags) => lag.latencies.extend(lags),
            Err(e) => {
                lag.failures += 1;
                lag.first_failure.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let tallies = std::mem::take(&mut *tallies.lock().await);
    Step {
        rate,
        offered: sent.load(Ordering::Relaxed) as usize,
        probe_reads: probe_reads.load(Ordering::Relaxed),
        tallies,
        lag,
        processes,
        counted: before.zip(after),
    }
}

fn print_step(step: &Step, secs: u64) {
    println!(
        "\n-- {:.0} req/s offered for {secs} s ({} requests): {}",
        step.rate,
        step.offered,
        if step.passed() { "PASS" } else { "FAIL" }
    );
    for (kind, tally) in &step.tallies {
        println!("{}", tally.line(kind, secs as f64));
        if let Some(e) = &tally.first_failure {
            println!("  first failure: {e}");
        }
    }
    println!("{}", step.lag.line("scan accepted → points visible", secs as f64));
    println!("  probes' profile reads (on top of the offered rate): {:.0} /s", step.probe_reads as f64 / secs as f64);
    if let Some(e) = &step.lag.first_failure {
        println!("  probe failure: {e}");
    }
    print_processes(&step.processes);
    let scans = step.scans() as f64;
    if scans > 0.0 {
        // CPU of every watched process while the step ran (to its last answer), shared out over its
        // scans (reads included: they are the cheap part).
        let cpu_ms = step.processes.values().map(|w| w.cpu_secs).sum::<f64>() * 1000.0;
        print!("  per scan made (mix and probes): {:.2} ms of the watched processes' CPU", cpu_ms / scans);
        if let Some((before, after)) = &step.counted {
            print!(
                ", {:.2} consumer transactions, {:.2} PostgreSQL commits, {:.2} deliveries",
                (after.consumer_transactions - before.consumer_transactions) / scans,
                (after.commits - before.commits) / scans,
                (after.delivered - before.delivered) / scans
            );
        }
        // A failing step's backlog is not worked off within it: its figures are lower bounds.
        println!("{}", if step.passed() { "" } else { " (lower bounds: the step's backlog is not counted)" });
        println!("    (not drained at the step's end; commits and CPU include the reads)");
    }
}

/// Scans only at `rate` for `secs`, then waits for the pipeline to drain: the cost per scan.
async fn cost_per_scan(
    http: &reqwest::Client,
    cli: &Cli,
    opts: &Options,
    db: &sqlx::PgPool,
    users: &[User],
) -> anyhow::Result<()> {
    const RATE: f64 = 50.0;
    const SECS: u64 = 10;
    let before = Counters::read(http, db, &opts.metrics_url).await?;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE));
    let mut tasks = tokio::task::JoinSet::new();
    let total = (RATE * SECS as f64) as usize;
    for i in 0..total {
        ticker.tick().await;
        let req = http
            .post(format!("{}/api/v1/scans", cli.command_url))
            .bearer_auth(&users[i % users.len()].access)
            .json(&json!({"category": "paper", "item_name": "box"}));
        tasks.spawn(async move { ok(req.send().await?, reqwest::StatusCode::ACCEPTED).await });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    // Drained when nothing moves for a second.
    let mut last = Counters::read(http, db, &opts.metrics_url).await?;
    let drained_by = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = Counters::read(http, db, &opts.metrics_url).await?;
        let moving = |c: &Counters| (c.events, c.published, c.delivered, c.consumer_transactions);
        if moving(&now) == moving(&last) {
            // pg_stat_database is updated about once a second: let it catch up.
            tokio::time::sleep(Duration::from_secs(2)).await;
            last = Counters::read(http, db, &opts.metrics_url).await?;
            break;
        }
        if Instant::now() > drained_by {
            bail!("the pipeline did not drain within 60 s");
        }
        last = now;
    }
    let n = total as f64;
    println!("\n-- cost per scan ({total} scans at {RATE:.0}/s, pipeline drained)");
    println!("events appended                {:>6.2}", (last.events - before.events) / n);
    println!("broker publishes               {:>6.2}", (last.published - before.published) / n);
    println!("consumer deliveries            {:>6.2}", (last.delivered - before.delivered) / n);
    println!("consumer transactions          {:>6.2}", (last.consumer_transactions - before.consumer_transactions) / n);
    println!("PostgreSQL commits (database)  {:>6.2}", (last.commits - before.commits) / n);
    Ok(())
}

/// The whole run.
pub async fn run(cli: &Cli, opts: &Options) -> anyhow::Result<()> {
    if !(opts.rate > 0.0 && opts.factor >= 1.0 && (0.0..=1.0).contains(&opts.scan_share)) {
        bail!("--rate must be above 0, --factor at least 1 and --scan-share between 0 and 1");
    }
    if opts.users == 0 || opts.probes == 0 || opts.connections == 0 {
        bail!("--users, --probes and --connections must be at least 1");
    }
    if opts.step_secs * opts.max_steps as u64 > 20 * 60 {
        bail!("steps longer than 20 minutes in all would outlive the 30-minute access tokens");
    }
    let settings = platform::Settings::from_env()?;
    // A request still unanswered after 5 s counts as failed.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.connections * 4)
        // The APIs end idle keep-alive connections after HTTP_HEADER_READ_TIMEOUT_MS (10 s): a
        // client that keeps them longer sometimes sends a request as one closes, and is reset.
        .pool_idle_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .build()?;
    let db = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&settings.database_url).await?;
    let run = Uuid::new_v4().simple().to_string()[..8].to_owned();
    println!(
        "sustained: steps of {} s from {:.0} req/s (×{}), {:.0} % scans; {} users, {} probes, {} connections for closed-loop reads",
        opts.step_secs,
        opts.rate,
        opts.factor,
        opts.scan_share * 100.0,
        opts.users,
        opts.probes,
        opts.connections
    );
    let users: Vec<User> = stream::iter(0..opts.users + opts.probes)
        .map(|i| register(&http, cli, format!("s{run}_{i}")))
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let (users, probes) = users.split_at(opts.users);

    println!("\n-- ceilings of this machine, this run");
    // Without autovacuum, rows updated on every batch (boards, balances, progress) pile up dead
    // versions that each later read walks: the figures then fall as the run goes on.
    let autovacuum: String = sqlx::query_scalar("select current_setting('autovacuum')").fetch_one(&db).await?;
    if autovacuum != "on" {
        println!(
            "warning: PostgreSQL's autovacuum is {autovacuum}: hot rows bloat during the run, unlike in production"
        );
    }
    let (commits, commit_cpu) = with_cpu(opts, pg_commit_ceiling(&settings.database_url, 16, 20_000)).await?;
    let (messages, message_cpu) = with_cpu(opts, amqp_ceiling(&settings.amqp_url, 16, 20_000)).await?;
    // What one of each costs the machine, in CPU: the floor under a scan's cost.
    let (per_commit, per_message) = (commit_cpu / commits, message_cpu / messages);
    let (memory, one_get) = http_ceilings(&http, opts).await?;

    // Scans first: every user then has points and standings, so the reads below take the path
    // a real user's do.
    cost_per_scan(&http, cli, opts, &db, users).await?;

    println!("\n-- reads, closed loop, {} connections, {} s each", opts.connections, opts.read_secs);
    let reads = [
        ("GET /users/me", "/users/me"),
        ("GET /users/me/points", "/users/me/points"),
        ("GET /leaderboards/weekly", "/leaderboards/weekly"),
        ("GET /leaderboards/weekly/me", "/leaderboards/weekly/me"),
    ];
    let mut read_rates = Vec::new();
    for (name, path) in reads {
        let url = format!("{}/api/v1{path}", cli.query_url);
        let (rate, tally) = closed_loop(opts.read_secs, opts.connections, |i| {
            let req = http.get(&url).bearer_auth(&users[i % users.len()].access);
            async move { ok(req.send().await?, reqwest::StatusCode::OK).await }
        })
        .await;
        println!("{}", tally.line(name, opts.read_secs as f64));
        read_rates.push((name, rate, tally.p99_ms()));
    }

    let mut best: Option<Step> = None;
    let mut rate = opts.rate;
    for _ in 0..opts.max_steps {
        let s = step(&http, cli, opts, &db, (users, probes), rate).await;
        print_step(&s, opts.step_secs);
        if !s.passed() {
            break;
        }
        best = Some(s);
        rate *= opts.factor;
    }

    println!("\n-- summary (ratios to this run's ceilings)");
    println!("PostgreSQL commits (16 connections) {commits:>8.0} /s");
    println!("RabbitMQ confirmed publish+consume  {messages:>8.0} /s");
    println!("axum from memory                    {memory:>8.0} /s");
    println!("axum + one Redis GET                {one_get:>8.0} /s");
    println!(
        "CPU of the whole machine: {:.3} ms a commit, {:.3} ms a confirmed publish+consume; a scan's \
         command commit and two events: {:.2} ms; 0.3 × the commit ceiling in scans/s leaves {:.2} ms a scan",
        per_commit * 1000.0,
        per_message * 1000.0,
        (per_commit + 2.0 * per_message) * 1000.0,
        cores() / (0.3 * commits) * 1000.0
    );
    for (name, rate, p99) in &read_rates {
        println!("{name:<35} {rate:>8.0} /s  = {:>5.2} × axum + one Redis GET  (p99 {p99:.2} ms)", rate / one_get);
    }
    match &best {
        Some(s) => {
            let scans = s.tallies.get("POST /scans").map_or(0, |t| t.latencies.len()) as f64 / opts.step_secs as f64;
            println!(
                "sustained: {:.0} req/s for {} s ({scans:.0} scans/s = {:.3} × PostgreSQL commits), lag p99 {:.1} ms",
                s.rate,
                opts.step_secs,
                scans / commits,
                s.lag.p99_ms()
            );
            print_processes(&s.processes);
        }
        None => println!("sustained: not even the first step ({:.0} req/s) passed", opts.rate),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_sums_every_label_set_of_its_own_name_only() {
        let text = "# TYPE events_consumed_total counter\n\
                    events_consumed_total{consumer=\"profiles\",outcome=\"applied\"} 12\n\
                    events_consumed_total{consumer=\"ingest\",outcome=\"duplicate\"} 3\n\
                    events_consumed_total_other 100\n\
                    events_published_total 7\n";
        assert_eq!(counter_sum(text, "events_consumed_total"), 15.0);
        assert_eq!(counter_sum(text, "events_published_total"), 7.0);
        assert_eq!(counter_sum(text, "consumer_transactions_total"), 0.0);
    }

    #[test]
    fn this_process_is_found_by_name_with_its_rss() {
        let me = std::fs::read_to_string("/proc/self/comm").unwrap().trim().to_owned();
        let seen = processes(std::slice::from_ref(&me));
        let mine = seen.get(&std::process::id()).expect("this process is listed");
        assert_eq!(mine.0, me);
        assert!(mine.2 > 0, "RSS {} KiB", mine.2);
    }
}
