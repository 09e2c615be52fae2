//! Pull, backfill: a re-pull of one time window of a stream (`xiezhi sync C --stream S --from T
//! --to T`), the path for "the upstream fixed their data".
//!
//! Upstreams often correct rows in place without touching their update stamp, so the live
//! incremental sync, already past them, never sees the fix. A window re-pull walks the stream
//! again from the window's start (or from the stream's start when its API has no time filter),
//! keeps the records whose update stamp lies in the window, and pipes them through the usual
//! normalise → route → store path. It keeps its own checkpoint, so the live one never moves and
//! an interrupted re-pull resumes where it stopped.
//!
//! Times are China Standard Time (UTC+8), as the upstreams write them; an instant with an offset
//! (`2025-03-01T00:00:00Z`) is converted.

use chrono::{Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use serde::Deserialize;

/// China Standard Time, the upstreams' clock.
fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// How a stream writes its update stamp (the stream's `updated_format`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdatedFormat {
    /// Milliseconds since the Unix epoch.
    EpochMillis,
    /// Seconds since the Unix epoch.
    EpochSeconds,
    /// A `strftime` pattern of a local (UTC+8) time, e.g. `%Y-%m-%d %H:%M:%S`.
    Pattern(String),
}

impl<'de> Deserialize<'de> for UpdatedFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        UpdatedFormat::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl UpdatedFormat {
    /// Reads `epoch_ms`, `epoch_s` or a `strftime` pattern that can write and read back a time
    /// to the second.
    pub fn parse(s: &str) -> Result<UpdatedFormat, String> {
        match s {
            "epoch_ms" => Ok(UpdatedFormat::EpochMillis),
            "epoch_s" => Ok(UpdatedFormat::EpochSeconds),
            p => {
                let probe = NaiveDate::from_ymd_opt(2024, 2, 29)
                    .and_then(|d| d.and_hms_opt(13, 14, 15))
                    .ok_or("probe time")?;
                let mut text = String::new();
                use std::fmt::Write;
                write!(text, "{}", probe.format(p))
                    .map_err(|_| format!("`{p}` is not a valid strftime pattern"))?;
                match NaiveDateTime::parse_from_str(&text, p) {
                    Ok(t) if t == probe => Ok(UpdatedFormat::Pattern(p.to_owned())),
                    _ => Err(format!(
                        "`{p}` must hold a date and a time to the second (e.g. `%Y-%m-%d %H:%M:%S`), or be `epoch_ms` / `epoch_s`"
                    )),
                }
            }
        }
    }

    /// The local (UTC+8) time of an upstream stamp; `None` when it does not read.
    pub fn read(&self, v: &str) -> Option<NaiveDateTime> {
        let v = v.trim();
        let from_epoch = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.with_timezone(&cst()).naive_local())
        };
        match self {
            UpdatedFormat::EpochMillis => from_epoch(v.parse().ok()?),
            UpdatedFormat::EpochSeconds => from_epoch(v.parse::<i64>().ok()?.checked_mul(1000)?),
            UpdatedFormat::Pattern(p) => NaiveDateTime::parse_from_str(v, p).ok(),
        }
    }

    /// Writes a local time the way the upstream writes its stamps (for its `since` filter).
    pub fn write(&self, t: NaiveDateTime) -> String {
        let ms = || {
            cst()
                .from_local_datetime(&t)
                .single()
                .map_or(0, |t| t.timestamp_millis())
        };
        match self {
            UpdatedFormat::EpochMillis => ms().to_string(),
            UpdatedFormat::EpochSeconds => (ms() / 1000).to_string(),
            UpdatedFormat::Pattern(p) => t.format(p).to_string(),
        }
    }

    /// The smallest step the format can tell apart: the `since` filters are exclusive, so a
    /// window starting at `t` asks for "after `t` minus one step".
    pub fn step(&self) -> Duration {
        match self {
            UpdatedFormat::EpochMillis => Duration::milliseconds(1),
            _ => Duration::seconds(1),
        }
    }
}

/// A half-open window `[from, to)` of upstream update times, local (UTC+8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub from: NaiveDateTime,
    pub to: NaiveDateTime,
}

impl Window {
    /// Reads the `--from` / `--to` arguments: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS]` (or with a
    /// `T`), or RFC 3339 with an offset. A bare date as `--to` means "to the end of that day";
    /// `to` defaults to `now`.
    pub fn parse(from: &str, to: Option<&str>, now: NaiveDateTime) -> Result<Window, String> {
        let from_t = parse_time(from, false).map_err(|e| format!("--from: {e}"))?;
        let to_t = match to {
            Some(t) => parse_time(t, true).map_err(|e| format!("--to: {e}"))?,
            None => now,
        };
        if from_t >= to_t {
            return Err(format!(
                "the window is empty: --from {from_t} is not before --to {to_t}"
            ));
        }
        Ok(Window {
            from: from_t,
            to: to_t,
        })
    }

