//! How each simulated upstream authenticates callers: bearer tokens, HMAC-SHA256 header
//! signatures (internet-plus, hotline) and the credit platform's SM3 signature, with timestamp
//! windows and nonce replay protection, as those gateways do.

use hmac::{KeyInit, Mac};
use sha2::Sha256;
use sm3::{Digest, Sm3};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const DEFAULT_CREDENTIALS: [(&str, &str); 8] = [
    ("XIEZHI_PROVINCIAL_TOKEN", "sim-provincial-7f3a9c2e61d84b05"),
    ("XIEZHI_INTERNET_PLUS_APP_KEY", "lt620822-jgxw"),
    (
        "XIEZHI_INTERNET_PLUS_APP_SECRET",
        "sim-internet-plus-secret-4b8e1d",
    ),
    ("XIEZHI_CREDIT_APP_KEY", "pl6208-sgs"),
    ("XIEZHI_CREDIT_APP_SECRET", "sim-credit-secret-9a2f6c"),
    ("XIEZHI_DOUBLE_RANDOM_TOKEN", "sim-double-random-5d0e7b3a"),
    ("XIEZHI_HOTLINE_APP_KEY", "lt12345-open"),
    ("XIEZHI_HOTLINE_APP_SECRET", "sim-hotline-secret-e61c08"),
];

/// Window for timestamps and for nonce memory.
pub const TIMESTAMP_WINDOW_MS: i64 = 300_000;
const NONCE_TTL: Duration = Duration::from_secs(600);

#[derive(Clone, Debug)]
pub struct Creds(HashMap<&'static str, String>);

impl Creds {
    /// Defaults, each overridable by the environment variable of the same name.
    pub fn from_env() -> Creds {
        Creds(
            DEFAULT_CREDENTIALS
                .iter()
                .map(|(k, v)| {
                    (
                        *k,
                        std::env::var(k)
                            .ok()
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect(),
        )
    }

    pub fn get(&self, var: &str) -> &str {
        self.0.get(var).map(String::as_str).unwrap_or_default()
    }

    pub fn as_env(&self) -> Vec<(String, String)> {
        DEFAULT_CREDENTIALS
            .iter()
            .map(|(k, _)| (k.to_string(), self.get(k).to_string()))
            .collect()
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The canonical query string: raw `name=value` pieces as sent, without `drop`, sorted by name.
pub fn canonical_query(raw: Option<&str>, drop: Option<&str>) -> String {
    let mut pieces: Vec<&str> = raw
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| drop.is_none_or(|d| p.split('=').next() != Some(d)))
        .collect();
    pieces.sort_by(|a, b| {
        a.split('=')
            .next()
            .unwrap_or("")
            .cmp(b.split('=').next().unwrap_or(""))
    });
    pieces.join("&")
}

pub fn hmac_sha256_hex(secret: &str, message: &str) -> String {
    let mut mac = match hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub fn sm3_hex(message: &str) -> String {
    let mut h = Sm3::new();
    h.update(message.as_bytes());
    hex::encode(h.finalize())
}

/// Constant-time comparison of two signatures.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Remembers nonces for ten minutes so that a captured request cannot be replayed.
#[derive(Default)]
pub struct NonceCache(Mutex<HashMap<String, Instant>>);

impl NonceCache {
    /// True when the nonce is fresh (and records it).
    pub fn fresh(&self, nonce: &str) -> bool {
        let Ok(mut seen) = self.0.lock() else {
            return false;
        };
        let now = Instant::now();
        if seen.len() > 50_000 {
            seen.retain(|_, t| now.duration_since(*t) < NONCE_TTL);
        }
        match seen.get(nonce) {
            Some(t) if now.duration_since(*t) < NONCE_TTL => false,
            _ => {
                seen.insert(nonce.to_string(), now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_query_sorts_raw_pieces_and_drops_sign() {
        assert_eq!(
            canonical_query(Some("limit=5&cursor=a%2Bb&sign=x&appKey=k"), Some("sign")),
            "appKey=k&cursor=a%2Bb&limit=5"
        );
        assert_eq!(canonical_query(None, None), "");
    }

    #[test]
    fn known_digests() {
        // RFC 4231 test case 2
        assert_eq!(
            hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // GB/T 32905 example "abc"
        assert_eq!(
            sm3_hex("abc"),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
    }

    #[test]
    fn nonce_is_single_use() {
        let c = NonceCache::default();
        assert!(c.fresh("n1"));
        assert!(!c.fresh("n1"));
        assert!(c.fresh("n2"));
    }
}
