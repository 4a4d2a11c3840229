//! kconn: a Kubernetes operator that turns "a connection to a Kafka cluster" into a declarative,
//! continuously tested resource. See README.md for the tour and DESIGN-level contract.
// Unsafe code is denied everywhere but in `kafka::ffi`, the module that calls librdkafka's admin API
// directly (rust-rdkafka does not wrap DescribeTopics, DescribeCluster and DescribeConsumerGroups),
// `process` (three libc calls: no core dumps, parent-death signal, the user id) and `http::heap`
// (mallinfo2).
#![deny(unsafe_code)]
#![warn(missing_docs)]

// The API types and the command line are the public surface; `testing` is what the integration
// tests and benchmarks reach into. Everything else is private to the crate.
pub mod api;
pub mod cli;
#[doc(hidden)]
pub mod testing;

mod agents;
mod binding;
mod budget;
mod checks;
mod commands;
mod controller;
mod demo;
mod http;
mod kafka;
mod kerberos;
mod manifest;
mod models;
mod oauth;
mod output;
mod process;
mod schedule;
mod secrets;
mod status;
mod topics;
mod validate;
mod watch;
mod web;
