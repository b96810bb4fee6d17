//! `kafka_bench`: broker → engine → broker with the full national pack, against a
//! tansu broker it starts itself (or `--brokers`).
//!
//! Three phases, each on fresh topics and a fresh consumer group:
//! 1. **engine throughput**: `--events` synthetic settlements (the labelled
//!    generator of `fundwatch demo`, 20% injected violations) are produced first,
//!    then the pipeline (`Processor::Evaluate`) drains them; the rate is events
//!    done ÷ time from the first event read to the last one acknowledged.
//! 2. **raw pipe**: the same events through the same pipeline with
//!    `Processor::Forward` (consume + produce, no decode, no evaluation): the
//!    ceiling the broker and client allow; the engine's share is the ratio.
//! 3. **latency**: events produced at a fixed rate (`--rate`, default half the
//!    engine throughput) for `--duration`; each event's latency runs from when it
//!    was *due* (coordinated-omission safe) to when its first alert is read back
//!    from the alerts topic; only events with alerts are measured.
//!
//! ```sh
//! cargo build --release --workspace -j2 --bins   # the workspace, not -p: one feature set
//! target/release/kafka_bench --events 50000
//! ```

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use fundwatch_connectors::kafka::{self, KafkaConfig, KafkaMetrics, Processor, Setting};
use fundwatch_connectors::synthetic::Generator;
use fundwatch_engine::{Clock, Engine, Stage};
use hdrhistogram::Histogram;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

