//! The record model every stage shares: pull → normalise → **route** → store → feed.
//!
//! A normalised record travels as a CloudEvents 1.0 event (structured JSON); events that share a
//! routing key travel together as one bus message in CloudEvents batch mode, because one AMQP
//! message per record cannot reach the throughput target (see `docs/architecture.md`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// The eleven record types of the national enforcement data standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    Agency,
    Officer,
    EnforcementItem,
    Inspection,
    Penalty,
    License,
    CoerciveMeasure,
    CreditRating,
    SpotCheckTask,
    SpotCheckResult,
    HotlineTicket,
}

impl RecordType {
    pub const ALL: [RecordType; 11] = [
        RecordType::Agency,
        RecordType::Officer,
        RecordType::EnforcementItem,
        RecordType::Inspection,
        RecordType::Penalty,
        RecordType::License,
        RecordType::CoerciveMeasure,
        RecordType::CreditRating,
        RecordType::SpotCheckTask,
        RecordType::SpotCheckResult,
        RecordType::HotlineTicket,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Agency => "agency",
            RecordType::Officer => "officer",
            RecordType::EnforcementItem => "enforcement_item",
            RecordType::Inspection => "inspection",
            RecordType::Penalty => "penalty",
            RecordType::License => "license",
            RecordType::CoerciveMeasure => "coercive_measure",
            RecordType::CreditRating => "credit_rating",
            RecordType::SpotCheckTask => "spot_check_task",
            RecordType::SpotCheckResult => "spot_check_result",
            RecordType::HotlineTicket => "hotline_ticket",
        }
    }

    /// CloudEvents `type` attribute; a new major schema version gets a new type.
    pub fn event_type(self) -> String {
        format!("gov.enforcement.{}.v1", self.as_str())
    }

    /// CloudEvents `dataschema`: the schema document's path in the repository.
    pub fn schema_path(self) -> String {
        format!("schemas/v1/{}.json", self.as_str())
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown record type name.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown record type `{0}` (expected one of agency, officer, enforcement_item, inspection, penalty, license, coercive_measure, credit_rating, spot_check_task, spot_check_result, hotline_ticket)"
)]
pub struct UnknownRecordType(pub String);

impl FromStr for RecordType {
    type Err = UnknownRecordType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecordType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownRecordType(s.to_owned()))
    }
}

/// What an event asks the store to do with its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Insert or update (a no-op when the content hash is unchanged).
    Upsert,
    /// The upstream deleted the record: the store keeps a tombstone.
    Delete,
}

/// Where a record came from: enough to find the upstream page again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Lineage {
    pub connector: String,
    pub stream: String,
    pub sync_run: String,
    /// The page, cursor or batch number the record was fetched with.
    pub page: String,
    /// Position of the record within that page.
    pub index: u32,
}

impl Lineage {
    /// The page's trace id (`<sync run>/<connector>/<stream>/<page>`): what the fetch logs.
    pub fn page_trace(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.sync_run, self.connector, self.stream, self.page
        )
    }

    /// The record's trace id: the page's, and `#<index>` within it.
    pub fn trace_id(&self) -> String {
        format!("{}#{}", self.page_trace(), self.index)
    }
}

/// A normalised record as a CloudEvents 1.0 event (structured content mode).
///
/// Extension attribute names follow the CloudEvents naming rule (lower-case letters and digits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub specversion: String,
    /// Deterministic from (source, record type, natural key, content hash): a re-sent record is
    /// recognisably the same event.
    pub id: String,
    /// `/xiezhi/<connector>/<stream>`
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The natural key.
    pub subject: String,
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    pub dataschema: String,
    pub recordtype: RecordType,
    /// Six-digit GB/T 2260 division code of the record.
    pub division: String,
    pub op: Op,
    pub connector: String,
    pub stream: String,
    pub syncrun: String,
    pub page: String,
    pub recordindex: u32,
    /// SHA-256 (hex) of the canonical JSON of `data`; empty for deletes.
    pub contenthash: String,
    /// The upstream's own update time for this record, when it gives one (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sourceupdated: Option<String>,
    /// The national record as JSON text (`None` for a tombstone): serialised once, when the
    /// hash was computed, and carried as text from there to the store row. Nothing between
    /// normalisation and the store looks inside a record, and a parsed record costs several
    /// times its text in memory and in allocator work.
    #[serde(default)]
    pub data: Option<RecordText>,
}

/// A record's JSON text as it travels on the bus: embedded verbatim in the event, never parsed
/// on the way. Equal when the texts are equal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordText(Box<RawValue>);

