//! The SQLite store's apply path, the **store** stage of pull → normalise → route → store → feed:
//! one synchronous block on the writer connection, from `BEGIN IMMEDIATE` to `COMMIT`.
//!
//! Everything else in the SQLite store goes through sqlx, where each statement crosses to
//! sqlx's SQLite worker thread and its answer crosses back to a runtime worker. An apply is
//! about twenty such crossings, and while the pipeline keeps both cores busy normalising, each
//! one waits for a core: the apply path, which every stored record passes through in turn, sat
//! idle between statements for about half its time (`perf sched`: the SQLite thread ran 48% of
//! the time, the runtime workers it answered to waited 0.8 ms on average to run). So the writer
//! lends its connection's handle (`LockedSqliteHandle`, which keeps sqlx's worker off it) and the
//! whole transaction runs here through rusqlite, on the calling thread, with one prepared
//! statement per table executed row by row (cheap once nothing crosses threads).

use std::collections::HashSet;
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sqlx::sqlite::LockedSqliteHandle;

use super::super::merge::{self, KnownKey, LoadedBody, RecKey, RecordHead};
use super::super::{ApplyOutcome, HeadTuple, Precedence, Result, StoreError, head_from_tuple};
use crate::record::{Batch, RecordType};

/// What one apply did, and the elapsed µs at the end of each phase (begin, heads, plan, write,
/// commit) for the debug log.
#[derive(Debug)]
pub(super) struct Applied {
    pub outcome: ApplyOutcome,
    pub phases: [u64; 5],
}

fn err(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { context, source }
}

/// Applies `batches` on the connection behind `locked`, on this thread. On a multi-threaded
/// runtime the worker hands its other tasks over first (`block_in_place`), so the runtime keeps
/// going while the transaction runs.
pub(super) fn on_handle(
    locked: &mut LockedSqliteHandle<'_>,
    precedence: &Precedence,
    batches: &[Batch],
    now: i64,
) -> Result<Applied> {
    let raw = locked.as_raw_handle();
    let run = || {
        // SAFETY: `raw` is the open connection of `locked`, which keeps sqlx's worker thread
        // from touching it (or its statements) until it is dropped, and it outlives this
        // closure. `from_handle` borrows the handle: dropping the rusqlite connection finalises
        // only the statements prepared here and never closes the database.
        let mut conn = unsafe { Connection::from_handle(raw.as_ptr()) }
            .map_err(err("borrowing the writer connection"))?;
        let applied = apply(&mut conn, precedence, batches, now);
        if applied.is_err() && !conn.is_autocommit() {
            // The transaction's drop rolls back; if even that failed, the next BEGIN would
            // fail on a transaction left open, so try once more here.
            let _ = conn.execute_batch("ROLLBACK");
        }
        applied
    };
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(run)
    } else {
        run()
    }
}

