//! `rule_profile`: where the national pack's evaluation time goes on the synthetic
//! stream `kafka_bench` uses.
//!
//! Feeds `--warm` batches of `--batch` generated settlements through the engine (so
//! the stored history is what a stream would have), then lays out one more batch
//! and runs every rule over it once, printing each rule's time and, for the
//! `--show` slowest, its physical plan with DataFusion's operator metrics.
//!
//! ```sh
//! cargo build --release --workspace -j2 --bins
//! target/release/rule_profile --show 3
//! ```

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use fundwatch_engine::history::HistoryView;
use fundwatch_engine::{Clock, Engine, Event, decode_event};

/// Per-rule evaluation profile of the national pack.
#[derive(Debug, Parser)]
#[command(name = "rule_profile")]
struct Args {
    /// Events per batch (the Kafka default).
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    /// Batches evaluated (and recorded) before the profiled one.
    #[arg(long, default_value_t = 20)]
    warm: usize,
    /// Profiled batches (times are summed over them).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Print the annotated plan of this many slowest rules.
    #[arg(long, default_value_t = 0)]
    show: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (program, mut generator) = fundwatch_benches::national_stream_setup(args.seed).await?;
    let pack = Arc::clone(program.pack());
    let engine = Engine::new(Arc::clone(&program), Clock::Wall);
    let mut next_batch = || -> anyhow::Result<Vec<Event>> {
        (0..args.batch)
            .map(|_| decode_event(&generator.next_event().json).context("generated event"))
            .collect()
    };
    for _ in 0..args.warm {
        let events = next_batch()?;
        let refs: Vec<&Event> = events.iter().collect();
        engine.evaluate(&refs).await?;
    }
    let mut totals: Vec<(String, Duration, String)> = Vec::new();
    for _ in 0..args.rounds {
        let events = next_batch()?;
        let refs: Vec<&Event> = events.iter().collect();
        let batch = engine.history().build(&refs, &pack.manifest.dictionaries);
        for (rule_id, elapsed, plan) in program.profile(Arc::new(batch)).await? {
            match totals.iter_mut().find(|(id, _, _)| *id == rule_id) {
                Some(total) => {
                    total.1 += elapsed;
                    total.2 = plan;
                }
                None => totals.push((rule_id, elapsed, plan)),
            }
        }
        engine.evaluate(&refs).await?;
    }
    totals.sort_by_key(|(_, elapsed, _)| std::cmp::Reverse(*elapsed));
    let all: Duration = totals.iter().map(|(_, elapsed, _)| *elapsed).sum();
    println!(
        "{} rules, {:.1} ms per batch of {} events",
        totals.len(),
        all.as_secs_f64() * 1000.0 / args.rounds as f64,
        args.batch
    );
    for (rule_id, elapsed, _) in &totals {
        let rule = pack.rules.iter().find(|r| r.rule_id == *rule_id);
        println!(
            "{rule_id:<20} {:>7.2} ms {:>4.0}%  {}",
            elapsed.as_secs_f64() * 1000.0 / args.rounds as f64,
            100.0 * elapsed.as_secs_f64() / all.as_secs_f64(),
            rule.map_or("", |r| r.name.as_str())
        );
    }
    for (rule_id, _, plan) in totals.iter().take(args.show) {
        println!("\n== {rule_id} (last round)\n{plan}");
    }
    Ok(())
}
