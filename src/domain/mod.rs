//! National identifiers as newtypes that parse instead of validate.