    /// Whether a local time lies in the window.
    pub fn contains(&self, t: NaiveDateTime) -> bool {
        self.from <= t && t < self.to
    }

    /// The window as text, e.g. `2025-03-01T00:00:00..2025-03-02T00:00:00`; it names the
    /// re-pull's own checkpoint.
    pub fn label(&self) -> String {
        format!(
            "{}..{}",
            self.from.format("%Y-%m-%dT%H:%M:%S%.3f"),
            self.to.format("%Y-%m-%dT%H:%M:%S%.3f")
        )
    }

    /// The current local (UTC+8) time.
    pub fn now() -> NaiveDateTime {
        chrono::Utc::now().with_timezone(&cst()).naive_local()
    }
}

fn parse_time(s: &str, end_of_day: bool) -> Result<NaiveDateTime, String> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&cst()).naive_local());
    }
    for p in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, p) {
            return Ok(t);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let d = if end_of_day {
            d.succ_opt().unwrap_or(d)
        } else {
            d
        };
        return d
            .and_hms_opt(0, 0, 0)
            .ok_or_else(|| format!("`{s}` is out of range"));
    }
    Err(format!(
        "`{s}` is not a time: use YYYY-MM-DD, YYYY-MM-DD HH:MM[:SS] (UTC+8) or RFC 3339"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn formats_read_and_write_the_upstreams_stamps() {
        let dash = UpdatedFormat::parse("%Y-%m-%d %H:%M:%S").unwrap();
        let compact = UpdatedFormat::parse("%Y%m%d%H%M%S").unwrap();
        let ms = UpdatedFormat::parse("epoch_ms").unwrap();
        let s = UpdatedFormat::parse("epoch_s").unwrap();
        let at = t("2025-03-01 08:00:00");
        assert_eq!(dash.write(at), "2025-03-01 08:00:00");
        assert_eq!(compact.write(at), "20250301080000");
        // 08:00 in Beijing is midnight UTC.
        assert_eq!(ms.write(at), "1740787200000");
        assert_eq!(s.write(at), "1740787200");
        for f in [&dash, &compact, &ms, &s] {
            assert_eq!(f.read(&f.write(at)), Some(at), "{f:?}");
        }
        assert_eq!(
            ms.read("1740787200999"),
            Some(at + Duration::milliseconds(999))
        );
        assert_eq!(dash.read("not a time"), None);
        assert_eq!(ms.step(), Duration::milliseconds(1));
        assert_eq!(dash.step(), Duration::seconds(1));
    }

    #[test]
    fn a_pattern_without_a_full_time_is_refused() {
        for bad in ["%Y-%m-%d", "%H:%M", "nonsense"] {
            let e = UpdatedFormat::parse(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn windows_read_dates_times_and_instants() {
        let now = t("2026-01-01 00:00:00");
        let w = Window::parse("2025-03-01", Some("2025-03-31"), now).unwrap();
        assert_eq!(w.from, t("2025-03-01 00:00:00"));
        // A bare `--to` date includes that day.
        assert_eq!(w.to, t("2025-04-01 00:00:00"));
        assert!(w.contains(t("2025-03-31 23:59:59")));
        assert!(!w.contains(t("2025-04-01 00:00:00")));
        assert!(!w.contains(t("2025-02-28 23:59:59")));

        let w = Window::parse("2025-03-01T00:00:00Z", Some("2025-03-01 09:30"), now).unwrap();
        assert_eq!(w.from, t("2025-03-01 08:00:00"));
        assert_eq!(w.to, t("2025-03-01 09:30:00"));
        assert_eq!(
            w.label(),
            "2025-03-01T08:00:00.000..2025-03-01T09:30:00.000"
        );

        let w = Window::parse("2025-12-31 23:00:00", None, now).unwrap();
        assert_eq!(w.to, now);
    }

    #[test]
    fn bad_windows_name_the_argument() {
        let now = t("2026-01-01 00:00:00");
        let e = Window::parse("yesterday", None, now).unwrap_err();
        assert!(e.starts_with("--from:") && e.contains("yesterday"), "{e}");
        let e = Window::parse("2025-01-01", Some("2025-13-01"), now).unwrap_err();
        assert!(e.starts_with("--to:"), "{e}");
        let e = Window::parse("2025-02-01", Some("2025-01-01"), now).unwrap_err();
        assert!(e.contains("empty"), "{e}");
    }
}
