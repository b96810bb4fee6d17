//! Configuration of `fundwatch serve`: one TOML file, every key documented here
//! (these doc comments are the reference; `deploy/config/fundwatch.example.toml`
//! is a filled-in example), with environment overrides for what differs per
//! deployment.
//!
//! | environment variable | overrides |
//! |---|---|
//! | `FUNDWATCH_HTTP_ADDR` | `http.addr` |
//! | `FUNDWATCH_HTTP_ADMDVS` | `http.admdvs` |
//! | `FUNDWATCH_HTTP_BUDGET_MS` | `http.budget_ms` |
//! | `FUNDWATCH_HTTP_EVAL_THREADS` | `http.eval_threads` |
//! | `FUNDWATCH_HTTP_MAX_BATCH` | `http.batch.max_events` |
//! | `FUNDWATCH_HTTP_MAX_WAIT_US` | `http.batch.max_wait_us` |
//! | `FUNDWATCH_HTTP_QUEUE` | `http.batch.queue` |
//! | `FUNDWATCH_STORE_KIND` | `store.kind` |
//! | `FUNDWATCH_STORE_DIR` | `store.dir` |
//! | `FUNDWATCH_KB` | `engine.kb` |
//! | `FUNDWATCH_RULES` | `engine.rules` |
//! | `FUNDWATCH_REGISTRY` | `engine.registry` |
//!
//! API keys are never read from the environment wholesale; a key entry may name
//! its own variable with `key_env`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A configuration that cannot be used: what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (the message names line and key).
    #[error("config file {origin}: {message}")]
    Parse {
        /// The file (or `<string>`).
        origin: String,
        /// TOML's message, naming the line, the key and what was expected.
        message: String,
    },
    /// An environment override has a value that does not fit its key.
    #[error("environment variable {var}={value:?} cannot override {key}: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// The key it overrides.
        key: &'static str,
        /// Its value.
        value: String,
        /// What is expected.
        reason: String,
    },
    /// A key has a value that parses but cannot work.
    #[error("config key {key} = {value}: {reason}")]
    Invalid {
        /// Dotted key, e.g. `http.batch.max_events`.
        key: String,
        /// The value as written.
        value: String,
        /// What to change.
        reason: String,
    },
}

/// The whole `fundwatch serve` configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// `[http]`: listener, budget, micro-batching.
    pub http: HttpConfig,
    /// `[engine]`: which KB version and rule pack to load.
    pub engine: EngineConfig,
    /// `[store]`: where alerts, feedback and the audit log are kept.
    pub store: StoreConfig,
    /// `[auth]`: API keys per institution and admin keys.
    pub auth: AuthConfig,
    /// `[kafka]` (`crate::kafka::config`): when present, `fundwatch serve` runs
    /// the Kafka pipeline beside HTTP; `fundwatch stream` reads the same table, so
    /// one file configures both commands.
    pub kafka: Option<toml::Table>,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address (default `127.0.0.1:8080`; `0.0.0.0:8080` in a container).
    pub addr: SocketAddr,
    /// 接收方医保区划: the 6-digit area code that starts every `inf_refmsgid`
    /// (default `000000`).
    pub admdvs: String,
    /// Fail-open budget in milliseconds (default 200): a 3101/3102 whose evaluation
    /// has not finished this long after the request was read is answered
    /// `infcode 0` with an empty result and a `warn_msg` saying the check was skipped.
    pub budget_ms: u64,
    /// Largest accepted request body in bytes (default 4 MiB).
    pub max_body_bytes: usize,
    /// Threads of the evaluation runtime, separate from the threads serving HTTP so
    /// a long evaluation never delays the budget timer (default 0 = one per CPU).
    pub eval_threads: usize,
    /// `[http.batch]`: micro-batching of concurrent requests.
    pub batch: BatchConfig,
    /// `[http.tls]`: serve HTTPS, optionally requiring client certificates
    /// (mTLS); absent: plain HTTP/1.1.
    pub tls: Option<TlsConfig>,
}

