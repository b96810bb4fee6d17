//! Typed 3101/3102 request: envelope, patients, encounters, diagnoses, orders,
//! operations. Field names follow the national interface (DOMAIN.md §2.2).

use chrono::{NaiveDate, NaiveDateTime};

/// The national message envelope (all `infno`), when the event came wrapped in one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope {
    /// `infno`: `3101` or `3102`.
    pub infno: String,
    /// `msgid`.
    pub msgid: String,
    /// `fixmedins_code`: the institution that sent the request.
    pub fixmedins_code: String,
    /// `fixmedins_name`.
    pub fixmedins_name: String,
    /// `inf_time`: when the request was sent.
    pub inf_time: Option<NaiveDateTime>,
    /// `mdtrtarea_admvs`: 就医地医保区划.
    pub mdtrtarea_admvs: String,
    /// `insuplc_admdvs`: 参保地医保区划.
    pub insuplc_admdvs: String,
}

/// One settlement/audit event: the `data` object of a 3101/3102 request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    /// The envelope, if the event came in one.
    pub envelope: Option<Envelope>,
    /// `syscode`.
    pub syscode: String,
    /// `task_id`: the caller's id of this request.
    pub task_id: String,
    /// `trig_scen`: one or more scenarios 1–10 (empty when not given).
    pub trig_scen: Vec<u8>,
    /// `rule_ids`: rules the caller asks for (empty = by scenario).
    pub rule_ids: Vec<String>,
    /// `patient_dtos`.
    pub patients: Vec<Patient>,
}

impl Event {
    /// The institution code: the envelope's `fixmedins_code`, else the current
    /// encounter's `medins_id` of the first patient.
    pub fn fixmedins_code(&self) -> &str {
        if let Some(env) = &self.envelope
            && !env.fixmedins_code.is_empty()
        {
            return &env.fixmedins_code;
        }
        self.patients
            .first()
            .and_then(|p| p.current_encounter())
            .map(|e| e.medins_id.as_str())
            .unwrap_or("")
    }

    /// When the event happened: the envelope's `inf_time`, else the latest start
    /// time of a checked order, else the current admission time.
    pub fn event_time(&self) -> Option<NaiveDateTime> {
        if let Some(time) = self.envelope.as_ref().and_then(|e| e.inf_time) {
            return Some(time);
        }
        let patient = self.patients.first()?;
        let encounter = patient.current_encounter()?;
        encounter
            .orders
            .iter()
            .filter(|o| o.curr_drord_flag)
            .filter_map(|o| o.drord_begn_date)
            .max()
            .or(encounter.adm_date)
            .or(encounter.dscg_date)
    }
}

/// `patient_dtos[]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patient {
    /// `patn_id`: the insured person's unique id.
    pub patn_id: String,
    /// `patn_name` (personal data: never logged).
    pub patn_name: String,
    /// `gend` as sent (normalised by the pack's `gend` dictionary).
    pub gend: String,
    /// `brdy`.
    pub brdy: Option<NaiveDate>,
    /// `poolarea`: 统筹区, selects dictionary and parameter overrides.
    pub poolarea: String,
    /// `curr_mdtrt_id`: the encounter being checked.
    pub curr_mdtrt_id: String,
    /// `fsi_encounter_dtos`: the current encounter and history encounters.
    pub encounters: Vec<Encounter>,
}

impl Patient {
    /// The encounter marked by `curr_mdtrt_id`.
    pub fn current_encounter(&self) -> Option<&Encounter> {
        self.encounters
            .iter()
            .find(|e| e.mdtrt_id == self.curr_mdtrt_id)
    }
}

/// `fsi_encounter_dtos[]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encounter {
    /// `mdtrt_id`.
    pub mdtrt_id: String,
    /// `medins_id`: 定点医疗机构 id.
    pub medins_id: String,
    /// `medins_name`.
    pub medins_name: String,
    /// `medins_admdvs`.
    pub medins_admdvs: String,
    /// `medins_type` as sent.
    pub medins_type: String,
    /// `medins_lv` as sent (normalised by the pack's `medins_lv` dictionary).
    pub medins_lv: String,
    /// `adm_date`.
    pub adm_date: Option<NaiveDateTime>,
    /// `dscg_date`.
    pub dscg_date: Option<NaiveDateTime>,
    /// `dscg_main_dise_codg`.
    pub dscg_main_dise_codg: String,
    /// `med_mdtrt_type` as sent (1 门诊 2 住院 3 购药 by default).
    pub med_mdtrt_type: String,
    /// `med_type` as sent (11 普通门诊, 21 普通住院 …).
    pub med_type: String,
    /// `matn_stas`.
    pub matn_stas: String,
    /// `insutype` (310 职工, 390 居民, 410 工伤, 510 生育 …).
    pub insutype: String,
    /// `medfee_sumamt`.
    pub medfee_sumamt: Option<f64>,
    /// `fsi_diagnose_dtos`.
    pub diagnoses: Vec<Diagnosis>,
    /// `fsi_order_dtos`.
    pub orders: Vec<Order>,
    /// `fsi_operation_dtos`.
    pub operations: Vec<Operation>,
}

/// `fsi_diagnose_dtos[]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diagnosis {
    /// `dise_codg` (ICD-10 医保版), trimmed.
    pub dise_codg: String,
    /// `dise_name`.
    pub dise_name: String,
    /// `maindise_flag`.
    pub maindise_flag: bool,
    /// `inout_dise_type` (1 入院 2 出院).
    pub inout_dise_type: String,
}

/// `fsi_order_dtos[]`: one order / fee line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Order {
    /// `rx_id`: unique id of the order line.
    pub rx_id: String,
    /// `rxno`: prescription number.
    pub rxno: String,
    /// `grpno`.
    pub grpno: String,
    /// `long_drord_flag`.
    pub long_drord_flag: bool,
    /// `hilist_type` (101 西药中成药, 102 中药饮片, 201 医疗服务项目, 301 耗材 …).
    pub hilist_type: String,
    /// `chrg_type`.
    pub chrg_type: String,
    /// `drord_bhvr` (1 出院带药).
    pub drord_bhvr: String,
    /// `hilist_code`: national code, trimmed.
    pub hilist_code: String,
    /// `hilist_name`.
    pub hilist_name: String,
    /// `cnt`.
    pub cnt: f64,
    /// `pric`.
    pub pric: f64,
    /// `sumamt` (`cnt × pric` when not sent).
    pub sumamt: f64,
    /// `drord_begn_date`.
    pub drord_begn_date: Option<NaiveDateTime>,
    /// `drord_stop_date`.
    pub drord_stop_date: Option<NaiveDateTime>,
    /// `drord_dept_codg`.
    pub drord_dept_codg: String,
    /// `drord_dr_codg`.
    pub drord_dr_codg: String,
    /// `curr_drord_flag`: the line is being checked in this request.
    pub curr_drord_flag: bool,
    /// `prd_days`: days of supply (2204 field; some HIS send it on 3101 orders).
    pub prd_days: Option<f64>,
    /// Drug trace codes (`drug_trac_codg`, or `drugtracinfo[].drug_trac_codg`).
    pub trace_codes: Vec<String>,
}

/// `fsi_operation_dtos[]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Operation {
    /// `oprn_code` (ICD-9-CM-3 医保版).
    pub oprn_code: String,
    /// `oprn_name`.
    pub oprn_name: String,
    /// `main_oprn_flag`.
    pub main_oprn_flag: bool,
    /// `oprn_date`.
    pub oprn_date: Option<NaiveDateTime>,
}
