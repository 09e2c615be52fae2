//! Operators: what a viewer may see of a failure. Viewers get personal data masked (REFERENCE
//! §10): the normalised attempt by the schema's personal-field annotations, the raw payload
//! and the error messages by the values masked there, and, as a last line of defence, anything
//! that looks like a resident ID number or a mobile number.

use crate::schema::{SchemaRegistry, mask_free_text, mask_record};
use crate::store::FailureRow;

/// Masks a failure's personal data in place.
pub fn mask_failure(schema: &SchemaRegistry, row: &mut FailureRow) {
    let mut pairs = Vec::new();
    if let (Some(t), Some(n)) = (row.record_type, row.normalized.as_mut()) {
        pairs = mask_record(schema.personal_fields(t), n);
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
    if let Some(n) = row.normalized.as_mut() {
        // Fields without an annotation (free-text remarks) still lose ID and phone numbers.
        if let Ok(masked) = serde_json::from_str(&mask_free_text(&n.to_string())) {
            *n = masked;
        }
    }
}
