//! Dialect of the 12345 政务服务便民热线: work orders as JSON with epoch-millisecond instants and
//! Chinese labels, keyset pagination on the modification time, HMAC-SHA256 with its own header
//! names and canonical string. See docs/simulators.md §5.

use super::auth::{canonical_query, hmac_sha256_hex, now_ms, same};
use super::core::{Core, Params, Payload, StreamDef, num_param};
use super::prim::{Rec, V, at, date, epoch_ms, json_fields};
use super::push::{Checked, Item, Lang, PushOp};
use super::records::{self, Invalid};
use super::stream::Entry;
use super::world::LINGTAI_TOWNS;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;

use Invalid::*;

pub static STREAMS: &[StreamDef] = &[StreamDef {
    name: "workorders",
    rtype: "hotline_ticket",
    share: 100,
    salt: 41,
    invalid: &[Missing, UnknownCode],
    missing: "title",
    code: ("appealType", "吐槽"),
    date: ("", ""),
}];

const STEP_MS: i64 = 37_000;

fn base_ms() -> i64 {
    epoch_ms(at(date(2025, 1, 1), 0))
}

fn modified_ms(pos: u64) -> i64 {
    base_ms() + pos as i64 * STEP_MS
}

pub fn upstream_id(core: &Core, _s: usize, index: u64) -> String {
    records::ticket(&core.world, index).number
}

pub fn key(core: &Core, s: usize, index: u64) -> String {
    upstream_id(core, s, index)
}

fn render(core: &Core, s: usize, e: &Entry, initial: u64) -> Rec {
    let w = &core.world;
    let t = records::ticket(w, e.index);
    let inv = core.invalid(s, e.index, initial);
    let ms = |x: chrono::NaiveDateTime| V::n(epoch_ms(x));
    let mut r = Rec::with_capacity(28);
    r.s("orderNo", t.number);
    r.s("channel", t.channel);
    r.put("acceptTime", ms(t.received));
    r.s("appealType", t.appeal);
    r.s("title", t.title);
    r.s("content", t.content);
    let anonymous = t.citizen.is_none();
    if let Some((name, phone)) = t.citizen {
        r.s("appealName", name);
        r.s("appealPhone", phone);
    }
    r.put("isAnonymous", V::Bool(anonymous));
    r.put("isSecret", V::Bool(t.secret));
    r.s("address", t.address);
    r.s("areaCode", "620822");
    r.s("streetCode", LINGTAI_TOWNS[t.town].0);
    r.s("urgency", if t.urgent { "紧急" } else { "一般" });
    if let Some(a) = t.agency {
        r.s("handleDeptName", w.agencies[a].name.clone());
        r.s("handleDeptCode", w.agencies[a].uscc.clone());
    }
    if let Some(d) = t.dispatched {
        r.put("dispatchTime", ms(d));
    }
    if let Some(d) = t.deadline {
        r.put("limitTime", ms(d));
    }
    r.s("status", t.status);
    if let Some((text, at)) = t.reply {
        r.s(
            "replyContent",
            if e.version == 0 {
                text
            } else {
                format!("{text}（补充答复{}）", e.version)
            },
        );
        r.put("replyTime", ms(at));
    } else if e.version > 0 {
        r.s(
            "replyContent",
            format!("工单正在办理中，已催办{}次。", e.version),
        );
    }
    if let Some(c) = t.closed {
        r.put("finishTime", ms(c));
    }
    if let Some(x) = t.satisfaction {
        r.s("satisfaction", x);
    }
    if let Some(x) = t.solved {
        r.s("solveStatus", x);
    }
    if let Some(c) = t.case_no {
        r.s("caseNo", c);
    }
    r.put("modifiedTime", V::n(modified_ms(e.pos)));
    core.break_fields(s, &mut r, inv, false);
    r
}

pub fn auth(core: &Core, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), Response> {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let fail = |code: &str, msg: &str| core.error(StatusCode::UNAUTHORIZED, code, msg);
    let (Some(key), Some(ts), Some(nonce), Some(sig)) = (
        h("x-hotline-key"),
        h("x-hotline-ts"),
        h("x-hotline-nonce"),
        h("x-hotline-sign"),
    ) else {
        return Err(fail(
            "40001",
            "missing X-Hotline-Key, X-Hotline-Ts, X-Hotline-Nonce or X-Hotline-Sign",
        ));
    };
    if !same(key, core.creds.get("XIEZHI_HOTLINE_APP_KEY")) {
        return Err(fail("40002", "unknown key"));
    }
    match ts.parse::<i64>() {
        Ok(t) if (now_ms() / 1000 - t).abs() <= 300 => {}
        _ => {
            return Err(fail(
                "40003",
                "X-Hotline-Ts must be epoch seconds within 300 s of server time",
            ));
        }
    }
    let message = format!(
        "{}\n{}\n{}\n{key}\n{ts}\n{nonce}",
        method.as_str(),
        uri.path(),
        canonical_query(uri.query(), None)
    );
    if !same(
        &sig.to_ascii_lowercase(),
        &hmac_sha256_hex(core.creds.get("XIEZHI_HOTLINE_APP_SECRET"), &message),
    ) {
        return Err(fail("40005", "signature mismatch"));
    }
    if !core.nonces.fresh(nonce) {
        return Err(fail("40004", "nonce reused"));
    }
    Ok(())
}

