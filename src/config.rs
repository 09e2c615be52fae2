//! Configuration, read before anything flows: an optional file (`xiezhi.toml`, or the path in
//! `XIEZHI_CONFIG`) layered under environment variables. With nothing set, xiezhi runs on the
//! embedded default: the in-process bus and an SQLite file under the data directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::bus::amqp::AmqpOptions;
use crate::connectors::definition::ConfigError;
use crate::record::RecordType;

/// The service configuration. Every field can also be set by the environment variable named in
/// its doc; the environment wins over the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// PostgreSQL URL (`postgres://…`). Unset: the embedded SQLite file
    /// `<data_dir>/xiezhi.sqlite`. Env: `XIEZHI_DATABASE_URL`.
    pub database_url: Option<String>,
    /// RabbitMQ URL (`amqp://…`). Unset: the in-process bus. Env: `XIEZHI_AMQP_URL`.
    pub amqp_url: Option<String>,
    /// Where the embedded store lives. Env: `XIEZHI_DATA_DIR`. Default `./data`.
    pub data_dir: PathBuf,
    /// HTTP API address. Env: `XIEZHI_HTTP_ADDR`. Default `127.0.0.1:8080`.
    pub http_addr: SocketAddr,
    /// Directory of connector definitions. Env: `XIEZHI_CONNECTORS_DIR`. Default `connectors`;
    /// when it does not exist the definitions built into the binary are used.
    pub connectors_dir: PathBuf,
    /// First port of the five simulators (`xiezhi simulate`, `xiezhi demo`); the shipped
    /// connector files point at `XIEZHI_SIM_PORT_0..4` derived from it.
    /// Env: `XIEZHI_SIM_BASE_PORT`. Default 18081.
    pub sim_base_port: u16,
    /// Per record type, the connectors in order of precedence for the cross-source merge.
    pub precedence: BTreeMap<RecordType, Vec<String>>,
    pub pipeline: PipelineConfig,
    /// RabbitMQ topology and timing (used when `amqp_url` is set).
    pub amqp: AmqpOptions,
    /// Downstream feeds: named consumers, their masking level and AMQP bindings.
    pub feeds: crate::feeds::FeedsConfig,
    /// Legal deadlines: the working-day calendar and the rules.
    pub deadlines: crate::deadlines::DeadlinesConfig,
    /// Variables the connector files see besides the process environment (the simulators'
    /// credentials when xiezhi starts the simulators itself). Not read from the file.
    #[serde(skip)]
    pub extra_env: BTreeMap<String, String>,
}

/// Batching and concurrency of the pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Most events in one bus message (CloudEvents batch). Default 500.
    pub batch_max_events: usize,
    /// Pages a stream fetches ahead of its checkpoint. Default 2: two pages are normalised at
    /// once anyway, and 4 only let pulls run further ahead of the store writers (at 1,000,000
    /// records the RabbitMQ + PostgreSQL benchmark peaked at 222 MB with 4, 185 MB with 2, at
    /// the same throughput).
    pub pages_in_flight: usize,
    /// Streams synced at once. Default 4.
    pub concurrent_streams: usize,
    /// Unacknowledged bus messages the store writer holds. Default 16.
    pub store_prefetch: u16,
    /// Events the store writer applies in one transaction, at most. Default 1000: larger groups
    /// did not write faster (measured with `xiezhi bench`) and raised the peak memory of the
    /// RabbitMQ + PostgreSQL run by about 50 MB.
    pub store_group_events: usize,
    /// Store writer tasks in this process. Default 2.
    pub store_writers: usize,
    /// Seconds between push rounds in `xiezhi run` (each push delivers what was stored since
    /// its cursor). Default 10.
    pub push_interval_secs: u64,
    /// This instance's name in the lease table (scale-out). Default: host name, process id and
    /// a random suffix, so a restarted process is a new holder. Env: `XIEZHI_INSTANCE`.
    pub instance: Option<String>,
    /// Seconds a stream's lease lives unless renewed (renewed every third of it). Another
    /// instance takes a stream over this long after its holder died. Default 30.
    pub lease_ttl_secs: u64,
    /// A stream sync that fetches, publishes and fails nothing for this many seconds is failed
    /// as stalled (its heartbeat), and resumes from its checkpoint at the next occurrence.
    /// Default 600 (above the longest retry sequence of an upstream request).
    pub stall_secs: u64,
    /// Seconds the pull side retries store calls while the database is away (a restart, a
    /// failover) before the sync fails. Default 120.
    pub store_retry_secs: u64,
    /// On SIGTERM, seconds `xiezhi run` waits for in-flight pages to be published, confirmed,
    /// stored and checkpointed before it exits anyway. Default 100 (systemd and the Kubernetes
    /// manifests allow 120).
    pub shutdown_grace_secs: u64,
}

