//! Columnar batches: a micro-batch of [`Event`]s as the Arrow tables rule SQL reads.
//!
//! Every table is documented in `docs/tables.md`; the schemas here are the contract.
//! Input dictionaries are applied here, once per line, so rules compare canonical
//! values (`gend` `1`/`2`, `medins_lv` 0–3, `setting` 1–4) whatever the 统筹区 sends.

mod normalize;
mod schema;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder,
    RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use chrono::{NaiveDate, NaiveDateTime};
use fundwatch_rules::Dictionaries;

pub use normalize::{Normalized, age_on, normalize_encounter};
pub use schema::{TABLES, TableName, table_schema};

use crate::event::Event;
use crate::history::{HistoryStore, PersonStatuses, history_tables, status_table};

/// Where one row of `orders` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRef {
    /// Index of the event in the batch.
    pub event_idx: u32,
    /// Index into `patient_dtos`.
    pub patient: u16,
    /// Index into `fsi_encounter_dtos`.
    pub encounter: u16,
    /// Index into `fsi_order_dtos`.
    pub order: u32,
}

/// The tables of one micro-batch, plus the map from `orders.line_id` back to events.
#[derive(Debug, Clone)]
pub struct EventBatch {
    /// The event and history tables, indexed by [`TableName`].
    pub tables: [RecordBatch; 8],
    /// `orders.line_id` → source line.
    pub lines: Vec<LineRef>,
    /// Events in the batch (`event_idx` is `0..events`).
    pub events: usize,
}

impl EventBatch {
    /// The table `name`.
    pub fn table(&self, name: TableName) -> &RecordBatch {
        &self.tables[name as usize]
    }

    /// Events in the batch.
    pub fn event_count(&self) -> usize {
        self.events
    }

    /// Builds the tables for `events`, normalising with `dicts`; history tables hold
    /// only what earlier events of the same batch contribute.
    pub fn build(events: &[&Event], dicts: &Dictionaries) -> Self {
        Self::build_with_history(events, dicts, None)
    }

    /// Builds the tables for `events` with the stored history of their persons (and
    /// the person-status table the store carries).
    pub fn build_with_history(
        events: &[&Event],
        dicts: &Dictionaries,
        history: Option<&HistoryStore>,
    ) -> Self {
        let stores: &[&HistoryStore] = match &history {
            Some(store) => std::slice::from_ref(store),
            None => &[],
        };
        Self::build_full(events, dicts, stores, history.map(|h| &*h.statuses))
    }

    /// Builds the tables for `events` with the stored history (one store per input
    /// partition, see [`history_tables`]) and the registered statuses
    /// (`person_status`) of their persons.
    pub fn build_full(
        events: &[&Event],
        dicts: &Dictionaries,
        history: &[&HistoryStore],
        statuses: Option<&PersonStatuses>,
    ) -> Self {
        let parallel = events.len() >= PARALLEL_BUILD_MIN_EVENTS;
        Self::build_split(events, dicts, history, statuses, parallel)
    }

    /// [`Self::build_full`]; `parallel`: the history tables on a second thread.
    fn build_split(
        events: &[&Event],
        dicts: &Dictionaries,
        history: &[&HistoryStore],
        statuses: Option<&PersonStatuses>,
        parallel: bool,
    ) -> Self {
        // The history tables depend only on the events and the stores: a large
        // batch builds them on a second thread while this one builds the event
        // tables (the build is on the stream's serial path; in the Kafka
        // benchmark this took it from ~28 to ~24 ms per batch of ~3,300).
        let (current, past) = if parallel {
            std::thread::scope(|scope| {
                let past = scope.spawn(|| history_tables(events, history, dicts));
                let current = EventTables::build(events, dicts, statuses);
                // The builders cannot fail: a panic there is a bug, raised again here.
                let past = past
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (current, past)
            })
        } else {
            (
                EventTables::build(events, dicts, statuses),
                history_tables(events, history, dicts),
            )
        };
        Self {
            tables: [
                current.orders,
                current.diagnoses,
                current.encounters,
                current.operations,
                past.orders,
                past.encounters,
                past.trace_uses,
                current.person_status,
            ],
            lines: current.lines,
            events: events.len(),
        }
    }
}

/// Batches from this size build their history tables on a second thread: a
/// thread's spawn (tens of µs) is then small against the build (~8 µs per event).
const PARALLEL_BUILD_MIN_EVENTS: usize = 256;

/// The tables of the request itself (and the statuses of its persons).
struct EventTables {
    orders: RecordBatch,
    diagnoses: RecordBatch,
    encounters: RecordBatch,
    operations: RecordBatch,
    person_status: RecordBatch,
    lines: Vec<LineRef>,
}

