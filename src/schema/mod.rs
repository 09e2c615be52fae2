//! Loads the national schema (`schemas/v1`) and validates normalised records against it.
//!
//! Place in the flow: pull → **normalise** (map, then [`SchemaRegistry::validate`]) → route →
//! store → feed. The registry is built once at start-up (validators compiled once, code tables
//! and personal-field lists read once) and shared read-only by every normaliser worker.
//!
//! A record is checked in two passes: the compiled JSON Schema (types, lengths, patterns, the
//! identifier check digits as custom `format`s, code tables through the `x-code-table` keyword),
//! then the cross-field rules of [`rules`]. Every error carries a stable code.

mod codes;
mod formats;
mod personal;
pub mod rules;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use jsonschema::{ValidationError, Validator, error::ValidationErrorKind};
use serde_json::Value;

pub use codes::{CodeTable, CodeTables};
pub use personal::{
    MaskedValue, PersonalCondition, PersonalField, PersonalKind, mask_free_text, mask_record,
    mask_text_value,
};

use crate::domain::today_cn;
use crate::record::{FieldError, RecordType};

/// The `$id` base of the v1 documents; `$ref`s resolve against it, locally.
pub const SCHEMA_BASE: &str = "https://xiezhi.example/schemas/v1/";
const DEFS_FILE: &str = "defs.json";
const CODES_FILE: &str = "code-tables.json";

/// The v1 documents compiled into the binary, so it validates from any working directory.
const EMBEDDED: &[(&str, &str)] = &[
    ("defs.json", include_str!("../../schemas/v1/defs.json")),
    (
        "code-tables.json",
        include_str!("../../schemas/v1/code-tables.json"),
    ),
    ("agency.json", include_str!("../../schemas/v1/agency.json")),
    (
        "officer.json",
        include_str!("../../schemas/v1/officer.json"),
    ),
    (
        "enforcement_item.json",
        include_str!("../../schemas/v1/enforcement_item.json"),
    ),
    (
        "inspection.json",
        include_str!("../../schemas/v1/inspection.json"),
    ),
    (
        "penalty.json",
        include_str!("../../schemas/v1/penalty.json"),
    ),
    (
        "license.json",
        include_str!("../../schemas/v1/license.json"),
    ),
    (
        "coercive_measure.json",
        include_str!("../../schemas/v1/coercive_measure.json"),
    ),
    (
        "credit_rating.json",
        include_str!("../../schemas/v1/credit_rating.json"),
    ),
    (
        "spot_check_task.json",
        include_str!("../../schemas/v1/spot_check_task.json"),
    ),
    (
        "spot_check_result.json",
        include_str!("../../schemas/v1/spot_check_result.json"),
    ),
    (
        "hotline_ticket.json",
        include_str!("../../schemas/v1/hotline_ticket.json"),
    ),
];

/// Why the schema set could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read schema file {file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("schema file {file} is not valid JSON: {source}")]
    Parse {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("schema file {file} is invalid at `{path}`: {reason}")]
    Invalid {
        file: String,
        path: String,
        reason: String,
    },
}

/// Escapes one JSON Pointer segment (RFC 6901).
pub(crate) fn escape(segment: &str) -> String {
    if segment.contains(['~', '/']) {
        segment.replace('~', "~0").replace('/', "~1")
    } else {
        segment.to_owned()
    }
}

struct Entry {
    schema: Value,
    validator: Validator,
    personal: Vec<PersonalField>,
}

/// The compiled national schema set: one validator per record type, the code tables and the
/// personal-field lists.
pub struct SchemaRegistry {
    codes: Arc<CodeTables>,
    /// The shared definitions document, for resolving `$ref`s when walking a schema.
    defs: Value,
    /// Indexed by `RecordType as usize` (the order of [`RecordType::ALL`]).
    entries: Vec<Entry>,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("types", &self.entries.len())
            .finish_non_exhaustive()
    }
}

fn parse(file: &str, text: &str) -> Result<Value, SchemaError> {
    serde_json::from_str(text).map_err(|source| SchemaError::Parse {
        file: file.to_owned(),
        source,
    })
}

