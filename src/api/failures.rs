//! API, operators: failures — list with filters, counts by error code, detail with history,
//! replay (or its dry run) and discard — and the audit log. Every route needs a token
//! ([`super::auth`]); viewers read with personal data masked, operators act.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::{ApiError, ApiState};
use crate::ops::filter::FailureQuery;
use crate::ops::replay::{self, ReplaySettings, Target};
use crate::ops::view::present;
use crate::store::ops::Role;

pub(crate) fn query_of<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::BadRequest(format!("bad query string: {}", e.body_text())))
}

pub(crate) fn body_of<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(t)| t)
        .map_err(|e| ApiError::Rejected(e.status(), e.body_text()))
}

/// `GET /v1/failures?connector=…&code=…&status=…&since=…&q=…&after=…&limit=…`
pub async fn list(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<FailureQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let q = query_of(q)?;
    let filter = q
        .parse(Utc::now())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let mut rows = s.store.list_failures(&filter).await?;
    let next = (rows.len() == filter.limit as usize)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    present(
        s.store.as_ref(),
        &s.rt.schema,
        &caller.reader("api"),
        "failures.list",
        None,
        q.to_json(),
        &mut rows,
    )
    .await?;
    Ok(Json(json!({"failures": rows, "next_after": next})).into_response())
}

/// `GET /v1/failures/stats?…`: matching failures by connector and error code.
pub async fn stats(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<FailureQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let q = query_of(q)?;
    let filter = q
        .parse(Utc::now())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let total = s.store.count_failures(&filter).await?;
    let by_code = s.store.failure_counts(&filter).await?;
    Ok(Json(json!({"total": total, "by_code": by_code})).into_response())
}

/// `GET /v1/failures/{id}`: the failure with its history.
pub async fn show(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let Some(mut row) = s.store.get_failure(&id).await? else {
        return Err(ApiError::NotFound(format!("no failure with id `{id}`")));
    };
    let history = s.store.failure_events(&id).await?;
    present(
        s.store.as_ref(),
        &s.rt.schema,
        &caller.reader("api"),
        "failures.show",
        Some(id.clone()),
        json!({}),
        std::slice::from_mut(&mut row),
    )
    .await?;
    Ok(Json(json!({"failure": row, "history": history})).into_response())
}

/// Body of `POST /v1/failures/replay`: ids, or a filter (the list's parameters), not both.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    #[serde(default)]
    pub ids: Vec<String>,
    pub filter: Option<FailureQuery>,
    #[serde(default)]
    pub dry_run: bool,
    /// Records per second at most (default: unlimited).
    #[serde(default)]
    pub rate: u32,
}

/// `POST /v1/failures/replay`
pub async fn replay(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let req = body_of(body)?;
    let target = match (req.ids.is_empty(), req.filter) {
        (false, None) => {
            if req.ids.len() > 10_000 {
                return Err(ApiError::BadRequest(
                    "field `ids`: at most 10000 ids per request; replay larger sets by filter"
                        .into(),
                ));
            }
            Target::Ids(req.ids)
        }
        (true, Some(q)) => Target::Filter(
            q.parse(Utc::now())
                .map_err(|e| ApiError::BadRequest(format!("field `filter`: {e}")))?,
        ),
        _ => {
            return Err(ApiError::BadRequest(
                "give either `ids` (a non-empty list) or `filter`, not both".into(),
            ));
        }
    };
    let settings = ReplaySettings {
        dry_run: req.dry_run,
        rate_per_sec: req.rate,
        actor: caller.actor(),
        ..Default::default()
    };
    let report = replay::replay(&s.rt, target, &settings, |_| {})
        .await
        .map_err(|e| ApiError::Internal(format!("{e:#}")))?;
    Ok(Json(report).into_response())
}

/// Body of `POST /v1/failures/{id}/discard`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscardRequest {
    pub reason: String,
}

