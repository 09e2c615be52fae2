//! Cross-source merge and the apply planner of the **store** stage (pull → normalise → route →
//! **store** → feed).
//!
//! Both backends share this code so that they cannot drift apart: the backend loads what the
//! database knows about the incoming keys, [`plan`] replays the events in memory exactly as if
//! they had been applied one after another, and the backend writes the resulting rows with a
//! handful of set-based statements. Nothing here does I/O.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use serde::{Deserialize, Serialize};

use super::{ApplyOutcome, Precedence};
use crate::record::{Batch, Event, Lineage, Op, RecordType, content_hash, hash_and_text};

/// The natural identity of a stored record.
pub(crate) type RecKey = (RecordType, String);

/// The result of merging the live contributions of one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub data: Value,
    /// Per input (same order): top-level fields whose non-null value lost to a higher source.
    pub overridden: Vec<Vec<String>>,
}

/// Merges contributions ordered highest precedence first: each top-level field takes the value
/// of the highest source that has it non-null. Field order follows the highest source, then the
/// fields only lower sources have, so equal inputs always give the same content hash.
///
/// If any contribution is not a JSON object there are no fields to merge by, so the highest
/// source wins whole.
pub fn merge(inputs: &[&Value]) -> Merged {
    let mut overridden = vec![Vec::new(); inputs.len()];
    if inputs.iter().any(|v| !v.is_object()) {
        return Merged {
            data: inputs.first().map(|v| (*v).clone()).unwrap_or(Value::Null),
            overridden,
        };
    }
    let mut out = Map::new();
    for (i, input) in inputs.iter().enumerate() {
        let Value::Object(fields) = input else {
            continue;
        };
        for (name, value) in fields {
            match out.get_mut(name) {
                None => {
                    out.insert(name.clone(), value.clone());
                }
                Some(current) if current.is_null() => *current = value.clone(),
                Some(current) => {
                    if !value.is_null() && current != value {
                        overridden[i].push(name.clone());
                    }
                }
            }
        }
    }
    Merged {
        data: Value::Object(out),
        overridden,
    }
}

/// Rank of a connector for a record type: its position in the precedence list, unlisted
/// connectors after every listed one and then by name.
pub fn rank<'a>(
    precedence: &Precedence,
    record_type: RecordType,
    connector: &'a str,
) -> (usize, &'a str) {
    let pos = precedence
        .0
        .get(&record_type)
        .and_then(|list| list.iter().position(|c| c == connector))
        .unwrap_or(usize::MAX);
    (pos, connector)
}

/// An event of a newly applied batch, with the content hash its contribution is compared by.
#[derive(Debug)]
pub(crate) struct Incoming<'a> {
    pub event: &'a Event,
    pub hash: Cow<'a, str>,
}

/// Events of the batches that were not applied before, in delivery order.
#[derive(Debug, Default)]
pub(crate) struct Selected<'a> {
    pub events: Vec<Incoming<'a>>,
    /// Per sync run, events of the newly applied batches.
    pub ingested: BTreeMap<String, i64>,
    pub duplicate_batches: u64,
    /// Upserts without data: nothing to store, counted as unchanged.
    pub skipped: u64,
}

/// Batch ids in first-delivery order without repeats (a batch delivered twice in one call is
/// applied once).
pub(crate) fn unique_batch_ids(batches: &[Batch]) -> Vec<&str> {
    let mut seen = HashSet::new();
    batches
        .iter()
        .map(|b| b.id.as_str())
        .filter(|id| seen.insert(*id))
        .collect()
}

/// Picks the events of the batches whose id the database just accepted as new.
pub(crate) fn select<'a>(batches: &'a [Batch], new_ids: &HashSet<String>) -> Selected<'a> {
    let mut out = Selected::default();
    let mut taken = HashSet::new();
    for batch in batches {
        if !new_ids.contains(&batch.id) || !taken.insert(batch.id.as_str()) {
            out.duplicate_batches += 1;
            continue;
        }
        for event in &batch.events {
            *out.ingested.entry(event.syncrun.clone()).or_default() += 1;
            let hash = match (event.op, &event.data) {
                (Op::Delete, _) => Cow::Borrowed(""),
                (Op::Upsert, Some(_)) if event.contenthash.is_empty() => {
                    // From a producer that did not hash: hash the canonical form, not its text.
                    Cow::Owned(
                        event
                            .data_value()
                            .as_ref()
                            .map(content_hash)
                            .unwrap_or_default(),
                    )
                }
                (Op::Upsert, Some(_)) => Cow::Borrowed(event.contenthash.as_str()),
                (Op::Upsert, None) => {
                    tracing::warn!(
                        batch = %batch.id, event = %event.id, record_type = %event.recordtype, key = %event.subject,
                        "Upsert event carries no data; it is ignored."
                    );
                    out.skipped += 1;
                    continue;
                }
            };
            out.events.push(Incoming { event, hash });
        }
    }
    out
}

