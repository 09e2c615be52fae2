//! Operators: what a viewer may see of a failure. Viewers get personal data masked (REFERENCE
//! §10): the normalised attempt by the schema's personal-field annotations, the raw payload
//! and the error messages by the values masked there, and, as a last line of defence, anything
//! that looks like a resident ID number or a mobile number.

use serde_json::{Value, json};

use crate::record::RecordType;
use crate::schema::{SchemaRegistry, mask_free_text};
use crate::store::ops::NewAudit;
use crate::store::{FailureRow, Store, StoreError};

/// Who reads failures, through which interface.
pub struct Reader {
    pub actor: String,
    /// Operators and above see personal data; viewers see it masked.
    pub sees_personal_data: bool,
    /// `api`, `console` or `cli`.
    pub via: &'static str,
}

/// Prepares failures for a reader: an unmasked read of personal data is audited (who, what,
/// which filter or id, how many); a viewer's rows are masked instead.
pub async fn present(
    store: &dyn Store,
    schema: &SchemaRegistry,
    reader: &Reader,
    action: &str,
    target: Option<String>,
    filter: Value,
    rows: &mut [FailureRow],
) -> Result<(), StoreError> {
    if reader.sees_personal_data {
        audit_unmasked(store, reader, action, target, filter, rows.len()).await
    } else {
        rows.iter_mut().for_each(|r| mask_failure(schema, r));
        Ok(())
    }
}

/// Prepares stored records' data (current or versions) for a reader, as [`present`] does
/// failures: a viewer's masked, an unmasked read audited.
pub async fn present_records(
    store: &dyn Store,
    schema: &SchemaRegistry,
    reader: &Reader,
    action: &str,
    record_type: RecordType,
    key: &str,
    data: Vec<&mut Value>,
) -> Result<(), StoreError> {
    if reader.sees_personal_data {
        let target = Some(format!("{record_type}/{key}"));
        audit_unmasked(store, reader, action, target, json!({}), data.len()).await
    } else {
        for v in data {
            schema.mask_public(record_type, v);
        }
        Ok(())
    }
}

/// Who read how much personal data unmasked, and through what.
async fn audit_unmasked(
    store: &dyn Store,
    reader: &Reader,
    action: &str,
    target: Option<String>,
    filter: Value,
    count: usize,
) -> Result<(), StoreError> {
    store
        .append_audit(&NewAudit {
            actor: reader.actor.clone(),
            action: action.to_owned(),
            target,
            filter,
            count: count as i64,
            outcome: json!({"masked": false, "via": reader.via}),
        })
        .await?;
    Ok(())
}

/// Masks a failure's personal data in place.
pub fn mask_failure(schema: &SchemaRegistry, row: &mut FailureRow) {
    let mut pairs = Vec::new();
    if let (Some(t), Some(n)) = (row.record_type, row.normalized.as_mut()) {
        pairs = schema.mask_public(t, n);
    }
    // Longest first, so a name inside a longer masked value is not masked twice.
    pairs.sort_by_key(|(original, _)| std::cmp::Reverse(original.len()));
    let mask = |text: &str| {
        let mut t = text.to_owned();
        for (original, masked) in &pairs {
            t = t.replace(original.as_str(), masked);
        }
        mask_free_text(&t)
    };
    row.raw = mask(&row.raw);
    if let Some(c) = row.raw_context.as_mut() {
        *c = mask(c);
    }
    for e in &mut row.errors {
        e.message = mask(&e.message);
    }
    if let Some(k) = row.natural_key.as_mut() {
        *k = mask(k);
    }
}