impl RecordText {
    /// The compact JSON text of `value`.
    pub fn from_value(value: &Value) -> RecordText {
        canonical(value).1
    }

    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for RecordText {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Event {
    /// Builds an event for a normalised record.
    pub fn new(
        record_type: RecordType,
        key: String,
        division: String,
        op: Op,
        data: Option<Value>,
        lineage: &Lineage,
        source_updated: Option<String>,
    ) -> Event {
        let (contenthash, data) = match &data {
            Some(v) => {
                let (hash, text) = canonical(v);
                (hash, Some(text))
            }
            None => (String::new(), None),
        };
        let source = format!("/xiezhi/{}/{}", lineage.connector, lineage.stream);
        let id = event_id(&source, record_type, &key, op, &contenthash);
        Event {
            specversion: "1.0".into(),
            id,
            source,
            event_type: record_type.event_type(),
            subject: key,
            time: Utc::now(),
            datacontenttype: "application/json".into(),
            dataschema: record_type.schema_path(),
            recordtype: record_type,
            division,
            op,
            connector: lineage.connector.clone(),
            stream: lineage.stream.clone(),
            syncrun: lineage.sync_run.clone(),
            page: lineage.page.clone(),
            recordindex: lineage.index,
            contenthash,
            sourceupdated: source_updated,
            data,
        }
    }

    /// The record's JSON text (`None` for a tombstone).
    pub fn data_text(&self) -> Option<&str> {
        self.data.as_ref().map(RecordText::get)
    }

    /// The record parsed (`None` for a tombstone). For the rare readers that look inside.
    pub fn data_value(&self) -> Option<Value> {
        // The text is JSON by construction (it is a `RawValue`), so it parses.
        self.data_text().and_then(|t| serde_json::from_str(t).ok())
    }

    /// `<record_type>.<province>.<prefecture>.<county>.<connector>`, the division code written at
    /// 2, 4 and 6 digits so consumers bind with AMQP wildcards (`penalty.62.6208.#`).
    pub fn routing_key(&self) -> String {
        routing_key(self.recordtype, &self.division, &self.connector)
    }

    /// The trace id that follows this record from its upstream page to its store row:
    /// `<sync run>/<connector>/<stream>/<page>#<index>` (the page as the request asked for it).
    /// The fetch logs it per page, the store writer per applied batch, and the stored version's
    /// lineage keeps its parts.
    pub fn trace_id(&self) -> String {
        self.lineage().trace_id()
    }

    pub fn lineage(&self) -> Lineage {
        Lineage {
            connector: self.connector.clone(),
            stream: self.stream.clone(),
            sync_run: self.syncrun.clone(),
            page: self.page.clone(),
            index: self.recordindex,
        }
    }
}

/// See [`Event::routing_key`]. A division code shorter than six digits is padded with zeros so
/// the key always has five segments.
pub fn routing_key(record_type: RecordType, division: &str, connector: &str) -> String {
    let mut d: String = division
        .chars()
        .filter(|c| c.is_ascii_digit())
        .take(6)
        .collect();
    while d.len() < 6 {
        d.push('0');
    }
    format!(
        "{}.{}.{}.{}.{}",
        record_type.as_str(),
        &d[..2],
        &d[..4],
        &d[..6],
        connector
    )
}

fn event_id(source: &str, record_type: RecordType, key: &str, op: Op, hash: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        source,
        record_type.as_str(),
        key,
        if op == Op::Delete { "d" } else { "u" },
        hash,
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    uuid::Builder::from_sha1_bytes(digest[..16].try_into().unwrap_or([0u8; 16]))
        .into_uuid()
        .to_string()
}

/// SHA-256 of the JSON text of a value. serde_json's maps keep their keys sorted, so equal
/// records hash equally whatever order their fields were built in.
pub fn content_hash(value: &Value) -> String {
    canonical(value).0
}

/// [`content_hash`] and the JSON text it covers, from one serialisation.
pub fn hash_and_text(value: &Value) -> (String, Arc<str>) {
    let (hash, text) = canonical(value);
    (hash, Arc::from(text.get()))
}

fn canonical(value: &Value) -> (String, RecordText) {
    // Serialising a `Value` cannot fail: its keys are strings.
    let raw = serde_json::value::to_raw_value(value).unwrap_or_else(|_| RawValue::NULL.to_owned());
    (hex::encode(Sha256::digest(raw.get())), RecordText(raw))
}

/// One bus message: events that share a routing key (CloudEvents batch mode,
/// `application/cloudevents-batch+json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Unique per published batch; a republished batch keeps its id so the store can skip it.
    pub id: String,
    pub routing_key: String,
    pub events: Vec<Event>,
}

impl Batch {
    pub fn new(routing_key: String, events: Vec<Event>) -> Batch {
        Batch {
            // Time-ordered (v7), so the store's index of applied batch ids grows at its end
            // instead of at a random leaf per batch.
            id: uuid::Uuid::now_v7().to_string(),
            routing_key,
            events,
        }
    }

    /// The wire body: a JSON array of events (CloudEvents batch mode).
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.events).unwrap_or_default()
    }

    /// Parses a wire body back; `id` and `routing_key` come from the message properties.
    pub fn from_body(
        id: String,
        routing_key: String,
        body: &[u8],
    ) -> Result<Batch, serde_json::Error> {
        Ok(Batch {
            id,
            routing_key,
            events: serde_json::from_slice(body)?,
        })
    }
}

/// The pipeline stage at which a record failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Pull,
    Normalize,
    Route,
    Store,
    Push,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Pull => "pull",
            Stage::Normalize => "normalize",
            Stage::Route => "route",
            Stage::Store => "store",
            Stage::Push => "push",
        }
    }
}

