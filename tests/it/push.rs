//! Pushes: every stored penalty and licence ends up accepted by the credit platform, every
//! inspection by the Internet+Supervision exchange; an outage of the platform delays delivery
//! but loses nothing; a record the platform refuses lands in the failure store (stage push)
//! with the platform's reason, and every delivery keeps a receipt.

use serde_json::json;

use crate::helpers::*;
use xiezhi::ops::replay::{self, ReplaySettings, Target};
use xiezhi::pipeline::Selection;
use xiezhi::pipeline::reconcile::reconcile_pushes;
use xiezhi::record::{Batch, Event, Lineage, Op, RecordType, Stage};
use xiezhi::store::FailureFilter;

async fn faults(sims: &xiezhi::sim::Simulators, system: &str, error_rate: f64) {
    let url = format!("{}/_admin/faults", sims.url(system).expect("system"));
    reqwest::Client::new()
        .post(&url)
        .json(&json!({"error_rate": error_rate}))
        .send()
        .await
        .expect("faults")
        .error_for_status()
        .expect("faults set");
}

/// Stores a penalty version directly, as an operator's edit would.
async fn put(
    store: &dyn xiezhi::store::Store,
    key: &str,
    data: serde_json::Value,
    lineage: &Lineage,
) {
    let ev = Event::new(
        RecordType::Penalty,
        key.to_owned(),
        "620822".into(),
        Op::Upsert,
        Some(data),
        lineage,
        None,
    );
    store
        .apply(&[Batch::new(ev.routing_key(), vec![ev])])
        .await
        .expect("apply");
}

