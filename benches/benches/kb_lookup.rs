#![allow(missing_docs)] // criterion_group! generates undocumented functions
//! Knowledge lookups as the rule functions make them: exact code, 12-character
//! prefix, miss, and a duplicate-charge pair.

use criterion::{Criterion, criterion_group, criterion_main};
use fundwatch_benches::national_kb;

fn kb_lookup(c: &mut Criterion) {
    let kb = national_kb();
    let day = 20_600; // 2026-05-25
    let gender = kb.class_id("药品区分性别使用").expect("class");
    let dup = kb.class_id("医疗服务项目重复收费").expect("class");
    let mut group = c.benchmark_group("kb_lookup");
    group.bench_function("exact_hit", |b| {
        b.iter(|| kb.lookup(gender, std::hint::black_box("XG02BAZ061Z007010279543"), day))
    });
    group.bench_function("prefix_hit_other_manufacturer", |b| {
        b.iter(|| kb.lookup(gender, std::hint::black_box("XG02BAZ061Z007019999999"), day))
    });
    group.bench_function("miss", |b| {
        b.iter(|| kb.lookup(gender, std::hint::black_box("XA11DAW036A001010104127"), day))
    });
    group.bench_function("pair_hit", |b| {
        b.iter(|| {
            kb.lookup_pair(
                dup,
                std::hint::black_box("001103000010000"),
                std::hint::black_box("001102000030000"),
                day,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, kb_lookup);
criterion_main!(benches);
