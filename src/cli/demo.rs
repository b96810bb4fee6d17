//! `fundwatch demo`: everything embedded — a synthetic settlement stream with
//! labelled injected violations → the real decoder → micro-batches → the engine →
//! alerts in an NDJSON file, with a live summary scored against the labels.
//!
//! ```text
//! generator thread: event JSON ─▶ decode ──(bounded channel)──▶ micro-batch
//!   (seeded, paced by --rate)        (real decoder, from bytes)      (N events or 50 ms)
//!        ─▶ Engine::evaluate ─▶ alerts → NDJSON file, scorecard, latency histograms
//! ```
//!
//! The HTTP service runs beside it on `--listen` (default 127.0.0.1:8080):
//! `/metrics`, `/healthz`, `/readyz`, the alert API and 3101/3102 with a key
//! printed at start — on the runtime's worker threads and its own evaluation
//! thread, while this loop runs on the main thread. Ctrl-C or SIGTERM ends the
//! run early, after the batch in flight.
//!
//! Exit code 0 when every label was found (recall 100%) and no alert was false, 1
//! otherwise, so CI can run it.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use fundwatch_connectors::file::NdjsonSink;
use fundwatch_connectors::http::config::{KeyConfig, Role};
use fundwatch_connectors::http::{Authenticator, HttpConfig, MemoryStore, Service};
use fundwatch_connectors::metrics::{Metrics, Source, SourceMetrics};
use fundwatch_connectors::synthetic::{
    Generator, GeneratorConfig, Label, Scorecard, SyntheticEvent,
};
use fundwatch_engine::{Clock, Engine, Event, Stage, decode_event};
use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use super::common;
use super::logging::{self, LogFormat};
use super::shutdown;

/// Arguments of `fundwatch demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long to run: `60s`, `2m`, `1h` (Ctrl-C stops earlier).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Events per second (default: as fast as the engine takes them).
    #[arg(long)]
    rate: Option<u64>,
    /// Share of events (0–1) carrying one injected violation.
    #[arg(long, default_value_t = 0.2)]
    violations: f64,
    /// Seed of the synthetic stream (same seed, same events).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Events per micro-batch (a batch also closes after 50 ms).
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Where to write the alerts (NDJSON, one alert per line).
    #[arg(long, default_value = "var/demo-alerts.ndjson")]
    output: PathBuf,
    /// Also write the generated events here (NDJSON, one request per line), e.g. to
    /// replay them with `fundwatch check`.
    #[arg(long)]
    events_out: Option<PathBuf>,
    /// KB version directory (default: the shipped national KB).
    #[arg(long)]
    kb: Option<PathBuf>,
    /// Rule pack directory (default: rule-base/packs/national).
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Where the HTTP API, /metrics, /healthz and /readyz listen during the demo
    /// (port 0: any free port; the URL is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

