//! Tests of the registry: the examples pass, each code fires with its pointer, loading fails
//! loudly on a broken file.

use std::path::PathBuf;

use chrono::NaiveDate;
use serde_json::{Value, json};

use super::*;

fn registry() -> &'static SchemaRegistry {
    static REG: std::sync::OnceLock<SchemaRegistry> = std::sync::OnceLock::new();
    REG.get_or_init(|| SchemaRegistry::embedded().unwrap())
}

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/v1")
}

fn example(t: RecordType) -> Value {
    let path = schema_dir()
        .join("examples")
        .join(format!("{}.json", t.as_str()));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 1).unwrap()
}

/// Exactly one error, with this code at this pointer.
#[track_caller]
fn expect_one(t: RecordType, record: &Value, code: &str, path: &str) {
    let errors = registry().validate_at(t, record, today());
    assert_eq!(
        errors.len(),
        1,
        "{t} expected only {code} at {path}, got {errors:#?}"
    );
    assert_eq!(
        (errors[0].code.as_str(), errors[0].path.as_str()),
        (code, path),
        "{errors:#?}"
    );
    assert!(!errors[0].message.is_empty());
}

fn with(t: RecordType, edit: impl FnOnce(&mut Value)) -> Value {
    let mut r = example(t);
    edit(&mut r);
    r
}

fn set(r: &mut Value, pointer: &str, v: Value) {
    *r.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}")) = v;
}

fn remove(r: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let obj = if parent.is_empty() {
        r.as_object_mut()
    } else {
        r.pointer_mut(parent).and_then(Value::as_object_mut)
    };
    assert!(obj.unwrap().remove(key).is_some(), "no {pointer}");
}

#[test]
fn every_example_is_valid_embedded_and_from_dir() {
    let from_dir = SchemaRegistry::from_dir(&schema_dir()).unwrap();
    for t in RecordType::ALL {
        let r = example(t);
        assert_eq!(registry().validate(t, &r), vec![], "{t}");
        assert_eq!(from_dir.validate(t, &r), vec![], "{t}");
        assert_eq!(registry().schema(t)["x-record-type"], json!(t.as_str()));
    }
}

#[test]
fn examples_fail_against_other_types() {
    // Guards against a schema that accepts anything.
    let errors = registry().validate(RecordType::Agency, &example(RecordType::Penalty));
    assert!(
        errors
            .iter()
            .any(|e| e.code == "SCHEMA_REQUIRED" && e.path == "/uscc"),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.code == "SCHEMA_ADDITIONAL_PROPERTY"),
        "{errors:#?}"
    );
}

