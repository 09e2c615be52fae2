//! Deadlines, alerts: a deadline that comes due soon or is missed is announced once — logged,
//! and with RabbitMQ published as a CloudEvent to `<feeds prefix>.alerts` with routing key
//! `deadline.<status>.<record type>.<rule>` — so supervisors hear of it before and when it
//! happens, not when someone next opens a list. `xiezhi run` checks every
//! `deadlines.check_interval_secs`.

use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::DeadlineStatus;
use super::report::{self, DeadlineFilter, DeadlineRow};
use crate::pipeline::Runtime;

/// What one check raised.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertReport {
    /// Deadlines due soon or missed right now.
    pub at_risk_or_missed: usize,
    /// Of those, announced for the first time by this check.
    pub raised: usize,
}

/// Evaluates every deadline and raises an alert for each one newly due soon, overdue or met
/// late (a missed deadline).
pub async fn check(rt: &Runtime) -> anyhow::Result<AlertReport> {
    let filter = DeadlineFilter {
        statuses: vec![DeadlineStatus::DueSoon, DeadlineStatus::Overdue],
        limit: usize::MAX,
        ..Default::default()
    };
    let summary = report::evaluate(
        rt.store.as_ref(),
        &rt.deadline_rules,
        &rt.calendar,
        &filter,
        report::now_local(),
    )
    .await?;
    let mut out = AlertReport {
        at_risk_or_missed: summary.rows.len(),
        ..Default::default()
    };
    for row in &summary.rows {
        let status = status_of(row);
        if !rt
            .store
            .raise_deadline_alert(&row.state.rule, row.record_type, &row.key, &status)
            .await?
        {
            continue;
        }
        out.raised += 1;
        tracing::warn!(rule = %row.state.rule, record_type = %row.record_type, key = %row.key, status = %status, due = %row.state.due, days_late = ?row.state.days_late, "A legal deadline is at risk or missed.");
        if let Some(bus) = &rt.amqp {
            let id = alert_id(row, &status);
            let event = json!({
                "specversion": "1.0",
                "id": id,
                "source": "/xiezhi/deadlines",
                "type": "gov.enforcement.alert.deadline.v1",
                "subject": row.key,
                "time": Utc::now(),
                "datacontenttype": "application/json",
                "data": row,
            });
            let routing_key = format!("deadline.{status}.{}.{}", row.record_type, row.state.rule);
            bus.publish_message(
                &rt.config.feeds.alerts_exchange(),
                &routing_key,
                &id,
                "gov.enforcement.alert.deadline.v1",
                serde_json::to_vec(&event)?,
            )
            .await?
            .await?;
        }
    }
    if out.raised > 0 {
        tracing::info!(
            raised = out.raised,
            at_risk_or_missed = out.at_risk_or_missed,
            "Deadline check raised alerts."
        );
    }
    Ok(out)
}

fn status_of(row: &DeadlineRow) -> String {
    serde_json::to_value(row.state.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn alert_id(row: &DeadlineRow, status: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        row.state.rule.as_str(),
        row.record_type.as_str(),
        row.key.as_str(),
        status,
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..16])
}

/// Checks every `interval` until `cancel` fires (`xiezhi run`).
pub async fn run(
    rt: std::sync::Arc<Runtime>,
    interval: std::time::Duration,
    cancel: tokio_util::sync::CancellationToken,
) {
    loop {
        // One instance checks at a time, so each alert is raised by one of them.
        if let Some(Err(e)) = rt.exclusively("deadline-alerts", check(&rt)).await {
            tracing::warn!(error = %e, "Deadline check failed; it runs again at the next interval.");
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
