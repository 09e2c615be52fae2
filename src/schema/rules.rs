//! Cross-field rules of `docs/national-schema.md`, run after the JSON Schema pass.
//!
//! Each rule reads only well-formed values: a field the schema already refused (a bad date, a
//! missing block) is skipped here, so one defect yields one error.

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde_json::Value;

use crate::domain::{ResidentId, USCC_PLACEHOLDER};
use crate::record::{FieldError, RecordType};

/// Every code a rule can emit.
pub const RULE_CODES: &[&str] = &[
    "PARTY_ID_REQUIRED",
    "PARTY_USCC_FORBIDDEN",
    "PARTY_USCC_REQUIRED",
    "PARTY_PLACEHOLDER_NEEDS_REG_NO",
    "RESIDENT_ID_FORMAT",
    "RESIDENT_ID_CHECK_DIGIT",
    "RESIDENT_ID_BIRTH_DATE",
    "RESIDENT_ID_DIVISION",
    "DATE_ORDER",
    "DATE_IN_FUTURE",
    "OFFICERS_MIN_2",
    "PENALTY_FINE_REQUIRED",
    "PENALTY_CONFISCATION_REQUIRED",
    "PENALTY_LICENSE_REQUIRED",
    "AGENCY_PRINCIPAL_REQUIRED",
    "COERCIVE_MEASURE_TYPE_REQUIRED",
    "COERCIVE_ENFORCEMENT_TYPE_REQUIRED",
    "COERCIVE_DURATION_EXCEEDED",
    "CREDIT_TIER_SCHEME",
];

const NATURAL_PERSON: &str = "2";
const SOLE_TRADER: &str = "3";
const ID_CARD: &str = "01";

struct Out<'a>(&'a mut Vec<FieldError>);

impl Out<'_> {
    fn push(&mut self, code: &str, path: &str, message: String) {
        // The schema pointer of the top-level property the rule is about.
        let top = path.split('/').nth(1).unwrap_or_default();
        self.0.push(FieldError {
            code: code.to_owned(),
            path: path.to_owned(),
            schema_path: format!("/properties/{top}"),
            message,
        });
    }
}

fn code<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field)?.get("code")?.as_str()
}

fn present(v: &Value, field: &str) -> bool {
    v.get(field).is_some_and(|x| !x.is_null())
}

