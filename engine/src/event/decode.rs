//! Lenient JSON → [`Event`] decoding with field-path errors.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::{Map, Number, Value};

use super::fast::{self, DataPath};
use super::model::{Diagnosis, Encounter, Envelope, Event, Operation, Order, Patient};

/// A request that cannot be read: the field path, the offending value and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {reason}{}", value.as_ref().map(|v| format!(" (got {v})")).unwrap_or_default())]
pub struct DecodeError {
    /// Field path, e.g. `patient_dtos[0].fsi_encounter_dtos[1].fsi_order_dtos[3].cnt`.
    pub path: String,
    /// The offending value as JSON text, shortened to 80 characters.
    pub value: Option<String>,
    /// What is wrong and what is expected.
    pub reason: String,
}

impl DecodeError {
    fn new(path: impl Into<String>, value: Option<&Value>, reason: impl Into<String>) -> Self {
        let value = value.map(|v| {
            let text = v.to_string();
            if text.chars().count() > 80 {
                let short: String = text.chars().take(77).collect();
                format!("{short}...")
            } else {
                text
            }
        });
        Self {
            path: path.into(),
            value,
            reason: reason.into(),
        }
    }
}

/// Decodes one request from bytes: the full envelope (`{infno, …, input:{data}}`),
/// `{data:{…}}`, or the bare `data` object.
pub fn decode_event(bytes: &[u8]) -> Result<Event, DecodeError> {
    decode_request(bytes).map(|(event, _)| event)
}

/// [`decode_event`], also telling where the `data` object was (for paths of
/// errors found later, e.g. `input.data.trig_scen`).
///
/// A well-formed request is read once, straight into typed structs (fast.rs);
/// anything that path cannot take is read again through a `serde_json::Value`
/// here, which names the field and the reason.
pub fn decode_request(bytes: &[u8]) -> Result<(Event, DataPath), DecodeError> {
    if let Some(decoded) = fast::decode(bytes) {
        return Ok(decoded);
    }
    decode_reference(bytes)
}

/// The reference decoder on bytes (no fast path): the one that explains errors.
pub fn decode_reference(bytes: &[u8]) -> Result<(Event, DataPath), DecodeError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|err| DecodeError::new("$", None, format!("not valid JSON: {err}")))?;
    let event = decode_value(&value)?;
    Ok((event, data_path(&value)))
}

/// Where `data` sits in a request (the choice [`decode_value`] makes).
pub fn data_path(value: &Value) -> DataPath {
    match value.as_object() {
        Some(root) if root.contains_key("input") => DataPath::Envelope,
        Some(root) if root.get("data").is_some_and(Value::is_object) => DataPath::Data,
        _ => DataPath::Bare,
    }
}

/// Decodes one request from parsed JSON (see [`decode_event`]).
pub fn decode_value(value: &Value) -> Result<Event, DecodeError> {
    let root = value
        .as_object()
        .ok_or_else(|| DecodeError::new("$", Some(value), "expected a JSON object"))?;

    let (envelope, data, data_path) = if let Some(input) = root.get("input") {
        let input_obj = input
            .as_object()
            .ok_or_else(|| DecodeError::new("input", Some(input), "expected an object"))?;
        let data = input_obj
            .get("data")
            .ok_or_else(|| DecodeError::new("input.data", None, "missing"))?;
        (Some(envelope(root)?), data, "input.data")
    } else if let Some(data) = root.get("data").filter(|d| d.is_object()) {
        (None, data, "data")
    } else {
        (None, value, "")
    };
    let mut event = data_object(data, data_path)?;
    event.envelope = envelope;
    Ok(event)
}

fn join(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_string()
    } else {
        format!("{base}.{field}")
    }
}

fn envelope(root: &Map<String, Value>) -> Result<Envelope, DecodeError> {
    let f = Fields {
        obj: root,
        path: "",
    };
    Ok(Envelope {
        infno: f.string("infno")?,
        msgid: f.string("msgid")?,
        fixmedins_code: f.string("fixmedins_code")?,
        fixmedins_name: f.string("fixmedins_name")?,
        inf_time: f.datetime("inf_time")?,
        mdtrtarea_admvs: f.string("mdtrtarea_admvs")?,
        insuplc_admdvs: f.string("insuplc_admdvs")?,
    })
}

