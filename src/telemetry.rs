//! Observability across the flow (pull → normalise → route → store → feed): the Prometheus
//! families `GET /metrics` serves, each recorded through one named function so every failure
//! mode counts with the same labels wherever it happens.
//!
//! Counters and histograms are recorded where the work happens (per page, per batch, per
//! request — never per record). Gauges that describe the store (open failures, checkpoint age,
//! deadlines, leases) and the broker (queue depth) are read when `/metrics` is scraped, at most
//! once per [`REFRESH_EVERY`], so a scrape costs a few queries however often it comes.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Scrape-time gauges are read from the store and broker at most this often.
pub const REFRESH_EVERY: Duration = Duration::from_secs(15);

/// Every family, with its help text (the contract `deploy/grafana/xiezhi.json` is written to).
pub const FAMILIES: &[(&str, &str)] = &[
    (
        "xiezhi_records_fetched_total",
        "Upstream records fetched, by connector, stream and record type.",
    ),
    (
        "xiezhi_records_normalised_total",
        "Records that passed normalisation and validation.",
    ),
    (
        "xiezhi_records_routed_total",
        "Records the bus confirmed (durable on the broker, or stored in-process).",
    ),
    (
        "xiezhi_records_stored_total",
        "Records the store writers applied, by record type and source.",
    ),
    (
        "xiezhi_records_failed_total",
        "Records (or pages) recorded in the failure store, by stage.",
    ),
    (
        "xiezhi_upstream_requests_total",
        "Requests to upstream systems by HTTP status (or `error` without one).",
    ),
    (
        "xiezhi_upstream_errors_total",
        "Failed upstream attempts by error code (each retry counts).",
    ),
    (
        "xiezhi_upstream_request_duration_seconds",
        "Upstream request latency, body read and parsed.",
    ),
    (
        "xiezhi_bus_confirms_total",
        "Publisher confirms by outcome (ack, nack).",
    ),
    (
        "xiezhi_bus_redeliveries_total",
        "Bus deliveries that arrived flagged as redelivered.",
    ),
    (
        "xiezhi_bus_queue_depth",
        "Messages waiting in a queue (RabbitMQ: ready messages; in-process: batches).",
    ),
    (
        "xiezhi_store_apply_duration_seconds",
        "Time to apply one group of deliveries to the store.",
    ),
    (
        "xiezhi_store_write_errors_total",
        "Store writes that failed and were retried (intake waits meanwhile).",
    ),
    (
        "xiezhi_checkpoint_age_seconds",
        "Seconds since a stream's checkpoint last moved.",
    ),
    (
        "xiezhi_sync_duration_seconds",
        "Duration of one stream's sync, start to end of stream.",
    ),
    (
        "xiezhi_syncs_total",
        "Stream syncs by outcome (ok, error, stalled, stopped, skipped).",
    ),
    (
        "xiezhi_sync_running",
        "1 while this instance syncs the stream.",
    ),
    (
        "xiezhi_failures_open",
        "Open failures by connector, stage and error code.",
    ),
    (
        "xiezhi_deadlines",
        "Legal deadlines of stored records by rule and status.",
    ),
    (
        "xiezhi_pushes_total",
        "Records pushed to upstreams by outcome (accepted, refused, error).",
    ),
    (
        "xiezhi_leases_held",
        "Stream leases held, by holding instance.",
    ),
    (
        "xiezhi_lease_takeovers_total",
        "Stream leases taken over from an instance that stopped renewing them.",
    ),
    (
        "xiezhi_reconciliation_gaps_total",
        "Sync windows whose counts did not add up (upstream total vs fetched vs stored + failed).",
    ),
    ("xiezhi_build_info", "The running build."),
];

