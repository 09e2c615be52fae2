//! Production (issue 5): two `xiezhi run` instances share a sync and one is killed mid-way;
//! RabbitMQ and then PostgreSQL restart during a sync; `/metrics` after a sync; the Grafana
//! dashboard asks only for families xiezhi exports.

use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::helpers::*;

/// Connector files whose schedules never come round during a test: each stream syncs once at
/// start (never synced before), so every sync in the store is that occurrence's.
fn connectors_synced_once() -> std::path::PathBuf {
    let dir = copy_connectors();
    for entry in std::fs::read_dir(&dir).expect("connector dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("schedule = ") {
                    "schedule = \"0 0 0 1 1 *\"".to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&path, text + "\n").expect("write");
    }
    dir
}

fn stream_count() -> i64 {
    let defs = xiezhi::connectors::definition::load_dir(&repo_dir().join("connectors"))
        .expect("connectors load");
    defs.iter().map(|d| d.streams.len() as i64).sum()
}

/// A count that is `None` while the database is away (restarting) or the tables are missing.
async fn try_count(url: &str, sql: &str) -> Option<i64> {
    let mut c = sqlx::PgConnection::connect(url).await.ok()?;
    sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut c)
        .await
        .ok()
        .map(|r| r.0)
}

/// Records stored so far; 0 while the database is away (restarting).
async fn stored_records(db: &TestDb) -> i64 {
    try_count(&db.url, "SELECT count(*) FROM records")
        .await
        .unwrap_or(0)
}

async fn wait_for(what: &str, limit: Duration, mut ok: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {}s waiting for {what}", limit.as_secs());
}

