//! Pushes into the simulated upstreams, the way those systems take data from the provinces: the
//! credit platform's 双公示 and 双随机-result publication endpoints, the internet-plus exchange's
//! upload of check_action rows, the double-random system's intake of credit tiers and the
//! hotline's intake of work-order outcomes. Each request is authenticated and faulted like a
//! pull, carries an `Idempotency-Key`, and is validated item by item in the system's own dialect
//! (the rules live in credit.rs, internet_plus.rs, double_random.rs and hotline.rs). What was
//! accepted is kept in a ledger that `GET /_admin/accepted` shows. See docs/simulators.md
//! ("Pushes").
//!
//! The ledger is separate from the generated pull data: a pushed record does not appear in the
//! system's pull streams or `/truth`, and a `u`/`d` only finds keys accepted through pushes.

use super::core::{Core, Fault, Kind};
use super::prim::{V, json_fields};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// Longest `Idempotency-Key` accepted.
pub const IDEMPOTENCY_KEY_MAX: usize = 128;
/// Bodies above this are refused before parsing (500 rows of check_action are about 0.7 MB).
const BODY_LIMIT: usize = 16 << 20;

/// A push endpoint: which system, which record type, how many items per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    CreditPenalties,
    CreditLicenses,
    /// 双随机 results published by the credit platform.
    CreditSpotResults,
    CheckAction,
    /// Credit tiers taken by the double-random system for its sampling ratios.
    CreditTiers,
    /// Outcomes of work orders that became enforcement cases, back to the hotline.
    HotlineOutcomes,
}

impl Endpoint {
    pub fn find(kind: Kind, path: &str) -> Option<Endpoint> {
        match (kind, path) {
            (Kind::Credit, "/api/v2/publish/penalties") => Some(Endpoint::CreditPenalties),
            (Kind::Credit, "/api/v2/publish/licenses") => Some(Endpoint::CreditLicenses),
            (Kind::Credit, "/api/v2/publish/spot-check-results") => {
                Some(Endpoint::CreditSpotResults)
            }
            (Kind::InternetPlus, "/exchange/check_action") => Some(Endpoint::CheckAction),
            (Kind::DoubleRandom, "/api/credit-tiers") => Some(Endpoint::CreditTiers),
            (Kind::Hotline, "/open/api/v1/workorders/outcomes") => Some(Endpoint::HotlineOutcomes),
            _ => None,
        }
    }

    /// National record type of the items (the ledger's and `/_admin/accepted`'s key).
    pub fn rtype(self) -> &'static str {
        match self {
            Endpoint::CreditPenalties => "penalty",
            Endpoint::CreditLicenses => "license",
            Endpoint::CreditSpotResults => "spot_check_result",
            Endpoint::CheckAction => "inspection",
            Endpoint::CreditTiers => "credit_rating",
            Endpoint::HotlineOutcomes => "hotline_ticket",
        }
    }

    /// The item field that names the record (where `E_NOT_FOUND` is reported).
    fn key_field(self) -> &'static str {
        match self {
            Endpoint::CreditPenalties => "CF_WSH",
            Endpoint::CreditLicenses => "XK_WSH",
            Endpoint::CreditSpotResults => "CC_RWBH",
            Endpoint::CheckAction => "check_action_code",
            Endpoint::CreditTiers => "subjectCode",
            Endpoint::HotlineOutcomes => "orderNo",
        }
    }

    fn max_items(self) -> usize {
        match self {
            Endpoint::CreditPenalties | Endpoint::CreditLicenses | Endpoint::CreditSpotResults => {
                100
            }
            Endpoint::CheckAction | Endpoint::CreditTiers => 500,
            Endpoint::HotlineOutcomes => 200,
        }
    }

    /// The body field holding the items, as the system's pull API names its records.
    fn list(self) -> &'static str {
        match self {
            Endpoint::CreditPenalties | Endpoint::CreditLicenses | Endpoint::CreditSpotResults => {
                "items"
            }
            Endpoint::CheckAction | Endpoint::CreditTiers => "rows",
            Endpoint::HotlineOutcomes => "records",
        }
    }

    /// Checks one item in the system's dialect.
    fn check(self, raw: &str) -> Checked {
        match self {
            Endpoint::CreditPenalties => super::credit::check_publication(false, raw),
            Endpoint::CreditLicenses => super::credit::check_publication(true, raw),
            Endpoint::CreditSpotResults => super::credit::check_spot_result(raw),
            Endpoint::CheckAction => super::internet_plus::check_row(raw),
            Endpoint::CreditTiers => super::double_random::check_tier(raw),
            Endpoint::HotlineOutcomes => super::hotline::check_outcome(raw),
        }
    }
}