/// `[http.tls]`: PEM files read at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM, leaf first).
    pub cert: std::path::PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
    /// CA certificates (PEM) that sign the hospitals' client certificates. When
    /// set, a connection without a certificate signed by one of them is refused
    /// during the handshake (mTLS); the API key is still required on top.
    pub client_ca: Option<std::path::PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admdvs: "000000".to_string(),
            budget_ms: 200,
            max_body_bytes: 4 * 1024 * 1024,
            eval_threads: 0,
            batch: BatchConfig::default(),
            tls: None,
        }
    }
}

impl HttpConfig {
    /// The fail-open budget.
    pub fn budget(&self) -> Duration {
        Duration::from_millis(self.budget_ms)
    }

    /// Evaluation threads after resolving `0` to the number of CPUs.
    pub fn eval_threads(&self) -> usize {
        if self.eval_threads > 0 {
            self.eval_threads
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }
}

/// `[http.batch]`: concurrent 3101/3102 requests are collected into one engine call.
///
/// The defaults are latency-first: a batch closes after 64 events or 200 µs,
/// whichever comes first, and only when an evaluation slot is free; under load
/// requests wait for a slot and batches grow on their own.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Most events in one engine call (default 64).
    pub max_events: usize,
    /// Longest a batch waits for more requests after its first, in µs (default 200;
    /// 0 = take only what is already queued).
    pub max_wait_us: u64,
    /// Requests that may wait for evaluation; past this a request is shed at once
    /// with HTTP 503 (default 1024).
    pub queue: usize,
    /// Batches evaluated at the same time (default 0 = `http.eval_threads`).
    pub concurrency: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_events: 64,
            max_wait_us: 200,
            queue: 1024,
            concurrency: 0,
        }
    }
}

/// `[engine]`: what to evaluate with.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// KB version directory (default: the shipped national KB).
    pub kb: Option<PathBuf>,
    /// Rule pack directory (default: `rule-base/packs/national`).
    pub rules: Option<PathBuf>,
    /// Version registry (docs/registry.md): the versions it names active are
    /// served, and the admin endpoints activate, roll back and shadow versions
    /// without a restart. Used when neither `kb` nor `rules` is set (default
    /// `$FUNDWATCH_REGISTRY`, else `var/registry`; an empty registry serves the
    /// shipped pack and national KB).
    pub registry: Option<PathBuf>,
    /// How often the registry is checked for activations made by another
    /// process (`fundwatch rules activate`), in milliseconds (default 2000).
    pub registry_poll_ms: Option<u64>,
    /// Person-status CSV (`patn_id,die_date,source`: registered deaths from the
    /// 公安/民政/卫健 data exchange) the rules see as `person_status` (死亡后就医);
    /// none: no person has a status. docs/history.md § 8.
    pub person_status: Option<PathBuf>,
}

/// Which [`AlertStore`](super::store::AlertStore) implementation keeps alerts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Append-only NDJSON logs under `store.dir`, replayed into memory at start.
    #[default]
    Ndjson,
    /// Memory only: everything is lost at exit (tests, load runs).
    Memory,
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `ndjson` (default) or `memory`.
    pub kind: StoreKind,
    /// Directory of the NDJSON logs (default `var/fundwatch`).
    pub dir: PathBuf,
    /// `fsync` every append before answering (default false: appends reach the OS
    /// page cache, which survives a crash of the process but not of the machine).
    pub sync: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::Ndjson,
            dir: PathBuf::from("var/fundwatch"),
            sync: false,
        }
    }
}

/// `[auth]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `[[auth.keys]]`: one entry per key; an institution may have several (rotation).
    pub keys: Vec<KeyConfig>,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Submit 3101/3102/3103 for, and read the alerts of, one institution.
    Institution,
    /// Admin endpoints (`/api/v1/admin/…`), every call audit-logged.
    Admin,
}

/// `[[auth.keys]]`: one API key. Exactly one of `key`, `key_sha256`, `key_env`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// `institution` or `admin`.
    pub role: Role,
    /// The institution (`fixmedins_code`) of an `institution` key.
    pub fixmedins_code: Option<String>,
    /// A name for logs and the audit log (default: the institution code, or `admin`).
    pub name: Option<String>,
    /// The key itself (development only: the file then holds a secret).
    pub key: Option<String>,
    /// Lower-case hex SHA-256 of the key (`printf %s KEY | sha256sum`).
    pub key_sha256: Option<String>,
    /// An environment variable holding the key.
    pub key_env: Option<String>,
}

