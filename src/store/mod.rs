//! Store: the shared supervision store, last stop of pull → normalise → route → **store** → feed.
//!
//! One trait, two implementations: [`postgres::PgStore`] (production) and
//! [`sqlite::SqliteStore`] (the embedded default). Both keep the current version of each record
//! by natural key, its version history, lineage back to the upstream page, a cross-source merge
//! by source precedence, a monotonically increasing change sequence for feeds, the failure store,
//! per-stream checkpoints and per-sync-run accounting.

pub mod merge;
pub mod ops;
pub mod postgres;
pub mod scale;
pub mod sqlite;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::record::{Batch, Failure, FieldError, Lineage, RecordType, Stage};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store query failed while {context}: {source}")]
    Query {
        context: &'static str,
        source: sqlx::Error,
    },
    /// From the SQLite store's apply path, which runs on the writer connection through
    /// rusqlite rather than sqlx (see `store::sqlite::apply`).
    #[error("store query failed while {context}: {source}")]
    Sqlite {
        context: &'static str,
        source: rusqlite::Error,
    },
    #[error("stored data is corrupt ({context}): {reason}")]
    Corrupt {
        context: &'static str,
        reason: String,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Per record type, the connectors in order of precedence (highest first) for the cross-source
/// merge. A source not listed ranks below every listed one (then by name, for determinism).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Precedence(pub BTreeMap<RecordType, Vec<String>>);

/// What applying batches did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyOutcome {
    /// Batches skipped because their id was applied before (redelivery).
    pub duplicate_batches: u64,
    /// New natural keys.
    pub inserted: u64,
    /// Existing records whose merged content changed (a new version).
    pub updated: u64,
    /// Events whose content was already stored (no new version).
    pub unchanged: u64,
    /// Tombstones written.
    pub deleted: u64,
}

impl std::ops::AddAssign for ApplyOutcome {
    fn add_assign(&mut self, o: Self) {
        self.duplicate_batches += o.duplicate_batches;
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.deleted += o.deleted;
    }
}

/// The current state of one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub record_type: RecordType,
    pub key: String,
    pub version: i64,
    /// Change sequence of the latest change.
    pub seq: i64,
    pub deleted: bool,
    pub division: String,
    pub content_hash: String,
    /// The merged national record (`null` for a tombstone).
    pub data: Value,
    /// Per source: lineage of its latest contribution, its content hash, and the fields where it
    /// disagreed with the merged record.
    pub sources: Vec<SourceContribution>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceContribution {
    pub connector: String,
    pub content_hash: String,
    pub lineage: Lineage,
    pub deleted: bool,
    /// Top-level fields where this source's value lost to a higher-precedence source.
    pub overridden_fields: Vec<String>,
}

/// One entry of a record's version history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordVersion {
    pub version: i64,
    pub seq: i64,
    pub deleted: bool,
    pub content_hash: String,
    pub data: Value,
    pub changed_at: DateTime<Utc>,
}

/// One row of the change feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub seq: i64,
    pub record_type: RecordType,
    pub key: String,
    pub version: i64,
    pub deleted: bool,
    pub division: String,
    pub data: Value,
    pub changed_at: DateTime<Utc>,
    /// The connector whose change produced this version.
    pub source: String,
}

/// One delivery of one change to one upstream, and its answer: the evidence of publication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushReceipt {
    /// `<connector>/<push>`.
    pub target: String,
    pub seq: i64,
    pub record_type: RecordType,
    pub key: String,
    pub version: i64,
    /// `insert`, `update` or `delete`.
    pub op: String,
    pub accepted: bool,
    /// The idempotency key of the request that carried it.
    pub request_key: String,
    pub sent_at: DateTime<Utc>,
    /// The upstream's result for this record.
    pub answer: Value,
}

pub(crate) type ReceiptTuple = (
    String,
    i64,
    String,
    String,
    i64,
    String,
    bool,
    String,
    i64,
    String,
);

pub(crate) fn receipt_from_tuple(t: ReceiptTuple) -> Result<PushReceipt> {
    let (target, seq, record_type, key, version, op, accepted, request_key, sent_at, answer) = t;
    Ok(PushReceipt {
        target,
        seq,
        record_type: record_type_of("receipt record type", &record_type)?,
        key,
        version,
        op,
        accepted,
        request_key,
        sent_at: time_from_micros("receipt sent_at", sent_at)?,
        answer: parse_json("receipt answer", &answer)?,
    })
}

pub(crate) fn feed_cursor_from_tuple(t: (String, String, i64, i64)) -> Result<FeedCursor> {
    let (consumer, feed, seq, at) = t;
    Ok(FeedCursor {
        consumer,
        feed,
        seq,
        updated_at: time_from_micros("feed cursor updated_at", at)?,
    })
}

/// Where a named consumer stands on a feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedCursor {
    pub consumer: String,
    /// A record type, or `*` for every type.
    pub feed: String,
    pub seq: i64,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureStatus {
    Open,
    Replayed,
    Resolved,
    Discarded,
}

/// A failure as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRow {
    pub id: String,
    pub stage: Stage,
    pub connector: String,
    pub stream: String,
    pub record_type: Option<RecordType>,
    pub natural_key: Option<String>,
    pub upstream_id: Option<String>,
    pub raw: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_context: Option<String>,
    pub normalized: Option<Value>,
    pub errors: Vec<FieldError>,
    pub lineage: Lineage,
    pub attempts: i64,
    pub status: FailureStatus,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FailureFilter {
    pub connector: Option<String>,
    pub stream: Option<String>,
    pub record_type: Option<RecordType>,
    pub stage: Option<Stage>,
    pub code: Option<String>,
    /// Any of these statuses (empty: any status).
    #[serde(default)]
    pub status: Vec<FailureStatus>,
    /// Last seen at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Last seen before this time.
    pub until: Option<DateTime<Utc>>,
    /// Free text: a substring of the natural key or the upstream id, or the failure id.
    pub text: Option<String>,
    /// Only these failure ids (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// Return rows with `id` greater than this (keyset pagination, ordered by id).
    pub after_id: Option<String>,
    pub limit: u32,
}

/// `GET /v1/stats`: stored (non-deleted) records per type, open failures per connector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub records: BTreeMap<String, i64>,
    pub failures: BTreeMap<String, i64>,
}

