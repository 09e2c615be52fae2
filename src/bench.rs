//! `xiezhi bench`: end-to-end throughput, fetch-to-commit latency and peak memory of the whole
//! pipeline (simulator → pull → normalise → bus → store), on the embedded default and on
//! RabbitMQ + PostgreSQL.
//!
//! The simulators run in a child process (`xiezhi simulate`), so the peak resident memory read
//! from `/proc/self/status` is the pipeline's alone, and the two do not share a runtime.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::pipeline::writer::LatencyHistogram;
use crate::pipeline::{Runtime, Selection};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Records the credit-platform simulator holds (its penalty stream gets most of them).
    #[arg(long, default_value_t = 200_000)]
    pub records: usize,
    /// `embedded`, `amqp` (RabbitMQ + PostgreSQL), `both`, `replay` (failures replayed over
    /// RabbitMQ + PostgreSQL after a mapping fix), or `feeds` (HTTP feed reads and pushes to the
    /// credit platform, over the embedded store), or `instances` (every stream of the five
    /// systems through `xiezhi run` processes: one, then `--instances`).
    #[arg(long, default_value = "both")]
    pub target: String,
    /// Processes for the `instances` target's second run.
    #[arg(long, default_value_t = 2)]
    pub instances: usize,
    /// PostgreSQL server for the `amqp` target (a fresh database is created on it and dropped).
    #[arg(
        long,
        env = "XIEZHI_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub database_url: String,
    #[arg(
        long,
        env = "XIEZHI_BENCH_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// First simulator port.
    #[arg(long, default_value_t = 19081)]
    pub base_port: u16,
    /// Print results as JSON lines too.
    #[arg(long)]
    pub json: bool,
}

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub target: String,
    pub records: i64,
    pub seconds: f64,
    pub records_per_sec: f64,
    pub latency_p50_ms: u64,
    pub latency_p99_ms: u64,
    pub peak_rss_mb: f64,
}

pub async fn run(config: &mut Config, args: BenchArgs) -> anyhow::Result<i32> {
    let mut sim = Simulators::start(&args).await?;
    config.sim_base_port = args.base_port;
    for (k, v) in crate::sim::default_credentials() {
        config.extra_env.entry(k).or_insert(v);
    }

    let targets: Vec<&str> = match args.target.as_str() {
        "both" => vec!["embedded", "amqp"],
        "embedded" => vec!["embedded"],
        "amqp" => vec!["amqp"],
        "replay" => vec!["replay"],
        "feeds" => vec!["feeds"],
        "instances" => vec!["instances"],
        other => {
            anyhow::bail!(
                "--target must be embedded, amqp, both, replay, feeds or instances, not `{other}`"
            )
        }
    };
    let mut results = Vec::new();
    for t in targets {
        let r = match t {
            "instances" => {
                // Each count of instances meets simulators in their starting state: the
                // simulators keep every push's answer (idempotency), so a second run against
                // the first one's simulators would pay for the first one's pushes.
                results.push(measure_instances(config, &args, 1, &mut sim).await?);
                sim.restart(&args).await?;
                measure_instances(config, &args, args.instances.max(2), &mut sim).await?
            }
            "feeds" => {
                let (c, dir) = embedded(config);
                let r = measure_feeds(c).await;
                std::fs::remove_dir_all(&dir).ok();
                let mut r = r?;
                let last = r.pop().context("no feed results")?;
                results.extend(r);
                last
            }
            "embedded" => {
                let (c, dir) = embedded(config);
                let r = measure("embedded (in-process bus + SQLite)", c).await;
                std::fs::remove_dir_all(&dir).ok();
                r?
            }
            mode => {
                let (db_url, db_name) = fresh_database(&args.database_url).await?;
                let mut c = config.clone();
                c.database_url = Some(db_url);
                c.amqp_url = Some(args.amqp_url.clone());
                let suffix = uuid::Uuid::new_v4().simple().to_string();
                c.amqp.exchange = format!("xiezhi.bench.{suffix}");
                c.amqp.dead_letter_exchange = format!("xiezhi.bench.dlx.{suffix}");
                c.amqp.store_queue = format!("xiezhi.bench.store.{suffix}");
                c.amqp.dead_queue = format!("xiezhi.bench.dead.{suffix}");
                let r = if mode == "replay" {
                    measure_replay(c).await
                } else {
                    measure("RabbitMQ + PostgreSQL", c).await
                };
                drop_database(&args.database_url, &db_name).await.ok();
                r?
            }
        };
        results.push(r);
    }
    sim.stop().await;

    println!(
        "{:<36} {:>10} {:>8} {:>12} {:>8} {:>8} {:>10}",
        "target", "records", "seconds", "records/s", "p50 ms", "p99 ms", "peak MB"
    );
    for r in &results {
        println!(
            "{:<36} {:>10} {:>8.1} {:>12.0} {:>8} {:>8} {:>10.1}",
            r.target,
            r.records,
            r.seconds,
            r.records_per_sec,
            r.latency_p50_ms,
            r.latency_p99_ms,
            r.peak_rss_mb
        );
        if args.json {
            println!("{}", serde_json::to_string(r)?);
        }
    }
    println!(
        "(peak MB: the process's peak resident set during that target's run, simulators excluded)"
    );
    Ok(0)
}

