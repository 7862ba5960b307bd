//! `workers`: the outbox relay, the points policy, the projectors, the mailer and ingest.

platform::allocator!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    workers::main_from_env().await
}
