//! API, console: the operators' web console — server-rendered HTML with plain forms, no
//! JavaScript and no build step. It signs in with an API token (kept in an HttpOnly,
//! SameSite=Strict cookie scoped to `/console`), and offers what the CLI and the JSON API do:
//! failures with filters and counts by error code, detail with history, dry run, replay, edit,
//! discard, the edits awaiting approval, and the audit log. Roles and masking are the API's.

use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::auth::Caller;
use crate::ops::edits::{self, Correction};
use crate::ops::filter::FailureQuery;
use crate::ops::replay::{self, ReplayReport, ReplaySettings, Target};
use crate::ops::tokens;
use crate::ops::view::present;
use crate::store::ops::Role;
use crate::store::{FailureRow, status_name};

const COOKIE: &str = "xiezhi_console";

/// HTML-escapes text.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn url_part(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn page(title: &str, caller: Option<&Caller>, body: &str) -> Html<String> {
    let who = caller.map_or_else(String::new, |c| {
        format!(
            "<span class=\"who\">{} ({})</span> <form method=\"post\" action=\"/console/logout\" class=\"inline\"><button>Sign out</button></form>",
            esc(&c.token_name),
            c.role
        )
    });
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · xiezhi</title>\
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}}nav a{{margin-right:1rem}}\
table{{border-collapse:collapse;margin:.5rem 0}}td,th{{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}}\
pre{{background:#f6f6f6;padding:.5rem;overflow:auto;max-width:100%;white-space:pre-wrap}}.msg{{background:#eef6ee;border:1px solid #9c9;padding:.5rem}}\
.err{{background:#fbeaea;border:1px solid #d99;padding:.5rem}}.inline{{display:inline}}label{{margin-right:.5rem}}</style></head>\
<body><nav><b>獬豸 xiezhi</b> <a href=\"/console\">Failures</a><a href=\"/console/edits\">Edits</a><a href=\"/console/audit\">Audit log</a>{who}</nav>\
<h1>{t}</h1>{body}</body></html>",
        t = esc(title),
    ))
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// Middleware for every console page but sign-in: a valid session cookie, or off to sign in.
/// Form posts must come from this site (the cookie is SameSite=Strict as well).
pub async fn require_session(State(s): State<ApiState>, mut req: Request, next: Next) -> Response {
    if req.method() == axum::http::Method::POST {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if let Some(origin) = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            && origin != "null"
            && !origin.ends_with(&format!("//{host}"))
        {
            return (StatusCode::FORBIDDEN, "cross-site form posts are refused").into_response();
        }
    }
    let found = match cookie_token(req.headers()) {
        Some(t) => tokens::authenticate(s.store.as_ref(), &t)
            .await
            .ok()
            .flatten(),
        None => None,
    };
    match found {
        Some(row) => {
            req.extensions_mut().insert(Caller {
                token_name: row.name,
                role: row.role,
            });
            next.run(req).await
        }
        None => Redirect::to("/console/login").into_response(),
    }
}

pub async fn login_form() -> Html<String> {
    page("Sign in", None, LOGIN_FORM)
}

const LOGIN_FORM: &str = "<form method=\"post\" action=\"/console/login\"><label>API token \
<input type=\"password\" name=\"token\" autocomplete=\"off\" size=\"70\"></label><button>Sign in</button></form>\
<p>Tokens come from <code>xiezhi tokens create --role viewer|operator|approver|admin</code>.</p>";

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login(State(s): State<ApiState>, Form(f): Form<LoginForm>) -> Response {
    let token = f.token.trim();
    match tokens::authenticate(s.store.as_ref(), token).await {
        Ok(Some(row)) => {
            tracing::info!(token = %row.name, "Console sign-in.");
            (
                [(
                    header::SET_COOKIE,
                    format!("{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict"),
                )],
                Redirect::to("/console"),
            )
                .into_response()
        }
        Ok(None) => (
            StatusCode::UNAUTHORIZED,
            page(
                "Sign in",
                None,
                &format!("<p class=\"err\">That token is unknown or revoked.</p>{LOGIN_FORM}"),
            ),
        )
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

pub async fn logout() -> Response {
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
        Redirect::to("/console/login"),
    )
        .into_response()
}

fn error_page(caller: &Caller, status: StatusCode, message: &str) -> Response {
    (
        status,
        page(
            "Error",
            Some(caller),
            &format!("<p class=\"err\">{}</p>", esc(message)),
        ),
    )
        .into_response()
}

fn filter_form(q: &FailureQuery) -> String {
    let field = |name: &str, label: &str, v: &Option<String>| {
        format!(
            "<label>{label} <input name=\"{name}\" value=\"{}\" size=\"14\"></label>",
            esc(v.as_deref().unwrap_or_default())
        )
    };
    format!(
        "<form method=\"get\" action=\"/console\" id=\"filter\">{}{}{}{}{}{}{}{}<button>Filter</button></form>",
        field("connector", "Connector", &q.connector),
        field("stream", "Stream", &q.stream),
        field("type", "Type", &q.record_type),
        field("stage", "Stage", &q.stage),
        field("code", "Error code", &q.code),
        field("status", "Status", &q.status),
        field("since", "Since", &q.since),
        field("q", "Key contains", &q.q),
    )
}

/// The filter's present parameters as (name, value), in the names the list takes.
fn params(q: &FailureQuery) -> Vec<(String, String)> {
    match serde_json::to_value(q) {
        Ok(serde_json::Value::Object(m)) => m
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect(),
        _ => Vec::new(),
    }
}

/// The filter as hidden form fields (without paging), for actions on the listed failures.
fn hidden_filter(q: &FailureQuery) -> String {
    params(q)
        .iter()
        .filter(|(k, _)| k != "after" && k != "limit")
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                esc(k),
                esc(v)
            )
        })
        .collect()
}

