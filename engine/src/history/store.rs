//! The in-memory history: persons → encounters and lines; trace codes → first use.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::event::{Encounter, Event, Order, Patient};

/// One stored order line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistLine {
    /// Encounter.
    pub mdtrt_id: String,
    /// Order line id.
    pub rx_id: String,
    /// National code.
    pub hilist_code: String,
    /// Name as sent.
    pub hilist_name: String,
    /// Institution.
    pub medins_id: String,
    /// Service time (epoch ms).
    pub begn_millis: Option<i64>,
    /// Quantity.
    pub cnt: f64,
    /// Amount.
    pub sumamt: f64,
    /// Days of supply.
    pub prd_days: Option<f64>,
}

/// One stored encounter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistEncounter {
    /// Encounter id.
    pub mdtrt_id: String,
    /// Institution.
    pub medins_id: String,
    /// `med_mdtrt_type` as sent.
    pub med_mdtrt_type: String,
    /// `med_type` as sent.
    pub med_type: String,
    /// Admission (epoch ms).
    pub adm_millis: Option<i64>,
    /// Discharge (epoch ms).
    pub dscg_millis: Option<i64>,
    /// Main diagnosis.
    pub main_dise: String,
}

/// One person's history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersonHistory {
    /// Encounters, by `mdtrt_id` (upserted).
    pub encounters: Vec<HistEncounter>,
    /// Lines, by (`mdtrt_id`, `rx_id`) (upserted).
    pub lines: Vec<HistLine>,
}

/// Where a trace code was first settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceUse {
    /// Person.
    pub patn_id: String,
    /// Encounter.
    pub mdtrt_id: String,
    /// Line.
    pub rx_id: String,
    /// Institution.
    pub medins_id: String,
    /// Time (epoch ms).
    pub millis: Option<i64>,
}

/// What one patient of one event adds to history (a write-ahead-log record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonRecord {
    /// Person.
    pub patn_id: String,
    /// Encounters of the request.
    pub encounters: Vec<HistEncounter>,
    /// Order lines of the request.
    pub lines: Vec<HistLine>,
    /// Trace codes settled, with where.
    pub traces: Vec<(String, TraceUse)>,
}

fn person_record(patient: &Patient) -> PersonRecord {
    let mut record = PersonRecord {
        patn_id: patient.patn_id.clone(),
        encounters: Vec::new(),
        lines: Vec::new(),
        traces: Vec::new(),
    };
    for enc in &patient.encounters {
        record.encounters.push(encounter_record(enc));
        for order in &enc.orders {
            let line = line_record(enc, order);
            for code in &order.trace_codes {
                record.traces.push((
                    code.clone(),
                    TraceUse {
                        patn_id: patient.patn_id.clone(),
                        mdtrt_id: enc.mdtrt_id.clone(),
                        rx_id: order.rx_id.clone(),
                        medins_id: enc.medins_id.clone(),
                        millis: line.begn_millis,
                    },
                ));
            }
            record.lines.push(line);
        }
    }
    record
}

/// Trace code → its first settlement (keyed by code, not by person).
pub type TraceCodes = HashMap<String, TraceUse>;

/// Persons' histories and trace codes, with retention.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryStore {
    /// `patn_id` → history.
    pub persons: HashMap<String, PersonHistory>,
    /// Trace codes seen.
    pub trace_codes: TraceCodes,
    /// Keep lines/encounters this many days behind the newest time seen (0: keep nothing).
    pub retention_days: u32,
    /// Newest service time seen (epoch ms), the retention anchor.
    pub newest_millis: i64,
}

const DAY_MS: i64 = 86_400_000;

impl HistoryStore {
    /// An empty store keeping `retention_days` of history.
    pub fn new(retention_days: u32) -> Self {
        Self {
            retention_days,
            ..Self::default()
        }
    }

    /// Number of persons held.
    pub fn persons(&self) -> usize {
        self.persons.len()
    }

    /// The stored history of `patn_id`.
    pub fn person(&self, patn_id: &str) -> Option<&PersonHistory> {
        self.persons.get(patn_id)
    }

    /// What `event` adds to history, as a log record.
    pub fn record_of(event: &Event) -> Vec<PersonRecord> {
        event.patients.iter().map(person_record).collect()
    }

    /// Records every patient of `event` (upsert by `mdtrt_id` / (`mdtrt_id`, `rx_id`)).
    pub fn apply(&mut self, event: &Event) {
        for record in Self::record_of(event) {
            self.apply_record(&record);
        }
    }

    /// Applies one log record (upsert; applying it twice changes nothing).
    pub fn apply_record(&mut self, record: &PersonRecord) {
        if self.retention_days == 0 {
            return;
        }
        let person = self.persons.entry(record.patn_id.clone()).or_default();
        let mut newest = self.newest_millis;
        for enc in &record.encounters {
            newest = newest.max(enc.adm_millis.unwrap_or(0));
            match person
                .encounters
                .iter_mut()
                .find(|e| e.mdtrt_id == enc.mdtrt_id)
            {
                Some(existing) => *existing = enc.clone(),
                None => person.encounters.push(enc.clone()),
            }
        }
        for line in &record.lines {
            newest = newest.max(line.begn_millis.unwrap_or(0));
            match person
                .lines
                .iter_mut()
                .find(|l| l.mdtrt_id == line.mdtrt_id && l.rx_id == line.rx_id)
            {
                Some(existing) => *existing = line.clone(),
                None => person.lines.push(line.clone()),
            }
        }
        for (code, used) in &record.traces {
            self.trace_codes
                .entry(code.clone())
                .or_insert_with(|| used.clone());
        }
        self.newest_millis = newest;
    }

    /// Drops lines and encounters older than the retention window, and persons left
    /// with nothing.
    pub fn prune(&mut self) {
        let horizon = self.newest_millis - i64::from(self.retention_days) * DAY_MS;
        self.persons.retain(|_, person| {
            person
                .lines
                .retain(|l| l.begn_millis.is_none_or(|t| t >= horizon));
            person
                .encounters
                .retain(|e| e.dscg_millis.or(e.adm_millis).is_none_or(|t| t >= horizon));
            !person.lines.is_empty() || !person.encounters.is_empty()
        });
        self.trace_codes
            .retain(|_, used| used.millis.is_none_or(|t| t >= horizon));
    }
}

fn millis(t: Option<chrono::NaiveDateTime>) -> Option<i64> {
    t.map(|t| t.and_utc().timestamp_millis())
}

pub(crate) fn encounter_record(enc: &Encounter) -> HistEncounter {
    HistEncounter {
        mdtrt_id: enc.mdtrt_id.clone(),
        medins_id: enc.medins_id.clone(),
        med_mdtrt_type: enc.med_mdtrt_type.clone(),
        med_type: enc.med_type.clone(),
        adm_millis: millis(enc.adm_date),
        dscg_millis: millis(enc.dscg_date),
        main_dise: enc.dscg_main_dise_codg.clone(),
    }
}

pub(crate) fn line_record(enc: &Encounter, order: &Order) -> HistLine {
    HistLine {
        mdtrt_id: enc.mdtrt_id.clone(),
        rx_id: order.rx_id.clone(),
        hilist_code: order.hilist_code.clone(),
        hilist_name: order.hilist_name.clone(),
        medins_id: enc.medins_id.clone(),
        begn_millis: millis(order.drord_begn_date.or(enc.adm_date)),
        cnt: order.cnt,
        sumamt: order.sumamt,
        prd_days: order.prd_days,
    }
}
