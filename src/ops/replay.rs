//! Operators: replay — a failed record goes through normalise → route → store again, under the
//! *current* connector definitions and schema, so a mapping fix in `connectors/` clears a whole
//! class of failures at once.
//!
//! A failure that passes goes from `open` to `resolved` once the store ingested it (its page's
//! run is counted), or to `replayed` when the bus confirmed it but no store writer took it in
//! time. Every step is idempotent: the store writes by natural key and content hash, and a status
//! only moves from the statuses it expects, so a replay killed half-way and run again, or two
//! operators replaying at once, end in the same state as one clean run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::future::try_join_all;
use serde::Serialize;
use serde_json::json;

use crate::connectors::definition::Format;
use crate::connectors::page;
use crate::normalize::{Outcome, StreamNormalizer};
use crate::pipeline::Runtime;
use crate::record::{Event, FieldError, Stage};
use crate::store::ops::{FailureEvent, NewAudit};
use crate::store::{FailureFilter, FailureRow, FailureStatus};

/// Statuses a replay picks up: `replayed` too, so a replay that stopped between the bus and
/// the store is finished by the next one.
pub const REPLAYABLE: [FailureStatus; 2] = [FailureStatus::Open, FailureStatus::Replayed];

/// Failure ids read per query when replaying by filter.
const ID_PAGE: u32 = 5000;

/// Which failures to replay.
#[derive(Debug, Clone)]
pub enum Target {
    Ids(Vec<String>),
    Filter(FailureFilter),
    /// One failure with an approved edit: the edited record replaces the kept payload.
    Edited {
        id: String,
        edit_id: String,
        record: serde_json::Value,
    },
}

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplaySettings {
    /// Only report what would pass; change nothing (but the audit log).
    pub dry_run: bool,
    /// At most this many records per second (0: as fast as the pipeline takes them).
    pub rate_per_sec: u32,
    /// Failures read, normalised and published per step.
    pub page_size: u32,
    /// Who replays (token name or `cli:<user>`), for history and audit.
    pub actor: String,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        ReplaySettings {
            dry_run: false,
            rate_per_sec: 0,
            page_size: 1000,
            actor: "cli".into(),
        }
    }
}

/// What a replay did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplayReport {
    pub run_id: String,
    pub dry_run: bool,
    /// Failures the replay looked at.
    pub selected: i64,
    /// Passed normalisation and validation (dry: would pass).
    pub passed: i64,
    /// Still failing, by error code (a failure with several codes counts under each).
    pub still_failing: i64,
    pub still_failing_by_code: BTreeMap<String, i64>,
    /// Not replayable here: pull failures (re-pull the stream instead), failures already
    /// resolved or discarded, unknown ids.
    pub skipped: i64,
    pub skipped_reasons: BTreeMap<String, i64>,
    /// Stored and marked resolved.
    pub resolved: i64,
    pub seconds: f64,
}

/// Progress of a running replay: failures looked at so far, of how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: i64,
    pub total: i64,
}

/// What one failure turned into.
enum Attempt {
    Pass(Box<Event>),
    /// Its errors now, and the normalised attempt when mapping got that far.
    Fail(Vec<FieldError>, Option<serde_json::Value>),
    Skip(String),
}