fn data_object(value: &Value, path: &str) -> Result<Event, DecodeError> {
    let obj = value.as_object().ok_or_else(|| {
        DecodeError::new(
            if path.is_empty() { "$" } else { path },
            Some(value),
            "expected an object",
        )
    })?;
    let f = Fields { obj, path };
    let patients_path = join(path, "patient_dtos");
    let patients = f.array("patient_dtos")?.ok_or_else(|| {
        DecodeError::new(
            &patients_path,
            None,
            "missing: a request needs at least one patient",
        )
    })?;
    if patients.is_empty() {
        return Err(DecodeError::new(
            &patients_path,
            Some(&Value::Array(vec![])),
            "empty: a request needs at least one patient",
        ));
    }
    let patients = patients
        .iter()
        .enumerate()
        .map(|(i, p)| patient(p, &format!("{patients_path}[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Event {
        envelope: None,
        syscode: f.string("syscode")?,
        task_id: f.string("task_id")?,
        trig_scen: f.scenarios("trig_scen")?,
        rule_ids: f.string_list("rule_ids")?,
        patients,
    })
}

fn patient(value: &Value, path: &str) -> Result<Patient, DecodeError> {
    let f = Fields::of(value, path)?;
    let patn_id = f.required_string("patn_id")?;
    let encounters_path = join(path, "fsi_encounter_dtos");
    let raw = f.array("fsi_encounter_dtos")?.unwrap_or(&[]);
    if raw.is_empty() {
        return Err(DecodeError::new(
            &encounters_path,
            None,
            "missing or empty: a patient needs the current encounter",
        ));
    }
    let encounters = raw
        .iter()
        .enumerate()
        .map(|(i, e)| encounter(e, &format!("{encounters_path}[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut curr_mdtrt_id = f.string("curr_mdtrt_id")?;
    if curr_mdtrt_id.is_empty() {
        // Lenient: a single encounter is the current one.
        if let [only] = encounters.as_slice() {
            curr_mdtrt_id = only.mdtrt_id.clone();
        } else {
            return Err(DecodeError::new(
                join(path, "curr_mdtrt_id"),
                None,
                "missing: with several encounters, curr_mdtrt_id must name the current one",
            ));
        }
    }
    if !encounters.iter().any(|e| e.mdtrt_id == curr_mdtrt_id) {
        return Err(DecodeError::new(
            join(path, "curr_mdtrt_id"),
            Some(&Value::String(curr_mdtrt_id)),
            "names no encounter in fsi_encounter_dtos",
        ));
    }
    Ok(Patient {
        patn_id,
        patn_name: f.string("patn_name")?,
        gend: f.string("gend")?,
        brdy: f.date("brdy")?,
        poolarea: f.string("poolarea")?,
        curr_mdtrt_id,
        encounters,
    })
}

fn encounter(value: &Value, path: &str) -> Result<Encounter, DecodeError> {
    let f = Fields::of(value, path)?;
    let diagnoses = f
        .array("fsi_diagnose_dtos")?
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .map(|(i, d)| diagnosis(d, &format!("{}[{i}]", join(path, "fsi_diagnose_dtos"))))
        .collect::<Result<Vec<_>, _>>()?;
    let orders = f
        .array("fsi_order_dtos")?
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .map(|(i, o)| order(o, &format!("{}[{i}]", join(path, "fsi_order_dtos"))))
        .collect::<Result<Vec<_>, _>>()?;
    let operations = f
        .array("fsi_operation_dtos")?
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .map(|(i, o)| operation(o, &format!("{}[{i}]", join(path, "fsi_operation_dtos"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Encounter {
        mdtrt_id: f.required_string("mdtrt_id")?,
        medins_id: f.string("medins_id")?,
        medins_name: f.string("medins_name")?,
        medins_admdvs: f.string("medins_admdvs")?,
        medins_type: f.string("medins_type")?,
        medins_lv: f.string("medins_lv")?,
        adm_date: f.datetime("adm_date")?,
        dscg_date: f.datetime("dscg_date")?,
        dscg_main_dise_codg: f.code("dscg_main_dise_codg")?,
        med_mdtrt_type: f.string("med_mdtrt_type")?,
        med_type: f.string("med_type")?,
        matn_stas: f.string("matn_stas")?,
        insutype: f.string("insutype")?,
        medfee_sumamt: f.number("medfee_sumamt")?,
        diagnoses,
        orders,
        operations,
    })
}

fn diagnosis(value: &Value, path: &str) -> Result<Diagnosis, DecodeError> {
    let f = Fields::of(value, path)?;
    Ok(Diagnosis {
        dise_codg: f.code("dise_codg")?,
        dise_name: f.string("dise_name")?,
        maindise_flag: f.flag("maindise_flag")?,
        inout_dise_type: f.string("inout_dise_type")?,
    })
}

fn order(value: &Value, path: &str) -> Result<Order, DecodeError> {
    let f = Fields::of(value, path)?;
    let cnt = f.number("cnt")?.unwrap_or(0.0);
    let pric = f.number("pric")?.unwrap_or(0.0);
    let sumamt = f.number("sumamt")?.unwrap_or(cnt * pric);
    Ok(Order {
        rx_id: f.required_string("rx_id")?,
        rxno: f.string("rxno")?,
        grpno: f.string("grpno")?,
        long_drord_flag: f.flag("long_drord_flag")?,
        hilist_type: f.string("hilist_type")?,
        chrg_type: f.string("chrg_type")?,
        drord_bhvr: f.string("drord_bhvr")?,
        hilist_code: f.code("hilist_code")?,
        hilist_name: f.string("hilist_name")?,
        cnt,
        pric,
        sumamt,
        drord_begn_date: f.datetime("drord_begn_date")?,
        drord_stop_date: f.datetime("drord_stop_date")?,
        drord_dept_codg: f.string("drord_dept_codg")?,
        drord_dr_codg: f.string("drord_dr_codg")?,
        curr_drord_flag: f.flag("curr_drord_flag")?,
        prd_days: f.number("prd_days")?,
        trace_codes: trace_codes(&f)?,
    })
}

/// `drug_trac_codg` (one code, or several separated by commas) and/or
/// `drugtracinfo[]` objects, as 3505/2204 carry them.
fn trace_codes(f: &Fields<'_>) -> Result<Vec<String>, DecodeError> {
    let mut codes: Vec<String> = split_list(&f.string("drug_trac_codg")?);
    if let Some(items) = f.array("drugtracinfo")? {
        let base = join(f.path, "drugtracinfo");
        for (i, item) in items.iter().enumerate() {
            let path = format!("{base}[{i}]");
            let code = Fields::of(item, &path)?.string("drug_trac_codg")?;
            if !code.is_empty() {
                codes.push(code);
            }
        }
    }
    codes.sort();
    codes.dedup();
    Ok(codes)
}

fn operation(value: &Value, path: &str) -> Result<Operation, DecodeError> {
    let f = Fields::of(value, path)?;
    Ok(Operation {
        oprn_code: f.code("oprn_code")?,
        oprn_name: f.string("oprn_name")?,
        main_oprn_flag: f.flag("main_oprn_flag")?,
        oprn_date: f.datetime("oprn_date")?,
    })
}

/// Typed, lenient access to the fields of one JSON object, remembering its path.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: &'a str,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value, path: &'a str) -> Result<Self, DecodeError> {
        let obj = value
            .as_object()
            .ok_or_else(|| DecodeError::new(path, Some(value), "expected an object"))?;
        Ok(Self { obj, path })
    }

    fn err(&self, field: &str, value: Option<&Value>, reason: impl Into<String>) -> DecodeError {
        DecodeError::new(join(self.path, field), value, reason)
    }

    /// The field as a scalar; an array or object is an error saying `expected`.
    fn scalar(&self, field: &str, expected: &'static str) -> Result<Scalar<'a>, DecodeError> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(Scalar::Absent),
            Some(Value::String(s)) => Ok(Scalar::Str(s)),
            Some(Value::Number(n)) => Ok(Scalar::Num(n)),
            Some(Value::Bool(b)) => Ok(Scalar::Bool(*b)),
            Some(other) => Err(self.err(field, Some(other), expected)),
        }
    }

    /// The field through `convert`, its refusal naming the field and value.
    fn convert<T>(
        &self,
        field: &str,
        expected: &'static str,
        convert: impl FnOnce(Scalar<'a>) -> Result<T, &'static str>,
    ) -> Result<T, DecodeError> {
        convert(self.scalar(field, expected)?)
            .map_err(|reason| self.err(field, self.obj.get(field), reason))
    }

    /// See [`Scalar::text`].
    fn string(&self, field: &str) -> Result<String, DecodeError> {
        Ok(self.scalar(field, EXPECTED_TEXT)?.text())
    }

    fn required_string(&self, field: &str) -> Result<String, DecodeError> {
        let value = self.string(field)?;
        if value.is_empty() {
            return Err(self.err(field, self.obj.get(field), "missing: required"));
        }
        Ok(value)
    }

    /// See [`Scalar::code`].
    fn code(&self, field: &str) -> Result<String, DecodeError> {
        Ok(self.scalar(field, EXPECTED_TEXT)?.code())
    }

    fn number(&self, field: &str) -> Result<Option<f64>, DecodeError> {
        self.convert(field, "expected a number", Scalar::number)
    }

    fn flag(&self, field: &str) -> Result<bool, DecodeError> {
        self.convert(field, EXPECTED_TEXT, Scalar::flag)
    }

    fn date(&self, field: &str) -> Result<Option<NaiveDate>, DecodeError> {
        Ok(self.datetime(field)?.map(|dt| dt.date()))
    }

    fn datetime(&self, field: &str) -> Result<Option<NaiveDateTime>, DecodeError> {
        self.convert(field, EXPECTED_TEXT, Scalar::datetime)
    }

    fn array(&self, field: &str) -> Result<Option<&'a [Value]>, DecodeError> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items.as_slice())),
            Some(other) => Err(self.err(field, Some(other), "expected an array")),
        }
    }

    fn string_list(&self, field: &str) -> Result<Vec<String>, DecodeError> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(split_list(s)),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.trim().to_string()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(DecodeError::new(
                        format!("{}[{i}]", join(self.path, field)),
                        Some(other),
                        "expected a string",
                    )),
                })
                .filter(|r| r.as_ref().map_or(true, |s| !s.is_empty()))
                .collect(),
            Some(other) => Err(self.err(field, Some(other), "expected an array of strings")),
        }
    }

    /// `trig_scen`: `4`, `"4"`, `"2,4"` or `[2, 4]`; each value 1–10.
    fn scenarios(&self, field: &str) -> Result<Vec<u8>, DecodeError> {
        let value = self.obj.get(field);
        let items = match value {
            Some(Value::Number(n)) => vec![n.to_string()],
            _ => self.string_list(field)?,
        };
        scenarios(items).map_err(|reason| self.err(field, value, reason))
    }
}

