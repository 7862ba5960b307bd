//! The RabbitMQ topology (DESIGN §2), declared idempotently by every process at start.
//!
//! ```text
//! {prefix}.events                      durable topic exchange, routing key = event type
//! {prefix}.{consumer}                  durable quorum queue per consumer, bound to its types
//! {prefix}.{consumer}.retry.{n}        durable queue per retry tier: messages wait there for the
//!                                      tier's TTL, then dead-letter back to the consumer queue
//! {prefix}.{consumer}.parked           durable quorum queue: what failed for good, with headers
//!                                      saying why, when and after how many tries
//! ```
//! Retry tiers use queue-level TTL (one delay per queue) rather than per-message TTL, because
//! RabbitMQ only expires messages at the head of a queue: one queue with growing per-message
//! delays would hold a short delay behind a long one.

use std::time::Duration;

use anyhow::Context;
use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString, ShortString},
};

/// Headers a consumer sets on what it retries and parks (defined with the event contract, which
/// publishes them in the AsyncAPI document).
pub use events::parking as headers;

/// A consumer of the event bus: one queue, bound to the event types it handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerSpec {
    /// The consumer's name, e.g. `projection.profiles`; its queue is `{prefix}.{name}`.
    pub name: &'static str,
    /// The projection it feeds (its deduplication key), for projectors.
    pub projection: Option<&'static str>,
    /// Routing keys (event types) bound to its queue.
    pub bindings: &'static [&'static str],
}

/// The profiles projector: `GET /users/me`, `GET /auth/me`, `/users/me/points`, `/users/me/level`.
pub const PROFILES: ConsumerSpec = ConsumerSpec {
    name: "projection.profiles",
    projection: Some("profiles"),
    bindings: &[
        "user.registered",
        "user.profile_updated",
        "user.settings_updated",
        "user.deleted",
        "scan.recorded",
        "recycle.completed",
        "points.earned",
        "attendance.checked_in",
        "user.character_selected",
    ],
};

/// The points policy: turns what users did into `points.earned` and `level.reached`.
pub const POINTS_POLICY: ConsumerSpec = ConsumerSpec {
    name: "points-policy",
    projection: Some("points-policy"),
    bindings: &["scan.recorded", "recycle.completed", "attendance.checked_in", "invite.accepted", "points.earned"],
};

/// The activity history projector: `GET /users/me/activities`.
pub const ACTIVITIES: ConsumerSpec = ConsumerSpec {
    name: "projection.activities",
    projection: Some("activities"),
    bindings: &[
        "scan.recorded",
        "recycle.completed",
        "attendance.checked_in",
        "invite.accepted",
        "points.earned",
        "level.reached",
        "user.deleted",
    ],
};

/// The leaderboards projector: `GET /leaderboards/*`, with closed periods' results.
pub const LEADERBOARDS: ConsumerSpec = ConsumerSpec {
    name: "projection.leaderboards",
    projection: Some("leaderboards"),
    bindings: &["points.earned", "user.deleted", "leaderboard.period_closed"],
};

/// The rewards policy: turns what users did into `badge.earned` and `character.unlocked`.
pub const REWARDS_POLICY: ConsumerSpec = ConsumerSpec {
    name: "rewards-policy",
    projection: Some("rewards-policy"),
    bindings: &[
        "user.registered",
        "scan.recorded",
        "points.earned",
        "level.reached",
        "attendance.checked_in",
        "invite.accepted",
        "leaderboard.period_closed",
        "user.deleted",
    ],
};

/// The avatar worker: renditions of each `avatar.uploaded` (then `user.profile_updated`), the
/// files of a replaced or cleared avatar deleted, and every file of a deleted person.
pub const AVATARS: ConsumerSpec = ConsumerSpec {
    name: "avatars",
    projection: Some("avatars"),
    bindings: &["avatar.uploaded", "user.profile_updated", "user.deleted"],
};

/// The rewards projector: `GET /users/me/badges`, `GET /users/me/characters`.
pub const REWARDS: ConsumerSpec = ConsumerSpec {
    name: "projection.rewards",
    projection: Some("rewards"),
    bindings: &["badge.earned", "character.unlocked", "user.deleted"],
};

/// The recycling guide projector: `GET /recycle/*`.
pub const GUIDE: ConsumerSpec = ConsumerSpec {
    name: "projection.guide",
    projection: Some("guide"),
    bindings: &[
        "guide.item_saved",
        "guide.item_removed",
        "guide.faq_saved",
        "guide.faq_removed",
        "guide.region_saved",
        "faq.marked_helpful",
        "scan.recorded",
        "recycle.completed",
    ],
};

/// The places projector: `GET /locations/*`.
pub const PLACES: ConsumerSpec = ConsumerSpec {
    name: "projection.places",
    projection: Some("places"),
    bindings: &["place.saved", "place.removed", "user.places_changed", "user.deleted"],
};

/// The types that carry something worth telling someone (`readmodels::notifications::notices`),
/// then the consumer's own: the feed and the push notifier bind the same notices.
macro_rules! notice_bindings {
    ($($own:literal),*) => {
        &[
            "level.reached",
            "badge.earned",
            "character.unlocked",
            "invite.accepted",
            "points.earned",
            "leaderboard.period_closed",
            $($own),*
        ]
    };
}

/// The notifications projector: `GET /users/me/notifications`.
pub const NOTIFICATIONS: ConsumerSpec = ConsumerSpec {
    name: "projection.notifications",
    projection: Some("notifications"),
    bindings: notice_bindings!("user.notifications_read", "user.deleted"),
};

/// The push notifier: sends what is worth telling to people's devices.
pub const NOTIFIER: ConsumerSpec =
    ConsumerSpec { name: "notifier", projection: Some("notifier"), bindings: notice_bindings!("user.deleted") };

