//! The HTTP API against a store filled by a real sync (zero-to-production style: the app on port
//! 0, a client doing what a user would).

use crate::helpers::*;
use xiezhi::api::{self, ApiState};

struct App {
    base: String,
    cancel: tokio_util::sync::CancellationToken,
}

async fn spawn_app(running: &Running) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cancel = tokio_util::sync::CancellationToken::new();
    let state = ApiState {
        store: running.rt.store.clone(),
        bus: running.rt.bus.clone(),
    };
    tokio::spawn(api::serve(state, listener, cancel.clone()));
    App {
        base: format!("http://{addr}"),
        cancel,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_stats_and_failures_are_served() {
    let sims = spawn_sims(200, 0.1, 31).await;
    let c = embedded_config(&sims);
    let dir = c.data_dir.clone();
    let running = Running::start(c).await;
    running.sync_all().await;
    let app = spawn_app(&running).await;
    let http = reqwest::Client::new();

    let health: serde_json::Value = http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("healthz")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");
    let ready = http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);

    let stats: serde_json::Value = http
        .get(format!("{}/v1/stats", app.base))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    let stored_penalties = running
        .rt
        .store
        .keys(xiezhi::record::RecordType::Penalty)
        .await
        .expect("keys");
    assert_eq!(
        stats["records"]["penalty"].as_u64(),
        Some(stored_penalties.len() as u64)
    );
    assert!(
        stats["failures"]["credit-platform"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );

    // A natural key with `:` and Chinese brackets, URL-encoded in the path.
    let key = &stored_penalties[0];
    let url = format!(
        "{}/v1/records/penalty/{}",
        app.base,
        percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC)
    );
    let rec: serde_json::Value = http
        .get(&url)
        .send()
        .await
        .expect("record")
        .error_for_status()
        .expect("200")
        .json()
        .await
        .expect("json");
    assert_eq!(rec["key"], key.as_str());
    assert_eq!(
        rec["data"]["decision_number"].as_str(),
        key.split_once(':').map(|(_, d)| d)
    );

    let missing = http
        .get(format!("{}/v1/records/penalty/nope", app.base))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), 404);
    let bad_type = http
        .get(format!("{}/v1/records/fines/x", app.base))
        .send()
        .await
        .expect("404");
    assert_eq!(bad_type.status(), 404);

    let failures: serde_json::Value = http
        .get(format!(
            "{}/v1/failures?connector=credit-platform&limit=5",
            app.base
        ))
        .send()
        .await
        .expect("failures")
        .json()
        .await
        .expect("json");
    let rows = failures["failures"].as_array().expect("array");
    assert!(!rows.is_empty() && rows.len() <= 5);
    assert!(rows.iter().all(|f| f["connector"] == "credit-platform"
        && !f["raw"].as_str().unwrap_or_default().is_empty()));
    let one = &rows[0];
    let detail: serde_json::Value = http
        .get(format!(
            "{}/v1/failures/{}",
            app.base,
            one["id"].as_str().unwrap_or_default()
        ))
        .send()
        .await
        .expect("detail")
        .json()
        .await
        .expect("json");
    assert_eq!(detail["raw"], one["raw"]);
    assert!(
        detail["errors"][0]["code"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );

    let bad = http
        .get(format!("{}/v1/failures?type=fine", app.base))
        .send()
        .await
        .expect("400");
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("`type`"),
        "{body}"
    );
    let bad = http
        .get(format!("{}/v1/failures?limit=0", app.base))
        .send()
        .await
        .expect("400");
    assert_eq!(bad.status(), 400);
    let bad = http
        .get(format!("{}/v1/failures?colour=red", app.base))
        .send()
        .await
        .expect("400");
    assert_eq!(bad.status(), 400);

    app.cancel.cancel();
    running.stop().await;
    sims.shutdown().await;
    std::fs::remove_dir_all(dir).ok();
}
