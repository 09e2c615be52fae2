//! The Chinese working-day calendar: weekends plus the State Council's yearly holiday arrangement
//! (国务院办公厅关于部分节假日安排的通知), which moves days off and adds adjusted working weekend
//! days (调休上班).
//!
//! The arrangement is data, one `<year>.toml` per year: the repository ships 2023–2026 in
//! `calendar/` (compiled in, see [`WorkingCalendar::embedded`]) and an operator adds the next
//! year's file each November when the notice appears ([`WorkingCalendar::load_dir`]). Dates in a
//! year without a file fall back to "Monday–Friday", and every result that relied on that guess is
//! flagged [`Due::provisional`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// The shipped calendar files, compiled in so the binary works without a data directory.
const EMBEDDED: [(&str, i32, &str); 4] = [
    (
        "calendar/2023.toml",
        2023,
        include_str!("../../calendar/2023.toml"),
    ),
    (
        "calendar/2024.toml",
        2024,
        include_str!("../../calendar/2024.toml"),
    ),
    (
        "calendar/2025.toml",
        2025,
        include_str!("../../calendar/2025.toml"),
    ),
    (
        "calendar/2026.toml",
        2026,
        include_str!("../../calendar/2026.toml"),
    ),
];

/// A due date and whether it can still move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Due {
    /// The last day on which the obligation is still met on time.
    pub date: NaiveDate,
    /// `true` when the count walked through a year the calendar has no arrangement for, so that
    /// year's holidays were not known and only weekends were skipped. The date will change once
    /// the year's file is added if a holiday or an adjusted working day falls in the walked span.
    pub provisional: bool,
}

/// Why a calendar file was rejected. Every variant names the file, and where a value is at fault,
/// the value.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("cannot list calendar directory {dir}: {source}")]
    ReadDir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("calendar directory {dir} holds no *.toml file")]
    NoFiles { dir: String },
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: the file name must be the year it describes, e.g. 2027.toml")]
    FileName { file: String },
    #[error("{file}: {reason}")]
    Syntax { file: String, reason: String },
    #[error("{file}: says `year = {found}` but holds the arrangement for {expected}")]
    YearMismatch {
        file: String,
        expected: i32,
        found: i32,
    },
    #[error("{file}: bad date {value:?} in `{list}`: expected \"YYYY-MM-DD\"")]
    BadDate {
        file: String,
        list: &'static str,
        value: String,
    },
    #[error("{file}: {date} in `{list}` is outside {year} and the years next to it")]
    OutsideYear {
        file: String,
        list: &'static str,
        date: NaiveDate,
        year: i32,
    },
    #[error(
        "{file}: {date} in `work` is a {weekday}; `work` lists adjusted working weekend days only"
    )]
    WorkNotWeekend {
        file: String,
        date: NaiveDate,
        weekday: Weekday,
    },
    #[error("{file}: year {year} is already loaded from {first}")]
    DuplicateYear {
        file: String,
        year: i32,
        first: String,
    },
    #[error("{file}: {date} is both a day off and an adjusted working day ({other} lists it too)")]
    OffAndWork {
        file: String,
        date: NaiveDate,
        other: String,
    },
}

/// One `<year>.toml` file as written by an operator.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    year: i32,
    off: Vec<String>,
    #[serde(default)]
    work: Vec<String>,
}

/// Which dates are working days: Monday–Friday unless the arrangement gives them off, plus the
/// adjusted working weekend days.
///
/// ```
/// use chrono::NaiveDate;
/// use xiezhi::deadlines::WorkingCalendar;
///
/// let cal = WorkingCalendar::embedded();
/// let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
/// assert!(!cal.is_working_day(d(2025, 10, 1))); // National Day
/// assert!(cal.is_working_day(d(2025, 9, 28))); // a Sunday worked in exchange
/// // A penalty decided on Friday 2025-09-26 must be published by Monday 2025-10-13.
/// assert_eq!(cal.add_working_days(d(2025, 9, 26), 7).date, d(2025, 10, 13));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingCalendar {
    years: BTreeSet<i32>,
    off: BTreeSet<NaiveDate>,
    work: BTreeSet<NaiveDate>,
}

