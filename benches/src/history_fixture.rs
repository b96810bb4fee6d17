//! Synthetic per-person history for the history benches (`history_footprint`,
//! `history_lookup`): persons with 180 days of encounters, lines and trace codes.
//!
//! The mix (per person over 180 days, averages): 8 encounters — 70 % outpatient
//! (2–6 lines), 20 % pharmacy (1–5 lines), 10 % inpatient (15–25 lines) — so about 43
//! lines, half of them drugs carrying one 20-digit trace code each (~22 codes). Why:
//! the brief's "6–10 encounters and ~40 lines" for a person who uses care; 22 codes
//! matches 600亿 traced boxes a year over 13.6亿 insured (≈ 44 a year, DOMAIN §4).
//! Identifier lengths follow the national fields: `psn_no`-like 20-character
//! `patn_id`, 24-character `mdtrt_id`, 26-character `rx_id`, 23-character drug codes
//! (`X…`) and 15-digit service codes; 3,000 drug and 2,000 service codes and 2,000
//! institutions per partition.

use fundwatch_engine::history::{HistEncounter, HistLine, PersonRecord, TraceRecord};

const DAY_MS: i64 = 86_400_000;

/// The newest service time of the fixture (2026-06-30 00:00 UTC, epoch ms).
pub const ANCHOR_MILLIS: i64 = 1_782_777_600_000;

/// Shape of one person's history.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Days of history.
    pub days: u32,
    /// Encounters per person (average; each person draws 6–10 around 8).
    pub encounters: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            days: 180,
            encounters: 8,
        }
    }
}

/// SplitMix64: a tiny deterministic generator (no dependency for a fixture).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// The `patn_id` of person `i`.
pub fn patn_id(i: u64) -> String {
    format!("43070{i:015}")
}

fn drug_code(i: u64) -> String {
    format!("XA{:03}BAX{i:06}A001010100", i % 997)
}

fn service_code(i: u64) -> String {
    format!("00{:013}", 1_203_000_000 + i)
}

fn name(i: u64, drug: bool) -> String {
    const PARTS: [&str; 8] = [
        "阿莫西林",
        "胶囊",
        "注射用",
        "复方",
        "氯化钠",
        "血常规",
        "测定",
        "检查",
    ];
    let a = PARTS[(i % 8) as usize];
    let b = PARTS[((i / 8) % 8) as usize];
    if drug {
        format!("{a}{b}{i}")
    } else {
        format!("{b}{a}项目{i}")
    }
}

