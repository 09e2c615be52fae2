//! Route (embedded mode): the in-process bus between the connector workers and the store writer.
//!
//! It keeps the AMQP bus's promise without a broker: a publisher's [`Confirm`] resolves only when
//! the consumer settled the delivery (ack after the store committed, or reject after the store
//! writer recorded the failure), so a pull worker that moves its checkpoint after confirms loses
//! nothing even though nothing here is durable. Nothing is durable, so a batch whose delivery is
//! dropped unsettled, or that is still queued when the last subscriber goes away, fails its
//! confirm with [`BusError::Closed`] and the publisher pulls it again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::{Acker, Bus, BusError, Confirm, Delivery, STORE_QUEUE, Subscription};
use crate::record::Batch;

/// The way back to a batch's publisher: resolves its [`Confirm`].
type Settled = oneshot::Sender<Result<(), BusError>>;

/// What travels through the queue: the batch and the way back to its publisher.
struct Envelope {
    batch: Batch,
    settled: Settled,
}

struct Shared {
    /// Behind an async mutex so several subscribers can compete for deliveries.
    rx: tokio::sync::Mutex<mpsc::Receiver<Envelope>>,
    dead_letters: Mutex<Vec<DeadLetter>>,
    subscribers: AtomicUsize,
}

/// The in-process bus: one bounded logical queue, whatever queue name is subscribed.
#[derive(Clone)]
pub struct MemoryBus {
    tx: mpsc::Sender<Envelope>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus")
            .field("queued", &(self.tx.max_capacity() - self.tx.capacity()))
            .field("capacity", &self.tx.max_capacity())
            .finish()
    }
}

impl MemoryBus {
    /// A bus on which `publish` waits once `capacity` batches are queued (at least 1).
    pub fn new(capacity: usize) -> MemoryBus {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        MemoryBus {
            tx,
            shared: Arc::new(Shared {
                rx: tokio::sync::Mutex::new(rx),
                dead_letters: Mutex::new(Vec::new()),
                subscribers: AtomicUsize::new(0),
            }),
        }
    }

    /// Batches the consumer rejected, oldest first (the in-process dead-letter queue).
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.shared
            .dead_letters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Batches waiting for a consumer (not counting delivered, unsettled ones).
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn queue_depths(&self) -> Vec<(String, u64)> {
        vec![(STORE_QUEUE.to_owned(), self.queued() as u64)]
    }

    async fn publish(&self, batch: Batch) -> Result<Confirm, BusError> {
        let (settled, confirm) = oneshot::channel();
        self.tx
            .send(Envelope { batch, settled })
            .await
            .map_err(|_| BusError::Closed)?;
        Ok(Box::pin(async move {
            // The sender is dropped unsettled when the delivery or the whole queue is dropped.
            confirm.await.unwrap_or(Err(BusError::Closed))
        }))
    }

    async fn subscribe(
        &self,
        _queue: &str,
        prefetch: u16,
    ) -> Result<Box<dyn Subscription>, BusError> {
        self.shared.subscribers.fetch_add(1, Ordering::SeqCst);
        let permits = if prefetch == 0 {
            // AMQP's prefetch 0 means "no limit".
            Semaphore::MAX_PERMITS
        } else {
            usize::from(prefetch)
        };
        Ok(Box::new(MemorySubscription {
            shared: self.shared.clone(),
            in_flight: Arc::new(Semaphore::new(permits)),
        }))
    }

    async fn declare(&self) -> Result<(), BusError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn store_queue(&self) -> &str {
        STORE_QUEUE
    }
}

struct MemorySubscription {
    shared: Arc<Shared>,
    /// Bounds unsettled deliveries like AMQP's prefetch does.
    in_flight: Arc<Semaphore>,
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Option<Result<Delivery, BusError>> {
        let permit = self.in_flight.clone().acquire_owned().await.ok()?;
        let envelope = self.shared.rx.lock().await.recv().await?;
        let acker = MemoryAcker {
            dead: DeadLetter {
                batch_id: envelope.batch.id.clone(),
                routing_key: envelope.batch.routing_key.clone(),
                events: envelope.batch.events.len(),
            },
            state: Mutex::new(Some((envelope.settled, permit))),
            shared: self.shared.clone(),
        };
        Some(Ok(Delivery {
            batch: envelope.batch,
            redelivered: false,
            acker: Box::new(acker),
        }))
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        if self.shared.subscribers.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        // The last consumer left: nobody will settle what is queued, so fail those confirms now
        // instead of letting the publishers wait forever. A subscriber that holds the lock right
        // now is being dropped too (count is zero), so skipping the drain then loses nothing.
        if let Ok(mut rx) = self.shared.rx.try_lock() {
            let mut failed = 0usize;
            while let Ok(envelope) = rx.try_recv() {
                let _ = envelope.settled.send(Err(BusError::Closed));
                failed += 1;
            }
            if failed > 0 {
                tracing::warn!(
                    failed,
                    "The last in-process bus subscriber went away; queued batches fail their confirms."
                );
            }
        }
    }
}

/// What the in-process dead-letter list keeps of a rejected batch. Its records are already in
/// the failure store (the store writer records them before rejecting), so the list keeps only
/// what identifies the batch, and deliveries need not carry a second copy of every batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub batch_id: String,
    pub routing_key: String,
    pub events: usize,
}

struct MemoryAcker {
    dead: DeadLetter,
    /// Taken by the first settlement; the permit frees a prefetch slot when it drops.
    state: Mutex<Option<(Settled, OwnedSemaphorePermit)>>,
    shared: Arc<Shared>,
}

