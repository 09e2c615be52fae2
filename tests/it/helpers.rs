//! Shared set-up: simulators on ephemeral ports, a fresh PostgreSQL database per test, RabbitMQ
//! names unique per test, and the configuration that points xiezhi at them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::Connection;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;
use xiezhi::config::Config;
use xiezhi::pipeline::reconcile::{self, Reconciliation};
use xiezhi::pipeline::{Runtime, Selection, SyncReport};
use xiezhi::sim::{Faults, SimConfig, Simulators};

pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Tests that restart a service (RabbitMQ or PostgreSQL) take this for writing; every other
/// test that uses the broker or the database, for reading.
pub fn broker_lock() -> &'static RwLock<()> {
    static LOCK: std::sync::OnceLock<RwLock<()>> = std::sync::OnceLock::new();
    LOCK.get_or_init(|| RwLock::new(()))
}

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Five simulators on ephemeral ports.
pub async fn spawn_sims(records: usize, invalid_rate: f64, seed: u64) -> Simulators {
    Simulators::start(SimConfig {
        seed,
        records,
        invalid_rate,
        base_port: 0,
        host: std::net::IpAddr::from([127, 0, 0, 1]),
        faults: Faults::default(),
    })
    .await
    .expect("simulators start")
}

/// Connector environment for simulators on arbitrary ports: `XIEZHI_SIM_PORT_<i>` per system
/// plus their credentials.
pub fn sim_env(sims: &Simulators) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> =
        xiezhi::sim::default_credentials().into_iter().collect();
    for (i, name) in xiezhi::sim::SYSTEMS.iter().enumerate() {
        let url = sims.url(name).expect("every system runs");
        let port = url
            .rsplit(':')
            .next()
            .expect("url has a port")
            .trim_end_matches('/')
            .to_owned();
        env.insert(format!("XIEZHI_SIM_PORT_{i}"), port);
    }
    env
}

/// A database of its own on the local server; dropped by [`TestDb::drop_db`].
pub struct TestDb {
    pub url: String,
    pub name: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let (url, name) = xiezhi::bench::fresh_database(PG_ADMIN)
            .await
            .expect("create test database");
        TestDb { url, name }
    }

    /// Exactly-once effect: no record has two versions with the same content.
    pub async fn assert_no_duplicate_versions(&self) {
        let dup = self
            .count("SELECT count(*) FROM (SELECT record_type, key, content_hash FROM record_versions GROUP BY 1, 2, 3 HAVING count(*) > 1) d")
            .await;
        assert_eq!(dup, 0, "a record was stored twice with the same content");
    }

    pub async fn drop_db(self) {
        xiezhi::bench::drop_database(PG_ADMIN, &self.name)
            .await
            .ok();
    }

    /// A count query; 0 while the tables do not exist yet (a child process is still migrating).
    pub async fn count(&self, sql: &str) -> i64 {
        let mut c = sqlx::PgConnection::connect(&self.url)
            .await
            .expect("connect");
        match sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut c)
            .await
        {
            Ok(row) => row.0,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => 0,
            Err(e) => panic!("count query failed: {e}"),
        }
    }
}

/// Unique RabbitMQ names for one test, as a config section.
pub fn amqp_names() -> xiezhi::bus::amqp::AmqpOptions {
    let id = uuid::Uuid::new_v4().simple().to_string();
    xiezhi::bus::amqp::AmqpOptions {
        exchange: format!("t.{id}.records"),
        dead_letter_exchange: format!("t.{id}.dlx"),
        store_queue: format!("t.{id}.store"),
        dead_queue: format!("t.{id}.dead"),
        ..Default::default()
    }
}

/// Configuration for the embedded default in a temporary directory.
pub fn embedded_config(sims: &Simulators) -> Config {
    Config {
        data_dir: std::env::temp_dir().join(format!("xiezhi-it-{}", uuid::Uuid::new_v4())),
        connectors_dir: repo_dir().join("connectors"),
        extra_env: sim_env(sims),
        ..Config::default()
    }
}

/// Configuration for RabbitMQ + PostgreSQL.
pub fn broker_config(sims: &Simulators, db: &TestDb) -> Config {
    let mut c = embedded_config(sims);
    c.database_url = Some(db.url.clone());
    c.amqp_url = Some(AMQP.to_owned());
    c.amqp = amqp_names();
    c
}

/// Writes `config` as a TOML file for a child process (the parts a child needs).
pub fn config_file(c: &Config) -> PathBuf {
    let path = std::env::temp_dir().join(format!("xiezhi-it-{}.toml", uuid::Uuid::new_v4()));
    let mut text = String::new();
    if let Some(u) = &c.database_url {
        text.push_str(&format!("database_url = {u:?}\n"));
    }
    if let Some(u) = &c.amqp_url {
        text.push_str(&format!("amqp_url = {u:?}\n"));
    }
    text.push_str(&format!(
        "data_dir = {:?}\nconnectors_dir = {:?}\n",
        c.data_dir, c.connectors_dir
    ));
    text.push_str(&format!(
        "[amqp]\nexchange = {:?}\ndead_letter_exchange = {:?}\nstore_queue = {:?}\ndead_queue = {:?}\n",
        c.amqp.exchange, c.amqp.dead_letter_exchange, c.amqp.store_queue, c.amqp.dead_queue
    ));
    std::fs::write(&path, text).expect("write config file");
    path
}

