//! History rules end to end through the real binary (`fundwatch check`): a synthetic
//! six-month stream of 36 persons, one event per encounter in time order plus one event
//! that arrives late, generated here deterministically; the alerts of the history rules
//! must be exactly the ones written down below — none missing, none extra — whether the
//! history comes from earlier events of the same micro-batch (one batch), from the store
//! (one event per batch), or from a durable store after a restart.
//!
//! The expected alerts are derived by hand from the scenario (dates, supplies, windows)
//! and the documented thresholds (docs/history.md), not computed by the code under test.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

/// The rules that read per-person history (their alerts are compared exactly).
const HISTORY_RULES: [&str; 10] = [
    "FW-挂床住院",
    "FW-药品追溯码重复",
    "GZ10000101010000",
    "GZ10000102010000",
    "GZ10000204001000",
    "GZ10000204002000",
    "GZ10000204003000",
    "GZ10000204004000",
    "GZ10000301006000",
    "NHSA2025-31",
];

// Real national codes.
/// 天麻素注射液 (batch 6: 支付不超过14天).
const TIANMA: &str = "XN07XXT050B002010100239";
/// 减重支持系统训练 (batch 8-3: 支付不超过30天).
const JIANZHONG: &str = "003402000210000";
/// 糖化血红蛋白测定 (batch 8-4: 1次/15天).
const HBA1C: &str = "002503020030000";
/// 维生素B1片 (on no list).
const VB1: &str = "XA11DAW036A001010104127";
/// 阿利沙坦酯氨氯地平片, two package codes of one generic (12-character prefix).
const ALSD: &str = "XC09DBA407A001010100553";
const ALSD2: &str = "XC09DBA407A001010200553";

/// 普通病房床位费 and 门急诊留观诊查费: fee lines no history rule reads.
const BED_FEE: &str = "001109000010000";
const VISIT_FEE: &str = "001102000040000";

