//! Deadline rules: which record starts which legal clock, how long it runs, and what stops it.
//!
//! [`Rules::default`] holds the national defaults (双公示 7 working days, 双随机 results 20 working
//! days, 12345 replies by category, 查封/扣押 30 + 30 calendar days). Local practice differs, so
//! every number and field is configuration: [`Rules::from_toml_str`] lays a `deadlines.toml` over
//! the defaults key by key, e.g.
//!
//! ```toml
//! [publish_penalty]
//! days = 5                  # a province that publishes faster
//!
//! [hotline_reply.by_value]
//! "1" = 1                   # 咨询 within one working day; the other categories keep theirs
//!
//! [[extra]]                 # a local rule the national defaults do not have
//! name = "hotline_sign"
//! record_type = "hotline_ticket"
//! start_field = "dispatched_at"
//! done_field = "accepted_at"
//! unit = "working"
//! days = 1
//! ```

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::calendar::WorkingCalendar;

/// What a rule's `days` count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Working days of the [`WorkingCalendar`] (`"working"`).
    Working,
    /// Natural days, holidays included (`"calendar"`).
    Calendar,
}

/// One legal time limit. Field paths are dot paths into the national record (`"category.code"`;
/// a numeric segment indexes an array).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Identifies the rule in [`DeadlineState::rule`]; unique among the rules.
    pub name: String,
    /// The record type (`x-record-type` of the schema) the rule applies to.
    pub record_type: String,
    /// The date or date-time that starts the clock. That day is day 0; counting starts the day
    /// after. A record without a readable value here gets no deadline from this rule.
    pub start_field: String,
    /// A field whose presence means the obligation is met (e.g. a publication date), when the
    /// record has one. A date there is when it was met; a date later than "now" is a plan, not
    /// evidence, and is ignored. Leave it out where proof comes only from delivery records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_field: Option<String>,
    /// Push targets whose accepted delivery of the record proves the obligation met (the
    /// publication platform): `connector` for any of its pushes, or `connector/push`. Empty: no
    /// delivery counts, only `done_field` — a push that is not a publication (the outcome sent
    /// back to the 12345 hotline) must not stop a clock.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence_from: Vec<String>,
    /// Whether `days` are working or calendar days.
    pub unit: Unit,
    /// The limit when `by_field` selects nothing.
    pub days: u32,
    /// A field whose value picks the limit from `by_value` (e.g. the 12345 category code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_field: Option<String>,
    /// Limits by the value of `by_field`; values not listed use `days`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_value: BTreeMap<String, u32>,
    /// Restricts the rule to records whose `when_field` value is one of `when_values`; a record
    /// without that field is then out of scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_field: Option<String>,
    /// See `when_field`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when_values: Vec<String>,
    /// A field recording an approved extension: a number of days (capped at `extension_days`) or
    /// `true` (adds `extension_days`). Absent, `0` or `false` means not extended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_field: Option<String>,
    /// The longest extension the law allows, in the rule's `unit`.
    #[serde(default)]
    pub extension_days: u32,
    /// How many working days before the due date an unmet deadline turns [`DeadlineStatus::DueSoon`].
    #[serde(default = "default_warn_before_days")]
    pub warn_before_days: u32,
    /// `false` switches the rule off (e.g. where a province does not apply it).
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

fn default_warn_before_days() -> u32 {
    2
}

fn default_enabled() -> bool {
    true
}

/// Where a deadline stands at the time of evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineStatus {
    /// Not met, more than `warn_before_days` working days left.
    Pending,
    /// Not met, due within `warn_before_days` working days (or today).
    DueSoon,
    /// Not met, the due date has passed.
    Overdue,
    /// Met on or before the due date (or met with no date to compare).
    MetOnTime,
    /// Met after the due date.
    MetLate,
}

/// One rule applied to one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadlineState {
    /// [`Rule::name`].
    pub rule: String,
    /// The day the clock started (day 0).
    pub start: NaiveDate,
    /// The last day that is on time.
    pub due: NaiveDate,
    /// The due date relied on a year the calendar has no holiday data for, and may move.
    pub provisional: bool,
    pub status: DeadlineStatus,
    /// For [`Overdue`](DeadlineStatus::Overdue): how long past due it is now; for
    /// [`MetLate`](DeadlineStatus::MetLate): how late it was met. Counted in `unit` after the due
    /// date up to and including that day, so a working-day deadline met on the weekend right
    /// after is late by 0 days. `None` otherwise.
    pub days_late: Option<i64>,
    /// The unit of `days_late`.
    pub unit: Unit,
}

