//! Simulators of the five upstream systems.