fn compile_error(file: &str, e: &ValidationError<'_>) -> SchemaError {
    // Meta-schema violations point into the schema document through the instance path; errors
    // from our keyword factory through the schema path.
    let path = if e.instance_path().as_str().is_empty() {
        e.schema_path().as_str()
    } else {
        e.instance_path().as_str()
    };
    SchemaError::Invalid {
        file: file.to_owned(),
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

impl SchemaRegistry {
    /// The schema set compiled into the binary.
    pub fn embedded() -> Result<SchemaRegistry, SchemaError> {
        Self::build(|name| {
            EMBEDDED
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(n, text)| (format!("schemas/v1/{n} (embedded)"), (*text).to_owned()))
                .ok_or_else(|| SchemaError::Read {
                    file: PathBuf::from(name),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "not embedded"),
                })
        })
    }

    /// The schema set in `dir` (a `schemas/v1` directory): for operators who ship edited schemas
    /// without rebuilding.
    pub fn from_dir(dir: &Path) -> Result<SchemaRegistry, SchemaError> {
        Self::build(|name| {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path).map_err(|source| SchemaError::Read {
                file: path.clone(),
                source,
            })?;
            Ok((path.display().to_string(), text))
        })
    }

    fn build(
        read: impl Fn(&str) -> Result<(String, String), SchemaError>,
    ) -> Result<SchemaRegistry, SchemaError> {
        let (codes_file, text) = read(CODES_FILE)?;
        let codes = Arc::new(CodeTables::from_value(
            &codes_file,
            &parse(&codes_file, &text)?,
        )?);
        let (defs_file, text) = read(DEFS_FILE)?;
        let defs = parse(&defs_file, &text)?;
        let defs_id = format!("{SCHEMA_BASE}{DEFS_FILE}");
        if defs.get("$id").and_then(Value::as_str) != Some(defs_id.as_str()) {
            return Err(SchemaError::Invalid {
                file: defs_file,
                path: "/$id".into(),
                reason: format!("must be `{defs_id}`"),
            });
        }
        let registry = jsonschema::Registry::new()
            .add(&defs_id, &defs)
            .and_then(|b| b.prepare())
            .map_err(|e| SchemaError::Invalid {
                file: defs_file.clone(),
                path: String::new(),
                reason: e.to_string(),
            })?;
        let options = jsonschema::draft202012::options()
            .with_registry(&registry)
            .should_validate_formats(true)
            .should_ignore_unknown_formats(false);
        let options = formats::register_code_table(formats::register(options), Arc::clone(&codes));

        let mut entries = Vec::with_capacity(RecordType::ALL.len());
        for t in RecordType::ALL {
            let (file, text) = read(&format!("{}.json", t.as_str()))?;
            let schema = parse(&file, &text)?;
            let want_id = format!("{SCHEMA_BASE}{}.json", t.as_str());
            if schema.get("$id").and_then(Value::as_str) != Some(want_id.as_str()) {
                return Err(SchemaError::Invalid {
                    file,
                    path: "/$id".into(),
                    reason: format!("must be `{want_id}`"),
                });
            }
            let validator = options
                .build(&schema)
                .map_err(|e| compile_error(&file, &e))?;
            let personal = personal::collect(&file, &schema, &defs)?;
            entries.push(Entry {
                schema,
                validator,
                personal,
            });
        }
        tracing::debug!(
            types = entries.len(),
            tables = codes.names().count(),
            "national schema set compiled"
        );
        let defs = defs.clone();
        Ok(SchemaRegistry {
            codes,
            defs,
            entries,
        })
    }

    fn entry(&self, t: RecordType) -> &Entry {
        &self.entries[t as usize]
    }

    /// Every reason `record` is not a valid national record of type `t`; empty when it is.
    pub fn validate(&self, t: RecordType, record: &Value) -> Vec<FieldError> {
        self.validate_at(t, record, today_cn())
    }

    /// [`SchemaRegistry::validate`] with an explicit "today" (China time) for `DATE_IN_FUTURE`.
    pub fn validate_at(&self, t: RecordType, record: &Value, today: NaiveDate) -> Vec<FieldError> {
        let entry = self.entry(t);
        let mut errors = Vec::new();
        // `is_valid` short-circuits and builds no error values: the common case stays cheap.
        if !entry.validator.is_valid(record) {
            for e in entry.validator.iter_errors(record) {
                map_error(&e, &mut errors);
            }
        }
        rules::check(t, record, today, &mut errors);
        errors
    }

    pub fn codes(&self) -> &CodeTables {
        &self.codes
    }

    /// Fields holding personal data, from the `x-personal` annotations.
    pub fn personal_fields(&self, t: RecordType) -> &[PersonalField] {
        &self.entry(t).personal
    }

    /// Masks a national record in place for publication (REFERENCE §10, the public column):
    /// the annotated personal fields, then ID and mobile numbers anywhere (free-text fields
    /// carry no annotation). Returns the (original, masked) pairs.
    pub fn mask_public(&self, t: RecordType, record: &mut Value) -> Vec<MaskedValue> {
        let mut pairs = mask_record(self.personal_fields(t), record);
        // A masked name or address is often repeated in free text (the facts of a case, a
        // ticket's content): mask it there too, longest first so a name inside a longer value
        // is not masked twice.
        pairs.sort_by_key(|(original, _)| std::cmp::Reverse(original.chars().count()));
        mask_strings(record, &|s: &str| {
            let mut t = s.to_owned();
            for (original, masked) in &pairs {
                if original.chars().count() >= 2 && t.contains(original.as_str()) {
                    t = t.replace(original.as_str(), masked);
                }
            }
            mask_free_text(&t)
        });
        pairs
    }

    /// The schema document of `t`.
    pub fn schema(&self, t: RecordType) -> &Value {
        &self.entry(t).schema
    }

    /// Follows `$ref`s into `defs.json` (at most a few hops) and returns the node they point at;
    /// a node without `$ref` comes back as it is. Used to walk a schema by property path.
    pub fn resolve(&self, node: &Value) -> Value {
        let mut cur = node.clone();
        for _ in 0..8 {
            let Some(r) = cur.get("$ref").and_then(Value::as_str) else {
                return cur;
            };
            let Some(pointer) = r.split_once('#').map(|(_, p)| p.to_owned()) else {
                return cur;
            };
            match self.defs.pointer(&pointer) {
                Some(target) => cur = target.clone(),
                None => return cur,
            }
        }
        cur
    }
}