/// Replays `target`. Store writers must be running (here or against the same broker) unless
/// `dry_run`.
pub async fn replay(
    rt: &Runtime,
    target: Target,
    settings: &ReplaySettings,
    mut on_progress: impl FnMut(Progress),
) -> anyhow::Result<ReplayReport> {
    let started = Instant::now();
    let run_id = format!("replay-{}", uuid::Uuid::now_v7());
    let (filter_json, total) = match &target {
        Target::Ids(ids) => (json!({"ids": ids}), ids.len() as i64),
        Target::Edited { id, edit_id, .. } => (json!({"ids": [id], "edit": edit_id}), 1),
        Target::Filter(f) => (
            serde_json::to_value(f).unwrap_or_default(),
            match replayable(f) {
                Some(f) => rt.store.count_failures(&f).await?,
                None => 0,
            },
        ),
    };
    let action = if settings.dry_run {
        "replay.dry_run"
    } else {
        "replay"
    };
    if !settings.dry_run {
        // The start is audited too: a replay killed half-way still shows who started it.
        rt.store
            .append_audit(&NewAudit {
                actor: settings.actor.clone(),
                action: "replay.started".into(),
                target: Some(run_id.clone()),
                filter: filter_json.clone(),
                count: total,
                outcome: json!({}),
            })
            .await?;
        rt.store.begin_run(&run_id).await?;
    }
    tracing::info!(run = %run_id, total, dry_run = settings.dry_run, actor = %settings.actor, "Replay started.");

    // Three stages run at once, two pages apart: read failures (ids first, then rows by id —
    // sorting ids stays cheap whatever plan the database picks for the filter, where sorting
    // whole rows did not), normalise them on the normalising threads, and send what passed.
    let (page_tx, mut page_rx) = tokio::sync::mpsc::channel::<Vec<FailureRow>>(2);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Attempted>(2);
    let page_size = settings.page_size.max(1) as usize;
    let reader = async {
        let mut pending: std::collections::VecDeque<String> = match &target {
            Target::Ids(ids) => ids.iter().cloned().collect(),
            Target::Edited { id, .. } => [id.clone()].into(),
            Target::Filter(_) => Default::default(),
        };
        let mut after: Option<String> = None;
        let mut ids_exhausted = !matches!(target, Target::Filter(_));
        let mut unknown = 0i64;
        loop {
            if pending.len() < page_size
                && !ids_exhausted
                && let Target::Filter(f) = &target
            {
                let more = match replayable(f) {
                    Some(f) => {
                        rt.store
                            .list_failure_ids(&FailureFilter {
                                after_id: after.clone(),
                                limit: ID_PAGE,
                                ..f
                            })
                            .await?
                    }
                    None => Vec::new(),
                };
                ids_exhausted = more.len() < ID_PAGE as usize;
                after = more.last().cloned().or(after);
                pending.extend(more);
            }
            if pending.is_empty() {
                break;
            }
            let chunk: Vec<String> = pending.drain(..pending.len().min(page_size)).collect();
            let rows = rt
                .store
                .list_failures(&FailureFilter {
                    limit: chunk.len() as u32,
                    ids: chunk.clone(),
                    ..Default::default()
                })
                .await?;
            unknown += (chunk.len() - rows.len()) as i64;
            if !rows.is_empty() && page_tx.send(rows).await.is_err() {
                break;
            }
        }
        drop(page_tx);
        Ok::<i64, anyhow::Error>(unknown)
    };
    let normaliser = async {
        let mut page_no = 0u64;
        let mut pushed = ReplayReport::default();
        while let Some(rows) = page_rx.recv().await {
            // Push failures are not normalised again: the stored record is sent again.
            let (push_rows, rows): (Vec<FailureRow>, Vec<FailureRow>) =
                rows.into_iter().partition(|r| r.stage == Stage::Push);
            if !push_rows.is_empty() {
                resend_pushes(rt, push_rows, settings, &mut pushed).await?;
            }
            if rows.is_empty() {
                continue;
            }
            let edited = match &target {
                Target::Edited { record, .. } => Some(record.clone()),
                _ => None,
            };
            let jobs: Vec<Job> = rows
                .into_iter()
                .map(|row| Job::new(rt, row, edited.clone()))
                .collect();
            // Each page is a run of its own, so it can be resolved as soon as the store
            // ingested it, whichever writer took it and in whatever order.
            page_no += 1;
            let run = format!("{run_id}/{page_no}");
            let attempted = crate::normalize::pool::run(move || attempt_page(jobs, run)).await?;
            if done_tx.send(attempted).await.is_err() {
                break;
            }
        }
        drop(done_tx);
        Ok::<ReplayReport, anyhow::Error>(pushed)
    };
    let sender = async {
        // Pages sent and not yet resolved: (page run, ids moved to replayed).
        let mut unresolved: std::collections::VecDeque<(String, Vec<String>)> = Default::default();
        let mut resolved = 0i64;
        let mut report = ReplayReport::default();
        while let Some(page) = done_rx.recv().await {
            let step_started = Instant::now();
            let n = page.selected;
            report.selected += page.selected;
            report.passed += page.passing_ids.len() as i64;
            report.still_failing += page.failing.len() as i64;
            for (code, k) in page.failing_codes {
                *report.still_failing_by_code.entry(code).or_default() += k;
            }
            for reason in page.skipped {
                count_skip(&mut report, &reason);
            }
            if !settings.dry_run {
                rt.store.begin_run(&page.run).await?;
                publish(rt, &page.run, page.passing).await?;
                // No status write yet: the page is usually stored within milliseconds, and one
                // update (to resolved) per failure halves what a replay costs the database. A
                // replay killed before that leaves the failures open, and the next one sends
                // them again (the store's writes are idempotent).
                unresolved.push_back((page.run, page.passing_ids));
                record_still_failing(rt, &run_id, page.failing).await?;
                // Resolve the pages the store has finished with, oldest first, without waiting.
                while let Some((run, _)) = unresolved.front() {
                    let p = rt.store.run_progress(run).await?;
                    if p.ingested < p.published {
                        break;
                    }
                    if let Some((run, ids)) = unresolved.pop_front() {
                        resolved += resolve(rt, &run, &ids, &settings.actor).await?;
                    }
                }
            }
            tracing::debug!(
                rows = n,
                send_us = step_started.elapsed().as_micros() as u64,
                "Replayed a page of failures."
            );
            on_progress(Progress {
                done: report.selected,
                total,
            });
            pace(settings.rate_per_sec, n as usize, step_started.elapsed()).await;
        }
        while let Some((run, ids)) = unresolved.pop_front() {
            if let Err(e) = rt.wait_ingested(&run, || {}).await {
                // The broker has them but no store writer took them: say so in their status,
                // and leave them for the next replay to finish.
                for (run, ids) in std::iter::once((run, ids)).chain(unresolved.drain(..)) {
                    rt.store
                        .set_failure_status(
                            &ids,
                            &REPLAYABLE,
                            FailureStatus::Replayed,
                            &FailureEvent {
                                at: Utc::now(),
                                actor: settings.actor.clone(),
                                action: "replayed".into(),
                                detail: json!({"run": run, "stored": false}),
                            },
                        )
                        .await?;
                }
                return Err(e);
            }
            resolved += resolve(rt, &run, &ids, &settings.actor).await?;
        }
        report.resolved = resolved;
        Ok::<ReplayReport, anyhow::Error>(report)
    };
    let (unknown, pushed, counted) = tokio::try_join!(reader, normaliser, sender)?;
    let mut report = ReplayReport {
        run_id: run_id.clone(),
        dry_run: settings.dry_run,
        ..counted
    };
    report.selected += pushed.selected;
    report.passed += pushed.passed;
    report.resolved += pushed.resolved;
    report.still_failing += pushed.still_failing;
    for (code, k) in pushed.still_failing_by_code {
        *report.still_failing_by_code.entry(code).or_default() += k;
    }
    for (reason, k) in pushed.skipped_reasons {
        report.skipped += k;
        *report.skipped_reasons.entry(reason).or_default() += k;
    }
    for _ in 0..unknown {
        report.selected += 1;
        count_skip(&mut report, "no such failure");
    }

    report.seconds = started.elapsed().as_secs_f64();
    rt.store
        .append_audit(&NewAudit {
            actor: settings.actor.clone(),
            action: action.into(),
            target: Some(run_id.clone()),
            filter: filter_json,
            count: report.selected,
            outcome: serde_json::to_value(&report).unwrap_or_default(),
        })
        .await?;
    tracing::info!(run = %run_id, selected = report.selected, passed = report.passed, still_failing = report.still_failing, skipped = report.skipped, resolved = report.resolved, seconds = report.seconds, "Replay finished.");
    Ok(report)
}

