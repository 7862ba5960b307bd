//! Hot reads answered from this process's memory, kept exact by read-model changes the
//! projectors push (`platform::changes`), so `GET /users/me`, `/users/me/points` and the
//! leaderboards cost no round trip once warm.
//!
//! | cache | key | evicted by |
//! |---|---|---|
//! | profiles | user | a `profiles` change naming the user |
//! | weekly points | user (holds the week it is for) | a `leaderboards` change naming the user |
//! | board pages | period key, offset, limit | any `leaderboards` or `profiles` change (ranks move, names and levels show) |
//! | my rank | period key, user | the same |
//!
//! A board changes with every point anyone earns, so under write load its entries live for
//! about one batch; the profile and points entries live until their own user changes, and no
//! entry is served older than [`MAX_AGE`]. All are bounded (least recently used go first) and
//! off once the subscription is found down (by its ping, within about 7 s for a connection that
//! died silently; at once when it closes).

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use platform::{
    changes::{self, Change, Local, Subscription},
    redis::Redis,
    topology::{LEADERBOARDS, PROFILES},
};
use readmodels::profiles::Profile;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::routes::leaderboards::{Entry, MyStanding};

/// Profiles held (about 0.5 KiB each).
const PROFILES_HELD: usize = 20_000;
/// Weekly point totals held.
const POINTS_HELD: usize = 20_000;
/// Board pages held.
const PAGES_HELD: usize = 256;
/// Standings ("my rank") held.
const STANDINGS_HELD: usize = 10_000;
/// The oldest entry served: what a change that was never published (a worker killed between its
/// commit and its refresh, a publish that timed out) can cost.
const MAX_AGE: Duration = Duration::from_secs(30);
/// How often the subscription proves it is alive (a half-open connection would otherwise
/// leave the caches serving entries nobody evicts).
const PING_EVERY: Duration = Duration::from_secs(5);
/// How long a ping, a connection or a subscription may take.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// A page of a board, named.
#[derive(Debug, Clone)]
pub struct Page {
    /// Its entries.
    pub entries: Arc<Vec<Entry>>,
    /// Whether a next page exists.
    pub more: bool,
}

/// The caches (see the module docs).
pub struct LocalReads {
    subscription: Arc<Subscription>,
    /// `read.profiles` rows; `None` for a user without one.
    pub profiles: Local<Uuid, Option<Profile>>,
    /// Points this week: (week key, points).
    pub weekly_points: Local<Uuid, (String, i64)>,
    /// Board pages: (period key, offset, limit).
    pub pages: Local<(String, i64, i64), Page>,
    /// Where someone stands: (period key, user).
    pub standings: Local<(String, Uuid), MyStanding>,
}

impl Default for LocalReads {
    fn default() -> Self {
        let subscription = Arc::new(Subscription::default());
        Self {
            profiles: Local::new(PROFILES_HELD, MAX_AGE, subscription.clone()),
            weekly_points: Local::new(POINTS_HELD, MAX_AGE, subscription.clone()),
            pages: Local::new(PAGES_HELD, MAX_AGE, subscription.clone()),
            standings: Local::new(STANDINGS_HELD, MAX_AGE, subscription.clone()),
            subscription,
        }
    }
}

impl LocalReads {
    fn clear(&self) {
        self.profiles.clear();
        self.weekly_points.clear();
        self.pages.clear();
        self.standings.clear();
    }

    /// Evicts what `change` makes stale.
    pub fn apply(&self, change: &Change) {
        let boards = change.projection == LEADERBOARDS.name;
        let profiles = change.projection == PROFILES.name;
        if profiles {
            if change.is_everything() {
                self.profiles.clear();
            } else {
                self.profiles.evict_keys(&change.ids);
            }
        }
        if boards {
            if change.is_everything() {
                self.weekly_points.clear();
            } else {
                self.weekly_points.evict_keys(&change.ids);
            }
        }
        if boards || profiles {
            self.pages.clear();
            self.standings.clear();
        }
    }

    /// Keeps the caches subscribed to read-model changes until `shutdown`: on while the
    /// subscription is up (and proven so by a ping every few seconds), off and emptied while it
    /// is not.
    pub async fn subscribe(self: Arc<Self>, redis_url: String, redis: Redis, shutdown: CancellationToken) {
        let channel = changes::channel(&redis);
        loop {
            match self.follow(&redis_url, &channel, &shutdown).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(
                    error = format!("{e:#}"),
                    "read-model changes not received; hot reads go to Redis until resubscribed"
                ),
            }
            self.subscription.set_live(false);
            self.clear();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// One subscription, until it fails (`Err`) or `shutdown` (`Ok`).
    async fn follow(&self, redis_url: &str, channel: &str, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let client = redis::Client::open(redis_url)?;
        let pubsub = tokio::time::timeout(PING_TIMEOUT, client.get_async_pubsub()).await??;
        let (mut sink, mut stream) = pubsub.split();
        tokio::time::timeout(PING_TIMEOUT, sink.subscribe(channel)).await??;
        // Whatever changed before this point was missed: start empty.
        self.clear();
        self.subscription.set_live(true);
        tracing::info!(channel, "hot-read caches on: subscribed to read-model changes");
        let mut ping = tokio::time::interval(PING_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                message = stream.next() => {
                    let Some(message) = message else { anyhow::bail!("the subscription ended") };
                    let payload: String = message.get_payload()?;
                    self.apply(&Change::parse(&payload));
                }
                _ = ping.tick() => {
                    tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await??;
                }
            }
        }
    }
}