/// The configured rules: the five national defaults by name, plus local `extra` rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// 双公示: 行政处罚 information online within 7 working days of the decision.
    pub publish_penalty: Rule,
    /// 双公示: 行政许可 information online within 7 working days of the decision.
    pub publish_license: Rule,
    /// 双随机一公开: spot-check results public within 20 working days.
    pub publish_inspection_result: Rule,
    /// 12345: reply within a limit set by the ticket's 诉求类型.
    pub hotline_reply: Rule,
    /// 行政强制法 art. 25: 查封/扣押 at most 30 days, extendable once by at most 30.
    pub coercive_measure: Rule,
    /// Further rules from local configuration.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<Rule>,
}

/// Why a rules file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("deadline rules: {0}")]
    Syntax(String),
    #[error("deadline rules: two rules are named {0:?}")]
    DuplicateName(String),
    #[error("deadline rules: rule {rule:?} has an empty `{field}`")]
    EmptyField { rule: String, field: &'static str },
}

impl Default for Rules {
    fn default() -> Self {
        let working = |name: &str, record_type: &str, start: &str, done: Option<&str>, days| Rule {
            name: name.to_owned(),
            record_type: record_type.to_owned(),
            start_field: start.to_owned(),
            done_field: done.map(str::to_owned),
            evidence_from: Vec::new(),
            unit: Unit::Working,
            days,
            by_field: None,
            by_value: BTreeMap::new(),
            when_field: None,
            when_values: Vec::new(),
            extension_field: None,
            extension_days: 0,
            warn_before_days: default_warn_before_days(),
            enabled: true,
        };
        Self {
            // Neither the penalty nor the licence schema has a publication date (`publish_until`
            // is the end of the publication period, not its start), so proof of publication comes
            // from delivery to the credit platform, passed in as `delivered_at`.
            publish_penalty: Rule {
                evidence_from: vec!["credit-platform".to_owned()],
                ..working("publish_penalty", "penalty", "decision_date", None, 7)
            },
            publish_license: Rule {
                evidence_from: vec!["credit-platform".to_owned()],
                ..working("publish_license", "license", "decision_date", None, 7)
            },
            // The schema has no `checked_on` and no end-of-check date (REFERENCE 9.1 counts from
            // the end of the check); `inspected_on` (检查日期) is the closest field. `published_on`
            // (公示日期) is the proof of publication, and so is the credit platform's receipt of
            // the result (its publication push), whichever came first.
            publish_inspection_result: Rule {
                evidence_from: vec!["credit-platform".to_owned()],
                ..working(
                    "publish_inspection_result",
                    "spot_check_result",
                    "inspected_on",
                    Some("published_on"),
                    20,
                )
            },
            // REFERENCE 5.3 default proposal, keyed by the `hotline_category` code table:
            // 咨询 3 WD; 求助/投诉/举报/建议 10 WD; 表扬 (6) and 其他 (9) fall back to `days`.
            // `replied_at` (答复时间) stops the clock: `closed_at` only follows the 回访, which the
            // handling limit does not cover.
            hotline_reply: Rule {
                by_field: Some("category.code".to_owned()),
                by_value: [("1", 3), ("2", 10), ("3", 10), ("4", 10), ("5", 10)]
                    .into_iter()
                    .map(|(code, days)| (code.to_owned(), days))
                    .collect(),
                ..working(
                    "hotline_reply",
                    "hotline_ticket",
                    "received_at",
                    Some("replied_at"),
                    10,
                )
            },
            // Art. 25 counts natural days. The limit binds 查封 (measure_type 2) and 扣押 (3)
            // only; 冻结 (4) has its own 30 + 30 under art. 32 and can be added here by
            // configuration. `end_date` (实施强制措施的结束时间) ends the measure; the schema's
            // `extension_days` (延长期限, ≤ 30) is the approved extension.
            coercive_measure: Rule {
                unit: Unit::Calendar,
                when_field: Some("measure_type.code".to_owned()),
                when_values: vec!["2".to_owned(), "3".to_owned()],
                extension_field: Some("extension_days".to_owned()),
                extension_days: 30,
                ..working(
                    "coercive_measure",
                    "coercive_measure",
                    "start_date",
                    Some("end_date"),
                    30,
                )
            },
            extra: Vec::new(),
        }
    }
}

impl Rules {
    /// Reads a `deadlines.toml`: every key given replaces the default's, tables merge key by key
    /// (so `[hotline_reply.by_value]` may list just one category), and `[[extra]]` rules are
    /// added. Unknown keys are errors, so a misspelt key cannot silently keep a default.
    pub fn from_toml_str(text: &str) -> Result<Self, RulesError> {
        let overrides: toml::Table = toml::from_str(text)
            .map_err(|e| RulesError::Syntax(e.to_string().trim_end().to_owned()))?;
        let mut merged =
            toml::Table::try_from(Self::default()).expect("the built-in rules serialise to TOML");
        merge(&mut merged, overrides);
        let rules: Self = merged.try_into().map_err(|e: toml::de::Error| {
            RulesError::Syntax(e.to_string().trim_end().to_owned())
        })?;
        rules.validate()?;
        Ok(rules)
    }

