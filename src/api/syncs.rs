//! API, production: `GET /metrics` (Prometheus), the syncs of every instance (schedules,
//! leases, this process's jobs), manual syncs and backfills (`POST /v1/syncs`), and the
//! reconciliation of each sync window (`GET /v1/reconciliations`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::failures::{body_of, query_of};
use super::{ApiError, ApiState};
use crate::connectors::window::Window;
use crate::pipeline::{Runtime, Selection};
use crate::store::ops::Role;
use crate::telemetry;

/// `GET /metrics`: open like `/healthz` (it carries no personal data), so Prometheus scrapes
/// it without a token.
pub async fn metrics(State(s): State<ApiState>) -> Response {
    if telemetry::refresh_due() {
        // Bounded: a slow store must not make the scrape time out.
        if tokio::time::timeout(Duration::from_secs(10), refresh_gauges(&s.rt))
            .await
            .is_err()
        {
            tracing::warn!(
                "Reading the store-side metrics took over 10 s; the scrape shows the previous values."
            );
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        telemetry::render(),
    )
        .into_response()
}

/// Reads the gauges that describe the store and the broker.
async fn refresh_gauges(rt: &Runtime) {
    let store = rt.store.as_ref();
    let mut open = Vec::new();
    for stage in [
        crate::record::Stage::Pull,
        crate::record::Stage::Normalize,
        crate::record::Stage::Route,
        crate::record::Stage::Store,
        crate::record::Stage::Push,
    ] {
        let filter = crate::store::FailureFilter {
            stage: Some(stage),
            status: crate::ops::replay::REPLAYABLE.to_vec(),
            ..Default::default()
        };
        match store.failure_counts(&filter).await {
            Ok(rows) => open.extend(rows.into_iter().map(|r| {
                (
                    vec![
                        ("connector", r.connector),
                        ("stage", stage.as_str().to_owned()),
                        ("code", r.code),
                    ],
                    r.count as f64,
                )
            })),
            Err(e) => {
                tracing::warn!(error = %e, "Could not count open failures for /metrics.");
                return;
            }
        }
    }
    telemetry::set_gauges("xiezhi_failures_open", open);

    let now = Utc::now();
    if let Ok(cps) = store.checkpoints().await {
        telemetry::set_gauges(
            "xiezhi_checkpoint_age_seconds",
            cps.into_iter()
                // Backfill windows' checkpoints (`stream@window`) are short-lived: not a stream.
                .filter(|c| !c.stream.contains('@'))
                .map(|c| {
                    (
                        vec![("connector", c.connector), ("stream", c.stream)],
                        (now - c.updated_at).num_milliseconds().max(0) as f64 / 1000.0,
                    )
                })
                .collect(),
        );
    }
    if let Ok(leases) = store.leases().await {
        let mut by: std::collections::BTreeMap<String, f64> = Default::default();
        for l in leases.into_iter().filter(|l| l.expires_at > now) {
            *by.entry(l.holder).or_default() += 1.0;
        }
        telemetry::set_gauges(
            "xiezhi_leases_held",
            by.into_iter()
                .map(|(h, n)| (vec![("holder", h)], n))
                .collect(),
        );
    }
    telemetry::set_gauges(
        "xiezhi_bus_queue_depth",
        rt.bus
            .queue_depths()
            .await
            .into_iter()
            .map(|(q, n)| (vec![("queue", q)], n as f64))
            .collect(),
    );
    let filter = crate::deadlines::report::DeadlineFilter {
        limit: 0,
        ..Default::default()
    };
    match crate::deadlines::report::evaluate(
        store,
        &rt.deadline_rules,
        &rt.calendar,
        &filter,
        crate::deadlines::report::now_local(),
    )
    .await
    {
        Ok(summary) => telemetry::set_gauges(
            "xiezhi_deadlines",
            summary
                .counts
                .into_iter()
                .flat_map(|(rule, statuses)| {
                    statuses.into_iter().map(move |(status, n)| {
                        (vec![("rule", rule.clone()), ("status", status)], n as f64)
                    })
                })
                .collect(),
        ),
        Err(e) => tracing::warn!(error = %e, "Could not evaluate deadlines for /metrics."),
    }
}

/// `GET /v1/syncs`: every stream's schedule (last occurrence, by whom, how it ended), the
/// leases held across instances, and the jobs this process runs.
pub async fn list(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let mut schedules = Vec::new();
    for c in &s.rt.connectors {
        for st in &c.def.streams {
            let state = s.store.schedule_state(&c.def.name, &st.name).await?;
            schedules.push(json!({
                "connector": c.def.name,
                "stream": st.name,
                "schedule": st.schedule,
                "last": state,
            }));
        }
    }
    let now = Utc::now();
    let leases: Vec<_> = s
        .store
        .leases()
        .await?
        .into_iter()
        .map(|l| {
            let expired = l.expires_at <= now;
            json!({"lease": l, "expired": expired})
        })
        .collect();
    Ok(Json(json!({
        "instance": s.rt.instance,
        "schedules": schedules,
        "leases": leases,
        "jobs": s.rt.jobs.list(),
    }))
    .into_response())
}

/// The body of `POST /v1/syncs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartSync {
    /// A connector name, or absent for every connector.
    pub connector: Option<String>,
    pub stream: Option<String>,
    /// A backfill: re-pull updates from this time (RFC 3339, a date, or `YYYY-MM-DD HH:MM:SS`
    /// in UTC+8), to `to` (default now).
    pub from: Option<String>,
    pub to: Option<String>,
}

/// `POST /v1/syncs`: starts a sync (or a backfill window) now, as a job; 202 with its id.
pub async fn start(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<StartSync>, JsonRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let b = body_of(body)?;
    if b.to.is_some() && b.from.is_none() {
        return Err(ApiError::BadRequest("`to` needs `from`".into()));
    }
    let window = b
        .from
        .as_deref()
        .map(|f| Window::parse(f, b.to.as_deref(), Window::now()))
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("from/to: {e}")))?;
    let sel = Selection {
        connector: b.connector.clone(),
        stream: b.stream.clone(),
        window,
    };
    let id =
        s.rt.jobs
            .start(Arc::clone(&s.rt), sel)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    s.store
        .append_audit(&crate::store::ops::NewAudit {
            actor: caller.actor(),
            action: "sync.start".into(),
            target: Some(id.clone()),
            filter: json!({"connector": b.connector, "stream": b.stream, "from": b.from, "to": b.to}),
            count: 0,
            outcome: json!({"job": id}),
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "href": format!("/v1/syncs/{id}")})),
    )
        .into_response())
}

/// `GET /v1/syncs/{id}`: a job's progress, ETA and, once done, its report.
pub async fn show(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let job =
        s.rt.jobs
            .get(&id)
            .ok_or_else(|| ApiError::NotFound(format!("no sync job {id} in this instance")))?;
    Ok(Json(job).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationQuery {
    /// Only windows whose counts do not add up.
    #[serde(default)]
    pub gaps: bool,
    /// Rows with an id below this (paging backwards from the newest).
    #[serde(default)]
    pub before: i64,
    pub limit: Option<u32>,
}

/// `GET /v1/reconciliations?gaps=true`: each stream's sync windows, newest first.
pub async fn reconciliations(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<ReconciliationQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let q = query_of(q)?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::BadRequest("limit must be 1..=1000".into()));
    }
    let rows = s.store.reconciliations(q.gaps, q.before, limit).await?;
    Ok(Json(json!({"reconciliations": rows})).into_response())
}
