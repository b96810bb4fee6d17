//! History as tables for one micro-batch: `history_orders`, `history_encounters`,
//! `trace_uses` (schemas in `batch::schema`, reference in docs/tables.md).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Builder, Float64Builder, Int32Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMillisecondBuilder,
};
use fundwatch_rules::Dictionaries;

use super::store::{
    HistoryStore, PersonHistory, StoredEncounter, StoredLine, TraceRecord, main_diagnosis, millis,
};
use crate::batch::{TableName, table_schema};
use crate::event::{Encounter, Event};

/// Per-batch maps keyed by ids of the batch: foldhash instead of SipHash.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

const DAY_MS: i64 = 86_400_000;

/// The three history tables of a batch.
#[derive(Debug, Clone)]
pub struct HistoryTables {
    /// `history_orders`.
    pub orders: RecordBatch,
    /// `history_encounters`.
    pub encounters: RecordBatch,
    /// `trace_uses`.
    pub trace_uses: RecordBatch,
}

/// One history line, borrowed from the store or from an earlier event of the batch.
struct LineRow<'a> {
    mdtrt_id: &'a str,
    rx_id: &'a str,
    hilist_code: &'a str,
    hilist_name: &'a str,
    hilist_type: &'a str,
    drord_bhvr: &'a str,
    medins_id: &'a str,
    setting: Option<i32>,
    begn_millis: Option<i64>,
    cnt: f64,
    sumamt: f64,
    prd_days: Option<f64>,
}

/// One history encounter, borrowed.
struct EncRow<'a> {
    mdtrt_id: &'a str,
    medins_id: &'a str,
    setting: Option<i32>,
    med_type: &'a str,
    adm_millis: Option<i64>,
    dscg_millis: Option<i64>,
    main_dise: &'a str,
}

/// An earlier settlement of a trace code, borrowed.
struct PrevUse<'a> {
    patn_id: &'a str,
    mdtrt_id: &'a str,
    rx_id: &'a str,
    medins_id: &'a str,
    millis: Option<i64>,
}

#[derive(Default)]
struct Builders {
    o_event: Int64Builder,
    o_patn: StringBuilder,
    o_mdtrt: StringBuilder,
    o_rx: StringBuilder,
    o_code: StringBuilder,
    o_name: StringBuilder,
    o_medins: StringBuilder,
    o_time: TimestampMillisecondBuilder,
    o_date: Date32Builder,
    o_cnt: Float64Builder,
    o_sum: Float64Builder,
    o_prd: Float64Builder,
    o_setting: Int32Builder,
    o_type: StringBuilder,
    o_bhvr: StringBuilder,
    e_event: Int64Builder,
    e_patn: StringBuilder,
    e_mdtrt: StringBuilder,
    e_medins: StringBuilder,
    e_setting: Int32Builder,
    e_med_type: StringBuilder,
    e_adm: TimestampMillisecondBuilder,
    e_dscg: TimestampMillisecondBuilder,
    e_dise: StringBuilder,
    t_event: Int64Builder,
    t_mdtrt: StringBuilder,
    t_rx: StringBuilder,
    t_code: StringBuilder,
    t_prev_patn: StringBuilder,
    t_prev_mdtrt: StringBuilder,
    t_prev_rx: StringBuilder,
    t_prev_medins: StringBuilder,
    t_prev_time: TimestampMillisecondBuilder,
}

impl Builders {
    fn line(&mut self, event_idx: u32, patn_id: &str, line: &LineRow<'_>) {
        self.o_event.append_value(i64::from(event_idx));
        self.o_patn.append_value(patn_id);
        self.o_mdtrt.append_value(line.mdtrt_id);
        self.o_rx.append_value(line.rx_id);
        self.o_code.append_value(line.hilist_code);
        self.o_name.append_value(line.hilist_name);
        self.o_medins.append_value(line.medins_id);
        self.o_time.append_option(line.begn_millis);
        self.o_date
            .append_option(line.begn_millis.map(|t| t.div_euclid(DAY_MS) as i32));
        self.o_cnt.append_value(line.cnt);
        self.o_sum.append_value(line.sumamt);
        self.o_prd.append_option(line.prd_days);
        self.o_setting.append_option(line.setting);
        self.o_type.append_value(line.hilist_type);
        self.o_bhvr.append_value(line.drord_bhvr);
    }