impl PipelineConfig {
    /// This instance's holder name: the configured one, or host name, process id and a random
    /// suffix (a restarted process must not inherit its predecessor's leases unexpired).
    pub fn instance_name(&self) -> String {
        if let Some(i) = &self.instance {
            return i.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "xiezhi".into());
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        format!("{host}:{}:{}", std::process::id(), &suffix[..8])
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            batch_max_events: 500,
            pages_in_flight: 2,
            concurrent_streams: 4,
            store_prefetch: 16,
            store_group_events: 1000,
            store_writers: 2,
            push_interval_secs: 10,
            instance: None,
            lease_ttl_secs: 30,
            stall_secs: 600,
            store_retry_secs: 120,
            shutdown_grace_secs: 100,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let precedence = [
            // The deciding agency's own system is authoritative for its decisions; the credit
            // platform republishes them.
            (
                RecordType::Penalty,
                vec![
                    "provincial".to_owned(),
                    "internet-plus".to_owned(),
                    "credit-platform".to_owned(),
                ],
            ),
            (
                RecordType::Inspection,
                vec!["internet-plus".to_owned(), "provincial".to_owned()],
            ),
            (
                RecordType::CoerciveMeasure,
                vec!["provincial".to_owned(), "internet-plus".to_owned()],
            ),
        ]
        .into_iter()
        .collect();
        Config {
            database_url: None,
            amqp_url: None,
            data_dir: PathBuf::from("data"),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            connectors_dir: PathBuf::from("connectors"),
            sim_base_port: 18081,
            precedence,
            pipeline: PipelineConfig::default(),
            amqp: AmqpOptions::default(),
            feeds: crate::feeds::FeedsConfig::default(),
            deadlines: crate::deadlines::DeadlinesConfig::default(),
            extra_env: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Reads the file (when given or found) and applies the environment.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let from_env = env("XIEZHI_CONFIG").map(PathBuf::from);
        let path = file.map(Path::to_path_buf).or(from_env).or_else(|| {
            let p = PathBuf::from("xiezhi.toml");
            p.exists().then_some(p)
        });
        let mut cfg = match &path {
            Some(p) => {
                let shown = p.display().to_string();
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError::new(&shown, "", format!("cannot read: {e}")))?;
                toml::from_str::<Config>(&text).map_err(|e| {
                    let line = e
                        .span()
                        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
                    let key = e.message().split('`').nth(1).unwrap_or_default().to_owned();
                    ConfigError::new(
                        line.map_or(shown.clone(), |l| format!("{shown}:{l}")),
                        key,
                        e.message().to_owned(),
                    )
                })?
            }
            None => Config::default(),
        };
        let src = |var: &str| format!("environment variable {var}");
        if let Some(v) = env("XIEZHI_DATABASE_URL").filter(|v| !v.is_empty()) {
            cfg.database_url = Some(v);
        }
        if let Some(v) = env("XIEZHI_AMQP_URL").filter(|v| !v.is_empty()) {
            cfg.amqp_url = Some(v);
        }
        if let Some(v) = env("XIEZHI_DATA_DIR").filter(|v| !v.is_empty()) {
            cfg.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("XIEZHI_INSTANCE").filter(|v| !v.is_empty()) {
            cfg.pipeline.instance = Some(v);
        }
        if let Some(v) = env("XIEZHI_CONNECTORS_DIR").filter(|v| !v.is_empty()) {
            cfg.connectors_dir = PathBuf::from(v);
        }
        if let Some(v) = env("XIEZHI_HTTP_ADDR").filter(|v| !v.is_empty()) {
            cfg.http_addr = v.parse().map_err(|e| {
                ConfigError::new(
                    src("XIEZHI_HTTP_ADDR"),
                    "http_addr",
                    format!("`{v}` is not host:port: {e}"),
                )
            })?;
        }
        if let Some(v) = env("XIEZHI_SIM_BASE_PORT").filter(|v| !v.is_empty()) {
            cfg.sim_base_port = v.parse().map_err(|e| {
                ConfigError::new(
                    src("XIEZHI_SIM_BASE_PORT"),
                    "sim_base_port",
                    format!("`{v}` is not a port: {e}"),
                )
            })?;
        }
        cfg.validate(
            &path
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(defaults)".into()),
        )?;
        Ok(cfg)
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                file,
                "database_url",
                "must be a postgres:// URL (leave it unset for the embedded SQLite store)",
            ));
        }
        if let Some(url) = &self.amqp_url
            && !(url.starts_with("amqp://") || url.starts_with("amqps://"))
        {
            return Err(ConfigError::new(
                file,
                "amqp_url",
                "must be an amqp:// URL (leave it unset for the in-process bus)",
            ));
        }
        let p = &self.pipeline;
        if p.batch_max_events == 0 || p.batch_max_events > 10_000 {
            return Err(ConfigError::new(
                file,
                "pipeline.batch_max_events",
                "must be between 1 and 10000",
            ));
        }
        if p.store_prefetch == 0
            || p.store_writers == 0
            || p.concurrent_streams == 0
            || p.pages_in_flight == 0
        {
            return Err(ConfigError::new(
                file,
                "pipeline",
                "store_prefetch, store_writers, concurrent_streams and pages_in_flight must be at least 1",
            ));
        }
        if p.lease_ttl_secs < 3 || p.stall_secs == 0 {
            return Err(ConfigError::new(
                file,
                "pipeline",
                "lease_ttl_secs must be at least 3 (it is renewed every third of it) and stall_secs at least 1",
            ));
        }
        if p.instance
            .as_deref()
            .is_some_and(|i| i.trim().is_empty() || i.len() > 200)
        {
            return Err(ConfigError::new(
                file,
                "pipeline.instance",
                "must be a non-empty name of at most 200 characters",
            ));
        }
        self.feeds.validate(file)?;
        if self.sim_base_port > u16::MAX - 5 {
            return Err(ConfigError::new(
                file,
                "sim_base_port",
                "leaves no room for five simulator ports",
            ));
        }
        Ok(())
    }

    /// The environment seen by connector files: the process environment plus
    /// `XIEZHI_SIM_PORT_0..4` derived from the simulators' base port (unless set explicitly).
    pub fn connector_env(&self) -> impl Fn(&str) -> Option<String> + use<> {
        let base = self.sim_base_port;
        let extra = self.extra_env.clone();
        move |name: &str| {
            if let Ok(v) = std::env::var(name) {
                return Some(v);
            }
            if let Some(v) = extra.get(name) {
                return Some(v.clone());
            }
            let i: u16 = name.strip_prefix("XIEZHI_SIM_PORT_")?.parse().ok()?;
            (i < 5).then(|| (base + i).to_string())
        }
    }
}

