//! SQLite store (the embedded default), the **store** stage of pull → normalise → route → store →
//! feed.
//!
//! One writer connection (SQLite allows one writer at a time anyway; a single connection makes the
//! change sequence trivially monotonic) and a few reader connections over WAL. The apply path runs
//! synchronously on the writer's handle (see [`apply`]); everything else goes through sqlx, with
//! set-based statements that read their rows from a bound JSON array through `json_each`, because
//! every sqlx statement crosses to its SQLite worker thread and back.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;
use sqlx::AssertSqlSafe;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::ops::{self, AuditTuple, TokenTuple, audit_from_tuple, bind_all, token_from_tuple};
use super::scale;
use super::{
    ApplyOutcome, Change, ChangeTuple, FailureCols, FailureFilter, FailureRow, FailureTuple,
    Precedence, RecordTuple, RecordVersion, Result, RunProgress, Stats, Store, StoreError,
    StoredRecord, VersionTuple, change_from_tuple, failure_from_tuple, failure_limit, query_err,
    record_from_tuple, status_name, version_from_tuple,
};
use super::{
    FailureStatus, FeedCursor, PushReceipt, ReceiptTuple, feed_cursor_from_tuple, parse_json,
    receipt_from_tuple, time_from_micros,
};
use crate::record::{Batch, Failure, RecordType};

mod apply;

/// Reader connections next to the single writer.
const READERS: u32 = 4;

const FAILURE_COLUMNS: &str = "id, stage, connector, stream, record_type, natural_key, upstream_id, raw, normalized, \
     errors, lineage, attempts, status, first_seen, last_seen, raw_context";

const EDIT_COLUMNS: &str = "id, failure_id, editor, created_at, patch, edited, note, status, decided_by, \
     decided_at, outcome";

/// The SQLite-backed [`Store`]. Cloning is cheap (the pools are shared).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
    precedence: Arc<Precedence>,
    checkpointer: SqlitePool,
    /// The checkpointer stops once every clone of the store is gone.
    _alive: Arc<()>,
}

/// How often the checkpointer copies committed WAL frames back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Checkpoints the WAL (PASSIVE: never blocks the writer or readers) until the store is
/// dropped, then once more with TRUNCATE so a closed store leaves a small WAL behind.
async fn checkpoint_loop(pool: SqlitePool, alive: std::sync::Weak<()>, path: String) {
    let mut failing = false;
    while alive.strong_count() > 0 && !pool.is_closed() {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            Ok(_) if failing => {
                failing = false;
                tracing::info!(path = %path, "WAL checkpoints succeed again.");
            }
            Ok(_) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(path = %path, error = %e, "A WAL checkpoint failed; the writer's own checkpoints take over while this persists.");
            }
            Err(_) => {}
        }
    }
    let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await;
    pool.close().await;
}

/// Error for a store path whose directory cannot be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the directory {dir} for the SQLite store: {source}")]
struct CreateDir {
    dir: String,
    source: std::io::Error,
}

impl SqliteStore {
    /// Opens (creating the file and its parent directory when missing) a WAL-mode database with
    /// synchronous=NORMAL: a crash may lose the last transactions but never corrupts the file,
    /// and redelivery from the bus replays what was lost. Does not migrate: call
    /// [`Store::migrate`].
    pub async fn open(path: &Path, precedence: Precedence) -> Result<SqliteStore> {
        let shown = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                url: shown.clone(),
                source: sqlx::Error::Io(std::io::Error::other(CreateDir {
                    dir: dir.display().to_string(),
                    source: e,
                })),
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|source| StoreError::Open {
                url: shown.clone(),
                source,
            })?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            // For a new file only (an existing one keeps its page size). Each commit writes
            // every page it dirtied to the WAL, one frame (two writes) per page, and a commit of
            // new keys dirties about one page of the key index per key whatever the page size:
            // 8 KiB pages cut the frames of a commit, and its time by about a fifth, against
            // 4 KiB (1 and 2 KiB were slower still; `xiezhi bench --target embedded`).
            .page_size(8192)
            .pragma("cache_size", "-16384")
            .pragma("temp_store", "memory");
        // The checkpointer connection copies committed WAL frames back into the database on
        // its own thread (see `checkpoint_loop`), so the writer does not spend a quarter of its
        // time on it. Under continuous writes those PASSIVE checkpoints never catch up with the
        // very last commit, though, and only a checkpoint that copied everything lets the WAL
        // start over. So the writer still checkpoints at 16,384 pages of WAL (128 MB): by then
        // nearly all of it has been copied, the rest is quick, and the WAL file stays bounded.
        let pool = |max: u32, min: u32, acquire_secs: u64, options: SqliteConnectOptions| {
            let shown = shown.clone();
            async move {
                SqlitePoolOptions::new()
                    .max_connections(max)
                    .min_connections(min)
                    .acquire_timeout(Duration::from_secs(acquire_secs))
                    .connect_with(options)
                    .await
                    .map_err(|source| StoreError::Open { url: shown, source })
            }
        };
        let writer = pool(
            1,
            1,
            60,
            options.clone().pragma("wal_autocheckpoint", "16384"),
        )
        .await?;
        let checkpointer =
            pool(1, 1, 60, options.clone().pragma("wal_autocheckpoint", "0")).await?;
        let readers = pool(READERS, 0, 30, options).await?;
        tracing::info!(path = %shown, "Opened the SQLite store.");
        let alive = Arc::new(());
        tokio::spawn(checkpoint_loop(
            checkpointer.clone(),
            Arc::downgrade(&alive),
            shown,
        ));
        Ok(SqliteStore {
            writer,
            readers,
            checkpointer,
            precedence: Arc::new(precedence),
            _alive: alive,
        })
    }

    fn migrator() -> Migrator {
        super::migrator(&[
            (
                1,
                "store",
                include_str!("../../../migrations/sqlite/0001_store.sql"),
            ),
            (
                2,
                "history chain",
                include_str!("../../../migrations/sqlite/0002_history_chain.sql"),
            ),
            (
                3,
                "operators",
                include_str!("../../../migrations/sqlite/0003_operators.sql"),
            ),
            (
                4,
                "edits",
                include_str!("../../../migrations/sqlite/0004_edits.sql"),
            ),
            (
                5,
                "feeds",
                include_str!("../../../migrations/sqlite/0005_feeds.sql"),
            ),
            (
                6,
                "push",
                include_str!("../../../migrations/sqlite/0006_push.sql"),
            ),
            (
                7,
                "deadline alerts",
                include_str!("../../../migrations/sqlite/0007_deadline_alerts.sql"),
            ),
            (
                8,
                "scale out",
                include_str!("../../../migrations/sqlite/0008_scale_out.sql"),
            ),
        ])
    }

    /// Closes both pools (checkpointing the WAL).
    pub async fn close(&self) {
        // The last connection to close (the writer) checkpoints what is left.
        self.checkpointer.close().await;
        self.readers.close().await;
        self.writer.close().await;
    }
}

