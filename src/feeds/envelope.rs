//! Feed, envelope: a stored change as the CloudEvent downstream consumers receive
//! (`docs/feeds.md` is the contract).

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Masking;
use crate::record::RecordType;
use crate::schema::SchemaRegistry;
use crate::store::Change;

/// What a change did to its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedOp {
    /// The record's first version.
    Create,
    /// A correction: this version replaces the one named in `supersedes`.
    Supersede,
    /// A tombstone: the record was deleted upstream; `data` is null.
    Delete,
}

/// One change of the store as a CloudEvents 1.0 event (structured JSON mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedEvent {
    pub specversion: String,
    /// Deterministic from (record type, key, version): a change delivered twice has the same id,
    /// so consumers deduplicate by it.
    pub id: String,
    /// `/xiezhi/store`
    pub source: String,
    /// `gov.enforcement.<record_type>.v1`: the major schema version is part of the type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The record's natural key.
    pub subject: String,
    /// When the store wrote the change.
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    /// The JSON Schema `data` follows (masked levels relax the personal fields only).
    pub dataschema: String,
    pub recordtype: RecordType,
    /// The store's change sequence: the HTTP feed's cursor and the order of every feed.
    pub seq: i64,
    /// The record's version (1, 2, …).
    pub version: i64,
    pub op: FeedOp,
    /// For `supersede` and `delete`: the id of the version this one replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
    /// Six-digit GB/T 2260 division code.
    pub division: String,
    /// The upstream connector whose change produced this version.
    pub origin: String,
    /// The masking level `data` was prepared for.
    pub masking: Masking,
    /// Why `data` is null although the record exists: `minor` (a public feed never carries a
    /// decision on a person under 18, REFERENCE §10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withheld: Option<String>,
    /// The national record (null for a tombstone or a withheld record).
    pub data: Value,
}

/// Whether the record's party is a person under 18 on the record's date (its decision, or
/// inspection, or receipt date; today when it has none), by the birth date in their resident ID.
fn concerns_a_minor(data: &Value) -> bool {
    let Some(id) = data
        .pointer("/party/id_number")
        .and_then(Value::as_str)
        .and_then(|s| crate::domain::ResidentId::parse(s).ok())
    else {
        return false;
    };
    let on = [
        "decision_date",
        "inspected_on",
        "check_date",
        "start_date",
        "received_at",
    ]
    .iter()
    .find_map(|f| data.get(*f).and_then(Value::as_str))
    .and_then(|s| chrono::NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok())
    .unwrap_or_else(|| Utc::now().date_naive());
    let birth = id.birth_date();
    let adult = birth
        .with_year(birth.year() + 18)
        // 29 February: the 18th birthday is 1 March in a common year.
        .or_else(|| {
            birth
                .succ_opt()
                .and_then(|d| d.with_year(birth.year() + 18))
        });
    adult.is_some_and(|adult| on < adult)
}

/// Removes every field named `name`, at any depth.
fn drop_field(v: &mut Value, name: &str) {
    match v {
        Value::Object(m) => {
            m.remove(name);
            m.values_mut().for_each(|x| drop_field(x, name));
        }
        Value::Array(items) => items.iter_mut().for_each(|x| drop_field(x, name)),
        _ => {}
    }
}

/// The event id of version `version` of a record.
pub fn event_id(t: RecordType, key: &str, version: i64) -> String {
    let mut h = Sha256::new();
    h.update(t.as_str().as_bytes());
    h.update([0u8]);
    h.update(key.as_bytes());
    h.update([0u8]);
    h.update(version.to_string().as_bytes());
    hex::encode(&h.finalize()[..16])
}

impl FeedEvent {
    /// The event of `change`, its personal data masked to `level`.
    pub fn from_change(change: Change, level: Masking, schema: &SchemaRegistry) -> FeedEvent {
        let t = change.record_type;
        let op = if change.deleted {
            FeedOp::Delete
        } else if change.version > 1 {
            FeedOp::Supersede
        } else {
            FeedOp::Create
        };
        let mut data = change.data;
        let mut withheld = None;
        if level == Masking::Public && !data.is_null() {
            if concerns_a_minor(&data) {
                data = Value::Null;
                withheld = Some("minor".to_owned());
            } else {
                // A legal representative's ID number is never published, not even masked.
                drop_field(&mut data, "legal_rep_id_number");
                schema.mask_public(t, &mut data);
            }
        }
        FeedEvent {
            specversion: "1.0".into(),
            id: event_id(t, &change.key, change.version),
            source: "/xiezhi/store".into(),
            event_type: t.event_type(),
            subject: change.key.clone(),
            time: change.changed_at,
            datacontenttype: "application/json".into(),
            dataschema: t.schema_path(),
            recordtype: t,
            seq: change.seq,
            version: change.version,
            op,
            supersedes: (change.version > 1).then(|| event_id(t, &change.key, change.version - 1)),
            division: change.division,
            origin: change.source,
            masking: level,
            withheld,
            data,
        }
    }