fn spawn_instance(
    file: &std::path::Path,
    env: &std::collections::BTreeMap<String, String>,
    name: &str,
) -> tokio::process::Child {
    xiezhi()
        .args(["--config", file.to_str().expect("utf-8 path"), "run"])
        .envs(env)
        .env("XIEZHI_INSTANCE", name)
        .env("XIEZHI_HTTP_ADDR", "127.0.0.1:0")
        .env("XIEZHI_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("instance starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_every_stream_and_one_killed_mid_sync_hands_its_work_over() {
    let _broker = broker_lock().read().await;
    let sims = spawn_sims(6000, 0.05, 31).await;
    let db = TestDb::new().await;
    let mut config = broker_config(&sims, &db);
    config.connectors_dir = connectors_synced_once();
    let file = config_file(&config);
    // Short leases, so a dead holder's streams are taken over within seconds.
    let mut text = std::fs::read_to_string(&file).expect("config");
    text.push_str("[pipeline]\nlease_ttl_secs = 3\n");
    std::fs::write(&file, text).expect("config");
    let env = sim_env(&sims);
    let streams = stream_count();

    let mut a = spawn_instance(&file, &env, "a");
    let mut b = spawn_instance(&file, &env, "b");
    // Both at work: each holds some streams' leases, and records are arriving.
    let mut held_by_a = Vec::new();
    wait_for(
        "both instances to hold leases",
        Duration::from_secs(120),
        async || {
            let stored = try_count(&db.url, "SELECT count(*) FROM records")
                .await
                .unwrap_or(0);
            let a_leases = try_count(&db.url, "SELECT count(*) FROM leases WHERE holder = 'a'")
                .await
                .unwrap_or(0);
            let b_leases = try_count(&db.url, "SELECT count(*) FROM leases WHERE holder = 'b'")
                .await
                .unwrap_or(0);
            stored > 1000 && a_leases > 0 && b_leases > 0
        },
    )
    .await;
    {
        let mut c = sqlx::PgConnection::connect(&db.url).await.expect("connect");
        let rows: Vec<(String,)> = sqlx::query_as("SELECT name FROM leases WHERE holder = 'a'")
            .fetch_all(&mut c)
            .await
            .expect("leases");
        held_by_a.extend(rows.into_iter().map(|r| r.0));
    }
    assert!(
        a.try_wait().expect("status").is_none(),
        "instance a ended early"
    );
    a.start_kill().expect("SIGKILL");
    a.wait().await.expect("killed");

    // b finishes every stream: its own, and a's once their leases expired.
    wait_for(
        "every stream's occurrence to finish",
        Duration::from_secs(300),
        async || try_count(&db.url, "SELECT count(*) FROM schedule_state").await == Some(streams),
    )
    .await;
    let mut c = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let finished: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT connector, stream, holder, outcome FROM schedule_state ORDER BY 1, 2",
    )
    .fetch_all(&mut c)
    .await
    .expect("schedule");
    for (connector, stream, holder, outcome) in &finished {
        assert_eq!(outcome, "ok", "{connector}/{stream} by {holder}");
        if held_by_a.contains(&format!("pull:{connector}/{stream}")) {
            assert_eq!(
                holder, "b",
                "{connector}/{stream} was a's when it died: b must finish it"
            );
        }
    }
    // No duplicate fetches while both ran: a stream a was not holding when it died was synced
    // once, by one instance. A stream a held was finished by b from a's checkpoint (a may
    // have fetched it to the end and died before recording the occurrence: then b's sync
    // starts at the end). Every window adds up.
    let windows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT connector, stream, holder, gaps FROM sync_reconciliations ORDER BY 1, 2, 3",
    )
    .fetch_all(&mut c)
    .await
    .expect("reconciliations");
    for (connector, stream, _, _) in &finished {
        let rows: Vec<&str> = windows
            .iter()
            .filter(|w| &w.0 == connector && &w.1 == stream)
            .map(|w| w.2.as_str())
            .collect();
        if held_by_a.contains(&format!("pull:{connector}/{stream}")) {
            assert!(
                rows == ["b"] || rows == ["a", "b"],
                "{connector}/{stream} (a's at its death) synced by {rows:?}"
            );
        } else {
            assert_eq!(rows.len(), 1, "{connector}/{stream} synced by {rows:?}");
        }
    }
    for (connector, stream, holder, gaps) in &windows {
        assert!(
            gaps.is_empty(),
            "{connector}/{stream} (by {holder}): {gaps}"
        );
    }
    // b drains and exits cleanly on SIGTERM.
    let pid = b.id().expect("pid") as i32;
    // SAFETY: kill(2) with a child's pid and a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(60), b.wait())
        .await
        .expect("b exits within a minute of SIGTERM")
        .expect("status");
    assert!(status.success(), "b exited with {status:?} on SIGTERM");
    // Its stream, push and relay leases given back, none left for a successor to wait out.
    let taken: Vec<(String,)> = sqlx::query_as("SELECT name FROM leases")
        .fetch_all(&mut c)
        .await
        .expect("leases");
    assert!(taken.is_empty(), "leases left behind: {taken:?}");

    let app = Running::start(config).await;
    assert_reconciled(&app.reconcile().await);
    db.assert_no_duplicate_versions().await;
    app.stop().await;
    sims.shutdown().await;
    db.drop_db().await;
    std::fs::remove_file(file).ok();
}

