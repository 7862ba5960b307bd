//! Upgrading from one queue per projection to the read models' processing group.
//!
//! Before the group, each projection consumed `{prefix}.projection.<name>` (with retry tiers and
//! a parked queue). When this version starts, those queues may still hold messages, and
//! replicas of the previous version may still consume them during a rolling upgrade. So that
//! nothing is lost, each workers process that runs the group, for every such queue that still
//! exists:
//!
//! 1. takes its bindings away ([`unbind`]): new events reach only the group's queue (bound
//!    since the topology was declared, so nothing published meanwhile is missed: whatever
//!    reached both is applied once, each projection deduplicating);
//! 2. consumes it with the projection alone (`crate::registry::run_legacy_drains`), retries and
//!    parking included, until the queue is deleted.
//!
//! Nothing is deleted automatically: once `ecoctl projections status` shows the projections
//! caught up and the old queues empty (`rabbitmqctl list_queues`), an operator deletes them
//! (README "Upgrading to the processing group"); the drains then stop. Parked messages in the
//! old parked queues stay where they were until then.

use anyhow::Context;
use lapin::{Connection, types::FieldTable};
use platform::topology::{ConsumerSpec, READ_MODEL_MEMBERS, Topology};

use crate::ops::queue_lookup;

/// Whether `queue` exists. Only the broker's 404 means "no"; any other failure is an error
/// (so a broker hiccup is never taken for "nothing left to drain").
pub async fn exists(conn: &Connection, queue: &str) -> anyhow::Result<bool> {
    Ok(queue_lookup(conn, queue).await?.is_some())
}

/// The projections whose own queue still exists.
pub async fn remaining(conn: &Connection, topology: &Topology) -> anyhow::Result<Vec<&'static ConsumerSpec>> {
    let mut out = Vec::new();
    for member in READ_MODEL_MEMBERS {
        if exists(conn, &topology.queue(member)).await? {
            out.push(member);
        }
    }
    Ok(out)
}

/// Takes the bindings away from `member`'s own queue.
pub async fn unbind(conn: &Connection, topology: &Topology, member: &ConsumerSpec) -> anyhow::Result<()> {
    let channel = conn.create_channel().await.context("opening a channel")?;
    let queue = topology.queue(member);
    for key in member.bindings {
        channel
            .queue_unbind(&queue, &topology.exchange(), key, FieldTable::default())
            .await
            .with_context(|| format!("unbinding {queue} from {key}"))?;
    }
    let _ = channel.close(200, "done").await;
    tracing::info!(queue = %queue, "projection queue unbound: its projection consumes through the processing group now");
    Ok(())
}