impl WorkingCalendar {
    /// The arrangements shipped with this build (2023–2026, from `calendar/`).
    pub fn embedded() -> Self {
        Self::from_sources(
            EMBEDDED
                .iter()
                .map(|&(file, year, text)| (file.to_owned(), year, text)),
        )
        .expect("the embedded calendar files are checked by the tests of this module")
    }

    /// Loads every `<year>.toml` in `dir` (other files are ignored). Use this instead of
    /// [`embedded`](Self::embedded) to pick up a year the build does not ship: copy `calendar/`
    /// and add the new year's file.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self, CalendarError> {
        let dir = dir.as_ref();
        let shown = dir.display().to_string();
        let entries = std::fs::read_dir(dir).map_err(|source| CalendarError::ReadDir {
            dir: shown.clone(),
            source,
        })?;
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|source| CalendarError::ReadDir {
                    dir: shown.clone(),
                    source,
                })?
                .path();
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                paths.push(path);
            }
        }
        if paths.is_empty() {
            return Err(CalendarError::NoFiles { dir: shown });
        }
        // Sorted so that, of two faulty files, the same one is reported on every run.
        paths.sort();
        let mut sources = Vec::with_capacity(paths.len());
        for path in paths {
            let file = path.display().to_string();
            let Some(year) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
            else {
                return Err(CalendarError::FileName { file });
            };
            let text = std::fs::read_to_string(&path).map_err(|source| CalendarError::Read {
                file: file.clone(),
                source,
            })?;
            sources.push((file, year, text));
        }
        Self::from_sources(sources)
    }

    /// Builds a calendar from `(year, file text)` pairs, each text in the `<year>.toml` format.
    /// Errors name the file as `<year>.toml`.
    pub fn from_years<S: AsRef<str>>(
        files: impl IntoIterator<Item = (i32, S)>,
    ) -> Result<Self, CalendarError> {
        Self::from_sources(
            files
                .into_iter()
                .map(|(year, text)| (format!("{year}.toml"), year, text)),
        )
    }

    /// Shared by every constructor: `(file name for errors, year the file must describe, text)`.
    fn from_sources<S: AsRef<str>>(
        sources: impl IntoIterator<Item = (String, i32, S)>,
    ) -> Result<Self, CalendarError> {
        let mut loaded: BTreeMap<i32, String> = BTreeMap::new();
        // Date → the file that listed it, to name both files when they contradict each other.
        let mut off: BTreeMap<NaiveDate, String> = BTreeMap::new();
        let mut work: BTreeMap<NaiveDate, String> = BTreeMap::new();
        for (file, year, text) in sources {
            let parsed: YearFile =
                toml::from_str(text.as_ref()).map_err(|e| CalendarError::Syntax {
                    file: file.clone(),
                    reason: e.to_string().trim_end().to_owned(),
                })?;
            if parsed.year != year {
                return Err(CalendarError::YearMismatch {
                    file,
                    expected: year,
                    found: parsed.year,
                });
            }
            if let Some(first) = loaded.get(&year) {
                return Err(CalendarError::DuplicateYear {
                    file,
                    year,
                    first: first.clone(),
                });
            }
            for value in &parsed.off {
                let date = parse_listed(&file, year, "off", value)?;
                if let Some(other) = work.get(&date) {
                    return Err(CalendarError::OffAndWork {
                        file,
                        date,
                        other: other.clone(),
                    });
                }
                off.entry(date).or_insert_with(|| file.clone());
            }
            for value in &parsed.work {
                let date = parse_listed(&file, year, "work", value)?;
                if matches!(
                    date.weekday(),
                    Weekday::Mon | Weekday::Tue | Weekday::Wed | Weekday::Thu | Weekday::Fri
                ) {
                    return Err(CalendarError::WorkNotWeekend {
                        file,
                        date,
                        weekday: date.weekday(),
                    });
                }
                if let Some(other) = off.get(&date) {
                    return Err(CalendarError::OffAndWork {
                        file,
                        date,
                        other: other.clone(),
                    });
                }
                work.entry(date).or_insert_with(|| file.clone());
            }
            loaded.insert(year, file);
        }
        Ok(Self {
            years: loaded.into_keys().collect(),
            off: off.into_keys().collect(),
            work: work.into_keys().collect(),
        })
    }

    /// Whether `year`'s arrangement is loaded. Results that walk through a year that is not are
    /// provisional.
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains(&year)
    }

    /// The years whose arrangement is loaded, ascending.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.iter().copied()
    }

    /// Whether `date` is a working day: an adjusted working day, or a Monday–Friday that is not a
    /// day off. In a year without an arrangement that is simply Monday–Friday.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if self.work.contains(&date) {
            return true;
        }
        !self.off.contains(&date) && !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The `n`-th working day after `start`. `start` itself is day 0 and never counts, so "within
    /// 7 working days of the decision" is `add_working_days(decision_date, 7)`, and `n = 0` gives
    /// `start`. The result is [provisional](Due::provisional) if any day after `start` up to the
    /// result lies in a year without an arrangement. Saturates at the last date chrono can
    /// represent (flagged provisional) instead of panicking on absurd `n`.
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> Due {
        let mut date = start;
        let mut provisional = false;
        let mut left = n;
        while left > 0 {
            let Some(next) = date.succ_opt() else {
                return Due {
                    date,
                    provisional: true,
                };
            };
            date = next;
            provisional |= !self.covers(date.year());
            if self.is_working_day(date) {
                left -= 1;
            }
        }
        Due { date, provisional }
    }

    /// `start` plus `n` calendar days, for limits counted in natural days (e.g. 查封/扣押 30 days).
    /// Holidays do not matter, so the result is never provisional. Saturates at the last date
    /// chrono can represent.
    pub fn add_calendar_days(&self, start: NaiveDate, n: u32) -> Due {
        Due {
            date: start
                .checked_add_days(Days::new(u64::from(n)))
                .unwrap_or(NaiveDate::MAX),
            provisional: false,
        }
    }

    /// The number of working days in `(from, to]`: how many working days late something done on
    /// `to` is when it was due on `from`. Negative (the same count, negated) when `to < from`.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        if to < from {
            return -self.working_days_between(to, from);
        }
        let count = from
            .iter_days()
            .skip(1)
            .take_while(|d| *d <= to)
            .filter(|d| self.is_working_day(*d))
            .count();
        i64::try_from(count).unwrap_or(i64::MAX)
    }
}

