//! One integration-test binary (it links once: that matters on two cores). Tests talk to the
//! real RabbitMQ and PostgreSQL on their loopback ports and to the simulators.

mod helpers;

mod api;
mod config_errors;
mod console;
mod deploy;
mod feeds;
mod operators;
mod pipeline;
mod process;
mod production;
mod push;
mod repull;