/// The process environment as a lookup function.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn nothing_set_means_the_embedded_default() {
        let c = Config::load(None, &env(&[])).unwrap();
        assert!(c.database_url.is_none() && c.amqp_url.is_none());
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn environment_overrides_and_is_checked() {
        let c = Config::load(
            None,
            &env(&[
                ("XIEZHI_DATABASE_URL", "postgres://x@h/db"),
                ("XIEZHI_SIM_BASE_PORT", "20000"),
            ]),
        )
        .unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://x@h/db"));
        assert_eq!(c.sim_base_port, 20000);
        let e = Config::load(None, &env(&[("XIEZHI_HTTP_ADDR", "nope")])).unwrap_err();
        assert_eq!(e.key, "http_addr");
        let e = Config::load(None, &env(&[("XIEZHI_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert_eq!(e.key, "database_url");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_named_with_its_line() {
        let dir = std::env::temp_dir().join(format!("xiezhi-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("xiezhi.toml");
        std::fs::write(&f, "data_dir = \"d\"\n\n[pipeline]\nbatch_max = 3\n").unwrap();
        let e = Config::load(Some(&f), &env(&[])).unwrap_err();
        assert!(e.file.ends_with("xiezhi.toml:4"), "{e}");
        assert_eq!(e.key, "batch_max");
        std::fs::remove_dir_all(dir).ok();
    }
}
