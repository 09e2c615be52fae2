//! Push: the store's changes delivered back to an upstream (penalties and licences to the credit
//! platform for 双公示 publication, inspections to the Internet+Supervision exchange, …).
//!
//! A pusher tails the store's change sequence for its record type, like a feed consumer with
//! its own cursor. Each round writes a batch of changes in the upstream's dialect (the pull
//! stream's mapping turned around), POSTs it with an idempotency key derived from the changes it
//! carries (a retried or repeated round is the same request to the upstream), keeps a receipt per
//! record (what was sent, when, the upstream's answer), records refused records in the failure
//! store (stage `push`), and only then moves its cursor. An upstream outage stops the rounds
//! (the cursor stays), so delivery is delayed, never lost.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::definition::PushDef;
use super::http::{PullError, Upstream};
use crate::normalize::mapping::lookup;
use crate::normalize::reverse::Reverser;
use crate::record::{Failure, FieldError, Lineage, Stage};
use crate::schema::SchemaRegistry;
use crate::store::{Change, PushReceipt, Store};

/// One push of one connector, ready to run.
pub struct Pusher {
    pub connector: String,
    pub def: PushDef,
    pub upstream: Arc<Upstream>,
    pub reverser: Reverser,
}

/// What one push run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushReport {
    pub connector: String,
    pub push: String,
    pub record_type: String,
    pub requests: u64,
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Why the run stopped before catching up (the next run retries from the cursor).
    pub error: Option<String>,
}