    /// `<type>.<province>.<prefecture>.<county>.<origin>`, as on the records exchange.
    pub fn routing_key(&self) -> String {
        crate::record::routing_key(self.recordtype, &self.division, &self.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(version: i64, deleted: bool, data: Value) -> Change {
        Change {
            seq: 41,
            record_type: RecordType::Penalty,
            key: "91620822MA71XXXX0X:灵市监罚〔2025〕7号".into(),
            version,
            deleted,
            division: "620822".into(),
            data,
            changed_at: DateTime::from_timestamp(1_750_000_000, 0).unwrap(),
            source: "credit-platform".into(),
        }
    }

    #[test]
    fn changes_become_create_supersede_and_delete_events() {
        let schema = SchemaRegistry::embedded().unwrap();
        let first = FeedEvent::from_change(
            change(1, false, json!({"a": 1})),
            Masking::Internal,
            &schema,
        );
        assert_eq!(first.op, FeedOp::Create);
        assert_eq!(first.supersedes, None);
        assert_eq!(first.event_type, "gov.enforcement.penalty.v1");
        assert_eq!(
            first.routing_key(),
            "penalty.62.6208.620822.credit-platform"
        );
        let second = FeedEvent::from_change(
            change(2, false, json!({"a": 2})),
            Masking::Internal,
            &schema,
        );
        assert_eq!(second.op, FeedOp::Supersede);
        assert_eq!(second.supersedes.as_deref(), Some(first.id.as_str()));
        assert_ne!(second.id, first.id);
        let gone = FeedEvent::from_change(change(3, true, Value::Null), Masking::Public, &schema);
        assert_eq!(gone.op, FeedOp::Delete);
        assert_eq!(gone.data, Value::Null);
        assert_eq!(gone.supersedes.as_deref(), Some(second.id.as_str()));
        // The same change is the same event.
        assert_eq!(
            FeedEvent::from_change(
                change(2, false, json!({"a": 2})),
                Masking::Internal,
                &schema
            )
            .id,
            second.id
        );
        let text = serde_json::to_value(&first).unwrap();
        for attr in [
            "specversion",
            "id",
            "source",
            "type",
            "subject",
            "time",
            "dataschema",
            "seq",
            "op",
            "origin",
            "masking",
        ] {
            assert!(text.get(attr).is_some(), "{attr} missing: {text}");
        }
    }

    #[test]
    fn public_events_withhold_minors_and_drop_legal_rep_id_numbers() {
        let schema = SchemaRegistry::embedded().unwrap();
        let person = |id: &str, decided: &str| json!({"party": {"category": {"code": "2", "label": "自然人"}, "name": "王小明", "id_number": id}, "decision_date": decided});
        let public =
            |data: Value| FeedEvent::from_change(change(1, false, data), Masking::Public, &schema);
        // Born 2010-05-01: 14 when decided.
        let minor = public(person("620822201005011234", "2025-03-01"));
        assert_eq!(
            (minor.data.clone(), minor.withheld.as_deref()),
            (Value::Null, Some("minor"))
        );
        // Born 2007-03-01: 18 on the day of the decision, not the day before.
        let adult = public(person("620822200703011237", "2025-03-01"));
        assert_eq!(adult.withheld, None);
        assert_eq!(adult.data["party"]["name"], "王*");
        let day_before = public(person("620822200703011237", "2025-02-28"));
        assert_eq!(day_before.withheld.as_deref(), Some("minor"));
        // Internal consumers get the record as it is.
        let internal = FeedEvent::from_change(
            change(1, false, person("620822201005011234", "2025-03-01")),
            Masking::Internal,
            &schema,
        );
        assert_eq!(internal.withheld, None);
        assert_eq!(internal.data["party"]["id_number"], "620822201005011234");
        // A company's legal representative's ID number is never published.
        let company = public(
            json!({"party": {"name": "灵台县某公司", "legal_rep": "李四", "legal_rep_id_number": "620822199003071233"}, "decision_date": "2025-03-01"}),
        );
        assert!(
            company.data["party"].get("legal_rep_id_number").is_none(),
            "{}",
            company.data
        );
    }

    #[test]
    fn public_events_mask_a_natural_persons_id_and_phone() {
        let schema = SchemaRegistry::embedded().unwrap();
        let data = json!({
            "party": {"category": {"code": "2", "label": "自然人"}, "name": "张三丰", "id_type": {"code": "001", "label": "身份证"}, "id_number": "620822199003071234"},
            "facts": "张三丰于2025年3月在经营场所销售过期食品。",
            "remarks": "联系电话 13912345678"
        });
        let public =
            FeedEvent::from_change(change(1, false, data.clone()), Masking::Public, &schema);
        let text = serde_json::to_string(&public.data).unwrap();
        assert!(!text.contains("620822199003071234"), "{text}");
        assert!(!text.contains("13912345678"), "{text}");
        assert!(
            !text.contains("张三丰"),
            "the name repeated in the facts: {text}"
        );
        assert_eq!(public.data["party"]["name"], "张*");
        let internal =
            FeedEvent::from_change(change(1, false, data.clone()), Masking::Internal, &schema);
        assert_eq!(internal.data, data);
    }
}
