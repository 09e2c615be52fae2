//! Pull, step three: one incremental sync of one stream, from its checkpoint to the end.
//!
//! Three stages run concurrently so the network, the CPU and the bus overlap:
//! the **fetcher** walks pages ahead; the **processor** normalises each page, publishes its
//! events in batches that share a routing key, and records its failures durably; the
//! **committer** waits, page by page and in order, until the bus confirmed every batch of a page
//! and only then moves the checkpoint past it. A crash anywhere re-fetches from the last
//! checkpoint; the store's idempotent writes make the replay harmless.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::definition::{PaginationDef, StreamDef};
use super::http::{PullError, Upstream};
use super::page::{self, Page};
use super::window::Window;
use crate::bus::{Bus, Confirm};
use crate::normalize::{Outcome, StreamNormalizer};
use crate::record::{Event, Failure, FieldError, Lineage, Stage};
use crate::store::Store;
use crate::store::scale::{HeldLease, retrying};
use crate::telemetry::StreamLabels;

/// Where a stream resumes; stored as JSON in the checkpoint table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// `page` / `keyset`: the update-time filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// `page`: the next page to fetch within the run that set `since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// `page`: the largest update time seen so far in that run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seen: Option<String>,
    /// `cursor`: the continuation token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Live counters of one stream's sync, readable while it runs (progress display).
#[derive(Debug, Default)]
pub struct StreamCounters {
    pub pages: AtomicU64,
    pub fetched: AtomicU64,
    pub published: AtomicU64,
    pub failed: AtomicU64,
    pub deletes: AtomicU64,
    /// Window re-pulls: records fetched but updated outside the window.
    pub outside_window: AtomicU64,
    /// Records that passed normalisation.
    pub normalised: AtomicU64,
}

/// The result of one stream sync.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamReport {
    pub connector: String,
    pub stream: String,
    pub record_type: String,
    pub pages: u64,
    pub fetched: u64,
    pub published: u64,
    pub failed: u64,
    pub deletes: u64,
    /// Window re-pulls: the window, and the records fetched but updated outside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub outside_window: u64,
    /// Why the stream stopped early, when it did.
    pub error: Option<String>,
    /// Set when the sync did not run because another instance holds the stream's lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// `ok`, `error`, `stalled`, `stopped` (shutdown) or `skipped`.
    pub outcome: &'static str,
    /// The reconciliation row of this window, when one was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciliation: Option<crate::store::scale::ReconciliationRow>,
}

/// Everything a stream sync needs.
#[derive(Clone)]
pub struct PullContext {
    pub bus: Arc<dyn Bus>,
    pub store: Arc<dyn Store>,
    pub run_id: String,
    /// Most events in one bus message.
    pub batch_max_events: usize,
    /// Pages fetched ahead of the committer.
    pub pages_in_flight: usize,
    /// The stream's lease across instances: who asks, for how long, and whether to wait for
    /// another holder (a manual sync) or skip (a scheduled one: the holder covers the
    /// occurrence).
    pub lease: LeaseSettings,
    /// Fires on shutdown: no further page is fetched; what was fetched is published,
    /// confirmed and checkpointed.
    pub stop: CancellationToken,
    /// A sync that fetches and commits nothing for this long fails as stalled.
    pub stall_after: Duration,
    /// How long store calls are retried while the database is away.
    pub store_patience: Duration,
}

/// How a sync takes its stream's lease.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// This instance's name in the lease table.
    pub holder: String,
    pub ttl: Duration,
    pub mode: LeaseMode,
}

/// What a sync does about its stream's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseMode {
    /// Take it, waiting while another instance holds it (a manual sync).
    Wait,
    /// Take it, or report the stream skipped when another instance holds it.
    Skip,
    /// The caller holds it already (the scheduler, which checks the occurrence under it).
    Held,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One stream of one connector, ready to sync.
pub struct StreamPuller {
    pub connector: String,
    pub labels: StreamLabels,
    pub def: StreamDef,
    pub upstream: Arc<Upstream>,
    pub normalizer: Arc<StreamNormalizer>,
    pub counters: Arc<StreamCounters>,
    /// Set for a window re-pull ([`StreamPuller::for_window`]); `None` for the live sync.
    pub window: Option<Window>,
    /// Failures open when the sync started whose record has since passed (the upstream fixed
    /// it): resolved once the run is stored.
    passed: std::sync::Mutex<HashSet<String>>,
    /// What the upstream reported on this sync's first page: its total for the filter, and
    /// what this sync should fetch given where it resumed (page streams).
    reported: std::sync::Mutex<(Option<i64>, Option<i64>)>,
}