fn apply(
    conn: &mut Connection,
    precedence: &Precedence,
    batches: &[Batch],
    now: i64,
) -> Result<Applied> {
    let t0 = Instant::now();
    let elapsed = || t0.elapsed().as_micros() as u64;
    let mut phases = [0u64; 5];
    // IMMEDIATE takes the write lock up front, so another process cannot make this
    // transaction fail half-way with SQLITE_BUSY on its first write.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err("starting the apply transaction"))?;
    let mut new_ids = HashSet::new();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO applied_batches (batch_id, applied_at) VALUES (?1, ?2) \
                 ON CONFLICT DO NOTHING",
            )
            .map_err(err("recording applied batch ids"))?;
        for id in merge::unique_batch_ids(batches) {
            if insert
                .execute(params![id, now])
                .map_err(err("recording applied batch ids"))?
                == 1
            {
                new_ids.insert(id.to_owned());
            }
        }
    }
    let selected = merge::select(batches, &new_ids);
    let mut outcome = ApplyOutcome {
        duplicate_batches: selected.duplicate_batches,
        ..Default::default()
    };
    if !selected.events.is_empty() {
        phases[0] = elapsed();
        let keys = merge::distinct_keys(&selected.events);
        let heads = load_heads(&tx, &keys)?;
        phases[1] = elapsed();
        let dirty = merge::dirty_keys(&selected.events, &heads);
        let bodies = load_bodies(&tx, &dirty.known)?;
        let plan = merge::plan(precedence, &selected, &dirty, heads, bodies)?;
        phases[2] = elapsed();
        write_plan(&tx, &plan, now)?;
        phases[3] = elapsed();
        outcome = ApplyOutcome {
            duplicate_batches: outcome.duplicate_batches,
            ..plan.outcome
        };
    } else {
        outcome.unchanged = selected.skipped;
    }
    if !selected.ingested.is_empty() {
        let mut upsert = tx
            .prepare(
                "INSERT INTO sync_runs (run_id, ingested, started_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (run_id) DO UPDATE SET ingested = sync_runs.ingested + excluded.ingested",
            )
            .map_err(err("counting ingested events per run"))?;
        for (run, events) in &selected.ingested {
            upsert
                .execute(params![run, events, now])
                .map_err(err("counting ingested events per run"))?;
        }
    }
    tx.commit()
        .map_err(err("committing the apply transaction"))?;
    phases[4] = elapsed();
    Ok(Applied { outcome, phases })
}

/// `(record_type, key)` order: the order of the records key index, so consecutive lookups and
/// inserts descend to neighbouring pages.
fn key_order(a: (RecordType, &str), b: (RecordType, &str)) -> std::cmp::Ordering {
    (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1))
}

