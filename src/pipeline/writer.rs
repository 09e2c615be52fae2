//! Store writer: route → **store**. Consumes record batches from the bus and applies them to the
//! store in groups, acknowledging only after the transaction committed.
//!
//! Groups several deliveries into one transaction (the store writes fastest in batches of a
//! thousand rows or more). When the store refuses writes the writer keeps the deliveries
//! unacknowledged and retries with backoff, so intake stops upstream instead of dropping records.
//! A group that keeps failing is split; a single batch that still fails is recorded in the
//! failure store event by event (stage `store`) and dead-lettered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

use crate::bus::{Acker, Bus, Delivery};
use crate::record::{Batch, Failure, FieldError, Stage};
use crate::store::Store;

/// How the writer groups deliveries.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub prefetch: u16,
    pub group_events: usize,
    /// When set, the fetch-to-commit latency of every applied event is recorded here.
    pub latency: Option<Arc<LatencyHistogram>>,
}

/// Fetch-to-commit latency in whole milliseconds, bucketed per millisecond up to a minute.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: Vec<AtomicU64>,
}

const LATENCY_BUCKETS: usize = 60_001;

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: (0..LATENCY_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl LatencyHistogram {
    pub fn record(&self, ms: u64) {
        let i = (ms as usize).min(LATENCY_BUCKETS - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The smallest latency (ms) at or below which a share `q` of the samples fall.
    pub fn quantile(&self, q: f64) -> u64 {
        let total: u64 = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum();
        if total == 0 {
            return 0;
        }
        let want = ((total as f64) * q).ceil() as u64;
        let mut seen = 0;
        for (ms, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= want {
                return ms as u64;
            }
        }
        (LATENCY_BUCKETS - 1) as u64
    }
}

/// Runs until `cancel` fires or the bus closes.
pub async fn run(
    bus: Arc<dyn Bus>,
    store: Arc<dyn Store>,
    settings: WriterSettings,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let queue = bus.store_queue().to_owned();
    let mut sub = bus.subscribe(&queue, settings.prefetch).await?;
    tracing::info!(bus = bus.kind(), store = store.kind(), queue = %queue, "Store writer started.");
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => break,
            d = sub.next() => d,
        };
        let Some(first) = first else { break };
        let mut group = Vec::new();
        let mut events = 0usize;
        match first {
            Ok(d) => {
                if d.redelivered {
                    crate::telemetry::bus_redelivery(bus.kind());
                }
                events += d.batch.events.len();
                group.push(d);
            }
            Err(e) => {
                tracing::error!(error = %e, "Store writer received an unusable delivery; it was dead-lettered.");
                continue;
            }
        }
        // Take whatever else is already waiting, without delaying the first delivery.
        while events < settings.group_events && group.len() < settings.prefetch as usize {
            match tokio::time::timeout(Duration::from_millis(2), sub.next()).await {
                Ok(Some(Ok(d))) => {
                    if d.redelivered {
                        crate::telemetry::bus_redelivery(bus.kind());
                    }
                    events += d.batch.events.len();
                    group.push(d);
                }
                Ok(Some(Err(e))) => {
                    tracing::error!(error = %e, "Store writer received an unusable delivery; it was dead-lettered.")
                }
                Ok(None) | Err(_) => break,
            }
        }
        apply_group(store.as_ref(), group, &cancel, settings.latency.as_deref()).await;
    }
    tracing::info!("Store writer stopped.");
    Ok(())
}

async fn apply_group(
    store: &dyn Store,
    group: Vec<Delivery>,
    cancel: &CancellationToken,
    latency: Option<&LatencyHistogram>,
) {
    // Batches and their ack handles apart, so the store reads the batches without a copy.
    let (batches, ackers): (Vec<Batch>, Vec<Box<dyn Acker>>) =
        group.into_iter().map(|d| (d.batch, d.acker)).unzip();
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build();
    let mut failures = 0u32;
    loop {
        let started = std::time::Instant::now();
        match store.apply(&batches).await {
            Ok(outcome) => {
                let mut counts: std::collections::BTreeMap<(&str, &str), u64> = Default::default();
                for ev in batches.iter().flat_map(|b| &b.events) {
                    *counts
                        .entry((ev.recordtype.as_str(), ev.connector.as_str()))
                        .or_default() += 1;
                }
                crate::telemetry::stored(store.kind(), started.elapsed(), counts);
                if let Some(h) = latency {
                    let now = chrono::Utc::now();
                    for ev in batches.iter().flat_map(|b| &b.events) {
                        h.record((now - ev.time).num_milliseconds().max(0) as u64);
                    }
                }
                // Each batch comes from one page: its trace id follows the records here
                // (computed only when debug logs are on).
                tracing::debug!(
                    traces = ?batches
                        .iter()
                        .filter_map(|b| b.events.first())
                        .map(|e| e.lineage().page_trace())
                        .collect::<Vec<_>>(),
                    batches = batches.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    inserted = outcome.inserted,
                    updated = outcome.updated,
                    unchanged = outcome.unchanged,
                    deleted = outcome.deleted,
                    duplicates = outcome.duplicate_batches,
                    "Applied a group of batches."
                );
                for (b, a) in batches.iter().zip(&ackers) {
                    if let Err(e) = a.ack().await {
                        // The broker redelivers it; the store skips it by batch id.
                        tracing::warn!(batch = %b.id, error = %e, "Could not acknowledge an applied batch; it will be redelivered and skipped.");
                    }
                }
                return;
            }
            Err(e) => {
                failures += 1;
                crate::telemetry::store_write_error(store.kind());
                if cancel.is_cancelled() {
                    // Unacked deliveries go back to the queue when the channel closes.
                    return;
                }
                if failures >= 5 && batches.len() > 1 {
                    tracing::warn!(batches = batches.len(), error = %e, "A group keeps failing; applying its batches one by one.");
                    for (batch, acker) in batches.into_iter().zip(ackers) {
                        let single = vec![Delivery {
                            batch,
                            redelivered: false,
                            acker,
                        }];
                        Box::pin(apply_group(store, single, cancel, latency)).await;
                    }
                    return;
                }
                if failures >= 5 && is_data_error(&e) {
                    dead_letter(store, batches, ackers, &e.to_string()).await;
                    return;
                }
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                tracing::error!(store = store.kind(), error = %e, attempt = failures, delay_ms = delay.as_millis() as u64, unacked_batches = batches.len(), "The store refused a write; intake stops (the batches stay unacknowledged on the bus) and retries.");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// A failure that retrying cannot cure (as opposed to an unreachable database, or one that
/// refuses writes for now: read-only, disk full — intake waits for those).
fn is_data_error(e: &crate::store::StoreError) -> bool {
    if e.is_unavailable() {
        return false;
    }
    match e {
        crate::store::StoreError::Query { source, .. } => matches!(
            source,
            sqlx::Error::Database(_) | sqlx::Error::Decode(_) | sqlx::Error::Encode(_)
        ),
        // What SQLite refused (a constraint, a type) or what came back unreadable; the codes
        // that waiting cures were sorted out above.
        crate::store::StoreError::Sqlite { source, .. } => matches!(
            source,
            rusqlite::Error::SqliteFailure(..)
                | rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::InvalidColumnType(..)
                | rusqlite::Error::IntegralValueOutOfRange(..)
        ),
        crate::store::StoreError::Corrupt { .. } => true,
        _ => false,
    }
}

async fn dead_letter(
    store: &dyn Store,
    batches: Vec<Batch>,
    ackers: Vec<Box<dyn Acker>>,
    reason: &str,
) {
    for (batch, acker) in batches.into_iter().zip(ackers) {
        let failures: Vec<Failure> = batch
            .events
            .iter()
            .map(|ev| {
                let raw = serde_json::to_string(ev).unwrap_or_default();
                Failure {
                    id: Failure::make_id(
                        Stage::Store,
                        &ev.connector,
                        &ev.stream,
                        Some(&ev.subject),
                        &raw,
                    ),
                    stage: Stage::Store,
                    connector: ev.connector.clone(),
                    stream: ev.stream.clone(),
                    record_type: Some(ev.recordtype),
                    natural_key: Some(ev.subject.clone()),
                    upstream_id: None,
                    raw,
                    raw_context: None,
                    normalized: ev.data_value(),
                    errors: vec![FieldError {
                        code: "STORE_REJECTED".into(),
                        path: String::new(),
                        schema_path: String::new(),
                        message: reason.to_owned(),
                    }],
                    lineage: ev.lineage(),
                }
            })
            .collect();
        let run = batch
            .events
            .first()
            .map(|e| e.syncrun.clone())
            .unwrap_or_default();
        match store.record_failures(&run, &failures).await {
            Ok(()) => {
                tracing::error!(batch = %batch.id, events = failures.len(), %reason, "The store rejected a batch; its records are in the failure store and the batch is dead-lettered.");
                if let Err(e) = acker.reject().await {
                    tracing::warn!(batch = %batch.id, error = %e, "Could not dead-letter a rejected batch; it will be redelivered.");
                }
            }
            Err(e) => {
                tracing::error!(batch = %batch.id, error = %e, "Could not record the failures of a rejected batch; leaving it unacknowledged.")
            }
        }
    }
}
