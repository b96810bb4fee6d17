//! Issue 7 item 5: `fundwatch backtest` over NDJSON and over the same events as
//! Parquet (read with DataFusion) gives the same hits and money per rule as
//! `fundwatch check`, and `--against` a pack without one rule reports exactly
//! that rule's alerts as only-A.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::registry_support::{derive_pack, fundwatch, fundwatch_ok};

const SEX: &str = "GZ10000301004000";

fn report(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report")).expect("report JSON")
}

#[test]
fn backtest_matches_check_and_diffs_packs_over_ndjson_and_parquet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = dir.path().join("registry");
    let reg = registry.to_str().expect("utf8");
    let fixture = crate::http_support::repo().join("tests/fixtures/events.ndjson");
    let input = fixture.to_str().expect("utf8");
    let national = crate::registry_support::national_pack();
    let pack_a = national.to_str().expect("utf8");
    let without = derive_pack(
        dir.path(),
        "without-sex",
        "1.0.0",
        |file, t| (file != format!("{SEX}.toml")).then_some(t),
        &[],
    );
    let pack_b = without.to_str().expect("utf8");

    // `check` on the same input: alerts per rule.
    let alerts_file = dir.path().join("alerts.ndjson");
    fundwatch_ok(&[
        "check",
        "--input",
        input,
        "--output",
        alerts_file.to_str().expect("utf8"),
        "--rules",
        pack_a,
    ]);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for line in std::fs::read_to_string(&alerts_file)
        .expect("alerts")
        .lines()
    {
        let alert: Value = serde_json::from_str(line).expect("alert");
        *expected
            .entry(alert["rule_id"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    assert!(expected.get(SEX).copied().unwrap_or(0) >= 2, "{expected:?}");

    let parquet = dir.path().join("events.parquet");
    let wrote = fundwatch_ok(&[
        "backtest",
        "--registry",
        reg,
        "--input",
        input,
        "--write-parquet",
        parquet.to_str().expect("utf8"),
    ]);
    assert!(wrote.contains("fundwatch-events/1"), "{wrote}");

    let mut reports = Vec::new();
    for (name, source) in [
        ("ndjson", input),
        ("parquet", parquet.to_str().expect("utf8")),
    ] {
        let out = dir.path().join(format!("{name}.json"));
        let run = fundwatch(&[
            "backtest",
            "--registry",
            reg,
            "--pack",
            pack_a,
            "--against",
            pack_b,
            "--input",
            source,
            "--report",
            out.to_str().expect("utf8"),
        ]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{stderr}");
        assert!(stderr.contains("100%"), "progress shown: {stderr}");
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(stdout.contains("only A"), "{stdout}");
        reports.push(report(&out));
    }
    let (ndjson, parquet_report) = (&reports[0], &reports[1]);
    assert_eq!(
        ndjson["rules"], parquet_report["rules"],
        "same per-rule results"
    );
    assert_eq!(ndjson["events"], parquet_report["events"]);
    // The fixture's unreadable lines are counted, not evaluated, from both inputs.
    assert!(ndjson["undecodable"].as_u64().unwrap_or(0) >= 1);
    assert_eq!(ndjson["undecodable"], parquet_report["undecodable"]);

    let rules = ndjson["rules"].as_object().expect("rules");
    for (rule_id, count) in &expected {
        assert_eq!(rules[rule_id]["hits_a"], *count, "{rule_id}: {ndjson}");
    }
    let sex = &rules[SEX];
    assert_eq!(sex["hits_b"], 0);
    assert_eq!(sex["only_a"], sex["hits_a"]);
    assert_eq!(sex["only_b"], 0);
    for (rule_id, r) in rules {
        if rule_id != SEX {
            assert_eq!(r["hits_a"], r["hits_b"], "{rule_id}");
            assert_eq!(r["only_a"], 0, "{rule_id}");
            assert_eq!(r["money_a"], r["money_b"], "{rule_id}");
        }
    }
    assert_eq!(ndjson["only_a"], sex["hits_a"]);
    assert_eq!(ndjson["only_b"], 0);

    // --from keeps only events served on or after the date (Parquet filter).
    let late = dir.path().join("late.json");
    fundwatch_ok(&[
        "backtest",
        "--registry",
        reg,
        "--pack",
        pack_a,
        "--input",
        parquet.to_str().expect("utf8"),
        "--from",
        "2099-01-01",
        "--report",
        late.to_str().expect("utf8"),
    ]);
    assert_eq!(report(&late)["events"], 0);
}
