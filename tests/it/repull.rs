//! Re-pulling a window: the upstream corrects broken records in place (their update stamps do not
//! change), so the live incremental sync never sees the fix; `xiezhi sync C --stream S --from T
//! --to T` re-pulls exactly that window, stores the corrected records, resolves their failures,
//! and leaves the live checkpoint where it was.

use chrono::{Duration, NaiveDateTime};

use crate::helpers::*;
use xiezhi::connectors::window::Window;
use xiezhi::pipeline::Selection;
use xiezhi::store::{FailureFilter, FailureRow, FailureStatus};

async fn repair(sims: &xiezhi::sim::Simulators, system: &str, body: serde_json::Value) -> u16 {
    let url = format!("{}/_admin/repair", sims.url(system).expect("system"));
    reqwest::Client::new()
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect("repair")
        .status()
        .as_u16()
}

async fn open_failures(app: &Running, connector: &str, stream: &str) -> Vec<FailureRow> {
    app.rt
        .store
        .list_failures(&FailureFilter {
            connector: Some(connector.into()),
            stream: Some(stream.into()),
            status: vec![FailureStatus::Open],
            limit: 10_000,
            ..Default::default()
        })
        .await
        .expect("failures")
}

/// The update stamp in a failure's raw provincial record.
fn update_time(f: &FailureRow) -> NaiveDateTime {
    let raw: serde_json::Value = serde_json::from_str(&f.raw).expect("raw JSON");
    let t = raw["updateTime"].as_str().expect("updateTime");
    NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").expect("provincial stamp")
}

async fn window_sync(app: &Running, connector: &str, stream: &str, from: &str, to: &str) {
    let window = Window::parse(from, Some(to), Window::now()).expect("window");
    let pullers = app
        .rt
        .pullers(&Selection {
            connector: Some(connector.into()),
            stream: Some(stream.into()),
            window: Some(window),
        })
        .expect("pullers");
    let report = app.rt.sync_once(&pullers, |_| {}).await.expect("re-pull");
    assert!(report.complete(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_re_pull_brings_upstream_fixes_without_moving_the_live_checkpoint() {
    let sims = spawn_sims(1500, 0.1, 57).await;
    let mut config = embedded_config(&sims);
    config.connectors_dir = copy_connectors();
    // Quick to give up, so a failed page is a pull failure within the test's time.
    edit_file(
        &config.connectors_dir.join("hotline-12345.toml"),
        "max_retries = 6",
        "max_retries = 1",
    );
    let app = Running::start(config.clone()).await;
    pull_failures_resolve_once_the_stream_syncs_past_them(&app, &sims).await;
    app.sync_all().await;
    let mut broken = open_failures(&app, "provincial", "penalties").await;
    assert!(
        broken.len() >= 3,
        "too few broken penalties: {}",
        broken.len()
    );
    broken.sort_by_key(update_time);

    // The province fixes its broken penalties in place; the live sync does not see it.
    assert_eq!(
        repair(
            &sims,
            "provincial",
            serde_json::json!({"streams": ["nope"]})
        )
        .await,
        400
    );
    assert_eq!(
        repair(
            &sims,
            "provincial",
            serde_json::json!({"streams": ["penalties"]})
        )
        .await,
        200
    );
    app.sync_all().await;
    assert_eq!(
        open_failures(&app, "provincial", "penalties").await.len(),
        broken.len(),
        "an in-place fix reached the live sync"
    );
    assert!(
        !app.reconcile().await.ok(),
        "the fixed penalties are missing"
    );
    let live = app
        .rt
        .store
        .checkpoint("provincial", "penalties")
        .await
        .expect("checkpoint")
        .expect("the live sync saved one");
    let versions = app.rt.store.version_count().await.expect("versions");
    app.stop().await;

    // The operator re-pulls the second of one broken record, from the CLI.
    let at = update_time(&broken[broken.len() / 2]);
    let (from, to) = (at, at + Duration::seconds(1));
    let in_window = broken
        .iter()
        .filter(|f| (from..to).contains(&update_time(f)))
        .count();
    let fmt = |t: NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let file = config_file(&config);
    let out = xiezhi()
        .args([
            "--config",
            file.to_str().expect("utf-8 path"),
            "sync",
            "provincial",
            "--stream",
            "penalties",
            "--from",
            &fmt(from),
            "--to",
            &fmt(to),
        ])
        .env("XIEZHI_ACTOR", "carol")
        .envs(sim_env(&sims))
        .output()
        .await
        .expect("sync runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{in_window} earlier failures resolved")),
        "{stdout}"
    );
    assert!(
        stdout.contains("re-pulled window 20") && stdout.contains("updated outside it"),
        "{stdout}"
    );

    let app = Running::start(config.clone()).await;
    let still = open_failures(&app, "provincial", "penalties").await;
    assert_eq!(still.len(), broken.len() - in_window);
    assert!(
        still.iter().all(|f| !(from..to).contains(&update_time(f))),
        "a failure inside the window is still open"
    );
    assert_eq!(
        app.rt.store.version_count().await.expect("versions"),
        versions + in_window as i64,
        "the window stored more than its fixed records"
    );
    let checkpoint = |app: &Running, name: String| {
        let store = app.rt.store.clone();
        async move { store.checkpoint("provincial", &name).await.expect("cp") }
    };
    assert_eq!(
        checkpoint(&app, "penalties".into()).await.as_deref(),
        Some(live.as_str()),
        "the re-pull moved the live checkpoint"
    );
    let label = Window::parse(&fmt(from), Some(&fmt(to)), Window::now())
        .expect("window")
        .label();
    assert_eq!(
        checkpoint(&app, format!("penalties@{label}")).await,
        None,
        "a finished window left its checkpoint behind"
    );
    let audit = app.rt.store.list_audit(0, 100).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|a| a.entry.action == "sync.window" && a.entry.actor == "cli:carol"),
        "{audit:?}"
    );

    // The whole history, from the library: every fix arrives, nothing twice, and the store
    // reconciles. The credit platform's cursor stream (no time filter upstream) too.
    window_sync(&app, "provincial", "penalties", "1970-01-01", "2100-01-01").await;
    assert!(
        open_failures(&app, "provincial", "penalties")
            .await
            .is_empty()
    );
    assert_eq!(
        app.rt.store.version_count().await.expect("versions"),
        versions + broken.len() as i64
    );
    let credit_broken = open_failures(&app, "credit-platform", "penalties")
        .await
        .len();
    assert!(credit_broken > 0);
    assert_eq!(
        repair(
            &sims,
            "credit-platform",
            serde_json::json!({"streams": ["penalties"]})
        )
        .await,
        200
    );
    window_sync(
        &app,
        "credit-platform",
        "penalties",
        "1970-01-01",
        "2100-01-01",
    )
    .await;
    assert!(
        open_failures(&app, "credit-platform", "penalties")
            .await
            .is_empty()
    );
    // Some fixed credit penalties republish provincial ones already stored: they merge into
    // the stored record and add a version only where they bring something new.
    let added =
        app.rt.store.version_count().await.expect("versions") - versions - broken.len() as i64;
    assert!(
        (1..=credit_broken as i64).contains(&added),
        "{added} versions for {credit_broken} fixed credit penalties"
    );
    // Every other failure is still open, so reconcile only the repaired streams' effect: no
    // valid record missing, none unexpected.
    let rec = app.reconcile().await;
    for (t, r) in &rec.types {
        assert_eq!((r.missing_count, r.unexpected_count), (0, 0), "{t}: {r:?}");
    }
    app.stop().await;
}