/// Push failures: the current version of each record is sent again to the push that refused
/// it (a new request, judged afresh). Accepted ones are resolved; refused ones stay open with
/// the upstream's new reasons (the push records them). A dry run only counts them.
async fn resend_pushes(
    rt: &Runtime,
    rows: Vec<FailureRow>,
    settings: &ReplaySettings,
    out: &mut ReplayReport,
) -> anyhow::Result<()> {
    out.selected += rows.len() as i64;
    let mut by_push: BTreeMap<(String, String), Vec<FailureRow>> = BTreeMap::new();
    for r in rows {
        by_push
            .entry((r.connector.clone(), r.stream.clone()))
            .or_default()
            .push(r);
    }
    for ((connector, push), rows) in by_push {
        let sel = crate::pipeline::Selection {
            connector: Some(connector.clone()),
            stream: Some(push.clone()),
            ..Default::default()
        };
        let Some(pusher) = rt.pushers(&sel).ok().and_then(|p| p.into_iter().next()) else {
            *out.skipped_reasons
                .entry(format!("push {connector}/{push} is no longer configured"))
                .or_default() += rows.len() as i64;
            continue;
        };
        if settings.dry_run {
            *out.skipped_reasons
                .entry("push failure: would be sent again (not judged in a dry run)".into())
                .or_default() += rows.len() as i64;
            continue;
        }
        let keys: Vec<String> = rows.iter().filter_map(|r| r.natural_key.clone()).collect();
        let mut report = crate::connectors::push::PushReport::default();
        let outcomes = pusher
            .resend(rt.store.as_ref(), &rt.schema, &keys, &mut report)
            .await?;
        let accepted: std::collections::HashSet<&str> = outcomes
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(k, _)| k.as_str())
            .collect();
        let (done, still): (Vec<&FailureRow>, Vec<&FailureRow>) = rows.iter().partition(|r| {
            r.natural_key
                .as_deref()
                .is_some_and(|k| accepted.contains(k))
        });
        out.passed += done.len() as i64;
        out.still_failing += still.len() as i64;
        for r in &still {
            for e in &r.errors {
                *out.still_failing_by_code.entry(e.code.clone()).or_default() += 1;
            }
        }
        let ids: Vec<String> = done.iter().map(|r| r.id.clone()).collect();
        let detail = json!({"by": "replay", "resent_to": pusher.target(), "accepted": true});
        out.resolved += super::resolve(rt.store.as_ref(), &ids, &settings.actor, detail).await?;
    }
    Ok(())
}