/// `YYYY-MM-DD` only; anything else is the schema's `DATE_INVALID`.
fn date(v: &Value, field: &str) -> Option<NaiveDate> {
    let s = v.get(field)?.as_str()?;
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

fn instant(v: &Value, field: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(v.get(field)?.as_str()?).ok()
}

/// Missing officers while required is SCHEMA_REQUIRED already; this checks the count.
fn officers_min_2(r: &Value, out: &mut Out) {
    if let Some(a) = r.get("officers").and_then(Value::as_array)
        && a.len() < 2
    {
        out.push(
            "OFFICERS_MIN_2",
            "/officers",
            format!(
                "at least 2 officers must act (行政处罚法 art. 42, 行政强制法 art. 18); {} listed",
                a.len()
            ),
        );
    }
}

/// `later` must not be before `earlier` (both dates).
fn date_order(r: &Value, earlier: &str, later: &str, out: &mut Out) -> bool {
    if let (Some(a), Some(b)) = (date(r, earlier), date(r, later))
        && b < a
    {
        out.push(
            "DATE_ORDER",
            &format!("/{later}"),
            format!("{later} {b} is before {earlier} {a}"),
        );
        return true;
    }
    false
}

fn instant_order(r: &Value, earlier: &str, later: &str, out: &mut Out) {
    if let (Some(a), Some(b)) = (instant(r, earlier), instant(r, later))
        && b < a
    {
        out.push(
            "DATE_ORDER",
            &format!("/{later}"),
            format!("{later} {b} is before {earlier} {a}"),
        );
    }
}

fn not_in_future(r: &Value, field: &str, today: NaiveDate, out: &mut Out) {
    if let Some(d) = date(r, field)
        && d > today
    {
        out.push(
            "DATE_IN_FUTURE",
            &format!("/{field}"),
            format!("{field} {d} is after today ({today}, China time)"),
        );
    }
}

fn resident_id(p: &Value, type_field: &str, number_field: &str, today: NaiveDate, out: &mut Out) {
    if code(p, type_field) != Some(ID_CARD) {
        return;
    }
    if let Some(n) = p.get(number_field).and_then(Value::as_str)
        && let Err(e) = ResidentId::parse_at(n, today)
    {
        out.push(e.code, &format!("/party/{number_field}"), e.message);
    }
}

/// Party rules; `uscc_always` for spot-check results, whose key is the party's code.
fn party(r: &Value, uscc_always: bool, today: NaiveDate, out: &mut Out) {
    let Some(p) = r.get("party").filter(|p| p.is_object()) else {
        return;
    };
    let category = code(p, "category");
    let uscc = p.get("uscc").and_then(Value::as_str);
    if category == Some(NATURAL_PERSON) && !uscc_always {
        for f in ["id_type", "id_number"] {
            if !present(p, f) {
                out.push(
                    "PARTY_ID_REQUIRED",
                    &format!("/party/{f}"),
                    format!("a natural person (自然人) needs {f}"),
                );
            }
        }
        if uscc.is_some() {
            out.push(
                "PARTY_USCC_FORBIDDEN",
                "/party/uscc",
                "a natural person (自然人) has no unified social credit code".into(),
            );
        }
    } else if category.is_some() || uscc_always {
        match uscc {
            None => out.push(
                "PARTY_USCC_REQUIRED",
                "/party/uscc",
                "an organisation or 个体工商户 party needs its unified social credit code".into(),
            ),
            Some(USCC_PLACEHOLDER) if category != Some(SOLE_TRADER) => out.push(
                "PARTY_USCC_REQUIRED",
                "/party/uscc",
                "the placeholder 00000000000000000X is only for a 个体工商户; this party needs a real code".into(),
            ),
            Some(USCC_PLACEHOLDER) if !present(p, "reg_no") => out.push(
                "PARTY_PLACEHOLDER_NEEDS_REG_NO",
                "/party/reg_no",
                "a 个体工商户 with the placeholder USCC needs its registration number (reg_no)".into(),
            ),
            Some(_) => {}
        }
    }
    resident_id(p, "id_type", "id_number", today, out);
    resident_id(p, "legal_rep_id_type", "legal_rep_id_number", today, out);
}

/// Appends the cross-field errors of `record` (of type `t`) to `errors`.
pub(crate) fn check(t: RecordType, r: &Value, today: NaiveDate, errors: &mut Vec<FieldError>) {
    let out = &mut Out(errors);
    match t {
        RecordType::Agency => {
            if code(r, "kind") == Some("3") && !present(r, "principal_uscc") {
                out.push(
                    "AGENCY_PRINCIPAL_REQUIRED",
                    "/principal_uscc",
                    "a 受委托组织 must name its principal agency (principal_uscc)".into(),
                );
            }
        }
        RecordType::Officer | RecordType::EnforcementItem => {}
        RecordType::Inspection => {
            party(r, false, today, out);
            officers_min_2(r, out);
            instant_order(r, "check_date", "submitted_at", out);
        }
        RecordType::Penalty => {
            party(r, false, today, out);
            let cats: Vec<&str> = r
                .get("categories")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.get("code").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            let has = |codes: &[&str]| cats.iter().any(|c| codes.contains(c));
            if has(&["03"]) && !present(r, "fine_amount") {
                out.push(
                    "PENALTY_FINE_REQUIRED",
                    "/fine_amount",
                    "罚款 (03) among the categories requires fine_amount".into(),
                );
            }
            if has(&["04", "05"]) && !present(r, "confiscated_amount") {
                out.push(
                    "PENALTY_CONFISCATION_REQUIRED",
                    "/confiscated_amount",
                    "没收违法所得/没收非法财物 (04/05) requires confiscated_amount".into(),
                );
            }
            if has(&["06", "08"]) && !present(r, "license_affected") {
                out.push(
                    "PENALTY_LICENSE_REQUIRED",
                    "/license_affected",
                    "暂扣/吊销许可证件 (06/08) requires license_affected".into(),
                );
            }
            date_order(r, "decision_date", "valid_until", out);
            date_order(r, "decision_date", "publish_until", out);
            not_in_future(r, "decision_date", today, out);
            officers_min_2(r, out);
        }
        RecordType::License => {
            party(r, false, today, out);
            if !date_order(r, "decision_date", "valid_until", out) {
                date_order(r, "valid_from", "valid_until", out);
            }
            not_in_future(r, "decision_date", today, out);
        }
        RecordType::CoerciveMeasure => {
            party(r, false, today, out);
            let kind = code(r, "kind");
            if kind == Some("1") && !present(r, "measure_type") {
                out.push(
                    "COERCIVE_MEASURE_TYPE_REQUIRED",
                    "/measure_type",
                    "a 行政强制措施 (kind 1) needs measure_type".into(),
                );
            }
            if kind == Some("2") && !present(r, "enforcement_type") {
                out.push(
                    "COERCIVE_ENFORCEMENT_TYPE_REQUIRED",
                    "/enforcement_type",
                    "a 行政强制执行 (kind 2) needs enforcement_type".into(),
                );
            }
            // 查封 (2) / 扣押 (3): at most 30 days (行政强制法 art. 25).
            if matches!(code(r, "measure_type"), Some("2" | "3"))
                && let Some(days) = r.get("duration_days").and_then(Value::as_i64)
                && days > 30
            {
                out.push(
                    "COERCIVE_DURATION_EXCEEDED",
                    "/duration_days",
                    format!("查封/扣押 may last at most 30 days (行政强制法 art. 25), not {days}"),
                );
            }
            date_order(r, "start_date", "end_date", out);
            officers_min_2(r, out);
        }
        RecordType::CreditRating => {
            if let (Some(scheme), Some(tier)) = (code(r, "scheme"), code(r, "tier"))
                && !tier
                    .strip_prefix(scheme)
                    .is_some_and(|rest| rest.starts_with('-'))
            {
                out.push(
                    "CREDIT_TIER_SCHEME",
                    "/tier",
                    format!("tier `{tier}` does not belong to scheme `{scheme}`"),
                );
            }
        }
        RecordType::SpotCheckTask => {
            date_order(r, "drawn_on", "deadline", out);
        }
        RecordType::SpotCheckResult => {
            party(r, true, today, out);
            date_order(r, "inspected_on", "published_on", out);
            officers_min_2(r, out);
        }
        RecordType::HotlineTicket => {
            instant_order(r, "received_at", "closed_at", out);
        }
    }
}