/// An upstream outage leaves a pull failure (stage pull, the page's error); the next sync that
/// reaches the end of the stream fetched that page and resolves it.
async fn pull_failures_resolve_once_the_stream_syncs_past_them(
    app: &Running,
    sims: &xiezhi::sim::Simulators,
) {
    let faults = format!(
        "{}/_admin/faults",
        sims.url("hotline-12345").expect("hotline")
    );
    let client = reqwest::Client::new();
    let set = |rate: f64| {
        client
            .post(&faults)
            .json(&serde_json::json!({"error_rate": rate}))
            .send()
    };
    set(1.0)
        .await
        .expect("faults")
        .error_for_status()
        .expect("faults set");
    let sel = Selection {
        connector: Some("hotline-12345".into()),
        ..Default::default()
    };
    let pullers = app.rt.pullers(&sel).expect("pullers");
    let report = app.rt.sync_once(&pullers, |_| {}).await.expect("sync");
    assert!(!report.complete(), "{report:?}");
    let pull_failures = |status: FailureStatus| {
        let store = app.rt.store.clone();
        async move {
            store
                .count_failures(&FailureFilter {
                    connector: Some("hotline-12345".into()),
                    stage: Some(xiezhi::record::Stage::Pull),
                    status: vec![status],
                    ..Default::default()
                })
                .await
                .expect("count")
        }
    };
    assert_eq!(pull_failures(FailureStatus::Open).await, 1);

    set(0.0)
        .await
        .expect("faults")
        .error_for_status()
        .expect("faults off");
    let pullers = app.rt.pullers(&sel).expect("pullers");
    let report = app.rt.sync_once(&pullers, |_| {}).await.expect("sync");
    assert!(report.complete(), "{report:?}");
    assert_eq!(pull_failures(FailureStatus::Open).await, 0);
    assert_eq!(pull_failures(FailureStatus::Resolved).await, 1);
}