/// Accounting of one sync run: lets `xiezhi sync --once` wait until the store writer (possibly
/// in another process) has ingested everything the run published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunProgress {
    /// Events the run's workers published and had confirmed.
    pub published: i64,
    /// Events of the run the store writer has applied (each batch counted once).
    pub ingested: i64,
    /// Failures the run recorded.
    pub failed: i64,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Applies schema migrations. Idempotent.
    async fn migrate(&self) -> Result<()>;

    /// Applies delivered batches in one transaction: batches already applied (by id) are
    /// skipped; each upsert event replaces its source's contribution, the record is re-merged
    /// by precedence, and a new version with a new change sequence is written only when the
    /// merged content changed; delete events remove the source's contribution and write a
    /// tombstone when no source is left. Per-run `ingested` counters move in the same
    /// transaction.
    async fn apply(&self, batches: &[Batch]) -> Result<ApplyOutcome>;

    /// Records failures durably (upsert by failure id: attempts + 1, last_seen, errors replaced,
    /// status back to open). Moves the run's `failed` counter by the number of new rows.
    async fn record_failures(&self, run_id: &str, failures: &[Failure]) -> Result<()>;

    async fn get_record(&self, record_type: RecordType, key: &str) -> Result<Option<StoredRecord>>;
    async fn history(&self, record_type: RecordType, key: &str) -> Result<Vec<RecordVersion>>;
    /// Keys of the current non-deleted records of a type (for reconciliation), sorted.
    async fn keys(&self, record_type: RecordType) -> Result<Vec<String>>;
    /// Number of versions ever written, all types (to show that a re-sync wrote nothing).
    async fn version_count(&self) -> Result<i64>;
    async fn stats(&self) -> Result<Stats>;

    async fn list_failures(&self, filter: &FailureFilter) -> Result<Vec<FailureRow>>;
    async fn get_failure(&self, id: &str) -> Result<Option<FailureRow>>;
    /// Ids of matching failures in id order (keyset-paged like [`Store::list_failures`], up to
    /// 10,000 at a time): cheap to sort whatever plan the database picks, so large sets are
    /// walked by id and read in pages by `ids`.
    async fn list_failure_ids(&self, filter: &FailureFilter) -> Result<Vec<String>>;
    /// How many failures match (`limit` and `after_id` ignored).
    async fn count_failures(&self, filter: &FailureFilter) -> Result<i64>;
    /// Matching failures counted by connector and error code, largest first.
    async fn failure_counts(&self, filter: &FailureFilter) -> Result<Vec<ops::FailureCount>>;
    /// Moves the failures among `ids` that are in one of the `from` statuses to `to`, and
    /// appends `event` to the history of each one moved, in one transaction. Returns the ids
    /// moved: a failure another operator moved first is left out, so two operators acting at
    /// once each act on different failures.
    async fn set_failure_status(
        &self,
        ids: &[String],
        from: &[FailureStatus],
        to: FailureStatus,
        event: &ops::FailureEvent,
    ) -> Result<Vec<String>>;
    /// A failure's history, oldest first.
    async fn failure_events(&self, id: &str) -> Result<Vec<ops::FailureEvent>>;

    /// Appends one event to a failure's history without changing its status.
    async fn append_failure_event(&self, id: &str, event: &ops::FailureEvent) -> Result<()>;

    /// Stores a pending edit (`row.status` is ignored); earlier pending edits of the same
    /// failure become superseded.
    async fn create_edit(&self, row: &ops::EditRow) -> Result<()>;
    async fn get_edit(&self, id: &str) -> Result<Option<ops::EditRow>>;
    /// Edits, newest first, optionally of one status and one failure.
    async fn list_edits(
        &self,
        status: Option<ops::EditStatus>,
        failure_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ops::EditRow>>;
    /// Decides a pending edit. Nobody decides their own edit: `false` when the edit is not
    /// pending or `decided_by` is its editor.
    async fn decide_edit(
        &self,
        id: &str,
        to: ops::EditStatus,
        decided_by: &str,
        outcome: &Value,
    ) -> Result<bool>;

    /// Appends to the audit log (which refuses updates and deletes); returns its number.
    async fn append_audit(&self, entry: &ops::NewAudit) -> Result<i64>;
    /// Audit entries after `after_seq`, oldest first.
    async fn list_audit(&self, after_seq: i64, limit: u32) -> Result<Vec<ops::AuditEntry>>;

    /// Stores a new token's hash under a name and role.
    async fn create_token(
        &self,
        name: &str,
        role: ops::Role,
        token_hash: &str,
    ) -> Result<ops::TokenRow>;
    /// The unrevoked token with this hash.
    async fn find_token(&self, token_hash: &str) -> Result<Option<ops::TokenRow>>;
    async fn list_tokens(&self) -> Result<Vec<ops::TokenRow>>;
    /// Revokes a token by id or name; `false` when there is no such unrevoked token.
    async fn revoke_token(&self, id_or_name: &str) -> Result<bool>;

    async fn checkpoint(&self, connector: &str, stream: &str) -> Result<Option<String>>;
    async fn save_checkpoint(&self, connector: &str, stream: &str, cursor: &str) -> Result<()>;
    /// Forgets a checkpoint (a finished window re-pull's own); a missing one is no error.
    async fn delete_checkpoint(&self, connector: &str, stream: &str) -> Result<()>;

    /// Registers a sync run (idempotent).
    async fn begin_run(&self, run_id: &str) -> Result<()>;
    /// Adds confirmed, published events to a run.
    async fn add_published(&self, run_id: &str, events: i64) -> Result<()>;
    async fn run_progress(&self, run_id: &str) -> Result<RunProgress>;

    /// Changes after `after_seq` in sequence order, optionally of one type.
    async fn changes(
        &self,
        record_type: Option<RecordType>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Change>>;

    /// Changes of one type (or all) after `after_seq`: a feed consumer's lag.
    async fn count_changes(&self, record_type: Option<RecordType>, after_seq: i64) -> Result<i64>;
    /// A named consumer's cursor on a feed: the last change sequence it confirmed.
    async fn feed_cursor(&self, consumer: &str, feed: &str) -> Result<Option<i64>>;
    async fn save_feed_cursor(&self, consumer: &str, feed: &str, seq: i64) -> Result<()>;
    /// Every named consumer's cursors, by consumer and feed.
    async fn feed_cursors(&self) -> Result<Vec<FeedCursor>>;

    /// Live records of a type in key order after `after_key`: (key, data).
    async fn records_page(
        &self,
        record_type: RecordType,
        after_key: &str,
        limit: u32,
    ) -> Result<Vec<(String, Value)>>;
    /// Notes that an alert was raised for a deadline in `status`; `false` when it already was.
    async fn raise_deadline_alert(
        &self,
        rule: &str,
        record_type: RecordType,
        key: &str,
        status: &str,
    ) -> Result<bool>;
    /// Keeps push receipts (a repeat of the same target and change replaces the row).
    async fn record_push_receipts(&self, receipts: &[PushReceipt]) -> Result<()>;
    /// Every delivery of a record, to any target, in change order.
    async fn push_receipts(&self, record_type: RecordType, key: &str) -> Result<Vec<PushReceipt>>;
    /// Of `keys`, those `target` has accepted some version of (so the next one is an update).
    async fn accepted_push_keys(
        &self,
        target: &str,
        record_type: RecordType,
        keys: &[String],
    ) -> Result<Vec<String>>;

    /// Moves a stream's checkpoint past a page and adds the page's confirmed events to the run,
    /// in one transaction. `commit_id` names the page commit (`<run>/<page ordinal>`): a retry
    /// of a commit that did go through (its answer was lost) counts the events once.
    async fn commit_page(
        &self,
        run_id: &str,
        connector: &str,
        stream: &str,
        cursor: &str,
        commit_id: &str,
        events: i64,
    ) -> Result<()>;
    /// Every checkpoint, with when it last moved (its age is a metric).
    async fn checkpoints(&self) -> Result<Vec<scale::CheckpointRow>>;

    /// Takes lease `name` for `holder` for `ttl` when it is free, expired, or `holder`'s already
    /// (then it is renewed). Atomic across instances.
    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<scale::LeaseState>;
    /// Gives a lease up (only `holder`'s own).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;
    /// Every lease, expired ones included (an expired lease is one a dead instance left).
    async fn leases(&self) -> Result<Vec<scale::LeaseRow>>;

    /// The last occurrence a stream's schedule completed.
    async fn schedule_state(
        &self,
        connector: &str,
        stream: &str,
    ) -> Result<Option<scale::ScheduleState>>;
    /// Records a completed occurrence; an older one than stored is ignored.
    async fn finish_occurrence(&self, state: &scale::ScheduleState) -> Result<()>;

    /// Keeps a sync window's reconciliation row; returns its id.
    async fn record_reconciliation(&self, row: &scale::ReconciliationRow) -> Result<i64>;
    /// Reconciliation rows, newest first, before id `before` (0: from the newest); only those
    /// with gaps when `gaps_only`.
    async fn reconciliations(
        &self,
        gaps_only: bool,
        before: i64,
        limit: u32,
    ) -> Result<Vec<scale::ReconciliationRow>>;

    /// `true` when the store answers a trivial query (readiness).
    async fn ping(&self) -> bool;

    /// `postgres` or `sqlite`.
    fn kind(&self) -> &'static str;
}

/// The embedded migrations of a backend: (version, description, SQL), in order.
pub(crate) fn migrator(files: &[(i64, &'static str, &'static str)]) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType};
    sqlx::migrate::Migrator::with_migrations(
        files
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    (*description).into(),
                    MigrationType::Simple,
                    sqlx::AssertSqlSafe(*sql).into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Maps a sqlx error to [`StoreError::Query`] naming what the store was doing.
pub(crate) fn query_err(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

/// Parses JSON text the store wrote itself; failure means the row was altered behind our back.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    context: &'static str,
    text: &str,
) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        context,
        reason: e.to_string(),
    })
}

