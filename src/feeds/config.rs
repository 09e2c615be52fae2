//! Feed, configuration: the named consumers (`[[feeds.consumers]]` in the configuration file).

use serde::{Deserialize, Serialize};

use crate::connectors::definition::ConfigError;

/// How much personal data a consumer may see (REFERENCE §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Masking {
    /// For publication (信用中国, portals): names as surname + `*`, ID numbers as first 6 +
    /// `********` + last 4, phones as 3 + `****` + 4, addresses cut to the township.
    Public,
    /// For government data sharing (政务共享): full, every read audited.
    Shared,
    /// For xiezhi's own supervisors: full.
    Internal,
}

impl Masking {
    pub fn as_str(self) -> &'static str {
        match self {
            Masking::Public => "public",
            Masking::Shared => "shared",
            Masking::Internal => "internal",
        }
    }

    pub const ALL: [Masking; 3] = [Masking::Public, Masking::Shared, Masking::Internal];
}

impl std::str::FromStr for Masking {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "public" => Ok(Masking::Public),
            "shared" => Ok(Masking::Shared),
            "internal" => Ok(Masking::Internal),
            other => Err(format!(
                "unknown masking level `{other}` (public, shared, internal)"
            )),
        }
    }
}

/// The feeds: where they are published and who consumes them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedsConfig {
    /// Prefix of the AMQP topic exchanges, one per masking level: `<prefix>.public`,
    /// `<prefix>.shared`, `<prefix>.internal`. Default `xiezhi.feeds`.
    pub exchange_prefix: String,
    /// Whether `xiezhi run` relays stored changes to the AMQP feed exchanges (with a broker
    /// configured). Default true.
    pub relay: bool,
    /// Changes the relay reads and publishes per round.
    pub relay_batch: u32,
    /// Named consumers. Each gets a durable queue `<exchange_prefix>.<name>` bound to its
    /// level's exchange with its `bindings`, dead-lettering to `<exchange_prefix>.<name>.dead`,
    /// and a server-side cursor for the HTTP feed.
    pub consumers: Vec<FeedConsumer>,
}

impl Default for FeedsConfig {
    fn default() -> Self {
        FeedsConfig {
            exchange_prefix: "xiezhi.feeds".into(),
            relay: true,
            relay_batch: 500,
            consumers: Vec::new(),
        }
    }
}

/// One downstream consumer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConsumer {
    /// Lower-case letters, digits and `-`; names its queue and its HTTP cursor.
    pub name: String,
    /// How much personal data it sees. A level above `public` needs an operator token over HTTP.
    pub masking: Masking,
    /// AMQP topic bindings on `<type>.<province>.<prefecture>.<county>.<source>` routing keys,
    /// e.g. `penalty.#`, `*.62.6208.620822.#`, `#.credit-platform`. Default: everything.
    #[serde(default = "everything")]
    pub bindings: Vec<String>,
}

fn everything() -> Vec<String> {
    vec!["#".into()]
}

impl FeedsConfig {
    /// The exchange a masking level is published to.
    pub fn exchange(&self, level: Masking) -> String {
        format!("{}.{}", self.exchange_prefix, level.as_str())
    }

    /// The topic exchange deadline alerts go to (`deadline.<status>.<type>.<rule>`).
    pub fn alerts_exchange(&self) -> String {
        format!("{}.alerts", self.exchange_prefix)
    }

    /// A consumer's durable queue.
    pub fn queue(&self, consumer: &str) -> String {
        format!("{}.{consumer}", self.exchange_prefix)
    }

    pub fn consumer(&self, name: &str) -> Option<&FeedConsumer> {
        self.consumers.iter().find(|c| c.name == name)
    }

    /// Load-time checks: names, duplicates, binding syntax.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |key: String, reason: String| Err(ConfigError::new(file, key, reason));
        if self.exchange_prefix.is_empty() || self.exchange_prefix.len() > 200 {
            return err(
                "feeds.exchange_prefix".into(),
                "must be 1 to 200 characters".into(),
            );
        }
        if self.relay_batch == 0 || self.relay_batch > 10_000 {
            return err(
                "feeds.relay_batch".into(),
                "must be between 1 and 10000".into(),
            );
        }
        for (i, c) in self.consumers.iter().enumerate() {
            let at = |k: &str| format!("feeds.consumers[{i}] ({}).{k}", c.name);
            if c.name.is_empty()
                || c.name.len() > 100
                || !c
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            {
                return err(
                    at("name"),
                    "must be 1–100 lower-case letters, digits and `-`".into(),
                );
            }
            if self.consumers[..i].iter().any(|o| o.name == c.name) {
                return err(at("name"), "another consumer has this name".into());
            }
            if c.bindings.is_empty() {
                return err(
                    at("bindings"),
                    "needs at least one binding (`#` for everything)".into(),
                );
            }
            for b in &c.bindings {
                let ok = !b.is_empty()
                    && b.len() <= 255
                    && b.split('.').all(|w| {
                        w == "*"
                            || w == "#"
                            || (!w.is_empty()
                                && w.chars()
                                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-'))
                    });
                if !ok {
                    return err(
                        at("bindings"),
                        format!(
                            "`{b}` is not a topic binding (dot-separated words, `*` or `#`), e.g. `penalty.62.6208.#`"
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FeedsConfig, String> {
        let c: FeedsConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate("xiezhi.toml").map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn consumers_load_with_defaults_and_names() {
        let c = parse(
            r#"
            [[consumers]]
            name = "portal"
            masking = "public"
            [[consumers]]
            name = "data-warehouse"
            masking = "internal"
            bindings = ["penalty.#", "*.62.6208.620822.#"]
            "#,
        )
        .unwrap();
        assert_eq!(c.consumers[0].bindings, vec!["#"]);
        assert_eq!(c.exchange(Masking::Public), "xiezhi.feeds.public");
        assert_eq!(c.queue("portal"), "xiezhi.feeds.portal");
        assert_eq!(
            c.consumer("data-warehouse").map(|c| c.masking),
            Some(Masking::Internal)
        );
    }

    #[test]
    fn bad_consumers_are_named() {
        for (text, key) in [
            (
                "[[consumers]]\nname = \"Bad Name\"\nmasking = \"public\"",
                "name",
            ),
            (
                "[[consumers]]\nname = \"a\"\nmasking = \"public\"\n[[consumers]]\nname = \"a\"\nmasking = \"public\"",
                "name",
            ),
            (
                "[[consumers]]\nname = \"a\"\nmasking = \"public\"\nbindings = [\"penalty..#\"]",
                "bindings",
            ),
            (
                "[[consumers]]\nname = \"a\"\nmasking = \"public\"\nbindings = []",
                "bindings",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
        let e = parse("[[consumers]]\nname = \"a\"\nmasking = \"secret\"").unwrap_err();
        assert!(e.contains("secret"), "{e}");
    }
}