/// Serialising plain tuples of strings, numbers and booleans cannot fail.
fn to_json<T: serde::Serialize>(rows: &T) -> String {
    serde_json::to_string(rows).unwrap_or_else(|_| "[]".into())
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        Self::migrator().run(&self.writer).await?;
        Ok(())
    }

    async fn apply(&self, batches: &[Batch]) -> Result<ApplyOutcome> {
        if batches.is_empty() {
            return Ok(ApplyOutcome::default());
        }
        let mut conn = self
            .writer
            .acquire()
            .await
            .map_err(query_err("taking the writer connection"))?;
        let mut locked = conn
            .lock_handle()
            .await
            .map_err(query_err("taking the writer connection's handle"))?;
        let applied = apply::on_handle(&mut locked, &self.precedence, batches, now_micros());
        drop(locked);
        let apply::Applied { outcome, phases } = applied?;
        tracing::debug!(
            begin_us = phases[0],
            heads_us = phases[1].saturating_sub(phases[0]),
            plan_us = phases[2].saturating_sub(phases[1]),
            write_us = phases[3].saturating_sub(phases[2]),
            commit_us = phases[4].saturating_sub(phases[3]),
            batches = batches.len(),
            duplicates = outcome.duplicate_batches,
            inserted = outcome.inserted,
            updated = outcome.updated,
            unchanged = outcome.unchanged,
            deleted = outcome.deleted,
            "Applied batches to the SQLite store."
        );
        Ok(outcome)
    }

    async fn record_failures(&self, run_id: &str, failures: &[Failure]) -> Result<()> {
        let c = FailureCols::from_failures(failures);
        let now = now_micros();
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(query_err("starting the failure transaction"))?;
        let mut new = 0i64;
        if !c.ids.is_empty() {
            let ids_json = to_json(&c.ids);
            let existing: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM json_each(?1) AS j CROSS JOIN failures AS f ON f.id = j.value",
            )
            .bind(&ids_json)
            .fetch_one(&mut *tx)
            .await
            .map_err(query_err("finding failures seen before"))?;
            new = c.ids.len() as i64 - existing;
            let rows: Vec<Value> = (0..c.ids.len())
                .map(|i| {
                    serde_json::json!([
                        c.ids[i],
                        c.stages[i],
                        c.connectors[i],
                        c.streams[i],
                        c.record_types[i],
                        c.natural_keys[i],
                        c.upstream_ids[i],
                        c.raws[i],
                        c.normalized[i],
                        c.errors[i],
                        c.lineages[i],
                        c.attempts[i],
                        c.raw_contexts[i],
                    ])
                })
                .collect();
            sqlx::query(
                "INSERT INTO failures (id, stage, connector, stream, record_type, natural_key, upstream_id, raw, \
                   normalized, errors, lineage, attempts, status, first_seen, last_seen, raw_context) \
                 SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, \
                   value->>8, value->>9, value->>10, value->>11, 'open', ?2, ?2, value->>12 \
                 FROM json_each(?1) WHERE true \
                 ON CONFLICT (id) DO UPDATE SET stage = excluded.stage, connector = excluded.connector, \
                   stream = excluded.stream, record_type = excluded.record_type, \
                   natural_key = excluded.natural_key, upstream_id = excluded.upstream_id, raw = excluded.raw, \
                   raw_context = excluded.raw_context, \
                   normalized = excluded.normalized, errors = excluded.errors, lineage = excluded.lineage, \
                   attempts = failures.attempts + excluded.attempts, \
                   status = CASE WHEN failures.status = 'discarded' AND failures.raw = excluded.raw \
                                 THEN 'discarded' ELSE 'open' END, \
                   last_seen = excluded.last_seen",
            )
            .bind(to_json(&rows))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(query_err("recording failures"))?;
        }
        sqlx::query(
            "INSERT INTO sync_runs (run_id, failed, started_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (run_id) DO UPDATE SET failed = sync_runs.failed + excluded.failed",
        )
        .bind(run_id)
        .bind(new)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(query_err("counting failures of the run"))?;
        tx.commit()
            .await
            .map_err(query_err("committing failures"))?;
        tracing::debug!(
            run = run_id,
            failures = failures.len(),
            new,
            "Recorded failures in the SQLite store."
        );
        Ok(())
    }

    async fn get_record(&self, record_type: RecordType, key: &str) -> Result<Option<StoredRecord>> {
        let row: Option<RecordTuple> = sqlx::query_as(
            // The body lives once, in the history row of the current version.
            "SELECT r.version, r.seq, r.deleted, r.division, r.content_hash, v.data, r.sources, \
               r.updated_at \
             FROM records AS r LEFT JOIN record_versions AS v ON v.seq = r.seq \
             WHERE r.record_type = ?1 AND r.key = ?2",
        )
        .bind(record_type.as_str())
        .bind(key)
        .fetch_optional(&self.readers)
        .await
        .map_err(query_err("reading a record"))?;
        row.map(|t| record_from_tuple(record_type, key, t))
            .transpose()
    }

    async fn history(&self, record_type: RecordType, key: &str) -> Result<Vec<RecordVersion>> {
        let rows: Vec<VersionTuple> = sqlx::query_as(
            // Follows the chain of previous versions from the current one.
            "WITH RECURSIVE chain(seq) AS ( \
               SELECT seq FROM records WHERE record_type = ?1 AND key = ?2 \
               UNION ALL \
               SELECT v.prev_seq FROM record_versions AS v JOIN chain ON v.seq = chain.seq \
               WHERE v.prev_seq IS NOT NULL) \
             SELECT v.version, v.seq, v.deleted, v.content_hash, v.data, v.changed_at \
             FROM chain JOIN record_versions AS v ON v.seq = chain.seq ORDER BY v.version",
        )
        .bind(record_type.as_str())
        .bind(key)
        .fetch_all(&self.readers)
        .await
        .map_err(query_err("reading a record's history"))?;
        rows.into_iter().map(version_from_tuple).collect()
    }

    async fn keys(&self, record_type: RecordType) -> Result<Vec<String>> {
        // BINARY collation is byte order, the order Rust sorts strings in.
        sqlx::query_scalar(
            "SELECT key FROM records WHERE record_type = ?1 AND NOT deleted ORDER BY key",
        )
        .bind(record_type.as_str())
        .fetch_all(&self.readers)
        .await
        .map_err(query_err("listing record keys"))
    }

    async fn version_count(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT count(*) FROM record_versions")
            .fetch_one(&self.readers)
            .await
            .map_err(query_err("counting versions"))
    }

    async fn stats(&self) -> Result<Stats> {
        let records: Vec<(String, i64)> = sqlx::query_as(
            "SELECT record_type, count(*) FROM records WHERE NOT deleted GROUP BY record_type",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(query_err("counting records per type"))?;
        let failures: Vec<(String, i64)> = sqlx::query_as(
            "SELECT connector, count(*) FROM failures WHERE status = 'open' GROUP BY connector",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(query_err("counting open failures per connector"))?;
        Ok(Stats {
            records: records.into_iter().collect(),
            failures: failures.into_iter().collect(),
        })
    }

    async fn list_failures(&self, filter: &FailureFilter) -> Result<Vec<FailureRow>> {
        let (cond, binds) = ops::failure_conditions(filter, ops::Dialect::Sqlite);
        let sql = format!(
            "SELECT {FAILURE_COLUMNS} FROM failures AS f WHERE true{cond} ORDER BY f.id LIMIT ?{}",
            binds.len() + 1
        );
        // Only placeholders and fixed fragments are spliced in; every value is bound.
        let q = bind_all(sqlx::query_as::<_, FailureTuple>(AssertSqlSafe(sql)), binds);
        let rows = q
            .bind(failure_limit(filter.limit))
            .fetch_all(&self.readers)
            .await
            .map_err(query_err("listing failures"))?;
        rows.into_iter().map(failure_from_tuple).collect()
    }

    async fn list_failure_ids(&self, filter: &FailureFilter) -> Result<Vec<String>> {
        let (cond, binds) = ops::failure_conditions(filter, ops::Dialect::Sqlite);
        let sql = format!(
            "SELECT f.id FROM failures AS f WHERE true{cond} ORDER BY f.id LIMIT ?{}",
            binds.len() + 1
        );
        let rows: Vec<(String,)> = bind_all(sqlx::query_as(AssertSqlSafe(sql)), binds)
            .bind(i64::from(filter.limit.clamp(1, 10_000)))
            .fetch_all(&self.readers)
            .await
            .map_err(query_err("listing failure ids"))?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn count_failures(&self, filter: &FailureFilter) -> Result<i64> {
        let unpaged = FailureFilter {
            after_id: None,
            ..filter.clone()
        };
        let (cond, binds) = ops::failure_conditions(&unpaged, ops::Dialect::Sqlite);
        let sql = format!("SELECT count(*) FROM failures AS f WHERE true{cond}");
        let (n,): (i64,) = bind_all(sqlx::query_as(AssertSqlSafe(sql)), binds)
            .fetch_one(&self.readers)
            .await
            .map_err(query_err("counting failures"))?;
        Ok(n)
    }

    async fn failure_counts(&self, filter: &FailureFilter) -> Result<Vec<ops::FailureCount>> {
        let (sql, binds) = ops::failure_counts_query(filter, ops::Dialect::Sqlite);
        let rows = bind_all(sqlx::query_as(AssertSqlSafe(sql)), binds)
            .fetch_all(&self.readers)
            .await
            .map_err(query_err("counting failures by error code"))?;
        Ok(ops::counts_from_rows(rows))
    }

    async fn set_failure_status(
        &self,
        ids: &[String],
        from: &[FailureStatus],
        to: FailureStatus,
        event: &ops::FailureEvent,
    ) -> Result<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(query_err("starting a failure status change"))?;
        let moved: Vec<String> = sqlx::query_scalar(
            "UPDATE failures SET status = ?3 \
             WHERE id IN (SELECT value FROM json_each(?1)) \
               AND status IN (SELECT value FROM json_each(?2)) \
             RETURNING id",
        )
        .bind(to_json(&ids))
        .bind(ops::status_names_json(from))
        .bind(status_name(to))
        .fetch_all(&mut *tx)
        .await
        .map_err(query_err("changing failure statuses"))?;
        sqlx::query(
            "INSERT INTO failure_events (failure_id, at, actor, action, detail) \
             SELECT value, ?2, ?3, ?4, ?5 FROM json_each(?1)",
        )
        .bind(to_json(&moved))
        .bind(event.at.timestamp_micros())
        .bind(&event.actor)
        .bind(&event.action)
        .bind(event.detail.to_string())
        .execute(&mut *tx)
        .await
        .map_err(query_err("appending failure history"))?;
        tx.commit()
            .await
            .map_err(query_err("committing a failure status change"))?;
        Ok(moved)
    }

    async fn failure_events(&self, id: &str) -> Result<Vec<ops::FailureEvent>> {
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT at, actor, action, detail FROM failure_events WHERE failure_id = ?1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.readers)
        .await
        .map_err(query_err("reading failure history"))?;
        rows.into_iter()
            .map(|(at, actor, action, detail)| {
                Ok(ops::FailureEvent {
                    at: time_from_micros("failure event time", at)?,
                    actor,
                    action,
                    detail: parse_json("failure event detail", &detail)?,
                })
            })
            .collect()
    }

    async fn append_failure_event(&self, id: &str, event: &ops::FailureEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO failure_events (failure_id, at, actor, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(id)
        .bind(event.at.timestamp_micros())
        .bind(&event.actor)
        .bind(&event.action)
        .bind(event.detail.to_string())
        .execute(&self.writer)
        .await
        .map_err(query_err("appending failure history"))?;
        Ok(())
    }

    async fn create_edit(&self, row: &ops::EditRow) -> Result<()> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(query_err("starting an edit"))?;
        sqlx::query(
            "UPDATE failure_edits SET status = 'superseded' WHERE failure_id = ?1 AND status = 'pending'",
        )
        .bind(&row.failure_id)
        .execute(&mut *tx)
        .await
        .map_err(query_err("superseding earlier edits"))?;
        sqlx::query(
            "INSERT INTO failure_edits (id, failure_id, editor, created_at, patch, edited, note, status) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending')",
        )
        .bind(&row.id)
        .bind(&row.failure_id)
        .bind(&row.editor)
        .bind(row.created_at.timestamp_micros())
        .bind(row.patch.as_ref().map(Value::to_string))
        .bind(row.edited.to_string())
        .bind(&row.note)
        .execute(&mut *tx)
        .await
        .map_err(query_err("storing an edit"))?;
        tx.commit().await.map_err(query_err("committing an edit"))?;
        Ok(())
    }

    async fn get_edit(&self, id: &str) -> Result<Option<ops::EditRow>> {
        let sql = format!("SELECT {EDIT_COLUMNS} FROM failure_edits WHERE id = ?1");
        let row: Option<ops::EditTuple> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.readers)
            .await
            .map_err(query_err("reading an edit"))?;
        row.map(ops::edit_from_tuple).transpose()
    }

    async fn list_edits(
        &self,
        status: Option<ops::EditStatus>,
        failure_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ops::EditRow>> {
        let sql = format!(
            "SELECT {EDIT_COLUMNS} FROM failure_edits \
             WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR failure_id = ?2) \
             ORDER BY created_at DESC, id DESC LIMIT ?3"
        );
        let rows: Vec<ops::EditTuple> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(status.map(ops::EditStatus::as_str))
            .bind(failure_id)
            .bind(failure_limit(limit))
            .fetch_all(&self.readers)
            .await
            .map_err(query_err("listing edits"))?;
        rows.into_iter().map(ops::edit_from_tuple).collect()
    }

    async fn decide_edit(
        &self,
        id: &str,
        to: ops::EditStatus,
        decided_by: &str,
        outcome: &Value,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE failure_edits SET status = ?2, decided_by = ?3, decided_at = ?4, outcome = ?5 \
             WHERE id = ?1 AND status = 'pending' AND editor <> ?3",
        )
        .bind(id)
        .bind(to.as_str())
        .bind(decided_by)
        .bind(now_micros())
        .bind(outcome.to_string())
        .execute(&self.writer)
        .await
        .map_err(query_err("deciding an edit"))?;
        Ok(n.rows_affected() == 1)
    }

    async fn append_audit(&self, entry: &ops::NewAudit) -> Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, action, target, filter, count, outcome) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING seq",
        )
        .bind(now_micros())
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(entry.filter.to_string())
        .bind(entry.count)
        .bind(entry.outcome.to_string())
        .fetch_one(&self.writer)
        .await
        .map_err(query_err("appending to the audit log"))
    }

    async fn list_audit(&self, after_seq: i64, limit: u32) -> Result<Vec<ops::AuditEntry>> {
        let rows: Vec<AuditTuple> = sqlx::query_as(
            "SELECT seq, at, actor, action, target, filter, count, outcome FROM audit_log \
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .bind(after_seq)
        .bind(failure_limit(limit))
        .fetch_all(&self.readers)
        .await
        .map_err(query_err("reading the audit log"))?;
        rows.into_iter().map(audit_from_tuple).collect()
    }

    async fn create_token(
        &self,
        name: &str,
        role: ops::Role,
        token_hash: &str,
    ) -> Result<ops::TokenRow> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_micros();
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, token_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&id)
        .bind(name)
        .bind(role.as_str())
        .bind(token_hash)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(query_err("creating a token"))?;
        token_from_tuple((id, name.to_owned(), role.as_str().to_owned(), now, None))
    }

    async fn find_token(&self, token_hash: &str) -> Result<Option<ops::TokenRow>> {
        let row: Option<TokenTuple> = sqlx::query_as(
            "SELECT id, name, role, created_at, revoked_at FROM api_tokens \
             WHERE token_hash = ?1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.readers)
        .await
        .map_err(query_err("looking up a token"))?;
        row.map(token_from_tuple).transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<ops::TokenRow>> {
        let rows: Vec<TokenTuple> = sqlx::query_as(
            "SELECT id, name, role, created_at, revoked_at FROM api_tokens ORDER BY created_at, id",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(query_err("listing tokens"))?;
        rows.into_iter().map(token_from_tuple).collect()
    }

    async fn revoke_token(&self, id_or_name: &str) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE api_tokens SET revoked_at = ?2 WHERE (id = ?1 OR name = ?1) AND revoked_at IS NULL",
        )
        .bind(id_or_name)
        .bind(now_micros())
        .execute(&self.writer)
        .await
        .map_err(query_err("revoking a token"))?;
        Ok(n.rows_affected() > 0)
    }

    async fn get_failure(&self, id: &str) -> Result<Option<FailureRow>> {
        let sql = format!("SELECT {FAILURE_COLUMNS} FROM failures WHERE id = ?1");
        let row: Option<FailureTuple> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.readers)
            .await
            .map_err(query_err("reading a failure"))?;
        row.map(failure_from_tuple).transpose()
    }

    async fn checkpoint(&self, connector: &str, stream: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT cursor FROM checkpoints WHERE connector = ?1 AND stream = ?2")
            .bind(connector)
            .bind(stream)
            .fetch_optional(&self.readers)
            .await
            .map_err(query_err("reading a checkpoint"))
    }

    async fn save_checkpoint(&self, connector: &str, stream: &str, cursor: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO checkpoints (connector, stream, cursor, updated_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (connector, stream) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        )
        .bind(connector)
        .bind(stream)
        .bind(cursor)
        .bind(now_micros())
        .execute(&self.writer)
        .await
        .map_err(query_err("saving a checkpoint"))?;
        Ok(())
    }

    async fn delete_checkpoint(&self, connector: &str, stream: &str) -> Result<()> {
        sqlx::query("DELETE FROM checkpoints WHERE connector = ?1 AND stream = ?2")
            .bind(connector)
            .bind(stream)
            .execute(&self.writer)
            .await
            .map_err(query_err("deleting a checkpoint"))?;
        Ok(())
    }

    async fn begin_run(&self, run_id: &str) -> Result<()> {
        sqlx::query("INSERT INTO sync_runs (run_id, started_at) VALUES (?1, ?2) ON CONFLICT (run_id) DO NOTHING")
            .bind(run_id)
            .bind(now_micros())
            .execute(&self.writer)
            .await
            .map_err(query_err("registering a sync run"))?;
        Ok(())
    }

    async fn add_published(&self, run_id: &str, events: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO sync_runs (run_id, published, started_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (run_id) DO UPDATE SET published = sync_runs.published + excluded.published",
        )
        .bind(run_id)
        .bind(events)
        .bind(now_micros())
        .execute(&self.writer)
        .await
        .map_err(query_err("counting published events"))?;
        Ok(())
    }

    async fn run_progress(&self, run_id: &str) -> Result<RunProgress> {
        let row: Option<(i64, i64, i64)> =
            sqlx::query_as("SELECT published, ingested, failed FROM sync_runs WHERE run_id = ?1")
                .bind(run_id)
                .fetch_optional(&self.readers)
                .await
                .map_err(query_err("reading run progress"))?;
        Ok(row
            .map(|(published, ingested, failed)| RunProgress {
                published,
                ingested,
                failed,
            })
            .unwrap_or_default())
    }

    async fn changes(
        &self,
        record_type: Option<RecordType>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Change>> {
        let rows: Vec<ChangeTuple> = sqlx::query_as(
            "SELECT seq, record_type, key, version, deleted, division, data, changed_at, source FROM record_versions \
             WHERE seq > ?1 AND (?3 IS NULL OR record_type = ?3) ORDER BY seq LIMIT ?2",
        )
        .bind(after_seq)
        .bind(i64::from(limit))
        .bind(record_type.map(RecordType::as_str))
        .fetch_all(&self.readers)
        .await
        .map_err(query_err("reading the change feed"))?;
        rows.into_iter().map(change_from_tuple).collect()
    }

    async fn count_changes(&self, record_type: Option<RecordType>, after_seq: i64) -> Result<i64> {
        sqlx::query_scalar(
            "SELECT count(*) FROM record_versions WHERE seq > ?1 AND (?2 IS NULL OR record_type = ?2)",
        )
        .bind(after_seq)
        .bind(record_type.map(RecordType::as_str))
        .fetch_one(&self.readers)
        .await
        .map_err(query_err("counting changes"))
    }

    async fn feed_cursor(&self, consumer: &str, feed: &str) -> Result<Option<i64>> {
        sqlx::query_scalar("SELECT seq FROM feed_cursors WHERE consumer = ?1 AND feed = ?2")
            .bind(consumer)
            .bind(feed)
            .fetch_optional(&self.readers)
            .await
            .map_err(query_err("reading a feed cursor"))
    }

    async fn save_feed_cursor(&self, consumer: &str, feed: &str, seq: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO feed_cursors (consumer, feed, seq, updated_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (consumer, feed) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at",
        )
        .bind(consumer)
        .bind(feed)
        .bind(seq)
        .bind(now_micros())
        .execute(&self.writer)
        .await
        .map_err(query_err("saving a feed cursor"))?;
        Ok(())
    }

    async fn feed_cursors(&self) -> Result<Vec<FeedCursor>> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT consumer, feed, seq, updated_at FROM feed_cursors ORDER BY consumer, feed",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(query_err("listing feed cursors"))?;
        rows.into_iter().map(feed_cursor_from_tuple).collect()
    }

    async fn records_page(
        &self,
        record_type: RecordType,
        after_key: &str,
        limit: u32,
    ) -> Result<Vec<(String, Value)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT r.key, v.data FROM records AS r JOIN record_versions AS v ON v.seq = r.seq \
             WHERE r.record_type = ?1 AND r.key > ?2 AND NOT r.deleted ORDER BY r.key LIMIT ?3",
        )
        .bind(record_type.as_str())
        .bind(after_key)
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await
        .map_err(query_err("reading a page of records"))?;
        rows.into_iter()
            .map(|(k, d)| Ok((k, parse_json("record data", &d)?)))
            .collect()
    }

    async fn raise_deadline_alert(
        &self,
        rule: &str,
        record_type: RecordType,
        key: &str,
        status: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO deadline_alerts (rule, record_type, key, status, raised_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )
        .bind(rule)
        .bind(record_type.as_str())
        .bind(key)
        .bind(status)
        .bind(now_micros())
        .execute(&self.writer)
        .await
        .map_err(query_err("noting a deadline alert"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_push_receipts(&self, receipts: &[PushReceipt]) -> Result<()> {
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(query_err("starting a receipt write"))?;
        for r in receipts {
            sqlx::query(
                "INSERT OR REPLACE INTO push_receipts \
                   (target, seq, record_type, key, version, op, accepted, request_key, sent_at, answer) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .bind(&r.target)
            .bind(r.seq)
            .bind(r.record_type.as_str())
            .bind(&r.key)
            .bind(r.version)
            .bind(&r.op)
            .bind(r.accepted)
            .bind(&r.request_key)
            .bind(r.sent_at.timestamp_micros())
            .bind(r.answer.to_string())
            .execute(&mut *tx)
            .await
            .map_err(query_err("writing a push receipt"))?;
        }
        tx.commit()
            .await
            .map_err(query_err("committing push receipts"))?;
        Ok(())
    }

    async fn push_receipts(&self, record_type: RecordType, key: &str) -> Result<Vec<PushReceipt>> {
        let rows: Vec<ReceiptTuple> = sqlx::query_as(
            "SELECT target, seq, record_type, key, version, op, accepted, request_key, sent_at, answer \
             FROM push_receipts WHERE record_type = ?1 AND key = ?2 ORDER BY seq, target",
        )
        .bind(record_type.as_str())
        .bind(key)
        .fetch_all(&self.readers)
        .await
        .map_err(query_err("reading push receipts"))?;
        rows.into_iter().map(receipt_from_tuple).collect()
    }

    async fn accepted_push_keys(
        &self,
        target: &str,
        record_type: RecordType,
        keys: &[String],
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for chunk in keys.chunks(500) {
            let marks = (0..chunk.len())
                .map(|i| format!("?{}", i + 3))
                .collect::<Vec<_>>()
                .join(",");
            let sql = format!(
                "SELECT DISTINCT key FROM push_receipts WHERE target = ?1 AND record_type = ?2 AND accepted AND key IN ({marks})"
            );
            let mut q = sqlx::query_scalar(AssertSqlSafe(sql))
                .bind(target)
                .bind(record_type.as_str());
            for k in chunk {
                q = q.bind(k);
            }
            let found: Vec<String> = q
                .fetch_all(&self.readers)
                .await
                .map_err(query_err("reading accepted push keys"))?;
            out.extend(found);
        }
        Ok(out)
    }

    async fn commit_page(
        &self,
        run_id: &str,
        connector: &str,
        stream: &str,
        cursor: &str,
        commit_id: &str,
        events: i64,
    ) -> Result<()> {
        let e = query_err("committing a page (checkpoint and run count)");
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(query_err("starting a page commit"))?;
        let prev: Option<Option<String>> = sqlx::query_scalar(
            "SELECT last_commit FROM checkpoints WHERE connector = ?1 AND stream = ?2",
        )
        .bind(connector)
        .bind(stream)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_err("reading a checkpoint"))?;
        sqlx::query(
            "INSERT INTO checkpoints (connector, stream, cursor, updated_at, last_commit) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (connector, stream) DO UPDATE SET cursor = excluded.cursor, \
               updated_at = excluded.updated_at, last_commit = excluded.last_commit",
        )
        .bind(connector)
        .bind(stream)
        .bind(cursor)
        .bind(now_micros())
        .bind(commit_id)
        .execute(&mut *tx)
        .await
        .map_err(query_err("saving a checkpoint"))?;
        if prev.flatten().as_deref() != Some(commit_id) {
            sqlx::query(
                "INSERT INTO sync_runs (run_id, published, started_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (run_id) DO UPDATE SET published = sync_runs.published + excluded.published",
            )
            .bind(run_id)
            .bind(events)
            .bind(now_micros())
            .execute(&mut *tx)
            .await
            .map_err(query_err("counting published events"))?;
        }
        tx.commit().await.map_err(e)
    }

    async fn checkpoints(&self) -> Result<Vec<scale::CheckpointRow>> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT connector, stream, cursor, updated_at FROM checkpoints ORDER BY connector, stream",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(query_err("listing checkpoints"))?;
        rows.into_iter()
            .map(|(connector, stream, cursor, at)| {
                Ok(scale::CheckpointRow {
                    connector,
                    stream,
                    cursor,
                    updated_at: time_from_micros("checkpoint time", at)?,
                })
            })
            .collect()
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<scale::LeaseState> {
        // The single writer connection serialises this transaction against every other
        // process's on the same file (BEGIN IMMEDIATE takes the write lock first).
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(query_err("starting a lease"))?;
        let now = now_micros();
        let prev: Option<(String, i64)> =
            sqlx::query_as("SELECT holder, expires_at FROM leases WHERE name = ?1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_err("reading a lease"))?;
        let state = match &prev {
            Some((h, expires)) if h != holder && *expires >= now => scale::LeaseState {
                held: false,
                holder: h.clone(),
                took_over_from: None,
            },
            _ => {
                let ttl = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX / 2);
                sqlx::query(
                    "INSERT INTO leases (name, holder, acquired_at, renewed_at, expires_at) VALUES (?1, ?2, ?3, ?3, ?4) \
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                       acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at ELSE excluded.acquired_at END, \
                       renewed_at = excluded.renewed_at, expires_at = excluded.expires_at",
                )
                .bind(name)
                .bind(holder)
                .bind(now)
                .bind(now.saturating_add(ttl))
                .execute(&mut *tx)
                .await
                .map_err(query_err("taking a lease"))?;
                scale::LeaseState {
                    held: true,
                    holder: holder.to_owned(),
                    took_over_from: prev.map(|(h, _)| h).filter(|h| h != holder),
                }
            }
        };
        tx.commit().await.map_err(query_err("taking a lease"))?;
        Ok(state)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = ?1 AND holder = ?2")
            .bind(name)
            .bind(holder)
            .execute(&self.writer)
            .await
            .map_err(query_err("releasing a lease"))?;
        Ok(())
    }

    async fn leases(&self) -> Result<Vec<scale::LeaseRow>> {
        let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT name, holder, acquired_at, renewed_at, expires_at FROM leases ORDER BY name",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(query_err("listing leases"))?;
        rows.into_iter()
            .map(|(name, holder, a, r, e)| {
                Ok(scale::LeaseRow {
                    name,
                    holder,
                    acquired_at: time_from_micros("lease time", a)?,
                    renewed_at: time_from_micros("lease time", r)?,
                    expires_at: time_from_micros("lease time", e)?,
                })
            })
            .collect()
    }

    async fn schedule_state(
        &self,
        connector: &str,
        stream: &str,
    ) -> Result<Option<scale::ScheduleState>> {
        let row: Option<(i64, i64, String, String)> = sqlx::query_as(
            "SELECT occurrence, finished_at, holder, outcome FROM schedule_state WHERE connector = ?1 AND stream = ?2",
        )
        .bind(connector)
        .bind(stream)
        .fetch_optional(&self.readers)
        .await
        .map_err(query_err("reading a schedule"))?;
        row.map(|(o, f, holder, outcome)| {
            Ok(scale::ScheduleState {
                connector: connector.to_owned(),
                stream: stream.to_owned(),
                occurrence: time_from_micros("schedule time", o)?,
                finished_at: time_from_micros("schedule time", f)?,
                holder,
                outcome,
            })
        })
        .transpose()
    }

    async fn finish_occurrence(&self, s: &scale::ScheduleState) -> Result<()> {
        sqlx::query(
            "INSERT INTO schedule_state (connector, stream, occurrence, finished_at, holder, outcome) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (connector, stream) DO UPDATE SET occurrence = excluded.occurrence, \
               finished_at = excluded.finished_at, holder = excluded.holder, outcome = excluded.outcome \
             WHERE schedule_state.occurrence <= excluded.occurrence",
        )
        .bind(&s.connector)
        .bind(&s.stream)
        .bind(s.occurrence.timestamp_micros())
        .bind(s.finished_at.timestamp_micros())
        .bind(&s.holder)
        .bind(&s.outcome)
        .execute(&self.writer)
        .await
        .map_err(query_err("recording a schedule occurrence"))?;
        Ok(())
    }

    async fn record_reconciliation(&self, r: &scale::ReconciliationRow) -> Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO sync_reconciliations (run_id, connector, stream, record_type, holder, \
               started_at, finished_at, upstream_total, expected, fetched, normalised, routed, failed, \
               outside_window, outcome, gaps) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) RETURNING id",
        )
        .bind(&r.run_id)
        .bind(&r.connector)
        .bind(&r.stream)
        .bind(&r.record_type)
        .bind(&r.holder)
        .bind(r.started_at.timestamp_micros())
        .bind(r.finished_at.timestamp_micros())
        .bind(r.upstream_total)
        .bind(r.expected)
        .bind(r.fetched)
        .bind(r.normalised)
        .bind(r.routed)
        .bind(r.failed)
        .bind(r.outside_window)
        .bind(&r.outcome)
        .bind(&r.gaps)
        .fetch_one(&self.writer)
        .await
        .map_err(query_err("recording a reconciliation"))
    }

    async fn reconciliations(
        &self,
        gaps_only: bool,
        before: i64,
        limit: u32,
    ) -> Result<Vec<scale::ReconciliationRow>> {
        let rows = sqlx::query(
            "SELECT id, run_id, connector, stream, record_type, holder, started_at AS started, \
               finished_at AS finished, upstream_total, expected, fetched, normalised, routed, failed, \
               outside_window, outcome, gaps FROM sync_reconciliations \
             WHERE (?1 = 0 OR id < ?1) AND (NOT ?2 OR gaps <> '') ORDER BY id DESC LIMIT ?3",
        )
        .bind(before)
        .bind(gaps_only)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.readers)
        .await
        .map_err(query_err("listing reconciliations"))?;
        rows.iter().map(scale::reconciliation_from_row).collect()
    }

    async fn ping(&self) -> bool {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.readers)
            .await
            .is_ok()
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in a fresh directory under the system temp dir, removed afterwards.
    async fn temp_store(precedence: Precedence) -> (SqliteStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("xiezhi_t_{}", uuid::Uuid::new_v4().simple()));
        let store = SqliteStore::open(&dir.join("nested").join("store.db"), precedence)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        (store, dir)
    }

    /// A database written before the history chain existed: after migration 2 every version
    /// points at its predecessor and history and current bodies read as before.
    #[tokio::test]
    async fn the_history_chain_migration_links_existing_versions() {
        let dir = std::env::temp_dir().join(format!("xiezhi_t_{}", uuid::Uuid::new_v4().simple()));
        let store = SqliteStore::open(&dir.join("store.db"), Precedence::default())
            .await
            .unwrap();
        let mut first = SqliteStore::migrator();
        first.migrations = std::borrow::Cow::Owned(first.migrations[..1].to_vec());
        first.run(&store.writer).await.unwrap();
        sqlx::raw_sql(
            "INSERT INTO records VALUES ('penalty', 'K', 2, 9, 0, '620822', 'h2', '[]', 0); \
             INSERT INTO record_versions (seq, record_type, key, version, deleted, division, \
               content_hash, data, changed_at) VALUES \
               (5, 'penalty', 'K', 1, 0, '620822', 'h1', '{\"v\":1}', 0), \
               (7, 'penalty', 'L', 1, 0, '620822', 'hl', '{\"l\":1}', 0), \
               (9, 'penalty', 'K', 2, 0, '620822', 'h2', '{\"v\":2}', 0);",
        )
        .execute(&store.writer)
        .await
        .unwrap();

        store.migrate().await.unwrap();

        let prev: Vec<(i64, Option<i64>)> =
            sqlx::query_as("SELECT seq, prev_seq FROM record_versions ORDER BY seq")
                .fetch_all(&store.writer)
                .await
                .unwrap();
        assert_eq!(prev, vec![(5, None), (7, None), (9, Some(5))]);
        let history = store.history(RecordType::Penalty, "K").await.unwrap();
        assert_eq!(
            history
                .iter()
                .map(|v| (v.version, v.seq))
                .collect::<Vec<_>>(),
            vec![(1, 5), (2, 9)]
        );
        let current = store
            .get_record(RecordType::Penalty, "K")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(current.data, serde_json::json!({"v": 2}));
        store.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn sqlite_store_passes_the_shared_suite() {
        let (store, dir) = temp_store(crate::store::testsuite::precedence()).await;
        crate::store::testsuite::run(&store).await;
        let writer = store.writer.clone();
        crate::store::testsuite::failure_reopens(&store, |id| async move {
            sqlx::query("UPDATE failures SET status = 'resolved' WHERE id = ?1")
                .bind(id)
                .execute(&writer)
                .await
                .unwrap();
        })
        .await;
        store.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn the_audit_log_and_failure_history_refuse_rewrites() {
        let (store, dir) = temp_store(Precedence::default()).await;
        store
            .append_audit(&ops::NewAudit {
                actor: "cli:root".into(),
                action: "replay".into(),
                target: None,
                filter: serde_json::json!({}),
                count: 1,
                outcome: serde_json::json!({}),
            })
            .await
            .unwrap();
        let f = crate::record::Failure {
            id: "f1".into(),
            stage: crate::record::Stage::Normalize,
            connector: "credit".into(),
            stream: "penalties".into(),
            record_type: None,
            natural_key: None,
            upstream_id: None,
            raw: "{}".into(),
            raw_context: None,
            normalized: None,
            errors: Vec::new(),
            lineage: crate::record::Lineage {
                connector: "credit".into(),
                stream: "penalties".into(),
                sync_run: "r".into(),
                page: "1".into(),
                index: 0,
            },
        };
        store.record_failures("r", &[f]).await.unwrap();
        let moved = store
            .set_failure_status(
                &["f1".into()],
                &[FailureStatus::Open],
                FailureStatus::Discarded,
                &ops::FailureEvent {
                    at: Utc::now(),
                    actor: "cli:root".into(),
                    action: "discarded".into(),
                    detail: serde_json::json!({"reason": "test"}),
                },
            )
            .await
            .unwrap();
        assert_eq!(moved, ["f1"]);
        for sql in [
            "UPDATE failure_events SET actor = 'someone else'",
            "UPDATE audit_log SET actor = 'someone else'",
            "DELETE FROM audit_log",
            "DELETE FROM failure_events",
        ] {
            let e = sqlx::query(sql).execute(&store.writer).await.unwrap_err();
            assert!(e.to_string().contains("append-only"), "{sql}: {e}");
        }
        assert_eq!(store.list_audit(0, 10).await.unwrap().len(), 1);
        store.close().await;
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn open_creates_the_directory_and_migrate_is_idempotent() {
        let (store, dir) = temp_store(Precedence::default()).await;
        assert!(dir.join("nested").join("store.db").exists());
        store.migrate().await.unwrap();
        assert!(store.ping().await);
        assert_eq!(store.kind(), "sqlite");
        store.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn penalty_batch(key: &str) -> Batch {
        let lineage = crate::record::Lineage {
            connector: "credit-platform".into(),
            stream: "penalties".into(),
            sync_run: "run-ro".into(),
            page: "1".into(),
            index: 0,
        };
        let ev = crate::record::Event::new(
            RecordType::Penalty,
            key.into(),
            "620822".into(),
            crate::record::Op::Upsert,
            Some(serde_json::json!({"decision_number": key})),
            &lineage,
            None,
        );
        Batch::new(ev.routing_key(), vec![ev])
    }

    /// The apply path runs through rusqlite, not sqlx: a database that refuses writes must
    /// still read as "unavailable" (the writer keeps the batch and waits), leave no
    /// transaction open on the shared connection, and take the same batch once it accepts
    /// writes again. Both tokio flavours: the multi-threaded one applies in `block_in_place`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_apply_is_unavailable_and_leaves_the_connection_usable() {
        let (store, dir) = temp_store(Precedence::default()).await;
        sqlx::query("PRAGMA query_only = ON")
            .execute(&store.writer)
            .await
            .unwrap();
        let batch = penalty_batch("K-1");
        let e = store.apply(std::slice::from_ref(&batch)).await.unwrap_err();
        assert!(e.is_unavailable(), "{e}");
        assert!(e.to_string().contains("read"), "{e}");
        sqlx::query("PRAGMA query_only = OFF")
            .execute(&store.writer)
            .await
            .unwrap();
        let o = store.apply(std::slice::from_ref(&batch)).await.unwrap();
        assert_eq!((o.inserted, o.duplicate_batches), (1, 0));
        let again = store.apply(&[batch]).await.unwrap();
        assert_eq!((again.inserted, again.duplicate_batches), (0, 1));
        assert!(
            store
                .get_record(RecordType::Penalty, "K-1")
                .await
                .unwrap()
                .is_some()
        );
        store.close().await;
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_new_file_has_8_kib_pages_and_applies_on_a_current_thread_runtime() {
        let (store, dir) = temp_store(Precedence::default()).await;
        let page: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&store.readers)
            .await
            .unwrap();
        assert_eq!(page, 8192);
        let o = store.apply(&[penalty_batch("K-2")]).await.unwrap();
        assert_eq!(o.inserted, 1);
        assert_eq!(store.keys(RecordType::Penalty).await.unwrap(), ["K-2"]);
        store.close().await;
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    #[ignore = "throughput measurement; run with --release --ignored --nocapture"]
    async fn bench_apply_sqlite() {
        let (store, dir) = temp_store(Precedence::default()).await;
        crate::store::testsuite::bench(&store, crate::store::testsuite::bench_events()).await;
        store.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }
}
