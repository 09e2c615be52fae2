//! Operators: the people who keep the exchange honest find what failed, understand it, fix the
//! cause and push it through again — from the CLI, the API and the console alike. This module
//! holds what those three share: the failure filter as typed in ([`filter`]), replay
//! ([`replay`]) and API tokens ([`tokens`]).

pub mod commands;
pub mod edits;
pub mod filter;
pub mod patch;
pub mod replay;
pub mod tokens;
pub mod view;

use chrono::Utc;
use serde_json::json;

use crate::store::ops::{FailureEvent, NewAudit};
use crate::store::{FailureStatus, Store, StoreError};

/// What a discard did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discarded {
    Done,
    NotFound,
    /// The failure is no longer open (resolved, or discarded already).
    NotOpen(FailureStatus),
}

impl Discarded {
    pub fn as_str(self) -> &'static str {
        match self {
            Discarded::Done => "discarded",
            Discarded::NotFound => "not_found",
            Discarded::NotOpen(_) => "not_open",
        }
    }
}

/// Marks failures resolved (from `open` or `replayed`) with `detail` in their history; returns
/// how many moved. Replays, syncs that stored a fixed record, and re-pulls all resolve this way.
pub async fn resolve(
    store: &dyn Store,
    ids: &[String],
    actor: &str,
    detail: serde_json::Value,
) -> Result<i64, StoreError> {
    let mut moved = 0i64;
    for chunk in ids.chunks(1000) {
        let done = store
            .set_failure_status(
                chunk,
                &replay::REPLAYABLE,
                FailureStatus::Resolved,
                &FailureEvent {
                    at: Utc::now(),
                    actor: actor.to_owned(),
                    action: "resolved".into(),
                    detail: detail.clone(),
                },
            )
            .await?;
        moved += done.len() as i64;
    }
    Ok(moved)
}

/// Discards a failure for good, with a reason, in its history and the audit log.
pub async fn discard(
    store: &dyn Store,
    id: &str,
    reason: &str,
    actor: &str,
) -> Result<Discarded, StoreError> {
    let moved = store
        .set_failure_status(
            &[id.to_owned()],
            &replay::REPLAYABLE,
            FailureStatus::Discarded,
            &FailureEvent {
                at: Utc::now(),
                actor: actor.to_owned(),
                action: "discarded".into(),
                detail: json!({"reason": reason}),
            },
        )
        .await?;
    let outcome = if moved.is_empty() {
        match store.get_failure(id).await? {
            None => Discarded::NotFound,
            Some(f) => Discarded::NotOpen(f.status),
        }
    } else {
        Discarded::Done
    };
    store
        .append_audit(&NewAudit {
            actor: actor.to_owned(),
            action: "discard".into(),
            target: Some(id.to_owned()),
            filter: json!({}),
            count: i64::from(outcome == Discarded::Done),
            outcome: json!({"result": outcome.as_str(), "reason": reason}),
        })
        .await?;
    Ok(outcome)
}
