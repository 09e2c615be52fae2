//! Normalise: pull → **normalise** → route → store → feed.
//!
//! Turns one upstream record into a national record wrapped in a CloudEvents [`Event`], or into
//! a [`Failure`] carrying its raw payload and every reason. Pure: no I/O, so it is testable (and
//! fuzzable) alone and cheap to run on the pull worker's thread.

pub mod mapping;
pub mod pool;
pub mod reverse;

use std::sync::Arc;

use serde_json::Value;

use crate::record::{Event, Failure, FieldError, Lineage, Op, RecordType, Stage};
use crate::schema::SchemaRegistry;

pub use mapping::{FieldSpec, Mapper, MappingProblem};

/// The natural key of a national record (what makes two records the same record), spelled as
/// `GET /v1/records/{type}/{key}` takes it. `None` when a key field is missing.
pub fn natural_key(t: RecordType, r: &Value) -> Option<String> {
    let s = |p: &str| {
        r.pointer(p)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let pair = |a: &str, b: &str| Some(format!("{}:{}", s(a)?, s(b)?));
    match t {
        RecordType::Agency => s("/uscc").map(str::to_owned),
        RecordType::Officer => s("/certificate_number").map(str::to_owned),
        RecordType::EnforcementItem => s("/item_code").map(str::to_owned),
        RecordType::Inspection => s("/inspection_id").map(str::to_owned),
        RecordType::Penalty | RecordType::License | RecordType::CoerciveMeasure => {
            pair("/agency/uscc", "/decision_number")
        }
        RecordType::CreditRating => pair("/party_code", "/period"),
        RecordType::SpotCheckTask => s("/task_number").map(str::to_owned),
        RecordType::SpotCheckResult => pair("/task_number", "/party/uscc"),
        RecordType::HotlineTicket => s("/ticket_number").map(str::to_owned),
    }
}

/// The fields a natural key is made of, as JSON pointers (for error messages).
pub fn key_fields(t: RecordType) -> &'static [&'static str] {
    match t {
        RecordType::Agency => &["/uscc"],
        RecordType::Officer => &["/certificate_number"],
        RecordType::EnforcementItem => &["/item_code"],
        RecordType::Inspection => &["/inspection_id"],
        RecordType::Penalty | RecordType::License | RecordType::CoerciveMeasure => {
            &["/agency/uscc", "/decision_number"]
        }
        RecordType::CreditRating => &["/party_code", "/period"],
        RecordType::SpotCheckTask => &["/task_number"],
        RecordType::SpotCheckResult => &["/task_number", "/party/uscc"],
        RecordType::HotlineTicket => &["/ticket_number"],
    }
}

/// One upstream record as fetched: its parsed form and its exact text.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub value: Value,
    /// The record's bytes as received (after charset decoding): JSON text, the XML element, or
    /// the CSV line.
    pub raw: String,
    /// The CSV header the line is read against (shared by a page's records).
    pub context: Option<std::sync::Arc<str>>,
}

/// What normalising produced.
#[derive(Debug)]
pub enum Outcome {
    Event(Box<Event>),
    Failure(Box<Failure>),
}

/// How one stream's records are normalised.
#[derive(Debug, Clone)]
pub struct StreamNormalizer {
    pub record_type: RecordType,
    pub mapper: Mapper,
    pub id_field: String,
    pub updated_field: Option<String>,
    pub op: Option<(String, Vec<String>)>,
    pub schema: Arc<SchemaRegistry>,
}

impl StreamNormalizer {
    /// The id a normalise failure of `rec` has (or would have): repeated failures of one
    /// upstream record collapse into it, and a later pass of the record resolves it.
    pub fn failure_id(&self, rec: &RawRecord, lineage: &Lineage) -> String {
        let upstream_id = mapping::lookup(&rec.value, &self.id_field).map(text);
        Failure::make_id(
            Stage::Normalize,
            &lineage.connector,
            &lineage.stream,
            upstream_id.as_deref(),
            &rec.raw,
        )
    }

    /// Normalises one record; `lineage` says where it came from.
    pub fn normalize(&self, rec: RawRecord, lineage: &Lineage) -> Outcome {
        let upstream_id = mapping::lookup(&rec.value, &self.id_field).map(text);
        let source_updated = self
            .updated_field
            .as_deref()
            .and_then(|f| mapping::lookup(&rec.value, f))
            .map(text);
        let deleted = self.op.as_ref().is_some_and(|(field, dels)| {
            mapping::lookup(&rec.value, field).is_some_and(|v| dels.iter().any(|d| *d == text(v)))
        });
        let fail = |normalized: Option<Value>, key: Option<String>, errors: Vec<FieldError>| {
            Outcome::Failure(Box::new(Failure {
                id: self.failure_id(&rec, lineage),
                stage: Stage::Normalize,
                connector: lineage.connector.clone(),
                stream: lineage.stream.clone(),
                record_type: Some(self.record_type),
                natural_key: key,
                upstream_id: upstream_id.clone(),
                raw: rec.raw.clone(),
                raw_context: rec.context.as_deref().map(str::to_owned),
                normalized,
                errors,
                lineage: lineage.clone(),
            }))
        };

        let (mapped, map_errors) = self.mapper.map(&rec.value, self.schema.codes());
        let key = natural_key(self.record_type, &mapped);
        // A delete row carries only the key columns: mapping errors elsewhere do not matter.
        if !map_errors.is_empty() && !deleted {
            return fail(Some(mapped), key, map_errors);
        }
        let Some(key) = key else {
            let errors = key_fields(self.record_type)
                .iter()
                .filter(|p| {
                    mapped
                        .pointer(p)
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                })
                .map(|p| FieldError {
                    code: "KEY_MISSING".into(),
                    path: (*p).to_owned(),
                    schema_path: String::new(),
                    message: format!(
                        "the natural key field {p} is missing, so the record cannot be identified"
                    ),
                })
                .collect();
            return fail(Some(mapped), None, errors);
        };
        let division = mapped
            .get("division_code")
            .and_then(Value::as_str)
            .unwrap_or("000000")
            .to_owned();
        if deleted {
            let ev = Event::new(
                self.record_type,
                key,
                division,
                Op::Delete,
                None,
                lineage,
                source_updated,
            );
            return Outcome::Event(Box::new(ev));
        }
        let errors = self.schema.validate(self.record_type, &mapped);
        if !errors.is_empty() {
            return fail(Some(mapped), Some(key), errors);
        }
        let ev = Event::new(
            self.record_type,
            key,
            division,
            Op::Upsert,
            Some(mapped),
            lineage,
            source_updated,
        );
        Outcome::Event(Box::new(ev))
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn natural_keys_follow_the_design() {
        let p = json!({"agency": {"uscc": "11620822013868512X"}, "decision_number": "灵市监罚〔2025〕1号"});
        assert_eq!(
            natural_key(RecordType::Penalty, &p).as_deref(),
            Some("11620822013868512X:灵市监罚〔2025〕1号")
        );
        assert_eq!(
            natural_key(RecordType::Penalty, &json!({"decision_number": "x"})),
            None
        );
        let r = json!({"task_number": "T1", "party": {"uscc": "91620822MA71234567"}});
        assert_eq!(
            natural_key(RecordType::SpotCheckResult, &r).as_deref(),
            Some("T1:91620822MA71234567")
        );
        assert_eq!(
            natural_key(RecordType::HotlineTicket, &json!({"ticket_number": "GD1"})).as_deref(),
            Some("GD1")
        );
    }
}
