//! Rule gates (docs/rule-pack.md "Gates"): a batch that cannot give a rule a
//! finding skips its plan, and a gate never hides a finding.

use std::path::Path;
use std::sync::Arc;

use fundwatch_engine::batch::EventBatch;
use fundwatch_engine::eval::Finding;
use fundwatch_engine::{
    Clock, Engine, Event, Program, ProgramOptions, decode_value, run_pack_cases,
};
use fundwatch_rules::RulePack;

use crate::registry_support::{derive_pack, national_pack};

async fn compile(pack: &Path) -> Result<Program, String> {
    let pack = RulePack::load(pack).map_err(|err| err.to_string())?;
    let kb = fundwatch_kb::national().expect("national KB loads");
    Program::compile(Arc::new(pack), Arc::new(kb), &ProgramOptions::default())
        .await
        .map_err(|err| err.to_string())
}

/// Every case event of the national pack, alone in a batch, gives the same
/// findings for every rule with the gates as without, and the gates do skip
/// most plans (else they would be worth nothing).
#[tokio::test]
async fn national_gates_hide_no_finding_and_skip_most_plans() {
    let program = compile(&national_pack())
        .await
        .expect("national pack compiles");
    let dicts = program.pack().manifest.dictionaries.clone();
    let events: Vec<(String, Event)> = program
        .pack()
        .rules
        .iter()
        .flat_map(|rule| {
            rule.cases.iter().enumerate().map(move |(i, case)| {
                let case_id = format!("{}-{}", rule.rule_id, i + 1);
                let json = case
                    .to_event(&case_id, rule.trig_scen[0])
                    .expect("case event");
                (case_id, decode_value(&json).expect("case event decodes"))
            })
        })
        .collect();
    assert!(events.len() > 200, "only {} case events", events.len());

    // Each case event alone in a batch: most gates close.
    let (mut skipped, mut plans) = (0usize, 0usize);
    for (case_id, event) in &events {
        let batch = Arc::new(EventBatch::build(&[event], &dicts));
        let (gated, ungated) = both_ways(&program, &batch).await;
        assert_eq!(
            gated, ungated,
            "case {case_id}: the gates changed the findings"
        );
        skipped += program.gated_out(&batch).len();
        plans += program.rules().len();
    }
    assert!(
        skipped * 2 > plans,
        "gates skipped only {skipped} of {plans} plans over {} case events",
        events.len()
    );

    // All case events in one batch: each gated rule runs over only the events with
    // its codes, and must find exactly what it finds over the whole batch.
    let refs: Vec<&Event> = events.iter().map(|(_, event)| event).collect();
    let batch = Arc::new(EventBatch::build(&refs, &dicts));
    let (gated, ungated) = both_ways(&program, &batch).await;
    assert!(ungated.len() > 100, "only {} findings", ungated.len());
    assert_eq!(
        gated, ungated,
        "narrowing a batch to each rule's events changed the findings"
    );
}

/// The program's findings over `batch` with the gates and without, sorted.
async fn both_ways(program: &Program, batch: &Arc<EventBatch>) -> (Vec<Finding>, Vec<Finding>) {
    let key = |f: &Finding| format!("{f:?}");
    let mut gated = program
        .evaluate(Arc::clone(batch), None)
        .await
        .expect("gated");
    let mut ungated = program
        .evaluate_ungated(Arc::clone(batch), None)
        .await
        .expect("ungated");
    gated.sort_by_key(key);
    ungated.sort_by_key(key);
    (gated, ungated)
}

/// A rule whose gate is wrong (it reports lines the class does NOT list, but its
/// gate waits for a listed one) fails `rules test` on the case the gate hides.
#[tokio::test]
async fn a_gate_that_hides_a_finding_fails_the_pack_test() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rule = r#"
rule_id = "FW-错误的门"
name = "未列入性别限定的药品"
class = "药品区分性别使用"
tier = "政策类"
sev_deg = "2"
vola_bhvr_type = "3"
trig_scen = [4]
message = "{hilist_name}未列入性别限定目录"
legal_basis = "测试"
penalty_class = "违法违规使用"
gate = { codes_in = ["药品区分性别使用"] }
sql = """
SELECT event_idx, line_id, sumamt AS vola_amt
FROM orders
WHERE curr AND kb_lookup('药品区分性别使用', hilist_code, service_date) IS NULL
"""

[[cases]]
name = "an unlisted drug is reported, but the gate waits for a listed one"
orders = [{ rx_id = "R1", hilist_code = "XA11DAW036A001010104127", hilist_name = "维生素B1片" }]
expect = [{ rx_ids = ["R1"] }]
"#;
    let pack = derive_pack(
        dir.path(),
        "gates",
        "1.0.0",
        |_, _| None,
        &[("FW-错误的门.toml", rule.to_string())],
    );
    let program = compile(&pack).await.expect("pack compiles");
    let engine = Engine::new(Arc::new(program), Clock::EventTime);
    let results = run_pack_cases(&engine).await;
    let case = &results[0].cases[0];
    assert!(!case.passed, "the wrong gate went unnoticed");
    assert!(
        case.message.contains("gate (codes_in/rows_in) is wrong"),
        "{}",
        case.message
    );
}

/// A gate naming a class the SQL does not read, or a table that does not exist,
/// is a compile error naming the rule.
#[tokio::test]
async fn gates_naming_unknown_classes_or_tables_do_not_compile() {
    for (gate, expected) in [
        (
            r#"gate = { codes_in = ["药品儿童专用"] }"#,
            "gate.codes_in names class `药品儿童专用`",
        ),
        (
            r#"gate = { rows_in = ["trace_codes"] }"#,
            "gate.rows_in names table `trace_codes`",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let pack = derive_pack(
            dir.path(),
            "gates",
            "1.0.0",
            |file, text| {
                (file == "GZ10000301004000.toml").then(|| {
                    text.lines()
                        .map(|line| {
                            if line.starts_with("gate = ") {
                                gate
                            } else {
                                line
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })
            },
            &[],
        );
        let err = compile(&pack).await.expect_err("a bad gate compiles");
        assert!(
            err.contains("GZ10000301004000") && err.contains(expected),
            "{err}"
        );
    }
}
