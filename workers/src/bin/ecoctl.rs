//! `ecoctl`: operations on the event log, projections and dead letters (DESIGN §6).

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use platform::{Settings, telemetry};
use workers::{
    ops,
    rebuild::{Named, Progress},
};

#[derive(Parser)]
#[command(name = "ecoctl", about = "Operate EcoEco: migrations, projections, parked events", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending database migrations and declare the RabbitMQ topology.
    Migrate,
    /// Load the recycling guide shipped with the product (items, FAQ, regional rules); writes
    /// events only for what is new or changed.
    Seed,
    /// Per consumer: events applied, lag in events and seconds, queued and parked messages.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Re-apply a range of the event log to a projection (what it applied already is skipped).
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Inspect, requeue or drop parked (dead-lettered) messages of a consumer.
    Parked {
        #[command(subcommand)]
        command: ParkedCommand,
    },
    /// Delete now what the retention settings no longer keep (expired sessions, revoked tokens,
    /// e-mail tokens, OAuth states, sent mail); workers do it every `RETENTION_INTERVAL_SECS`.
    Purge,
    /// Give an account a role (`user` or `admin`); it applies from the next sign-in.
    GrantRole {
        /// The account's e-mail address.
        email: String,
        /// `user` or `admin`.
        role: String,
    },
}

