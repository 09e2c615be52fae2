//! Store: what several instances of xiezhi share to divide the work — leases per stream, the
//! schedule's last completed occurrence, checkpoints read for their age, per-window
//! reconciliation rows — and the retry that carries the pull side through a database restart.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Result, StoreError};

/// The answer to taking a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// The caller holds the lease now (taken, or renewed).
    pub held: bool,
    /// Who holds it after the call.
    pub holder: String,
    /// Set when the caller took the lease over from this holder, whose lease had expired.
    pub took_over_from: Option<String>,
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRow {
    pub name: String,
    pub holder: String,
    pub acquired_at: DateTime<Utc>,
    pub renewed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A stream's schedule: the last cron occurrence a sync completed, by whom and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    pub connector: String,
    pub stream: String,
    pub occurrence: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub holder: String,
    /// `ok`, or the reason the sync ended early (it resumes from its checkpoint next time).
    pub outcome: String,
}

/// A checkpoint with the time it last moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRow {
    pub connector: String,
    pub stream: String,
    pub cursor: String,
    pub updated_at: DateTime<Utc>,
}

/// One stream's sync window, counted at every step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconciliationRow {
    /// Assigned by the store.
    #[serde(default)]
    pub id: i64,
    pub run_id: String,
    pub connector: String,
    pub stream: String,
    pub record_type: String,
    pub holder: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The total the upstream reported for the window (its first page), where its API gives one.
    pub upstream_total: Option<i64>,
    /// What this sync should have fetched given that total and where it resumed.
    pub expected: Option<i64>,
    pub fetched: i64,
    /// Passed normalisation and validation.
    pub normalised: i64,
    /// Confirmed by the bus.
    pub routed: i64,
    /// Recorded in the failure store (normalise stage).
    pub failed: i64,
    /// Window re-pulls: fetched but updated outside the window.
    pub outside_window: i64,
    /// `ok` or why the sync ended early.
    pub outcome: String,
    /// Empty when every count adds up; else one sentence per gap.
    pub gaps: String,
}

impl ReconciliationRow {
    /// Checks the counts against each other; returns the gaps found (empty: reconciled).
    /// Only a sync that reached the end of its stream is held to them.
    pub fn find_gaps(&self) -> Vec<String> {
        let mut gaps = Vec::new();
        if self.outcome != "ok" {
            return gaps;
        }
        if let Some(e) = self.expected
            && e != self.fetched
        {
            gaps.push(format!(
                "the upstream reported {e} records for this window, {} were fetched",
                self.fetched
            ));
        }
        let accounted = self.normalised + self.failed + self.outside_window;
        if accounted != self.fetched {
            gaps.push(format!(
                "{} fetched but {} normalised + {} failed + {} outside the window",
                self.fetched, self.normalised, self.failed, self.outside_window
            ));
        }
        if self.routed != self.normalised {
            gaps.push(format!(
                "{} normalised but {} confirmed by the bus",
                self.normalised, self.routed
            ));
        }
        gaps
    }
}

/// Reads a reconciliation row from either backend (times as microseconds `started`/`finished`).
pub(crate) fn reconciliation_from_row<R>(r: &R) -> Result<ReconciliationRow>
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let e = super::query_err("reading a reconciliation");
    let get = |r: &R| -> std::result::Result<ReconciliationRow, sqlx::Error> {
        Ok(ReconciliationRow {
            id: r.try_get("id")?,
            run_id: r.try_get("run_id")?,
            connector: r.try_get("connector")?,
            stream: r.try_get("stream")?,
            record_type: r.try_get("record_type")?,
            holder: r.try_get("holder")?,
            started_at: DateTime::from_timestamp_micros(r.try_get("started")?).unwrap_or_default(),
            finished_at: DateTime::from_timestamp_micros(r.try_get("finished")?)
                .unwrap_or_default(),
            upstream_total: r.try_get("upstream_total")?,
            expected: r.try_get("expected")?,
            fetched: r.try_get("fetched")?,
            normalised: r.try_get("normalised")?,
            routed: r.try_get("routed")?,
            failed: r.try_get("failed")?,
            outside_window: r.try_get("outside_window")?,
            outcome: r.try_get("outcome")?,
            gaps: r.try_get("gaps")?,
        })
    };
    get(r).map_err(e)
}

