//! Schemas of the event tables (the contract rule SQL is written against).

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The event tables of a micro-batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableName {
    /// One row per order line (current and context, all encounters in the request).
    Orders = 0,
    /// One row per diagnosis (plus `dscg_main_dise_codg` when not listed).
    Diagnoses = 1,
    /// One row per encounter.
    Encounters = 2,
    /// One row per operation.
    Operations = 3,
    /// Stored order lines of the batch's persons (not in the request).
    HistoryOrders = 4,
    /// Stored encounters of the batch's persons (not in the request).
    HistoryEncounters = 5,
    /// Trace codes of the batch already settled by another line.
    TraceUses = 6,
    /// Registered statuses (death date) of the batch's persons.
    PersonStatus = 7,
}

/// All event tables with their SQL names.
pub const TABLES: [(TableName, &str); 8] = [
    (TableName::Orders, "orders"),
    (TableName::Diagnoses, "diagnoses"),
    (TableName::Encounters, "encounters"),
    (TableName::Operations, "operations"),
    (TableName::HistoryOrders, "history_orders"),
    (TableName::HistoryEncounters, "history_encounters"),
    (TableName::TraceUses, "trace_uses"),
    (TableName::PersonStatus, "person_status"),
];

fn key_fields() -> Vec<Field> {
    vec![
        Field::new("event_idx", DataType::Int64, false),
        Field::new("patn_id", DataType::Utf8, false),
        Field::new("mdtrt_id", DataType::Utf8, false),
        Field::new("enc_current", DataType::Boolean, false),
    ]
}

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

fn context_fields() -> Vec<Field> {
    vec![
        Field::new("medins_id", DataType::Utf8, false),
        Field::new("medins_lv", DataType::Int32, true),
        Field::new("setting", DataType::Int32, true),
        Field::new("med_type", DataType::Utf8, false),
        Field::new("insutype", DataType::Utf8, false),
        Field::new("internet", DataType::Boolean, false),
        Field::new("adm_time", timestamp(), true),
        Field::new("dscg_time", timestamp(), true),
        Field::new("gend", DataType::Utf8, true),
        Field::new("age_years", DataType::Float64, true),
        Field::new("age_days", DataType::Int64, true),
        Field::new("poolarea", DataType::Utf8, false),
    ]
}

static SCHEMAS: LazyLock<[SchemaRef; 8]> = LazyLock::new(|| {
    let mut orders = vec![Field::new("line_id", DataType::Int64, false)];
    orders.extend(key_fields());
    orders.extend([
        Field::new("curr", DataType::Boolean, false),
        Field::new("rx_id", DataType::Utf8, false),
        Field::new("rxno", DataType::Utf8, false),
        Field::new("hilist_code", DataType::Utf8, false),
        Field::new("hilist_name", DataType::Utf8, false),
        Field::new("hilist_type", DataType::Utf8, false),
        Field::new("long_drord", DataType::Boolean, false),
        Field::new("drord_bhvr", DataType::Utf8, false),
        Field::new("cnt", DataType::Float64, false),
        Field::new("pric", DataType::Float64, false),
        Field::new("sumamt", DataType::Float64, false),
        Field::new("begn_time", timestamp(), true),
        Field::new("service_date", DataType::Date32, true),
        Field::new("prd_days", DataType::Float64, true),
    ]);
    orders.extend(context_fields());

    let mut diagnoses = key_fields();
    diagnoses.extend([
        Field::new("dise_codg", DataType::Utf8, false),
        Field::new("maindise", DataType::Boolean, false),
    ]);

    let mut encounters = key_fields();
    encounters.push(Field::new("main_dise", DataType::Utf8, false));
    encounters.extend(context_fields());

    let mut operations = key_fields();
    operations.extend([
        Field::new("oprn_code", DataType::Utf8, false),
        Field::new("oprn_time", timestamp(), true),
        Field::new("main_oprn", DataType::Boolean, false),
    ]);

    let history_orders = vec![
        Field::new("event_idx", DataType::Int64, false),
        Field::new("patn_id", DataType::Utf8, false),
        Field::new("mdtrt_id", DataType::Utf8, false),
        Field::new("rx_id", DataType::Utf8, false),
        Field::new("hilist_code", DataType::Utf8, false),
        Field::new("hilist_name", DataType::Utf8, false),
        Field::new("medins_id", DataType::Utf8, false),
        Field::new("begn_time", timestamp(), true),
        Field::new("service_date", DataType::Date32, true),
        Field::new("cnt", DataType::Float64, false),
        Field::new("sumamt", DataType::Float64, false),
        Field::new("prd_days", DataType::Float64, true),
        Field::new("setting", DataType::Int32, true),
        Field::new("hilist_type", DataType::Utf8, false),
        Field::new("drord_bhvr", DataType::Utf8, false),
    ];
    let history_encounters = vec![
        Field::new("event_idx", DataType::Int64, false),
        Field::new("patn_id", DataType::Utf8, false),
        Field::new("mdtrt_id", DataType::Utf8, false),
        Field::new("medins_id", DataType::Utf8, false),
        Field::new("setting", DataType::Int32, true),
        Field::new("med_type", DataType::Utf8, false),
        Field::new("adm_time", timestamp(), true),
        Field::new("dscg_time", timestamp(), true),
        Field::new("main_dise", DataType::Utf8, false),
    ];
    let trace_uses = vec![
        Field::new("event_idx", DataType::Int64, false),
        Field::new("mdtrt_id", DataType::Utf8, false),
        Field::new("rx_id", DataType::Utf8, false),
        Field::new("trace_code", DataType::Utf8, false),
        Field::new("prev_patn_id", DataType::Utf8, false),
        Field::new("prev_mdtrt_id", DataType::Utf8, false),
        Field::new("prev_rx_id", DataType::Utf8, false),
        Field::new("prev_medins_id", DataType::Utf8, false),
        Field::new("prev_time", timestamp(), true),
    ];
    let person_status = vec![
        Field::new("event_idx", DataType::Int64, false),
        Field::new("patn_id", DataType::Utf8, false),
        Field::new("die_date", DataType::Date32, false),
        Field::new("source", DataType::Utf8, false),
    ];
    [
        orders,
        diagnoses,
        encounters,
        operations,
        history_orders,
        history_encounters,
        trace_uses,
        person_status,
    ]
    .map(|fields| Arc::new(Schema::new(fields)))
});

/// The schema of table `name`.
pub fn table_schema(name: TableName) -> SchemaRef {
    Arc::clone(&SCHEMAS[name as usize])
}