/// `POST /v1/failures/{id}/discard`: closes an open failure for good, with a reason.
pub async fn discard(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Json<DiscardRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let req = body_of(body)?;
    let reason = req.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::BadRequest(
            "field `reason`: a discard needs a reason".into(),
        ));
    }
    let moved = crate::ops::discard(s.store.as_ref(), &id, reason, &caller.actor()).await?;
    match moved {
        crate::ops::Discarded::Done => {
            Ok(Json(json!({"id": id, "status": "discarded"})).into_response())
        }
        crate::ops::Discarded::NotFound => {
            Err(ApiError::NotFound(format!("no failure with id `{id}`")))
        }
        crate::ops::Discarded::NotOpen(st) => Err(ApiError::Conflict(format!(
            "failure `{id}` is {}, only open or replayed failures can be discarded",
            crate::store::status_name(st)
        ))),
    }
}

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    after: Option<String>,
    limit: Option<String>,
}

/// `GET /v1/audit?after=SEQ&limit=N`: the audit log, oldest first.
pub async fn audit(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let q = query_of(q)?;
    let after = match q.after.as_deref() {
        None => 0,
        Some(a) => a.parse::<i64>().map_err(|_| {
            ApiError::BadRequest(format!("parameter `after`: `{a}` is not a sequence number"))
        })?,
    };
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "parameter `limit`: `{l}` is not a number from 1 to 1000"
                )));
            }
        },
    };
    let entries = s.store.list_audit(after, limit).await?;
    Ok(Json(json!({"entries": entries})).into_response())
}

impl From<crate::ops::edits::EditError> for ApiError {
    fn from(e: crate::ops::edits::EditError) -> Self {
        use crate::ops::edits::EditError as E;
        match e {
            E::NoFailure(_) | E::NoEdit(_) => ApiError::NotFound(e.to_string()),
            E::NotOpen(..) | E::NotPending(..) => ApiError::Conflict(e.to_string()),
            E::NotEditable(_) | E::Patch(_) => ApiError::BadRequest(e.to_string()),
            E::OwnEdit(..) => ApiError::Forbidden(e.to_string()),
            E::Store(s) => ApiError::Store(s),
            E::Replay(r) => ApiError::Internal(format!("{r:#}")),
        }
    }
}

/// Body of `POST /v1/failures/{id}/edits`: a JSON Patch or the whole edited record.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    pub patch: Option<Vec<crate::ops::patch::Operation>>,
    pub record: Option<serde_json::Value>,
    pub note: Option<String>,
}

/// `POST /v1/failures/{id}/edits`: records a pending edit (it runs only once approved).
pub async fn create_edit(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Json<EditRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let req = body_of(body)?;
    let correction = match (req.patch, req.record) {
        (Some(p), None) if !p.is_empty() => crate::ops::edits::Correction::Patch(p),
        (None, Some(r)) if r.is_object() => crate::ops::edits::Correction::Record(r),
        _ => {
            return Err(ApiError::BadRequest(
                "give either `patch` (a non-empty JSON Patch) or `record` (an object), not both"
                    .into(),
            ));
        }
    };
    let edit = crate::ops::edits::edit(&s.rt, &id, correction, req.note, &caller.actor()).await?;
    Ok((axum::http::StatusCode::CREATED, Json(edit)).into_response())
}

/// Query of `GET /v1/edits`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditsQuery {
    status: Option<String>,
    failure: Option<String>,
}

/// `GET /v1/edits?status=pending&failure=ID`: edits, newest first.
pub async fn list_edits(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<EditsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let q = query_of(q)?;
    let status = q
        .status
        .as_deref()
        .map(|st| {
            st.parse()
                .map_err(|e| ApiError::BadRequest(format!("parameter `status`: {e}")))
        })
        .transpose()?;
    let edits = s
        .store
        .list_edits(status, q.failure.as_deref(), 100)
        .await?;
    Ok(Json(json!({"edits": edits})).into_response())
}

/// `POST /v1/edits/{id}/approve`: a second person approves; the edited replay runs.
pub async fn approve_edit(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Approver)?;
    let report = crate::ops::edits::approve(&s.rt, &id, &caller.actor()).await?;
    Ok(Json(report).into_response())
}

/// `POST /v1/edits/{id}/reject` with `{"reason": …}`.
pub async fn reject_edit(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Json<DiscardRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Approver)?;
    let req = body_of(body)?;
    if req.reason.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "field `reason`: a rejection needs a reason".into(),
        ));
    }
    crate::ops::edits::reject(&s.rt, &id, &caller.actor(), req.reason.trim()).await?;
    Ok(Json(json!({"id": id, "status": "rejected"})).into_response())
}