/// Marks a page's failures resolved once its run is ingested; returns how many moved.
async fn resolve(rt: &Runtime, run: &str, ids: &[String], actor: &str) -> anyhow::Result<i64> {
    let detail = json!({"run": run, "by": "replay", "stored": true});
    Ok(super::resolve(rt.store.as_ref(), ids, actor, detail).await?)
}

/// The filter limited to what a replay may pick up; `None` when it asked only for statuses a
/// replay does not touch (resolved, discarded).
fn replayable(f: &FailureFilter) -> Option<FailureFilter> {
    let status: Vec<FailureStatus> = if f.status.is_empty() {
        REPLAYABLE.to_vec()
    } else {
        f.status
            .iter()
            .copied()
            .filter(|s| REPLAYABLE.contains(s))
            .collect()
    };
    (!status.is_empty()).then(|| FailureFilter {
        status,
        ..f.clone()
    })
}

fn count_skip(report: &mut ReplayReport, reason: &str) {
    report.skipped += 1;
    *report.skipped_reasons.entry(reason.to_owned()).or_default() += 1;
}

/// One failure with what normalising it needs, owned, for the normalising threads.
struct Job {
    row: FailureRow,
    /// The stream's format, records path and current normaliser (normalise-stage failures of a
    /// stream that still exists).
    stream: Option<(Format, String, Arc<StreamNormalizer>)>,
    /// An approved edit's record, used instead of the kept payload.
    edited: Option<serde_json::Value>,
}

