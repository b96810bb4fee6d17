//! Rule test cases as data: a compact patient/encounter/orders description that
//! expands to a full national 3101/3102 `data` object, and the alerts expected.
//!
//! Cases expand to the national JSON shape (not to engine structs) so that every case
//! also exercises the real decoder.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One case of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case shows, e.g. "male patient, female-only drug".
    pub name: String,
    /// `trig_scen` of the request (default: the rule's first scenario).
    #[serde(default)]
    pub trig_scen: Option<String>,
    /// The patient.
    #[serde(default)]
    pub patient: CasePatient,
    /// The current encounter.
    #[serde(default)]
    pub encounter: CaseEncounter,
    /// Orders of the current encounter.
    #[serde(default)]
    pub orders: Vec<CaseOrder>,
    /// Earlier encounters of the patient carried in the request.
    #[serde(default)]
    pub history: Vec<CaseHistory>,
    /// A complete raw `data` object instead of the compact fields (JSON text).
    #[serde(default)]
    pub event: Option<String>,
    /// Rows of the person-status table (`person_status`, death dates) the case needs;
    /// the deployment loads them from a file, the case provides them here.
    #[serde(default)]
    pub person_status: Vec<CaseStatus>,
    /// Alerts of this rule the case must produce; empty means none.
    #[serde(default)]
    pub expect: Vec<CaseExpect>,
}

/// Patient fields of a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CasePatient {
    /// `gend` (1 男, 2 女).
    pub gend: String,
    /// `brdy`, yyyy-MM-dd.
    pub brdy: String,
    /// `poolarea` (统筹区).
    pub poolarea: String,
}

impl Default for CasePatient {
    fn default() -> Self {
        Self {
            gend: "1".into(),
            brdy: "1970-06-15".into(),
            poolarea: "110000".into(),
        }
    }
}

/// Encounter fields of a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaseEncounter {
    /// `mdtrt_id` (default `M1`).
    pub mdtrt_id: String,
    /// `medins_id`.
    pub medins_id: String,
    /// `medins_lv`.
    pub medins_lv: String,
    /// `medins_type`.
    pub medins_type: String,
    /// `med_mdtrt_type` (1 门诊 2 住院 3 购药).
    pub med_mdtrt_type: String,
    /// `med_type`.
    pub med_type: String,
    /// `insutype`.
    pub insutype: String,
    /// `matn_stas`.
    pub matn_stas: String,
    /// `adm_date`.
    pub adm_date: String,
    /// `dscg_date` (empty = still admitted).
    pub dscg_date: String,
    /// Diagnosis codes; the first is the main diagnosis.
    pub diagnoses: Vec<String>,
    /// Operation codes with dates: `code@yyyy-MM-dd HH:mm:ss`.
    pub operations: Vec<String>,
}

impl Default for CaseEncounter {
    fn default() -> Self {
        Self {
            mdtrt_id: "M1".into(),
            medins_id: "H11010500001".into(),
            medins_lv: "3".into(),
            medins_type: "1".into(),
            med_mdtrt_type: "2".into(),
            med_type: "21".into(),
            insutype: "310".into(),
            matn_stas: "0".into(),
            adm_date: "2026-03-01 08:00:00".into(),
            dscg_date: String::new(),
            diagnoses: Vec::new(),
            operations: Vec::new(),
        }
    }
}

/// One order line of a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseOrder {
    /// `rx_id`.
    pub rx_id: String,
    /// `hilist_code`.
    pub hilist_code: String,
    /// `hilist_name` (default: empty; the engine names the item from the KB).
    #[serde(default)]
    pub hilist_name: String,
    /// `hilist_type` (101 西药中成药, 102 中药饮片, 201 医疗服务项目, 301 耗材).
    #[serde(default)]
    pub hilist_type: Option<String>,
    /// `rxno` (prescription number; herbs of one prescription share it).
    #[serde(default)]
    pub rxno: Option<String>,
    /// `cnt`.
    #[serde(default = "one")]
    pub cnt: f64,
    /// `pric`.
    #[serde(default = "ten")]
    pub pric: f64,
    /// `sumamt` (default `cnt × pric`).
    #[serde(default)]
    pub sumamt: Option<f64>,
    /// `drord_begn_date` (default: the encounter's admission time).
    #[serde(default)]
    pub begn: Option<String>,
    /// `curr_drord_flag` (default true).
    #[serde(default = "yes")]
    pub curr: bool,
}

fn one() -> f64 {
    1.0
}
fn ten() -> f64 {
    10.0
}
fn yes() -> bool {
    true
}

/// An earlier encounter of the patient, carried in the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseHistory {
    /// The encounter (its `mdtrt_id` must differ from the current one).
    pub encounter: CaseEncounter,
    /// Its orders (context lines: `curr` is ignored and sent as 0).
    #[serde(default)]
    pub orders: Vec<CaseOrder>,
}

/// A person-status row of a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseStatus {
    /// The person (default: the case's patient, `P-<case id>`).
    #[serde(default)]
    pub patn_id: Option<String>,
    /// Date of death, yyyy-MM-dd.
    pub die_date: String,
    /// Where the record came from.
    #[serde(default)]
    pub source: String,
}