impl EventTables {
    fn build(events: &[&Event], dicts: &Dictionaries, statuses: Option<&PersonStatuses>) -> Self {
        let mut orders = OrdersBuilder::default();
        let mut diagnoses = DiagnosesBuilder::default();
        let mut encounters = EncountersBuilder::default();
        let mut operations = OperationsBuilder::default();
        let mut lines = Vec::new();

        for (event_idx, event) in events.iter().enumerate() {
            let event_idx = event_idx as u32;
            let fallback_time = event.event_time();
            for (p_idx, patient) in event.patients.iter().enumerate() {
                for (e_idx, enc) in patient.encounters.iter().enumerate() {
                    let current = enc.mdtrt_id == patient.curr_mdtrt_id;
                    let norm = normalize_encounter(patient, enc, dicts);
                    // 事中 requests often flag no line: then every line of the current
                    // encounter is under check (documented in docs/tables.md).
                    let none_flagged = !enc.orders.iter().any(|o| o.curr_drord_flag);
                    let enc_time = enc.adm_date.or(fallback_time);
                    let key = RowKey {
                        event_idx,
                        patn_id: &patient.patn_id,
                        mdtrt_id: &enc.mdtrt_id,
                        current,
                    };
                    encounters.push(&key, enc, &norm, patient.brdy, enc_time);
                    for diag in &enc.diagnoses {
                        diagnoses.push(&key, &diag.dise_codg, diag.maindise_flag);
                    }
                    if !enc.dscg_main_dise_codg.is_empty()
                        && !enc
                            .diagnoses
                            .iter()
                            .any(|d| d.dise_codg == enc.dscg_main_dise_codg)
                    {
                        diagnoses.push(&key, &enc.dscg_main_dise_codg, true);
                    }
                    for op in &enc.operations {
                        operations.push(&key, &op.oprn_code, op.oprn_date, op.main_oprn_flag);
                    }
                    for (o_idx, order) in enc.orders.iter().enumerate() {
                        let line_id = lines.len() as i64;
                        lines.push(LineRef {
                            event_idx,
                            patient: p_idx as u16,
                            encounter: e_idx as u16,
                            order: o_idx as u32,
                        });
                        let time = order.drord_begn_date.or(enc_time);
                        let checked = current && (order.curr_drord_flag || none_flagged);
                        orders.push(line_id, &key, checked, order, time, &norm, patient.brdy);
                    }
                }
            }
        }
        Self {
            orders: orders.finish(),
            diagnoses: diagnoses.finish(),
            encounters: encounters.finish(),
            operations: operations.finish(),
            person_status: status_table(events, statuses),
            lines,
        }
    }
}

struct RowKey<'a> {
    event_idx: u32,
    patn_id: &'a str,
    mdtrt_id: &'a str,
    current: bool,
}

fn epoch_days(date: NaiveDate) -> i32 {
    (date - NaiveDate::default()).num_days() as i32
}

fn millis(time: Option<NaiveDateTime>) -> Option<i64> {
    time.map(|t| t.and_utc().timestamp_millis())
}

fn batch(name: TableName, columns: Vec<ArrayRef>) -> RecordBatch {
    // The builders below push exactly the columns of `table_schema(name)`, in order;
    // a mismatch is a programming error caught by every test that builds a batch.
    RecordBatch::try_new(table_schema(name), columns)
        .unwrap_or_else(|err| panic!("batch builder out of sync with schema of {name:?}: {err}"))
}

#[derive(Default)]
struct KeyColumns {
    event_idx: Int64Builder,
    patn_id: StringBuilder,
    mdtrt_id: StringBuilder,
    enc_current: BooleanBuilder,
}

impl KeyColumns {
    fn push(&mut self, key: &RowKey<'_>) {
        self.event_idx.append_value(key.event_idx as i64);
        self.patn_id.append_value(key.patn_id);
        self.mdtrt_id.append_value(key.mdtrt_id);
        self.enc_current.append_value(key.current);
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.event_idx.finish()),
            Arc::new(self.patn_id.finish()),
            Arc::new(self.mdtrt_id.finish()),
            Arc::new(self.enc_current.finish()),
        ]
    }
}

/// Patient and encounter facts repeated on every order row, so that most rules
/// need no join.
#[derive(Default)]
struct ContextColumns {
    medins_id: StringBuilder,
    medins_lv: Int32Builder,
    setting: Int32Builder,
    med_type: StringBuilder,
    insutype: StringBuilder,
    internet: BooleanBuilder,
    adm_time: TimestampMillisecondBuilder,
    dscg_time: TimestampMillisecondBuilder,
    gend: StringBuilder,
    age_years: Float64Builder,
    age_days: Int64Builder,
    poolarea: StringBuilder,
}

