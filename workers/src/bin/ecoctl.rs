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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = Settings::from_env()?;
    telemetry::init_tracing(&settings);
    match cli.command {
        Command::Migrate => {
            settings.migrate_on_start = false;
            let mut create = settings.clone();
            create.migrate_on_start = true;
            let pool = platform::db::connect(&settings).await;
            let pool = match pool {
                Ok(p) => p,
                Err(_) => platform::db::connect(&create).await?,
            };
            let applied = platform::db::migrate(&pool).await?;
            workers::declare_topology(&settings).await?;
            println!(
                "migrate: applied {applied} migration(s); topology declared under prefix `{}`",
                settings.amqp_prefix
            );
        }
    }
    Ok(())
}
