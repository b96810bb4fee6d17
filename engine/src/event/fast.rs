//! The fast path of decoding: straight from the bytes into borrowed, typed
//! structs, without building a `serde_json::Value` tree (an allocation per key
//! and value: a 30-line request is about a thousand).
//!
//! It converts every field through the same [`Scalar`] functions as the
//! reference decoder (decode.rs), so both read a value the same way. It takes
//! only what it can read without doubt: malformed JSON, a value of the wrong
//! shape, a repeated key or a field that does not convert makes it give up, and
//! the reference decoder reads the request again and names the field and the
//! reason. A well-formed request costs one pass; a bad one costs two.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use super::decode::{Scalar, scenarios, split_list};
use super::model::{Diagnosis, Encounter, Envelope, Event, Operation, Order, Patient};

/// Where the national `data` object was in the request (its fields' path prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPath {
    /// The full envelope: `input.data`.
    Envelope,
    /// `{"data": {…}}`.
    Data,
    /// The bare `data` object.
    Bare,
}

impl DataPath {
    /// The prefix of a field path inside `data`, e.g. `input.data.`.
    pub fn prefix(self) -> &'static str {
        match self {
            DataPath::Envelope => "input.data.",
            DataPath::Data => "data.",
            DataPath::Bare => "",
        }
    }
}

/// Decodes a well-formed request; `None` when the reference decoder must look.
pub(super) fn decode(bytes: &[u8]) -> Option<(Event, DataPath)> {
    let Obj(mut root) = serde_json::from_slice::<Obj<RawObject<'_>>>(bytes).ok()?;
    if let Some(Obj(input)) = root.input.take() {
        let envelope = Envelope {
            infno: root.infno.text(),
            msgid: root.msgid.text(),
            fixmedins_code: root.fixmedins_code.text(),
            fixmedins_name: root.fixmedins_name.text(),
            inf_time: root.inf_time.datetime()?,
            mdtrtarea_admvs: root.mdtrtarea_admvs.text(),
            insuplc_admdvs: root.insuplc_admdvs.text(),
        };
        let Obj(data) = input.data?;
        let mut event = data.event()?;
        event.envelope = Some(envelope);
        return Some((event, DataPath::Envelope));
    }
    if let Some(Obj(data)) = root.data.take() {
        return Some((data.event()?, DataPath::Data));
    }
    Some((root.event()?, DataPath::Bare))
}

/// A JSON object only. serde's derived structs also accept an array of the
/// fields in order, which the reference decoder refuses; reading through
/// `deserialize_map` keeps the two decoders agreeing.
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(ObjVisitor(std::marker::PhantomData))
            .map(Obj)
    }
}

/// A present value must be a `T`: `null` is an error, not `None` (`"input": null`
/// is refused by the reference decoder, so the fast path must not read it as
/// absent).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A JSON scalar borrowed from the request (owned only when it had escapes).
#[derive(Debug, Default)]
struct Loose<'a>(LooseValue<'a>);

#[derive(Debug, Default)]
enum LooseValue<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    Num(Number),
    Bool(bool),
}

