//! `fundwatch serve --config FILE`: the inline HTTP service for hospital HIS
//! (3101/3102/3103, alert API, admin endpoints), with the engine, the alert store
//! and the API keys the config file names; with a `[kafka]` table, also the Kafka
//! pipeline of `fundwatch stream`, beside it on the same engine (SPEC §7:
//! "production: Kafka + HTTP"). Stops on Ctrl-C or SIGTERM after answering the
//! requests in flight and committing the Kafka messages whose alerts are
//! acknowledged.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use fundwatch_connectors::http::{self, Authenticator, Evaluator, ServeConfig, Service};
use fundwatch_connectors::kafka::{KafkaConfig, run_pipeline_with_metrics};
use fundwatch_connectors::metrics::{Metrics, Source};
use fundwatch_engine::Clock;

use super::common;
use super::logging::{self, LogFormat};
use super::shutdown;
use super::versions;

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
    logging::init(args.log_format, "info");
    let config = ServeConfig::load(&args.config)?;
    let kafka = match config.kafka.clone() {
        Some(table) => Some(KafkaConfig::from_table(
            table,
            &args.config.display().to_string(),
        )?),
        None => None,
    };
    let auth = Authenticator::from_config(&config.auth.keys, |var| std::env::var(var).ok())
        .with_context(|| format!("in {}", args.config.display()))?;
    if auth.is_empty() {
        anyhow::bail!(
            "{}: no API keys configured; add [[auth.keys]] entries (see deploy/config/fundwatch.example.toml), without them every request would be refused",
            args.config.display()
        );
    }
    common::runtime()?.block_on(async move {
        // Fixed versions (engine.kb / engine.rules), or the registry's (docs/registry.md).
        let (engine, manager) = versions::serving_engine(&config.engine, Clock::Wall).await?;
        common::load_person_status(&engine, config.engine.person_status.as_deref())?;
        // One registry for the process, served at /metrics.
        let metrics = Metrics::new();
        metrics.watch_rule_costs(&engine);
        // The Kafka pipeline shares this engine (versions, history); it reports
        // its stages with source="kafka".
        let pipeline_engine = kafka.as_ref().map(|_| engine.clone());
        let engine = engine.with_observer(Arc::new(metrics.source(Source::Http)));
        let versions = engine.versions();
        let store = http::open_store(&config.store).with_context(|| {
            format!(
                "opening the alert store ({:?} in {})",
                config.store.kind,
                config.store.dir.display()
            )
        })?;
        let service = Service::with_metrics(&config.http, auth, Arc::new(engine), store, &metrics)?;
        if let Some(manager) = manager {
            let control = Arc::new(http::VersionControl::new(manager).with_metrics(&metrics));
            service.set_version_control(Arc::clone(&control));
            control.spawn_watcher(versions::poll_interval(config.engine.registry_poll_ms));
        }
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
            "fundwatch serve: listening on {}://{addr} (rule pack {}, KB {}); API description at /openapi.json",
            if config.http.tls.is_some() { "https" } else { "http" },
            versions.rule_pack,
            versions.kb
        );
        let Some((kafka, pipeline_engine)) = kafka.zip(pipeline_engine) else {
            service
                .serve(listener, shutdown::signal())
                .await
                .context("serving HTTP")?;
            tracing::info!("stopped");
            return Ok(ExitCode::SUCCESS);
        };

        // HTTP and Kafka side by side, stopped together: by the signal, or by
        // the pipeline failing (then HTTP stops too and serve reports it).
        let kafka_metrics = metrics.kafka();
        service.require_kafka(&kafka_metrics);
        eprintln!(
            "fundwatch serve: Kafka {} → {} (dead letters: {}), group {} on {}",
            kafka.input_topic, kafka.alerts_topic, kafka.dlq_topic, kafka.group_id, kafka.brokers
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let signal_tx = stop_tx.clone();
        let signal = tokio::spawn(async move {
            shutdown::signal().await;
            let _ = signal_tx.send(true);
        });
        let http = service.serve(listener, stopped(stop_rx.clone()));
        let pipeline = async {
            let report = run_pipeline_with_metrics(
                pipeline_engine,
                kafka,
                kafka_metrics,
                stopped(stop_rx.clone()),
            )
            .await;
            let _ = stop_tx.send(true);
            report
        };
        let (http, pipeline) = tokio::join!(http, pipeline);
        signal.abort();
        let report = pipeline.context("running the Kafka pipeline")?;
        http.context("serving HTTP")?;
        tracing::info!(
            messages = report.messages,
            alerts = report.alerts,
            dead_letters = report.dead_letters,
            abandoned = report.abandoned,
            "stopped"
        );
        Ok(ExitCode::SUCCESS)
    })
}