#[test]
fn schema_errors_map_to_stable_codes() {
    use RecordType::*;
    let long = "长".repeat(513);
    let cases: Vec<(RecordType, Value, &str, &str)> = vec![
        (
            Penalty,
            with(Penalty, |r| {
                set(r, "/party/category", json!({"code": "9", "label": "其他"}))
            }),
            "CODE_UNKNOWN",
            "/party/category/code",
        ),
        (
            Penalty,
            with(Penalty, |r| set(r, "/categories/1/label", json!("罚金"))),
            "CODE_LABEL_MISMATCH",
            "/categories/1/label",
        ),
        (
            Penalty,
            with(Penalty, |r| r["extra"] = json!(1)),
            "SCHEMA_ADDITIONAL_PROPERTY",
            "/extra",
        ),
        (
            Penalty,
            with(Penalty, |r| r["party"]["nickname"] = json!("x")),
            "SCHEMA_ADDITIONAL_PROPERTY",
            "/party/nickname",
        ),
        (
            Penalty,
            with(Penalty, |r| set(r, "/decision_date", json!("2025-02-30"))),
            "DATE_INVALID",
            "/decision_date",
        ),
        (
            Penalty,
            with(Penalty, |r| remove(r, "/facts")),
            "SCHEMA_REQUIRED",
            "/facts",
        ),
        (
            Penalty,
            with(Penalty, |r| set(r, "/facts", json!(""))),
            "SCHEMA_REQUIRED",
            "/facts",
        ),
        (
            Penalty,
            with(Penalty, |r| remove(r, "/agency/uscc")),
            "SCHEMA_REQUIRED",
            "/agency/uscc",
        ),
        (
            Penalty,
            with(Penalty, |r| set(r, "/fine_amount", json!("2000.005"))),
            "SCHEMA_PATTERN",
            "/fine_amount",
        ),
        (
            Penalty,
            with(Penalty, |r| set(r, "/fine_amount", json!("02000"))),
            "SCHEMA_PATTERN",
            "/fine_amount",
        ),
        (
            Penalty,
            with(Penalty, |r| set(r, "/fine_amount", json!(2000))),
            "SCHEMA_TYPE",
            "/fine_amount",
        ),
        (
            Penalty,
            with(Penalty, |r| set(r, "/remarks", json!(long))),
            "SCHEMA_MAX_LENGTH",
            "/remarks",
        ),
        (
            SpotCheckResult,
            with(SpotCheckResult, |r| set(r, "/results", json!([]))),
            "SCHEMA_MIN_ITEMS",
            "/results",
        ),
        (
            Penalty,
            with(Penalty, |r| {
                set(r, "/agency/uscc", json!("11620822MB1234562X"))
            }),
            "USCC_CHECK_DIGIT",
            "/agency/uscc",
        ),
        (
            Penalty,
            with(Penalty, |r| {
                set(r, "/agency/uscc", json!("11620822MB123456"))
            }),
            "USCC_FORMAT",
            "/agency/uscc",
        ),
        (
            Agency,
            with(Agency, |r| set(r, "/uscc", json!("91350203M0001QAY9B"))),
            "USCC_CHECK_DIGIT",
            "/uscc",
        ),
        (
            Agency,
            with(Agency, |r| set(r, "/uscc", json!("00000000000000000X"))),
            "USCC_CHECK_DIGIT",
            "/uscc",
        ),
        (
            Penalty,
            with(Penalty, |r| {
                set(r, "/party/uscc", json!("91620822MA71AB128Q"))
            }),
            "USCC_CHECK_DIGIT",
            "/party/uscc",
        ),
        (
            Penalty,
            with(Penalty, |r| set(r, "/division_code", json!("620827"))),
            "DIVISION_CODE_UNKNOWN",
            "/division_code",
        ),
        (
            Penalty,
            with(Penalty, |r| r["party"]["org_code"] = json!("MA71AB129")),
            "ORG_CODE_CHECK_DIGIT",
            "/party/org_code",
        ),
        (
            Inspection,
            with(Inspection, |r| {
                set(r, "/check_date", json!("2025-03-12 09:30"))
            }),
            "DATETIME_INVALID",
            "/check_date",
        ),
        (
            Inspection,
            with(Inspection, |r| {
                set(r, "/check_list_code", json!("11620822MB1234562Y9000001"))
            }),
            "CHECK_LIST_CODE_FORMAT",
            "/check_list_code",
        ),
        (
            Inspection,
            with(Inspection, |r| {
                set(r, "/supervise_item_code", json!("1100000000012"))
            }),
            "SCHEMA_PATTERN",
            "/supervise_item_code",
        ),
        (
            Officer,
            with(Officer, |r| {
                set(r, "/id_number", json!("620822199001011238"))
            }),
            "RESIDENT_ID_CHECK_DIGIT",
            "/id_number",
        ),
        (
            Officer,
            with(Officer, |r| {
                set(r, "/id_number", json!("620822199002301230"))
            }),
            "RESIDENT_ID_CHECK_DIGIT",
            "/id_number",
        ),
        (
            HotlineTicket,
            with(HotlineTicket, |r| {
                set(r, "/township_code", json!("62082210"))
            }),
            "DIVISION_CODE_UNKNOWN",
            "/township_code",
        ),
        (
            HotlineTicket,
            with(HotlineTicket, |r| set(r, "/anonymous", json!("否"))),
            "SCHEMA_TYPE",
            "/anonymous",
        ),
        (
            CoerciveMeasure,
            with(CoerciveMeasure, |r| set(r, "/extension_days", json!(31))),
            "SCHEMA_RANGE",
            "/extension_days",
        ),
        (
            SpotCheckTask,
            with(SpotCheckTask, |r| set(r, "/ratio_percent", json!(101))),
            "SCHEMA_RANGE",
            "/ratio_percent",
        ),
        (
            CreditRating,
            with(CreditRating, |r| set(r, "/period", json!("2025-Q5"))),
            "SCHEMA_PATTERN",
            "/period",
        ),
    ];
    for (t, record, code, path) in cases {
        expect_one(t, &record, code, path);
    }
}

