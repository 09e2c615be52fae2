//! Normalise, in reverse: a national record written back in an upstream's dialect, for push.
//!
//! A push to a system reuses the mapping of the stream that pulls the same records from it
//! (`[[pushes]] stream = …`): each `target ← from` rule is turned around — code tables give
//! back the label or the code the upstream sends, amounts go back to its unit, dates to its
//! format, split lists are joined again. So a system's dialect is written down once, in its
//! connector file, and a fix to it serves both directions. Rules that cannot be turned around
//! (constants, templates, zipped or collected fields) are skipped and named.

use serde_json::{Map, Value};

use super::mapping::{AmountUnit, By, FieldRule, FieldSpec, lookup};
use crate::schema::CodeTables;

/// One national field written to one upstream field.
#[derive(Debug, Clone)]
struct Field {
    /// Dot path in the national record.
    target: String,
    /// Dot path in the upstream record.
    upstream: String,
    split: Option<String>,
    code_table: Option<(String, By)>,
    amount: Option<AmountUnit>,
    date: Option<String>,
    datetime: Option<String>,
    /// RFC 3339 back to epoch milliseconds (sent as a JSON number).
    epoch_ms: bool,
    /// National code → the upstream's own value (the rule's `aliases`, inverted).
    aliases: std::collections::BTreeMap<String, String>,
    /// The rule applied only when this upstream field had this value: write it back.
    when: Option<(String, String)>,
}

/// An array of objects the mapping zipped from parallel upstream arrays: national sub-field →
/// upstream array field.
#[derive(Debug, Clone)]
struct Zip {
    target: String,
    columns: std::collections::BTreeMap<String, String>,
}

/// A stream mapping turned around.
#[derive(Debug, Clone, Default)]
pub struct Reverser {
    fields: Vec<Field>,
    zips: Vec<Zip>,
    /// National fields the mapping fills in a way that cannot be reversed.
    pub skipped: Vec<String>,
}

impl Reverser {
    pub fn compile(mapping: &std::collections::BTreeMap<String, FieldSpec>) -> Reverser {
        let mut r = Reverser::default();
        for (target, spec) in mapping {
            match spec {
                FieldSpec::Path(from) => r.fields.push(Field {
                    target: target.clone(),
                    upstream: from.clone(),
                    split: None,
                    code_table: None,
                    amount: None,
                    date: None,
                    datetime: None,
                    epoch_ms: false,
                    aliases: Default::default(),
                    when: None,
                }),
                FieldSpec::Rule(rule) => match (reversible(rule), &rule.zip) {
                    (Some(from), _) => r.fields.push(Field {
                        target: target.clone(),
                        upstream: from.to_owned(),
                        split: rule.split.clone(),
                        code_table: rule.code_table.clone().map(|t| (t, rule.by)),
                        amount: rule.amount,
                        date: rule.date.as_ref().map(|f| f.as_str().to_owned()),
                        datetime: rule.datetime.as_ref().map(|f| f.as_str().to_owned()),
                        epoch_ms: rule.epoch_ms,
                        aliases: rule
                            .aliases
                            .iter()
                            .map(|(upstream, code)| (code.clone(), upstream.clone()))
                            .collect(),
                        when: rule.when.as_ref().and_then(|w| {
                            let first = w.is.as_ref()?.first()?;
                            Some((w.field.clone(), first.clone()))
                        }),
                    }),
                    (None, Some(columns)) if rule.each.is_none() => r.zips.push(Zip {
                        target: target.clone(),
                        columns: columns.clone(),
                    }),
                    _ => r.skipped.push(target.clone()),
                },
            }
        }
        r
    }

