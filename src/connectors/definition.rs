//! Pull, step zero: the declarative connector definitions in `connectors/*.toml`.
//!
//! One file per upstream system says where it is, how to authenticate, which streams it has, how
//! they page and resume, when they run, and how each record maps into the national schema. Adding
//! a stream or changing a mapping is an edit to that file, never a Rust change. Every check that
//! can fail runs at load time, so a bad file stops the service at start with the file, the key
//! and the reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::normalize::mapping::FieldSpec;
use crate::record::RecordType;

/// A configuration problem, always naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: `{key}`: {reason}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(file: impl Into<String>, key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            file: file.into(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// One upstream system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorDef {
    /// The connector's name: the `source` of its records and the last routing-key segment.
    /// Lower-case letters, digits and `-`.
    pub name: String,
    /// What the upstream is, for people.
    #[serde(default)]
    pub description: String,
    /// Base URL. `${VAR}` and `${VAR:-default}` are expanded from the environment, plus
    /// `XIEZHI_SIM_PORT_0` … `_4` derived from the simulators' base port.
    pub base_url: String,
    #[serde(default)]
    pub http: HttpSettings,
    #[serde(default)]
    pub auth: AuthDef,
    /// The streams (one record type each) this upstream offers.
    pub streams: Vec<StreamDef>,
    /// What xiezhi delivers to this upstream (the credit platform takes every penalty and
    /// licence decision for publication, …).
    #[serde(default)]
    pub pushes: Vec<PushDef>,
    /// Set by the loader: the file this definition came from.
    #[serde(skip)]
    pub file: String,
}

/// Transport limits towards one upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Whole-request timeout, seconds (reqwest sets none by default).
    pub timeout_secs: u64,
    /// TCP connect timeout, seconds.
    pub connect_timeout_secs: u64,
    /// Requests per second allowed towards this upstream, across its streams.
    pub rate_limit_per_sec: u32,
    /// Retries of a failed request (5xx, 429, timeout, unreadable body) before the page is
    /// recorded as a pull failure.
    pub max_retries: u32,
    /// First retry delay, milliseconds; doubles each retry, with jitter, capped at
    /// `max_backoff_ms`. A `Retry-After` header takes precedence.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout_secs: 30,
            connect_timeout_secs: 5,
            rate_limit_per_sec: 50,
            max_retries: 6,
            initial_backoff_ms: 200,
            max_backoff_ms: 10_000,
        }
    }
}