    /// Checks what deserialisation cannot: unique names and non-empty field paths.
    pub fn validate(&self) -> Result<(), RulesError> {
        let mut names = BTreeSet::new();
        for rule in self.iter() {
            if !names.insert(rule.name.as_str()) {
                return Err(RulesError::DuplicateName(rule.name.clone()));
            }
            let empty = [
                ("name", Some(&rule.name)),
                ("record_type", Some(&rule.record_type)),
                ("start_field", Some(&rule.start_field)),
                ("done_field", rule.done_field.as_ref()),
                ("by_field", rule.by_field.as_ref()),
                ("when_field", rule.when_field.as_ref()),
                ("extension_field", rule.extension_field.as_ref()),
            ]
            .into_iter()
            .find(|(_, v)| v.is_some_and(|v| v.trim().is_empty()));
            if let Some((field, _)) = empty {
                return Err(RulesError::EmptyField {
                    rule: rule.name.clone(),
                    field,
                });
            }
        }
        Ok(())
    }

    /// All rules, the national ones first, disabled ones included.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        [
            &self.publish_penalty,
            &self.publish_license,
            &self.publish_inspection_result,
            &self.hotline_reply,
            &self.coercive_measure,
        ]
        .into_iter()
        .chain(&self.extra)
    }

    /// The state of every deadline `record` (of `record_type`) is under, as of `now`.
    ///
    /// `delivered_at` is proof from outside the record that the obligation was met (e.g. when the
    /// record reached the publication platform); the earlier of it and the rule's `done_field`
    /// counts. `now` and `delivered_at` are Beijing local time. Rules for other record types,
    /// disabled rules, rules whose `when_field` does not match and records without a readable start
    /// date yield nothing.
    pub fn evaluate(
        &self,
        calendar: &WorkingCalendar,
        record_type: &str,
        record: &Value,
        delivered_at: Option<NaiveDateTime>,
        now: NaiveDateTime,
    ) -> Vec<DeadlineState> {
        self.iter()
            .filter_map(|rule| rule.evaluate(calendar, record_type, record, delivered_at, now))
            .collect()
    }
}