/// Why a round could not complete.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Upstream(#[from] PullError),
    #[error("{target}: the answer does not report every record: {reason}")]
    BadAnswer { target: String, reason: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl Pusher {
    /// Whether a live record is one this push delivers (its `only` condition, when it has one).
    pub fn wants(&self, record: &Value) -> bool {
        self.def.only.as_ref().is_none_or(|w| w.holds(record))
    }

    /// `<connector>/<push>`: names the cursor and the receipts.
    pub fn target(&self) -> String {
        format!("{}/{}", self.connector, self.def.name)
    }

    /// Delivers every change after the cursor, round after round, until caught up or an
    /// upstream error stops it.
    pub async fn run(&self, store: &dyn Store, schema: &SchemaRegistry) -> PushReport {
        let mut report = PushReport {
            connector: self.connector.clone(),
            push: self.def.name.clone(),
            record_type: self.def.record_type.to_string(),
            ..Default::default()
        };
        loop {
            match self.round(store, schema, &mut report).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(target = %self.target(), error = %e, "Push stopped; it resumes from its cursor next time.");
                    report.error = Some(e.to_string());
                    break;
                }
            }
        }
        if report.sent > 0 {
            tracing::info!(target = %self.target(), sent = report.sent, accepted = report.accepted, rejected = report.rejected, "Push run finished.");
        }
        report
    }

    /// One batch: returns how many changes it handled (0 when caught up).
    async fn round(
        &self,
        store: &dyn Store,
        schema: &SchemaRegistry,
        report: &mut PushReport,
    ) -> Result<usize, PushError> {
        let target = self.target();
        let t = self.def.record_type;
        let cursor_name = format!("push:{target}");
        let cursor = store
            .feed_cursor(&cursor_name, t.as_str())
            .await?
            .unwrap_or(0);
        let changes = store.changes(Some(t), cursor, self.def.batch).await?;
        let Some(last) = changes.last().map(|c| c.seq) else {
            return Ok(0);
        };
        let key = |items: &str| request_key(&target, cursor, last, items);
        self.deliver(store, schema, &changes, key, report).await?;
        store
            .save_feed_cursor(&cursor_name, t.as_str(), last)
            .await?;
        Ok(changes.len())
    }

    /// Sends the current version of each record in `keys` again, outside the cursor (an
    /// operator's replay of push failures): a new request, so an upstream that refused before
    /// judges it afresh. Returns, per key sent, whether it was accepted.
    pub async fn resend(
        &self,
        store: &dyn Store,
        schema: &SchemaRegistry,
        keys: &[String],
        report: &mut PushReport,
    ) -> Result<Vec<(String, bool)>, PushError> {
        let t = self.def.record_type;
        let mut changes = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(current) = store.history(t, key).await?.pop() else {
                continue;
            };
            changes.push(Change {
                seq: current.seq,
                record_type: t,
                key: key.clone(),
                version: current.version,
                deleted: current.deleted,
                division: String::new(),
                data: current.data,
                changed_at: current.changed_at,
                source: String::new(),
            });
        }
        let request_key = format!("resend-{}", uuid::Uuid::new_v4().simple());
        self.deliver(store, schema, &changes, |_: &str| request_key, report)
            .await
    }

    /// Writes `changes` in the upstream's dialect, posts them as one request, and keeps a
    /// receipt per record and a failure per refusal. Returns, per record sent, whether it was
    /// accepted.
    async fn deliver(
        &self,
        store: &dyn Store,
        schema: &SchemaRegistry,
        changes: &[Change],
        request_key: impl FnOnce(&str) -> String,
        report: &mut PushReport,
    ) -> Result<Vec<(String, bool)>, PushError> {
        let target = self.target();
        let t = self.def.record_type;
        let keys: Vec<String> = changes.iter().map(|c| c.key.clone()).collect();
        let mut known: HashSet<String> = store
            .accepted_push_keys(&target, t, &keys)
            .await?
            .into_iter()
            .collect();

        let mut items = Vec::with_capacity(changes.len());
        let mut sent: Vec<(&Change, &'static str, Value)> = Vec::with_capacity(changes.len());
        for c in changes {
            let (op, data) = if c.deleted {
                // A tombstone carries no data: the upstream identifies the withdrawn record by
                // the key fields of its last live version.
                let live = store
                    .history(t, &c.key)
                    .await?
                    .into_iter()
                    .rev()
                    .find(|v| !v.deleted)
                    .map(|v| v.data);
                match live {
                    Some(d) if known.contains(&c.key) => ("delete", d),
                    // Never delivered: nothing to withdraw.
                    _ => continue,
                }
            } else if !self.wants(&c.data) {
                // Out of this push's scope (a ticket without a case number): nothing to send,
                // unless an earlier version was delivered, which the upstream must then drop.
                if !known.remove(&c.key) {
                    continue;
                }
                ("delete", c.data.clone())
            } else if known.contains(&c.key) {
                ("update", c.data.clone())
            } else {
                ("insert", c.data.clone())
            };
            let mut item = self.reverser.write(&data, schema.codes());
            if let Value::Object(m) = &mut item {
                let o = &self.def.op;
                let v = match op {
                    "insert" => &o.insert,
                    "update" => &o.update,
                    _ => &o.delete,
                };
                m.insert(o.field.clone(), Value::String(v.clone()));
            }
            // Later changes of the same key in this batch are updates of this one (after a
            // withdrawal, a fresh insert).
            if op == "delete" {
                known.remove(&c.key);
            } else {
                known.insert(c.key.clone());
            }
            items.push(item.clone());
            sent.push((c, op, item));
        }

        if items.is_empty() {
            return Ok(Vec::new());
        }
        let unwritable = |e: serde_json::Error| PushError::BadAnswer {
            target: target.clone(),
            reason: format!("the request could not be written: {e}"),
        };
        // The items are written once: their text is both the request's content and part of
        // its idempotency key.
        let items = serde_json::value::to_raw_value(&items).map_err(unwritable)?;
        let request_key = request_key(items.get());
        let request_key = request_key.as_str();
        let batch = match &self.def.batch_field {
            Some(f) => {
                let digest = hex::encode(Sha256::digest(request_key.as_bytes()));
                let value = serde_json::value::to_raw_value(&format!("XZ{}", &digest[..20]))
                    .map_err(unwritable)?;
                Some((f.as_str(), value))
            }
            None => None,
        };
        let mut fields: BTreeMap<&str, &RawValue> = BTreeMap::new();
        fields.insert(&self.def.records, &items);
        if let Some((f, value)) = &batch {
            fields.insert(f, value);
        }
        let body = serde_json::to_vec(&fields).map_err(unwritable)?;
        let answer: Value = self
            .upstream
            .post_json_parsed(
                &self.def.path,
                body,
                vec![(self.def.idempotency_header.clone(), request_key.to_owned())],
                |b| serde_json::from_str(&b.text).map_err(|e| format!("not JSON: {e}")),
            )
            .await?;
        report.requests += 1;
        let results = lookup(&answer, &self.def.answer.results)
            .and_then(Value::as_array)
            .filter(|r| r.len() == sent.len())
            .ok_or_else(|| PushError::BadAnswer {
                target: target.clone(),
                reason: format!(
                    "expected {} results at `{}`, got {}",
                    sent.len(),
                    self.def.answer.results,
                    snippet(&answer)
                ),
            })?;
        self.keep(store, request_key, &sent, results, report).await
    }

    /// Receipts for every record sent, failures for the refused ones.
    async fn keep(
        &self,
        store: &dyn Store,
        request_key: &str,
        sent: &[(&Change, &'static str, Value)],
        results: &[Value],
        report: &mut PushReport,
    ) -> Result<Vec<(String, bool)>, PushError> {
        let target = self.target();
        let now = Utc::now();
        let mut receipts = Vec::with_capacity(sent.len());
        let mut failures = Vec::new();
        let mut outcomes = Vec::with_capacity(sent.len());
        for (i, ((c, op, item), result)) in sent.iter().zip(results).enumerate() {
            let accepted = result.get(&self.def.answer.ok_field) == Some(&self.def.answer.ok_value);
            receipts.push(PushReceipt {
                target: target.clone(),
                seq: c.seq,
                record_type: c.record_type,
                key: c.key.clone(),
                version: c.version,
                op: (*op).to_owned(),
                accepted,
                request_key: request_key.to_owned(),
                sent_at: now,
                answer: result.clone(),
            });
            report.sent += 1;
            outcomes.push((c.key.clone(), accepted));
            if accepted {
                report.accepted += 1;
                continue;
            }
            report.rejected += 1;
            let raw = item.to_string();
            failures.push(Failure {
                id: Failure::make_id(
                    Stage::Push,
                    &self.connector,
                    &self.def.name,
                    Some(&c.key),
                    &raw,
                ),
                stage: Stage::Push,
                connector: self.connector.clone(),
                stream: self.def.name.clone(),
                record_type: Some(c.record_type),
                natural_key: Some(c.key.clone()),
                upstream_id: Some(c.key.clone()),
                raw,
                raw_context: None,
                normalized: Some(c.data.clone()),
                errors: refusal_errors(result, &self.def.answer.errors),
                lineage: Lineage {
                    connector: self.connector.clone(),
                    stream: self.def.name.clone(),
                    sync_run: request_key.to_owned(),
                    page: format!("seq={}", c.seq),
                    index: i as u32,
                },
            });
        }
        store.record_push_receipts(&receipts).await?;
        if !failures.is_empty() {
            store.record_failures(request_key, &failures).await?;
            tracing::warn!(target = %target, refused = failures.len(), "The upstream refused pushed records; they are in the failure store (stage push).");
        }
        Ok(outcomes)
    }
}

/// The upstream's reasons for refusing a record, as failure errors (each system names its
/// fields differently: `field`/`column`, `message`/`msg`).
fn refusal_errors(result: &Value, errors_field: &str) -> Vec<FieldError> {
    let text = |e: &Value, names: &[&str]| {
        names
            .iter()
            .find_map(|n| e.get(*n).and_then(Value::as_str))
            .unwrap_or_default()
            .to_owned()
    };
    let errors: Vec<FieldError> = result
        .get(errors_field)
        .and_then(Value::as_array)
        .map(|errs| {
            errs.iter()
                .map(|e| FieldError {
                    code: format!("PUSH_{}", text(e, &["code"]).trim_start_matches("E_")),
                    path: text(e, &["field", "column"]),
                    schema_path: String::new(),
                    message: text(e, &["message", "msg"]),
                })
                .collect()
        })
        .unwrap_or_default();
    if errors.is_empty() {
        vec![FieldError {
            code: "PUSH_REFUSED".into(),
            path: String::new(),
            schema_path: String::new(),
            message: format!("the upstream refused the record: {result}"),
        }]
    } else {
        errors
    }
}

fn snippet(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s
    }
}

/// The idempotency key of `target`'s batch after `cursor` up to `last` carrying `items` (their
/// JSON): a retry of the same request has the same key, however often it is sent, and a
/// request with other content never reuses one. Sequence numbers alone repeat after a
/// store is restored from a backup or created afresh, and the upstream would answer such a
/// request with the stored answer of another (seen in the instances benchmark, where a
/// second fresh store met the first one's keys at the same simulator).
fn request_key(target: &str, cursor: i64, last: i64, items: &str) -> String {
    let mut h = Sha256::new();
    h.update(target.as_bytes());
    h.update([0u8]);
    h.update(cursor.to_string().as_bytes());
    h.update([0u8]);
    h.update(last.to_string().as_bytes());
    h.update([0u8]);
    h.update(items.as_bytes());
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_key_repeats_for_the_same_request_and_only_for_it() {
        let items = r#"[{"CF_WSH":"灵信罚〔2024〕1号"}]"#;
        let key = request_key("credit-platform/publish-penalties", 0, 100, items);
        assert_eq!(
            key,
            request_key("credit-platform/publish-penalties", 0, 100, items)
        );
        assert_eq!(key.len(), 32);
        // A fresh store counting the same sequence numbers sends other records.
        let other = r#"[{"CF_WSH":"灵信罚〔2024〕2号"}]"#;
        assert_ne!(
            key,
            request_key("credit-platform/publish-penalties", 0, 100, other)
        );
        assert_ne!(
            key,
            request_key("credit-platform/publish-licenses", 0, 100, items)
        );
        assert_ne!(
            key,
            request_key("credit-platform/publish-penalties", 0, 101, items)
        );
    }

    #[test]
    fn refusals_keep_the_upstreams_codes_fields_and_messages() {
        let credit = json!({"status": "rejected", "errors": [{"field": "CF_JDRQ", "code": "E_DATE", "message": "不是有效日期"}]});
        let e = refusal_errors(&credit, "errors");
        assert_eq!(
            (
                e[0].code.as_str(),
                e[0].path.as_str(),
                e[0].message.as_str()
            ),
            ("PUSH_DATE", "CF_JDRQ", "不是有效日期")
        );
        let exchange = json!({"ok": false, "errors": [{"column": "check_date", "code": "E_DATE", "msg": "bad"}]});
        assert_eq!(refusal_errors(&exchange, "errors")[0].path, "check_date");
        let bare = refusal_errors(&json!({"ok": false}), "errors");
        assert_eq!(bare[0].code, "PUSH_REFUSED");
    }
}
