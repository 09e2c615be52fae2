//! Normalise, step one: the field-mapping language of `connectors/*.toml`.
//!
//! A mapping is a table `target = source`. The target is a dot path into the national record
//! (`agency.uscc`); the source is either a plain field path of the upstream record or a rule
//! that converts units, dates, code-table flavours, parallel arrays and the like. Pure: upstream
//! record in, national record or errors out.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::record::FieldError;
use crate::schema::CodeTables;

/// One mapping entry's source: a field path, or a full rule.
#[derive(Debug, Clone)]
pub enum FieldSpec {
    Path(String),
    Rule(Box<FieldRule>),
}

/// A string is a path, a table a rule. Written out rather than `untagged`, so a rule's own
/// error (an unknown key, a date format chrono cannot read) reaches the operator instead of
/// "did not match any variant".
impl<'de> Deserialize<'de> for FieldSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> serde::de::Visitor<'de> for SpecVisitor {
            type Value = FieldSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an upstream field path or a rule table")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FieldSpec, E> {
                Ok(FieldSpec::Path(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<FieldSpec, A::Error> {
                FieldRule::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|r| FieldSpec::Rule(Box::new(r)))
            }
        }
        d.deserialize_any(SpecVisitor)
    }
}

/// A conversion rule. Exactly one of `from`, `from_all`, `value`, `template`, `zip` supplies the
/// value; the other keys convert it.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// Upstream field path (dot separated).
    pub from: Option<String>,
    /// Several fields whose non-empty values are collected into one array (after `split`).
    pub from_all: Option<Vec<String>>,
    /// A constant.
    pub value: Option<Value>,
    /// A string built from fields: `"{CF_CFMC}：{CF_JG}"`; missing fields read as empty.
    pub template: Option<String>,
    /// Parallel arrays zipped into an array of objects: `{ name = "check_personnel",
    /// certificate_number = "check_personnel_code" }`. String sources are split on `split`
    /// (default `,`).
    pub zip: Option<BTreeMap<String, String>>,
    /// An array of upstream objects (`from`) mapped element by element.
    pub each: Option<BTreeMap<String, FieldSpec>>,
    /// Split a string value into an array on this separator.
    pub split: Option<String>,
    /// Look the value up in this code table of `schemas/v1/code-tables.json`; the result is
    /// `{code, label}`.
    pub code_table: Option<String>,
    /// Whether the upstream sends the code, the label, or either (default).
    #[serde(default)]
    pub by: By,
    /// Upstream values translated before the code-table lookup (legacy or local flavours).
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Money: the upstream unit; the national record holds 元 with two decimals.
    pub amount: Option<AmountUnit>,
    /// Date in this chrono format (`%Y/%m/%d`) → `YYYY-MM-DD`. A format chrono cannot read
    /// fails the connector file's load.
    pub date: Option<DateFormat>,
    /// Local (Beijing) date-time in this chrono format → RFC 3339 with `+08:00`.
    pub datetime: Option<DateFormat>,
    /// Epoch milliseconds → RFC 3339 with `+08:00`.
    #[serde(default)]
    pub epoch_ms: bool,
    pub transform: Option<Transform>,
    /// Values meaning true and false.
    pub boolean: Option<BoolMap>,
    /// Missing or empty is an error (`MAP_MISSING_FIELD`) rather than an omitted field.
    #[serde(default)]
    pub required: bool,
    /// Used when the source is missing or empty.
    pub default: Option<Value>,
    /// Apply this entry only when another upstream field meets a condition.
    pub when: Option<When>,
}

/// A chrono format string, read into chrono's items once, when the connector file loads: reading
/// the format again for every value was most of the cost of converting a date. A format chrono
/// cannot read fails the load, naming the format.
#[derive(Debug, Clone)]
pub struct DateFormat {
    text: String,
    items: Arc<[Item<'static>]>,
}

impl DateFormat {
    pub fn new(text: &str) -> Result<DateFormat, String> {
        let items = StrftimeItems::new(text)
            .parse_to_owned()
            .map_err(|_| format!("`{text}` is not a chrono date format"))?;
        Ok(DateFormat {
            text: text.to_owned(),
            items: items.into(),
        })
    }

