//! Route: carries normalised record batches from the connector workers to the store writer.
//!
//! One trait, two implementations: [`amqp::AmqpBus`] (RabbitMQ via lapin — durable topic
//! exchange, persistent messages, publisher confirms, manual acks, dead-letter exchange) and
//! [`memory::MemoryBus`] (in-process, the embedded default). Both give the same guarantee to the
//! publisher: a [`Confirm`] resolves `Ok` only once the batch is durable — on RabbitMQ when the
//! broker confirmed it, in-process when the consumer acked it (the store has committed).

pub mod amqp;
pub mod memory;

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;

use crate::record::Batch;

/// Name of the topic exchange records are published to.
pub const RECORDS_EXCHANGE: &str = "xiezhi.records";
/// Dead-letter exchange for batches the store writer rejects.
pub const DEAD_LETTER_EXCHANGE: &str = "xiezhi.records.dlx";
/// The store writer's queue, bound with `#`.
pub const STORE_QUEUE: &str = "xiezhi.store";
/// Where dead-lettered store batches wait for an operator.
pub const STORE_DEAD_QUEUE: &str = "xiezhi.store.dead";

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to the broker at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("the broker refused batch {batch_id} (negative confirm)")]
    Nacked { batch_id: String },
    #[error("publishing batch {batch_id} was not confirmed within {seconds}s: {reason}")]
    Unconfirmed {
        batch_id: String,
        seconds: u64,
        reason: String,
    },
    #[error("broker channel error: {0}")]
    Channel(String),
    #[error("message {message_id} has a body that is not a CloudEvents batch: {reason}")]
    BadBody { message_id: String, reason: String },
    #[error("the bus is closed")]
    Closed,
}

/// Resolves once the batch is durable (see the module doc).
pub type Confirm = Pin<Box<dyn Future<Output = Result<(), BusError>> + Send>>;

/// Publishes events grouped by routing key as CloudEvents batches of at most `max_events`;
/// returns the confirms to await and how many events they cover. Pulls and replays send
/// through here, so both batch the same way.
pub async fn publish_grouped(
    bus: &dyn Bus,
    groups: std::collections::BTreeMap<String, Vec<crate::record::Event>>,
    max_events: usize,
) -> Result<(Vec<Confirm>, i64), BusError> {
    let max = max_events.max(1);
    let mut confirms = Vec::new();
    let mut events = 0i64;
    for (key, mut evs) in groups {
        while !evs.is_empty() {
            let rest = evs.split_off(evs.len().min(max));
            events += evs.len() as i64;
            confirms.push(bus.publish(Batch::new(key.clone(), evs)).await?);
            evs = rest;
        }
    }
    Ok((confirms, events))
}

#[async_trait]
pub trait Bus: Send + Sync {
    /// Hands a batch to the bus. Returns once the batch is handed over (back-pressure applies
    /// here); the returned [`Confirm`] resolves when it is durable. Implementations retry through
    /// connection loss themselves, keeping the batch id, so a `Confirm` error is final.
    async fn publish(&self, batch: Batch) -> Result<Confirm, BusError>;

    /// Starts consuming `queue` with at most `prefetch` unacknowledged messages in flight.
    async fn subscribe(
        &self,
        queue: &str,
        prefetch: u16,
    ) -> Result<Box<dyn Subscription>, BusError>;

    /// Declares the topology (exchanges, queues, bindings, dead-lettering). Idempotent.
    async fn declare(&self) -> Result<(), BusError>;

    /// A short name for logs and metrics: `amqp` or `memory`.
    fn kind(&self) -> &'static str;

    /// The queue the store writer consumes (what it passes to [`Bus::subscribe`]).
    fn store_queue(&self) -> &str;

    /// Whether the bus takes batches now (readiness): the broker connection is up.
    fn connected(&self) -> bool {
        true
    }

    /// Messages waiting, per queue the pipeline owns (metrics); empty when unknown.
    async fn queue_depths(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
}

#[async_trait]
pub trait Subscription: Send {
    /// The next delivery; `None` once the bus is closed for good. Implementations reconnect
    /// through connection loss themselves (unacked deliveries come back redelivered).
    async fn next(&mut self) -> Option<Result<Delivery, BusError>>;
}

/// Acknowledgement handle of one delivery.
#[async_trait]
pub trait Acker: Send + Sync {
    async fn ack(&self) -> Result<(), BusError>;
    /// Rejects the delivery without requeueing: it goes to the dead-letter exchange.
    async fn reject(&self) -> Result<(), BusError>;
}

/// A batch received from the bus.
pub struct Delivery {
    pub batch: Batch,
    pub redelivered: bool,
    pub acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("batch_id", &self.batch.id)
            .field("routing_key", &self.batch.routing_key)
            .field("events", &self.batch.events.len())
            .field("redelivered", &self.redelivered)
            .finish()
    }
}
