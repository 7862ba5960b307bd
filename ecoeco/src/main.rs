//! `ecoeco`: every role in one process, for local use: command-api on 127.0.0.1:8081,
//! query-api on :8082, workers (relay and projectors, ops routes) on :8083. `BIND_ADDR` is
//! ignored here; run the three binaries separately to place them. Loads the recycling guide
//! content at start, as `ecoctl seed` does.

use platform::{Settings, shutdown, telemetry};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut settings = Settings::from_env()?;
    telemetry::init_tracing(&settings);
    settings.bind_addr = None;
    let stop = CancellationToken::new();
    shutdown::on_signal(stop.clone());
    // Workers first: they apply migrations and declare the topology.
    let workers = workers::App::build(settings.clone(), workers::Role::ALL.to_vec()).await?;
    // The recycling guide shipped with the product (a no-op when it is loaded already).
    let seeded = workers::seed::seed(&platform::db::connect(&settings).await?).await?;
    tracing::info!(events = seeded.events(), "recycling guide content loaded");
    let mut others = settings.clone();
    others.migrate_on_start = false;
    let command = command_api::App::build(others.clone()).await?;
    let query = query_api::App::build(others).await?;
    let (w, c, q) = tokio::join!(
        workers.run_until_stopped(stop.clone()),
        command.run_until_stopped(stop.clone()),
        query.run_until_stopped(stop.clone()),
    );
    w.and(c).and(q)
}