/// The `xiezhi` binary, with no store or broker inherited from the caller's environment.
pub fn xiezhi() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_xiezhi"));
    c.env_remove("XIEZHI_DATABASE_URL")
        .env_remove("XIEZHI_AMQP_URL")
        .env_remove("XIEZHI_CONFIG")
        .kill_on_drop(true);
    c
}

/// A built runtime with its store writers running.
pub struct Running {
    pub rt: Arc<Runtime>,
    cancel: CancellationToken,
    writers: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    pub async fn start(c: Config) -> Running {
        let rt = Arc::new(Runtime::build(c).await.expect("runtime builds"));
        let cancel = CancellationToken::new();
        let writers = rt.spawn_writers(&cancel);
        Running {
            rt,
            cancel,
            writers,
        }
    }

    pub async fn sync_all(&self) -> SyncReport {
        let pullers = self.rt.pullers(&Selection::default()).expect("pullers");
        let report = tokio::time::timeout(
            std::time::Duration::from_secs(600),
            self.rt.sync_once(&pullers, |_| {}),
        )
        .await
        .expect("a sync of every stream did not end within 600 s")
        .expect("sync runs");
        for s in &report.streams {
            assert!(
                s.error.is_none(),
                "stream {}/{} failed: {:?}",
                s.connector,
                s.stream,
                s.error
            );
        }
        report
    }

    /// A sync of every stream, started in the background (the test disturbs it meanwhile).
    pub fn spawn_sync(&self) -> tokio::task::JoinHandle<SyncReport> {
        let rt = self.rt.clone();
        tokio::spawn(async move {
            let pullers = rt.pullers(&Selection::default()).expect("pullers");
            rt.sync_once(&pullers, |_| {}).await.expect("sync")
        })
    }

    pub async fn reconcile(&self) -> Reconciliation {
        let truths = reconcile::fetch_truth(&self.rt.base_urls())
            .await
            .expect("truth");
        reconcile::reconcile(self.rt.store.as_ref(), &truths)
            .await
            .expect("reconcile")
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        for w in self.writers {
            // Bounded, so a writer that cannot stop fails the test instead of stalling the run.
            tokio::time::timeout(std::time::Duration::from_secs(120), w)
                .await
                .expect("a store writer did not stop within 120 s of its cancellation")
                .expect("writer task")
                .expect("writer ends cleanly");
        }
    }
}

/// Asserts a reconciliation found nothing missing, nothing extra, every invalid record failed.
pub fn assert_reconciled(rec: &Reconciliation) {
    assert!(
        rec.ok(),
        "not reconciled: {}",
        serde_json::to_string_pretty(rec).unwrap_or_default()
    );
    assert!(
        rec.types.values().map(|t| t.stored).sum::<usize>() > 0,
        "nothing was stored"
    );
    assert!(
        rec.sources.values().map(|s| s.invalid).sum::<usize>() > 0,
        "the simulators produced no invalid records to check"
    );
}

/// A copy of the shipped connector files in a fresh directory.
pub fn copy_connectors() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xiezhi-it-connectors-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("connector dir");
    for entry in std::fs::read_dir(repo_dir().join("connectors")).expect("connectors") {
        let p = entry.expect("entry").path();
        std::fs::copy(&p, dir.join(p.file_name().expect("file name"))).expect("copy");
    }
    dir
}

pub fn edit_file(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).expect("read connector");
    assert!(
        text.contains(from),
        "{} no longer holds `{from}`",
        file.display()
    );
    std::fs::write(file, text.replace(from, to)).expect("write connector");
}

/// Whether text holds something shaped like a full resident ID number: 17 digits and a digit
/// or X, standing alone, with a birth date (1900–2099) at positions 7–14.
pub fn has_id_number(text: &str) -> bool {
    let b = text.as_bytes();
    let num = |s: &[u8]| {
        std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
    };
    (0..b.len().saturating_sub(17)).any(|i| {
        (i == 0 || !b[i - 1].is_ascii_alphanumeric())
            && b[i..i + 17].iter().all(u8::is_ascii_digit)
            && (b[i + 17].is_ascii_digit() || b[i + 17] == b'X')
            && b.get(i + 18).is_none_or(|c| !c.is_ascii_alphanumeric())
            && matches!(num(&b[i + 6..i + 10]), Some(1900..=2099))
            && matches!(num(&b[i + 10..i + 12]), Some(1..=12))
            && matches!(num(&b[i + 12..i + 14]), Some(1..=31))
    })
}

pub struct App {
    pub base: String,
    pub cancel: tokio_util::sync::CancellationToken,
}

pub async fn spawn_app(running: &Running) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cancel = tokio_util::sync::CancellationToken::new();
    let state = xiezhi::api::ApiState::new(running.rt.clone());
    tokio::spawn(xiezhi::api::serve(state, listener, cancel.clone()));
    App {
        base: format!("http://{addr}"),
        cancel,
    }
}

/// Runs a service's control command (`rabbitmqctl`, `pg_ctlcluster`), bounded: a service that
/// does not answer fails the test instead of stalling the run.
pub fn service(program: &str, args: &[&str]) {
    let out = std::process::Command::new("timeout")
        .arg("120")
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
