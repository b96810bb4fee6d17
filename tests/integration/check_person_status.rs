//! `fundwatch check --person-status`: the deployment's person-status file (registered
//! deaths) reaches the rules as `person_status`, so 死亡后就医 fires for care after the
//! registered death and for nobody else; a bad file stops the run with the line and
//! field named.

use std::path::Path;
use std::process::Command;

fn event(patn_id: &str, mdtrt_id: &str, day: &str) -> String {
    serde_json::json!({
        "syscode": "FWTEST", "task_id": mdtrt_id, "trig_scen": "6", "rule_ids": [],
        "patient_dtos": [{
            "patn_id": patn_id, "patn_name": "测试", "gend": "1", "brdy": "1950-01-01",
            "poolarea": "110000", "curr_mdtrt_id": mdtrt_id,
            "fsi_encounter_dtos": [{
                "mdtrt_id": mdtrt_id, "medins_id": "H11010500001", "medins_lv": "3",
                "med_mdtrt_type": "1", "med_type": "11", "insutype": "310",
                "adm_date": format!("{day} 09:00:00"),
                "fsi_diagnose_dtos": [], "fsi_operation_dtos": [],
                "fsi_order_dtos": [{
                    "rx_id": format!("{mdtrt_id}-1"), "rxno": mdtrt_id, "hilist_type": "101",
                    "hilist_code": "XA11DAW036A001010104127", "cnt": 1, "pric": 18.5,
                    "sumamt": 18.5, "drord_begn_date": format!("{day} 09:10:00"),
                    "curr_drord_flag": "1"
                }]
            }]
        }]
    })
    .to_string()
}

fn check(input: &Path, output: &Path, status: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fundwatch"))
        .args(["check", "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .arg("--person-status")
        .arg(status)
        .output()
        .expect("runs fundwatch")
}

#[test]
fn care_after_a_registered_death_is_reported_and_a_bad_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = dir.path().join("person_status.csv");
    std::fs::write(
        &status,
        "patn_id,die_date,source\nP-DEAD,2026-03-01,公安户籍注销\nP-DEAD-TODAY,2026-03-04,民政火化\n",
    )
    .expect("status file");
    let input = dir.path().join("events.ndjson");
    let lines = [
        event("P-DEAD", "M-AFTER", "2026-03-04"),
        event("P-ALIVE", "M-ALIVE", "2026-03-04"),
        event("P-DEAD-TODAY", "M-SAME-DAY", "2026-03-04"),
    ];
    std::fs::write(&input, lines.join("\n") + "\n").expect("input");
    let output = dir.path().join("alerts.ndjson");
    let run = check(&input, &output, &status);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let alerts: Vec<serde_json::Value> = std::fs::read_to_string(&output)
        .expect("alerts")
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert JSON"))
        .filter(|a: &serde_json::Value| a["rule_id"] == "FW-死亡后就医")
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["mdtrt_id"], "M-AFTER");
    assert_eq!(alerts[0]["sev_deg"], "1");
    assert_eq!(alerts[0]["vola_amt"], 18.5);
    let text = alerts[0]["vola_cont"].as_str().unwrap_or_default();
    assert!(
        text.contains(
            "参保人登记死亡日期为2026-03-01（公安户籍注销），死亡后仍于2026-03-04起结算费用1条"
        ),
        "{text}"
    );

    std::fs::write(&status, "patn_id,die_date\nP-DEAD,2026-02-30\n").expect("bad file");
    let run = check(&input, &output, &status);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success(),
        "a bad person-status file must stop the run"
    );
    assert!(
        stderr.contains("line 2") && stderr.contains("`die_date` \"2026-02-30\" is not a date"),
        "{stderr}"
    );
}