pub(crate) struct FetchedPage {
    pub(crate) page: Page,
    pub(crate) label: String,
    pub(crate) after: Position,
}

/// Pages normalised concurrently by one stream sync: two keep both cores busy while the store
/// writer waits for the next group.
const NORMALISE_AHEAD: usize = 2;

struct NormalizedPage {
    groups: BTreeMap<String, Vec<Event>>,
    failures: Vec<Failure>,
    after: Position,
    /// Records that had an open failure, in page order: (failure id, passed now).
    answers: Vec<(String, bool)>,
}

struct PendingPage {
    confirms: Vec<Confirm>,
    events: i64,
    after: Position,
}

impl StreamPuller {
    /// A puller for the live incremental sync.
    pub fn new(
        connector: String,
        def: StreamDef,
        upstream: Arc<Upstream>,
        normalizer: Arc<StreamNormalizer>,
    ) -> StreamPuller {
        StreamPuller {
            labels: StreamLabels {
                connector: connector.clone(),
                stream: def.name.clone(),
                record_type: def.record_type.as_str(),
            },
            connector,
            def,
            upstream,
            normalizer,
            counters: Arc::new(StreamCounters::default()),
            window: None,
            passed: Default::default(),
            reported: Default::default(),
        }
    }

    /// Turns this puller into a re-pull of `window`: it starts at the window (or at the start
    /// of a stream without a time filter), keeps only records updated inside it, and uses its
    /// own checkpoint, so the live one does not move. Refused for a stream whose update stamp
    /// is not declared (`updated` and `updated_format`).
    pub fn for_window(mut self, window: Window) -> Result<StreamPuller, String> {
        if self.def.updated.is_none() || self.def.updated_format.is_none() {
            return Err(format!(
                "stream {}/{} declares no `updated` field with its `updated_format`, so a time window of it cannot be re-pulled",
                self.connector, self.def.name
            ));
        }
        self.window = Some(window);
        Ok(self)
    }

    /// The checkpoint this puller resumes from: the stream's own, or the window re-pull's.
    pub fn checkpoint_name(&self) -> String {
        match &self.window {
            None => self.def.name.clone(),
            Some(w) => format!("{}@{}", self.def.name, w.label()),
        }
    }

