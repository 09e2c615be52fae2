//! The one error type of the identifier parsers, with a stable code for the failure store.

/// Why a national identifier was refused.
///
/// `code` is one of the stable codes of `docs/national-schema.md` (`USCC_CHECK_DIGIT`,
/// `RESIDENT_ID_BIRTH_DATE`, …); `message` says which value failed and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IdError {
    pub code: &'static str,
    pub message: String,
}

impl IdError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> IdError {
        IdError {
            code,
            message: message.into(),
        }
    }
}
