#![allow(missing_docs)] // criterion_group! generates undocumented functions
//! Evaluation of the national pack: the compiled program (plans kept, reset per
//! batch; with its rule gates, and without them) against the naive baseline (DataFusion `ctx.sql` re-planned per batch),
//! for the full pack and for each rule class, at batch sizes 1, 64 and 1024; then
//! the replanned/compiled ratios printed as a table (`ratio …` lines on stderr).
//!
//! `cargo bench --workspace -j2 --bench evaluate` (release; ~15 min; ratios: `2>&1 | grep ^ratio`);
//! one group: `cargo bench --workspace -j2 --bench evaluate -- evaluate_full_pack`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use fundwatch_benches::{events, national_kb, national_pack};
use fundwatch_engine::batch::{EventBatch, TABLES};
use fundwatch_engine::eval::{VIEWS, kb_functions};
use fundwatch_engine::{Event, Program, ProgramOptions};
use fundwatch_kb::KnowledgeBase;
use fundwatch_rules::{Rule, RulePack};

const SIZES: [usize; 3] = [1, 64, 1024];

/// What every bench needs, built once.
struct Setup {
    rt: tokio::runtime::Runtime,
    pack: Arc<RulePack>,
    kb: Arc<KnowledgeBase>,
    program: Program,
    /// Rule class → index of each of its rules in the program.
    classes: BTreeMap<String, Vec<usize>>,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let pack = national_pack();
    let kb = national_kb();
    let program = rt
        .block_on(Program::compile(
            Arc::clone(&pack),
            Arc::clone(&kb),
            &ProgramOptions::default(),
        ))
        .expect("compiles");
    let mut classes: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (idx, compiled) in program.rules().iter().enumerate() {
        classes
            .entry(compiled.rule.class.clone())
            .or_default()
            .push(idx);
    }
    Setup {
        rt,
        pack,
        kb,
        program,
        classes,
    }
}

impl Setup {
    fn batch(&self, size: usize) -> Arc<EventBatch> {
        let evs: Vec<Event> = events(&self.pack, size);
        let refs: Vec<&Event> = evs.iter().collect();
        Arc::new(EventBatch::build(&refs, &self.pack.manifest.dictionaries))
    }

    /// The compiled program over `batch`, all rules (`None`) or a subset.
    fn compiled(&self, batch: &Arc<EventBatch>, wanted: Option<&[bool]>) -> usize {
        self.rt
            .block_on(self.program.evaluate(Arc::clone(batch), wanted))
            .expect("eval")
            .len()
    }

    /// The compiled program with every plan run over the whole batch (no gates):
    /// what the gates save.
    fn compiled_ungated(&self, batch: &Arc<EventBatch>) -> usize {
        self.rt
            .block_on(self.program.evaluate_ungated(Arc::clone(batch), None))
            .expect("eval")
            .len()
    }

    /// The naive baseline: a fresh `SessionContext`, the batch registered as
    /// tables, every rule's SQL planned by `ctx.sql` and run.
    fn replanned<'a>(&self, batch: &EventBatch, rules: impl Iterator<Item = &'a Rule>) -> usize {
        let params = Arc::new(self.pack.manifest.parameters.clone());
        self.rt.block_on(async {
            let mut config = SessionConfig::new().with_target_partitions(1);
            config
                .options_mut()
                .optimizer
                .enable_dynamic_filter_pushdown = false;
            let ctx = SessionContext::new_with_config(config);
            for (table, name) in TABLES {
                let data = batch.table(table).clone();
                let mem = MemTable::try_new(data.schema(), vec![vec![data]]).expect("mem table");
                ctx.register_table(name, Arc::new(mem)).expect("register");
            }
            for udf in kb_functions(&self.kb, &params) {
                ctx.register_udf(udf);
            }
            for view in VIEWS {
                ctx.sql(view).await.expect("view");
            }
            let mut rows = 0;
            for rule in rules {
                let out = ctx
                    .sql(&rule.sql)
                    .await
                    .expect("plan")
                    .collect()
                    .await
                    .expect("run");
                rows += out.iter().map(|b| b.num_rows()).sum::<usize>();
            }
            rows
        })
    }

    fn enabled(&self) -> impl Iterator<Item = &Rule> {
        self.pack.rules.iter().filter(|r| r.enabled)
    }

    fn class_rules(&self, idxs: &[usize]) -> impl Iterator<Item = &Rule> {
        idxs.iter().map(|&i| &self.program.rules()[i].rule)
    }

    fn mask(&self, idxs: &[usize]) -> Vec<bool> {
        let mut wanted = vec![false; self.program.rules().len()];
        for &i in idxs {
            wanted[i] = true;
        }
        wanted
    }
}