pub fn serve(core: &Core, path: &str, p: &Params) -> Result<Option<Payload>, Response> {
    if path != "/open/api/v1/workorders" {
        return Ok(None);
    }
    let after = match p.get("modifiedAfter").filter(|v| !v.is_empty()) {
        None => 0i64,
        Some(v) => v.parse::<i64>().map_err(|_| {
            core.bad_param(&format!(
                "modifiedAfter must be epoch milliseconds, got {v:?}"
            ))
        })?,
    };
    let limit = num_param(core, p, "limit", 500, 1, 1000)? as usize;
    let start = if after < base_ms() {
        0
    } else {
        ((after - base_ms()) / STEP_MS + 1) as u64
    };
    let (entries, more, initial) = {
        let st = core.stream(0);
        let entries = st.view(start, 0, limit);
        let next = entries.last().map_or(start, |e| e.pos + 1);
        (entries, st.view_count(next) > 0, st.initial)
    };
    let next = entries.last().map_or(after, |e| modified_ms(e.pos));
    let mut out = Vec::with_capacity(entries.len() * 1200 + 128);
    out.extend_from_slice(b"{\"errcode\":0,\"errmsg\":\"ok\",\"data\":{\"records\":[");
    for (n, e) in entries.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        json_fields(&mut out, &render(core, 0, e, initial).0);
    }
    out.extend_from_slice(
        format!("],\"nextModifiedAfter\":{next},\"hasMore\":{more}}}}}").as_bytes(),
    );
    Ok(Some(Payload::json(out)))
}

/// The fields of a work-order outcome as the hotline takes it
/// (`POST /open/api/v1/workorders/outcomes`), named as its work orders are.
const OUTCOME_FIELDS: [&str; 10] = [
    "opType",
    "orderNo",
    "caseNo",
    "status",
    "handleDeptName",
    "handleDeptCode",
    "replyContent",
    "replyTime",
    "finishTime",
    "solveStatus",
];

/// The labels of the hotline's work-order statuses (REFERENCE §5.4).
const STATUSES: [&str; 12] = [
    "已受理",
    "直接办结",
    "已派单",
    "已签收",
    "办理中",
    "申请退单",
    "申请延期",
    "已反馈",
    "审核通过",
    "已回访",
    "办结归档",
    "重办",
];

/// Checks one pushed outcome as the hotline does. Key: `orderNo`. Only outcomes of orders that
/// became enforcement cases are taken, so `caseNo` is required. Messages in English, like its
/// other errors.
pub fn check_outcome(raw: &str) -> Checked {
    let mut it = match Item::parse(raw, Lang::En) {
        Ok(it) => it,
        Err(rejected) => return rejected,
    };
    let op = match it.required("opType").as_deref() {
        Some("REVOKE") => PushOp::Delete,
        Some("ADD") | Some("UPDATE") | None => PushOp::Put,
        Some(other) => {
            it.bad_code("opType", other, &["ADD", "UPDATE", "REVOKE"]);
            PushOp::Put
        }
    };
    let key = it.required("orderNo").unwrap_or_default();
    it.unknown_fields(&OUTCOME_FIELDS);
    // A revocation names the order; the rest of the item is not looked at.
    if op == PushOp::Delete {
        return it.finish(key, op, &["opType"]);
    }
    it.required("caseNo");
    let status = it.required("status");
    it.code("status", &status, &STATUSES);
    it.text("handleDeptName");
    let dept = it.text("handleDeptCode");
    it.uscc("handleDeptCode", &dept);
    it.text("replyContent");
    let replied = it.epoch_ms("replyTime");
    let finished = it.epoch_ms("finishTime");
    if let (Some(r), Some(f)) = (replied, finished)
        && f < r
    {
        it.problem(
            "finishTime",
            "E_RANGE",
            "finishTime is before replyTime".into(),
        );
    }
    let solved = it.text("solveStatus");
    it.code("solveStatus", &solved, &["已解决", "部分解决", "未解决"]);
    it.finish(key, op, &["opType"])
}
