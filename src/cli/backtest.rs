//! `fundwatch backtest`: a pack over historical events — hits and money per
//! rule — and, with `--against`, the difference to another pack (alerts only one
//! of them raises), with a progress bar.
//!
//! Input is NDJSON (one 3101/3102 request per line, as `check` reads) or Parquet
//! in the layout `fundwatch-events/1` (docs/registry.md §Backtest): one row per
//! event, the request JSON in `event`, plus `service_date`, `fixmedins_code`,
//! `patn_id` for filtering. Parquet is read with DataFusion, streamed in file
//! order (history rules need it), filtered by `--from`/`--to` on `service_date`
//! with row-group pruning. Both packs run over the same KB timeline (the
//! registry's active one unless `--kb`), each event on the version in force on
//! its service date, each pack with a history of its own, in the same
//! micro-batches.
//!
//! `--write-parquet FILE` makes input instead: the NDJSON `--input`, or
//! `--synthetic N` events of the labelled generator, written in that layout.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use arrow::array::{Array, ArrayRef, AsArray, Date32Builder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use clap::Args;
use datafusion::prelude::{ParquetReadOptions, SessionContext, col, lit};
use fundwatch_engine::history::DurableHistory;
use fundwatch_engine::{Alert, Clock, Engine, Event, decode_event, service_day};
use fundwatch_kb::{date_to_days, parse_date};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use super::common;
use super::versions::{RegistryArgs, load_pack_ref};

/// Format tag of the Parquet layout, in the file's key-value metadata.
pub const EVENTS_FORMAT: &str = "fundwatch-events/1";

/// Arguments of `fundwatch backtest`.
#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// Pack to evaluate: a published id (`name@version`), `default` (the
    /// shipped pack) or a pack directory.
    #[arg(long, default_value = "default")]
    pack: String,
    /// Pack to compare with (same forms as --pack).
    #[arg(long)]
    against: Option<String>,
    /// Events: `.parquet` (fundwatch-events/1) or NDJSON.
    #[arg(long)]
    input: Option<PathBuf>,
    /// KB versions to evaluate with, comma-separated ids (default: the
    /// registry's active timeline; `national` for the shipped one).
    #[arg(long, value_delimiter = ',')]
    kb: Vec<String>,
    /// Only events with a service date on or after this day (YYYY-MM-DD).
    #[arg(long)]
    from: Option<String>,
    /// Only events with a service date on or before this day (YYYY-MM-DD).
    #[arg(long)]
    to: Option<String>,
    /// Events per engine call.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Stop after this many events.
    #[arg(long)]
    limit: Option<u64>,
    /// Write the report as JSON to this file too.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Differences to list per rule.
    #[arg(long, default_value_t = 5)]
    examples: usize,
    /// Make input instead of evaluating: write the events (from --input NDJSON or
    /// --synthetic) to this Parquet file.
    #[arg(long)]
    write_parquet: Option<PathBuf>,
    /// With --write-parquet: this many events from the synthetic generator.
    #[arg(long)]
    synthetic: Option<u64>,
    /// Seed of the synthetic generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Runs `fundwatch backtest`.
pub fn run(args: BacktestArgs) -> anyhow::Result<ExitCode> {
    common::runtime()?.block_on(async move {
        if let Some(out) = &args.write_parquet {
            return write_input(&args, out).await;
        }
        let Some(input) = args.input.clone() else {
            anyhow::bail!("--input is required: the events to evaluate (.parquet or NDJSON)");
        };
        backtest(&args, &input).await
    })
}

// ------------------------------------------------------------------ report

/// Per rule, per pack.
#[derive(Debug, Clone, Default, Serialize)]
struct RuleTotals {
    name: String,
    hits_a: u64,
    money_a: f64,
    hits_b: u64,
    money_b: f64,
    only_a: u64,
    only_b: u64,
    examples: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    input: String,
    pack_a: String,
    pack_b: Option<String>,
    kb: Vec<String>,
    events: u64,
    undecodable: u64,
    seconds: f64,
    events_per_second: f64,
    eval_seconds_a: f64,
    eval_seconds_b: f64,
    alerts_a: u64,
    alerts_b: u64,
    /// Money with each fee line counted once (SPEC §3).
    distinct_money_a: f64,
    distinct_money_b: f64,
    only_a: u64,
    only_b: u64,
    rules: BTreeMap<String, RuleTotals>,
}

