//! Memory and disk of the per-person history at scale: fills a `HistoryStore` with N
//! persons × 180 days (benches/src/history_fixture.rs), then reports resident memory
//! per person, the snapshot's size on disk, and snapshot write / restore time.
//!
//! ```text
//! cargo run --release -p fundwatch-benches --bin history_footprint -- --persons 1000000
//! target/debug/history_footprint --persons 100000 --layout plain   # the former layout + JSON
//! ```
//! Results and machine: benches/RESULTS.md § History.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use fundwatch_benches::history_fixture::{Mix, Rng, filled_store, person_records};
use fundwatch_engine::history::{
    HistEncounter, HistLine, TraceRecord, read_snapshot, write_snapshot,
};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Layout {
    /// The store as the engine keeps it, with its postcard snapshot.
    Compact,
    /// The former layout (a `String` per field, lines beside encounters) with a JSON
    /// snapshot, for comparison. Needs ~23 KB per person: keep N ≤ 200k.
    Plain,
}

#[derive(Debug, Parser)]
#[command(about = "Memory and disk of the per-person history store")]
struct Args {
    /// Persons to fill.
    #[arg(long, default_value_t = 1_000_000)]
    persons: u64,
    /// Days of history per person.
    #[arg(long, default_value_t = 180)]
    days: u32,
    /// Average encounters per person.
    #[arg(long, default_value_t = 8)]
    encounters: u32,
    /// Store layout.
    #[arg(long, value_enum, default_value_t = Layout::Compact)]
    layout: Layout,
    /// Directory for the snapshot (removed afterwards).
    #[arg(long, default_value = "/tmp/fundwatch-history-footprint")]
    dir: PathBuf,
}

/// A field of /proc/self/status in bytes (VmRSS, VmHWM).
fn proc_status(field: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("/proc/self/status")?;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            let kb: u64 = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .with_context(|| format!("{field}: {rest}"))?;
            return Ok(kb * 1024);
        }
    }
    bail!("{field} not in /proc/self/status")
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The former layout: `patn_id` → (encounters, lines); code → first use.
type Plain = (
    HashMap<String, (Vec<HistEncounter>, Vec<HistLine>)>,
    HashMap<String, TraceRecord>,
);

fn main() -> Result<()> {
    let args = Args::parse();
    let mix = Mix {
        days: args.days,
        encounters: args.encounters,
    };
    std::fs::create_dir_all(&args.dir).with_context(|| args.dir.display().to_string())?;
    println!(
        "history_footprint: {} persons × {} days, ~{} encounters each, layout {:?} ({} build)",
        args.persons,
        args.days,
        args.encounters,
        args.layout,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let rss0 = proc_status("VmRSS")?;
    let t = Instant::now();
    match args.layout {
        Layout::Compact => {
            let store = filled_store(args.persons, mix, args.days + 10);
            let fill = t.elapsed();
            let rss1 = proc_status("VmRSS")?;
            let (persons, encounters, lines, codes, symbols) = store.counts();
            report_fill(args.persons, fill.as_secs_f64(), rss0, rss1);
            println!(
                "  held: {persons} persons, {encounters} encounters ({:.1}/person), {lines} lines ({:.1}/person), {codes} trace codes ({:.1}/person), {symbols} interned strings",
                encounters as f64 / persons as f64,
                lines as f64 / persons as f64,
                codes as f64 / persons as f64,
            );
            let path = args.dir.join("snapshot.bin");
            let t = Instant::now();
            let file = File::create(&path)?;
            let mut writer = BufWriter::with_capacity(1 << 20, file);
            let bytes = write_snapshot(&store, Some(42), &mut writer)?;
            writer
                .into_inner()
                .map_err(|e| e.into_error())?
                .sync_all()?;
            let write = t.elapsed().as_secs_f64();
            println!(
                "  snapshot: {:.1} MiB on disk = {:.0} bytes/person; write + fsync {write:.2} s ({:.0} MiB/s)",
                mib(bytes),
                bytes as f64 / persons as f64,
                mib(bytes) / write
            );
            drop(store);
            let t = Instant::now();
            let file = File::open(&path)?;
            let (back, position) =
                read_snapshot(BufReader::with_capacity(1 << 20, file), args.days + 10)
                    .map_err(anyhow::Error::msg)?;
            let restore = t.elapsed().as_secs_f64();
            if position != Some(42) || back.counts() != (persons, encounters, lines, codes, symbols)
            {
                bail!(
                    "restored store differs: {:?} at {position:?}",
                    back.counts()
                );
            }
            println!("  restore: {restore:.2} s (same counts, position 42)");
            std::fs::remove_file(&path)?;
        }
        Layout::Plain => {
            let mut plain: Plain = (HashMap::new(), HashMap::new());
            let mut rng = Rng::new(7);
            for i in 0..args.persons {
                for record in person_records(i, mix, &mut rng) {
                    let person = plain.0.entry(record.patn_id).or_default();
                    person.0.extend(record.encounters);
                    person.1.extend(record.lines);
                    for (code, used) in record.traces {
                        plain.1.entry(code).or_insert(used);
                    }
                }
            }
            let fill = t.elapsed();
            let rss1 = proc_status("VmRSS")?;
            report_fill(args.persons, fill.as_secs_f64(), rss0, rss1);
            let path = args.dir.join("snapshot.json");
            let t = Instant::now();
            let file = File::create(&path)?;
            let mut writer = BufWriter::with_capacity(1 << 20, file);
            serde_json::to_writer(&mut writer, &plain)?;
            writer.flush()?;
            writer
                .into_inner()
                .map_err(|e| e.into_error())?
                .sync_all()?;
            let write = t.elapsed().as_secs_f64();
            let bytes = std::fs::metadata(&path)?.len();
            println!(
                "  JSON snapshot: {:.1} MiB on disk = {:.0} bytes/person; write + fsync {write:.2} s",
                mib(bytes),
                bytes as f64 / args.persons as f64
            );
            drop(plain);
            let t = Instant::now();
            let back: Plain =
                serde_json::from_reader(BufReader::with_capacity(1 << 20, File::open(&path)?))?;
            println!(
                "  JSON restore: {:.2} s ({} persons)",
                t.elapsed().as_secs_f64(),
                back.0.len()
            );
            std::fs::remove_file(&path)?;
        }
    }
    println!("  peak RSS (VmHWM): {:.0} MiB", mib(proc_status("VmHWM")?));
    Ok(())
}

fn report_fill(persons: u64, secs: f64, rss0: u64, rss1: u64) {
    let grown = rss1.saturating_sub(rss0);
    println!(
        "  fill: {secs:.1} s; resident memory +{:.0} MiB = {:.0} bytes/person (VmRSS {:.0} → {:.0} MiB); per 1M persons: {:.2} GiB",
        mib(grown),
        grown as f64 / persons as f64,
        mib(rss0),
        mib(rss1),
        grown as f64 / persons as f64 * 1e6 / (1024.0 * 1024.0 * 1024.0)
    );
}