/// The configuration on the embedded default, in a fresh data directory (removed by the caller).
fn embedded(config: &Config) -> (Config, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("xiezhi-bench-{}", uuid::Uuid::new_v4()));
    let mut c = config.clone();
    c.database_url = None;
    c.amqp_url = None;
    c.data_dir = dir.clone();
    (c, dir)
}

async fn measure(target: &str, config: Config) -> anyhow::Result<BenchResult> {
    reset_peak_rss();
    let rt = Runtime::build(config).await?;
    let hist = Arc::new(LatencyHistogram::default());
    let cancel = CancellationToken::new();
    let writers = rt.spawn_writers_with(&cancel, Some(hist.clone()));
    let pullers = rt.pullers(&Selection {
        connector: Some("credit-platform".into()),
        stream: Some("penalties".into()),
        ..Default::default()
    })?;
    let started = Instant::now();
    let report = rt.sync_once(&pullers, |_| {}).await?;
    let seconds = started.elapsed().as_secs_f64();
    cancel.cancel();
    for w in writers {
        w.await??;
    }
    if !report.complete() {
        anyhow::bail!(
            "the benchmark sync did not complete: {:?}",
            report
                .streams
                .iter()
                .filter_map(|s| s.error.clone())
                .collect::<Vec<_>>()
        );
    }
    Ok(BenchResult {
        target: target.to_owned(),
        records: report.ingested,
        seconds,
        records_per_sec: report.ingested as f64 / seconds,
        latency_p50_ms: hist.quantile(0.50),
        latency_p99_ms: hist.quantile(0.99),
        peak_rss_mb: peak_rss_mb(),
    })
}