/// Distinct natural keys of the selected events, in first-seen order.
pub(crate) fn distinct_keys(events: &[Incoming<'_>]) -> Vec<RecKey> {
    let mut seen = HashSet::new();
    events
        .iter()
        .map(|e| (e.event.recordtype, e.event.subject.clone()))
        .filter(|k| seen.insert(k.clone()))
        .collect()
}

/// One element of `records.sources`: a source's contribution without its body. It is a
/// superset of [`super::SourceContribution`] (which reads it back ignoring `division`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredSource {
    pub connector: String,
    pub content_hash: String,
    pub lineage: Lineage,
    pub deleted: bool,
    pub overridden_fields: Vec<String>,
    /// Division of the contribution: the merged record takes the highest live source's.
    #[serde(default)]
    pub division: String,
}

/// The stored head of a record (everything but bodies): read for every incoming key, it tells
/// which events change a contribution at all.
#[derive(Debug, Clone)]
pub(crate) struct RecordHead {
    pub record_type: RecordType,
    pub key: String,
    pub version: i64,
    pub seq: i64,
    pub deleted: bool,
    pub division: String,
    pub content_hash: String,
    pub sources: Vec<StoredSource>,
}

/// A stored record whose bodies a re-merge reads: its current version and that version's
/// change sequence (either finds the history row holding the merged body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownKey {
    pub key: RecKey,
    pub version: i64,
    pub seq: i64,
}

/// Keys on which some event really changes a contribution (so the record must be re-merged),
/// and among them the stored ones whose bodies must be loaded.
#[derive(Debug, Default)]
pub(crate) struct Dirty {
    pub all: HashSet<RecKey>,
    /// Stored dirty keys whose re-merge reads a stored body, with their current version (whose
    /// history row holds the merged body). A record whose only source sends a new version
    /// never needs its old body.
    pub known: Vec<KnownKey>,
}

/// Replays the contribution-hash transitions only, which is enough to know which keys need the
/// full state: an event whose contribution is byte-identical to the stored one changes nothing,
/// and a re-merge needs stored bodies only while a stored contribution it did not replace yet
/// is still live.
pub(crate) fn dirty_keys(events: &[Incoming<'_>], heads: &[RecordHead]) -> Dirty {
    /// Per contribution: hash, deleted, still the stored one.
    type Slot<'s> = (&'s str, bool, bool);
    let mut state: HashMap<(RecordType, &str, &str), Slot<'_>> = HashMap::new();
    let mut stored: HashMap<(RecordType, &str), (i64, i64, Vec<&str>)> =
        HashMap::with_capacity(heads.len());
    for h in heads {
        let connectors = h.sources.iter().map(|s| s.connector.as_str()).collect();
        stored.insert((h.record_type, &h.key), (h.version, h.seq, connectors));
        for s in &h.sources {
            state.insert(
                (h.record_type, &h.key, &s.connector),
                (&s.content_hash, s.deleted, true),
            );
        }
    }
    let mut dirty = Dirty::default();
    let mut needs_bodies: HashSet<(RecordType, &str)> = HashSet::new();
    for inc in events {
        let e = inc.event;
        let slot = (e.recordtype, e.subject.as_str(), e.connector.as_str());
        let changed = match e.op {
            Op::Upsert => {
                let same =
                    matches!(state.get(&slot), Some((h, false, _)) if *h == inc.hash.as_ref());
                if !same {
                    state.insert(slot, (inc.hash.as_ref(), false, false));
                }
                !same
            }
            Op::Delete => {
                let live = matches!(state.get(&slot), Some((_, false, _)));
                if live {
                    state.insert(slot, ("", true, false));
                }
                live
            }
        };
        if !changed {
            continue;
        }
        dirty.all.insert((e.recordtype, e.subject.clone()));
        let rec = (e.recordtype, e.subject.as_str());
        if let Some((version, seq, connectors)) = stored.get(&rec)
            && !needs_bodies.contains(&rec)
            && connectors
                .iter()
                .any(|c| matches!(state.get(&(rec.0, rec.1, *c)), Some((_, false, true))))
        {
            needs_bodies.insert(rec);
            dirty.known.push(KnownKey {
                key: (rec.0, rec.1.to_owned()),
                version: *version,
                seq: *seq,
            });
        }
    }
    dirty
}