    /// What the upstream said this sync would fetch (page streams that report a total).
    pub fn expected(&self) -> Option<i64> {
        self.reported.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    /// The failures, open when the sync started, whose record passed since (drained).
    pub fn take_passed(&self) -> Vec<String> {
        let mut set = std::mem::take(&mut *self.passed.lock().unwrap_or_else(|e| e.into_inner()));
        let mut ids: Vec<String> = set.drain().collect();
        ids.sort();
        ids
    }

    /// The stream's open normalise failures: a record among them that passes now answers one.
    async fn open_failures(&self, ctx: &PullContext) -> anyhow::Result<Arc<HashSet<String>>> {
        let mut filter = crate::store::FailureFilter {
            connector: Some(self.connector.clone()),
            stream: Some(self.def.name.clone()),
            stage: Some(crate::record::Stage::Normalize),
            status: crate::ops::replay::REPLAYABLE.to_vec(),
            limit: 10_000,
            ..Default::default()
        };
        let mut open = HashSet::new();
        loop {
            let ids = retrying("reading open failures", ctx.store_patience, || {
                ctx.store.list_failure_ids(&filter)
            })
            .await?;
            let done = ids.len() < filter.limit as usize;
            filter.after_id = ids.last().cloned();
            open.extend(ids);
            if done {
                return Ok(Arc::new(open));
            }
        }
    }

    /// Where a sync without a checkpoint starts: the stream's beginning, or the window's.
    fn first_position(&self) -> Position {
        let (Some(w), Some(f)) = (&self.window, &self.def.updated_format) else {
            return Position::default();
        };
        match self.def.pagination {
            // The `since` filters are exclusive: ask for "after one step before the window".
            PaginationDef::Page { .. } | PaginationDef::Keyset { .. } => Position {
                since: Some(f.write(w.from - f.step())),
                ..Default::default()
            },
            // No time filter upstream: walk from the start and filter here.
            PaginationDef::Cursor { .. } => Position::default(),
        }
    }

    /// Window re-pulls: drops the records updated outside the window; returns whether the
    /// stream has passed the window's end (keyset streams come in update order).
    fn keep_window(&self, page: &mut Page) -> bool {
        let (Some(w), Some(field), Some(f)) =
            (&self.window, &self.def.updated, &self.def.updated_format)
        else {
            return false;
        };
        let stamp = |r: &crate::normalize::RawRecord| {
            crate::normalize::mapping::lookup(&r.value, field).and_then(|v| f.read(&text(v)))
        };
        let past_end = matches!(self.def.pagination, PaginationDef::Keyset { .. })
            && page
                .records
                .last()
                .and_then(stamp)
                .is_some_and(|t| t >= w.to);
        let before = page.records.len();
        // A record whose stamp does not read is kept: re-sending it is harmless, dropping it
        // could lose the fix the re-pull is for.
        page.records
            .retain(|r| stamp(r).is_none_or(|t| w.contains(t)));
        self.counters
            .outside_window
            .fetch_add((before - page.records.len()) as u64, Ordering::Relaxed);
        past_end
    }

    /// Runs one sync from the stored checkpoint to the end of the stream, under the stream's
    /// lease (so one instance at a time syncs it), watched by a heartbeat that fails it with a
    /// reason when it stops making progress. Each window that ran is reconciled and kept.
    pub async fn sync(&self, ctx: &PullContext) -> StreamReport {
        let started_at = chrono::Utc::now();
        let started = Instant::now();
        let lease = match self.take_lease(ctx).await {
            Ok(Some(l)) => l,
            Ok(None) => {
                let mut report = self.report();
                report.outcome = "skipped";
                report.skipped = Some("another instance holds the stream's lease".into());
                self.labels.sync_ended("skipped", started.elapsed());
                return report;
            }
            Err(e) => {
                let mut report = self.report();
                report.outcome = "error";
                report.error = Some(format!("could not take the stream's lease: {e}"));
                self.labels.sync_ended("error", started.elapsed());
                return report;
            }
        };
        self.labels.running(true);
        let lost = lease.as_ref().map(|l| l.lost.clone()).unwrap_or_default();
        let result = tokio::select! {
            r = self.sync_inner(ctx) => r.map_err(|e| ("error", e.to_string())),
            _ = lost.cancelled() => Err(("error", "another instance took the stream's lease over (this one could not renew it); it resumes from the checkpoint".to_owned())),
            reason = self.heartbeat(ctx.stall_after) => Err(("stalled", reason)),
        };
        if let Some(l) = lease {
            l.release().await;
        }
        self.labels.running(false);
        let mut report = self.report();
        (report.outcome, report.error) = match result {
            Ok(true) => ("ok", None),
            Ok(false) => (
                "stopped",
                Some("stopped by shutdown before the end of the stream; it resumes from its checkpoint".into()),
            ),
            Err((outcome, reason)) => (outcome, Some(reason)),
        };
        if let Some(e) = &report.error {
            tracing::error!(connector = %self.connector, stream = %self.def.name, outcome = report.outcome, error = %e, "Stream sync stopped; it resumes from its checkpoint next time.");
        }
        self.labels.sync_ended(report.outcome, started.elapsed());
        report.reconciliation = self
            .reconcile(ctx, &report, started_at)
            .await
            .inspect_err(|e| tracing::warn!(connector = %self.connector, stream = %self.def.name, error = %e, "Could not keep the sync window's reconciliation."))
            .ok();
        report
    }

    /// The report as the counters stand.
    fn report(&self) -> StreamReport {
        let c = &self.counters;
        StreamReport {
            connector: self.connector.clone(),
            stream: self.def.name.clone(),
            record_type: self.def.record_type.to_string(),
            pages: c.pages.load(Ordering::Relaxed),
            fetched: c.fetched.load(Ordering::Relaxed),
            published: c.published.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
            window: self.window.as_ref().map(Window::label),
            outside_window: c.outside_window.load(Ordering::Relaxed),
            error: None,
            skipped: None,
            outcome: "ok",
            reconciliation: None,
        }
    }

    /// The lease this sync runs under: `pull:<connector>/<checkpoint>`, so a backfill window
    /// (its own checkpoint) never waits for the live sync, nor the live sync for it.
    pub fn lease_name(&self) -> String {
        format!("pull:{}/{}", self.connector, self.checkpoint_name())
    }

    /// Takes the stream's lease as `ctx` says: `None` when the stream is skipped, `Some(None)`
    /// when the caller holds it already.
    async fn take_lease(&self, ctx: &PullContext) -> anyhow::Result<Option<Option<HeldLease>>> {
        let l = &ctx.lease;
        if l.mode == LeaseMode::Held {
            return Ok(Some(None));
        }
        let name = self.lease_name();
        let mut told = false;
        loop {
            let taken = retrying("taking a stream lease", ctx.store_patience, || {
                HeldLease::take(ctx.store.clone(), &name, &l.holder, l.ttl)
            })
            .await?;
            match taken {
                Ok((held, state)) => {
                    if let Some(from) = &state.took_over_from {
                        self.labels.lease_taken_over(from);
                    }
                    return Ok(Some(Some(held)));
                }
                Err(state) if l.mode == LeaseMode::Skip => {
                    tracing::debug!(lease = %name, holder = %state.holder, "Stream sync skipped: another instance holds its lease.");
                    return Ok(None);
                }
                Err(state) => {
                    if !told {
                        tracing::info!(lease = %name, holder = %state.holder, "Waiting for another instance to finish syncing this stream.");
                        told = true;
                    }
                    tokio::select! {
                        _ = ctx.stop.cancelled() => return Ok(None),
                        _ = tokio::time::sleep((l.ttl / 6).clamp(Duration::from_millis(200), Duration::from_secs(5))) => {}
                    }
                }
            }
        }
    }

    /// Resolves (with the reason) once the sync fetched, published and failed nothing for
    /// `stall_after`; never otherwise.
    async fn heartbeat(&self, stall_after: Duration) -> String {
        let c = &self.counters;
        let progress = || {
            c.pages.load(Ordering::Relaxed)
                + c.published.load(Ordering::Relaxed)
                + c.failed.load(Ordering::Relaxed)
        };
        let tick = (stall_after / 10).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut last = (progress(), Instant::now());
        loop {
            tokio::time::sleep(tick).await;
            let now = progress();
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() >= stall_after {
                return format!(
                    "stalled: no page fetched, published or failed for {}s (heartbeat); it resumes from its checkpoint",
                    stall_after.as_secs()
                );
            }
        }
    }

    /// Keeps the window's counts, checked against each other and the upstream's total; a gap
    /// is logged, counted and shown to operators.
    async fn reconcile(
        &self,
        ctx: &PullContext,
        report: &StreamReport,
        started_at: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<crate::store::scale::ReconciliationRow> {
        let (upstream_total, expected) = *self.reported.lock().unwrap_or_else(|e| e.into_inner());
        let mut row = crate::store::scale::ReconciliationRow {
            run_id: ctx.run_id.clone(),
            connector: self.connector.clone(),
            stream: self.def.name.clone(),
            record_type: self.def.record_type.to_string(),
            holder: ctx.lease.holder.clone(),
            started_at,
            finished_at: chrono::Utc::now(),
            upstream_total,
            expected,
            fetched: report.fetched as i64,
            normalised: self.counters.normalised.load(Ordering::Relaxed) as i64,
            routed: report.published as i64,
            failed: report.failed as i64,
            outside_window: report.outside_window as i64,
            outcome: report.outcome.to_owned(),
            gaps: String::new(),
            id: 0,
        };
        let gaps = row.find_gaps();
        if !gaps.is_empty() {
            row.gaps = gaps.join("; ");
            tracing::warn!(connector = %self.connector, stream = %self.def.name, run = %ctx.run_id, gaps = %row.gaps, "A sync window does not reconcile.");
            self.labels.reconciliation_gap();
        }
        row.id = retrying("keeping a reconciliation", ctx.store_patience, || {
            ctx.store.record_reconciliation(&row)
        })
        .await?;
        Ok(row)
    }

    /// Syncs to the end of the stream (`true`) or until shutdown (`false`).
    async fn sync_inner(&self, ctx: &PullContext) -> anyhow::Result<bool> {
        let checkpoint = self.checkpoint_name();
        let saved = retrying("reading a checkpoint", ctx.store_patience, || {
            ctx.store.checkpoint(&self.connector, &checkpoint)
        })
        .await?;
        let start = match saved {
            Some(text) => serde_json::from_str::<Position>(&text).map_err(|e| {
                anyhow::anyhow!(
                    "checkpoint {}/{checkpoint} is unreadable ({e}): {text}",
                    self.connector,
                )
            })?,
            None => self.first_position(),
        };
        let open = self.open_failures(ctx).await?;
        tracing::info!(connector = %self.connector, stream = %self.def.name, checkpoint = %checkpoint, run = %ctx.run_id, position = ?start, open_failures = open.len(), "Stream sync started.");

        let (page_tx, mut page_rx) = mpsc::channel::<FetchedPage>(ctx.pages_in_flight.max(1));
        let (commit_tx, mut commit_rx) =
            mpsc::channel::<PendingPage>(ctx.pages_in_flight.max(1) * 2);

        let fetcher = async {
            let r = self.fetch_all(start, &page_tx, &ctx.stop).await;
            drop(page_tx);
            r
        };
        let processor = async {
            // Pages are normalised NORMALISE_AHEAD at a time on the normalising threads (it is CPU
            // work), and published strictly in page order.
            let mut normalized = futures_util::stream::poll_fn(|cx| page_rx.poll_recv(cx))
                .map(|fp| self.normalize_page(ctx, fp, open.clone()))
                .buffered(NORMALISE_AHEAD);
            while let Some(page) = normalized.next().await {
                let pending = self.publish_page(ctx, page?).await?;
                if commit_tx.send(pending).await.is_err() {
                    anyhow::bail!("the committer stopped");
                }
            }
            drop(commit_tx);
            Ok::<(), anyhow::Error>(())
        };
        let committer = async {
            let mut ordinal = 0u64;
            while let Some(p) = commit_rx.recv().await {
                try_join_all(p.confirms).await?;
                ordinal += 1;
                let cp = serde_json::to_string(&p.after)?;
                let commit_id = format!("{}/{ordinal}", ctx.run_id);
                retrying("committing a page", ctx.store_patience, || {
                    ctx.store.commit_page(
                        &ctx.run_id,
                        &self.connector,
                        &checkpoint,
                        &cp,
                        &commit_id,
                        p.events,
                    )
                })
                .await?;
                self.counters
                    .published
                    .fetch_add(p.events as u64, Ordering::Relaxed);
                self.labels.routed(p.events as u64);
            }
            Ok::<(), anyhow::Error>(())
        };
        let (f, p, c) = tokio::join!(fetcher, processor, committer);
        // The committer's error is the most precise (it knows what was not confirmed); then the
        // processor's; a fetch error was already recorded as a pull failure.
        c?;
        p?;
        let reached_end = match f {
            Ok(end) => end,
            Err(e) => {
                self.record_pull_failure(ctx, &e).await?;
                return Err(e.into());
            }
        };
        if !reached_end {
            tracing::info!(connector = %self.connector, stream = %self.def.name, checkpoint = %checkpoint, fetched = self.counters.fetched.load(Ordering::Relaxed), "Stream sync stopped for shutdown; what it fetched is published and checkpointed.");
            return Ok(false);
        }
        if self.window.is_some() {
            // A finished window leaves nothing to resume; running it again re-pulls it whole.
            retrying("deleting a window checkpoint", ctx.store_patience, || {
                ctx.store.delete_checkpoint(&self.connector, &checkpoint)
            })
            .await?;
        } else {
            self.resolve_pull_failures(ctx).await?;
        }
        tracing::info!(connector = %self.connector, stream = %self.def.name, checkpoint = %checkpoint, fetched = self.counters.fetched.load(Ordering::Relaxed), outside_window = self.counters.outside_window.load(Ordering::Relaxed), failed = self.counters.failed.load(Ordering::Relaxed), "Stream sync finished.");
        Ok(true)
    }

    async fn record_pull_failure(&self, ctx: &PullContext, e: &PullError) -> anyhow::Result<()> {
        let raw = e.to_string();
        let failure = Failure {
            id: Failure::make_id(Stage::Pull, &self.connector, &self.def.name, None, &raw),
            stage: Stage::Pull,
            connector: self.connector.clone(),
            stream: self.def.name.clone(),
            record_type: Some(self.def.record_type),
            natural_key: None,
            upstream_id: None,
            raw: raw.clone(),
            raw_context: None,
            normalized: None,
            errors: vec![FieldError {
                code: e.code().into(),
                path: String::new(),
                schema_path: String::new(),
                message: raw,
            }],
            lineage: Lineage {
                connector: self.connector.clone(),
                stream: self.def.name.clone(),
                sync_run: ctx.run_id.clone(),
                page: String::new(),
                index: 0,
            },
        };
        let failures = [failure];
        retrying("recording a pull failure", ctx.store_patience, || {
            ctx.store.record_failures(&ctx.run_id, &failures)
        })
        .await?;
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        self.labels.failed("pull", 1);
        Ok(())
    }

    /// A live sync that reached the end fetched every page an earlier one could not: the
    /// checkpoint never moves past a page that failed, so this run started at or before it.
    async fn resolve_pull_failures(&self, ctx: &PullContext) -> anyhow::Result<()> {
        let filter = crate::store::FailureFilter {
            connector: Some(self.connector.clone()),
            stream: Some(self.def.name.clone()),
            stage: Some(Stage::Pull),
            status: crate::ops::replay::REPLAYABLE.to_vec(),
            limit: 10_000,
            ..Default::default()
        };
        let ids = ctx.store.list_failure_ids(&filter).await?;
        if ids.is_empty() {
            return Ok(());
        }
        let detail = serde_json::json!({"run": ctx.run_id, "by": "sync", "reason": "the stream synced to its end past the page that failed"});
        let moved = crate::ops::resolve(ctx.store.as_ref(), &ids, "sync", detail).await?;
        tracing::info!(connector = %self.connector, stream = %self.def.name, resolved = moved, "Pull failures resolved: the stream synced past them.");
        Ok(())
    }

    /// Walks the pages from `pos`, sending each with the position after it. Returns whether it
    /// reached the end of the stream (`false`: `stop` fired between two pages).
    pub(crate) async fn fetch_all(
        &self,
        mut pos: Position,
        out: &mpsc::Sender<FetchedPage>,
        stop: &CancellationToken,
    ) -> Result<bool, PullError> {
        let s = &self.def;
        let mut first = true;
        loop {
            if stop.is_cancelled() {
                return Ok(false);
            }
            let mut query: Vec<(String, String)> = s
                .query
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut meta: Vec<&str> = Vec::new();
            let label = match &s.pagination {
                PaginationDef::Page {
                    page_param,
                    size_param,
                    size,
                    first_page,
                    since_param,
                    initial_since,
                    ..
                } => {
                    let since = pos.since.clone().unwrap_or_else(|| initial_since.clone());
                    let page = pos.page.unwrap_or(*first_page);
                    query.push((since_param.clone(), since.clone()));
                    query.push((page_param.clone(), page.to_string()));
                    query.push((size_param.clone(), size.to_string()));
                    format!("{since_param}={since}&{page_param}={page}")
                }
                PaginationDef::Cursor {
                    cursor_param,
                    next_cursor,
                    has_more,
                    limit_param,
                    limit,
                } => {
                    if let Some(c) = &pos.cursor {
                        query.push((cursor_param.clone(), c.clone()));
                    }
                    if let (Some(p), Some(l)) = (limit_param, limit) {
                        query.push((p.clone(), l.to_string()));
                    }
                    meta.push(next_cursor);
                    if let Some(h) = has_more {
                        meta.push(h);
                    }
                    format!("{cursor_param}={}", pos.cursor.as_deref().unwrap_or(""))
                }
                PaginationDef::Keyset {
                    since_param,
                    initial_since,
                    limit_param,
                    limit,
                    ..
                } => {
                    let since = pos.since.clone().unwrap_or_else(|| initial_since.clone());
                    query.push((since_param.clone(), since.clone()));
                    query.push((limit_param.clone(), limit.to_string()));
                    format!("{since_param}={since}")
                }
            };
            if let Some(t) = &s.total {
                meta.push(t);
            }
            let format = s.format;
            let records_path = s.records.clone();
            let mut page = self
                .upstream
                .get_parsed(&s.path, &query, s.encoding.as_deref(), |body| {
                    page::parse(format, &body.text, &records_path, &meta)
                })
                .await?;
            let n = page.records.len();
            self.counters.pages.fetch_add(1, Ordering::Relaxed);
            self.counters.fetched.fetch_add(n as u64, Ordering::Relaxed);
            self.labels.fetched(n as u64);
            if first {
                first = false;
                self.note_total(&pos, &page);
            }

            let (after, done) =
                self.advance(&pos, &page)
                    .map_err(|reason| PullError::Exhausted {
                        connector: self.connector.clone(),
                        method: "GET",
                        url: format!("{}{}", self.upstream.base_url, s.path),
                        attempts: 1,
                        reason,
                        code: "PULL_BAD_PAGE",
                    })?;
            let done = self.keep_window(&mut page) || done;
            tracing::debug!(connector = %self.connector, stream = %s.name, page = %label, records = n, "Fetched a page.");
            if out
                .send(FetchedPage {
                    page,
                    label,
                    after: after.clone(),
                })
                .await
                .is_err()
            {
                // The processor stopped; its error is reported by the caller.
                return Ok(true);
            }
            if done {
                return Ok(true);
            }
            pos = after;
        }
    }

    /// Notes the total the upstream reports on the sync's first page, and (page streams) how
    /// many records the sync should fetch from where it resumed.
    fn note_total(&self, pos: &Position, page: &Page) {
        let Some(path) = &self.def.total else { return };
        let total = page
            .meta
            .get(path.as_str())
            .cloned()
            .flatten()
            .and_then(|t| t.trim().parse::<i64>().ok());
        let expected = match (&self.def.pagination, total) {
            (
                PaginationDef::Page {
                    size, first_page, ..
                },
                Some(t),
            ) => {
                let skipped = pos.page.unwrap_or(*first_page).saturating_sub(*first_page);
                Some((t - i64::from(skipped) * i64::from(*size)).max(0))
            }
            _ => None,
        };
        *self.reported.lock().unwrap_or_else(|e| e.into_inner()) = (total, expected);
    }

    /// The position after `page`, and whether the stream is exhausted.
    fn advance(&self, pos: &Position, page: &Page) -> Result<(Position, bool), String> {
        let n = page.records.len();
        match &self.def.pagination {
            PaginationDef::Page {
                size,
                first_page,
                since_field,
                initial_since,
                ..
            } => {
                let since = pos.since.clone().unwrap_or_else(|| initial_since.clone());
                let mut max_seen = pos.max_seen.clone();
                for r in &page.records {
                    if let Some(v) = crate::normalize::mapping::lookup(&r.value, since_field) {
                        let v = text(v);
                        if max_seen.as_ref().is_none_or(|m| later(&v, m)) {
                            max_seen = Some(v);
                        }
                    }
                }
                if n < *size as usize {
                    // Run complete: the next run filters from the newest update seen.
                    Ok((
                        Position {
                            since: Some(max_seen.unwrap_or(since)),
                            ..Default::default()
                        },
                        true,
                    ))
                } else {
                    let next = pos.page.unwrap_or(*first_page) + 1;
                    Ok((
                        Position {
                            since: Some(since),
                            page: Some(next),
                            max_seen,
                            cursor: None,
                        },
                        false,
                    ))
                }
            }
            PaginationDef::Cursor {
                next_cursor,
                has_more,
                ..
            } => {
                let next = page.meta.get(next_cursor.as_str()).cloned().flatten();
                let more = has_more
                    .as_ref()
                    .and_then(|h| page.meta.get(h.as_str()).cloned().flatten())
                    .map(|v| v == "true" || v == "1");
                let done = n == 0 || more == Some(false);
                match next {
                    Some(c) => Ok((
                        Position {
                            cursor: Some(c),
                            ..Default::default()
                        },
                        done,
                    )),
                    // No token: keep the old one (re-reading the last page is harmless).
                    None if done => Ok((pos.clone(), true)),
                    None => Err(format!(
                        "the response has no `{next_cursor}` although more pages follow"
                    )),
                }
            }
            PaginationDef::Keyset {
                since_field, limit, ..
            } => {
                let last = page
                    .records
                    .last()
                    .and_then(|r| crate::normalize::mapping::lookup(&r.value, since_field))
                    .map(text);
                match last {
                    Some(v) => Ok((
                        Position {
                            since: Some(v),
                            ..Default::default()
                        },
                        n < *limit as usize,
                    )),
                    None if n == 0 => Ok((pos.clone(), true)),
                    None => Err(format!(
                        "the last record has no `{since_field}` to continue from"
                    )),
                }
            }
        }
    }

    /// Normalises a page on the normalising threads ([`crate::normalize::pool`]).
    async fn normalize_page(
        &self,
        ctx: &PullContext,
        fp: FetchedPage,
        open: Arc<HashSet<String>>,
    ) -> anyhow::Result<NormalizedPage> {
        let lineage_base = Lineage {
            connector: self.connector.clone(),
            stream: self.def.name.clone(),
            sync_run: ctx.run_id.clone(),
            page: fp.label,
            index: 0,
        };
        tracing::debug!(trace = %lineage_base.page_trace(), records = fp.page.records.len(), "Normalising a page.");
        // Normalising a page is CPU work of a few milliseconds; keep it off the runtime.
        let normalizer = self.normalizer.clone();
        let records = fp.page.records;
        let (groups, failures, answers) = crate::normalize::pool::run(move || {
            let mut groups: BTreeMap<String, Vec<Event>> = BTreeMap::new();
            let mut failures = Vec::new();
            let mut answers = Vec::new();
            let mut lineage = lineage_base;
            for (i, rec) in records.into_iter().enumerate() {
                lineage.index = i as u32;
                // An upstream's fix arrives as a record that passes where it failed before:
                // note which open failure it answers (the id its failure would have).
                let answers_id = (!open.is_empty())
                    .then(|| normalizer.failure_id(&rec, &lineage))
                    .filter(|id| open.contains(id));
                match normalizer.normalize(rec, &lineage) {
                    Outcome::Event(ev) => {
                        answers.extend(answers_id.map(|id| (id, true)));
                        groups.entry(ev.routing_key()).or_default().push(*ev)
                    }
                    Outcome::Failure(f) => {
                        answers.extend(answers_id.map(|id| (id, false)));
                        failures.push(*f)
                    }
                }
            }
            (groups, failures, answers)
        })
        .await?;
        Ok(NormalizedPage {
            groups,
            failures,
            after: fp.after,
            answers,
        })
    }

    /// Records a normalised page's failures and publishes its events.
    async fn publish_page(
        &self,
        ctx: &PullContext,
        page: NormalizedPage,
    ) -> anyhow::Result<PendingPage> {
        let NormalizedPage {
            groups,
            failures,
            after,
            answers,
        } = page;
        if !answers.is_empty() {
            // In page order, so a record that passes and later fails again stays open.
            let mut passed = self.passed.lock().unwrap_or_else(|e| e.into_inner());
            for (id, ok) in answers {
                if ok {
                    passed.insert(id);
                } else {
                    passed.remove(&id);
                }
            }
        }
        if !failures.is_empty() {
            retrying("recording failures", ctx.store_patience, || {
                ctx.store.record_failures(&ctx.run_id, &failures)
            })
            .await?;
            self.counters
                .failed
                .fetch_add(failures.len() as u64, Ordering::Relaxed);
        }
        let passed: usize = groups.values().map(Vec::len).sum();
        self.counters
            .normalised
            .fetch_add(passed as u64, Ordering::Relaxed);
        self.labels.normalised(passed as u64, failures.len() as u64);
        let deletes = groups
            .values()
            .flatten()
            .filter(|e| e.op == crate::record::Op::Delete)
            .count();
        self.counters
            .deletes
            .fetch_add(deletes as u64, Ordering::Relaxed);
        let (confirms, events) =
            crate::bus::publish_grouped(ctx.bus.as_ref(), groups, ctx.batch_max_events).await?;
        Ok(PendingPage {
            confirms,
            events,
            after,
        })
    }
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    }
}

/// Orders update stamps: numerically when both are numbers (epoch times), else as text (fixed
/// formats such as `YYYY-MM-DD HH:mm:ss` sort correctly as text).
fn later(a: &str, b: &str) -> bool {
    match (a.parse::<i128>(), b.parse::<i128>()) {
        (Ok(x), Ok(y)) => x > y,
        _ => a > b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_stamps_order_numerically_or_as_text() {
        assert!(later("1000", "999"));
        assert!(later("2025-01-02 00:00:00", "2025-01-01 23:59:59"));
        assert!(!later("20250101", "20250102"));
    }

    #[test]
    fn positions_round_trip_compactly() {
        let p = Position {
            cursor: Some("abc".into()),
            ..Default::default()
        };
        let s = serde_json::to_string(&p).unwrap();
        assert_eq!(s, r#"{"cursor":"abc"}"#);
        assert_eq!(serde_json::from_str::<Position>(&s).unwrap(), p);
    }
}
