//! Deadlines, read side: every stored record a rule applies to, evaluated now, with its evidence
//! (`GET /v1/deadlines`, `xiezhi deadlines`).
//!
//! Delivery evidence is the first accepted push receipt of the record at a target the rule names
//! (`evidence_from`: the 双公示 publication at the credit platform, for penalties and licences,
//! and the credit platform's publication of random-inspection results); records that carry their own completion
//! field (a ticket's reply time, a result's publication date) are judged by it. Evaluation walks
//! the store by key pages, so memory stays flat whatever the number of records.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use super::{DeadlineState, DeadlineStatus, Rules, WorkingCalendar};
use crate::record::RecordType;
use crate::store::{PushReceipt, Store, StoreError};

/// Records read per page.
const PAGE: u32 = 500;

/// One record's deadline under one rule.
#[derive(Debug, Clone, Serialize)]
pub struct DeadlineRow {
    pub record_type: RecordType,
    pub key: String,
    #[serde(flatten)]
    pub state: DeadlineState,
    /// The accepted delivery that met the deadline (or met it late), when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<PushReceipt>,
}

/// Which deadlines to list.
#[derive(Debug, Clone, Default)]
pub struct DeadlineFilter {
    /// Any of these statuses; empty: all. `overdue` also selects deadlines met late (missed).
    pub statuses: Vec<DeadlineStatus>,
    pub rule: Option<String>,
    pub record_type: Option<RecordType>,
    pub limit: usize,
}

/// Counts by rule and status, for a summary and metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeadlineSummary {
    pub rows: Vec<DeadlineRow>,
    /// (rule, status) → count over every evaluated record (before the limit).
    pub counts: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    pub evaluated: u64,
}

fn status_name(s: DeadlineStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Evaluates the rules over the store at `now` (UTC+8 local time).
pub async fn evaluate(
    store: &dyn Store,
    rules: &Rules,
    calendar: &WorkingCalendar,
    filter: &DeadlineFilter,
    now: NaiveDateTime,
) -> Result<DeadlineSummary, StoreError> {
    let types: BTreeSet<RecordType> = rules
        .iter()
        .filter(|r| r.enabled)
        .filter_map(|r| r.record_type.parse::<RecordType>().ok())
        .filter(|t| filter.record_type.is_none_or(|f| f == *t))
        .collect();
    let wanted = |s: DeadlineStatus| {
        filter.statuses.is_empty()
            || filter.statuses.contains(&s)
            || (s == DeadlineStatus::MetLate && filter.statuses.contains(&DeadlineStatus::Overdue))
    };
    let mut out = DeadlineSummary::default();
    for t in types {
        let mut after = String::new();
        loop {
            let page = store.records_page(t, &after, PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            for (key, data) in page {
                // Evidence is read only for records that have a publication rule to judge.
                let receipts = store.push_receipts(t, &key).await?;
                // Each rule counts only deliveries to the targets it names (a publication, not
                // any push of the record).
                let states = rules.iter().filter_map(|rule| {
                    let first = receipts
                        .iter()
                        .filter(|r| r.accepted && rule.counts_delivery_to(&r.target))
                        .min_by_key(|r| r.sent_at)
                        .cloned();
                    let delivered = first.as_ref().map(|r| local(r.sent_at));
                    rule.evaluate(calendar, t.as_str(), &data, delivered, now)
                        .map(|state| (state, first))
                });
                for (state, first) in states {
                    if filter.rule.as_ref().is_some_and(|r| *r != state.rule) {
                        continue;
                    }
                    out.evaluated += 1;
                    *out.counts
                        .entry(state.rule.clone())
                        .or_default()
                        .entry(status_name(state.status))
                        .or_default() += 1;
                    if wanted(state.status) && out.rows.len() < filter.limit {
                        let met = matches!(
                            state.status,
                            DeadlineStatus::MetOnTime | DeadlineStatus::MetLate
                        );
                        out.rows.push(DeadlineRow {
                            record_type: t,
                            key: key.clone(),
                            evidence: if met { first } else { None },
                            state,
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

/// An instant as the upstreams' local time (UTC+8).
fn local(t: DateTime<Utc>) -> NaiveDateTime {
    (t + chrono::Duration::hours(8)).naive_utc()
}

/// Now, as the upstreams' local time (UTC+8).
pub fn now_local() -> NaiveDateTime {
    local(Utc::now())
}
