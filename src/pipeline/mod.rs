//! The assembled pipeline: pull → normalise → route → store, wired from the configuration.
//!
//! [`Runtime::build`] opens the store and the bus (embedded or RabbitMQ + PostgreSQL), loads and
//! checks every connector, and offers the operations the commands need: run store writers, sync
//! streams once, and reconcile the store against the simulators' ground truth.

pub mod jobs;
pub mod reconcile;
pub mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bus::Bus;
use crate::bus::amqp::AmqpBus;
use crate::bus::memory::MemoryBus;
use crate::config::Config;
use crate::connectors::pull::{LeaseMode, PullContext, StreamPuller, StreamReport};
use crate::connectors::window::Window;
use crate::connectors::{self, Connector};
use crate::schema::SchemaRegistry;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Precedence, Store};

/// Everything wired together.
pub struct Runtime {
    pub config: Config,
    pub schema: Arc<SchemaRegistry>,
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    /// The same bus when it is RabbitMQ: the feed relay publishes through it.
    pub amqp: Option<AmqpBus>,
    /// The working-day calendar and the deadline rules.
    pub calendar: crate::deadlines::WorkingCalendar,
    pub deadline_rules: crate::deadlines::Rules,
    pub connectors: Vec<Connector>,
    /// This instance's name in the lease table.
    pub instance: String,
    /// Fires on shutdown: syncs fetch no further page, pushes start no new round.
    pub stop: CancellationToken,
    /// Syncs and backfills started over the API.
    pub jobs: jobs::SyncJobs,
}

/// Which streams a sync covers.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `None`: every connector.
    pub connector: Option<String>,
    pub stream: Option<String>,
    /// Re-pull this window of update times instead of syncing from the live checkpoint.
    pub window: Option<crate::connectors::window::Window>,
}

/// The outcome of one sync run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncReport {
    pub run_id: String,
    pub streams: Vec<StreamReport>,
    pub published: i64,
    pub ingested: i64,
    pub failed: i64,
    /// Earlier failures resolved because their record now passed and was stored (the upstream
    /// fixed it: an update, or an in-place fix a window re-pull brought).
    pub resolved: i64,
    pub seconds: f64,
}

impl SyncReport {
    /// Every stream ran to its end and the store ingested everything published.
    pub fn complete(&self) -> bool {
        self.streams.iter().all(|s| s.error.is_none()) && self.ingested >= self.published
    }
}

impl Runtime {
    /// Opens the store (running migrations), connects the bus (declaring its topology), and loads
    /// the connectors. Any configuration error stops here, naming file, key and reason.
    pub async fn build(config: Config) -> anyhow::Result<Runtime> {
        let schema = Arc::new(SchemaRegistry::embedded().context("loading the national schema")?);
        let env = config.connector_env();
        let connectors = connectors::load_all(&config.connectors_dir, schema.clone(), &env)?;
        let (calendar, deadline_rules) = config.deadlines.load()?;
        let precedence = Precedence(config.precedence.clone());
        let store: Arc<dyn Store> = match &config.database_url {
            Some(url) => Arc::new(
                PgStore::connect(url, precedence, 8)
                    .await
                    .context("opening the PostgreSQL store")?,
            ),
            None => {
                let path = config.data_dir.join("xiezhi.sqlite");
                Arc::new(
                    SqliteStore::open(&path, precedence)
                        .await
                        .with_context(|| {
                            format!("opening the embedded store {}", path.display())
                        })?,
                )
            }
        };
        store.migrate().await.context("migrating the store")?;
        let amqp = match &config.amqp_url {
            Some(url) => Some(
                AmqpBus::connect(url, config.amqp.clone())
                    .await
                    .context("connecting to RabbitMQ")?,
            ),
            None => None,
        };
        let bus: Arc<dyn Bus> = match &amqp {
            Some(a) => {
                // Again here, not only at start: `bench --target both` builds an embedded
                // runtime first in the same process.
                crate::memory::purge_freed_memory_promptly();
                Arc::new(a.clone())
            }
            // Few batches in memory at once: each holds up to `batch_max_events` parsed records.
            None => {
                crate::memory::keep_freed_memory_longer();
                Arc::new(MemoryBus::new(32))
            }
        };
        bus.declare().await.context("declaring the bus topology")?;
        if let Some(a) = &amqp {
            // Consumers' queues exist before anything is relayed, so they miss nothing.
            a.declare_feeds(&config.feeds)
                .await
                .context("declaring the feed exchanges and consumer queues")?;
        }
        let instance = config.pipeline.instance_name();
        crate::telemetry::handle();
        tracing::info!(
            store = store.kind(),
            bus = bus.kind(),
            connectors = connectors.len(),
            instance = %instance,
            "Pipeline ready."
        );
        Ok(Runtime {
            instance,
            stop: CancellationToken::new(),
            jobs: jobs::SyncJobs::default(),
            config,
            schema,
            store,
            bus,
            amqp,
            calendar,
            deadline_rules,
            connectors,
        })
    }