fn only(connector: &str) -> Selection {
    Selection {
        connector: Some(connector.into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_deliver_every_record_through_an_outage() {
    let sims = spawn_sims(500, 0.1, 91).await;
    let mut config = embedded_config(&sims);
    config.connectors_dir = copy_connectors();
    // Quick to give up, so the outage ends the push run within the test's time.
    edit_file(
        &config.connectors_dir.join("credit-platform.toml"),
        "max_retries = 6",
        "max_retries = 1",
    );
    let app = Running::start(config).await;
    app.sync_all().await;
    let store = app.rt.store.as_ref();

    // The platform is down: nothing is delivered, nothing is lost.
    faults(&sims, "credit-platform", 1.0).await;
    let credit = app.rt.pushers(&only("credit-platform")).expect("pushers");
    assert_eq!(credit.len(), 2);
    for r in app.rt.push_once(&credit).await {
        assert!(r.error.is_some(), "{r:?}");
        assert_eq!(r.accepted, 0);
    }
    let before = reconcile_pushes(store, &credit).await.expect("reconcile");
    assert!(
        before
            .iter()
            .all(|d| d.stored > 0 && d.missing_count == d.stored),
        "{before:?}"
    );

    // Back up: the next run delivers everything stored.
    faults(&sims, "credit-platform", 0.0).await;
    for r in app.rt.push_once(&credit).await {
        assert!(r.error.is_none() && r.rejected == 0, "{r:?}");
    }
    for d in reconcile_pushes(store, &credit).await.expect("reconcile") {
        assert!(d.ok(), "{d:?}");
    }
    let exchange = app.rt.pushers(&only("internet-plus")).expect("pushers");
    for r in app.rt.push_once(&exchange).await {
        assert!(
            r.error.is_none() && r.rejected == 0 && r.accepted > 0,
            "{r:?}"
        );
    }
    for d in reconcile_pushes(store, &exchange).await.expect("reconcile") {
        assert!(d.ok(), "{d:?}");
    }

    // Every delivery has its receipt: the evidence of publication.
    let key = store.keys(RecordType::Penalty).await.expect("keys")[0].clone();
    let receipts = store
        .push_receipts(RecordType::Penalty, &key)
        .await
        .expect("receipts");
    assert!(
        receipts
            .iter()
            .any(|r| r.accepted && r.target == "credit-platform/publish-penalties"),
        "{receipts:?}"
    );

    // Caught up: a second run sends nothing.
    for r in app.rt.push_once(&credit).await {
        assert_eq!(r.sent, 0, "{r:?}");
    }

    // A penalty whose deciding agency code has a bad check digit reaches the store (say, from
    // an operator's edit) and the platform refuses it: a push failure with its reason.
    let mut bad = store
        .get_record(RecordType::Penalty, &key)
        .await
        .expect("record")
        .expect("stored")
        .data;
    let number = "灵市监罚〔2099〕1号";
    bad["decision_number"] = json!(number);
    bad["agency"]["uscc"] = json!("11620822MB1234567A");
    let bad_key = format!("11620822MB1234567A:{number}");
    let lineage = Lineage {
        connector: "provincial".into(),
        stream: "penalties".into(),
        sync_run: "it".into(),
        page: "1".into(),
        index: 0,
    };
    let ev = Event::new(
        RecordType::Penalty,
        bad_key.clone(),
        "620822".into(),
        Op::Upsert,
        Some(bad),
        &lineage,
        None,
    );
    store
        .apply(&[Batch::new(ev.routing_key(), vec![ev])])
        .await
        .expect("apply");
    let reports = app.rt.push_once(&credit).await;
    let penalties = reports
        .iter()
        .find(|r| r.push == "publish-penalties")
        .expect("penalty push");
    assert_eq!(
        (penalties.sent, penalties.rejected),
        (1, 1),
        "{penalties:?}"
    );
    let refused = store
        .list_failures(&FailureFilter {
            stage: Some(Stage::Push),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("failures");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].natural_key.as_deref(), Some(bad_key.as_str()));
    assert!(
        refused[0].errors.iter().any(|e| e.code == "PUSH_USCC"),
        "{:?}",
        refused[0].errors
    );
    assert!(
        refused[0].raw.contains("CF_CFJGDM"),
        "the raw payload is what was sent"
    );
    let receipts = store
        .push_receipts(RecordType::Penalty, &bad_key)
        .await
        .expect("receipts");
    assert!(receipts.iter().all(|r| !r.accepted) && !receipts.is_empty());

    // A refusal an operator can fix: a validity date before the decision. The record is
    // corrected in the store, and a replay of the push failures sends it again.
    let mut wrong = store
        .get_record(RecordType::Penalty, &key)
        .await
        .expect("record")
        .expect("stored")
        .data;
    let number = "灵市监罚〔2099〕2号";
    wrong["decision_number"] = json!(number);
    wrong["valid_until"] = json!("2000-01-01");
    let fix_key = format!(
        "{}:{number}",
        wrong["agency"]["uscc"].as_str().expect("uscc")
    );
    put(store, &fix_key, wrong.clone(), &lineage).await;
    let r = app.rt.push_once(&credit).await;
    assert_eq!(r.iter().map(|r| r.rejected).sum::<u64>(), 1, "{r:?}");
    let push_failures = FailureFilter {
        stage: Some(Stage::Push),
        ..Default::default()
    };
    let dry = replay::replay(
        &app.rt,
        Target::Filter(push_failures.clone()),
        &ReplaySettings {
            dry_run: true,
            ..Default::default()
        },
        |_| {},
    )
    .await
    .expect("dry run");
    assert_eq!(
        (dry.selected, dry.skipped, dry.resolved),
        (2, 2, 0),
        "{dry:?}"
    );
    wrong["valid_until"] = json!("2099-12-31");
    put(store, &fix_key, wrong, &lineage).await;
    let replayed = replay::replay(
        &app.rt,
        Target::Filter(push_failures.clone()),
        &ReplaySettings::default(),
        |_| {},
    )
    .await
    .expect("replay");
    assert_eq!(
        (replayed.selected, replayed.resolved, replayed.still_failing),
        (2, 1, 1),
        "the corrected penalty is accepted, the bad agency code is refused again: {replayed:?}"
    );
    let open = store
        .list_failures(&FailureFilter {
            status: vec![xiezhi::store::FailureStatus::Open],
            ..push_failures
        })
        .await
        .expect("failures");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].natural_key.as_deref(), Some(bad_key.as_str()));
    assert!(open[0].attempts >= 2);

    // Deadlines: the simulators' penalties were decided in 2024–2025 and published only now, so
    // each shows as missed (met late) with the platform's receipt as evidence; the refused one
    // was never published and is overdue, with no evidence.
    let api = spawn_app(&app).await;
    let (viewer, _) =
        xiezhi::ops::tokens::create(store, "deadline-viewer", xiezhi::store::ops::Role::Viewer)
            .await
            .expect("token");
    let http = reqwest::Client::new();
    let get = |q: &str| {
        http.get(format!("{}/v1/deadlines?{q}", api.base))
            .bearer_auth(viewer.clone())
            .send()
    };
    let missed: serde_json::Value = get("status=overdue&rule=publish_penalty&limit=10000")
        .await
        .expect("deadlines")
        .error_for_status()
        .expect("200")
        .json()
        .await
        .expect("json");
    let rows = missed["rows"].as_array().expect("rows");
    let stored = store.keys(RecordType::Penalty).await.expect("keys").len();
    assert_eq!(
        rows.len(),
        stored,
        "every stored penalty was published late or not at all"
    );
    let late = rows
        .iter()
        .find(|r| r["key"] == key.as_str())
        .expect("the first penalty");
    assert_eq!(late["status"], "met_late");
    assert!(late["days_late"].as_i64() > Some(0));
    assert_eq!(
        late["evidence"]["target"],
        "credit-platform/publish-penalties"
    );
    assert_eq!(late["evidence"]["accepted"], true);
    let never = rows
        .iter()
        .find(|r| r["key"] == bad_key.as_str())
        .expect("the refused penalty");
    assert_eq!(never["status"], "overdue");
    assert!(never.get("evidence").is_none());
    assert!(missed["counts"]["publish_penalty"]["met_late"].as_u64() > Some(0));
    // Each missed deadline is announced once: a second check raises nothing new.
    let first = xiezhi::deadlines::alerts::check(&app.rt)
        .await
        .expect("check");
    assert!(
        first.raised >= rows.len() && first.raised == first.at_risk_or_missed,
        "{first:?}"
    );
    let second = xiezhi::deadlines::alerts::check(&app.rt)
        .await
        .expect("check");
    assert_eq!(
        (second.raised, second.at_risk_or_missed),
        (0, first.at_risk_or_missed)
    );
    let bad = get("status=late").await.expect("400");
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap_or_default().contains("status"));
    api.cancel.cancel();
    app.stop().await;
}