    /// Keeps only the rules writing one of `fields` (national dot paths; a path keeps its
    /// sub-fields too). Empty `fields` keeps everything.
    pub fn restrict(mut self, fields: &[String]) -> Reverser {
        if fields.is_empty() {
            return self;
        }
        let wanted = |target: &str| {
            fields.iter().any(|f| {
                target == f
                    || target
                        .strip_prefix(f.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            })
        };
        self.fields.retain(|f| wanted(&f.target));
        self.zips.retain(|z| wanted(&z.target));
        self.skipped.retain(|t| wanted(t));
        self
    }

    /// The upstream record for `national`. Absent national fields are left out.
    pub fn write(&self, national: &Value, codes: &CodeTables) -> Value {
        let mut out = Value::Object(Map::new());
        for f in &self.fields {
            let Some(v) = lookup(national, &f.target) else {
                continue;
            };
            if let Some(text) = f.render(v, codes) {
                // Amounts and epoch instants go as JSON numbers, as the upstreams send them.
                let value = if f.amount.is_some() || f.epoch_ms {
                    serde_json::from_str::<serde_json::Number>(&text)
                        .map(Value::Number)
                        .unwrap_or(Value::String(text))
                } else {
                    Value::String(text)
                };
                set_path(&mut out, &f.upstream, value);
            } else if f.is_plain() {
                set_path(&mut out, &f.upstream, v.clone());
            } else {
                continue;
            }
            if let Some((field, value)) = &f.when
                && lookup(&out, field).is_none()
            {
                set_path(&mut out, field, Value::String(value.clone()));
            }
        }
        for z in &self.zips {
            let Some(Value::Array(rows)) = lookup(national, &z.target) else {
                continue;
            };
            for (sub, upstream) in &z.columns {
                let column: Vec<Value> = rows
                    .iter()
                    .map(|r| r.get(sub).cloned().unwrap_or(Value::String(String::new())))
                    .collect();
                set_path(&mut out, upstream, Value::Array(column));
            }
        }
        out
    }
}

/// The upstream field of a rule that can be turned around: one `from`, optionally converted.
fn reversible(rule: &FieldRule) -> Option<&str> {
    let simple = rule.from_all.is_none()
        && rule.value.is_none()
        && rule.template.is_none()
        && rule.zip.is_none()
        && rule.each.is_none();
    simple.then_some(rule.from.as_deref()).flatten()
}

impl Field {
    fn is_plain(&self) -> bool {
        self.aliases.is_empty()
            && self.split.is_none()
            && self.code_table.is_none()
            && self.amount.is_none()
            && self.date.is_none()
            && self.datetime.is_none()
            && !self.epoch_ms
    }