impl ServeConfig {
    /// Reads `path`, applies the environment overrides and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::from_toml(&text, &path.display().to_string())?;
        config.apply_env(|var| std::env::var(var).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (no environment, no validation); `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|err| ConfigError::Parse {
            origin: origin.to_string(),
            message: err.to_string(),
        })
    }

    /// Applies the `FUNDWATCH_*` overrides found by `lookup`.
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        fn parsed<T: std::str::FromStr>(
            var: &'static str,
            key: &'static str,
            value: String,
            expected: &str,
        ) -> Result<T, ConfigError> {
            value.trim().parse().map_err(|_| ConfigError::Env {
                var,
                key,
                value,
                reason: format!("expected {expected}"),
            })
        }
        if let Some(v) = lookup("FUNDWATCH_HTTP_ADDR") {
            self.http.addr = parsed(
                "FUNDWATCH_HTTP_ADDR",
                "http.addr",
                v,
                "host:port, e.g. 0.0.0.0:8080",
            )?;
        }
        if let Some(v) = lookup("FUNDWATCH_HTTP_ADMDVS") {
            self.http.admdvs = v.trim().to_string();
        }
        if let Some(v) = lookup("FUNDWATCH_HTTP_BUDGET_MS") {
            self.http.budget_ms = parsed(
                "FUNDWATCH_HTTP_BUDGET_MS",
                "http.budget_ms",
                v,
                "milliseconds",
            )?;
        }
        if let Some(v) = lookup("FUNDWATCH_HTTP_EVAL_THREADS") {
            self.http.eval_threads = parsed(
                "FUNDWATCH_HTTP_EVAL_THREADS",
                "http.eval_threads",
                v,
                "a thread count",
            )?;
        }
        if let Some(v) = lookup("FUNDWATCH_HTTP_MAX_BATCH") {
            self.http.batch.max_events = parsed(
                "FUNDWATCH_HTTP_MAX_BATCH",
                "http.batch.max_events",
                v,
                "an event count",
            )?;
        }
        if let Some(v) = lookup("FUNDWATCH_HTTP_MAX_WAIT_US") {
            self.http.batch.max_wait_us = parsed(
                "FUNDWATCH_HTTP_MAX_WAIT_US",
                "http.batch.max_wait_us",
                v,
                "microseconds",
            )?;
        }
        if let Some(v) = lookup("FUNDWATCH_HTTP_QUEUE") {
            self.http.batch.queue =
                parsed("FUNDWATCH_HTTP_QUEUE", "http.batch.queue", v, "a count")?;
        }
        if let Some(v) = lookup("FUNDWATCH_STORE_KIND") {
            self.store.kind = match v.trim() {
                "ndjson" => StoreKind::Ndjson,
                "memory" => StoreKind::Memory,
                _ => {
                    return Err(ConfigError::Env {
                        var: "FUNDWATCH_STORE_KIND",
                        key: "store.kind",
                        value: v,
                        reason: "expected ndjson or memory".to_string(),
                    });
                }
            };
        }
        if let Some(v) = lookup("FUNDWATCH_STORE_DIR") {
            self.store.dir = PathBuf::from(v);
        }
        if let Some(v) = lookup("FUNDWATCH_KB") {
            self.engine.kb = Some(PathBuf::from(v));
        }
        if let Some(v) = lookup("FUNDWATCH_REGISTRY") {
            self.engine.registry = Some(PathBuf::from(v));
        }
        if let Some(v) = lookup("FUNDWATCH_RULES") {
            self.engine.rules = Some(PathBuf::from(v));
        }
        Ok(())
    }

    /// Checks values that parse but cannot work. API keys are checked when the
    /// [`Authenticator`](super::auth::Authenticator) is built from them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, value: String, reason: &str| ConfigError::Invalid {
            key: key.to_string(),
            value,
            reason: reason.to_string(),
        };
        let http = &self.http;
        if http.admdvs.len() != 6 || !http.admdvs.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                "http.admdvs",
                format!("{:?}", http.admdvs),
                "must be the 6-digit 医保区划 of this service, e.g. \"430796\"",
            ));
        }
        if http.budget_ms > 60_000 {
            return Err(invalid(
                "http.budget_ms",
                http.budget_ms.to_string(),
                "must be at most 60000: a HIS gives up long before (DOMAIN §2.6)",
            ));
        }
        if http.max_body_bytes < 1024 {
            return Err(invalid(
                "http.max_body_bytes",
                http.max_body_bytes.to_string(),
                "must be at least 1024",
            ));
        }
        let batch = &http.batch;
        if batch.max_events == 0 {
            return Err(invalid(
                "http.batch.max_events",
                "0".into(),
                "must be at least 1",
            ));
        }
        if batch.max_wait_us > 100_000 {
            return Err(invalid(
                "http.batch.max_wait_us",
                batch.max_wait_us.to_string(),
                "must be at most 100000 (100 ms); latency-first values are 0–1000",
            ));
        }
        if batch.queue == 0 {
            return Err(invalid(
                "http.batch.queue",
                "0".into(),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_latency_first() {
        let config = ServeConfig::from_toml("", "<string>").expect("empty file is valid");
        config.validate().expect("defaults validate");
        assert_eq!(config.http.budget_ms, 200);
        assert_eq!(config.http.batch.max_events, 64);
        assert_eq!(config.http.batch.max_wait_us, 200);
        assert_eq!(config.store.kind, StoreKind::Ndjson);
    }

    #[test]
    fn a_kafka_table_for_fundwatch_stream_is_accepted() {
        let config = ServeConfig::from_toml("[kafka]\nbrokers = \"k:9092\"\n[http]\n", "s")
            .expect("one file for serve and stream");
        assert!(config.kafka.is_some());
    }

    #[test]
    fn a_typo_names_the_key() {
        let err =
            ServeConfig::from_toml("[http]\nbudget = 5\n", "x.toml").expect_err("unknown key");
        let text = err.to_string();
        assert!(text.contains("x.toml") && text.contains("budget"), "{text}");
    }

    #[test]
    fn environment_overrides_and_bad_values_name_the_variable() {
        let mut config = ServeConfig::from_toml("[http]\nbudget_ms = 50\n", "s").expect("parses");
        config
            .apply_env(|var| match var {
                "FUNDWATCH_HTTP_ADDR" => Some("0.0.0.0:9000".into()),
                "FUNDWATCH_HTTP_BUDGET_MS" => Some("75".into()),
                "FUNDWATCH_STORE_KIND" => Some("memory".into()),
                _ => None,
            })
            .expect("valid overrides");
        assert_eq!(config.http.addr.port(), 9000);
        assert_eq!(config.http.budget_ms, 75);
        assert_eq!(config.store.kind, StoreKind::Memory);

        let err = config
            .apply_env(|var| (var == "FUNDWATCH_HTTP_MAX_BATCH").then(|| "many".to_string()))
            .expect_err("not a number");
        assert!(
            err.to_string().contains("FUNDWATCH_HTTP_MAX_BATCH"),
            "{err}"
        );
    }

    #[test]
    fn the_example_config_is_valid_and_its_keys_build() {
        let text = include_str!("../../../deploy/config/fundwatch.example.toml");
        let config = ServeConfig::from_toml(text, "fundwatch.example.toml").expect("parses");
        config.validate().expect("validates");
        let auth = crate::http::auth::Authenticator::from_config(&config.auth.keys, |_| None)
            .expect("keys build");
        assert!(auth.len() >= 2);
    }

    #[test]
    fn an_area_code_that_is_not_six_digits_is_refused() {
        let config = ServeConfig::from_toml("[http]\nadmdvs = \"4307\"\n", "s").expect("parses");
        let err = config.validate().expect_err("4 digits");
        assert!(err.to_string().contains("http.admdvs"), "{err}");
    }
}
