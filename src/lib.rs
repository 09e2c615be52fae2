//! xiezhi (獬豸): data exchange for administrative law-enforcement supervision.
//!
//! Records flow one way: **pull** (connector workers fetch from the five upstream systems) →
//! **normalise** (map into the national schema and validate) → **route** (RabbitMQ or the
//! in-process bus) → **store** (PostgreSQL or SQLite) → **feed** (HTTP API). The simulators of
//! the upstream systems live in [`sim`] and share no code path with the pipeline.

pub mod api;
pub mod bench;
pub mod bus;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod deadlines;
pub mod domain;
pub mod feeds;
pub mod memory;
pub mod normalize;
pub mod ops;
pub mod pipeline;
pub mod record;
pub mod schedule;
pub mod schema;
pub mod sim;
pub mod store;
pub mod telemetry;
