//! The web console in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver` packages; `.ci/run` installs them) driven over the W3C WebDriver protocol.
//! An operator signs in, filters the failures a broken mapping caused down to one record, opens
//! it, dry-runs it, replays it, and sees it resolved.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use xiezhi::api::{self, ApiState};
use xiezhi::ops::tokens;
use xiezhi::store::ops::Role;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver session.
struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: tokio::process::Child,
    profile: std::path::PathBuf,
}

impl Browser {
    async fn start() -> Browser {
        assert!(
            Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
            "the console test needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver (README, \"Run the tests\")"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile =
            std::env::temp_dir().join(format!("xiezhi-chromium-{}", uuid::Uuid::new_v4()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.display())
                ]
            }
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session json");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Browser {
            http,
            session: format!("{base}/session/{session}"),
            _driver: driver,
            profile,
        }
    }

    async fn cmd(&self, path: &str, body: Value) -> Value {
        let v: Value = self
            .http
            .post(format!("{}{path}", self.session))
            .json(&body)
            .send()
            .await
            .expect("webdriver command")
            .json()
            .await
            .expect("webdriver json");
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.cmd("/url", json!({"url": url})).await;
    }

    /// The element matching `css`, waiting up to ten seconds for it.
    async fn find(&self, css: &str) -> String {
        for _ in 0..100 {
            let v = self
                .cmd("/element", json!({"using": "css selector", "value": css}))
                .await;
            if let Some(id) = v[ELEMENT].as_str() {
                return id.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no element `{css}` on {}", self.source().await);
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(&format!("/element/{e}/clear"), json!({})).await;
        self.cmd(&format!("/element/{e}/value"), json!({"text": text}))
            .await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd(&format!("/element/{e}/click"), json!({})).await;
    }

    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        let v: Value = self
            .http
            .get(format!("{}/element/{e}/text", self.session))
            .send()
            .await
            .expect("text")
            .json()
            .await
            .expect("json");
        v["value"].as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the element's text contains `wanted`; returns the text.
    async fn wait_text(&self, css: &str, wanted: &str) -> String {
        let mut last = String::new();
        for _ in 0..100 {
            last = self.text(css).await;
            if last.contains(wanted) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("`{css}` never said `{wanted}`; it says `{last}`");
    }

    async fn source(&self) -> String {
        let v: Value = self
            .http
            .get(format!("{}/source", self.session))
            .send()
            .await
            .expect("source")
            .json()
            .await
            .expect("json");
        v["value"].as_str().unwrap_or_default().to_owned()
    }

    async fn quit(self) {
        self.http.delete(&self.session).send().await.ok();
        std::fs::remove_dir_all(&self.profile).ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_dry_runs_and_replays_a_failure_in_the_browser() {
    let sims = spawn_sims(300, 0.1, 51).await;
    // The double-random results stream with a broken date format: its valid records fail.
    let connectors =
        std::env::temp_dir().join(format!("xiezhi-it-console-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&connectors).expect("dir");
    for entry in std::fs::read_dir(repo_dir().join("connectors")).expect("connectors") {
        let p = entry.expect("entry").path();
        std::fs::copy(&p, connectors.join(p.file_name().expect("name"))).expect("copy");
    }
    let file = connectors.join("double-random.toml");
    let good = r#"inspected_on = { from = "检查日期", date = "%Y%m%d" }"#;
    let bad = r#"inspected_on = { from = "检查日期", date = "%d.%m.%Y" }"#;
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, text.replace(good, bad)).expect("break");
    let mut config = embedded_config(&sims);
    config.connectors_dir = connectors.clone();
    let broken = Running::start(config.clone()).await;
    broken.sync_all().await;
    let truths = xiezhi::pipeline::reconcile::fetch_truth(&broken.rt.base_urls())
        .await
        .expect("truth");
    broken.stop().await;
    edit_file(&file, bad, good);
    let running = Running::start(config.clone()).await;
    let key = truths
        .values()
        .filter_map(|t| t.valid.get("spot_check_result"))
        .flatten()
        .next()
        .expect("a valid result")
        .clone();
    assert!(
        running
            .rt
            .store
            .get_record(xiezhi::record::RecordType::SpotCheckResult, &key)
            .await
            .expect("read")
            .is_none()
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(api::serve(
        ApiState::new(running.rt.clone()),
        listener,
        cancel.clone(),
    ));
    let (token, _) = tokens::create(
        running.rt.store.as_ref(),
        "browser-operator",
        Role::Operator,
    )
    .await
    .expect("token");

    let b = Browser::start().await;
    // Nothing works without a session: the console sends the browser to sign in.
    b.go(&format!("{base}/console")).await;
    b.find("input[name=token]").await;
    b.type_into("input[name=token]", "xz_wrong").await;
    b.click("form button").await;
    b.wait_text("p.err", "unknown or revoked").await;
    b.type_into("input[name=token]", &token).await;
    b.click("form button").await;
    b.wait_text("nav", "browser-operator").await;

    // Filter down to the broken stream's failures, then to the one record by its key.
    b.type_into("#filter input[name=connector]", "double-random")
        .await;
    b.type_into("#filter input[name=code]", "MAP_BAD_DATE")
        .await;
    b.click("#filter button").await;
    b.wait_text("#counts", "MAP_BAD_DATE").await;
    b.type_into("#filter input[name=q]", &key).await;
    b.click("#filter button").await;
    b.wait_text("#failures", &key).await;
    b.click("#failures a.failure").await;
    b.wait_text("#errors", "MAP_BAD_DATE").await;
    assert_eq!(b.text("#status").await, "open");

    b.click("#dry-run").await;
    b.wait_text("#msg", "1 of 1 would pass now").await;
    assert_eq!(b.text("#status").await, "open", "a dry run changes nothing");
    b.click("#replay").await;
    b.wait_text("#msg", "are stored and resolved").await;
    assert_eq!(b.text("#status").await, "resolved");
    b.wait_text("#history", "resolved").await;
    b.quit().await;

    assert!(
        running
            .rt
            .store
            .get_record(xiezhi::record::RecordType::SpotCheckResult, &key)
            .await
            .expect("read")
            .is_some_and(|r| !r.deleted)
    );
    cancel.cancel();
    running.stop().await;
    sims.shutdown().await;
    std::fs::remove_dir_all(connectors).ok();
    std::fs::remove_dir_all(config.data_dir).ok();
}
