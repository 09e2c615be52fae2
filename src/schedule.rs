//! Schedules for `xiezhi run`: each stream syncs on its cron expression from `connectors/`.
//!
//! Sleeps until the next occurrence rather than ticking an interval, so a slow sync never
//! stacks runs of the same stream: the next occurrence is computed after the sync ends.

use std::str::FromStr;
use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::pipeline::{Runtime, Selection};

/// Runs every stream's schedule until `cancel` fires.
pub async fn run(rt: Arc<Runtime>, cancel: CancellationToken) {
    let mut tasks = tokio::task::JoinSet::new();
    for c in &rt.connectors {
        for s in &c.def.streams {
            let Ok(cron) = croner::Cron::from_str(&s.schedule) else {
                // Checked at load time; unreachable for a loaded connector.
                continue;
            };
            let rt = rt.clone();
            let cancel = cancel.clone();
            let sel = Selection {
                connector: Some(c.def.name.clone()),
                stream: Some(s.name.clone()),
                ..Default::default()
            };
            tasks.spawn(async move {
                loop {
                    let now = Utc::now();
                    let Ok(next) = cron.find_next_occurrence(&now, false) else { break };
                    let wait = (next - now).to_std().unwrap_or_default();
                    tracing::debug!(connector = ?sel.connector, stream = ?sel.stream, next = %next, "Next scheduled sync.");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    let pullers = match rt.pullers(&sel) {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::error!(error = %e, "Scheduled sync could not start.");
                            continue;
                        }
                    };
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        r = rt.sync_once(&pullers, no_progress) => match r {
                            Ok(rep) => tracing::info!(connector = ?sel.connector, stream = ?sel.stream, published = rep.published, failed = rep.failed, "Scheduled sync finished."),
                            Err(e) => tracing::error!(connector = ?sel.connector, stream = ?sel.stream, error = %e, "Scheduled sync failed."),
                        }
                    }
                }
            });
        }
    }
    while tasks.join_next().await.is_some() {}
}

fn no_progress(_: &[crate::connectors::pull::StreamPuller]) {}
