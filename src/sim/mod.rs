//! Simulators of the five upstream systems xiezhi pulls from (the left edge of the flow: these
//! are *other organisations'* systems). Each serves its own dialect over HTTP, with its own auth,
//! pagination, error format and faults, plus `/truth` (what a correct pipeline must end up with)
//! and `/_admin` endpoints to mutate data and inject faults. The credit platform and the
//! internet-plus exchange also take pushes, validated as those systems do, and show what they
//! accepted (`/_admin/accepted`). See docs/simulators.md.
//!
//! Nothing here depends on a pipeline module: identifiers are generated with the simulators' own
//! check-digit code so that our validators are tested against an independent implementation.

// Handlers return a ready `Response` (in the system's own error format) as their error: it is
// built once per failed request, so boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod auth;
mod core;
mod credit;
mod double_random;
mod hotline;
mod internet_plus;
mod prim;
mod provincial;
mod push;
mod records;
mod stream;
mod world;

#[cfg(test)]
mod push_tests;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

pub use self::core::Kind;

/// The five systems, in port order (`base_port + i`).
pub const SYSTEMS: [&str; 5] = [
    "provincial",
    "internet-plus",
    "credit-platform",
    "double-random",
    "hotline-12345",
];

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Records per system, split over that system's streams.
    pub records: usize,
    /// Share of generated records that are invalid (default 0.05).
    pub invalid_rate: f64,
    /// First port; system `i` listens on `base_port + i`. 0 = ephemeral ports.
    pub base_port: u16,
    pub host: IpAddr,
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 620_822,
            records: 10_000,
            invalid_rate: 0.05,
            base_port: 0,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            faults: Faults::default(),
        }
    }
}

/// Fault shares (each a share of data requests, 0.0–1.0). Default: none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// HTTP 500 / 503 in the system's error format.
    pub error_rate: f64,
    /// The response is delayed by 35 s (past a 30 s client timeout).
    pub timeout_rate: f64,
    /// HTTP 429 with `Retry-After: 1`.
    pub rate_limit_rate: f64,
    /// HTTP 200 with the body cut in half.
    pub truncate_rate: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulator config invalid: {0}")]
    Config(String),
    #[error("simulator {system} could not listen on {addr}: {source}")]
    Bind {
        system: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Running simulators; dropping without `shutdown` leaves the servers running until the runtime ends.
pub struct Simulators {
    systems: Vec<(String, SocketAddr)>,
    credentials: Vec<(String, String)>,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Environment variable names and default values of the credentials the simulators accept.
pub fn default_credentials() -> Vec<(String, String)> {
    auth::DEFAULT_CREDENTIALS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Simulators {
    /// Builds the world and starts the five servers; returns once all listen.
    pub async fn start(cfg: SimConfig) -> Result<Simulators, SimError> {
        if !(0.0..=1.0).contains(&cfg.invalid_rate) {
            return Err(SimError::Config(format!(
                "invalid_rate {} is outside 0..=1",
                cfg.invalid_rate
            )));
        }
        let f = cfg.faults;
        let sum = f.error_rate + f.timeout_rate + f.rate_limit_rate + f.truncate_rate;
        if [
            f.error_rate,
            f.timeout_rate,
            f.rate_limit_rate,
            f.truncate_rate,
        ]
        .iter()
        .any(|r| *r < 0.0)
            || sum > 1.0
        {
            return Err(SimError::Config(format!(
                "fault shares must be ≥ 0 and sum to ≤ 1, got {f:?}"
            )));
        }
        if cfg.base_port != 0 && cfg.base_port > u16::MAX - 4 {
            return Err(SimError::Config(format!(
                "base_port {} leaves no room for five ports",
                cfg.base_port
            )));
        }
        let creds = Arc::new(auth::Creds::from_env());
        let world = Arc::new(world::World::new(cfg.seed));
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut systems = Vec::new();
        let mut tasks = Vec::new();
        for (i, kind) in Kind::ALL.iter().enumerate() {
            let port = if cfg.base_port == 0 {
                0
            } else {
                cfg.base_port + i as u16
            };
            let addr = SocketAddr::new(cfg.host, port);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| SimError::Bind {
                    system: kind.name(),
                    addr,
                    source,
                })?;
            let local = listener.local_addr().map_err(|source| SimError::Bind {
                system: kind.name(),
                addr,
                source,
            })?;
            let core = Arc::new(core::Core::new(*kind, &cfg, world.clone(), creds.clone()));
            let app = core::router(core);
            let mut rx = rx.clone();
            tasks.push(tokio::spawn(async move {
                let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                });
                if let Err(e) = serve.await {
                    tracing::error!(system = kind.name(), error = %e, "Simulator server stopped with an error.");
                }
            }));
            let url = format!("http://{local}");
            tracing::info!(system = kind.name(), url = %url, records = cfg.records, seed = cfg.seed, "Simulator listening.");
            systems.push((kind.name().to_string(), local));
        }
        let credentials = creds.as_env();
        for (k, v) in &credentials {
            tracing::info!(variable = %k, value = %v, "Simulator credential.");
        }
        Ok(Simulators {
            systems,
            credentials,
            shutdown: tx,
            tasks,
        })
    }

    /// Base URL (`http://host:port`) of a system by name.
    pub fn url(&self, system: &str) -> Option<String> {
        self.systems
            .iter()
            .find(|(n, _)| n == system)
            .map(|(_, a)| format!("http://{a}"))
    }

    /// `(name, base URL)` of every system, in port order.
    pub fn systems(&self) -> Vec<(String, String)> {
        self.systems
            .iter()
            .map(|(n, a)| (n.clone(), format!("http://{a}")))
            .collect()
    }

    /// The credentials in effect (defaults overridden by the environment), as `(env var, value)`.
    pub fn credentials(&self) -> Vec<(String, String)> {
        self.credentials.clone()
    }

    /// Stops the servers: waits up to 2 s for in-flight requests (a delayed "timeout" fault
    /// would otherwise hold shutdown for 35 s), then aborts.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(2), t)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}