/// Trigger scenarios from their texts: each 1–10, duplicates dropped.
pub(super) fn scenarios(items: Vec<String>) -> Result<Vec<u8>, String> {
    let mut scens = Vec::with_capacity(items.len());
    for item in items {
        match item.parse::<u8>() {
            Ok(s @ 1..=10) => {
                if !scens.contains(&s) {
                    scens.push(s)
                }
            }
            _ => return Err(format!("\"{item}\" is not a trigger scenario 1–10")),
        }
    }
    Ok(scens)
}

const EXPECTED_TEXT: &str = "expected a string or number";

/// A JSON scalar as the field conversions see it: from a `serde_json::Value` here,
/// or straight from the bytes on the fast path (fast.rs). Both decoders convert
/// through these functions, so they cannot disagree on what a value means.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scalar<'a> {
    /// Missing or `null`.
    Absent,
    /// A string, as sent.
    Str(&'a str),
    /// A number.
    Num(&'a Number),
    /// `true` or `false`.
    Bool(bool),
}

impl Scalar<'_> {
    /// Text: strings trimmed, numbers printed, booleans as `1`/`0`, absent empty.
    pub(super) fn text(self) -> String {
        match self {
            Scalar::Absent => String::new(),
            Scalar::Str(s) => s.trim().to_string(),
            Scalar::Num(n) => n.to_string(),
            Scalar::Bool(b) => if b { "1" } else { "0" }.to_string(),
        }
    }

    /// A national code: trimmed and upper-cased, except the `x` of ICD-10 医保版
    /// extensions (`I10.x00x002`), which the national lists spell in lower case.
    pub(super) fn code(self) -> String {
        let raw = self.text();
        let icd = raw.contains('.');
        raw.chars()
            .enumerate()
            .map(|(i, c)| match c {
                'x' | 'X' if icd && i > 0 => 'x',
                _ => c.to_ascii_uppercase(),
            })
            .collect()
    }

    /// A number, or a string holding one (thousands separators dropped); absent or
    /// empty is `None`.
    pub(super) fn number(self) -> Result<Option<f64>, &'static str> {
        match self {
            Scalar::Absent => Ok(None),
            Scalar::Num(n) => n
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or("number out of range"),
            Scalar::Str(s) => {
                let s = s.trim().replace(',', "");
                if s.is_empty() {
                    return Ok(None);
                }
                s.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .map(Some)
                    .ok_or("is not a number")
            }
            Scalar::Bool(_) => Err("expected a number"),
        }
    }

    /// `f` of the text (see [`Scalar::text`]), borrowing a string rather than
    /// copying it: flags and dates are read, not kept.
    fn with_text<R>(self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            Scalar::Str(s) => f(s.trim()),
            other => f(&other.text()),
        }
    }

    /// A 0/1 flag: `1`, `"1"`, `true`, `"Y"` are true; `0`, `""`, null are false.
    pub(super) fn flag(self) -> Result<bool, &'static str> {
        self.with_text(|text| match text {
            "1" | "true" | "Y" | "y" | "是" => Ok(true),
            "" | "0" | "false" | "N" | "n" | "否" | "2" => Ok(false),
            _ => Err("expected a flag 0 or 1"),
        })
    }

    /// A date or date-time in one of the shapes HIS payloads use; absent or empty
    /// is `None`.
    pub(super) fn datetime(self) -> Result<Option<NaiveDateTime>, &'static str> {
        self.with_text(|text| {
            if text.is_empty() {
                return Ok(None);
            }
            parse_datetime(text)
                .map(Some)
                .ok_or("is not a date (expected yyyy-MM-dd, yyyy-MM-dd HH:mm:ss or yyyyMMddHHmmss)")
        })
    }
}

