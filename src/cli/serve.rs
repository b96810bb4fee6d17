//! `fundwatch serve --config FILE`: the inline HTTP service for hospital HIS
//! (3101/3102/3103, alert API, admin endpoints), with the engine, the alert store
//! and the API keys the config file names. Stops on Ctrl-C or SIGTERM after
//! answering the requests in flight.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use fundwatch_connectors::http::{self, Authenticator, Evaluator, ServeConfig, Service};
use fundwatch_engine::Clock;

use super::common;

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable.
    Text,
}

/// Arguments of `fundwatch serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration (every key: deploy/config/fundwatch.example.toml);
    /// FUNDWATCH_HTTP_ADDR and the other FUNDWATCH_* variables override it.
    #[arg(long)]
    config: PathBuf,
    /// Log format.
    #[arg(long, value_enum, default_value = "json")]
    log_format: LogFormat,
}

/// Runs `fundwatch serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    let config = ServeConfig::load(&args.config)?;
    let auth = Authenticator::from_config(&config.auth.keys, |var| std::env::var(var).ok())
        .with_context(|| format!("in {}", args.config.display()))?;
    if auth.is_empty() {
        anyhow::bail!(
            "{}: no API keys configured; add [[auth.keys]] entries (see deploy/config/fundwatch.example.toml), without them every request would be refused",
            args.config.display()
        );
    }
    common::runtime()?.block_on(async move {
        let engine = common::load_engine(
            config.engine.kb.as_deref(),
            config.engine.rules.as_deref(),
            Clock::Wall,
        )
        .await?;
        let versions = engine.versions();
        let store = http::open_store(&config.store).with_context(|| {
            format!(
                "opening the alert store ({:?} in {})",
                config.store.kind,
                config.store.dir.display()
            )
        })?;
        let service = Service::new(&config.http, auth, Arc::new(engine), store)?;
        let listener = tokio::net::TcpListener::bind(config.http.addr)
            .await
            .with_context(|| {
                format!(
                    "binding {} (http.addr / FUNDWATCH_HTTP_ADDR): is another process listening there?",
                    config.http.addr
                )
            })?;
        let addr = listener.local_addr().context("reading the bound address")?;
        tracing::info!(%addr, rule_pack = %versions.rule_pack, kb = %versions.kb, "listening");
        eprintln!(
            "fundwatch serve: listening on http://{addr} (rule pack {}, KB {}); API description at /openapi.json",
            versions.rule_pack, versions.kb
        );
        service
            .serve(listener, shutdown_signal())
            .await
            .context("serving HTTP")?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (another command in the same process) keeps the first.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Ctrl-C, or SIGTERM (what Kubernetes and docker send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
