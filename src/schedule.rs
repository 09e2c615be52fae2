//! Schedules for `xiezhi run` (the start of pull → normalise → route → store): each stream
//! syncs on its cron expression from `connectors/`, once per occurrence across every instance.
//!
//! The store keeps, per stream, the last occurrence a sync completed (`schedule_state`),
//! whichever instance ran it; the next due occurrence is the first one after it. An instance
//! that finds it due takes the stream's lease and, holding it, checks the occurrence is still
//! due (another may have just finished it): one instance syncs, the others find the lease taken
//! and look again a third of a lease later — by then the occurrence is done, or its
//! holder died and the lease expired, and one of them takes the stream over from its
//! checkpoint. After downtime the occurrences missed are caught up by one sync, not one per
//! tick. Sleeping until the next occurrence (rather than ticking an interval) means a slow sync
//! never stacks runs of the same stream.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::connectors::definition::StreamDef;
use crate::connectors::pull::LeaseMode;
use crate::pipeline::{Runtime, Selection};
use crate::store::scale::HeldLease;
use crate::store::scale::ScheduleState;

/// Runs every stream's schedule until the runtime's `stop` fires; a sync under way finishes
/// the pages it fetched first.
pub async fn run(rt: Arc<Runtime>) {
    // At most `concurrent_streams` syncs at once in this instance: the rest of the due
    // streams are left for other instances (or wait here for a free slot).
    let slots = Arc::new(tokio::sync::Semaphore::new(
        rt.config.pipeline.concurrent_streams.max(1),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for c in &rt.connectors {
        for s in &c.def.streams {
            let Ok(cron) = croner::Cron::from_str(&s.schedule) else {
                // Checked at load time; unreachable for a loaded connector.
                continue;
            };
            tasks.spawn(stream_schedule(
                rt.clone(),
                slots.clone(),
                c.def.name.clone(),
                s.clone(),
                cron,
            ));
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// What the schedule does next, given the last completed occurrence.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// Sleep until this occurrence.
    At(DateTime<Utc>),
    /// Sync now, covering `occurrence` and the `missed` ones before it since the last run.
    Now {
        occurrence: DateTime<Utc>,
        missed: u32,
    },
    /// The expression has no further occurrence.
    Never,
}

/// Decides what is due at `now`. A stream never synced is due at once; after downtime the
/// latest occurrence up to now is the one synced, so the missed ones count as caught up.
pub fn due(cron: &croner::Cron, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Due {
    let Some(last) = last else {
        return Due::Now {
            occurrence: now,
            missed: 0,
        };
    };
    let Ok(first) = cron.find_next_occurrence(&last, false) else {
        return Due::Never;
    };
    if first > now {
        return Due::At(first);
    }
    // Walk to the latest occurrence at or before now; a bounded walk (an every-second
    // expression after a long outage) settles for now itself.
    let mut occurrence = first;
    let mut missed = 0u32;
    while let Ok(next) = cron.find_next_occurrence(&occurrence, false) {
        if next > now {
            break;
        }
        occurrence = next;
        missed += 1;
        if missed >= 10_000 {
            occurrence = now;
            break;
        }
    }
    Due::Now { occurrence, missed }
}

async fn stream_schedule(
    rt: Arc<Runtime>,
    slots: Arc<tokio::sync::Semaphore>,
    connector: String,
    stream: StreamDef,
    cron: croner::Cron,
) {
    let sel = Selection {
        connector: Some(connector.clone()),
        stream: Some(stream.name.clone()),
        ..Default::default()
    };
    // Another instance holds the stream: look again a third of a lease later.
    let ttl = Duration::from_secs(rt.config.pipeline.lease_ttl_secs);
    let poll = ttl / 3;
    let stop = rt.stop.clone();
    let pause = |d: Duration| {
        let stop = stop.clone();
        async move {
            tokio::select! {
                _ = stop.cancelled() => false,
                _ = tokio::time::sleep(d) => true,
            }
        }
    };
    while !rt.stop.is_cancelled() {
        let last = match rt.store.schedule_state(&connector, &stream.name).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(connector = %connector, stream = %stream.name, error = %e, "Could not read the stream's schedule; trying again.");
                if !pause(Duration::from_secs(5)).await {
                    break;
                }
                continue;
            }
        };
        let now = Utc::now();
        let (occurrence, missed) = match due(&cron, last.as_ref().map(|s| s.occurrence), now) {
            Due::Never => {
                tracing::info!(connector = %connector, stream = %stream.name, schedule = %stream.schedule, "The stream's schedule has no further occurrence.");
                break;
            }
            Due::At(next) => {
                tracing::debug!(connector = %connector, stream = %stream.name, next = %next, "Next scheduled sync.");
                if !pause((next - now).to_std().unwrap_or_default()).await {
                    break;
                }
                continue;
            }
            Due::Now { occurrence, missed } => (occurrence, missed),
        };
        let pullers = match rt.pullers(&sel) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(connector = %connector, stream = %stream.name, error = %e, "Scheduled sync could not start.");
                break;
            }
        };
        let Some(puller) = pullers.first() else { break };
        let slot = tokio::select! {
            _ = rt.stop.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
        // The occurrence is decided under the lease: another instance may have finished it
        // between our reading the schedule and taking the lease.
        let lease = match HeldLease::take(rt.store.clone(), &puller.lease_name(), &rt.instance, ttl)
            .await
        {
            Ok(Ok((held, state))) => {
                if let Some(from) = &state.took_over_from {
                    puller.labels.lease_taken_over(from);
                }
                held
            }
            // Another instance syncs it (or its dead holder's lease has yet to expire).
            Ok(Err(_)) => {
                drop(slot);
                if !pause(poll).await {
                    break;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(connector = %connector, stream = %stream.name, error = %e, "Could not take the stream's lease; trying again.");
                drop(slot);
                if !pause(poll).await {
                    break;
                }
                continue;
            }
        };
        let still_due = match rt.store.schedule_state(&connector, &stream.name).await {
            Ok(now) => now.map(|s| s.occurrence) == last.as_ref().map(|s| s.occurrence),
            Err(_) => false,
        };
        if !still_due {
            lease.release().await;
            continue;
        }
        if missed > 0 {
            tracing::info!(connector = %connector, stream = %stream.name, missed, occurrence = %occurrence, "Catching up the occurrences missed while no instance ran: one sync covers them.");
        }
        let report = tokio::select! {
            r = rt.sync_run(&pullers, LeaseMode::Held, |_| {}) => Some(r),
            _ = lease.lost.cancelled() => None,
        };
        let report = match report {
            Some(Ok(r)) => r,
            None => {
                tracing::error!(connector = %connector, stream = %stream.name, "Lost the stream's lease mid-sync; another instance resumes it from the checkpoint.");
                lease.release().await;
                continue;
            }
            Some(Err(e)) => {
                tracing::error!(connector = %connector, stream = %stream.name, error = %e, "Scheduled sync failed; trying again shortly.");
                lease.release().await;
                drop(slot);
                if !pause(Duration::from_secs(30)).await {
                    break;
                }
                continue;
            }
        };
        let Some(s) = report.streams.first() else {
            lease.release().await;
            break;
        };
        if s.outcome == "stopped" {
            // Shut down mid-way: the occurrence stays due, so whoever runs next catches it up.
            lease.release().await;
            break;
        }
        let state = ScheduleState {
            connector: connector.clone(),
            stream: stream.name.clone(),
            occurrence,
            finished_at: Utc::now(),
            holder: rt.instance.clone(),
            outcome: s
                .error
                .clone()
                .map_or_else(|| "ok".to_owned(), |e| format!("{}: {e}", s.outcome)),
        };
        if let Err(e) = rt.store.finish_occurrence(&state).await {
            tracing::warn!(connector = %connector, stream = %stream.name, error = %e, "Could not record the finished occurrence; it may run once more.");
        }
        lease.release().await;
        tracing::info!(connector = %connector, stream = %stream.name, occurrence = %occurrence, outcome = s.outcome, published = report.published, failed = report.failed, "Scheduled sync finished.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .expect("time")
    }

    #[test]
    fn a_stream_never_synced_is_due_at_once() {
        let cron = croner::Cron::from_str("0 */10 * * * *").expect("cron");
        let now = t("2026-12-06T10:03:00Z");
        assert_eq!(
            due(&cron, None, now),
            Due::Now {
                occurrence: now,
                missed: 0
            }
        );
    }

    #[test]
    fn the_next_occurrence_after_the_last_is_waited_for() {
        let cron = croner::Cron::from_str("0 */10 * * * *").expect("cron");
        let last = t("2026-12-06T10:00:00Z");
        assert_eq!(
            due(&cron, Some(last), t("2026-12-06T10:03:00Z")),
            Due::At(t("2026-12-06T10:10:00Z"))
        );
    }

    #[test]
    fn downtime_is_caught_up_once_at_the_latest_missed_occurrence() {
        let cron = croner::Cron::from_str("0 */10 * * * *").expect("cron");
        let last = t("2026-12-06T10:00:00Z");
        // Down from 10:00 to 12:34: 10:10 … 12:30 were missed; one sync covers them.
        assert_eq!(
            due(&cron, Some(last), t("2026-12-06T12:34:00Z")),
            Due::Now {
                occurrence: t("2026-12-06T12:30:00Z"),
                missed: 14
            }
        );
        // After that sync the next is the next tick, not 10:20.
        assert_eq!(
            due(
                &cron,
                Some(t("2026-12-06T12:30:00Z")),
                t("2026-12-06T12:35:00Z")
            ),
            Due::At(t("2026-12-06T12:40:00Z"))
        );
    }
}