impl ContextColumns {
    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.medins_id.finish()),
            Arc::new(self.medins_lv.finish()),
            Arc::new(self.setting.finish()),
            Arc::new(self.med_type.finish()),
            Arc::new(self.insutype.finish()),
            Arc::new(self.internet.finish()),
            Arc::new(self.adm_time.finish()),
            Arc::new(self.dscg_time.finish()),
            Arc::new(self.gend.finish()),
            Arc::new(self.age_years.finish()),
            Arc::new(self.age_days.finish()),
            Arc::new(self.poolarea.finish()),
        ]
    }
}

#[derive(Default)]
struct OrdersBuilder {
    line_id: Int64Builder,
    key: KeyColumns,
    curr: BooleanBuilder,
    rx_id: StringBuilder,
    rxno: StringBuilder,
    hilist_code: StringBuilder,
    hilist_name: StringBuilder,
    hilist_type: StringBuilder,
    long_drord: BooleanBuilder,
    drord_bhvr: StringBuilder,
    cnt: Float64Builder,
    pric: Float64Builder,
    sumamt: Float64Builder,
    begn_time: TimestampMillisecondBuilder,
    service_date: Date32Builder,
    prd_days: Float64Builder,
    context: ContextColumns,
}

impl OrdersBuilder {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        line_id: i64,
        key: &RowKey<'_>,
        checked: bool,
        order: &crate::event::Order,
        time: Option<NaiveDateTime>,
        norm: &Normalized,
        brdy: Option<NaiveDate>,
    ) {
        self.line_id.append_value(line_id);
        self.key.push(key);
        self.curr.append_value(checked);
        self.rx_id.append_value(&order.rx_id);
        self.rxno.append_value(&order.rxno);
        self.hilist_code.append_value(&order.hilist_code);
        self.hilist_name.append_value(&order.hilist_name);
        self.hilist_type.append_value(&order.hilist_type);
        self.long_drord.append_value(order.long_drord_flag);
        self.drord_bhvr.append_value(&order.drord_bhvr);
        self.cnt.append_value(order.cnt);
        self.pric.append_value(order.pric);
        self.sumamt.append_value(order.sumamt);
        self.begn_time.append_option(millis(time));
        let date = time.map(|t| t.date());
        self.service_date.append_option(date.map(epoch_days));
        self.prd_days.append_option(order.prd_days);
        self.context.push(norm, brdy, date);
    }

    fn finish(mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = vec![Arc::new(self.line_id.finish())];
        columns.extend(self.key.finish());
        columns.extend([
            Arc::new(self.curr.finish()) as ArrayRef,
            Arc::new(self.rx_id.finish()),
            Arc::new(self.rxno.finish()),
            Arc::new(self.hilist_code.finish()),
            Arc::new(self.hilist_name.finish()),
            Arc::new(self.hilist_type.finish()),
            Arc::new(self.long_drord.finish()),
            Arc::new(self.drord_bhvr.finish()),
            Arc::new(self.cnt.finish()),
            Arc::new(self.pric.finish()),
            Arc::new(self.sumamt.finish()),
            Arc::new(self.begn_time.finish()),
            Arc::new(self.service_date.finish()),
            Arc::new(self.prd_days.finish()),
        ]);
        columns.extend(self.context.finish());
        batch(TableName::Orders, columns)
    }
}

impl ContextColumns {
    fn push(&mut self, norm: &Normalized, brdy: Option<NaiveDate>, on: Option<NaiveDate>) {
        self.medins_id.append_value(&norm.medins_id);
        self.medins_lv.append_option(norm.medins_lv);
        self.setting.append_option(norm.setting);
        self.med_type.append_value(&norm.med_type);
        self.insutype.append_value(&norm.insutype);
        self.internet.append_value(norm.internet);
        self.adm_time.append_option(norm.adm_millis);
        self.dscg_time.append_option(norm.dscg_millis);
        self.gend.append_option(norm.gend);
        let age = match (brdy, on) {
            (Some(b), Some(d)) => age_on(b, d),
            _ => None,
        };
        self.age_years
            .append_option(age.map(|(years, _)| years as f64));
        self.age_days.append_option(age.map(|(_, days)| days));
        self.poolarea.append_value(&norm.poolarea);
    }
}

#[derive(Default)]
struct DiagnosesBuilder {
    key: KeyColumns,
    dise_codg: StringBuilder,
    maindise: BooleanBuilder,
}

