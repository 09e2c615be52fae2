//! Pull, step one: talking HTTP to one upstream system.
//!
//! Timeouts on every request (reqwest sets none by default), a rate limit per upstream shared by
//! its streams, request signing (bearer, HMAC-SHA256, SM3), charset decoding (GBK exports), and
//! retries with exponential backoff and jitter that honour `Retry-After`. A body that arrives but
//! cannot be parsed (a truncated page) is retried like a 5xx.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backon::{BackoffBuilder, ExponentialBuilder};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;
use sm3::Digest;

use super::definition::{
    AuthDef, ConfigError, ConnectorDef, HttpSettings, Placement, SignatureAlgorithm, SignatureDef,
    TimestampUnit,
};

/// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a page could not be fetched (after retries, where retrying made sense).
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("{connector}: {method} {url} failed after {attempts} attempts: {reason}")]
    Exhausted {
        connector: String,
        method: &'static str,
        url: String,
        attempts: u32,
        reason: String,
        code: &'static str,
    },
    #[error("{connector}: {method} {url} was refused with HTTP {status}: {body}")]
    Refused {
        connector: String,
        method: &'static str,
        url: String,
        status: u16,
        body: String,
    },
}

impl PullError {
    /// Stable code for the failure store.
    pub fn code(&self) -> &'static str {
        match self {
            PullError::Exhausted { code, .. } => code,
            PullError::Refused {
                status: 401 | 403, ..
            } => "PULL_AUTH_REFUSED",
            PullError::Refused { .. } => "PULL_REFUSED",
        }
    }
}

/// Secrets resolved from the environment at start.
#[derive(Clone)]
enum Auth {
    None,
    Bearer(String),
    Signature {
        def: SignatureDef,
        app_key: String,
        secret: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.write_str(match self {
            Auth::None => "Auth::None",
            Auth::Bearer(_) => "Auth::Bearer(***)",
            Auth::Signature { .. } => "Auth::Signature(***)",
        })
    }
}

/// A client for one upstream system.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub base_url: String,
    client: reqwest::Client,
    auth: Auth,
    limiter: Arc<DefaultDirectRateLimiter>,
    settings: HttpSettings,
}

/// A decoded response body.
#[derive(Debug)]
pub struct Body {
    pub text: String,
    pub url: String,
}