/// Language of a system's messages.
fn lang_of(kind: Kind) -> Lang {
    match kind {
        Kind::InternetPlus | Kind::Hotline => Lang::En,
        _ => Lang::Zh,
    }
}

/// Record types a system takes pushes for; `/_admin/accepted` lists each, possibly empty.
fn push_types(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Credit => &["penalty", "license", "spot_check_result"],
        Kind::InternetPlus => &["inspection"],
        Kind::DoubleRandom => &["credit_rating"],
        Kind::Hotline => &["hotline_ticket"],
        Kind::Provincial => &[],
    }
}

/// What an item asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOp {
    /// Insert or replace (credit `I`/`U`, exchange `i`).
    Put,
    /// Replace a key accepted before and still live (exchange `u`).
    Update,
    /// Withdraw / delete a key accepted before (credit `D`, exchange `d`); only key fields needed.
    Delete,
}

/// One problem with one field of one item.
#[derive(Clone, Debug)]
pub struct Problem {
    pub field: String,
    pub code: &'static str,
    pub msg: String,
}

/// Language of a system's messages: the credit platform and the double-random system answer in
/// Chinese, the exchange and the hotline in English.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

/// An item after the dialect's checks.
pub struct Checked {
    /// National natural key as far as the item gives it (missing parts are empty).
    pub key: String,
    pub op: PushOp,
    pub problems: Vec<Problem>,
    /// Fields that make up the content, to tell a re-send of the same content from a change.
    pub content: BTreeMap<String, Value>,
}

/// One pushed item being checked: its fields as raw JSON and the problems found so far.
pub struct Item<'a> {
    fields: HashMap<String, &'a RawValue>,
    pub lang: Lang,
    pub problems: Vec<Problem>,
}

impl<'a> Item<'a> {
    /// Splits an item into its fields; `Err` (already a rejected `Checked`) when it is not a JSON object.
    pub fn parse(raw: &'a str, lang: Lang) -> Result<Item<'a>, Checked> {
        match serde_json::from_str::<HashMap<String, &'a RawValue>>(raw) {
            Ok(fields) => Ok(Item {
                fields,
                lang,
                problems: Vec::new(),
            }),
            Err(_) => Err(Checked {
                key: String::new(),
                op: PushOp::Put,
                problems: vec![Problem {
                    field: String::new(),
                    code: "E_TYPE",
                    msg: match lang {
                        Lang::Zh => "数据项必须是JSON对象".into(),
                        Lang::En => "row must be a JSON object".into(),
                    },
                }],
                content: BTreeMap::new(),
            }),
        }
    }

    pub fn problem(&mut self, field: &str, code: &'static str, msg: String) {
        self.problems.push(Problem {
            field: field.to_string(),
            code,
            msg,
        });
    }

    fn say(&self, zh: &str, en: &str) -> String {
        match self.lang {
            Lang::Zh => zh.to_string(),
            Lang::En => en.to_string(),
        }
    }