    /// The format as written in the connector file.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// What the value was read into; `None` when it does not match the format.
    fn read(&self, text: &str) -> Option<Parsed> {
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, text, self.items.iter()).ok()?;
        Some(parsed)
    }

    /// A date, or the date of a date-time (some upstreams send a time with every date).
    fn date(&self, text: &str) -> Option<NaiveDate> {
        let parsed = self.read(text)?;
        parsed.to_naive_date().ok().or_else(|| {
            parsed
                .to_naive_datetime_with_offset(0)
                .ok()
                .map(|dt| dt.date())
        })
    }

    fn datetime(&self, text: &str) -> Option<NaiveDateTime> {
        self.read(text)?.to_naive_datetime_with_offset(0).ok()
    }
}

impl std::fmt::Display for DateFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for DateFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        DateFormat::new(&text).map_err(serde::de::Error::custom)
    }
}

/// `YYYY-MM-DD`, as the national schema writes dates.
fn iso_date(d: NaiveDate) -> String {
    let (y, m, day) = (d.year(), d.month(), d.day());
    if (0..=9999).contains(&y) {
        format!("{y:04}-{m:02}-{day:02}")
    } else {
        d.format("%Y-%m-%d").to_string()
    }
}

/// A condition on an upstream field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    pub field: String,
    /// The field's value is one of these.
    #[serde(default)]
    pub is: Option<Vec<String>>,
    /// The field is present and non-empty (`true`) or missing/empty (`false`).
    #[serde(default)]
    pub present: Option<bool>,
}

