//! A kept physical plan, reset and re-executed per batch, gives exactly what a plan
//! compiled fresh for that batch gives (ARCHITECTURE.md: without the reset, reused
//! hash joins return stale results). Batches come from the national pack's cases,
//! evaluated in several different groupings so joins see different build sides.

use std::path::Path;
use std::sync::Arc;

use fundwatch_engine::batch::EventBatch;
use fundwatch_engine::{Event, Program, ProgramOptions, decode_value};
use fundwatch_rules::RulePack;

fn pack() -> Arc<RulePack> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rule-base/packs/national");
    Arc::new(RulePack::load(dir).expect("national pack"))
}

fn case_events(pack: &RulePack) -> Vec<Event> {
    let mut events = Vec::new();
    for rule in &pack.rules {
        for (i, case) in rule.cases.iter().enumerate() {
            let json = case
                .to_event(&format!("{}-{i}", rule.rule_id), rule.trig_scen[0])
                .expect("case expands");
            events.push(decode_value(&json).expect("case decodes"));
        }
    }
    events
}

#[tokio::test]
async fn reused_plans_equal_fresh_plans() {
    let pack = pack();
    let kb = Arc::new(fundwatch_kb::national().expect("national KB"));
    let options = ProgramOptions::default();
    let kept = Program::compile(Arc::clone(&pack), Arc::clone(&kb), &options)
        .await
        .expect("compiles");
    let events = case_events(&pack);
    assert!(events.len() > 40, "too few case events: {}", events.len());

    // Different groupings: singles, pairs, sevens, everything.
    let mut total_findings = 0;
    for size in [1, 7, events.len()] {
        // Fresh compilation costs ~1 s in a debug build: singles over a sample only.
        let sample = if size == 1 {
            &events[..12]
        } else {
            &events[..]
        };
        for chunk in sample.chunks(size) {
            let refs: Vec<&Event> = chunk.iter().collect();
            let batch = Arc::new(EventBatch::build(&refs, &pack.manifest.dictionaries));
            let reused = kept
                .evaluate(Arc::clone(&batch), None)
                .await
                .expect("reused");
            let fresh_program = Program::compile(Arc::clone(&pack), Arc::clone(&kb), &options)
                .await
                .expect("compiles");
            let fresh = fresh_program.evaluate(batch, None).await.expect("fresh");
            let sort = |mut f: Vec<fundwatch_engine::eval::Finding>| {
                f.sort_by(|a, b| {
                    (a.rule, a.event_idx, &a.alert_key, a.line_id).cmp(&(
                        b.rule,
                        b.event_idx,
                        &b.alert_key,
                        b.line_id,
                    ))
                });
                f
            };
            let (reused, fresh) = (sort(reused), sort(fresh));
            total_findings += fresh.len();
            assert_eq!(reused, fresh, "batch size {size}: reused plan differs");
        }
    }
    assert!(
        total_findings > 0,
        "no finding at all: the comparison proves nothing"
    );
}

/// The same events give the same alerts (jr_id included) whether evaluated one by
/// one or all in one batch: nothing in an alert may depend on batch positions.
#[tokio::test]
async fn alerts_do_not_depend_on_batching() {
    use fundwatch_engine::{Clock, Engine};
    let pack = pack();
    let kb = Arc::new(fundwatch_kb::national().expect("national KB"));
    let options = ProgramOptions::default();
    let compile = || Program::compile(Arc::clone(&pack), Arc::clone(&kb), &options);
    let one_by_one = Engine::new(
        Arc::new(compile().await.expect("compiles")),
        Clock::EventTime,
    );
    let all_at_once = Engine::new(
        Arc::new(compile().await.expect("compiles")),
        Clock::EventTime,
    );
    let events = case_events(&pack);

    let mut singles = Vec::new();
    for event in &events {
        singles.extend(
            one_by_one
                .evaluate(&[event])
                .await
                .expect("eval")
                .into_iter()
                .flatten(),
        );
    }
    let refs: Vec<&Event> = events.iter().collect();
    let together: Vec<_> = all_at_once
        .evaluate(&refs)
        .await
        .expect("eval")
        .into_iter()
        .flatten()
        .collect();
    assert!(!singles.is_empty());
    assert_eq!(singles, together);
}

/// Each compiled rule counts its runs and time, and `Program::profile` runs every rule
/// whose gate opens with DataFusion's operator metrics in its plan: what
/// `rule_profile` and `kafka_bench` report to rule authors.
#[tokio::test]
async fn rules_report_their_cost_and_profile() {
    let pack = pack();
    let kb = Arc::new(fundwatch_kb::national().expect("national KB"));
    let program = Program::compile(Arc::clone(&pack), kb, &ProgramOptions::default())
        .await
        .expect("compiles");
    assert!(program.rules().iter().all(|r| r.cost().0 == 0));

    let events = case_events(&pack);
    let refs: Vec<&Event> = events.iter().collect();
    let batch = Arc::new(EventBatch::build(&refs, &pack.manifest.dictionaries));
    program
        .evaluate(Arc::clone(&batch), None)
        .await
        .expect("evaluates");
    // A closed gate skips the plan (person-status rules need a history store).
    let skipped = program.gated_out(&batch);
    assert!(skipped.len() < 3, "gates closed for {skipped:?}");
    for (idx, rule) in program.rules().iter().enumerate() {
        let (runs, time) = rule.cost();
        let expected = u64::from(!skipped.contains(&idx));
        assert_eq!(runs, expected, "{} ran {runs} times", rule.rule.rule_id);
        assert_eq!(time.is_zero(), expected == 0, "{}", rule.rule.rule_id);
    }

    let profile = program.profile(batch).await.expect("profiles");
    assert_eq!(profile.len(), program.rules().len() - skipped.len());
    assert!(
        profile.windows(2).all(|w| w[0].1 >= w[1].1),
        "slowest first"
    );
    for (rule_id, _, plan) in &profile {
        assert!(
            plan.contains("output_rows="),
            "{rule_id}: no operator metrics in\n{plan}"
        );
    }
    // Profiling is not counted as evaluation.
    let runs: u64 = program.rules().iter().map(|r| r.cost().0).sum();
    assert_eq!(runs as usize, program.rules().len() - skipped.len());
}