    pub fn raw(&self, field: &str) -> Option<&'a str> {
        self.fields.get(field).map(|r| r.get())
    }

    /// Text of a string field: `None` when absent, `null` or blank. Another JSON type is `E_TYPE`.
    pub fn text(&mut self, field: &str) -> Option<String> {
        let raw = self.raw(field)?;
        match serde_json::from_str::<Value>(raw) {
            Ok(Value::String(s)) if s.trim().is_empty() => None,
            Ok(Value::String(s)) => Some(s),
            Ok(Value::Null) => None,
            _ => {
                let msg = self.say("类型错误：应为字符串", "wrong type: expected a string");
                self.problem(field, "E_TYPE", msg);
                None
            }
        }
    }

    /// Like `text`, and a missing value is `E_REQUIRED`.
    pub fn required(&mut self, field: &str) -> Option<String> {
        let v = self.text(field);
        if v.is_none() {
            self.missing(field);
        }
        v
    }

    /// `E_REQUIRED`, unless the field already has a problem (a wrong type is not also "missing").
    pub fn missing(&mut self, field: &str) {
        if self.problems.iter().any(|p| p.field == field) {
            return;
        }
        let msg = self.say("必填项不能为空", "required column is missing or empty");
        self.problem(field, "E_REQUIRED", msg);
    }

    /// `E_CODE`: a value not in the code table the system uses.
    pub fn bad_code(&mut self, field: &str, value: &str, allowed: &[&str]) {
        let msg = match self.lang {
            Lang::Zh => format!("代码表中没有“{value}”（可选：{}）", allowed.join("、")),
            Lang::En => format!(
                "{value:?} is not in the code table (one of: {})",
                allowed.join(", ")
            ),
        };
        self.problem(field, "E_CODE", msg);
    }

    /// Checks a text field against a code table (labels or codes, whichever the dialect renders).
    pub fn code(&mut self, field: &str, value: &Option<String>, allowed: &[&str]) {
        if let Some(v) = value
            && !allowed.contains(&v.as_str())
        {
            self.bad_code(field, v, allowed);
        }
    }

    /// `E_USCC` unless the value is a USCC with a right GB 32100 check character.
    pub fn uscc(&mut self, field: &str, value: &Option<String>) {
        if let Some(v) = value
            && !super::prim::uscc_valid(v)
        {
            let msg = self.say(
                "不是有效的统一社会信用代码（GB 32100 校验不通过）",
                "not a valid unified social credit code (GB 32100 check character)",
            );
            self.problem(field, "E_USCC", msg);
        }
    }

    /// `E_IDCARD` unless the value is a resident ID with a real birth date and right check character.
    pub fn resident_id(&mut self, field: &str, value: &Option<String>) {
        if let Some(v) = value
            && !super::prim::resident_id_valid(v)
        {
            let msg = self.say(
                "不是有效的居民身份证号码（GB 11643 校验不通过）",
                "not a valid resident ID number (GB 11643 check character / birth date)",
            );
            self.problem(field, "E_IDCARD", msg);
        }
    }

    /// `E_ORGCODE` unless the value is an organisation code with a right GB 11714 check character.
    pub fn org_code(&mut self, field: &str, value: &Option<String>) {
        if let Some(v) = value
            && !super::prim::org_code_valid(v)
        {
            let msg = self.say(
                "不是有效的组织机构代码（GB 11714 校验不通过）",
                "not a valid organisation code (GB 11714 check character)",
            );
            self.problem(field, "E_ORGCODE", msg);
        }
    }

    /// `E_FORMAT` unless the value is exactly `n` ASCII digits.
    pub fn digits(&mut self, field: &str, value: &Option<String>, n: usize) {
        if let Some(v) = value
            && (v.len() != n || !v.bytes().all(|b| b.is_ascii_digit()))
        {
            let msg = match self.lang {
                Lang::Zh => format!("应为{n}位数字"),
                Lang::En => format!("must be {n} digits"),
            };
            self.problem(field, "E_FORMAT", msg);
        }
    }

    /// A date field in `YYYY<sep>MM<sep>DD`; `E_DATE` when it is not a real date in that form.
    pub fn date(
        &mut self,
        field: &str,
        value: &Option<String>,
        sep: u8,
    ) -> Option<chrono::NaiveDate> {
        let v = value.as_ref()?;
        let d = super::prim::parse_ymd(v, sep);
        if d.is_none() {
            let s = sep as char;
            let msg = match self.lang {
                Lang::Zh => format!("日期无效：“{v}”（格式 YYYY{s}MM{s}DD）"),
                Lang::En => format!("not a valid date: {v:?} (format YYYY{s}MM{s}DD)"),
            };
            self.problem(field, "E_DATE", msg);
        }
        d
    }

    /// A time field in `YYYY-MM-DD HH:mm:ss`; `E_DATE` when it is not a real time in that form.
    pub fn datetime(
        &mut self,
        field: &str,
        value: &Option<String>,
    ) -> Option<chrono::NaiveDateTime> {
        let v = value.as_ref()?;
        let t = super::prim::parse_dt(v);
        if t.is_none() {
            let msg = match self.lang {
                Lang::Zh => format!("时间无效：“{v}”（格式 YYYY-MM-DD HH:mm:ss）"),
                Lang::En => format!("not a valid time: {v:?} (format YYYY-MM-DD HH:mm:ss)"),
            };
            self.problem(field, "E_DATE", msg);
        }
        t
    }

    /// A date field in `YYYYMMDD`; `E_DATE` when it is not a real date in that form.
    pub fn date_compact(
        &mut self,
        field: &str,
        value: &Option<String>,
    ) -> Option<chrono::NaiveDate> {
        let v = value.as_ref()?;
        let d = (v.len() == 8 && v.bytes().all(|b| b.is_ascii_digit()))
            .then(|| chrono::NaiveDate::parse_from_str(v, "%Y%m%d").ok())
            .flatten();
        if d.is_none() {
            let msg = match self.lang {
                Lang::Zh => format!("日期无效：“{v}”（格式 YYYYMMDD）"),
                Lang::En => format!("not a valid date: {v:?} (format YYYYMMDD)"),
            };
            self.problem(field, "E_DATE", msg);
        }
        d
    }

    /// An instant in epoch milliseconds, a JSON integer: `None` when absent or `null`; a string
    /// is `E_TYPE`, a negative or fractional number `E_DATE`.
    pub fn epoch_ms(&mut self, field: &str) -> Option<i64> {
        let raw = self.raw(field)?;
        match serde_json::from_str::<Value>(raw) {
            Ok(Value::Null) => None,
            Ok(Value::Number(n)) => match n.as_i64().filter(|ms| *ms >= 0) {
                Some(ms) => Some(ms),
                None => {
                    let msg = match self.lang {
                        Lang::Zh => format!("时间无效：{raw}（应为毫秒时间戳）"),
                        Lang::En => {
                            format!("not a valid instant: {raw} (epoch milliseconds)")
                        }
                    };
                    self.problem(field, "E_DATE", msg);
                    None
                }
            },
            _ => {
                let msg = self.say(
                    "类型错误：应为毫秒时间戳（数字）",
                    "wrong type: expected epoch milliseconds (a number)",
                );
                self.problem(field, "E_TYPE", msg);
                None
            }
        }
    }

    /// An amount in 万元: a plain non-negative JSON number with at most 6 decimals and at most 12
    /// integer digits (the platform's DECIMAL(18,6)), else `E_AMOUNT`. Returns whether a value is
    /// present (absent and `null` are not), so that a broken amount is not also "missing".
    pub fn amount(&mut self, field: &str) -> bool {
        let Some(raw) = self.raw(field) else {
            return false;
        };
        if raw == "null" {
            return false;
        }
        match amount_problem(raw) {
            None => true,
            Some(why) => {
                let msg = match self.lang {
                    Lang::Zh => {
                        format!("金额应为不小于0的数字（万元，最多6位小数）：{raw}（{why}）")
                    }
                    Lang::En => format!("amount must be a non-negative number: {raw} ({why})"),
                };
                self.problem(field, "E_AMOUNT", msg);
                // present but unusable: not "missing" as well
                true
            }
        }
    }

    /// `E_UNKNOWN` for every field the dialect does not have.
    pub fn unknown_fields(&mut self, known: &[&str]) {
        let mut unknown: Vec<String> = self
            .fields
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .cloned()
            .collect();
        unknown.sort();
        for f in unknown {
            let msg = self.say("未知字段", "unknown column");
            self.problem(&f, "E_UNKNOWN", msg);
        }
    }

    /// The item's content for change detection: every field but the ones named (op, envelope).
    pub fn content(&self, skip: &[&str]) -> BTreeMap<String, Value> {
        self.fields
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, r)| {
                let v = serde_json::from_str::<Value>(r.get())
                    .unwrap_or_else(|_| Value::String(r.get().to_string()));
                (k.clone(), v)
            })
            .collect()
    }

    pub fn finish(self, key: String, op: PushOp, skip: &[&str]) -> Checked {
        let content = self.content(skip);
        Checked {
            key,
            op,
            problems: self.problems,
            content,
        }
    }
}

