//! Feed: pull → normalise → route → store → **feed**.
//!
//! What the store holds leaves it through feeds, in the order of the store's change sequence:
//! over HTTP (`GET /v1/feeds/{type}`, paged by sequence, resumable by a named consumer's
//! cursor, see `api::feeds`) and over AMQP (a relay tails the change sequence and publishes one
//! CloudEvent per change to a topic exchange per masking level, where the named consumers'
//! durable queues are bound). Personal data leaves masked to the consumer's level. The contract
//! is `docs/feeds.md`.

pub mod config;
pub mod envelope;
pub mod relay;

pub use config::{FeedConsumer, FeedsConfig, Masking};
pub use envelope::FeedEvent;
