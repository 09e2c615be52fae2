//! The command line: the face operators and newcomers use (`demo`, `sync`, `run`, `simulate`,
//! `validate`, `bench`, `migrate`, `check`).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::config::{Config, process_env};
use crate::connectors::pull::StreamPuller;
use crate::connectors::window::Window;
use crate::pipeline::reconcile::{self, Reconciliation};
use crate::pipeline::{Runtime, Selection, SyncReport};
use crate::record::RecordType;
use crate::schema::SchemaRegistry;
use crate::sim;

#[derive(Debug, Parser)]
#[command(
    name = "xiezhi",
    version,
    about = "Data exchange for administrative law-enforcement supervision"
)]
pub struct Cli {
    /// Configuration file (default: ./xiezhi.toml when present, or $XIEZHI_CONFIG).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the simulators, sync every stream once into a fresh store, reconcile against the
    /// simulators' truth, print a summary, then serve the API.
    Demo {
        #[command(flatten)]
        sim: SimArgs,
        /// Exit after the summary instead of serving the API (exit code 0 only if reconciled).
        #[arg(long)]
        no_serve: bool,
    },
    /// Sync streams once: every connector (`--all`), one connector, or one stream of it.
    /// With `--from` it re-pulls a window of update times instead (the backfill for "the
    /// upstream fixed their data"): the live checkpoint does not move.
    Sync {
        /// Connector name (omit with --all).
        connector: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        stream: Option<String>,
        /// Re-pull records updated at or after this time: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS]`
        /// (UTC+8, the upstreams' clock) or RFC 3339.
        #[arg(long)]
        from: Option<String>,
        /// End of the re-pull window (exclusive; a bare date includes that day). Default: now.
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// Run one sync and exit (the only mode; accepted for clarity in scripts).
        #[arg(long)]
        once: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deliver what the store holds to the upstreams that take it (each push from its cursor
    /// until caught up): every connector (`--all`), one connector, or one push of it.
    Push {
        /// Connector name (omit with --all).
        connector: Option<String>,
        #[arg(long)]
        all: bool,
        /// One push of the connector (`[[pushes]] name`).
        #[arg(long)]
        push: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Legal deadlines of the stored records, evaluated now over the working-day calendar.
    Deadlines {
        /// Comma-separated statuses: pending, due_soon, overdue (also met late), met_on_time,
        /// met_late.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        rule: Option<String>,
        #[arg(long = "type")]
        record_type: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// The service: store writers, scheduled syncs, pushes, the feed relay, and the HTTP API.
    Run,
    /// Run the five upstream simulators alone.
    Simulate {
        #[command(flatten)]
        sim: SimArgs,
        /// Print the simulators' credentials as `export` lines and exit.
        #[arg(long)]
        print_env: bool,
    },
    /// Validate records from a file (JSON array, one JSON object, or one object per line).
    Validate {
        file: PathBuf,
        /// Record type of the national records in the file.
        #[arg(long = "type")]
        record_type: RecordType,
        /// The records are upstream records of this connector: map them first.
        #[arg(long, requires = "stream")]
        connector: Option<String>,
        #[arg(long)]
        stream: Option<String>,
    },
    /// Measure end-to-end throughput, latency and memory.
    Bench(crate::bench::BenchArgs),
    /// Apply store migrations and exit.
    Migrate,
    /// Load the configuration and every connector, report problems, and exit.
    Check,
    /// Find, read, replay and discard failures.
    #[command(subcommand)]
    Failures(Box<crate::ops::commands::FailuresCommand>),
    /// Create, list and revoke API tokens.
    #[command(subcommand)]
    Tokens(crate::ops::commands::TokensCommand),
    /// The audit log of operators' actions, oldest first.
    Audit {
        /// Entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    #[arg(long, default_value_t = 2025)]
    pub seed: u64,
    /// Records per system.
    #[arg(long, default_value_t = 2000)]
    pub records: usize,
    #[arg(long, default_value_t = 0.05)]
    pub invalid_rate: f64,
    /// First of five ports (default: the configured simulator base port, 18081).
    #[arg(long)]
    pub base_port: Option<u16>,
}

impl SimArgs {
    pub fn config(&self, base_port: u16) -> sim::SimConfig {
        sim::SimConfig {
            seed: self.seed,
            records: self.records,
            invalid_rate: self.invalid_rate,
            base_port: self.base_port.unwrap_or(base_port),
            host: std::net::IpAddr::from([127, 0, 0, 1]),
            faults: sim::Faults::default(),
        }
    }
}

/// Sets up logging: `XIEZHI_LOG` (or `RUST_LOG`) filters, `XIEZHI_LOG_FORMAT=json` for services.
pub fn init_tracing(default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("XIEZHI_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if process_env("XIEZHI_LOG_FORMAT").as_deref() == Some("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs a parsed command; the returned code is the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let mut config = Config::load(cli.config.as_deref(), &process_env)?;
    match cli.command {
        Command::Demo { sim, no_serve } => demo(config, sim, no_serve).await,
        Command::Sync {
            connector,
            all,
            stream,
            from,
            to,
            once: _,
            json,
        } => {
            if all == connector.is_some() {
                anyhow::bail!("say either `--all` or a connector name");
            }
            let window = from
                .map(|f| Window::parse(&f, to.as_deref(), Window::now()))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let sel = Selection {
                connector,
                stream,
                window,
            };
            sync(config, sel, json).await
        }
        Command::Push {
            connector,
            all,
            push,
            json,
        } => {
            if all == connector.is_some() {
                anyhow::bail!("say either `--all` or a connector name");
            }
            let sel = Selection {
                connector,
                stream: push,
                ..Default::default()
            };
            push_command(config, sel, json).await
        }
        Command::Deadlines {
            status,
            rule,
            record_type,
            limit,
            json,
        } => {
            let q = crate::api::deadlines::DeadlineQuery {
                status,
                rule,
                record_type,
                limit: Some(limit.to_string()),
            };
            let filter = crate::api::deadlines::filter_of(&q).map_err(anyhow::Error::msg)?;
            let rt = Runtime::build(config).await?;
            let summary = crate::deadlines::report::evaluate(
                rt.store.as_ref(),
                &rt.deadline_rules,
                &rt.calendar,
                &filter,
                crate::deadlines::report::now_local(),
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print_deadlines(&summary);
            }
            Ok(0)
        }
        Command::Run => serve(config).await,
        Command::Simulate {
            print_env: true, ..
        } => {
            for (k, v) in sim::default_credentials() {
                println!("export {k}={v}");
            }
            Ok(0)
        }
        Command::Simulate { sim, .. } => simulate(&config, sim).await,
        Command::Validate {
            file,
            record_type,
            connector,
            stream,
        } => validate(&config, &file, record_type, connector.zip(stream)),
        Command::Bench(args) => crate::bench::run(&mut config, args).await,
        Command::Migrate => {
            let rt = Runtime::build(config).await?;
            println!("store `{}` is migrated", rt.store.kind());
            Ok(0)
        }
        Command::Failures(cmd) => crate::ops::commands::failures(config, *cmd).await,
        Command::Tokens(cmd) => crate::ops::commands::tokens(config, cmd).await,
        Command::Audit { after, limit, json } => {
            crate::ops::commands::audit(config, after, limit, json).await
        }
        Command::Check => {
            let rt = Runtime::build(config).await?;
            for c in &rt.connectors {
                println!(
                    "{}: {} ({} streams) at {}",
                    c.def.file,
                    c.def.name,
                    c.def.streams.len(),
                    c.upstream.base_url
                );
            }
            println!(
                "configuration is valid: store {}, bus {}",
                rt.store.kind(),
                rt.bus.kind()
            );
            Ok(0)
        }
    }
}

async fn simulate(config: &Config, args: SimArgs) -> anyhow::Result<i32> {
    let sims = sim::Simulators::start(args.config(config.sim_base_port)).await?;
    for (name, url) in sims.systems() {
        println!("{name:16} {url}");
    }
    println!("credentials (export these for `xiezhi sync`):");
    for (k, v) in sim::default_credentials() {
        println!("  export {k}={v}");
    }
    println!("ground truth: GET <url>/truth; Ctrl-C stops.");
    shutdown_signal().await;
    sims.shutdown().await;
    Ok(0)
}

/// Every command that starts simulators passes their credentials to the connectors this way.
fn with_sim_credentials(config: &mut Config) {
    for (k, v) in sim::default_credentials() {
        if process_env(&k).is_none() {
            config.extra_env.insert(k, v);
        }
    }
}

async fn demo(mut config: Config, args: SimArgs, no_serve: bool) -> anyhow::Result<i32> {
    if let Some(p) = args.base_port {
        config.sim_base_port = p;
    }
    with_sim_credentials(&mut config);
    if config.database_url.is_none() {
        // A fresh embedded store each time, so the reconciliation speaks of this run only.
        config.data_dir = config.data_dir.join("demo");
        if config.data_dir.exists() {
            std::fs::remove_dir_all(&config.data_dir)
                .with_context(|| format!("clearing {}", config.data_dir.display()))?;
        }
    }
    eprintln!(
        "Starting the five simulators ({} records each, seed {}, {:.0}% invalid)…",
        args.records,
        args.seed,
        args.invalid_rate * 100.0
    );
    let sims = sim::Simulators::start(args.config(config.sim_base_port)).await?;
    let rt = Arc::new(Runtime::build(config).await?);
    let cancel = CancellationToken::new();
    let writers = rt.spawn_writers(&cancel);
    let pullers = rt.pullers(&Selection::default())?;
    let report = sync_with_progress(&rt, &pullers).await?;
    let truths = reconcile::fetch_truth(&rt.base_urls()).await?;
    let rec = reconcile::reconcile(rt.store.as_ref(), &truths).await?;
    print_summary(&report, &rec);
    // Deliver to the upstreams that take data back (双公示, 双随机 results, tiers, 12345
    // outcomes) and compare with what they accepted.
    let pushers = rt.pushers(&Selection::default())?;
    let pushed = rt.push_once(&pushers).await;
    println!();
    print_pushes(&pushed);
    let delivered = reconcile::reconcile_pushes(rt.store.as_ref(), &pushers).await?;
    for d in &delivered {
        println!(
            "{:<44} {:>9} stored {:>9} accepted{}",
            d.target,
            d.stored,
            d.accepted,
            if d.ok() {
                String::new()
            } else {
                format!(
                    "  missing {}: {}; unexpected {}: {}",
                    d.missing_count,
                    d.missing.join(", "),
                    d.unexpected_count,
                    d.unexpected.join(", ")
                )
            }
        );
    }
    let delivered_ok = delivered.iter().all(|d| d.ok());
    println!(
        "{}",
        if delivered_ok {
            "DELIVERED: every stored penalty and licence accepted by the credit platform, every inspection by Internet+Supervision, every random-inspection result by the credit platform, every credit tier by double-random, and the outcome of every 12345 ticket that became a case by the hotline."
        } else {
            "NOT DELIVERED: see the rows above."
        }
    );
    let ok = rec.ok() && report.complete() && delivered_ok;
    if no_serve {
        cancel.cancel();
        for w in writers {
            w.await??;
        }
        sims.shutdown().await;
        return Ok(if ok { 0 } else { 1 });
    }
    let listener = tokio::net::TcpListener::bind(rt.config.http_addr)
        .await
        .with_context(|| format!("binding {}", rt.config.http_addr))?;
    let addr = listener.local_addr()?;
    // The operators' routes need a token: the demo makes one for whoever runs it.
    let token_name = format!("demo-admin-{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
    let (token, _) = crate::ops::tokens::create(
        rt.store.as_ref(),
        &token_name,
        crate::store::ops::Role::Admin,
    )
    .await?;
    eprintln!(
        "\nAPI at http://{addr}  —  try:\n  export XIEZHI_TOKEN={token}\n  curl -H \"Authorization: Bearer $XIEZHI_TOKEN\" http://{addr}/v1/stats\n  curl -H \"Authorization: Bearer $XIEZHI_TOKEN\" 'http://{addr}/v1/failures/stats'\n  curl -H \"Authorization: Bearer $XIEZHI_TOKEN\" 'http://{addr}/v1/failures?limit=5'\nCtrl-C stops."
    );
    let api = tokio::spawn(api::serve(
        ApiState::new(rt.clone()),
        listener,
        cancel.clone(),
    ));
    shutdown_signal().await;
    cancel.cancel();
    api.await??;
    sims.shutdown().await;
    Ok(if ok { 0 } else { 1 })
}

async fn push_command(config: Config, sel: Selection, json: bool) -> anyhow::Result<i32> {
    let rt = Runtime::build(config).await?;
    let pushers = rt.pushers(&sel)?;
    let reports = rt.push_once(&pushers).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print_pushes(&reports);
    }
    Ok(if reports.iter().all(|r| r.error.is_none()) {
        0
    } else {
        1
    })
}

fn print_deadlines(s: &crate::deadlines::report::DeadlineSummary) {
    println!("{:<28} status counts", "rule");
    for (rule, counts) in &s.counts {
        let c: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("{rule:<28} {}", c.join(", "));
    }
    println!();
    for r in &s.rows {
        let st = serde_json::to_value(r.state.status).unwrap_or_default();
        println!(
            "{:<24} {:<18} {:<44} start {} due {}{}  {}{}{}",
            r.state.rule,
            r.record_type,
            r.key,
            r.state.start,
            r.state.due,
            if r.state.provisional {
                " (provisional)"
            } else {
                ""
            },
            st.as_str().unwrap_or_default(),
            r.state
                .days_late
                .map(|d| format!(" by {d} {:?} days", r.state.unit).to_lowercase())
                .unwrap_or_default(),
            r.evidence
                .as_ref()
                .map(|e| format!("  (delivered to {} at {})", e.target, e.sent_at))
                .unwrap_or_default()
        );
    }
}

fn print_pushes(reports: &[crate::connectors::push::PushReport]) {
    println!(
        "{:<16} {:<27} {:<17} {:>8} {:>9} {:>8}  status",
        "target", "push", "type", "sent", "accepted", "refused"
    );
    for r in reports {
        println!(
            "{:<16} {:<27} {:<17} {:>8} {:>9} {:>8}  {}",
            r.connector,
            r.push,
            r.record_type,
            r.sent,
            r.accepted,
            r.rejected,
            r.error.as_deref().unwrap_or("caught up")
        );
    }
}

async fn sync(config: Config, sel: Selection, json: bool) -> anyhow::Result<i32> {
    let rt = Runtime::build(config).await?;
    // SIGTERM or Ctrl-C: finish the pages in hand, checkpoint, report, exit.
    let stop = rt.stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::warn!("Stopping the sync: in-flight pages are published and checkpointed first.");
        stop.cancel();
    });
    let cancel = CancellationToken::new();
    let writers = rt.spawn_writers(&cancel);
    let pullers = rt.pullers(&sel)?;
    let report = sync_with_progress(&rt, &pullers).await?;
    if let Some(w) = &sel.window {
        // A re-pull changes what operators see (failures resolve): it goes in their log.
        rt.store
            .append_audit(&crate::store::ops::NewAudit {
                actor: crate::ops::commands::cli_actor(),
                action: "sync.window".into(),
                target: None,
                filter: serde_json::json!({"connector": sel.connector, "stream": sel.stream, "from": w.from, "to": w.to}),
                count: report.published,
                outcome: serde_json::json!({"run": report.run_id, "complete": report.complete(), "resolved": report.resolved, "failed": report.failed}),
            })
            .await?;
    }
    cancel.cancel();
    for w in writers {
        w.await??;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_streams(&report);
    }
    Ok(if report.complete() { 0 } else { 1 })
}

async fn sync_with_progress(rt: &Runtime, pullers: &[StreamPuller]) -> anyhow::Result<SyncReport> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let started = std::time::Instant::now();
    let tick = |ps: &[StreamPuller]| {
        let (mut f, mut p, mut x, mut done) = (0u64, 0u64, 0u64, 0usize);
        for s in ps {
            f += s.counters.fetched.load(Ordering::Relaxed);
            p += s.counters.published.load(Ordering::Relaxed);
            x += s.counters.failed.load(Ordering::Relaxed);
            done += usize::from(s.counters.pages.load(Ordering::Relaxed) > 0);
        }
        let rate = f as f64 / started.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!(
            "fetched {f}  stored {p}  failed {x}  ({rate:.0} records/s, {done}/{} streams started)",
            ps.len()
        ));
        bar.tick();
    };
    let report = rt.sync_once(pullers, tick).await;
    bar.finish_and_clear();
    report
}

fn print_streams(report: &SyncReport) {
    println!(
        "{:<16} {:<22} {:<18} {:>9} {:>9} {:>8} {:>7}  status",
        "source", "stream", "type", "fetched", "published", "failed", "deletes"
    );
    for s in &report.streams {
        println!(
            "{:<16} {:<22} {:<18} {:>9} {:>9} {:>8} {:>7}  {}",
            s.connector,
            s.stream,
            s.record_type,
            s.fetched,
            s.published,
            s.failed,
            s.deletes,
            s.error.as_deref().unwrap_or("complete")
        );
    }
    for s in report.streams.iter().filter(|s| s.window.is_some()) {
        println!(
            "{}/{}: re-pulled window {}; {} fetched records were updated outside it",
            s.connector,
            s.stream,
            s.window.as_deref().unwrap_or_default(),
            s.outside_window
        );
    }
    if report.resolved > 0 {
        println!(
            "{} earlier failures resolved: the upstream's corrected records passed and were stored",
            report.resolved
        );
    }
    println!(
        "run {}: published {} (ingested {}), failed {}, in {:.1}s",
        report.run_id, report.published, report.ingested, report.failed, report.seconds
    );
}

fn print_summary(report: &SyncReport, rec: &Reconciliation) {
    println!();
    print_streams(report);
    println!("\nReconciliation against the simulators' truth");
    println!(
        "{:<18} {:>9} {:>9} {:>8} {:>10}",
        "type", "expected", "stored", "missing", "unexpected"
    );
    for (t, r) in &rec.types {
        println!(
            "{:<18} {:>9} {:>9} {:>8} {:>10}",
            t, r.expected, r.stored, r.missing_count, r.unexpected_count
        );
        for k in &r.missing {
            println!("    missing: {k}");
        }
        for k in &r.unexpected {
            println!("    unexpected: {k}");
        }
    }
    println!(
        "\n{:<18} {:>9} {:>9} {:>12}",
        "source", "valid", "invalid", "in failures"
    );
    for (s, r) in &rec.sources {
        println!(
            "{:<18} {:>9} {:>9} {:>12}",
            s, r.valid, r.invalid, r.invalid_in_failures
        );
        for id in &r.invalid_missing {
            println!("    invalid but not in failures: {id}");
        }
    }
    println!(
        "\n{}",
        if rec.ok() && report.complete() {
            "RECONCILED: every valid record stored once, every invalid one in failures."
        } else {
            "NOT RECONCILED: see the rows above."
        }
    );
}

async fn serve(config: Config) -> anyhow::Result<i32> {
    let rt = Arc::new(Runtime::build(config).await?);
    let cancel = CancellationToken::new();
    let writers = rt.spawn_writers(&cancel);
    let listener = tokio::net::TcpListener::bind(rt.config.http_addr)
        .await
        .with_context(|| format!("binding {}", rt.config.http_addr))?;
    let api = tokio::spawn(api::serve(
        ApiState::new(rt.clone()),
        listener,
        cancel.clone(),
    ));
    let scheduler = tokio::spawn(crate::schedule::run(rt.clone()));
    let relay = rt.spawn_relay(&cancel);
    let pushes = rt.spawn_pushes(&rt.stop);
    let alerts = tokio::spawn(crate::deadlines::alerts::run(
        rt.clone(),
        std::time::Duration::from_secs(rt.config.deadlines.check_interval_secs.max(10)),
        cancel.clone(),
    ));
    shutdown_signal().await;
    // Intake stops first: syncs fetch no further page but publish, confirm and checkpoint the
    // pages they hold, and wait for the store writers (still running) to store them.
    let grace = std::time::Duration::from_secs(rt.config.pipeline.shutdown_grace_secs);
    tracing::info!(
        grace_secs = grace.as_secs(),
        "Shutting down: no new pulls; in-flight pages are published, stored and checkpointed."
    );
    rt.stop.cancel();
    let drained = tokio::time::timeout(grace, async {
        let _ = scheduler.await;
        let _ = pushes.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "In-flight syncs did not finish within the grace period; they resume from their checkpoints."
        );
    }
    cancel.cancel();
    if let Some(r) = relay {
        r.await?;
    }
    alerts.await?;
    for w in writers {
        w.await??;
    }
    api.await??;
    Ok(0)
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `xiezhi validate`: one line per problem, naming file, line, record, field and schema path.
fn validate(
    config: &Config,
    file: &Path,
    t: RecordType,
    upstream: Option<(String, String)>,
) -> anyhow::Result<i32> {
    let schema = Arc::new(SchemaRegistry::embedded()?);
    let shown = file.display().to_string();
    let normalizer = match &upstream {
        Some((c, s)) => {
            // Validating talks to no upstream, so an unset secret is filled with a placeholder
            // rather than refused.
            let env = config.connector_env();
            let env = move |k: &str| {
                env(k).or_else(|| {
                    (k.ends_with("_TOKEN") || k.ends_with("_KEY") || k.ends_with("_SECRET"))
                        .then(|| "unused".to_owned())
                })
            };
            let conns = crate::connectors::load_all(&config.connectors_dir, schema.clone(), &env)?;
            let conn = conns
                .into_iter()
                .find(|x| x.def.name == *c)
                .with_context(|| format!("no connector `{c}`"))?;
            let idx = conn
                .def
                .streams
                .iter()
                .position(|x| x.name == *s)
                .with_context(|| format!("connector `{c}` has no stream `{s}`"))?;
            Some(conn.normalizers[idx].clone())
        }
        None => None,
    };
    let records = read_records(file)?;
    let (mut ok, mut bad) = (0usize, 0usize);
    for (i, (line, value, raw)) in records.into_iter().enumerate() {
        let errors = match &normalizer {
            Some(n) => {
                let (connector, stream) = upstream.clone().unwrap_or_default();
                let lineage = crate::record::Lineage {
                    connector,
                    stream,
                    page: shown.clone(),
                    ..Default::default()
                };
                match n.normalize(
                    crate::normalize::RawRecord {
                        value,
                        raw,
                        context: None,
                    },
                    &lineage,
                ) {
                    crate::normalize::Outcome::Event(_) => Vec::new(),
                    crate::normalize::Outcome::Failure(f) => f.errors,
                }
            }
            None => schema.validate(t, &value),
        };
        if errors.is_empty() {
            ok += 1;
            continue;
        }
        bad += 1;
        for e in errors {
            let sp = if e.schema_path.is_empty() {
                String::new()
            } else {
                format!(" (schema {})", e.schema_path)
            };
            println!(
                "{shown}:{line}: record {}: {}{sp}: {} {}",
                i + 1,
                if e.path.is_empty() { "/" } else { &e.path },
                e.code,
                e.message
            );
        }
    }
    println!("{ok} valid, {bad} invalid {t} record(s) in {shown}");
    Ok(if bad == 0 { 0 } else { 1 })
}

/// Reads a JSON array, a single object, or JSON lines; each record with its line number.
fn read_records(file: &Path) -> anyhow::Result<Vec<(usize, serde_json::Value, String)>> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {shown}"))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('[')
        || (trimmed.starts_with('{') && serde_json::from_str::<serde_json::Value>(&text).is_ok())
    {
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{shown}:{}:{}: not JSON: {e}", e.line(), e.column()))?;
        let items = match v {
            serde_json::Value::Array(a) => a,
            other => vec![other],
        };
        // Line numbers of array elements are not tracked by serde_json; report the record index.
        return Ok(items
            .into_iter()
            .map(|v| (1, v.clone(), v.to_string()))
            .collect());
    }
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(text.as_bytes()).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("{shown}:{}:{}: not JSON: {e}", n + 1, e.column()))?;
        out.push((n + 1, v, line));
    }
    Ok(out)
}