    fn encounter(&mut self, event_idx: u32, patn_id: &str, enc: &EncRow<'_>) {
        self.e_event.append_value(i64::from(event_idx));
        self.e_patn.append_value(patn_id);
        self.e_mdtrt.append_value(enc.mdtrt_id);
        self.e_medins.append_value(enc.medins_id);
        self.e_setting.append_option(enc.setting);
        self.e_med_type.append_value(enc.med_type);
        self.e_adm.append_option(enc.adm_millis);
        self.e_dscg.append_option(enc.dscg_millis);
        self.e_dise.append_value(enc.main_dise);
    }

    fn trace(&mut self, event_idx: u32, mdtrt_id: &str, rx_id: &str, code: &str, prev: &PrevUse) {
        self.t_event.append_value(i64::from(event_idx));
        self.t_mdtrt.append_value(mdtrt_id);
        self.t_rx.append_value(rx_id);
        self.t_code.append_value(code);
        self.t_prev_patn.append_value(prev.patn_id);
        self.t_prev_mdtrt.append_value(prev.mdtrt_id);
        self.t_prev_rx.append_value(prev.rx_id);
        self.t_prev_medins.append_value(prev.medins_id);
        self.t_prev_time.append_option(prev.millis);
    }

    fn finish(mut self) -> HistoryTables {
        let orders: Vec<ArrayRef> = vec![
            Arc::new(self.o_event.finish()),
            Arc::new(self.o_patn.finish()),
            Arc::new(self.o_mdtrt.finish()),
            Arc::new(self.o_rx.finish()),
            Arc::new(self.o_code.finish()),
            Arc::new(self.o_name.finish()),
            Arc::new(self.o_medins.finish()),
            Arc::new(self.o_time.finish()),
            Arc::new(self.o_date.finish()),
            Arc::new(self.o_cnt.finish()),
            Arc::new(self.o_sum.finish()),
            Arc::new(self.o_prd.finish()),
            Arc::new(self.o_setting.finish()),
            Arc::new(self.o_type.finish()),
            Arc::new(self.o_bhvr.finish()),
        ];
        let encounters: Vec<ArrayRef> = vec![
            Arc::new(self.e_event.finish()),
            Arc::new(self.e_patn.finish()),
            Arc::new(self.e_mdtrt.finish()),
            Arc::new(self.e_medins.finish()),
            Arc::new(self.e_setting.finish()),
            Arc::new(self.e_med_type.finish()),
            Arc::new(self.e_adm.finish()),
            Arc::new(self.e_dscg.finish()),
            Arc::new(self.e_dise.finish()),
        ];
        let traces: Vec<ArrayRef> = vec![
            Arc::new(self.t_event.finish()),
            Arc::new(self.t_mdtrt.finish()),
            Arc::new(self.t_rx.finish()),
            Arc::new(self.t_code.finish()),
            Arc::new(self.t_prev_patn.finish()),
            Arc::new(self.t_prev_mdtrt.finish()),
            Arc::new(self.t_prev_rx.finish()),
            Arc::new(self.t_prev_medins.finish()),
            Arc::new(self.t_prev_time.finish()),
        ];
        let make = |name, columns| {
            RecordBatch::try_new(table_schema(name), columns).unwrap_or_else(|err| {
                panic!("history builder out of sync with schema of {name:?}: {err}")
            })
        };
        HistoryTables {
            orders: make(TableName::HistoryOrders, orders),
            encounters: make(TableName::HistoryEncounters, encounters),
            trace_uses: make(TableName::TraceUses, traces),
        }
    }
}

/// `setting` (1–4) of an encounter through the input dictionaries, as the `encounters`
/// table computes it.
fn setting_of(
    dicts: &Dictionaries,
    area: &str,
    med_mdtrt_type: &str,
    med_type: &str,
) -> Option<i32> {
    dicts
        .lookup("med_mdtrt_type", area, med_mdtrt_type)
        .or_else(|| dicts.lookup("med_type_setting", area, med_type))
        .and_then(|v| v.parse().ok())
}

/// The encounters of earlier events of the batch, per person, borrowed from the
/// events (most persons appear once per batch: copying every event's lines just in
/// case was a fifth of the table build).
type InBatch<'e> = HashMap<&'e str, Vec<&'e Encounter>>;