/// A stored body of a dirty key: the record's current merged body (`connector` = `None`, from
/// its history row) or a contribution's own body. Only contributions whose body differs from
/// the merged record have one ("elision"): the common single-source record stores its body in
/// the record and its history only.
#[derive(Debug, Clone)]
pub(crate) struct LoadedBody {
    pub record_type: RecordType,
    pub key: String,
    pub connector: Option<String>,
    pub data: String,
}

/// Where a written record's change sequence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqRef {
    /// No new version: the record keeps its sequence.
    Existing(i64),
    /// The sequence allocated for `Plan::versions[i]`.
    New(usize),
}

impl SeqRef {
    /// The sequence once `seqs` (one per planned version, ascending) are allocated.
    pub fn resolve(self, seqs: &[i64]) -> i64 {
        match self {
            SeqRef::Existing(s) => s,
            SeqRef::New(i) => seqs.get(i).copied().unwrap_or_default(),
        }
    }
}

/// A contribution body to store (`data` = `Some`) or to drop (`None`: the contribution was
/// deleted or now equals the merged record).
#[derive(Debug, Clone)]
pub(crate) struct BodyWrite {
    pub record_type: RecordType,
    pub key: String,
    pub connector: String,
    pub content_hash: String,
    pub data: Option<Arc<str>>,
}

#[derive(Debug, Clone)]
pub(crate) struct RecordWrite {
    pub record_type: RecordType,
    pub key: String,
    pub version: i64,
    pub seq: SeqRef,
    pub deleted: bool,
    pub division: String,
    pub content_hash: String,
    pub data: Option<Arc<str>>,
    /// `Vec<StoredSource>` as JSON text.
    pub sources: String,
}

#[derive(Debug, Clone)]
pub(crate) struct VersionWrite {
    pub record_type: RecordType,
    pub key: String,
    pub version: i64,
    /// The sequence of the record's previous version (`Existing(0)` for its first): history
    /// is a chain, so no index on (type, key, version) has to be kept up to date.
    pub prev: SeqRef,
    pub deleted: bool,
    pub division: String,
    pub content_hash: String,
    pub data: Option<Arc<str>>,
    /// The connector whose change produced this version (feeds route by it).
    pub source: String,
}

/// Rows to write for one apply call. Each source and record appears once (its final state);
/// versions appear in the order they happened, which is the order sequences are given in.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub outcome: ApplyOutcome,
    pub bodies: Vec<BodyWrite>,
    pub records: Vec<RecordWrite>,
    pub versions: Vec<VersionWrite>,
}

impl Plan {
    /// The sequence of a written record once `seqs` (one per version, ascending) are known.
    pub fn seq_of(&self, r: &RecordWrite, seqs: &[i64]) -> i64 {
        r.seq.resolve(seqs)
    }
}

#[derive(Debug)]
struct Contribution {
    connector: String,
    content_hash: String,
    deleted: bool,
    division: String,
    /// The body: its text, and its parsed form once a multi-source merge needed it.
    text: Option<Arc<str>>,
    value: Option<Value>,
    lineage: Lineage,
    changed: bool,
    /// Whether the store holds a body row for this contribution (see [`LoadedBody`]).
    has_body: bool,
    overridden: Vec<String>,
}

#[derive(Debug)]
struct KeyState {
    version: i64,
    seq: SeqRef,
    deleted: bool,
    /// Empty for a tombstone or a record not stored yet.
    content_hash: String,
    division: String,
    data: Option<Arc<str>>,
    contributions: Vec<Contribution>,
}

