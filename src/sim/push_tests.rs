//! Pushes into the simulators over real loopback HTTP: records are taken from the systems' own
//! pull APIs (so their shapes are right), signed by the test's own code, sent back, and must be
//! judged the way `/truth` judges them; hand-broken items must be refused with the right codes.

use super::tests::{Client, cred, enc, hmac_hex, nonce, now_ms, s, start};
use serde_json::{Value, json};
use sm3::Digest;
use std::collections::{BTreeMap, BTreeSet};

const PENALTIES: &str = "/api/v2/publish/penalties";
const LICENSES: &str = "/api/v2/publish/licenses";
const CHECK_ACTION: &str = "/exchange/check_action";
const SPOT_RESULTS: &str = "/api/v2/publish/spot-check-results";
const TIERS: &str = "/api/credit-tiers";
const OUTCOMES: &str = "/open/api/v1/workorders/outcomes";

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// How to sign a push.
#[derive(Clone, Copy, PartialEq)]
enum Sign {
    Right,
    /// signed as if it were a GET: the method is part of the signed text
    AsGet,
    Garbage,
    None,
}

/// A signed POST (credit SM3 or exchange HMAC, by path) with an optional Idempotency-Key.
async fn post(c: &Client, path: &str, key: Option<&str>, body: Vec<u8>, sign: Sign) -> Reply {
    let method = if sign == Sign::AsGet { "GET" } else { "POST" };
    let mut req = c
        .http
        .post(format!("{}{path}", c.base))
        .header("content-type", "application/json")
        .body(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    if sign != Sign::None {
        let n = nonce();
        if path == TIERS {
            let token = if sign == Sign::Garbage {
                "garbage".to_string()
            } else {
                cred("XIEZHI_DOUBLE_RANDOM_TOKEN")
            };
            req = req.bearer_auth(token);
        } else if path == OUTCOMES {
            let (app, ts) = (
                cred("XIEZHI_HOTLINE_APP_KEY"),
                (now_ms() / 1000).to_string(),
            );
            let mut sig = hmac_hex(
                &cred("XIEZHI_HOTLINE_APP_SECRET"),
                &format!("{method}\n{path}\n\n{app}\n{ts}\n{n}"),
            );
            if sign == Sign::Garbage {
                sig = "00".into();
            }
            req = req
                .header("X-Hotline-Key", app)
                .header("X-Hotline-Ts", ts)
                .header("X-Hotline-Nonce", n)
                .header("X-Hotline-Sign", sig);
        } else if path == CHECK_ACTION {
            let (app, ts) = (cred("XIEZHI_INTERNET_PLUS_APP_KEY"), now_ms().to_string());
            let mut sig = hmac_hex(
                &cred("XIEZHI_INTERNET_PLUS_APP_SECRET"),
                &format!("{app}\n{ts}\n{n}\n{method}\n{path}\n"),
            );
            if sign == Sign::Garbage {
                sig = "00".into();
            }
            req = req
                .header("X-App-Key", app)
                .header("X-Timestamp", ts)
                .header("X-Nonce", n)
                .header("X-Signature", sig);
        } else {
            let (app, ts) = (cred("XIEZHI_CREDIT_APP_KEY"), now_ms().to_string());
            let msg = format!(
                "{app}\n{ts}\n{n}\n{method}\n{path}\n\n{}",
                cred("XIEZHI_CREDIT_APP_SECRET")
            );
            let mut sig = hex::encode(sm3::Sm3::digest(msg.as_bytes()));
            if sign == Sign::Garbage {
                sig = "bad".into();
            }
            req = req
                .header("appKey", app)
                .header("timestamp", ts)
                .header("nonce", n)
                .header("sign", sig);
        }
    }
    let resp = req.send().await.unwrap();
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

/// `{"items": [...]}` written by hand so that each item's bytes are known.
fn items_body(items: &[String]) -> Vec<u8> {
    format!("{{\"items\":[{}]}}", items.join(",")).into_bytes()
}

fn rows_body(batch: &str, rows: &[String]) -> Vec<u8> {
    format!("{{\"batch_no\":\"{batch}\",\"rows\":[{}]}}", rows.join(",")).into_bytes()
}

fn texts(items: &[Value]) -> Vec<String> {
    items.iter().map(|v| v.to_string()).collect()
}

async fn ledger(c: &Client) -> Value {
    c.http
        .get(format!("{}/_admin/accepted", c.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn keys(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

/// (field, code) of every error of one result.
fn errors(result: &Value, field: &str, message: &str) -> Vec<(String, String)> {
    result["errors"]
        .as_array()
        .map(|es| {
            es.iter()
                .map(|e| {
                    assert!(!s(e, message).is_empty(), "every error has a message: {e}");
                    (s(e, field), s(e, "code"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What `/truth` says about one upstream id: None = valid, else the reason.
fn reasons(truth: &Value) -> BTreeMap<String, String> {
    truth["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (s(v, "id"), s(v, "reason")))
        .collect()
}

/// The one error the platform must report for a record `/truth` lists as broken.
fn expected_for(reason: &str, prefix: &str) -> (String, String) {
    let (field, code) = if reason.starts_with("bad USCC") {
        (format!("{prefix}_XDR_SHXYM"), "E_USCC")
    } else if reason.starts_with("bad resident-ID") {
        (format!("{prefix}_XDR_ZJHM"), "E_IDCARD")
    } else if let Some(f) = reason.strip_prefix("missing required field ") {
        (f.to_string(), "E_REQUIRED")
    } else if let Some(rest) = reason.strip_prefix("unknown code ") {
        (rest.split('=').next().unwrap().to_string(), "E_CODE")
    } else if let Some(rest) = reason.strip_prefix("impossible date ") {
        (rest.split('=').next().unwrap().to_string(), "E_DATE")
    } else {
        panic!("unexpected reason {reason}")
    };
    (field, code.to_string())
}

#[tokio::test]
async fn credit_platform_takes_valid_publications_and_refuses_what_truth_calls_broken() {
    let sims = start(2_000, 21).await;
    let c = Client::new(&sims, "credit-platform");
    let truth = c.truth(false).await;
    let why = reasons(&truth);
    let mut requests = 0;
    let (mut ok_total, mut bad_total) = (0, 0);
    for (pull, push, prefix, rtype, agency, number) in [
        (
            "/api/v2/penalties",
            PENALTIES,
            "CF",
            "penalty",
            "CF_CFJGDM",
            "CF_WSH",
        ),
        (
            "/api/v2/licenses",
            LICENSES,
            "XK",
            "license",
            "XK_XKJGDM",
            "XK_WSH",
        ),
    ] {
        let pulled = c.json(pull, &[("limit", "1000".into())]).await["items"]
            .as_array()
            .unwrap()
            .clone();
        assert!(pulled.len() >= 90, "{rtype}: {}", pulled.len());
        let mut broken = 0;
        for (n, chunk) in pulled.chunks(100).enumerate() {
            let r = post(
                &c,
                push,
                Some(&format!("{rtype}-{n}")),
                items_body(&texts(chunk)),
                Sign::Right,
            )
            .await;
            requests += 1;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let v = r.json();
            assert_eq!((s(&v, "code"), s(&v, "message")), ("0".into(), "ok".into()));
            let results = v["results"].as_array().unwrap();
            assert_eq!(results.len(), chunk.len());
            let mut accepted = 0;
            for (i, (item, res)) in chunk.iter().zip(results).enumerate() {
                assert_eq!(res["index"], i);
                assert_eq!(
                    s(res, "key"),
                    format!("{}:{}", s(item, agency), s(item, number))
                );
                let id = s(item, "ID");
                match why.get(&id) {
                    None => {
                        assert_eq!(s(res, "status"), "accepted", "{id}: {res}");
                        assert_eq!(res["errors"], json!([]));
                        accepted += 1;
                    }
                    Some(reason) => {
                        broken += 1;
                        assert_eq!(s(res, "status"), "rejected", "{id} ({reason}): {res}");
                        assert_eq!(
                            errors(res, "field", "message"),
                            vec![expected_for(reason, prefix)],
                            "{id} ({reason})"
                        );
                    }
                }
            }
            assert_eq!(v["accepted"], accepted);
            assert_eq!(v["rejected"], chunk.len() - accepted);
        }
        assert!(broken > 0, "{rtype}: some records are broken on purpose");
        // truth's penalties include the legacy XML feed, which is not pushed here
        let want: BTreeSet<String> = pulled
            .iter()
            .filter(|item| !why.contains_key(&s(item, "ID")))
            .map(|item| format!("{}:{}", s(item, agency), s(item, number)))
            .collect();
        let valid: BTreeSet<String> = keys(&truth["valid"][rtype]).into_iter().collect();
        assert!(want.is_subset(&valid));
        let got = keys(&ledger(&c).await["accepted"][rtype]);
        assert!(got.windows(2).all(|w| w[0] < w[1]), "sorted, once each");
        assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want, "{rtype}");
        ok_total += want.len();
        bad_total += broken;
    }
    let l = ledger(&c).await;
    assert_eq!(l["system"], "credit-platform");
    assert_eq!(l["requests"], requests);
    assert_eq!(l["items_accepted"], ok_total);
    assert_eq!(l["items_rejected"], bad_total);
    assert_eq!(l["duplicates"], 0);
    assert_eq!(
        l["withdrawn"],
        json!({"penalty": [], "license": [], "spot_check_result": []})
    );
    sims.shutdown().await;
}

fn set(item: &Value, field: &str, v: Value) -> Value {
    let mut x = item.clone();
    x[field] = v;
    x
}

fn without(item: &Value, field: &str) -> Value {
    let mut x = item.clone();
    x.as_object_mut().unwrap().remove(field);
    x
}

/// Replaces the check character of an identifier with another valid-looking one.
fn bad_check(id: &str) -> String {
    let mut b = id.to_string();
    let last = b.pop().unwrap();
    b.push(if last == '1' { '2' } else { '1' });
    b
}

fn day_before(slash_date: &str) -> String {
    let d = chrono::NaiveDate::parse_from_str(slash_date, "%Y/%m/%d").unwrap();
    (d - chrono::Duration::days(1))
        .format("%Y/%m/%d")
        .to_string()
}

/// Pulls one stream of the credit platform and keeps the records `/truth` calls valid.
async fn valid_items(c: &Client, path: &str) -> Vec<Value> {
    let why = reasons(&c.truth(false).await);
    c.json(path, &[("limit", "1000".into())]).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| !why.contains_key(&s(v, "ID")))
        .cloned()
        .collect()
}

#[tokio::test]
async fn credit_platform_names_each_problem_by_field_and_code() {
    let sims = start(600, 22).await;
    let c = Client::new(&sims, "credit-platform");
    let penalties = valid_items(&c, "/api/v2/penalties").await;
    // a company's fine, so that the three bases below are distinct publications
    let fined = penalties
        .iter()
        .find(|p| {
            s(p, "CF_CFLB").split(';').any(|c| c == "罚款")
                && s(p, "CF_XDR_LB") == "法人及非法人组织"
        })
        .unwrap();
    let person = penalties
        .iter()
        .find(|p| s(p, "CF_XDR_LB") == "自然人")
        .unwrap();
    let placeholder = penalties
        .iter()
        .find(|p| s(p, "CF_XDR_SHXYM") == "00000000000000000X")
        .unwrap();
    let jdrq = s(fined, "CF_JDRQ");
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (fined.clone(), vec![]),
        (person.clone(), vec![]),
        (placeholder.clone(), vec![]),
        (set(fined, "OP", json!("U")), vec![]),
        (
            set(fined, "CF_CFJGDM", json!(bad_check(&s(fined, "CF_CFJGDM")))),
            vec![("CF_CFJGDM", "E_USCC")],
        ),
        (
            set(fined, "CF_SJLYDM", json!(bad_check(&s(fined, "CF_SJLYDM")))),
            vec![("CF_SJLYDM", "E_USCC")],
        ),
        (
            set(fined, "CF_JDRQ", json!("2024/13/01")),
            vec![("CF_JDRQ", "E_DATE")],
        ),
        (
            set(fined, "CF_JDRQ", json!(jdrq.replace('/', "-"))),
            vec![("CF_JDRQ", "E_DATE")],
        ),
        (
            set(fined, "CF_CFLB", json!("罚款;罚金")),
            vec![("CF_CFLB", "E_CODE")],
        ),
        (
            set(fined, "CF_NR_FK", Value::Null),
            vec![("CF_NR_FK", "E_REQUIRED")],
        ),
        (without(fined, "CF_NR_FK"), vec![("CF_NR_FK", "E_REQUIRED")]),
        (
            set(fined, "CF_NR_FK", json!(-1)),
            vec![("CF_NR_FK", "E_AMOUNT")],
        ),
        (
            set(fined, "CF_NR_FK", json!(0.1234567)),
            vec![("CF_NR_FK", "E_AMOUNT")],
        ),
        (
            set(fined, "CF_NR_FK", json!("0.2")),
            vec![("CF_NR_FK", "E_AMOUNT")],
        ),
        (
            set(fined, "CF_YXQ", json!(day_before(&jdrq))),
            vec![("CF_YXQ", "E_RANGE")],
        ),
        (set(fined, "OP", json!("X")), vec![("OP", "E_CODE")]),
        (
            set(fined, "CF_FOO", json!("x")),
            vec![("CF_FOO", "E_UNKNOWN")],
        ),
        (
            set(fined, "CF_WSH", json!("")),
            vec![("CF_WSH", "E_REQUIRED")],
        ),
        (set(fined, "CF_WSH", json!(123)), vec![("CF_WSH", "E_TYPE")]),
        (
            set(fined, "CF_XDR_LB", json!("企业")),
            vec![("CF_XDR_LB", "E_CODE")],
        ),
        (
            set(
                person,
                "CF_XDR_ZJHM",
                json!(bad_check(&s(person, "CF_XDR_ZJHM"))),
            ),
            vec![("CF_XDR_ZJHM", "E_IDCARD")],
        ),
        (
            set(person, "CF_XDR_ZJLX", json!("")),
            vec![("CF_XDR_ZJLX", "E_REQUIRED")],
        ),
        (
            set(person, "CF_XDR_ZJLX", json!("驾驶证")),
            vec![("CF_XDR_ZJLX", "E_CODE")],
        ),
        (
            set(placeholder, "CF_XDR_GSZC", json!("")),
            vec![("CF_XDR_GSZC", "E_REQUIRED")],
        ),
        (
            set(fined, "CF_XDR_SHXYM", json!("")),
            vec![("CF_XDR_SHXYM", "E_REQUIRED")],
        ),
        (
            set(
                fined,
                "CF_XDR_ZZJG",
                json!(bad_check(&s(fined, "CF_XDR_ZZJG"))),
            ),
            vec![("CF_XDR_ZZJG", "E_ORGCODE")],
        ),
        (json!("not an object"), vec![("", "E_TYPE")]),
    ];
    let items: Vec<String> = cases.iter().map(|(v, _)| v.to_string()).collect();
    let r = post(
        &c,
        PENALTIES,
        Some("broken-1"),
        items_body(&items),
        Sign::Right,
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    for (i, ((item, want), res)) in cases
        .iter()
        .zip(v["results"].as_array().unwrap())
        .enumerate()
    {
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(f, c)| (f.to_string(), c.to_string()))
            .collect();
        assert_eq!(errors(res, "field", "message"), want, "case {i}: {item}");
        let status = if want.is_empty() {
            "accepted"
        } else {
            "rejected"
        };
        assert_eq!(s(res, "status"), status, "case {i}");
    }
    // the same publication sent as I and as U counts once
    let l = ledger(&c).await;
    assert_eq!(keys(&l["accepted"]["penalty"]).len(), 3);
    assert_eq!(l["items_accepted"], 4);
    assert_eq!(l["unchanged"], 1);

    let licenses = valid_items(&c, "/api/v2/licenses").await;
    let lic = &licenses[0];
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (lic.clone(), vec![]),
        (
            set(lic, "XK_XKLB", json!("特别许可")),
            vec![("XK_XKLB", "E_CODE")],
        ),
        (
            set(lic, "XK_YXQZI", json!(day_before(&s(lic, "XK_YXQZ")))),
            vec![("XK_YXQZI", "E_RANGE")],
        ),
        (set(lic, "XK_ZT", json!("3")), vec![("XK_ZT", "E_CODE")]),
        (set(lic, "XK_NR", json!(" ")), vec![("XK_NR", "E_REQUIRED")]),
        (
            set(lic, "XK_XKJGDM", json!(bad_check(&s(lic, "XK_XKJGDM")))),
            vec![("XK_XKJGDM", "E_USCC")],
        ),
        (set(lic, "DFBM", json!("6208")), vec![("DFBM", "E_FORMAT")]),
    ];
    let items: Vec<String> = cases.iter().map(|(v, _)| v.to_string()).collect();
    let v = post(
        &c,
        LICENSES,
        Some("broken-2"),
        items_body(&items),
        Sign::Right,
    )
    .await
    .json();
    for (i, ((item, want), res)) in cases
        .iter()
        .zip(v["results"].as_array().unwrap())
        .enumerate()
    {
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(f, c)| (f.to_string(), c.to_string()))
            .collect();
        assert_eq!(
            errors(res, "field", "message"),
            want,
            "licence case {i}: {item}"
        );
    }
    assert_eq!(
        keys(&ledger(&c).await["accepted"]["license"]),
        vec![format!("{}:{}", s(lic, "XK_XKJGDM"), s(lic, "XK_WSH"))]
    );
    sims.shutdown().await;
}

#[tokio::test]
async fn credit_pushes_are_idempotent_bounded_and_signed() {
    let sims = start(300, 23).await;
    let c = Client::new(&sims, "credit-platform");
    let items = texts(&valid_items(&c, "/api/v2/penalties").await);
    let first = post(
        &c,
        PENALTIES,
        Some("k-1"),
        items_body(&items[..2]),
        Sign::Right,
    )
    .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["accepted"], 2);
    let before = ledger(&c).await;
    // the same key again, even with another body: the first answer, byte for byte, nothing changed
    let again = post(
        &c,
        PENALTIES,
        Some("k-1"),
        items_body(&items[2..5]),
        Sign::Right,
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body);
    let mut after = ledger(&c).await;
    assert_eq!(after["duplicates"], 1);
    after["duplicates"] = before["duplicates"].clone();
    assert_eq!(after, before);
    // keys are per endpoint
    let lic = texts(&valid_items(&c, "/api/v2/licenses").await);
    let other = post(
        &c,
        LICENSES,
        Some("k-1"),
        items_body(&lic[..1]),
        Sign::Right,
    )
    .await;
    assert_eq!(other.json()["accepted"], 1);

    let refused = |r: &Reply, status: u16, code: &str| {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        assert_eq!(
            (s(&v, "status"), s(&v, "code")),
            ("ERROR".into(), code.into()),
            "{v}"
        );
        assert!(!s(&v, "message").is_empty());
    };
    let body = items_body(&items[..1]);
    refused(
        &post(&c, PENALTIES, None, body.clone(), Sign::Right).await,
        400,
        "4000",
    );
    let long = "k".repeat(129);
    refused(
        &post(&c, PENALTIES, Some(&long), body.clone(), Sign::Right).await,
        400,
        "4000",
    );
    let many: Vec<String> = (0..101).map(|i| items[i % items.len()].clone()).collect();
    refused(
        &post(&c, PENALTIES, Some("k-2"), items_body(&many), Sign::Right).await,
        413,
        "4130",
    );
    refused(
        &post(&c, PENALTIES, Some("k-3"), items_body(&[]), Sign::Right).await,
        400,
        "4000",
    );
    refused(
        &post(
            &c,
            PENALTIES,
            Some("k-4"),
            b"not json".to_vec(),
            Sign::Right,
        )
        .await,
        400,
        "4000",
    );
    refused(
        &post(
            &c,
            PENALTIES,
            Some("k-5"),
            br#"{"items":{}}"#.to_vec(),
            Sign::Right,
        )
        .await,
        400,
        "4000",
    );
    // auth: the pull endpoints' format and codes
    let bad = post(&c, PENALTIES, Some("k-6"), body.clone(), Sign::Garbage).await;
    assert_eq!(bad.status, 401);
    assert_eq!(
        bad.json(),
        json!({"status": "ERROR", "code": "4011", "message": "签名错误"})
    );
    refused(
        &post(&c, PENALTIES, Some("k-7"), body.clone(), Sign::AsGet).await,
        401,
        "4011",
    );
    refused(
        &post(&c, PENALTIES, Some("k-8"), body.clone(), Sign::None).await,
        401,
        "4010",
    );
    // none of the refused requests was processed or burnt its key
    let mut l = ledger(&c).await;
    assert_eq!(l["requests"], 2);
    assert_eq!(l["items_accepted"], 3);
    l["accepted"]["license"] = json!([]);
    l["items_accepted"] = json!(2);
    l["requests"] = json!(1);
    l["duplicates"] = json!(0);
    assert_eq!(l, before);
    let ok = post(
        &c,
        PENALTIES,
        Some("k-2"),
        items_body(&items[5..6]),
        Sign::Right,
    )
    .await;
    assert_eq!(ok.json()["accepted"], 1);
    sims.shutdown().await;
}

#[tokio::test]
async fn credit_withdrawal_removes_the_publication_and_is_remembered() {
    let sims = start(300, 24).await;
    let c = Client::new(&sims, "credit-platform");
    let item = valid_items(&c, "/api/v2/penalties").await.remove(0);
    let key = format!("{}:{}", s(&item, "CF_CFJGDM"), s(&item, "CF_WSH"));
    let raw = item.to_string();
    let get = |key: String| {
        let url = format!("{}/_admin/accepted/penalty/{}", c.base, enc(&key));
        let http = c.http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    assert_eq!(get(key.clone()).await.status().as_u16(), 404);
    let r = post(
        &c,
        PENALTIES,
        Some("w-1"),
        items_body(std::slice::from_ref(&raw)),
        Sign::Right,
    )
    .await;
    assert_eq!(r.json()["results"][0]["status"], "accepted");
    let seen = get(key.clone()).await;
    assert_eq!(seen.headers()["x-sim-state"], "published");
    assert_eq!(
        seen.bytes().await.unwrap().as_ref(),
        raw.as_bytes(),
        "as received"
    );

    let withdraw =
        json!({"OP": "D", "CF_CFJGDM": s(&item, "CF_CFJGDM"), "CF_WSH": s(&item, "CF_WSH")})
            .to_string();
    let unknown = json!({"OP": "D", "CF_CFJGDM": s(&item, "CF_CFJGDM"), "CF_WSH": "无此文号"});
    let bad = json!({"OP": "D", "CF_CFJGDM": bad_check(&s(&item, "CF_CFJGDM")), "CF_WSH": s(&item, "CF_WSH")});
    let v = post(
        &c,
        PENALTIES,
        Some("w-2"),
        items_body(&[withdraw.clone(), unknown.to_string(), bad.to_string()]),
        Sign::Right,
    )
    .await
    .json();
    assert_eq!(v["results"][0]["status"], "accepted", "{v}");
    assert_eq!(s(&v["results"][0], "key"), key);
    assert_eq!(
        errors(&v["results"][1], "field", "message"),
        vec![("CF_WSH".to_string(), "E_NOT_FOUND".to_string())]
    );
    assert_eq!(
        errors(&v["results"][2], "field", "message"),
        vec![("CF_CFJGDM".to_string(), "E_USCC".to_string())]
    );
    let l = ledger(&c).await;
    assert_eq!(l["accepted"]["penalty"], json!([]));
    assert_eq!(l["withdrawn"]["penalty"], json!([key]));
    let seen = get(key.clone()).await;
    assert_eq!(seen.headers()["x-sim-state"], "withdrawn");
    assert_eq!(seen.bytes().await.unwrap().as_ref(), withdraw.as_bytes());
    // withdrawing again is harmless; publishing again brings it back
    let v = post(
        &c,
        PENALTIES,
        Some("w-3"),
        items_body(&[withdraw, raw]),
        Sign::Right,
    )
    .await
    .json();
    assert_eq!(v["accepted"], 2);
    let l = ledger(&c).await;
    assert_eq!(l["accepted"]["penalty"], json!([key]));
    assert_eq!(l["withdrawn"]["penalty"], json!([]));
    sims.shutdown().await;
}

#[tokio::test]
async fn faulted_pushes_accept_nothing_and_leave_the_key_unused() {
    let sims = start(300, 25).await;
    let c = Client::new(&sims, "credit-platform");
    let items = texts(&valid_items(&c, "/api/v2/penalties").await);
    let body = items_body(&items[..3]);
    let empty = ledger(&c).await;
    c.admin("faults", json!({"error_rate": 1.0})).await;
    for _ in 0..3 {
        let r = post(&c, PENALTIES, Some("f-1"), body.clone(), Sign::Right).await;
        assert!(r.status == 500 || r.status == 503, "{}", r.status);
        assert_eq!(s(&r.json(), "code"), "5000");
    }
    c.admin("faults", json!({"rate_limit_rate": 1.0})).await;
    let r = post(&c, PENALTIES, Some("f-1"), body.clone(), Sign::Right).await;
    assert_eq!(
        (r.status, r.headers["retry-after"].to_str().unwrap()),
        (429, "1")
    );
    c.admin("faults", json!({"truncate_rate": 1.0})).await;
    let r = post(&c, PENALTIES, Some("f-1"), body.clone(), Sign::Right).await;
    assert_eq!(r.status, 200);
    assert!(
        serde_json::from_slice::<Value>(&r.body).is_err(),
        "cut in half"
    );
    assert_eq!(ledger(&c).await, empty, "a faulted push accepts nothing");
    c.admin("faults", json!({})).await;
    let r = post(&c, PENALTIES, Some("f-1"), body, Sign::Right).await;
    assert_eq!(r.json()["accepted"], 3, "the retry is processed afresh");
    assert_eq!(ledger(&c).await["duplicates"], 0);

    let x = Client::new(&sims, "internet-plus");
    let row = x.json("/exchange/check_action", &[]).await["rows"][0].clone();
    let body = rows_body("F1", &[set(&row, "op", json!("i")).to_string()]);
    x.admin("faults", json!({"error_rate": 1.0})).await;
    let r = post(&x, CHECK_ACTION, Some("f-2"), body, Sign::Right).await;
    assert!(r.status >= 500);
    assert_eq!(s(&r.json(), "errCode"), "SYSTEM_ERROR");
    assert_eq!(ledger(&x).await["accepted"]["inspection"], json!([]));
    sims.shutdown().await;
}

/// The one error the exchange must report for a row `/truth` lists as broken.
fn expected_row_error(reason: &str) -> (String, String) {
    let (column, code) = if reason.starts_with("bad USCC") {
        ("administrative_cp_ui_code", "E_USCC")
    } else if reason.starts_with("bad resident-ID") {
        ("administrative_cp_ui_code", "E_IDCARD")
    } else if reason.starts_with("missing required field check_action_name") {
        ("check_action_name", "E_REQUIRED")
    } else if reason.starts_with("unknown code check_form") {
        ("check_form", "E_CODE")
    } else if reason.starts_with("impossible date check_date") {
        ("check_date", "E_DATE")
    } else if reason.starts_with("fewer than two officers") {
        ("check_personnel", "E_OFFICERS")
    } else {
        panic!("unexpected reason {reason}")
    };
    (column.to_string(), code.to_string())
}

#[tokio::test]
async fn exchange_takes_check_action_rows_and_refuses_what_truth_calls_broken() {
    let sims = start(1_200, 26).await;
    let c = Client::new(&sims, "internet-plus");
    let why = reasons(&c.truth(false).await);
    let rows: Vec<Value> = c.json("/exchange/check_action", &[]).await["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| set(r, "op", json!("i")))
        .collect();
    assert_eq!(rows.len(), 500);
    let r = post(
        &c,
        CHECK_ACTION,
        Some("x-1"),
        rows_body("B1", &texts(&rows)),
        Sign::Right,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(
        (v["success"].clone(), s(&v, "batch_no")),
        (json!(true), "B1".into())
    );
    let mut want = BTreeSet::new();
    let mut broken = 0;
    for (i, (row, res)) in rows.iter().zip(v["rows"].as_array().unwrap()).enumerate() {
        assert_eq!(res["row"], i);
        let code = s(row, "check_action_code");
        assert_eq!(s(res, "key"), code);
        match why.get(&s(row, "cd_id")) {
            None => {
                assert_eq!(res["ok"], true, "{res}");
                assert!(res.get("errors").is_none());
                want.insert(code);
            }
            Some(reason) => {
                broken += 1;
                assert_eq!(res["ok"], false, "{reason}");
                assert_eq!(
                    errors(res, "column", "msg"),
                    vec![expected_row_error(reason)],
                    "{reason}"
                );
            }
        }
    }
    assert!(broken > 5);
    assert_eq!(v["accepted"], want.len());
    assert_eq!(v["rejected"], broken);
    let l = ledger(&c).await;
    assert_eq!(l["system"], "internet-plus");
    let got: BTreeSet<String> = keys(&l["accepted"]["inspection"]).into_iter().collect();
    assert_eq!(got, want);

    // u / d of keys the exchange has, and of keys it never had
    // a company's row, so that the subject can be turned into another kind below
    let known = rows
        .iter()
        .find(|r| want.contains(&s(r, "check_action_code")) && s(r, "administrative_cp_na") == "2")
        .unwrap();
    let code = s(known, "check_action_code");
    let changed = set(
        &set(known, "op", json!("u")),
        "check_action_name",
        json!("更正后的检查名称"),
    );
    let ghost = "62JCXW999999999999";
    let batch = [
        changed,
        set(
            &set(known, "op", json!("u")),
            "check_action_code",
            json!(ghost),
        ),
        json!({"op": "d", "check_action_code": ghost}),
        json!({"op": "d", "check_action_code": code}),
        set(known, "op", json!("u")),
        set(known, "op", json!("x")),
        without(known, "op"),
        set(known, "check_result", json!("合格")),
        set(known, "submitted_date", json!("2019-01-01 00:00:00")),
        set(known, "administrative_cp_na", json!("9")),
        set(known, "area_number", json!("62082")),
        set(
            &set(known, "administrative_cp_na", json!("2")),
            "administrative_cp_ui_code",
            json!("00000000000000000X"),
        ),
        set(known, "check_personnel_code", json!(["a", "b", "c", "d"])),
        set(known, "cd_extra", json!(1)),
        // a company filed as 公民 without ce_type: the code is judged as the resident ID it
        // should then be
        set(
            &without(known, "administrative_cp_ce_type"),
            "administrative_cp_na",
            json!("1"),
        ),
        // a 个体工商户 without USCC keeps the placeholder (another inspection)
        set(
            &set(
                &set(known, "administrative_cp_na", json!("3")),
                "administrative_cp_ui_code",
                json!("00000000000000000X"),
            ),
            "check_action_code",
            json!("62JCXW888888888888"),
        ),
    ];
    let v = post(
        &c,
        CHECK_ACTION,
        Some("x-2"),
        rows_body("B2", &texts(&batch)),
        Sign::Right,
    )
    .await
    .json();
    let got: Vec<Vec<(String, String)>> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| errors(r, "column", "msg"))
        .collect();
    let one = |c: &str, e: &str| vec![(c.to_string(), e.to_string())];
    let not_found = one("check_action_code", "E_NOT_FOUND");
    assert_eq!(
        got,
        vec![
            vec![],
            not_found.clone(),
            not_found.clone(),
            vec![],
            not_found,
            one("op", "E_CODE"),
            one("op", "E_REQUIRED"),
            one("check_result", "E_CODE"),
            one("submitted_date", "E_RANGE"),
            one("administrative_cp_na", "E_CODE"),
            one("area_number", "E_FORMAT"),
            one("administrative_cp_ui_code", "E_USCC"),
            one("check_personnel_code", "E_OFFICERS"),
            one("cd_extra", "E_UNKNOWN"),
            vec![
                (
                    "administrative_cp_ce_type".to_string(),
                    "E_REQUIRED".to_string()
                ),
                (
                    "administrative_cp_ui_code".to_string(),
                    "E_IDCARD".to_string()
                ),
            ],
            vec![],
        ]
    );
    let l = ledger(&c).await;
    assert_eq!(l["withdrawn"]["inspection"], json!([code]));
    assert!(!keys(&l["accepted"]["inspection"]).contains(&code));
    assert!(keys(&l["accepted"]["inspection"]).contains(&"62JCXW888888888888".to_string()));
    assert_eq!(l["items_accepted"], want.len() + 3);

    // the same key again: the same bytes; a bad signature: the exchange's own auth error
    let body = rows_body("B3", &[set(known, "op", json!("i")).to_string()]);
    let a = post(&c, CHECK_ACTION, Some("x-3"), body.clone(), Sign::Right).await;
    let b = post(&c, CHECK_ACTION, Some("x-3"), body.clone(), Sign::Right).await;
    assert_eq!((a.status, &a.body), (b.status, &b.body));
    assert_eq!(ledger(&c).await["duplicates"], 1);
    let r = post(&c, CHECK_ACTION, Some("x-4"), body.clone(), Sign::Garbage).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"success": false, "errCode": "SIGN_INVALID", "errMsg": "signature mismatch"})
    );
    let refused = |r: Reply, status: u16, code: &str| {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        assert_eq!(
            (v["success"].clone(), s(&v, "errCode")),
            (json!(false), code.into())
        );
    };
    refused(
        post(&c, CHECK_ACTION, None, body, Sign::Right).await,
        400,
        "PARAM_INVALID",
    );
    let many: Vec<String> = (0..501).map(|i| rows[i % 500].to_string()).collect();
    refused(
        post(
            &c,
            CHECK_ACTION,
            Some("x-5"),
            rows_body("B4", &many),
            Sign::Right,
        )
        .await,
        413,
        "BATCH_TOO_LARGE",
    );
    refused(
        post(
            &c,
            CHECK_ACTION,
            Some("x-6"),
            rows_body("B5", &[]),
            Sign::Right,
        )
        .await,
        400,
        "BATCH_INVALID",
    );
    refused(
        post(
            &c,
            CHECK_ACTION,
            Some("x-7"),
            br#"{"rows":[{}]}"#.to_vec(),
            Sign::Right,
        )
        .await,
        400,
        "BATCH_INVALID",
    );
    sims.shutdown().await;
}

#[tokio::test]
async fn ledgers_start_empty_with_every_type_each_system_takes() {
    let sims = start(100, 27).await;
    for (system, types) in [
        ("provincial", json!({})),
        ("internet-plus", json!({"inspection": []})),
        (
            "credit-platform",
            json!({"penalty": [], "license": [], "spot_check_result": []}),
        ),
        ("double-random", json!({"credit_rating": []})),
        ("hotline-12345", json!({"hotline_ticket": []})),
    ] {
        let c = Client::new(&sims, system);
        assert_eq!(
            ledger(&c).await,
            json!({"system": system, "accepted": types, "withdrawn": types, "requests": 0,
                   "items_accepted": 0, "items_rejected": 0, "unchanged": 0, "duplicates": 0})
        );
    }
    // a POST elsewhere is still the system's 404
    let c = Client::new(&sims, "provincial");
    let r = post(
        &c,
        "/api/v1/penalties",
        Some("p"),
        b"{}".to_vec(),
        Sign::None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], 404);
    sims.shutdown().await;
}

/// Every result of one answer: (index, ok, [(field, code)]), in the shape each system answers in.
fn verdicts(answer: &Value, list: &str, ok: (&str, Value)) -> Vec<(bool, Vec<(String, String)>)> {
    lookup(answer, list)
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {answer}"))
        .iter()
        .enumerate()
        .map(|(i, r)| {
            assert_eq!(r["index"], i, "{r}");
            (r[ok.0] == ok.1, errors(r, "field", "message"))
        })
        .collect()
}

fn lookup<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, seg| &v[seg])
}

/// Valid (subject code, agency code) pairs from the credit platform's ratings: USCCs with right
/// check characters, so hand-made items differ from valid ones only where a test breaks them.
async fn usccs(sims: &super::Simulators) -> (String, String) {
    let c = Client::new(sims, "credit-platform");
    let page = c
        .json("/api/v2/credit-ratings", &[("limit", "200".into())])
        .await;
    let ok = |s: &str| super::prim::uscc_valid(s);
    let items = page["items"].as_array().unwrap();
    let subject = items
        .iter()
        .map(|i| s(i, "XY_ZTDM"))
        .find(|c| ok(c))
        .unwrap();
    let agency = items
        .iter()
        .map(|i| s(i, "XY_PJJGDM"))
        .find(|c| ok(c) && *c != subject)
        .unwrap();
    (subject, agency)
}

#[tokio::test]
async fn hotline_takes_the_outcomes_of_work_orders_that_became_cases() {
    let sims = start(400, 41).await;
    let c = Client::new(&sims, "hotline-12345");
    // The outcome part of every order with a case number, as the order renders it.
    let records = c
        .json("/open/api/v1/workorders", &[("limit", "1000".into())])
        .await["data"]["records"]
        .as_array()
        .unwrap()
        .clone();
    let fields = [
        "orderNo",
        "caseNo",
        "status",
        "handleDeptName",
        "handleDeptCode",
        "replyContent",
        "replyTime",
        "finishTime",
        "solveStatus",
    ];
    let outcomes: Vec<Value> = records
        .iter()
        .filter(|r| r.get("caseNo").is_some())
        .map(|r| {
            let mut o: serde_json::Map<String, Value> = fields
                .iter()
                .filter_map(|f| r.get(*f).map(|v| (f.to_string(), v.clone())))
                .collect();
            o.insert("opType".into(), json!("ADD"));
            Value::Object(o)
        })
        .collect();
    assert!(outcomes.len() > 3, "the generated orders include cases");
    let chunk: Vec<Value> = outcomes.iter().take(200).cloned().collect();
    let r = post(
        &c,
        OUTCOMES,
        Some("h-1"),
        rows_like("records", &chunk),
        Sign::Right,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(
        (v["errcode"].clone(), v["errmsg"].clone()),
        (json!(0), json!("ok"))
    );
    let results = verdicts(&v, "data.results", ("success", json!(true)));
    assert!(results.iter().all(|(ok, e)| *ok && e.is_empty()), "{v}");
    assert_eq!(v["data"]["results"][0]["orderNo"], chunk[0]["orderNo"]);
    let want: BTreeSet<String> = chunk.iter().map(|o| s(o, "orderNo")).collect();
    let l = ledger(&c).await;
    let got: BTreeSet<String> = keys(&l["accepted"]["hotline_ticket"]).into_iter().collect();
    assert_eq!(got, want);

    // Hand-broken outcomes, each refused with its own code at its own field.
    let good = chunk[0].clone();
    let broken = [
        (without(&good, "caseNo"), "caseNo", "E_REQUIRED"),
        (set(&good, "status", json!("完成")), "status", "E_CODE"),
        (
            set(&good, "replyTime", json!("2025-01-01 10:00:00")),
            "replyTime",
            "E_TYPE",
        ),
        (set(&good, "replyTime", json!(-5)), "replyTime", "E_DATE"),
        (
            set(
                &set(&good, "replyTime", json!(2_000_000_000_000i64)),
                "finishTime",
                json!(1_000_000_000_000i64),
            ),
            "finishTime",
            "E_RANGE",
        ),
        (
            set(
                &good,
                "handleDeptCode",
                json!(bad_check(&s(&good, "handleDeptCode"))),
            ),
            "handleDeptCode",
            "E_USCC",
        ),
        (
            set(&good, "solveStatus", json!("已处理")),
            "solveStatus",
            "E_CODE",
        ),
        (
            set(&good, "satisfaction", json!("满意")),
            "satisfaction",
            "E_UNKNOWN",
        ),
        (set(&good, "opType", json!("DELETE")), "opType", "E_CODE"),
        (without(&good, "opType"), "opType", "E_REQUIRED"),
        (
            json!({"opType": "REVOKE", "orderNo": "LT12345NEVER"}),
            "orderNo",
            "E_NOT_FOUND",
        ),
    ];
    let items: Vec<Value> = broken.iter().map(|(i, _, _)| i.clone()).collect();
    let v = post(
        &c,
        OUTCOMES,
        Some("h-2"),
        rows_like("records", &items),
        Sign::Right,
    )
    .await
    .json();
    for ((ok, errs), (item, field, code)) in verdicts(&v, "data.results", ("success", json!(true)))
        .iter()
        .zip(&broken)
    {
        assert!(!ok, "{item}");
        assert!(
            errs.contains(&(field.to_string(), code.to_string())),
            "{item}: {errs:?}"
        );
    }
    assert_eq!(v["data"]["rejected"], broken.len());
    // A revocation withdraws an order's outcome.
    let key = s(&good, "orderNo");
    let v = post(
        &c,
        OUTCOMES,
        Some("h-3"),
        rows_like("records", &[json!({"opType": "REVOKE", "orderNo": key})]),
        Sign::Right,
    )
    .await
    .json();
    assert_eq!(v["data"]["accepted"], 1, "{v}");
    assert_eq!(
        ledger(&c).await["withdrawn"]["hotline_ticket"],
        json!([key])
    );

    // Signed as the pulls are, in the hotline's error format.
    let r = post(
        &c,
        OUTCOMES,
        Some("h-4"),
        rows_like("records", &items),
        Sign::Garbage,
    )
    .await;
    assert_eq!((r.status, r.json()["errcode"].clone()), (401, json!(40005)));
    let r = post(
        &c,
        OUTCOMES,
        None,
        rows_like("records", &items),
        Sign::Right,
    )
    .await;
    assert_eq!((r.status, r.json()["errcode"].clone()), (400, json!(40000)));
    let r = post(
        &c,
        OUTCOMES,
        Some("h-5"),
        rows_like("records", &[]),
        Sign::Right,
    )
    .await;
    assert_eq!((r.status, r.json()["errcode"].clone()), (400, json!(40000)));
    sims.shutdown().await;
}

fn rows_like(list: &str, items: &[Value]) -> Vec<u8> {
    format!("{{\"{list}\":[{}]}}", texts(items).join(",")).into_bytes()
}

#[tokio::test]
async fn credit_platform_publishes_spot_check_results_and_refuses_malformed_ones() {
    let sims = start(300, 42).await;
    let (subject, agency) = usccs(&sims).await;
    let c = Client::new(&sims, "credit-platform");
    let good = json!({
        "CC_RWBH": "SSJ620822202500001", "CC_XDR_MC": "灵台县某某商贸有限公司", "CC_XDR_LB": "法人及非法人组织",
        "CC_XDR_SHXYM": subject, "CC_CCJG": "发现问题经责令已改正;未按规定公示应当公示的信息",
        "CC_JCRQ": "2025/03/20", "CC_GSRQ": "2025/04/01", "CC_JCJG": "灵台县市场监督管理局",
        "CC_JCJGDM": agency, "DFBM": "620822", "OP": "I"
    });
    let v = post(
        &c,
        SPOT_RESULTS,
        Some("s-1"),
        items_body(&texts(std::slice::from_ref(&good))),
        Sign::Right,
    )
    .await
    .json();
    assert_eq!(
        (v["code"].clone(), v["accepted"].clone()),
        (json!("0"), json!(1)),
        "{v}"
    );
    let key = format!("SSJ620822202500001:{subject}");
    assert_eq!(v["results"][0]["key"], key.as_str());
    assert_eq!(
        ledger(&c).await["accepted"]["spot_check_result"],
        json!([key])
    );

    let broken = [
        (without(&good, "CC_RWBH"), "CC_RWBH", "E_REQUIRED"),
        (
            set(&good, "CC_XDR_SHXYM", json!(bad_check(&subject))),
            "CC_XDR_SHXYM",
            "E_USCC",
        ),
        (
            set(&good, "CC_XDR_LB", json!("企业")),
            "CC_XDR_LB",
            "E_CODE",
        ),
        (
            set(&good, "CC_CCJG", json!("未发现问题;合格")),
            "CC_CCJG",
            "E_CODE",
        ),
        (without(&good, "CC_CCJG"), "CC_CCJG", "E_REQUIRED"),
        (
            set(&good, "CC_JCRQ", json!("2025-03-20")),
            "CC_JCRQ",
            "E_DATE",
        ),
        (
            set(&good, "CC_GSRQ", json!("2025/03/01")),
            "CC_GSRQ",
            "E_RANGE",
        ),
        (without(&good, "CC_JCJG"), "CC_JCJG", "E_REQUIRED"),
        (
            set(&good, "CC_JCJGDM", json!(bad_check(&agency))),
            "CC_JCJGDM",
            "E_USCC",
        ),
        (set(&good, "DFBM", json!("62082")), "DFBM", "E_FORMAT"),
        (set(&good, "CC_JCRY", json!("张三")), "CC_JCRY", "E_UNKNOWN"),
        (set(&good, "OP", json!("X")), "OP", "E_CODE"),
        (
            json!({"OP": "D", "CC_RWBH": "SSJ-NEVER", "CC_XDR_SHXYM": subject}),
            "CC_RWBH",
            "E_NOT_FOUND",
        ),
    ];
    let items: Vec<Value> = broken.iter().map(|(i, _, _)| i.clone()).collect();
    let v = post(
        &c,
        SPOT_RESULTS,
        Some("s-2"),
        items_body(&texts(&items)),
        Sign::Right,
    )
    .await
    .json();
    for ((ok, errs), (item, field, code)) in verdicts(&v, "results", ("status", json!("accepted")))
        .iter()
        .zip(&broken)
    {
        assert!(!ok, "{item}");
        assert!(
            errs.contains(&(field.to_string(), code.to_string())),
            "{item}: {errs:?}"
        );
    }
    assert_eq!(v["rejected"], broken.len(), "{v}");
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "rejected")
    );
    let r = post(
        &c,
        SPOT_RESULTS,
        Some("s-3"),
        items_body(&texts(&items)),
        Sign::Garbage,
    )
    .await;
    assert_eq!((r.status, s(&r.json(), "code")), (401, "4011".to_string()));
    sims.shutdown().await;
}

#[tokio::test]
async fn double_random_takes_credit_tiers_and_refuses_malformed_ones() {
    let sims = start(300, 43).await;
    let (subject, agency) = usccs(&sims).await;
    let c = Client::new(&sims, "double-random");
    let good = json!({
        "operateType": "新增", "subjectCode": subject, "subjectName": "灵台县某某商贸有限公司",
        "creditScheme": "企业信用风险分类", "creditLevel": "信用风险较高", "ratePeriod": "2025-Q1",
        "rateDate": "20250415", "rateOrgName": "灵台县市场监督管理局", "rateOrgCode": agency,
        "areaCode": "620822"
    });
    let v = post(
        &c,
        TIERS,
        Some("t-1"),
        rows_like("rows", std::slice::from_ref(&good)),
        Sign::Right,
    )
    .await
    .json();
    assert_eq!(
        (v["resultCode"].clone(), v["data"]["accepted"].clone()),
        (json!("0000"), json!(1)),
        "{v}"
    );
    let key = format!("{subject}:2025-Q1");
    assert_eq!(v["data"]["rows"][0]["key"], key.as_str());
    assert_eq!(ledger(&c).await["accepted"]["credit_rating"], json!([key]));

    let broken = [
        (
            set(&good, "subjectCode", json!(bad_check(&subject))),
            "subjectCode",
            "E_USCC",
        ),
        (without(&good, "subjectName"), "subjectName", "E_REQUIRED"),
        (
            set(&good, "creditScheme", json!("行业信誉度")),
            "creditScheme",
            "E_CODE",
        ),
        // a level of another scheme: the sampling ratio could not be read
        (
            set(&good, "creditLevel", json!("A级")),
            "creditLevel",
            "E_CODE",
        ),
        (
            set(&good, "ratePeriod", json!("2025-13")),
            "ratePeriod",
            "E_FORMAT",
        ),
        (
            set(&good, "rateDate", json!("2025/04/15")),
            "rateDate",
            "E_DATE",
        ),
        (
            set(&good, "rateDate", json!("20250230")),
            "rateDate",
            "E_DATE",
        ),
        (
            set(&good, "rateOrgCode", json!(bad_check(&agency))),
            "rateOrgCode",
            "E_USCC",
        ),
        (set(&good, "areaCode", json!(620822)), "areaCode", "E_TYPE"),
        (set(&good, "riskScore", json!(88)), "riskScore", "E_UNKNOWN"),
        (
            set(&good, "operateType", json!("add")),
            "operateType",
            "E_CODE",
        ),
        (
            json!({"operateType": "删除", "subjectCode": subject, "ratePeriod": "2019"}),
            "subjectCode",
            "E_NOT_FOUND",
        ),
    ];
    let items: Vec<Value> = broken.iter().map(|(i, _, _)| i.clone()).collect();
    let v = post(
        &c,
        TIERS,
        Some("t-2"),
        rows_like("rows", &items),
        Sign::Right,
    )
    .await
    .json();
    for ((ok, errs), (item, field, code)) in verdicts(&v, "data.rows", ("success", json!(true)))
        .iter()
        .zip(&broken)
    {
        assert!(!ok, "{item}");
        assert!(
            errs.contains(&(field.to_string(), code.to_string())),
            "{item}: {errs:?}"
        );
    }
    assert_eq!(v["data"]["rejected"], broken.len(), "{v}");
    // Authenticated and faulted like its pulls, in its own format.
    let r = post(
        &c,
        TIERS,
        Some("t-3"),
        rows_like("rows", &items),
        Sign::Garbage,
    )
    .await;
    assert_eq!(
        (r.status, s(&r.json(), "resultCode")),
        (401, "401".to_string())
    );
    c.admin("faults", json!({"error_rate": 1.0})).await;
    let r = post(
        &c,
        TIERS,
        Some("t-4"),
        rows_like("rows", std::slice::from_ref(&good)),
        Sign::Right,
    )
    .await;
    assert!(r.status >= 500);
    assert_eq!(s(&r.json(), "resultCode"), "500");
    c.admin("faults", json!({})).await;
    // Withdrawing the tier.
    let del = json!({"operateType": "删除", "subjectCode": subject, "ratePeriod": "2025-Q1"});
    let v = post(
        &c,
        TIERS,
        Some("t-5"),
        rows_like("rows", &[del]),
        Sign::Right,
    )
    .await
    .json();
    assert_eq!(v["data"]["accepted"], 1, "{v}");
    assert_eq!(ledger(&c).await["withdrawn"]["credit_rating"], json!([key]));
    sims.shutdown().await;
}