/// How requests are authenticated. Secrets are named by environment variable, never written
/// in the file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AuthDef {
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// Environment variable holding the token.
        token_env: String,
    },
    /// App key + timestamp + nonce + signature over a canonical string.
    Signature(SignatureDef),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureAlgorithm {
    /// Lower-case hex HMAC-SHA256 keyed with the secret.
    HmacSha256,
    /// Lower-case hex SM3 digest of the canonical string (which should contain `{secret}`).
    Sm3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    #[default]
    Headers,
    Query,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimestampUnit {
    #[default]
    EpochMs,
    EpochS,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureDef {
    pub algorithm: SignatureAlgorithm,
    pub app_key_env: String,
    pub secret_env: String,
    #[serde(default)]
    pub placement: Placement,
    pub key_name: String,
    pub timestamp_name: String,
    pub nonce_name: String,
    pub signature_name: String,
    #[serde(default)]
    pub timestamp: TimestampUnit,
    /// Template of the signed string. Placeholders: `{app_key}`, `{timestamp}`, `{nonce}`,
    /// `{method}`, `{path}`, `{query}` (the request's own query parameters sorted by name,
    /// `k=v` percent-encoded and joined by `&`, without the auth parameters), `{secret}`.
    /// Write `\n` for a newline.
    pub canonical: String,
}

/// Response body format of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Xml,
    Csv,
}

/// One stream: one endpoint, one record type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamDef {
    /// Unique within the connector; names the checkpoint.
    pub name: String,
    pub record_type: RecordType,
    /// Path under `base_url`, e.g. `/api/v1/penalties`.
    pub path: String,
    #[serde(default)]
    pub format: Format,
    /// Character set of the body when the response does not declare one (`gbk`, `gb18030`,
    /// `utf-8`). A declared charset wins.
    #[serde(default)]
    pub encoding: Option<String>,
    /// Where the records are in the response: a dot path (`data.list`); for XML the element
    /// path (`ExchangeMessage.Body.Record`); empty for CSV (every row is a record).
    #[serde(default)]
    pub records: String,
    /// Field holding the upstream's own id of a record (kept with failures and lineage).
    pub id: String,
    /// Field holding the upstream's update time of a record, if any (kept as lineage).
    #[serde(default)]
    pub updated: Option<String>,
    /// How `updated` is written: `epoch_ms`, `epoch_s`, or a `strftime` pattern of a UTC+8
    /// time (`%Y-%m-%d %H:%M:%S`). Needed to re-pull a time window of the stream
    /// (`xiezhi sync C --stream S --from T --to T`).
    #[serde(default)]
    pub updated_format: Option<super::window::UpdatedFormat>,
    /// Operation column for change-log streams (insert/update/delete rows).
    #[serde(default)]
    pub op: Option<OpDef>,
    /// Cron expression (5 or 6 fields) for `xiezhi run`.
    pub schedule: String,
    /// Extra constant query parameters.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    pub pagination: PaginationDef,
    /// Where a response reports how many records match the request's filter (a dot path such
    /// as `data.total`), when the upstream says: each sync window is reconciled against it.
    #[serde(default)]
    pub total: Option<String>,
    /// Target field (dot path into the national record) ← source. Checked against the schema
    /// at load time.
    pub mapping: BTreeMap<String, FieldSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpDef {
    /// The record field holding the operation.
    pub field: String,
    /// Values of that field that mean "deleted upstream".
    pub delete: Vec<String>,
}

/// One push: stored records of one type, delivered to one upstream endpoint in its dialect.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushDef {
    /// Unique within the connector; names the push's cursor and receipts.
    pub name: String,
    pub record_type: RecordType,
    /// POST path under `base_url`.
    pub path: String,
    /// The pull stream whose mapping, turned around, writes the upstream's fields (one dialect,
    /// written down once).
    #[serde(default)]
    pub stream: Option<String>,
    /// The upstream's dialect for these records when no pull stream of this connector reads
    /// them (the system only takes them): written like a pull mapping (national field ← upstream
    /// field) and turned around the same way. Exactly one of `stream` and `mapping`.
    #[serde(default)]
    pub mapping: std::collections::BTreeMap<String, crate::normalize::mapping::FieldSpec>,
    /// The national fields sent (dot paths; a path selects its sub-fields too). Empty: every
    /// field the mapping writes. An upstream that takes only part of a record (an outcome, not
    /// the whole ticket) says which part here.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Only records meeting this condition (on the national record, same shape as a mapping's
    /// `when`) are sent; a record delivered before that stops meeting it is withdrawn.
    #[serde(default)]
    pub only: Option<crate::normalize::mapping::When>,
    /// Key of the records array in the request body (`items`, `rows`).
    pub records: String,
    /// Body field carrying a batch number, for upstreams that number their batches.
    #[serde(default)]
    pub batch_field: Option<String>,
    /// Records per request.
    #[serde(default = "push_batch")]
    pub batch: u32,
    /// Header carrying the request's idempotency key.
    #[serde(default = "idempotency_header")]
    pub idempotency_header: String,
    /// The operation field of each record and its values.
    pub op: PushOpDef,
    /// How the answer reports each record.
    pub answer: PushAnswerDef,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushOpDef {
    pub field: String,
    pub insert: String,
    pub update: String,
    pub delete: String,
}

/// Where the answer holds one result per record sent, in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushAnswerDef {
    /// Dot path of the results array.
    pub results: String,
    /// Field of a result that says whether the record was taken, and the value that means yes.
    pub ok_field: String,
    pub ok_value: serde_json::Value,
    /// Field of a result holding its errors (objects with a code, a field and a message).
    pub errors: String,
}

fn push_batch() -> u32 {
    50
}

fn idempotency_header() -> String {
    "Idempotency-Key".into()
}

