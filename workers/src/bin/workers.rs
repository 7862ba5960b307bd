//! `workers`: the outbox relay, the points policy, the projectors, the mailer and ingest.

/// jemalloc: freed memory goes back to the system after a short decay, and threads do not
/// each keep their own high-water mark as glibc's per-thread arenas do.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    workers::main_from_env().await
}
