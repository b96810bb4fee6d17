//! What the engine evaluates with, and how that changes while it runs.
//!
//! A [`Deployment`] is an immutable snapshot: the active pack compiled against
//! every KB version of the timeline ([`Slot`]s, by `effective_from`), plus an
//! optional shadow candidate compiled against the same versions. The
//! [`Engine`](crate::Engine) holds the current one behind a [`DeploymentCell`];
//! each micro-batch takes an `Arc` to it at its start and keeps it to the end, so
//! an activation never changes the rules under a batch in flight, and the old
//! programs are freed when the last such batch finishes.
//!
//! Service-date selection: an event is evaluated with the KB version in force on
//! its service date ([`service_day`]): the last slot whose `effective_from` is not
//! after it, the first slot for earlier dates — a back-dated claim is judged by
//! the knowledge of its own day.
//!
//! [`VersionManager`] builds deployments from a registry, validates them off the
//! hot path (every case of the pack against the target KB) and swaps them in.

mod manager;
mod shadow;

use std::sync::{Arc, PoisonError, RwLock};

use chrono::NaiveDate;
use fundwatch_kb::date_to_days;

pub use manager::{
    ActivationReport, Builder, DeployError, ManagerStatus, SlotStatus, Validation, VersionManager,
};
pub use shadow::{DiffSample, RuleShadowStats, Shadow, ShadowReport};

use crate::eval::Program;
use crate::event::Event;

/// One KB version of the timeline with the active pack compiled against it.
#[derive(Debug, Clone)]
pub struct Slot {
    /// First service day (Arrow Date32) the version applies to.
    pub from_day: i32,
    /// The pack × this KB version.
    pub program: Arc<Program>,
}

/// An immutable set of compiled programs the engine evaluates with.
#[derive(Debug)]
pub struct Deployment {
    slots: Vec<Slot>,
    shadow: Option<Arc<Shadow>>,
    seq: u64,
}

impl Deployment {
    /// One program for every service date.
    pub fn single(program: Arc<Program>) -> Self {
        let from_day = date_to_days(program.kb().manifest().effective_from);
        Self {
            slots: vec![Slot { from_day, program }],
            shadow: None,
            seq: 0,
        }
    }

    /// A timeline of slots (sorted here by `from_day`); `None` when empty.
    pub fn new(mut slots: Vec<Slot>, shadow: Option<Arc<Shadow>>, seq: u64) -> Option<Self> {
        if slots.is_empty() {
            return None;
        }
        slots.sort_by_key(|s| s.from_day);
        Some(Self { slots, shadow, seq })
    }

    /// The slots, oldest `effective_from` first.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The program of the newest KB version (what "the program" means to callers
    /// that do not select by date: pack metadata, history retention, versions).
    pub fn latest(&self) -> &Arc<Program> {
        // Never empty: both constructors guarantee a slot.
        &self.slots[self.slots.len() - 1].program
    }

    /// The shadow candidate, if one runs.
    pub fn shadow(&self) -> Option<&Arc<Shadow>> {
        self.shadow.as_ref()
    }

    /// Registry activation this deployment was built from (0: not from a registry).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Index of the slot for service day `day` (`None`: the newest).
    pub fn slot_for(&self, day: Option<i32>) -> usize {
        match day {
            None => self.slots.len() - 1,
            Some(day) => self
                .slots
                .iter()
                .rposition(|s| s.from_day <= day)
                .unwrap_or(0),
        }
    }
}

/// The engine's current deployment, swapped atomically.
///
/// A read clones an `Arc` under a read lock held for nanoseconds; writes happen
/// only on activation. (`arc-swap` would make the read lock-free; it was not
/// worth a new dependency at these rates.)
#[derive(Debug)]
pub struct DeploymentCell(RwLock<Arc<Deployment>>);

impl DeploymentCell {
    /// A cell holding `deployment`.
    pub fn new(deployment: Deployment) -> Self {
        Self(RwLock::new(Arc::new(deployment)))
    }

    /// The current deployment.
    pub fn load(&self) -> Arc<Deployment> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Makes `deployment` current; returns the previous one.
    pub fn swap(&self, deployment: Arc<Deployment>) -> Arc<Deployment> {
        let mut guard = self.0.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *guard, deployment)
    }
}

/// The service date of an event as an Arrow Date32 day: the latest date of a
/// checked fee line (`drord_begn_date` of `curr_drord_flag` orders) of the current
/// encounters, else their admission date, else the event time. Not `inf_time`: a
/// back-dated claim sent today is judged by the knowledge of its service date.
pub fn service_day(event: &Event) -> Option<i32> {
    let mut best: Option<NaiveDate> = None;
    let mut admission: Option<NaiveDate> = None;
    for patient in &event.patients {
        let Some(enc) = patient.current_encounter() else {
            continue;
        };
        let checked = enc.orders.iter().filter(|o| o.curr_drord_flag);
        let flagged_any = enc.orders.iter().any(|o| o.curr_drord_flag);
        // With no line flagged every line of the current encounter is checked.
        let lines: Vec<_> = if flagged_any {
            checked.collect()
        } else {
            enc.orders.iter().collect()
        };
        for order in lines {
            if let Some(d) = order.drord_begn_date.or(enc.adm_date).map(|t| t.date()) {
                best = best.max(Some(d));
            }
        }
        if let Some(d) = enc.adm_date.map(|t| t.date()) {
            admission = admission.max(Some(d));
        }
    }
    best.or(admission)
        .or_else(|| event.event_time().map(|t| t.date()))
        .map(date_to_days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::decode_event;

    fn day(text: &str) -> Option<i32> {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(date_to_days)
    }

    fn event(orders: &str, inf_time: &str) -> Event {
        let json = format!(
            r#"{{"infno":"3101","inf_time":"{inf_time}","fixmedins_code":"H1","input":{{"data":{{
              "trig_scen":"4","patient_dtos":[{{"patn_id":"P1","gend":"1","curr_mdtrt_id":"M1",
              "fsi_encounter_dtos":[{{"mdtrt_id":"M1","adm_date":"2025-12-01 08:00:00",
              "fsi_order_dtos":[{orders}]}}]}}]}}}}}}"#
        );
        decode_event(json.as_bytes()).expect("test event decodes")
    }

    #[test]
    fn service_day_is_the_latest_checked_line_not_the_send_time() {
        let e = event(
            r#"{"rx_id":"R1","hilist_code":"X","drord_begn_date":"2025-12-20 09:00:00","curr_drord_flag":"1"},
               {"rx_id":"R2","hilist_code":"X","drord_begn_date":"2026-02-01 09:00:00","curr_drord_flag":"0"},
               {"rx_id":"R3","hilist_code":"X","drord_begn_date":"2025-12-22 09:00:00","curr_drord_flag":"1"}"#,
            "2026-11-22 10:00:00",
        );
        // R2 is context (not checked); the send time does not count.
        assert_eq!(service_day(&e), day("2025-12-22"));
    }

    #[test]
    fn service_day_falls_back_to_all_lines_then_admission() {
        let none_flagged = event(
            r#"{"rx_id":"R1","hilist_code":"X","drord_begn_date":"2026-01-10 09:00:00","curr_drord_flag":"0"}"#,
            "2026-11-22 10:00:00",
        );
        assert_eq!(service_day(&none_flagged), day("2026-01-10"));
        let no_lines = event("", "2026-11-22 10:00:00");
        assert_eq!(service_day(&no_lines), day("2025-12-01"));
    }
}