#[test]
fn format_errors_carry_a_schema_pointer() {
    let r = with(RecordType::Penalty, |r| {
        set(r, "/agency/uscc", json!("11620822MB1234562X"))
    });
    let e = &registry().validate_at(RecordType::Penalty, &r, today())[0];
    assert!(
        e.schema_path.starts_with("/properties/agency"),
        "{}",
        e.schema_path
    );
    assert!(e.schema_path.ends_with("/format"), "{}", e.schema_path);
}

#[test]
fn resident_id_with_impossible_birth_date_is_refused() {
    let first17 = "62082219900230123";
    let id = format!(
        "{first17}{}",
        crate::domain::ResidentId::check_char(first17).unwrap()
    );
    let r = with(RecordType::Officer, |r| set(r, "/id_number", json!(id)));
    expect_one(
        RecordType::Officer,
        &r,
        "RESIDENT_ID_BIRTH_DATE",
        "/id_number",
    );
}

fn person() -> Value {
    json!({"category": {"code": "2", "label": "自然人"}, "name": "刘五", "id_type": {"code": "01", "label": "身份证"}, "id_number": "620822199001011237"})
}

#[test]
fn party_rules() {
    use RecordType::Penalty;
    let ok = |r: &Value| assert_eq!(registry().validate_at(Penalty, r, today()), vec![]);
    ok(&with(Penalty, |r| r["party"] = person()));
    ok(&with(
        Penalty,
        |r| r["party"] = json!({"category": {"code": "3", "label": "个体工商户"}, "name": "灵台县示例小吃店", "uscc": "00000000000000000X", "reg_no": "620822600012345"}),
    ));
    ok(&with(Penalty, |r| {
        r["party"]["uscc"] = json!("91350203M0001QAY9B")
    }));
    ok(&with(Penalty, |r| {
        r["party"]["uscc"] = json!("91350200776049653A")
    }));

    let cases: Vec<(Value, &str, &str)> = vec![
        (
            with(Penalty, |r| {
                r["party"] = {
                    let mut p = person();
                    remove(&mut p, "/id_number");
                    p
                }
            }),
            "PARTY_ID_REQUIRED",
            "/party/id_number",
        ),
        (
            with(Penalty, |r| {
                r["party"] = {
                    let mut p = person();
                    remove(&mut p, "/id_type");
                    p
                }
            }),
            "PARTY_ID_REQUIRED",
            "/party/id_type",
        ),
        (
            with(Penalty, |r| {
                r["party"] = {
                    let mut p = person();
                    p["uscc"] = json!("91620822MA71AB128P");
                    p
                }
            }),
            "PARTY_USCC_FORBIDDEN",
            "/party/uscc",
        ),
        (
            with(Penalty, |r| {
                r["party"] = {
                    let mut p = person();
                    p["id_number"] = json!("620822199001011238");
                    p
                }
            }),
            "RESIDENT_ID_CHECK_DIGIT",
            "/party/id_number",
        ),
        (
            with(Penalty, |r| remove(r, "/party/uscc")),
            "PARTY_USCC_REQUIRED",
            "/party/uscc",
        ),
        (
            with(Penalty, |r| {
                set(r, "/party/uscc", json!("00000000000000000X"))
            }),
            "PARTY_USCC_REQUIRED",
            "/party/uscc",
        ),
        (
            with(
                Penalty,
                |r| r["party"] = json!({"category": {"code": "3", "label": "个体工商户"}, "name": "灵台县示例小吃店", "uscc": "00000000000000000X"}),
            ),
            "PARTY_PLACEHOLDER_NEEDS_REG_NO",
            "/party/reg_no",
        ),
        (
            with(Penalty, |r| {
                r["party"]["legal_rep_id_type"] = json!({"code": "01", "label": "身份证"});
                r["party"]["legal_rep_id_number"] = json!("6208221990010112");
            }),
            "RESIDENT_ID_FORMAT",
            "/party/legal_rep_id_number",
        ),
    ];
    for (record, code, path) in cases {
        expect_one(Penalty, &record, code, path);
    }
    // A passport number is not checked as a resident id.
    ok(&with(Penalty, |r| {
        r["party"] = person();
        r["party"]["id_type"] = json!({"code": "02", "label": "护照号"});
        r["party"]["id_number"] = json!("E12345678");
    }));
}

