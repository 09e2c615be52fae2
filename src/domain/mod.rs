//! National identifiers as newtypes that parse instead of validate.
//!
//! Used by the **normalise** stage: the schema's custom formats (`uscc`, `resident-id`, …) and the
//! cross-field rules call these parsers, so a value that got past normalisation is known to carry a
//! correct check character. Each parser returns an [`IdError`] with a stable code that ends up in
//! the failure store, where operators group by it.

mod check_list;
mod division;
mod error;
mod org_code;
mod resident_id;
mod uscc;

pub use check_list::CheckListCode;
pub use division::{DivisionCode, TownshipCode};
pub use error::IdError;
pub use org_code::OrgCode;
pub use resident_id::ResidentId;
pub use uscc::{KNOWN_BAD_REAL_USCCS, USCC_PLACEHOLDER, Uscc};

use chrono::{NaiveDate, TimeDelta, Utc};

/// Today's date in China Standard Time (UTC+8, no daylight saving): the decisions we check are
/// dated in local time, so a decision made at 07:00 Beijing time must not look "in the future"
/// to a server running on UTC.
pub fn today_cn() -> NaiveDate {
    (Utc::now().naive_utc() + TimeDelta::hours(8)).date()
}
