//! Deadlines: feed → **deadlines**: legal time limits over a working-day calendar, evaluated per
//! record (publication within 7 working days of a penalty or licence decision, 双随机 results
//! within 20, 12345 replies by category, 查封/扣押 30 + 30 calendar days).
//!
//! Pure: [`WorkingCalendar`] says which dates are working days (the State Council's yearly holiday
//! arrangement, shipped as data in `calendar/`), [`Rules`] say which field of which record starts
//! which clock and what stops it, and [`Rules::evaluate`] turns a record into [`DeadlineState`]s.
//! Reading the calendar directory is the only I/O.

pub mod calendar;
pub mod rules;

pub use calendar::{CalendarError, Due, WorkingCalendar};
pub use rules::{DeadlineState, DeadlineStatus, Rule, Rules, RulesError, Unit, parse_record_date};