impl KeyState {
    fn live(&self) -> bool {
        self.version > 0 && !self.deleted
    }
}

/// Error for a stored body that no longer parses.
#[derive(Debug, thiserror::Error)]
#[error("stored contribution of {record_type}/{key} from {connector} is unusable: {reason}")]
pub(crate) struct CorruptContribution {
    pub record_type: RecordType,
    pub key: String,
    pub connector: String,
    pub reason: String,
}

impl From<CorruptContribution> for super::StoreError {
    fn from(e: CorruptContribution) -> Self {
        super::StoreError::Corrupt {
            context: "re-merging a record",
            reason: e.to_string(),
        }
    }
}

/// Replays the selected events over the loaded state and returns the rows to write.
pub(crate) fn plan(
    precedence: &Precedence,
    selected: &Selected<'_>,
    dirty: &Dirty,
    heads: Vec<RecordHead>,
    bodies: Vec<LoadedBody>,
) -> Result<Plan, CorruptContribution> {
    let mut merged_bodies: HashMap<RecKey, Arc<str>> = HashMap::new();
    let mut own_bodies: HashMap<(RecKey, String), String> = HashMap::new();
    for b in bodies {
        match b.connector {
            None => {
                merged_bodies.insert((b.record_type, b.key), Arc::from(b.data));
            }
            Some(c) => {
                own_bodies.insert(((b.record_type, b.key), c), b.data);
            }
        }
    }
    let loaded: HashSet<&RecKey> = dirty.known.iter().map(|k| &k.key).collect();
    let mut states: HashMap<RecKey, KeyState> = HashMap::with_capacity(dirty.all.len());
    for h in heads {
        let key = (h.record_type, h.key);
        if !dirty.all.contains(&key) {
            continue;
        }
        let mut contributions = Vec::with_capacity(h.sources.len());
        for s in h.sources {
            let corrupt = |reason: String| CorruptContribution {
                record_type: key.0,
                key: key.1.clone(),
                connector: s.connector.clone(),
                reason,
            };
            // Invariant: a live contribution has a body row exactly when it differs from the
            // merged record.
            let has_body = !s.deleted && (s.content_hash != h.content_hash || h.deleted);
            let own = own_bodies.remove(&(key.clone(), s.connector.clone()));
            let text: Option<Arc<str>> = if !loaded.contains(&key) || s.deleted {
                // Not needed: every re-merge of this key replaces this contribution first.
                None
            } else if has_body {
                Some(Arc::from(own.ok_or_else(|| {
                    corrupt("it differs from the merged record but has no body".into())
                })?))
            } else {
                Some(merged_bodies.get(&key).cloned().ok_or_else(|| {
                    corrupt("the merged record it equals has no stored body".into())
                })?)
            };
            contributions.push(Contribution {
                connector: s.connector,
                content_hash: s.content_hash,
                deleted: s.deleted,
                division: s.division,
                // Parsed only if a multi-source merge needs it: most records have one source.
                value: None,
                text,
                lineage: s.lineage,
                changed: false,
                has_body,
                overridden: s.overridden_fields,
            });
        }
        let data = merged_bodies.get(&key).cloned();
        states.insert(
            key,
            KeyState {
                version: h.version,
                seq: SeqRef::Existing(h.seq),
                deleted: h.deleted,
                content_hash: h.content_hash,
                division: h.division,
                data,
                contributions,
            },
        );
    }

    let mut plan = Plan::default();
    plan.outcome.unchanged = selected.skipped;
    // Keys in the order they were first touched, so written rows follow delivery order.
    let mut order: Vec<RecKey> = Vec::new();
    let mut in_order: HashSet<RecKey> = HashSet::new();
    for inc in &selected.events {
        let e = inc.event;
        let key = (e.recordtype, e.subject.clone());
        if !dirty.all.contains(&key) {
            plan.outcome.unchanged += 1;
            continue;
        }
        if in_order.insert(key.clone()) {
            order.push(key.clone());
        }
        let state = states.entry(key.clone()).or_insert_with(new_state);
        let pos = state
            .contributions
            .iter()
            .position(|c| c.connector == e.connector);
        match e.op {
            Op::Upsert => {
                if let Some(c) = pos.map(|i| &state.contributions[i])
                    && !c.deleted
                    && c.content_hash == inc.hash
                {
                    plan.outcome.unchanged += 1;
                    continue;
                }
                let Some(text) = e.data_text() else {
                    plan.outcome.unchanged += 1;
                    continue;
                };
                let c = Contribution {
                    connector: e.connector.clone(),
                    content_hash: inc.hash.to_string(),
                    deleted: false,
                    division: e.division.clone(),
                    // Parsed only if a multi-source merge needs it.
                    value: None,
                    text: Some(Arc::from(text)),
                    lineage: e.lineage(),
                    changed: true,
                    has_body: pos.is_some_and(|i| state.contributions[i].has_body),
                    overridden: Vec::new(),
                };
                match pos {
                    Some(i) => state.contributions[i] = c,
                    None => state.contributions.push(c),
                }
            }
            Op::Delete => {
                let Some(i) = pos.filter(|i| !state.contributions[*i].deleted) else {
                    plan.outcome.unchanged += 1;
                    continue;
                };
                let c = &mut state.contributions[i];
                c.deleted = true;
                c.content_hash.clear();
                c.value = None;
                c.text = None;
                c.lineage = e.lineage();
                c.changed = true;
                c.overridden.clear();
            }
        }
        remerge(precedence, &key, state, &mut plan, &e.connector)?;
    }

    for key in order {
        let Some(state) = states.remove(&key) else {
            continue;
        };
        let mut ranked: Vec<&Contribution> = state.contributions.iter().collect();
        ranked.sort_by(|a, b| {
            rank(precedence, key.0, &a.connector).cmp(&rank(precedence, key.0, &b.connector))
        });
        let summary: Vec<StoredSource> = ranked
            .iter()
            .map(|c| StoredSource {
                connector: c.connector.clone(),
                content_hash: c.content_hash.clone(),
                lineage: c.lineage.clone(),
                deleted: c.deleted,
                overridden_fields: c.overridden.clone(),
                division: c.division.clone(),
            })
            .collect();
        let live = state.version > 0 && !state.deleted;
        for c in &state.contributions {
            // A body row exactly for live contributions that differ from the final merged body.
            let wants_body = !(c.deleted || live && c.content_hash == state.content_hash);
            let write = if wants_body {
                c.changed || !c.has_body
            } else {
                c.has_body
            };
            if write {
                plan.bodies.push(BodyWrite {
                    record_type: key.0,
                    key: key.1.clone(),
                    connector: c.connector.clone(),
                    content_hash: c.content_hash.clone(),
                    data: if wants_body { c.text.clone() } else { None },
                });
            }
        }
        if state.version == 0 {
            // Only reachable for keys whose events were all no-ops; nothing to store.
            continue;
        }
        plan.records.push(RecordWrite {
            record_type: key.0,
            key: key.1,
            version: state.version,
            seq: state.seq,
            deleted: state.deleted,
            division: state.division,
            content_hash: state.content_hash,
            data: state.data,
            sources: serde_json::to_string(&summary).unwrap_or_default(),
        });
    }
    Ok(plan)
}

