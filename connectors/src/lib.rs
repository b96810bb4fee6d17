//! FundWatch connectors: where events come from and where alerts go.
//!
//! The engine knows nothing about files, HTTP or Kafka; connectors know nothing about
//! rule logic. Each connector lives in its own module, named by kind then system
//! (Vector's layout): [`file`] (NDJSON in, NDJSON out, for `fundwatch check`),
//! [`synthetic`] (the labelled generator behind `fundwatch demo`), [`http`] (the
//! inline 3101/3102/3103 service behind `fundwatch serve`) and [`kafka`] (the
//! at-least-once stream behind `fundwatch stream`: settlements topic in, alerts
//! topic out).

pub mod file;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod synthetic;
