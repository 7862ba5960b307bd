//! Read-model changes pushed to every API instance, and the in-process caches they keep exact.
//!
//! A projector that refreshes a Redis read model (the profile cache, the leaderboard sets)
//! publishes, **after** that refresh, one message on the Redis channel `{prefix}:changes`:
//! `"{projection}"` (everything of it may have changed) or `"{projection} {id} {id} …"` (the
//! read model of these aggregates changed). Every query-api instance subscribes and evicts what
//! the message names from its [`Local`] caches, so a hot read is answered from memory without a
//! single round trip, and never from an entry older than the last change pushed to it.
//!
//! Why this is exact, not "usually fresh": a fill takes a ticket before it reads Redis (or
//! PostgreSQL), and stores what it read only if no change arrived meanwhile. A change published
//! after the fill's read is delivered after that read too, so it either arrives before the
//! store (the ticket is void, nothing is stored) or after (it evicts the entry). While the
//! subscription is down, [`Local`] caches are off (every read goes to Redis as before) and
//! they start empty when it is back, because messages sent in between are lost.
//!
//! Requests carrying a consistency token bypass these caches as they bypass Redis.

use std::{
    hash::Hash,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use uuid::Uuid;

use crate::redis::Redis;

/// The channel under the Redis prefix.
pub fn channel(redis: &Redis) -> String {
    redis.key("changes")
}

/// At most this many ids in one message; a larger change says "everything" instead.
const MAX_IDS: usize = 256;

/// Publishes that `projection`'s read model changed for `ids` (for every aggregate when `ids`
/// is empty). Best effort: a lost message only matters while the subscription is up, and a
/// publish that fails costs at most the caches' maximum age.
pub async fn publish(redis: &Redis, projection: &str, ids: &[Uuid]) {
    let mut message = String::from(projection);
    if ids.len() <= MAX_IDS {
        for id in ids {
            message.push(' ');
            message.push_str(&id.to_string());
        }
    }
    let channel = channel(redis);
    let sent =
        redis
            .run(move |mut c| async move {
                redis::cmd("PUBLISH").arg(channel).arg(message).query_async::<i64>(&mut c).await
            })
            .await;
    if let Err(e) = sent {
        tracing::debug!(error = format!("{e:#}"), projection, "read-model change not published");
    }
}

/// A change as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The projection (consumer name) whose read model changed.
    pub projection: String,
    /// The aggregates it changed for; empty means all of them.
    pub ids: Vec<Uuid>,
}

impl Change {
    /// Parses a message; ids that do not parse make it a change of everything.
    pub fn parse(message: &str) -> Self {
        let mut words = message.split(' ');
        let projection = words.next().unwrap_or_default().to_owned();
        let ids: Result<Vec<Uuid>, _> = words.map(Uuid::parse_str).collect();
        Self { projection, ids: ids.unwrap_or_default() }
    }