/// How a stream pages and how it resumes.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum PaginationDef {
    /// Page number + size, with an "updated since" filter fixed for the run. The next run's
    /// filter is the largest `since_field` seen. Within a run the checkpoint remembers the page,
    /// so a crash resumes at the next page.
    Page {
        page_param: String,
        size_param: String,
        size: u32,
        #[serde(default = "one")]
        first_page: u32,
        since_param: String,
        since_field: String,
        /// The filter value for the very first run.
        initial_since: String,
    },
    /// An opaque continuation token from each response.
    Cursor {
        cursor_param: String,
        /// Where the next token is in the response (dot path).
        next_cursor: String,
        /// Where the "more pages" flag is (dot path); without it, an empty page ends the run.
        #[serde(default)]
        has_more: Option<String>,
        #[serde(default)]
        limit_param: Option<String>,
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Keyset: each request asks for records strictly after the last one seen.
    Keyset {
        since_param: String,
        /// Record field whose value (of the page's last record) becomes the next `since`.
        since_field: String,
        initial_since: String,
        limit_param: String,
        limit: u32,
    },
}

fn one() -> u32 {
    1
}

/// Loads every `*.toml` under `dir`, in file-name order.
pub fn load_dir(dir: &Path) -> Result<Vec<ConnectorDef>, ConfigError> {
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ConfigError::new(
            &shown,
            "",
            format!("cannot read the connectors directory: {e}"),
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut defs = Vec::with_capacity(files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigError::new(path.display().to_string(), "", format!("cannot read: {e}"))
        })?;
        defs.push(parse(&path.display().to_string(), &text)?);
    }
    check_unique_names(&defs)?;
    Ok(defs)
}

/// The connector files shipped with this build, used when no `connectors/` directory exists
/// (so `xiezhi demo` works from any directory).
pub fn embedded() -> Result<Vec<ConnectorDef>, ConfigError> {
    let defs = EMBEDDED
        .iter()
        .map(|(file, text)| parse(file, text))
        .collect::<Result<Vec<_>, _>>()?;
    check_unique_names(&defs)?;
    Ok(defs)
}

/// The shipped connector files, built into the binary: (path, text).
pub const EMBEDDED: [(&str, &str); 5] = [
    (
        "connectors/provincial.toml",
        include_str!("../../connectors/provincial.toml"),
    ),
    (
        "connectors/internet-plus.toml",
        include_str!("../../connectors/internet-plus.toml"),
    ),
    (
        "connectors/credit-platform.toml",
        include_str!("../../connectors/credit-platform.toml"),
    ),
    (
        "connectors/double-random.toml",
        include_str!("../../connectors/double-random.toml"),
    ),
    (
        "connectors/hotline-12345.toml",
        include_str!("../../connectors/hotline-12345.toml"),
    ),
];

fn check_unique_names(defs: &[ConnectorDef]) -> Result<(), ConfigError> {
    for (i, d) in defs.iter().enumerate() {
        if let Some(other) = defs[..i].iter().find(|o| o.name == d.name) {
            return Err(ConfigError::new(
                &d.file,
                "name",
                format!(
                    "connector `{}` is already defined in {}",
                    d.name, other.file
                ),
            ));
        }
    }
    Ok(())
}

/// Parses one connector file and runs the load-time checks that need nothing but the file
/// (the secret and schema checks run in [`ConnectorDef::validate`]).
pub fn parse(file: &str, text: &str) -> Result<ConnectorDef, ConfigError> {
    let mut def: ConnectorDef = toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;
    def.file = file.to_owned();
    def.check_shape()?;
    Ok(def)
}

/// Turns a toml error into file + key + reason (+ line).
fn toml_error(file: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let reason = e.message().to_owned();
    // toml names the offending key in its message for unknown fields (`unknown field `x``);
    // keep the whole message and add the line.
    let key = reason
        .split('`')
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_default();
    let file = match line {
        Some(l) => format!("{file}:{l}"),
        None => file.to_owned(),
    };
    ConfigError::new(file, key, reason)
}

impl ConnectorDef {
    fn err(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::new(&self.file, key, reason)
    }