/// Parses a stored enum name (record type, stage, status) through its serde spelling.
pub(crate) fn parse_name<T: serde::de::DeserializeOwned>(
    context: &'static str,
    name: &str,
) -> Result<T> {
    serde_json::from_value(Value::String(name.to_owned())).map_err(|e| StoreError::Corrupt {
        context,
        reason: format!("unknown name `{name}`: {e}"),
    })
}

pub(crate) fn record_type_of(context: &'static str, name: &str) -> Result<RecordType> {
    name.parse()
        .map_err(|e: crate::record::UnknownRecordType| StoreError::Corrupt {
            context,
            reason: e.to_string(),
        })
}

pub(crate) fn status_name(status: FailureStatus) -> &'static str {
    match status {
        FailureStatus::Open => "open",
        FailureStatus::Replayed => "replayed",
        FailureStatus::Resolved => "resolved",
        FailureStatus::Discarded => "discarded",
    }
}

pub(crate) fn time_from_micros(context: &'static str, micros: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| StoreError::Corrupt {
        context,
        reason: format!("timestamp {micros} µs is out of range"),
    })
}

/// Default and ceiling of `FailureFilter::limit` (0 means the default).
pub(crate) fn failure_limit(limit: u32) -> i64 {
    match limit {
        0 => 100,
        n => i64::from(n.min(10_000)),
    }
}

/// Column values of failures being recorded, shared by both backends.
pub(crate) struct FailureCols {
    pub ids: Vec<String>,
    pub stages: Vec<&'static str>,
    pub connectors: Vec<String>,
    pub streams: Vec<String>,
    pub record_types: Vec<Option<&'static str>>,
    pub natural_keys: Vec<Option<String>>,
    pub upstream_ids: Vec<Option<String>>,
    pub raws: Vec<String>,
    pub normalized: Vec<Option<String>>,
    pub errors: Vec<String>,
    pub lineages: Vec<String>,
    pub raw_contexts: Vec<Option<String>>,
    /// How often the id occurs in the call (a failure listed twice is two attempts).
    pub attempts: Vec<i64>,
}

impl FailureCols {
    /// One row per failure id, the last occurrence's content winning.
    pub(crate) fn from_failures(failures: &[Failure]) -> FailureCols {
        let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let mut rows: Vec<(&Failure, i64)> = Vec::new();
        for f in failures {
            match index.get(f.id.as_str()) {
                Some(&i) => {
                    rows[i].0 = f;
                    rows[i].1 += 1;
                }
                None => {
                    index.insert(&f.id, rows.len());
                    rows.push((f, 1));
                }
            }
        }
        FailureCols {
            ids: rows.iter().map(|(f, _)| f.id.clone()).collect(),
            stages: rows.iter().map(|(f, _)| f.stage.as_str()).collect(),
            connectors: rows.iter().map(|(f, _)| f.connector.clone()).collect(),
            streams: rows.iter().map(|(f, _)| f.stream.clone()).collect(),
            record_types: rows
                .iter()
                .map(|(f, _)| f.record_type.map(RecordType::as_str))
                .collect(),
            natural_keys: rows.iter().map(|(f, _)| f.natural_key.clone()).collect(),
            upstream_ids: rows.iter().map(|(f, _)| f.upstream_id.clone()).collect(),
            raws: rows.iter().map(|(f, _)| f.raw.clone()).collect(),
            normalized: rows
                .iter()
                .map(|(f, _)| f.normalized.as_ref().map(Value::to_string))
                .collect(),
            errors: rows
                .iter()
                .map(|(f, _)| serde_json::to_string(&f.errors).unwrap_or_else(|_| "[]".into()))
                .collect(),
            lineages: rows
                .iter()
                .map(|(f, _)| serde_json::to_string(&f.lineage).unwrap_or_else(|_| "{}".into()))
                .collect(),
            attempts: rows.iter().map(|(_, n)| *n).collect(),
            raw_contexts: rows.iter().map(|(f, _)| f.raw_context.clone()).collect(),
        }
    }
}

/// A failure row as both backends select it: id, stage, connector, stream, record_type,
/// natural_key, upstream_id, raw, normalized, errors, lineage, attempts, status, first_seen µs,
/// last_seen µs, raw_context.
pub(crate) type FailureTuple = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    String,
    String,
    i64,
    String,
    i64,
    i64,
    Option<String>,
);

pub(crate) fn failure_from_tuple(t: FailureTuple) -> Result<FailureRow> {
    let (
        id,
        stage,
        connector,
        stream,
        record_type,
        natural_key,
        upstream_id,
        raw,
        normalized,
        errors,
        lineage,
        attempts,
        status,
        first_seen,
        last_seen,
        raw_context,
    ) = t;
    Ok(FailureRow {
        stage: parse_name("failure stage", &stage)?,
        record_type: record_type
            .as_deref()
            .map(|n| record_type_of("failure record type", n))
            .transpose()?,
        normalized: normalized
            .as_deref()
            .map(|n| parse_json("failure normalized record", n))
            .transpose()?,
        errors: parse_json("failure errors", &errors)?,
        lineage: parse_json("failure lineage", &lineage)?,
        status: parse_name("failure status", &status)?,
        first_seen: time_from_micros("failure first_seen", first_seen)?,
        last_seen: time_from_micros("failure last_seen", last_seen)?,
        id,
        connector,
        stream,
        natural_key,
        upstream_id,
        raw,
        raw_context,
        attempts,
    })
}

/// A current-record row as both backends select it: version, seq, deleted, division,
/// content_hash, data, sources, updated_at µs.
pub(crate) type RecordTuple = (i64, i64, bool, String, String, Option<String>, String, i64);

pub(crate) fn record_from_tuple(
    record_type: RecordType,
    key: &str,
    t: RecordTuple,
) -> Result<StoredRecord> {
    let (version, seq, deleted, division, content_hash, data, sources, updated_at) = t;
    Ok(StoredRecord {
        record_type,
        key: key.to_owned(),
        version,
        seq,
        deleted,
        division,
        content_hash,
        data: data
            .as_deref()
            .map(|d| parse_json("record data", d))
            .transpose()?
            .unwrap_or(Value::Null),
        sources: parse_json("record sources", &sources)?,
        updated_at: time_from_micros("record updated_at", updated_at)?,
    })
}

/// A record head as both backends select it: record_type, key, version, seq, deleted,
/// division, content_hash, sources.
pub(crate) type HeadTuple = (String, String, i64, i64, bool, String, String, String);

pub(crate) fn head_from_tuple(t: HeadTuple) -> Result<merge::RecordHead> {
    let (record_type, key, version, seq, deleted, division, content_hash, sources) = t;
    Ok(merge::RecordHead {
        record_type: record_type_of("record type", &record_type)?,
        key,
        version,
        seq,
        deleted,
        division,
        content_hash,
        sources: parse_json("record sources", &sources)?,
    })
}

/// A history row: version, seq, deleted, content_hash, data, changed_at µs.
pub(crate) type VersionTuple = (i64, i64, bool, String, Option<String>, i64);

pub(crate) fn version_from_tuple(t: VersionTuple) -> Result<RecordVersion> {
    let (version, seq, deleted, content_hash, data, changed_at) = t;
    Ok(RecordVersion {
        version,
        seq,
        deleted,
        content_hash,
        data: data
            .as_deref()
            .map(|d| parse_json("version data", d))
            .transpose()?
            .unwrap_or(Value::Null),
        changed_at: time_from_micros("version changed_at", changed_at)?,
    })
}

/// A feed row: seq, record_type, key, version, deleted, division, data, changed_at µs.
pub(crate) type ChangeTuple = (
    i64,
    String,
    String,
    i64,
    bool,
    String,
    Option<String>,
    i64,
    String,
);

pub(crate) fn change_from_tuple(t: ChangeTuple) -> Result<Change> {
    let (seq, record_type, key, version, deleted, division, data, changed_at, source) = t;
    Ok(Change {
        seq,
        record_type: record_type_of("change record type", &record_type)?,
        key,
        version,
        deleted,
        division,
        data: data
            .as_deref()
            .map(|d| parse_json("change data", d))
            .transpose()?
            .unwrap_or(Value::Null),
        changed_at: time_from_micros("change changed_at", changed_at)?,
        source,
    })
}

