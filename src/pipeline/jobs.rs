//! Manual syncs and backfills started over the API (`POST /v1/syncs`), each a job of its own
//! in this process: pull → normalise → route → store like any sync, with progress and, where the
//! upstream reports totals, an ETA. A backfill (a window re-pull) has its own checkpoint and
//! lease, so it never blocks the live incremental sync of the same stream.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Runtime, Selection};
use crate::connectors::pull::StreamPuller;

/// The jobs this process started, newest last (finished ones are kept for inspection).
#[derive(Default)]
pub struct SyncJobs {
    jobs: Mutex<BTreeMap<String, Arc<Job>>>,
}

struct Job {
    id: String,
    selection: String,
    window: Option<String>,
    started_at: DateTime<Utc>,
    started: std::time::Instant,
    pullers: Vec<StreamPuller>,
    end: Mutex<Option<JobEnd>>,
}

/// When a job ended and how: its report, or why it could not run.
type JobEnd = (DateTime<Utc>, Result<super::SyncReport, String>);

/// What `GET /v1/syncs/{id}` shows.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: String,
    pub selection: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// `running`, `finished` (every stream to its end, everything stored) or `failed`.
    pub state: &'static str,
    pub started_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub streams: Vec<StreamProgress>,
    pub fetched: u64,
    pub published: u64,
    pub failed: u64,
    pub records_per_second: f64,
    /// Seconds left, from the totals the upstreams reported (`None` when one did not).
    pub eta_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<super::SyncReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamProgress {
    pub connector: String,
    pub stream: String,
    pub fetched: u64,
    pub published: u64,
    pub failed: u64,
    /// What the upstream said this sync would fetch, when it says.
    pub expected: Option<i64>,
}

impl SyncJobs {
    /// Starts a sync of `sel` in the background; returns its id. Store writers must run in
    /// this process or another (the job waits until its records are stored).
    pub fn start(&self, rt: Arc<Runtime>, sel: Selection) -> anyhow::Result<String> {
        let pullers = rt.pullers(&sel)?;
        let id = uuid::Uuid::now_v7().to_string();
        let job = Arc::new(Job {
            id: id.clone(),
            selection: match (&sel.connector, &sel.stream) {
                (Some(c), Some(s)) => format!("{c}/{s}"),
                (Some(c), None) => c.clone(),
                _ => "all".into(),
            },
            window: sel
                .window
                .as_ref()
                .map(crate::connectors::window::Window::label),
            started_at: Utc::now(),
            started: std::time::Instant::now(),
            pullers,
            end: Mutex::new(None),
        });
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), job.clone());
        tracing::info!(job = %id, selection = %job.selection, window = ?job.window, "Sync job started.");
        tokio::spawn(async move {
            let r = rt
                .sync_once(&job.pullers, |_| {})
                .await
                .map_err(|e| format!("{e:#}"));
            match &r {
                Ok(rep) => {
                    tracing::info!(job = %job.id, published = rep.published, failed = rep.failed, complete = rep.complete(), "Sync job finished.")
                }
                Err(e) => tracing::error!(job = %job.id, error = %e, "Sync job failed."),
            }
            *job.end.lock().unwrap_or_else(|e| e.into_inner()) = Some((Utc::now(), r));
        });
        Ok(id)
    }

    pub fn get(&self, id: &str) -> Option<JobView> {
        let job = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()?;
        Some(job.view())
    }

    /// Every job, newest first.
    pub fn list(&self) -> Vec<JobView> {
        let jobs: Vec<Arc<Job>> = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        jobs.iter().rev().map(|j| j.view()).collect()
    }
}

impl Job {
    fn view(&self) -> JobView {
        let streams: Vec<StreamProgress> = self
            .pullers
            .iter()
            .map(|p| StreamProgress {
                connector: p.connector.clone(),
                stream: p.def.name.clone(),
                fetched: p.counters.fetched.load(Ordering::Relaxed),
                published: p.counters.published.load(Ordering::Relaxed),
                failed: p.counters.failed.load(Ordering::Relaxed),
                expected: p.expected(),
            })
            .collect();
        let fetched: u64 = streams.iter().map(|s| s.fetched).sum();
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = fetched as f64 / elapsed;
        let end = self.end.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let remaining: Option<i64> = streams
            .iter()
            .map(|s| s.expected.map(|e| (e - s.fetched as i64).max(0)))
            .sum();
        let eta_seconds = match (&end, remaining) {
            (Some(_), _) => Some(0.0),
            (None, Some(r)) if rate > 0.0 => Some(r as f64 / rate),
            _ => None,
        };
        let (state, finished_at, error, report) = match end {
            None => ("running", None, None, None),
            Some((at, Ok(rep))) if rep.complete() => ("finished", Some(at), None, Some(rep)),
            Some((at, Ok(rep))) => (
                "failed",
                Some(at),
                Some("a stream stopped before its end; see the report".to_owned()),
                Some(rep),
            ),
            Some((at, Err(e))) => ("failed", Some(at), Some(e), None),
        };
        JobView {
            id: self.id.clone(),
            selection: self.selection.clone(),
            window: self.window.clone(),
            state,
            started_at: self.started_at,
            finished_at,
            published: streams.iter().map(|s| s.published).sum(),
            failed: streams.iter().map(|s| s.failed).sum(),
            fetched,
            streams,
            records_per_second: rate,
            eta_seconds,
            error,
            report,
        }
    }
}
