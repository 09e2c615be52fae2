//! What every simulated system shares: its streams and change logs, `/truth`, the `/_admin`
//! endpoints, fault injection, and the dispatch of data requests to the system's dialect.

use super::auth::{Creds, NonceCache};
use super::prim::{Rec, Rng, V, hash, unit};
use super::records::Invalid;
use super::stream::{Entry, Op, StreamState};
use super::world::World;
use super::{Faults, SimConfig};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Provincial,
    InternetPlus,
    Credit,
    DoubleRandom,
    Hotline,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Provincial,
        Kind::InternetPlus,
        Kind::Credit,
        Kind::DoubleRandom,
        Kind::Hotline,
    ];

    pub fn name(self) -> &'static str {
        super::SYSTEMS[self as usize]
    }

    fn defs(self) -> &'static [StreamDef] {
        match self {
            Kind::Provincial => super::provincial::STREAMS,
            Kind::InternetPlus => super::internet_plus::STREAMS,
            Kind::Credit => super::credit::STREAMS,
            Kind::DoubleRandom => super::double_random::STREAMS,
            Kind::Hotline => super::hotline::STREAMS,
        }
    }
}

/// A stream of one system and how its records can be broken on purpose.
pub struct StreamDef {
    /// Path segment / table name.
    pub name: &'static str,
    /// National record type.
    pub rtype: &'static str,
    /// Percentage of `records`; 0 = reference stream sized by the world.
    pub share: u64,
    pub salt: u64,
    pub invalid: &'static [Invalid],
    /// Field left out (or empty) for `Invalid::Missing`.
    pub missing: &'static str,
    /// (field, value) for `Invalid::UnknownCode`.
    pub code: (&'static str, &'static str),
    /// (field, value) for `Invalid::BadDate`.
    pub date: (&'static str, &'static str),
}

pub struct Core {
    pub kind: Kind,
    pub seed: u64,
    pub invalid_rate: f64,
    pub world: Arc<World>,
    pub defs: &'static [StreamDef],
    state: Vec<Mutex<StreamState>>,
    faults: Mutex<Faults>,
    /// Streams whose broken records the upstream corrected in place (`/_admin/repair`).
    repaired: Vec<std::sync::atomic::AtomicBool>,
    requests: AtomicU64,
    mutations: AtomicU64,
    pub creds: Arc<Creds>,
    pub nonces: NonceCache,
    /// Initial number of provincial penalties (the credit platform republishes ~30% of them).
    pub provincial_penalties: u64,
    /// Initial number of double-random tasks (results point at them).
    pub tasks: u64,
    /// What this system accepted through pushes (`/_admin/accepted`).
    pub push: super::push::PushLedger,
}

/// Splits `records` by percentage; the last non-reference stream takes the remainder.
fn split(defs: &[StreamDef], records: u64) -> Vec<u64> {
    let last = defs.iter().rposition(|d| d.share > 0);
    let mut used = 0;
    defs.iter()
        .enumerate()
        .map(|(i, d)| {
            if d.share == 0 {
                0
            } else if Some(i) == last {
                records - used
            } else {
                let n = records * d.share / 100;
                used += n;
                n
            }
        })
        .collect()
}

impl Core {
    pub fn new(kind: Kind, cfg: &SimConfig, world: Arc<World>, creds: Arc<Creds>) -> Core {
        let defs = kind.defs();
        let records = cfg.records as u64;
        let mut counts = split(defs, records);
        if kind == Kind::Provincial {
            counts[0] = world.agencies.len() as u64;
            counts[1] = world.officers.len() as u64;
        }
        let prov = split(super::provincial::STREAMS, records);
        let dr = split(super::double_random::STREAMS, records);
        Core {
            kind,
            seed: cfg.seed,
            invalid_rate: cfg.invalid_rate,
            world,
            defs,
            state: counts
                .into_iter()
                .map(|n| Mutex::new(StreamState::new(n)))
                .collect(),
            faults: Mutex::new(cfg.faults),
            repaired: defs
                .iter()
                .map(|_| std::sync::atomic::AtomicBool::new(false))
                .collect(),
            requests: AtomicU64::new(0),
            mutations: AtomicU64::new(0),
            creds,
            nonces: NonceCache::default(),
            provincial_penalties: prov[super::provincial::PENALTIES],
            tasks: dr[0],
            push: super::push::PushLedger::default(),
        }
    }

