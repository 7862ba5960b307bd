use platform::{Settings, shutdown, telemetry};
use tokio_util::sync::CancellationToken;

/// jemalloc: freed memory goes back to the system after a short decay, and threads do not
/// each keep their own high-water mark as glibc's per-thread arenas do.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    telemetry::init_tracing(&settings);
    let stop = CancellationToken::new();
    shutdown::on_signal(stop.clone());
    query_api::App::build(settings).await?.run_until_stopped(stop).await
}