/// Parses `60s`, `2m`, `1h`, `500ms` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: use e.g. 60s, 2m, 1h"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{text}`: use s, m or h"
            ));
        }
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(format!("the duration `{text}` must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A generated event on its way to the engine: its JSON, and what the real decoder
/// made of those bytes (decoding runs on the producer thread, off the engine's path).
struct Generated {
    event: SyntheticEvent,
    decoded: Result<Event, fundwatch_engine::DecodeError>,
}

/// A decoded event waiting in the micro-batch, with its labels.
struct Pending {
    entered: Instant,
    event: Event,
    labels: Vec<Label>,
}

/// Latency histograms (microseconds).
struct Latency {
    batch: Histogram<u64>,
    event: Histogram<u64>,
    per_event_cost: Histogram<u64>,
}

impl Latency {
    fn new() -> anyhow::Result<Self> {
        let h = || Histogram::<u64>::new_with_bounds(1, 600_000_000, 3);
        Ok(Self {
            batch: h()?,
            event: h()?,
            per_event_cost: h()?,
        })
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().clamp(1, 600_000_000) as u64
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Everything the run keeps count of.
struct Run {
    engine: Engine,
    metrics: SourceMetrics,
    sink: NdjsonSink<std::fs::File>,
    score: Scorecard,
    latency: Latency,
    events: u64,
    undecodable: u64,
    batches: u64,
    started: Instant,
    last_report: Instant,
    last_events: u64,
    live_lines: usize,
    tty: bool,
}

impl Run {
    async fn flush(&mut self, pending: &mut Vec<Pending>) -> anyhow::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        // Labels join the score with their batch, so the live recall never counts a
        // label whose event the engine has not seen yet.
        for p in pending.iter() {
            self.score.add_labels(&p.labels);
        }
        let refs: Vec<&Event> = pending.iter().map(|p| &p.event).collect();
        let span = tracing::info_span!("demo_batch", batch = self.batches + 1, events = refs.len());
        let _entered = span.enter();
        let began = Instant::now();
        let alerts = self
            .engine
            .evaluate(&refs)
            .await
            .inspect_err(|_| self.metrics.error("evaluate"))
            .context("evaluating a micro-batch")?;
        let took = began.elapsed();
        let sink_began = Instant::now();
        for alert in alerts.iter().flatten() {
            self.sink.write(alert).context("writing an alert")?;
            self.score.add_alert(alert);
            self.metrics
                .alert(&alert.rule_id, &alert.sev_deg, &alert.fixmedins_code);
        }
        let done = Instant::now();
        let n = pending.len() as u64;
        let m = &self.metrics;
        m.stage(Stage::Sink)
            .observe((done - sink_began).as_secs_f64());
        m.batch_seconds.observe(took.as_secs_f64());
        m.batch_events.observe(n as f64);
        m.events_out.inc_by(n);
        self.latency.batch.saturating_record(micros(took));
        self.latency
            .per_event_cost
            .saturating_record((micros(took) / n.max(1)).max(1));
        for p in pending.iter() {
            self.latency
                .event
                .saturating_record(micros(done - p.entered));
            m.event_to_alert.observe((done - p.entered).as_secs_f64());
        }
        self.events += n;
        self.batches += 1;
        pending.clear();
        if self.batches.is_multiple_of(64) {
            self.score.compact();
        }
        Ok(())
    }

    fn rule_name(&self, rule_id: &str) -> String {
        self.engine
            .program()
            .pack()
            .rule(rule_id)
            .map_or_else(String::new, |r| r.name.clone())
    }

    fn headline(&self, rate: f64) -> String {
        let s = &self.score;
        format!(
            "[{:>4.0}s] events {} ({:.0}/s) | alerts {} | recall {:.2}% ({}/{}) | false alerts {} | batch p50 {:.2} ms p99 {:.2} ms | event p50 {:.2} ms p99 {:.2} ms",
            self.started.elapsed().as_secs_f64(),
            self.events,
            rate,
            s.alerts(),
            s.recall() * 100.0,
            s.matched(),
            s.labels(),
            s.false_alerts(),
            ms(self.latency.batch.value_at_quantile(0.5)),
            ms(self.latency.batch.value_at_quantile(0.99)),
            ms(self.latency.event.value_at_quantile(0.5)),
            ms(self.latency.event.value_at_quantile(0.99)),
        )
    }

    fn rule_table(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "  {:<18} {:>8} {:>8} {:>8} {:>6}  {}",
            "rule_id", "alerts", "labels", "matched", "false", "rule"
        )];
        for (rule_id, s) in self.score.per_rule() {
            lines.push(format!(
                "  {:<18} {:>8} {:>8} {:>8} {:>6}  {}",
                rule_id,
                s.alerts,
                s.labels,
                s.matched,
                s.false_alerts,
                self.rule_name(rule_id)
            ));
        }
        lines
    }

    /// The live view, about once a second: redrawn in place on a terminal, one line
    /// per second otherwise.
    fn report(&mut self) {
        let now = Instant::now();
        let secs = (now - self.last_report).as_secs_f64().max(1e-9);
        let rate = (self.events - self.last_events) as f64 / secs;
        self.last_report = now;
        self.last_events = self.events;
        let mut err = std::io::stderr().lock();
        if self.tty {
            if self.live_lines > 0 {
                let _ = write!(err, "\x1b[{}A\x1b[J", self.live_lines);
            }
            let mut lines = vec![self.headline(rate)];
            lines.extend(self.rule_table());
            for line in &lines {
                let _ = writeln!(err, "{line}");
            }
            self.live_lines = lines.len();
        } else {
            let _ = writeln!(err, "{}", self.headline(rate));
        }
    }

    fn final_summary(&self, output: &std::path::Path) -> String {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        let s = &self.score;
        let l = &self.latency;
        let mut out = String::new();
        let program = self.engine.program();
        out += &format!(
            "fundwatch demo: {} events in {:.1} s = {:.0} events/s ({} micro-batches, {} undecodable)\n",
            self.events,
            elapsed,
            self.events as f64 / elapsed,
            self.batches,
            self.undecodable
        );
        out += &format!(
            "  rule pack {} · KB {}\n",
            program.pack().version_label(),
            program.kb().id()
        );
        out += &format!(
            "  evaluation latency per batch: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
            ms(l.batch.value_at_quantile(0.5)),
            ms(l.batch.value_at_quantile(0.99)),
            ms(l.batch.max())
        );
        out += &format!(
            "  evaluation cost per event:    p50 {:.1} µs, p99 {:.1} µs\n",
            l.per_event_cost.value_at_quantile(0.5) as f64,
            l.per_event_cost.value_at_quantile(0.99) as f64
        );
        out += &format!(
            "  event → alert latency:        p50 {:.2} ms, p99 {:.2} ms\n",
            ms(l.event.value_at_quantile(0.5)),
            ms(l.event.value_at_quantile(0.99))
        );
        out += &format!(
            "  alerts {} (written to {}) · labels {} · matched {} · recall {:.2}% · false alerts {}\n",
            s.alerts(),
            output.display(),
            s.labels(),
            s.matched(),
            s.recall() * 100.0,
            s.false_alerts()
        );
        for line in self.rule_table() {
            out += &line;
            out.push('\n');
        }
        let missed = s.missed(5);
        if !missed.is_empty() {
            out += "  missed labels (first 5):\n";
            for Label {
                rule_id,
                mdtrt_id,
                rx_ids,
            } in missed
            {
                out += &format!("    {rule_id} {mdtrt_id} {rx_ids:?}\n");
            }
        }
        if !s.false_examples().is_empty() {
            out += "  false alerts (first 5):\n";
            for alert in s.false_examples().iter().take(5) {
                let key = Label::of_alert(alert);
                out += &format!(
                    "    {} {} {:?}: {}\n",
                    key.rule_id, key.mdtrt_id, key.rx_ids, alert.vola_cont
                );
            }
        }
        out += &format!(
            "  result: {}\n",
            if s.perfect() {
                "PASS (recall 100%, no false alerts)"
            } else {
                "FAIL"
            }
        );
        out
    }
}

/// Runs `fundwatch demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.violations) {
        anyhow::bail!("--violations ({}) must be between 0 and 1", args.violations);
    }
    if args.batch == 0 {
        anyhow::bail!("--batch must be at least 1");
    }
    if args.rate == Some(0) {
        anyhow::bail!("--rate must be at least 1 event per second (omit it for no limit)");
    }
    common::runtime()?.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    // Warnings only: the live summary is the demo's output.
    logging::init(LogFormat::Text, "warn");
    eprintln!("fundwatch demo: loading the knowledge base and compiling the rule pack …");
    let engine =
        common::load_engine(args.kb.as_deref(), args.rules.as_deref(), Clock::Wall).await?;
    let metrics = Metrics::new();
    metrics.watch_rule_costs(&engine);
    let source = metrics.source(Source::Synthetic);
    let engine = engine.with_observer(Arc::new(source.clone()));
    let program = engine.program();
    metrics.set_active_versions(&program.pack().version_label(), program.kb().id());
    let http = start_http(&args, &engine, &metrics).await?;
    let config = GeneratorConfig {
        seed: args.seed,
        violation_share: args.violations,
        ..GeneratorConfig::default()
    };
    let generator = Generator::new(Arc::clone(program.kb()), program.pack(), config)
        .context("building the synthetic generator")?;
    eprintln!(
        "  {} rules from {}, KB {}; service dates from {}; seed {}",
        program.rules().len(),
        program.pack().version_label(),
        program.kb().id(),
        generator.start_date(),
        args.seed
    );
    for cov in generator.coverage() {
        if let Some(why) = &cov.missing {
            eprintln!(
                "  warning: no violations injected for {} ({}): {why}",
                cov.rule_id, cov.class
            );
        }
    }

    if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let sink = NdjsonSink::create(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;

    // The generator runs on its own thread so that producing events never sits on the
    // engine's path; the bounded channel is the backpressure.
    let (tx, mut rx) = mpsc::channel::<Generated>(args.batch * 2);
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let stop = Arc::clone(&stop);
        let rate = args.rate;
        let source = source.clone();
        let mut generator = generator;
        // 死亡后就医 injections register their patient's death before the event goes out.
        let statuses = engine.clone();
        std::thread::Builder::new()
            .name("fundwatch-synthetic".into())
            .spawn(move || {
                let began = Instant::now();
                let mut sent: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rate) = rate {
                        let due = began + Duration::from_secs_f64(sent as f64 / rate as f64);
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep((due - now).min(Duration::from_millis(50)));
                            continue;
                        }
                    }
                    let event = generator.next_event();
                    Generator::register_status(&statuses, &event);
                    source.events_in.inc();
                    let began = Instant::now();
                    let decoded = decode_event(&event.json);
                    source
                        .stage(Stage::Decode)
                        .observe(began.elapsed().as_secs_f64());
                    if tx.blocking_send(Generated { event, decoded }).is_err() {
                        break;
                    }
                    sent += 1;
                }
            })
            .context("starting the generator thread")?
    };

    let started = Instant::now();
    let mut run = Run {
        engine,
        metrics: source.clone(),
        sink,
        score: Scorecard::new(20),
        latency: Latency::new()?,
        events: 0,
        undecodable: 0,
        batches: 0,
        started,
        last_report: started,
        last_events: 0,
        live_lines: 0,
        tty: std::io::stderr().is_terminal(),
    };
    let deadline = tokio::time::Instant::from_std(started + args.duration);
    let ctrl_c = shutdown::signal();
    tokio::pin!(ctrl_c);
    let max_wait = Duration::from_millis(50);
    let mut pending: Vec<Pending> = Vec::with_capacity(args.batch);
    let mut events_out = match &args.events_out {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let mut interrupted = false;

    loop {
        let flush_at = pending.first().map_or(deadline, |p| {
            tokio::time::Instant::from_std(p.entered + max_wait)
        });
        tokio::select! {
            biased;
            _ = &mut ctrl_c => { interrupted = true; break; }
            _ = tokio::time::sleep_until(deadline) => break,
            _ = tokio::time::sleep_until(flush_at), if !pending.is_empty() => {
                run.flush(&mut pending).await?;
            }
            msg = rx.recv(), if pending.len() < args.batch => {
                let Some(Generated { event, decoded }) = msg else { break };
                if let Some(out) = events_out.as_mut() {
                    out.write_all(&event.json)
                        .and_then(|()| out.write_all(b"\n"))
                        .context("writing --events-out")?;
                }
                match decoded {
                    Ok(decoded) => pending.push(Pending {
                        entered: Instant::now(),
                        event: decoded,
                        labels: event.labels,
                    }),
                    Err(err) => {
                        run.undecodable += 1;
                        run.metrics.error("decode");
                        run.metrics.events_out.inc();
                        if run.undecodable <= 5 {
                            eprintln!("  undecodable synthetic event {}: {err}", event.mdtrt_id);
                        }
                    }
                }
                if pending.len() >= args.batch {
                    run.flush(&mut pending).await?;
                }
            }
        }
        if run.last_report.elapsed() >= Duration::from_secs(1) {
            run.report();
        }
    }
    run.flush(&mut pending).await?;
    run.sink.flush().context("flushing the alerts file")?;
    if let Some(mut out) = events_out {
        out.flush().context("flushing --events-out")?;
    }
    stop.store(true, Ordering::Relaxed);
    drop(rx);
    if producer.join().is_err() {
        eprintln!("  warning: the generator thread panicked");
    }
    if run.tty {
        run.report();
    }
    if interrupted {
        eprintln!("  stopped by Ctrl-C / SIGTERM");
    }
    http.stop().await;
    print!("{}", run.final_summary(&args.output));
    Ok(if run.score.perfect() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The demo's HTTP service, stopped at the end of the run.
struct DemoHttp {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl DemoHttp {
    async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(err) = self.task.await {
            eprintln!("  warning: the HTTP service ended badly: {err}");
        }
    }
}

/// Starts the HTTP service on `--listen` with a fresh admin key and one
/// institution key (printed), evaluating on one thread of its own.
async fn start_http(
    args: &DemoArgs,
    engine: &Engine,
    metrics: &Metrics,
) -> anyhow::Result<DemoHttp> {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
        ^ u128::from(std::process::id());
    let admin_key = format!("demo-admin-{nonce:032x}");
    let institution_key = format!("demo-inst-{nonce:032x}");
    let institution = "H00000000001";
    let keys = [
        KeyConfig {
            role: Role::Admin,
            fixmedins_code: None,
            name: Some("demo-admin".into()),
            key: Some(admin_key.clone()),
            key_sha256: None,
            key_env: None,
        },
        KeyConfig {
            role: Role::Institution,
            fixmedins_code: Some(institution.into()),
            name: None,
            key: Some(institution_key.clone()),
            key_sha256: None,
            key_env: None,
        },
    ];
    let auth = Authenticator::from_config(&keys, |_| None).context("the demo's API keys")?;
    let config = HttpConfig {
        addr: args.listen,
        eval_threads: 1,
        ..HttpConfig::default()
    };
    let http_engine = engine
        .clone()
        .with_observer(Arc::new(metrics.source(Source::Http)));
    let service = Service::with_metrics(
        &config,
        auth,
        Arc::new(http_engine),
        Arc::new(MemoryStore::new()),
        metrics,
    )?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "binding --listen {}: is another process listening there? (use --listen 127.0.0.1:0 for any free port)",
                args.listen
            )
        })?;
    let addr = listener.local_addr().context("reading the bound address")?;
    eprintln!(
        "  HTTP API and metrics on http://{addr} (/metrics, /healthz, /readyz, /api/v1/alerts, /fsi/3101); X-FundWatch-Key: {admin_key} (admin), {institution_key} ({institution})"
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(err) = service.serve(listener, shutdown).await {
            tracing::warn!(error = %err, "the demo's HTTP service stopped");
        }
    });
    Ok(DemoHttp { stop, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_seconds_minutes_hours() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("10d").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