/// Why a raw JSON value is not a usable amount, if it is not. Works on the text as sent so that
/// decimals are counted as written (a float round trip would hide `0.1234567`).
pub fn amount_problem(raw: &str) -> Option<&'static str> {
    let t = raw.trim();
    if t.starts_with('"') {
        return Some("a string, not a JSON number");
    }
    if !t.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Some("not a number");
    }
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => match t[i + 1..].trim_start_matches('+').parse::<i64>() {
            Ok(e) if e.abs() < 1_000 => (&t[..i], e),
            _ => return Some("exponent out of range"),
        },
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some("not a number");
    }
    // value = 0.<digits> × 10^point
    let point = int.len() as i64 + exp;
    let significant = digits.trim_end_matches('0');
    let lead = significant.len() - significant.trim_start_matches('0').len();
    if significant.trim_start_matches('0').is_empty() {
        return None; // zero, whatever its sign
    }
    if neg {
        return Some("negative");
    }
    if significant.len() as i64 - point > 6 {
        return Some("more than 6 decimals");
    }
    if point - lead as i64 > 12 {
        return Some("more than 12 integer digits");
    }
    None
}

/// What the system keeps for one key: the latest accepted item as received.
struct Kept {
    raw: String,
    content: BTreeMap<String, Value>,
    /// false once withdrawn / deleted
    live: bool,
}