/// Parses one entry of `off`/`work` and checks it belongs to the file's year. A neighbouring year
/// is accepted because a notice's New Year block can start in late December of the year before
/// (the 2023 notice gives 2022-12-31 off; the 2012 notice made Saturday 2011-12-31 a working day).
fn parse_listed(
    file: &str,
    year: i32,
    list: &'static str,
    value: &str,
) -> Result<NaiveDate, CalendarError> {
    let date =
        NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| CalendarError::BadDate {
            file: file.to_owned(),
            list,
            value: value.to_owned(),
        })?;
    if (date.year() - year).abs() > 1 {
        return Err(CalendarError::OutsideYear {
            file: file.to_owned(),
            list,
            date,
            year,
        });
    }
    Ok(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// A made-up year with a holiday week (Wed 2030-05-01 .. Tue 2030-05-07) and one adjusted
    /// working Saturday (2030-05-11), so the tests do not depend on the official data.
    const CRAFTED_2030: &str = r#"
        year = 2030
        off = ["2030-05-01", "2030-05-02", "2030-05-03", "2030-05-04", "2030-05-05", "2030-05-06", "2030-05-07"]
        work = ["2030-05-11"]
    "#;

    fn crafted() -> WorkingCalendar {
        WorkingCalendar::from_years([(2030, CRAFTED_2030)]).unwrap()
    }

    #[test]
    fn crafted_calendar_due_dates() {
        let cal = crafted();
        // (start, n, due). Weekdays: 04-29 Mon, 04-30 Tue, 05-08 Wed, 05-10 Fri, 05-11 Sat,
        // 05-13 Mon.
        let cases = [
            // n = 0: the start date itself.
            (d(2030, 4, 29), 0, d(2030, 4, 29)),
            // An ordinary weekday.
            (d(2030, 4, 29), 1, d(2030, 4, 30)),
            // 04-30 is day 1; the holiday week 05-01..05-07 does not count; 05-08 is day 2.
            (d(2030, 4, 29), 2, d(2030, 5, 8)),
            // 05-08 (1), 05-09 (2), 05-10 Fri (3), 05-11 adjusted Sat (4), Sun 05-12 no,
            // 05-13 Mon (5).
            (d(2030, 4, 30), 5, d(2030, 5, 13)),
            // Starting inside the holiday: the first working day after it.
            (d(2030, 5, 3), 1, d(2030, 5, 8)),
            // The day after Friday 05-10 is the adjusted working Saturday.
            (d(2030, 5, 10), 1, d(2030, 5, 11)),
            // Saturday 05-11 (1), then Sunday is off: Monday 05-13 (2).
            (d(2030, 5, 10), 2, d(2030, 5, 13)),
            // An ordinary weekend in the same year: Fri 05-17 → Mon 05-20.
            (d(2030, 5, 17), 1, d(2030, 5, 20)),
        ];
        for (start, n, due) in cases {
            assert_eq!(
                cal.add_working_days(start, n),
                Due {
                    date: due,
                    provisional: false
                },
                "{start} + {n} WD"
            );
        }
        assert!(!cal.is_working_day(d(2030, 5, 6))); // a Monday inside the holiday
        assert!(cal.is_working_day(d(2030, 5, 11))); // the adjusted Saturday
        assert!(!cal.is_working_day(d(2030, 5, 12))); // the Sunday after it
    }

    #[test]
    fn official_2025_national_day() {
        let cal = WorkingCalendar::embedded();
        // Decided Friday 2025-09-26, 7 working days:
        //   09-27 Sat   off
        //   09-28 Sun   adjusted working day  → 1
        //   09-29 Mon                         → 2
        //   09-30 Tue                         → 3
        //   10-01 Wed .. 10-08 Wed  National Day + Mid-Autumn, off
        //   10-09 Thu                         → 4
        //   10-10 Fri                         → 5
        //   10-11 Sat   adjusted working day  → 6
        //   10-12 Sun   off
        //   10-13 Mon                         → 7   due
        let cases = [
            (d(2025, 9, 26), 7, d(2025, 10, 13)),
            (d(2025, 9, 26), 1, d(2025, 9, 28)),
            (d(2025, 9, 26), 4, d(2025, 10, 9)),
            (d(2025, 9, 26), 6, d(2025, 10, 11)),
            // Decided on the first holiday day: 10-09 (1), 10-10 (2), 10-11 (3).
            (d(2025, 10, 1), 3, d(2025, 10, 11)),
        ];
        for (start, n, due) in cases {
            assert_eq!(cal.add_working_days(start, n).date, due, "{start} + {n} WD");
            assert!(!cal.add_working_days(start, n).provisional);
        }
    }

    #[test]
    fn official_2026_spring_festival() {
        let cal = WorkingCalendar::embedded();
        // Saturday 02-14 and Saturday 02-28 are worked; 02-15 (Sun) .. 02-23 (Mon) are off.
        let cases = [
            // Decided Thursday 02-12, 7 WD: 02-13 Fri (1), 02-14 Sat (2), holiday, 02-24 Tue (3),
            // 02-25 (4), 02-26 (5), 02-27 Fri (6), 02-28 Sat (7): due on a Saturday.
            (d(2026, 2, 12), 7, d(2026, 2, 28)),
            // Decided Friday 02-13, 3 WD: 02-14 Sat (1), 02-24 (2), 02-25 (3).
            (d(2026, 2, 13), 3, d(2026, 2, 25)),
            // Decided on the adjusted Saturday itself, 1 WD: the whole holiday is skipped.
            (d(2026, 2, 14), 1, d(2026, 2, 24)),
            // Decided Friday 02-27, 2 WD: 02-28 Sat (1), Sunday off, 03-02 Mon (2).
            (d(2026, 2, 27), 2, d(2026, 3, 2)),
        ];
        for (start, n, due) in cases {
            assert_eq!(
                cal.add_working_days(start, n),
                Due {
                    date: due,
                    provisional: false
                },
                "{start} + {n} WD"
            );
        }
    }

    #[test]
    fn a_year_without_data_is_weekends_only_and_provisional() {
        let cal = WorkingCalendar::embedded();
        assert!(cal.covers(2026));
        assert!(!cal.covers(2027));
        // Decided Monday 2026-12-28, 7 WD: 12-29 (1), 12-30 (2), 12-31 Thu (3), then 2027 which
        // has no arrangement yet: Friday 2027-01-01 counts as a working day although it will
        // surely be New Year's Day off (4), weekend, 01-04 Mon (5), 01-05 (6), 01-06 Wed (7).
        assert_eq!(
            cal.add_working_days(d(2026, 12, 28), 7),
            Due {
                date: d(2027, 1, 6),
                provisional: true
            }
        );
        // Ending on 12-31 stays inside 2026: not provisional.
        assert_eq!(
            cal.add_working_days(d(2026, 12, 28), 3),
            Due {
                date: d(2026, 12, 31),
                provisional: false
            }
        );
        // Starting in 2027: weekends only. Fri 2027-01-08 + 1 → Mon 2027-01-11.
        assert_eq!(
            cal.add_working_days(d(2027, 1, 8), 1),
            Due {
                date: d(2027, 1, 11),
                provisional: true
            }
        );
        // Calendar days never depend on holidays.
        assert_eq!(
            cal.add_calendar_days(d(2026, 12, 28), 30),
            Due {
                date: d(2027, 1, 27),
                provisional: false
            }
        );
    }

    #[test]
    fn calendar_days_and_working_days_between() {
        let cal = WorkingCalendar::embedded();
        assert_eq!(
            cal.add_calendar_days(d(2025, 2, 20), 30).date,
            d(2025, 3, 22)
        );
        assert_eq!(
            cal.add_calendar_days(d(2025, 2, 20), 60).date,
            d(2025, 4, 21)
        );
        assert_eq!(
            cal.add_calendar_days(d(2025, 2, 20), 0).date,
            d(2025, 2, 20)
        );
        let cases = [
            // (from, to, working days in (from, to])
            (d(2025, 10, 13), d(2025, 10, 13), 0),
            (d(2025, 10, 13), d(2025, 10, 14), 1),
            // Tue..Fri plus Mon 10-20.
            (d(2025, 10, 13), d(2025, 10, 20), 5),
            // 09-28 (adjusted Sun), 09-29, 09-30, 10-09, 10-10, 10-11 (adjusted Sat), 10-13.
            (d(2025, 9, 26), d(2025, 10, 13), 7),
            (d(2025, 10, 13), d(2025, 9, 26), -7),
            // Due Friday, done on Saturday: late, but by no working day.
            (d(2025, 10, 17), d(2025, 10, 18), 0),
        ];
        for (from, to, n) in cases {
            assert_eq!(cal.working_days_between(from, to), n, "({from}, {to}]");
        }
    }

    #[test]
    fn embedded_years() {
        let cal = WorkingCalendar::embedded();
        assert_eq!(
            cal.years().collect::<Vec<_>>(),
            vec![2023, 2024, 2025, 2026]
        );
        // 2022-12-31 is listed in the 2023 file and is a day off (a Saturday anyway) even though
        // 2022 itself is not covered.
        assert!(!cal.covers(2022));
        assert!(!cal.is_working_day(d(2022, 12, 31)));
        assert!(!cal.is_working_day(d(2023, 1, 2))); // Monday, New Year block
        assert!(cal.is_working_day(d(2023, 1, 28))); // Saturday, adjusted
    }

    #[test]
    fn load_dir_reads_the_shipped_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("calendar");
        assert_eq!(
            WorkingCalendar::load_dir(&dir).unwrap(),
            WorkingCalendar::embedded()
        );
    }

    #[test]
    fn load_dir_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("xiezhi-calendar-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("README.txt"), "not a calendar").unwrap();
        std::fs::write(dir.join("2030.toml"), CRAFTED_2030).unwrap();
        std::fs::write(
            dir.join("2031.toml"),
            "year = 2031\noff = [\"2031-02-30\"]\n",
        )
        .unwrap();
        let err = WorkingCalendar::load_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("2031.toml"), "{err}");
        assert!(err.contains("\"2031-02-30\""), "{err}");

        std::fs::remove_file(dir.join("2031.toml")).unwrap();
        std::fs::write(dir.join("next.toml"), CRAFTED_2030).unwrap();
        let err = WorkingCalendar::load_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("next.toml") && err.contains("must be the year"),
            "{err}"
        );

        std::fs::remove_file(dir.join("next.toml")).unwrap();
        assert_eq!(WorkingCalendar::load_dir(&dir).unwrap(), crafted());
        std::fs::remove_dir_all(&dir).unwrap();

        let missing = WorkingCalendar::load_dir(dir.join("nowhere"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nowhere"), "{missing}");
    }

    #[test]
    fn load_errors_name_the_file_and_the_value() {
        let ok_2031 = "year = 2031\noff = [\"2031-01-01\"]\n";
        // (files, text the error must contain)
        type Case = (Vec<(i32, &'static str)>, &'static [&'static str]);
        let cases: [Case; 9] = [
            (
                vec![(2031, "year = 2031\noff = [\"2031-13-01\"]\n")],
                &["2031.toml", "\"2031-13-01\"", "`off`"],
            ),
            (
                vec![(2031, "year = 2031\noff = []\nwork = [\"31.1.2031\"]\n")],
                &["2031.toml", "\"31.1.2031\"", "`work`"],
            ),
            // Two years away: not a New Year block spilling over.
            (
                vec![(2031, "year = 2031\noff = [\"2029-12-31\"]\n")],
                &["2031.toml", "2029-12-31", "outside 2031"],
            ),
            (
                vec![(
                    2031,
                    "year = 2031\noff = [\"2031-01-04\"]\nwork = [\"2031-01-04\"]\n",
                )],
                &["2031.toml", "2031-01-04", "both"],
            ),
            // Across files: the 2031 file gives Saturday 2030-12-28 off, the 2030 file works it.
            (
                vec![
                    (2030, "year = 2030\noff = []\nwork = [\"2030-12-28\"]\n"),
                    (2031, "year = 2031\noff = [\"2030-12-28\"]\n"),
                ],
                &["2031.toml", "2030-12-28", "2030.toml"],
            ),
            (
                vec![(2031, ok_2031), (2031, ok_2031)],
                &["2031.toml", "year 2031 is already loaded"],
            ),
            (
                vec![(2031, "year = 2032\noff = []\n")],
                &["2031.toml", "year = 2032"],
            ),
            // Wednesday: adjusted working days are always weekend days, so this is a typo.
            (
                vec![(2031, "year = 2031\noff = []\nwork = [\"2031-01-01\"]\n")],
                &["2031.toml", "2031-01-01", "Wed"],
            ),
            // A misspelt key would otherwise silently drop the year's holidays.
            (
                vec![(2031, "year = 2031\nof = [\"2031-01-01\"]\n")],
                &["2031.toml", "of"],
            ),
        ];
        for (files, needles) in cases {
            let err = WorkingCalendar::from_years(files.clone())
                .unwrap_err()
                .to_string();
            for needle in needles {
                assert!(err.contains(needle), "{files:?}: {err:?} lacks {needle:?}");
            }
        }
        // The adjacent year is fine, in either direction.
        let cal = WorkingCalendar::from_years([(
            2031,
            "year = 2031\noff = [\"2030-12-31\", \"2032-01-01\"]\n",
        )])
        .unwrap();
        assert!(!cal.is_working_day(d(2030, 12, 31)));
    }

    /// The shipped files must say exactly what the shared reference `holidays.toml` says.
    #[test]
    fn data_files_equal_the_reference_table() {
        let reference =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/domain/holidays.toml");
        let Ok(text) = std::fs::read_to_string(&reference) else {
            println!(
                "note: {} is absent (repository-only checkout); comparison skipped",
                reference.display()
            );
            return;
        };
        let table: toml::Table = toml::from_str(&text).unwrap();
        let dates = |v: &toml::Value| -> BTreeSet<NaiveDate> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| NaiveDate::parse_from_str(s.as_str().unwrap(), "%Y-%m-%d").unwrap())
                .collect()
        };
        let reference_years: BTreeSet<i32> = table.keys().map(|k| k.parse().unwrap()).collect();
        let shipped_years: BTreeSet<i32> = EMBEDDED.iter().map(|&(_, y, _)| y).collect();
        assert_eq!(reference_years, shipped_years);
        for (file, year, text) in EMBEDDED {
            let shipped: toml::Table = toml::from_str(text).unwrap();
            let expected = &table[&year.to_string()];
            assert_eq!(
                shipped["year"].as_integer(),
                Some(i64::from(year)),
                "{file}"
            );
            for list in ["off", "work"] {
                assert_eq!(
                    dates(&shipped[list]),
                    dates(&expected[list]),
                    "{file}: `{list}`"
                );
            }
        }
    }
}
