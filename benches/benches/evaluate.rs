#![allow(missing_docs)] // criterion_group! generates undocumented functions
//! Evaluation of the national pack: the compiled program (plans kept, reset per
//! batch) against the naive baseline (DataFusion `ctx.sql` re-planned per batch),
//! per batch size, plus each rule alone.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use fundwatch_benches::{events, national_kb, national_pack};
use fundwatch_engine::batch::{EventBatch, TABLES};
use fundwatch_engine::eval::kb_functions;
use fundwatch_engine::{Event, Program, ProgramOptions};

fn evaluate(c: &mut Criterion) {
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
    let dicts = &pack.manifest.dictionaries;
    let params = Arc::new(pack.manifest.parameters.clone());

    let mut group = c.benchmark_group("evaluate_full_pack");
    for size in [1usize, 64, 1024] {
        let evs: Vec<Event> = events(&pack, size);
        let refs: Vec<&Event> = evs.iter().collect();
        let batch = Arc::new(EventBatch::build(&refs, dicts));
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::new("compiled", size), &batch, |b, batch| {
            b.iter(|| {
                rt.block_on(program.evaluate(Arc::clone(batch), None))
                    .expect("eval")
            })
        });
        if size > 1 {
            group.bench_with_input(BenchmarkId::new("build_batch", size), &refs, |b, refs| {
                b.iter(|| EventBatch::build(refs, dicts))
            });
        }
        group.bench_with_input(BenchmarkId::new("replanned", size), &batch, |b, batch| {
            b.iter(|| {
                rt.block_on(async {
                    let mut config = SessionConfig::new().with_target_partitions(1);
                    config
                        .options_mut()
                        .optimizer
                        .enable_dynamic_filter_pushdown = false;
                    let ctx = SessionContext::new_with_config(config);
                    for (table, name) in TABLES {
                        let data = batch.table(table).clone();
                        let mem =
                            MemTable::try_new(data.schema(), vec![vec![data]]).expect("mem table");
                        ctx.register_table(name, Arc::new(mem)).expect("register");
                    }
                    for udf in kb_functions(&kb, &params) {
                        ctx.register_udf(udf);
                    }
                    let mut rows = 0;
                    for rule in pack.rules.iter().filter(|r| r.enabled) {
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
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("evaluate_per_rule_64");
    let evs: Vec<Event> = events(&pack, 64);
    let refs: Vec<&Event> = evs.iter().collect();
    let batch = Arc::new(EventBatch::build(&refs, dicts));
    let n = program.rules().len();
    for (idx, compiled) in program.rules().iter().enumerate() {
        let mut wanted = vec![false; n];
        wanted[idx] = true;
        group.bench_function(compiled.rule.rule_id.as_str(), |b| {
            b.iter(|| {
                rt.block_on(program.evaluate(Arc::clone(&batch), Some(&wanted)))
                    .expect("eval")
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = evaluate
}
criterion_main!(benches);
