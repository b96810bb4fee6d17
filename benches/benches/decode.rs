#![allow(missing_docs)] // criterion_group! generates undocumented functions
//! Decoding a 3101 request from bytes: the product's path (typed fast path, the
//! reference decoder only for what it refuses) and the reference decoder alone
//! (`serde_json::Value`, then a walk naming each field's path).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fundwatch_benches::{case_json, national_pack};
use fundwatch_engine::{decode_event, decode_reference};

fn decode(c: &mut Criterion) {
    let pack = national_pack();
    let bytes: Vec<Vec<u8>> = case_json(&pack)
        .iter()
        .map(|j| serde_json::to_vec(j).unwrap_or_default())
        .collect();
    let total: usize = bytes.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(bytes.len() as u64));
    let name = |path: &str| format!("{path}/{}_case_events_{}B", bytes.len(), total);
    group.bench_function(name("decode_event"), |b| {
        b.iter(|| {
            for event in &bytes {
                std::hint::black_box(decode_event(event).ok());
            }
        })
    });
    group.bench_function(name("reference"), |b| {
        b.iter(|| {
            for event in &bytes {
                std::hint::black_box(decode_reference(event).ok());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
