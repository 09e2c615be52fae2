//! Operators: the failure filter as people type it — CLI flags and API query parameters alike —
//! parsed once, with errors that name the parameter and say what it takes.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::record::{RecordType, Stage};
use crate::store::{FailureFilter, FailureStatus};

/// Largest page a list returns.
pub const MAX_LIMIT: u32 = 1000;

/// A failure filter in its typed-in form. The same names are CLI flags (`--code X`) and API
/// query parameters (`?code=X`).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct FailureQuery {
    /// Connector (upstream system) name, e.g. `credit`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// Stream of the connector, e.g. `penalties`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Record type, e.g. `penalty`.
    #[arg(long = "type")]
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub record_type: Option<String>,
    /// Stage that failed: pull, normalize, route, store or push.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Stable error code, e.g. `USCC_CHECK_DIGIT`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Statuses, comma-separated: open, replayed, resolved, discarded.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Last seen at or after: RFC 3339 time, a date (midnight, China Standard Time), or an age
    /// such as `30m`, `24h`, `7d`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Last seen before (same forms as `since`).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Free text: part of the natural key or the upstream id, or a failure id.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Page after this failure id (ids are the order of every list).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Page size (1–1000; default 100).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// A parameter that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{param}`: {reason}")]
pub struct FilterError {
    pub param: &'static str,
    pub reason: String,
}

fn bad(param: &'static str, reason: impl Into<String>) -> FilterError {
    FilterError {
        param,
        reason: reason.into(),
    }
}

impl FailureQuery {
    /// The store filter, or the first parameter that does not parse. `now` anchors ages.
    pub fn parse(&self, now: DateTime<Utc>) -> Result<FailureFilter, FilterError> {
        let record_type = self
            .record_type
            .as_deref()
            .map(|t| {
                t.parse::<RecordType>()
                    .map_err(|e: crate::record::UnknownRecordType| bad("type", e.to_string()))
            })
            .transpose()?;
        let stage = self
            .stage
            .as_deref()
            .map(|st| {
                serde_json::from_value::<Stage>(Value::String(st.to_owned())).map_err(|_| {
                    bad(
                        "stage",
                        format!("`{st}` is not one of pull, normalize, route, store, push"),
                    )
                })
            })
            .transpose()?;
        let mut status = Vec::new();
        for st in self
            .status
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let s = serde_json::from_value::<FailureStatus>(Value::String(st.to_owned())).map_err(
                |_| {
                    bad(
                        "status",
                        format!("`{st}` is not one of open, replayed, resolved, discarded"),
                    )
                },
            )?;
            if !status.contains(&s) {
                status.push(s);
            }
        }
        let since = self
            .since
            .as_deref()
            .map(|t| parse_time(t, now).map_err(|r| bad("since", r)))
            .transpose()?;
        let until = self
            .until
            .as_deref()
            .map(|t| parse_time(t, now).map_err(|r| bad("until", r)))
            .transpose()?;
        if let (Some(s), Some(u)) = (since, until)
            && s >= u
        {
            return Err(bad("until", format!("{u} is not after `since` ({s})")));
        }
        let limit = match self.limit.as_deref() {
            None => 100,
            Some(l) => match l.trim().parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(bad(
                        "limit",
                        format!("`{l}` is not a number from 1 to {MAX_LIMIT}"),
                    ));
                }
            },
        };
        let nonempty = |param: &'static str, v: &Option<String>| match v.as_deref() {
            Some("") => Err(bad(param, "is empty")),
            Some(s) if s.len() > 200 => Err(bad(param, "is longer than 200 bytes")),
            other => Ok(other.map(str::to_owned)),
        };
        Ok(FailureFilter {
            connector: nonempty("connector", &self.connector)?,
            stream: nonempty("stream", &self.stream)?,
            record_type,
            stage,
            code: nonempty("code", &self.code)?,
            status,
            since,
            until,
            text: nonempty("q", &self.q)?,
            ids: Vec::new(),
            after_id: nonempty("after", &self.after)?,
            limit,
        })
    }

    /// The query with blank parameters dropped: an HTML form sends every field, filled or not.
    pub fn without_blanks(mut self) -> FailureQuery {
        for v in [
            &mut self.connector,
            &mut self.stream,
            &mut self.record_type,
            &mut self.stage,
            &mut self.code,
            &mut self.status,
            &mut self.since,
            &mut self.until,
            &mut self.q,
            &mut self.after,
            &mut self.limit,
        ] {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                *v = None;
            }
        }
        self
    }

    /// The query as JSON, for the audit log (absent parameters left out).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// RFC 3339, a date (midnight in China Standard Time, UTC+8), or an age (`90s`, `30m`, `24h`,
