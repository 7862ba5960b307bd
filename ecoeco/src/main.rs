//! `ecoeco`: every role in one process, for local use: command-api on `BIND_ADDR` (default
//! 127.0.0.1:8081), query-api on the next port (:8082) and workers (relay and projectors, ops
//! routes) on the one after (:8083). In a container set `BIND_ADDR=0.0.0.0:8081`. Loads the
//! recycling guide content at start, as `ecoctl seed` does.

use platform::{Settings, shutdown, telemetry};
use tokio_util::sync::CancellationToken;

platform::allocator!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    telemetry::init_tracing(&settings);
    let base = settings.bind_addr_or(command_api::DEFAULT_PORT);
    let at = |offset: u16| {
        let mut s = settings.clone();
        s.bind_addr = Some(std::net::SocketAddr::new(base.ip(), base.port().saturating_add(offset)));
        s
    };
    let stop = CancellationToken::new();
    shutdown::on_signal(stop.clone());
    // Workers first: they apply migrations and declare the topology.
    let workers = workers::App::build(at(2), workers::Role::all()).await?;
    // The recycling guide shipped with the product (a no-op when it is loaded already).
    let seeded = workers::seed::seed(&platform::db::connect(&settings).await?).await?;
    tracing::info!(events = seeded.events(), "recycling guide content loaded");
    let no_migrate = |mut s: Settings| {
        s.migrate_on_start = false;
        s
    };
    let command = command_api::App::build(no_migrate(at(0))).await?;
    let query = query_api::App::build(no_migrate(at(1))).await?;
    let (w, c, q) = tokio::join!(
        workers.run_until_stopped(stop.clone()),
        command.run_until_stopped(stop.clone()),
        query.run_until_stopped(stop.clone()),
    );
    w.and(c).and(q)
}
