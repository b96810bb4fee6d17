//! One planned event — patient, current encounter, history encounters — and its
//! national JSON (the 3101/3102 envelope, the shape `rule-base`'s cases expand to).

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{Value, json};

use super::context::Setting;
use super::world::Institution;

const DATE_TIME: &str = "%Y-%m-%d %H:%M:%S";

/// The patient of an event.
#[derive(Debug, Clone)]
pub(crate) struct PatientPlan {
    pub patn_id: String,
    pub name: String,
    pub gend: &'static str,
    pub brdy: NaiveDate,
    pub poolarea: &'static str,
}

/// One order / fee line.
#[derive(Debug, Clone)]
pub(crate) struct OrderPlan {
    pub rx_id: String,
    pub rxno: String,
    pub code: String,
    pub name: String,
    pub hilist_type: &'static str,
    pub cnt: f64,
    pub pric: f64,
    pub begn: NaiveDateTime,
    /// A line under check (`curr_drord_flag` 1); history lines are never.
    pub curr: bool,
    /// 药品追溯码 of the boxes sold on this line.
    pub trace_codes: Vec<String>,
}

/// One encounter.
#[derive(Debug, Clone)]
pub(crate) struct EncounterPlan {
    pub mdtrt_id: String,
    pub institution: Institution,
    pub setting: Setting,
    pub insutype: &'static str,
    pub adm: NaiveDateTime,
    pub dscg: Option<NaiveDateTime>,
    /// (code, name); the first is the main diagnosis.
    pub diagnoses: Vec<(String, String)>,
    pub orders: Vec<OrderPlan>,
    pub doctor: String,
}

/// A whole event.
#[derive(Debug, Clone)]
pub(crate) struct EventPlan {
    pub task_id: String,
    pub msgid_seq: u64,
    pub trig_scen: u8,
    pub inf_time: NaiveDateTime,
    pub patient: PatientPlan,
    pub current: EncounterPlan,
    pub history: Vec<EncounterPlan>,
}

fn money(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl EventPlan {
    /// The national envelope JSON: `infno` 3101 for 事前 scenarios (1–5), 3102 for
    /// 事中 (6–10).
    pub fn to_json(&self) -> Value {
        let inst = &self.current.institution;
        let infno = if self.trig_scen <= 5 { "3101" } else { "3102" };
        // 事中 settlement calls commonly flag no line: every line is then under check.
        let settlement = self.trig_scen >= 6;
        let mut encounters = vec![encounter_json(&self.current, settlement, true)];
        encounters.extend(self.history.iter().map(|e| encounter_json(e, false, false)));
        json!({
            "infno": infno,
            "msgid": format!("{}{}{:04}", inst.code, self.inf_time.format("%Y%m%d%H%M%S"), self.msgid_seq % 10_000),
            "mdtrtarea_admvs": inst.admdvs,
            "insuplc_admdvs": self.patient.poolarea,
            "recer_sys_code": "FWSYN",
            "infver": "V1.0",
            "opter_type": "1",
            "opter": self.current.doctor,
            "opter_name": "医生",
            "inf_time": self.inf_time.format(DATE_TIME).to_string(),
            "fixmedins_code": inst.code,
            "fixmedins_name": inst.name,
            "sign_no": "",
            "input": { "data": {
                "syscode": "FWSYN",
                "task_id": self.task_id,
                "trig_scen": self.trig_scen.to_string(),
                "rule_ids": [],
                "patient_dtos": [{
                    "patn_id": self.patient.patn_id,
                    "patn_name": self.patient.name,
                    "gend": self.patient.gend,
                    "brdy": self.patient.brdy.format("%Y-%m-%d").to_string(),
                    "poolarea": self.patient.poolarea,
                    "curr_mdtrt_id": self.current.mdtrt_id,
                    "fsi_encounter_dtos": encounters,
                }],
            }},
        })
    }
}

fn encounter_json(enc: &EncounterPlan, settlement: bool, current: bool) -> Value {
    let inst = &enc.institution;
    let diagnoses: Vec<Value> = enc
        .diagnoses
        .iter()
        .enumerate()
        .map(|(i, (code, name))| {
            json!({
                "dise_id": (i + 1).to_string(),
                "inout_dise_type": if enc.dscg.is_some() { "2" } else { "1" },
                "maindise_flag": if i == 0 { "1" } else { "0" },
                "dias_srt_no": i + 1,
                "dise_codg": code,
                "dise_name": name,
                "dise_date": enc.adm.format(DATE_TIME).to_string(),
            })
        })
        .collect();
    let orders: Vec<Value> = enc
        .orders
        .iter()
        .map(|o| {
            let flag = if current && o.curr && !settlement {
                "1"
            } else {
                "0"
            };
            let mut line = json!({
                "rx_id": o.rx_id,
                "rxno": o.rxno,
                "long_drord_flag": "0",
                "hilist_type": o.hilist_type,
                "chrg_type": chrg_type(o.hilist_type),
                "drord_bhvr": "0",
                "hilist_code": o.code,
                "hilist_name": o.name,
                "cnt": o.cnt,
                "pric": o.pric,
                "sumamt": money(o.cnt * o.pric),
                "drord_begn_date": o.begn.format(DATE_TIME).to_string(),
                "drord_dept_codg": dept(enc.setting),
                "drord_dr_codg": enc.doctor,
                "curr_drord_flag": flag,
            });
            if !o.trace_codes.is_empty()
                && let Some(obj) = line.as_object_mut()
            {
                obj.insert(
                    "drug_trac_codg".into(),
                    Value::from(o.trace_codes.join(",")),
                );
            }
            line
        })
        .collect();
    let medfee: f64 = enc.orders.iter().map(|o| money(o.cnt * o.pric)).sum();
    let (main_code, main_name) = enc.diagnoses.first().cloned().unwrap_or_default();
    json!({
        "mdtrt_id": enc.mdtrt_id,
        "medins_id": inst.code,
        "medins_name": inst.name,
        "medins_admdvs": inst.admdvs,
        "medins_type": inst.medins_type(),
        "medins_lv": inst.medins_lv(),
        "adm_date": enc.adm.format(DATE_TIME).to_string(),
        "dscg_date": enc.dscg.map(|d| Value::from(d.format(DATE_TIME).to_string())).unwrap_or(Value::Null),
        "dscg_main_dise_codg": main_code,
        "dscg_main_dise_name": main_name,
        "dr_codg": enc.doctor,
        "adm_dept_codg": dept(enc.setting),
        "med_mdtrt_type": enc.setting.med_mdtrt_type(),
        "med_type": enc.setting.med_type(),
        "matn_stas": "0",
        "insutype": enc.insutype,
        "medfee_sumamt": money(medfee),
        "fsi_diagnose_dtos": diagnoses,
        "fsi_operation_dtos": [],
        "fsi_order_dtos": orders,
    })
}

fn chrg_type(hilist_type: &str) -> &'static str {
    match hilist_type {
        "101" => "09",
        "102" => "10",
        "301" => "08",
        _ => "05",
    }
}

fn dept(setting: Setting) -> &'static str {
    match setting {
        Setting::Inpatient => "A03",
        Setting::Pharmacy => "",
        Setting::Outpatient | Setting::Internet => "A01",
    }
}