impl DiagnosesBuilder {
    fn push(&mut self, key: &RowKey<'_>, code: &str, main: bool) {
        self.key.push(key);
        self.dise_codg.append_value(code);
        self.maindise.append_value(main);
    }

    fn finish(mut self) -> RecordBatch {
        let mut columns = self.key.finish();
        columns.push(Arc::new(self.dise_codg.finish()));
        columns.push(Arc::new(self.maindise.finish()));
        batch(TableName::Diagnoses, columns)
    }
}

#[derive(Default)]
struct EncountersBuilder {
    key: KeyColumns,
    main_dise: StringBuilder,
    context: ContextColumns,
}

impl EncountersBuilder {
    fn push(
        &mut self,
        key: &RowKey<'_>,
        enc: &crate::event::Encounter,
        norm: &Normalized,
        brdy: Option<NaiveDate>,
        time: Option<NaiveDateTime>,
    ) {
        self.key.push(key);
        self.main_dise.append_value(&enc.dscg_main_dise_codg);
        self.context.push(norm, brdy, time.map(|t| t.date()));
    }

    fn finish(mut self) -> RecordBatch {
        let mut columns = self.key.finish();
        columns.push(Arc::new(self.main_dise.finish()));
        columns.extend(self.context.finish());
        batch(TableName::Encounters, columns)
    }
}

#[derive(Default)]
struct OperationsBuilder {
    key: KeyColumns,
    oprn_code: StringBuilder,
    oprn_time: TimestampMillisecondBuilder,
    main_oprn: BooleanBuilder,
}

impl OperationsBuilder {
    fn push(&mut self, key: &RowKey<'_>, code: &str, date: Option<NaiveDateTime>, main: bool) {
        self.key.push(key);
        self.oprn_code.append_value(code);
        self.oprn_time.append_option(millis(date));
        self.main_oprn.append_value(main);
    }

    fn finish(mut self) -> RecordBatch {
        let mut columns = self.key.finish();
        columns.push(Arc::new(self.oprn_code.finish()));
        columns.push(Arc::new(self.oprn_time.finish()));
        columns.push(Arc::new(self.main_oprn.finish()));
        batch(TableName::Operations, columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::decode_value;

    fn event(patn: usize, day: usize) -> Event {
        decode_value(&serde_json::json!({
            "patient_dtos": [{
                "patn_id": format!("P{patn}"), "gend": "1", "brdy": "1980-01-01",
                "curr_mdtrt_id": format!("M{patn}-{day}"),
                "fsi_encounter_dtos": [{
                    "mdtrt_id": format!("M{patn}-{day}"), "medins_id": "H1",
                    "adm_date": format!("2026-03-{day:02} 08:00:00"),
                    "dise_codg": "J18.900", "dscg_main_dise_codg": "J18.900",
                    "fsi_diagnose_dtos": [{"dise_codg": "J18.900", "maindise_flag": "1"}],
                    "fsi_order_dtos": [
                        {"rx_id": format!("R{patn}-{day}-1"), "hilist_code": "X1", "cnt": 1,
                         "sumamt": 10.0, "drord_begn_date": format!("2026-03-{day:02} 09:00:00")},
                        {"rx_id": format!("R{patn}-{day}-2"), "hilist_code": "X2", "cnt": 2,
                         "sumamt": 20.0, "drug_trac_codg": format!("T{patn}")}
                    ]
                }]
            }]
        }))
        .expect("event")
    }

    #[test]
    fn a_large_batch_built_on_two_threads_equals_the_one_built_on_one() {
        // 300 events of 50 persons, over stored history of the same persons: every
        // history table has rows from the store and from earlier events of the batch.
        let mut store = HistoryStore::new(400);
        for patn in 0..50 {
            store.apply(&event(patn, 1));
        }
        let events: Vec<Event> = (0..300).map(|i| event(i % 50, 2 + i / 50)).collect();
        let refs: Vec<&Event> = events.iter().collect();
        let dicts = Dictionaries::default();
        let stores = [&store];
        let one = EventBatch::build_split(&refs, &dicts, &stores, None, false);
        let two = EventBatch::build_split(&refs, &dicts, &stores, None, true);
        for (name, table) in TABLES {
            assert_eq!(one.table(name), two.table(name), "table {table}");
        }
        assert_eq!(one.lines, two.lines);
        for name in [
            TableName::HistoryOrders,
            TableName::HistoryEncounters,
            TableName::TraceUses,
        ] {
            assert!(
                one.table(name).num_rows() > 0,
                "{name:?} has rows to compare"
            );
        }
    }
}