fn restart_postgres() {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("a PostgreSQL cluster");
    service(
        "pg_ctlcluster",
        &["--skip-systemctl-redirect", &version, "main", "restart"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_then_postgres_restarting_mid_sync_leave_the_same_store() {
    // Exclusive: restarting the services would break every other test's connections.
    let _services = broker_lock().write().await;
    let sims = spawn_sims(8000, 0.05, 37).await;
    let db = TestDb::new().await;
    let app = Running::start(broker_config(&sims, &db)).await;
    let sync = app.spawn_sync();
    let stored = async || stored_records(&db).await;
    wait_for("records to flow", Duration::from_secs(60), async || {
        stored().await > 500
    })
    .await;
    assert!(
        !sync.is_finished(),
        "the sync finished before the restarts; make it bigger"
    );
    tokio::task::spawn_blocking(|| {
        service("rabbitmqctl", &["stop_app"]);
        std::thread::sleep(Duration::from_secs(2));
        service("rabbitmqctl", &["start_app"]);
    })
    .await
    .expect("broker restart");
    let before = stored().await;
    wait_for(
        "records to flow again",
        Duration::from_secs(60),
        async || stored().await > before + 500,
    )
    .await;
    assert!(
        !sync.is_finished(),
        "the sync finished before the database restart; make it bigger"
    );
    tokio::task::spawn_blocking(restart_postgres)
        .await
        .expect("database restart");
    let report = tokio::time::timeout(Duration::from_secs(300), sync)
        .await
        .expect("the sync ends")
        .expect("sync task");
    for s in &report.streams {
        assert!(
            s.error.is_none(),
            "stream {}/{} failed across the restarts: {:?}",
            s.connector,
            s.stream,
            s.error
        );
    }
    assert!(report.complete(), "{report:?}");
    assert_reconciled(&app.reconcile().await);
    db.assert_no_duplicate_versions().await;
    app.stop().await;
    sims.shutdown().await;
    db.drop_db().await;
}

/// The `xiezhi_…` family names a PromQL expression uses (histogram series folded).
fn families_in(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(at) = expr[i..].find("xiezhi_") {
        let start = i + at;
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        let name = &expr[start..end];
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|n| n.ends_with("_seconds")))
            .unwrap_or(name);
        out.push(name.to_owned());
        i = end;
    }
    out
}

#[test]
fn the_grafana_dashboard_asks_only_for_exported_families() {
    let text = std::fs::read_to_string(repo_dir().join("deploy/grafana/xiezhi.json"))
        .expect("deploy/grafana/xiezhi.json");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut exprs = Vec::new();
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("expr" | "query", serde_json::Value::String(s)) => out.push(s.clone()),
                        _ => walk(x, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&dash, &mut exprs);
    assert!(exprs.len() > 10, "the dashboard has almost no queries");
    let exported: Vec<&str> = xiezhi::telemetry::FAMILIES.iter().map(|f| f.0).collect();
    let mut used = std::collections::BTreeSet::new();
    for e in &exprs {
        for f in families_in(e) {
            assert!(
                exported.contains(&f.as_str()),
                "the dashboard asks for {f}, which xiezhi does not export: {e}"
            );
            used.insert(f);
        }
    }
    for f in &exported {
        assert!(used.contains(*f), "no dashboard panel shows {f}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_syncs_and_reconciliations_are_served_after_a_sync() {
    let sims = spawn_sims(300, 0.1, 41).await;
    let app = Running::start(embedded_config(&sims)).await;
    app.sync_all().await;
    let api = spawn_app(&app).await;
    let http = reqwest::Client::new();

    let metrics = http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(metrics.status(), 200, "/metrics needs no token");
    assert!(
        metrics
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain")),
        "{:?}",
        metrics.headers()
    );
    let text = metrics.text().await.expect("body");
    let value = |series: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    for series in [
        "xiezhi_records_fetched_total{connector=\"provincial\"",
        "xiezhi_records_normalised_total{connector=\"credit-platform\"",
        "xiezhi_records_routed_total{connector=\"hotline-12345\"",
        "xiezhi_records_stored_total{",
        "xiezhi_records_failed_total{",
        "xiezhi_upstream_requests_total{connector=\"internet-plus\"",
        "xiezhi_upstream_request_duration_seconds_count{connector=\"double-random\"",
        "xiezhi_sync_duration_seconds_count{",
        "xiezhi_syncs_total{",
        "xiezhi_failures_open{",
        "xiezhi_deadlines{",
        "xiezhi_build_info{",
    ] {
        assert!(
            value(series) > 0.0,
            "{series} is missing or zero in /metrics:\n{text}"
        );
    }
    for family in [
        "xiezhi_checkpoint_age_seconds{",
        "xiezhi_bus_queue_depth{queue=",
        "xiezhi_store_apply_duration_seconds_bucket{",
    ] {
        assert!(
            text.contains(family),
            "{family} is missing from /metrics:\n{text}"
        );
    }

    // The operators' views of the same run: each stream's window reconciles with what the
    // upstream reported, and the schedule shows every stream.
    let (token, _) = xiezhi::ops::tokens::create(
        app.rt.store.as_ref(),
        "viewer-prod",
        xiezhi::store::ops::Role::Viewer,
    )
    .await
    .expect("token");
    let get = |path: &str| {
        http.get(format!("{}{path}", api.base))
            .bearer_auth(&token)
            .send()
    };
    let rec: serde_json::Value = get("/v1/reconciliations?limit=100")
        .await
        .expect("reconciliations")
        .json()
        .await
        .expect("json");
    let rows = rec["reconciliations"].as_array().expect("rows");
    assert!(rows.len() as i64 >= stream_count(), "{rec}");
    let provincial: Vec<_> = rows
        .iter()
        .filter(|r| r["connector"] == "provincial")
        .collect();
    assert!(!provincial.is_empty());
    for r in &provincial {
        assert!(
            r["upstream_total"].as_i64().is_some(),
            "provincial reports totals: {r}"
        );
        assert_eq!(r["expected"], r["fetched"], "{r}");
        assert_eq!(r["gaps"], "", "{r}");
    }
    let gaps: serde_json::Value = get("/v1/reconciliations?gaps=true")
        .await
        .expect("gaps")
        .json()
        .await
        .expect("json");
    assert_eq!(gaps["reconciliations"], serde_json::json!([]), "{gaps}");
    let bad = get("/v1/reconciliations?limit=0").await.expect("bad limit");
    assert_eq!(bad.status(), 400);
    let syncs: serde_json::Value = get("/v1/syncs")
        .await
        .expect("syncs")
        .json()
        .await
        .expect("json");
    assert_eq!(
        syncs["schedules"].as_array().map(Vec::len),
        Some(stream_count() as usize),
        "{syncs}"
    );
    // A viewer may look but not start a sync.
    let refused = http
        .post(format!("{}/v1/syncs", api.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"connector": "provincial"}))
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 403);

    // An operator starts a backfill of one stream over the API and follows it to the end.
    let (op, _) = xiezhi::ops::tokens::create(
        app.rt.store.as_ref(),
        "operator-prod",
        xiezhi::store::ops::Role::Operator,
    )
    .await
    .expect("token");
    let started = http
        .post(format!("{}/v1/syncs", api.base))
        .bearer_auth(&op)
        .json(&serde_json::json!({"connector": "provincial", "stream": "penalties", "from": "2000-01-01"}))
        .send()
        .await
        .expect("post");
    assert_eq!(started.status(), 202);
    let started: serde_json::Value = started.json().await.expect("json");
    let href = started["href"].as_str().expect("href").to_owned();
    let mut job = serde_json::Value::Null;
    wait_for(
        "the backfill job to finish",
        Duration::from_secs(60),
        async || {
            job = get(&href).await.expect("job").json().await.expect("json");
            job["state"] != "running"
        },
    )
    .await;
    assert_eq!(job["state"], "finished", "{job}");
    assert!(job["window"].as_str().is_some(), "{job}");
    assert!(job["fetched"].as_u64().unwrap_or(0) > 0, "{job}");
    assert_eq!(job["eta_seconds"], 0.0, "{job}");
    let unknown = get("/v1/syncs/nope").await.expect("unknown");
    assert_eq!(unknown.status(), 404);

    api.cancel.cancel();
    app.stop().await;
    sims.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_refuses_writes_stops_intake_and_drops_nothing() {
    let _broker = broker_lock().read().await;
    let sims = spawn_sims(6000, 0.05, 43).await;
    let db = TestDb::new().await;
    let app = Running::start(broker_config(&sims, &db)).await;
    let sync = app.spawn_sync();
    let stored = async || stored_records(&db).await;
    wait_for("records to flow", Duration::from_secs(60), async || {
        stored().await > 500
    })
    .await;
    // Read-only from now on, for every connection (the open ones are cut so they reconnect).
    let mut admin = sqlx::PgConnection::connect(PG_ADMIN).await.expect("admin");
    let set = |on: bool| {
        format!(
            "ALTER DATABASE {} {}",
            db.name,
            if on {
                "SET default_transaction_read_only = on"
            } else {
                "RESET default_transaction_read_only"
            }
        )
    };
    let cut = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}'",
        db.name
    );
    for sql in [set(true), cut.clone()] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .expect("read-only");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let frozen = stored().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        stored().await,
        frozen,
        "records were stored while the database was read-only"
    );
    assert!(
        !sync.is_finished(),
        "the sync ended while the database refused writes"
    );
    assert_eq!(
        try_count(
            &db.url,
            "SELECT count(*) FROM failures WHERE stage = 'store'"
        )
        .await,
        Some(0),
        "a refused write was treated as bad data"
    );
    for sql in [set(false), cut] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .expect("writable");
    }
    let report = tokio::time::timeout(Duration::from_secs(300), sync)
        .await
        .expect("the sync ends once the database takes writes")
        .expect("sync task");
    assert!(report.complete(), "{report:?}");
    assert_reconciled(&app.reconcile().await);
    app.stop().await;
    sims.shutdown().await;
    db.drop_db().await;
}
