//! Reconciliation: compares the store with the upstreams' ground truth (`GET /truth`, which the
//! simulators serve) — every valid record stored exactly once, every invalid one in failures.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::record::RecordType;
use crate::store::{FailureFilter, FailureStatus, Store};

/// `GET /truth` of one upstream.
#[derive(Debug, Clone, Deserialize)]
pub struct Truth {
    pub system: String,
    pub valid: BTreeMap<String, Vec<String>>,
    pub invalid: Vec<InvalidRecord>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InvalidRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub record_type: String,
    pub reason: String,
}

/// Per record type, store against truth.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TypeReconciliation {
    /// Distinct valid keys over every upstream that has this type.
    pub expected: usize,
    /// Non-deleted records in the store.
    pub stored: usize,
    /// Valid upstream keys the store lacks (at most 20 shown).
    pub missing: Vec<String>,
    pub missing_count: usize,
    /// Stored keys no upstream lists as valid (at most 20 shown).
    pub unexpected: Vec<String>,
    pub unexpected_count: usize,
}

/// Per upstream, its invalid records against the failure store.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceReconciliation {
    pub valid: usize,
    pub invalid: usize,
    /// Invalid upstream ids with an open failure.
    pub invalid_in_failures: usize,
    /// Invalid upstream ids with no failure (at most 20 shown).
    pub invalid_missing: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Reconciliation {
    pub types: BTreeMap<String, TypeReconciliation>,
    pub sources: BTreeMap<String, SourceReconciliation>,
}

impl Reconciliation {
    /// Zero missing, zero unexpected, every invalid record in failures.
    pub fn ok(&self) -> bool {
        self.types
            .values()
            .all(|t| t.missing_count == 0 && t.unexpected_count == 0)
            && self
                .sources
                .values()
                .all(|s| s.invalid_missing.is_empty() && s.invalid_in_failures == s.invalid)
    }
}

/// Fetches `GET {base}/truth` from every upstream.
pub async fn fetch_truth(
    base_urls: &BTreeMap<String, String>,
) -> anyhow::Result<BTreeMap<String, Truth>> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()?;
    let mut out = BTreeMap::new();
    for (name, base) in base_urls {
        let url = format!("{base}/truth");
        let truth: Truth = client
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .with_context(|| format!("fetching {url}"))?
            .json()
            .await
            .with_context(|| format!("reading {url}"))?;
        out.insert(name.clone(), truth);
    }
    Ok(out)
}

/// Compares the store with the truth of each upstream.
pub async fn reconcile(
    store: &dyn Store,
    truths: &BTreeMap<String, Truth>,
) -> anyhow::Result<Reconciliation> {
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for t in truths.values() {
        for (ty, keys) in &t.valid {
            expected
                .entry(ty.clone())
                .or_default()
                .extend(keys.iter().cloned());
        }
    }
    let mut rec = Reconciliation::default();
    for ty in RecordType::ALL {
        let stored: BTreeSet<String> = store.keys(ty).await?.into_iter().collect();
        let want = expected.remove(ty.as_str()).unwrap_or_default();
        if stored.is_empty() && want.is_empty() {
            continue;
        }
        let missing: Vec<String> = want.difference(&stored).cloned().collect();
        let unexpected: Vec<String> = stored.difference(&want).cloned().collect();
        rec.types.insert(
            ty.as_str().to_owned(),
            TypeReconciliation {
                expected: want.len(),
                stored: stored.len(),
                missing_count: missing.len(),
                missing: missing.into_iter().take(20).collect(),
                unexpected_count: unexpected.len(),
                unexpected: unexpected.into_iter().take(20).collect(),
            },
        );
    }
    for (name, t) in truths {
        let failed = failed_upstream_ids(store, name).await?;
        let ids: BTreeSet<&str> = t.invalid.iter().map(|i| i.id.as_str()).collect();
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !failed.contains(**id))
            .map(|s| (*s).to_owned())
            .collect();
        rec.sources.insert(
            name.clone(),
            SourceReconciliation {
                valid: t.valid.values().map(Vec::len).sum(),
                invalid: ids.len(),
                invalid_in_failures: ids.len() - missing.len(),
                invalid_missing: missing.into_iter().take(20).collect(),
            },
        );
    }
    Ok(rec)
}

async fn failed_upstream_ids(
    store: &dyn Store,
    connector: &str,
) -> anyhow::Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    let mut filter = FailureFilter {
        connector: Some(connector.to_owned()),
        status: vec![FailureStatus::Open],
        limit: 1000,
        ..Default::default()
    };
    loop {
        let page = store.list_failures(&filter).await?;
        let Some(last) = page.last() else { break };
        filter.after_id = Some(last.id.clone());
        ids.extend(page.into_iter().filter_map(|f| f.upstream_id));
    }
    Ok(ids)
}

/// `GET /_admin/accepted` of one upstream: what it took from xiezhi's pushes.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Accepted {
    #[serde(default)]
    pub accepted: BTreeMap<String, Vec<String>>,
}

/// One push target: the store's live records of its type (those its `only` condition selects)
/// against what the upstream accepted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushReconciliation {
    pub target: String,
    pub record_type: String,
    pub stored: usize,
    pub accepted: usize,
    /// Stored keys the upstream has not accepted (at most 20 shown).
    pub missing: Vec<String>,
    pub missing_count: usize,
    /// Keys the upstream holds as live that it should not: not stored, or outside the push's
    /// `only` condition (at most 20 shown).
    pub unexpected: Vec<String>,
    pub unexpected_count: usize,
}

impl PushReconciliation {
    pub fn ok(&self) -> bool {
        self.missing_count == 0 && self.unexpected_count == 0
    }
}

/// Compares every push target with what its upstream reports as accepted.
pub async fn reconcile_pushes(
    store: &dyn Store,
    pushers: &[crate::connectors::push::Pusher],
) -> anyhow::Result<Vec<PushReconciliation>> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for p in pushers {
        let url = format!("{}/_admin/accepted", p.upstream.base_url);
        let accepted: Accepted = client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?
            .error_for_status()
            .with_context(|| format!("GET {url}"))?
            .json()
            .await
            .with_context(|| format!("reading {url}"))?;
        let t = p.def.record_type;
        let taken: BTreeSet<&str> = accepted
            .accepted
            .get(t.as_str())
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default();
        // The records this push is for: every live one, or those meeting its `only` condition.
        let wanted: Vec<String> = if p.def.only.is_none() {
            store.keys(t).await?
        } else {
            let mut keys = Vec::new();
            let mut after = String::new();
            loop {
                let page = store.records_page(t, &after, 1000).await?;
                let Some((last, _)) = page.last() else { break };
                after = last.clone();
                keys.extend(
                    page.into_iter()
                        .filter(|(_, data)| p.wants(data))
                        .map(|(k, _)| k),
                );
            }
            keys
        };
        let stored = wanted.len();
        let missing: Vec<String> = wanted
            .iter()
            .filter(|k| !taken.contains(k.as_str()))
            .cloned()
            .collect();
        let wanted: BTreeSet<&str> = wanted.iter().map(String::as_str).collect();
        let unexpected: Vec<String> = taken
            .iter()
            .filter(|k| !wanted.contains(*k))
            .map(|k| (*k).to_owned())
            .collect();
        out.push(PushReconciliation {
            target: p.target(),
            record_type: t.to_string(),
            stored,
            accepted: taken.len(),
            missing_count: missing.len(),
            missing: missing.into_iter().take(20).collect(),
            unexpected_count: unexpected.len(),
            unexpected: unexpected.into_iter().take(20).collect(),
        });
    }
    Ok(out)
}