#[test]
fn cross_field_rules() {
    use RecordType::*;
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let cases: Vec<(RecordType, Value, &str, &str)> = vec![
        (
            Penalty,
            with(Penalty, |r| remove(r, "/fine_amount")),
            "PENALTY_FINE_REQUIRED",
            "/fine_amount",
        ),
        (
            Penalty,
            with(Penalty, |r| remove(r, "/confiscated_amount")),
            "PENALTY_CONFISCATION_REQUIRED",
            "/confiscated_amount",
        ),
        (
            Penalty,
            with(Penalty, |r| {
                r["categories"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"code": "08", "label": "吊销许可证件"}))
            }),
            "PENALTY_LICENSE_REQUIRED",
            "/license_affected",
        ),
        (
            Penalty,
            with(Penalty, |r| set(r, "/valid_until", json!("2025-03-19"))),
            "DATE_ORDER",
            "/valid_until",
        ),
        (
            Penalty,
            with(Penalty, |r| set(r, "/publish_until", json!("2025-01-01"))),
            "DATE_ORDER",
            "/publish_until",
        ),
        (
            Penalty,
            with(Penalty, |r| set(r, "/decision_date", json!("2025-06-02"))),
            "DATE_IN_FUTURE",
            "/decision_date",
        ),
        (
            Penalty,
            with(Penalty, |r| {
                r["officers"].as_array_mut().unwrap().truncate(1)
            }),
            "OFFICERS_MIN_2",
            "/officers",
        ),
        (
            Inspection,
            with(Inspection, |r| {
                r["officers"].as_array_mut().unwrap().truncate(1)
            }),
            "OFFICERS_MIN_2",
            "/officers",
        ),
        (
            Inspection,
            with(Inspection, |r| {
                set(r, "/submitted_at", json!("2025-03-12T01:29:00Z"))
            }),
            "DATE_ORDER",
            "/submitted_at",
        ),
        (
            Agency,
            with(Agency, |r| {
                set(r, "/kind", json!({"code": "3", "label": "受委托组织"}))
            }),
            "AGENCY_PRINCIPAL_REQUIRED",
            "/principal_uscc",
        ),
        (
            CoerciveMeasure,
            with(CoerciveMeasure, |r| remove(r, "/measure_type")),
            "COERCIVE_MEASURE_TYPE_REQUIRED",
            "/measure_type",
        ),
        (
            CoerciveMeasure,
            with(CoerciveMeasure, |r| {
                remove(r, "/measure_type");
                set(r, "/kind", json!({"code": "2", "label": "行政强制执行"}));
            }),
            "COERCIVE_ENFORCEMENT_TYPE_REQUIRED",
            "/enforcement_type",
        ),
        (
            CoerciveMeasure,
            with(CoerciveMeasure, |r| set(r, "/duration_days", json!(31))),
            "COERCIVE_DURATION_EXCEEDED",
            "/duration_days",
        ),
        (
            CoerciveMeasure,
            with(CoerciveMeasure, |r| {
                set(r, "/end_date", json!("2025-02-19"))
            }),
            "DATE_ORDER",
            "/end_date",
        ),
        (
            CoerciveMeasure,
            with(CoerciveMeasure, |r| {
                r["officers"].as_array_mut().unwrap().truncate(1)
            }),
            "OFFICERS_MIN_2",
            "/officers",
        ),
        (
            CreditRating,
            with(CreditRating, |r| {
                set(r, "/tier", json!({"code": "NDRC-1", "label": "优"}))
            }),
            "CREDIT_TIER_SCHEME",
            "/tier",
        ),
        (
            License,
            with(License, |r| set(r, "/valid_until", json!("2025-01-07"))),
            "DATE_ORDER",
            "/valid_until",
        ),
        (
            License,
            with(License, |r| {
                set(r, "/valid_from", json!("2025-02-01"));
                set(r, "/valid_until", json!("2025-01-20"));
            }),
            "DATE_ORDER",
            "/valid_until",
        ),
        (
            License,
            with(License, |r| {
                set(r, "/decision_date", json!("2025-07-01"));
                set(r, "/valid_from", json!("2025-07-01"));
            }),
            "DATE_IN_FUTURE",
            "/decision_date",
        ),
        (
            SpotCheckTask,
            with(SpotCheckTask, |r| set(r, "/deadline", json!("2025-02-28"))),
            "DATE_ORDER",
            "/deadline",
        ),
        (
            SpotCheckResult,
            with(SpotCheckResult, |r| {
                set(r, "/published_on", json!("2025-03-11"))
            }),
            "DATE_ORDER",
            "/published_on",
        ),
        (
            SpotCheckResult,
            with(SpotCheckResult, |r| remove(r, "/party/uscc")),
            "PARTY_USCC_REQUIRED",
            "/party/uscc",
        ),
        (
            SpotCheckResult,
            with(SpotCheckResult, |r| {
                r["officers"].as_array_mut().unwrap().truncate(1)
            }),
            "OFFICERS_MIN_2",
            "/officers",
        ),
        (
            HotlineTicket,
            with(HotlineTicket, |r| {
                set(r, "/closed_at", json!("2025-03-12T10:14:59+08:00"))
            }),
            "DATE_ORDER",
            "/closed_at",
        ),
    ];
    for (t, record, code, path) in cases {
        expect_one(t, &record, code, path);
    }
    // Same instant, other offset: not out of order.
    let r = with(HotlineTicket, |r| {
        set(r, "/closed_at", json!("2025-03-12T02:15:00Z"))
    });
    assert_eq!(registry().validate_at(HotlineTicket, &r, today()), vec![]);
    // The decision day itself is not in the future.
    let r = example(Penalty);
    assert_eq!(registry().validate_at(Penalty, &r, d("2025-03-20")), vec![]);
    // Every emitted rule code is declared.
    for code in ["DATE_ORDER", "OFFICERS_MIN_2", "CREDIT_TIER_SCHEME"] {
        assert!(rules::RULE_CODES.contains(&code));
    }
}

