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

/// One value masked: what it was and what it became, so text that repeats it (an upstream
/// payload) can be masked the same way.
pub type MaskedValue = (String, String);

/// Masks the personal fields of `record` in place, by REFERENCE §10's public policy (names:
/// surname and stars; ID numbers: first 6 and last 4; phones: first 3 and last 4; addresses:
/// cut to the township). Returns the values it masked.
pub fn mask_record(fields: &[PersonalField], record: &mut Value) -> Vec<MaskedValue> {
    let mut masked = Vec::new();
    // Conditions read the record as it came: a condition's code field is never masked itself,
    // but the walk below holds the record mutably.
    let before = record.clone();
    for f in fields {
        let segs: Vec<String> = f
            .pointer
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        let mut at = Vec::new();
        mask_at(record, &before, &segs, &mut at, f, &mut masked);
    }
    masked
}

fn mask_at(
    node: &mut Value,
    root: &Value,
    segs: &[String],
    indices: &mut Vec<usize>,
    field: &PersonalField,
    masked: &mut Vec<MaskedValue>,
) {
    let Some((first, rest)) = segs.split_first() else {
        if let Value::String(s) = node
            && !s.is_empty()
            && condition_holds(root, field, indices)
        {
            let m = mask_text_value(field.kind, s);
            masked.push((std::mem::replace(s, m.clone()), m));
        }
        return;
    };
    if first == "*" {
        if let Value::Array(items) = node {
            for (i, item) in items.iter_mut().enumerate() {
                indices.push(i);
                mask_at(item, root, rest, indices, field, masked);
                indices.pop();
            }
        }
    } else if let Some(next) = node.get_mut(first.as_str()) {
        mask_at(next, root, rest, indices, field, masked);
    }
}

/// Whether the field's condition holds, with the condition pointer's `*`s taken at the same
/// array positions as the field's.
fn condition_holds(root: &Value, field: &PersonalField, indices: &[usize]) -> bool {
    let Some(cond) = &field.when else {
        return true;
    };
    let mut idx = indices.iter();
    let pointer: String = cond
        .pointer
        .split('/')
        .skip(1)
        .map(|s| {
            if s == "*" {
                idx.next().map_or_else(|| "0".to_owned(), usize::to_string)
            } else {
                s.to_owned()
            }
        })
        .fold(String::new(), |acc, s| acc + "/" + &s);
    root.pointer(&pointer)
        .and_then(Value::as_str)
        .is_some_and(|code| cond.codes.iter().any(|c| c == code))
}

/// One personal value, masked by its kind.
pub fn mask_text_value(kind: PersonalKind, value: &str) -> String {
    let chars: Vec<char> = value.trim().chars().collect();
    let n = chars.len();
    let keep = |head: usize, tail: usize| -> String {
        if n <= head + tail {
            return "*".repeat(n.max(1));
        }
        let mut s: String = chars[..head].iter().collect();
        s.push_str(&"*".repeat(n - head - tail));
        s.extend(&chars[n - tail..]);
        s
    };
    match kind {
        // Surname and one star, whatever the name's length, so the length does not show.
        PersonalKind::Name => match chars.first() {
            Some(c) => format!("{c}*"),
            None => "*".into(),
        },
        PersonalKind::IdNumber => keep(6, 4),
        PersonalKind::Phone => keep(3, 4),
        PersonalKind::Address => {
            let text: String = chars.iter().collect();
            match ["街道", "镇", "乡"]
                .iter()
                .filter_map(|m| text.find(m).map(|i| i + m.len()))
                .min()
            {
                Some(end) => format!("{}***", &text[..end]),
                None => keep(6.min(n.saturating_sub(1)), 0),
            }
        }
    }
}