/// The projections, from the consumer registry.
fn projections_help() -> String {
    format!("The projection: {}", workers::registry::projection_names().join(", "))
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Position, lag and parked count of every projection and consumer.
    Status,
    /// Recompute a projection from the whole event log into a shadow copy, then swap it in.
    /// The live projector keeps running; nothing but the projection's tables is touched.
    Rebuild {
        #[arg(help = projections_help())]
        name: String,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Apply the log's events at positions FROM..=TO to a projection.
    Replay {
        #[arg(long, help = projections_help())]
        projection: String,
        /// First log position.
        #[arg(long)]
        from: i64,
        /// Last log position (inclusive); defaults to the end of the log.
        #[arg(long)]
        to: Option<i64>,
    },
}

/// A progress bar on stderr (hidden when stderr is not a terminal), with rate and ETA.
fn progress_bar(what: &str) -> (ProgressBar, impl FnMut(Progress) + use<>) {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} events ({{per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let handle = bar.clone();
    (bar, move |p: Progress| {
        handle.set_length(p.total);
        handle.set_position(p.done);
    })
}

#[derive(Subcommand)]
enum ParkedCommand {
    /// List parked messages, with why, when and after how many tries.
    List {
        /// Consumer, e.g. `points-policy`, `ingest` or `projections` (a projection's name, e.g. `profiles`, means its processing group's).
        queue: String,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one parked message whole.
    Show {
        /// Consumer.
        queue: String,
        /// The event id.
        event_id: String,
    },
    /// Send parked messages back to the consumer (all, or one with --event-id).
    Requeue {
        /// Consumer.
        queue: String,
        /// Only this event.
        #[arg(long)]
        event_id: Option<String>,
    },
    /// Drop parked messages (all, or one with --event-id).
    Purge {
        /// Consumer.
        queue: String,
        /// Only this event.
        #[arg(long)]
        event_id: Option<String>,
    },
}

fn print_parked(list: &[ops::Parked]) {
    for p in list {
        println!(
            "{}  {:<24} {:<20} tries={} at={}  {}",
            p.event_id.as_deref().unwrap_or("-"),
            p.routing_key,
            p.reason,
            p.retry_count,
            p.parked_at,
            p.detail
        );
    }
}

platform::allocator!();

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ecoctl: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings = Settings::from_env()?;
    telemetry::init_tracing(&settings);
    settings.migrate_on_start = false;
    match cli.command {
        Command::Migrate => {
            platform::db::create_if_missing(&settings.database_url).await?;
            let pool = platform::db::connect(&settings).await?;
            let applied = platform::db::migrate(&pool).await?;
            workers::declare_topology(&settings).await?;
            println!(
                "migrate: applied {applied} migration(s); topology declared under prefix `{}`",
                settings.amqp_prefix
            );
        }
        Command::Purge => {
            let pool = platform::db::connect(&settings).await?;
            let purged =
                workers::retention::purge(&pool, workers::retention::Policy::of(&settings), chrono::Utc::now()).await?;
            let counts: Vec<String> = purged.counts().iter().map(|(what, n)| format!("{n} {what}")).collect();
            println!("purge: deleted {}", counts.join(", "));
        }
        Command::Seed => {
            let pool = platform::db::connect(&settings).await?;
            let r = workers::seed::seed(&pool).await?;
            let show = |(c, ch, u): (u32, u32, u32)| format!("{c} new, {ch} changed, {u} unchanged");
            println!(
                "seed: items {}; questions {}; regions {}; places {}; {} event(s) written; badges {}; characters {}",
                show(r.items),
                show(r.faqs),
                show(r.regions),
                show(r.places),
                r.events(),
                show(r.badges),
                show(r.characters)
            );
        }
        Command::Projections { command: ProjectionsCommand::Status } => {
            let pool = platform::db::connect(&settings).await?;
            let rows = ops::status(&settings, &pool).await?;
            println!(
                "{:<26} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}  last applied",
                "consumer", "applied", "position", "lag", "lag (s)", "queued", "parked"
            );
            for r in &rows {
                println!(
                    "{:<26} {:>10} {:>10} {:>10} {:>10.1} {:>8} {:>8}  {}",
                    r.consumer,
                    r.applied,
                    r.last_position.map_or("-".to_owned(), |p| p.to_string()),
                    r.lag_events,
                    r.lag_seconds,
                    r.queued.map_or("-".to_owned(), |n| n.to_string()),
                    r.parked.map_or("-".to_owned(), |n| n.to_string()),
                    r.last_applied_at.map_or("-".to_owned(), |t| t.to_rfc3339())
                );
            }
            println!(
                "projections status: {} consumers, {} events applied in all",
                rows.len(),
                rows.iter().map(|r| r.applied).sum::<i64>()
            );
        }
        Command::Projections { command: ProjectionsCommand::Rebuild { name } } => {
            let pool = platform::db::connect(&settings).await?;
            let redis = platform::redis::Redis::new(&settings)?;
            let deps = workers::registry::Deps { db: pool.clone(), redis, settings: settings.clone() };
            let projector = Named::find(&name, &deps)?;
            let (bar, progress) = progress_bar(&format!("rebuild {name}"));
            let report = projector.rebuild(&pool, progress).await;
            bar.finish_and_clear();
            let r = report?;
            for sample in &r.skipped_samples {
                println!("  skipped {sample}");
            }
            let rows: Vec<String> = r.rows.iter().map(|(t, n)| format!("read.{t}={n}")).collect();
            println!(
                "projections rebuild: {} rebuilt from {} events ({} applied, {} skipped, {} in the final catch-up) \
                 in {:.1} s, {:.0} events/s; live projector paused {} ms for the swap; rows: {}",
                r.projection,
                r.events,
                r.applied,
                r.skipped,
                r.tail,
                r.elapsed.as_secs_f64(),
                r.rate(),
                r.swap.as_millis(),
                rows.join(" ")
            );
        }
        Command::Events { command: EventsCommand::Replay { projection, from, to } } => {
            let pool = platform::db::connect(&settings).await?;
            let redis = platform::redis::Redis::new(&settings)?;
            let projector = Named::find(
                &projection,
                &workers::registry::Deps { db: pool.clone(), redis, settings: settings.clone() },
            )?;
            let to = to.unwrap_or(i64::MAX);
            let (bar, progress) = progress_bar(&format!("replay into {projection}"));
            let report = projector.replay(&pool, from, to, progress).await;
            bar.finish_and_clear();
            let r = report?;
            for sample in &r.skipped_samples {
                println!("  skipped {sample}");
            }
            println!(
                "events replay: {} events of positions {from}..={} read for {projection}: {} applied, {} already applied, {} skipped",
                r.events,
                if to == i64::MAX { "end".to_owned() } else { to.to_string() },
                r.applied,
                r.already_applied,
                r.skipped
            );
        }
        Command::Parked { command } => match command {
            ParkedCommand::List { queue, limit } => {
                let list = ops::parked_list(&settings, ops::consumer(&queue)?, limit).await?;
                print_parked(&list);
                println!("parked list: {} message(s) in {queue}.parked (left in place)", list.len());
            }
            ParkedCommand::Show { queue, event_id } => {
                let id = ops::event_id(&event_id)?;
                let found = ops::parked_list(&settings, ops::consumer(&queue)?, usize::MAX).await?;
                let p = found
                    .iter()
                    .find(|p| p.event_id.as_deref() == Some(id.as_str()))
                    .with_context(|| format!("no parked event {id} in {queue}"))?;
                print_parked(std::slice::from_ref(p));
                println!("{}", String::from_utf8_lossy(&p.body));
            }
            ParkedCommand::Requeue { queue, event_id } => {
                let id = event_id.as_deref().map(ops::event_id).transpose()?;
                let done = ops::parked_requeue(&settings, ops::consumer(&queue)?, id.as_deref()).await?;
                if id.is_some() && done.is_empty() {
                    anyhow::bail!("no parked event {} in {queue}", id.unwrap_or_default());
                }
                println!("parked requeue: {} message(s) sent back to {queue}", done.len());
            }
            ParkedCommand::Purge { queue, event_id } => {
                let id = event_id.as_deref().map(ops::event_id).transpose()?;
                let done = ops::parked_purge(&settings, ops::consumer(&queue)?, id.as_deref()).await?;
                if id.is_some() && done.is_empty() {
                    anyhow::bail!("no parked event {} in {queue}", id.unwrap_or_default());
                }
                println!("parked purge: {} message(s) dropped from {queue}.parked", done.len());
            }
        },
        Command::GrantRole { email, role } => {
            if role != "user" && role != "admin" {
                anyhow::bail!("role must be `user` or `admin`, not `{role}`");
            }
            let pool = platform::db::connect(&settings).await?;
            let updated =
                sqlx::query("update auth.users set role = $2 where lower(email) = lower($1) and deleted_at is null")
                    .bind(&email)
                    .bind(&role)
                    .execute(&pool)
                    .await?
                    .rows_affected();
            if updated == 0 {
                anyhow::bail!("no live account with e-mail {email}");
            }
            println!("grant-role: {email} is now `{role}` (from the next sign-in)");
        }
    }
    Ok(())
}
