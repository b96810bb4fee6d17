//! The inline HTTP service for hospital HIS: 3101 (事前), 3102 (事中) and 3103
//! (feedback) in the national shapes, per-institution API keys, fail-open.
//!
//! Where a 3101 becomes alerts: [`fsi`] authenticates the key, decodes the body
//! with the engine's lenient decoder and checks `infno`, `fixmedins_code` and
//! `trig_scen` → [`batcher`] queues it (503 at once when the queue is full) and a
//! collector task gathers concurrent requests into one `Engine::evaluate` call on
//! a runtime of its own → alerts are stored ([`store`]) and answered through a
//! oneshot channel → the handler answers `{"infcode":0,…,"output":{"result":[…]}}`,
//! or, if the budget ran out first, `infcode 0` with an empty result and a
//! `warn_msg` (fail-open: a settlement is never blocked by FundWatch).
//!
//! docs/http.md is the user's guide; [`config`] documents every key.

pub mod admin;
pub mod auth;
pub mod batcher;
pub mod config;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod store;

mod api;
mod envelope;
mod fsi;
mod server;
mod tls;

pub use admin::VersionControl;
pub use auth::{Authenticator, Principal};
pub use batcher::{Evaluator, Versions};
pub use config::{ConfigError, HttpConfig, ServeConfig, StoreKind, TlsConfig};
pub use error::ApiError;
pub use server::{
    BATCH_HEADER, EVAL_US_HEADER, SERVER_US_HEADER, SKIPPED_HEADER, Service, ServiceError,
};
pub use store::{AlertStore, MemoryStore, NdjsonStore};

use std::sync::Arc;

/// Opens the store `config` names.
pub fn open_store(config: &config::StoreConfig) -> Result<Arc<dyn AlertStore>, store::StoreError> {
    Ok(match config.kind {
        StoreKind::Ndjson => Arc::new(NdjsonStore::open(&config.dir, config.sync)?),
        StoreKind::Memory => Arc::new(MemoryStore::new()),
    })
}
