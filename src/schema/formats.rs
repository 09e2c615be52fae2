//! Custom `format`s and the `x-code-table` keyword: the national-identifier check digits and the
//! code tables run inside the compiled validator, so a valid record costs one pass.

use std::sync::Arc;

use jsonschema::{Keyword, ValidationError, ValidationOptions, paths::Location};
use serde_json::{Map, Value};

use super::CodeTables;
use crate::domain::{
    CheckListCode, DivisionCode, IdError, OrgCode, ResidentId, TownshipCode, Uscc,
};

/// Custom format name → parser. The error's code becomes the `FieldError` code.
/// A format's parser, reduced to its verdict.
type Check = fn(&str) -> Result<(), IdError>;

const FORMATS: &[(&str, Check)] = &[
    ("uscc", |s| Uscc::parse(s).map(drop)),
    ("party-uscc", |s| Uscc::parse_party(s).map(drop)),
    ("org-code", |s| OrgCode::parse(s).map(drop)),
    ("resident-id", |s| ResidentId::parse(s).map(drop)),
    ("division-code", |s| DivisionCode::parse(s).map(drop)),
    ("township-code", |s| TownshipCode::parse(s).map(drop)),
    ("check-list-code", |s| CheckListCode::parse(s).map(drop)),
];

/// Registers every custom format on the options.
pub(crate) fn register<'i>(mut options: ValidationOptions<'i>) -> ValidationOptions<'i> {
    for (name, parse) in FORMATS {
        let parse = *parse;
        options = options.with_format(*name, move |s: &str| parse(s).is_ok());
    }
    options
}

/// The stable code and message for a failed `format`, re-running the parser to learn why.
pub(crate) fn explain(format: &str, instance: &Value) -> (String, String) {
    let text = instance.as_str().unwrap_or_default();
    if let Some((_, parse)) = FORMATS.iter().find(|(n, _)| *n == format)
        && let Err(e) = parse(text)
    {
        return (e.code.to_owned(), e.message);
    }
    match format {
        "date" => (
            "DATE_INVALID".into(),
            format!("`{text}` is not a calendar date YYYY-MM-DD"),
        ),
        "date-time" => (
            "DATETIME_INVALID".into(),
            format!(
                "`{text}` is not an RFC 3339 date-time with offset (e.g. 2025-03-12T09:30:00+08:00)"
            ),
        ),
        _ => (
            "SCHEMA_FORMAT".into(),
            format!("`{text}` is not a valid `{format}`"),
        ),
    }
}

/// Prefixes of the custom-keyword messages; the error mapper splits them off again because
/// jsonschema carries a custom keyword's outcome as free text.
pub(crate) const CODE_UNKNOWN: &str = "CODE_UNKNOWN";
pub(crate) const CODE_LABEL_MISMATCH: &str = "CODE_LABEL_MISMATCH";

/// `"x-code-table": "<table>"` on a `code_label` value: the code must be in the table and the
/// label must be the table's label for it.
struct CodeTableKeyword {
    codes: Arc<CodeTables>,
    table: String,
}

enum Outcome<'a> {
    Ok,
    Unknown(&'a str),
    Mismatch {
        code: &'a str,
        label: &'a str,
        expected: String,
    },
}

impl CodeTableKeyword {
    fn check<'a>(&self, instance: &'a Value) -> Outcome<'a> {
        // A value that is not a {code, label} object is the `code_label` schema's business.
        let Some(obj) = instance.as_object() else {
            return Outcome::Ok;
        };
        let Some(code) = obj.get("code").and_then(Value::as_str) else {
            return Outcome::Ok;
        };
        let Some(expected) = self.codes.label(&self.table, code) else {
            return Outcome::Unknown(code);
        };
        match obj.get("label").and_then(Value::as_str) {
            Some(label) if label != expected => Outcome::Mismatch {
                code,
                label,
                expected: expected.to_owned(),
            },
            _ => Outcome::Ok,
        }
    }
}

impl<'i> Keyword<'i> for CodeTableKeyword {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        match self.check(instance) {
            Outcome::Ok => Ok(()),
            Outcome::Unknown(code) => Err(ValidationError::custom(format!(
                "{CODE_UNKNOWN}: code `{code}` is not in table `{}`",
                self.table
            ))),
            Outcome::Mismatch {
                code,
                label,
                expected,
            } => Err(ValidationError::custom(format!(
                "{CODE_LABEL_MISMATCH}: label `{label}` does not match code `{code}` of table `{}` (expected `{expected}`)",
                self.table
            ))),
        }
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        matches!(self.check(instance), Outcome::Ok)
    }
}

/// Registers `x-code-table`; an unknown table name fails schema compilation, so a typo in a
/// schema file is caught at start-up rather than by every record.
pub(crate) fn register_code_table<'i>(
    options: ValidationOptions<'i>,
    codes: Arc<CodeTables>,
) -> ValidationOptions<'i> {
    options.with_keyword(
        "x-code-table",
        move |_parent: &Map<String, Value>,
              value: &Value,
              _path: Location|
              -> Result<Box<dyn for<'x> Keyword<'x>>, ValidationError<'_>> {
            let Some(table) = value.as_str() else {
                return Err(ValidationError::schema(
                    "x-code-table must name a table (a string)",
                ));
            };
            if !codes.has_table(table) {
                return Err(ValidationError::schema(format!(
                    "x-code-table names unknown table `{table}`"
                )));
            }
            Ok(Box::new(CodeTableKeyword {
                codes: Arc::clone(&codes),
                table: table.to_owned(),
            }))
        },
    )
}
