//! The in-memory history: persons → encounters → lines; trace codes → first use.
//!
//! # Layout (why it is compact)
//! With ~8 encounters, ~43 lines and ~22 trace codes per person over 180 days, a
//! `String` per field cost 35.6 KB per person (33 GiB per 1M persons, measured:
//! benches/RESULTS.md § History). The store therefore:
//! - interns the values many rows share — codes, names, institutions, types,
//!   diagnoses — into one [`Symbols`] table (a `u32` per field instead of a `String`);
//! - nests lines under their encounter, so a line carries neither `mdtrt_id` nor the
//!   institution (both are the encounter's);
//! - keeps the `rx_id`s of an encounter's lines in one string per encounter (a line
//!   holds its offset and length), not one allocation per line;
//! - keeps the other unique ids (`mdtrt_id`, a trace code's first settlement) as one
//!   `Box<str>` each (16 bytes + one allocation);
//! - stores times and days of supply with a sentinel for "none" (8 bytes, not 16).
//!
//! The plain shapes ([`HistEncounter`], [`HistLine`], [`PersonRecord`]) are the
//! write-ahead-log records and the test/inspection API, owned (`String`) there and
//! borrowed from the event (`&str`) when an event only goes into memory; the store
//! converts on apply.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::status::PersonStatuses;
use crate::event::{Encounter, Event, Order, Patient};

/// Persons, symbols and trace codes are looked up for every event: foldhash
/// (seeded per process) instead of the standard SipHash.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

const DAY_MS: i64 = 86_400_000;
/// How far in the future of the wall clock an event time may move the retention
/// anchor: one wrongly dated event must not prune everyone's history.
const ANCHOR_SLACK_MS: i64 = DAY_MS;

/// An interned string (index into [`Symbols`]); 0 is the empty string.
pub type Sym = u32;

/// Interned strings: few distinct values (codes, names, institutions, types) shared
/// by many rows. Never pruned: their number is bounded by the catalogues and the
/// institutions of the partition, not by the number of persons.
#[derive(Debug, Clone)]
pub struct Symbols {
    names: Vec<Box<str>>,
    index: HashMap<Box<str>, Sym>,
}

impl Default for Symbols {
    fn default() -> Self {
        Self::from_names(Vec::new())
    }
}

impl PartialEq for Symbols {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
    }
}

impl Symbols {
    fn from_names(mut names: Vec<Box<str>>) -> Self {
        if names.first().is_none_or(|n| !n.is_empty()) {
            names.insert(0, "".into());
        }
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as Sym))
            .collect();
        Self { names, index }
    }

    /// The symbol of `s`, adding it when new.
    pub fn intern(&mut self, s: &str) -> Sym {
        if let Some(sym) = self.index.get(s) {
            return *sym;
        }
        let sym = self.names.len() as Sym;
        let name: Box<str> = s.into();
        self.names.push(name.clone());
        self.index.insert(name, sym);
        sym
    }

    /// The string of `sym` ("" when unknown).
    pub fn get(&self, sym: Sym) -> &str {
        self.names.get(sym as usize).map_or("", |n| n)
    }

    /// Number of distinct strings.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether only the empty string is held.
    pub fn is_empty(&self) -> bool {
        self.names.len() <= 1
    }
}

impl Serialize for Symbols {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.names.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Symbols {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Box<str>>::deserialize(deserializer).map(Self::from_names)
    }
}

/// A time in epoch ms, or none (8 bytes instead of `Option<i64>`'s 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Millis(i64);

impl Millis {
    const NONE: i64 = i64::MIN;

    fn of(t: Option<i64>) -> Self {
        Self(t.unwrap_or(Self::NONE))
    }

    /// The time, if known.
    pub fn get(self) -> Option<i64> {
        (self.0 != Self::NONE).then_some(self.0)
    }
}

/// Days of supply, or none (NaN inside: 8 bytes instead of `Option<f64>`'s 16).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Days(f64);

impl PartialEq for Days {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Days {
    fn of(days: Option<f64>) -> Self {
        Self(days.filter(|d| !d.is_nan()).unwrap_or(f64::NAN))
    }