impl Job {
    fn new(rt: &Runtime, row: FailureRow, edited: Option<serde_json::Value>) -> Job {
        let stream = (row.stage == Stage::Normalize)
            .then(|| rt.stream_normalizer(&row.connector, &row.stream))
            .flatten()
            .map(|(def, n)| (def.format, def.records.clone(), n));
        Job {
            row,
            stream,
            edited,
        }
    }
}

/// The record a failure's replay starts from: the kept payload read again as its stream reads
/// it (the upstream record), or the event for store and route failures. Edits patch this.
pub fn original_record(rt: &Runtime, row: &FailureRow) -> Result<serde_json::Value, String> {
    match row.stage {
        Stage::Normalize => {
            let (def, _) = rt
                .stream_normalizer(&row.connector, &row.stream)
                .ok_or_else(|| {
                    format!(
                        "connector `{}` has no stream `{}`",
                        row.connector, row.stream
                    )
                })?;
            page::reparse(
                def.format,
                &def.records,
                &row.raw,
                row.raw_context.as_deref(),
            )
            .map(|r| r.value)
        }
        Stage::Store | Stage::Route => serde_json::from_str(&row.raw)
            .map_err(|e| format!("the kept event is not readable: {e}")),
        Stage::Pull | Stage::Push => Err(format!(
            "{} failures are not records one can edit",
            row.stage.as_str()
        )),
    }
}

/// What a page of failures turned into.
#[derive(Default)]
struct Attempted {
    /// The page's own run: its events are counted there.
    run: String,
    selected: i64,
    passing: BTreeMap<String, Vec<Event>>,
    passing_ids: Vec<String>,
    failing: Vec<(FailureRow, Vec<FieldError>, Option<serde_json::Value>)>,
    failing_codes: BTreeMap<String, i64>,
    skipped: Vec<String>,
}

fn attempt_page(jobs: Vec<Job>, run: String) -> Attempted {
    let mut out = Attempted::default();
    for job in jobs {
        out.selected += 1;
        if !REPLAYABLE.contains(&job.row.status) {
            out.skipped.push(format!(
                "status is {}",
                crate::store::status_name(job.row.status)
            ));
            continue;
        }
        match attempt(&job, &run) {
            Attempt::Pass(ev) => {
                out.passing_ids.push(job.row.id.clone());
                out.passing.entry(ev.routing_key()).or_default().push(*ev);
            }
            Attempt::Fail(errors, normalized) => {
                let mut codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
                codes.sort_unstable();
                codes.dedup();
                for c in codes {
                    *out.failing_codes.entry(c.to_owned()).or_default() += 1;
                }
                out.failing.push((job.row, errors, normalized));
            }
            Attempt::Skip(reason) => out.skipped.push(reason),
        }
    }
    out.run = run;
    out
}

fn replay_error(code: &str, message: String) -> FieldError {
    FieldError {
        code: code.into(),
        path: String::new(),
        schema_path: String::new(),
        message,
    }
}

