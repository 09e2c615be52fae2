//! Operators at work on RabbitMQ + PostgreSQL: a broken mapping in `connectors/` makes valid
//! records fail; the failures group by error code; the operator fixes the file, dry-runs, starts
//! a replay that is killed with SIGKILL half-way, replays again, and the store reconciles with
//! the simulators' truth — nothing lost, nothing twice — with every step in the audit log.

use std::process::Stdio;
use std::time::Duration;

use crate::helpers::*;
use xiezhi::ops::replay::{self, ReplaySettings, Target};
use xiezhi::store::{FailureFilter, FailureStatus};

const GOOD_DATE: &str = r#"inspected_on = { from = "检查日期", date = "%Y%m%d" }"#;
const BAD_DATE: &str = r#"inspected_on = { from = "检查日期", date = "%Y-%m-%d" }"#;

fn results_filter() -> FailureFilter {
    FailureFilter {
        connector: Some("double-random".into()),
        stream: Some("results".into()),
        code: Some("MAP_BAD_DATE".into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_fix_and_a_replay_killed_half_way_store_every_failed_record_once() {
    let _broker = broker_lock().read().await;
    let sims = spawn_sims(400, 0.1, 41).await;
    let db = TestDb::new().await;
    let connectors = copy_connectors();
    let double_random = connectors.join("double-random.toml");
    // The operator's colleague "tidied" the date format of the CSV results stream.
    edit_file(&double_random, GOOD_DATE, BAD_DATE);
    let mut config = broker_config(&sims, &db);
    config.connectors_dir = connectors.clone();

    let broken = Running::start(config.clone()).await;
    broken.sync_all().await;
    let truths = xiezhi::pipeline::reconcile::fetch_truth(&broken.rt.base_urls())
        .await
        .expect("truth");
    let truth_results = truths
        .values()
        .filter(|t| t.system == "double-random")
        .filter_map(|t| t.valid.get("spot_check_result"))
        .map(Vec::len)
        .sum::<usize>();
    assert!(
        truth_results > 20,
        "too few results to replay: {truth_results}"
    );
    let counts = broken
        .rt
        .store
        .failure_counts(&FailureFilter {
            connector: Some("double-random".into()),
            ..Default::default()
        })
        .await
        .expect("counts");
    let bad_dates = counts
        .iter()
        .find(|c| c.code == "MAP_BAD_DATE")
        .map_or(0, |c| c.count);
    assert!(
        bad_dates >= truth_results as i64,
        "every valid result should fail on the broken date: {counts:?}"
    );
    assert!(!broken.reconcile().await.ok());
    broken.stop().await;

    // The fix, then a dry run with the fixed definitions: the valid ones would pass, and
    // nothing changes.
    edit_file(&double_random, BAD_DATE, GOOD_DATE);
    let fixed = Running::start(config.clone()).await;
    let open_before = db
        .count("SELECT count(*) FROM failures WHERE status = 'open'")
        .await;
    let dry = replay::replay(
        &fixed.rt,
        Target::Filter(results_filter()),
        &ReplaySettings {
            dry_run: true,
            actor: "test:alice".into(),
            ..Default::default()
        },
        |_| {},
    )
    .await
    .expect("dry run");
    assert_eq!(dry.passed, truth_results as i64, "{dry:?}");
    assert_eq!(dry.selected, dry.passed + dry.still_failing);
    assert_eq!(
        db.count("SELECT count(*) FROM failures WHERE status = 'open'")
            .await,
        open_before,
        "a dry run changes nothing"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM records WHERE record_type = 'spot_check_result'")
            .await,
        0
    );

    // A slow replay in a child process, killed once some records were re-sent.
    let file = config_file(&config);
    let mut child = xiezhi()
        .args([
            "--config",
            file.to_str().expect("utf-8 path"),
            "failures",
            "replay",
            "--connector",
            "double-random",
            "--stream",
            "results",
            "--code",
            "MAP_BAD_DATE",
            "--rate",
            "5",
            "--page-size",
            "10",
        ])
        .env("XIEZHI_ACTOR", "bob")
        .envs(sim_env(&sims))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("replay starts");
    let mut replayed = 0;
    for _ in 0..600 {
        replayed = db
            .count("SELECT count(*) FROM records WHERE record_type = 'spot_check_result'")
            .await;
        if replayed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(replayed > 0, "the child replay never re-sent anything");
    assert!(
        child.try_wait().expect("status").is_none(),
        "the replay finished before it could be killed"
    );
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("killed");
    let resolved_by_child = db
        .count("SELECT count(*) FROM failures WHERE status = 'resolved'")
        .await;
    let stored_by_child = db
        .count("SELECT count(*) FROM records WHERE record_type = 'spot_check_result'")
        .await;
    assert!(
        stored_by_child > 0 && (stored_by_child as usize) < truth_results,
        "the kill should leave the replay half-done ({stored_by_child} of {truth_results} stored)"
    );

    // Replaying again finishes the job.
    let report = replay::replay(
        &fixed.rt,
        Target::Filter(results_filter()),
        &ReplaySettings {
            actor: "test:alice".into(),
            ..Default::default()
        },
        |_| {},
    )
    .await
    .expect("replay");
    assert_eq!(
        report.passed + resolved_by_child,
        truth_results as i64,
        "what the child resolved is not replayed again; the rest is: {report:?}"
    );
    assert_eq!(report.resolved, report.passed, "{report:?}");

    let rec = fixed.reconcile().await;
    assert_reconciled(&rec);
    let invalid: usize = rec.sources.values().map(|s| s.invalid).sum();
    let open = fixed
        .rt
        .store
        .count_failures(&FailureFilter {
            status: vec![FailureStatus::Open],
            ..Default::default()
        })
        .await
        .expect("count");
    assert_eq!(
        open, invalid as i64,
        "open failures are exactly the simulators' invalid records"
    );
    db.assert_no_duplicate_versions().await;

    // Twice is once: a third replay finds only the genuinely invalid ones, and writes nothing.
    let versions = fixed.rt.store.version_count().await.expect("versions");
    let again = replay::replay(
        &fixed.rt,
        Target::Filter(results_filter()),
        &ReplaySettings::default(),
        |_| {},
    )
    .await
    .expect("replay again");
    assert_eq!((again.passed, again.resolved), (0, 0), "{again:?}");
    assert_eq!(
        fixed.rt.store.version_count().await.expect("versions"),
        versions
    );

    // History and audit tell who did what.
    let resolved = fixed
        .rt
        .store
        .list_failures(&FailureFilter {
            status: vec![FailureStatus::Resolved],
            limit: 1,
            ..results_filter()
        })
        .await
        .expect("resolved failures");
    let history = fixed
        .rt
        .store
        .failure_events(&resolved[0].id)
        .await
        .expect("history");
    let actions: Vec<&str> = history.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions.last(), Some(&"resolved"), "{history:?}");
    assert!(
        history
            .iter()
            .all(|e| e.actor == "test:alice" || e.actor == "cli:bob"),
        "{history:?}"
    );
    let audit = fixed.rt.store.list_audit(0, 100).await.expect("audit");
    let seen: Vec<(&str, &str)> = audit
        .iter()
        .map(|a| (a.entry.actor.as_str(), a.entry.action.as_str()))
        .collect();
    for expected in [
        ("test:alice", "replay.dry_run"),
        ("cli:bob", "replay.started"),
        ("test:alice", "replay"),
    ] {
        assert!(seen.contains(&expected), "{expected:?} not in {seen:?}");
    }
    assert!(
        db.count("SELECT count(*) FROM audit_log").await > 0
            && sqlx_refuses(&db.url, "DELETE FROM audit_log").await,
        "the audit log is append-only"
    );

    fixed.stop().await;
    sims.shutdown().await;
    db.drop_db().await;
    std::fs::remove_dir_all(connectors).ok();
    std::fs::remove_file(file).ok();
}

/// Whether the database refuses a statement.
async fn sqlx_refuses(url: &str, sql: &'static str) -> bool {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query(sql).execute(&mut c).await.is_err()
}