/// The identity of an alert across packs: the event, the rule, the encounter
/// and the lines at issue — not `jr_id`, which names the pack version.
type Identity = (u64, String, String, Vec<String>);

fn identity(event: u64, alert: &Alert) -> Identity {
    let mut lines: Vec<String> = alert
        .judge_result_detail_dtos
        .iter()
        .filter(|d| d.vola_item_type == "1")
        .map(|d| d.rx_id.clone())
        .collect();
    lines.sort();
    (event, alert.rule_id.clone(), alert.mdtrt_id.clone(), lines)
}

/// Money per fee line, each line once (several rules may name one line).
#[derive(Default)]
struct DistinctMoney {
    seen: HashSet<(String, String, String)>,
    total: f64,
}

impl DistinctMoney {
    fn add(&mut self, alert: &Alert) {
        for d in &alert.judge_result_detail_dtos {
            if d.vola_item_type == "1"
                && self
                    .seen
                    .insert((d.patn_id.clone(), d.mdtrt_id.clone(), d.rx_id.clone()))
            {
                self.total += d.vola_amt;
            }
        }
    }
}

// ------------------------------------------------------------------ input

/// Events in input order, in chunks, with how far through the input we are.
enum Input {
    Ndjson {
        reader: BufReader<File>,
        size: u64,
        read: u64,
    },
    Parquet {
        stream: datafusion::physical_plan::SendableRecordBatchStream,
        rows: u64,
        read: u64,
        pending: Vec<Vec<u8>>,
    },
}

impl Input {
    async fn open(path: &Path, from: Option<i32>, to: Option<i32>) -> anyhow::Result<Self> {
        let is_parquet = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
        if !is_parquet {
            if from.is_some() || to.is_some() {
                anyhow::bail!(
                    "--from/--to filter Parquet input by service_date; for NDJSON convert first (--write-parquet)"
                );
            }
            let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            return Ok(Input::Ndjson {
                reader: BufReader::with_capacity(1 << 20, file),
                size,
                read: 0,
            });
        }
        let ctx = SessionContext::new();
        let table = path.to_string_lossy().to_string();
        let mut df = ctx
            .read_parquet(table, ParquetReadOptions::default())
            .await
            .with_context(|| format!("reading {} as Parquet", path.display()))?;
        let schema = df.schema().clone();
        if schema.field_with_unqualified_name("event").is_err() {
            anyhow::bail!(
                "{}: no `event` column; backtest Parquet has the layout {EVENTS_FORMAT} (an `event` column with the request JSON, see docs/registry.md)",
                path.display()
            );
        }
        if let Some(from) = from {
            df = df.filter(col("service_date").gt_eq(lit(ScalarDate(from).value())))?;
        }
        if let Some(to) = to {
            df = df.filter(col("service_date").lt_eq(lit(ScalarDate(to).value())))?;
        }
        let df = df.select(vec![col("event")])?;
        // Rows to go, for the progress bar (from the footers when unfiltered).
        let rows = df
            .clone()
            .count()
            .await
            .context("counting the input rows")? as u64;
        let stream = df.execute_stream().await?;
        Ok(Input::Parquet {
            stream,
            rows,
            read: 0,
            pending: Vec::new(),
        })
    }

