//! Shared inputs for FundWatch's benchmarks: the national pack, the shipped KB and
//! realistic events built from the pack's own cases.

pub mod history_fixture;

/// The product's allocator (see `src/main.rs`): every bench binary links this crate,
/// so criterion benches, `loadgen` and `kafka_bench` measure with it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::sync::Arc;

use fundwatch_engine::{Event, Program, ProgramOptions, decode_value};
use fundwatch_kb::KnowledgeBase;
use fundwatch_rules::RulePack;

/// The national pack in this repository.
pub fn national_pack() -> Arc<RulePack> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rule-base/packs/national");
    Arc::new(RulePack::load(dir).unwrap_or_else(|err| panic!("national pack: {err}")))
}

/// The national pack compiled against the shipped KB (default options), with
/// the synthetic generator over the same pack and KB (`seed`): what the stream
/// benchmarks (`kafka_bench`, `rule_profile`) evaluate.
pub async fn national_stream_setup(
    seed: u64,
) -> anyhow::Result<(Arc<Program>, fundwatch_connectors::synthetic::Generator)> {
    use anyhow::Context;
    use fundwatch_connectors::synthetic::{Generator, GeneratorConfig};
    let pack = national_pack();
    let kb = national_kb();
    let program = Program::compile(
        Arc::clone(&pack),
        Arc::clone(&kb),
        &ProgramOptions::default(),
    )
    .await
    .context("compiling the national pack")?;
    let generator = Generator::new(
        kb,
        &pack,
        GeneratorConfig {
            seed,
            ..GeneratorConfig::default()
        },
    )
    .context("synthetic generator")?;
    Ok((Arc::new(program), generator))
}

/// The shipped national KB.
pub fn national_kb() -> Arc<KnowledgeBase> {
    Arc::new(fundwatch_kb::national().unwrap_or_else(|err| panic!("national KB: {err}")))
}

/// The pack's case events as national JSON (every rule class, positive and negative).
pub fn case_json(pack: &RulePack) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for rule in &pack.rules {
        for (i, case) in rule.cases.iter().enumerate() {
            if let Ok(json) = case.to_event(&format!("{}-{i}", rule.rule_id), rule.trig_scen[0]) {
                out.push(json);
            }
        }
    }
    out
}

/// `n` events cycling through the pack's cases.
pub fn events(pack: &RulePack, n: usize) -> Vec<Event> {
    let json = case_json(pack);
    json.iter()
        .cycle()
        .take(n)
        .filter_map(|j| decode_value(j).ok())
        .collect()
}