/// Person `i`'s history as log records (one per encounter, as events bring them).
pub fn person_records(i: u64, mix: Mix, rng: &mut Rng) -> Vec<PersonRecord> {
    let patn = patn_id(i);
    let n_enc = rng.range(
        u64::from(mix.encounters.saturating_sub(2)),
        u64::from(mix.encounters + 2),
    );
    let span = i64::from(mix.days) * DAY_MS;
    let mut out = Vec::with_capacity(n_enc as usize);
    for e in 0..n_enc {
        let kind = rng.range(0, 9); // 0: inpatient, 1–2: pharmacy, else outpatient
        let (med_mdtrt_type, med_type, n_lines) = match kind {
            0 => ("2", "21", rng.range(15, 25)),
            1 | 2 => ("3", "41", rng.range(1, 5)),
            _ => ("1", "11", rng.range(2, 6)),
        };
        let adm = ANCHOR_MILLIS - (rng.next_u64() % span as u64) as i64;
        let dscg = (kind == 0).then(|| adm + rng.range(3, 12) as i64 * DAY_MS);
        let medins = format!("H430700{:05}", rng.range(1, 2000));
        let mdtrt_id = format!("430700G{i:012}{e:05}");
        let mut lines = Vec::with_capacity(n_lines as usize);
        let mut traces = Vec::new();
        for l in 0..n_lines {
            let drug = rng.next_u64().is_multiple_of(2);
            let code_idx = rng.range(0, if drug { 2999 } else { 1999 });
            let rx_id = format!("{mdtrt_id}{l:02}");
            let begn = adm + (l as i64 % 10) * DAY_MS / 4;
            if drug {
                traces.push((
                    format!("8{:019}", rng.next_u64() % 10_000_000_000_000_000_000),
                    TraceRecord {
                        patn_id: patn.clone(),
                        mdtrt_id: mdtrt_id.clone(),
                        rx_id: rx_id.clone(),
                        medins_id: medins.clone(),
                        millis: Some(begn),
                    },
                ));
            }
            let cnt = rng.range(1, 3) as f64;
            lines.push(HistLine {
                mdtrt_id: mdtrt_id.clone(),
                rx_id,
                hilist_code: if drug {
                    drug_code(code_idx)
                } else {
                    service_code(code_idx)
                },
                hilist_name: name(code_idx, drug),
                hilist_type: if drug { "101" } else { "201" }.to_string(),
                drord_bhvr: String::new(),
                medins_id: medins.clone(),
                begn_millis: Some(begn),
                cnt,
                sumamt: cnt * rng.range(5, 300) as f64,
                prd_days: drug.then(|| rng.range(3, 30) as f64),
            });
        }
        out.push(PersonRecord {
            patn_id: patn.clone(),
            encounters: vec![HistEncounter {
                mdtrt_id,
                medins_id: medins,
                med_mdtrt_type: med_mdtrt_type.to_string(),
                med_type: med_type.to_string(),
                adm_millis: Some(adm),
                dscg_millis: dscg,
                main_dise: format!("I{:02}.{:03}", rng.range(10, 99), rng.range(0, 9)),
            }],
            lines,
            traces,
        });
    }
    out
}

/// A store filled with `persons` persons of `mix` (seeded, deterministic).
pub fn filled_store(
    persons: u64,
    mix: Mix,
    retention_days: u32,
) -> fundwatch_engine::history::HistoryStore {
    let mut store = fundwatch_engine::history::HistoryStore::new(retention_days);
    let mut rng = Rng::new(7);
    for i in 0..persons {
        for record in person_records(i, mix, &mut rng) {
            store.apply_record(&record);
        }
    }
    store
}

/// A 3101-shaped event of person `i`: one outpatient encounter on the anchor day with
/// `lines` lines (drugs with a fresh trace code), as the lookup bench evaluates.
pub fn event_json(i: u64, seq: u64, lines: u64) -> serde_json::Value {
    let mdtrt = format!("430700N{i:012}{seq:05}");
    let orders: Vec<serde_json::Value> = (0..lines)
        .map(|l| {
            serde_json::json!({
                "rx_id": format!("{mdtrt}{l:02}"), "rxno": format!("{mdtrt}"),
                "hilist_type": "101", "hilist_code": drug_code(l * 7), "hilist_name": name(l * 7, true),
                "cnt": 1, "pric": 20, "sumamt": 20, "drord_begn_date": "2026-06-30 09:00:00",
                "curr_drord_flag": "1", "prd_days": 7,
                "drug_trac_codg": format!("9{:011}{seq:04}{l:04}", i)
            })
        })
        .collect();
    serde_json::json!({
        "syscode": "BENCH", "task_id": format!("T{seq}"), "trig_scen": "2", "rule_ids": [],
        "patient_dtos": [{
            "patn_id": patn_id(i), "patn_name": "测试", "gend": "1", "brdy": "1960-01-01",
            "poolarea": "430796", "curr_mdtrt_id": mdtrt,
            "fsi_encounter_dtos": [{
                "mdtrt_id": mdtrt, "medins_id": "H43070000001", "medins_lv": "3",
                "med_mdtrt_type": "1", "med_type": "11", "insutype": "310",
                "adm_date": "2026-06-30 08:30:00", "dscg_main_dise_codg": "I10.x00",
                "fsi_diagnose_dtos": [], "fsi_operation_dtos": [], "fsi_order_dtos": orders
            }]
        }]
    })
}