/// The behaviour both backends must show, run against each of them by their own tests, and the
/// apply throughput measurement.
#[cfg(test)]
pub(crate) mod testsuite {
    use std::time::Instant;

    use serde_json::json;

    use super::*;
    use crate::record::{Event, Op, content_hash};

    pub fn precedence() -> Precedence {
        let mut p = Precedence::default();
        p.0.insert(
            RecordType::Penalty,
            vec!["provincial".into(), "credit".into()],
        );
        p
    }

    fn ev(
        record_type: RecordType,
        connector: &str,
        key: &str,
        op: Op,
        data: Option<Value>,
        run: &str,
    ) -> Event {
        let lineage = Lineage {
            connector: connector.into(),
            stream: "main".into(),
            sync_run: run.into(),
            page: "1".into(),
            index: 0,
        };
        Event::new(
            record_type,
            key.into(),
            "620822".into(),
            op,
            data,
            &lineage,
            None,
        )
    }

    fn up(connector: &str, key: &str, data: Value) -> Event {
        ev(
            RecordType::Penalty,
            connector,
            key,
            Op::Upsert,
            Some(data),
            "run-a",
        )
    }

    fn del(connector: &str, key: &str) -> Event {
        ev(
            RecordType::Penalty,
            connector,
            key,
            Op::Delete,
            None,
            "run-a",
        )
    }

    fn batch(events: Vec<Event>) -> Batch {
        Batch::new("penalty.62.6208.620822.test".into(), events)
    }

    fn outcome(inserted: u64, updated: u64, unchanged: u64, deleted: u64) -> ApplyOutcome {
        ApplyOutcome {
            duplicate_batches: 0,
            inserted,
            updated,
            unchanged,
            deleted,
        }
    }

