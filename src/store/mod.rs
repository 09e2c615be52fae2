//! Store: the shared supervision store, last stop of pull → normalise → route → **store** → feed.
//!
//! One trait, two implementations: [`postgres::PgStore`] (production) and
//! [`sqlite::SqliteStore`] (the embedded default). Both keep the current version of each record
//! by natural key, its version history, lineage back to the upstream page, a cross-source merge
//! by source precedence, a monotonically increasing change sequence for feeds, the failure store,
//! per-stream checkpoints and per-sync-run accounting.

pub mod merge;
pub mod postgres;
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
    Query { context: &'static str, source: sqlx::Error },
    #[error("stored data is corrupt ({context}): {reason}")]
    Corrupt { context: &'static str, reason: String },
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
    pub status: Option<FailureStatus>,
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

    async fn checkpoint(&self, connector: &str, stream: &str) -> Result<Option<String>>;
    async fn save_checkpoint(&self, connector: &str, stream: &str, cursor: &str) -> Result<()>;

    /// Registers a sync run (idempotent).
    async fn begin_run(&self, run_id: &str) -> Result<()>;
    /// Adds confirmed, published events to a run.
    async fn add_published(&self, run_id: &str, events: i64) -> Result<()>;
    async fn run_progress(&self, run_id: &str) -> Result<RunProgress>;

    /// Changes after `after_seq` in sequence order, optionally of one type.
    async fn changes(&self, record_type: Option<RecordType>, after_seq: i64, limit: u32) -> Result<Vec<Change>>;

    /// `true` when the store answers a trivial query (readiness).
    async fn ping(&self) -> bool;

    /// `postgres` or `sqlite`.
    fn kind(&self) -> &'static str;
}
