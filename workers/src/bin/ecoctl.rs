//! `ecoctl`: operations on the event log, projections and dead letters (DESIGN §6).

use anyhow::Context;
use clap::{Parser, Subcommand};
use platform::{Settings, telemetry};
use workers::ops;

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
    /// Per consumer: events applied, lag in events and seconds, queued and parked messages.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Inspect, requeue or drop parked (dead-lettered) messages of a consumer.
    Parked {
        #[command(subcommand)]
        command: ParkedCommand,
    },
    /// Give an account a role (`user` or `admin`); it applies from the next sign-in.
    GrantRole {
        /// The account's e-mail address.
        email: String,
        /// `user` or `admin`.
        role: String,
    },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Position, lag and parked count of every projection and consumer.
    Status,
}

#[derive(Subcommand)]
enum ParkedCommand {
    /// List parked messages, with why, when and after how many tries.
    List {
        /// Consumer, e.g. `projection.profiles` or `profiles`.
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
        Command::Projections { command: ProjectionsCommand::Status } => {
            let pool = platform::db::connect(&settings).await?;
            let rows = ops::status(&settings, &pool).await?;
            println!(
                "{:<26} {:>10} {:>10} {:>10} {:>8} {:>8}  last applied",
                "consumer", "applied", "lag", "lag (s)", "queued", "parked"
            );
            for r in &rows {
                println!(
                    "{:<26} {:>10} {:>10} {:>10.1} {:>8} {:>8}  {}",
                    r.consumer,
                    r.applied,
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
