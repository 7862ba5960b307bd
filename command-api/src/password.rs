//! Argon2id password hashing on a small pool of dedicated threads, one per core.
//!
//! A hash costs tens of milliseconds of CPU and its memory cost in RAM, so more hashes at once
//! than cores would not finish sooner, and each would hold its memory. On tokio's blocking pool
//! every hash could land on another thread, and glibc kept each thread's freed hash memory in
//! that thread's arena: after 72 sign-ups the process held 614 MiB (27 MiB idle). On dedicated
//! threads the memory is reused, so hashing holds at most `cores × memory cost`.
//!
//! Parameters: argon2id, m = 7 MiB, t = 5, p = 1, one of the OWASP Password Storage Cheat
//! Sheet's equivalent settings (m = 19 MiB, t = 2 is another); the smaller memory cost keeps
//! the pool's footprint low at the same defence. Stored hashes carry their own parameters
//! (PHC string), so hashes made with other parameters still verify (while they do, that thread
//! holds their memory cost), and a successful sign-in rehashes them with the current ones
//! ([`upgrade`]), so an old hash does not stay distinguishable by its timing from the decoy an
//! unknown address is checked against.

use std::sync::{LazyLock, Mutex, mpsc};

use anyhow::Context;
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version, password_hash::SaltString,
};
use tokio::sync::oneshot;

/// Memory cost in KiB.
const MEMORY_KIB: u32 = 7 * 1024;
/// Passes.
const PASSES: u32 = 5;

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads, fed through one queue.
static POOL: LazyLock<Mutex<mpsc::Sender<Job>>> = LazyLock::new(|| {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = std::sync::Arc::new(Mutex::new(rx));
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    for i in 0..threads {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
            loop {
                let job = match rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                match job {
                    // A panicking job drops its answer channel (its caller gets an error); the
                    // thread goes on serving.
                    Ok(job) => {
                        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                            tracing::error!("a password hashing job panicked");
                        }
                    }
                    Err(_) => return, // the sender is gone: the process is ending
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a password hashing thread");
        }
    }
    Mutex::new(tx)
});

/// Runs `work` on a hashing thread and waits for its answer.
async fn on_pool<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(work());
    });
    let sent = match POOL.lock() {
        Ok(queue) => queue.send(job).map_err(|_| anyhow::anyhow!("password hashing pool stopped")),
        Err(_) => Err(anyhow::anyhow!("password hashing pool poisoned")),
    };
    sent?;
    rx.await.context("password hashing thread ended")
}

/// Hashes `password` with argon2id and a random salt (PHC string).
pub async fn hash(password: String) -> anyhow::Result<String> {
    on_pool(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await?
}

/// A hash of nothing anyone knows, verified against when the account does not exist so that
/// "no such account" costs as long as "wrong password".
static DECOY: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    hasher().hash_password(uuid::Uuid::new_v4().as_bytes(), &salt).map(|h| h.to_string()).unwrap_or_default()
});

/// Whether `password` matches `stored`; with `None`, burns the same time and says no.
pub async fn verify(password: String, stored: Option<String>) -> anyhow::Result<bool> {
    on_pool(move || {
        let exists = stored.is_some();
        let phc = stored.unwrap_or_else(|| DECOY.clone());
        let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
        // The parameters come from the stored hash itself.
        let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(exists && ok)
    })
    .await?
}

/// A new hash of `password` when `stored` (which it matched) was made with other parameters.
pub async fn upgrade(password: String, stored: &str) -> anyhow::Result<Option<String>> {
    let made_with = PasswordHash::new(stored).ok().and_then(|h| Params::try_from(&h).ok());
    let costs = |p: &Params| (p.m_cost(), p.t_cost(), p.p_cost());
    if made_with.is_some_and(|p| costs(&p) == costs(hasher().params())) {
        return Ok(None);
    }
    hash(password).await.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only_and_says_its_parameters() {
        let phc = hash("recycle2026".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{phc}");
        assert!(verify("recycle2026".into(), Some(phc.clone())).await.unwrap());
        assert!(!verify("recycle2025".into(), Some(phc)).await.unwrap());
        assert!(!verify("recycle2026".into(), None).await.unwrap(), "no account, no match");
    }

    #[tokio::test]
    async fn hashes_made_with_the_earlier_parameters_still_verify() {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let old = Argon2::default().hash_password(b"recycle2026", &salt).unwrap().to_string();
        assert!(old.contains("m=19456,t=2,p=1"), "{old}");
        assert!(verify("recycle2026".into(), Some(old.clone())).await.unwrap());
        let new = upgrade("recycle2026".into(), &old).await.unwrap().expect("an old hash is upgraded");
        assert!(new.contains("m=7168,t=5,p=1") && verify("recycle2026".into(), Some(new.clone())).await.unwrap());
        assert_eq!(upgrade("recycle2026".into(), &new).await.unwrap(), None, "a current hash stays");
    }
}
