//! Pushes: every stored penalty and licence ends up accepted by the credit platform, every
//! inspection by the Internet+Supervision exchange; an outage of the platform delays delivery
//! but loses nothing; a record the platform refuses lands in the failure store (stage push)
//! with the platform's reason, and every delivery keeps a receipt. The hotline gets the outcome
//! of every ticket that became an enforcement case (and of no other), the credit platform every
//! random-inspection result, the double-random system every credit tier.

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
    put_as(store, RecordType::Penalty, key, data, lineage).await
}

/// Stores a record version of any type directly, as an operator's edit would.
async fn put_as(
    store: &dyn xiezhi::store::Store,
    t: RecordType,
    key: &str,
    data: serde_json::Value,
    lineage: &Lineage,
) {
    let ev = Event::new(
        t,
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
    // 双公示 penalties and licences, and 双随机 results.
    assert_eq!(credit.len(), 3);
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

fn stream(connector: &str, push: &str) -> Selection {
    Selection {
        connector: Some(connector.into()),
        stream: Some(push.into()),
        ..Default::default()
    }
}

async fn accepted(sims: &xiezhi::sim::Simulators, system: &str) -> serde_json::Value {
    let url = format!("{}/_admin/accepted", sims.url(system).expect("system"));
    reqwest::get(&url)
        .await
        .expect("accepted")
        .json()
        .await
        .expect("json")
}

fn key_set(v: &serde_json::Value) -> std::collections::BTreeSet<String> {
    v.as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hotline_outcomes_inspection_results_and_credit_tiers_reach_their_systems() {
    let sims = spawn_sims(600, 0.1, 92).await;
    let app = Running::start(embedded_config(&sims)).await;
    app.sync_all().await;
    let store = app.rt.store.as_ref();
    let mut pushers = app.rt.pushers(&only("hotline-12345")).expect("pushers");
    pushers.extend(app.rt.pushers(&only("double-random")).expect("pushers"));
    pushers.extend(
        app.rt
            .pushers(&stream("credit-platform", "publish-spot-check-results"))
            .expect("pushers"),
    );
    assert_eq!(pushers.len(), 3);
    for r in app.rt.push_once(&pushers).await {
        assert!(
            r.error.is_none() && r.rejected == 0 && r.accepted > 0,
            "{r:?}"
        );
    }
    for d in reconcile_pushes(store, &pushers).await.expect("reconcile") {
        assert!(d.ok() && d.stored > 0, "{d:?}");
    }

    // The hotline holds every stored ticket with a case number, and none without.
    let mut with_case = std::collections::BTreeSet::new();
    let mut without_case = 0;
    let mut after = String::new();
    loop {
        let page = store
            .records_page(RecordType::HotlineTicket, &after, 500)
            .await
            .expect("tickets");
        let Some((last, _)) = page.last() else { break };
        after = last.clone();
        for (key, data) in page {
            match data["enforcement_case_number"].as_str() {
                Some(c) if !c.trim().is_empty() => {
                    with_case.insert(key);
                }
                _ => without_case += 1,
            }
        }
    }
    assert!(!with_case.is_empty() && without_case > 0);
    let hotline = accepted(&sims, "hotline-12345").await;
    assert_eq!(key_set(&hotline["accepted"]["hotline_ticket"]), with_case);
    // In the hotline's dialect: only the outcome, instants as epoch milliseconds.
    let one = with_case.iter().next().expect("a case");
    let item: serde_json::Value = reqwest::get(format!(
        "{}/_admin/accepted/hotline_ticket/{}",
        sims.url("hotline-12345").expect("hotline"),
        one
    ))
    .await
    .expect("item")
    .json()
    .await
    .expect("json");
    assert_eq!(item["orderNo"], one.as_str());
    assert!(
        item["caseNo"].is_string() && item.get("content").is_none(),
        "{item}"
    );
    assert!(
        item["replyTime"].is_null() || item["replyTime"].is_i64(),
        "{item}"
    );

    // Every stored result at the credit platform, every stored tier at double-random.
    let credit = accepted(&sims, "credit-platform").await;
    let results: std::collections::BTreeSet<String> = store
        .keys(RecordType::SpotCheckResult)
        .await
        .expect("keys")
        .into_iter()
        .collect();
    assert_eq!(key_set(&credit["accepted"]["spot_check_result"]), results);
    let tiers: std::collections::BTreeSet<String> = store
        .keys(RecordType::CreditRating)
        .await
        .expect("keys")
        .into_iter()
        .collect();
    let double_random = accepted(&sims, "double-random").await;
    assert_eq!(key_set(&double_random["accepted"]["credit_rating"]), tiers);

    // The publication receipt is the evidence of the 双随机 deadline; the outcome sent back to
    // the hotline is not a reply to the citizen and never counts for the 12345 clock.
    let rules = xiezhi::deadlines::Rules::default();
    let calendar = xiezhi::deadlines::WorkingCalendar::embedded();
    let summary = xiezhi::deadlines::report::evaluate(
        store,
        &rules,
        &calendar,
        &xiezhi::deadlines::report::DeadlineFilter {
            limit: 100_000,
            ..Default::default()
        },
        xiezhi::deadlines::report::now_local(),
    )
    .await
    .expect("deadlines");
    let published: Vec<_> = summary
        .rows
        .iter()
        .filter(|r| r.state.rule == "publish_inspection_result")
        .collect();
    assert_eq!(published.len(), results.len());
    for r in &published {
        let evidence = r.evidence.as_ref().expect("met, with the receipt");
        assert_eq!(
            evidence.target,
            "credit-platform/publish-spot-check-results"
        );
        assert!(evidence.accepted);
    }
    assert!(
        summary
            .rows
            .iter()
            .filter(|r| r.state.rule == "hotline_reply")
            .all(|r| r.evidence.is_none())
    );

    let lineage = Lineage {
        connector: "double-random".into(),
        stream: "results".into(),
        sync_run: "it".into(),
        page: "1".into(),
        index: 0,
    };
    // A ticket that loses its case number is revoked at the hotline.
    let mut dropped = store
        .get_record(RecordType::HotlineTicket, one)
        .await
        .expect("record")
        .expect("stored")
        .data;
    dropped
        .as_object_mut()
        .expect("object")
        .remove("enforcement_case_number");
    // (From the hotline itself: the store merges by source, so only its own version can drop
    // a field it gave.)
    let from_hotline = Lineage {
        connector: "hotline-12345".into(),
        stream: "workorders".into(),
        ..lineage.clone()
    };
    put_as(
        store,
        RecordType::HotlineTicket,
        one,
        dropped,
        &from_hotline,
    )
    .await;
    let hotline_push = app.rt.pushers(&only("hotline-12345")).expect("pushers");
    let r = app.rt.push_once(&hotline_push).await;
    assert_eq!((r[0].sent, r[0].accepted), (1, 1), "{r:?}");
    let hotline = accepted(&sims, "hotline-12345").await;
    assert!(key_set(&hotline["withdrawn"]["hotline_ticket"]).contains(one.as_str()));
    for d in reconcile_pushes(store, &hotline_push)
        .await
        .expect("reconcile")
    {
        assert!(d.ok() && d.stored == with_case.len() - 1, "{d:?}");
    }

    // A result published before it was inspected reaches the store (an operator's edit): the
    // platform refuses it with its code; corrected, a replay of the push failures delivers it.
    let first = results.iter().next().expect("a result");
    let mut wrong = store
        .get_record(RecordType::SpotCheckResult, first)
        .await
        .expect("record")
        .expect("stored")
        .data;
    let task = "SSJ620822209900001";
    wrong["task_number"] = json!(task);
    wrong["inspected_on"] = json!("2025-03-20");
    wrong["published_on"] = json!("2025-03-01");
    let wrong_key = format!("{task}:{}", wrong["party"]["uscc"].as_str().expect("uscc"));
    put_as(
        store,
        RecordType::SpotCheckResult,
        &wrong_key,
        wrong.clone(),
        &lineage,
    )
    .await;
    let results_push = app
        .rt
        .pushers(&stream("credit-platform", "publish-spot-check-results"))
        .expect("pushers");
    let r = app.rt.push_once(&results_push).await;
    assert_eq!((r[0].sent, r[0].rejected), (1, 1), "{r:?}");
    let push_failures = FailureFilter {
        stage: Some(Stage::Push),
        ..Default::default()
    };
    let refused = store
        .list_failures(&FailureFilter {
            limit: 10,
            ..push_failures.clone()
        })
        .await
        .expect("failures");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].natural_key.as_deref(), Some(wrong_key.as_str()));
    assert_eq!(refused[0].stream, "publish-spot-check-results");
    assert!(
        refused[0]
            .errors
            .iter()
            .any(|e| e.code == "PUSH_RANGE" && e.path == "CC_GSRQ"),
        "{:?}",
        refused[0].errors
    );
    wrong["published_on"] = json!("2025-04-01");
    put_as(
        store,
        RecordType::SpotCheckResult,
        &wrong_key,
        wrong,
        &lineage,
    )
    .await;
    let replayed = replay::replay(
        &app.rt,
        Target::Filter(push_failures),
        &ReplaySettings::default(),
        |_| {},
    )
    .await
    .expect("replay");
    assert_eq!(
        (replayed.selected, replayed.resolved, replayed.still_failing),
        (1, 1, 0),
        "{replayed:?}"
    );
    let credit = accepted(&sims, "credit-platform").await;
    assert!(key_set(&credit["accepted"]["spot_check_result"]).contains(&wrong_key));
    app.stop().await;
}