fn evaluate(c: &mut Criterion) {
    let s = setup();
    let mut group = c.benchmark_group("evaluate_full_pack");
    for size in SIZES {
        let batch = s.batch(size);
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::new("compiled", size), &batch, |b, batch| {
            b.iter(|| s.compiled(batch, None))
        });
        group.bench_with_input(
            BenchmarkId::new("compiled_ungated", size),
            &batch,
            |b, batch| b.iter(|| s.compiled_ungated(batch)),
        );
        group.bench_with_input(BenchmarkId::new("replanned", size), &batch, |b, batch| {
            b.iter(|| s.replanned(batch, s.enabled()))
        });
        if size > 1 {
            let evs: Vec<Event> = events(&s.pack, size);
            let refs: Vec<&Event> = evs.iter().collect();
            group.bench_with_input(BenchmarkId::new("build_batch", size), &refs, |b, refs| {
                b.iter(|| EventBatch::build(refs, &s.pack.manifest.dictionaries))
            });
        }
    }
    group.finish();

    // One group per batch size; one compiled and one replanned bench per class.
    for size in SIZES {
        let batch = s.batch(size);
        let mut group = c.benchmark_group(format!("evaluate_per_class_{size}"));
        group.throughput(Throughput::Elements(size as u64));
        for (class, idxs) in &s.classes {
            let wanted = s.mask(idxs);
            group.bench_function(BenchmarkId::new("compiled", class), |b| {
                b.iter(|| s.compiled(&batch, Some(&wanted)))
            });
            group.bench_function(BenchmarkId::new("replanned", class), |b| {
                b.iter(|| s.replanned(&batch, s.class_rules(idxs)))
            });
        }
        group.finish();
    }
}

/// Median time of `f` over repeated runs for about `budget`.
fn median(budget: Duration, mut f: impl FnMut() -> usize) -> Duration {
    let mut times = Vec::new();
    let started = Instant::now();
    while times.len() < 5 || (started.elapsed() < budget && times.len() < 1000) {
        let t = Instant::now();
        std::hint::black_box(f());
        times.push(t.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

/// Prints `ratio <what> <size>: replanned X µs / compiled Y µs = Z×` lines: the
/// speed-up of planning once, which criterion's reports show only as two
/// separate numbers.
fn ratios(_: &mut Criterion) {
    let s = setup();
    let budget = Duration::from_millis(500);
    eprintln!("ratio: median replanned (ctx.sql per batch) / median compiled, same batch");
    for size in SIZES {
        let batch = s.batch(size);
        let compiled = median(budget, || s.compiled(&batch, None));
        let ungated = median(budget, || s.compiled_ungated(&batch));
        let replanned = median(budget, || s.replanned(&batch, s.enabled()));
        print_ratio("full_pack", size, replanned, compiled);
        print_ratio("full_pack_ungated", size, replanned, ungated);
        for (class, idxs) in &s.classes {
            let wanted = s.mask(idxs);
            let compiled = median(budget / 5, || s.compiled(&batch, Some(&wanted)));
            let replanned = median(budget / 5, || s.replanned(&batch, s.class_rules(idxs)));
            print_ratio(class, size, replanned, compiled);
        }
    }
}

fn print_ratio(what: &str, size: usize, replanned: Duration, compiled: Duration) {
    let (r, c) = (replanned.as_secs_f64() * 1e6, compiled.as_secs_f64() * 1e6);
    eprintln!(
        "ratio {what} {size}: replanned {r:.0} µs / compiled {c:.0} µs = {:.1}×",
        r / c.max(1e-3)
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = evaluate, ratios
}
criterion_main!(benches);