    /// Runs `work` only while this instance holds lease `name` (another instance holding it
    /// means that one does the work: `None`). The work is dropped if the lease is lost.
    pub async fn exclusively<T>(
        &self,
        name: &str,
        work: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        let ttl = Duration::from_secs(self.config.pipeline.lease_ttl_secs);
        let held = match crate::store::scale::HeldLease::take(
            self.store.clone(),
            name,
            &self.instance,
            ttl,
        )
        .await
        {
            Ok(Ok((held, state))) => {
                if let Some(from) = state.took_over_from {
                    tracing::warn!(lease = %name, from = %from, "Took over work whose holder stopped renewing its lease.");
                }
                held
            }
            Ok(Err(_)) => return None,
            Err(e) => {
                tracing::warn!(lease = %name, error = %e, "Could not take a lease; the work waits for the next round.");
                return None;
            }
        };
        let out = tokio::select! {
            out = work => Some(out),
            _ = held.lost.cancelled() => None,
        };
        held.release().await;
        out
    }

    /// Starts the feed relay when the bus is RabbitMQ and the relay is enabled. One instance
    /// relays at a time (lease `feed-relay`); the others stand by to take over.
    pub fn spawn_relay(self: &Arc<Self>, cancel: &CancellationToken) -> Option<JoinHandle<()>> {
        let bus = self.amqp.clone().filter(|_| self.config.feeds.relay)?;
        let rt = self.clone();
        let cancel = cancel.clone();
        Some(tokio::spawn(async move {
            let standby = Duration::from_secs(rt.config.pipeline.lease_ttl_secs.max(3) / 3);
            while !cancel.is_cancelled() {
                let relay = crate::feeds::relay::Relay {
                    store: rt.store.clone(),
                    bus: bus.clone(),
                    schema: rt.schema.clone(),
                    feeds: rt.config.feeds.clone(),
                };
                let ran = rt
                    .exclusively("feed-relay", relay.run(cancel.clone()))
                    .await;
                if ran.is_none() {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(standby) => {}
                    }
                }
            }
        }))
    }

    /// Starts the configured number of store writers.
    pub fn spawn_writers(&self, cancel: &CancellationToken) -> Vec<JoinHandle<anyhow::Result<()>>> {
        self.spawn_writers_with(cancel, None)
    }

    /// As [`Runtime::spawn_writers`], recording fetch-to-commit latency (the benchmark).
    pub fn spawn_writers_with(
        &self,
        cancel: &CancellationToken,
        latency: Option<Arc<writer::LatencyHistogram>>,
    ) -> Vec<JoinHandle<anyhow::Result<()>>> {
        let p = &self.config.pipeline;
        let settings = writer::WriterSettings {
            prefetch: p.store_prefetch,
            group_events: p.store_group_events,
            latency,
        };
        // The in-process bus has one queue and SQLite one writer: more writers would only queue
        // on its lock.
        let n = if self.bus.kind() == "memory" {
            1
        } else {
            p.store_writers
        };
        (0..n)
            .map(|_| {
                tokio::spawn(writer::run(
                    self.bus.clone(),
                    self.store.clone(),
                    settings.clone(),
                    cancel.clone(),
                ))
            })
            .collect()
    }

    /// The pullers a selection covers.
    pub fn pullers(&self, sel: &Selection) -> anyhow::Result<Vec<StreamPuller>> {
        let mut out = Vec::new();
        for c in &self.connectors {
            if sel.connector.as_ref().is_some_and(|n| *n != c.def.name) {
                continue;
            }
            if let Some(s) = &sel.stream
                && c.def.stream(s).is_none()
            {
                anyhow::bail!(
                    "connector `{}` has no stream `{s}` (it has: {})",
                    c.def.name,
                    c.def
                        .streams
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            for p in c.pullers(sel.stream.as_deref()) {
                out.push(match &sel.window {
                    None => p,
                    Some(w) => p.for_window(w.clone()).map_err(anyhow::Error::msg)?,
                });
            }
        }
        if let Some(n) = &sel.connector
            && out.is_empty()
        {
            anyhow::bail!(
                "no connector named `{n}` (known: {})",
                self.connectors
                    .iter()
                    .map(|c| c.def.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(out)
    }

    /// The pushes a selection covers (`stream` names a push here).
    pub fn pushers(&self, sel: &Selection) -> anyhow::Result<Vec<crate::connectors::push::Pusher>> {
        let mut out = Vec::new();
        for c in &self.connectors {
            if sel.connector.as_ref().is_some_and(|n| *n != c.def.name) {
                continue;
            }
            if let Some(p) = &sel.stream
                && !c.def.pushes.iter().any(|x| x.name == *p)
            {
                anyhow::bail!(
                    "connector `{}` has no push `{p}` (it has: {})",
                    c.def.name,
                    c.def
                        .pushes
                        .iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            out.extend(c.pushers(sel.stream.as_deref()));
        }
        Ok(out)
    }

    /// Runs each push until it caught up with the store (or its upstream stopped it).
    pub async fn push_once(
        &self,
        pushers: &[crate::connectors::push::Pusher],
    ) -> Vec<crate::connectors::push::PushReport> {
        let runs = pushers
            .iter()
            .map(|p| p.run(self.store.as_ref(), &self.schema));
        let reports = futures_util::future::join_all(runs).await;
        for r in &reports {
            crate::telemetry::pushed(&r.connector, &r.push, "accepted", r.accepted);
            crate::telemetry::pushed(&r.connector, &r.push, "refused", r.rejected);
            let unanswered = r.sent.saturating_sub(r.accepted + r.rejected);
            crate::telemetry::pushed(&r.connector, &r.push, "error", unanswered);
        }
        reports
    }

    /// Pushes every `pipeline.push_interval_secs` until `cancel` fires (`xiezhi run`). Each
    /// push keeps its own cadence: a push catching up a large backlog does not hold back the
    /// others' rounds (with one shared tick, one instance ran the six pushes in lock step and
    /// took 2.7 times as long as the syncs to deliver a full sync of every stream).
    pub fn spawn_pushes(self: &Arc<Self>, cancel: &CancellationToken) -> JoinHandle<()> {
        let rt = self.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let pushers = match rt.pushers(&Selection::default()) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "Pushes could not start.");
                    return;
                }
            };
            let every = Duration::from_secs(rt.config.pipeline.push_interval_secs.max(1));
            let loops = pushers.into_iter().map(|p| {
                let rt = rt.clone();
                let cancel = cancel.clone();
                async move {
                    // One instance per push at a time (lease `push:<connector>/<push>`): the
                    // others skip the round.
                    let name = format!("push:{}/{}", p.connector, p.def.name);
                    loop {
                        // A round runs to its end (shutdown waits for it, bounded by the
                        // grace period), so its receipts are kept and its lease given back.
                        rt.exclusively(&name, rt.push_once(std::slice::from_ref(&p)))
                            .await;
                        if cancel.is_cancelled() {
                            break;
                        }
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(every) => {}
                        }
                    }
                }
            });
            futures_util::future::join_all(loops).await;
        })
    }

    /// Syncs the given pullers once and waits until the store writer (here or in another
    /// process) ingested everything the run published. Store writers must be running. A stream
    /// another instance is syncing is waited for (its lease), then synced from where that one
    /// left it.
    pub async fn sync_once(
        &self,
        pullers: &[StreamPuller],
        on_tick: impl Fn(&[StreamPuller]),
    ) -> anyhow::Result<SyncReport> {
        self.sync_run(pullers, LeaseMode::Wait, on_tick).await
    }

    /// As [`Runtime::sync_once`], with the streams' leases taken as `lease` says.
    pub async fn sync_run(
        &self,
        pullers: &[StreamPuller],
        lease: LeaseMode,
        on_tick: impl Fn(&[StreamPuller]),
    ) -> anyhow::Result<SyncReport> {
        let started = std::time::Instant::now();
        let run_id = uuid::Uuid::new_v4().to_string();
        let p = &self.config.pipeline;
        let patience = Duration::from_secs(p.store_retry_secs);
        crate::store::scale::retrying("registering a sync run", patience, || {
            self.store.begin_run(&run_id)
        })
        .await?;
        let ctx = PullContext {
            bus: self.bus.clone(),
            store: self.store.clone(),
            run_id: run_id.clone(),
            batch_max_events: p.batch_max_events,
            pages_in_flight: p.pages_in_flight,
            lease: crate::connectors::pull::LeaseSettings {
                holder: self.instance.clone(),
                ttl: Duration::from_secs(p.lease_ttl_secs),
                mode: lease,
            },
            stop: self.stop.clone(),
            stall_after: Duration::from_secs(p.stall_secs),
            store_patience: patience,
        };
        tracing::info!(run = %run_id, streams = pullers.len(), "Sync run started.");
        // Collected first: a `map` closure inside the stream would make this future unusable in
        // `tokio::spawn` (a known higher-ranked lifetime limitation).
        let futures: Vec<_> = pullers.iter().map(|p| p.sync(&ctx)).collect();
        let syncs = futures_util::stream::iter(futures)
            .buffer_unordered(self.config.pipeline.concurrent_streams)
            .collect::<Vec<_>>();
        tokio::pin!(syncs);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let streams = loop {
            tokio::select! {
                r = &mut syncs => break r,
                _ = tick.tick() => on_tick(pullers),
            }
        };
        let progress = self.wait_ingested(&run_id, || on_tick(pullers)).await?;
        let resolved = self.resolve_answered(&run_id, pullers).await?;
        let report = SyncReport {
            run_id,
            streams,
            published: progress.published,
            ingested: progress.ingested,
            failed: progress.failed,
            resolved,
            seconds: started.elapsed().as_secs_f64(),
        };
        tracing::info!(run = %report.run_id, published = report.published, ingested = report.ingested, failed = report.failed, resolved = report.resolved, seconds = report.seconds, "Sync run finished.");
        Ok(report)
    }

    /// Once a run is stored: the failures that were open when it started and whose record
    /// passed in it (the upstream fixed them) become resolved, with the run in their history.
    async fn resolve_answered(
        &self,
        run_id: &str,
        pullers: &[StreamPuller],
    ) -> anyhow::Result<i64> {
        let mut resolved = 0i64;
        for p in pullers {
            let ids = p.take_passed();
            if ids.is_empty() {
                continue;
            }
            let window = p.window.as_ref().map(Window::label);
            let by = if window.is_some() { "re-pull" } else { "sync" };
            let detail =
                serde_json::json!({"run": run_id, "by": by, "window": window, "stored": true});
            let stream_resolved =
                crate::ops::resolve(self.store.as_ref(), &ids, "sync", detail).await?;
            tracing::info!(connector = %p.connector, stream = %p.def.name, window = ?window, resolved = stream_resolved, "Failures resolved: their records passed and were stored.");
            resolved += stream_resolved;
        }
        Ok(resolved)
    }

    /// Waits until the store writers (here or in another process) ingested everything run
    /// `run_id` published and had confirmed. Writers that make no progress for five minutes fail
    /// the wait loudly rather than hang it: the records are safe on the broker, and the next
    /// run finds them stored.
    pub async fn wait_ingested(
        &self,
        run_id: &str,
        mut on_tick: impl FnMut(),
    ) -> anyhow::Result<crate::store::RunProgress> {
        const INGEST_STALL: Duration = Duration::from_secs(300);
        let patience = Duration::from_secs(self.config.pipeline.store_retry_secs);
        let mut last = (-1i64, std::time::Instant::now());
        loop {
            let p = crate::store::scale::retrying("reading a run's progress", patience, || {
                self.store.run_progress(run_id)
            })
            .await?;
            on_tick();
            if p.ingested >= p.published {
                return Ok(p);
            }
            if p.ingested != last.0 {
                last = (p.ingested, std::time::Instant::now());
            } else if last.1.elapsed() > INGEST_STALL {
                anyhow::bail!(
                    "run {run_id}: the store writers ingested {} of {} published records and made no progress for {}s (is a store writer running against this broker?)",
                    p.ingested,
                    p.published,
                    INGEST_STALL.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The current normaliser of a connector's stream and the stream's definition.
    pub fn stream_normalizer(
        &self,
        connector: &str,
        stream: &str,
    ) -> Option<(
        &crate::connectors::definition::StreamDef,
        Arc<crate::normalize::StreamNormalizer>,
    )> {
        let c = self.connectors.iter().find(|c| c.def.name == connector)?;
        let i = c.def.streams.iter().position(|s| s.name == stream)?;
        Some((&c.def.streams[i], c.normalizers[i].clone()))
    }

    /// Connector name → its base URL (for reconciliation against simulator truth).
    pub fn base_urls(&self) -> BTreeMap<String, String> {
        self.connectors
            .iter()
            .map(|c| (c.def.name.clone(), c.upstream.base_url.clone()))
            .collect()
    }
}
