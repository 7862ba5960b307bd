//! Upgrading from one queue per projection to the read models' processing group.
//!
//! Before the group, each projection consumed `{prefix}.projection.<name>` (with its retry tiers
//! and parked queue). Those queues may still hold messages when this version starts, and old
//! replicas may still consume them during a rolling upgrade. So nothing is lost or applied twice:
//!
//! 1. [`unbind`] (run with the topology declaration) takes their bindings away: new events
//!    reach only the group's queue.
//! 2. Each workers process running the group also drains every such queue that still exists
//!    with the projection alone ([`crate::consumer::drain`]): its own deduplication skips what
//!    the group applied meanwhile, and retries come back to the queue they left.
//! 3. Once the queue and its retry tiers have been empty for a while, [`retire`] moves its
//!    parked messages into the group's parked queue (a requeue then reaches every member, each
//!    skipping what it has) and deletes the queues.

use anyhow::Context;
use lapin::{
    BasicProperties, Channel, Connection,
    options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions},
    publisher_confirm::Confirmation,
    types::FieldTable,
};
use platform::topology::{ConsumerSpec, READ_MODEL_MEMBERS, READ_MODELS, Topology};
use sqlx::PgPool;

use crate::ops::queue_depth;

/// The name of this upgrade in `projection.upgrades`.
const UPGRADE: &str = "read-models-group";

/// Whether no projection queue from before the group is left (recorded once found so, so the
/// broker is not asked again: asking for a missing queue makes it close the channel, which the
/// AMQP client logs as an error).
pub async fn done(db: &PgPool) -> sqlx::Result<bool> {
    sqlx::query_scalar("select exists (select 1 from projection.upgrades where name = $1)")
        .bind(UPGRADE)
        .fetch_one(db)
        .await
}

/// Records that no projection queue from before the group is left.
pub async fn record_done(db: &PgPool) -> sqlx::Result<()> {
    sqlx::query("insert into projection.upgrades (name) values ($1) on conflict do nothing")
        .bind(UPGRADE)
        .execute(db)
        .await?;
    Ok(())
}

/// The projections whose own queue still exists.
pub async fn remaining(conn: &Connection, topology: &Topology) -> Vec<&'static ConsumerSpec> {
    let mut out = Vec::new();
    for member in READ_MODEL_MEMBERS {
        if queue_depth(conn, &topology.queue(member)).await.is_some() {
            out.push(member);
        }
    }
    out
}

/// Takes the bindings away from every projection queue that still exists.
pub async fn unbind(conn: &Connection, channel: &Channel, topology: &Topology) -> anyhow::Result<()> {
    for member in remaining(conn, topology).await {
        let queue = topology.queue(member);
        for key in member.bindings {
            channel
                .queue_unbind(&queue, &topology.exchange(), key, FieldTable::default())
                .await
                .with_context(|| format!("unbinding {queue} from {key}"))?;
        }
        tracing::info!(queue = %queue, "projection queue unbound: its projection now consumes through the processing group");
    }
    Ok(())
}

/// Whether `queue` holds no message and has at most `consumers` consumers (a missing queue is
/// drained). Messages a consumer holds unacknowledged are not counted by the broker, hence the
/// consumer check.
pub async fn drained(conn: &Connection, queue: &str, consumers: u32) -> bool {
    let Ok(channel) = conn.create_channel().await else { return false };
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    match channel.queue_declare(queue, passive, FieldTable::default()).await {
        Ok(q) => {
            let _ = channel.close(200, "done").await;
            q.message_count() == 0 && q.consumer_count() <= consumers
        }
        Err(_) => true,
    }
}

/// Retires `member`'s own queues if they and the retry tiers are empty and unconsumed: moves
/// its parked messages to the group's parked queue, then deletes them (quorum queues cannot be
/// deleted "if empty": hence the checks first; anything routed to them since the unbind also
/// reached the group's queue). `true` when the main queue is gone.
pub async fn retire(
    conn: &Connection,
    db: &PgPool,
    topology: &Topology,
    member: &ConsumerSpec,
) -> anyhow::Result<bool> {
    let main = topology.queue(member);
    let retries: Vec<String> = (1..=topology.retry_delays().len()).map(|t| topology.retry_queue(member, t)).collect();
    for queue in std::iter::once(&main).chain(&retries) {
        if !drained(conn, queue, 0).await {
            return Ok(false);
        }
    }
    let channel = conn.create_channel().await?;
    channel.confirm_select(Default::default()).await?;
    let parked = topology.parked_queue(member);
    let target = topology.parked_queue(&READ_MODELS);
    let mut moved = 0;
    if queue_depth(conn, &parked).await.is_some() {
        while let Some(message) = channel.basic_get(&parked, BasicGetOptions { no_ack: false }).await? {
            let props: BasicProperties = message.delivery.properties.clone();
            let confirm = channel
                .basic_publish(
                    "",
                    &target,
                    BasicPublishOptions { mandatory: true, ..Default::default() },
                    &message.delivery.data,
                    props,
                )
                .await?
                .await?;
            if !matches!(confirm, Confirmation::Ack(None)) {
                anyhow::bail!("{target} did not take a parked message: {confirm:?}");
            }
            channel.basic_ack(message.delivery.delivery_tag, BasicAckOptions::default()).await?;
            moved += 1;
        }
        sqlx::query("update projection.parked set consumer = $1 where consumer = $2")
            .bind(READ_MODELS.name)
            .bind(member.name)
            .execute(db)
            .await?;
    }
    // Retry tiers first: they dead-letter into the main queue.
    for queue in retries.iter().chain([&main, &parked]) {
        // One channel per delete: a refused delete closes its channel.
        let ch = conn.create_channel().await?;
        if ch.queue_delete(queue, QueueDeleteOptions::default()).await.is_ok() {
            let _ = ch.close(200, "done").await;
        }
    }
    let _ = channel.close(200, "done").await;
    let gone = queue_depth(conn, &main).await.is_none();
    if gone {
        tracing::info!(queue = %main, parked_moved = moved, "projection queue drained and deleted");
        if remaining(conn, topology).await.is_empty() {
            record_done(db).await?;
        }
    }
    Ok(gone)
}
