//! Loads the national schema (`schemas/v1`) and validates normalised records against it.
