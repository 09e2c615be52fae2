//! API, feeds: `GET /v1/feeds/{type}` pages through the store's changes in sequence order,
//! masked to the reader's level; with `consumer=NAME` the server keeps the consumer's cursor
//! (and reports its lag); with `wait=S` an empty page waits up to S seconds for new changes
//! (long-poll). `GET /v1/feeds` lists the named consumers, their cursors and lag.

use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::failures::query_of;
use super::{ApiError, ApiState};
use crate::feeds::{FeedEvent, Masking};
use crate::record::RecordType;
use crate::store::ops::{NewAudit, Role};

/// Most events per page.
pub const MAX_LIMIT: u32 = 1000;
/// Longest long-poll.
pub const MAX_WAIT_SECS: u64 = 60;

/// The query of `GET /v1/feeds/{type}`; read as text so a bad value is named.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// Return changes with a sequence greater than this (default: the consumer's cursor, or 0).
    pub after: Option<String>,
    /// Events per page, 1–1000 (default 100).
    pub limit: Option<String>,
    /// A named consumer (configuration `[[feeds.consumers]]`): its masking level applies, and
    /// `after` confirms everything up to it (the server keeps it as the consumer's cursor).
    pub consumer: Option<String>,
    /// `public` (default), `shared` or `internal`; above `public` needs an operator token.
    /// Ignored with `consumer` (its configured level applies).
    pub masking: Option<String>,
    /// Seconds to wait for a change when there is none yet (0–60, default 0).
    pub wait: Option<String>,
}

fn number<T: std::str::FromStr>(name: &str, v: &Option<String>, default: T) -> Result<T, ApiError> {
    match v.as_deref() {
        None | Some("") => Ok(default),
        Some(s) => s.parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "parameter `{name}`: `{s}` is not a whole number ≥ 0"
            ))
        }),
    }
}

/// A named consumer's cursor in the store (its own namespace, apart from the relay's and the
/// pushes').
pub fn cursor_name(consumer: &str) -> String {
    format!("consumer:{consumer}")
}

/// The feed a path names: a record type, or `all`.
fn feed_type(t: &str) -> Result<Option<RecordType>, ApiError> {
    if t == "all" {
        return Ok(None);
    }
    t.parse()
        .map(Some)
        .map_err(|e: crate::record::UnknownRecordType| {
            ApiError::NotFound(format!("{e} (or `all`)"))
        })
}

