//! Feeds on RabbitMQ + PostgreSQL: an independent consumer (Python + pika) bound to `penalty.#`
//! receives every stored penalty change exactly once, each valid against the published schema,
//! and gets what it missed after reconnecting; a public consumer never sees a full ID or phone
//! number; the HTTP feed pages every change once, in order, and a named consumer resumes from
//! its server-side cursor without a gap.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;
use xiezhi::feeds::{FeedConsumer, Masking};
use xiezhi::record::RecordType;
use xiezhi::store::ops::Role;

/// Runs the pika consumer on `queue`; returns the messages it printed.
async fn consume(queue: &str, max: usize) -> Vec<Value> {
    let script = repo_dir().join("tests/it/feed_consumer.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args([
            "--url",
            AMQP,
            "--queue",
            queue,
            "--max",
            &max.to_string(),
            "--idle",
            "1.5",
        ])
        .output()
        .await
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the pika consumer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Waits until the relay has published every stored change.
async fn relayed(app: &Running) {
    for _ in 0..600 {
        let last = app
            .rt
            .store
            .changes(None, 0, u32::MAX)
            .await
            .expect("changes")
            .last()
            .map_or(0, |c| c.seq);
        let cursor = app
            .rt
            .store
            .feed_cursor(xiezhi::feeds::relay::RELAY_CURSOR, "*")
            .await
            .expect("cursor")
            .unwrap_or(0);
        if cursor >= last && last > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the relay did not catch up");
}

fn has_mobile_number(text: &str) -> bool {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(10)).any(|i| {
        (i == 0 || !b[i - 1].is_ascii_digit())
            && b[i] == b'1'
            && (b'3'..=b'9').contains(&b[i + 1])
            && b[i..i + 11].iter().all(u8::is_ascii_digit)
            && b.get(i + 11).is_none_or(|c| !c.is_ascii_digit())
    })
}