/// Kafka pipeline benchmark (broker → engine → broker).
#[derive(Debug, Parser)]
#[command(name = "kafka_bench")]
struct Args {
    /// Use this broker instead of starting tansu.
    #[arg(long)]
    brokers: Option<String>,
    /// tansu binary (default: `tansu` on PATH, then ~/.cargo/bin/tansu).
    #[arg(long)]
    tansu: Option<PathBuf>,
    /// Events in the throughput phases.
    #[arg(long, default_value_t = 50_000)]
    events: usize,
    /// Input partitions.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Events per micro-batch (kafka.batch.max_events; default: the pipeline's).
    #[arg(long)]
    batch: Option<usize>,
    /// Messages buffered between the consumer and the batch task (kafka.queue;
    /// default: the pipeline's).
    #[arg(long)]
    queue: Option<usize>,
    /// Batch wait (kafka.batch.max_wait_ms; default: the pipeline's).
    #[arg(long)]
    wait_ms: Option<u64>,
    /// Latency phase rate in events/s (default: half the engine throughput).
    #[arg(long)]
    rate: Option<f64>,
    /// Latency phase duration in seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Skip the throughput phases (needs --rate).
    #[arg(long)]
    latency_only: bool,
    /// Run the latency phase through the raw pipe (consume + produce, no
    /// evaluation) instead of the engine: what the broker and clients alone cost.
    #[arg(long)]
    raw_latency: bool,
    /// A librdkafka setting for every client of the run (pipeline consumer and
    /// producer, the bench's producer and reader), e.g. `socket.nagle.disable=true`;
    /// repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Keep the engine's history per partition in this directory
    /// (`kafka.state_dir`; a fresh subdirectory per phase) instead of in memory.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let _broker_guard;
    let brokers = match &args.brokers {
        Some(b) => b.clone(),
        None => {
            let broker = Tansu::start(args.tansu.clone())?;
            let b = broker.bootstrap();
            _broker_guard = broker;
            b
        }
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!("machine: {cores} cores, {cpu}; broker {brokers}");

    let (program, mut generator) = fundwatch_benches::national_stream_setup(args.seed).await?;
    eprintln!(
        "engine: {} rules of {}, KB {}",
        program.rules().len(),
        program.pack().version_label(),
        program.kb().id()
    );
    let engine = Engine::new(program, Clock::Wall);

    let n_events = if args.latency_only { 0 } else { args.events };
    let started = Instant::now();
    let events: Vec<(String, Vec<u8>)> = (0..n_events)
        .map(|_| {
            let e = generator.next_event();
            (e.patn_id, e.json)
        })
        .collect();
    if !events.is_empty() {
        let bytes: usize = events.iter().map(|(_, j)| j.len()).sum();
        eprintln!(
            "generated {} events ({:.1} KB average) in {:.1?}",
            events.len(),
            bytes as f64 / events.len() as f64 / 1024.0,
            started.elapsed()
        );
    }

    let mut engine_rate = None;
    if !args.latency_only {
        let raw = throughput(&brokers, &args, "raw", Processor::Forward, &events).await?;
        let eng = throughput(
            &brokers,
            &args,
            "engine",
            Processor::Evaluate(engine.clone()),
            &events,
        )
        .await?;
        println!(
            "raw pipe: {:.0} events/s; engine: {:.0} events/s ({} alerts, {:.1} ms mean per batch of {:.0} events, evaluate {:.1} ms of it); engine/raw = {:.0}%",
            raw.rate,
            eng.rate,
            eng.alerts,
            eng.batch_ms,
            eng.batch_events,
            eng.eval_ms,
            100.0 * eng.rate / raw.rate
        );
        engine_rate = Some(eng.rate);
    }
    let rate = match (args.rate, engine_rate) {
        (Some(r), _) => r,
        (None, Some(r)) => r / 2.0,
        (None, None) => bail!("--latency-only needs --rate"),
    };
    let processor = if args.raw_latency {
        Processor::Forward
    } else {
        Processor::Evaluate(engine)
    };
    latency(&brokers, &args, processor, &mut generator, rate).await?;
    Ok(())
}

struct Throughput {
    rate: f64,
    alerts: u64,
    batch_ms: f64,
    batch_events: f64,
    eval_ms: f64,
}

fn config(brokers: &str, args: &Args, name: &str) -> KafkaConfig {
    let stamp = std::process::id();
    let mut config = KafkaConfig::new(brokers);
    config.group_id = format!("bench-{name}-{stamp}");
    config.input_topic = format!("bench.{name}.{stamp}.in");
    config.alerts_topic = format!("bench.{name}.{stamp}.alerts");
    config.dlq_topic = format!("bench.{name}.{stamp}.dlq");
    if let Some(max_events) = args.batch {
        config.batch.max_events = max_events;
    }
    if let Some(wait_ms) = args.wait_ms {
        config.batch.max_wait_ms = wait_ms;
    }
    if let Some(queue) = args.queue {
        config.queue = queue;
    }
    config.state_dir = args
        .state_dir
        .as_ref()
        .map(|dir| dir.join(format!("{name}-{stamp}")));
    for (key, value) in client_settings(args) {
        config
            .consumer
            .insert(key.clone(), Setting::Text(value.clone()));
        config.producer.insert(key, Setting::Text(value));
    }
    config
}

/// `--set KEY=VALUE` pairs.
fn client_settings(args: &Args) -> Vec<(String, String)> {
    args.settings
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

async fn create_topics(config: &KafkaConfig, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .create()?;
    let topics = [
        NewTopic::new(&config.input_topic, partitions, TopicReplication::Fixed(1)),
        NewTopic::new(&config.alerts_topic, partitions, TopicReplication::Fixed(1)),
        NewTopic::new(&config.dlq_topic, 1, TopicReplication::Fixed(1)),
    ];
    for result in admin.create_topics(&topics, &AdminOptions::new()).await? {
        if let Err((topic, code)) = result {
            bail!("creating {topic}: {code}");
        }
    }
    Ok(())
}

fn producer(brokers: &str, args: &Args) -> anyhow::Result<FutureProducer> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("socket.nagle.disable", "true")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "2097151");
    for (key, value) in client_settings(args) {
        config.set(key, value);
    }
    Ok(config.create()?)
}