const H1: &str = "H11010500001";
const H2: &str = "H11010800002";
const P1: &str = "P11010500009";
const P2: &str = "P11010500010";

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn day(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `yyyy-MM-dd HH:mm:00` of day `n` at `hh:mm`.
fn at(n: i64, hh: u32, mm: u32) -> String {
    let z = n + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:00")
}

#[derive(Clone)]
struct Line {
    rx_id: String,
    code: &'static str,
    name: &'static str,
    cnt: f64,
    pric: f64,
    begn: String,
    prd_days: Option<f64>,
    trace: Option<&'static str>,
}

fn line(rx_id: impl Into<String>, code: &'static str, begn: String) -> Line {
    Line {
        rx_id: rx_id.into(),
        code,
        name: match code {
            VB1 => "维生素B1片",
            ALSD | ALSD2 => "阿利沙坦酯氨氯地平片",
            _ => "",
        },
        cnt: 1.0,
        pric: 10.0,
        begn,
        prd_days: None,
        trace: None,
    }
}

impl Line {
    fn supply(mut self, days: f64) -> Self {
        self.prd_days = Some(days);
        self
    }
    fn trace(mut self, code: &'static str) -> Self {
        self.trace = Some(code);
        self
    }
}

#[derive(Clone)]
struct Enc {
    mdtrt_id: String,
    medins_id: &'static str,
    /// `med_mdtrt_type`: 1 门诊, 2 住院, 3 购药.
    setting: &'static str,
    med_type: &'static str,
    adm: String,
    dscg: Option<String>,
    dx: Vec<&'static str>,
    lines: Vec<Line>,
}

fn outpatient(mdtrt_id: impl Into<String>, medins_id: &'static str, adm: String) -> Enc {
    Enc {
        mdtrt_id: mdtrt_id.into(),
        medins_id,
        setting: "1",
        med_type: "11",
        adm,
        dscg: None,
        dx: Vec::new(),
        lines: Vec::new(),
    }
}

fn pharmacy(mdtrt_id: impl Into<String>, medins_id: &'static str, adm: String) -> Enc {
    Enc {
        setting: "3",
        med_type: "41",
        ..outpatient(mdtrt_id, medins_id, adm)
    }
}

fn stay(
    mdtrt_id: impl Into<String>,
    medins_id: &'static str,
    adm: String,
    dscg: String,
    dx: &[&'static str],
) -> Enc {
    Enc {
        mdtrt_id: mdtrt_id.into(),
        medins_id,
        setting: "2",
        med_type: "21",
        adm,
        dscg: Some(dscg),
        dx: dx.to_vec(),
        lines: Vec::new(),
    }
}

impl Enc {
    fn with(mut self, lines: Vec<Line>) -> Self {
        self.lines = lines;
        self
    }

    fn json(&self, current: bool) -> Value {
        let orders: Vec<Value> = self
            .lines
            .iter()
            .map(|l| {
                let mut o = json!({
                    "rx_id": l.rx_id, "rxno": l.rx_id,
                    "hilist_type": if l.code.starts_with('X') { "101" } else { "201" },
                    "hilist_code": l.code, "hilist_name": l.name,
                    "cnt": l.cnt, "pric": l.pric, "sumamt": l.cnt * l.pric,
                    "drord_begn_date": l.begn,
                    "curr_drord_flag": if current { "1" } else { "0" },
                });
                if let Some(days) = l.prd_days {
                    o["prd_days"] = json!(days);
                }
                if let Some(code) = l.trace {
                    o["drug_trac_codg"] = json!(code);
                }
                o
            })
            .collect();
        let diagnoses: Vec<Value> = self
            .dx
            .iter()
            .enumerate()
            .map(|(i, code)| {
                json!({"dise_id": (i + 1).to_string(), "inout_dise_type": "2",
                       "maindise_flag": if i == 0 { "1" } else { "0" },
                       "dias_srt_no": i + 1, "dise_codg": code, "dise_name": ""})
            })
            .collect();
        json!({
            "mdtrt_id": self.mdtrt_id, "medins_id": self.medins_id,
            "medins_lv": if self.setting == "3" { "9" } else { "3" },
            "medins_type": "1",
            "adm_date": self.adm, "dscg_date": self.dscg,
            "dscg_main_dise_codg": self.dx.first().copied().unwrap_or(""),
            "med_mdtrt_type": self.setting, "med_type": self.med_type,
            "insutype": "310", "matn_stas": "0",
            "fsi_diagnose_dtos": diagnoses, "fsi_operation_dtos": [],
            "fsi_order_dtos": orders,
        })
    }

    /// When the encounter's event is sent: at discharge for a stay, else at the visit.
    fn sent_at(&self) -> String {
        self.dscg.clone().unwrap_or_else(|| self.adm.clone())
    }
}

/// An alert as compared: rule, encounter, sorted 违规项 rx_ids.
type Key = (String, String, Vec<String>);

#[derive(Default)]
struct World {
    /// (send time, sequence, event JSON).
    events: Vec<(String, usize, Value)>,
    late: Vec<Value>,
    expected: Vec<Key>,
}

impl World {
    fn event(patn_id: &str, poolarea: &str, cur: &Enc, carried: &[&Enc], scen: &str) -> Value {
        let mut encounters = vec![cur.json(true)];
        encounters.extend(carried.iter().map(|e| e.json(false)));
        json!({
            "syscode": "FWTEST", "task_id": format!("{patn_id}/{}", cur.mdtrt_id),
            "trig_scen": scen, "rule_ids": [],
            "patient_dtos": [{
                "patn_id": patn_id, "patn_name": "测试", "gend": "1", "brdy": "1958-04-02",
                "poolarea": poolarea, "curr_mdtrt_id": cur.mdtrt_id,
                "fsi_encounter_dtos": encounters,
            }],
        })
    }

    /// One event for `cur` (with `carried` earlier encounters in the request).
    fn send(&mut self, patn_id: &str, cur: &Enc, carried: &[&Enc]) {
        self.send_in(patn_id, "110000", cur, carried);
    }

    fn send_in(&mut self, patn_id: &str, poolarea: &str, cur: &Enc, carried: &[&Enc]) {
        // A settlement carries fee lines: a bed fee for a stay, a 诊查费 for a visit
        // (neither is read by a history rule). Line-less requests: `register`.
        let mut cur = cur.clone();
        if cur.lines.is_empty() {
            let code = if cur.setting == "2" {
                BED_FEE
            } else {
                VISIT_FEE
            };
            let begn = cur.adm.clone();
            cur.lines
                .push(line(format!("{}-F", cur.mdtrt_id), code, begn));
        }
        let cur = &cur;
        let scen = match cur.setting {
            "2" => "8",
            "3" => "10",
            _ => "6",
        };
        let seq = self.events.len();
        let event = Self::event(patn_id, poolarea, cur, carried, scen);
        self.events.push((cur.sent_at(), seq, event));
    }

    /// A 门诊挂号 request (scenario 1): the visit without any fee line yet.
    fn register(&mut self, patn_id: &str, cur: &Enc, carried: &[&Enc]) {
        let seq = self.events.len();
        let event = Self::event(patn_id, "110000", cur, carried, "1");
        self.events.push((cur.sent_at(), seq, event));
    }

    /// An event that arrives after every other one (out of order).
    fn send_late(&mut self, patn_id: &str, cur: &Enc) {
        self.late
            .push(Self::event(patn_id, "110000", cur, &[], "8"));
    }

    fn expect(&mut self, rule_id: &str, mdtrt_id: &str, rx_ids: &[&str]) {
        let mut ids: Vec<String> = rx_ids.iter().map(|s| s.to_string()).collect();
        ids.sort();
        self.expected.push((rule_id.into(), mdtrt_id.into(), ids));
    }

    fn ndjson(&self) -> String {
        let mut events: Vec<&(String, usize, Value)> = self.events.iter().collect();
        events.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let mut out = String::new();
        for (_, _, event) in events {
            out.push_str(&event.to_string());
            out.push('\n');
        }
        for event in &self.late {
            out.push_str(&event.to_string());
            out.push('\n');
        }
        out
    }
}

/// Daily lines of `code` from day `first` for `n` days, rx ids `{prefix}-{k}` (k from 1).
fn daily(prefix: &str, code: &'static str, first: i64, n: i64) -> Vec<Line> {
    (0..n)
        .map(|k| line(format!("{prefix}-{}", k + 1), code, at(first + k, 9, 0)))
        .collect()
}

fn scenario() -> World {
    let mut w = World::default();

    // ---- 药品限支付疗程: 天麻素注射液 14 days, counted across stays and hospitals.
    // A01: 9 days in February at H1, 7 days in March at H2 (the March event also carries
    // the February stay): days 15 and 16 (03-25, 03-26) are not paid.
    let a01_s1 = stay(
        "A01-S1",
        H1,
        at(day(2026, 2, 1), 8, 0),
        at(day(2026, 2, 10), 10, 0),
        &["I63.900"],
    )
    .with(daily("A01-S1", TIANMA, day(2026, 2, 1), 9));
    let a01_s2 = stay(
        "A01-S2",
        H2,
        at(day(2026, 3, 20), 8, 0),
        at(day(2026, 3, 28), 10, 0),
        &["I63.900"],
    )
    .with(daily("A01-S2", TIANMA, day(2026, 3, 20), 7));
    w.send("P-A01", &a01_s1, &[]);
    w.send("P-A01", &a01_s2, &[&a01_s1]);
    w.expect("GZ10000101010000", "A01-S2", &["A01-S2-6", "A01-S2-7"]);
    // A02: 7 + 7 days = exactly 14: paid.
    let a02_s1 = stay(
        "A02-S1",
        H1,
        at(day(2026, 3, 1), 8, 0),
        at(day(2026, 3, 8), 10, 0),
        &["I63.900"],
    )
    .with(daily("A02-S1", TIANMA, day(2026, 3, 1), 7));
    let a02_s2 = stay(
        "A02-S2",
        H2,
        at(day(2026, 4, 10), 8, 0),
        at(day(2026, 4, 20), 10, 0),
        &["I63.900"],
    )
    .with(daily("A02-S2", TIANMA, day(2026, 4, 10), 7));
    w.send("P-A02", &a02_s1, &[]);
    w.send("P-A02", &a02_s2, &[]);
    // A03: 减重支持系统训练 (30 days): 20 days in January, 12 in April (from the store):
    // days 31 and 32 (04-11, 04-12).
    let a03_s1 = stay(
        "A03-S1",
        H1,
        at(day(2026, 1, 10), 8, 0),
        at(day(2026, 2, 5), 10, 0),
        &["I69.300"],
    )
    .with(daily("A03-S1", JIANZHONG, day(2026, 1, 10), 20));
    let a03_s2 = stay(
        "A03-S2",
        H2,
        at(day(2026, 4, 1), 8, 0),
        at(day(2026, 4, 20), 10, 0),
        &["I69.300"],
    )
    .with(daily("A03-S2", JIANZHONG, day(2026, 4, 1), 12));
    w.send("P-A03", &a03_s1, &[]);
    w.send("P-A03", &a03_s2, &[]);
    w.expect("GZ10000102010000", "A03-S2", &["A03-S2-11", "A03-S2-12"]);

    // ---- 医疗服务项目周期超频次: 糖化血红蛋白测定 1 per 15 days, across hospitals.
    // B01: 02-01 H1, 02-15 H2 (14 days: exceeds), 03-02 H1 (15 days after: paid),
    // 03-10 H1 (8 days after 03-02: exceeds). Each visit carries the previous one.
    let b01: Vec<Enc> = [
        (day(2026, 2, 1), H1),
        (day(2026, 2, 15), H2),
        (day(2026, 3, 2), H1),
        (day(2026, 3, 10), H1),
    ]
    .iter()
    .enumerate()
    .map(|(i, &(d, h))| {
        let id = format!("B01-V{}", i + 1);
        outpatient(id.clone(), h, at(d, 9, 0)).with(vec![line(
            format!("{id}-1"),
            HBA1C,
            at(d, 9, 30),
        )])
    })
    .collect();
    for (i, visit) in b01.iter().enumerate() {
        let carried: Vec<&Enc> = if i > 0 { vec![&b01[i - 1]] } else { Vec::new() };
        w.send("P-B01", visit, &carried);
    }
    w.expect("NHSA2025-31", "B01-V2", &["B01-V2-1"]);
    w.expect("NHSA2025-31", "B01-V4", &["B01-V4-1"]);
    // B02: exactly 15 days apart: paid.
    for (i, d) in [day(2026, 2, 1), day(2026, 2, 16), day(2026, 3, 3)]
        .into_iter()
        .enumerate()
    {
        let id = format!("B02-V{}", i + 1);
        let visit = outpatient(id.clone(), H1, at(d, 9, 0)).with(vec![line(
            format!("{id}-1"),
            HBA1C,
            at(d, 9, 30),
        )]);
        w.send("P-B02", &visit, &[]);
    }

    // ---- 分解住院 (readmission ≤ 15 days, same ICD-10 category).
    // C01: readmitted to H1 5 days after discharge, I63 both.
    let c01_s1 = stay(
        "C01-S1",
        H1,
        at(day(2026, 3, 1), 8, 0),
        at(day(2026, 3, 10), 10, 0),
        &["I63.900"],
    );
    let c01_s2 = stay(
        "C01-S2",
        H1,
        at(day(2026, 3, 15), 8, 0),
        at(day(2026, 3, 25), 10, 0),
        &["I63.000"],
    );
    w.send("P-C01", &c01_s1, &[]);
    w.send("P-C01", &c01_s2, &[]);
    w.expect("GZ10000204001000", "C01-S2", &[]);
    // C02: transfer to H2 3 hours after discharge: not a split.
    let c02_s1 = stay(
        "C02-S1",
        H1,
        at(day(2026, 3, 1), 8, 0),
        at(day(2026, 3, 10), 10, 0),
        &["I21.000"],
    );
    let c02_s2 = stay(
        "C02-S2",
        H2,
        at(day(2026, 3, 10), 13, 0),
        at(day(2026, 3, 20), 10, 0),
        &["I21.000"],
    );
    w.send("P-C02", &c02_s1, &[]);
    w.send("P-C02", &c02_s2, &[]);
    // C03: lung cancer surgery then five chemotherapy cycles (Z51.1) 3 weeks apart:
    // neither 分解住院 nor 频繁住院.
    w.send(
        "P-C03",
        &stay(
            "C03-S0",
            H1,
            at(day(2026, 2, 1), 8, 0),
            at(day(2026, 2, 10), 10, 0),
            &["C34.900"],
        ),
        &[],
    );
    for k in 0..5 {
        let adm = day(2026, 2, 20) + 21 * k;
        let cycle = stay(
            format!("C03-S{}", k + 1),
            H1,
            at(adm, 8, 0),
            at(adm + 2, 10, 0),
            &["Z51.100", "C34.900"],
        );
        w.send("P-C03", &cycle, &[]);
    }
    // C04: readmitted 16 calendar days after the discharge date: a new stay.
    w.send(
        "P-C04",
        &stay(
            "C04-S1",
            H1,
            at(day(2026, 3, 1), 8, 0),
            at(day(2026, 3, 10), 23, 0),
            &["J18.900"],
        ),
        &[],
    );
    w.send(
        "P-C04",
        &stay(
            "C04-S2",
            H1,
            at(day(2026, 3, 26), 0, 30),
            at(day(2026, 3, 30), 10, 0),
            &["J18.000"],
        ),
        &[],
    );
    // C05: 统筹区 430796 screens 7 days: 10 days is not reported there.
    w.send_in(
        "P-C05",
        "430796",
        &stay(
            "C05-S1",
            H1,
            at(day(2026, 3, 1), 8, 0),
            at(day(2026, 3, 10), 10, 0),
            &["I63.900"],
        ),
        &[],
    );
    w.send_in(
        "P-C05",
        "430796",
        &stay(
            "C05-S2",
            H1,
            at(day(2026, 3, 20), 8, 0),
            at(day(2026, 3, 28), 10, 0),
            &["I63.900"],
        ),
        &[],
    );
    // C06: the stay of 05-10..05-15 arrives last (out of order), after a later stay and
    // two outpatient visits. It is judged as on time: a split of the 05-01..05-05 stay
    // (the later stay of 06-20 is not a "previous" one), and 挂床 for the visit of 05-12
    // inside it (the visit of 05-20 is after its discharge). When the 06-20 stay was
    // evaluated the late stay was unknown: 46 days after 05-05, no alert (none revised).
    w.send(
        "P-C06",
        &stay(
            "C06-P",
            H1,
            at(day(2026, 5, 1), 8, 0),
            at(day(2026, 5, 5), 10, 0),
            &["J18.900"],
        ),
        &[],
    );
    w.send(
        "P-C06",
        &outpatient("C06-O1", H2, at(day(2026, 5, 12), 10, 0)),
        &[],
    );
    w.send(
        "P-C06",
        &outpatient("C06-O2", H2, at(day(2026, 5, 20), 10, 0)),
        &[],
    );
    w.send(
        "P-C06",
        &stay(
            "C06-R",
            H1,
            at(day(2026, 6, 20), 8, 0),
            at(day(2026, 6, 25), 10, 0),
            &["J18.900"],
        ),
        &[],
    );
    let c06_q = stay(
        "C06-Q",
        H1,
        at(day(2026, 5, 10), 8, 0),
        at(day(2026, 5, 15), 10, 0),
        &["J18.000"],
    )
    .with(vec![line("C06-Q-1", VB1, at(day(2026, 5, 10), 9, 0))]);
    w.send_late("P-C06", &c06_q);
    w.expect("GZ10000204001000", "C06-Q", &[]);
    w.expect("FW-挂床住院", "C06-Q", &[]);

    // ---- 频繁门诊 (> 10 outpatient visits in 30 days).
    // D01: every 2 days from 04-01, 12 visits at two hospitals, each a 门诊挂号 request
    // without fee lines carrying the previous visit: the 11th (04-21) and 12th (04-23)
    // are frequent.
    let d01: Vec<Enc> = (0..12)
        .map(|k| {
            outpatient(
                format!("D01-V{:02}", k + 1),
                if k % 2 == 0 { H1 } else { H2 },
                at(day(2026, 4, 1) + 2 * k, 9, 0),
            )
        })
        .collect();
    for (i, visit) in d01.iter().enumerate() {
        let carried: Vec<&Enc> = if i > 0 { vec![&d01[i - 1]] } else { Vec::new() };
        w.register("P-D01", visit, &carried);
    }
    w.expect("GZ10000204002000", "D01-V11", &[]);
    w.expect("GZ10000204002000", "D01-V12", &[]);
    // D02: every 3 days, 10 visits: exactly the limit.
    for k in 0..10 {
        w.register(
            "P-D02",
            &outpatient(
                format!("D02-V{:02}", k + 1),
                H1,
                at(day(2026, 4, 1) + 3 * k, 9, 0),
            ),
            &[],
        );
    }

    // ---- 频繁购药 (> 4 purchases of one drug in 30 days); supplies never overlap.
    // E01: 维生素B1片 5-day supplies every 6 days from 05-01: the 5th (05-25) and the 6th
    // (05-31; 05-01 has left the window, 05-07…05-31 are 5) are frequent.
    for k in 0..6 {
        let d = day(2026, 5, 1) + 6 * k;
        let id = format!("E01-D{}", k + 1);
        let mut l = line(format!("{id}-1"), VB1, at(d, 10, 5)).supply(5.0);
        l.cnt = 2.0;
        w.send(
            "P-E01",
            &pharmacy(id, if k % 2 == 0 { P1 } else { P2 }, at(d, 10, 0)).with(vec![l]),
            &[],
        );
    }
    w.expect("GZ10000204003000", "E01-D5", &["E01-D5-1"]);
    w.expect("GZ10000204003000", "E01-D6", &["E01-D6-1"]);
    // E02: 4 purchases, 7-day supplies 7 days apart: neither frequent nor overlapping.
    for k in 0..4 {
        let d = day(2026, 5, 1) + 7 * k;
        let id = format!("E02-D{}", k + 1);
        w.send(
            "P-E02",
            &pharmacy(id.clone(), P1, at(d, 10, 0))
                .with(vec![line(format!("{id}-1"), VB1, at(d, 10, 5)).supply(7.0)]),
            &[],
        );
    }

    // ---- 重复开药 (previous supply left > 3 days).
    // F01: 30 days from 02-10 (covers to 03-11); pharmacy refill 03-05 with the other
    // package code: 7 days left.
    w.send(
        "P-F01",
        &outpatient("F01-V1", H1, at(day(2026, 2, 10), 9, 0)).with(vec![
            line("F01-V1-1", ALSD, at(day(2026, 2, 10), 9, 10)).supply(30.0),
        ]),
        &[],
    );
    w.send(
        "P-F01",
        &pharmacy("F01-D1", P1, at(day(2026, 3, 5), 10, 0)).with(vec![
            line("F01-D1-1", ALSD2, at(day(2026, 3, 5), 10, 5)).supply(30.0),
        ]),
        &[],
    );
    w.expect("GZ10000301006000", "F01-D1", &["F01-D1-1"]);
    // F02: refill on 03-09 leaves 3 days (tolerated), the next one 30 days later 0.
    w.send(
        "P-F02",
        &outpatient("F02-V1", H1, at(day(2026, 2, 10), 9, 0)).with(vec![
            line("F02-V1-1", ALSD, at(day(2026, 2, 10), 9, 10)).supply(30.0),
        ]),
        &[],
    );
    w.send(
        "P-F02",
        &pharmacy("F02-D1", P1, at(day(2026, 3, 9), 10, 0)).with(vec![
            line("F02-D1-1", ALSD, at(day(2026, 3, 9), 10, 5)).supply(30.0),
        ]),
        &[],
    );
    w.send(
        "P-F02",
        &pharmacy("F02-D2", P1, at(day(2026, 4, 8), 10, 0)).with(vec![
            line("F02-D2-1", ALSD, at(day(2026, 4, 8), 10, 5)).supply(30.0),
        ]),
        &[],
    );
    // F03: no prd_days (7 days assumed): a second hospital 3 days later leaves 4 days.
    w.send(
        "P-F03",
        &outpatient("F03-V1", H1, at(day(2026, 4, 1), 9, 0)).with(vec![line(
            "F03-V1-1",
            ALSD,
            at(day(2026, 4, 1), 9, 10),
        )]),
        &[],
    );
    w.send(
        "P-F03",
        &outpatient("F03-V2", H2, at(day(2026, 4, 4), 9, 0)).with(vec![line(
            "F03-V2-1",
            ALSD,
            at(day(2026, 4, 4), 9, 10),
        )]),
        &[],
    );
    w.expect("GZ10000301006000", "F03-V2", &["F03-V2-1"]);

    // ---- 挂床住院.
    // G01: a pharmacy purchase in the middle of a stay (settled before the stay is).
    w.send(
        "P-G01",
        &pharmacy("G01-D1", P2, at(day(2026, 3, 5), 15, 0)).with(vec![
            line("G01-D1-1", VB1, at(day(2026, 3, 5), 15, 5)).supply(10.0),
        ]),
        &[],
    );
    w.send(
        "P-G01",
        &stay(
            "G01-S1",
            H1,
            at(day(2026, 3, 1), 8, 0),
            at(day(2026, 3, 10), 10, 0),
            &["I63.900"],
        ),
        &[],
    );
    w.expect("FW-挂床住院", "G01-S1", &[]);
    // G02: the emergency visit that leads to the admission, and a purchase after discharge.
    let mut er = outpatient("G02-E1", H1, at(day(2026, 3, 1), 6, 30));
    er.med_type = "13";
    w.send("P-G02", &er, &[]);
    w.send(
        "P-G02",
        &stay(
            "G02-S1",
            H1,
            at(day(2026, 3, 1), 8, 0),
            at(day(2026, 3, 8), 10, 0),
            &["J18.900"],
        ),
        &[],
    );
    w.send(
        "P-G02",
        &pharmacy("G02-D1", P1, at(day(2026, 3, 8), 14, 0)).with(vec![
            line("G02-D1-1", VB1, at(day(2026, 3, 8), 14, 5)).supply(10.0),
        ]),
        &[],
    );

    // ---- 频繁住院 (> 4 admissions in 365 days): five COPD stays, 36+ days apart.
    for (k, (m, d)) in [(1, 10), (2, 20), (3, 30), (5, 10), (6, 20)]
        .into_iter()
        .enumerate()
    {
        let adm = day(2026, m, d);
        w.send(
            "P-H01",
            &stay(
                format!("H01-S{}", k + 1),
                H1,
                at(adm, 8, 0),
                at(adm + 5, 10, 0),
                &["J44.100"],
            ),
            &[],
        );
    }
    w.expect("GZ10000204004000", "H01-S5", &[]);

    // ---- 药品追溯码重复: one box settled by two persons; one person twice, same pharmacy.
    w.send(
        "P-T01",
        &pharmacy("T01-D1", P1, at(day(2026, 2, 1), 10, 0)).with(vec![
            line("T01-D1-1", ALSD, at(day(2026, 2, 1), 10, 5))
                .supply(30.0)
                .trace("81000000000000009001"),
        ]),
        &[],
    );
    w.send(
        "P-T02",
        &pharmacy("T02-D1", P2, at(day(2026, 2, 15), 10, 0)).with(vec![
            line("T02-D1-1", ALSD, at(day(2026, 2, 15), 10, 5))
                .supply(30.0)
                .trace("81000000000000009001"),
        ]),
        &[],
    );
    w.expect("FW-药品追溯码重复", "T02-D1", &["T02-D1-1"]);
    w.send(
        "P-T03",
        &pharmacy("T03-D1", P1, at(day(2026, 3, 1), 10, 0)).with(vec![
            line("T03-D1-1", ALSD, at(day(2026, 3, 1), 10, 5))
                .supply(30.0)
                .trace("81000000000000009002"),
        ]),
        &[],
    );
    w.send(
        "P-T03",
        &pharmacy("T03-D2", P1, at(day(2026, 4, 12), 10, 0)).with(vec![
            line("T03-D2-1", ALSD, at(day(2026, 4, 12), 10, 5))
                .supply(30.0)
                .trace("81000000000000009002"),
        ]),
        &[],
    );
    w.expect("FW-药品追溯码重复", "T03-D2", &["T03-D2-1"]);

    // ---- Background: 12 persons, a monthly visit on the 15th with a 30-day 维生素B1片
    // supply (28–31 days apart: at most 2 days left) and one unrelated stay each.
    let dx = [
        "K35.800", "J18.900", "M54.500", "E11.900", "I10.x00", "J44.100",
    ];
    for p in 0..12 {
        let patn = format!("P-N{:02}", p + 1);
        for m in 1..=6 {
            let d = day(2026, m, 15);
            let id = format!("N{:02}-V{m}", p + 1);
            let visit =
                outpatient(id.clone(), if p % 2 == 0 { H1 } else { H2 }, at(d, 9, 0)).with(vec![
                    line(format!("{id}-1"), VB1, at(d, 9, 10)).supply(30.0),
                ]);
            w.send(&patn, &visit, &[]);
        }
        let m = 1 + (p as i64 % 6);
        let s = stay(
            format!("N{:02}-S1", p + 1),
            H1,
            at(day(2026, m, 20), 8, 0),
            at(day(2026, m, 25), 10, 0),
            &[dx[p % 6]],
        )
        .with(vec![line(
            format!("N{:02}-S1-1", p + 1),
            VB1,
            at(day(2026, m, 20), 9, 0),
        )]);
        w.send(&patn, &s, &[]);
    }
    w
}

fn run_check(input: &Path, output: &Path, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fundwatch"))
        .args(["check", "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(extra)
        .output()
        .expect("runs fundwatch");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "check failed: {stderr}");
    stderr
}

/// The history rules' alerts of an output file, as sorted keys, and `vola_cont [sev n]`.
fn history_alerts(output: &Path) -> (Vec<Key>, BTreeMap<Key, String>) {
    let text = std::fs::read_to_string(output).expect("alerts file");
    let mut keys = Vec::new();
    let mut messages = BTreeMap::new();
    for line in text.lines() {
        let alert: Value = serde_json::from_str(line).expect("alert JSON");
        let rule_id = alert["rule_id"].as_str().unwrap_or_default().to_string();
        if !HISTORY_RULES.contains(&rule_id.as_str()) {
            continue;
        }
        let mut rx_ids: Vec<String> = alert["judge_result_detail_dtos"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["vola_item_type"] == "1")
            .map(|d| d["rx_id"].as_str().unwrap_or_default().to_string())
            .collect();
        rx_ids.sort();
        let key = (
            rule_id,
            alert["mdtrt_id"].as_str().unwrap_or_default().to_string(),
            rx_ids,
        );
        messages.insert(
            key.clone(),
            format!(
                "{} [sev {}]",
                alert["vola_cont"].as_str().unwrap_or_default(),
                alert["sev_deg"].as_str().unwrap_or_default()
            ),
        );
        keys.push(key);
    }
    keys.sort();
    (keys, messages)
}

#[test]
fn history_rules_alert_exactly_as_expected_in_any_batching_and_after_a_restart() {
    let world = scenario();
    let mut expected = world.expected.clone();
    expected.sort();
    let ndjson = world.ndjson();
    let lines = ndjson.lines().count();
    assert!(lines > 150, "{lines} events");

    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("history.ndjson");
    std::fs::write(&input, &ndjson).expect("write input");

    // 1. One micro-batch: history from earlier events of the same batch.
    let one_batch = dir.path().join("one-batch.ndjson");
    run_check(&input, &one_batch, &["--batch", "1000"]);
    let (actual, messages) = history_alerts(&one_batch);
    assert_eq!(actual, expected, "one batch: history alerts differ");

    // The late stay is judged against the stay before it (C06-P), not the later one.
    let split = messages
        .get(&(
            "GZ10000204001000".to_string(),
            "C06-Q".to_string(),
            Vec::new(),
        ))
        .expect("split alert of C06-Q");
    assert!(
        split.contains("就诊C06-P") && split.contains("间隔5天"),
        "{split}"
    );
    let bed = messages
        .get(&("FW-挂床住院".to_string(), "C06-Q".to_string(), Vec::new()))
        .expect("挂床 alert of C06-Q");
    assert!(bed.contains("另有1次") && bed.contains("C06-O1"), "{bed}");
    // A box settled by another person is 明确; by the same person at the same pharmacy 可疑.
    let trace = |mdtrt: &str, rx: &str| {
        let key = (
            "FW-药品追溯码重复".to_string(),
            mdtrt.to_string(),
            vec![rx.to_string()],
        );
        messages.get(&key).cloned().unwrap_or_default()
    };
    assert!(
        trace("T02-D1", "T02-D1-1").contains("由他人结算"),
        "{}",
        trace("T02-D1", "T02-D1-1")
    );
    assert!(trace("T02-D1", "T02-D1-1").ends_with("[sev 1]"));
    assert!(trace("T03-D2", "T03-D2-1").contains("由本人结算"));
    assert!(trace("T03-D2", "T03-D2-1").ends_with("[sev 2]"));

    // 2. One event per batch: history from the store only.
    let per_event = dir.path().join("per-event.ndjson");
    run_check(&input, &per_event, &["--batch", "1"]);
    assert_eq!(
        history_alerts(&per_event).0,
        expected,
        "batch 1: history alerts differ"
    );

    // 3. Restart: the first half with a durable state, then the whole file resumes after
    //    it; the alerts of both runs together are the expected ones.
    let state = dir.path().join("state");
    let restarted = dir.path().join("restarted.ndjson");
    let half: String = ndjson
        .lines()
        .take(lines / 2)
        .map(|l| format!("{l}\n"))
        .collect();
    let first = dir.path().join("first-half.ndjson");
    std::fs::write(&first, half).expect("write half");
    let state_arg = state.to_str().expect("utf8 path");
    run_check(&first, &restarted, &["--batch", "16", "--state", state_arg]);
    let stderr = run_check(&input, &restarted, &["--batch", "16", "--state", state_arg]);
    assert!(
        stderr.contains(&format!("resuming after input line {}", lines / 2)),
        "{stderr}"
    );
    assert_eq!(
        history_alerts(&restarted).0,
        expected,
        "restart: history alerts differ"
    );
}