#[derive(Default)]
struct Ledger {
    /// record type → key → latest accepted item
    kept: HashMap<&'static str, BTreeMap<String, Kept>>,
    /// (endpoint path, Idempotency-Key) → the stored 200 response
    replies: HashMap<String, Vec<u8>>,
    requests: u64,
    items_accepted: u64,
    items_rejected: u64,
    /// accepted items whose content equalled what was already kept
    unchanged: u64,
    duplicates: u64,
}

/// Everything one system accepted through pushes.
#[derive(Default)]
pub struct PushLedger(Mutex<Ledger>);

impl PushLedger {
    fn lock(&self) -> MutexGuard<'_, Ledger> {
        // A poisoned lock only means another request panicked; the ledger is still consistent
        // because a batch is applied only after all its items were decided.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `GET /_admin/accepted`.
    pub fn summary(&self, kind: Kind) -> Value {
        let l = self.lock();
        let mut accepted = serde_json::Map::new();
        let mut withdrawn = serde_json::Map::new();
        for t in push_types(kind) {
            let (mut live, mut gone) = (Vec::new(), Vec::new());
            if let Some(m) = l.kept.get(t) {
                for (k, v) in m {
                    if v.live {
                        live.push(k.clone());
                    } else {
                        gone.push(k.clone());
                    }
                }
            }
            accepted.insert(t.to_string(), json!(live));
            withdrawn.insert(t.to_string(), json!(gone));
        }
        json!({
            "system": kind.name(),
            "accepted": accepted,
            "withdrawn": withdrawn,
            "requests": l.requests,
            "items_accepted": l.items_accepted,
            "items_rejected": l.items_rejected,
            "unchanged": l.unchanged,
            "duplicates": l.duplicates,
        })
    }

    /// `GET /_admin/accepted/{type}/{key}`: the latest accepted item as received, and whether
    /// the key is still live.
    pub fn item(&self, rtype: &str, key: &str) -> Option<(String, bool)> {
        let l = self.lock();
        l.kept
            .get(rtype)
            .and_then(|m| m.get(key))
            .map(|k| (k.raw.clone(), k.live))
    }
}