    /// Whether every aggregate may have changed.
    pub fn is_everything(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Whether this process currently receives changes; shared by all its [`Local`] caches.
#[derive(Debug, Default)]
pub struct Subscription {
    live: AtomicBool,
}

impl Subscription {
    /// Whether changes are being received.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Marks the subscription up or down (callers clear their caches on both edges).
    pub fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
    }
}

/// Proof that a fill began before some point; see [`Local::fill`].
#[derive(Debug, Clone, Copy)]
struct Ticket(u64);

/// An in-process cache evicted by pushed changes (see the module docs). Bounded: the least
/// recently used entries go first, and none is served older than its maximum age, which bounds
/// what a change that was never published costs (a worker killed between its commit and its
/// cache refresh, a publish that timed out).
pub struct Local<K, V> {
    entries: quick_cache::sync::Cache<K, (Instant, V)>,
    max_age: Duration,
    subscription: Arc<Subscription>,
    /// Bumped by every eviction; under the lock so a fill's check and store are one step.
    epoch: Mutex<u64>,
    /// The epoch, readable without the lock (for tickets).
    seen: AtomicU64,
}

impl<K: Eq + Hash + Clone, V: Clone> Local<K, V> {
    /// A cache of at most `capacity` entries younger than `max_age`, on while `subscription`
    /// is live.
    pub fn new(capacity: usize, max_age: Duration, subscription: Arc<Subscription>) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(capacity),
            max_age,
            subscription,
            epoch: Mutex::new(0),
            seen: AtomicU64::new(0),
        }
    }

    /// The entry, when the subscription is live and one is held, not too old.
    pub fn get(&self, key: &K) -> Option<V> {
        if !self.subscription.is_live() {
            return None;
        }
        let (stored, value) = self.entries.get(key)?;
        (stored.elapsed() < self.max_age).then_some(value)
    }

    /// The entry of `key` when one is held and `usable` accepts it; else what `load` reads,
    /// stored unless a change arrived while it read (so nothing older than the last change
    /// delivered is ever stored).
    pub async fn get_or_load<E, Fut>(
        &self,
        key: K,
        usable: impl FnOnce(&V) -> bool,
        load: impl FnOnce() -> Fut,
    ) -> Result<V, E>
    where
        Fut: Future<Output = Result<V, E>>,
    {
        if let Some(value) = self.get(&key).filter(usable) {
            return Ok(value);
        }
        let ticket = self.ticket();
        let value = load().await?;
        self.fill(ticket, key, value.clone());
        Ok(value)
    }

    /// Taken before reading the value to store.
    fn ticket(&self) -> Ticket {
        Ticket(self.seen.load(Ordering::Acquire))
    }

    /// Stores `value` read after `ticket` was taken, unless a change arrived since.
    fn fill(&self, ticket: Ticket, key: K, value: V) {
        if !self.subscription.is_live() {
            return;
        }
        let epoch = self.epoch.lock().unwrap_or_else(|p| p.into_inner());
        if *epoch == ticket.0 {
            self.entries.insert(key, (Instant::now(), value));
        }
    }

    /// Evicts the entries `stale` selects (a walk over the cache: for small caches).
    pub fn evict(&self, stale: impl Fn(&K, &V) -> bool) {
        let mut epoch = self.epoch.lock().unwrap_or_else(|p| p.into_inner());
        *epoch += 1;
        self.seen.store(*epoch, Ordering::Release);
        self.entries.retain(|k, (_, v)| !stale(k, v));
    }

    /// Evicts the entries of `keys`.
    pub fn evict_keys<'a>(&self, keys: impl IntoIterator<Item = &'a K>)
    where
        K: 'a,
    {
        let mut epoch = self.epoch.lock().unwrap_or_else(|p| p.into_inner());
        *epoch += 1;
        self.seen.store(*epoch, Ordering::Release);
        for key in keys {
            self.entries.remove(key);
        }
    }

    /// Evicts everything.
    pub fn clear(&self) {
        let mut epoch = self.epoch.lock().unwrap_or_else(|p| p.into_inner());
        *epoch += 1;
        self.seen.store(*epoch, Ordering::Release);
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGE: Duration = Duration::from_secs(60);

    fn live() -> Arc<Subscription> {
        let s = Arc::new(Subscription::default());
        s.set_live(true);
        s
    }

    #[test]
    fn a_fill_that_raced_a_change_is_not_stored() {
        let cache: Local<u32, &str> = Local::new(8, AGE, live());
        let ticket = cache.ticket();
        cache.evict_keys(&[1]);
        cache.fill(ticket, 1, "read before the change");
        assert_eq!(cache.get(&1), None);
        let ticket = cache.ticket();
        cache.fill(ticket, 1, "read after it");
        assert_eq!(cache.get(&1), Some("read after it"));
    }

    #[test]
    fn nothing_is_served_or_stored_while_the_subscription_is_down() {
        let subscription = live();
        let cache: Local<u32, &str> = Local::new(8, AGE, subscription.clone());
        cache.fill(cache.ticket(), 1, "a");
        subscription.set_live(false);
        assert_eq!(cache.get(&1), None);
        cache.fill(cache.ticket(), 2, "b");
        subscription.set_live(true);
        assert_eq!(cache.get(&2), None);
        assert_eq!(cache.get(&1), Some("a"), "clearing on reconnect is the subscriber's job");
    }

    #[test]
    fn an_entry_past_its_age_is_not_served() {
        let cache: Local<u32, &str> = Local::new(8, Duration::ZERO, live());
        cache.fill(cache.ticket(), 1, "a");
        assert_eq!(cache.get(&1), None);
    }

    #[test]
    fn evictions_take_only_what_they_name() {
        let cache: Local<u32, &str> = Local::new(8, AGE, live());
        cache.fill(cache.ticket(), 1, "a");
        cache.fill(cache.ticket(), 2, "b");
        cache.evict(|k, _| *k == 1);
        assert_eq!((cache.get(&1), cache.get(&2)), (None, Some("b")));
    }

    #[test]
    fn messages_name_a_projection_and_maybe_ids() {
        let id = Uuid::now_v7();
        assert_eq!(Change::parse(&format!("profiles {id}")), Change { projection: "profiles".into(), ids: vec![id] });
        assert!(Change::parse("leaderboards").is_everything());
        assert!(Change::parse("profiles not-an-id").is_everything());
    }
}