/// One reason a record was refused, with a stable code operators can group by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Stable upper-snake-case code, e.g. `USCC_CHECK_DIGIT`, `SCHEMA_REQUIRED`, `OFFICERS_MIN_2`.
    pub code: String,
    /// JSON Pointer into the record the error is about (national record for schema errors,
    /// upstream record for mapping errors).
    pub path: String,
    /// JSON Pointer into the schema (empty for mapping errors).
    #[serde(default)]
    pub schema_path: String,
    pub message: String,
}

/// A record that could not go through, kept with its raw upstream payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Deterministic: the same record failing again collapses into one entry.
    pub id: String,
    pub stage: Stage,
    pub connector: String,
    pub stream: String,
    pub record_type: Option<RecordType>,
    pub natural_key: Option<String>,
    /// The upstream's own id of the record, when it has one.
    pub upstream_id: Option<String>,
    /// The upstream payload of this record, byte-exact as received (after charset decoding).
    pub raw: String,
    /// What the raw payload is read against when it cannot stand alone: the header line of a
    /// CSV export. Replay needs it to parse the line again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_context: Option<String>,
    /// The normalised attempt, when mapping got that far.
    pub normalized: Option<Value>,
    pub errors: Vec<FieldError>,
    pub lineage: Lineage,
}

impl Failure {
    /// Id from (stage, connector, stream, upstream id or else the raw payload).
    pub fn make_id(
        stage: Stage,
        connector: &str,
        stream: &str,
        upstream_id: Option<&str>,
        raw: &str,
    ) -> String {
        let mut h = Sha256::new();
        for part in [
            stage.as_str(),
            connector,
            stream,
            upstream_id.unwrap_or(raw),
        ] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        hex::encode(&h.finalize()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_text_crosses_the_bus_verbatim_and_matches_its_hash() {
        let data = serde_json::json!({"z": "平凉", "a": [1, 2.5, null], "m": {"b": true}});
        let lineage = Lineage {
            connector: "credit-platform".into(),
            stream: "penalties".into(),
            ..Default::default()
        };
        let ev = Event::new(
            RecordType::Penalty,
            "K".into(),
            "620822".into(),
            Op::Upsert,
            Some(data.clone()),
            &lineage,
            None,
        );
        // Keys sorted, compact: the text the hash covers.
        assert_eq!(
            ev.data_text(),
            Some(r#"{"a":[1,2.5,null],"m":{"b":true},"z":"平凉"}"#)
        );
        assert_eq!(ev.contenthash, content_hash(&data));
        let batch = Batch::new(ev.routing_key(), vec![ev.clone()]);
        let back = Batch::from_body(
            batch.id.clone(),
            batch.routing_key.clone(),
            &batch.to_body(),
        )
        .unwrap();
        assert_eq!(back.events[0].data_text(), ev.data_text());
        assert_eq!(back.events[0].data_value(), Some(data));
        assert_eq!(back, batch);
    }

    #[test]
    fn a_trace_id_names_run_source_page_and_position() {
        let l = Lineage {
            connector: "provincial".into(),
            stream: "penalties".into(),
            sync_run: "run-1".into(),
            page: "updatedSince=2025-01-01 00:00:00&page=3".into(),
            index: 7,
        };
        assert_eq!(
            l.page_trace(),
            "run-1/provincial/penalties/updatedSince=2025-01-01 00:00:00&page=3"
        );
        assert_eq!(l.trace_id(), format!("{}#7", l.page_trace()));
    }

    #[test]
    fn routing_key_writes_division_at_three_levels() {
        assert_eq!(
            routing_key(RecordType::Penalty, "620822", "credit-platform"),
            "penalty.62.6208.620822.credit-platform"
        );
        assert_eq!(
            routing_key(RecordType::Agency, "62", "provincial"),
            "agency.62.6200.620000.provincial"
        );
    }

    #[test]
    fn record_type_round_trips_through_its_name() {
        for t in RecordType::ALL {
            assert_eq!(t.as_str().parse::<RecordType>().ok(), Some(t));
        }
        assert!("fine".parse::<RecordType>().is_err());
    }

    #[test]
    fn event_id_is_deterministic_and_content_sensitive() {
        let l = Lineage {
            connector: "c".into(),
            stream: "s".into(),
            ..Default::default()
        };
        let a = Event::new(
            RecordType::Penalty,
            "k".into(),
            "620822".into(),
            Op::Upsert,
            Some(serde_json::json!({"a":1})),
            &l,
            None,
        );
        let b = Event::new(
            RecordType::Penalty,
            "k".into(),
            "620822".into(),
            Op::Upsert,
            Some(serde_json::json!({"a":1})),
            &l,
            None,
        );
        let c = Event::new(
            RecordType::Penalty,
            "k".into(),
            "620822".into(),
            Op::Upsert,
            Some(serde_json::json!({"a":2})),
            &l,
            None,
        );
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert_eq!(a.contenthash.len(), 64);
    }
}