    fn check_pushes(&self) -> Result<(), ConfigError> {
        for (i, p) in self.pushes.iter().enumerate() {
            let at = |k: &str| format!("pushes[{i}] ({}).{k}", p.name);
            if self.pushes[..i].iter().any(|o| o.name == p.name) {
                return Err(self.err(at("name"), "duplicate push name"));
            }
            if !p.path.starts_with('/') {
                return Err(self.err(at("path"), "must start with `/`"));
            }
            match (&p.stream, p.mapping.is_empty()) {
                (Some(stream), true) => {
                    if self.stream(stream).is_none() {
                        return Err(self.err(
                            at("stream"),
                            format!(
                                "no stream `{stream}` in this connector to take the mapping from"
                            ),
                        ));
                    }
                }
                (None, false) => {}
                (Some(_), false) => {
                    return Err(self.err(
                        at("mapping"),
                        "give either `stream` (reuse a pull stream's mapping) or `mapping`, not both",
                    ));
                }
                (None, true) => {
                    return Err(self.err(
                        at("stream"),
                        "say how records are written: `stream` (a pull stream's mapping) or `mapping`",
                    ));
                }
            }
            if let Some(w) = &p.only
                && w.field.trim().is_empty()
            {
                return Err(self.err(at("only.field"), "must name a national field"));
            }
            if p.batch == 0 || p.batch > 1000 {
                return Err(self.err(at("batch"), "must be between 1 and 1000"));
            }
        }
        Ok(())
    }

