//! One shutdown signal for every role of a process.
//!
//! All tasks of a process share one [`CancellationToken`]. [`on_signal`] cancels it on SIGTERM or
//! Ctrl-C; HTTP servers then stop accepting and drain in-flight requests, consumers stop taking
//! deliveries and finish (or return) the batch in hand, the relay finishes its confirm round.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Cancels `token` when the process receives SIGTERM or SIGINT.
pub fn on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("interrupt received, shutting down"),
            _ = term => tracing::info!("SIGTERM received, shutting down"),
        }
        token.cancel();
    });
}

/// Waits for a role's background tasks. One that panics stops the process: the others are told
/// to stop, and the error is returned, so the process exits non-zero and its supervisor
/// (Kubernetes, systemd) restarts it. Running on without it would leave a queue growing (a
/// relay, a consumer) or reads going stale (query-api's eviction listener) behind a green
/// readiness probe.
///
/// Once `shutdown` is cancelled (a signal, or a panic), the tasks have `grace` to finish their
/// work in hand; what still runs then is dropped, with a warning. Nothing is lost that way: a
/// consumer's transaction rolls back and its deliveries return to the queue, as when a process
/// is killed. Without the bound, a process stopping after a panic, which no one follows with a
/// SIGKILL, could wait for ever on a task stuck in a round (a broker alarm, say).
pub async fn supervise(mut tasks: JoinSet<()>, shutdown: CancellationToken, grace: Duration) -> anyhow::Result<()> {
    let mut panicked = None;
    let mut deadline = None;
    loop {
        let joined = tokio::select! {
            biased;
            joined = tasks.join_next() => joined,
            () = shutdown.cancelled(), if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + grace);
                continue;
            }
            () = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                tracing::warn!(tasks = tasks.len(), ?grace, "background tasks still running after the grace; dropping them");
                break;
            }
        };
        let Some(joined) = joined else { break };
        if let Err(e) = joined
            && e.is_panic()
        {
            tracing::error!(error = %e, "a background task panicked; stopping the process so it is restarted");
            shutdown.cancel();
            panicked.get_or_insert(e);
        }
    }
    // (Dropping the set aborts what still runs.)
    match panicked {
        Some(e) => Err(anyhow::anyhow!("a background task panicked: {e}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use super::*;

    const GRACE: Duration = Duration::from_secs(5);

    /// A task that runs until `shutdown`, then takes `work` to finish; sets the flag when done.
    fn consumer(tasks: &mut JoinSet<()>, shutdown: &CancellationToken, work: Duration) -> Arc<AtomicBool> {
        let (stop, done) = (shutdown.clone(), Arc::new(AtomicBool::new(false)));
        let finished = done.clone();
        tasks.spawn(async move {
            stop.cancelled().await;
            tokio::time::sleep(work).await;
            finished.store(true, Ordering::SeqCst);
        });
        done
    }

    #[tokio::test]
    async fn a_panicking_task_stops_the_others_and_fails_the_process() {
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let finished = consumer(&mut tasks, &shutdown, Duration::from_millis(50));
        tasks.spawn(async { panic!("a bug") });
        let outcome = tokio::time::timeout(Duration::from_secs(5), supervise(tasks, shutdown.clone(), GRACE))
            .await
            .expect("the process stopped");
        assert!(outcome.unwrap_err().to_string().contains("a bug"));
        // The consumer was told to stop and finished its work in hand.
        assert!(shutdown.is_cancelled() && finished.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn tasks_that_end_or_stop_at_shutdown_are_no_failure() {
        // One ends on its own (a one-off migration); one stops at shutdown.
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tasks.spawn(async {});
        let finished = consumer(&mut tasks, &shutdown, Duration::from_millis(50));
        shutdown.cancel();
        assert!(supervise(tasks, shutdown, GRACE).await.is_ok());
        assert!(finished.load(Ordering::SeqCst), "work in hand was finished");
    }

    #[tokio::test]
    async fn a_task_stuck_past_the_grace_does_not_hold_up_the_exit() {
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let stuck = consumer(&mut tasks, &shutdown, Duration::from_secs(3600));
        tasks.spawn(async { panic!("a bug") });
        let started = std::time::Instant::now();
        let outcome =
            tokio::time::timeout(Duration::from_secs(5), supervise(tasks, shutdown, Duration::from_millis(200)))
                .await
                .expect("the process stopped");
        assert!(outcome.unwrap_err().to_string().contains("a bug"), "the panic is still reported");
        assert!(!stuck.load(Ordering::SeqCst) && started.elapsed() >= Duration::from_millis(200));
    }
}