#[test]
fn non_object_record_is_a_type_error() {
    let errors = registry().validate(RecordType::Penalty, &json!([1, 2]));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(
        (errors[0].code.as_str(), errors[0].path.as_str()),
        ("SCHEMA_TYPE", "")
    );
}

#[test]
fn personal_fields_come_from_annotations() {
    let fields = registry().personal_fields(RecordType::Penalty);
    let find = |p: &str| {
        fields
            .iter()
            .find(|f| f.pointer == p)
            .unwrap_or_else(|| panic!("no {p} in {fields:#?}"))
    };
    let name = find("/party/name");
    assert_eq!(name.kind, PersonalKind::Name);
    assert_eq!(
        name.when,
        Some(PersonalCondition {
            pointer: "/party/category/code".into(),
            codes: vec!["2".into(), "3".into()]
        })
    );
    assert_eq!(find("/party/id_number").kind, PersonalKind::IdNumber);
    assert_eq!(
        find("/party/legal_rep_id_number").kind,
        PersonalKind::IdNumber
    );
    assert_eq!(find("/officers/*/name").when, None);
    assert!(!fields.iter().any(|f| f.pointer == "/agency/name"));

    let hotline = registry().personal_fields(RecordType::HotlineTicket);
    // Schema objects are key-sorted maps, so the fields come in pointer order.
    let kinds: Vec<(&str, PersonalKind)> = hotline
        .iter()
        .map(|f| (f.pointer.as_str(), f.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("/address", PersonalKind::Address),
            ("/citizen_name", PersonalKind::Name),
            ("/citizen_phone", PersonalKind::Phone),
        ]
    );
    assert_eq!(
        registry().personal_fields(RecordType::Agency)[0].pointer,
        "/head_name"
    );
    assert!(
        registry()
            .personal_fields(RecordType::EnforcementItem)
            .is_empty()
    );
}

