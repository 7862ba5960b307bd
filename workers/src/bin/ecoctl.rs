//! `ecoctl`: operations on the event log, projections and dead letters (DESIGN §6).

use clap::{Parser, Subcommand};
use platform::{Settings, telemetry};

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
    /// Give an account a role (`user` or `admin`); it applies from the next sign-in.
    GrantRole {
        /// The account's e-mail address.
        email: String,
        /// `user` or `admin`.
        role: String,
    },
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