/// Fills an embedded store with the credit platform's penalties, then measures (1) paging the
/// HTTP feed `/v1/feeds/penalty` from 0 to the end, 1,000 events a page, at the public masking
/// level and at the internal one, and (2) pushing every penalty to the credit-platform
/// simulator (2021 双公示 format, SM3-signed, 100 a request).
async fn measure_feeds(config: Config) -> anyhow::Result<Vec<BenchResult>> {
    let rt = Arc::new(Runtime::build(config).await?);
    let cancel = CancellationToken::new();
    let writers = rt.spawn_writers(&cancel);
    let pullers = rt.pullers(&Selection {
        connector: Some("credit-platform".into()),
        stream: Some("penalties".into()),
        ..Default::default()
    })?;
    let report = rt.sync_once(&pullers, |_| {}).await?;
    eprintln!(
        "stored {} penalties; measuring feed reads and pushes",
        report.ingested
    );

    let (token, _) = crate::ops::tokens::create(
        rt.store.as_ref(),
        "bench-operator",
        crate::store::ops::Role::Operator,
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let api = tokio::spawn(crate::api::serve(
        crate::api::ApiState::new(rt.clone()),
        listener,
        cancel.clone(),
    ));
    let http = reqwest::Client::new();
    let mut results = Vec::new();
    for level in ["public", "internal"] {
        reset_peak_rss();
        let started = Instant::now();
        let (mut after, mut events) = (0i64, 0i64);
        loop {
            let page: serde_json::Value = http
                .get(format!(
                    "{base}/v1/feeds/penalty?after={after}&limit=1000&masking={level}"
                ))
                .bearer_auth(&token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            events += page["events"].as_array().map_or(0, |e| e.len() as i64);
            after = page["next_after"].as_i64().unwrap_or(after);
            if page["has_more"] != true {
                break;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        results.push(BenchResult {
            target: format!("HTTP feed read ({level})"),
            records: events,
            seconds,
            records_per_sec: events as f64 / seconds,
            latency_p50_ms: 0,
            latency_p99_ms: 0,
            peak_rss_mb: peak_rss_mb(),
        });
    }

    reset_peak_rss();
    let pushers = rt.pushers(&Selection {
        connector: Some("credit-platform".into()),
        stream: Some("publish-penalties".into()),
        ..Default::default()
    })?;
    let started = Instant::now();
    let pushed = rt.push_once(&pushers).await;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(e) = pushed.iter().find_map(|r| r.error.clone()) {
        anyhow::bail!("the benchmark push did not complete: {e}");
    }
    let accepted: u64 = pushed.iter().map(|r| r.accepted).sum();
    results.push(BenchResult {
        target: "push to credit platform".into(),
        records: accepted as i64,
        seconds,
        records_per_sec: accepted as f64 / seconds,
        latency_p50_ms: 0,
        latency_p99_ms: 0,
        peak_rss_mb: peak_rss_mb(),
    });
    cancel.cancel();
    api.await??;
    for w in writers {
        w.await??;
    }
    Ok(results)
}

/// The date format of the penalty stream's decision date, as shipped and as "broken" by the
/// replay benchmark (every penalty then fails with MAP_BAD_DATE).
const GOOD_DATE: &str = r#"decision_date = { from = "CF_JDRQ", date = "%Y/%m/%d" }"#;
const BAD_DATE: &str = r#"decision_date = { from = "CF_JDRQ", date = "%Y-%m-%d" }"#;

/// Replay throughput: a sync under a broken mapping puts every penalty in the failure store;
/// the mapping is fixed; the replay of all of them (by filter) is measured, from the first
/// read of the failure store until the last one is stored and marked resolved.
async fn measure_replay(mut config: Config) -> anyhow::Result<BenchResult> {
    use crate::ops::replay::{self, ReplaySettings, Target};
    use crate::store::FailureFilter;

    let dir =
        std::env::temp_dir().join(format!("xiezhi-bench-connectors-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |broken: bool| -> anyhow::Result<()> {
        for (file, text) in crate::connectors::definition::EMBEDDED {
            let name = std::path::Path::new(file)
                .file_name()
                .context("connector file name")?;
            let text = if broken && file.ends_with("credit-platform.toml") {
                anyhow::ensure!(
                    text.contains(GOOD_DATE),
                    "the credit connector changed: update the replay benchmark"
                );
                text.replace(GOOD_DATE, BAD_DATE)
            } else {
                (*text).to_owned()
            };
            std::fs::write(dir.join(name), text)?;
        }
        Ok(())
    };
    config.connectors_dir = dir.clone();
    write(true)?;
    let failed = {
        let rt = Runtime::build(config.clone()).await?;
        let cancel = CancellationToken::new();
        let writers = rt.spawn_writers(&cancel);
        let pullers = rt.pullers(&Selection {
            connector: Some("credit-platform".into()),
            stream: Some("penalties".into()),
            ..Default::default()
        })?;
        let started = Instant::now();
        let report = rt.sync_once(&pullers, |_| {}).await?;
        cancel.cancel();
        for w in writers {
            w.await??;
        }
        tracing::info!(
            failed = report.failed,
            seconds = started.elapsed().as_secs_f64(),
            "Replay benchmark: failures recorded under the broken mapping."
        );
        report.failed
    };
    write(false)?;
    reset_peak_rss();
    let rt = Runtime::build(config).await?;
    let cancel = CancellationToken::new();
    let writers = rt.spawn_writers(&cancel);
    let started = Instant::now();
    let report = replay::replay(
        &rt,
        Target::Filter(FailureFilter {
            connector: Some("credit-platform".into()),
            code: Some("MAP_BAD_DATE".into()),
            ..Default::default()
        }),
        &ReplaySettings {
            actor: "bench".into(),
            ..Default::default()
        },
        |p| {
            if p.done % 20_000 < 1000 {
                tracing::info!(done = p.done, total = p.total, "Replay benchmark progress.");
            }
        },
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    cancel.cancel();
    for w in writers {
        w.await??;
    }
    std::fs::remove_dir_all(&dir).ok();
    anyhow::ensure!(
        report.resolved == failed && report.still_failing == 0,
        "the replay did not store every failure: {failed} failed, {report:?}"
    );
    Ok(BenchResult {
        target: "replay (RabbitMQ + PostgreSQL)".into(),
        records: report.resolved,
        seconds,
        records_per_sec: report.resolved as f64 / seconds,
        latency_p50_ms: 0,
        latency_p99_ms: 0,
        peak_rss_mb: peak_rss_mb(),
    })
}

async fn wait_for_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the simulators did not start listening on port {port}")
}

/// Resets `VmHWM` so each target's peak is its own (Linux: writing 5 to `clear_refs`).
fn reset_peak_rss() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        tracing::warn!(error = %e, "Could not reset the peak-memory counter; peaks accumulate across targets.");
    }
}

/// `VmHWM` of this process, in MiB.
pub fn peak_rss_mb() -> f64 {
    peak_mb_of("/proc/self/status")
}

/// `VmHWM` of another process, in MiB (0 when it is gone).
fn process_peak_mb(pid: u32) -> f64 {
    peak_mb_of(&format!("/proc/{pid}/status"))
}

fn peak_mb_of(status: &str) -> f64 {
    std::fs::read_to_string(status)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Creates a uniquely named database on the server of `admin_url`; returns its URL and name.
pub async fn fresh_database(admin_url: &str) -> anyhow::Result<(String, String)> {
    let name = format!("xiezhi_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to {admin_url}"))?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let mut url = reqwest::Url::parse(admin_url)?;
    url.set_path(&format!("/{name}"));
    Ok((url.to_string(), name))
}

pub async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// The simulators' child process of a benchmark run, and where its log goes.
struct Simulators {
    child: tokio::process::Child,
    log: std::path::PathBuf,
}

impl Simulators {
    /// Starts `xiezhi simulate` (seed 7, no invalid records) on the benchmark's ports and waits
    /// until they listen. The simulators' warnings, and a panic if one ends them, go to a log
    /// kept for the operator: a benchmark that stalls because its upstreams went away must say
    /// so, and why.
    async fn start(args: &BenchArgs) -> anyhow::Result<Simulators> {
        let exe = std::env::current_exe().context("locating the xiezhi binary")?;
        let log =
            std::env::temp_dir().join(format!("xiezhi-bench-simulate-{}.log", std::process::id()));
        let stderr = std::fs::File::create(&log)
            .with_context(|| format!("creating the simulators' log {}", log.display()))?;
        let child = tokio::process::Command::new(exe)
            .args([
                "simulate",
                "--seed",
                "7",
                "--invalid-rate",
                "0",
                "--records",
                &args.records.to_string(),
                "--base-port",
                &args.base_port.to_string(),
            ])
            .env("XIEZHI_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .context("starting the simulators")?;
        let sim = Simulators { child, log };
        wait_for_port(args.base_port + 2).await?;
        Ok(sim)
    }

    /// Replaces the simulators with fresh ones in their starting state.
    async fn restart(&mut self, args: &BenchArgs) -> anyhow::Result<()> {
        self.child.kill().await.ok();
        *self = Simulators::start(args).await?;
        Ok(())
    }

    async fn stop(mut self) {
        self.child.kill().await.ok();
        std::fs::remove_file(&self.log).ok();
    }
}

/// `--target instances`: `xiezhi run` as operators scale it, with 1 and then `instances`
/// processes against one RabbitMQ and one PostgreSQL on this machine. Every stream of the five
/// simulators syncs once (its first occurrence: connector copies whose cron never comes round),
/// the processes sharing the streams and pushes through their leases; measured from the
/// processes' start until every stream's occurrence is recorded as finished (each sync waits
/// until its records are stored) and every push and the feed relay has caught up with the
/// store. Records are the events the windows routed; the peak is the largest process's.
async fn measure_instances(
    config: &Config,
    args: &BenchArgs,
    instances: usize,
    sim: &mut Simulators,
) -> anyhow::Result<BenchResult> {
    let (db_url, db_name) = fresh_database(&args.database_url).await?;
    let dir = std::env::temp_dir().join(format!("xiezhi-bench-{}", uuid::Uuid::new_v4()));
    let connectors = dir.join("connectors");
    std::fs::create_dir_all(&connectors)?;
    let mut streams = 0i64;
    for (file, text) in crate::connectors::definition::EMBEDDED {
        let once: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("schedule = ") {
                    "schedule = \"0 0 0 1 1 *\"".to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect();
        streams += once.iter().filter(|l| l.trim() == "[[streams]]").count() as i64;
        let name = std::path::Path::new(file)
            .file_name()
            .context("connector file name")?;
        std::fs::write(connectors.join(name), once.join("\n") + "\n")?;
    }
    // The work is done when every stream's occurrence finished (its records stored) and every
    // push and the feed relay caught up with the store: pushes run beside the syncs, and an
    // instance that left them behind would otherwise look faster for deferring work.
    let mut consumers = vec![(crate::feeds::relay::RELAY_CURSOR.to_owned(), "*".to_owned())];
    for def in crate::connectors::definition::load_dir(&connectors)? {
        for p in &def.pushes {
            consumers.push((
                format!("push:{}/{}", def.name, p.name),
                p.record_type.as_str().to_owned(),
            ));
        }
    }
    let lagging_sql = format!(
        "SELECT count(*) FROM (VALUES {}) AS p(consumer, feed) \
         WHERE coalesce((SELECT c.seq FROM feed_cursors c WHERE c.consumer = p.consumer AND c.feed = p.feed), 0) \
             < coalesce(CASE WHEN p.feed = '*' THEN (SELECT max(seq) FROM record_versions) \
                 ELSE (SELECT max(v.seq) FROM record_versions v WHERE v.record_type = p.feed) END, 0)",
        consumers
            .iter()
            .map(|(c, f)| format!("('{c}', '{f}')"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let file = dir.join("xiezhi.toml");
    std::fs::write(
        &file,
        format!(
            "database_url = {db_url:?}\namqp_url = {:?}\ndata_dir = {:?}\nconnectors_dir = {connectors:?}\n\
             [amqp]\nexchange = \"xiezhi.bench.{suffix}\"\ndead_letter_exchange = \"xiezhi.bench.dlx.{suffix}\"\n\
             store_queue = \"xiezhi.bench.store.{suffix}\"\ndead_queue = \"xiezhi.bench.dead.{suffix}\"\n\
             [pipeline]\nlease_ttl_secs = 10\n",
            args.amqp_url, dir
        ),
    )?;
    let exe = std::env::current_exe().context("locating the xiezhi binary")?;
    let started = Instant::now();
    let logs: Vec<std::path::PathBuf> = (0..instances)
        .map(|i| dir.join(format!("instance-{i}.log")))
        .collect();
    let mut children = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        children.push(
            tokio::process::Command::new(&exe)
                .args(["--config", &file.to_string_lossy(), "run"])
                .envs(config.extra_env.iter())
                .env("XIEZHI_SIM_BASE_PORT", args.base_port.to_string())
                .env("XIEZHI_INSTANCE", format!("bench-{i}"))
                .env("XIEZHI_HTTP_ADDR", "127.0.0.1:0")
                .env("XIEZHI_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(log)?)
                .kill_on_drop(true)
                .spawn()
                .context("starting an instance")?,
        );
    }
    let count = async |sql: &str| -> Option<i64> {
        let mut c = sqlx::PgConnection::connect(&db_url).await.ok()?;
        sqlx::query_scalar::<_, Option<i64>>(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut c)
            .await
            .ok()
            .flatten()
    };
    let mut peak = 0f64;
    let mut synced = None;
    loop {
        for c in &children {
            if let Some(pid) = c.id() {
                peak = peak.max(process_peak_mb(pid));
            }
        }
        // A process that ended mid-run would leave the wait below to its hour: say which and
        // where its log is (the directory is kept for it).
        if let Ok(Some(status)) = sim.child.try_wait() {
            anyhow::bail!(
                "the simulators exited mid-run ({status}); their log: {}",
                sim.log.display()
            );
        }
        for (i, c) in children.iter_mut().enumerate() {
            if let Ok(Some(status)) = c.try_wait() {
                anyhow::bail!(
                    "instance {i} exited mid-run ({status}); its log: {}",
                    logs[i].display()
                );
            }
        }
        if synced.is_none() && count("SELECT count(*) FROM schedule_state").await == Some(streams) {
            synced = Some(started.elapsed().as_secs_f64());
        }
        if synced.is_some() && count(&lagging_sql).await == Some(0) {
            break;
        }
        if started.elapsed() > Duration::from_secs(3600) {
            anyhow::bail!("the instances did not finish every stream and push within an hour");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let synced = synced.unwrap_or(seconds);
    tracing::info!(
        instances,
        synced_secs = synced,
        caught_up_secs = seconds,
        "Instances benchmark: every stream synced, then every push and the relay caught up."
    );
    println!(
        "{instances} instance(s): every stream synced and stored after {synced:.1} s; every push and the feed relay caught up after {seconds:.1} s"
    );
    let records = count("SELECT sum(routed)::int8 FROM sync_reconciliations")
        .await
        .unwrap_or(0);
    let not_ok = count("SELECT count(*) FROM schedule_state WHERE outcome <> 'ok'")
        .await
        .unwrap_or(0);
    for c in &mut children {
        if let Some(pid) = c.id() {
            peak = peak.max(process_peak_mb(pid));
            // SAFETY: kill(2) with our child's pid and a valid signal: it drains and exits.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
    }
    for c in &mut children {
        let _ = tokio::time::timeout(Duration::from_secs(120), c.wait()).await;
    }
    drop_database(&args.database_url, &db_name).await.ok();
    std::fs::remove_dir_all(&dir).ok();
    if not_ok > 0 {
        anyhow::bail!("{not_ok} stream syncs did not end ok");
    }
    Ok(BenchResult {
        target: format!(
            "{instances} instance{} (RabbitMQ + PostgreSQL)",
            if instances == 1 { "" } else { "s" }
        ),
        records,
        seconds,
        records_per_sec: records as f64 / seconds,
        latency_p50_ms: 0,
        latency_p99_ms: 0,
        peak_rss_mb: peak,
    })
}