fn mobile_context(text: &str) -> String {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(10))
        .find(|&i| {
            (i == 0 || !b[i - 1].is_ascii_digit())
                && has_mobile_number(&String::from_utf8_lossy(&b[i..(i + 12).min(b.len())]))
        })
        .map(|i| {
            String::from_utf8_lossy(&b[i.saturating_sub(300)..(i + 40).min(b.len())]).into_owned()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_and_http_feeds_deliver_every_change_once() {
    let _broker = broker_lock().read().await;
    let sims = spawn_sims(600, 0.1, 73).await;
    let db = TestDb::new().await;
    let mut config = broker_config(&sims, &db);
    config.feeds.exchange_prefix = format!("{}.feeds", config.amqp.exchange);
    config.feeds.consumers = vec![
        FeedConsumer {
            name: "dw".into(),
            masking: Masking::Internal,
            bindings: vec!["penalty.#".into()],
        },
        FeedConsumer {
            name: "portal".into(),
            masking: Masking::Public,
            bindings: vec!["#".into()],
        },
    ];
    let dw_queue = config.feeds.queue("dw");
    let portal_queue = config.feeds.queue("portal");
    let app = Running::start(config).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let relay = app.rt.spawn_relay(&cancel).expect("a relay on RabbitMQ");
    app.sync_all().await;
    relayed(&app).await;

    // The consumer reads a little, disconnects, and the upstreams change meanwhile.
    let first = consume(&dw_queue, 25).await;
    assert_eq!(first.len(), 25);
    let url = format!(
        "{}/_admin/mutate",
        sims.url("provincial").expect("provincial")
    );
    reqwest::Client::new()
        .post(&url)
        .json(&serde_json::json!({"updates": 40}))
        .send()
        .await
        .expect("mutate")
        .error_for_status()
        .expect("mutate ok");
    app.sync_all().await;
    relayed(&app).await;
    let rest = consume(&dw_queue, 0).await;
    let got: Vec<&Value> = first.iter().chain(&rest).collect();

    let penalty_changes = app
        .rt
        .store
        .changes(Some(RecordType::Penalty), 0, u32::MAX)
        .await
        .expect("changes");
    assert!(
        penalty_changes.iter().any(|c| c.version > 1),
        "the updates should have superseded some penalties"
    );
    let ids: BTreeSet<&str> = got
        .iter()
        .map(|m| m["body"]["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        got.len(),
        penalty_changes.len(),
        "every stored penalty change exactly once"
    );
    assert_eq!(ids.len(), got.len(), "no change twice");
    let seqs: Vec<i64> = got
        .iter()
        .map(|m| m["body"]["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        penalty_changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
        "in sequence order"
    );
    let schema = &app.rt.schema;
    for m in &got {
        let e = &m["body"];
        assert_eq!(m["message_id"], e["id"]);
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["type"], "gov.enforcement.penalty.v1");
        assert!(
            m["routing_key"]
                .as_str()
                .is_some_and(|k| k.starts_with("penalty."))
        );
        assert_eq!(
            e["supersedes"].is_string(),
            e["version"].as_i64() > Some(1),
            "{e}"
        );
        if e["op"] != "delete" {
            let errors = schema.validate(RecordType::Penalty, &e["data"]);
            assert!(errors.is_empty(), "{}: {errors:?}", e["subject"]);
        }
    }

    // The public consumer gets every type, and no full ID or phone number.
    let portal = consume(&portal_queue, 0).await;
    assert_eq!(
        portal.len() as i64,
        app.rt.store.count_changes(None, 0).await.expect("count")
    );
    // The payloads (ids and hashes are hex and would look like numbers).
    let text = serde_json::to_string(
        &portal
            .iter()
            .map(|m| &m["body"]["data"])
            .collect::<Vec<_>>(),
    )
    .expect("json");
    assert!(!has_id_number(&text), "a public feed carried an ID number");
    let internal =
        serde_json::to_string(&got.iter().map(|m| &m["body"]["data"]).collect::<Vec<_>>())
            .expect("json");
    assert!(
        has_id_number(&internal),
        "the internal feed should hold the ID numbers the public one masks"
    );
    assert!(
        !has_mobile_number(&text),
        "a public feed carried a phone number: {}",
        mobile_context(&text)
    );

    http_feed(&app).await;

    // Deadline alerts go out on RabbitMQ, confirmed by the broker, each once.
    let alerts = xiezhi::deadlines::alerts::check(&app.rt)
        .await
        .expect("alerts");
    assert!(alerts.raised > 0, "{alerts:?}");
    let again = xiezhi::deadlines::alerts::check(&app.rt)
        .await
        .expect("alerts");
    assert_eq!(again.raised, 0);

    cancel.cancel();
    relay.await.expect("relay ends");
    app.stop().await;
    db.drop_db().await;
}

/// The HTTP feed: paging from 0 returns every change once, in order; a named consumer that stops
/// and resumes from its cursor misses nothing; levels above public need an operator.
async fn http_feed(app: &Running) {
    let api = spawn_app(app).await;
    let store = app.rt.store.as_ref();
    let (viewer, _) = xiezhi::ops::tokens::create(store, "feed-viewer", Role::Viewer)
        .await
        .expect("token");
    let (operator, _) = xiezhi::ops::tokens::create(store, "feed-operator", Role::Operator)
        .await
        .expect("token");
    let http = reqwest::Client::new();
    let get = |path: String, token: &str| {
        http.get(format!("{}{path}", api.base))
            .bearer_auth(token.to_owned())
    };
    let all = store
        .changes(Some(RecordType::Penalty), 0, u32::MAX)
        .await
        .expect("changes");

    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page: Value = get(format!("/v1/feeds/penalty?after={after}&limit=7"), &viewer)
            .send()
            .await
            .expect("page")
            .error_for_status()
            .expect("200")
            .json()
            .await
            .expect("json");
        assert_eq!(page["masking"], "public");
        for e in page["events"].as_array().expect("events") {
            seen.push(e["seq"].as_i64().expect("seq"));
        }
        after = page["next_after"].as_i64().expect("next_after");
        if page["has_more"] == false {
            break;
        }
    }
    assert_eq!(seen, all.iter().map(|c| c.seq).collect::<Vec<_>>());

    // A named consumer reads two pages, stops, and resumes from its server-side cursor.
    let page = |after: Option<i64>| {
        let q = after.map_or(String::new(), |a| format!("&after={a}"));
        get(
            format!("/v1/feeds/penalty?consumer=dw&limit=10{q}"),
            &operator,
        )
        .send()
    };
    let mut got = Vec::new();
    let p1: Value = page(None).await.expect("p1").json().await.expect("json");
    let mut next = p1["next_after"].as_i64().expect("next");
    got.extend(
        p1["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["seq"].as_i64()),
    );
    let p2: Value = page(Some(next))
        .await
        .expect("p2")
        .json()
        .await
        .expect("json");
    got.extend(
        p2["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["seq"].as_i64()),
    );
    next = p2["next_after"].as_i64().expect("next");
    assert!(p2["lag"].as_i64() > Some(0));
    // It stops without confirming p2. Resuming re-reads p2 (at least once), then goes on.
    let again: Value = page(None)
        .await
        .expect("resume")
        .json()
        .await
        .expect("json");
    assert_eq!(
        again["events"], p2["events"],
        "resume starts after the confirmed cursor"
    );
    loop {
        let p: Value = page(Some(next))
            .await
            .expect("page")
            .json()
            .await
            .expect("json");
        got.extend(
            p["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| e["seq"].as_i64()),
        );
        next = p["next_after"].as_i64().expect("next");
        if p["has_more"] == false {
            break;
        }
    }
    // Confirm the end, so the consumer's lag is 0.
    page(Some(next)).await.expect("confirm");
    assert_eq!(
        got.into_iter().flatten().collect::<Vec<_>>(),
        all.iter().map(|c| c.seq).collect::<Vec<_>>(),
        "the consumer missed or repeated a change"
    );

    // Levels above public need an operator and are audited; a long-poll waits.
    let internal = get("/v1/feeds/all?masking=internal&limit=5".into(), &viewer)
        .send()
        .await
        .expect("403");
    assert_eq!(internal.status(), 403);
    let bad = get("/v1/feeds/penalty?limit=0".into(), &viewer)
        .send()
        .await
        .expect("400");
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap_or_default().contains("limit"));
    let unknown = get("/v1/feeds/penalty?consumer=nobody".into(), &viewer)
        .send()
        .await
        .expect("404");
    assert_eq!(unknown.status(), 404);
    let started = std::time::Instant::now();
    let end = all.last().map_or(0, |c| c.seq);
    let empty: Value = get(format!("/v1/feeds/penalty?after={end}&wait=1"), &viewer)
        .send()
        .await
        .expect("long-poll")
        .json()
        .await
        .expect("json");
    assert!(empty["events"].as_array().is_some_and(Vec::is_empty));
    assert!(started.elapsed() >= Duration::from_millis(900));
    let consumers: Value = get("/v1/feeds".into(), &viewer)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let dw = &consumers["consumers"][0];
    assert_eq!(dw["name"], "dw");
    assert_eq!(dw["http"][0]["lag"], 0);
    assert_eq!(consumers["relay_lag"], 0);
    let audit = store.list_audit(0, 1000).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|a| a.entry.action == "feeds.read" && a.entry.actor == "token:feed-operator")
    );
    api.cancel.cancel();
}