    /// Up to `n` raw events; empty at the end.
    async fn next_chunk(&mut self, n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(n);
        match self {
            Input::Ndjson { reader, read, .. } => {
                let mut line = Vec::new();
                while out.len() < n {
                    line.clear();
                    let got = reader.read_until(b'\n', &mut line)?;
                    if got == 0 {
                        break;
                    }
                    *read += got as u64;
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        out.push(std::mem::take(&mut line));
                    }
                }
            }
            Input::Parquet {
                stream,
                read,
                pending,
                ..
            } => {
                while out.len() < n {
                    if let Some(e) = pending.pop() {
                        out.push(e);
                        continue;
                    }
                    let Some(batch) = stream.next().await else {
                        break;
                    };
                    let batch = batch?;
                    let events = text_column(batch.column(0))?;
                    *read += events.len() as u64;
                    // Reversed so pop() yields file order.
                    pending.extend(events.into_iter().rev());
                }
            }
        }
        Ok(out)
    }

    /// (done, total) in the input's own unit (bytes or rows).
    fn progress(&self) -> (u64, u64, &'static str) {
        match self {
            Input::Ndjson { size, read, .. } => (*read, *size, "bytes"),
            Input::Parquet {
                rows,
                read,
                pending,
                ..
            } => (read.saturating_sub(pending.len() as u64), *rows, "events"),
        }
    }
}

/// A Date32 literal for DataFusion.
struct ScalarDate(i32);

impl ScalarDate {
    fn value(&self) -> datafusion::scalar::ScalarValue {
        datafusion::scalar::ScalarValue::Date32(Some(self.0))
    }
}

fn text_column(array: &ArrayRef) -> anyhow::Result<Vec<Vec<u8>>> {
    let array =
        arrow::compute::cast(array, &DataType::Utf8).context("the `event` column must be text")?;
    let strings = array.as_string::<i32>();
    Ok((0..strings.len())
        .filter(|&i| !strings.is_null(i))
        .map(|i| strings.value(i).as_bytes().to_vec())
        .collect())
}

// ------------------------------------------------------------------ progress

struct Progress {
    started: Instant,
    last: Instant,
    tty: bool,
    last_percent: u64,
}

impl Progress {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last: Instant::now() - Duration::from_secs(1),
            tty: std::io::stderr().is_terminal(),
            last_percent: 0,
        }
    }

    fn show(&mut self, events: u64, (done, total, unit): (u64, u64, &str), finished: bool) {
        let fraction = if total > 0 {
            (done as f64 / total as f64).min(1.0)
        } else {
            0.0
        };
        let percent = (fraction * 100.0) as u64;
        let due = if self.tty {
            self.last.elapsed() >= Duration::from_millis(200)
        } else {
            percent >= self.last_percent + 10
        };
        // Not a terminal: the 100 % line shows once.
        let repeat = !self.tty && finished && self.last_percent >= 100 && percent >= 100;
        if !(due || finished) || repeat {
            return;
        }
        self.last = Instant::now();
        self.last_percent = percent - percent % 10;
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = events as f64 / elapsed.max(1e-9);
        let eta = if fraction > 0.0 {
            elapsed * (1.0 - fraction) / fraction
        } else {
            0.0
        };
        let width = 30;
        let filled = (fraction * width as f64) as usize;
        let bar = format!(
            "[{}{}]",
            "=".repeat(filled),
            " ".repeat(width - filled.min(width))
        );
        let line = format!(
            "{bar} {percent:>3}% {events} events ({done}/{total} {unit}), {rate:.0} events/s, ETA {eta:.0} s"
        );
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r{line}\x1b[K");
            if finished {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "{line}");
        }
    }
}

// ------------------------------------------------------------------ run