/// The processing group of the projections (profiles, activities, leaderboards, guide,
/// places, rewards, notifications): they share the database, so they consume one queue, bound to every type any of
/// them handles, and apply each batch in one transaction, each with its own deduplication
/// (`projection.applied_events` keyed by the member), rebuild and replay. It has no
/// deduplication key of its own.
pub const READ_MODELS: ConsumerSpec = ConsumerSpec {
    name: "projections",
    projection: None,
    bindings: &[
        "user.registered",
        "user.profile_updated",
        "user.settings_updated",
        "user.deleted",
        "scan.recorded",
        "recycle.completed",
        "attendance.checked_in",
        "invite.accepted",
        "points.earned",
        "level.reached",
        "guide.item_saved",
        "guide.item_removed",
        "guide.faq_saved",
        "guide.faq_removed",
        "guide.region_saved",
        "faq.marked_helpful",
        "place.saved",
        "place.removed",
        "user.places_changed",
        "user.character_selected",
        "leaderboard.period_closed",
        "badge.earned",
        "character.unlocked",
        "user.notifications_read",
    ],
};

/// The members of [`READ_MODELS`].
pub const READ_MODEL_MEMBERS: [&ConsumerSpec; 7] =
    [&PROFILES, &ACTIVITIES, &LEADERBOARDS, &GUIDE, &PLACES, &REWARDS, &NOTIFICATIONS];

/// The mail worker: sends what commands queued.
pub const MAILER: ConsumerSpec =
    ConsumerSpec { name: "mailer", projection: Some("mailer"), bindings: &["mail.requested"] };

/// The ingest consumer: stores every event on the bus in the log (ours are already there and
/// are acknowledged without a transaction), so replays include what other services published.
pub const INGEST: ConsumerSpec = ConsumerSpec { name: "ingest", projection: Some("ingest"), bindings: &["#"] };

/// Names of every exchange and queue under one prefix.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    retry_delays: Vec<Duration>,
}

impl Topology {
    /// Topology under `prefix` with one retry tier per delay.
    pub fn new(prefix: &str, retry_delays: &[Duration]) -> Self {
        Self { prefix: prefix.to_owned(), retry_delays: retry_delays.to_vec() }
    }

    /// `{prefix}.events`.
    pub fn exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// `{prefix}.{consumer}`.
    pub fn queue(&self, spec: &ConsumerSpec) -> String {
        format!("{}.{}", self.prefix, spec.name)
    }

    /// `{prefix}.{consumer}.retry.{tier}`, tier counted from 1.
    pub fn retry_queue(&self, spec: &ConsumerSpec, tier: usize) -> String {
        format!("{}.retry.{tier}", self.queue(spec))
    }

    /// `{prefix}.{consumer}.parked`.
    pub fn parked_queue(&self, spec: &ConsumerSpec) -> String {
        format!("{}.parked", self.queue(spec))
    }

    /// The retry delays, one per tier.
    pub fn retry_delays(&self) -> &[Duration] {
        &self.retry_delays
    }

    /// Every queue name of `spec` (main, retry tiers, parked).
    pub fn queues_of(&self, spec: &ConsumerSpec) -> Vec<String> {
        let mut names = vec![self.queue(spec), self.parked_queue(spec)];
        names.extend((1..=self.retry_delays.len()).map(|t| self.retry_queue(spec, t)));
        names
    }

    /// Declares the exchange and every consumer's queues and bindings. Idempotent; a queue that
    /// exists with other arguments makes it fail with the broker's reason.
    pub async fn declare(&self, channel: &Channel, consumers: &[ConsumerSpec]) -> anyhow::Result<()> {
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        channel
            .exchange_declare(&self.exchange(), ExchangeKind::Topic, durable, FieldTable::default())
            .await
            .with_context(|| format!("declaring exchange {}", self.exchange()))?;
        for spec in consumers {
            self.declare_consumer(channel, spec).await?;
        }
        Ok(())
    }

    async fn declare_consumer(&self, channel: &Channel, spec: &ConsumerSpec) -> anyhow::Result<()> {
        let durable = QueueDeclareOptions { durable: true, ..Default::default() };
        let queue = self.queue(spec);
        channel.queue_declare(&queue, durable, quorum()).await.with_context(|| format!("declaring queue {queue}"))?;
        for key in spec.bindings {
            channel
                .queue_bind(&queue, &self.exchange(), key, QueueBindOptions::default(), FieldTable::default())
                .await
                .with_context(|| format!("binding {queue} to {key}"))?;
        }
        let parked = self.parked_queue(spec);
        channel.queue_declare(&parked, durable, quorum()).await.with_context(|| format!("declaring queue {parked}"))?;
        for (tier, delay) in self.retry_delays.iter().enumerate() {
            let retry = self.retry_queue(spec, tier + 1);
            let mut args = FieldTable::default();
            let ttl_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl_ms));
            args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(LongString::from("")));
            args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(LongString::from(queue.as_str())));
            channel.queue_declare(&retry, durable, args).await.with_context(|| format!("declaring queue {retry}"))?;
        }
        Ok(())
    }
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(ShortString::from("x-queue-type"), AMQPValue::LongString(LongString::from("quorum")));
    args
}

#[cfg(test)]
mod group_tests {
    use super::*;

    #[test]
    fn the_read_models_group_binds_exactly_what_its_members_handle() {
        let mut union: Vec<&str> = READ_MODEL_MEMBERS.iter().flat_map(|m| m.bindings.iter().copied()).collect();
        union.sort_unstable();
        union.dedup();
        let mut bound = READ_MODELS.bindings.to_vec();
        bound.sort_unstable();
        assert_eq!(bound, union);
    }
}