impl Loose<'_> {
    fn scalar(&self) -> Scalar<'_> {
        match &self.0 {
            LooseValue::Absent => Scalar::Absent,
            LooseValue::Str(s) => Scalar::Str(s),
            LooseValue::Num(n) => Scalar::Num(n),
            LooseValue::Bool(b) => Scalar::Bool(*b),
        }
    }

    fn text(&self) -> String {
        self.scalar().text()
    }

    fn code(&self) -> String {
        self.scalar().code()
    }

    fn required(&self) -> Option<String> {
        Some(self.text()).filter(|t| !t.is_empty())
    }

    fn number(&self) -> Option<Option<f64>> {
        self.scalar().number().ok()
    }

    fn flag(&self) -> Option<bool> {
        self.scalar().flag().ok()
    }

    fn datetime(&self) -> Option<Option<chrono::NaiveDateTime>> {
        self.scalar().datetime().ok()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor).map(Loose)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = LooseValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number, boolean or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(LooseValue::Absent)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(LooseValue::Bool(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(LooseValue::Num(v.into()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(LooseValue::Num(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Number::from_f64(v)
            .map(LooseValue::Num)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(LooseValue::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(LooseValue::Str(Cow::Owned(v.to_string())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(LooseValue::Str(Cow::Owned(v)))
    }
}

/// `trig_scen` / `rule_ids`: one scalar (maybe a comma list) or an array of
/// strings and numbers.
#[derive(Debug, Default)]
enum LooseList<'a> {
    #[default]
    Absent,
    One(Loose<'a>),
    Many(Vec<Loose<'a>>),
}

impl LooseList<'_> {
    /// The reference decoder's `string_list`: one string is a comma list; array
    /// items must be strings or numbers, and empty ones are dropped.
    fn strings(&self) -> Option<Vec<String>> {
        match self {
            LooseList::Absent => Some(Vec::new()),
            LooseList::One(one) => match one.scalar() {
                Scalar::Absent => Some(Vec::new()),
                Scalar::Str(s) => Some(split_list(s)),
                Scalar::Num(_) | Scalar::Bool(_) => None,
            },
            LooseList::Many(items) => items
                .iter()
                .map(|item| match item.scalar() {
                    Scalar::Str(_) | Scalar::Num(_) => Some(item.text()),
                    Scalar::Absent | Scalar::Bool(_) => None,
                })
                .filter(|text| text.as_ref().is_none_or(|t| !t.is_empty()))
                .collect(),
        }
    }

    /// The reference decoder's `scenarios`: a number is one scenario.
    fn scenarios(&self) -> Option<Vec<u8>> {
        let items = match self {
            LooseList::One(one) if matches!(one.scalar(), Scalar::Num(_)) => vec![one.text()],
            _ => self.strings()?,
        };
        scenarios(items).ok()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for LooseList<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseListVisitor)
    }
}

struct LooseListVisitor;

impl<'de> Visitor<'de> for LooseListVisitor {
    type Value = LooseList<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar or an array of scalars")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Loose<'de>>()? {
            items.push(item);
        }
        Ok(LooseList::Many(items))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(LooseList::Absent)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        LooseVisitor.visit_bool(v).map(|v| LooseList::One(Loose(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        LooseVisitor.visit_u64(v).map(|v| LooseList::One(Loose(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        LooseVisitor.visit_i64(v).map(|v| LooseList::One(Loose(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        LooseVisitor.visit_f64(v).map(|v| LooseList::One(Loose(v)))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        LooseVisitor
            .visit_borrowed_str(v)
            .map(|v| LooseList::One(Loose(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        LooseVisitor.visit_str(v).map(|v| LooseList::One(Loose(v)))
    }
}

// The request's objects, field for field as decode.rs reads them. Unknown keys
// are skipped; a repeated known key is an error (the reference decoder keeps the
// last one, so the fast path leaves such a request to it).

/// The root: the envelope fields, `input`, `data`, and the `data` object's own
/// fields (a bare request, or what `input.data` / `data` hold).
#[derive(Deserialize)]
struct RawObject<'a> {
    #[serde(borrow, default)]
    infno: Loose<'a>,
    #[serde(borrow, default)]
    msgid: Loose<'a>,
    #[serde(borrow, default)]
    fixmedins_code: Loose<'a>,
    #[serde(borrow, default)]
    fixmedins_name: Loose<'a>,
    #[serde(borrow, default)]
    inf_time: Loose<'a>,
    #[serde(borrow, default)]
    mdtrtarea_admvs: Loose<'a>,
    #[serde(borrow, default)]
    insuplc_admdvs: Loose<'a>,
    #[serde(borrow, default, deserialize_with = "present")]
    input: Option<Obj<RawInput<'a>>>,
    /// `null` or absent: the request is the bare `data` object.
    #[serde(borrow, default)]
    data: Option<Obj<Box<RawObject<'a>>>>,
    #[serde(borrow, default)]
    syscode: Loose<'a>,
    #[serde(borrow, default)]
    task_id: Loose<'a>,
    #[serde(borrow, default)]
    trig_scen: LooseList<'a>,
    #[serde(borrow, default)]
    rule_ids: LooseList<'a>,
    #[serde(borrow, default)]
    patient_dtos: Option<Vec<Obj<RawPatient<'a>>>>,
}

#[derive(Deserialize)]
struct RawInput<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<Obj<Box<RawObject<'a>>>>,
}

impl RawObject<'_> {
    /// The event of the `data` fields.
    fn event(self) -> Option<Event> {
        let patients = self.patient_dtos.filter(|p| !p.is_empty())?;
        Some(Event {
            envelope: None,
            syscode: self.syscode.text(),
            task_id: self.task_id.text(),
            trig_scen: self.trig_scen.scenarios()?,
            rule_ids: self.rule_ids.strings()?,
            patients: patients
                .into_iter()
                .map(|Obj(p)| p.patient())
                .collect::<Option<_>>()?,
        })
    }
}

#[derive(Deserialize)]
struct RawPatient<'a> {
    #[serde(borrow, default)]
    patn_id: Loose<'a>,
    #[serde(borrow, default)]
    patn_name: Loose<'a>,
    #[serde(borrow, default)]
    gend: Loose<'a>,
    #[serde(borrow, default)]
    brdy: Loose<'a>,
    #[serde(borrow, default)]
    poolarea: Loose<'a>,
    #[serde(borrow, default)]
    curr_mdtrt_id: Loose<'a>,
    #[serde(borrow, default)]
    fsi_encounter_dtos: Option<Vec<Obj<RawEncounter<'a>>>>,
}

impl RawPatient<'_> {
    fn patient(self) -> Option<Patient> {
        let patn_id = self.patn_id.required()?;
        let encounters: Vec<Encounter> = self
            .fsi_encounter_dtos
            .filter(|e| !e.is_empty())?
            .into_iter()
            .map(|Obj(e)| e.encounter())
            .collect::<Option<_>>()?;
        let mut curr_mdtrt_id = self.curr_mdtrt_id.text();
        if curr_mdtrt_id.is_empty() {
            // Lenient, as the reference decoder: a single encounter is the current one.
            match encounters.as_slice() {
                [only] => curr_mdtrt_id = only.mdtrt_id.clone(),
                _ => return None,
            }
        }
        if !encounters.iter().any(|e| e.mdtrt_id == curr_mdtrt_id) {
            return None;
        }
        Some(Patient {
            patn_id,
            patn_name: self.patn_name.text(),
            gend: self.gend.text(),
            brdy: self.brdy.datetime()?.map(|dt| dt.date()),
            poolarea: self.poolarea.text(),
            curr_mdtrt_id,
            encounters,
        })
    }
}

#[derive(Deserialize)]
struct RawEncounter<'a> {
    #[serde(borrow, default)]
    mdtrt_id: Loose<'a>,
    #[serde(borrow, default)]
    medins_id: Loose<'a>,
    #[serde(borrow, default)]
    medins_name: Loose<'a>,
    #[serde(borrow, default)]
    medins_admdvs: Loose<'a>,
    #[serde(borrow, default)]
    medins_type: Loose<'a>,
    #[serde(borrow, default)]
    medins_lv: Loose<'a>,
    #[serde(borrow, default)]
    adm_date: Loose<'a>,
    #[serde(borrow, default)]
    dscg_date: Loose<'a>,
    #[serde(borrow, default)]
    dscg_main_dise_codg: Loose<'a>,
    #[serde(borrow, default)]
    med_mdtrt_type: Loose<'a>,
    #[serde(borrow, default)]
    med_type: Loose<'a>,
    #[serde(borrow, default)]
    matn_stas: Loose<'a>,
    #[serde(borrow, default)]
    insutype: Loose<'a>,
    #[serde(borrow, default)]
    medfee_sumamt: Loose<'a>,
    #[serde(borrow, default)]
    fsi_diagnose_dtos: Option<Vec<Obj<RawDiagnosis<'a>>>>,
    #[serde(borrow, default)]
    fsi_order_dtos: Option<Vec<Obj<RawOrder<'a>>>>,
    #[serde(borrow, default)]
    fsi_operation_dtos: Option<Vec<Obj<RawOperation<'a>>>>,
}

impl RawEncounter<'_> {
    fn encounter(self) -> Option<Encounter> {
        Some(Encounter {
            mdtrt_id: self.mdtrt_id.required()?,
            medins_id: self.medins_id.text(),
            medins_name: self.medins_name.text(),
            medins_admdvs: self.medins_admdvs.text(),
            medins_type: self.medins_type.text(),
            medins_lv: self.medins_lv.text(),
            adm_date: self.adm_date.datetime()?,
            dscg_date: self.dscg_date.datetime()?,
            dscg_main_dise_codg: self.dscg_main_dise_codg.code(),
            med_mdtrt_type: self.med_mdtrt_type.text(),
            med_type: self.med_type.text(),
            matn_stas: self.matn_stas.text(),
            insutype: self.insutype.text(),
            medfee_sumamt: self.medfee_sumamt.number()?,
            diagnoses: all(self.fsi_diagnose_dtos, RawDiagnosis::diagnosis)?,
            orders: all(self.fsi_order_dtos, RawOrder::order)?,
            operations: all(self.fsi_operation_dtos, RawOperation::operation)?,
        })
    }
}

/// Converts every item (a missing or null array is empty).
fn all<R, T>(items: Option<Vec<Obj<R>>>, convert: impl Fn(R) -> Option<T>) -> Option<Vec<T>> {
    items
        .unwrap_or_default()
        .into_iter()
        .map(|Obj(item)| convert(item))
        .collect()
}

#[derive(Deserialize)]
struct RawDiagnosis<'a> {
    #[serde(borrow, default)]
    dise_codg: Loose<'a>,
    #[serde(borrow, default)]
    dise_name: Loose<'a>,
    #[serde(borrow, default)]
    maindise_flag: Loose<'a>,
    #[serde(borrow, default)]
    inout_dise_type: Loose<'a>,
}

impl RawDiagnosis<'_> {
    fn diagnosis(self) -> Option<Diagnosis> {
        Some(Diagnosis {
            dise_codg: self.dise_codg.code(),
            dise_name: self.dise_name.text(),
            maindise_flag: self.maindise_flag.flag()?,
            inout_dise_type: self.inout_dise_type.text(),
        })
    }
}

#[derive(Deserialize)]
struct RawOrder<'a> {
    #[serde(borrow, default)]
    rx_id: Loose<'a>,
    #[serde(borrow, default)]
    rxno: Loose<'a>,
    #[serde(borrow, default)]
    grpno: Loose<'a>,
    #[serde(borrow, default)]
    long_drord_flag: Loose<'a>,
    #[serde(borrow, default)]
    hilist_type: Loose<'a>,
    #[serde(borrow, default)]
    chrg_type: Loose<'a>,
    #[serde(borrow, default)]
    drord_bhvr: Loose<'a>,
    #[serde(borrow, default)]
    hilist_code: Loose<'a>,
    #[serde(borrow, default)]
    hilist_name: Loose<'a>,
    #[serde(borrow, default)]
    cnt: Loose<'a>,
    #[serde(borrow, default)]
    pric: Loose<'a>,
    #[serde(borrow, default)]
    sumamt: Loose<'a>,
    #[serde(borrow, default)]
    drord_begn_date: Loose<'a>,
    #[serde(borrow, default)]
    drord_stop_date: Loose<'a>,
    #[serde(borrow, default)]
    drord_dept_codg: Loose<'a>,
    #[serde(borrow, default)]
    drord_dr_codg: Loose<'a>,
    #[serde(borrow, default)]
    curr_drord_flag: Loose<'a>,
    #[serde(borrow, default)]
    prd_days: Loose<'a>,
    #[serde(borrow, default)]
    drug_trac_codg: Loose<'a>,
    #[serde(borrow, default)]
    drugtracinfo: Option<Vec<Obj<RawTrace<'a>>>>,
}

impl RawOrder<'_> {
    fn order(self) -> Option<Order> {
        let cnt = self.cnt.number()?.unwrap_or(0.0);
        let pric = self.pric.number()?.unwrap_or(0.0);
        let sumamt = self.sumamt.number()?.unwrap_or(cnt * pric);
        let mut trace_codes = split_list(&self.drug_trac_codg.text());
        for Obj(item) in self.drugtracinfo.unwrap_or_default() {
            let code = item.drug_trac_codg.text();
            if !code.is_empty() {
                trace_codes.push(code);
            }
        }
        trace_codes.sort();
        trace_codes.dedup();
        Some(Order {
            rx_id: self.rx_id.required()?,
            rxno: self.rxno.text(),
            grpno: self.grpno.text(),
            long_drord_flag: self.long_drord_flag.flag()?,
            hilist_type: self.hilist_type.text(),
            chrg_type: self.chrg_type.text(),
            drord_bhvr: self.drord_bhvr.text(),
            hilist_code: self.hilist_code.code(),
            hilist_name: self.hilist_name.text(),
            cnt,
            pric,
            sumamt,
            drord_begn_date: self.drord_begn_date.datetime()?,
            drord_stop_date: self.drord_stop_date.datetime()?,
            drord_dept_codg: self.drord_dept_codg.text(),
            drord_dr_codg: self.drord_dr_codg.text(),
            curr_drord_flag: self.curr_drord_flag.flag()?,
            prd_days: self.prd_days.number()?,
            trace_codes,
        })
    }
}

#[derive(Deserialize)]
struct RawTrace<'a> {
    #[serde(borrow, default)]
    drug_trac_codg: Loose<'a>,
}

#[derive(Deserialize)]
struct RawOperation<'a> {
    #[serde(borrow, default)]
    oprn_code: Loose<'a>,
    #[serde(borrow, default)]
    oprn_name: Loose<'a>,
    #[serde(borrow, default)]
    main_oprn_flag: Loose<'a>,
    #[serde(borrow, default)]
    oprn_date: Loose<'a>,
}

impl RawOperation<'_> {
    fn operation(self) -> Option<Operation> {
        Some(Operation {
            oprn_code: self.oprn_code.code(),
            oprn_name: self.oprn_name.text(),
            main_oprn_flag: self.main_oprn_flag.flag()?,
            oprn_date: self.oprn_date.datetime()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::event::decode::decode_reference;

    /// Requests of every shape the repository has: the fixtures, every case of the
    /// national pack (in all three wrappings), and lenient variants.
    fn corpus() -> Vec<Value> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut out = fixtures();
        let pack = fundwatch_rules::RulePack::load(root.join("rule-base/packs/national"))
            .expect("national pack");
        for rule in &pack.rules {
            for (i, case) in rule.cases.iter().enumerate() {
                let data = case
                    .to_event(&format!("{}-{i}", rule.rule_id), rule.trig_scen[0])
                    .expect("case event");
                out.push(json!({"data": data.clone()}));
                out.push(
                    json!({"infno": "3102", "fixmedins_code": "H1", "inf_time": "20250614142724",
                                "input": {"data": data.clone()}}),
                );
                out.push(data);
            }
        }
        out.push(json!({
            "trig_scen": [2, "4", 4], "rule_ids": "GZ1, GZ2，GZ3", "task_id": 17,
            "patient_dtos": [{
                "patn_id": 9001, "gend": "2", "brdy": "2024/01/05", "poolarea": 430796,
                "fsi_encounter_dtos": [{
                    "mdtrt_id": "M\u{9}1", "adm_date": "2025-06-14T08:00:00Z", "medfee_sumamt": "1,234.50",
                    "dscg_main_dise_codg": " i10.X00x002 ", "medins_lv": 3,
                    "fsi_diagnose_dtos": [{"dise_codg": "m10.002", "maindise_flag": true}],
                    "fsi_operation_dtos": [{"oprn_code": "47.0900", "main_oprn_flag": "Y",
                                            "oprn_date": "2025-06-14 09:30"}],
                    "fsi_order_dtos": [{
                        "rx_id": "R\"1\"", "cnt": "2", "pric": 3.25, "curr_drord_flag": "是",
                        "hilist_code": " xa11daw036a001010104127 ", "prd_days": null,
                        "drug_trac_codg": "81000,81001", "drugtracinfo": [{"drug_trac_codg": "81002"}],
                        "drord_begn_date": "20250614142552", "extra": {"nested": [1, 2]}
                    }]
                }]
            }]
        }));
        out
    }

    /// The fixture requests that decode (the file also holds broken ones).
    fn fixtures() -> Vec<Value> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/events.ndjson");
        std::fs::read_to_string(path)
            .expect("fixtures")
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| decode_reference(&bytes(v)).is_ok())
            .collect()
    }

    fn bytes(value: &Value) -> Vec<u8> {
        serde_json::to_vec(value).expect("serialize")
    }

    #[test]
    fn the_fast_path_reads_every_request_of_the_corpus_as_the_reference_does() {
        let corpus = corpus();
        assert!(corpus.len() > 600, "corpus of {}", corpus.len());
        for value in &corpus {
            let bytes = bytes(value);
            let reference = decode_reference(&bytes).expect("corpus request decodes");
            let fast = decode(&bytes).unwrap_or_else(|| panic!("fast path gave up on {value}"));
            assert_eq!(fast, reference, "{value}");
        }
    }

    #[test]
    fn requests_the_reference_refuses_are_left_to_it() {
        for bad in [
            json!({"input": null, "patient_dtos": [{"patn_id": "P", "fsi_encounter_dtos": [{"mdtrt_id": "M"}]}]}),
            json!({"patient_dtos": [["P", "", "1"]]}),
            json!({"patient_dtos": [{"patn_id": "P", "fsi_encounter_dtos": [{"mdtrt_id": "M",
                   "fsi_order_dtos": [{"rx_id": "R", "cnt": "abc"}]}]}]}),
            json!({"rule_ids": [null], "patient_dtos": [{"patn_id": "P", "fsi_encounter_dtos": [{"mdtrt_id": "M"}]}]}),
            json!({"trig_scen": true, "patient_dtos": [{"patn_id": "P", "fsi_encounter_dtos": [{"mdtrt_id": "M"}]}]}),
        ] {
            assert!(
                decode_reference(&bytes(&bad)).is_err(),
                "reference takes {bad}"
            );
            assert!(decode(&bytes(&bad)).is_none(), "fast path takes {bad}");
        }
        // A repeated key: the reference keeps the last value; the fast path leaves it.
        let repeated = br#"{"patient_dtos": [{"patn_id": "P1", "patn_id": "P2", "fsi_encounter_dtos": [{"mdtrt_id": "M"}]}]}"#;
        assert!(decode(repeated).is_none());
        let (event, _) = decode_reference(repeated).expect("reference decodes");
        assert_eq!(event.patients[0].patn_id, "P2");
    }

    proptest! {
        /// Whatever the fast path accepts, the reference decodes to the same event.
        #[test]
        fn the_fast_path_never_disagrees(
            field in prop_oneof![
                Just("cnt"), Just("brdy"), Just("rx_id"), Just("trig_scen"), Just("rule_ids"),
                Just("curr_drord_flag"), Just("hilist_code"), Just("drugtracinfo"),
                Just("fsi_order_dtos"), Just("curr_mdtrt_id"), Just("input"), Just("data"),
                Just("adm_date"), Just("medfee_sumamt"), Just("patn_id"), Just("mdtrt_id"),
            ],
            value in prop_oneof![
                Just(Value::Null), any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)), any::<f64>().prop_map(|f| json!(f)),
                "[0-9a-zA-Z ,:./-]{0,20}".prop_map(Value::String),
                Just(json!([])), Just(json!({})), Just(json!(["4", 5])), Just(json!([{}])),
            ],
            level in 0usize..4,
        ) {
            let mut request = fixtures().swap_remove(0);
            let target = match level {
                0 => &mut request,
                1 => &mut request["input"]["data"]["patient_dtos"][0],
                2 => &mut request["input"]["data"]["patient_dtos"][0]["fsi_encounter_dtos"][0],
                _ => &mut request["input"]["data"]["patient_dtos"][0]["fsi_encounter_dtos"][0]["fsi_order_dtos"][0],
            };
            target[field] = value;
            let bytes = bytes(&request);
            if let Some(fast) = decode(&bytes) {
                prop_assert_eq!(Ok(fast), decode_reference(&bytes));
            }
        }
    }
}