    /// A failure an operator resolved comes back open when the record fails again; `resolve`
    /// sets a status directly (the trait has no method for it).
    pub async fn failure_reopens<F, Fut>(store: &dyn Store, resolve: F)
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let f = failure("reopen", "credit", "SCHEMA_REQUIRED");
        store
            .record_failures("run-o", std::slice::from_ref(&f))
            .await
            .unwrap();
        resolve(f.id.clone()).await;
        let resolved = store.get_failure(&f.id).await.unwrap().unwrap();
        assert_eq!(resolved.status, FailureStatus::Resolved);
        store
            .record_failures("run-o", std::slice::from_ref(&f))
            .await
            .unwrap();
        let again = store.get_failure(&f.id).await.unwrap().unwrap();
        assert_eq!((again.status, again.attempts), (FailureStatus::Open, 2));
        assert_eq!(store.run_progress("run-o").await.unwrap().failed, 1);
    }

    pub async fn run(store: &dyn Store) {
        lifecycle_and_history(store).await;
        redelivery_changes_nothing(store).await;
        same_key_in_one_call(store).await;
        cross_source_merge(store).await;
        change_feed(store).await;
        failures(store).await;
        checkpoints_and_runs(store).await;
        scale_out(store).await;
        stats(store).await;
        operators(store).await;
    }

    async fn lifecycle_and_history(store: &dyn Store) {
        let v1 = json!({"doc": "甘灵罚〔2025〕1号", "amount": 1000});
        assert_eq!(
            store
                .apply(&[batch(vec![up("provincial", "k1", v1.clone())])])
                .await
                .unwrap(),
            outcome(1, 0, 0, 0)
        );
        let r = store
            .get_record(RecordType::Penalty, "k1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.version, r.deleted, r.division.as_str()),
            (1, false, "620822")
        );
        assert_eq!(r.data, v1);
        assert_eq!(r.content_hash, content_hash(&v1));
        assert_eq!(r.sources.len(), 1);
        assert_eq!(r.sources[0].connector, "provincial");
        assert_eq!(r.sources[0].lineage.sync_run, "run-a");
        let versions = store.version_count().await.unwrap();

        // The same content again, in a new batch: nothing new.
        assert_eq!(
            store
                .apply(&[batch(vec![up("provincial", "k1", v1.clone())])])
                .await
                .unwrap(),
            outcome(0, 0, 1, 0)
        );
        assert_eq!(store.version_count().await.unwrap(), versions);

        let v2 = json!({"doc": "甘灵罚〔2025〕1号", "amount": 2000});
        assert_eq!(
            store
                .apply(&[batch(vec![up("provincial", "k1", v2.clone())])])
                .await
                .unwrap(),
            outcome(0, 1, 0, 0)
        );
        let r2 = store
            .get_record(RecordType::Penalty, "k1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((r2.version, r2.data.clone()), (2, v2.clone()));
        assert!(r2.seq > r.seq);

        assert_eq!(
            store
                .apply(&[batch(vec![del("provincial", "k1")])])
                .await
                .unwrap(),
            outcome(0, 0, 0, 1)
        );
        let t = store
            .get_record(RecordType::Penalty, "k1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (t.version, t.deleted, t.data.clone()),
            (3, true, Value::Null)
        );
        assert!(t.sources[0].deleted);
        assert!(
            !store
                .keys(RecordType::Penalty)
                .await
                .unwrap()
                .contains(&"k1".to_string())
        );

        // Deleting again, or deleting what was never stored, is a no-op without a tombstone.
        assert_eq!(
            store
                .apply(&[batch(vec![
                    del("provincial", "k1"),
                    del("provincial", "never")
                ])])
                .await
                .unwrap(),
            outcome(0, 0, 2, 0)
        );
        assert!(
            store
                .get_record(RecordType::Penalty, "never")
                .await
                .unwrap()
                .is_none()
        );

        let h = store.history(RecordType::Penalty, "k1").await.unwrap();
        assert_eq!(h.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(h.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(
            (h[0].data.clone(), h[1].data.clone(), h[2].data.clone()),
            (v1, v2.clone(), Value::Null)
        );
        assert!(h[2].deleted && h[2].content_hash.is_empty());

        // The upstream brings it back: a live key again.
        assert_eq!(
            store
                .apply(&[batch(vec![up("provincial", "k1", v2.clone())])])
                .await
                .unwrap(),
            outcome(1, 0, 0, 0)
        );
        let back = store
            .get_record(RecordType::Penalty, "k1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((back.version, back.deleted, back.data), (4, false, v2));
        assert!(
            store
                .keys(RecordType::Penalty)
                .await
                .unwrap()
                .contains(&"k1".to_string())
        );
    }

    async fn redelivery_changes_nothing(store: &dyn Store) {
        let events = (0..3)
            .map(|i| {
                ev(
                    RecordType::Agency,
                    "provincial",
                    &format!("agency-{i}"),
                    Op::Upsert,
                    Some(json!({"n": i})),
                    "run-r",
                )
            })
            .collect();
        let b = Batch::new("agency.62.6208.620822.provincial".into(), events);
        assert_eq!(
            store.apply(std::slice::from_ref(&b)).await.unwrap(),
            outcome(3, 0, 0, 0)
        );
        let versions = store.version_count().await.unwrap();
        let feed = store.changes(None, 0, 10_000).await.unwrap();
        let again = store.apply(&[b.clone(), b.clone()]).await.unwrap();
        assert_eq!(
            again,
            ApplyOutcome {
                duplicate_batches: 2,
                ..Default::default()
            }
        );
        assert_eq!(store.version_count().await.unwrap(), versions);
        assert_eq!(store.changes(None, 0, 10_000).await.unwrap(), feed);
        assert_eq!(store.run_progress("run-r").await.unwrap().ingested, 3);

        // A batch delivered twice inside one call is applied and counted once.
        let events = vec![ev(
            RecordType::Agency,
            "provincial",
            "agency-9",
            Op::Upsert,
            Some(json!({"n": 9})),
            "run-r",
        )];
        let b2 = Batch::new("agency.62.6208.620822.provincial".into(), events);
        let o = store.apply(&[b2.clone(), b2]).await.unwrap();
        assert_eq!(
            o,
            ApplyOutcome {
                duplicate_batches: 1,
                inserted: 1,
                ..Default::default()
            }
        );
        assert_eq!(store.run_progress("run-r").await.unwrap().ingested, 4);
    }

    async fn same_key_in_one_call(store: &dyn Store) {
        let b1 = batch(vec![
            up("provincial", "s1", json!({"a": 1})),
            up("provincial", "s1", json!({"a": 1})),
        ]);
        let b2 = batch(vec![
            up("provincial", "s1", json!({"a": 2})),
            del("provincial", "s1"),
        ]);
        let b3 = batch(vec![up("provincial", "s1", json!({"a": 3}))]);
        assert_eq!(
            store.apply(&[b1, b2, b3]).await.unwrap(),
            outcome(2, 1, 1, 1)
        );
        let h = store.history(RecordType::Penalty, "s1").await.unwrap();
        let shape: Vec<(i64, bool)> = h.iter().map(|v| (v.version, v.deleted)).collect();
        assert_eq!(shape, [(1, false), (2, false), (3, true), (4, false)]);
        assert!(h.windows(2).all(|w| w[0].seq < w[1].seq));
        let r = store
            .get_record(RecordType::Penalty, "s1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((r.version, r.seq, r.data), (4, h[3].seq, json!({"a": 3})));
    }

    async fn cross_source_merge(store: &dyn Store) {
        let low = json!({"a": "low", "b": "only-low", "c": null});
        assert_eq!(
            store
                .apply(&[batch(vec![up("credit", "m", low)])])
                .await
                .unwrap(),
            outcome(1, 0, 0, 0)
        );
        let high = json!({"a": "high", "c": "high-c"});
        assert_eq!(
            store
                .apply(&[batch(vec![up("provincial", "m", high)])])
                .await
                .unwrap(),
            outcome(0, 1, 0, 0)
        );
        let r = store
            .get_record(RecordType::Penalty, "m")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.data, json!({"a": "high", "c": "high-c", "b": "only-low"}));
        assert_eq!(r.content_hash, content_hash(&r.data));
        let by: BTreeMap<&str, &SourceContribution> = r
            .sources
            .iter()
            .map(|s| (s.connector.as_str(), s))
            .collect();
        assert_eq!(
            r.sources[0].connector, "provincial",
            "sources are listed by precedence"
        );
        assert!(by["provincial"].overridden_fields.is_empty());
        assert_eq!(by["credit"].overridden_fields, ["a"]);

        // A lower-precedence update changes only what the higher source leaves open.
        let low2 = json!({"a": "low2", "b": "only-low2"});
        assert_eq!(
            store
                .apply(&[batch(vec![up("credit", "m", low2)])])
                .await
                .unwrap(),
            outcome(0, 1, 0, 0)
        );
        let r = store
            .get_record(RecordType::Penalty, "m")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            r.data,
            json!({"a": "high", "c": "high-c", "b": "only-low2"})
        );
        assert_eq!(r.version, 3);
        let low3 = json!({"a": "low3", "b": "only-low2"});
        assert_eq!(
            store
                .apply(&[batch(vec![up("credit", "m", low3)])])
                .await
                .unwrap(),
            outcome(0, 0, 1, 0)
        );
        let r = store
            .get_record(RecordType::Penalty, "m")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.version, 3);
        let credit = r.sources.iter().find(|s| s.connector == "credit").unwrap();
        assert_eq!(
            credit.content_hash,
            content_hash(&json!({"a": "low3", "b": "only-low2"}))
        );

        // The higher source withdraws: the lower one's values come through; then none is left.
        assert_eq!(
            store
                .apply(&[batch(vec![del("provincial", "m")])])
                .await
                .unwrap(),
            outcome(0, 1, 0, 0)
        );
        let r = store
            .get_record(RecordType::Penalty, "m")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.data, json!({"a": "low3", "b": "only-low2"}));
        assert!(r.sources.iter().all(|s| s.overridden_fields.is_empty()));
        assert_eq!(
            store
                .apply(&[batch(vec![del("credit", "m")])])
                .await
                .unwrap(),
            outcome(0, 0, 0, 1)
        );
        let r = store
            .get_record(RecordType::Penalty, "m")
            .await
            .unwrap()
            .unwrap();
        assert!(r.deleted);
        assert_eq!(r.version, 5);
    }

    async fn change_feed(store: &dyn Store) {
        let all = store.changes(None, 0, 100_000).await.unwrap();
        assert_eq!(all.len() as i64, store.version_count().await.unwrap());
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
        // Paging by the last seen sequence yields exactly the same rows.
        let mut paged = Vec::new();
        let mut after = 0;
        loop {
            let page = store.changes(None, after, 3).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.seq;
            paged.extend(page);
        }
        assert_eq!(paged, all);
        let agencies = store
            .changes(Some(RecordType::Agency), 0, 1000)
            .await
            .unwrap();
        assert_eq!(agencies.len(), 4);
        assert!(
            agencies
                .iter()
                .all(|c| c.record_type == RecordType::Agency && c.version == 1)
        );
        // Every change matches the record's history.
        for c in all.iter().filter(|c| c.key == "k1") {
            let h = store.history(c.record_type, &c.key).await.unwrap();
            let v = h.iter().find(|v| v.version == c.version).unwrap();
            assert_eq!((v.seq, &v.data, v.deleted), (c.seq, &c.data, c.deleted));
        }
        // A later apply only adds after the previous end.
        let end = all.last().map(|c| c.seq).unwrap_or_default();
        store
            .apply(&[batch(vec![up("provincial", "late", json!({"x": 1}))])])
            .await
            .unwrap();
        let tail = store
            .changes(Some(RecordType::Penalty), end, 10)
            .await
            .unwrap();
        assert_eq!(tail.len(), 1);
        assert_eq!(
            (
                tail[0].key.as_str(),
                tail[0].division.as_str(),
                tail[0].source.as_str()
            ),
            ("late", "620822", "provincial")
        );
        assert!(all.iter().all(|c| !c.source.is_empty()));

        // Lag and named consumers' cursors.
        assert_eq!(
            store.count_changes(None, 0).await.unwrap(),
            all.len() as i64 + 1
        );
        assert_eq!(
            store
                .count_changes(Some(RecordType::Penalty), end)
                .await
                .unwrap(),
            1
        );
        assert_eq!(store.feed_cursor("dw", "penalty").await.unwrap(), None);
        store.save_feed_cursor("dw", "penalty", 3).await.unwrap();
        store.save_feed_cursor("dw", "penalty", end).await.unwrap();
        store.save_feed_cursor("amqp", "*", 1).await.unwrap();
        assert_eq!(store.feed_cursor("dw", "penalty").await.unwrap(), Some(end));
        let cursors = store.feed_cursors().await.unwrap();
        assert_eq!(
            cursors
                .iter()
                .map(|c| (c.consumer.as_str(), c.feed.as_str(), c.seq))
                .collect::<Vec<_>>(),
            vec![("amqp", "*", 1), ("dw", "penalty", end)]
        );

        // Push receipts: a repeat of the same target and change replaces its row.
        let receipt = |seq: i64, accepted: bool| PushReceipt {
            target: "credit-platform/penalties".into(),
            seq,
            record_type: RecordType::Penalty,
            key: "late".into(),
            version: seq,
            op: "insert".into(),
            accepted,
            request_key: format!("r{seq}"),
            sent_at: DateTime::from_timestamp(1_750_000_000 + seq, 0).unwrap(),
            answer: json!({"status": if accepted { "accepted" } else { "rejected" }}),
        };
        store
            .record_push_receipts(&[receipt(1, false), receipt(2, false)])
            .await
            .unwrap();
        assert!(
            store
                .accepted_push_keys(
                    "credit-platform/penalties",
                    RecordType::Penalty,
                    &["late".into()]
                )
                .await
                .unwrap()
                .is_empty()
        );
        store
            .record_push_receipts(&[receipt(2, true)])
            .await
            .unwrap();
        let got = store
            .push_receipts(RecordType::Penalty, "late")
            .await
            .unwrap();
        assert_eq!(got, vec![receipt(1, false), receipt(2, true)]);
        assert_eq!(
            store
                .accepted_push_keys(
                    "credit-platform/penalties",
                    RecordType::Penalty,
                    &["late".into(), "other".into()]
                )
                .await
                .unwrap(),
            vec!["late".to_owned()]
        );
    }

    fn failure(id_seed: &str, connector: &str, code: &str) -> Failure {
        let lineage = Lineage {
            connector: connector.into(),
            stream: "penalties".into(),
            sync_run: "run-f".into(),
            page: "7".into(),
            index: 3,
        };
        Failure {
            id: Failure::make_id(
                Stage::Normalize,
                connector,
                "penalties",
                Some(id_seed),
                "{}",
            ),
            stage: Stage::Normalize,
            connector: connector.into(),
            stream: "penalties".into(),
            record_type: Some(RecordType::Penalty),
            natural_key: Some(format!("key-{id_seed}")),
            upstream_id: Some(id_seed.into()),
            raw: format!("{{\"id\":\"{id_seed}\",\"名称\":\"x\"}}"),
            raw_context: Some("id,名称".into()),
            normalized: Some(json!({"doc": id_seed})),
            errors: vec![FieldError {
                code: code.into(),
                path: "/party_code".into(),
                schema_path: String::new(),
                message: "bad".into(),
            }],
            lineage,
        }
    }

    async fn failures(store: &dyn Store) {
        let f1 = failure("u1", "credit", "USCC_CHECK_DIGIT");
        let f2 = failure("u2", "credit", "SCHEMA_REQUIRED");
        let f3 = failure("u3", "hotline", "USCC_CHECK_DIGIT");
        store
            .record_failures("run-f", &[f1.clone(), f2.clone(), f3.clone()])
            .await
            .unwrap();
        assert_eq!(store.run_progress("run-f").await.unwrap().failed, 3);
        let g = store.get_failure(&f1.id).await.unwrap().unwrap();
        assert_eq!(
            (g.attempts, g.status, g.raw.as_str()),
            (1, FailureStatus::Open, f1.raw.as_str())
        );
        assert_eq!(
            (g.errors.clone(), g.lineage.clone(), g.normalized.clone()),
            (f1.errors.clone(), f1.lineage.clone(), f1.normalized.clone())
        );
        assert_eq!(g.first_seen, g.last_seen);

        // The same record failing again: one entry, attempts up, errors replaced, not a new failure.
        let mut f1b = f1.clone();
        f1b.errors[0].code = "OFFICERS_MIN_2".into();
        store
            .record_failures("run-f", &[f1b.clone()])
            .await
            .unwrap();
        let g2 = store.get_failure(&f1.id).await.unwrap().unwrap();
        assert_eq!((g2.attempts, g2.errors.clone()), (2, f1b.errors.clone()));
        assert!(g2.last_seen >= g.last_seen && g2.first_seen == g.first_seen);
        assert_eq!(store.run_progress("run-f").await.unwrap().failed, 3);
        assert!(store.get_failure("nope").await.unwrap().is_none());

        let by_code = store
            .list_failures(&FailureFilter {
                code: Some("USCC_CHECK_DIGIT".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(by_code.len(), 1);
        assert_eq!(by_code[0].id, f3.id);
        let credit = store
            .list_failures(&FailureFilter {
                connector: Some("credit".into()),
                status: vec![FailureStatus::Open],
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(credit.len(), 2);
        let mut ids = vec![f1.id.clone(), f2.id.clone(), f3.id.clone()];
        ids.sort();
        let first = store
            .list_failures(&FailureFilter {
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        let rest = store
            .list_failures(&FailureFilter {
                limit: 2,
                after_id: first.last().map(|f| f.id.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        let paged: Vec<String> = first.iter().chain(&rest).map(|f| f.id.clone()).collect();
        assert_eq!(paged, ids);
        let none = store
            .list_failures(&FailureFilter {
                stage: Some(Stage::Pull),
                record_type: Some(RecordType::Penalty),
                stream: Some("penalties".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(none.is_empty());
    }

    /// What operators read and write: counts by code, windows and free text, guarded status
    /// moves with history, the append-only audit log, tokens.
    async fn operators(store: &dyn Store) {
        let f1 = failure("op1", "credit", "USCC_CHECK_DIGIT");
        let mut f2 = failure("op2", "credit", "USCC_CHECK_DIGIT");
        f2.errors.push(FieldError {
            code: "OFFICERS_MIN_2".into(),
            path: "/officers".into(),
            schema_path: String::new(),
            message: "one officer".into(),
        });
        let f3 = failure("op3", "hotline", "SCHEMA_REQUIRED");
        store
            .record_failures("run-op", &[f1.clone(), f2.clone(), f3.clone()])
            .await
            .unwrap();
        let mine = |connector: Option<&str>| FailureFilter {
            connector: connector.map(str::to_owned),
            text: Some("key-op".into()),
            ..Default::default()
        };
        assert_eq!(store.count_failures(&mine(None)).await.unwrap(), 3);
        let counts = store.failure_counts(&mine(Some("credit"))).await.unwrap();
        assert_eq!(
            counts,
            vec![
                ops::FailureCount {
                    connector: "credit".into(),
                    code: "USCC_CHECK_DIGIT".into(),
                    count: 2
                },
                ops::FailureCount {
                    connector: "credit".into(),
                    code: "OFFICERS_MIN_2".into(),
                    count: 1
                },
            ]
        );
        let later = Utc::now() + chrono::Duration::hours(1);
        let window = |since, until| FailureFilter {
            since,
            until,
            ..mine(None)
        };
        assert_eq!(
            store
                .count_failures(&window(Some(later), None))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .count_failures(&window(None, Some(later)))
                .await
                .unwrap(),
            3
        );
        let exact = FailureFilter {
            text: Some(f3.id.clone()),
            ..Default::default()
        };
        assert_eq!(store.list_failures(&exact).await.unwrap()[0].id, f3.id);
        // LIKE's wildcards in the text are literal.
        let wild = FailureFilter {
            text: Some("key_op%".into()),
            ..Default::default()
        };
        assert_eq!(store.count_failures(&wild).await.unwrap(), 0);
        assert_eq!(
            store
                .get_failure(&f1.id)
                .await
                .unwrap()
                .unwrap()
                .raw_context
                .as_deref(),
            Some("id,名称")
        );

        // Two operators moving the same failures: each failure moves once.
        let event = |actor: &str| ops::FailureEvent {
            at: Utc::now(),
            actor: actor.into(),
            action: "discarded".into(),
            detail: json!({"reason": "test"}),
        };
        let ids = vec![f1.id.clone(), f2.id.clone()];
        let open = [FailureStatus::Open];
        let (alice, bob) = (event("alice"), event("bob"));
        let (a, b) = tokio::join!(
            store.set_failure_status(&ids, &open, FailureStatus::Discarded, &alice),
            store.set_failure_status(&ids, &open, FailureStatus::Discarded, &bob),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.len() + b.len(), 2, "{a:?} {b:?}");
        let history = store.failure_events(&f1.id).await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].detail["reason"], "test");
        assert_eq!(
            store.get_failure(&f1.id).await.unwrap().unwrap().status,
            FailureStatus::Discarded
        );
        // The same record failing again stays discarded; a changed one reopens.
        store
            .record_failures("run-op", std::slice::from_ref(&f1))
            .await
            .unwrap();
        assert_eq!(
            store.get_failure(&f1.id).await.unwrap().unwrap().status,
            FailureStatus::Discarded
        );
        let mut f2b = f2.clone();
        f2b.raw.push(' ');
        store.record_failures("run-op", &[f2b]).await.unwrap();
        assert_eq!(
            store.get_failure(&f2.id).await.unwrap().unwrap().status,
            FailureStatus::Open
        );

        // The audit log numbers entries in order and refuses to be rewritten.
        let entry = |action: &str| ops::NewAudit {
            actor: "token:alice".into(),
            action: action.into(),
            target: None,
            filter: json!({"code": "USCC_CHECK_DIGIT"}),
            count: 2,
            outcome: json!({"passed": 2}),
        };
        let s1 = store.append_audit(&entry("replay")).await.unwrap();
        let s2 = store.append_audit(&entry("discard")).await.unwrap();
        assert!(s2 > s1);
        let log = store.list_audit(s1 - 1, 10).await.unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].entry, entry("replay"));
        assert_eq!(store.list_audit(s1, 10).await.unwrap()[0].seq, s2);

        // Edits: a newer one supersedes a pending one; nobody decides their own.
        let edit = |id: &str, editor: &str| ops::EditRow {
            id: id.into(),
            failure_id: f3.id.clone(),
            editor: editor.into(),
            created_at: Utc::now(),
            patch: Some(json!([{"op": "replace", "path": "/x", "value": 1}])),
            edited: json!({"x": 1}),
            note: Some("typo".into()),
            status: ops::EditStatus::Pending,
            decided_by: None,
            decided_at: None,
            outcome: None,
        };
        store.create_edit(&edit("e1", "token:alice")).await.unwrap();
        store.create_edit(&edit("e2", "token:alice")).await.unwrap();
        let e1 = store.get_edit("e1").await.unwrap().unwrap();
        assert_eq!(e1.status, ops::EditStatus::Superseded);
        let outcome = json!({"resolved": 1});
        assert!(
            !store
                .decide_edit("e2", ops::EditStatus::Approved, "token:alice", &outcome)
                .await
                .unwrap(),
            "four-eyes"
        );
        assert!(
            store
                .decide_edit("e2", ops::EditStatus::Approved, "token:bob", &outcome)
                .await
                .unwrap()
        );
        assert!(
            !store
                .decide_edit("e2", ops::EditStatus::Rejected, "token:carol", &outcome)
                .await
                .unwrap(),
            "decided once"
        );
        let e2 = store.get_edit("e2").await.unwrap().unwrap();
        assert_eq!(
            (e2.status, e2.decided_by.as_deref(), e2.outcome.as_ref()),
            (ops::EditStatus::Approved, Some("token:bob"), Some(&outcome))
        );
        assert_eq!(e2.patch, edit("e2", "x").patch);
        let pending = store
            .list_edits(Some(ops::EditStatus::Pending), Some(&f3.id), 10)
            .await
            .unwrap();
        assert!(pending.is_empty());
        assert_eq!(
            store
                .list_edits(None, Some(&f3.id), 10)
                .await
                .unwrap()
                .len(),
            2
        );
        store
            .append_failure_event(
                &f3.id,
                &ops::FailureEvent {
                    at: Utc::now(),
                    actor: "token:alice".into(),
                    action: "edited".into(),
                    detail: json!({"edit": "e2"}),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            store.failure_events(&f3.id).await.unwrap()[0].action,
            "edited"
        );

        // Tokens: found by hash while unrevoked.
        let t = store
            .create_token("ops-alice", ops::Role::Operator, "hash-a")
            .await
            .unwrap();
        assert_eq!(
            store.find_token("hash-a").await.unwrap().map(|r| r.role),
            Some(ops::Role::Operator)
        );
        assert!(store.find_token("hash-b").await.unwrap().is_none());
        assert!(
            store
                .create_token("ops-alice", ops::Role::Admin, "hash-c")
                .await
                .is_err(),
            "token names are unique"
        );
        assert!(store.revoke_token(&t.id).await.unwrap());
        assert!(!store.revoke_token("ops-alice").await.unwrap());
        assert!(store.find_token("hash-a").await.unwrap().is_none());
        let listed = store.list_tokens().await.unwrap();
        assert!(
            listed
                .iter()
                .any(|r| r.name == "ops-alice" && r.revoked_at.is_some())
        );
    }

    async fn scale_out(store: &dyn Store) {
        use std::time::Duration;
        // A page commit retried after its answer was lost counts its events once.
        store.begin_run("run-s").await.unwrap();
        for _ in 0..2 {
            store
                .commit_page("run-s", "c", "s", "{\"page\":2}", "run-s/1", 10)
                .await
                .unwrap();
        }
        store
            .commit_page("run-s", "c", "s", "{\"page\":3}", "run-s/2", 5)
            .await
            .unwrap();
        assert_eq!(store.run_progress("run-s").await.unwrap().published, 15);
        assert_eq!(
            store.checkpoint("c", "s").await.unwrap().as_deref(),
            Some("{\"page\":3}")
        );
        let cps = store.checkpoints().await.unwrap();
        let cp = cps
            .iter()
            .find(|c| c.connector == "c" && c.stream == "s")
            .unwrap();
        assert!((Utc::now() - cp.updated_at).num_seconds() < 60);

        // One holder at a time; renewals keep it; another takes it only once it expired.
        let ttl = Duration::from_millis(400);
        let a = store.take_lease("pull:c/s", "a", ttl).await.unwrap();
        assert!(a.held && a.took_over_from.is_none());
        let b = store.take_lease("pull:c/s", "b", ttl).await.unwrap();
        assert!(!b.held);
        assert_eq!(b.holder, "a");
        assert!(store.take_lease("pull:c/s", "a", ttl).await.unwrap().held);
        tokio::time::sleep(Duration::from_millis(600)).await;
        let b = store.take_lease("pull:c/s", "b", ttl).await.unwrap();
        assert!(b.held);
        assert_eq!(b.took_over_from.as_deref(), Some("a"));
        // The old holder neither renews nor releases what it lost.
        assert!(!store.take_lease("pull:c/s", "a", ttl).await.unwrap().held);
        store.release_lease("pull:c/s", "a").await.unwrap();
        assert_eq!(store.leases().await.unwrap()[0].holder, "b");
        store.release_lease("pull:c/s", "b").await.unwrap();
        assert!(store.leases().await.unwrap().is_empty());
        let c = store.take_lease("pull:c/s", "c", ttl).await.unwrap();
        assert!(c.held && c.took_over_from.is_none(), "{c:?}");
        store.release_lease("pull:c/s", "c").await.unwrap();

        // The schedule keeps the latest occurrence, whatever order instances report in.
        assert!(store.schedule_state("c", "s").await.unwrap().is_none());
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let state = |o: &str, h: &str| scale::ScheduleState {
            connector: "c".into(),
            stream: "s".into(),
            occurrence: at(o),
            finished_at: Utc::now(),
            holder: h.into(),
            outcome: "ok".into(),
        };
        store
            .finish_occurrence(&state("2026-12-06T10:10:00Z", "a"))
            .await
            .unwrap();
        store
            .finish_occurrence(&state("2026-12-06T10:00:00Z", "b"))
            .await
            .unwrap();
        let got = store.schedule_state("c", "s").await.unwrap().unwrap();
        assert_eq!(
            (got.occurrence, got.holder.as_str()),
            (at("2026-12-06T10:10:00Z"), "a")
        );

        // Reconciliation rows, newest first; `gaps` selects the ones that do not add up.
        let row = |gaps: &str| scale::ReconciliationRow {
            run_id: "run-s".into(),
            connector: "c".into(),
            stream: "s".into(),
            record_type: "penalty".into(),
            holder: "a".into(),
            started_at: at("2026-12-06T10:00:00Z"),
            finished_at: at("2026-12-06T10:00:05Z"),
            upstream_total: Some(3),
            expected: Some(3),
            fetched: 3,
            normalised: 3,
            routed: 3,
            outcome: "ok".into(),
            gaps: gaps.into(),
            ..Default::default()
        };
        let first = store.record_reconciliation(&row("")).await.unwrap();
        let second = store
            .record_reconciliation(&row("2 fetched"))
            .await
            .unwrap();
        assert!(second > first);
        let all = store.reconciliations(false, 0, 10).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].id, second);
        assert_eq!(all[1].started_at, at("2026-12-06T10:00:00Z"));
        assert_eq!(all[1].upstream_total, Some(3));
        let gaps = store.reconciliations(true, 0, 10).await.unwrap();
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].gaps, "2 fetched");
        assert_eq!(
            store
                .reconciliations(false, second, 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    async fn checkpoints_and_runs(store: &dyn Store) {
        assert_eq!(store.checkpoint("credit", "penalties").await.unwrap(), None);
        store
            .save_checkpoint("credit", "penalties", "page=3")
            .await
            .unwrap();
        store
            .save_checkpoint("credit", "penalties", "page=4")
            .await
            .unwrap();
        store
            .save_checkpoint("credit", "licenses", "c-1")
            .await
            .unwrap();
        assert_eq!(
            store
                .checkpoint("credit", "penalties")
                .await
                .unwrap()
                .as_deref(),
            Some("page=4")
        );
        assert_eq!(
            store
                .checkpoint("credit", "licenses")
                .await
                .unwrap()
                .as_deref(),
            Some("c-1")
        );
        store.delete_checkpoint("credit", "licenses").await.unwrap();
        store.delete_checkpoint("credit", "licenses").await.unwrap();
        assert_eq!(store.checkpoint("credit", "licenses").await.unwrap(), None);
        assert!(
            store
                .checkpoint("credit", "penalties")
                .await
                .unwrap()
                .is_some()
        );

        assert_eq!(
            store.run_progress("run-p").await.unwrap(),
            RunProgress::default()
        );
        store.begin_run("run-p").await.unwrap();
        store.begin_run("run-p").await.unwrap();
        store.add_published("run-p", 2).await.unwrap();
        store.add_published("run-p", 3).await.unwrap();
        let events = vec![
            ev(
                RecordType::License,
                "credit",
                "l1",
                Op::Upsert,
                Some(json!({"l": 1})),
                "run-p",
            ),
            ev(
                RecordType::License,
                "credit",
                "l2",
                Op::Upsert,
                Some(json!({"l": 2})),
                "run-p",
            ),
            ev(
                RecordType::License,
                "credit",
                "l3",
                Op::Upsert,
                Some(json!({"l": 3})),
                "run-q",
            ),
        ];
        store
            .apply(&[Batch::new("license.62.6208.620822.credit".into(), events)])
            .await
            .unwrap();
        assert_eq!(
            store.run_progress("run-p").await.unwrap(),
            RunProgress {
                published: 5,
                ingested: 2,
                failed: 0
            }
        );
        assert_eq!(store.run_progress("run-q").await.unwrap().ingested, 1);
        // A run with no failures gets a row (and zero) when its failures are recorded.
        store.record_failures("run-z", &[]).await.unwrap();
        assert_eq!(
            store.run_progress("run-z").await.unwrap(),
            RunProgress::default()
        );
    }

    async fn stats(store: &dyn Store) {
        let s = store.stats().await.unwrap();
        // penalty: k1, s1, late live (m is a tombstone); agency 0..2 and 9; license l1..l3.
        let expect: BTreeMap<String, i64> = [("penalty", 3), ("agency", 4), ("license", 3)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(s.records, expect);
        let failures: BTreeMap<String, i64> = [("credit", 2), ("hotline", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(s.failures, failures);
        assert_eq!(
            store.keys(RecordType::Penalty).await.unwrap(),
            ["k1", "late", "s1"]
        );
        assert!(store.ping().await);
    }

    /// A penalty-like national record of about 1.3 KB.
    pub fn penalty_record(i: usize, revision: usize) -> Value {
        json!({
            "decision_no": format!("灵市监罚〔2025〕{i}号"),
            "agency_code": "11621022MB1234567X",
            "agency_name": "灵台县市场监督管理局",
            "party_type": "legal_person",
            "party_name": format!("灵台县某某商贸有限公司{i}"),
            "party_code": "91620822MA71234567",
            "legal_representative": "张三",
            "party_address": "甘肃省平凉市灵台县中台镇西大街123号",
            "violation_facts": "当事人在其经营场所销售超过保质期的食品，货值金额较小，违反了《中华人民共和国食品安全法》第三十四条第（十）项的规定。经查，当事人于2025年3月购进该批食品。",
            "legal_basis": "《中华人民共和国食品安全法》第一百二十四条第一款第（五）项",
            "penalty_types": ["warning", "fine", "confiscation"],
            "fine_amount": 5000 + revision,
            "confiscation_amount": 320.5,
            "decision_date": "2025-06-18",
            "publish_date": "2025-06-25",
            "valid_until": "2028-06-25",
            "division": "620822",
            "officers": [{"name": "李四", "cert_no": "62082200123"}, {"name": "王五", "cert_no": "62082200456"}],
            "status": "effective",
            "source_url": format!("https://example.gov.cn/penalty/{i}"),
            "remarks": "依法从轻处罚",
            "discretion_basis": "《甘肃省市场监督管理行政处罚裁量权适用规则》第十二条，初次违法且危害后果轻微并及时改正"
        })
    }

    /// CPU seconds (user + system) from /proc: of this process, and of every `postgres`
    /// process. The box is shared with builds, so wall time alone says little.
    fn cpu_seconds() -> (f64, f64) {
        fn ticks(stat: &str) -> Option<(String, f64)> {
            let open = stat.find('(')?;
            let close = stat.rfind(')')?;
            let comm = stat[open + 1..close].to_string();
            let f: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
            let t = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some((comm, t / 100.0))
        }
        let own = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| ticks(&s))
            .map(|t| t.1)
            .unwrap_or(0.0);
        let mut pg = 0.0;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat"))
                && let Some((comm, t)) = ticks(&stat)
                && comm.starts_with("postgres")
            {
                pg += t;
            }
        }
        (own, pg)
    }

    async fn timed(
        store: &dyn Store,
        label: &str,
        calls: Vec<Vec<Batch>>,
        n: usize,
    ) -> ApplyOutcome {
        let (own0, pg0) = cpu_seconds();
        let start = Instant::now();
        let mut total = ApplyOutcome::default();
        for call in &calls {
            total += store.apply(call).await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        let (own1, pg1) = cpu_seconds();
        let cpu = (own1 - own0) + (pg1 - pg0);
        println!(
            "{} {label}: {n} events in {secs:.2} s wall = {:.0} events/s; CPU {:.2} s here + {:.2} s \
             postgres = {:.0} events per CPU-second ({total:?})",
            store.kind(),
            n as f64 / secs,
            own1 - own0,
            pg1 - pg0,
            n as f64 / cpu.max(0.001),
        );
        total
    }

    /// Events per phase of [`bench`]: `XIEZHI_BENCH_APPLY_EVENTS`, default 20,000 (a random
    /// key order only shows its cost once the key index outgrows the page cache).
    pub fn bench_events() -> usize {
        std::env::var("XIEZHI_BENCH_APPLY_EVENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000)
    }

    /// Applies `n` synthetic 1.3 KB penalty events in calls of 2,000 events (8 batches of 250),
    /// first as new records, then the same content again, then a change to every record; then
    /// `n` more new records whose keys arrive in random order, as upstreams send them (each
    /// commit then writes to random pages of the key index instead of its end).
    pub async fn bench(store: &dyn Store, n: usize) {
        let size = penalty_record(0, 0).to_string().len();
        println!("{}: record body {size} bytes", store.kind());
        let make = |revision: usize, key: &dyn Fn(usize) -> String| -> Vec<Vec<Batch>> {
            let events: Vec<Event> = (0..n)
                .map(|i| {
                    ev(
                        RecordType::Penalty,
                        "credit",
                        &key(i),
                        Op::Upsert,
                        Some(penalty_record(i, revision)),
                        "bench",
                    )
                })
                .collect();
            events
                .chunks(2000)
                .map(|call| call.chunks(250).map(|b| batch(b.to_vec())).collect())
                .collect()
        };
        let in_order = |i: usize| format!("bench-{i}");
        let fresh = timed(store, "insert", make(0, &in_order), n).await;
        assert_eq!(fresh.inserted as usize, n);
        let same = timed(store, "unchanged re-sync", make(0, &in_order), n).await;
        assert_eq!(same.unchanged as usize, n);
        let changed = timed(store, "update", make(1, &in_order), n).await;
        assert_eq!(changed.updated as usize, n);
        // A multiplicative hash scatters the keys; it is a bijection, so they stay distinct.
        let scattered = |i: usize| {
            format!(
                "bench-r-{:016x}",
                (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            )
        };
        let random = timed(
            store,
            "insert, keys in random order",
            make(0, &scattered),
            n,
        )
        .await;
        assert_eq!(random.inserted as usize, n);
        assert_eq!(store.version_count().await.unwrap() as usize, 3 * n);
    }
}
