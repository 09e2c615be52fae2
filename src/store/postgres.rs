//! PostgreSQL store (production), the **store** stage of pull → normalise → route → store → feed.
//!
//! `apply` is set-based: whatever the number of events, one call runs a fixed handful of
//! statements, every one of them binding whole columns as arrays and reading them back with
//! `UNNEST`. Writers serialise on a transaction-level advisory lock, so change sequences commit in
//! ascending order (a feed reader never skips a change that commits late) and the in-memory
//! re-merge never races another writer over the same key.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Postgres, Transaction};

use super::merge::{self, LoadedBody, RecKey, RecordHead};
use super::ops::{self, AuditTuple, TokenTuple, audit_from_tuple, bind_all, token_from_tuple};
use super::scale;
use super::{
    ApplyOutcome, Change, ChangeTuple, FailureCols, FailureFilter, FailureRow, FailureTuple,
    HeadTuple, Precedence, RecordTuple, RecordVersion, Result, RunProgress, Stats, Store,
    StoreError, StoredRecord, VersionTuple, change_from_tuple, failure_from_tuple, failure_limit,
    head_from_tuple, query_err, record_from_tuple, record_type_of, status_name, version_from_tuple,
};
use super::{
    FailureStatus, FeedCursor, PushReceipt, ReceiptTuple, feed_cursor_from_tuple, parse_json,
    receipt_from_tuple, time_from_micros,
};
use crate::record::{Batch, Failure, RecordType};

/// Key of the advisory lock every `apply` holds until it commits.
const APPLY_LOCK: i64 = 0x7869_657a_6869; // "xiezhi"

/// Microseconds since the epoch of a timestamptz column, so no chrono support is needed in sqlx.
macro_rules! micros {
    ($col:literal) => {
        concat!("(extract(epoch FROM ", $col, ") * 1000000)::int8")
    };
}

const FAILURE_COLUMNS: &str = concat!(
    "id, stage, connector, stream, record_type, natural_key, upstream_id, raw, normalized::text, errors::text, \
     lineage::text, attempts, status, ",
    micros!("first_seen"),
    ", ",
    micros!("last_seen"),
    ", raw_context"
);

const EDIT_COLUMNS: &str = concat!(
    "id, failure_id, editor, ",
    micros!("created_at"),
    ", patch::text, edited::text, note, status, decided_by, ",
    micros!("decided_at"),
    ", outcome::text"
);

/// The PostgreSQL-backed [`Store`]. Cloning is cheap (the pool is shared).
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    precedence: std::sync::Arc<Precedence>,
}