    /// The days, if known.
    pub fn get(self) -> Option<f64> {
        (!self.0.is_nan()).then_some(self.0)
    }
}

/// One stored order line (under its encounter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredLine {
    /// Where its `rx_id` is in the encounter's `rx_ids` ([`StoredEncounter::rx_id`]).
    rx_start: u32,
    /// Length of its `rx_id` in bytes.
    rx_len: u32,
    /// National code.
    pub hilist_code: Sym,
    /// Name as sent.
    pub hilist_name: Sym,
    /// `hilist_type` as sent.
    pub hilist_type: Sym,
    /// `drord_bhvr` as sent (1 出院带药).
    pub drord_bhvr: Sym,
    /// Service time.
    pub begn: Millis,
    /// Quantity.
    pub cnt: f64,
    /// Amount.
    pub sumamt: f64,
    /// Days of supply.
    pub prd_days: Days,
}

/// One stored encounter with its lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEncounter {
    /// Encounter id.
    pub mdtrt_id: Box<str>,
    /// Institution (of the encounter and its lines).
    pub medins_id: Sym,
    /// `med_mdtrt_type` as sent.
    pub med_mdtrt_type: Sym,
    /// `med_type` as sent.
    pub med_type: Sym,
    /// Main diagnosis.
    pub main_dise: Sym,
    /// Admission.
    pub adm: Millis,
    /// Discharge.
    pub dscg: Millis,
    /// Whether the encounter itself is a row of `history_encounters`: false once it is
    /// older than the retention while some of its lines are not, or when only lines of
    /// it were ever recorded.
    pub listed: bool,
    /// The `rx_id`s of its lines, one after the other.
    rx_ids: Box<str>,
    /// Its lines, by `rx_id` (upserted).
    pub lines: Vec<StoredLine>,
}

impl StoredEncounter {
    /// The `rx_id` of `line` (one of this encounter's lines).
    pub fn rx_id(&self, line: &StoredLine) -> &str {
        let start = line.rx_start as usize;
        self.rx_ids
            .get(start..start + line.rx_len as usize)
            .unwrap_or("")
    }

    /// Upserts `lines` (id, line): an existing id is replaced in place, new ones are
    /// appended with one reallocation of the ids for all of them (a request brings an
    /// encounter's lines together; growing the ids line by line fragments the heap).
    fn upsert_lines(&mut self, lines: Vec<(&str, StoredLine)>) {
        let mut new: Vec<(&str, StoredLine)> = Vec::new();
        for (rx_id, mut line) in lines {
            if let Some(idx) = self.lines.iter().position(|l| self.rx_id(l) == rx_id) {
                line.rx_start = self.lines[idx].rx_start;
                line.rx_len = self.lines[idx].rx_len;
                self.lines[idx] = line;
            } else if let Some(pending) = new.iter_mut().find(|(id, _)| *id == rx_id) {
                pending.1 = line;
            } else {
                new.push((rx_id, line));
            }
        }
        if new.is_empty() {
            return;
        }
        let added: usize = new.iter().map(|(id, _)| id.len()).sum();
        let mut ids = String::with_capacity(self.rx_ids.len() + added);
        ids.push_str(&self.rx_ids);
        self.lines.reserve_exact(new.len());
        for (rx_id, mut line) in new {
            line.rx_start = ids.len() as u32;
            line.rx_len = rx_id.len() as u32;
            ids.push_str(rx_id);
            self.lines.push(line);
        }
        self.rx_ids = ids.into_boxed_str();
    }

    /// Drops the lines `keep` rejects and the ids only they used.
    fn retain_lines(&mut self, keep: impl Fn(&StoredLine) -> bool) {
        let before = self.lines.len();
        self.lines.retain(|l| keep(l));
        if self.lines.len() == before {
            return;
        }
        let mut ids = String::new();
        for line in &mut self.lines {
            let start = line.rx_start as usize;
            let id = self
                .rx_ids
                .get(start..start + line.rx_len as usize)
                .unwrap_or("");
            line.rx_start = ids.len() as u32;
            ids.push_str(id);
        }
        self.rx_ids = ids.into_boxed_str();
        self.lines.shrink_to_fit();
    }
}

/// One person's history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersonHistory {
    /// Encounters, by `mdtrt_id` (upserted), each with its lines.
    pub encounters: Vec<StoredEncounter>,
}

impl PersonHistory {
    /// Number of stored lines.
    pub fn line_count(&self) -> usize {
        self.encounters.iter().map(|e| e.lines.len()).sum()
    }

    /// Number of listed encounters.
    pub fn encounter_count(&self) -> usize {
        self.encounters.iter().filter(|e| e.listed).count()
    }
}

