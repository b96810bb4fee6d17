//! `fundwatch check`: a batch run over an NDJSON file of events (事后 replay).
//!
//! Events are evaluated in micro-batches, alerts written in input order. Alerts are
//! stamped with the event's own time (`Clock::EventTime`), so the same input and
//! versions give byte-identical output. A bad line is reported with its line number
//! and skipped; the exit code is non-zero only when no line could be processed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use fundwatch_connectors::file::{NdjsonSink, NdjsonSource};

use fundwatch_engine::history::DurableHistory;
use fundwatch_engine::{Alert, AlertSummary, Clock, Engine, Event};

use super::common;

/// Arguments of `fundwatch check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Events, one 3101/3102 request (envelope or bare `data`) per line.
    #[arg(long)]
    input: PathBuf,
    /// Where to write alerts (NDJSON, one alert per line).
    #[arg(long)]
    output: PathBuf,
    /// KB version directory (default: the shipped national KB).
    #[arg(long)]
    kb: Option<PathBuf>,
    /// Rule pack directory (default: rule-base/packs/national).
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Events per micro-batch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Keep per-person history durably in this directory and resume after a crash:
    /// input lines up to the recorded position are skipped and alerts are appended.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Person-status CSV (`patn_id,die_date,source`: registered deaths) the rules
    /// see as `person_status` (死亡后就医; docs/history.md § 8).
    #[arg(long)]
    person_status: Option<PathBuf>,
}

/// Runs `fundwatch check`.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    common::runtime()?.block_on(async move {
        let mut engine =
            common::load_engine(args.kb.as_deref(), args.rules.as_deref(), Clock::EventTime)
                .await?;
        let mut resume_after = 0;
        if let Some(dir) = &args.state {
            let days = engine.program().history_days();
            let history = DurableHistory::open(&dir.join("partition-0"), days, 10_000)?;
            resume_after = history.position().unwrap_or(0);
            engine = engine.rebind_history(history);
        }
        common::load_person_status(&engine, args.person_status.as_deref())?;
        let source = NdjsonSource::open(&args.input)
            .with_context(|| format!("opening {}", args.input.display()))?;
        let mut sink = if resume_after > 0 {
            eprintln!(
                "resuming after input line {resume_after} (state in {})",
                args.state.as_deref().map(|p| p.display().to_string()).unwrap_or_default()
            );
            NdjsonSink::append(&args.output)
        } else {
            NdjsonSink::create(&args.output)
        }
        .with_context(|| format!("opening {}", args.output.display()))?;
        let mut last_line = 0;

        let mut pending: Vec<Event> = Vec::with_capacity(args.batch);
        let mut all_alerts: Vec<Alert> = Vec::new();
        let (mut good, mut bad) = (0u64, 0u64);
        for line in source {
            let line = line.with_context(|| format!("reading {}", args.input.display()))?;
            if line.line_no <= resume_after {
                continue;
            }
            last_line = line.line_no;
            match line.event {
                Ok(event) => {
                    good += 1;
                    pending.push(event);
                    if pending.len() >= args.batch {
                        flush(&engine, &mut pending, last_line, &mut sink, &mut all_alerts).await?;
                    }
                }
                Err(err) => {
                    bad += 1;
                    eprintln!("{}:{}: skipped: {err}", args.input.display(), line.line_no);
                }
            }
        }
        flush(&engine, &mut pending, last_line, &mut sink, &mut all_alerts).await?;
        sink.flush()?;

        let summary = AlertSummary::of(&all_alerts);
        eprintln!(
            "checked {good} events ({bad} bad lines skipped): {} alerts, {:.2} yuan at issue (each fee line counted once)",
            summary.alerts, summary.distinct_amount
        );
        for (rule_id, (count, amount)) in &summary.per_rule {
            let program = engine.program();
            let name = program.pack().rule(rule_id).map_or("", |r| r.name.as_str());
            eprintln!("  {rule_id} {name}: {count} alerts, {amount:.2}");
        }
        Ok(if good == 0 && bad > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}

/// Evaluates the pending events, writes their alerts and flushes them to the file
/// *before* the history records the batch's input position: a crash in between
/// replays the batch (duplicate alerts carry the same `jr_id`), never loses it.
async fn flush(
    engine: &Engine,
    pending: &mut Vec<Event>,
    last_line: u64,
    sink: &mut NdjsonSink<std::fs::File>,
    all: &mut Vec<Alert>,
) -> anyhow::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let refs: Vec<&Event> = pending.iter().collect();
    let alerts = engine.evaluate_only(&refs).await?;
    for alert in alerts.into_iter().flatten() {
        sink.write(&alert)?;
        all.push(alert);
    }
    sink.flush()?;
    engine.record(&refs, Some(last_line))?;
    pending.clear();
    Ok(())
}