async fn backtest(args: &BacktestArgs, input_path: &Path) -> anyhow::Result<ExitCode> {
    let builder = args.registry.builder();
    let kb_ids: Vec<String> = if args.kb.is_empty() {
        builder.registry().state().unwrap_or_default().kb
    } else {
        args.kb.clone()
    };
    let pack_a = load_pack_ref(&builder, &args.pack)?;
    let pack_b = match &args.against {
        Some(b) => Some(load_pack_ref(&builder, b)?),
        None => None,
    };
    let engine_for = |deployment: fundwatch_engine::Deployment| {
        let days = deployment
            .slots()
            .iter()
            .map(|s| s.program.history_days())
            .max()
            .unwrap_or(0);
        Engine::with_deployment(
            deployment,
            Clock::EventTime,
            DurableHistory::in_memory(days),
        )
    };
    let engine_a = engine_for(builder.deployment_for(&pack_a, &kb_ids).await?);
    let engine_b = match &pack_b {
        Some(p) => Some(engine_for(builder.deployment_for(p, &kb_ids).await?)),
        None => None,
    };
    let timeline: Vec<String> = engine_a
        .deployment()
        .slots()
        .iter()
        .map(|s| s.program.kb().id().to_string())
        .collect();
    let day = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<i32>> {
        v.as_deref()
            .map(|t| {
                parse_date(t)
                    .map(date_to_days)
                    .map_err(|_| anyhow::anyhow!("{flag} {t:?}: expected YYYY-MM-DD"))
            })
            .transpose()
    };
    let (from, to) = (day("--from", &args.from)?, day("--to", &args.to)?);
    let mut input = Input::open(input_path, from, to).await?;
    eprintln!(
        "backtest {}{} over {} with KB [{}]",
        pack_a.version_label(),
        pack_b
            .as_ref()
            .map(|p| format!(" against {}", p.version_label()))
            .unwrap_or_default(),
        input_path.display(),
        timeline.join(", ")
    );

    let mut report = Report {
        input: input_path.display().to_string(),
        pack_a: pack_a.version_label(),
        pack_b: pack_b.as_ref().map(|p| p.version_label()),
        kb: timeline,
        ..Report::default()
    };
    let names = |pack: &fundwatch_rules::RulePack, rule_id: &str| {
        pack.rule(rule_id)
            .map(|r| r.name.clone())
            .unwrap_or_default()
    };
    let (mut money_a, mut money_b) = (DistinctMoney::default(), DistinctMoney::default());
    let mut progress = Progress::new();
    let started = Instant::now();
    let batch = args.batch.max(1);
    loop {
        let want = match args.limit {
            Some(limit) => batch.min((limit - report.events.min(limit)) as usize),
            None => batch,
        };
        if want == 0 {
            break;
        }
        let raw = input.next_chunk(want).await?;
        if raw.is_empty() {
            break;
        }
        let mut events: Vec<Event> = Vec::with_capacity(raw.len());
        for bytes in &raw {
            match decode_event(bytes) {
                Ok(e) => events.push(e),
                Err(_) => report.undecodable += 1,
            }
        }
        let refs: Vec<&Event> = events.iter().collect();
        let base = report.events;
        report.events += refs.len() as u64;

        let t = Instant::now();
        let alerts_a = engine_a.evaluate(&refs).await?;
        report.eval_seconds_a += t.elapsed().as_secs_f64();
        let mut ids_a: BTreeSet<Identity> = BTreeSet::new();
        for (i, alerts) in alerts_a.iter().enumerate() {
            for alert in alerts {
                let r = report.rules.entry(alert.rule_id.clone()).or_default();
                r.hits_a += 1;
                r.money_a += alert.vola_amt;
                report.alerts_a += 1;
                money_a.add(alert);
                ids_a.insert(identity(base + i as u64, alert));
            }
        }
        if let Some(engine_b) = &engine_b {
            let t = Instant::now();
            let alerts_b = engine_b.evaluate(&refs).await?;
            report.eval_seconds_b += t.elapsed().as_secs_f64();
            let mut ids_b: BTreeSet<Identity> = BTreeSet::new();
            for (i, alerts) in alerts_b.iter().enumerate() {
                for alert in alerts {
                    let r = report.rules.entry(alert.rule_id.clone()).or_default();
                    r.hits_b += 1;
                    r.money_b += alert.vola_amt;
                    report.alerts_b += 1;
                    money_b.add(alert);
                    ids_b.insert(identity(base + i as u64, alert));
                }
            }
            for (side, only) in [
                ("A", ids_a.difference(&ids_b)),
                ("B", ids_b.difference(&ids_a)),
            ] {
                for id in only {
                    let r = report.rules.entry(id.1.clone()).or_default();
                    if side == "A" {
                        r.only_a += 1;
                        report.only_a += 1;
                    } else {
                        r.only_b += 1;
                        report.only_b += 1;
                    }
                    if r.examples.len() < args.examples {
                        r.examples.push(format!(
                            "only {side}: event {} mdtrt_id {} lines {}",
                            id.0 + 1,
                            id.2,
                            id.3.join(",")
                        ));
                    }
                }
            }
        }
        progress.show(report.events, capped(input.progress(), args.limit), false);
    }
    progress.show(report.events, capped(input.progress(), args.limit), true);
    report.seconds = started.elapsed().as_secs_f64();
    report.events_per_second = report.events as f64 / report.seconds.max(1e-9);
    report.distinct_money_a = round2(money_a.total);
    report.distinct_money_b = round2(money_b.total);
    for (rule_id, r) in report.rules.iter_mut() {
        r.name = names(&pack_a, rule_id);
        if r.name.is_empty()
            && let Some(p) = &pack_b
        {
            r.name = names(p, rule_id);
        }
        r.money_a = round2(r.money_a);
        r.money_b = round2(r.money_b);
    }
    print_report(&report);
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// With `--limit`, progress in events runs to the limit, not to the file's end.
fn capped(
    (done, total, unit): (u64, u64, &'static str),
    limit: Option<u64>,
) -> (u64, u64, &'static str) {
    match limit {
        Some(limit) if unit == "events" => (done.min(limit), total.min(limit), unit),
        _ => (done, total, unit),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn print_report(r: &Report) {
    let b = r.pack_b.is_some();
    println!(
        "{} events ({} undecodable) in {:.1} s = {:.0} events/s; evaluation {:.1} s ({}){}",
        r.events,
        r.undecodable,
        r.seconds,
        r.events_per_second,
        r.eval_seconds_a,
        r.pack_a,
        if b {
            format!(
                " + {:.1} s ({})",
                r.eval_seconds_b,
                r.pack_b.as_deref().unwrap_or("")
            )
        } else {
            String::new()
        }
    );
    println!("KB timeline: {}", r.kb.join(" → "));
    if b {
        println!(
            "\n{:<20} {:<24} {:>8} {:>14} {:>8} {:>14} {:>7} {:>7}",
            "rule_id", "name", "hits A", "money A", "hits B", "money B", "only A", "only B"
        );
    } else {
        println!(
            "\n{:<20} {:<24} {:>8} {:>14}",
            "rule_id", "name", "hits", "money"
        );
    }
    for (id, t) in &r.rules {
        if b {
            println!(
                "{:<20} {:<24} {:>8} {:>14.2} {:>8} {:>14.2} {:>7} {:>7}",
                id, t.name, t.hits_a, t.money_a, t.hits_b, t.money_b, t.only_a, t.only_b
            );
        } else {
            println!(
                "{:<20} {:<24} {:>8} {:>14.2}",
                id, t.name, t.hits_a, t.money_a
            );
        }
    }
    println!(
        "\nA {}: {} alerts, {:.2} yuan at issue (each fee line once)",
        r.pack_a, r.alerts_a, r.distinct_money_a
    );
    if let Some(pb) = &r.pack_b {
        println!(
            "B {pb}: {} alerts, {:.2} yuan at issue (each fee line once)",
            r.alerts_b, r.distinct_money_b
        );
        println!("diff: {} alerts only A, {} only B", r.only_a, r.only_b);
        for (id, t) in &r.rules {
            for example in &t.examples {
                println!("  {id} {example}");
            }
        }
    }
}

// ------------------------------------------------------------------ writing input

fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event", DataType::Utf8, false),
        Field::new("service_date", DataType::Date32, true),
        Field::new("fixmedins_code", DataType::Utf8, true),
        Field::new("patn_id", DataType::Utf8, true),
    ]))
}