    pub fn stream(&self, s: usize) -> MutexGuard<'_, StreamState> {
        // A poisoned lock only means another request panicked mid-read; the state is still usable.
        self.state[s].lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stream_index(&self, name: &str) -> Option<usize> {
        self.defs.iter().position(|d| d.name == name)
    }

    fn salt(&self, s: usize) -> u64 {
        (self.kind as u64) << 32 | self.defs[s].salt
    }

    /// Whether record `index` of stream `s` is broken on purpose (inserted records never are).
    pub fn invalid(&self, s: usize, index: u64, initial: u64) -> Option<Invalid> {
        if index >= initial || self.repaired[s].load(Ordering::Relaxed) {
            return None;
        }
        super::records::invalid_kind(
            self.seed,
            self.salt(s),
            index,
            self.invalid_rate,
            self.defs[s].invalid,
        )
    }

    fn reason(&self, s: usize, kind: Invalid) -> String {
        let d = &self.defs[s];
        match kind {
            Invalid::BadUscc => "bad USCC check digit (party)".into(),
            Invalid::BadResidentId => "bad resident-ID check digit (party)".into(),
            Invalid::Missing => format!("missing required field {}", d.missing),
            Invalid::UnknownCode => format!("unknown code {}={}", d.code.0, d.code.1),
            Invalid::BadDate => format!("impossible date {}={}", d.date.0, d.date.1),
            Invalid::FewOfficers => "fewer than two officers".into(),
        }
    }

    /// Applies the field-level breakages after rendering. `empty` = the dialect sends `""`
    /// for a missing value instead of leaving the key out.
    pub fn break_fields(&self, s: usize, rec: &mut Rec, kind: Option<Invalid>, empty: bool) {
        let d = &self.defs[s];
        match kind {
            Some(Invalid::Missing) if empty => rec.set(d.missing, V::s("")),
            Some(Invalid::Missing) => rec.remove(d.missing),
            Some(Invalid::UnknownCode) => {
                let v = match rec.get(d.code.0) {
                    Some(V::Arr(_)) => V::Arr(vec![V::s(d.code.1)]),
                    _ => V::s(d.code.1),
                };
                rec.set(d.code.0, v);
            }
            Some(Invalid::BadDate) => rec.set(d.date.0, V::s(d.date.1)),
            _ => {}
        }
    }

    fn key(&self, s: usize, index: u64) -> String {
        match self.kind {
            Kind::Provincial => super::provincial::key(self, s, index),
            Kind::InternetPlus => super::internet_plus::key(self, s, index),
            Kind::Credit => super::credit::key(self, s, index),
            Kind::DoubleRandom => super::double_random::key(self, s, index),
            Kind::Hotline => super::hotline::key(self, s, index),
        }
    }

    fn upstream_id(&self, s: usize, index: u64) -> String {
        match self.kind {
            Kind::Provincial => super::provincial::upstream_id(self, s, index),
            Kind::InternetPlus => super::internet_plus::upstream_id(self, s, index),
            Kind::Credit => super::credit::upstream_id(self, s, index),
            Kind::DoubleRandom => super::double_random::upstream_id(self, s, index),
            Kind::Hotline => super::hotline::upstream_id(self, s, index),
        }
    }

