//! Per-person history across encounters, for the rules that look beyond one request
//! (支付疗程, 周期超频次, 重复开药, 分解住院, 频繁就医, 挂床, 追溯码重复).
//!
//! # Design
//! - Keyed by `patn_id`, the Kafka message key, so a person's history lives on the
//!   instance that owns the person's partition. One [`HistoryStore`] per input
//!   partition (`fundwatch check` uses partition 0).
//! - Holds only what active rules need: order lines and encounters younger than the
//!   pack's retention (the largest `history_days` of its enabled rules); nothing when
//!   no enabled rule reads history.
//! - Fed by every evaluated event, after it is evaluated. Within one micro-batch, an
//!   event sees the events of the same person earlier in the batch, so batching never
//!   changes the alerts.
//! - History carried inside a request (earlier encounters in `fsi_encounter_dtos`) is
//!   used as well and never double counted: a stored line whose (`mdtrt_id`,
//!   `rx_id`) is also in the request is left out of `history_orders` for that event,
//!   and storing is an upsert by the same key (a redelivered event changes nothing).
//! - Out of order: an event older than what is stored is evaluated against all stored
//!   history; rules count only history up to the event's own service time, so a late
//!   event is judged as it would have been on time, and alerts already sent for newer
//!   events are not revised (streaming never retracts).
//! - Durable: [`durable::DurableHistory`] keeps a write-ahead log of applied events and
//!   snapshots with the input position they cover; a restarted or new owner loads the
//!   snapshot, replays the log, and resumes the input from the recorded position.
//! - Person status ([`PersonStatuses`], the `person_status` table of 死亡后就医): registered
//!   deaths from the deployment's file, held beside the store and shared by `Arc`
//!   (not in snapshots: reloaded from the file).
//! - Trace codes (药品追溯码) are unique across persons: [`TraceCodes`] is keyed by the
//!   code, not the person. With several instances the stream must be repartitioned by
//!   trace code (an internal topic keyed by `drug_trac_codg`) so one owner sees every
//!   use of a code; see docs/history.md.

mod durable;
mod status;
mod store;
mod tables;

pub use durable::{DurableHistory, HistoryError, read_snapshot, write_snapshot};
pub use status::{PersonStatus, PersonStatuses, StatusError, parse_die_date, status_table};
pub use store::{
    Days, HistEncounter, HistLine, HistoryStore, Millis, PersonHistory, PersonRecord,
    StoredEncounter, StoredLine, Sym, Symbols, TraceCodes, TraceRecord, TraceUse,
};
pub use tables::{HistoryTables, history_tables};

use std::sync::{Mutex, PoisonError};

use fundwatch_rules::Dictionaries;

use crate::batch::EventBatch;
use crate::event::Event;

/// The stored history an evaluation reads. It is locked only while a micro-batch's
/// tables are built, so recording (and a Kafka partition's assignment) waits for
/// a build, never for a whole evaluation.
pub trait HistoryView: Send + Sync + std::fmt::Debug {
    /// The tables of `events` with the history (and person statuses) this view holds.
    fn build(&self, events: &[&Event], dicts: &Dictionaries) -> EventBatch;
}

impl HistoryView for Mutex<DurableHistory> {
    fn build(&self, events: &[&Event], dicts: &Dictionaries) -> EventBatch {
        let history = self.lock().unwrap_or_else(PoisonError::into_inner);
        EventBatch::build_with_history(events, dicts, Some(history.store()))
    }
}