/// The heads of the stored records among `keys`.
fn load_heads(tx: &Connection, keys: &[RecKey]) -> Result<Vec<RecordHead>> {
    const CONTEXT: &str = "reading the stored heads of incoming records";
    let mut sorted: Vec<&RecKey> = keys.iter().collect();
    sorted.sort_unstable_by(|a, b| key_order((a.0, &a.1), (b.0, &b.1)));
    let mut select = tx
        .prepare(
            "SELECT version, seq, deleted, division, content_hash, sources FROM records \
             WHERE record_type = ?1 AND key = ?2",
        )
        .map_err(err(CONTEXT))?;
    let mut heads = Vec::new();
    for (record_type, key) in sorted {
        let row: Option<HeadTuple> = select
            .query_row(params![record_type.as_str(), key], |r| {
                Ok((
                    record_type.as_str().to_owned(),
                    key.clone(),
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .optional()
            .map_err(err(CONTEXT))?;
        let head = row.map(head_from_tuple).transpose()?;
        heads.extend(head);
    }
    Ok(heads)
}

/// Bodies of the dirty stored keys: the merged body (from the history row of the current
/// version) and the contributions' own bodies.
fn load_bodies(tx: &Connection, known: &[KnownKey]) -> Result<Vec<LoadedBody>> {
    const CONTEXT: &str = "reading bodies to re-merge";
    if known.is_empty() {
        return Ok(Vec::new());
    }
    let mut merged = tx
        .prepare("SELECT data FROM record_versions WHERE seq = ?1 AND data IS NOT NULL")
        .map_err(err(CONTEXT))?;
    let mut own = tx
        .prepare("SELECT connector, data FROM record_sources WHERE record_type = ?1 AND key = ?2")
        .map_err(err(CONTEXT))?;
    let mut bodies = Vec::new();
    for k in known {
        let (record_type, key) = &k.key;
        let data: Option<String> = merged
            .query_row([k.seq], |r| r.get(0))
            .optional()
            .map_err(err(CONTEXT))?;
        bodies.extend(data.map(|data| LoadedBody {
            record_type: *record_type,
            key: key.clone(),
            connector: None,
            data,
        }));
        let rows = own
            .query_map(params![record_type.as_str(), key], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(err(CONTEXT))?;
        for row in rows {
            let (connector, data) = row.map_err(err(CONTEXT))?;
            bodies.push(LoadedBody {
                record_type: *record_type,
                key: key.clone(),
                connector: Some(connector),
                data,
            });
        }
    }
    Ok(bodies)
}

fn write_plan(tx: &Connection, plan: &merge::Plan, now: i64) -> Result<()> {
    let seqs: Vec<i64> = if plan.versions.is_empty() {
        Vec::new()
    } else {
        let n = plan.versions.len() as i64;
        let last: i64 = tx
            .query_row(
                "UPDATE change_seq SET last = last + ?1 WHERE id = 1 RETURNING last",
                [n],
                |r| r.get(0),
            )
            .map_err(err("allocating change sequences"))?;
        (last - n + 1..=last).collect()
    };

    if !plan.bodies.is_empty() {
        // Contributions with bodies of their own are rare (only conflicting sources).
        const CONTEXT: &str = "writing contribution bodies";
        let mut upsert = tx
            .prepare(
                "INSERT INTO record_sources \
                   (record_type, key, connector, content_hash, data, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (record_type, key, connector) DO UPDATE SET \
                   content_hash = excluded.content_hash, data = excluded.data, \
                   updated_at = excluded.updated_at",
            )
            .map_err(err(CONTEXT))?;
        let mut delete = tx
            .prepare(
                "DELETE FROM record_sources WHERE record_type = ?1 AND key = ?2 AND connector = ?3",
            )
            .map_err(err(CONTEXT))?;
        for w in &plan.bodies {
            let (t, k, c) = (w.record_type.as_str(), w.key.as_str(), w.connector.as_str());
            match w.data.as_deref() {
                Some(data) => upsert.execute(params![t, k, c, w.content_hash, data, now]),
                None => delete.execute(params![t, k, c]),
            }
            .map_err(err(CONTEXT))?;
        }
    }

    // In key order: keys arrive in random order, and inserting them sorted lets each B-tree
    // descent start near the previous one in the key index.
    let mut records: Vec<&merge::RecordWrite> = plan.records.iter().collect();
    records.sort_unstable_by(|a, b| key_order((a.record_type, &a.key), (b.record_type, &b.key)));
    {
        const CONTEXT: &str = "writing current records";
        let mut upsert = tx
            .prepare(
                "INSERT INTO records (record_type, key, version, seq, deleted, division, \
                   content_hash, sources, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (record_type, key) DO UPDATE SET \
                   updated_at = CASE WHEN records.version = excluded.version THEN records.updated_at \
                                     ELSE excluded.updated_at END, \
                   version = excluded.version, seq = excluded.seq, deleted = excluded.deleted, \
                   division = excluded.division, content_hash = excluded.content_hash, \
                   sources = excluded.sources",
            )
            .map_err(err(CONTEXT))?;
        for w in records {
            upsert
                .execute(params![
                    w.record_type.as_str(),
                    w.key,
                    w.version,
                    plan.seq_of(w, &seqs),
                    w.deleted,
                    w.division,
                    w.content_hash,
                    w.sources,
                    now,
                ])
                .map_err(err(CONTEXT))?;
        }
    }

    const CONTEXT: &str = "writing record versions";
    let mut insert = tx
        .prepare(
            "INSERT INTO record_versions (seq, record_type, key, version, deleted, division, \
               content_hash, data, changed_at, prev_seq, source) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .map_err(err(CONTEXT))?;
    for (w, seq) in plan.versions.iter().zip(seqs.iter().copied()) {
        insert
            .execute(params![
                seq,
                w.record_type.as_str(),
                w.key,
                w.version,
                w.deleted,
                w.division,
                w.content_hash,
                w.data.as_deref(),
                now,
                Some(w.prev.resolve(&seqs)).filter(|s| *s > 0),
                w.source,
            ])
            .map_err(err(CONTEXT))?;
    }
    Ok(())
}
