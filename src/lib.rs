//! kconn: a Kubernetes operator that turns "a connection to a Kafka cluster" into a declarative,
//! continuously tested resource. See README.md for the tour and DESIGN-level contract.
// Unsafe code is denied everywhere but in `kafka::ffi`, the module that calls librdkafka's admin API
// directly (rust-rdkafka does not wrap DescribeTopics, DescribeCluster and DescribeConsumerGroups),
// `process` (three libc calls: no core dumps, parent-death signal, the user id) and `http::heap`
// (mallinfo2).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod agents;
pub mod api;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod controller;
pub mod demo;
pub mod http;
pub mod kafka;
pub mod kerberos;
pub mod manifest;
pub mod models;
pub mod output;
pub mod process;
pub mod schedule;
pub mod secrets;
pub mod status;
pub mod topics;
pub mod validate;
pub mod watch;
