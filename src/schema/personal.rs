//! Personal fields, collected once from the schemas' `x-personal` annotations so the feeds can
//! mask them (REFERENCE §10) without a second, drifting list in code.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{SchemaError, escape};

/// What kind of personal data a field holds; decides the masking pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonalKind {
    Name,
    IdNumber,
    Phone,
    Address,
}

impl PersonalKind {
    fn parse(s: &str) -> Option<PersonalKind> {
        match s {
            "name" => Some(PersonalKind::Name),
            "id_number" => Some(PersonalKind::IdNumber),
            "phone" => Some(PersonalKind::Phone),
            "address" => Some(PersonalKind::Address),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PersonalKind::Name => "name",
            PersonalKind::IdNumber => "id_number",
            PersonalKind::Phone => "phone",
            PersonalKind::Address => "address",
        }
    }
}

/// The field is personal only when the value at `pointer` is one of `codes` (the party's name
/// is personal for 自然人 and 个体工商户, not for a company).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalCondition {
    /// Absolute pointer, e.g. `/party/category/code`.
    pub pointer: String,
    pub codes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalField {
    /// JSON Pointer into the record; array elements as `*` (`/officers/*/name`).
    pub pointer: String,
    pub kind: PersonalKind,
    /// `None`: always personal.
    pub when: Option<PersonalCondition>,
}

/// Walks `schema` (following `$ref`s into `defs`) and lists its personal fields.
pub(crate) fn collect(
    file: &str,
    schema: &Value,
    defs: &Value,
) -> Result<Vec<PersonalField>, SchemaError> {
    let mut out = Vec::new();
    walk(file, schema, defs, "", &mut out, 0)?;
    Ok(out)
}

fn walk(
    file: &str,
    node: &Value,
    defs: &Value,
    pointer: &str,
    out: &mut Vec<PersonalField>,
    depth: usize,
) -> Result<(), SchemaError> {
    let invalid = |reason: String| SchemaError::Invalid {
        file: file.to_owned(),
        path: pointer.to_owned(),
        reason,
    };
    if depth > 32 {
        return Err(invalid(
            "schema nests deeper than 32 levels (a $ref cycle?)".into(),
        ));
    }
    let Some(obj) = node.as_object() else {
        return Ok(());
    };
    if let Some(kind) = obj.get("x-personal") {
        let kind = kind.as_str().and_then(PersonalKind::parse).ok_or_else(|| {
            invalid(format!(
                "x-personal must be name, id_number, phone or address, not {kind}"
            ))
        })?;
        let when = match obj.get("x-personal-when") {
            None => None,
            Some(w) => {
                let field = w.get("field").and_then(Value::as_str);
                let codes: Option<Vec<String>> =
                    w.get("codes").and_then(Value::as_array).map(|a| {
                        a.iter()
                            .filter_map(|c| c.as_str().map(str::to_owned))
                            .collect()
                    });
                let (Some(field), Some(codes)) = (field, codes) else {
                    return Err(invalid(
                        "x-personal-when needs {\"field\": <sibling>, \"codes\": [..]}".into(),
                    ));
                };
                let parent = pointer.rsplit_once('/').map_or("", |(p, _)| p);
                Some(PersonalCondition {
                    pointer: format!("{parent}/{}/code", escape(field)),
                    codes,
                })
            }
        };
        out.push(PersonalField {
            pointer: pointer.to_owned(),
            kind,
            when,
        });
    }
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let target = r
            .split_once("#")
            .filter(|(doc, _)| doc.is_empty() || doc.ends_with("defs.json"))
            .and_then(|(_, frag)| defs.pointer(frag))
            .ok_or_else(|| invalid(format!("cannot resolve $ref `{r}` in defs.json")))?;
        walk(file, target, defs, pointer, out, depth + 1)?;
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            walk(
                file,
                sub,
                defs,
                &format!("{pointer}/{}", escape(name)),
                out,
                depth + 1,
            )?;
        }
    }
    if let Some(items) = obj.get("items") {
        walk(file, items, defs, &format!("{pointer}/*"), out, depth + 1)?;
    }
    Ok(())
}