fn new_state() -> KeyState {
    KeyState {
        version: 0,
        seq: SeqRef::Existing(0),
        deleted: false,
        content_hash: String::new(),
        division: String::new(),
        data: None,
        contributions: Vec::new(),
    }
}

/// Re-merges one record after a contribution changed and writes a version when the merged
/// content differs from the current one.
fn remerge(
    precedence: &Precedence,
    key: &RecKey,
    state: &mut KeyState,
    plan: &mut Plan,
    cause: &str,
) -> Result<(), CorruptContribution> {
    let mut live: Vec<usize> = (0..state.contributions.len())
        .filter(|i| {
            let c = &state.contributions[*i];
            !c.deleted && c.text.is_some()
        })
        .collect();
    live.sort_by(|a, b| {
        rank(precedence, key.0, &state.contributions[*a].connector).cmp(&rank(
            precedence,
            key.0,
            &state.contributions[*b].connector,
        ))
    });
    for c in &mut state.contributions {
        c.overridden.clear();
    }

    let was_live = state.live();
    if live.is_empty() {
        if !was_live {
            // A tombstone stays a tombstone; only the contribution changed.
            return Ok(());
        }
        state.version += 1;
        state.deleted = true;
        state.content_hash.clear();
        state.data = None;
        let prev = std::mem::replace(&mut state.seq, SeqRef::New(plan.versions.len()));
        push_version(plan, key, state, prev, cause);
        plan.outcome.deleted += 1;
        return Ok(());
    }

    let top = &state.contributions[live[0]];
    let division = top.division.clone();
    let (hash, text) = if live.len() == 1 {
        // Live contributions have their text (the filter above).
        (
            top.content_hash.clone(),
            top.text.clone().unwrap_or_default(),
        )
    } else {
        for i in &live {
            let c = &mut state.contributions[*i];
            if c.value.is_none()
                && let Some(text) = &c.text
            {
                let value =
                    serde_json::from_str::<Value>(text).map_err(|e| CorruptContribution {
                        record_type: key.0,
                        key: key.1.clone(),
                        connector: c.connector.clone(),
                        reason: e.to_string(),
                    })?;
                c.value = Some(value);
            }
        }
        let inputs: Vec<&Value> = live
            .iter()
            .filter_map(|i| state.contributions[*i].value.as_ref())
            .collect();
        let merged = merge(&inputs);
        for (rank_pos, i) in live.iter().enumerate() {
            if let Some(fields) = merged.overridden.get(rank_pos) {
                state.contributions[*i].overridden = fields.clone();
            }
        }
        hash_and_text(&merged.data)
    };
    state.division = division;
    if was_live && hash == state.content_hash {
        plan.outcome.unchanged += 1;
        // Same content; keep the body the store already has in sync with the summary.
        state.data = Some(text);
        return Ok(());
    }
    state.version += 1;
    state.deleted = false;
    state.content_hash = hash;
    state.data = Some(text);
    let prev = std::mem::replace(&mut state.seq, SeqRef::New(plan.versions.len()));
    push_version(plan, key, state, prev, cause);
    if was_live {
        plan.outcome.updated += 1;
    } else {
        plan.outcome.inserted += 1;
    }
    Ok(())
}

