//! Feed, AMQP relay: tails the store's change sequence and publishes each change, masked per
//! level, to the feed exchanges, moving its cursor only after the broker confirmed the round.
//!
//! The store is the outbox: a change is published after it is stored, in sequence order, once
//! per masking level a consumer uses. A crash between publishing and saving the cursor
//! publishes that round again; events carry deterministic ids so consumers drop the repeat.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;
use tokio_util::sync::CancellationToken;

use super::{FeedEvent, FeedsConfig, Masking};
use crate::bus::amqp::AmqpBus;
use crate::schema::SchemaRegistry;
use crate::store::Store;

/// The relay's cursor name in the store (feed `*`: every type).
pub const RELAY_CURSOR: &str = "relay:amqp";

/// How long an idle relay waits before looking for new changes.
const IDLE: Duration = Duration::from_millis(250);

pub struct Relay {
    pub store: Arc<dyn Store>,
    pub bus: AmqpBus,
    pub schema: Arc<SchemaRegistry>,
    pub feeds: FeedsConfig,
}

impl Relay {
    /// The masking levels some consumer uses: each change is published once per level.
    fn levels(&self) -> Vec<Masking> {
        let mut levels: Vec<Masking> = self.feeds.consumers.iter().map(|c| c.masking).collect();
        levels.sort();
        levels.dedup();
        levels
    }

    /// Publishes the next changes after the cursor (at most `relay_batch`), waits for the
    /// broker's confirms, then moves the cursor. Returns how many changes it published.
    pub async fn round(&self) -> anyhow::Result<usize> {
        let cursor = self
            .store
            .feed_cursor(RELAY_CURSOR, "*")
            .await?
            .unwrap_or(0);
        let changes = self
            .store
            .changes(None, cursor, self.feeds.relay_batch)
            .await?;
        let Some(last) = changes.last().map(|c| c.seq) else {
            return Ok(0);
        };
        let n = changes.len();
        let levels = self.levels();
        let mut confirms = Vec::with_capacity(n * levels.len());
        for change in changes {
            for level in &levels {
                let event = FeedEvent::from_change(change.clone(), *level, &self.schema);
                let body = serde_json::to_vec(&event)?;
                confirms.push(
                    self.bus
                        .publish_message(
                            &self.feeds.exchange(*level),
                            &event.routing_key(),
                            &event.id,
                            &event.event_type,
                            body,
                        )
                        .await?,
                );
            }
        }
        try_join_all(confirms).await?;
        self.store.save_feed_cursor(RELAY_CURSOR, "*", last).await?;
        tracing::debug!(
            changes = n,
            cursor = last,
            "Relayed stored changes to the feed exchanges."
        );
        Ok(n)
    }

    /// Relays until `cancel` fires. A failed round (broker or store away) is retried after a
    /// pause; nothing is skipped, since the cursor did not move.
    pub async fn run(self, cancel: CancellationToken) {
        if let Err(e) = self.bus.declare_feeds(&self.feeds).await {
            tracing::error!(error = %e, "Could not declare the feed exchanges and queues; the relay retries.");
        }
        tracing::info!(consumers = self.feeds.consumers.len(), levels = ?self.levels(), "Feed relay started.");
        let mut failures = 0u32;
        loop {
            let pause = match self.round().await {
                Ok(0) => {
                    failures = 0;
                    IDLE
                }
                Ok(_) => {
                    failures = 0;
                    Duration::ZERO
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, attempt = failures, "Feed relay round failed; the cursor did not move, retrying.");
                    if failures.is_multiple_of(5) {
                        let _ = self.bus.declare_feeds(&self.feeds).await;
                    }
                    Duration::from_secs(u64::from(failures.min(30)))
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!("Feed relay stopped.");
    }
}
