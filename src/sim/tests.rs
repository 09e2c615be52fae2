//! End-to-end tests of the simulators over real loopback HTTP, with a tiny client per dialect that
//! signs requests with its own code (not the server's helpers).

use super::*;
use hmac::{KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use sm3::Digest;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(super) fn enc(v: &str) -> String {
    utf8_percent_encode(v, VALUE).to_string()
}

pub(super) fn cred(name: &str) -> String {
    default_credentials()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap()
}

pub(super) async fn start(records: usize, seed: u64) -> Simulators {
    Simulators::start(SimConfig {
        seed,
        records,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

static NONCE: AtomicU64 = AtomicU64::new(0);

pub(super) fn nonce() -> String {
    format!(
        "n{}-{}",
        std::process::id(),
        NONCE.fetch_add(1, Ordering::SeqCst)
    )
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub(super) fn hmac_hex(secret: &str, msg: &str) -> String {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(msg.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Sorted `k=v` pieces (values already encoded) — the client's own canonical query.
fn sorted_query(params: &[(&str, String)]) -> String {
    let mut p: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    p.sort();
    p.join("&")
}

pub(super) struct Client {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
    system: &'static str,
}

impl Client {
    pub(super) fn new(sims: &Simulators, system: &'static str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: sims.url(system).unwrap(),
            system,
        }
    }

    /// Signed (or bearer-authenticated) GET; returns status, headers and raw body.
    pub(super) async fn get(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let q = sorted_query(params);
        let url = if q.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{q}", self.base)
        };
        let mut req = self.http.get(&url);
        match self.system {
            "provincial" => req = req.bearer_auth(cred("XIEZHI_PROVINCIAL_TOKEN")),
            "double-random" => req = req.bearer_auth(cred("XIEZHI_DOUBLE_RANDOM_TOKEN")),
            "internet-plus" => {
                let (key, ts, n) = (
                    cred("XIEZHI_INTERNET_PLUS_APP_KEY"),
                    now_ms().to_string(),
                    nonce(),
                );
                let sig = hmac_hex(
                    &cred("XIEZHI_INTERNET_PLUS_APP_SECRET"),
                    &format!("{key}\n{ts}\n{n}\nGET\n{path}\n{q}"),
                );
                req = req
                    .header("X-App-Key", key)
                    .header("X-Timestamp", ts)
                    .header("X-Nonce", n)
                    .header("X-Signature", sig);
            }
            "credit-platform" => {
                let (key, ts, n) = (cred("XIEZHI_CREDIT_APP_KEY"), now_ms().to_string(), nonce());
                let msg = format!(
                    "{key}\n{ts}\n{n}\nGET\n{path}\n{q}\n{}",
                    cred("XIEZHI_CREDIT_APP_SECRET")
                );
                let sign = hex::encode(sm3::Sm3::digest(msg.as_bytes()));
                req = req
                    .header("appKey", key)
                    .header("timestamp", ts)
                    .header("nonce", n)
                    .header("sign", sign);
            }
            _ => {
                let (key, ts, n) = (
                    cred("XIEZHI_HOTLINE_APP_KEY"),
                    (now_ms() / 1000).to_string(),
                    nonce(),
                );
                let sig = hmac_hex(
                    &cred("XIEZHI_HOTLINE_APP_SECRET"),
                    &format!("GET\n{path}\n{q}\n{key}\n{ts}\n{n}"),
                );
                req = req
                    .header("X-Hotline-Key", key)
                    .header("X-Hotline-Ts", ts)
                    .header("X-Hotline-Nonce", n)
                    .header("X-Hotline-Sign", sig);
            }
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.bytes().await.unwrap().to_vec())
    }

    pub(super) async fn json(&self, path: &str, params: &[(&str, String)]) -> Value {
        let (status, _, body) = self.get(path, params).await;
        assert_eq!(
            status,
            200,
            "{} {path}: {}",
            self.system,
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).unwrap()
    }

    pub(super) async fn truth(&self, summary: bool) -> Value {
        let url = format!(
            "{}/truth{}",
            self.base,
            if summary { "?summary=true" } else { "" }
        );
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub(super) async fn admin(&self, what: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/_admin/{what}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.unwrap()
    }
}

pub(super) fn s(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A pulled record: (record type, upstream id, natural key as the client computes it, raw).
type Pulled = (String, String, String, Value);

/// Pulls every provincial stream; `since` holds one checkpoint per stream (updated in place).
async fn pull_provincial(c: &Client, since: &mut HashMap<&'static str, String>) -> Vec<Pulled> {
    let mut out = Vec::new();
    for (stream, ty) in [
        ("agencies", "agency"),
        ("officers", "officer"),
        ("items", "enforcement_item"),
        ("inspections", "inspection"),
        ("penalties", "penalty"),
        ("coercive-measures", "coercive_measure"),
    ] {
        let mut page = 1;
        let mut newest = since.get(stream).cloned();
        loop {
            let mut params = vec![("page", page.to_string()), ("size", "97".to_string())];
            if let Some(t) = since.get(stream) {
                params.push(("updatedSince", t.to_string()));
            }
            let v = c.json(&format!("/api/v1/{stream}"), &params).await;
            assert_eq!(v["code"], 0);
            let list = v["data"]["list"].as_array().unwrap().clone();
            for r in &list {
                let key = match ty {
                    "agency" => s(r, "creditCode"),
                    "officer" => s(r, "certNo"),
                    "enforcement_item" => s(r, "itemCode"),
                    "inspection" => s(r, "id"),
                    _ => format!("{}:{}", s(r, "orgCreditCode"), s(r, "decisionNo")),
                };
                out.push((ty.to_string(), s(r, "id"), key, r.clone()));
                let t = s(r, "updateTime");
                if newest.as_ref().is_none_or(|old| *old < t) {
                    newest = Some(t);
                }
            }
            let total = v["data"]["total"].as_u64().unwrap();
            if page * 97 >= total {
                // checkpoint only after the whole filtered set was read
                if let Some(t) = newest {
                    since.insert(stream, t);
                }
                break;
            }
            page += 1;
        }
    }
    out
}

/// Applies internet-plus batches from `from` (or the first batch) into `state`; returns the
/// checkpoint (`next_batch`) and the rows seen.
async fn pull_internet_plus(
    c: &Client,
    table: &str,
    from: Option<String>,
    state: &mut BTreeMap<String, Pulled>,
) -> (String, Vec<Value>) {
    let ty = match table {
        "check_action" => "inspection",
        "punish_action" => "penalty",
        _ => "coercive_measure",
    };
    let mut batch = from;
    let mut rows_seen = Vec::new();
    loop {
        let params: Vec<(&str, String)> = batch.iter().map(|b| ("batch", b.clone())).collect();
        let v = c.json(&format!("/exchange/{table}"), &params).await;
        for r in v["rows"].as_array().unwrap() {
            rows_seen.push(r.clone());
            let id = s(r, "cd_id");
            if s(r, "cd_operation") == "d" {
                state.remove(&id);
                continue;
            }
            let key = match ty {
                "inspection" => s(r, "check_action_code"),
                "penalty" => format!(
                    "{}:{}",
                    s(r, "implement_institution_code"),
                    s(r, "punish_doc_no")
                ),
                _ => format!(
                    "{}:{}",
                    s(r, "implement_institution_code"),
                    s(r, "force_doc_no")
                ),
            };
            state.insert(id.clone(), (ty.to_string(), id, key, r.clone()));
        }
        let next = s(&v, "next_batch");
        assert!(!next.is_empty(), "next_batch is always present");
        batch = Some(next.clone());
        if !v["has_more"].as_bool().unwrap() {
            return (next, rows_seen);
        }
    }
}

fn xml_records(body: &[u8]) -> (Vec<BTreeMap<String, String>>, String, bool) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut buf = Vec::new();
    let mut recs = Vec::new();
    let mut cur: Option<BTreeMap<String, String>> = None;
    let mut field = String::new();
    let (mut next, mut more) = (String::new(), false);
    let mut path: Vec<String> = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).unwrap() {
            Event::Start(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                if name == "Record" {
                    cur = Some(BTreeMap::new());
                }
                field = name.clone();
                path.push(name);
            }
            Event::Empty(e) => {
                if let Some(c) = cur.as_mut() {
                    c.insert(
                        String::from_utf8(e.name().as_ref().to_vec()).unwrap(),
                        String::new(),
                    );
                }
            }
            Event::Text(t) => {
                let text = t.decode().unwrap().into_owned();
                let text = quick_xml::escape::unescape(&text).unwrap().into_owned();
                match (field.as_str(), cur.as_mut()) {
                    ("NextCursor", _) => next = text,
                    ("HasMore", _) => more = text == "true",
                    (f, Some(c)) if f != "Record" => {
                        c.entry(f.to_string()).or_default().push_str(&text);
                    }
                    _ => {}
                }
            }
            Event::GeneralRef(r) => {
                let name: &[u8] = &r;
                let text = match name {
                    b"lt" => "<",
                    b"gt" => ">",
                    b"amp" => "&",
                    b"quot" => "\"",
                    _ => "'",
                };
                if let Some(c) = cur.as_mut() {
                    c.entry(field.clone()).or_default().push_str(text);
                }
            }
            Event::End(e) => {
                path.pop();
                if e.name().as_ref() == b"Record" {
                    recs.push(cur.take().unwrap());
                }
                field = path.last().cloned().unwrap_or_default();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    (recs, next, more)
}

async fn pull_credit(c: &Client, cursors: &mut HashMap<&'static str, String>) -> Vec<Pulled> {
    let mut out = Vec::new();
    for (path, ty) in [
        ("/api/v2/penalties", "penalty"),
        ("/api/v2/licenses", "license"),
        ("/api/v2/credit-ratings", "credit_rating"),
    ] {
        loop {
            let mut params = vec![("limit", "113".to_string())];
            if let Some(cur) = cursors.get(path) {
                params.push(("cursor", cur.clone()));
            }
            let v = c.json(path, &params).await;
            for r in v["items"].as_array().unwrap() {
                let key = match ty {
                    "penalty" => format!("{}:{}", s(r, "CF_CFJGDM"), s(r, "CF_WSH")),
                    "license" => format!("{}:{}", s(r, "XK_XKJGDM"), s(r, "XK_WSH")),
                    _ => format!("{}:{}", s(r, "XY_ZTDM"), s(r, "XY_PJQJ")),
                };
                out.push((ty.to_string(), s(r, "ID"), key, r.clone()));
            }
            cursors.insert(path, s(&v, "next_cursor"));
            if !v["has_more"].as_bool().unwrap() {
                break;
            }
        }
    }
    loop {
        let mut params = vec![("limit", "61".to_string())];
        if let Some(cur) = cursors.get("legacy") {
            params.push(("cursor", cur.clone()));
        }
        let (status, headers, body) = c.get("/legacy/penalties.xml", &params).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "application/xml; charset=utf-8");
        let (recs, next, more) = xml_records(&body);
        for r in recs {
            let key = format!("{}:{}", r["CF_XZJGDM"], r["CF_WSH"]);
            let id = r["ID"].clone();
            out.push(("penalty".into(), id, key, serde_json::to_value(&r).unwrap()));
        }
        cursors.insert("legacy", next);
        if !more {
            break;
        }
    }
    out
}

fn decode_gbk_csv(body: &[u8]) -> Vec<BTreeMap<String, String>> {
    let (text, _, had_errors) = encoding_rs::GBK.decode(body);
    assert!(!had_errors, "CSV body is valid GBK");
    let mut rdr = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let headers: Vec<String> = rdr.headers().unwrap().iter().map(str::to_string).collect();
    rdr.records()
        .map(|r| {
            headers
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(str::to_string))
                .collect()
        })
        .collect()
}

async fn pull_double_random(c: &Client, since: Option<&str>) -> Vec<Pulled> {
    let mut out = Vec::new();
    let mut page = 1;
    loop {
        let mut params = vec![("page", page.to_string()), ("size", "37".to_string())];
        if let Some(t) = since {
            params.push(("modifiedSince", t.to_string()));
        }
        let v = c.json("/api/tasks", &params).await;
        for r in v["data"]["rows"].as_array().unwrap() {
            out.push((
                "spot_check_task".into(),
                s(r, "taskCode"),
                s(r, "taskCode"),
                r.clone(),
            ));
        }
        if page * 37 >= v["data"]["totalCount"].as_u64().unwrap() {
            break;
        }
        page += 1;
    }
    let mut page = 1;
    loop {
        let mut params = vec![("page", page.to_string()), ("size", "333".to_string())];
        if let Some(t) = since {
            params.push(("modifiedSince", t.to_string()));
        }
        let (status, headers, body) = c.get("/export/results.csv", &params).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "text/csv; charset=GBK");
        let total: u64 = headers["x-total-count"].to_str().unwrap().parse().unwrap();
        for r in decode_gbk_csv(&body) {
            let key = format!("{}:{}", r["任务编号"], r["统一社会信用代码"]);
            out.push((
                "spot_check_result".into(),
                r["记录编号"].clone(),
                key,
                serde_json::to_value(&r).unwrap(),
            ));
        }
        if page * 333 >= total {
            break;
        }
        page += 1;
    }
    out
}

async fn pull_hotline(c: &Client, after: &mut i64) -> Vec<Pulled> {
    let mut out = Vec::new();
    loop {
        let v = c
            .json(
                "/open/api/v1/workorders",
                &[
                    ("modifiedAfter", after.to_string()),
                    ("limit", "211".into()),
                ],
            )
            .await;
        assert_eq!(v["errcode"], 0);
        for r in v["data"]["records"].as_array().unwrap() {
            out.push((
                "hotline_ticket".into(),
                s(r, "orderNo"),
                s(r, "orderNo"),
                r.clone(),
            ));
        }
        *after = v["data"]["nextModifiedAfter"].as_i64().unwrap();
        if !v["data"]["hasMore"].as_bool().unwrap() {
            break;
        }
    }
    out
}

/// Checks that the pulled records are exactly truth.valid plus truth.invalid.
fn assert_matches_truth(system: &str, pulled: &[Pulled], truth: &Value) {
    let invalid: BTreeSet<String> = truth["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| s(v, "id"))
        .collect();
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut got_invalid = BTreeSet::new();
    for (ty, id, key, _) in pulled {
        if invalid.contains(id) {
            got_invalid.insert(id.clone());
        } else {
            got.entry(ty.clone()).or_default().push(key.clone());
        }
    }
    assert_eq!(got_invalid, invalid, "{system}: invalid ids");
    for (ty, keys) in truth["valid"].as_object().unwrap() {
        let want: Vec<String> = keys
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        let mut have = got.remove(ty).unwrap_or_default();
        let mut want_sorted = want.clone();
        have.sort();
        want_sorted.sort();
        let unique: BTreeSet<&String> = want.iter().collect();
        assert_eq!(
            unique.len(),
            want.len(),
            "{system}/{ty}: natural keys are unique"
        );
        assert_eq!(have, want_sorted, "{system}/{ty}: valid keys");
    }
    assert!(
        got.is_empty(),
        "{system}: unexpected types {:?}",
        got.keys()
    );
}

// ---------- independent checks of the national rules on valid records ----------

fn uscc_ok(s: &str) -> bool {
    const CS: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
    if s == "00000000000000000X" {
        return true;
    }
    let b: Vec<char> = s.chars().collect();
    if b.len() != 18 {
        return false;
    }
    let mut w = 1u32;
    let mut sum = 0;
    for c in &b[..17] {
        let Some(v) = CS.find(*c) else { return false };
        sum += v as u32 * w;
        w = w * 3 % 31;
    }
    CS.chars().nth(((31 - sum % 31) % 31) as usize) == Some(b[17])
}

fn rid_ok(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = (0..17)
        .map(|i| (b[i] - b'0') as u32 * (1u32 << (17 - i)) % 11)
        .sum();
    b"10X98765432"[(sum % 11) as usize] == b[17]
        && chrono::NaiveDate::parse_from_str(&s[6..14], "%Y%m%d").is_ok()
        && s.starts_with("6208")
}

#[tokio::test]
async fn every_stream_pages_to_exactly_the_truth() {
    let sims = start(3_000, 7).await;
    // provincial
    let c = Client::new(&sims, "provincial");
    let pulled = pull_provincial(&c, &mut HashMap::new()).await;
    let truth = c.truth(false).await;
    assert_matches_truth("provincial", &pulled, &truth);
    assert!(
        truth["invalid"].as_array().unwrap().len() > 50,
        "about 5% of 3000 are invalid"
    );
    let invalid: BTreeSet<String> = truth["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| s(v, "id"))
        .collect();
    let mut checked = 0;
    for (ty, id, _, r) in &pulled {
        if invalid.contains(id)
            || !matches!(ty.as_str(), "penalty" | "inspection" | "coercive_measure")
        {
            continue;
        }
        checked += 1;
        match s(r, "partyType").as_str() {
            "2" => {
                assert!(rid_ok(&s(r, "partyIdNo")), "{id}: resident id");
                assert!(
                    r.get("partyCreditCode").is_none(),
                    "{id}: no USCC for a natural person"
                );
            }
            "3" if s(r, "partyCreditCode") == "00000000000000000X" => {
                assert!(!s(r, "partyRegNo").is_empty())
            }
            _ => assert!(
                uscc_ok(&s(r, "partyCreditCode")),
                "{id}: party USCC {}",
                s(r, "partyCreditCode")
            ),
        }
        assert!(uscc_ok(&s(r, "orgCreditCode")));
        if ty != "penalty" {
            assert!(
                r["officers"].as_array().unwrap().len() >= 2,
                "{id}: two officers"
            );
        } else {
            if s(r, "penaltyType").split(',').any(|c| c == "03") {
                assert!(r["fineAmount"].as_u64().unwrap() > 0, "{id}: fine");
            }
            assert!(
                s(r, "decisionDate") <= s(r, "validUntil")
                    && s(r, "decisionDate") <= s(r, "publishUntil")
            );
            assert!(s(r, "decisionDate").as_str() < "2025-01-01");
        }
        if ty == "coercive_measure" && matches!(s(r, "measureType").as_str(), "2" | "3") {
            assert!(r["durationDays"].as_u64().unwrap() <= 30);
        }
    }
    assert!(checked > 2000);

    // internet-plus
    let c = Client::new(&sims, "internet-plus");
    let mut state = BTreeMap::new();
    for t in ["check_action", "punish_action", "force_action"] {
        pull_internet_plus(&c, t, None, &mut state).await;
    }
    let pulled: Vec<Pulled> = state.into_values().collect();
    assert_matches_truth("internet-plus", &pulled, &c.truth(false).await);

    // credit platform
    let c = Client::new(&sims, "credit-platform");
    let pulled = pull_credit(&c, &mut HashMap::new()).await;
    let truth = c.truth(false).await;
    assert_matches_truth("credit-platform", &pulled, &truth);
    let big = pulled
        .iter()
        .find(|p| p.0 == "penalty" && p.3.get("CF_NR_FK").is_some())
        .unwrap();
    let size = serde_json::to_vec(&big.3).unwrap().len();
    assert!(
        (900..2200).contains(&size),
        "a credit penalty is about 1.3 KB, got {size}"
    );

    // double-random
    let c = Client::new(&sims, "double-random");
    let pulled = pull_double_random(&c, None).await;
    assert_matches_truth("double-random", &pulled, &c.truth(false).await);

    // hotline
    let c = Client::new(&sims, "hotline-12345");
    let pulled = pull_hotline(&c, &mut 0).await;
    assert_eq!(pulled.len(), 3_000);
    assert_matches_truth("hotline-12345", &pulled, &c.truth(false).await);
    sims.shutdown().await;
}

#[tokio::test]
async fn a_third_of_provincial_penalties_reappear_on_the_credit_platform() {
    let sims = start(2_000, 11).await;
    let p = Client::new(&sims, "provincial").truth(false).await;
    let c = Client::new(&sims, "credit-platform").truth(false).await;
    let prov: BTreeSet<&str> = p["valid"]["penalty"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let shared = c["valid"]["penalty"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| prov.contains(k.as_str().unwrap()))
        .count();
    // 800 provincial penalties, ~30% shared, minus records invalid on either side
    assert!((180..=245).contains(&shared), "shared penalties: {shared}");
    sims.shutdown().await;
}

#[tokio::test]
async fn mutations_reach_incremental_pulls_and_deletes_leave_the_truth() {
    let sims = start(1_500, 3).await;
    // internet-plus: checkpoint next_batch, mutate, continue from the checkpoint
    let c = Client::new(&sims, "internet-plus");
    let mut state = BTreeMap::new();
    let mut checkpoints = Vec::new();
    for t in ["check_action", "punish_action", "force_action"] {
        checkpoints.push(pull_internet_plus(&c, t, None, &mut state).await.0);
    }
    let m = c
        .admin(
            "mutate",
            serde_json::json!({"updates": 6, "deletes": 4, "inserts": 5}),
        )
        .await;
    assert_eq!(m["updated"].as_array().unwrap().len(), 6);
    assert_eq!(m["deleted"].as_array().unwrap().len(), 4);
    assert_eq!(m["inserted"].as_array().unwrap().len(), 5);
    let mut ops = Vec::new();
    for (t, cp) in ["check_action", "punish_action", "force_action"]
        .iter()
        .zip(checkpoints)
    {
        let (_, rows) = pull_internet_plus(&c, t, Some(cp), &mut state).await;
        ops.extend(rows.iter().map(|r| (s(r, "cd_operation"), s(r, "cd_id"))));
    }
    let count = |op: &str| ops.iter().filter(|(o, _)| o == op).count();
    assert_eq!((count("u"), count("d"), count("i")), (6, 4, 5), "{ops:?}");
    for d in m["deleted"].as_array().unwrap() {
        assert!(ops.contains(&("d".to_string(), s(d, "id"))));
    }
    let truth = c.truth(false).await;
    let pulled: Vec<Pulled> = state.into_values().collect();
    assert_matches_truth("internet-plus after mutation", &pulled, &truth);
    for d in m["deleted"].as_array().unwrap() {
        let keys = &truth["valid"][s(d, "type")];
        assert!(
            !keys
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k.as_str() == Some(&s(d, "key"))),
            "deleted key left the truth"
        );
    }

    // provincial: updatedSince the largest updateTime seen
    let c = Client::new(&sims, "provincial");
    let mut checkpoints = HashMap::new();
    pull_provincial(&c, &mut checkpoints).await;
    let m = c
        .admin(
            "mutate",
            serde_json::json!({"updates": 5, "deletes": 2, "inserts": 3}),
        )
        .await;
    assert!(
        m["deleted"].as_array().unwrap().is_empty() && !m["notes"].as_array().unwrap().is_empty()
    );
    let changed = pull_provincial(&c, &mut checkpoints).await;
    let ids: BTreeSet<String> = changed.iter().map(|p| p.1.clone()).collect();
    let want: BTreeSet<String> = m["updated"]
        .as_array()
        .unwrap()
        .iter()
        .chain(m["inserted"].as_array().unwrap())
        .map(|v| s(v, "id"))
        .collect();
    assert_eq!(ids, want);
    let upd = m["updated"][0]["id"].as_str().unwrap();
    let rec = &changed.iter().find(|p| p.1 == upd).unwrap().3;
    assert!(
        rec.to_string().contains("（更正"),
        "an update changes a content field: {rec}"
    );

    // hotline keyset and credit cursors continue after mutations too
    let c = Client::new(&sims, "hotline-12345");
    let mut after = 0;
    pull_hotline(&c, &mut after).await;
    let m = c
        .admin("mutate", serde_json::json!({"updates": 2, "inserts": 1}))
        .await;
    let changed = pull_hotline(&c, &mut after).await;
    assert_eq!(changed.len(), m["updated"].as_array().unwrap().len() + 1);
    let c = Client::new(&sims, "credit-platform");
    let mut cursors = HashMap::new();
    pull_credit(&c, &mut cursors).await;
    c.admin("mutate", serde_json::json!({"updates": 4, "inserts": 2}))
        .await;
    assert_eq!(pull_credit(&c, &mut cursors).await.len(), 6);
    sims.shutdown().await;
}

#[tokio::test]
async fn auth_failures_use_each_systems_own_format() {
    let sims = start(100, 1).await;
    let http = reqwest::Client::new();
    let cases = [
        ("provincial", "/api/v1/penalties", "code"),
        ("internet-plus", "/exchange/check_action", "errCode"),
        ("credit-platform", "/api/v2/penalties", "code"),
        ("double-random", "/export/results.csv", "resultCode"),
        ("hotline-12345", "/open/api/v1/workorders", "errcode"),
    ];
    for (system, path, field) in cases {
        let resp = http
            .get(format!("{}{path}", sims.url(system).unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{system}");
        let v: Value = resp.json().await.unwrap();
        assert!(v.get(field).is_some(), "{system}: {v}");
    }
    // a wrong signature is named as such
    let base = sims.url("internet-plus").unwrap();
    let v: Value = http
        .get(format!("{base}/exchange/check_action"))
        .header("X-App-Key", cred("XIEZHI_INTERNET_PLUS_APP_KEY"))
        .header("X-Timestamp", now_ms().to_string())
        .header("X-Nonce", nonce())
        .header("X-Signature", "00")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v,
        serde_json::json!({"success": false, "errCode": "SIGN_INVALID", "errMsg": "signature mismatch"})
    );
    let base = sims.url("credit-platform").unwrap();
    let v: Value = http
        .get(format!(
            "{base}/api/v2/penalties?appKey={}&timestamp={}&nonce=x&sign=bad",
            cred("XIEZHI_CREDIT_APP_KEY"),
            now_ms()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v,
        serde_json::json!({"status": "ERROR", "code": "4011", "message": "签名错误"})
    );
    // a replayed nonce is refused
    let c = Client::new(&sims, "hotline-12345");
    let (key, ts, n) = (
        cred("XIEZHI_HOTLINE_APP_KEY"),
        (now_ms() / 1000).to_string(),
        nonce(),
    );
    let sig = hmac_hex(
        &cred("XIEZHI_HOTLINE_APP_SECRET"),
        &format!("GET\n/open/api/v1/workorders\n\n{key}\n{ts}\n{n}"),
    );
    let send = || {
        c.http
            .get(format!("{}/open/api/v1/workorders", c.base))
            .header("X-Hotline-Key", &key)
            .header("X-Hotline-Ts", &ts)
            .header("X-Hotline-Nonce", &n)
            .header("X-Hotline-Sign", &sig)
            .send()
    };
    assert_eq!(send().await.unwrap().status().as_u16(), 200);
    let again = send().await.unwrap();
    assert_eq!(again.status().as_u16(), 401);
    assert_eq!(again.json::<Value>().await.unwrap()["errcode"], 40004);
    // credit signature with auth parameters in the query string
    let c = Client::new(&sims, "credit-platform");
    let (key, ts, n) = (cred("XIEZHI_CREDIT_APP_KEY"), now_ms().to_string(), nonce());
    let q = sorted_query(&[
        ("appKey", key.clone()),
        ("limit", "2".into()),
        ("nonce", n.clone()),
        ("timestamp", ts.clone()),
    ]);
    let sign = hex::encode(sm3::Sm3::digest(
        format!(
            "{key}\n{ts}\n{n}\nGET\n/api/v2/licenses\n{q}\n{}",
            cred("XIEZHI_CREDIT_APP_SECRET")
        )
        .as_bytes(),
    ));
    let resp = c
        .http
        .get(format!("{}/api/v2/licenses?{q}&sign={sign}", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    sims.shutdown().await;
}

#[tokio::test]
async fn same_seed_gives_the_same_bytes() {
    let a = start(800, 99).await;
    let b = start(800, 99).await;
    let other = start(800, 100).await;
    for (system, path, params) in [
        (
            "provincial",
            "/api/v1/penalties",
            vec![("page", "2".to_string()), ("size", "50".to_string())],
        ),
        ("internet-plus", "/exchange/punish_action", vec![]),
        ("credit-platform", "/legacy/penalties.xml", vec![]),
        ("double-random", "/export/results.csv", vec![]),
        (
            "hotline-12345",
            "/open/api/v1/workorders",
            vec![("limit", "100".to_string())],
        ),
    ] {
        let x = Client::new(&a, system).get(path, &params).await;
        let y = Client::new(&b, system).get(path, &params).await;
        let z = Client::new(&other, system).get(path, &params).await;
        assert_eq!(x.0, 200);
        assert!(x.2 == y.2, "{system}: same seed, same bytes");
        assert!(x.2 != z.2, "{system}: another seed, other data");
    }
    for s in [a, b, other] {
        s.shutdown().await;
    }
}

#[tokio::test]
async fn faults_are_injected_deterministically() {
    let sims = start(200, 5).await;
    let c = Client::new(&sims, "provincial");
    c.admin("faults", serde_json::json!({"error_rate": 1.0}))
        .await;
    let (status, _, body) = c.get("/api/v1/penalties", &[]).await;
    assert!(status == 500 || status == 503);
    assert!(
        serde_json::from_slice::<Value>(&body).unwrap()["code"]
            .as_u64()
            .unwrap()
            >= 500
    );
    c.admin("faults", serde_json::json!({"rate_limit_rate": 1.0}))
        .await;
    let (status, headers, _) = c.get("/api/v1/penalties", &[]).await;
    assert_eq!(
        (status, headers["retry-after"].to_str().unwrap()),
        (429, "1")
    );
    c.admin("faults", serde_json::json!({"truncate_rate": 1.0}))
        .await;
    let (status, _, body) = c.get("/api/v1/penalties", &[]).await;
    assert_eq!(status, 200);
    assert!(
        serde_json::from_slice::<Value>(&body).is_err(),
        "truncated JSON does not parse"
    );
    c.admin("faults", serde_json::json!({})).await;
    assert_eq!(c.get("/api/v1/penalties", &[]).await.0, 200);
    // half the requests fail, and a restart with the same seed fails the same ones
    let pattern = |sims: Simulators| async move {
        let c = Client::new(&sims, "double-random");
        c.admin("faults", serde_json::json!({"error_rate": 0.5}))
            .await;
        let mut v = Vec::new();
        for _ in 0..40 {
            v.push(c.get("/api/tasks", &[]).await.0);
        }
        sims.shutdown().await;
        v
    };
    let p1 = pattern(sims).await;
    let p2 = pattern(start(200, 5).await).await;
    assert_eq!(p1, p2);
    let failed = p1.iter().filter(|s| **s >= 500).count();
    assert!((8..=32).contains(&failed), "{failed} of 40 failed");
}

#[tokio::test]
async fn a_million_records_start_instantly_and_summarise() {
    let t = std::time::Instant::now();
    let sims = start(1_000_000, 42).await;
    assert!(
        t.elapsed() < std::time::Duration::from_secs(3),
        "start took {:?}",
        t.elapsed()
    );
    for (system, _) in sims.systems() {
        let c = Client {
            http: reqwest::Client::new(),
            base: sims.url(&system).unwrap(),
            system: "provincial",
        };
        let v = c.truth(true).await;
        let valid: u64 = v["valid"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum();
        let invalid = v["invalid"].as_u64().unwrap();
        let reference = if system == "provincial" {
            85 + 85 * 6
        } else {
            0
        };
        assert_eq!(valid + invalid, 1_000_000 + reference, "{system}: {v}");
        assert!(
            (40_000..60_000).contains(&invalid),
            "{system}: ~5% invalid, got {invalid}"
        );
    }
    // a page deep in the stream is served without materialising anything
    let c = Client::new(&sims, "credit-platform");
    let v = c.json("/api/v2/penalties", &[("limit", "5".into())]).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 5);
    let p = Client::new(&sims, "provincial");
    let v = p
        .json(
            "/api/v1/penalties",
            &[("page", "700".into()), ("size", "500".into())],
        )
        .await;
    assert_eq!(v["data"]["total"], 400_000);
    assert_eq!(v["data"]["list"].as_array().unwrap().len(), 500);
    sims.shutdown().await;
}

/// Throughput of the heaviest stream; run with
/// `cargo test --release --lib sim::tests::credit_penalty_throughput -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn credit_penalty_throughput() {
    let sims = start(1_000_000, 42).await;
    let c = Client::new(&sims, "credit-platform");
    let t = std::time::Instant::now();
    let mut cursors = HashMap::new();
    let mut n = 0usize;
    let mut bytes = 0usize;
    while n < 200_000 {
        let mut params = vec![("limit", "1000".to_string())];
        if let Some(cur) = cursors.get("p") {
            params.push(("cursor", String::clone(cur)));
        }
        let (_, _, body) = c.get("/api/v2/penalties", &params).await;
        bytes += body.len();
        let v: Value = serde_json::from_slice(&body).unwrap();
        n += v["items"].as_array().unwrap().len();
        cursors.insert("p", s(&v, "next_cursor"));
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{n} records, {:.0} records/s, {:.0} bytes/record",
        n as f64 / secs,
        bytes as f64 / n as f64
    );
    sims.shutdown().await;
}

/// Prints the first record of every stream, for people writing mapping files:
/// `cargo test --lib sim::tests::print_samples -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn print_samples() {
    let sims = start(200, 620_822).await;
    let show = |name: &str, body: &[u8]| {
        let text = String::from_utf8_lossy(body);
        println!(
            "== {name}\n{}\n",
            text.chars().take(2500).collect::<String>()
        );
    };
    let p = Client::new(&sims, "provincial");
    for s in [
        "agencies",
        "officers",
        "items",
        "inspections",
        "penalties",
        "coercive-measures",
    ] {
        show(
            s,
            &p.get(&format!("/api/v1/{s}"), &[("size", "1".into())])
                .await
                .2,
        );
    }
    let c = Client::new(&sims, "internet-plus");
    for t in ["check_action", "punish_action", "force_action"] {
        let v = c.json(&format!("/exchange/{t}"), &[]).await;
        show(
            t,
            serde_json::to_string_pretty(&v["rows"][0])
                .unwrap()
                .as_bytes(),
        );
    }
    let c = Client::new(&sims, "credit-platform");
    for path in [
        "/api/v2/penalties",
        "/api/v2/licenses",
        "/api/v2/credit-ratings",
        "/legacy/penalties.xml",
    ] {
        show(path, &c.get(path, &[("limit", "1".into())]).await.2);
    }
    let c = Client::new(&sims, "double-random");
    show(
        "tasks",
        &c.get("/api/tasks", &[("size", "1".into())]).await.2,
    );
    let (_, _, body) = c.get("/export/results.csv", &[("size", "2".into())]).await;
    show(
        "results.csv (decoded)",
        encoding_rs::GBK.decode(&body).0.as_bytes(),
    );
    let c = Client::new(&sims, "hotline-12345");
    show(
        "workorders",
        &c.get("/open/api/v1/workorders", &[("limit", "1".into())])
            .await
            .2,
    );
    sims.shutdown().await;
    assert!(!SYSTEMS.is_empty());
}