/// Maps one jsonschema error to our stable codes. `path` points at the offending field (for
/// `required` and `additionalProperties`, at the missing or extra property itself).
fn map_error(e: &ValidationError<'_>, out: &mut Vec<FieldError>) {
    let at = e.instance_path().as_str();
    let schema_path = e.evaluation_path().as_str().to_owned();
    let masked = || e.masked().to_string();
    let mut push = |code: &str, path: String, message: String| {
        out.push(FieldError {
            code: code.to_owned(),
            path,
            schema_path: schema_path.clone(),
            message,
        });
    };
    match e.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            push(
                "SCHEMA_REQUIRED",
                format!("{at}/{}", escape(name)),
                format!("required field `{name}` is missing"),
            );
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            for name in unexpected {
                push(
                    "SCHEMA_ADDITIONAL_PROPERTY",
                    format!("{at}/{}", escape(name)),
                    format!("property `{name}` is not part of the national schema here"),
                );
            }
        }
        ValidationErrorKind::Type { .. } => push("SCHEMA_TYPE", at.to_owned(), masked()),
        ValidationErrorKind::Pattern { .. } => push("SCHEMA_PATTERN", at.to_owned(), masked()),
        ValidationErrorKind::MaxLength { .. } => push("SCHEMA_MAX_LENGTH", at.to_owned(), masked()),
        // minLength 1 marks required text: an empty string is as good as missing.
        ValidationErrorKind::MinLength { .. } => {
            push("SCHEMA_REQUIRED", at.to_owned(), "must not be empty".into())
        }
        ValidationErrorKind::MinItems { .. } => push("SCHEMA_MIN_ITEMS", at.to_owned(), masked()),
        ValidationErrorKind::Enum { .. } | ValidationErrorKind::Constant { .. } => {
            push("SCHEMA_ENUM", at.to_owned(), masked())
        }
        ValidationErrorKind::Minimum { .. }
        | ValidationErrorKind::Maximum { .. }
        | ValidationErrorKind::ExclusiveMinimum { .. }
        | ValidationErrorKind::ExclusiveMaximum { .. }
        | ValidationErrorKind::MaxItems { .. } => push("SCHEMA_RANGE", at.to_owned(), masked()),
        ValidationErrorKind::Format { format } => {
            let (code, message) = formats::explain(format, e.instance());
            push(&code, at.to_owned(), message);
        }
        ValidationErrorKind::Custom { message, .. } => match message.split_once(": ") {
            Some((formats::CODE_UNKNOWN, rest)) => {
                push(formats::CODE_UNKNOWN, format!("{at}/code"), rest.to_owned())
            }
            Some((formats::CODE_LABEL_MISMATCH, rest)) => push(
                formats::CODE_LABEL_MISMATCH,
                format!("{at}/label"),
                rest.to_owned(),
            ),
            _ => push("SCHEMA_OTHER", at.to_owned(), message.clone()),
        },
        _ => push("SCHEMA_OTHER", at.to_owned(), masked()),
    }
}

/// Rewrites every string of a JSON value in place.
fn mask_strings(v: &mut Value, f: &dyn Fn(&str) -> String) {
    match v {
        Value::String(s) => {
            let t = f(s);
            if t != *s {
                *s = t;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| mask_strings(i, f)),
        Value::Object(m) => m.values_mut().for_each(|i| mask_strings(i, f)),
        _ => {}
    }
}
