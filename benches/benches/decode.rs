#![allow(missing_docs)] // criterion_group! generates undocumented functions
//! Decoding a 3101 request from bytes.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fundwatch_benches::{case_json, national_pack};
use fundwatch_engine::decode_event;

fn decode(c: &mut Criterion) {
    let pack = national_pack();
    let bytes: Vec<Vec<u8>> = case_json(&pack)
        .iter()
        .map(|j| serde_json::to_vec(j).unwrap_or_default())
        .collect();
    let total: usize = bytes.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(bytes.len() as u64));
    group.bench_function(format!("{}_case_events_{}B", bytes.len(), total), |b| {
        b.iter(|| {
            for event in &bytes {
                std::hint::black_box(decode_event(event).ok());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