/// The process-wide recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        const SECONDS: &[f64] = &[
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            300.0, 1800.0,
        ];
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
        {
            Ok(b) => b,
            // Only an empty bucket list is refused; the list above is not empty.
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("A metrics recorder was already installed; /metrics shows only what this one records.");
        }
        for (name, help) in FAMILIES {
            // Kind does not matter to the exporter's HELP line; describe as the name says.
            if name.ends_with("_seconds") {
                metrics::describe_histogram!(*name, *help);
            } else if name.ends_with("_total") {
                metrics::describe_counter!(*name, *help);
            } else {
                metrics::describe_gauge!(*name, *help);
            }
        }
        gauge!("xiezhi_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// The exposition text of everything recorded so far.
pub fn render() -> String {
    let h = handle();
    h.run_upkeep();
    h.render()
}

/// Labels of one stream's records.
#[derive(Debug, Clone)]
pub struct StreamLabels {
    pub connector: String,
    pub stream: String,
    pub record_type: &'static str,
}

impl StreamLabels {
    fn labels(&self) -> [(&'static str, String); 3] {
        [
            ("connector", self.connector.clone()),
            ("stream", self.stream.clone()),
            ("type", self.record_type.to_owned()),
        ]
    }

    /// A page arrived with `n` records.
    pub fn fetched(&self, n: u64) {
        counter!("xiezhi_records_fetched_total", &self.labels()).increment(n);
    }

    /// A page normalised: `passed` events go on, `failed` records went to the failure store.
    pub fn normalised(&self, passed: u64, failed: u64) {
        counter!("xiezhi_records_normalised_total", &self.labels()).increment(passed);
        if failed > 0 {
            self.failed("normalize", failed);
        }
    }

    /// `n` records of a page were confirmed by the bus.
    pub fn routed(&self, n: u64) {
        counter!("xiezhi_records_routed_total", &self.labels()).increment(n);
    }

    /// `n` records (or a page, at stage pull) went to the failure store.
    pub fn failed(&self, stage: &'static str, n: u64) {
        let [c, s, t] = self.labels();
        counter!(
            "xiezhi_records_failed_total",
            &[c, s, t, ("stage", stage.to_owned())]
        )
        .increment(n);
    }

    /// A stream's sync ended (`outcome`: ok, error, stalled, stopped, skipped).
    pub fn sync_ended(&self, outcome: &'static str, took: Duration) {
        let labels = [
            ("connector", self.connector.clone()),
            ("stream", self.stream.clone()),
        ];
        if outcome != "skipped" {
            histogram!("xiezhi_sync_duration_seconds", &labels).record(took.as_secs_f64());
        }
        let [c, s] = labels;
        counter!(
            "xiezhi_syncs_total",
            &[c, s, ("outcome", outcome.to_owned())]
        )
        .increment(1);
    }

    /// This instance started (`true`) or stopped syncing the stream.
    pub fn running(&self, on: bool) {
        gauge!(
            "xiezhi_sync_running",
            "connector" => self.connector.clone(),
            "stream" => self.stream.clone()
        )
        .set(if on { 1.0 } else { 0.0 });
    }

    /// The stream's lease was taken over from `from`, which stopped renewing it.
    pub fn lease_taken_over(&self, from: &str) {
        tracing::warn!(connector = %self.connector, stream = %self.stream, from = %from, "Took over a stream lease its holder stopped renewing; the sync resumes from the checkpoint.");
        counter!(
            "xiezhi_lease_takeovers_total",
            "connector" => self.connector.clone(),
            "stream" => self.stream.clone()
        )
        .increment(1);
    }

    /// A sync window's counts did not add up.
    pub fn reconciliation_gap(&self) {
        counter!(
            "xiezhi_reconciliation_gaps_total",
            "connector" => self.connector.clone(),
            "stream" => self.stream.clone()
        )
        .increment(1);
    }
}

/// One upstream request attempt finished after `took`: `status` is the HTTP status when one
/// came back, `error` the attempt's error code when it failed.
pub fn upstream_attempt(
    connector: &str,
    status: Option<u16>,
    error: Option<&'static str>,
    took: Duration,
) {
    let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
    counter!("xiezhi_upstream_requests_total", "connector" => connector.to_owned(), "status" => status)
        .increment(1);
    histogram!("xiezhi_upstream_request_duration_seconds", "connector" => connector.to_owned())
        .record(took.as_secs_f64());
    if let Some(code) = error {
        counter!("xiezhi_upstream_errors_total", "connector" => connector.to_owned(), "code" => code)
            .increment(1);
    }
}

/// The broker answered a publish (`ack` true) or refused it.
pub fn bus_confirm(bus: &'static str, ack: bool) {
    counter!("xiezhi_bus_confirms_total", "bus" => bus, "outcome" => if ack { "ack" } else { "nack" })
        .increment(1);
}

/// A store writer received a delivery flagged redelivered.
pub fn bus_redelivery(bus: &'static str) {
    counter!("xiezhi_bus_redeliveries_total", "bus" => bus).increment(1);
}

/// A store writer applied a group: events per (type, source), and how long the group took.
pub fn stored<'a>(
    store: &'static str,
    took: Duration,
    counts: impl IntoIterator<Item = ((&'a str, &'a str), u64)>,
) {
    histogram!("xiezhi_store_apply_duration_seconds", "store" => store).record(took.as_secs_f64());
    for ((t, source), n) in counts {
        counter!("xiezhi_records_stored_total", "type" => t.to_owned(), "source" => source.to_owned())
            .increment(n);
    }
}

/// A store write failed; the writer keeps the deliveries and retries.
pub fn store_write_error(store: &'static str) {
    counter!("xiezhi_store_write_errors_total", "store" => store).increment(1);
}

/// A push round's outcome for `n` records.
pub fn pushed(connector: &str, push: &str, outcome: &'static str, n: u64) {
    if n == 0 {
        return;
    }
    counter!("xiezhi_pushes_total", "connector" => connector.to_owned(), "push" => push.to_owned(), "outcome" => outcome)
        .increment(n);
}

/// When the scrape-time gauges were last read (so a burst of scrapes reads the store once).
pub fn refresh_due() -> bool {
    static LAST: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_some_and(|t| t.elapsed() < REFRESH_EVERY) {
        return false;
    }
    *last = Some(Instant::now());
    true
}

/// Sets a gauge family from a full reading: series seen before but absent now drop to zero,
/// so a failure code that was fixed does not linger at its last count.
pub fn set_gauges(family: &'static str, rows: Vec<(Vec<(&'static str, String)>, f64)>) {
    use std::collections::{BTreeMap, BTreeSet};
    type Seen = BTreeMap<&'static str, BTreeSet<Vec<(&'static str, String)>>>;
    static SEEN: std::sync::Mutex<Seen> = std::sync::Mutex::new(BTreeMap::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let before = seen.remove(family).unwrap_or_default();
    let mut now = BTreeSet::new();
    for (labels, v) in rows {
        gauge!(family, &labels).set(v);
        now.insert(labels);
    }
    for gone in before.difference(&now) {
        gauge!(family, gone).set(0.0);
    }
    seen.insert(family, now);
}