impl PgStore {
    /// Connects a pool of at most `max_connections` (at least 1). Does not migrate: call
    /// [`Store::migrate`].
    pub async fn connect(
        url: &str,
        precedence: Precedence,
        max_connections: u32,
    ) -> Result<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(|source| StoreError::Open {
                url: redact(url),
                source,
            })?;
        tracing::info!(url = %redact(url), max_connections, "Connected to the PostgreSQL store.");
        Ok(PgStore {
            pool,
            precedence: std::sync::Arc::new(precedence),
        })
    }

    /// The underlying pool (for tests and administrative tools).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn migrator() -> Migrator {
        super::migrator(&[
            (
                1,
                "store",
                include_str!("../../migrations/postgres/0001_store.sql"),
            ),
            (
                2,
                "operators",
                include_str!("../../migrations/postgres/0002_operators.sql"),
            ),
            (
                3,
                "edits",
                include_str!("../../migrations/postgres/0003_edits.sql"),
            ),
            (
                4,
                "feeds",
                include_str!("../../migrations/postgres/0004_feeds.sql"),
            ),
            (
                5,
                "push",
                include_str!("../../migrations/postgres/0005_push.sql"),
            ),
            (
                6,
                "deadline alerts",
                include_str!("../../migrations/postgres/0006_deadline_alerts.sql"),
            ),
            (
                7,
                "scale out",
                include_str!("../../migrations/postgres/0007_scale_out.sql"),
            ),
            (
                8,
                "feed by type",
                include_str!("../../migrations/postgres/0008_feed_by_type.sql"),
            ),
        ])
    }

    /// The heads of the stored records among `keys`.
    async fn load_heads(
        tx: &mut Transaction<'static, Postgres>,
        keys: &[RecKey],
    ) -> Result<Vec<RecordHead>> {
        let (types, names) = key_columns(keys);
        let rows: Vec<HeadTuple> = sqlx::query_as(
            "SELECT r.record_type, r.key, r.version, r.seq, r.deleted, r.division, r.content_hash, \
               r.sources \
             FROM UNNEST($1::text[], $2::text[]) AS k(record_type, key) \
             JOIN records r ON r.record_type = k.record_type AND r.key = k.key",
        )
        // Planned at each call, as the body read below: a join planned once while `records`
        // was small may hash it whole, every apply, long after it has grown.
        .persistent(false)
        .bind(&types)
        .bind(&names)
        .fetch_all(&mut **tx)
        .await
        .map_err(query_err("reading the stored heads of incoming records"))?;
        rows.into_iter().map(head_from_tuple).collect()
    }

    /// Bodies of the dirty stored keys: the merged body from the current version's history row
    /// (text keeps the key order jsonb would lose) and the contributions' own bodies.
    async fn load_bodies(
        tx: &mut Transaction<'static, Postgres>,
        known: &[merge::KnownKey],
    ) -> Result<Vec<LoadedBody>> {
        if known.is_empty() {
            return Ok(Vec::new());
        }
        let types: Vec<&str> = known.iter().map(|k| k.key.0.as_str()).collect();
        let names: Vec<&str> = known.iter().map(|k| k.key.1.as_str()).collect();
        let versions: Vec<i64> = known.iter().map(|k| k.version).collect();
        let rows: Vec<(String, String, Option<String>, String)> = sqlx::query_as(
            "SELECT v.record_type, v.key, NULL::text, v.data \
             FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS k(record_type, key, version) \
             JOIN record_versions v \
               ON v.record_type = k.record_type AND v.key = k.key AND v.version = k.version \
             WHERE v.data IS NOT NULL \
             UNION ALL \
             SELECT s.record_type, s.key, s.connector, s.data \
             FROM UNNEST($1::text[], $2::text[]) AS k(record_type, key) \
             JOIN record_sources s ON s.record_type = k.record_type AND s.key = k.key",
        )
        .persistent(false)
        .bind(&types)
        .bind(&names)
        .bind(&versions)
        .fetch_all(&mut **tx)
        .await
        .map_err(query_err("reading bodies to re-merge"))?;
        rows.into_iter()
            .map(|(t, key, connector, data)| {
                Ok(LoadedBody {
                    record_type: record_type_of("body record type", &t)?,
                    key,
                    connector,
                    data,
                })
            })
            .collect()
    }

    async fn write_plan(tx: &mut Transaction<'static, Postgres>, plan: &merge::Plan) -> Result<()> {
        let seqs: Vec<i64> = if plan.versions.is_empty() {
            Vec::new()
        } else {
            let mut s: Vec<i64> =
                sqlx::query_scalar("SELECT nextval('change_seq') FROM generate_series(1, $1)")
                    .bind(plan.versions.len() as i64)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(query_err("allocating change sequences"))?;
            s.sort_unstable();
            s
        };

        let (keep, drop): (Vec<&merge::BodyWrite>, Vec<&merge::BodyWrite>) =
            plan.bodies.iter().partition(|w| w.data.is_some());
        if !keep.is_empty() {
            sqlx::query(
                "INSERT INTO record_sources (record_type, key, connector, content_hash, data, updated_at) \
                 SELECT t.*, now() FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS t \
                 ON CONFLICT (record_type, key, connector) DO UPDATE SET \
                   content_hash = excluded.content_hash, data = excluded.data, updated_at = excluded.updated_at",
            )
            .bind(keep.iter().map(|w| w.record_type.as_str()).collect::<Vec<_>>())
            .bind(keep.iter().map(|w| w.key.as_str()).collect::<Vec<_>>())
            .bind(keep.iter().map(|w| w.connector.as_str()).collect::<Vec<_>>())
            .bind(keep.iter().map(|w| w.content_hash.as_str()).collect::<Vec<_>>())
            .bind(keep.iter().map(|w| w.data.as_deref().unwrap_or_default()).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await
            .map_err(query_err("writing contribution bodies"))?;
        }
        if !drop.is_empty() {
            sqlx::query(
                "DELETE FROM record_sources s \
                 USING UNNEST($1::text[], $2::text[], $3::text[]) AS k(record_type, key, connector) \
                 WHERE s.record_type = k.record_type AND s.key = k.key AND s.connector = k.connector",
            )
            .bind(drop.iter().map(|w| w.record_type.as_str()).collect::<Vec<_>>())
            .bind(drop.iter().map(|w| w.key.as_str()).collect::<Vec<_>>())
            .bind(drop.iter().map(|w| w.connector.as_str()).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await
            .map_err(query_err("dropping contribution bodies"))?;
        }

        if !plan.records.is_empty() {
            let r = &plan.records;
            sqlx::query(
                "INSERT INTO records \
                   (record_type, key, version, seq, deleted, division, content_hash, data, sources, updated_at) \
                 SELECT t.record_type, t.key, t.version, t.seq, t.deleted, t.division, t.content_hash, \
                   t.data::jsonb, t.sources, now() \
                 FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::bool[], $6::text[], $7::text[], \
                   $8::text[], $9::text[]) \
                   AS t(record_type, key, version, seq, deleted, division, content_hash, data, sources) \
                 ON CONFLICT (record_type, key) DO UPDATE SET \
                   updated_at = CASE WHEN records.version = excluded.version THEN records.updated_at \
                                     ELSE excluded.updated_at END, \
                   version = excluded.version, seq = excluded.seq, deleted = excluded.deleted, \
                   division = excluded.division, content_hash = excluded.content_hash, data = excluded.data, \
                   sources = excluded.sources",
            )
            .bind(r.iter().map(|w| w.record_type.as_str()).collect::<Vec<_>>())
            .bind(r.iter().map(|w| w.key.as_str()).collect::<Vec<_>>())
            .bind(r.iter().map(|w| w.version).collect::<Vec<_>>())
            .bind(r.iter().map(|w| plan.seq_of(w, &seqs)).collect::<Vec<_>>())
            .bind(r.iter().map(|w| w.deleted).collect::<Vec<_>>())
            .bind(r.iter().map(|w| w.division.as_str()).collect::<Vec<_>>())
            .bind(r.iter().map(|w| w.content_hash.as_str()).collect::<Vec<_>>())
            .bind(r.iter().map(|w| w.data.as_deref()).collect::<Vec<_>>())
            .bind(r.iter().map(|w| w.sources.as_str()).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await
            .map_err(query_err("writing current records"))?;
        }

        if !plan.versions.is_empty() {
            let v = &plan.versions;
            sqlx::query(
                "INSERT INTO record_versions \
                   (record_type, key, version, seq, deleted, division, content_hash, data, source, changed_at) \
                 SELECT t.*, now() FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::bool[], \
                   $6::text[], $7::text[], $8::text[], $9::text[]) AS t",
            )
            .bind(v.iter().map(|w| w.record_type.as_str()).collect::<Vec<_>>())
            .bind(v.iter().map(|w| w.key.as_str()).collect::<Vec<_>>())
            .bind(v.iter().map(|w| w.version).collect::<Vec<_>>())
            .bind(&seqs)
            .bind(v.iter().map(|w| w.deleted).collect::<Vec<_>>())
            .bind(v.iter().map(|w| w.division.as_str()).collect::<Vec<_>>())
            .bind(v.iter().map(|w| w.content_hash.as_str()).collect::<Vec<_>>())
            .bind(v.iter().map(|w| w.data.as_deref()).collect::<Vec<_>>())
            .bind(v.iter().map(|w| w.source.as_str()).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await
            .map_err(query_err("writing record versions"))?;
        }
        Ok(())
    }
}

/// The URL without its password, for errors and logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn key_columns(keys: &[RecKey]) -> (Vec<&'static str>, Vec<&str>) {
    (
        keys.iter().map(|k| k.0.as_str()).collect(),
        keys.iter().map(|k| k.1.as_str()).collect(),
    )
}

#[async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> Result<()> {
        Self::migrator().run(&self.pool).await?;
        Ok(())
    }

    async fn apply(&self, batches: &[Batch]) -> Result<ApplyOutcome> {
        if batches.is_empty() {
            return Ok(ApplyOutcome::default());
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_err("starting the apply transaction"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPLY_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(query_err("taking the apply lock"))?;
        let ids = merge::unique_batch_ids(batches);
        let new_ids: HashSet<String> = sqlx::query_scalar(
            "INSERT INTO applied_batches (batch_id) SELECT * FROM UNNEST($1::text[]) \
             ON CONFLICT DO NOTHING RETURNING batch_id",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(query_err("recording applied batch ids"))?
        .into_iter()
        .collect();
        let selected = merge::select(batches, &new_ids);

        let mut outcome = ApplyOutcome {
            duplicate_batches: selected.duplicate_batches,
            ..Default::default()
        };
        if !selected.events.is_empty() {
            let keys = merge::distinct_keys(&selected.events);
            let heads = Self::load_heads(&mut tx, &keys).await?;
            let dirty = merge::dirty_keys(&selected.events, &heads);
            let bodies = Self::load_bodies(&mut tx, &dirty.known).await?;
            let plan = merge::plan(&self.precedence, &selected, &dirty, heads, bodies)?;
            Self::write_plan(&mut tx, &plan).await?;
            outcome = ApplyOutcome {
                duplicate_batches: outcome.duplicate_batches,
                ..plan.outcome
            };
        } else {
            outcome.unchanged = selected.skipped;
        }

        if !selected.ingested.is_empty() {
            sqlx::query(
                "INSERT INTO sync_runs (run_id, ingested) SELECT * FROM UNNEST($1::text[], $2::int8[]) \
                 ON CONFLICT (run_id) DO UPDATE SET ingested = sync_runs.ingested + excluded.ingested",
            )
            .bind(selected.ingested.keys().map(String::as_str).collect::<Vec<_>>())
            .bind(selected.ingested.values().copied().collect::<Vec<_>>())
            .execute(&mut *tx)
            .await
            .map_err(query_err("counting ingested events per run"))?;
        }
        tx.commit()
            .await
            .map_err(query_err("committing the apply transaction"))?;
        tracing::debug!(
            batches = batches.len(),
            duplicates = outcome.duplicate_batches,
            inserted = outcome.inserted,
            updated = outcome.updated,
            unchanged = outcome.unchanged,
            deleted = outcome.deleted,
            "Applied batches to the PostgreSQL store."
        );
        Ok(outcome)
    }

    async fn record_failures(&self, run_id: &str, failures: &[Failure]) -> Result<()> {
        let c = FailureCols::from_failures(failures);
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_err("starting the failure transaction"))?;
        let inserted: Vec<bool> = if c.ids.is_empty() {
            Vec::new()
        } else {
            sqlx::query_scalar(
                "INSERT INTO failures (id, stage, connector, stream, record_type, natural_key, upstream_id, raw, \
                   normalized, errors, lineage, attempts, status, first_seen, last_seen, raw_context) \
                 SELECT f.id, f.stage, f.connector, f.stream, f.record_type, f.natural_key, f.upstream_id, f.raw, \
                   f.normalized::jsonb, f.errors::jsonb, f.lineage::jsonb, f.attempts, 'open', now(), now(), \
                   f.raw_context \
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                   $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[], $13::text[]) \
                   AS f(id, stage, connector, stream, record_type, natural_key, upstream_id, raw, normalized, \
                        errors, lineage, attempts, raw_context) \
                 ON CONFLICT (id) DO UPDATE SET stage = excluded.stage, connector = excluded.connector, \
                   stream = excluded.stream, record_type = excluded.record_type, \
                   natural_key = excluded.natural_key, upstream_id = excluded.upstream_id, raw = excluded.raw, \
                   raw_context = excluded.raw_context, \
                   normalized = excluded.normalized, errors = excluded.errors, lineage = excluded.lineage, \
                   attempts = failures.attempts + excluded.attempts, \
                   status = CASE WHEN failures.status = 'discarded' AND failures.raw = excluded.raw \
                                 THEN 'discarded' ELSE 'open' END, \
                   last_seen = excluded.last_seen \
                 RETURNING (xmax = 0)",
            )
            .bind(&c.ids)
            .bind(&c.stages)
            .bind(&c.connectors)
            .bind(&c.streams)
            .bind(&c.record_types)
            .bind(&c.natural_keys)
            .bind(&c.upstream_ids)
            .bind(&c.raws)
            .bind(&c.normalized)
            .bind(&c.errors)
            .bind(&c.lineages)
            .bind(&c.attempts)
            .bind(&c.raw_contexts)
            .fetch_all(&mut *tx)
            .await
            .map_err(query_err("recording failures"))?
        };
        let new = inserted.iter().filter(|i| **i).count() as i64;
        sqlx::query(
            "INSERT INTO sync_runs (run_id, failed) VALUES ($1, $2) \
             ON CONFLICT (run_id) DO UPDATE SET failed = sync_runs.failed + excluded.failed",
        )
        .bind(run_id)
        .bind(new)
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
            "Recorded failures in the PostgreSQL store."
        );
        Ok(())
    }

    async fn get_record(&self, record_type: RecordType, key: &str) -> Result<Option<StoredRecord>> {
        let row: Option<RecordTuple> = sqlx::query_as(concat!(
            // The body comes from the version row: jsonb reorders object keys, the text copy keeps
            // the schema order the content hash was computed over.
            "SELECT r.version, r.seq, r.deleted, r.division, r.content_hash, v.data, r.sources, ",
            micros!("r.updated_at"),
            " FROM records r LEFT JOIN record_versions v \
              ON v.record_type = r.record_type AND v.key = r.key AND v.version = r.version \
              WHERE r.record_type = $1 AND r.key = $2"
        ))
        .bind(record_type.as_str())
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_err("reading a record"))?;
        row.map(|t| record_from_tuple(record_type, key, t))
            .transpose()
    }

    async fn history(&self, record_type: RecordType, key: &str) -> Result<Vec<RecordVersion>> {
        let rows: Vec<VersionTuple> = sqlx::query_as(concat!(
            "SELECT version, seq, deleted, content_hash, data, ",
            micros!("changed_at"),
            " FROM record_versions WHERE record_type = $1 AND key = $2 ORDER BY version"
        ))
        .bind(record_type.as_str())
        .bind(key)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("reading a record's history"))?;
        rows.into_iter().map(version_from_tuple).collect()
    }

    async fn keys(&self, record_type: RecordType) -> Result<Vec<String>> {
        let mut keys: Vec<String> =
            sqlx::query_scalar("SELECT key FROM records WHERE record_type = $1 AND NOT deleted")
                .bind(record_type.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(query_err("listing record keys"))?;
        // Byte order, whatever collation the database was created with.
        keys.sort_unstable();
        Ok(keys)
    }

    async fn version_count(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT count(*) FROM record_versions")
            .fetch_one(&self.pool)
            .await
            .map_err(query_err("counting versions"))
    }

    async fn stats(&self) -> Result<Stats> {
        let records: Vec<(String, i64)> = sqlx::query_as(
            "SELECT record_type, count(*) FROM records WHERE NOT deleted GROUP BY record_type",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("counting records per type"))?;
        let failures: Vec<(String, i64)> = sqlx::query_as(
            "SELECT connector, count(*) FROM failures WHERE status = 'open' GROUP BY connector",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("counting open failures per connector"))?;
        Ok(Stats {
            records: records.into_iter().collect(),
            failures: failures.into_iter().collect(),
        })
    }

    async fn list_failures(&self, filter: &FailureFilter) -> Result<Vec<FailureRow>> {
        let (cond, binds) = ops::failure_conditions(filter, ops::Dialect::Postgres);
        let sql = format!(
            "SELECT {FAILURE_COLUMNS} FROM failures AS f WHERE true{cond} ORDER BY f.id LIMIT ${}",
            binds.len() + 1
        );
        // Only placeholders and fixed fragments are spliced in; every value is bound.
        let rows = bind_all(sqlx::query_as::<_, FailureTuple>(AssertSqlSafe(sql)), binds)
            .bind(failure_limit(filter.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("listing failures"))?;
        rows.into_iter().map(failure_from_tuple).collect()
    }

    async fn list_failure_ids(&self, filter: &FailureFilter) -> Result<Vec<String>> {
        let (cond, binds) = ops::failure_conditions(filter, ops::Dialect::Postgres);
        let sql = format!(
            "SELECT f.id FROM failures AS f WHERE true{cond} ORDER BY f.id LIMIT ${}",
            binds.len() + 1
        );
        let rows: Vec<(String,)> = bind_all(sqlx::query_as(AssertSqlSafe(sql)), binds)
            .bind(i64::from(filter.limit.clamp(1, 10_000)))
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("listing failure ids"))?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn count_failures(&self, filter: &FailureFilter) -> Result<i64> {
        let unpaged = FailureFilter {
            after_id: None,
            ..filter.clone()
        };
        let (cond, binds) = ops::failure_conditions(&unpaged, ops::Dialect::Postgres);
        let sql = format!("SELECT count(*) FROM failures AS f WHERE true{cond}");
        let (n,): (i64,) = bind_all(sqlx::query_as(AssertSqlSafe(sql)), binds)
            .fetch_one(&self.pool)
            .await
            .map_err(query_err("counting failures"))?;
        Ok(n)
    }

    async fn failure_counts(&self, filter: &FailureFilter) -> Result<Vec<ops::FailureCount>> {
        let (sql, binds) = ops::failure_counts_query(filter, ops::Dialect::Postgres);
        let rows = bind_all(sqlx::query_as(AssertSqlSafe(sql)), binds)
            .fetch_all(&self.pool)
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
            .pool
            .begin()
            .await
            .map_err(query_err("starting a failure status change"))?;
        let from: Vec<&str> = from.iter().map(|s| status_name(*s)).collect();
        let moved: Vec<String> = sqlx::query_scalar(
            "UPDATE failures SET status = $3 WHERE id = ANY($1) AND status = ANY($2) RETURNING id",
        )
        .bind(ids)
        .bind(&from)
        .bind(status_name(to))
        .fetch_all(&mut *tx)
        .await
        .map_err(query_err("changing failure statuses"))?;
        sqlx::query(
            "INSERT INTO failure_events (failure_id, at, actor, action, detail) \
             SELECT id, to_timestamp($2::bigint / 1000000.0), $3, $4, $5::text::jsonb FROM UNNEST($1::text[]) AS id",
        )
        .bind(&moved)
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
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(concat!(
            "SELECT ",
            micros!("at"),
            ", actor, action, detail::text FROM failure_events WHERE failure_id = $1 ORDER BY seq"
        ))
        .bind(id)
        .fetch_all(&self.pool)
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
            "INSERT INTO failure_events (failure_id, at, actor, action, detail) \
             VALUES ($1, to_timestamp($2::bigint / 1000000.0), $3, $4, $5::text::jsonb)",
        )
        .bind(id)
        .bind(event.at.timestamp_micros())
        .bind(&event.actor)
        .bind(&event.action)
        .bind(event.detail.to_string())
        .execute(&self.pool)
        .await
        .map_err(query_err("appending failure history"))?;
        Ok(())
    }

    async fn create_edit(&self, row: &ops::EditRow) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_err("starting an edit"))?;
        sqlx::query(
            "UPDATE failure_edits SET status = 'superseded' WHERE failure_id = $1 AND status = 'pending'",
        )
        .bind(&row.failure_id)
        .execute(&mut *tx)
        .await
        .map_err(query_err("superseding earlier edits"))?;
        sqlx::query(
            "INSERT INTO failure_edits (id, failure_id, editor, created_at, patch, edited, note, status) \
             VALUES ($1, $2, $3, to_timestamp($4::bigint / 1000000.0), $5::text::jsonb, $6::text::jsonb, $7, 'pending')",
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
        let sql = format!("SELECT {EDIT_COLUMNS} FROM failure_edits WHERE id = $1");
        let row: Option<ops::EditTuple> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
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
             WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR failure_id = $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let rows: Vec<ops::EditTuple> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(status.map(ops::EditStatus::as_str))
            .bind(failure_id)
            .bind(failure_limit(limit))
            .fetch_all(&self.pool)
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
            "UPDATE failure_edits SET status = $2, decided_by = $3, decided_at = now(), \
               outcome = $4::text::jsonb \
             WHERE id = $1 AND status = 'pending' AND editor <> $3",
        )
        .bind(id)
        .bind(to.as_str())
        .bind(decided_by)
        .bind(outcome.to_string())
        .execute(&self.pool)
        .await
        .map_err(query_err("deciding an edit"))?;
        Ok(n.rows_affected() == 1)
    }

    async fn append_audit(&self, entry: &ops::NewAudit) -> Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, action, target, filter, count, outcome) \
             VALUES (now(), $1, $2, $3, $4::text::jsonb, $5, $6::text::jsonb) RETURNING seq",
        )
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(entry.filter.to_string())
        .bind(entry.count)
        .bind(entry.outcome.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(query_err("appending to the audit log"))
    }

    async fn list_audit(&self, after_seq: i64, limit: u32) -> Result<Vec<ops::AuditEntry>> {
        let rows: Vec<AuditTuple> = sqlx::query_as(concat!(
            "SELECT seq, ",
            micros!("at"),
            ", actor, action, target, filter::text, count, outcome::text FROM audit_log \
             WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after_seq)
        .bind(failure_limit(limit))
        .fetch_all(&self.pool)
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
        let row: TokenTuple = sqlx::query_as(concat!(
            "INSERT INTO api_tokens (id, name, role, token_hash, created_at) \
             VALUES ($1, $2, $3, $4, now()) RETURNING id, name, role, ",
            micros!("created_at"),
            ", ",
            micros!("revoked_at")
        ))
        .bind(&id)
        .bind(name)
        .bind(role.as_str())
        .bind(token_hash)
        .fetch_one(&self.pool)
        .await
        .map_err(query_err("creating a token"))?;
        token_from_tuple(row)
    }

    async fn find_token(&self, token_hash: &str) -> Result<Option<ops::TokenRow>> {
        let row: Option<TokenTuple> = sqlx::query_as(concat!(
            "SELECT id, name, role, ",
            micros!("created_at"),
            ", ",
            micros!("revoked_at"),
            " FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_err("looking up a token"))?;
        row.map(token_from_tuple).transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<ops::TokenRow>> {
        let rows: Vec<TokenTuple> = sqlx::query_as(concat!(
            "SELECT id, name, role, ",
            micros!("created_at"),
            ", ",
            micros!("revoked_at"),
            " FROM api_tokens ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("listing tokens"))?;
        rows.into_iter().map(token_from_tuple).collect()
    }

    async fn revoke_token(&self, id_or_name: &str) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE api_tokens SET revoked_at = now() WHERE (id = $1 OR name = $1) AND revoked_at IS NULL",
        )
        .bind(id_or_name)
        .execute(&self.pool)
        .await
        .map_err(query_err("revoking a token"))?;
        Ok(n.rows_affected() > 0)
    }

    async fn get_failure(&self, id: &str) -> Result<Option<FailureRow>> {
        let sql = format!("SELECT {FAILURE_COLUMNS} FROM failures WHERE id = $1");
        let row: Option<FailureTuple> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("reading a failure"))?;
        row.map(failure_from_tuple).transpose()
    }

    async fn checkpoint(&self, connector: &str, stream: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT cursor FROM checkpoints WHERE connector = $1 AND stream = $2")
            .bind(connector)
            .bind(stream)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("reading a checkpoint"))
    }

    async fn save_checkpoint(&self, connector: &str, stream: &str, cursor: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO checkpoints (connector, stream, cursor, updated_at) VALUES ($1, $2, $3, now()) \
             ON CONFLICT (connector, stream) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        )
        .bind(connector)
        .bind(stream)
        .bind(cursor)
        .execute(&self.pool)
        .await
        .map_err(query_err("saving a checkpoint"))?;
        Ok(())
    }

    async fn delete_checkpoint(&self, connector: &str, stream: &str) -> Result<()> {
        sqlx::query("DELETE FROM checkpoints WHERE connector = $1 AND stream = $2")
            .bind(connector)
            .bind(stream)
            .execute(&self.pool)
            .await
            .map_err(query_err("deleting a checkpoint"))?;
        Ok(())
    }

    async fn begin_run(&self, run_id: &str) -> Result<()> {
        sqlx::query("INSERT INTO sync_runs (run_id) VALUES ($1) ON CONFLICT (run_id) DO NOTHING")
            .bind(run_id)
            .execute(&self.pool)
            .await
            .map_err(query_err("registering a sync run"))?;
        Ok(())
    }

    async fn add_published(&self, run_id: &str, events: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO sync_runs (run_id, published) VALUES ($1, $2) \
             ON CONFLICT (run_id) DO UPDATE SET published = sync_runs.published + excluded.published",
        )
        .bind(run_id)
        .bind(events)
        .execute(&self.pool)
        .await
        .map_err(query_err("counting published events"))?;
        Ok(())
    }

    async fn run_progress(&self, run_id: &str) -> Result<RunProgress> {
        let row: Option<(i64, i64, i64)> =
            sqlx::query_as("SELECT published, ingested, failed FROM sync_runs WHERE run_id = $1")
                .bind(run_id)
                .fetch_optional(&self.pool)
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
        let rows: Vec<ChangeTuple> = match record_type {
            Some(t) => sqlx::query_as(concat!(
                "SELECT seq, record_type, key, version, deleted, division, data, ",
                micros!("changed_at"),
                ", source FROM record_versions WHERE seq > $1 AND record_type = $3 ORDER BY seq LIMIT $2"
            ))
            // Planned at each call: a plan cached on an empty table may walk the `seq` index
            // and filter the type, every later version of every type per read.
            .persistent(false)
            .bind(after_seq)
            .bind(i64::from(limit))
            .bind(t.as_str())
            .fetch_all(&self.pool)
            .await,
            None => {
                sqlx::query_as(concat!(
                    "SELECT seq, record_type, key, version, deleted, division, data, ",
                    micros!("changed_at"),
                    ", source FROM record_versions WHERE seq > $1 ORDER BY seq LIMIT $2"
                ))
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(query_err("reading the change feed"))?;
        rows.into_iter().map(change_from_tuple).collect()
    }

    async fn count_changes(&self, record_type: Option<RecordType>, after_seq: i64) -> Result<i64> {
        sqlx::query_scalar(
            "SELECT count(*) FROM record_versions WHERE seq > $1 AND ($2::text IS NULL OR record_type = $2)",
        )
        .bind(after_seq)
        .bind(record_type.map(RecordType::as_str))
        .fetch_one(&self.pool)
        .await
        .map_err(query_err("counting changes"))
    }

    async fn feed_cursor(&self, consumer: &str, feed: &str) -> Result<Option<i64>> {
        sqlx::query_scalar("SELECT seq FROM feed_cursors WHERE consumer = $1 AND feed = $2")
            .bind(consumer)
            .bind(feed)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("reading a feed cursor"))
    }

    async fn save_feed_cursor(&self, consumer: &str, feed: &str, seq: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO feed_cursors (consumer, feed, seq, updated_at) VALUES ($1, $2, $3, now()) \
             ON CONFLICT (consumer, feed) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at",
        )
        .bind(consumer)
        .bind(feed)
        .bind(seq)
        .execute(&self.pool)
        .await
        .map_err(query_err("saving a feed cursor"))?;
        Ok(())
    }

    async fn feed_cursors(&self) -> Result<Vec<FeedCursor>> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(concat!(
            "SELECT consumer, feed, seq, ",
            micros!("updated_at"),
            " FROM feed_cursors ORDER BY consumer, feed"
        ))
        .fetch_all(&self.pool)
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
            "SELECT key, data::text FROM records \
             WHERE record_type = $1 AND key > $2 COLLATE \"C\" AND NOT deleted ORDER BY key COLLATE \"C\" LIMIT $3",
        )
        .bind(record_type.as_str())
        .bind(after_key)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
            "INSERT INTO deadline_alerts (rule, record_type, key, status) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(rule)
        .bind(record_type.as_str())
        .bind(key)
        .bind(status)
        .execute(&self.pool)
        .await
        .map_err(query_err("noting a deadline alert"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_push_receipts(&self, receipts: &[PushReceipt]) -> Result<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        let r = receipts;
        sqlx::query(
            "INSERT INTO push_receipts \
               (target, seq, record_type, key, version, op, accepted, request_key, sent_at, answer) \
             SELECT t.target, t.seq, t.record_type, t.key, t.version, t.op, t.accepted, t.request_key, \
               to_timestamp(t.sent_at / 1000000.0), t.answer::jsonb \
             FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::int8[], $6::text[], \
               $7::bool[], $8::text[], $9::int8[], $10::text[]) \
               AS t(target, seq, record_type, key, version, op, accepted, request_key, sent_at, answer) \
             ON CONFLICT (target, seq) DO UPDATE SET op = excluded.op, accepted = excluded.accepted, \
               request_key = excluded.request_key, sent_at = excluded.sent_at, answer = excluded.answer",
        )
        .bind(r.iter().map(|x| x.target.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.seq).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.record_type.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.key.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.version).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.op.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.accepted).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.request_key.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.sent_at.timestamp_micros()).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.answer.to_string()).collect::<Vec<_>>())
        .execute(&self.pool)
        .await
        .map_err(query_err("writing push receipts"))?;
        Ok(())
    }

    async fn push_receipts(&self, record_type: RecordType, key: &str) -> Result<Vec<PushReceipt>> {
        let rows: Vec<ReceiptTuple> = sqlx::query_as(concat!(
            "SELECT target, seq, record_type, key, version, op, accepted, request_key, ",
            micros!("sent_at"),
            ", answer::text FROM push_receipts WHERE record_type = $1 AND key = $2 ORDER BY seq, target"
        ))
        .bind(record_type.as_str())
        .bind(key)
        .fetch_all(&self.pool)
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
        // One index probe per key, whatever the planner believes: a `key = ANY($3)` filter or
        // an EXISTS planned with statistics from while the table was small (autovacuum's
        // analyze trails a table growing this fast) scans or hashes the target's whole receipt
        // history per call: 100–260 ms per round at 100,000 receipts, most of the database's
        // work in the instances benchmark, against under 1 ms this way.
        sqlx::query_scalar(
            "SELECT k.key FROM (SELECT DISTINCT key FROM UNNEST($3::text[]) AS u(key)) AS k \
             CROSS JOIN LATERAL (SELECT 1 FROM push_receipts r \
                 WHERE r.target = $1 AND r.record_type = $2 AND r.accepted AND r.key = k.key \
                 LIMIT 1) AS hit",
        )
        .bind(target)
        .bind(record_type.as_str())
        .bind(keys)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("reading accepted push keys"))
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
        // One statement: the checkpoint moves and the run counts the events only when this
        // commit has not already moved it.
        sqlx::query(
            "WITH prev AS (SELECT last_commit FROM checkpoints WHERE connector = $2 AND stream = $3), \
             cp AS (INSERT INTO checkpoints (connector, stream, cursor, updated_at, last_commit) \
                    VALUES ($2, $3, $4, now(), $5) \
                    ON CONFLICT (connector, stream) DO UPDATE SET cursor = excluded.cursor, \
                    updated_at = excluded.updated_at, last_commit = excluded.last_commit) \
             INSERT INTO sync_runs (run_id, published) \
             SELECT $1, $6 WHERE (SELECT last_commit FROM prev) IS DISTINCT FROM $5 \
             ON CONFLICT (run_id) DO UPDATE SET published = sync_runs.published + excluded.published",
        )
        .bind(run_id)
        .bind(connector)
        .bind(stream)
        .bind(cursor)
        .bind(commit_id)
        .bind(events)
        .execute(&self.pool)
        .await
        .map_err(query_err("committing a page (checkpoint and run count)"))?;
        Ok(())
    }

    async fn checkpoints(&self) -> Result<Vec<scale::CheckpointRow>> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(concat!(
            "SELECT connector, stream, cursor, ",
            micros!("updated_at"),
            " FROM checkpoints ORDER BY connector, stream"
        ))
        .fetch_all(&self.pool)
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
        // The database's clock decides expiry, so the instances' clocks need not agree. The
        // update happens only when the lease is ours or expired: of two instances racing for a
        // free lease, one inserts and the other's conflict finds it taken.
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "WITH prev AS (SELECT holder FROM leases WHERE name = $1) \
             INSERT INTO leases (name, holder, acquired_at, renewed_at, expires_at) \
             VALUES ($1, $2, now(), now(), now() + make_interval(secs => $3)) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
               acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at ELSE excluded.acquired_at END, \
               renewed_at = excluded.renewed_at, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < now() \
             RETURNING (SELECT holder FROM prev)",
        )
        .bind(name)
        .bind(holder)
        .bind(ttl.as_secs_f64())
        .fetch_optional(&self.pool)
        .await
        .map_err(query_err("taking a lease"))?;
        match row {
            Some((prev,)) => Ok(scale::LeaseState {
                held: true,
                holder: holder.to_owned(),
                took_over_from: prev.filter(|p| p != holder),
            }),
            None => {
                let current: Option<String> =
                    sqlx::query_scalar("SELECT holder FROM leases WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(query_err("reading a lease"))?;
                Ok(scale::LeaseState {
                    held: false,
                    holder: current.unwrap_or_default(),
                    took_over_from: None,
                })
            }
        }
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(query_err("releasing a lease"))?;
        Ok(())
    }

    async fn leases(&self) -> Result<Vec<scale::LeaseRow>> {
        let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(concat!(
            "SELECT name, holder, ",
            micros!("acquired_at"),
            ", ",
            micros!("renewed_at"),
            ", ",
            micros!("expires_at"),
            " FROM leases ORDER BY name"
        ))
        .fetch_all(&self.pool)
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
        let row: Option<(i64, i64, String, String)> = sqlx::query_as(concat!(
            "SELECT ",
            micros!("occurrence"),
            ", ",
            micros!("finished_at"),
            ", holder, outcome FROM schedule_state WHERE connector = $1 AND stream = $2"
        ))
        .bind(connector)
        .bind(stream)
        .fetch_optional(&self.pool)
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
             VALUES ($1, $2, to_timestamp($3::float8 / 1000000), to_timestamp($4::float8 / 1000000), $5, $6) \
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
        .execute(&self.pool)
        .await
        .map_err(query_err("recording a schedule occurrence"))?;
        Ok(())
    }

    async fn record_reconciliation(&self, r: &scale::ReconciliationRow) -> Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO sync_reconciliations (run_id, connector, stream, record_type, holder, \
               started_at, finished_at, upstream_total, expected, fetched, normalised, routed, failed, \
               outside_window, outcome, gaps) \
             VALUES ($1, $2, $3, $4, $5, to_timestamp($6::float8 / 1000000), to_timestamp($7::float8 / 1000000), \
               $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
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
        .fetch_one(&self.pool)
        .await
        .map_err(query_err("recording a reconciliation"))
    }

    async fn reconciliations(
        &self,
        gaps_only: bool,
        before: i64,
        limit: u32,
    ) -> Result<Vec<scale::ReconciliationRow>> {
        let rows = sqlx::query(concat!(
            "SELECT id, run_id, connector, stream, record_type, holder, ",
            micros!("started_at"),
            " AS started, ",
            micros!("finished_at"),
            " AS finished, upstream_total, expected, fetched, normalised, routed, failed, \
             outside_window, outcome, gaps FROM sync_reconciliations \
             WHERE ($1 = 0 OR id < $1) AND (NOT $2 OR gaps <> '') ORDER BY id DESC LIMIT $3"
        ))
        .bind(before)
        .bind(gaps_only)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("listing reconciliations"))?;
        rows.iter().map(scale::reconciliation_from_row).collect()
    }

    async fn ping(&self) -> bool {
        sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&self.pool)
            .await
            .is_ok()
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh database per test, dropped afterwards, so tests never see each other's rows.
    pub(crate) struct TestDb {
        pub store: PgStore,
        name: String,
    }

    const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

    impl TestDb {
        pub async fn new(precedence: Precedence) -> TestDb {
            let name = format!("xiezhi_t_{}", uuid::Uuid::new_v4().simple());
            let admin = PgPool::connect(ADMIN_URL).await.unwrap();
            sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await
                .unwrap();
            // Set XIEZHI_PG_LOG_STATEMENTS to log every statement with its duration (profiling).
            if std::env::var_os("XIEZHI_PG_LOG_STATEMENTS").is_some() {
                sqlx::query(AssertSqlSafe(format!(
                    "ALTER DATABASE {name} SET log_min_duration_statement = 0"
                )))
                .execute(&admin)
                .await
                .unwrap();
            }
            admin.close().await;
            let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
            let store = PgStore::connect(&url, precedence, 4).await.unwrap();
            store.migrate().await.unwrap();
            TestDb { store, name }
        }

        pub async fn drop(self) {
            self.store.pool.close().await;
            let admin = PgPool::connect(ADMIN_URL).await.unwrap();
            sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&admin)
            .await
            .unwrap();
            admin.close().await;
        }
    }

    impl TestDb {
        /// Runs `body` and drops the database even when `body` panics, then re-raises.
        pub async fn run<F, Fut>(self, body: F)
        where
            F: FnOnce(PgStore) -> Fut,
            Fut: std::future::Future<Output = ()> + Send + 'static,
        {
            let outcome = tokio::spawn(body(self.store.clone())).await;
            self.drop().await;
            if let Err(e) = outcome
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }

    #[tokio::test]
    async fn postgres_store_passes_the_shared_suite() {
        let db = TestDb::new(crate::store::testsuite::precedence()).await;
        db.run(|store| async move {
            crate::store::testsuite::run(&store).await;
            let pool = store.pool().clone();
            crate::store::testsuite::failure_reopens(&store, |id| async move {
                sqlx::query("UPDATE failures SET status = 'resolved' WHERE id = $1")
                    .bind(id)
                    .execute(&pool)
                    .await
                    .unwrap();
            })
            .await;
        })
        .await;
    }

    #[tokio::test]
    async fn migrate_is_idempotent() {
        let db = TestDb::new(Precedence::default()).await;
        db.run(|store| async move {
            store.migrate().await.unwrap();
            assert!(store.ping().await);
            assert_eq!(store.kind(), "postgres");
        })
        .await;
    }

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[tokio::test]
    #[ignore = "throughput measurement; run with --release --ignored --nocapture"]
    async fn bench_apply_postgres() {
        let db = TestDb::new(Precedence::default()).await;
        db.run(|store| async move {
            crate::store::testsuite::bench(&store, crate::store::testsuite::bench_events()).await
        })
        .await;
    }
}