/// Where a trace code was first settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceUse {
    /// `patn_id`, `mdtrt_id` and `rx_id` joined by U+001F (one allocation, not three).
    ids: Box<str>,
    /// Institution.
    pub medins_id: Sym,
    /// Time.
    pub millis: Millis,
}

const SEP: char = '\u{1f}';

impl TraceUse {
    fn new(patn_id: &str, mdtrt_id: &str, rx_id: &str, medins_id: Sym, millis: Millis) -> Self {
        Self {
            ids: format!("{patn_id}{SEP}{mdtrt_id}{SEP}{rx_id}").into(),
            medins_id,
            millis,
        }
    }

    fn part(&self, i: usize) -> &str {
        self.ids.split(SEP).nth(i).unwrap_or("")
    }

    /// Person.
    pub fn patn_id(&self) -> &str {
        self.part(0)
    }

    /// Encounter.
    pub fn mdtrt_id(&self) -> &str {
        self.part(1)
    }

    /// Line.
    pub fn rx_id(&self) -> &str {
        self.part(2)
    }
}

/// Trace code → its first settlement (keyed by code, not by person).
pub type TraceCodes = HashMap<Box<str>, TraceUse>;

/// One stored encounter, plain (log record and inspection). `S` is `String` in the
/// log; `&str` borrowed from the event when a record only goes into memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistEncounter<S = String> {
    /// Encounter id.
    pub mdtrt_id: S,
    /// Institution.
    pub medins_id: S,
    /// `med_mdtrt_type` as sent.
    pub med_mdtrt_type: S,
    /// `med_type` as sent.
    pub med_type: S,
    /// Admission (epoch ms).
    pub adm_millis: Option<i64>,
    /// Discharge (epoch ms).
    pub dscg_millis: Option<i64>,
    /// Main diagnosis: `dscg_main_dise_codg`, else the diagnosis flagged main.
    pub main_dise: S,
}

/// One stored order line, plain (log record and inspection); `S` as in
/// [`HistEncounter`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
pub struct HistLine<S = String> {
    /// Encounter.
    pub mdtrt_id: S,
    /// Order line id.
    pub rx_id: S,
    /// National code.
    pub hilist_code: S,
    /// Name as sent.
    pub hilist_name: S,
    /// `hilist_type` as sent.
    #[serde(default)]
    pub hilist_type: S,
    /// `drord_bhvr` as sent.
    #[serde(default)]
    pub drord_bhvr: S,
    /// Institution.
    pub medins_id: S,
    /// Service time (epoch ms).
    pub begn_millis: Option<i64>,
    /// Quantity.
    pub cnt: f64,
    /// Amount.
    pub sumamt: f64,
    /// Days of supply.
    pub prd_days: Option<f64>,
}

/// Where a trace code was settled, plain (log record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceRecord {
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

/// What one patient of one event adds to history (a write-ahead-log record). `S`
/// is `String` in the log; a record that only goes into memory borrows the
/// event's strings (`&str`), which the store interns without copying twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
pub struct PersonRecord<S = String> {
    /// Person.
    pub patn_id: S,
    /// Encounters of the request.
    pub encounters: Vec<HistEncounter<S>>,
    /// Order lines of the request.
    pub lines: Vec<HistLine<S>>,
    /// Trace codes settled, with where.
    pub traces: Vec<(S, TraceRecord)>,
}