/// Decides every item against the ledger in order (an item sees the effect of earlier items of
/// the same batch) and, when `commit`, applies the batch. Returns per item whether it was accepted;
/// `E_NOT_FOUND` (a `u`/`d`/`D` for a key never accepted) is added to the items here.
fn apply(
    ledger: &mut Ledger,
    ep: Endpoint,
    items: &mut [Checked],
    raws: &[&RawValue],
    lang: Lang,
    commit: bool,
) -> Vec<bool> {
    let rtype = ep.rtype();
    let mut overlay: HashMap<String, Kept> = HashMap::new();
    let mut verdicts = Vec::with_capacity(items.len());
    let mut unchanged = 0;
    for (c, raw) in items.iter_mut().zip(raws) {
        let (live, known, same) = {
            let prior = overlay
                .get(&c.key)
                .or_else(|| ledger.kept.get(rtype).and_then(|m| m.get(&c.key)));
            (
                prior.is_some_and(|p| p.live),
                prior.is_some(),
                prior.is_some_and(|p| p.live && p.content == c.content),
            )
        };
        let not_found = match c.op {
            PushOp::Put => false,
            PushOp::Update => !live,
            PushOp::Delete => !known,
        };
        // Only for an otherwise sound item: a malformed key is reported as such, not as unknown.
        if not_found && c.problems.is_empty() {
            c.problems.push(Problem {
                field: ep.key_field().to_string(),
                code: "E_NOT_FOUND",
                msg: match (lang, c.op) {
                    (Lang::Zh, _) => "未找到已公示的该记录，无法撤销".into(),
                    (Lang::En, PushOp::Update) => {
                        format!("no live row with this {}: insert it first", ep.key_field())
                    }
                    (Lang::En, _) => {
                        format!("no row with this {} was ever inserted", ep.key_field())
                    }
                },
            });
        }
        let ok = c.problems.is_empty();
        verdicts.push(ok);
        if !ok {
            continue;
        }
        let withdraw = c.op == PushOp::Delete;
        if same || (withdraw && known && !live) {
            unchanged += 1;
        }
        overlay.insert(
            c.key.clone(),
            Kept {
                raw: raw.get().to_string(),
                content: c.content.clone(),
                live: !withdraw,
            },
        );
    }
    if commit {
        let accepted = verdicts.iter().filter(|v| **v).count() as u64;
        ledger.requests += 1;
        ledger.items_accepted += accepted;
        ledger.items_rejected += verdicts.len() as u64 - accepted;
        ledger.unchanged += unchanged;
        ledger.kept.entry(rtype).or_default().extend(overlay);
    }
    verdicts
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn too_large(core: &Core, msg: &str) -> Response {
    let code = match core.kind {
        Kind::InternetPlus => "BATCH_TOO_LARGE",
        Kind::DoubleRandom => "413",
        Kind::Hotline => "41300",
        _ => "4130",
    };
    core.error(StatusCode::PAYLOAD_TOO_LARGE, code, msg)
}

/// Parses the body into the items (raw, as received) and, for the exchange, its `batch_no`.
fn items_of<'b>(
    core: &Core,
    ep: Endpoint,
    body: &'b [u8],
) -> Result<(Vec<&'b RawValue>, Option<String>), Response> {
    let zh = lang_of(core.kind) == Lang::Zh;
    let top: HashMap<String, &'b RawValue> = serde_json::from_slice(body).map_err(|e| {
        core.bad_param(&if zh {
            format!("参数错误：请求体不是JSON对象（{e}）")
        } else {
            format!("body is not a JSON object: {e}")
        })
    })?;
    let list = ep.list();
    let items: Vec<&'b RawValue> = top
        .get(list)
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .ok_or_else(|| {
            core.bad_param(&if zh {
                format!("参数错误：{list}必须是数组")
            } else {
                format!("{list} must be an array")
            })
        })?;
    let batch = if ep == Endpoint::CheckAction {
        let b = top
            .get("batch_no")
            .and_then(|r| serde_json::from_str::<String>(r.get()).ok())
            .filter(|b| !b.trim().is_empty() && b.chars().count() <= 64);
        match b {
            Some(b) => Some(b),
            None => {
                return Err(core.error(
                    StatusCode::BAD_REQUEST,
                    "BATCH_INVALID",
                    "batch_no must be a non-empty string of at most 64 characters",
                ));
            }
        }
    } else {
        None
    };
    let max = ep.max_items();
    if items.is_empty() {
        return Err(match core.kind {
            Kind::InternetPlus => core.error(
                StatusCode::BAD_REQUEST,
                "BATCH_INVALID",
                &format!("rows must hold 1–{max} rows, got 0"),
            ),
            _ if zh => core.bad_param(&format!("参数错误：{list}不能为空（1–{max}条）")),
            _ => core.bad_param(&format!("{list} must hold 1–{max} records, got 0")),
        });
    }
    if items.len() > max {
        return Err(too_large(
            core,
            &if zh {
                format!("单次最多{max}条，收到{}条", items.len())
            } else {
                format!("at most {max} {list} per batch, got {}", items.len())
            },
        ));
    }
    Ok((items, batch))
}