impl Upstream {
    /// Builds the client; fails on a missing secret or a bad base URL, naming file and key.
    pub fn new(
        def: &ConnectorDef,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Upstream, ConfigError> {
        def.check_secrets(env)?;
        let base_url = def.resolved_base_url(env)?;
        let get = |k: &str| env(k).unwrap_or_default();
        let auth = match &def.auth {
            AuthDef::None => Auth::None,
            AuthDef::Bearer { token_env } => Auth::Bearer(get(token_env)),
            AuthDef::Signature(s) => Auth::Signature {
                def: s.clone(),
                app_key: get(&s.app_key_env),
                secret: get(&s.secret_env),
            },
        };
        let s = &def.http;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(s.timeout_secs))
            .connect_timeout(Duration::from_secs(s.connect_timeout_secs))
            // Shorter than typical upstream keep-alives, so a pooled connection is not reused
            // just as the server closes it.
            .pool_idle_timeout(Duration::from_secs(20))
            .user_agent(concat!("xiezhi/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ConfigError::new(
                    &def.file,
                    "http",
                    format!("cannot build the HTTP client: {e}"),
                )
            })?;
        let per_sec = NonZeroU32::new(s.rate_limit_per_sec).unwrap_or(NonZeroU32::MIN);
        Ok(Upstream {
            name: def.name.clone(),
            base_url,
            client,
            auth,
            limiter: Arc::new(RateLimiter::direct(Quota::per_second(per_sec))),
            settings: s.clone(),
        })
    }

    /// GETs `path?query`, decodes the body, and hands it to `parse`; retries transport errors,
    /// 5xx, 429 and unparseable bodies with backoff.
    pub async fn get_parsed<T>(
        &self,
        path: &str,
        query: &[(String, String)],
        fallback_charset: Option<&str>,
        parse: impl Fn(&Body) -> Result<T, String>,
    ) -> Result<T, PullError> {
        self.request_parsed(&Request::get(path, query), fallback_charset, parse)
            .await
    }

    /// POSTs a JSON body (signed like a GET, with the connector's auth), with the extra
    /// headers (an idempotency key), and hands the answer to `parse`; retries as
    /// [`Upstream::get_parsed`] does. The upstream must treat a repeat with the same
    /// idempotency key as the same request.
    pub async fn post_json_parsed<T>(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
        parse: impl Fn(&Body) -> Result<T, String>,
    ) -> Result<T, PullError> {
        let req = Request {
            method: "POST",
            path,
            query: &[],
            body: Some(body),
            headers,
        };
        self.request_parsed(&req, None, parse).await
    }

    async fn request_parsed<T>(
        &self,
        req: &Request<'_>,
        fallback_charset: Option<&str>,
        parse: impl Fn(&Body) -> Result<T, String>,
    ) -> Result<T, PullError> {
        let (path, query) = (req.path, req.query);
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.settings.initial_backoff_ms))
            .with_max_delay(Duration::from_millis(self.settings.max_backoff_ms))
            .with_max_times(self.settings.max_retries as usize)
            .with_jitter()
            .build();
        let mut attempts = 0u32;
        let display_url = format!("{}{}?{}", self.base_url, path, encode_query(query));
        loop {
            attempts += 1;
            self.limiter.until_ready().await;
            let began = std::time::Instant::now();
            let (outcome, retry_after, status) = self.attempt(req, fallback_charset, &parse).await;
            crate::telemetry::upstream_attempt(
                &self.name,
                status,
                match &outcome {
                    Ok(_) => None,
                    Err(Attempt::Retry(_, code)) => Some(code),
                    Err(Attempt::Fatal(..)) => Some("PULL_REFUSED"),
                },
                began.elapsed(),
            );
            let (reason, code) = match outcome {
                Ok(v) => return Ok(v),
                Err(Attempt::Fatal(status, body)) => {
                    return Err(PullError::Refused {
                        connector: self.name.clone(),
                        method: req.method,
                        url: display_url,
                        status,
                        body,
                    });
                }
                Err(Attempt::Retry(reason, code)) => (reason, code),
            };
            let Some(backoff) = delays.next() else {
                return Err(PullError::Exhausted {
                    connector: self.name.clone(),
                    method: req.method,
                    url: display_url,
                    attempts,
                    reason,
                    code,
                });
            };
            let delay = retry_after.unwrap_or(backoff);
            tracing::warn!(connector = %self.name, url = %display_url, attempt = attempts, delay_ms = delay.as_millis() as u64, %reason, "Upstream request failed; retrying.");
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt<T>(
        &self,
        r: &Request<'_>,
        fallback_charset: Option<&str>,
        parse: &impl Fn(&Body) -> Result<T, String>,
    ) -> (Result<T, Attempt>, Option<Duration>, Option<u16>) {
        let (url, headers) = self.signed(r.method, r.path, r.query);
        let mut req = match &r.body {
            None => self.client.get(&url),
            Some(body) => self
                .client
                .post(&url)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/json; charset=utf-8",
                )
                .body(body.clone()),
        };
        for (k, v) in headers.into_iter().chain(r.headers.iter().cloned()) {
            req = req.header(k, v);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let code = if e.is_timeout() {
                    "PULL_TIMEOUT"
                } else {
                    "PULL_TRANSPORT"
                };
                return (
                    Err(Attempt::Retry(format!("request error: {e}"), code)),
                    None,
                    None,
                );
            }
        };
        let status = resp.status();
        let code = Some(status.as_u16());
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(300)));
        let charset = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|ct| {
                ct.split(';').find_map(|p| {
                    p.trim()
                        .strip_prefix("charset=")
                        .map(|c| c.trim_matches('"').to_owned())
                })
            });
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                let reason_code = if e.is_timeout() {
                    "PULL_TIMEOUT"
                } else {
                    "PULL_TRANSPORT"
                };
                return (
                    Err(Attempt::Retry(
                        format!("reading the body failed: {e}"),
                        reason_code,
                    )),
                    retry_after,
                    code,
                );
            }
        };
        let label = charset.as_deref().or(fallback_charset).unwrap_or("utf-8");
        let encoding =
            encoding_rs::Encoding::for_label(label.as_bytes()).unwrap_or(encoding_rs::UTF_8);
        let (text, _, had_errors) = encoding.decode(&bytes);
        if had_errors {
            tracing::warn!(connector = %self.name, %url, charset = label, "Response body had bytes invalid in its character set; they were replaced.");
        }
        let body = Body {
            text: text.into_owned(),
            url: url.clone(),
        };
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return (
                Err(Attempt::Retry(
                    "HTTP 429 Too Many Requests".into(),
                    "PULL_RATE_LIMITED",
                )),
                retry_after,
                code,
            );
        }
        if status.is_server_error() {
            return (
                Err(Attempt::Retry(
                    format!("HTTP {status}: {}", snippet(&body.text)),
                    "PULL_HTTP_5XX",
                )),
                retry_after,
                code,
            );
        }
        if !status.is_success() {
            return (
                Err(Attempt::Fatal(status.as_u16(), snippet(&body.text))),
                None,
                code,
            );
        }
        match parse(&body) {
            Ok(v) => (Ok(v), None, code),
            Err(reason) => (
                Err(Attempt::Retry(
                    format!("unreadable page: {reason}"),
                    "PULL_BAD_PAGE",
                )),
                None,
                code,
            ),
        }
    }

    /// The full URL and headers of a request, signed per the connector's auth.
    fn signed(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
    ) -> (String, Vec<(String, String)>) {
        let mut headers = Vec::new();
        let mut params: Vec<(String, String)> = query.to_vec();
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(t) => headers.push(("Authorization".into(), format!("Bearer {t}"))),
            Auth::Signature {
                def,
                app_key,
                secret,
            } => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                let ts = match def.timestamp {
                    TimestampUnit::EpochMs => now.as_millis().to_string(),
                    TimestampUnit::EpochS => now.as_secs().to_string(),
                };
                let nonce = uuid::Uuid::new_v4().simple().to_string();
                let sign = sign(def, app_key, secret, &ts, &nonce, method, path, query);
                let pairs = [
                    (def.key_name.clone(), app_key.clone()),
                    (def.timestamp_name.clone(), ts),
                    (def.nonce_name.clone(), nonce),
                    (def.signature_name.clone(), sign),
                ];
                match def.placement {
                    Placement::Headers => headers.extend(pairs),
                    Placement::Query => params.extend(pairs),
                }
            }
        }
        let q = encode_query(&params);
        let url = if q.is_empty() {
            format!("{}{}", self.base_url, path)
        } else {
            format!("{}{}?{}", self.base_url, path, q)
        };
        (url, headers)
    }
}