async fn throughput(
    brokers: &str,
    args: &Args,
    name: &str,
    processor: Processor,
    events: &[(String, Vec<u8>)],
) -> anyhow::Result<Throughput> {
    let config = config(brokers, args, name);
    create_topics(&config, args.partitions).await?;
    let producer = producer(brokers, args)?;
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(events.len());
    for (key, json) in events {
        let record = FutureRecord::to(&config.input_topic).key(key).payload(json);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e)?);
    }
    for d in deliveries {
        d.await?.map_err(|(e, _)| e)?;
    }
    eprintln!(
        "{name}: produced {} events in {:.1?}",
        events.len(),
        started.elapsed()
    );

    let engine = match &processor {
        Processor::Evaluate(engine) => Some(engine.clone()),
        _ => None,
    };
    let metrics = KafkaMetrics::new();
    let pipeline = kafka::start(processor, config, metrics.clone())?;
    let n = events.len() as u64;
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        if first.is_none() && metrics.messages_in.get() > 0 {
            first = Some(Instant::now());
        }
        if metrics.messages_done.get() >= n {
            break;
        }
        if Instant::now() > deadline || pipeline.is_finished() {
            bail!("{name}: pipeline did not finish\n{}", metrics.render());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = first.map_or(Duration::ZERO, |f| f.elapsed());
    let report = pipeline.stop().await?;
    let batches = metrics.batch_events.get_sample_count().max(1) as f64;
    let rate = n as f64 / elapsed.as_secs_f64();
    eprintln!("{name}: {n} events in {elapsed:.2?} = {rate:.0} events/s");
    if let Some(engine) = &engine {
        println!(
            "engine stages, mean ms per batch: {}",
            stage_means(&metrics)
        );
        println!("costliest rules, mean ms per batch: {}", rule_costs(engine));
    }
    Ok(Throughput {
        rate,
        alerts: report.alerts,
        batch_ms: elapsed.as_secs_f64() * 1000.0 / batches,
        batch_events: metrics.batch_events.get_sample_sum() / batches,
        eval_ms: metrics.evaluate_seconds.get_sample_sum() * 1000.0
            / metrics.evaluate_seconds.get_sample_count().max(1) as f64,
    })
}

/// The five rules that took the most time, with their mean milliseconds per run
/// (a run is one batch, or one event scope of it).
fn rule_costs(engine: &Engine) -> String {
    let program = engine.program();
    let mut costs: Vec<(&str, u64, Duration)> = program
        .rules()
        .iter()
        .map(|rule| {
            let (runs, total) = rule.cost();
            (rule.rule.rule_id.as_str(), runs, total)
        })
        .collect();
    costs.sort_by_key(|(_, _, total)| std::cmp::Reverse(*total));
    let all: Duration = costs.iter().map(|(_, _, total)| *total).sum();
    let top: Vec<String> = costs
        .iter()
        .take(5)
        .map(|(rule_id, runs, total)| {
            format!(
                "{rule_id} {:.2} ({:.0}%)",
                total.as_secs_f64() * 1000.0 / (*runs).max(1) as f64,
                100.0 * total.as_secs_f64() / all.as_secs_f64().max(f64::MIN_POSITIVE)
            )
        })
        .collect();
    top.join(", ")
}

