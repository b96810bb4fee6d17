//! `fundwatch stream --config FILE`: the Kafka pipeline — settlement events from
//! the input topic, alerts to the alerts topic, undecodable messages to the
//! dead-letter topic, at least once (docs/kafka.md). Stops on Ctrl-C or SIGTERM
//! after the alerts of what was read are acknowledged and committed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use fundwatch_connectors::kafka::{StreamConfig, run_pipeline};
use fundwatch_engine::Clock;

use super::common;
use super::logging::{self, LogFormat};
use super::shutdown;
use super::versions;

/// Arguments of `fundwatch stream`.
#[derive(Debug, Args)]
pub struct StreamArgs {
    /// TOML configuration with a [kafka] table (every key:
    /// deploy/config/kafka.example.toml); FUNDWATCH_KAFKA_* variables override it.
    #[arg(long)]
    config: PathBuf,
    /// Log format.
    #[arg(long, value_enum, default_value = "json")]
    log_format: LogFormat,
}

/// Runs `fundwatch stream`.
pub fn run(args: StreamArgs) -> anyhow::Result<ExitCode> {
    logging::init(args.log_format, "info");
    let (kafka, engine_section) = StreamConfig::load(&args.config)?;
    common::runtime()?.block_on(async move {
        // Fixed versions (engine.kb / engine.rules), or the registry's, followed
        // while streaming: a swap reaches the pipeline at its next batch.
        let (engine, manager) = versions::serving_engine(
            versions::EngineSource {
                kb: engine_section.kb.as_deref(),
                rules: engine_section.rules.as_deref(),
                registry: engine_section.registry.as_deref(),
            },
            Clock::Wall,
        )
        .await?;
        if let Some(manager) = &manager {
            manager.follow(versions::poll_interval(engine_section.registry_poll_ms), || {});
        }
        common::load_person_status(&engine, engine_section.person_status.as_deref())?;
        let program = engine.program();
        tracing::info!(
            brokers = %kafka.brokers,
            group_id = %kafka.group_id,
            input_topic = %kafka.input_topic,
            alerts_topic = %kafka.alerts_topic,
            dlq_topic = %kafka.dlq_topic,
            rule_pack = %program.pack().version_label(),
            kb = %program.kb().id(),
            "streaming"
        );
        eprintln!(
            "fundwatch stream: {} → {} (dead letters: {}), group {} on {}",
            kafka.input_topic, kafka.alerts_topic, kafka.dlq_topic, kafka.group_id, kafka.brokers
        );
        let report = run_pipeline(engine, kafka, shutdown::signal())
            .await
            .context("running the Kafka pipeline")?;
        tracing::info!(
            messages = report.messages,
            done = report.messages_done,
            alerts = report.alerts,
            dead_letters = report.dead_letters,
            abandoned = report.abandoned,
            "stopped"
        );
        eprintln!(
            "fundwatch stream: stopped after {} messages ({} alerts, {} dead letters; {} left for redelivery)",
            report.messages, report.alerts, report.dead_letters, report.abandoned
        );
        Ok(ExitCode::SUCCESS)
    })
}