    pub fn truth(&self, summary: bool) -> Value {
        let mut valid: Map<String, Value> = Map::new();
        for d in self.defs {
            valid
                .entry(d.rtype)
                .or_insert_with(|| if summary { json!(0) } else { json!([]) });
        }
        let mut invalid = Vec::new();
        let mut invalid_count = 0u64;
        for s in 0..self.defs.len() {
            let (initial, count, deleted): (u64, u64, Vec<u64>) = {
                let st = self.stream(s);
                (st.initial, st.count(), st.deleted_indices().collect())
            };
            let deleted: std::collections::HashSet<u64> = deleted.into_iter().collect();
            let rtype = self.defs[s].rtype;
            let mut n_valid = 0u64;
            for i in 0..count {
                if deleted.contains(&i) {
                    continue;
                }
                match self.invalid(s, i, initial) {
                    Some(kind) => {
                        invalid_count += 1;
                        if !summary {
                            invalid.push(json!({"id": self.upstream_id(s, i), "type": rtype, "reason": self.reason(s, kind)}));
                        }
                    }
                    None if summary => n_valid += 1,
                    None => {
                        if let Some(Value::Array(keys)) = valid.get_mut(rtype) {
                            keys.push(Value::String(self.key(s, i)));
                        }
                    }
                }
            }
            if summary && let Some(Value::Number(n)) = valid.get(rtype) {
                let total = n.as_u64().unwrap_or(0) + n_valid;
                valid.insert(rtype.to_string(), json!(total));
            }
        }
        if summary {
            json!({"system": self.kind.name(), "valid": valid, "invalid": invalid_count})
        } else {
            json!({"system": self.kind.name(), "valid": valid, "invalid": invalid})
        }
    }