/// The system's 200 answer with per-item results.
fn reply(ep: Endpoint, batch: Option<String>, items: &[Checked], verdicts: &[bool]) -> Vec<u8> {
    let accepted = verdicts.iter().filter(|v| **v).count();
    let rejected = verdicts.len() - accepted;
    let mut out = Vec::with_capacity(items.len() * 96 + 128);
    if ep == Endpoint::CheckAction {
        let rows = items
            .iter()
            .zip(verdicts)
            .enumerate()
            .map(|(i, (c, ok))| {
                let mut f = vec![
                    ("row", V::n(i)),
                    ("ok", V::Bool(*ok)),
                    ("key", V::s(c.key.clone())),
                ];
                if !ok {
                    f.push((
                        "errors",
                        V::Arr(
                            c.problems
                                .iter()
                                .map(|p| {
                                    V::Obj(vec![
                                        ("column", V::s(p.field.clone())),
                                        ("code", V::s(p.code)),
                                        ("msg", V::s(p.msg.clone())),
                                    ])
                                })
                                .collect(),
                        ),
                    ));
                }
                V::Obj(f)
            })
            .collect();
        json_fields(
            &mut out,
            &[
                ("success", V::Bool(true)),
                ("batch_no", V::s(batch.unwrap_or_default())),
                ("accepted", V::n(accepted)),
                ("rejected", V::n(rejected)),
                ("rows", V::Arr(rows)),
            ],
        );
    } else if matches!(ep, Endpoint::CreditTiers | Endpoint::HotlineOutcomes) {
        // Both wrap their answers in their pull envelope (`resultCode`/`data`, `errcode`/`data`).
        let hotline = ep == Endpoint::HotlineOutcomes;
        let results = items
            .iter()
            .zip(verdicts)
            .enumerate()
            .map(|(i, (c, ok))| {
                V::Obj(vec![
                    ("index", V::n(i)),
                    ("success", V::Bool(*ok)),
                    (if hotline { "orderNo" } else { "key" }, V::s(c.key.clone())),
                    (
                        "errors",
                        V::Arr(
                            c.problems
                                .iter()
                                .map(|p| {
                                    V::Obj(vec![
                                        ("field", V::s(p.field.clone())),
                                        ("code", V::s(p.code)),
                                        ("message", V::s(p.msg.clone())),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect();
        let data = V::Obj(vec![
            ("accepted", V::n(accepted)),
            ("rejected", V::n(rejected)),
            (if hotline { "results" } else { "rows" }, V::Arr(results)),
        ]);
        if hotline {
            json_fields(
                &mut out,
                &[("errcode", V::n(0)), ("errmsg", V::s("ok")), ("data", data)],
            );
        } else {
            json_fields(
                &mut out,
                &[
                    ("resultCode", V::s("0000")),
                    ("resultMsg", V::s("操作成功")),
                    ("data", data),
                ],
            );
        }
    } else {
        let results = items
            .iter()
            .zip(verdicts)
            .enumerate()
            .map(|(i, (c, ok))| {
                V::Obj(vec![
                    ("index", V::n(i)),
                    ("status", V::s(if *ok { "accepted" } else { "rejected" })),
                    ("key", V::s(c.key.clone())),
                    (
                        "errors",
                        V::Arr(
                            c.problems
                                .iter()
                                .map(|p| {
                                    V::Obj(vec![
                                        ("field", V::s(p.field.clone())),
                                        ("code", V::s(p.code)),
                                        ("message", V::s(p.msg.clone())),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect();
        json_fields(
            &mut out,
            &[
                ("code", V::s("0")),
                ("message", V::s("ok")),
                ("accepted", V::n(accepted)),
                ("rejected", V::n(rejected)),
                ("results", V::Arr(results)),
            ],
        );
    }
    out
}

fn json_response(body: Vec<u8>) -> Response {
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// `POST` to a push endpoint: auth, fault, idempotency, then the batch.
pub async fn handle(
    core: &Core,
    ep: Endpoint,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let authed = match core.kind {
        Kind::InternetPlus => super::internet_plus::auth(core, method, uri, headers),
        Kind::DoubleRandom => super::core::auth_bearer(core, headers, "XIEZHI_DOUBLE_RANDOM_TOKEN"),
        Kind::Hotline => super::hotline::auth(core, method, uri, headers),
        _ => super::credit::auth(core, method, uri, headers),
    };
    if let Err(resp) = authed {
        return resp;
    }
    // Decided before any work: a faulted push accepts nothing and leaves its key unused, so the
    // client's retry with the same Idempotency-Key is processed afresh.
    let fault = match core.fault_gate().await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    if matches!(fault, Fault::Timeout) {
        return core.fault_error(StatusCode::GATEWAY_TIMEOUT);
    }
    let zh = lang_of(core.kind) == Lang::Zh;
    let key = match header(headers, "idempotency-key") {
        Some(k) if !k.is_empty() && k.chars().count() <= IDEMPOTENCY_KEY_MAX => k.to_string(),
        _ => {
            return core.bad_param(if zh {
                "参数错误：缺少Idempotency-Key请求头（1–128个字符）"
            } else {
                "Idempotency-Key header is required (1–128 characters)"
            });
        }
    };
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return too_large(
                core,
                if zh {
                    "请求体过大"
                } else {
                    "request body too large"
                },
            );
        }
    };
    let truncate = matches!(fault, Fault::Truncate);
    let scope = format!("{}\n{key}", uri.path());
    let out = {
        let mut ledger = core.push.lock();
        if let Some(stored) = ledger.replies.get(&scope).cloned() {
            if !truncate {
                ledger.duplicates += 1;
            }
            stored
        } else {
            let (raws, batch) = match items_of(core, ep, &bytes) {
                Ok(x) => x,
                Err(resp) => return resp,
            };
            let lang = lang_of(core.kind);
            let mut checked: Vec<Checked> = raws.iter().map(|r| ep.check(r.get())).collect();
            // A truncated answer is a fault too: decide (to have something to cut) but keep nothing.
            let verdicts = apply(&mut ledger, ep, &mut checked, &raws, lang, !truncate);
            let out = reply(ep, batch, &checked, &verdicts);
            if !truncate {
                ledger.replies.insert(scope, out.clone());
            }
            out
        }
    };
    let mut out = out;
    if truncate {
        out.truncate(out.len() / 2);
    }
    json_response(out)
}

/// `GET /_admin/accepted/{type}/{key}` body: the item as received, with `X-Sim-State`.
pub fn item_response(core: &Core, rtype: &str, key: &str) -> Response {
    match core.push.item(rtype, key) {
        Some((raw, live)) => {
            let mut resp = json_response(raw.into_bytes());
            resp.headers_mut().insert(
                "x-sim-state",
                HeaderValue::from_static(if live { "published" } else { "withdrawn" }),
            );
            resp
        }
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("nothing accepted for {rtype} {key}")})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_judged_as_written() {
        for ok in [
            "0",
            "0.2",
            "5",
            "12.3456",
            "0.000001",
            "1.5e3",
            "5e-6",
            "0.2000000",
            "-0",
        ] {
            assert_eq!(amount_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("-1", "negative"),
            ("-0.5", "negative"),
            ("0.1234567", "more than 6 decimals"),
            ("5e-7", "more than 6 decimals"),
            ("\"0.2\"", "a string, not a JSON number"),
            ("true", "not a number"),
            ("1e20", "more than 12 integer digits"),
            ("1e99999", "exponent out of range"),
        ] {
            assert_eq!(amount_problem(bad), Some(why), "{bad}");
        }
    }
}