/// Builds the history tables of `events` from `stores` (may be empty: then only the
/// batch's own earlier events count as history). Several stores are the histories of
/// the input partitions an instance owns (Kafka, docs/history.md § 6.1) and the
/// engine's own: a person's rows come from every store that knows the person (the
/// partition key is `patn_id`, so usually one; a line in two counts once, the first
/// store's copy), a trace code's first use from the first store that knows it.
///
/// Event *k* of person *p* sees: the stored history of *p* plus the encounters of *p*
/// in events 0..k of this batch — minus anything its own request carries. A trace
/// code is compared with the store, the earlier events of the batch, and the earlier
/// lines of the same request (two lines, or two patients, of one request).
pub fn history_tables(
    events: &[&Event],
    stores: &[&HistoryStore],
    dicts: &Dictionaries,
) -> HistoryTables {
    // Every store that knows a person (usually one: the person's partition;
    // `fundwatch serve` adds the HTTP service's own).
    let holders_of = |patn_id: &str| -> Vec<(&HistoryStore, &PersonHistory)> {
        stores
            .iter()
            .filter_map(|&s| s.person(patn_id).map(|person| (s, person)))
            .collect()
    };
    let trace_of = |code: &str| stores.iter().find_map(|&s| s.trace(code).map(|t| (s, t)));
    let mut b = Builders::default();
    let mut in_batch: InBatch<'_> = HashMap::default();
    // First settlements not in the store: earlier events and earlier lines of this one.
    let mut batch_traces: HashMap<&str, TraceRecord> = HashMap::default();
    for (event_idx, event) in events.iter().enumerate() {
        let event_idx = event_idx as u32;
        for patient in &event.patients {
            let area = patient.poolarea.as_str();
            let own_lines: HashSet<(&str, &str)> = patient
                .encounters
                .iter()
                .flat_map(|e| {
                    e.orders
                        .iter()
                        .map(move |o| (e.mdtrt_id.as_str(), o.rx_id.as_str()))
                })
                .collect();
            let own_encounters: HashSet<&str> = patient
                .encounters
                .iter()
                .map(|e| e.mdtrt_id.as_str())
                .collect();
            let mut seen_lines: HashSet<(&str, &str)> = HashSet::default();
            let mut seen_enc: HashSet<&str> = HashSet::default();

            // Earlier events of the batch first (newer than the store).
            if let Some(encounters) = in_batch.get(patient.patn_id.as_str()) {
                let settings: HashMap<&str, Option<i32>> = encounters
                    .iter()
                    .map(|e| {
                        let s = setting_of(dicts, area, &e.med_mdtrt_type, &e.med_type);
                        (e.mdtrt_id.as_str(), s)
                    })
                    .collect();
                for enc in encounters {
                    for order in &enc.orders {
                        let key = (enc.mdtrt_id.as_str(), order.rx_id.as_str());
                        if own_lines.contains(&key) || !seen_lines.insert(key) {
                            continue;
                        }
                        let row = LineRow {
                            mdtrt_id: &enc.mdtrt_id,
                            rx_id: &order.rx_id,
                            hilist_code: &order.hilist_code,
                            hilist_name: &order.hilist_name,
                            hilist_type: &order.hilist_type,
                            drord_bhvr: &order.drord_bhvr,
                            medins_id: &enc.medins_id,
                            setting: settings.get(enc.mdtrt_id.as_str()).copied().flatten(),
                            begn_millis: millis(order.drord_begn_date.or(enc.adm_date)),
                            cnt: order.cnt,
                            sumamt: order.sumamt,
                            prd_days: order.prd_days,
                        };
                        b.line(event_idx, &patient.patn_id, &row);
                    }
                }
                for enc in encounters {
                    if own_encounters.contains(enc.mdtrt_id.as_str())
                        || !seen_enc.insert(enc.mdtrt_id.as_str())
                    {
                        continue;
                    }
                    let row = EncRow {
                        mdtrt_id: &enc.mdtrt_id,
                        medins_id: &enc.medins_id,
                        setting: settings.get(enc.mdtrt_id.as_str()).copied().flatten(),
                        med_type: &enc.med_type,
                        adm_millis: millis(enc.adm_date),
                        dscg_millis: millis(enc.dscg_date),
                        main_dise: main_diagnosis(enc),
                    };
                    b.encounter(event_idx, &patient.patn_id, &row);
                }
            }
            let holders = holders_of(&patient.patn_id);
            // With several stores the same line may be in more than one: the
            // first store's copy counts.
            let several = holders.len() > 1;
            let mut emitted_lines: HashSet<(&str, &str)> = HashSet::default();
            let mut emitted_encs: HashSet<&str> = HashSet::default();
            for (s, person) in holders {
                for enc in &person.encounters {
                    let setting =
                        setting_of(dicts, area, s.sym(enc.med_mdtrt_type), s.sym(enc.med_type));
                    let medins_id = s.sym(enc.medins_id);
                    // Stored lines and encounters are unique (upserted): only the request
                    // and earlier events of the batch can repeat them, so most stored
                    // rows need no lookup at all.
                    let in_request = own_encounters.contains(&*enc.mdtrt_id);
                    let in_batch = seen_enc.contains(&*enc.mdtrt_id);
                    for line in &enc.lines {
                        let key = (&*enc.mdtrt_id, enc.rx_id(line));
                        if (in_request || in_batch)
                            && (own_lines.contains(&key) || seen_lines.contains(&key))
                        {
                            continue;
                        }
                        if several && !emitted_lines.insert(key) {
                            continue;
                        }
                        let row = stored_line(s, enc, line, medins_id, setting);
                        b.line(event_idx, &patient.patn_id, &row);
                    }
                    let repeated = several && !emitted_encs.insert(&enc.mdtrt_id);
                    if enc.listed && !in_request && !in_batch && !repeated {
                        let row = EncRow {
                            mdtrt_id: &enc.mdtrt_id,
                            medins_id,
                            setting,
                            med_type: s.sym(enc.med_type),
                            adm_millis: enc.adm.get(),
                            dscg_millis: enc.dscg.get(),
                            main_dise: s.sym(enc.main_dise),
                        };
                        b.encounter(event_idx, &patient.patn_id, &row);
                    }
                }
            }

            // Trace codes: an earlier settlement of the same code by a different line.
            for enc in &patient.encounters {
                for order in &enc.orders {
                    for code in &order.trace_codes {
                        let prev = match batch_traces.get(code.as_str()) {
                            Some(t) => Some(PrevUse {
                                patn_id: &t.patn_id,
                                mdtrt_id: &t.mdtrt_id,
                                rx_id: &t.rx_id,
                                medins_id: &t.medins_id,
                                millis: t.millis,
                            }),
                            None => trace_of(code).map(|(s, t)| PrevUse {
                                patn_id: t.patn_id(),
                                mdtrt_id: t.mdtrt_id(),
                                rx_id: t.rx_id(),
                                medins_id: s.sym(t.medins_id),
                                millis: t.millis.get(),
                            }),
                        };
                        if let Some(prev) = prev
                            && (prev.mdtrt_id != enc.mdtrt_id || prev.rx_id != order.rx_id)
                        {
                            b.trace(event_idx, &enc.mdtrt_id, &order.rx_id, code, &prev);
                        }
                    }
                    // This line is the first settlement of its codes not seen before,
                    // for the lines after it (same request or later events).
                    for code in &order.trace_codes {
                        let known = trace_of(code).is_some();
                        if !known && !batch_traces.contains_key(code.as_str()) {
                            batch_traces.insert(
                                code.as_str(),
                                TraceRecord {
                                    patn_id: patient.patn_id.clone(),
                                    mdtrt_id: enc.mdtrt_id.clone(),
                                    rx_id: order.rx_id.clone(),
                                    medins_id: enc.medins_id.clone(),
                                    millis: order
                                        .drord_begn_date
                                        .or(enc.adm_date)
                                        .map(|t| t.and_utc().timestamp_millis()),
                                },
                            );
                        }
                    }
                }
            }
        }
        // This event becomes history for the rest of the batch.
        for patient in &event.patients {
            in_batch
                .entry(patient.patn_id.as_str())
                .or_default()
                .extend(patient.encounters.iter());
        }
    }
    b.finish()
}

fn stored_line<'a>(
    store: &'a HistoryStore,
    enc: &'a StoredEncounter,
    line: &'a StoredLine,
    medins_id: &'a str,
    setting: Option<i32>,
) -> LineRow<'a> {
    LineRow {
        mdtrt_id: &enc.mdtrt_id,
        rx_id: enc.rx_id(line),
        hilist_code: store.sym(line.hilist_code),
        hilist_name: store.sym(line.hilist_name),
        hilist_type: store.sym(line.hilist_type),
        drord_bhvr: store.sym(line.drord_bhvr),
        medins_id,
        setting,
        begn_millis: line.begn.get(),
        cnt: line.cnt,
        sumamt: line.sumamt,
        prd_days: line.prd_days.get(),
    }
}
