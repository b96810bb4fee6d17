#![allow(missing_docs)] // criterion_group! generates undocumented functions
//! History lookup cost per micro-batch: building `history_orders`,
//! `history_encounters` and `trace_uses` for a batch of 64 / 1024 events whose persons
//! each hold 180 days of history (benches/src/history_fixture.rs), and the whole
//! national pack evaluated on those tables.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fundwatch_benches::history_fixture::{Mix, event_json, filled_store};
use fundwatch_benches::{national_kb, national_pack};
use fundwatch_engine::batch::{EventBatch, TableName};
use fundwatch_engine::history::history_tables;
use fundwatch_engine::{Event, Program, ProgramOptions, decode_value};

/// Persons in the store the batches look up (each with ~8 encounters, ~43 lines).
const PERSONS: u64 = 100_000;

fn lookup(c: &mut Criterion) {
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
    let store = filled_store(PERSONS, Mix::default(), 400);

    let mut group = c.benchmark_group("history_lookup");
    for size in [64u64, 1024] {
        let evs: Vec<Event> = (0..size)
            .map(|k| decode_value(&event_json((k * 7919) % PERSONS, k, 4)).expect("event"))
            .collect();
        let refs: Vec<&Event> = evs.iter().collect();
        let rows = history_tables(&refs, &[&store], dicts).orders.num_rows();
        eprintln!("batch of {size}: {rows} history_orders rows");
        group.throughput(Throughput::Elements(size));
        group.bench_with_input(
            BenchmarkId::new("history_tables", size),
            &refs,
            |b, refs| b.iter(|| history_tables(refs, &[&store], dicts)),
        );
        group.bench_with_input(
            BenchmarkId::new("build_batch_no_history", size),
            &refs,
            |b, refs| b.iter(|| EventBatch::build(refs, dicts)),
        );
        group.bench_with_input(
            BenchmarkId::new("build_batch_with_history", size),
            &refs,
            |b, refs| b.iter(|| EventBatch::build_with_history(refs, dicts, Some(&store))),
        );
        let with = Arc::new(EventBatch::build_with_history(&refs, dicts, Some(&store)));
        let without = Arc::new(EventBatch::build(&refs, dicts));
        assert!(with.table(TableName::HistoryOrders).num_rows() > 0);
        group.bench_with_input(
            BenchmarkId::new("evaluate_pack_with_history", size),
            &with,
            |b, batch| {
                b.iter(|| {
                    rt.block_on(program.evaluate(Arc::clone(batch), None))
                        .expect("eval")
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("evaluate_pack_no_history", size),
            &without,
            |b, batch| {
                b.iter(|| {
                    rt.block_on(program.evaluate(Arc::clone(batch), None))
                        .expect("eval")
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = lookup
}
criterion_main!(benches);
