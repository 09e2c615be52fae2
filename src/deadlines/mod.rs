//! Deadlines: feed → **deadlines**: legal time limits over a working-day calendar, evaluated per
//! record (publication within 7 working days of a penalty or licence decision, 双随机 results
//! within 20, 12345 replies by category, 查封/扣押 30 + 30 calendar days).
//!
//! Pure: [`WorkingCalendar`] says which dates are working days (the State Council's yearly holiday
//! arrangement, shipped as data in `calendar/`), [`Rules`] say which field of which record starts
//! which clock and what stops it, and [`Rules::evaluate`] turns a record into [`DeadlineState`]s.
//! Reading the calendar directory is the only I/O.

pub mod alerts;
pub mod calendar;
pub mod report;
pub mod rules;

pub use calendar::{CalendarError, Due, WorkingCalendar};
pub use rules::{DeadlineState, DeadlineStatus, Rule, Rules, RulesError, Unit, parse_record_date};

/// Where the calendar and the rules come from (`[deadlines]` in the configuration file).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadlinesConfig {
    /// Directory of working-day calendar files, one per year (`2027.toml`). Default `calendar`;
    /// when it does not exist the years built into the binary are used. Add next year's file
    /// each November, when the State Council publishes its holiday arrangement.
    pub calendar_dir: std::path::PathBuf,
    /// A TOML file overriding the deadline rules key by key. Unset: the national defaults.
    pub rules_file: Option<std::path::PathBuf>,
    /// Seconds between deadline checks in `xiezhi run` (alerts for deadlines newly due soon or
    /// missed). Default 300.
    pub check_interval_secs: u64,
}

impl Default for DeadlinesConfig {
    fn default() -> Self {
        DeadlinesConfig {
            calendar_dir: "calendar".into(),
            rules_file: None,
            check_interval_secs: 300,
        }
    }
}

impl DeadlinesConfig {
    /// Loads the calendar and the rules; a bad file stops the service at start, named.
    pub fn load(&self) -> anyhow::Result<(WorkingCalendar, Rules)> {
        use anyhow::Context;
        let calendar = if self.calendar_dir.is_dir() {
            WorkingCalendar::load_dir(&self.calendar_dir).with_context(|| {
                format!("loading the calendar in {}", self.calendar_dir.display())
            })?
        } else {
            WorkingCalendar::embedded()
        };
        let rules = match &self.rules_file {
            None => Rules::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading the deadline rules {}", p.display()))?;
                Rules::from_toml_str(&text)
                    .with_context(|| format!("in the deadline rules {}", p.display()))?
            }
        };
        Ok((calendar, rules))
    }
}
