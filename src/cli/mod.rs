//! Subcommands of the `fundwatch` binary.

mod backtest;
mod check;
mod common;
mod demo;
pub mod kb;
mod logging;
mod rules;
mod serve;
mod shutdown;
mod stream;
mod versions;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// FundWatch: streaming medical-insurance fund supervision (医保基金智能监控).
#[derive(Debug, Parser)]
#[command(name = "fundwatch", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A rule pack over historical events (Parquet or NDJSON): hits and money
    /// per rule, and the difference to another pack (--against).
    Backtest(backtest::BacktestArgs),
    /// Evaluate an NDJSON file of 3101/3102 events; write alerts as NDJSON.
    Check(check::CheckArgs),
    /// Everything embedded: a labelled synthetic settlement stream through the engine,
    /// with a live summary (events/s, alerts per rule, recall, false alerts, latency).
    Demo(demo::DemoArgs),
    /// Knowledge base (知识库): import national batches, list, show, diff, activate versions.
    #[command(subcommand)]
    Kb(kb::KbCommand),
    /// Rule packs (规则库): test, validate, publish, activate, roll back, shadow.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Inline HTTP service for hospital HIS: 3101/3102/3103, alert API, admin
    /// endpoints (per-institution API keys, fail-open); see docs/http.md.
    Serve(serve::ServeArgs),
    /// Kafka stream: settlement events from the input topic, alerts to the alerts
    /// topic, at least once; see docs/kafka.md.
    Stream(stream::StreamArgs),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Backtest(args) => backtest::run(args),
        Command::Check(args) => check::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Kb(cmd) => kb::run(cmd),
        Command::Rules(cmd) => rules::run(cmd),
        Command::Serve(args) => serve::run(args),
        Command::Stream(args) => stream::run(args),
    }
}