#[test]
fn code_tables() {
    let c = registry().codes();
    assert_eq!(c.label("penalty_category", "03"), Some("罚款"));
    assert_eq!(c.label("penalty_category", "13"), Some("行政拘留"));
    assert_eq!(c.code_for_label("party_category", "个体工商户"), Some("3"));
    assert_eq!(c.table("penalty_category").unwrap().len(), 14);
    assert_eq!(c.table("inspection_result").unwrap().len(), 14);
    for t in [
        "party_category",
        "id_type",
        "penalty_category",
        "penalty_procedure",
        "license_category",
        "license_status",
        "agency_kind",
        "admin_level",
        "agency_status",
        "gender",
        "certificate_type",
        "certificate_status",
        "item_category",
        "item_status",
        "check_form",
        "check_type",
        "check_mode",
        "inspection_result",
        "spot_check_result",
        "coercive_kind",
        "coercive_measure_type",
        "coercive_enforcement_type",
        "credit_scheme",
        "credit_tier",
        "spot_check_kind",
        "spot_check_method",
        "spot_check_task_status",
        "hotline_channel",
        "hotline_category",
        "hotline_urgency",
        "hotline_status",
        "hotline_satisfaction",
        "hotline_resolved",
    ] {
        assert!(c.has_table(t), "{t}");
    }
    assert!(!c.has_table("nope"));
}

/// Every `code_label` use names its table, and every object schema is closed.
#[test]
fn schemas_are_closed_and_code_labels_name_their_table() {
    fn walk(node: &Value, at: &str, file: &str) {
        let Some(o) = node.as_object() else { return };
        if o.get("$ref").and_then(Value::as_str) == Some("defs.json#/$defs/code_label") {
            assert!(
                o.contains_key("x-code-table"),
                "{file}{at} uses code_label without x-code-table"
            );
        }
        if o.get("type") == Some(&json!("object")) {
            assert_eq!(
                o.get("additionalProperties"),
                Some(&json!(false)),
                "{file}{at} is open"
            );
        }
        for (k, v) in o {
            match v {
                Value::Object(_) => walk(v, &format!("{at}/{k}"), file),
                Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .for_each(|(i, x)| walk(x, &format!("{at}/{k}/{i}"), file)),
                _ => {}
            }
        }
    }
    for t in RecordType::ALL {
        walk(registry().schema(t), "", t.as_str());
    }
    let defs: Value = serde_json::from_str(EMBEDDED[0].1).unwrap();
    walk(&defs, "", "defs.json");
}