impl Rule {
    /// Whether an accepted delivery to `target` (`connector/push`) is evidence for this rule.
    pub fn counts_delivery_to(&self, target: &str) -> bool {
        self.evidence_from.iter().any(|e| {
            target == e
                || target
                    .strip_prefix(e.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    /// Whether this rule binds `record` of `record_type`.
    pub fn applies_to(&self, record_type: &str, record: &Value) -> bool {
        if !self.enabled || self.record_type != record_type {
            return false;
        }
        match &self.when_field {
            None => true,
            Some(path) => lookup(record, path)
                .and_then(scalar_text)
                .is_some_and(|v| self.when_values.contains(&v)),
        }
    }

    /// The limit for `record`, in `unit`: the `by_value` entry for its `by_field` value (else
    /// `days`), plus any approved extension.
    pub fn days_for(&self, record: &Value) -> u32 {
        let base = self
            .by_field
            .as_deref()
            .and_then(|path| lookup(record, path))
            .and_then(scalar_text)
            .and_then(|v| self.by_value.get(&v).copied())
            .unwrap_or(self.days);
        base.saturating_add(self.extension_for(record))
    }

    fn extension_for(&self, record: &Value) -> u32 {
        let Some(value) = self
            .extension_field
            .as_deref()
            .and_then(|path| lookup(record, path))
        else {
            return 0;
        };
        let granted = match value {
            Value::Bool(true) => u64::from(self.extension_days),
            Value::Number(n) => n.as_u64().unwrap_or(0),
            Value::String(s) => s.trim().parse().unwrap_or(0),
            _ => 0,
        };
        // The law caps the extension; a record claiming more still gets only the legal maximum.
        u32::try_from(granted.min(u64::from(self.extension_days))).unwrap_or(self.extension_days)
    }

    /// This rule's deadline for `record`, or `None` when the rule does not apply or the record
    /// has no readable start date. See [`Rules::evaluate`].
    pub fn evaluate(
        &self,
        calendar: &WorkingCalendar,
        record_type: &str,
        record: &Value,
        delivered_at: Option<NaiveDateTime>,
        now: NaiveDateTime,
    ) -> Option<DeadlineState> {
        if !self.applies_to(record_type, record) {
            return None;
        }
        let start = lookup(record, &self.start_field)
            .and_then(Value::as_str)
            .and_then(parse_record_date)?;
        let days = self.days_for(record);
        let due = match self.unit {
            Unit::Working => calendar.add_working_days(start, days),
            Unit::Calendar => calendar.add_calendar_days(start, days),
        };
        let today = now.date();
        let late_by = |day: NaiveDate| match self.unit {
            Unit::Working => calendar.working_days_between(due.date, day),
            Unit::Calendar => (day - due.date).num_days(),
        };
        // Evidence dated after `now` is not evidence yet (a planned end date, or a clock skew).
        let delivered = delivered_at.map(|t| t.date()).filter(|d| *d <= today);
        let done = self
            .done_field
            .as_deref()
            .and_then(|path| lookup(record, path))
            .and_then(|v| done_evidence(v, today));
        let met = match (delivered, done) {
            (Some(a), Some(Evidence::Dated(b))) => Some(Some(a.min(b))),
            (Some(a), _) => Some(Some(a)),
            (None, Some(Evidence::Dated(b))) => Some(Some(b)),
            (None, Some(Evidence::Undated)) => Some(None),
            (None, None) => None,
        };
        let (status, days_late) = match met {
            Some(Some(day)) if day > due.date => (DeadlineStatus::MetLate, Some(late_by(day))),
            Some(_) => (DeadlineStatus::MetOnTime, None),
            None if today > due.date => (DeadlineStatus::Overdue, Some(late_by(today))),
            None if calendar.working_days_between(today, due.date)
                <= i64::from(self.warn_before_days) =>
            {
                (DeadlineStatus::DueSoon, None)
            }
            None => (DeadlineStatus::Pending, None),
        };
        Some(DeadlineState {
            rule: self.name.clone(),
            start,
            due: due.date,
            provisional: due.provisional,
            status,
            days_late,
            unit: self.unit,
        })
    }
}

/// What a `done_field` value proves.
enum Evidence {
    Dated(NaiveDate),
    /// Present but not a date (e.g. `true`): met, with nothing to measure lateness against.
    Undated,
}

fn done_evidence(value: &Value, today: NaiveDate) -> Option<Evidence> {
    match value {
        Value::Null | Value::Bool(false) => None,
        // A string that is not a date proves nothing: counting it as met would hide the deadline.
        Value::String(s) => parse_record_date(s)
            .filter(|d| *d <= today)
            .map(Evidence::Dated),
        _ => Some(Evidence::Undated),
    }
}

/// Follows a dot path (`"category.code"`, `"officers.0.name"`) into a JSON value.
fn lookup<'a>(record: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(record, |value, key| match value {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A scalar as the text `by_value`/`when_values` keys are written in.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The Beijing date of a record's date (`2025-03-12`) or date-time (`2025-03-12T10:15:00+08:00`;
/// other offsets are converted to UTC+8, a date-time without offset is taken as Beijing time).
pub fn parse_record_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(date);
    }
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        let beijing = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
        return Some(instant.with_timezone(&beijing).date_naive());
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .into_iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|t| t.date())
}

/// Lays `overrides` over `base`: tables merge recursively, anything else replaces.
fn merge(base: &mut toml::Table, overrides: toml::Table) {
    for (key, value) in overrides {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(over)) => merge(inner, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeadlineStatus::*;
    use serde_json::json;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn at(y: i32, m: u32, day: u32, h: u32) -> NaiveDateTime {
        d(y, m, day).and_hms_opt(h, 0, 0).unwrap()
    }

    fn only(states: Vec<DeadlineState>) -> DeadlineState {
        assert_eq!(states.len(), 1, "{states:?}");
        states.into_iter().next().unwrap()
    }

    #[test]
    fn penalty_statuses() {
        let cal = WorkingCalendar::embedded();
        let rules = Rules::default();
        // Decided Friday 2025-09-26: due Monday 2025-10-13 (see the calendar tests for the count
        // through the National Day holiday). Working days left before it, after 10-09: 10-10,
        // 10-11 (adjusted Saturday), 10-13.
        let penalty =
            json!({ "decision_number": "灵市监罚〔2025〕9号", "decision_date": "2025-09-26" });
        // (delivered_at, now, status, days_late)
        let cases = [
            (None, at(2025, 9, 29, 9), Pending, None),
            // Three working days left (10-10, 10-11, 10-13): still pending.
            (None, at(2025, 10, 9, 9), Pending, None),
            // Two left (10-11, 10-13): due soon.
            (None, at(2025, 10, 10, 9), DueSoon, None),
            (None, at(2025, 10, 13, 17), DueSoon, None),
            (None, at(2025, 10, 14, 9), Overdue, Some(1)),
            // 10-14 .. 10-17 and 10-20.
            (None, at(2025, 10, 20, 9), Overdue, Some(5)),
            (
                Some(at(2025, 9, 30, 10)),
                at(2025, 10, 20, 9),
                MetOnTime,
                None,
            ),
            (
                Some(at(2025, 10, 13, 23)),
                at(2025, 10, 20, 9),
                MetOnTime,
                None,
            ),
            (
                Some(at(2025, 10, 14, 8)),
                at(2025, 10, 20, 9),
                MetLate,
                Some(1),
            ),
            (
                Some(at(2025, 10, 15, 8)),
                at(2025, 10, 20, 9),
                MetLate,
                Some(2),
            ),
            // Delivered on Saturday 10-18 after a due Friday would be late by 0 working days;
            // here the due date is Monday 10-13 so Saturday 10-18 is 4 working days late.
            (
                Some(at(2025, 10, 18, 8)),
                at(2025, 10, 20, 9),
                MetLate,
                Some(4),
            ),
            // A delivery stamped after `now` is not evidence yet.
            (
                Some(at(2025, 10, 15, 8)),
                at(2025, 10, 10, 9),
                DueSoon,
                None,
            ),
        ];
        for (delivered_at, now, status, days_late) in cases {
            let state = only(rules.evaluate(&cal, "penalty", &penalty, delivered_at, now));
            assert_eq!(
                state,
                DeadlineState {
                    rule: "publish_penalty".to_owned(),
                    start: d(2025, 9, 26),
                    due: d(2025, 10, 13),
                    provisional: false,
                    status,
                    days_late,
                    unit: Unit::Working,
                },
                "delivered {delivered_at:?}, now {now}"
            );
        }
    }

    #[test]
    fn rules_pick_the_record_type() {
        let cal = WorkingCalendar::embedded();
        let rules = Rules::default();
        let licence = json!({ "decision_date": "2026-02-12" });
        // 02-13 (1), adjusted Saturday 02-14 (2), Spring Festival, 02-24..02-27 (3..6),
        // adjusted Saturday 02-28 (7).
        let state = only(rules.evaluate(&cal, "license", &licence, None, at(2026, 2, 26, 9)));
        assert_eq!(
            (state.rule.as_str(), state.due, state.status),
            ("publish_license", d(2026, 2, 28), DueSoon)
        );
        assert!(
            rules
                .evaluate(&cal, "agency", &licence, None, at(2026, 2, 26, 9))
                .is_empty()
        );
        // No readable start date: no deadline rather than a wrong one.
        for broken in [
            json!({}),
            json!({ "decision_date": "12.02.2026" }),
            json!({ "decision_date": 20260212 }),
        ] {
            assert!(
                rules
                    .evaluate(&cal, "license", &broken, None, at(2026, 2, 26, 9))
                    .is_empty()
            );
        }
    }

    #[test]
    fn crafted_calendar_with_rules() {
        // A holiday week 2030-05-01..05-07 and an adjusted working Saturday 2030-05-11.
        let cal = WorkingCalendar::from_years([(
            2030,
            r#"year = 2030
               off = ["2030-05-01", "2030-05-02", "2030-05-03", "2030-05-04", "2030-05-05", "2030-05-06", "2030-05-07"]
               work = ["2030-05-11"]"#,
        )])
        .unwrap();
        let rules = Rules::default();
        // (record type, record, due): decided Tuesday 04-30; 05-08 (1), 05-09 (2), 05-10 (3),
        // Saturday 05-11 (4), 05-13 (5), 05-14 (6), 05-15 (7).
        let cases = [
            (
                "penalty",
                json!({ "decision_date": "2030-04-30" }),
                d(2030, 5, 15),
            ),
            // 咨询 3 WD from Monday 04-29: 04-30 (1), 05-08 (2), 05-09 (3).
            (
                "hotline_ticket",
                json!({ "received_at": "2030-04-29T08:00:00+08:00", "category": { "code": "1" } }),
                d(2030, 5, 9),
            ),
            // 投诉 10 WD from Friday 05-10: 05-11 Sat (1), 05-13..05-17 (2..6), 05-20..05-23 (7..10).
            (
                "hotline_ticket",
                json!({ "received_at": "2030-05-10T16:00:00+08:00", "category": { "code": "3" } }),
                d(2030, 5, 23),
            ),
        ];
        for (record_type, record, due) in cases {
            let state = only(rules.evaluate(&cal, record_type, &record, None, at(2030, 4, 1, 9)));
            assert_eq!(
                (state.due, state.provisional, state.status),
                (due, false, Pending),
                "{record}"
            );
        }
    }

    #[test]
    fn hotline_limits_by_category() {
        let cal = WorkingCalendar::embedded();
        let rules = Rules::default();
        // Received Wednesday 2025-03-12 (no holiday until 04-04). 3 WD: 03-13, 03-14, 03-17.
        // 10 WD: 03-13, 03-14, 03-17..03-21, 03-24..03-26 (the example ticket's deadline_at).
        let cases = [
            (Some("1"), d(2025, 3, 17), MetLate, Some(1)), // 咨询, replied 03-18
            (Some("2"), d(2025, 3, 26), MetOnTime, None),  // 求助
            (Some("3"), d(2025, 3, 26), MetOnTime, None),  // 投诉
            (Some("4"), d(2025, 3, 26), MetOnTime, None),  // 举报
            (Some("5"), d(2025, 3, 26), MetOnTime, None),  // 建议
            (Some("6"), d(2025, 3, 26), MetOnTime, None),  // 表扬: default
            (Some("9"), d(2025, 3, 26), MetOnTime, None),  // 其他: default
            (None, d(2025, 3, 26), MetOnTime, None),       // no category: default
        ];
        for (code, due, status, days_late) in cases {
            let mut ticket = json!({
                "ticket_number": "12345-6208-20250312-0042",
                "received_at": "2025-03-12T10:15:00+08:00",
                "replied_at": "2025-03-18T16:00:00+08:00",
            });
            if let Some(code) = code {
                ticket["category"] = json!({ "code": code, "label": "" });
            }
            let state =
                only(rules.evaluate(&cal, "hotline_ticket", &ticket, None, at(2025, 4, 30, 9)));
            assert_eq!(
                (
                    state.rule.as_str(),
                    state.start,
                    state.due,
                    state.status,
                    state.days_late
                ),
                ("hotline_reply", d(2025, 3, 12), due, status, days_late),
                "category {code:?}"
            );
        }
    }

    #[test]
    fn hotline_received_at_formats() {
        let cal = WorkingCalendar::embedded();
        let rules = Rules::default();
        // (received_at, start date, due for 投诉 10 WD)
        let cases = [
            ("2025-03-12T10:15:00+08:00", d(2025, 3, 12), d(2025, 3, 26)),
            // 17:30 UTC is 01:30 the next morning in Beijing: the clock starts on Thursday 03-13,
            // and the 10th working day after it is 03-27.
            ("2025-03-12T17:30:00Z", d(2025, 3, 13), d(2025, 3, 27)),
            ("2025-03-12 23:59:59", d(2025, 3, 12), d(2025, 3, 26)),
            ("2025-03-12", d(2025, 3, 12), d(2025, 3, 26)),
            // Friday 2026-02-13 in the evening, Spring Festival: 02-14 Sat (1), 02-24..02-27
            // (2..5), 02-28 Sat (6), 03-02..03-05 (7..10).
            ("2026-02-13T20:00:00+08:00", d(2026, 2, 13), d(2026, 3, 5)),
        ];
        for (received_at, start, due) in cases {
            let ticket = json!({ "received_at": received_at, "category": { "code": "3" } });
            let state =
                only(rules.evaluate(&cal, "hotline_ticket", &ticket, None, at(2025, 1, 1, 9)));
            assert_eq!((state.start, state.due), (start, due), "{received_at}");
        }
    }

    #[test]
    fn coercive_measure_30_or_60_calendar_days() {
        let cal = WorkingCalendar::embedded();
        let rules = Rules::default();
        // Started 2025-02-20: 30 days → 03-22 (February has 28 days), 60 → 04-21.
        // (extension_days, end_date, now, due, status, days_late)
        let cases = [
            (
                None,
                None,
                at(2025, 3, 10, 9),
                d(2025, 3, 22),
                Pending,
                None,
            ),
            (
                Some(json!(0)),
                None,
                at(2025, 3, 20, 9),
                d(2025, 3, 22),
                DueSoon,
                None,
            ),
            // Three calendar days past 03-22.
            (
                Some(json!(0)),
                None,
                at(2025, 3, 25, 9),
                d(2025, 3, 22),
                Overdue,
                Some(3),
            ),
            (
                Some(json!(30)),
                None,
                at(2025, 3, 25, 9),
                d(2025, 4, 21),
                Pending,
                None,
            ),
            (
                Some(json!(30)),
                Some("2025-04-21"),
                at(2025, 4, 30, 9),
                d(2025, 4, 21),
                MetOnTime,
                None,
            ),
            (
                Some(json!(0)),
                Some("2025-03-30"),
                at(2025, 4, 30, 9),
                d(2025, 3, 22),
                MetLate,
                Some(8),
            ),
            // An extension shorter than the maximum: 30 + 10 → 04-01.
            (
                Some(json!(10)),
                None,
                at(2025, 3, 25, 9),
                d(2025, 4, 1),
                Pending,
                None,
            ),
            // The law allows at most 30 more days, whatever the record says.
            (
                Some(json!(45)),
                None,
                at(2025, 3, 25, 9),
                d(2025, 4, 21),
                Pending,
                None,
            ),
            // A planned end date after `now` does not end the measure: 9 days overdue on 04-30.
            (
                Some(json!(30)),
                Some("2025-05-10"),
                at(2025, 4, 30, 9),
                d(2025, 4, 21),
                Overdue,
                Some(9),
            ),
        ];
        for (extension, end_date, now, due, status, days_late) in cases {
            let mut measure = json!({ "start_date": "2025-02-20", "measure_type": { "code": "3", "label": "扣押财物" } });
            if let Some(extension) = extension {
                measure["extension_days"] = extension;
            }
            if let Some(end_date) = end_date {
                measure["end_date"] = json!(end_date);
            }
            let state = only(rules.evaluate(&cal, "coercive_measure", &measure, None, now));
            assert_eq!(
                (
                    state.due,
                    state.provisional,
                    state.status,
                    state.days_late,
                    state.unit
                ),
                (due, false, status, days_late, Unit::Calendar),
                "{measure}"
            );
        }
        // Not 查封/扣押: no art. 25 deadline.
        for other in [
            json!({ "start_date": "2025-02-20", "measure_type": { "code": "4" } }),
            json!({ "start_date": "2025-02-20" }),
        ] {
            assert!(
                rules
                    .evaluate(&cal, "coercive_measure", &other, None, at(2025, 4, 30, 9))
                    .is_empty()
            );
        }
    }

    #[test]
    fn running_into_a_year_without_data_is_provisional() {
        let cal = WorkingCalendar::embedded();
        let rules = Rules::default();
        // Decided Monday 2026-12-28: 12-29, 12-30, 12-31, then 2027 on weekends only: 01-01 (Fri,
        // surely a holiday once the notice is out), 01-04, 01-05, 01-06.
        let penalty = json!({ "decision_date": "2026-12-28" });
        let state = only(rules.evaluate(&cal, "penalty", &penalty, None, at(2026, 12, 28, 9)));
        assert_eq!(
            (state.due, state.provisional, state.status),
            (d(2027, 1, 6), true, Pending)
        );
    }

    /// The shipped examples carry the real field names, so the default rules must find them.
    #[test]
    fn schema_examples() {
        let cal = WorkingCalendar::embedded();
        let rules = Rules::default();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/v1/examples");
        let now = at(2025, 12, 31, 9);
        // (record type, rule, due, status)
        let cases = [
            // Thursday 2025-03-20 + 7 WD: 03-21, 03-24..03-28, 03-31.
            ("penalty", "publish_penalty", d(2025, 3, 31), Overdue),
            // Wednesday 2025-01-08 + 7 WD: 01-09, 01-10, 01-13..01-17.
            ("license", "publish_license", d(2025, 1, 17), Overdue),
            // 2025-03-12 + 20 WD, skipping Qingming 04-04..04-06: due 04-10; published 04-01.
            (
                "spot_check_result",
                "publish_inspection_result",
                d(2025, 4, 10),
                MetOnTime,
            ),
            // 投诉 received 03-12: due 03-26 (as the example's deadline_at); replied 03-18.
            ("hotline_ticket", "hotline_reply", d(2025, 3, 26), MetOnTime),
            // 扣押 from 02-20, not extended: due 03-22; the example ends it on 03-21.
            (
                "coercive_measure",
                "coercive_measure",
                d(2025, 3, 22),
                MetOnTime,
            ),
        ];
        for (record_type, rule, due, status) in cases {
            let text = std::fs::read_to_string(dir.join(format!("{record_type}.json"))).unwrap();
            let record: Value = serde_json::from_str(&text).unwrap();
            let state = only(rules.evaluate(&cal, record_type, &record, None, now));
            assert_eq!(
                (state.rule.as_str(), state.due, state.status),
                (rule, due, status),
                "{record_type}"
            );
        }
    }

    #[test]
    fn toml_overrides_merge_over_the_defaults() {
        let rules = Rules::from_toml_str(
            r#"
            [publish_penalty]
            days = 5
            warn_before_days = 1

            [publish_inspection_result]
            start_field = "checked_on"

            [hotline_reply.by_value]
            "1" = 1

            [coercive_measure]
            when_values = ["2", "3", "4"]

            [publish_license]
            enabled = false

            [[extra]]
            name = "hotline_sign"
            record_type = "hotline_ticket"
            start_field = "dispatched_at"
            unit = "working"
            days = 1
            "#,
        )
        .unwrap();
        let defaults = Rules::default();
        assert_eq!(
            (
                rules.publish_penalty.days,
                rules.publish_penalty.warn_before_days
            ),
            (5, 1)
        );
        assert_eq!(rules.publish_penalty.record_type, "penalty");
        assert_eq!(rules.publish_inspection_result.start_field, "checked_on");
        assert_eq!(
            rules.publish_inspection_result.done_field.as_deref(),
            Some("published_on")
        );
        assert_eq!(rules.hotline_reply.by_value.get("1"), Some(&1));
        assert_eq!(rules.hotline_reply.by_value.get("3"), Some(&10));
        assert_eq!(rules.coercive_measure.when_values, ["2", "3", "4"]);
        assert_eq!(rules.coercive_measure.extension_days, 30);
        assert!(!rules.publish_license.enabled);
        assert_eq!(rules.extra.len(), 1);
        assert_eq!(rules.extra[0].warn_before_days, 2);
        assert_eq!(
            rules.hotline_reply,
            Rule {
                by_value: rules.hotline_reply.by_value.clone(),
                ..defaults.hotline_reply.clone()
            }
        );
        assert_eq!(Rules::from_toml_str("").unwrap(), defaults);

        let cal = WorkingCalendar::embedded();
        let ticket = json!({
            "received_at": "2025-03-12T10:15:00+08:00",
            "dispatched_at": "2025-03-12T11:00:00+08:00",
            "category": { "code": "1" },
        });
        let states = rules.evaluate(&cal, "hotline_ticket", &ticket, None, at(2025, 3, 12, 12));
        let dues: Vec<_> = states.iter().map(|s| (s.rule.as_str(), s.due)).collect();
        assert_eq!(
            dues,
            [
                ("hotline_reply", d(2025, 3, 13)),
                ("hotline_sign", d(2025, 3, 13))
            ]
        );
        assert!(
            rules
                .evaluate(
                    &cal,
                    "license",
                    &json!({ "decision_date": "2025-03-12" }),
                    None,
                    at(2025, 3, 12, 12)
                )
                .is_empty()
        );
    }

    #[test]
    fn toml_errors() {
        let cases = [
            ("[publish_penalty]\ndayz = 5\n", "dayz"),
            ("[publish_penalty]\nunit = \"hours\"\n", "hours"),
            ("[publish_penalty]\ndays = -1\n", "days"),
            (
                "[[extra]]\nname = \"publish_penalty\"\nrecord_type = \"penalty\"\nstart_field = \"decision_date\"\nunit = \"working\"\ndays = 3\n",
                "\"publish_penalty\"",
            ),
            ("[hotline_reply]\nby_field = \" \"\n", "by_field"),
            ("publish_penalty = [", "TOML"),
        ];
        for (text, needle) in cases {
            let err = Rules::from_toml_str(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err:?} lacks {needle:?}");
        }
    }

    #[test]
    fn record_dates() {
        let cases = [
            ("2025-03-12", Some(d(2025, 3, 12))),
            ("2025-03-12T10:15:00+08:00", Some(d(2025, 3, 12))),
            ("2025-03-12T23:59:59.5+08:00", Some(d(2025, 3, 12))),
            ("2025-03-12T16:00:00Z", Some(d(2025, 3, 13))),
            ("2025-03-12T10:15:00", Some(d(2025, 3, 12))),
            ("2025-02-30", None),
            ("", None),
        ];
        for (text, date) in cases {
            assert_eq!(parse_record_date(text), date, "{text:?}");
        }
    }

    /// Publication receipts count for the publication rules; the outcome sent back to the
    /// hotline is not a reply and counts for no rule.
    #[test]
    fn only_the_named_push_targets_are_evidence() {
        let rules = Rules::default();
        let to = |rule: &Rule, target: &str| rule.counts_delivery_to(target);
        assert!(to(
            &rules.publish_penalty,
            "credit-platform/publish-penalties"
        ));
        assert!(to(
            &rules.publish_inspection_result,
            "credit-platform/publish-spot-check-results"
        ));
        assert!(!to(
            &rules.publish_penalty,
            "credit-platformx/publish-penalties"
        ));
        assert!(!to(&rules.publish_penalty, "internet-plus/check-action"));
        assert!(
            rules
                .iter()
                .all(|r| !to(r, "hotline-12345/workorder-outcomes"))
        );
        let local =
            Rules::from_toml_str("[hotline_reply]\nevidence_from = [\"hotline-12345/replies\"]\n")
                .unwrap();
        assert!(to(&local.hotline_reply, "hotline-12345/replies"));
        assert!(!to(
            &local.hotline_reply,
            "hotline-12345/workorder-outcomes"
        ));
    }
}
