use platform::{Settings, shutdown, telemetry};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    telemetry::init_tracing(&settings);
    let roles = workers::Role::parse_list(&std::env::var("WORKER_ROLES").unwrap_or_default())?;
    let stop = CancellationToken::new();
    shutdown::on_signal(stop.clone());
    workers::App::build(settings, roles).await?.run_until_stopped(stop).await
}
