//! The binary as operators run it: the demo on a bare machine, and `sync --all --once` killed
//! with SIGKILL mid-way and run again.

use std::process::Stdio;
use std::time::Duration;

use crate::helpers::*;

fn free_base_port() -> u16 {
    // Five consecutive free ports: try bases until all bind.
    for base in (20_000u16..60_000).step_by(97) {
        let all = (0..5).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if all {
            return base;
        }
    }
    panic!("no five consecutive free ports");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_on_a_bare_machine_and_reconciles() {
    // An empty directory: no connectors/, no config, no services configured.
    let dir = std::env::temp_dir().join(format!("xiezhi-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let port = free_base_port();
    let out = xiezhi()
        .current_dir(&dir)
        .args([
            "demo",
            "--no-serve",
            "--records",
            "300",
            "--base-port",
            &port.to_string(),
        ])
        .output()
        .await
        .expect("demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("RECONCILED: every valid record stored once"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "DELIVERED: every stored penalty and licence accepted by the credit platform"
        ),
        "{stdout}"
    );
    // The pushes added since are reconciled too, each on its own row.
    for target in [
        "credit-platform/publish-spot-check-results",
        "double-random/credit-tiers",
        "hotline-12345/workorder-outcomes",
    ] {
        assert!(stdout.contains(target), "{target}: {stdout}");
    }
    assert!(
        stdout.contains("the outcome of every 12345 ticket that became a case by the hotline"),
        "{stdout}"
    );
    assert!(
        dir.join("data/demo/xiezhi.sqlite").exists(),
        "the embedded store file is missing"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_survives_sigkill_mid_way_on_rabbitmq_and_postgres() {
    let _broker = broker_lock().read().await;
    let sims = spawn_sims(6000, 0.05, 21).await;
    let db = TestDb::new().await;
    let config = broker_config(&sims, &db);
    let file = config_file(&config);
    let env = sim_env(&sims);

    let mut child = xiezhi()
        .args([
            "--config",
            file.to_str().expect("utf-8 path"),
            "sync",
            "--all",
            "--once",
        ])
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sync starts");
    for _ in 0..600 {
        if db.count("SELECT count(*) FROM records").await > 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        child.try_wait().expect("status").is_none(),
        "the sync finished before it could be killed; make it bigger"
    );
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("killed");
    let partial = db.count("SELECT count(*) FROM records").await;

    let out = xiezhi()
        .args([
            "--config",
            file.to_str().expect("utf-8 path"),
            "sync",
            "--all",
            "--once",
        ])
        .envs(&env)
        .output()
        .await
        .expect("second sync runs");
    assert!(
        out.status.success(),
        "second sync failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let app = Running::start(config).await;
    let rec = app.reconcile().await;
    assert_reconciled(&rec);
    let stored: usize = rec.types.values().map(|t| t.stored).sum();
    assert!(
        partial > 0 && (partial as usize) < stored,
        "the kill should have left a partial store ({partial} of {stored})"
    );
    db.assert_no_duplicate_versions().await;
    app.stop().await;
    sims.shutdown().await;
    db.drop_db().await;
    std::fs::remove_file(file).ok();
}

#[test]
fn validate_names_file_line_record_field_and_code() {
    let example = std::fs::read_to_string(repo_dir().join("schemas/v1/examples/penalty.json"))
        .expect("example");
    let good: serde_json::Value = serde_json::from_str(&example).expect("json");
    let mut bad = good.clone();
    // Break the agency's check character and drop a required field.
    let uscc = bad["agency"]["uscc"].as_str().expect("uscc").to_owned();
    let last = if uscc.ends_with('0') { '1' } else { '0' };
    bad["agency"]["uscc"] = serde_json::Value::String(format!("{}{last}", &uscc[..17]));
    bad.as_object_mut().expect("object").remove("facts");
    let file =
        std::env::temp_dir().join(format!("xiezhi-validate-{}.ndjson", uuid::Uuid::new_v4()));
    std::fs::write(&file, format!("{good}\n\n{bad}\n")).expect("write");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .args([
            "validate",
            file.to_str().expect("utf-8"),
            "--type",
            "penalty",
        ])
        .output()
        .expect("validate runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let at = format!("{}:3: record 2:", file.display());
    assert!(
        stdout.lines().any(|l| l.starts_with(&at)
            && l.contains("/agency/uscc")
            && l.contains("USCC_CHECK_DIGIT")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&at) && l.contains("/facts") && l.contains("SCHEMA_REQUIRED")),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 valid, 1 invalid penalty record(s)"),
        "{stdout}"
    );
    std::fs::remove_file(file).ok();
}