/// `GET /console`: failures with filters and counts by error code.
pub async fn failures(
    State(s): State<ApiState>,
    axum::Extension(caller): axum::Extension<Caller>,
    q: Result<Query<FailureQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q.without_blanks(),
        Err(e) => return error_page(&caller, StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let filter = match q.parse(Utc::now()) {
        Ok(f) => f,
        Err(e) => return error_page(&caller, StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let (rows, counts, total) = match tokio::try_join!(
        s.store.list_failures(&filter),
        s.store.failure_counts(&filter),
        s.store.count_failures(&filter)
    ) {
        Ok(r) => r,
        Err(e) => return error_page(&caller, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let mut rows = rows;
    if let Err(e) = present(
        s.store.as_ref(),
        &s.rt.schema,
        &caller.reader("console"),
        "failures.list",
        None,
        q.to_json(),
        &mut rows,
    )
    .await
    {
        return error_page(&caller, StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
    }
    let mut body = filter_form(&q);
    body.push_str(&format!("<h2>{total} failures by error code</h2><table id=\"counts\"><tr><th>Connector</th><th>Code</th><th>Failures</th></tr>"));
    for c in &counts {
        body.push_str(&format!(
            "<tr><td>{}</td><td><a href=\"/console?connector={}&code={}\">{}</a></td><td>{}</td></tr>",
            esc(&c.connector),
            url_part(&c.connector),
            url_part(&c.code),
            esc(&c.code),
            c.count
        ));
    }
    body.push_str("</table>");
    if caller.role.allows(Role::Operator) {
        let hidden = hidden_filter(&q);
        body.push_str(&format!(
            "<form method=\"post\" action=\"/console/replay\" class=\"inline\">{hidden}<input type=\"hidden\" name=\"dry_run\" value=\"true\"><button id=\"filter-dry-run\">Dry-run these</button></form> \
             <form method=\"post\" action=\"/console/replay\" class=\"inline\">{hidden}<button id=\"filter-replay\">Replay these</button></form>"
        ));
    }
    body.push_str("<table id=\"failures\"><tr><th>Failure</th><th>Stage</th><th>Connector / stream</th><th>Status</th><th>Codes</th><th>Attempts</th><th>Key</th><th>Last seen</th></tr>");
    for r in &rows {
        let mut codes: Vec<&str> = r.errors.iter().map(|e| e.code.as_str()).collect();
        codes.dedup();
        body.push_str(&format!(
            "<tr><td><a class=\"failure\" href=\"/console/failures/{id}\">{id}</a></td><td>{}</td><td>{} / {}</td><td class=\"status\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.stage.as_str(),
            esc(&r.connector),
            esc(&r.stream),
            status_name(r.status),
            esc(&codes.join(", ")),
            r.attempts,
            esc(r.natural_key.as_deref().or(r.upstream_id.as_deref()).unwrap_or("-")),
            r.last_seen.format("%Y-%m-%d %H:%M:%S"),
            id = esc(&r.id),
        ));
    }
    body.push_str("</table>");
    if rows.len() == filter.limit as usize
        && let Some(last) = rows.last()
    {
        let mut next = q.clone();
        next.after = Some(last.id.clone());
        let qs = query_string(&next);
        body.push_str(&format!("<p><a href=\"/console?{qs}\">Next page</a></p>"));
    }
    page("Failures", Some(&caller), &body).into_response()
}

/// The filter as a query string.
fn query_string(q: &FailureQuery) -> String {
    params(q)
        .iter()
        .map(|(k, v)| format!("{}={}", url_part(k), url_part(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[derive(Deserialize, Default)]
pub struct Msg {
    msg: Option<String>,
}

fn report_text(r: &ReplayReport) -> String {
    let mut t = if r.dry_run {
        format!(
            "Dry run: {} of {} would pass now; {} would still fail; {} skipped.",
            r.passed, r.selected, r.still_failing, r.skipped
        )
    } else {
        format!(
            "Replay: {} of {} passed and {} are stored and resolved; {} still fail; {} skipped.",
            r.passed, r.selected, r.resolved, r.still_failing, r.skipped
        )
    };
    for (code, n) in &r.still_failing_by_code {
        t.push_str(&format!(" {n} × {code}."));
    }
    for (why, n) in &r.skipped_reasons {
        t.push_str(&format!(" Skipped {n}: {why}."));
    }
    t
}

/// `GET /console/failures/{id}`: raw payload, errors at their fields, lineage, history, actions.
pub async fn failure(
    State(s): State<ApiState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    Query(m): Query<Msg>,
) -> Response {
    let row = match s.store.get_failure(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return error_page(
                &caller,
                StatusCode::NOT_FOUND,
                &format!("no failure with id `{id}`"),
            );
        }
        Err(e) => return error_page(&caller, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let history = s.store.failure_events(&id).await.unwrap_or_default();
    let mut row: FailureRow = row;
    if let Err(e) = present(
        s.store.as_ref(),
        &s.rt.schema,
        &caller.reader("console"),
        "failures.show",
        Some(id.clone()),
        json!({}),
        std::slice::from_mut(&mut row),
    )
    .await
    {
        return error_page(&caller, StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
    }
    let mut body = String::new();
    if let Some(msg) = m.msg {
        body.push_str(&format!("<p class=\"msg\" id=\"msg\">{}</p>", esc(&msg)));
    }
    body.push_str(&format!(
        "<table><tr><th>Status</th><td id=\"status\">{}</td></tr><tr><th>Stage</th><td>{}</td></tr>\
         <tr><th>Source</th><td>{} / {}</td></tr><tr><th>Type</th><td>{}</td></tr><tr><th>Key</th><td>{}</td></tr>\
         <tr><th>Upstream id</th><td>{}</td></tr><tr><th>Attempts</th><td>{}</td></tr>\
         <tr><th>First / last seen</th><td>{} / {}</td></tr>\
         <tr><th>Lineage</th><td>sync run {}, page {}, record {}</td></tr></table>",
        status_name(row.status),
        row.stage.as_str(),
        esc(&row.connector),
        esc(&row.stream),
        row.record_type.map_or("-", |t| t.as_str()),
        esc(row.natural_key.as_deref().unwrap_or("-")),
        esc(row.upstream_id.as_deref().unwrap_or("-")),
        row.attempts,
        row.first_seen.to_rfc3339(),
        row.last_seen.to_rfc3339(),
        esc(&row.lineage.sync_run),
        esc(&row.lineage.page),
        row.lineage.index,
    ));
    body.push_str("<h2>Errors</h2><table id=\"errors\"><tr><th>Code</th><th>Field</th><th>Schema path</th><th>Message</th></tr>");
    for e in &row.errors {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.code),
            esc(&e.path),
            esc(&e.schema_path),
            esc(&e.message)
        ));
    }
    body.push_str("</table><h2>Raw payload (as received)</h2>");
    if let Some(c) = &row.raw_context {
        body.push_str(&format!("<pre>{}</pre>", esc(c)));
    }
    body.push_str(&format!("<pre id=\"raw\">{}</pre>", esc(&row.raw)));
    if let Some(n) = &row.normalized {
        body.push_str(&format!(
            "<h2>Normalised attempt</h2><pre>{}</pre>",
            esc(&serde_json::to_string_pretty(n).unwrap_or_default())
        ));
    }
    if caller.role.allows(Role::Operator) {
        let eid = esc(&id);
        body.push_str(&format!(
            "<h2>Act</h2><form method=\"post\" action=\"/console/failures/{eid}/replay\" class=\"inline\">\
             <input type=\"hidden\" name=\"dry_run\" value=\"true\"><button id=\"dry-run\">Dry run</button></form> \
             <form method=\"post\" action=\"/console/failures/{eid}/replay\" class=\"inline\"><button id=\"replay\">Replay</button></form>\
             <form method=\"post\" action=\"/console/failures/{eid}/discard\"><label>Reason <input name=\"reason\" size=\"40\"></label><button id=\"discard\">Discard</button></form>\
             <form method=\"post\" action=\"/console/failures/{eid}/edit\"><p>Edit (JSON Patch against the upstream record; runs once a second person approves):</p>\
             <textarea name=\"patch\" rows=\"4\" cols=\"90\">[{{\"op\": \"replace\", \"path\": \"/FIELD\", \"value\": \"…\"}}]</textarea><br>\
             <label>Note <input name=\"note\" size=\"40\"></label><button id=\"edit\">Propose edit</button></form>"
        ));
    }
    body.push_str("<h2>History</h2><table id=\"history\"><tr><th>When</th><th>Who</th><th>What</th><th>Detail</th></tr>");
    for h in &history {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            h.at.to_rfc3339(),
            esc(&h.actor),
            esc(&h.action),
            esc(&h.detail.to_string())
        ));
    }
    body.push_str("</table>");
    page(&format!("Failure {id}"), Some(&caller), &body).into_response()
}

#[derive(Deserialize)]
pub struct ReplayForm {
    #[serde(default)]
    dry_run: Option<String>,
}

fn back(id: &str, msg: &str) -> Response {
    Redirect::to(&format!(
        "/console/failures/{}?msg={}",
        url_part(id),
        url_part(msg)
    ))
    .into_response()
}

/// `POST /console/failures/{id}/replay` (with `dry_run=true` for a dry run).
pub async fn replay_one(
    State(s): State<ApiState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    Form(f): Form<ReplayForm>,
) -> Response {
    if let Err(e) = caller.require(Role::Operator) {
        return error_page(&caller, StatusCode::FORBIDDEN, &e.to_string());
    }
    let settings = ReplaySettings {
        dry_run: f.dry_run.as_deref() == Some("true"),
        actor: caller.actor(),
        ..Default::default()
    };
    match replay::replay(&s.rt, Target::Ids(vec![id.clone()]), &settings, |_| {}).await {
        Ok(r) => back(&id, &report_text(&r)),
        Err(e) => error_page(
            &caller,
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("{e:#}"),
        ),
    }
}

/// `POST /console/replay`: dry run or replay of the list's filter.
pub async fn replay_filter(
    State(s): State<ApiState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Form(form): Form<std::collections::BTreeMap<String, String>>,
) -> Response {
    if let Err(e) = caller.require(Role::Operator) {
        return error_page(&caller, StatusCode::FORBIDDEN, &e.to_string());
    }
    let dry_run = form.get("dry_run").is_some_and(|v| v == "true");
    let mut fields = form.clone();
    fields.remove("dry_run");
    let q: FailureQuery = match serde_json::to_value(&fields).and_then(serde_json::from_value) {
        Ok(q) => FailureQuery::without_blanks(q),
        Err(e) => return error_page(&caller, StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let filter = match q.parse(Utc::now()) {
        Ok(f) => f,
        Err(e) => return error_page(&caller, StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let settings = ReplaySettings {
        dry_run,
        actor: caller.actor(),
        ..Default::default()
    };
    match replay::replay(&s.rt, Target::Filter(filter), &settings, |_| {}).await {
        Ok(r) => page(
            "Replay",
            Some(&caller),
            &format!(
                "<p class=\"msg\" id=\"msg\">{}</p><p><a href=\"/console?{}\">Back to the list</a></p>",
                esc(&report_text(&r)),
                query_string(&q)
            ),
        )
        .into_response(),
        Err(e) => error_page(&caller, StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}")),
    }
}

#[derive(Deserialize)]
pub struct ReasonForm {
    reason: String,
}

/// `POST /console/failures/{id}/discard`
pub async fn discard(
    State(s): State<ApiState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Response {
    if let Err(e) = caller.require(Role::Operator) {
        return error_page(&caller, StatusCode::FORBIDDEN, &e.to_string());
    }
    if f.reason.trim().is_empty() {
        return back(&id, "A discard needs a reason.");
    }
    match crate::ops::discard(s.store.as_ref(), &id, f.reason.trim(), &caller.actor()).await {
        Ok(d) => back(&id, &format!("Discard: {}.", d.as_str())),
        Err(e) => error_page(&caller, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

#[derive(Deserialize)]
pub struct EditForm {
    patch: String,
    #[serde(default)]
    note: String,
}

/// `POST /console/failures/{id}/edit`: proposes an edit (it runs once approved).
pub async fn edit(
    State(s): State<ApiState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    Form(f): Form<EditForm>,
) -> Response {
    if let Err(e) = caller.require(Role::Operator) {
        return error_page(&caller, StatusCode::FORBIDDEN, &e.to_string());
    }
    let ops = match serde_json::from_str(&f.patch) {
        Ok(ops) => ops,
        Err(e) => return back(&id, &format!("The patch is not a JSON Patch: {e}")),
    };
    let note = Some(f.note.trim().to_owned()).filter(|n| !n.is_empty());
    match edits::edit(&s.rt, &id, Correction::Patch(ops), note, &caller.actor()).await {
        Ok(e) => back(
            &id,
            &format!("Edit {} is waiting for a second person's approval.", e.id),
        ),
        Err(e) => back(&id, &e.to_string()),
    }
}

/// `GET /console/edits`: pending edits with approve and reject.
pub async fn edits_page(
    State(s): State<ApiState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Query(m): Query<Msg>,
) -> Response {
    let list = match s
        .store
        .list_edits(Some(crate::store::ops::EditStatus::Pending), None, 100)
        .await
    {
        Ok(l) => l,
        Err(e) => return error_page(&caller, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let mut body = String::new();
    if let Some(msg) = m.msg {
        body.push_str(&format!("<p class=\"msg\" id=\"msg\">{}</p>", esc(&msg)));
    }
    body.push_str("<table id=\"edits\"><tr><th>Edit</th><th>Failure</th><th>By</th><th>When</th><th>Patch</th><th>Note</th><th></th></tr>");
    for e in &list {
        let actions = if caller.role.allows(Role::Approver) {
            format!(
                "<form method=\"post\" action=\"/console/edits/{id}/approve\" class=\"inline\"><button>Approve and replay</button></form>\
                 <form method=\"post\" action=\"/console/edits/{id}/reject\" class=\"inline\"><input name=\"reason\" placeholder=\"reason\"><button>Reject</button></form>",
                id = esc(&e.id)
            )
        } else {
            String::new()
        };
        body.push_str(&format!(
            "<tr><td>{}</td><td><a href=\"/console/failures/{f}\">{f}</a></td><td>{}</td><td>{}</td><td><pre>{}</pre></td><td>{}</td><td>{actions}</td></tr>",
            esc(&e.id),
            esc(&e.editor),
            e.created_at.to_rfc3339(),
            esc(&e.patch.as_ref().map_or_else(|| "(whole record)".into(), |p| p.to_string())),
            esc(e.note.as_deref().unwrap_or_default()),
            f = esc(&e.failure_id),
        ));
    }
    body.push_str("</table>");
    page("Edits awaiting approval", Some(&caller), &body).into_response()
}

fn edits_back(msg: &str) -> Response {
    Redirect::to(&format!("/console/edits?msg={}", url_part(msg))).into_response()
}

/// `POST /console/edits/{id}/approve`
pub async fn approve(
    State(s): State<ApiState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = caller.require(Role::Approver) {
        return error_page(&caller, StatusCode::FORBIDDEN, &e.to_string());
    }
    match edits::approve(&s.rt, &id, &caller.actor()).await {
        Ok(r) => edits_back(&report_text(&r)),
        Err(e) => edits_back(&e.to_string()),
    }
}

/// `POST /console/edits/{id}/reject`
pub async fn reject(
    State(s): State<ApiState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Response {
    if let Err(e) = caller.require(Role::Approver) {
        return error_page(&caller, StatusCode::FORBIDDEN, &e.to_string());
    }
    if f.reason.trim().is_empty() {
        return edits_back("A rejection needs a reason.");
    }
    match edits::reject(&s.rt, &id, &caller.actor(), f.reason.trim()).await {
        Ok(()) => edits_back(&format!("Rejected {id}.")),
        Err(e) => edits_back(&e.to_string()),
    }
}

/// `GET /console/audit`: the audit log, newest last.
pub async fn audit(
    State(s): State<ApiState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    if let Err(e) = caller.require(Role::Operator) {
        return error_page(&caller, StatusCode::FORBIDDEN, &e.to_string());
    }
    let entries = match s.store.list_audit(0, 1000).await {
        Ok(e) => e,
        Err(e) => return error_page(&caller, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let mut body = String::from(
        "<table id=\"audit\"><tr><th>#</th><th>When</th><th>Who</th><th>What</th><th>On</th><th>Filter</th><th>Count</th><th>Outcome</th></tr>",
    );
    for e in &entries {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.seq,
            e.at.to_rfc3339(),
            esc(&e.entry.actor),
            esc(&e.entry.action),
            esc(e.entry.target.as_deref().unwrap_or("-")),
            esc(&e.entry.filter.to_string()),
            e.entry.count,
            esc(&e.entry.outcome.to_string()),
        ));
    }
    body.push_str("</table>");
    page("Audit log", Some(&caller), &body).into_response()
}