/// Mean milliseconds per batch of each pipeline stage (decode, batch build,
/// evaluate, alert build, history, sink hand-off).
fn stage_means(metrics: &KafkaMetrics) -> String {
    Stage::ALL
        .iter()
        .map(|stage| {
            let h = metrics.source.stage(*stage);
            let mean = h.get_sample_sum() * 1000.0 / h.get_sample_count().max(1) as f64;
            format!("{} {mean:.2}", stage.as_str())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn latency(
    brokers: &str,
    args: &Args,
    processor: Processor,
    generator: &mut Generator,
    rate: f64,
) -> anyhow::Result<()> {
    let config = config(brokers, args, "latency");
    create_topics(&config, args.partitions).await?;
    let total = (rate * args.duration as f64) as usize;
    // Pre-build the events; task_id = sequence number, to find an alert's event.
    let events: Vec<(String, Vec<u8>)> = (0..total)
        .map(|i| {
            let e = generator.next_event();
            let mut json: Value = serde_json::from_slice(&e.json).unwrap_or_default();
            json["input"]["data"]["task_id"] = Value::String(format!("B{i}"));
            (e.patn_id, serde_json::to_vec(&json).unwrap_or_default())
        })
        .collect();

    let metrics = KafkaMetrics::new();
    let pipeline = kafka::start(processor, config.clone(), metrics.clone())?;
    // Readers: alerts back, first arrival per event.
    let mut reader = ClientConfig::new();
    reader
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{}-reader", config.group_id))
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "5")
        .set("socket.nagle.disable", "true");
    for (key, value) in client_settings(args) {
        reader.set(key, value);
    }
    let reader: StreamConsumer = reader.create()?;
    reader.subscribe(&[config.alerts_topic.as_str()])?;
    let arrivals: Arc<Mutex<HashMap<usize, Instant>>> = Arc::default();
    let sink = Arc::clone(&arrivals);
    let read_task = tokio::spawn(async move {
        loop {
            let Ok(message) = reader.recv().await else {
                continue;
            };
            let now = Instant::now();
            let Some(seq) = message
                .payload()
                .and_then(|p| serde_json::from_slice::<Value>(p).ok())
                .and_then(|v| {
                    // An alert carries the event's task_id; the raw pipe forwards
                    // the event itself.
                    v["task_id"]
                        .as_str()
                        .or_else(|| v["input"]["data"]["task_id"].as_str())
                        .and_then(|t| t.strip_prefix('B')?.parse().ok())
                })
            else {
                continue;
            };
            sink.lock()
                .map(|mut m| {
                    m.entry(seq).or_insert(now);
                })
                .ok();
        }
    });

    // Wait for the group to form: a warm-up event must come back.
    let producer = producer(brokers, args)?;
    let warm = Instant::now();
    let mut warmups = 0u64;
    while metrics.messages_done.get() == 0 {
        warmups += 1;
        let record = FutureRecord::to(&config.input_topic)
            .key("warmup")
            .payload("{}");
        let _ = producer.send_result(record);
        tokio::time::sleep(Duration::from_millis(200)).await;
        if warm.elapsed() > Duration::from_secs(60) {
            bail!("latency: the pipeline did not start within 60 s");
        }
    }

    eprintln!(
        "latency: {total} events at {rate:.0} events/s for {} s",
        args.duration
    );
    let start = Instant::now();
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut due_times = Vec::with_capacity(total);
    for (i, (key, json)) in events.iter().enumerate() {
        let offset = Duration::from_secs_f64(i as f64 / rate);
        let due = start + offset;
        tokio::time::sleep_until(due.into()).await;
        due_times.push(due);
        // The message's timestamp is when it was due: the pipeline's own
        // event→alert histogram measures from it too.
        let record = FutureRecord::to(&config.input_topic)
            .key(key)
            .payload(json)
            .timestamp(start_ms + offset.as_millis() as i64);
        let mut record = record;
        loop {
            match producer.send_result(record) {
                Ok(_delivery) => break,
                Err((_, r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    let produced = start.elapsed();
    // Let the tail drain (bounded).
    let drain = Instant::now();
    while metrics.messages_done.get() < total as u64 + warmups
        && drain.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    read_task.abort();
    pipeline.stop().await?;

    let arrivals = arrivals.lock().map(|m| m.clone()).unwrap_or_default();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut max_us = 0;
    for (seq, at) in &arrivals {
        if let Some(due) = due_times.get(*seq) {
            let us = at.saturating_duration_since(*due).as_micros() as u64;
            max_us = max_us.max(us);
            hist.record(us.clamp(1, 60_000_000))?;
        }
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "latency at {rate:.0} events/s (achieved {:.0}/s): {} events with alerts measured; event→alert p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms; pipeline's own event→ack mean {:.1} ms, evaluate mean {:.2} ms per batch of {:.1} events",
        total as f64 / produced.as_secs_f64(),
        hist.len(),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        max_us as f64 / 1000.0,
        metrics.event_to_alert_seconds.get_sample_sum() * 1000.0
            / metrics.event_to_alert_seconds.get_sample_count().max(1) as f64,
        metrics.evaluate_seconds.get_sample_sum() * 1000.0
            / metrics.evaluate_seconds.get_sample_count().max(1) as f64,
        metrics.batch_events.get_sample_sum()
            / metrics.batch_events.get_sample_count().max(1) as f64,
    );
    Ok(())
}

/// A tansu broker on a free port with memory storage, killed on drop.
struct Tansu {
    child: Child,
    port: u16,
}

impl Tansu {
    fn start(binary: Option<PathBuf>) -> anyhow::Result<Self> {
        let binary = binary
            .or_else(|| {
                std::env::var_os("PATH").and_then(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join("tansu"))
                        .find(|p| p.is_file())
                })
            })
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu")))
            .filter(|p| p.is_file())
            .context("tansu not found: install it with `cargo install tansu --version 0.6.0 --locked --features dynostore`, or pass --brokers")?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("tansu did not listen on {port} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self { child, port })
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
