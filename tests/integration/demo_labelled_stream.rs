//! The demo's labelled synthetic stream through the real decoder and engine, in
//! process: every injected violation must be found (recall 100%), no alert may be
//! false, and every enabled rule of the national pack must have been injected at
//! least once — so a new rule without a generator recipe fails here.

use std::sync::Arc;

use fundwatch_connectors::synthetic::{Generator, GeneratorConfig, Scorecard};
use fundwatch_engine::{Clock, Engine, Event, Program, ProgramOptions, decode_event};
use fundwatch_rules::RulePack;

const EVENTS: usize = 3_000;
const BATCH: usize = 256;

fn pack() -> Arc<RulePack> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/rule-base/packs/national");
    Arc::new(RulePack::load(dir).expect("the national rule pack loads"))
}

fn kb() -> Arc<fundwatch_kb::KnowledgeBase> {
    Arc::new(fundwatch_kb::national().expect("the shipped national KB loads"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_injected_violation_is_found_and_nothing_else() {
    let (kb, pack) = (kb(), pack());
    let program = Program::compile(
        Arc::clone(&pack),
        Arc::clone(&kb),
        &ProgramOptions::default(),
    )
    .await
    .expect("the pack compiles against the KB");
    let engine = Engine::new(Arc::new(program), Clock::EventTime);
    let config = GeneratorConfig {
        seed: 7,
        violation_share: 0.5,
        ..GeneratorConfig::default()
    };
    let mut generator = Generator::new(kb, &pack, config).expect("the generator builds");

    let uncovered: Vec<String> = generator
        .coverage()
        .iter()
        .filter_map(|c| {
            c.missing
                .as_ref()
                .map(|why| format!("{} ({}): {why}", c.rule_id, c.class))
        })
        .collect();
    assert!(
        uncovered.is_empty(),
        "enabled rules without a recipe: {uncovered:#?}"
    );

    let mut score = Scorecard::new(10);
    let mut produced = 0;
    while produced < EVENTS {
        let mut batch: Vec<Event> = Vec::with_capacity(BATCH);
        for _ in 0..BATCH.min(EVENTS - produced) {
            let event = generator.next_event();
            Generator::register_status(&engine, &event);
            let decoded = decode_event(&event.json).unwrap_or_else(|err| {
                panic!("synthetic event {} does not decode: {err}", event.mdtrt_id)
            });
            score.add_labels(&event.labels);
            batch.push(decoded);
            produced += 1;
        }
        let refs: Vec<&Event> = batch.iter().collect();
        let alerts = engine.evaluate(&refs).await.expect("the batch evaluates");
        for alert in alerts.iter().flatten() {
            score.add_alert(alert);
        }
    }

    let without_labels: Vec<&str> = pack
        .rules
        .iter()
        .filter(|r| r.enabled)
        .filter(|r| {
            score
                .per_rule()
                .get(&r.rule_id)
                .is_none_or(|s| s.labels == 0)
        })
        .map(|r| r.rule_id.as_str())
        .collect();
    assert!(
        without_labels.is_empty(),
        "enabled rules that got no injected violation in {EVENTS} events: {without_labels:?}"
    );

    let false_alerts: Vec<String> = score
        .false_examples()
        .iter()
        .map(|a| {
            let rx: Vec<&str> = a
                .judge_result_detail_dtos
                .iter()
                .filter(|d| d.vola_item_type == "1")
                .map(|d| d.rx_id.as_str())
                .collect();
            format!("{} {} {rx:?}: {}", a.rule_id, a.mdtrt_id, a.vola_cont)
        })
        .collect();
    assert!(
        score.perfect(),
        "recall {:.2}% ({} of {} labels), {} false alerts\nper rule: {:#?}\nmissed (first 10): {:#?}\nfalse (first 10): {false_alerts:#?}",
        score.recall() * 100.0,
        score.matched(),
        score.labels(),
        score.false_alerts(),
        score.per_rule(),
        score.missed(10),
    );
}

#[test]
fn the_same_seed_gives_the_same_stream() {
    let (kb, pack) = (kb(), pack());
    let config = GeneratorConfig {
        seed: 11,
        ..GeneratorConfig::default()
    };
    let mut a = Generator::new(Arc::clone(&kb), &pack, config.clone()).expect("builds");
    let mut b = Generator::new(kb, &pack, config).expect("builds");
    for _ in 0..300 {
        let (x, y) = (a.next_event(), b.next_event());
        assert_eq!(x.json, y.json);
        assert_eq!(x.labels, y.labels);
    }
}