    /// The upstream text of a national value, or `None` to copy it as it is (plain fields).
    fn render(&self, v: &Value, codes: &CodeTables) -> Option<String> {
        if self.is_plain() {
            return match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
        }
        let one = |v: &Value| -> Option<String> {
            if let Some((table, by)) = &self.code_table {
                let code = v.get("code").and_then(Value::as_str)?;
                if let Some(own) = self.aliases.get(code) {
                    return Some(own.clone());
                }
                return Some(match by {
                    By::Label => v
                        .get("label")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .or_else(|| codes.label(table, code).map(str::to_owned))?,
                    By::Code | By::Auto => code.to_owned(),
                });
            }
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            if let Some(unit) = self.amount {
                return from_yuan(&text, unit);
            }
            if let Some(fmt) = &self.date {
                return chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                    .ok()
                    .map(|d| d.format(fmt).to_string());
            }
            if self.epoch_ms {
                return chrono::DateTime::parse_from_rfc3339(&text)
                    .ok()
                    .map(|t| t.timestamp_millis().to_string());
            }
            if let Some(fmt) = &self.datetime {
                return chrono::DateTime::parse_from_rfc3339(&text).ok().map(|t| {
                    t.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8"))
                        .format(fmt)
                        .to_string()
                });
            }
            Some(text)
        };
        match (&self.split, v) {
            (Some(sep), Value::Array(items)) => {
                Some(items.iter().filter_map(one).collect::<Vec<_>>().join(sep))
            }
            _ => one(v),
        }
    }
}

/// An amount in 元 (the national unit, up to two decimals) in the upstream's unit, without
/// floating point: `1234.5` 元 is `0.12345` 万元.
pub fn from_yuan(text: &str, unit: AmountUnit) -> Option<String> {
    let (int, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if int.is_empty()
        || frac.len() > 2
        || !(int.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let fen: i128 = format!("{int}{frac:0<2}").parse().ok()?;
    let (per_unit, decimals) = match unit {
        AmountUnit::Fen => return Some(fen.to_string()),
        AmountUnit::Yuan => (100i128, 2usize),
        AmountUnit::WanYuan => (1_000_000i128, 6usize),
    };
    let whole = fen / per_unit;
    let rest = format!("{:0width$}", fen % per_unit, width = decimals);
    let rest = rest.trim_end_matches('0');
    Some(if rest.is_empty() {
        whole.to_string()
    } else {
        format!("{whole}.{rest}")
    })
}

/// Sets a dot path, creating objects on the way.
fn set_path(out: &mut Value, path: &str, v: Value) {
    let mut cur = out;
    let mut segs = path.split('.').peekable();
    while let Some(seg) = segs.next() {
        let Value::Object(m) = cur else { return };
        if segs.peek().is_none() {
            m.insert(seg.to_owned(), v);
            return;
        }
        cur = m
            .entry(seg.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::Mapper;
    use crate::schema::SchemaRegistry;
    use serde_json::json;

    #[test]
    fn amounts_go_back_to_the_upstream_unit_exactly() {
        assert_eq!(
            from_yuan("1234.5", AmountUnit::WanYuan).as_deref(),
            Some("0.12345")
        );
        assert_eq!(
            from_yuan("20000", AmountUnit::WanYuan).as_deref(),
            Some("2")
        );
        assert_eq!(
            from_yuan("0.01", AmountUnit::WanYuan).as_deref(),
            Some("0.000001")
        );
        assert_eq!(
            from_yuan("12.30", AmountUnit::Yuan).as_deref(),
            Some("12.3")
        );
        assert_eq!(from_yuan("12.34", AmountUnit::Fen).as_deref(), Some("1234"));
        assert_eq!(from_yuan("1.234", AmountUnit::Yuan), None);
        assert_eq!(from_yuan("-1", AmountUnit::Yuan), None);
    }

    /// The credit platform's penalty mapping, turned around, writes back what it reads: an
    /// upstream record mapped to a national one and reversed maps to the same national record.
    #[test]
    fn a_reversed_mapping_round_trips_the_credit_platforms_penalties() {
        let schema = SchemaRegistry::embedded().unwrap();
        let def = crate::connectors::definition::embedded()
            .unwrap()
            .into_iter()
            .find(|d| d.name == "credit-platform")
            .unwrap();
        let stream = def.stream("penalties").unwrap();
        let mapper = Mapper::compile(&stream.mapping, schema.codes()).unwrap();
        let reverser = Reverser::compile(&stream.mapping);
        assert!(reverser.skipped.is_empty(), "{:?}", reverser.skipped);
        let upstream = json!({
            "CF_WSH": "灵市监罚〔2025〕7号", "CF_XDR_MC": "灵台县某某商贸有限公司", "CF_XDR_LB": "法人及非法人组织",
            "CF_XDR_SHXYM": "91620822MA71XXXX0X", "CF_WFXW": "销售过期食品", "CF_SY": "经查……", "CF_YJ": "《食品安全法》第一百二十四条",
            "CF_CFLB": "警告;罚款", "CF_NR": "警告并处罚款", "CF_NR_FK": "0.5", "CF_JDRQ": "2025/03/20", "CF_YXQ": "2099/12/31",
            "CF_CFJG": "灵台县市场监督管理局", "CF_CFJGDM": "11620822MB1234567X", "DFBM": "620822"
        });
        let (national, errors) = mapper.map(&upstream, schema.codes());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(national["fine_amount"], "5000.00");
        let back = reverser.write(&national, schema.codes());
        assert_eq!(back["CF_NR_FK"], json!(0.5));
        assert_eq!(back["CF_JDRQ"], "2025/03/20");
        assert_eq!(back["CF_CFLB"], "警告;罚款");
        assert_eq!(back["CF_XDR_LB"], "法人及非法人组织");
        let (again, errors) = mapper.map(&back, schema.codes());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(again, national);
    }

    /// The hotline's outcome push: only the fields it names, instants back to epoch
    /// milliseconds, labels back for codes.
    #[test]
    fn a_restricted_reversal_writes_only_the_outcome_in_the_hotlines_dialect() {
        let schema = SchemaRegistry::embedded().unwrap();
        let def = crate::connectors::definition::embedded()
            .unwrap()
            .into_iter()
            .find(|d| d.name == "hotline-12345")
            .unwrap();
        let push = def
            .pushes
            .iter()
            .find(|p| p.name == "workorder-outcomes")
            .unwrap();
        let stream = def.stream("workorders").unwrap();
        let reverser = Reverser::compile(&stream.mapping).restrict(&push.fields);
        let national = json!({
            "ticket_number": "LT12345202503150012", "title": "噪音扰民", "content": "……",
            "citizen_phone": "13800000000", "status": {"code": "CLOSED", "label": "办结归档"},
            "handling_agency": {"name": "灵台县市场监督管理局", "uscc": "11620822MB1234567X"},
            "reply": "已立案查处", "replied_at": "2025-03-16T09:30:00+08:00",
            "closed_at": "2025-03-18T10:00:00+08:00",
            "resolved": {"code": "1", "label": "已解决"}, "enforcement_case_number": "灵市监立〔2025〕12号"
        });
        assert_eq!(
            reverser.write(&national, schema.codes()),
            json!({
                "orderNo": "LT12345202503150012", "status": "办结归档",
                "handleDeptName": "灵台县市场监督管理局", "handleDeptCode": "11620822MB1234567X",
                "replyContent": "已立案查处", "replyTime": 1742088600000i64,
                "finishTime": 1742263200000i64, "solveStatus": "已解决", "caseNo": "灵市监立〔2025〕12号"
            })
        );
        let only = push.only.as_ref().unwrap();
        assert!(only.holds(&national));
        assert!(!only.holds(&json!({"ticket_number": "x", "enforcement_case_number": " "})));
    }
}