enum Attempt {
    Retry(String, &'static str),
    Fatal(u16, String),
}

/// One request to the upstream: a GET, or a POST with a JSON body and extra headers.
struct Request<'a> {
    method: &'static str,
    path: &'a str,
    query: &'a [(String, String)],
    body: Option<Vec<u8>>,
    headers: Vec<(String, String)>,
}

impl<'a> Request<'a> {
    fn get(path: &'a str, query: &'a [(String, String)]) -> Request<'a> {
        Request {
            method: "GET",
            path,
            query,
            body: None,
            headers: Vec::new(),
        }
    }
}

fn snippet(s: &str) -> String {
    let mut out: String = s.chars().take(300).collect();
    if s.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// `k=v&k=v`, percent-encoded, in the given order.
pub fn encode_query(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, QUERY_VALUE),
                utf8_percent_encode(v, QUERY_VALUE)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The signature over the canonical string of [`SignatureDef::canonical`].
#[allow(clippy::too_many_arguments)]
pub fn sign(
    def: &SignatureDef,
    app_key: &str,
    secret: &str,
    ts: &str,
    nonce: &str,
    method: &str,
    path: &str,
    query: &[(String, String)],
) -> String {
    let mut sorted = query.to_vec();
    sorted.sort();
    let canonical = def
        .canonical
        .replace("\\n", "\n")
        .replace("{app_key}", app_key)
        .replace("{timestamp}", ts)
        .replace("{nonce}", nonce)
        .replace("{method}", method)
        .replace("{path}", path)
        .replace("{query}", &encode_query(&sorted))
        .replace("{secret}", secret);
    match def.algorithm {
        SignatureAlgorithm::HmacSha256 => {
            // HMAC accepts keys of any length, so this cannot fail.
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
                .expect("HMAC takes any key length");
            mac.update(canonical.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        SignatureAlgorithm::Sm3 => hex::encode(sm3::Sm3::digest(canonical.as_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding_keeps_unreserved_and_escapes_the_rest() {
        let q = vec![
            ("since".to_owned(), "2025-01-01 00:00:00".to_owned()),
            ("a".to_owned(), "中".to_owned()),
        ];
        assert_eq!(
            encode_query(&q),
            "since=2025-01-01%2000%3A00%3A00&a=%E4%B8%AD"
        );
    }

    #[test]
    fn hmac_signature_matches_a_known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let def = SignatureDef {
            algorithm: SignatureAlgorithm::HmacSha256,
            app_key_env: String::new(),
            secret_env: String::new(),
            placement: Placement::Headers,
            key_name: String::new(),
            timestamp_name: String::new(),
            nonce_name: String::new(),
            signature_name: String::new(),
            timestamp: TimestampUnit::EpochMs,
            canonical: "what do ya want for nothing?".into(),
        };
        assert_eq!(
            sign(&def, "", "Jefe", "", "", "GET", "/", &[]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn sm3_signature_matches_the_standard_vector() {
        // GB/T 32905 example 1: SM3("abc").
        let def = SignatureDef {
            algorithm: SignatureAlgorithm::Sm3,
            app_key_env: String::new(),
            secret_env: String::new(),
            placement: Placement::Query,
            key_name: String::new(),
            timestamp_name: String::new(),
            nonce_name: String::new(),
            signature_name: String::new(),
            timestamp: TimestampUnit::EpochMs,
            canonical: "{app_key}".into(),
        };
        assert_eq!(
            sign(&def, "abc", "", "", "", "GET", "/", &[]),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
    }
}
