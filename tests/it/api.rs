//! The HTTP API against a store filled by a real sync (zero-to-production style: the app on port
//! 0, a client doing what a user would).

use crate::helpers::*;
use xiezhi::ops::tokens;
use xiezhi::store::ops::Role;

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

    let store = running.rt.store.as_ref();
    let (viewer, _) = tokens::create(store, "it-viewer", Role::Viewer)
        .await
        .expect("viewer token");
    let (operator, _) = tokens::create(store, "it-operator", Role::Operator)
        .await
        .expect("operator token");
    let get = |path: &str, token: &str| {
        let req = http.get(format!("{}{path}", app.base));
        if token.is_empty() {
            req
        } else {
            req.bearer_auth(token)
        }
    };

    let stats: serde_json::Value = get("/v1/stats", &viewer)
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
        .bearer_auth(&viewer)
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

    let missing = get("/v1/records/penalty/nope", &viewer)
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), 404);
    let bad_type = get("/v1/records/fines/x", &viewer)
        .send()
        .await
        .expect("404");
    assert_eq!(bad_type.status(), 404);

    // A penalty on a natural person: a viewer gets the ID number masked, an operator gets it
    // whole and the read is audited.
    let mut person = None;
    for k in &stored_penalties {
        let r = store
            .get_record(xiezhi::record::RecordType::Penalty, k)
            .await
            .expect("record")
            .expect("stored");
        if let Some(id) = r.data["party"]["id_number"].as_str() {
            person = Some((k.clone(), id.to_owned()));
            break;
        }
    }
    let (person_key, id_number) = person.expect("a penalty on a natural person");
    for suffix in ["", "/history"] {
        let path = format!(
            "/v1/records/penalty/{}{suffix}",
            percent_encoding::utf8_percent_encode(&person_key, percent_encoding::NON_ALPHANUMERIC)
        );
        let viewed = get(&path, &viewer)
            .send()
            .await
            .expect("viewer")
            .text()
            .await
            .expect("text");
        assert!(
            !viewed.contains(&id_number) && !has_id_number(&viewed),
            "a viewer saw an ID number: {viewed}"
        );
        let full = get(&path, &operator)
            .send()
            .await
            .expect("operator")
            .text()
            .await
            .expect("text");
        assert!(full.contains(&id_number), "{full}");
    }
    let audited = store.list_audit(0, 1000).await.expect("audit");
    for action in ["records.show", "records.history"] {
        assert!(
            audited.iter().any(|a| a.entry.action == action
                && a.entry.actor == "token:it-operator"
                && a.entry.target.as_deref() == Some(&format!("penalty/{person_key}"))),
            "{action} not audited"
        );
    }

    let failures: serde_json::Value =
        get("/v1/failures?connector=credit-platform&limit=5", &operator)
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
    let id = one["id"].as_str().unwrap_or_default().to_owned();
    let detail: serde_json::Value = get(&format!("/v1/failures/{id}"), &operator)
        .send()
        .await
        .expect("detail")
        .json()
        .await
        .expect("json");
    assert_eq!(detail["failure"]["raw"], one["raw"]);
    assert!(
        detail["failure"]["errors"][0]["code"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    let stats: serde_json::Value = get("/v1/failures/stats?status=open", &viewer)
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    let by_code = stats["by_code"].as_array().expect("by_code");
    assert!(
        by_code
            .iter()
            .any(|c| c["connector"] == "credit-platform" && c["count"].as_i64() > Some(0)),
        "{stats}"
    );
    assert!(stats["total"].as_i64() > Some(0));

    // Viewers never see a full resident ID number or phone number, wherever it stood.
    let all_viewed = get("/v1/failures?limit=1000", &viewer)
        .send()
        .await
        .expect("viewer list")
        .text()
        .await
        .expect("text");
    let all_operator = get("/v1/failures?limit=1000", &operator)
        .send()
        .await
        .expect("operator list")
        .text()
        .await
        .expect("text");
    assert!(
        has_id_number(&all_operator),
        "the test data should hold ID numbers for operators to see"
    );
    assert!(!has_id_number(&all_viewed), "a viewer saw a full ID number");

    // 401 without or with a bad token, 403 below the role, on every route that reads the store.
    let routes: [(&str, &str, Option<serde_json::Value>, Role); 13] = [
        ("GET", "/v1/stats", None, Role::Viewer),
        ("GET", "/v1/records/penalty/x", None, Role::Viewer),
        ("GET", "/v1/records/penalty/x/history", None, Role::Viewer),
        ("GET", "/v1/failures", None, Role::Viewer),
        ("GET", "/v1/failures/stats", None, Role::Viewer),
        ("GET", "/v1/audit", None, Role::Operator),
        (
            "POST",
            "/v1/failures/replay",
            Some(serde_json::json!({"ids": ["x"], "dry_run": true})),
            Role::Operator,
        ),
        ("GET", "/v1/failures/x", None, Role::Viewer),
        (
            "POST",
            "/v1/failures/x/discard",
            Some(serde_json::json!({"reason": "test"})),
            Role::Operator,
        ),
        (
            "POST",
            "/v1/failures/x/edits",
            Some(serde_json::json!({"record": {"a": 1}})),
            Role::Operator,
        ),
        ("GET", "/v1/edits", None, Role::Operator),
        ("POST", "/v1/edits/x/approve", None, Role::Approver),
        (
            "POST",
            "/v1/edits/x/reject",
            Some(serde_json::json!({"reason": "no"})),
            Role::Approver,
        ),
    ];
    for (method, path, body, needed) in &routes {
        for (token, expected) in [("", 401), ("xz_not-a-token", 401)] {
            let mut req = match *method {
                "GET" => http.get(format!("{}{path}", app.base)),
                _ => http.post(format!("{}{path}", app.base)),
            };
            if !token.is_empty() {
                req = req.bearer_auth(token);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let r = req.send().await.expect("request");
            assert_eq!(r.status(), expected, "{method} {path} with `{token}`");
            let e: serde_json::Value = r.json().await.expect("json error");
            assert_eq!(e["error"]["code"], "unauthorized");
        }
        if *needed >= Role::Operator {
            let mut req = match *method {
                "GET" => http.get(format!("{}{path}", app.base)),
                _ => http.post(format!("{}{path}", app.base)),
            };
            req = req.bearer_auth(&viewer);
            if let Some(b) = body {
                req = req.json(b);
            }
            assert_eq!(
                req.send().await.expect("request").status(),
                403,
                "{method} {path} as a viewer"
            );
            if *needed == Role::Approver {
                let mut req = http
                    .post(format!("{}{path}", app.base))
                    .bearer_auth(&operator);
                if let Some(b) = body {
                    req = req.json(b);
                }
                assert_eq!(
                    req.send().await.expect("request").status(),
                    403,
                    "{method} {path} as an operator"
                );
            }
        }
    }

    // Bad filters name the parameter; unknown ids are 404; bad bodies are 400 or 413.
    for (query, param) in [
        ("type=fine", "`type`"),
        ("limit=0", "`limit`"),
        ("status=closed", "`status`"),
        ("since=yesterday", "`since`"),
        ("colour=red", "colour"),
    ] {
        let bad = get(&format!("/v1/failures?{query}"), &viewer)
            .send()
            .await
            .expect("400");
        assert_eq!(bad.status(), 400, "{query}");
        let body: serde_json::Value = bad.json().await.expect("json");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(param),
            "{query}: {body}"
        );
    }
    let missing = get("/v1/failures/0000", &viewer).send().await.expect("404");
    assert_eq!(missing.status(), 404);
    let post = |path: &str| {
        http.post(format!("{}{path}", app.base))
            .bearer_auth(&operator)
    };
    let r = post("/v1/failures/0000/discard")
        .json(&serde_json::json!({"reason": "duplicate"}))
        .send()
        .await
        .expect("discard");
    assert_eq!(r.status(), 404);
    let r = post(&format!("/v1/failures/{id}/discard"))
        .json(&serde_json::json!({"reason": "  "}))
        .send()
        .await
        .expect("discard");
    assert_eq!(r.status(), 400, "a discard needs a reason");
    let r = post("/v1/failures/replay")
        .header("content-type", "application/json")
        .body("{\"ids\": [")
        .send()
        .await
        .expect("malformed");
    assert_eq!(r.status(), 400);
    let r = post("/v1/failures/replay")
        .json(&serde_json::json!({"ids": ["a"], "filter": {"connector": "x"}}))
        .send()
        .await
        .expect("both");
    assert_eq!(r.status(), 400);
    let r = post("/v1/failures/replay")
        .header("content-type", "application/json")
        .body(format!(
            "{{\"ids\": [\"{}\"]}}",
            "x".repeat(xiezhi::api::MAX_BODY_BYTES)
        ))
        .send()
        .await
        .expect("oversized");
    assert_eq!(r.status(), 413);

    // Discard with a reason, once; the second time it is a conflict; both are audited.
    let r = post(&format!("/v1/failures/{id}/discard"))
        .json(&serde_json::json!({"reason": "upstream withdrew the record"}))
        .send()
        .await
        .expect("discard");
    assert_eq!(r.status(), 200);
    let r = post(&format!("/v1/failures/{id}/discard"))
        .json(&serde_json::json!({"reason": "again"}))
        .send()
        .await
        .expect("discard again");
    assert_eq!(r.status(), 409);
    let audit: serde_json::Value = get("/v1/audit", &operator)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    let entries = audit["entries"].as_array().expect("entries");
    let discards: Vec<&str> = entries
        .iter()
        .filter(|e| e["action"] == "discard" && e["actor"] == "token:it-operator")
        .filter_map(|e| e["outcome"]["result"].as_str())
        .collect();
    assert_eq!(discards, ["not_found", "discarded", "not_open"], "{audit}");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "failures.show" && e["target"] == id.as_str()),
        "reading a failure's detail unmasked is audited: {audit}"
    );
    let history: serde_json::Value = get(&format!("/v1/failures/{id}"), &viewer)
        .send()
        .await
        .expect("detail")
        .json()
        .await
        .expect("json");
    assert_eq!(history["failure"]["status"], "discarded");
    assert_eq!(
        history["history"][0]["detail"]["reason"],
        "upstream withdrew the record"
    );

    // Four-eyes: an edited replay runs only once a second person with the approver role
    // approves it.
    let (approver_a, _) = tokens::create(store, "it-approver-a", Role::Approver)
        .await
        .expect("approver token");
    let (approver_b, _) = tokens::create(store, "it-approver-b", Role::Approver)
        .await
        .expect("approver token");
    let candidates: serde_json::Value = get(
        "/v1/failures?connector=credit-platform&stream=penalties&code=USCC_CHECK_DIGIT&status=open&limit=100",
        &operator,
    )
    .send()
    .await
    .expect("candidates")
    .json()
    .await
    .expect("json");
    // A failure whose only problem is the party's credit code check digit: the edit fixes it.
    let (target, fixed) = candidates["failures"]
        .as_array()
        .expect("array")
        .iter()
        .filter(|f| {
            f["errors"]
                .as_array()
                .is_some_and(|e| e.len() == 1 && e[0]["path"] == "/party/uscc")
        })
        .find_map(|f| {
            let raw: serde_json::Value = serde_json::from_str(f["raw"].as_str()?).ok()?;
            let bad = raw["CF_XDR_SHXYM"].as_str()?;
            let first17 = bad.get(..17)?;
            let c = xiezhi::domain::Uscc::check_char(first17)?;
            Some((f["id"].as_str()?.to_owned(), format!("{first17}{c}")))
        })
        .expect("a failure with a fixable credit code");
    let edit_by = |token: &str| {
        http.post(format!("{}/v1/failures/{target}/edits", app.base))
            .bearer_auth(token)
            .json(&serde_json::json!({
                "patch": [{"op": "replace", "path": "/CF_XDR_SHXYM", "value": fixed}],
                "note": "check digit typed wrong upstream"
            }))
    };
    let approve = |edit: &str, token: &str| {
        http.post(format!("{}/v1/edits/{edit}/approve", app.base))
            .bearer_auth(token)
    };
    let r = edit_by(&viewer).send().await.expect("edit");
    assert_eq!(r.status(), 403, "viewers do not edit");
    let first: serde_json::Value = edit_by(&operator)
        .send()
        .await
        .expect("edit")
        .json()
        .await
        .expect("json");
    assert_eq!(first["status"], "pending");
    let first_id = first["id"].as_str().expect("edit id").to_owned();
    assert_eq!(
        approve(&first_id, &operator)
            .send()
            .await
            .expect("approve")
            .status(),
        403,
        "operators do not approve"
    );
    let own: serde_json::Value = edit_by(&approver_a)
        .send()
        .await
        .expect("edit")
        .json()
        .await
        .expect("json");
    let own_id = own["id"].as_str().expect("edit id").to_owned();
    let refused = approve(&own_id, &approver_a)
        .send()
        .await
        .expect("approve own");
    assert_eq!(refused.status(), 403, "nobody approves their own edit");
    let body: serde_json::Value = refused.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("four-eyes")
    );
    let superseded = approve(&first_id, &approver_b)
        .send()
        .await
        .expect("approve old");
    assert_eq!(superseded.status(), 409, "a newer edit replaced the first");
    let not_run: serde_json::Value = get(&format!("/v1/failures/{target}"), &operator)
        .send()
        .await
        .expect("detail")
        .json()
        .await
        .expect("json");
    assert_eq!(
        not_run["failure"]["status"], "open",
        "no replay ran without a second person"
    );

    let report: serde_json::Value = approve(&own_id, &approver_b)
        .send()
        .await
        .expect("approve")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (report["passed"].as_i64(), report["resolved"].as_i64()),
        (Some(1), Some(1)),
        "{report}"
    );
    let done: serde_json::Value = get(&format!("/v1/failures/{target}"), &operator)
        .send()
        .await
        .expect("detail")
        .json()
        .await
        .expect("json");
    assert_eq!(done["failure"]["status"], "resolved");
    assert_eq!(
        done["failure"]["raw"], not_run["failure"]["raw"],
        "the original payload is kept"
    );
    let stored = running
        .rt
        .store
        .keys(xiezhi::record::RecordType::Penalty)
        .await
        .expect("keys");
    let key = not_run["failure"]["natural_key"]
        .as_str()
        .expect("natural key");
    assert!(
        stored.iter().any(|k| k == key),
        "the edited penalty {key} is in the store"
    );
    let rec: serde_json::Value = http
        .get(format!(
            "{}/v1/records/penalty/{}",
            app.base,
            percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC)
        ))
        .bearer_auth(&operator)
        .send()
        .await
        .expect("record")
        .json()
        .await
        .expect("json");
    assert_eq!(rec["data"]["party"]["uscc"], fixed.as_str());
    let audit: serde_json::Value = get("/v1/audit?limit=1000", &operator)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    let acts: Vec<(String, String)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or_default().to_owned(),
                e["action"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("token:it-approver-a", "edit"),
        ("token:it-approver-a", "approve.refused"),
        ("token:it-approver-b", "approve"),
    ] {
        assert!(
            acts.iter().any(|(a, b)| a == expected.0 && b == expected.1),
            "{expected:?} not in the audit log: {acts:?}"
        );
    }

    app.cancel.cancel();
    running.stop().await;
    sims.shutdown().await;
    std::fs::remove_dir_all(dir).ok();
}