/// Writes events (raw JSON) into the `fundwatch-events/1` Parquet layout.
struct EventsWriter {
    writer: ArrowWriter<File>,
    rows: Vec<(Vec<u8>, Option<i32>, String, String)>,
    written: u64,
}

impl EventsWriter {
    fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(64 * 1024))
            .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
                "format".to_string(),
                EVENTS_FORMAT.to_string(),
            )]))
            .build();
        let writer = ArrowWriter::try_new(file, events_schema(), Some(props))?;
        Ok(Self {
            writer,
            rows: Vec::new(),
            written: 0,
        })
    }

    /// Adds one event; `event` is the decoded form of `json` (for the columns).
    fn push(&mut self, json: Vec<u8>, event: Option<&Event>) -> anyhow::Result<()> {
        let (day, code, patn) = match event {
            Some(e) => (
                service_day(e),
                e.fixmedins_code().to_string(),
                e.patients
                    .first()
                    .map(|p| p.patn_id.clone())
                    .unwrap_or_default(),
            ),
            None => (None, String::new(), String::new()),
        };
        self.rows.push((json, day, code, patn));
        if self.rows.len() >= 8192 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut event = StringBuilder::new();
        let mut date = Date32Builder::new();
        let mut code = StringBuilder::new();
        let mut patn = StringBuilder::new();
        for (json, day, c, p) in self.rows.drain(..) {
            event.append_value(String::from_utf8_lossy(&json));
            date.append_option(day);
            code.append_value(c);
            patn.append_value(p);
        }
        let batch = RecordBatch::try_new(
            events_schema(),
            vec![
                Arc::new(event.finish()),
                Arc::new(date.finish()),
                Arc::new(code.finish()),
                Arc::new(patn.finish()),
            ],
        )?;
        self.written += batch.num_rows() as u64;
        self.writer.write(&batch)?;
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<u64> {
        self.flush()?;
        self.writer.close()?;
        Ok(self.written)
    }
}