pub(super) fn split_list(s: &str) -> Vec<String> {
    s.split([',', '，', ';', ' '])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

/// `yyyy-MM-dd HH:mm:ss` (or with `T`) and `yyyy-MM-dd`, zero-padded: nearly every
/// date a HIS sends, read without chrono's format interpreter. Anything else —
/// including an invalid date in this shape — is left to the formats below.
fn parse_iso(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    if !(b.len() == 10 || b.len() == 19) || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(digits(0..4)? as i32, digits(5..7)?, digits(8..10)?)?;
    if b.len() == 10 {
        return Some(date.and_time(NaiveTime::MIN));
    }
    if !matches!(b[10], b' ' | b'T') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let time = NaiveTime::from_hms_opt(digits(11..13)?, digits(14..16)?, digits(17..19)?)?;
    Some(date.and_time(time))
}

/// Parses the date shapes seen in HIS payloads.
pub(crate) fn parse_datetime(text: &str) -> Option<NaiveDateTime> {
    const DATETIME: [&str; 6] = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y%m%d%H%M%S",
        "%Y/%m/%d %H:%M:%S",
    ];
    const DATE: [&str; 3] = ["%Y-%m-%d", "%Y%m%d", "%Y/%m/%d"];
    let text = text.trim().trim_end_matches('Z');
    if let Some(parsed) = parse_iso(text) {
        return Some(parsed);
    }
    DATETIME
        .iter()
        .find_map(|fmt| NaiveDateTime::parse_from_str(text, fmt).ok())
        .or_else(|| {
            DATE.iter()
                .find_map(|fmt| NaiveDate::parse_from_str(text, fmt).ok())
                .map(|d| d.and_time(NaiveTime::MIN))
        })
        .or_else(|| {
            // "2025-06-14 14:25" (no seconds)
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "syscode": "HIS", "task_id": "T1", "trig_scen": "4",
            "patient_dtos": [{
                "patn_id": "P1", "gend": 1, "brdy": "1980-01-02", "poolarea": "110000",
                "curr_mdtrt_id": "M1",
                "fsi_encounter_dtos": [{
                    "mdtrt_id": "M1", "adm_date": null, "med_mdtrt_type": 2,
                    "fsi_order_dtos": [{
                        "rx_id": 7, "hilist_code": " xg02baz061z007010279543 ",
                        "cnt": "2", "pric": 3.5, "curr_drord_flag": 1,
                        "drord_begn_date": "2025-06-14 14:25:52", "unknown_field": {"x": 1}
                    }]
                }]
            }]
        })
    }

    #[test]
    fn lenient_types_are_accepted_and_codes_trimmed() {
        let event = decode_value(&minimal()).expect("decodes");
        assert_eq!(event.trig_scen, vec![4]);
        let patient = &event.patients[0];
        assert_eq!(patient.gend, "1");
        let order = &patient.encounters[0].orders[0];
        assert_eq!(order.rx_id, "7");
        assert_eq!(order.hilist_code, "XG02BAZ061Z007010279543");
        assert_eq!(order.cnt, 2.0);
        assert_eq!(order.sumamt, 7.0);
        assert!(order.curr_drord_flag);
        assert_eq!(patient.encounters[0].med_mdtrt_type, "2");
    }

    #[test]
    fn icd_extensions_keep_their_lower_case_x() {
        let mut req = minimal();
        req["patient_dtos"][0]["fsi_encounter_dtos"][0]["fsi_diagnose_dtos"] =
            json!([{"dise_codg": " i10.X00x002 "}, {"dise_codg": "m10.002"}]);
        let event = decode_value(&req).expect("decodes");
        let codes: Vec<&str> = event.patients[0].encounters[0]
            .diagnoses
            .iter()
            .map(|d| d.dise_codg.as_str())
            .collect();
        assert_eq!(codes, ["I10.x00x002", "M10.002"]);
    }

    #[test]
    fn envelope_and_bare_data_give_the_same_event() {
        let bare = decode_value(&minimal()).expect("bare");
        let wrapped = decode_value(&json!({
            "infno": "3101", "fixmedins_code": "H11010500001", "inf_time": "2025-06-14 14:27:24",
            "input": {"data": minimal()}
        }))
        .expect("wrapped");
        assert_eq!(wrapped.patients, bare.patients);
        assert_eq!(wrapped.fixmedins_code(), "H11010500001");
        assert_eq!(
            wrapped.event_time().map(|t| t.to_string()),
            Some("2025-06-14 14:27:24".to_string())
        );
    }

    #[test]
    fn errors_name_the_field_path_and_value() {
        let mut bad = minimal();
        bad["patient_dtos"][0]["fsi_encounter_dtos"][0]["fsi_order_dtos"][0]["cnt"] = json!("abc");
        let err = decode_value(&bad).expect_err("bad cnt");
        assert_eq!(
            err.path,
            "patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[0].cnt"
        );
        assert_eq!(err.value.as_deref(), Some("\"abc\""));
        assert!(err.to_string().contains("is not a number"), "{err}");

        let mut bad = minimal();
        bad["trig_scen"] = json!("12");
        let err = decode_value(&bad).expect_err("bad scen");
        assert_eq!(err.path, "trig_scen");

        let mut bad = minimal();
        bad["patient_dtos"][0]["brdy"] = json!("1980-13-45");
        assert_eq!(
            decode_value(&bad).expect_err("bad date").path,
            "patient_dtos[0].brdy"
        );

        let mut bad = minimal();
        bad["patient_dtos"][0]["curr_mdtrt_id"] = json!("M9");
        assert_eq!(
            decode_value(&bad).expect_err("unknown encounter").path,
            "patient_dtos[0].curr_mdtrt_id"
        );

        let err = decode_event(b"{not json").expect_err("syntax");
        assert_eq!(err.path, "$");
    }

    #[test]
    fn null_and_empty_dates_are_accepted() {
        let mut ok = minimal();
        ok["patient_dtos"][0]["brdy"] = json!("");
        ok["patient_dtos"][0]["fsi_encounter_dtos"][0]["dscg_date"] = json!(null);
        let event = decode_value(&ok).expect("decodes");
        assert_eq!(event.patients[0].brdy, None);
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            "[0-9a-zA-Z ,:.-]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("patient_dtos".to_string()),
                        Just("fsi_encounter_dtos".to_string()),
                        Just("fsi_order_dtos".to_string()),
                        Just("patn_id".to_string()),
                        Just("mdtrt_id".to_string()),
                        Just("curr_mdtrt_id".to_string()),
                        Just("rx_id".to_string()),
                        Just("cnt".to_string()),
                        Just("brdy".to_string()),
                        Just("trig_scen".to_string()),
                        Just("input".to_string()),
                        Just("data".to_string()),
                        "[a-z_]{1,8}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any JSON gives an event or an error naming a path — never a panic.
        #[test]
        fn arbitrary_json_never_panics(value in arb_json()) {
            match decode_value(&value) {
                Ok(event) => prop_assert!(!event.patients.is_empty()),
                Err(err) => prop_assert!(!err.path.is_empty()),
            }
        }

        /// Mutating one field of a valid request never panics either.
        #[test]
        fn mutated_valid_request_never_panics(field in "[a-z_]{2,16}", value in arb_json()) {
            let mut req = minimal();
            req["patient_dtos"][0]["fsi_encounter_dtos"][0]["fsi_order_dtos"][0][field.as_str()] = value.clone();
            req["patient_dtos"][0][field.as_str()] = value;
            let _ = decode_value(&req);
        }

        /// Arbitrary bytes never panic the byte decoder.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_event(&bytes);
        }
    }
}
