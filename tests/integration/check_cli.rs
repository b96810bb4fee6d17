//! `fundwatch check` end to end: the real binary over a fixture with good and bad
//! lines; output is byte-identical across runs; bad lines are reported and skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn check(input: &Path, output: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fundwatch"))
        .args(["check", "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .output()
        .expect("runs fundwatch")
}

#[test]
fn check_twice_is_byte_identical_and_reports_bad_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    let first = check(&fixture("events.ndjson"), &a);
    let second = check(&fixture("events.ndjson"), &b);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "check failed: {stderr}");
    assert!(second.status.success());

    let out_a = std::fs::read(&a).expect("output a");
    let out_b = std::fs::read(&b).expect("output b");
    assert_eq!(out_a, out_b, "two runs differ");

    // Line 3 has an unreadable birth date, line 4 is not JSON: both named, both skipped.
    assert!(
        stderr.contains("events.ndjson:3: skipped: input.data.patient_dtos[0].brdy"),
        "{stderr}"
    );
    assert!(
        stderr.contains("events.ndjson:4: skipped: $: not valid JSON"),
        "{stderr}"
    );

    let alerts: Vec<serde_json::Value> = String::from_utf8(out_a)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert JSON"))
        .collect();
    // The SPEC example (male patient, female-only IUD) and the female patient with a
    // male-only drug; the female patient with the IUD gets nothing.
    let sex_alerts: Vec<&serde_json::Value> = alerts
        .iter()
        .filter(|a| a["rule_id"] == "GZ10000301004000")
        .collect();
    assert_eq!(sex_alerts.len(), 2, "{alerts:#?}");
    assert_eq!(sex_alerts[0]["patn_id"], "P0001");
    assert_eq!(
        sex_alerts[0]["vola_cont"],
        "左炔诺孕酮宫内节育系统限女性使用，与患者性别(男)不符"
    );
    assert_eq!(sex_alerts[0]["vola_amt"], 1153.0);
    assert_eq!(
        sex_alerts[0]["judge_result_detail_dtos"][0]["rx_id"],
        "RX-100"
    );
    assert_eq!(sex_alerts[0]["fixmedins_code"], "H43079600001");
    assert!(
        sex_alerts[0]["vola_evid"]
            .as_str()
            .is_some_and(|e| e.contains("第一批") && e.contains("药品区分性别使用")),
        "{}",
        sex_alerts[0]["vola_evid"]
    );
    assert_eq!(sex_alerts[1]["patn_id"], "P0005");
    assert_eq!(sex_alerts[1]["vola_amt"], 241.0);
    assert!(alerts.iter().all(|a| a["patn_id"] != "P0002"));
}

#[test]
fn check_fails_only_when_no_line_is_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("bad.ndjson");
    std::fs::write(&input, "not json\n{\"patient_dtos\": 3}\n").expect("write");
    let out = check(&input, &dir.path().join("out.ndjson"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.ndjson:2: skipped: patient_dtos: expected an array"),
        "{stderr}"
    );
}
