//! Every case of the national rule pack, through the real decoder and compiled
//! plans (the same runner as `fundwatch rules test`). Prints the case count.

use std::path::Path;
use std::sync::Arc;

use fundwatch_engine::{Clock, Engine, Program, ProgramOptions, run_pack_cases};
use fundwatch_rules::RulePack;

#[tokio::test]
async fn national_pack_cases_pass_and_cover_every_rule() {
    let pack =
        RulePack::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("rule-base/packs/national"))
            .expect("national pack loads");
    let kb = fundwatch_kb::national().expect("national KB loads");
    let program = Program::compile(Arc::new(pack), Arc::new(kb), &ProgramOptions::default())
        .await
        .expect("pack compiles");
    let engine = Engine::new(Arc::new(program), Clock::EventTime);
    let results = run_pack_cases(&engine).await;

    let cases: usize = results.iter().map(|r| r.cases.len()).sum();
    let mut failures = Vec::new();
    for rule in &results {
        for case in rule.cases.iter().filter(|c| !c.passed) {
            failures.push(format!(
                "{} / {}: {}",
                rule.rule_id, case.name, case.message
            ));
        }
        if !rule.covered() {
            failures.push(format!(
                "{}: {} positive / {} negative cases (needs ≥2 each)",
                rule.rule_id,
                rule.positives(),
                rule.negatives()
            ));
        }
    }
    println!("rule pack: {} rules, {cases} cases", results.len());
    assert!(results.len() >= 20, "only {} rules", results.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