    fn check_shape(&self) -> Result<(), ConfigError> {
        self.check_pushes()?;
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(self.err(
                "name",
                "must be lower-case letters, digits and `-` (it becomes a routing-key segment)",
            ));
        }
        if self.streams.is_empty() {
            return Err(self.err("streams", "a connector needs at least one stream"));
        }
        if self.http.rate_limit_per_sec == 0 {
            return Err(self.err("http.rate_limit_per_sec", "must be at least 1"));
        }
        for (i, s) in self.streams.iter().enumerate() {
            let at = |k: &str| format!("streams[{i}] ({}).{k}", s.name);
            if self.streams[..i].iter().any(|o| o.name == s.name) {
                return Err(self.err(at("name"), "duplicate stream name"));
            }
            if !s.path.starts_with('/') {
                return Err(self.err(at("path"), "must start with `/`"));
            }
            croner::Cron::from_str(&s.schedule).map_err(|e| {
                self.err(
                    at("schedule"),
                    format!("`{}` is not a valid cron expression: {e}", s.schedule),
                )
            })?;
            if let Some(enc) = &s.encoding
                && encoding_rs::Encoding::for_label(enc.as_bytes()).is_none()
            {
                return Err(self.err(at("encoding"), format!("unknown character set `{enc}`")));
            }
            if s.format != Format::Csv && s.records.is_empty() {
                return Err(self.err(at("records"), "say where the records are in the response"));
            }
            if let PaginationDef::Page { size: 0, .. } = s.pagination {
                return Err(self.err(at("pagination.size"), "must be at least 1"));
            }
            if s.mapping.is_empty() {
                return Err(self.err(at("mapping"), "a stream needs a mapping"));
            }
            if let Some(p) = self
                .pushes
                .iter()
                .find(|p| p.stream.as_deref() == Some(s.name.as_str()))
                && p.record_type != s.record_type
            {
                return Err(self.err(
                    format!("pushes ({}).record_type", p.name),
                    format!(
                        "is {} but stream `{}` holds {}",
                        p.record_type, s.name, s.record_type
                    ),
                ));
            }
            if s.updated_format.is_some() && s.updated.is_none() {
                return Err(self.err(
                    at("updated_format"),
                    "says how `updated` is written, so the stream needs `updated` too",
                ));
            }
        }
        Ok(())
    }

    /// Load-time checks against the environment: every referenced secret is set.
    pub fn check_secrets(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let need = |key: &str, var: &str| match env(var) {
            Some(v) if !v.is_empty() => Ok(()),
            _ => Err(self.err(
                key,
                format!("the secret's environment variable `{var}` is not set"),
            )),
        };
        match &self.auth {
            AuthDef::None => Ok(()),
            AuthDef::Bearer { token_env } => need("auth.token_env", token_env),
            AuthDef::Signature(s) => {
                need("auth.app_key_env", &s.app_key_env)?;
                need("auth.secret_env", &s.secret_env)
            }
        }
    }

    /// The base URL with `${VAR}` / `${VAR:-default}` expanded.
    pub fn resolved_base_url(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, ConfigError> {
        let url = expand(&self.base_url, env).map_err(|r| self.err("base_url", r))?;
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| self.err("base_url", format!("`{url}` is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(self.err("base_url", format!("`{url}` must be http or https")));
        }
        Ok(url.trim_end_matches('/').to_owned())
    }

    pub fn stream(&self, name: &str) -> Option<&StreamDef> {
        self.streams.iter().find(|s| s.name == name)
    }
}

/// Expands `${VAR}` and `${VAR:-default}`; a default may itself contain `${…}`.
pub fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        // The matching `}`, skipping nested `${…}`.
        let mut depth = 0usize;
        let mut end = None;
        let bytes = after.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
                b'}' if depth == 0 => {
                    end = Some(i);
                    break;
                }
                b'}' => depth -= 1,
                _ => {}
            }
        }
        let end = end.ok_or_else(|| format!("unclosed `${{` in `{text}`"))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (env(name), default) {
            (Some(v), _) if !v.is_empty() => out.push_str(&v),
            (_, Some(d)) => out.push_str(&expand(d, env)?),
            _ => return Err(format!("environment variable `{name}` is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    const MINIMAL: &str = r#"
name = "demo"
base_url = "http://127.0.0.1:${PORT:-9000}"
[auth]
kind = "bearer"
token_env = "DEMO_TOKEN"
[[streams]]
name = "penalties"
record_type = "penalty"
path = "/p"
records = "data"
id = "id"
schedule = "0 */10 * * * *"
[streams.pagination]
kind = "cursor"
cursor_param = "cursor"
next_cursor = "next"
[streams.mapping]
decision_number = "wsh"
"#;

    #[test]
    fn a_minimal_definition_loads_and_expands() {
        let d = parse("demo.toml", MINIMAL).unwrap();
        assert_eq!(
            d.resolved_base_url(&env(&[])).unwrap(),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            d.resolved_base_url(&env(&[("PORT", "1234")])).unwrap(),
            "http://127.0.0.1:1234"
        );
        assert!(d.check_secrets(&env(&[("DEMO_TOKEN", "t")])).is_ok());
    }

    #[test]
    fn an_unknown_field_names_file_line_and_key() {
        let text = MINIMAL.replace("records = \"data\"", "records = \"data\"\nrecrods = 1");
        let e = parse("demo.toml", &text).unwrap_err();
        assert!(e.file.starts_with("demo.toml:"), "{e}");
        assert_eq!(e.key, "recrods");
        assert!(e.reason.contains("unknown field"), "{e}");
    }

    #[test]
    fn a_bad_cron_names_the_stream_key() {
        let text = MINIMAL.replace("0 */10 * * * *", "every ten minutes");
        let e = parse("demo.toml", &text).unwrap_err();
        assert_eq!(e.file, "demo.toml");
        assert_eq!(e.key, "streams[0] (penalties).schedule");
        assert!(e.reason.contains("cron"), "{e}");
    }

    #[test]
    fn a_missing_secret_names_the_variable() {
        let d = parse("demo.toml", MINIMAL).unwrap();
        let e = d.check_secrets(&env(&[])).unwrap_err();
        assert_eq!(e.key, "auth.token_env");
        assert!(e.reason.contains("DEMO_TOKEN"), "{e}");
    }

    #[test]
    fn expansion_reports_unset_variables() {
        assert!(expand("${NOPE}", &env(&[])).unwrap_err().contains("NOPE"));
        assert_eq!(expand("a${X}b", &env(&[("X", "1")])).unwrap(), "a1b");
        let nested = "${URL:-http://h:${PORT}}/x";
        assert_eq!(
            expand(nested, &env(&[("PORT", "9")])).unwrap(),
            "http://h:9/x"
        );
        assert_eq!(
            expand(nested, &env(&[("URL", "https://real"), ("PORT", "9")])).unwrap(),
            "https://real/x"
        );
        assert!(expand(nested, &env(&[])).unwrap_err().contains("PORT"));
    }
}