    /// Corrects every broken record of the named streams (all when none are named) the way a
    /// DBA fixes rows upstream: in place, with their update stamps unchanged, so only a re-pull
    /// of their window brings the fix. Returns the streams repaired, or the unknown name.
    pub fn repair(&self, streams: &[String]) -> Result<Vec<&'static str>, String> {
        let picked: Vec<usize> = if streams.is_empty() {
            (0..self.defs.len()).collect()
        } else {
            streams
                .iter()
                .map(|n| {
                    self.stream_index(n).ok_or_else(|| {
                        format!(
                            "no stream `{n}` (streams: {})",
                            self.defs
                                .iter()
                                .map(|d| d.name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
                })
                .collect::<Result<_, _>>()?
        };
        for s in &picked {
            self.repaired[*s].store(true, Ordering::Relaxed);
        }
        let names = picked.iter().map(|s| self.defs[*s].name).collect();
        tracing::info!(system = self.kind.name(), streams = ?names, "Simulator repaired its broken records in place.");
        Ok(names)
    }

    pub fn mutate(&self, req: &MutateRequest) -> Value {
        let call = self.mutations.fetch_add(1, Ordering::SeqCst);
        let mut rng = Rng::new(&[self.seed, self.kind as u64, 0x3E7A7E, call]);
        let mutable: Vec<usize> = (0..self.defs.len())
            .filter(|s| self.defs[*s].share > 0)
            .collect();
        let total_share: u64 = mutable.iter().map(|s| self.defs[*s].share).sum();
        let starts: Vec<u64> = (0..self.defs.len())
            .map(|s| self.stream(s).positions())
            .collect();
        let pick_stream = |rng: &mut Rng| {
            let mut r = rng.below(total_share.max(1));
            for s in &mutable {
                if r < self.defs[*s].share {
                    return *s;
                }
                r -= self.defs[*s].share;
            }
            mutable[0]
        };
        let mut updated = Vec::new();
        let mut deleted = Vec::new();
        let mut inserted = Vec::new();
        let mut notes = Vec::new();
        let item = |s: usize, i: u64| json!({"type": self.defs[s].rtype, "key": self.key(s, i), "id": self.upstream_id(s, i), "stream": self.defs[s].name});
        if !mutable.is_empty() {
            for _ in 0..req.updates.min(100_000) {
                let s = pick_stream(&mut rng);
                let mut st = self.stream(s);
                if st.count() == 0 {
                    continue;
                }
                for _ in 0..16 {
                    let i = rng.below(st.count());
                    if !st.deleted(i) {
                        st.push(i, Op::Update);
                        drop(st);
                        updated.push(item(s, i));
                        break;
                    }
                }
            }
            if self.kind == Kind::InternetPlus {
                for _ in 0..req.deletes.min(100_000) {
                    let s = pick_stream(&mut rng);
                    let mut st = self.stream(s);
                    if st.count() == 0 {
                        continue;
                    }
                    let initial = st.initial;
                    for _ in 0..16 {
                        let i = rng.below(st.count());
                        if !st.deleted(i) && self.invalid(s, i, initial).is_none() {
                            st.push(i, Op::Delete);
                            drop(st);
                            deleted.push(item(s, i));
                            break;
                        }
                    }
                }
            } else if req.deletes > 0 {
                notes.push(format!(
                    "{} cannot express deletes; {} delete(s) ignored",
                    self.kind.name(),
                    req.deletes
                ));
            }
            for _ in 0..req.inserts.min(100_000) {
                let s = pick_stream(&mut rng);
                let i = {
                    let mut st = self.stream(s);
                    let i = st.count();
                    st.push(i, Op::Insert);
                    i
                };
                inserted.push(item(s, i));
            }
        }
        if self.kind == Kind::InternetPlus {
            for (s, from) in starts.iter().enumerate() {
                self.stream(s).close_batches(*from);
            }
        }
        tracing::info!(
            system = self.kind.name(),
            updated = updated.len(),
            deleted = deleted.len(),
            inserted = inserted.len(),
            "Simulator applied mutations."
        );
        json!({"updated": updated, "deleted": deleted, "inserted": inserted, "notes": notes})
    }

    /// Draws this request's fault from (seed, system, request counter).
    fn draw_fault(&self) -> Fault {
        let n = self.requests.fetch_add(1, Ordering::SeqCst);
        let f = *self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let h = hash(&[self.seed, self.kind as u64, 0xFA017, n]);
        let u = unit(h);
        let mut edge = f.error_rate;
        if u < edge {
            return Fault::Error(if h & 1 == 0 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            });
        }
        edge += f.timeout_rate;
        if u < edge {
            return Fault::Timeout;
        }
        edge += f.rate_limit_rate;
        if u < edge {
            return Fault::RateLimit;
        }
        edge += f.truncate_rate;
        if u < edge {
            return Fault::Truncate;
        }
        Fault::None
    }

    /// An error in this system's own format.
    pub fn error(&self, status: StatusCode, code: &str, msg: &str) -> Response {
        let body = match self.kind {
            Kind::Provincial => json!({"code": status.as_u16(), "msg": msg, "data": null}),
            Kind::InternetPlus => json!({"success": false, "errCode": code, "errMsg": msg}),
            Kind::Credit => json!({"status": "ERROR", "code": code, "message": msg}),
            Kind::DoubleRandom => json!({"resultCode": code, "resultMsg": msg, "data": null}),
            Kind::Hotline => {
                json!({"errcode": code.parse::<i64>().unwrap_or(50000), "errmsg": msg, "data": null})
            }
        };
        (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body.to_string(),
        )
            .into_response()
    }

    pub fn bad_param(&self, msg: &str) -> Response {
        let code = match self.kind {
            Kind::Provincial | Kind::DoubleRandom => "400",
            Kind::InternetPlus => "PARAM_INVALID",
            Kind::Credit => "4000",
            Kind::Hotline => "40000",
        };
        let text = match self.kind {
            Kind::Provincial => format!("参数错误：{msg}"),
            _ => msg.to_string(),
        };
        self.error(StatusCode::BAD_REQUEST, code, &text)
    }

    fn not_found(&self, path: &str) -> Response {
        let code = match self.kind {
            Kind::Provincial | Kind::DoubleRandom => "404",
            Kind::InternetPlus => "TABLE_NOT_FOUND",
            Kind::Credit => "4040",
            Kind::Hotline => "40400",
        };
        self.error(
            StatusCode::NOT_FOUND,
            code,
            &format!("no such resource: {path}"),
        )
    }

    pub fn fault_error(&self, status: StatusCode) -> Response {
        let code = match self.kind {
            Kind::Provincial | Kind::DoubleRandom => "500",
            Kind::InternetPlus => "SYSTEM_ERROR",
            Kind::Credit => "5000",
            Kind::Hotline => "50000",
        };
        let msg = match self.kind {
            Kind::Provincial | Kind::DoubleRandom => "系统繁忙，请稍后重试",
            Kind::Credit => "系统繁忙",
            _ => "internal error, try again later",
        };
        self.error(status, code, msg)
    }

    /// Draws this request's fault and answers it when the fault replaces the response (5xx, 429);
    /// a timeout is served here (35 s, past a 30 s client timeout). Called after auth and before
    /// any work, so that a faulted push accepts nothing.
    pub async fn fault_gate(&self) -> Result<Fault, Response> {
        let fault = self.draw_fault();
        match fault {
            Fault::Error(status) => Err(self.fault_error(status)),
            Fault::RateLimit => {
                let mut r = self.error(StatusCode::TOO_MANY_REQUESTS, "429", "too many requests");
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                Err(r)
            }
            Fault::Timeout => {
                tokio::time::sleep(std::time::Duration::from_secs(35)).await;
                Ok(fault)
            }
            Fault::None | Fault::Truncate => Ok(fault),
        }
    }

    /// Entries of one page of a time-ordered view: `start` position, page `skip`, `take`.
    pub fn view(&self, s: usize, start: u64, skip: u64, take: usize) -> (u64, Vec<Entry>, u64) {
        let st = self.stream(s);
        (
            st.view_count(start),
            st.view(start, skip, take),
            st.positions(),
        )
    }
}

pub enum Fault {
    None,
    Error(StatusCode),
    Timeout,
    RateLimit,
    Truncate,
}

/// A successful data response before faults are applied.
pub struct Payload {
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Payload {
    pub fn json(body: Vec<u8>) -> Payload {
        Payload {
            content_type: "application/json; charset=utf-8",
            body,
            headers: Vec::new(),
        }
    }
}

pub type Params = HashMap<String, String>;

/// Decodes query parameters (`+` is a space, percent-escapes decoded).
pub fn params(uri: &Uri) -> Params {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// Parses an optional unsigned parameter with a default and bounds.
pub fn num_param(
    core: &Core,
    p: &Params,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, Response> {
    match p.get(name) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(core.bad_param(&format!(
                "{name} must be an integer in {min}..={max}, got {v:?}"
            ))),
        },
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MutateRequest {
    pub updates: u64,
    pub deletes: u64,
    pub inserts: u64,
}

#[derive(Debug, Default, Deserialize)]
pub struct TruthQuery {
    pub summary: Option<bool>,
}

pub fn router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/truth", get(truth))
        .route("/_admin/mutate", post(mutate))
        .route("/_admin/faults", post(set_faults).get(get_faults))
        .route("/_admin/repair", post(repair))
        .route("/_admin/accepted", get(accepted))
        .route("/_admin/accepted/{rtype}/{*key}", get(accepted_item))
        .fallback(data)
        .with_state(core)
}

async fn truth(State(core): State<Arc<Core>>, Query(q): Query<TruthQuery>) -> Response {
    let summary = q.summary.unwrap_or(false);
    // Building a full truth of a million records takes a moment: keep it off the reactor.
    let c = core.clone();
    match tokio::task::spawn_blocking(move || c.truth(summary)).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("truth computation failed: {e}"),
        )
            .into_response(),
    }
}

async fn mutate(State(core): State<Arc<Core>>, body: axum::body::Bytes) -> Response {
    let req: MutateRequest = if body.is_empty() {
        MutateRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": format!("mutate body: {e}")})),
                )
                    .into_response();
            }
        }
    };
    axum::Json(core.mutate(&req)).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepairRequest {
    #[serde(default)]
    streams: Vec<String>,
}

