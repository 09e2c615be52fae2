//! Where **normalise** runs (pull → normalise → route → store → feed): a few threads of xiezhi's
//! own, at a lower priority (nice 10) than the async runtime.
//!
//! Normalising is CPU work that can use every core, while the store's apply path is serial:
//! every stored record passes through it in turn. On a machine whose cores are all busy the
//! scheduler would share them equally between the normalising threads and the one applying, so
//! the serial path would get a fraction of a core and set the throughput. At nice 10 the
//! normalising threads take what the runtime leaves. They are threads of their own rather than
//! tokio's blocking pool because the runtime hands its own threads to that pool and back
//! (`block_in_place`, which the SQLite apply uses): a lowered blocking thread would later run
//! runtime work, the store's apply among it, at the lowered priority.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// The job panicked (the pool thread lives on).
#[derive(Debug, thiserror::Error)]
#[error("normalising a page panicked")]
pub struct Panicked;

struct Pool {
    jobs: mpsc::Sender<Job>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("xiezhi-normalise-{i}"))
                .spawn(move || {
                    lower_thread_priority();
                    loop {
                        // The guard is a temporary: it is released before the job runs.
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, thread = i, "Could not start a normalising thread.");
            }
        }
        Pool { jobs: tx }
    })
}

/// Runs `f` on a normalising thread and waits for its result without blocking the runtime.
pub async fn run<T, F>(f: F) -> Result<T, Panicked>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        if let Ok(out) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
            let _ = tx.send(out);
        }
    });
    let sent = pool().jobs.send(job);
    if let Err(mpsc::SendError(job)) = sent {
        // No pool thread could be started: run on the blocking pool rather than not at all.
        let _ = tokio::task::spawn_blocking(job).await;
    }
    rx.await.map_err(|_| Panicked)
}

/// Linux gives each thread its own nice value; elsewhere this is a no-op.
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority only reads its integer arguments; `who` = 0 is the calling
        // thread on Linux.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "Could not lower the priority of a normalising thread.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_return_their_result_and_a_panic_is_an_error() {
        let out = run(|| 6 * 7).await.expect("the job runs");
        assert_eq!(out, 42);
        let panicked = run(|| -> u8 { panic!("boom") }).await;
        assert!(panicked.is_err());
        // The pool survives a panicking job.
        assert_eq!(run(|| "still here").await.ok(), Some("still here"));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn pool_threads_run_at_nice_10() {
        let nice = run(|| {
            // SAFETY: getpriority only reads its integer arguments.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
        })
        .await
        .expect("the job runs");
        assert_eq!(nice, 10);
    }
}
