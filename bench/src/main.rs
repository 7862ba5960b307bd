//! `ecoeco-bench`: drives a running EcoEco (start it with `scripts/run.sh`) and prints figures.
//!
//! ```text
//! ecoeco-bench register-latency --count 1000 --concurrency 8
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures::{StreamExt, stream};
use serde_json::json;
use uuid::Uuid;

#[derive(Parser)]
#[command(name = "ecoeco-bench", about = "Benchmarks against a running EcoEco")]
struct Cli {
    /// command-api base URL.
    #[arg(long, default_value = "http://127.0.0.1:8081", global = true)]
    command_url: String,
    /// query-api base URL.
    #[arg(long, default_value = "http://127.0.0.1:8082", global = true)]
    query_url: String,
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

fn percentile(sorted: &[Duration], p: f64) -> f64 {
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
    }
    Ok(())
}
