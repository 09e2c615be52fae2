//! Operators: edit and approve — the four-eyes path for a record only a person can fix. An
//! operator writes a correction (a JSON Patch, or the whole edited record) against the record
//! as replay reads it; the failure keeps its raw payload untouched; the edit waits until a
//! second person with the approver role approves it, and only then does its replay run. Nobody
//! approves their own edit (the database refuses it too).

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::patch::{self, Operation};
use super::replay::{self, REPLAYABLE, ReplayReport, ReplaySettings, Target};
use crate::pipeline::Runtime;
use crate::store::StoreError;
use crate::store::ops::{EditRow, EditStatus, FailureEvent, NewAudit};

/// The correction, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// RFC 6902 operations on the record.
    Patch(Vec<Operation>),
    /// The whole edited record.
    Record(Value),
}

/// Why an edit or a decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("no failure with id `{0}`")]
    NoFailure(String),
    #[error("no edit with id `{0}`")]
    NoEdit(String),
    #[error("failure `{0}` is {1}; only open or replayed failures can be edited")]
    NotOpen(String, &'static str),
    #[error("this failure's record cannot be edited: {0}")]
    NotEditable(String),
    #[error("{0}")]
    Patch(#[from] patch::PatchError),
    #[error("edit `{0}` is {1}, not pending")]
    NotPending(String, &'static str),
    #[error("four-eyes: `{0}` wrote edit `{1}` and cannot also approve or reject it")]
    OwnEdit(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0:#}")]
    Replay(anyhow::Error),
}

/// Records a pending edit of a failure; returns it.
pub async fn edit(
    rt: &Runtime,
    failure_id: &str,
    correction: Correction,
    note: Option<String>,
    actor: &str,
) -> Result<EditRow, EditError> {
    let row = rt
        .store
        .get_failure(failure_id)
        .await?
        .ok_or_else(|| EditError::NoFailure(failure_id.to_owned()))?;
    if !REPLAYABLE.contains(&row.status) {
        return Err(EditError::NotOpen(
            failure_id.to_owned(),
            crate::store::status_name(row.status),
        ));
    }
    let original = replay::original_record(rt, &row).map_err(EditError::NotEditable)?;
    let (patch, edited) = match correction {
        Correction::Patch(ops) => {
            let edited = patch::apply(&original, &ops)?;
            (
                Some(serde_json::to_value(&ops).unwrap_or(Value::Null)),
                edited,
            )
        }
        Correction::Record(v) => (None, v),
    };
    let edit = EditRow {
        id: uuid::Uuid::now_v7().to_string(),
        failure_id: failure_id.to_owned(),
        editor: actor.to_owned(),
        created_at: Utc::now(),
        patch,
        edited,
        note,
        status: EditStatus::Pending,
        decided_by: None,
        decided_at: None,
        outcome: None,
    };
    rt.store.create_edit(&edit).await?;
    rt.store
        .append_failure_event(
            failure_id,
            &FailureEvent {
                at: edit.created_at,
                actor: actor.to_owned(),
                action: "edited".into(),
                detail: json!({"edit": edit.id, "patch": edit.patch, "note": edit.note}),
            },
        )
        .await?;
    rt.store
        .append_audit(&NewAudit {
            actor: actor.to_owned(),
            action: "edit".into(),
            target: Some(failure_id.to_owned()),
            filter: json!({}),
            count: 1,
            outcome: json!({"edit": edit.id, "status": "pending"}),
        })
        .await?;
    tracing::info!(failure = failure_id, edit = %edit.id, actor, "An edit awaits a second person's approval.");
    Ok(edit)
}

/// Approves a pending edit (by someone other than its editor) and runs its replay.
pub async fn approve(rt: &Runtime, edit_id: &str, actor: &str) -> Result<ReplayReport, EditError> {
    let edit = pending(rt, edit_id, actor, "approve").await?;
    let report = replay::replay(
        rt,
        Target::Edited {
            id: edit.failure_id.clone(),
            edit_id: edit.id.clone(),
            record: edit.edited.clone(),
        },
        &ReplaySettings {
            actor: actor.to_owned(),
            ..Default::default()
        },
        |_| {},
    )
    .await
    .map_err(EditError::Replay)?;
    let outcome = serde_json::to_value(&report).unwrap_or(Value::Null);
    if !rt
        .store
        .decide_edit(edit_id, EditStatus::Approved, actor, &outcome)
        .await?
    {
        // Someone decided it while the replay ran; the replay itself is idempotent.
        tracing::warn!(
            edit = edit_id,
            "An edit was decided by someone else during its replay."
        );
    }
    rt.store
        .append_audit(&NewAudit {
            actor: actor.to_owned(),
            action: "approve".into(),
            target: Some(edit.failure_id.clone()),
            filter: json!({"edit": edit_id, "editor": edit.editor}),
            count: 1,
            outcome,
        })
        .await?;
    Ok(report)
}

/// Rejects a pending edit with a reason.
pub async fn reject(
    rt: &Runtime,
    edit_id: &str,
    actor: &str,
    reason: &str,
) -> Result<(), EditError> {
    let edit = pending(rt, edit_id, actor, "reject").await?;
    let outcome = json!({"reason": reason});
    if !rt
        .store
        .decide_edit(edit_id, EditStatus::Rejected, actor, &outcome)
        .await?
    {
        return Err(EditError::NotPending(edit_id.to_owned(), "decided"));
    }
    rt.store
        .append_audit(&NewAudit {
            actor: actor.to_owned(),
            action: "reject".into(),
            target: Some(edit.failure_id),
            filter: json!({"edit": edit_id, "editor": edit.editor}),
            count: 1,
            outcome,
        })
        .await?;
    Ok(())
}

/// The edit, if it is pending and `actor` is not its editor. A refused attempt is audited.
async fn pending(
    rt: &Runtime,
    edit_id: &str,
    actor: &str,
    action: &str,
) -> Result<EditRow, EditError> {
    let edit = rt
        .store
        .get_edit(edit_id)
        .await?
        .ok_or_else(|| EditError::NoEdit(edit_id.to_owned()))?;
    let refused = if edit.status != EditStatus::Pending {
        Some(EditError::NotPending(
            edit_id.to_owned(),
            edit.status.as_str(),
        ))
    } else if edit.editor == actor {
        Some(EditError::OwnEdit(actor.to_owned(), edit_id.to_owned()))
    } else {
        None
    };
    if let Some(e) = refused {
        rt.store
            .append_audit(&NewAudit {
                actor: actor.to_owned(),
                action: format!("{action}.refused"),
                target: Some(edit.failure_id.clone()),
                filter: json!({"edit": edit_id, "editor": edit.editor}),
                count: 0,
                outcome: json!({"reason": e.to_string()}),
            })
            .await?;
        return Err(e);
    }
    Ok(edit)
}