fn person_record<'e, S: From<&'e str>>(patient: &'e Patient) -> PersonRecord<S> {
    let mut record = PersonRecord {
        patn_id: S::from(patient.patn_id.as_str()),
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
                    S::from(code.as_str()),
                    TraceRecord {
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

/// Persons' histories and trace codes, with retention.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryStore {
    /// Interned codes, names, institutions, types.
    pub symbols: Symbols,
    /// `patn_id` → history.
    pub persons: HashMap<Box<str>, PersonHistory>,
    /// Trace codes seen.
    pub trace_codes: TraceCodes,
    /// Keep lines/encounters this many days behind the anchor (0: keep nothing).
    pub retention_days: u32,
    /// Newest service time seen (epoch ms), the retention anchor (capped at the wall
    /// clock when pruning).
    pub newest_millis: i64,
    /// The person-status table (death dates): loaded per deployment, not part of the
    /// snapshot (it is reloaded from its file, see [`PersonStatuses`]).
    #[serde(skip)]
    pub statuses: Arc<PersonStatuses>,
}

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

    /// The string of an interned value.
    pub fn sym(&self, sym: Sym) -> &str {
        self.symbols.get(sym)
    }

    /// The first settlement of trace code `code`.
    pub fn trace(&self, code: &str) -> Option<&TraceUse> {
        self.trace_codes.get(code)
    }

    /// Totals: (persons, listed encounters, lines, trace codes, symbols).
    pub fn counts(&self) -> (usize, usize, usize, usize, usize) {
        let (mut encounters, mut lines) = (0, 0);
        for person in self.persons.values() {
            encounters += person.encounter_count();
            lines += person.line_count();
        }
        (
            self.persons.len(),
            encounters,
            lines,
            self.trace_codes.len(),
            self.symbols.len(),
        )
    }

    /// What `event` adds to history, as a log record.
    pub fn record_of(event: &Event) -> Vec<PersonRecord> {
        event.patients.iter().map(person_record).collect()
    }

    /// Records every patient of `event` (upsert by `mdtrt_id` / (`mdtrt_id`, `rx_id`)),
    /// reading the event's strings in place.
    pub fn apply(&mut self, event: &Event) {
        for patient in &event.patients {
            self.apply_record(&person_record::<&str>(patient));
        }
    }

    /// Applies one log record (upsert; applying it twice changes nothing).
    pub fn apply_record<S: AsRef<str>>(&mut self, record: &PersonRecord<S>) {
        if self.retention_days == 0 {
            return;
        }
        let symbols = &mut self.symbols;
        let person = match self.persons.get_mut(record.patn_id.as_ref()) {
            Some(person) => person,
            None => self
                .persons
                .entry(record.patn_id.as_ref().into())
                .or_default(),
        };
        let mut newest = self.newest_millis;
        for enc in &record.encounters {
            newest = newest.max(enc.adm_millis.unwrap_or(0));
            let stored = StoredEncounter {
                mdtrt_id: enc.mdtrt_id.as_ref().into(),
                medins_id: symbols.intern(enc.medins_id.as_ref()),
                med_mdtrt_type: symbols.intern(enc.med_mdtrt_type.as_ref()),
                med_type: symbols.intern(enc.med_type.as_ref()),
                main_dise: symbols.intern(enc.main_dise.as_ref()),
                adm: Millis::of(enc.adm_millis),
                dscg: Millis::of(enc.dscg_millis),
                listed: true,
                rx_ids: Box::default(),
                lines: Vec::new(),
            };
            match person
                .encounters
                .iter_mut()
                .find(|e| *e.mdtrt_id == *enc.mdtrt_id.as_ref())
            {
                Some(existing) => {
                    let lines = std::mem::take(&mut existing.lines);
                    let rx_ids = std::mem::take(&mut existing.rx_ids);
                    *existing = StoredEncounter {
                        lines,
                        rx_ids,
                        ..stored
                    };
                }
                None => {
                    person.encounters.reserve_exact(1);
                    person.encounters.push(stored);
                }
            }
        }
        // Lines per encounter (index into the person's encounters), upserted together.
        let mut by_encounter: Vec<(usize, Vec<(&str, StoredLine)>)> = Vec::new();
        for line in &record.lines {
            newest = newest.max(line.begn_millis.unwrap_or(0));
            let stored = StoredLine {
                rx_start: 0,
                rx_len: 0,
                hilist_code: symbols.intern(line.hilist_code.as_ref()),
                hilist_name: symbols.intern(line.hilist_name.as_ref()),
                hilist_type: symbols.intern(line.hilist_type.as_ref()),
                drord_bhvr: symbols.intern(line.drord_bhvr.as_ref()),
                begn: Millis::of(line.begn_millis),
                cnt: line.cnt,
                sumamt: line.sumamt,
                prd_days: Days::of(line.prd_days),
            };
            let idx = match person
                .encounters
                .iter()
                .position(|e| *e.mdtrt_id == *line.mdtrt_id.as_ref())
            {
                Some(idx) => idx,
                None => {
                    // A line whose encounter was never recorded: keep it, unlisted.
                    person.encounters.push(StoredEncounter {
                        mdtrt_id: line.mdtrt_id.as_ref().into(),
                        medins_id: symbols.intern(line.medins_id.as_ref()),
                        med_mdtrt_type: 0,
                        med_type: 0,
                        main_dise: 0,
                        adm: Millis::of(None),
                        dscg: Millis::of(None),
                        listed: false,
                        rx_ids: Box::default(),
                        lines: Vec::new(),
                    });
                    person.encounters.len() - 1
                }
            };
            match by_encounter.iter_mut().find(|(i, _)| *i == idx) {
                Some((_, lines)) => lines.push((line.rx_id.as_ref(), stored)),
                None => by_encounter.push((idx, vec![(line.rx_id.as_ref(), stored)])),
            }
        }
        for (idx, lines) in by_encounter {
            person.encounters[idx].upsert_lines(lines);
        }
        for (code, used) in &record.traces {
            if !self.trace_codes.contains_key(code.as_ref()) {
                let first = TraceUse::new(
                    &used.patn_id,
                    &used.mdtrt_id,
                    &used.rx_id,
                    symbols.intern(&used.medins_id),
                    Millis::of(used.millis),
                );
                self.trace_codes.insert(code.as_ref().into(), first);
            }
        }
        self.newest_millis = newest;
    }

    /// Drops lines, encounters and trace codes older than the retention window, and
    /// persons left with nothing. The window ends at the newest service time seen, but
    /// never later than one day after the wall clock (see [`HistoryStore::prune_at`]).
    pub fn prune(&mut self) {
        self.prune_at(chrono::Utc::now().timestamp_millis());
    }

    /// [`HistoryStore::prune`] with the wall clock `now_millis`: the anchor is the
    /// newest service time seen, capped at `now_millis` + 1 day, so one event dated in
    /// the future cannot prune everyone's history. (Replays of past data are not
    /// affected: their times are before the wall clock.)
    pub fn prune_at(&mut self, now_millis: i64) {
        let anchor = self
            .newest_millis
            .min(now_millis.saturating_add(ANCHOR_SLACK_MS));
        let horizon = anchor - i64::from(self.retention_days) * DAY_MS;
        let keep = |t: Millis| t.get().is_none_or(|t| t >= horizon);
        self.persons.retain(|_, person| {
            person.encounters.retain_mut(|enc| {
                enc.retain_lines(|l| keep(l.begn));
                if enc.listed
                    && !keep(if enc.dscg.get().is_some() {
                        enc.dscg
                    } else {
                        enc.adm
                    })
                {
                    enc.listed = false;
                }
                enc.listed || !enc.lines.is_empty()
            });
            person.encounters.shrink_to_fit();
            !person.encounters.is_empty()
        });
        self.trace_codes.retain(|_, used| keep(used.millis));
    }
}

pub(crate) fn millis(t: Option<chrono::NaiveDateTime>) -> Option<i64> {
    t.map(|t| t.and_utc().timestamp_millis())
}

/// The main diagnosis of `enc`: `dscg_main_dise_codg`, else the diagnosis flagged main.
pub(crate) fn main_diagnosis(enc: &Encounter) -> &str {
    if !enc.dscg_main_dise_codg.is_empty() {
        return &enc.dscg_main_dise_codg;
    }
    enc.diagnoses
        .iter()
        .find(|d| d.maindise_flag)
        .map_or("", |d| d.dise_codg.as_str())
}

fn encounter_record<'e, S: From<&'e str>>(enc: &'e Encounter) -> HistEncounter<S> {
    HistEncounter {
        mdtrt_id: S::from(enc.mdtrt_id.as_str()),
        medins_id: S::from(enc.medins_id.as_str()),
        med_mdtrt_type: S::from(enc.med_mdtrt_type.as_str()),
        med_type: S::from(enc.med_type.as_str()),
        adm_millis: millis(enc.adm_date),
        dscg_millis: millis(enc.dscg_date),
        main_dise: S::from(main_diagnosis(enc)),
    }
}

fn line_record<'e, S: From<&'e str>>(enc: &'e Encounter, order: &'e Order) -> HistLine<S> {
    HistLine {
        mdtrt_id: S::from(enc.mdtrt_id.as_str()),
        rx_id: S::from(order.rx_id.as_str()),
        hilist_code: S::from(order.hilist_code.as_str()),
        hilist_name: S::from(order.hilist_name.as_str()),
        hilist_type: S::from(order.hilist_type.as_str()),
        drord_bhvr: S::from(order.drord_bhvr.as_str()),
        medins_id: S::from(enc.medins_id.as_str()),
        begn_millis: millis(order.drord_begn_date.or(enc.adm_date)),
        cnt: order.cnt,
        sumamt: order.sumamt,
        prd_days: order.prd_days,
    }
}