async fn write_input(args: &BacktestArgs, out: &Path) -> anyhow::Result<ExitCode> {
    let mut writer = EventsWriter::create(out)?;
    let mut progress = Progress::new();
    match (args.synthetic, &args.input) {
        (Some(n), None) => {
            let builder = args.registry.builder();
            let pack = load_pack_ref(&builder, &args.pack)?;
            let kb = builder
                .timeline(&args.kb)?
                .pop()
                .context("no KB version to generate from")?;
            let config = fundwatch_connectors::synthetic::GeneratorConfig {
                seed: args.seed,
                ..Default::default()
            };
            let generator = fundwatch_connectors::synthetic::Generator::new(kb, &pack, config)
                .context("building the synthetic generator")?;
            for (i, event) in generator.take(n as usize).enumerate() {
                let decoded = decode_event(&event.json).ok();
                writer.push(event.json, decoded.as_ref())?;
                progress.show(i as u64 + 1, (i as u64 + 1, n, "events"), false);
            }
        }
        (None, Some(input)) => {
            let file = File::open(input).with_context(|| format!("opening {}", input.display()))?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let mut reader = BufReader::new(file);
            let (mut line, mut read, mut n) = (Vec::new(), 0u64, 0u64);
            loop {
                line.clear();
                let got = reader.read_until(b'\n', &mut line)?;
                if got == 0 {
                    break;
                }
                read += got as u64;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let trimmed = line.trim_ascii_end().to_vec();
                let decoded = decode_event(&trimmed).ok();
                writer.push(trimmed, decoded.as_ref())?;
                n += 1;
                progress.show(n, (read, size, "bytes"), false);
            }
        }
        _ => anyhow::bail!(
            "--write-parquet needs either --input <events.ndjson> or --synthetic <count>"
        ),
    }
    let rows = writer.finish()?;
    progress.show(rows, (rows, rows, "events"), true);
    println!("wrote {rows} events to {} ({EVENTS_FORMAT})", out.display());
    Ok(ExitCode::SUCCESS)
}