/// `GET /v1/feeds/{type}?after=…&limit=…&consumer=…&masking=…&wait=…`
pub async fn read(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(t): Path<String>,
    q: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let q = query_of(q)?;
    let record_type = feed_type(&t)?;
    let feed = record_type.map_or("*", RecordType::as_str);
    let limit: u32 = number("limit", &q.limit, 100)?;
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "parameter `limit`: must be between 1 and {MAX_LIMIT}, got {limit}"
        )));
    }
    let wait: u64 = number("wait", &q.wait, 0)?;
    if wait > MAX_WAIT_SECS {
        return Err(ApiError::BadRequest(format!(
            "parameter `wait`: at most {MAX_WAIT_SECS} seconds, got {wait}"
        )));
    }
    let feeds = &s.rt.config.feeds;
    let consumer = match &q.consumer {
        None => None,
        Some(name) => Some(feeds.consumer(name).ok_or_else(|| {
            ApiError::NotFound(format!(
                "no feed consumer `{name}` (configured: {})",
                feeds
                    .consumers
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?),
    };
    let level = match (consumer, q.masking.as_deref()) {
        (Some(c), _) => c.masking,
        (None, None | Some("")) => Masking::Public,
        (None, Some(m)) => m
            .parse()
            .map_err(|e: String| ApiError::BadRequest(format!("parameter `masking`: {e}")))?,
    };
    if level != Masking::Public {
        caller.require(Role::Operator)?;
    }
    if consumer.is_some() && q.masking.as_deref().is_some_and(|m| !m.is_empty()) {
        return Err(ApiError::BadRequest(
            "parameter `masking`: a named consumer's level is set in its configuration".into(),
        ));
    }
    let cursor_name = consumer.map(|c| cursor_name(&c.name));
    let after: i64 = match (&q.after, &cursor_name) {
        (Some(a), _) if !a.is_empty() => {
            let after: u64 = number("after", &q.after, 0)?;
            i64::try_from(after)
                .map_err(|_| ApiError::BadRequest("parameter `after`: too large".into()))?
        }
        (_, Some(name)) => s.store.feed_cursor(name, feed).await?.unwrap_or(0),
        _ => 0,
    };
    if let (Some(name), Some(_)) = (&cursor_name, &q.after) {
        // Asking for what follows `after` confirms everything up to it. Only a sequence the feed
        // handed out may be confirmed: one past the end would skip changes still to come.
        let at = s.store.changes(None, after - 1, 1).await?;
        if after > 0 && at.first().is_none_or(|c| c.seq != after) {
            return Err(ApiError::BadRequest(format!(
                "parameter `after`: {after} is not a change sequence this feed returned (a consumer confirms a page's `next_after`)"
            )));
        }
        s.store.save_feed_cursor(name, feed, after).await?;
    }

    let deadline = Instant::now() + Duration::from_secs(wait);
    let changes = loop {
        let changes = s.store.changes(record_type, after, limit).await?;
        if !changes.is_empty() || Instant::now() >= deadline {
            break changes;
        }
        tokio::time::sleep(Duration::from_millis(200).min(deadline - Instant::now())).await;
    };
    let has_more = changes.len() as u32 == limit;
    let next_after = changes.last().map_or(after, |c| c.seq);
    let events: Vec<FeedEvent> = changes
        .into_iter()
        .map(|c| FeedEvent::from_change(c, level, &s.rt.schema))
        .collect();
    if level != Masking::Public && !events.is_empty() {
        // Full personal data left the store: who read what is on record.
        s.store
            .append_audit(&NewAudit {
                actor: caller.actor(),
                action: "feeds.read".into(),
                target: Some(format!("feed/{feed}")),
                filter: json!({"after": after, "limit": limit, "consumer": q.consumer, "masking": level}),
                count: events.len() as i64,
                outcome: json!({"next_after": next_after}),
            })
            .await?;
    }
    let mut body = json!({
        "feed": feed,
        "masking": level,
        "after": after,
        "next_after": next_after,
        "has_more": has_more,
        "events": events,
    });
    if let Some(c) = consumer {
        body["consumer"] = json!(c.name);
        body["lag"] = json!(s.store.count_changes(record_type, next_after).await?);
    }
    Ok(Json(body).into_response())
}

/// `GET /v1/feeds`: the named consumers with their level, bindings, HTTP cursors and lag.
pub async fn consumers(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let cursors = s.store.feed_cursors().await?;
    let mut out = Vec::new();
    for c in &s.rt.config.feeds.consumers {
        let mut feeds = Vec::new();
        let own = cursor_name(&c.name);
        for cur in cursors.iter().filter(|x| x.consumer == own) {
            let t = if cur.feed == "*" {
                None
            } else {
                cur.feed.parse::<RecordType>().ok()
            };
            feeds.push(json!({
                "feed": cur.feed,
                "cursor": cur.seq,
                "lag": s.store.count_changes(t, cur.seq).await?,
                "updated_at": cur.updated_at,
            }));
        }
        out.push(json!({
            "name": c.name,
            "masking": c.masking,
            "bindings": c.bindings,
            "queue": s.rt.config.feeds.queue(&c.name),
            "http": feeds,
        }));
    }
    let relay = s
        .store
        .feed_cursor(crate::feeds::relay::RELAY_CURSOR, "*")
        .await?;
    Ok(Json(json!({
        "consumers": out,
        "relay": relay.map(|seq| json!({"cursor": seq})),
        "relay_lag": match relay {
            Some(seq) => Some(s.store.count_changes(None, seq).await?),
            None => None,
        },
    }))
    .into_response())
}