impl StoreError {
    /// Whether the error is the database being away for a while (restart, failover, network):
    /// retrying the same call later can succeed. Constraint violations and bad SQL are not.
    pub fn is_transient(&self) -> bool {
        if let StoreError::Sqlite { source, .. } = self {
            return sqlite_code(source).is_some_and(|c| {
                matches!(
                    c,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                )
            });
        }
        let source = match self {
            StoreError::Query { source, .. } | StoreError::Open { source, .. } => source,
            _ => return false,
        };
        match source {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::Protocol(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(e) => e.code().is_some_and(|c| {
                // 08: connection exceptions; 57P0x: admin shutdown, crash shutdown, cannot
                // connect now; 53300: too many connections; 40001/40P01: retry the transaction.
                c.starts_with("08")
                    || c.starts_with("57P0")
                    || c == "53300"
                    || c == "40001"
                    || c == "40P01"
                    // SQLite: busy and locked.
                    || c == "5"
                    || c == "6"
            }),
            _ => false,
        }
    }
}

impl StoreError {
    /// The database is away, or refuses writes for now (read-only, disk full, out of
    /// resources): waiting can cure it, unlike a record it cannot take.
    pub fn is_unavailable(&self) -> bool {
        if self.is_transient() {
            return true;
        }
        if let StoreError::Sqlite { source, .. } = self {
            return sqlite_code(source).is_some_and(|c| {
                matches!(
                    c,
                    rusqlite::ErrorCode::ReadOnly
                        | rusqlite::ErrorCode::SystemIoFailure
                        | rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::CannotOpen
                        | rusqlite::ErrorCode::OutOfMemory
                )
            });
        }
        let StoreError::Query {
            source: sqlx::Error::Database(e),
            ..
        } = self
        else {
            return false;
        };
        e.code().is_some_and(|c| {
            // PostgreSQL: 25006 read-only transaction, 53xxx insufficient resources (53100 disk
            // full), 58xxx system errors (58030 I/O). SQLite: 8 READONLY, 10 IOERR, 13 FULL.
            c == "25006"
                || c.starts_with("53")
                || c.starts_with("58")
                || matches!(c.as_ref(), "8" | "10" | "13")
        })
    }
}

/// The SQLite result code of an error from the SQLite apply path, if SQLite gave one.
pub(crate) fn sqlite_code(e: &rusqlite::Error) -> Option<rusqlite::ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    }
}