impl When {
    /// Whether `up` meets the condition (also used on national records, by push filters).
    pub fn holds(&self, up: &Value) -> bool {
        let v = lookup(up, &self.field);
        if let Some(p) = self.present
            && p != v.is_some()
        {
            return false;
        }
        match (&self.is, v) {
            (Some(list), Some(v)) => {
                let t = text_of(v);
                list.contains(&t)
            }
            (Some(_), None) => false,
            (None, _) => true,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    Code,
    Label,
    #[default]
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmountUnit {
    Yuan,
    WanYuan,
    Fen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    Trim,
    Upper,
    /// Digits 3–8 of a unified social credit code: its registration authority's division.
    UsccDivision,
    /// The first six digits (a 9- or 12-digit township code → its county).
    Division6,
    String,
    Integer,
    Number,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoolMap {
    #[serde(rename = "true")]
    pub yes: Vec<String>,
    #[serde(rename = "false")]
    pub no: Vec<String>,
}

/// A mapping ready to run: targets pre-split, rules checked.
#[derive(Debug, Clone)]
pub struct Mapper {
    entries: Vec<(Vec<String>, FieldSpec)>,
}

/// A problem found when compiling a mapping (reported by the connector loader with file + key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingProblem {
    pub target: String,
    pub reason: String,
}

impl Mapper {
    /// Compiles a mapping, checking each rule's shape and its code tables.
    pub fn compile(
        mapping: &BTreeMap<String, FieldSpec>,
        codes: &CodeTables,
    ) -> Result<Mapper, MappingProblem> {
        let mut entries = Vec::with_capacity(mapping.len());
        for (target, spec) in mapping {
            check_spec(target, spec, codes)?;
            entries.push((target.split('.').map(str::to_owned).collect(), spec.clone()));
        }
        Ok(Mapper { entries })
    }

    /// Targets of this mapping (dot paths), for the schema check at load time.
    pub fn targets(&self) -> impl Iterator<Item = String> + '_ {
        self.entries.iter().map(|(t, _)| t.join("."))
    }

    /// Maps one upstream record: the national record built from every entry that mapped, and
    /// the errors of those that did not (all of them, not just the first).
    pub fn map(&self, upstream: &Value, codes: &CodeTables) -> (Value, Vec<FieldError>) {
        let mut out = Map::new();
        let mut errors = Vec::new();
        for (target, spec) in &self.entries {
            match eval(spec, upstream, codes) {
                Ok(Some(v)) => insert_path(&mut out, target, v),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        (Value::Object(out), errors)
    }
}

fn check_spec(target: &str, spec: &FieldSpec, codes: &CodeTables) -> Result<(), MappingProblem> {
    let problem = |reason: String| MappingProblem {
        target: target.to_owned(),
        reason,
    };
    let FieldSpec::Rule(rule) = spec else {
        return Ok(());
    };
    let sources = [
        rule.from.is_some(),
        rule.from_all.is_some(),
        rule.value.is_some(),
        rule.template.is_some(),
        rule.zip.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if sources != 1 {
        return Err(problem(
            "give exactly one of `from`, `from_all`, `value`, `template`, `zip`".into(),
        ));
    }
    if rule.each.is_some() && rule.from.is_none() {
        return Err(problem("`each` maps the array named by `from`".into()));
    }
    if let Some(table) = &rule.code_table
        && !codes.has_table(table)
    {
        return Err(problem(format!("unknown code table `{table}`")));
    }
    let conversions = [
        rule.amount.is_some(),
        rule.date.is_some(),
        rule.datetime.is_some(),
        rule.epoch_ms,
        rule.code_table.is_some(),
        rule.boolean.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if conversions > 1 {
        return Err(problem("combine at most one of `amount`, `date`, `datetime`, `epoch_ms`, `code_table`, `boolean`".into()));
    }
    if let Some(w) = &rule.when
        && w.is.is_none()
        && w.present.is_none()
    {
        return Err(problem("`when` needs `is` or `present`".into()));
    }
    if let Some(each) = &rule.each {
        for (sub, spec) in each {
            check_spec(&format!("{target}[].{sub}"), spec, codes)?;
        }
    }
    Ok(())
}

fn insert_path(out: &mut Map<String, Value>, path: &[String], v: Value) {
    match path {
        [] => {}
        [last] => {
            out.insert(last.clone(), v);
        }
        [head, rest @ ..] => {
            // Most inserts find their parent object already there: look before cloning the key.
            let child = match out.get_mut(head.as_str()) {
                Some(child) => child,
                None => out
                    .entry(head.clone())
                    .or_insert_with(|| Value::Object(Map::new())),
            };
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(m) = child {
                insert_path(m, rest, v);
            }
        }
    }
}

/// Reads a dot path; `None` for missing, null or empty-string values.
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let cur = match (v, path.contains('.')) {
        // Upstream fields are mostly top-level: no path walk for them.
        (Value::Object(m), false) => m.get(path)?,
        _ => {
            let mut cur = v;
            for seg in path.split('.') {
                cur = match cur {
                    Value::Object(m) => m.get(seg)?,
                    Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
                    _ => return None,
                };
            }
            cur
        }
    };
    match cur {
        Value::Null => None,
        Value::String(s) if trimmed(s).is_empty() => None,
        other => Some(other),
    }
}

/// `s` without surrounding whitespace. Most values have none: two byte tests say so before
/// `trim` decodes characters from both ends.
fn trimmed(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(a), Some(b)) if plain(*a) && plain(*b) => s,
        _ => s.trim(),
    }
}

/// A printable ASCII byte other than space: no whitespace character starts or ends with it
/// (UTF-8 lead and continuation bytes are not plain, so those take `trim`).
fn plain(b: u8) -> bool {
    (0x21..0x7f).contains(&b)
}

fn pointer(path: &str) -> String {
    format!("/{}", path.replace('.', "/"))
}

fn err(code: &str, path: &str, message: String) -> FieldError {
    FieldError {
        code: code.to_owned(),
        path: pointer(path),
        schema_path: String::new(),
        message,
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => trimmed(s).to_owned(),
        other => other.to_string(),
    }
}

fn eval(spec: &FieldSpec, up: &Value, codes: &CodeTables) -> Result<Option<Value>, FieldError> {
    let rule = match spec {
        FieldSpec::Path(p) => {
            return Ok(lookup(up, p).map(|v| match v {
                Value::String(s) => Value::String(trimmed(s).to_owned()),
                other => other.clone(),
            }));
        }
        FieldSpec::Rule(r) => r,
    };
    if let Some(w) = &rule.when
        && !w.holds(up)
    {
        return Ok(None);
    }
    // Named in error messages only: borrowed, so a record that maps cleanly allocates nothing.
    let source_name: Cow<'_, str> = match (&rule.from, &rule.from_all) {
        (Some(f), _) => Cow::Borrowed(f.as_str()),
        (None, Some(all)) => Cow::Owned(all.join("+")),
        (None, None) => Cow::Borrowed(""),
    };
    let source_name = source_name.as_ref();

    let raw: Option<Value> = if let Some(v) = &rule.value {
        Some(v.clone())
    } else if let Some(t) = &rule.template {
        let s = render_template(t, up);
        (!s.trim().is_empty()).then_some(Value::String(s))
    } else if let Some(z) = &rule.zip {
        zip_arrays(z, rule.split.as_deref().unwrap_or(","), up)
    } else if let Some(fields) = &rule.from_all {
        let mut items = Vec::new();
        for f in fields {
            if let Some(v) = lookup(up, f) {
                match (&rule.split, v) {
                    (Some(sep), Value::String(s)) => items.extend(split(s, sep)),
                    (_, Value::Array(a)) => items.extend(a.iter().cloned()),
                    (_, other) => items.push(other.clone()),
                }
            }
        }
        (!items.is_empty()).then_some(Value::Array(items))
    } else if let Some(from) = &rule.from {
        lookup(up, from).cloned()
    } else {
        None
    };

    let Some(raw) = raw.or_else(|| rule.default.clone()) else {
        return if rule.required {
            Err(err(
                "MAP_MISSING_FIELD",
                source_name,
                format!("required upstream field `{source_name}` is missing or empty"),
            ))
        } else {
            Ok(None)
        };
    };

    if let Some(each) = &rule.each {
        let Value::Array(items) = raw else {
            return Err(err(
                "MAP_BAD_VALUE",
                source_name,
                format!("`{source_name}` should be an array"),
            ));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in &items {
            let mut m = Map::new();
            for (sub, spec) in each {
                if let Some(v) = eval(spec, item, codes)? {
                    m.insert(sub.clone(), v);
                }
            }
            out.push(Value::Object(m));
        }
        return Ok(Some(Value::Array(out)));
    }

    // A split turns one string into several values, each converted alike.
    let values = match (&rule.split, &raw, &rule.zip) {
        (Some(sep), Value::String(s), None) => Some(split(s, sep)),
        (_, Value::Array(a), None) if rule.from_all.is_some() || rule.split.is_some() => {
            Some(a.clone())
        }
        _ => None,
    };
    match values {
        Some(vs) => {
            let mut out = Vec::with_capacity(vs.len());
            for v in vs {
                out.push(convert(rule, v, source_name, codes)?);
            }
            Ok(Some(Value::Array(out)))
        }
        None => convert(rule, raw, source_name, codes).map(Some),
    }
}

fn split(s: &str, sep: &str) -> Vec<Value> {
    s.split(sep)
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| Value::String(p.to_owned()))
        .collect()
}

fn render_template(t: &str, up: &Value) -> String {
    let mut out = String::with_capacity(t.len() + 32);
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                if let Some(v) = lookup(up, &after[..close]) {
                    out.push_str(&text_of(v));
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn zip_arrays(z: &BTreeMap<String, String>, sep: &str, up: &Value) -> Option<Value> {
    let columns: Vec<(&String, Vec<Value>)> = z
        .iter()
        .map(|(target, from)| {
            let vals = match lookup(up, from) {
                Some(Value::Array(a)) => a.clone(),
                Some(Value::String(s)) => split(s, sep),
                Some(other) => vec![other.clone()],
                None => Vec::new(),
            };
            (target, vals)
        })
        .collect();
    let n = columns.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    if n == 0 {
        return None;
    }
    let rows = (0..n)
        .map(|i| {
            let mut m = Map::new();
            for (target, vals) in &columns {
                if let Some(v) = vals.get(i) {
                    m.insert((*target).clone(), Value::String(text_of(v)));
                }
            }
            Value::Object(m)
        })
        .collect();
    Some(Value::Array(rows))
}

/// Upstream local times are Beijing time (UTC+8, no daylight saving).
pub fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
}

fn convert(rule: &FieldRule, v: Value, src: &str, codes: &CodeTables) -> Result<Value, FieldError> {
    let mut v = v;
    if let Some(t) = rule.transform {
        v = transform(t, v, src)?;
    }
    if let Some(unit) = rule.amount {
        let text = text_of(&v);
        return to_yuan(&text, unit).map(Value::String).ok_or_else(|| {
            err(
                "MAP_BAD_AMOUNT",
                src,
                format!("`{text}` is not an amount in {unit:?} with at most fen precision"),
            )
        });
    }
    if let Some(fmt) = &rule.date {
        let text = text_of(&v);
        return fmt
            .date(&text)
            .map(|d| Value::String(iso_date(d)))
            .ok_or_else(|| {
                err(
                    "MAP_BAD_DATE",
                    src,
                    format!("`{text}` is not a real date in the format `{fmt}`"),
                )
            });
    }
    if let Some(fmt) = &rule.datetime {
        let text = text_of(&v);
        return fmt
            .datetime(&text)
            .and_then(|dt| beijing().from_local_datetime(&dt).single())
            .map(|dt| Value::String(dt.to_rfc3339()))
            .ok_or_else(|| {
                err(
                    "MAP_BAD_DATE",
                    src,
                    format!("`{text}` is not a real date-time in the format `{fmt}`"),
                )
            });
    }
    if rule.epoch_ms {
        let text = text_of(&v);
        return text
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .map(|dt| Value::String(dt.with_timezone(&beijing()).to_rfc3339()))
            .ok_or_else(|| {
                err(
                    "MAP_BAD_DATE",
                    src,
                    format!("`{text}` is not epoch milliseconds"),
                )
            });
    }
    if let Some(b) = &rule.boolean {
        let text = text_of(&v);
        return if b.yes.contains(&text) {
            Ok(Value::Bool(true))
        } else if b.no.contains(&text) {
            Ok(Value::Bool(false))
        } else {
            Err(err(
                "MAP_BAD_VALUE",
                src,
                format!(
                    "`{text}` is neither a true value {:?} nor a false value {:?}",
                    b.yes, b.no
                ),
            ))
        };
    }
    if let Some(table) = &rule.code_table {
        let text = text_of(&v);
        let text = rule.aliases.get(&text).cloned().unwrap_or(text);
        let by_code = || {
            codes
                .label(table, &text)
                .map(|l| (text.clone(), l.to_owned()))
        };
        let by_label = || {
            codes
                .code_for_label(table, &text)
                .map(|c| (c.to_owned(), text.clone()))
        };
        let found = match rule.by {
            By::Code => by_code(),
            By::Label => by_label(),
            By::Auto => by_code().or_else(by_label),
        };
        return found
            .map(|(code, label)| {
                let mut m = Map::new();
                m.insert("code".into(), Value::String(code));
                m.insert("label".into(), Value::String(label));
                Value::Object(m)
            })
            .ok_or_else(|| {
                err(
                    "MAP_UNKNOWN_CODE",
                    src,
                    format!("`{text}` is not in code table `{table}`"),
                )
            });
    }
    Ok(v)
}

fn transform(t: Transform, v: Value, src: &str) -> Result<Value, FieldError> {
    let text = text_of(&v);
    Ok(match t {
        Transform::Trim | Transform::String => Value::String(text),
        Transform::Upper => Value::String(text.to_uppercase()),
        Transform::UsccDivision => {
            let d: String = text.chars().skip(2).take(6).collect();
            if d.len() != 6 || !d.chars().all(|c| c.is_ascii_digit()) {
                return Err(err(
                    "MAP_BAD_VALUE",
                    src,
                    format!("`{text}` has no division code in digits 3–8"),
                ));
            }
            Value::String(d)
        }
        Transform::Division6 => {
            let d: String = text.chars().take(6).collect();
            if d.len() != 6 || !d.chars().all(|c| c.is_ascii_digit()) {
                return Err(err(
                    "MAP_BAD_VALUE",
                    src,
                    format!("`{text}` does not start with a six-digit division code"),
                ));
            }
            Value::String(d)
        }
        Transform::Integer => match text.parse::<i64>() {
            Ok(i) => Value::from(i),
            Err(_) => {
                return Err(err(
                    "MAP_BAD_VALUE",
                    src,
                    format!("`{text}` is not an integer"),
                ));
            }
        },
        Transform::Number => match text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            Some(n) => Value::Number(n),
            None => {
                return Err(err(
                    "MAP_BAD_VALUE",
                    src,
                    format!("`{text}` is not a number"),
                ));
            }
        },
    })
}

/// Converts a decimal amount to 元 with exactly two decimals, without floating point.
/// `None` when the text is not a plain non-negative decimal or is finer than a fen.
pub fn to_yuan(text: &str, unit: AmountUnit) -> Option<String> {
    let text = text.trim();
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 12
    {
        return None;
    }
    // Value in units of 10^-12 of the upstream unit.
    let scaled: i128 = format!("{int}{frac:0<12}").parse().ok()?;
    // Fen per upstream unit: 元 → 100, 万元 → 1,000,000, 分 → 1.
    let fen_per_unit: i128 = match unit {
        AmountUnit::Yuan => 100,
        AmountUnit::WanYuan => 1_000_000,
        AmountUnit::Fen => 1,
    };
    let total = scaled.checked_mul(fen_per_unit)?;
    let unit_scale = 1_000_000_000_000i128;
    if total % unit_scale != 0 {
        return None;
    }
    let fen = total / unit_scale;
    Some(format!("{}.{:02}", fen / 100, fen % 100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_convert_exactly() {
        assert_eq!(
            to_yuan("0.2", AmountUnit::WanYuan).as_deref(),
            Some("2000.00")
        );
        assert_eq!(
            to_yuan("0.000001", AmountUnit::WanYuan).as_deref(),
            Some("0.01")
        );
        assert_eq!(
            to_yuan("1500", AmountUnit::Yuan).as_deref(),
            Some("1500.00")
        );
        assert_eq!(
            to_yuan("1500.5", AmountUnit::Yuan).as_deref(),
            Some("1500.50")
        );
        assert_eq!(to_yuan("12345", AmountUnit::Fen).as_deref(), Some("123.45"));
        assert_eq!(
            to_yuan("0.0000001", AmountUnit::WanYuan),
            None,
            "finer than a fen"
        );
        assert_eq!(to_yuan("-1", AmountUnit::Yuan), None);
        assert_eq!(to_yuan("abc", AmountUnit::Yuan), None);
    }

    fn parse_date(text: &str, fmt: &str) -> Option<NaiveDate> {
        DateFormat::new(fmt).expect("a chrono format").date(text)
    }

    #[test]
    fn dates_reject_impossible_days() {
        assert_eq!(
            parse_date("2025/02/28", "%Y/%m/%d"),
            NaiveDate::from_ymd_opt(2025, 2, 28)
        );
        assert_eq!(parse_date("2025/02/30", "%Y/%m/%d"), None);
        assert_eq!(
            parse_date("2025-03-01 10:00:00", "%Y-%m-%d %H:%M:%S"),
            NaiveDate::from_ymd_opt(2025, 3, 1)
        );
        assert_eq!(
            parse_date("20250301", "%Y%m%d"),
            NaiveDate::from_ymd_opt(2025, 3, 1)
        );
        assert_eq!(parse_date("2025/03/01 trailing", "%Y/%m/%d"), None);
        assert_eq!(
            DateFormat::new("%Y-%m-%d %H:%M:%S")
                .expect("a chrono format")
                .datetime("2025-03-01 10:05:00"),
            NaiveDate::from_ymd_opt(2025, 3, 1).and_then(|d| d.and_hms_opt(10, 5, 0))
        );
        assert_eq!(
            iso_date(NaiveDate::from_ymd_opt(7, 1, 2).expect("a date")),
            "0007-01-02"
        );
    }

    #[test]
    fn a_format_chrono_cannot_read_fails_the_load() {
        let e = DateFormat::new("%Y-%Q").expect_err("%Q is no chrono specifier");
        assert!(e.contains("%Y-%Q"), "{e}");
        let rule: Result<FieldRule, _> =
            serde_json::from_value(serde_json::json!({"from": "D", "date": "%Y-%Q"}));
        assert!(
            rule.expect_err("the load fails")
                .to_string()
                .contains("%Y-%Q")
        );
    }

    #[test]
    fn a_rules_own_load_error_reaches_the_operator() {
        let spec: Result<FieldSpec, _> =
            serde_json::from_value(serde_json::json!({"from": "D", "date": "%Y-%Q"}));
        let e = spec.expect_err("the load fails").to_string();
        assert!(e.contains("%Y-%Q") && !e.contains("untagged"), "{e}");
        let spec: Result<FieldSpec, _> =
            serde_json::from_value(serde_json::json!({"from": "D", "dat": "%Y"}));
        assert!(
            spec.expect_err("the load fails")
                .to_string()
                .contains("dat")
        );
        let spec: FieldSpec = serde_json::from_value(serde_json::json!("CF_WSH")).expect("a path");
        assert!(matches!(spec, FieldSpec::Path(p) if p == "CF_WSH"));
    }

    #[test]
    fn trimming_keeps_inner_text_and_drops_outer_whitespace() {
        for (input, want) in [
            ("abc", "abc"),
            (" abc", "abc"),
            ("abc\t", "abc"),
            ("灵台县", "灵台县"),
            ("\u{3000}灵台\u{3000}", "灵台"),
            ("a b", "a b"),
            ("", ""),
            ("  ", ""),
        ] {
            assert_eq!(trimmed(input), want, "{input:?}");
            assert_eq!(trimmed(input), input.trim(), "{input:?}");
        }
    }

    #[test]
    fn templates_and_zips() {
        let up = serde_json::json!({"a": "x", "b": "y", "names": "张三,李四", "certs": ["1", "2"]});
        assert_eq!(render_template("{a}：{b}{missing}", &up), "x：y");
        let z: BTreeMap<String, String> = [
            ("name".to_owned(), "names".to_owned()),
            ("certificate_number".to_owned(), "certs".to_owned()),
        ]
        .into();
        let got = zip_arrays(&z, ",", &up).unwrap();
        assert_eq!(
            got,
            serde_json::json!([{"certificate_number": "1", "name": "张三"}, {"certificate_number": "2", "name": "李四"}])
        );
    }

    #[test]
    fn lookup_treats_blank_as_missing() {
        let up = serde_json::json!({"a": {"b": " "}, "c": null, "d": [1, 2]});
        assert!(lookup(&up, "a.b").is_none());
        assert!(lookup(&up, "c").is_none());
        assert_eq!(lookup(&up, "d.1"), Some(&Value::from(2)));
    }
}