fn scratch_copy() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xiezhi-schema-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in EMBEDDED {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

#[test]
fn from_dir_names_the_broken_file() {
    let dir = scratch_copy();
    std::fs::write(dir.join("penalty.json"), "{ \"type\": ").unwrap();
    let e = SchemaRegistry::from_dir(&dir).unwrap_err();
    assert!(matches!(e, SchemaError::Parse { .. }), "{e}");
    assert!(
        e.to_string().contains("penalty.json") && e.to_string().contains("line 1"),
        "{e}"
    );

    let mut license: Value = serde_json::from_str(
        EMBEDDED
            .iter()
            .find(|(n, _)| *n == "license.json")
            .unwrap()
            .1,
    )
    .unwrap();
    license["properties"]["category"]["x-code-table"] = json!("licence_category_typo");
    std::fs::write(
        dir.join("penalty.json"),
        EMBEDDED
            .iter()
            .find(|(n, _)| *n == "penalty.json")
            .unwrap()
            .1,
    )
    .unwrap();
    std::fs::write(dir.join("license.json"), license.to_string()).unwrap();
    let e = SchemaRegistry::from_dir(&dir).unwrap_err().to_string();
    assert!(
        e.contains("license.json") && e.contains("licence_category_typo"),
        "{e}"
    );

    std::fs::remove_file(dir.join("code-tables.json")).unwrap();
    let e = SchemaRegistry::from_dir(&dir).unwrap_err().to_string();
    assert!(e.contains("code-tables.json"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn from_dir_refuses_a_schema_that_breaks_the_meta_schema() {
    let dir = scratch_copy();
    let mut officer: Value = serde_json::from_str(
        EMBEDDED
            .iter()
            .find(|(n, _)| *n == "officer.json")
            .unwrap()
            .1,
    )
    .unwrap();
    officer["properties"]["name"]["maxLength"] = json!("fifty");
    std::fs::write(dir.join("officer.json"), officer.to_string()).unwrap();
    let e = SchemaRegistry::from_dir(&dir).unwrap_err().to_string();
    assert!(e.contains("officer.json"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Not a benchmark: makes sure validation stays linear and allocation-light over many records.
#[test]
fn validates_twenty_thousand_records() {
    let base = example(RecordType::Penalty);
    let mut invalid = 0;
    let started = std::time::Instant::now();
    for i in 0..20_000 {
        let mut r = base.clone();
        r["decision_number"] = json!(format!("灵市监罚〔2025〕{i}号"));
        if i % 1000 == 999 {
            r["fine_amount"] = json!("bad");
        }
        if !registry().validate(RecordType::Penalty, &r).is_empty() {
            invalid += 1;
        }
    }
    assert_eq!(invalid, 20);
    eprintln!(
        "20000 penalties validated in {:?} ({:?}/record)",
        started.elapsed(),
        started.elapsed() / 20_000
    );
}

#[test]
#[ignore]
fn show_errors() {
    let mut r = example(RecordType::Penalty);
    r["party"]["category"] = json!({"code": "9", "label": "x"});
    r["categories"][1]["label"] = json!("罚金");
    r["extra"] = json!(1);
    r["fine_amount"] = json!(5);
    r["remarks"] = json!("长".repeat(600));
    r["decision_date"] = json!("2025-02-30");
    r["agency"]["uscc"] = json!("11620822MB1234562X");
    remove(&mut r, "/facts");
    for e in registry().validate(RecordType::Penalty, &r) {
        println!("{}", serde_json::to_string(&e).unwrap());
    }
}

#[test]
#[ignore]
fn measure_per_record() {
    let records: Vec<Value> = (0..20_000)
        .map(|i| {
            let mut r = example(RecordType::Penalty);
            r["decision_number"] = json!(format!("灵市监罚〔2025〕{i}号"));
            r
        })
        .collect();
    let reg = registry();
    for round in 0..3 {
        let t0 = std::time::Instant::now();
        let mut n = 0;
        for r in &records {
            n += reg.validate(RecordType::Penalty, r).len();
        }
        let full = t0.elapsed();
        let t0 = std::time::Instant::now();
        for r in &records {
            n += usize::from(!reg.entry(RecordType::Penalty).validator.is_valid(r));
        }
        let schema_only = t0.elapsed();
        let t0 = std::time::Instant::now();
        let mut v = Vec::new();
        for r in &records {
            rules::check(RecordType::Penalty, r, today(), &mut v);
        }
        let rules_only = t0.elapsed();
        println!(
            "round {round}: validate {:?}/rec, schema is_valid {:?}/rec, rules {:?}/rec (errors {n})",
            full / 20_000,
            schema_only / 20_000,
            rules_only / 20_000
        );
    }
}