impl MemoryAcker {
    fn settle(&self) -> Result<Settled, BusError> {
        let taken = self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match taken {
            Some((settled, _permit)) => Ok(settled),
            None => Err(BusError::Channel(format!(
                "delivery of batch {} was already acknowledged or rejected",
                self.dead.batch_id
            ))),
        }
    }
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn ack(&self) -> Result<(), BusError> {
        // A publisher that stopped waiting is no reason to fail the consumer.
        let _ = self.settle()?.send(Ok(()));
        Ok(())
    }

    async fn reject(&self) -> Result<(), BusError> {
        let settled = self.settle()?;
        self.shared
            .dead_letters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.dead.clone());
        tracing::warn!(batch_id = %self.dead.batch_id, routing_key = %self.dead.routing_key, "The store writer rejected a batch; it is kept in the in-process dead letters.");
        // The store writer recorded the failure before rejecting, so the batch is accounted for.
        let _ = settled.send(Ok(()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::record::{Event, Lineage, Op, RecordType, routing_key};

    fn batch(n: usize) -> Batch {
        let lineage = Lineage {
            connector: "credit-platform".into(),
            stream: "penalties".into(),
            ..Default::default()
        };
        let events = (0..n)
            .map(|i| {
                Event::new(
                    RecordType::Penalty,
                    format!("K{i}"),
                    "620822".into(),
                    Op::Upsert,
                    Some(serde_json::json!({"n": i})),
                    &lineage,
                    None,
                )
            })
            .collect();
        Batch::new(
            routing_key(RecordType::Penalty, "620822", "credit-platform"),
            events,
        )
    }

    #[tokio::test]
    async fn confirm_resolves_only_after_ack() {
        let bus = MemoryBus::new(4);
        let sent = batch(3);
        let mut confirm = bus.publish(sent.clone()).await.unwrap();
        let mut sub = bus.subscribe(bus.store_queue(), 10).await.unwrap();
        let delivery = sub.next().await.unwrap().unwrap();
        assert_eq!(delivery.batch, sent);
        // Delivered but not acked: the confirm must still be pending.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut confirm)
                .await
                .is_err()
        );
        delivery.acker.ack().await.unwrap();
        assert!(confirm.await.is_ok());
        assert!(
            delivery.acker.ack().await.is_err(),
            "a second settlement is an error"
        );
    }

    #[tokio::test]
    async fn publish_waits_when_capacity_is_reached() {
        let bus = MemoryBus::new(2);
        let _c1 = bus.publish(batch(1)).await.unwrap();
        let _c2 = bus.publish(batch(1)).await.unwrap();
        assert_eq!(bus.queued(), 2);
        let blocked = tokio::time::timeout(Duration::from_millis(50), bus.publish(batch(1))).await;
        assert!(blocked.is_err(), "third publish must wait for room");
        let mut sub = bus.subscribe("anything", 0).await.unwrap();
        let d = sub.next().await.unwrap().unwrap();
        // One slot freed: the next publish goes through.
        let third = tokio::time::timeout(Duration::from_millis(500), bus.publish(batch(1))).await;
        assert!(third.is_ok());
        d.acker.ack().await.unwrap();
    }

    #[tokio::test]
    async fn reject_confirms_and_keeps_a_dead_letter() {
        let bus = MemoryBus::new(4);
        let sent = batch(2);
        let confirm = bus.publish(sent.clone()).await.unwrap();
        let mut sub = bus.subscribe(STORE_QUEUE, 1).await.unwrap();
        let d = sub.next().await.unwrap().unwrap();
        d.acker.reject().await.unwrap();
        assert!(confirm.await.is_ok());
        assert_eq!(
            bus.dead_letters(),
            vec![DeadLetter {
                batch_id: sent.id,
                routing_key: sent.routing_key,
                events: 2
            }]
        );
    }

    #[tokio::test]
    async fn dropped_consumer_fails_confirms() {
        let bus = MemoryBus::new(4);
        let c1 = bus.publish(batch(1)).await.unwrap();
        let c2 = bus.publish(batch(1)).await.unwrap();
        let mut sub = bus.subscribe(STORE_QUEUE, 1).await.unwrap();
        let d = sub.next().await.unwrap().unwrap();
        drop(d); // delivered, never settled
        drop(sub); // c2 still queued, no consumer left
        assert!(matches!(c1.await, Err(BusError::Closed)));
        assert!(matches!(c2.await, Err(BusError::Closed)));
    }

    #[tokio::test]
    async fn prefetch_bounds_unsettled_deliveries_and_subscribers_compete() {
        let bus = MemoryBus::new(8);
        let mut confirms = Vec::new();
        for _ in 0..3 {
            confirms.push(bus.publish(batch(1)).await.unwrap());
        }
        let mut a = bus.subscribe(STORE_QUEUE, 1).await.unwrap();
        let mut b = bus.subscribe(STORE_QUEUE, 1).await.unwrap();
        let da = a.next().await.unwrap().unwrap();
        let db = b.next().await.unwrap().unwrap();
        assert_ne!(da.batch.id, db.batch.id);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), a.next())
                .await
                .is_err(),
            "prefetch 1 reached"
        );
        da.acker.ack().await.unwrap();
        let dc = a.next().await.unwrap().unwrap();
        db.acker.ack().await.unwrap();
        dc.acker.ack().await.unwrap();
        for c in confirms {
            assert!(c.await.is_ok());
        }
    }
}
