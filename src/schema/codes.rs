//! The national code tables (`schemas/v1/code-tables.json`): every coded field of a national
//! record carries both code and label, and both must match one row of the table its schema names.

use std::collections::HashMap;

use serde_json::Value;

use super::SchemaError;

/// One code table, in file order.
#[derive(Debug, Clone, Default)]
pub struct CodeTable {
    rows: Vec<(String, String)>,
    by_code: HashMap<String, usize>,
    by_label: HashMap<String, usize>,
}

impl CodeTable {
    pub fn label(&self, code: &str) -> Option<&str> {
        self.by_code.get(code).map(|i| self.rows[*i].1.as_str())
    }

    pub fn code_for_label(&self, label: &str) -> Option<&str> {
        self.by_label.get(label).map(|i| self.rows[*i].0.as_str())
    }

    /// `(code, label)` rows in file order.
    pub fn rows(&self) -> impl Iterator<Item = (&str, &str)> {
        self.rows.iter().map(|(c, l)| (c.as_str(), l.as_str()))
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// All code tables, by name.
#[derive(Debug, Clone, Default)]
pub struct CodeTables {
    tables: HashMap<String, CodeTable>,
    names: Vec<String>,
}

impl CodeTables {
    /// Reads `{ "<table>": { "<code>": "<label>", ... }, ... }`. `file` names the source in errors.
    pub fn from_value(file: &str, value: &Value) -> Result<CodeTables, SchemaError> {
        let bad = |path: String, reason: &str| SchemaError::Invalid {
            file: file.to_owned(),
            path,
            reason: reason.to_owned(),
        };
        let root = value
            .as_object()
            .ok_or_else(|| bad(String::new(), "must be an object of tables"))?;
        let mut out = CodeTables::default();
        for (name, rows) in root {
            let rows = rows.as_object().ok_or_else(|| {
                bad(
                    format!("/{}", super::escape(name)),
                    "a table must be an object of code → label",
                )
            })?;
            if rows.is_empty() {
                return Err(bad(
                    format!("/{}", super::escape(name)),
                    "a table must not be empty",
                ));
            }
            let mut table = CodeTable::default();
            for (code, label) in rows {
                let pointer = format!("/{}/{}", super::escape(name), super::escape(code));
                let label = label
                    .as_str()
                    .ok_or_else(|| bad(pointer.clone(), "a label must be a string"))?;
                if code.is_empty() || label.is_empty() {
                    return Err(bad(pointer, "codes and labels must not be empty"));
                }
                let i = table.rows.len();
                table.by_code.insert(code.clone(), i);
                // Two codes with one label would make label → code mapping ambiguous for the
                // connectors that only receive labels.
                if table.by_label.insert(label.to_owned(), i).is_some() {
                    return Err(bad(pointer, "label used twice in this table"));
                }
                table.rows.push((code.clone(), label.to_owned()));
            }
            out.names.push(name.clone());
            out.tables.insert(name.clone(), table);
        }
        Ok(out)
    }

    pub fn label(&self, table: &str, code: &str) -> Option<&str> {
        self.tables.get(table)?.label(code)
    }

    pub fn code_for_label(&self, table: &str, label: &str) -> Option<&str> {
        self.tables.get(table)?.code_for_label(label)
    }

    pub fn has_table(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    pub fn table(&self, table: &str) -> Option<&CodeTable> {
        self.tables.get(table)
    }

    /// Table names in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookups_both_ways() {
        let t =
            CodeTables::from_value("t.json", &json!({"gender": {"1": "男", "2": "女"}})).unwrap();
        assert_eq!(t.label("gender", "2"), Some("女"));
        assert_eq!(t.code_for_label("gender", "男"), Some("1"));
        assert_eq!(t.label("gender", "3"), None);
        assert_eq!(t.label("nope", "1"), None);
        assert!(t.has_table("gender") && !t.has_table("nope"));
        assert_eq!(
            t.table("gender").unwrap().rows().collect::<Vec<_>>(),
            vec![("1", "男"), ("2", "女")]
        );
    }

    #[test]
    fn malformed_tables_name_file_and_pointer() {
        let e = CodeTables::from_value("ct.json", &json!({"gender": {"1": 5}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ct.json") && e.contains("/gender/1"), "{e}");
        let e = CodeTables::from_value("ct.json", &json!({"g": {"1": "x", "2": "x"}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/g/2") && e.contains("twice"), "{e}");
        assert!(CodeTables::from_value("ct.json", &json!([])).is_err());
    }
}