/// Runs one failure through the current definitions.
fn attempt(job: &Job, run_id: &str) -> Attempt {
    let row = &job.row;
    match row.stage {
        Stage::Normalize => {
            let Some((format, records, normalizer)) = &job.stream else {
                return Attempt::Fail(
                    vec![replay_error(
                        "REPLAY_NO_STREAM",
                        format!(
                            "connector `{}` has no stream `{}` any more, so the record cannot be mapped again",
                            row.connector, row.stream
                        ),
                    )],
                    row.normalized.clone(),
                );
            };
            let reread = match &job.edited {
                Some(v) => Ok(crate::normalize::RawRecord {
                    raw: v.to_string(),
                    value: v.clone(),
                    context: None,
                }),
                None => page::reparse(*format, records, &row.raw, row.raw_context.as_deref()),
            };
            let rec = match reread {
                Ok(r) => r,
                Err(reason) => {
                    return Attempt::Fail(
                        vec![replay_error(
                            "REPLAY_UNPARSABLE",
                            format!("the kept raw payload cannot be read again: {reason}"),
                        )],
                        row.normalized.clone(),
                    );
                }
            };
            let mut lineage = row.lineage.clone();
            lineage.sync_run = run_id.to_owned();
            match normalizer.normalize(rec, &lineage) {
                Outcome::Event(ev) => Attempt::Pass(ev),
                Outcome::Failure(f) => Attempt::Fail(f.errors, f.normalized),
            }
        }
        Stage::Store | Stage::Route => match job.edited.clone().map_or_else(
            || serde_json::from_str::<Event>(&row.raw),
            serde_json::from_value,
        ) {
            Ok(mut ev) => {
                // The event is sent again as it was; only its run changes, so this replay
                // can tell when the store has ingested it.
                ev.syncrun = run_id.to_owned();
                Attempt::Pass(Box::new(ev))
            }
            Err(e) => Attempt::Fail(
                vec![replay_error(
                    "REPLAY_UNPARSABLE",
                    format!("the kept event is not readable: {e}"),
                )],
                row.normalized.clone(),
            ),
        },
        Stage::Pull => Attempt::Skip(
            "pull failure: re-pull the stream (xiezhi sync CONNECTOR --stream S)".into(),
        ),
        Stage::Push => Attempt::Skip("push failure: not replayable yet".into()),
    }
}

/// Publishes passing events grouped by routing key, waits for the bus to confirm them, and
/// counts them as published by the replay run.
async fn publish(
    rt: &Runtime,
    run_id: &str,
    groups: BTreeMap<String, Vec<Event>>,
) -> anyhow::Result<()> {
    let (confirms, events) =
        crate::bus::publish_grouped(rt.bus.as_ref(), groups, rt.config.pipeline.batch_max_events)
            .await?;
    try_join_all(confirms).await?;
    if events > 0 {
        rt.store.add_published(run_id, events).await?;
    }
    Ok(())
}

/// Failures that still fail keep their id; their errors, attempts and last-seen move on.
async fn record_still_failing(
    rt: &Runtime,
    run_id: &str,
    failing: Vec<(FailureRow, Vec<FieldError>, Option<serde_json::Value>)>,
) -> anyhow::Result<()> {
    if failing.is_empty() {
        return Ok(());
    }
    let failures: Vec<crate::record::Failure> = failing
        .into_iter()
        .map(|(row, errors, normalized)| crate::record::Failure {
            id: row.id,
            stage: row.stage,
            connector: row.connector,
            stream: row.stream,
            record_type: row.record_type,
            natural_key: row.natural_key,
            upstream_id: row.upstream_id,
            raw: row.raw,
            raw_context: row.raw_context,
            normalized: normalized.or(row.normalized),
            errors,
            lineage: row.lineage,
        })
        .collect();
    rt.store.record_failures(run_id, &failures).await?;
    Ok(())
}

/// Sleeps so that `n` records took at least `n / rate` seconds.
async fn pace(rate_per_sec: u32, n: usize, took: Duration) {
    if rate_per_sec == 0 {
        return;
    }
    let should = Duration::from_secs_f64(n as f64 / f64::from(rate_per_sec));
    if let Some(rest) = should.checked_sub(took) {
        tokio::time::sleep(rest).await;
    }
}