/// Runs a store call, retrying while the database is away (a restart, a failover) or refuses
/// writes (read-only, disk full) for up to `patience`; other errors and a longer outage return
/// the error. For the pull side, whose
/// calls are idempotent (`commit_page` counts a page once however often it is retried).
pub async fn retrying<T, F, Fut>(what: &'static str, patience: Duration, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = std::time::Instant::now();
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match call().await {
            Ok(v) => {
                if attempt > 1 {
                    tracing::info!(what, attempt, "The store answers again.");
                }
                return Ok(v);
            }
            Err(e) if e.is_unavailable() && started.elapsed() < patience => {
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(what, attempt, delay_ms = delay.as_millis() as u64, error = %e, "The store is unavailable or refuses writes; intake waits and retries.");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A lease this instance holds, renewed in the background every third of its time to live.
/// `lost` fires when a renewal finds it taken (another instance decided this one was dead) or
/// the store stayed unreachable for two thirds of the time to live: whoever holds it must stop.
pub struct HeldLease {
    pub name: String,
    pub holder: String,
    pub lost: tokio_util::sync::CancellationToken,
    stop: tokio_util::sync::CancellationToken,
    renewer: tokio::task::JoinHandle<()>,
    store: std::sync::Arc<dyn super::Store>,
}

impl HeldLease {
    /// Takes the lease; `None` when another holder has it (`Some(state)` tells whom).
    pub async fn take(
        store: std::sync::Arc<dyn super::Store>,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<std::result::Result<(HeldLease, LeaseState), LeaseState>> {
        let state = store.take_lease(name, holder, ttl).await?;
        if !state.held {
            return Ok(Err(state));
        }
        let lost = tokio_util::sync::CancellationToken::new();
        let stop = tokio_util::sync::CancellationToken::new();
        let renewer = tokio::spawn(renew(
            store.clone(),
            name.to_owned(),
            holder.to_owned(),
            ttl,
            lost.clone(),
            stop.clone(),
        ));
        Ok(Ok((
            HeldLease {
                name: name.to_owned(),
                holder: holder.to_owned(),
                lost,
                stop,
                renewer,
                store,
            },
            state,
        )))
    }

    /// Stops renewing and gives the lease up, so another instance need not wait for it to
    /// expire. A failure to release only delays the next holder by the time to live.
    pub async fn release(self) {
        self.stop.cancel();
        let _ = self.renewer.await;
        if let Err(e) = self.store.release_lease(&self.name, &self.holder).await {
            tracing::warn!(lease = %self.name, error = %e, "Could not release a lease; it expires by itself.");
        }
    }
}

async fn renew(
    store: std::sync::Arc<dyn super::Store>,
    name: String,
    holder: String,
    ttl: Duration,
    lost: tokio_util::sync::CancellationToken,
    stop: tokio_util::sync::CancellationToken,
) {
    let every = ttl / 3;
    let mut last_ok = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match store.take_lease(&name, &holder, ttl).await {
            Ok(s) if s.held => last_ok = std::time::Instant::now(),
            Ok(s) => {
                tracing::error!(lease = %name, holder = %s.holder, "The lease was taken over by another instance; stopping the work it covered.");
                lost.cancel();
                return;
            }
            Err(e) if last_ok.elapsed() < ttl * 2 / 3 => {
                tracing::warn!(lease = %name, error = %e, "Could not renew a lease; trying again.");
            }
            Err(e) => {
                tracing::error!(lease = %name, error = %e, "The lease could not be renewed before it would expire; stopping the work it covered.");
                lost.cancel();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ReconciliationRow {
        ReconciliationRow {
            outcome: "ok".into(),
            upstream_total: Some(10),
            expected: Some(10),
            fetched: 10,
            normalised: 8,
            failed: 2,
            routed: 8,
            ..Default::default()
        }
    }

    #[test]
    fn counts_that_add_up_have_no_gap() {
        assert!(row().find_gaps().is_empty());
    }

    #[test]
    fn each_kind_of_gap_is_named() {
        let mut r = row();
        r.fetched = 9;
        let gaps = r.find_gaps();
        assert_eq!(gaps.len(), 2, "{gaps:?}");
        assert!(gaps[0].contains("reported 10"), "{gaps:?}");
        let mut r = row();
        r.routed = 7;
        assert_eq!(
            r.find_gaps(),
            vec!["8 normalised but 7 confirmed by the bus"]
        );
        // A sync that stopped early is not held to the totals.
        let mut r = row();
        r.fetched = 3;
        r.outcome = "stopped".into();
        assert!(r.find_gaps().is_empty());
    }

    #[test]
    fn only_connection_level_errors_are_transient() {
        let io = StoreError::Query {
            context: "t",
            source: sqlx::Error::Io(std::io::Error::other("reset")),
        };
        assert!(io.is_transient());
        let bad = StoreError::Query {
            context: "t",
            source: sqlx::Error::RowNotFound,
        };
        assert!(!bad.is_transient());
        assert!(
            !StoreError::Corrupt {
                context: "t",
                reason: "x".into()
            }
            .is_transient()
        );
    }

    #[tokio::test]
    async fn retrying_gives_up_on_a_permanent_error_at_once() {
        let mut calls = 0;
        let r: Result<()> = retrying("test", Duration::from_secs(60), || {
            calls += 1;
            async {
                Err(StoreError::Query {
                    context: "t",
                    source: sqlx::Error::RowNotFound,
                })
            }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn retrying_waits_out_a_transient_error() {
        let mut calls = 0;
        let r = retrying("test", Duration::from_secs(60), || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(StoreError::Query {
                        context: "t",
                        source: sqlx::Error::PoolTimedOut,
                    })
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.ok(), Some(3));
    }
}