async fn repair(State(core): State<Arc<Core>>, body: axum::body::Bytes) -> Response {
    let req: RepairRequest = if body.is_empty() {
        RepairRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": format!("repair body: {e}")})),
                )
                    .into_response();
            }
        }
    };
    match core.repair(&req.streams) {
        Ok(names) => axum::Json(json!({"repaired": names})).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, axum::Json(json!({"error": e}))).into_response(),
    }
}

async fn set_faults(State(core): State<Arc<Core>>, body: axum::body::Bytes) -> Response {
    let f: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": format!("faults body: {e}")})),
            )
                .into_response();
        }
    };
    let rates = [
        f.error_rate,
        f.timeout_rate,
        f.rate_limit_rate,
        f.truncate_rate,
    ];
    if rates.iter().any(|r| !(0.0..=1.0).contains(r)) || rates.iter().sum::<f64>() > 1.0 {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "fault shares must be in 0..=1 and sum to ≤ 1"})),
        )
            .into_response();
    }
    *core.faults.lock().unwrap_or_else(|e| e.into_inner()) = f;
    tracing::info!(system = core.kind.name(), faults = ?f, "Simulator faults changed.");
    axum::Json(json!(f)).into_response()
}

async fn get_faults(State(core): State<Arc<Core>>) -> Response {
    let f = *core.faults.lock().unwrap_or_else(|e| e.into_inner());
    axum::Json(json!(f)).into_response()
}

