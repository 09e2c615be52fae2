//! Feed: pull → normalise → route → store → **feed**. The HTTP face of the store: health,
//! readiness, records by natural key, counts, and failures for operators.
//!
//! One error type ([`ApiError`]) renders every failure as JSON; request logging lives in the
//! middleware (tower-http's trace layer), not in the handlers.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tower_http::trace::TraceLayer;

use crate::bus::Bus;
use crate::record::{RecordType, Stage};
use crate::store::{FailureFilter, FailureStatus, Store};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
}

/// The one error type of the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the store failed: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Store(e) => {
                tracing::error!(error = %e, "API request failed in the store.");
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
        };
        (
            status,
            Json(json!({"error": {"code": code, "message": self.to_string()}})),
        )
            .into_response()
    }
}

/// The router, ready to serve.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/v1/stats", get(stats))
        .route("/v1/records/{type}/{key}", get(record))
        .route("/v1/records/{type}/{key}/history", get(history))
        .route("/v1/failures", get(failures))
        .route("/v1/failures/{id}", get(failure))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn readyz(State(s): State<ApiState>) -> Response {
    let store = s.store.ping().await;
    let body = Json(
        json!({"store": {"kind": s.store.kind(), "ok": store}, "bus": {"kind": s.bus.kind()}}),
    );
    if store {
        (StatusCode::OK, body).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn stats(State(s): State<ApiState>) -> Result<Json<crate::store::Stats>, ApiError> {
    Ok(Json(s.store.stats().await?))
}

fn parse_type(t: &str) -> Result<RecordType, ApiError> {
    t.parse()
        .map_err(|e: crate::record::UnknownRecordType| ApiError::NotFound(e.to_string()))
}

async fn record(
    State(s): State<ApiState>,
    Path((t, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let t = parse_type(&t)?;
    match s.store.get_record(t, &key).await? {
        Some(r) if !r.deleted => Ok(Json(r).into_response()),
        Some(r) => Ok((StatusCode::GONE, Json(r)).into_response()),
        None => Err(ApiError::NotFound(format!("no {t} with key `{key}`"))),
    }
}

async fn history(
    State(s): State<ApiState>,
    Path((t, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let t = parse_type(&t)?;
    let versions = s.store.history(t, &key).await?;
    if versions.is_empty() {
        return Err(ApiError::NotFound(format!("no {t} with key `{key}`")));
    }
    Ok(Json(versions).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailureQuery {
    connector: Option<String>,
    stream: Option<String>,
    #[serde(rename = "type")]
    record_type: Option<String>,
    stage: Option<String>,
    code: Option<String>,
    status: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

async fn failures(
    State(s): State<ApiState>,
    q: Result<Query<FailureQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(format!("bad query: {}", e.body_text())))?;
    let record_type = q
        .record_type
        .map(|t| {
            t.parse::<RecordType>()
                .map_err(|e| ApiError::BadRequest(format!("parameter `type`: {e}")))
        })
        .transpose()?;
    let stage = q
        .stage
        .map(|st| {
            serde_json::from_value::<Stage>(json!(st)).map_err(|_| {
                ApiError::BadRequest(format!(
                    "parameter `stage`: `{st}` is not one of pull, normalize, route, store, push"
                ))
            })
        })
        .transpose()?;
    let status = q
        .status
        .map(|st| {
            serde_json::from_value::<FailureStatus>(json!(st)).map_err(|_| {
                ApiError::BadRequest(format!(
                    "parameter `status`: `{st}` is not one of open, replayed, resolved, discarded"
                ))
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::BadRequest(
            "parameter `limit`: must be between 1 and 1000".into(),
        ));
    }
    let filter = FailureFilter {
        connector: q.connector,
        stream: q.stream,
        record_type,
        stage,
        code: q.code,
        status,
        after_id: q.after,
        limit,
    };
    let rows = s.store.list_failures(&filter).await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(json!({"failures": rows, "next_after": next})).into_response())
}

async fn failure(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match s.store.get_failure(&id).await? {
        Some(f) => Ok(Json(f).into_response()),
        None => Err(ApiError::NotFound(format!("no failure with id `{id}`"))),
    }
}

/// Serves the API on `addr` until `cancel` fires; returns the bound address through `bound`.
pub async fn serve(
    state: ApiState,
    listener: tokio::net::TcpListener,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "HTTP API listening.");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await?;
    Ok(())
}
