use platform::{Settings, shutdown, telemetry};
use tokio_util::sync::CancellationToken;

platform::allocator!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    telemetry::init_tracing(&settings);
    let stop = CancellationToken::new();
    shutdown::on_signal(stop.clone());
    command_api::App::build(settings).await?.run_until_stopped(stop).await
}