/// Whether 8 digits read as a birth date YYYYMMDD (1900–2099). An ID number carries one at
/// positions 7–14; an all-digit credit code (机关、事业单位) almost never does, so its codes stay
/// readable while ID numbers with a wrong check digit (the failure store is full of them) are
/// still masked.
fn looks_like_birth_date(d: &[char]) -> bool {
    let n = |r: std::ops::Range<usize>| -> Option<u32> {
        d.get(r)?.iter().collect::<String>().parse().ok()
    };
    matches!(
        (n(0..4), n(4..6), n(6..8)),
        (Some(1900..=2099), Some(1..=12), Some(1..=31))
    )
}

/// Masks what looks like a resident ID number (17 digits and a digit or X, with a birth date
/// inside) or a mainland mobile number (11 digits from 13–19) in free text, wherever it stands
/// alone among digits: the last line of defence for payloads whose fields are not annotated.
pub fn mask_free_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() && (i == 0 || !chars[i - 1].is_ascii_alphanumeric()) {
            let mut j = i;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            let digits = j - i;
            let x_end = digits == 17 && chars.get(j).is_some_and(|c| *c == 'X' || *c == 'x');
            let end = if x_end { j + 1 } else { j };
            let alone = chars.get(end).is_none_or(|c| !c.is_ascii_alphanumeric());
            let run: String = chars[i..end].iter().collect();
            if alone && (digits == 18 || x_end) && looks_like_birth_date(&chars[i + 6..i + 14]) {
                out.push_str(&mask_text_value(PersonalKind::IdNumber, &run));
            } else if alone
                && digits == 11
                && chars[i] == '1'
                && ('3'..='9').contains(&chars[i + 1])
            {
                out.push_str(&mask_text_value(PersonalKind::Phone, &run));
            } else {
                out.push_str(&run);
            }
            i = end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod mask_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_masked_by_kind() {
        assert_eq!(mask_text_value(PersonalKind::Name, "张三"), "张*");
        assert_eq!(mask_text_value(PersonalKind::Name, "欧阳小明"), "欧*");
        assert_eq!(mask_text_value(PersonalKind::Name, "张三"), "张*");
        assert_eq!(
            mask_text_value(PersonalKind::IdNumber, "62082219900101123X"),
            "620822********123X"
        );
        assert_eq!(
            mask_text_value(PersonalKind::Phone, "15293311234"),
            "152****1234"
        );
        assert_eq!(
            mask_text_value(PersonalKind::Address, "甘肃省平凉市灵台县中台镇新庄村12号"),
            "甘肃省平凉市灵台县中台镇***"
        );
    }

    #[test]
    fn free_text_loses_id_numbers_and_phones_but_not_other_numbers() {
        let t = r#"{"sfz":"62082219900101123X","bad":"620822199001011231","tel":"15293311234","uscc":"91620822MA71234567","gov":"116208229141404728","amt":"1529331123456"}"#;
        let m = mask_free_text(t);
        assert!(
            m.contains("620822********123X") && m.contains("620822********1231"),
            "{m}"
        );
        assert!(m.contains("152****1234"), "{m}");
        assert!(
            m.contains("91620822MA71234567") && m.contains("116208229141404728"),
            "{m}"
        );
        assert!(m.contains("1529331123456"), "{m}");
    }

    #[test]
    fn a_conditional_name_is_masked_only_for_natural_persons() {
        let fields = vec![PersonalField {
            pointer: "/party/name".into(),
            kind: PersonalKind::Name,
            when: Some(PersonalCondition {
                pointer: "/party/category/code".into(),
                codes: vec!["2".into()],
            }),
        }];
        let mut person = json!({"party": {"name": "李四", "category": {"code": "2"}}});
        let mut company = json!({"party": {"name": "灵台县某公司", "category": {"code": "1"}}});
        assert_eq!(
            mask_record(&fields, &mut person),
            vec![("李四".to_owned(), "李*".to_owned())]
        );
        assert!(mask_record(&fields, &mut company).is_empty());
        assert_eq!(person["party"]["name"], "李*");
        assert_eq!(company["party"]["name"], "灵台县某公司");
    }
}