fn push_version(plan: &mut Plan, key: &RecKey, state: &KeyState, prev: SeqRef, cause: &str) {
    plan.versions.push(VersionWrite {
        record_type: key.0,
        key: key.1.clone(),
        version: state.version,
        prev,
        deleted: state.deleted,
        division: state.division.clone(),
        content_hash: state.content_hash.clone(),
        data: state.data.clone(),
        source: cause.to_owned(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn higher_source_wins_each_field_and_lower_conflicts_are_recorded() {
        let high = json!({"a": 1, "b": null, "c": "x"});
        let low = json!({"a": 2, "b": "filled", "c": "x", "d": true});
        let m = merge(&[&high, &low]);
        assert_eq!(m.data, json!({"a": 1, "b": "filled", "c": "x", "d": true}));
        assert_eq!(
            m.overridden,
            vec![Vec::<String>::new(), vec!["a".to_string()]]
        );
        // Field order follows the highest source, so the merged hash is stable.
        let keys: Vec<&String> = m
            .data
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["a", "b", "c", "d"]);
    }

    #[test]
    fn null_in_every_source_stays_null_and_is_no_conflict() {
        let high = json!({"a": null});
        let low = json!({"a": null});
        let m = merge(&[&high, &low]);
        assert_eq!(m.data, json!({"a": null}));
        assert!(m.overridden.iter().all(Vec::is_empty));
    }

    #[test]
    fn non_object_contribution_makes_the_highest_win_whole() {
        let high = json!([1, 2]);
        let low = json!({"a": 1});
        assert_eq!(merge(&[&high, &low]).data, json!([1, 2]));
    }

    #[test]
    fn rank_puts_listed_connectors_first_then_by_name() {
        let mut p = Precedence::default();
        p.0.insert(
            RecordType::Penalty,
            vec!["provincial".into(), "credit".into()],
        );
        assert!(
            rank(&p, RecordType::Penalty, "provincial") < rank(&p, RecordType::Penalty, "credit")
        );
        assert!(rank(&p, RecordType::Penalty, "credit") < rank(&p, RecordType::Penalty, "aaa"));
        assert!(rank(&p, RecordType::Penalty, "aaa") < rank(&p, RecordType::Penalty, "bbb"));
        assert!(rank(&p, RecordType::Agency, "credit") > rank(&p, RecordType::Penalty, "credit"));
    }

    fn ev(connector: &str, key: &str, op: Op, data: Option<Value>) -> Event {
        let l = Lineage {
            connector: connector.into(),
            stream: "s".into(),
            sync_run: "r".into(),
            ..Default::default()
        };
        Event::new(
            RecordType::Penalty,
            key.into(),
            "620822".into(),
            op,
            data,
            &l,
            None,
        )
    }

    #[test]
    fn planner_replays_same_key_events_in_order() {
        let batches = vec![Batch::new(
            "rk".into(),
            vec![
                ev("c", "k", Op::Upsert, Some(json!({"a": 1}))),
                ev("c", "k", Op::Upsert, Some(json!({"a": 1}))),
                ev("c", "k", Op::Upsert, Some(json!({"a": 2}))),
                ev("c", "k", Op::Delete, None),
                ev("c", "k", Op::Delete, None),
                ev("c", "gone", Op::Delete, None),
            ],
        )];
        let ids: HashSet<String> = batches.iter().map(|b| b.id.clone()).collect();
        let sel = select(&batches, &ids);
        assert_eq!(sel.ingested.get("r"), Some(&6));
        let dirty = dirty_keys(&sel.events, &[]);
        assert_eq!(dirty.all.len(), 1);
        assert!(dirty.known.is_empty());
        let p = plan(&Precedence::default(), &sel, &dirty, vec![], vec![]).unwrap();
        assert_eq!(
            p.outcome,
            ApplyOutcome {
                duplicate_batches: 0,
                inserted: 1,
                updated: 1,
                unchanged: 3,
                deleted: 1
            }
        );
        let versions: Vec<(i64, bool)> =
            p.versions.iter().map(|v| (v.version, v.deleted)).collect();
        assert_eq!(versions, [(1, false), (2, false), (3, true)]);
        assert_eq!(p.records.len(), 1);
        assert_eq!(p.records[0].seq, SeqRef::New(2));
        // A single source never needs a body of its own.
        assert!(p.bodies.is_empty());
    }

    #[test]
    fn a_batch_delivered_twice_in_one_call_counts_once() {
        let b = Batch::new(
            "rk".into(),
            vec![ev("c", "k", Op::Upsert, Some(json!({"a": 1})))],
        );
        let batches = vec![b.clone(), b];
        assert_eq!(unique_batch_ids(&batches).len(), 1);
        let ids: HashSet<String> = batches.iter().map(|b| b.id.clone()).collect();
        let sel = select(&batches, &ids);
        assert_eq!(sel.duplicate_batches, 1);
        assert_eq!(sel.events.len(), 1);
    }

    #[test]
    fn stored_bodies_are_loaded_only_while_a_stored_source_takes_part() {
        let head = |connectors: &[&str]| RecordHead {
            record_type: RecordType::Penalty,
            key: "k".into(),
            version: 3,
            seq: 9,
            deleted: false,
            division: "620822".into(),
            content_hash: "h-a".into(),
            sources: connectors
                .iter()
                .map(|c| StoredSource {
                    connector: (*c).into(),
                    content_hash: format!("h-{c}"),
                    lineage: Lineage::default(),
                    deleted: false,
                    overridden_fields: vec![],
                    division: "620822".into(),
                })
                .collect(),
        };
        let run = |events: Vec<Event>, heads: &[RecordHead]| {
            let batches = vec![Batch::new("rk".into(), events)];
            let ids: HashSet<String> = batches.iter().map(|b| b.id.clone()).collect();
            let sel = select(&batches, &ids);
            dirty_keys(&sel.events, heads).known.len()
        };
        let a = || ev("a", "k", Op::Upsert, Some(json!({"x": 1})));
        let b = || ev("b", "k", Op::Upsert, Some(json!({"x": 2})));
        // The only source replaces itself first: its old body is never read.
        assert_eq!(run(vec![a(), b()], &[head(&["a"])]), 0);
        // Another source merges with the stored one: its body is needed.
        assert_eq!(run(vec![b(), a()], &[head(&["a"])]), 1);
        assert_eq!(run(vec![a()], &[head(&["a", "b"])]), 1);
    }
}
