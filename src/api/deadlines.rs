//! API, deadlines: `GET /v1/deadlines?status=due_soon,overdue&rule=…&type=…&limit=…` — every
//! stored record's legal deadline under the configured rules, evaluated now, with the delivery
//! that met it as evidence, and counts by rule and status.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::auth::Caller;
use super::failures::query_of;
use super::{ApiError, ApiState};
use crate::deadlines::report::{self, DeadlineFilter};
use crate::store::ops::Role;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineQuery {
    /// Comma-separated: pending, due_soon, overdue (also selects deadlines met late), met_on_time,
    /// met_late.
    pub status: Option<String>,
    pub rule: Option<String>,
    #[serde(rename = "type")]
    pub record_type: Option<String>,
    /// Rows at most, 1–10000 (default 100); the counts cover every record.
    pub limit: Option<String>,
}

/// Reads the query into a filter, naming a bad parameter.
pub fn filter_of(q: &DeadlineQuery) -> Result<DeadlineFilter, String> {
    let statuses = match q.status.as_deref() {
        None | Some("") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|s| {
                serde_json::from_value(serde_json::Value::String(s.trim().to_owned())).map_err(|_| {
                    format!(
                        "parameter `status`: `{s}` is not one of pending, due_soon, overdue, met_on_time, met_late"
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let record_type = match q.record_type.as_deref() {
        None | Some("") => None,
        Some(t) => Some(t.parse().map_err(|e| format!("parameter `type`: {e}"))?),
    };
    let limit = match q.limit.as_deref() {
        None | Some("") => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| format!("parameter `limit`: `{l}` is not between 1 and 10000"))?,
    };
    Ok(DeadlineFilter {
        statuses,
        rule: q.rule.clone().filter(|r| !r.is_empty()),
        record_type,
        limit,
    })
}

/// `GET /v1/deadlines`
pub async fn list(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<DeadlineQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let q = query_of(q)?;
    let filter = filter_of(&q).map_err(ApiError::BadRequest)?;
    let summary = report::evaluate(
        s.store.as_ref(),
        &s.rt.deadline_rules,
        &s.rt.calendar,
        &filter,
        report::now_local(),
    )
    .await?;
    Ok(Json(summary).into_response())
}