async fn accepted(State(core): State<Arc<Core>>) -> Response {
    axum::Json(core.push.summary(core.kind)).into_response()
}

async fn accepted_item(
    State(core): State<Arc<Core>>,
    Path((rtype, key)): Path<(String, String)>,
) -> Response {
    super::push::item_response(&core, &rtype, &key)
}

async fn data(
    State(core): State<Arc<Core>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if method == Method::POST
        && let Some(ep) = super::push::Endpoint::find(core.kind, uri.path())
    {
        return super::push::handle(&core, ep, &method, &uri, &headers, body).await;
    }
    if method != Method::GET {
        return core.not_found(uri.path());
    }
    let authed = match core.kind {
        Kind::Provincial => auth_bearer(&core, &headers, "XIEZHI_PROVINCIAL_TOKEN"),
        Kind::DoubleRandom => auth_bearer(&core, &headers, "XIEZHI_DOUBLE_RANDOM_TOKEN"),
        Kind::InternetPlus => super::internet_plus::auth(&core, &method, &uri, &headers),
        Kind::Credit => super::credit::auth(&core, &method, &uri, &headers),
        Kind::Hotline => super::hotline::auth(&core, &method, &uri, &headers),
    };
    if let Err(resp) = authed {
        return resp;
    }
    let fault = match core.fault_gate().await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let p = params(&uri);
    let path = uri.path();
    let out = match core.kind {
        Kind::Provincial => super::provincial::serve(&core, path, &p),
        Kind::InternetPlus => super::internet_plus::serve(&core, path, &p),
        Kind::Credit => super::credit::serve(&core, path, &p),
        Kind::DoubleRandom => super::double_random::serve(&core, path, &p),
        Kind::Hotline => super::hotline::serve(&core, path, &p),
    };
    let payload = match out {
        Ok(Some(p)) => p,
        Ok(None) => return core.not_found(path),
        Err(resp) => return resp,
    };
    let mut body = payload.body;
    if matches!(fault, Fault::Truncate) {
        body.truncate(body.len() / 2);
    }
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(payload.content_type),
    );
    for (k, v) in payload.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// `Authorization: Bearer <token>` (provincial, double-random).
pub(super) fn auth_bearer(core: &Core, headers: &HeaderMap, var: &str) -> Result<(), Response> {
    let expected = core.creds.get(var);
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if super::auth::same(t.trim(), expected) => Ok(()),
        _ => Err(match core.kind {
            Kind::DoubleRandom => {
                core.error(StatusCode::UNAUTHORIZED, "401", "认证失败：无效的访问令牌")
            }
            _ => core.error(StatusCode::UNAUTHORIZED, "401", "未授权：令牌无效或已过期"),
        }),
    }
}