/// `7d`) before `now`.
fn parse_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let cst = FixedOffset::east_opt(8 * 3600).ok_or("bad offset")?;
        return d
            .and_hms_opt(0, 0, 0)
            .and_then(|n| n.and_local_timezone(cst).single())
            .map(|dt| dt.with_timezone(&Utc))
            .ok_or_else(|| format!("`{t}` is not a valid date"));
    }
    let unit_at = t.len().saturating_sub(1);
    if let (Ok(n), Some(unit)) = (t[..unit_at].parse::<i64>(), t.get(unit_at..))
        && n >= 0
    {
        let age = match unit {
            "s" => Duration::try_seconds(n),
            "m" => Duration::try_minutes(n),
            "h" => Duration::try_hours(n),
            "d" => Duration::try_days(n),
            _ => None,
        };
        if let Some(age) = age {
            return Ok(now - age);
        }
    }
    Err(format!(
        "`{t}` is not an RFC 3339 time, a date (YYYY-MM-DD) or an age (30m, 24h, 7d)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn every_parameter_parses_into_the_store_filter() {
        let q = FailureQuery {
            connector: Some("credit".into()),
            record_type: Some("penalty".into()),
            stage: Some("normalize".into()),
            code: Some("USCC_CHECK_DIGIT".into()),
            status: Some("open, replayed,open".into()),
            since: Some("2026-11-23".into()),
            until: Some("1h".into()),
            q: Some("91620822".into()),
            limit: Some("50".into()),
            ..Default::default()
        };
        let f = q.parse(now()).unwrap();
        assert_eq!(f.record_type, Some(RecordType::Penalty));
        assert_eq!(f.stage, Some(Stage::Normalize));
        assert_eq!(f.status, vec![FailureStatus::Open, FailureStatus::Replayed]);
        assert_eq!(
            f.since.unwrap().to_rfc3339(),
            "2026-11-22T16:00:00+00:00",
            "a date is midnight in China"
        );
        assert_eq!(f.until.unwrap().to_rfc3339(), "2026-11-29T11:00:00+00:00");
        assert_eq!((f.limit, f.text.as_deref()), (50, Some("91620822")));
        assert_eq!(FailureQuery::default().parse(now()).unwrap().limit, 100);
    }

    #[test]
    fn a_bad_parameter_is_named_with_what_it_takes() {
        let cases: [(FailureQuery, &str); 7] = [
            (
                FailureQuery {
                    record_type: Some("fine".into()),
                    ..Default::default()
                },
                "type",
            ),
            (
                FailureQuery {
                    stage: Some("load".into()),
                    ..Default::default()
                },
                "stage",
            ),
            (
                FailureQuery {
                    status: Some("open,closed".into()),
                    ..Default::default()
                },
                "status",
            ),
            (
                FailureQuery {
                    since: Some("last week".into()),
                    ..Default::default()
                },
                "since",
            ),
            (
                FailureQuery {
                    since: Some("1h".into()),
                    until: Some("2h".into()),
                    ..Default::default()
                },
                "until",
            ),
            (
                FailureQuery {
                    limit: Some("5000".into()),
                    ..Default::default()
                },
                "limit",
            ),
            (
                FailureQuery {
                    code: Some(String::new()),
                    ..Default::default()
                },
                "code",
            ),
        ];
        for (q, param) in cases {
            let e = q.parse(now()).unwrap_err();
            assert_eq!(e.param, param, "{e}");
            assert!(e.to_string().starts_with(&format!("parameter `{param}`")));
        }
    }
}