/// One alert the case expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseExpect {
    /// `rx_id`s of the 违规项 (vola_item_type 1) lines, in any order.
    pub rx_ids: Vec<String>,
    /// Expected `vola_amt`, when the case pins it.
    #[serde(default)]
    pub vola_amt: Option<f64>,
    /// Expected `sev_deg` code, when the case pins it.
    #[serde(default)]
    pub sev_deg: Option<String>,
    /// A fragment `vola_cont` must contain.
    #[serde(default)]
    pub contains: Option<String>,
}

impl Case {
    /// The `patn_id` the compact form gives the case's patient.
    pub fn patient_id(case_id: &str) -> String {
        format!("P-{case_id}")
    }

    /// The national 3101/3102 `data` object of this case.
    ///
    /// `default_scen` is used when the case does not pin `trig_scen`.
    pub fn to_event(&self, case_id: &str, default_scen: u8) -> Result<Value, String> {
        if let Some(raw) = &self.event {
            return serde_json::from_str(raw).map_err(|err| format!("case event JSON: {err}"));
        }
        let mut encounters = vec![encounter_json(&self.encounter, &self.orders, true)];
        for past in &self.history {
            if past.encounter.mdtrt_id == self.encounter.mdtrt_id {
                return Err(format!(
                    "history encounter reuses the current mdtrt_id {}",
                    past.encounter.mdtrt_id
                ));
            }
            encounters.push(encounter_json(&past.encounter, &past.orders, false));
        }
        let scen = self
            .trig_scen
            .clone()
            .unwrap_or_else(|| default_scen.to_string());
        Ok(json!({
            "syscode": "FWTEST",
            "task_id": case_id,
            "trig_scen": scen,
            "rule_ids": [],
            "patient_dtos": [{
                "patn_id": Self::patient_id(case_id),
                "patn_name": "测试患者",
                "gend": self.patient.gend,
                "brdy": self.patient.brdy,
                "poolarea": self.patient.poolarea,
                "curr_mdtrt_id": self.encounter.mdtrt_id,
                "fsi_encounter_dtos": encounters,
            }],
        }))
    }
}

fn encounter_json(enc: &CaseEncounter, orders: &[CaseOrder], current: bool) -> Value {
    let diagnoses: Vec<Value> = enc
        .diagnoses
        .iter()
        .enumerate()
        .map(|(i, code)| {
            json!({
                "dise_id": (i + 1).to_string(),
                "inout_dise_type": "2",
                "maindise_flag": if i == 0 { "1" } else { "0" },
                "dias_srt_no": i + 1,
                "dise_codg": code,
                "dise_name": "",
            })
        })
        .collect();
    let operations: Vec<Value> = enc
        .operations
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let (code, date) = spec.split_once('@').unwrap_or((spec.as_str(), ""));
            json!({
                "setl_list_oprn_id": (i + 1).to_string(),
                "oprn_code": code,
                "oprn_name": "",
                "main_oprn_flag": if i == 0 { "1" } else { "0" },
                "oprn_date": date,
            })
        })
        .collect();
    let orders: Vec<Value> = orders
        .iter()
        .map(|o| {
            let hilist_type = o.hilist_type.clone().unwrap_or_else(|| {
                match o.hilist_code.chars().next() {
                    Some('X') | Some('Z') => "101",
                    Some('T') => "102",
                    Some('C') => "301",
                    _ => "201",
                }
                .to_string()
            });
            json!({
                "rx_id": o.rx_id,
                "rxno": o.rxno.clone().unwrap_or_else(|| o.rx_id.clone()),
                "long_drord_flag": "0",
                "hilist_type": hilist_type,
                "hilist_code": o.hilist_code,
                "hilist_name": o.hilist_name,
                "cnt": o.cnt,
                "pric": o.pric,
                "sumamt": o.sumamt.unwrap_or(o.cnt * o.pric),
                "drord_begn_date": o.begn.clone().unwrap_or_else(|| enc.adm_date.clone()),
                "curr_drord_flag": if current && o.curr { "1" } else { "0" },
            })
        })
        .collect();
    json!({
        "mdtrt_id": enc.mdtrt_id,
        "medins_id": enc.medins_id,
        "medins_name": "测试医院",
        "medins_lv": enc.medins_lv,
        "medins_type": enc.medins_type,
        "adm_date": enc.adm_date,
        "dscg_date": if enc.dscg_date.is_empty() { Value::Null } else { Value::from(enc.dscg_date.clone()) },
        "dscg_main_dise_codg": enc.diagnoses.first().cloned().unwrap_or_default(),
        "med_mdtrt_type": enc.med_mdtrt_type,
        "med_type": enc.med_type,
        "insutype": enc.insutype,
        "matn_stas": enc.matn_stas,
        "fsi_diagnose_dtos": diagnoses,
        "fsi_operation_dtos": operations,
        "fsi_order_dtos": orders,
    })
}
