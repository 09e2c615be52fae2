//! Feed: pull → normalise → route → store → **feed**. The HTTP face of the store: health,
//! readiness, records by natural key, counts, and the operators' failure API ([`failures`],
//! behind API tokens, [`auth`]).
//!
//! One error type ([`ApiError`]) renders every failure as JSON, including rejected bodies and
//! query strings; request logging lives in the middleware (tower-http's trace layer), not in
//! the handlers.

pub mod auth;
pub mod console;
pub mod deadlines;
pub mod failures;
pub mod feeds;
pub mod syncs;

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::trace::TraceLayer;

use crate::bus::Bus;
use crate::ops::view::present_records;
use crate::pipeline::Runtime;
use crate::record::RecordType;
use crate::store::Store;
use crate::store::ops::Role;
use auth::Caller;

/// Largest request body the API reads (a replay filter or an edited record fits easily).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What the handlers share: the runtime (store, bus, current connector definitions).
#[derive(Clone)]
pub struct ApiState {
    pub rt: Arc<Runtime>,
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
}

impl ApiState {
    pub fn new(rt: Arc<Runtime>) -> ApiState {
        ApiState {
            store: rt.store.clone(),
            bus: rt.bus.clone(),
            rt,
        }
    }
}

/// The one error type of the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A body the framework refused before a handler saw it (too large, not JSON, wrong type).
    #[error("{1}")]
    Rejected(StatusCode, String),
    #[error("{0}")]
    Internal(String),
    #[error("the store failed: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Rejected(status, _) if *status == StatusCode::PAYLOAD_TOO_LARGE => {
                (*status, "payload_too_large")
            }
            ApiError::Rejected(status, _) => (*status, "bad_request"),
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "API request failed.");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, "API request failed in the store.");
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
        };
        let mut response = (
            status,
            Json(json!({"error": {"code": code, "message": self.to_string()}})),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"xiezhi\""),
            );
        }
        response
    }
}

/// The router, ready to serve.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(syncs::metrics))
        .route("/v1/openapi.json", get(openapi))
        .merge(token_routes(state.clone()))
        .merge(console_routes(state.clone()))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The web console: sign-in is open, every other page needs a session.
fn console_routes(state: ApiState) -> Router<ApiState> {
    let pages = Router::new()
        .route("/console", get(console::failures))
        .route("/console/failures/{id}", get(console::failure))
        .route("/console/failures/{id}/replay", post(console::replay_one))
        .route("/console/failures/{id}/discard", post(console::discard))
        .route("/console/failures/{id}/edit", post(console::edit))
        .route("/console/replay", post(console::replay_filter))
        .route("/console/edits", get(console::edits_page))
        .route("/console/edits/{id}/approve", post(console::approve))
        .route("/console/edits/{id}/reject", post(console::reject))
        .route("/console/audit", get(console::audit))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            console::require_session,
        ));
    Router::new()
        .route(
            "/console/login",
            get(console::login_form).post(console::login),
        )
        .route("/console/logout", post(console::logout))
        .merge(pages)
}

/// Everything that reads the store: every route needs a token (401 without), and each handler
/// checks the role it needs (403 below it).
fn token_routes(state: ApiState) -> Router<ApiState> {
    Router::new()
        .route("/v1/stats", get(stats))
        .route("/v1/records/{type}/{key}", get(record))
        .route("/v1/records/{type}/{key}/history", get(history))
        .route("/v1/deadlines", get(deadlines::list))
        .route("/v1/feeds", get(feeds::consumers))
        .route("/v1/feeds/{type}", get(feeds::read))
        .route("/v1/failures", get(failures::list))
        .route("/v1/failures/stats", get(failures::stats))
        .route("/v1/failures/replay", post(failures::replay))
        .route("/v1/failures/{id}", get(failures::show))
        .route("/v1/failures/{id}/discard", post(failures::discard))
        .route("/v1/failures/{id}/edits", post(failures::create_edit))
        .route("/v1/edits", get(failures::list_edits))
        .route("/v1/edits/{id}/approve", post(failures::approve_edit))
        .route("/v1/edits/{id}/reject", post(failures::reject_edit))
        .route("/v1/audit", get(failures::audit))
        .route("/v1/syncs", get(syncs::list).post(syncs::start))
        .route("/v1/syncs/{id}", get(syncs::show))
        .route("/v1/reconciliations", get(syncs::reconciliations))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            auth::require_token,
        ))
}

/// The OpenAPI document of this API (`docs/openapi.json`, built in).
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

/// Ready when the store answers and the bus is connected (a broker that went away takes the
/// instance out of a load balancer until it is back).
async fn readyz(State(s): State<ApiState>) -> Response {
    let store = s.store.ping().await;
    let bus = s.bus.connected();
    let body = Json(json!({
        "store": {"kind": s.store.kind(), "ok": store},
        "bus": {"kind": s.bus.kind(), "ok": bus},
    }));
    if store && bus {
        (StatusCode::OK, body).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn stats(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<crate::store::Stats>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(s.store.stats().await?))
}

fn parse_type(t: &str) -> Result<RecordType, ApiError> {
    t.parse()
        .map_err(|e: crate::record::UnknownRecordType| ApiError::NotFound(e.to_string()))
}

async fn record(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((t, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let t = parse_type(&t)?;
    let Some(mut r) = s.store.get_record(t, &key).await? else {
        return Err(ApiError::NotFound(format!("no {t} with key `{key}`")));
    };
    let reader = caller.reader("api");
    present_records(
        s.store.as_ref(),
        &s.rt.schema,
        &reader,
        "records.show",
        t,
        &key,
        vec![&mut r.data],
    )
    .await?;
    let status = if r.deleted {
        StatusCode::GONE
    } else {
        StatusCode::OK
    };
    Ok((status, Json(r)).into_response())
}

async fn history(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((t, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let t = parse_type(&t)?;
    let mut versions = s.store.history(t, &key).await?;
    if versions.is_empty() {
        return Err(ApiError::NotFound(format!("no {t} with key `{key}`")));
    }
    present_records(
        s.store.as_ref(),
        &s.rt.schema,
        &caller.reader("api"),
        "records.history",
        t,
        &key,
        versions.iter_mut().map(|v| &mut v.data).collect(),
    )
    .await?;
    Ok(Json(versions).into_response())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route the router serves is in the OpenAPI document with its method, and nothing
    /// the document promises is missing from the router.
    #[test]
    fn the_openapi_document_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("OpenAPI is JSON");
        let documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(p, ops)| {
                ops.as_object()
                    .into_iter()
                    .flatten()
                    .map(move |(m, _)| (m.to_uppercase(), p.clone()))
            })
            .collect();
        let source = include_str!("mod.rs");
        let mut served = Vec::new();
        for line in source.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix(".route(\"") else {
                continue;
            };
            let Some((path, handlers)) = rest.split_once('"') else {
                continue;
            };
            if !path.starts_with("/v1")
                && !path.starts_with("/healthz")
                && !path.starts_with("/readyz")
                && !path.starts_with("/metrics")
            {
                continue;
            }
            for m in ["get", "post"] {
                if handlers.contains(&format!("{m}(")) {
                    served.push((m.to_uppercase(), path.to_owned()));
                }
            }
        }
        assert!(served.len() >= 15, "{served:?}");
        for s in &served {
            assert!(documented.contains(s), "{s:?} is served but not documented");
        }
        for d in &documented {
            assert!(served.contains(d), "{d:?} is documented but not served");
        }
    }
}
