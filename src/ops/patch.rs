//! Operators: JSON Patch (RFC 6902), the way an edit to a failed record is written down — every
//! operation named, so the audit shows exactly what a person changed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One operation of a patch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Operation {
    Add { path: String, value: Value },
    Remove { path: String },
    Replace { path: String, value: Value },
    Move { from: String, path: String },
    Copy { from: String, path: String },
    Test { path: String, value: Value },
}

/// Why a patch does not apply: the operation's index and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("patch operation {index}: {reason}")]
pub struct PatchError {
    pub index: usize,
    pub reason: String,
}

/// Applies `ops` to a copy of `doc`; all or nothing.
pub fn apply(doc: &Value, ops: &[Operation]) -> Result<Value, PatchError> {
    let mut out = doc.clone();
    for (index, op) in ops.iter().enumerate() {
        let fail = |reason: String| PatchError { index, reason };
        match op {
            Operation::Add { path, value } => add(&mut out, path, value.clone()).map_err(fail)?,
            Operation::Remove { path } => {
                remove(&mut out, path).map_err(fail)?;
            }
            Operation::Replace { path, value } => {
                let target = out
                    .pointer_mut(path)
                    .ok_or_else(|| fail(format!("`{path}` does not exist")))?;
                *target = value.clone();
            }
            Operation::Move { from, path } => {
                if path.starts_with(&format!("{from}/")) {
                    return Err(fail(format!("cannot move `{from}` into itself")));
                }
                let v = remove(&mut out, from).map_err(fail)?;
                add(&mut out, path, v).map_err(fail)?;
            }
            Operation::Copy { from, path } => {
                let v = out
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| fail(format!("`{from}` does not exist")))?;
                add(&mut out, path, v).map_err(fail)?;
            }
            Operation::Test { path, value } => {
                if out.pointer(path) != Some(value) {
                    return Err(fail(format!("`{path}` is not {value}")));
                }
            }
        }
    }
    Ok(out)
}

/// Splits a pointer into its parent pointer and last (unescaped) token.
fn split(path: &str) -> Result<(&str, String), String> {
    if path.is_empty() {
        return Err("the whole document cannot be the target here".into());
    }
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("`{path}` is not a JSON pointer"))?;
    Ok((parent, last.replace("~1", "/").replace("~0", "~")))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.insert(last, value);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= a.len())
                    .ok_or_else(|| format!("`{last}` is not an index of `{parent}`"))?
            };
            a.insert(i, value);
            Ok(())
        }
        Some(_) => Err(format!("`{parent}` is neither an object nor an array")),
        None => Err(format!("`{parent}` does not exist")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(m)) => m
            .remove(&last)
            .ok_or_else(|| format!("`{path}` does not exist")),
        Some(Value::Array(a)) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(format!("`{path}` does not exist")),
        },
        _ => Err(format!("`{path}` does not exist")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ops(v: Value) -> Vec<Operation> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_rfc_operations_apply_in_order() {
        let doc = json!({"CF_XDR_SHXYM": "91620822MA7123456X", "list": [1, 2], "a/b": {"~": 1}});
        let out = apply(
            &doc,
            &ops(json!([
                {"op": "test", "path": "/CF_XDR_SHXYM", "value": "91620822MA7123456X"},
                {"op": "replace", "path": "/CF_XDR_SHXYM", "value": "91620822MA71234567"},
                {"op": "add", "path": "/list/-", "value": 3},
                {"op": "add", "path": "/list/0", "value": 0},
                {"op": "remove", "path": "/a~1b/~0"},
                {"op": "copy", "from": "/list", "path": "/copy"},
                {"op": "move", "from": "/copy", "path": "/moved"}
            ])),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"CF_XDR_SHXYM": "91620822MA71234567", "list": [0, 1, 2, 3], "a/b": {}, "moved": [0, 1, 2, 3]})
        );
    }

    #[test]
    fn a_failing_operation_is_named_and_changes_nothing() {
        let doc = json!({"a": 1});
        let e = apply(
            &doc,
            &ops(json!([
                {"op": "replace", "path": "/a", "value": 2},
                {"op": "test", "path": "/a", "value": 1}
            ])),
        )
        .unwrap_err();
        assert_eq!(e.index, 1);
        assert!(apply(&doc, &ops(json!([{"op": "remove", "path": "/b"}]))).is_err());
        assert!(
            apply(
                &doc,
                &ops(json!([{"op": "move", "from": "/a", "path": "/a/b"}]))
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<Vec<Operation>>(json!([{"op": "merge", "path": "/a"}]))
                .is_err()
        );
        assert_eq!(doc, json!({"a": 1}));
    }
}
