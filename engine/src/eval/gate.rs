//! Rule gates: skip a compiled plan for a batch that cannot give it a finding.
//!
//! Executing a kept plan has a fixed cost (stream setup, metrics, hash tables over
//! tiny inputs: ~0.1 ms in release) however few rows it sees. Most national rules
//! report only lines whose code their knowledge class lists, and a request names
//! the codes of a few classes out of twenty, so most plans would run to return
//! nothing. A rule's [`Gate`] (declared in its TOML) says which batches it can
//! report on; the check here is a hash lookup per fee line. A gate also narrows a
//! batch to the events that can concern the rule, so a large Kafka batch runs a
//! rule's joins and window sorts over those few events, not over all of them.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use fundwatch_kb::{ClassId, KnowledgeBase};
use fundwatch_rules::Gate;

use crate::batch::{EventBatch, TABLES, TableName};

/// A rule's [`Gate`] resolved against a KB version and the event tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CompiledGate {
    classes: Vec<ClassId>,
    tables: Vec<TableName>,
}

impl CompiledGate {
    /// Resolves `gate`; `sql_classes` are the classes the rule's SQL reads. `Ok(None)`:
    /// a class of `codes_in` is not in this KB version (the rule is dormant anyway).
    pub(crate) fn compile(
        gate: &Gate,
        sql_classes: &[String],
        kb: &KnowledgeBase,
    ) -> Result<Option<Self>, String> {
        let mut classes = Vec::new();
        for class in &gate.codes_in {
            if !sql_classes.contains(class) {
                return Err(format!(
                    "gate.codes_in names class `{class}`, which the SQL does not read (kb_lookup, kb_pair or kb_in_pair)"
                ));
            }
            match kb.class_id(class) {
                Some(id) => classes.push(id),
                None => return Ok(None),
            }
        }
        let mut tables = Vec::new();
        for name in &gate.rows_in {
            let table = TABLES
                .iter()
                .find(|(_, sql_name)| sql_name == name)
                .map(|(table, _)| *table)
                .ok_or_else(|| {
                    let known: Vec<&str> = TABLES.iter().map(|(_, n)| *n).collect();
                    format!(
                        "gate.rows_in names table `{name}`; the event tables are {}",
                        known.join(", ")
                    )
                })?;
            tables.push(table);
        }
        Ok(Some(Self { classes, tables }))
    }

    /// Which events of `batch` the rule must see.
    fn scope(&self, batch: &EventBatch, present: &EventsByClass) -> Scope {
        let rows = self
            .tables
            .iter()
            .all(|table| batch.table(*table).num_rows() > 0);
        if !rows {
            return Scope::Skip;
        }
        if self.classes.is_empty() {
            return Scope::All;
        }
        let mut events = vec![false; present.events];
        let mut any = false;
        for class in &self.classes {
            for &event in present.events_of(*class) {
                events[event] = true;
                any = true;
            }
        }
        if !any {
            Scope::Skip
        } else if events.iter().all(|e| *e) {
            Scope::All
        } else {
            Scope::Events(events.into())
        }
    }
}

/// What of a batch a rule's plan runs over.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scope {
    /// Nothing: the gate is closed.
    Skip,
    /// Every event.
    All,
    /// Only the events marked true (by `event_idx`). Sound because a rule judges
    /// each event on its own rows (docs/tables.md): its findings for an event do
    /// not depend on which other events share the batch.
    Events(Arc<[bool]>),
}

/// For each knowledge class, the events of a batch with a fee line whose code it
/// lists.
struct EventsByClass {
    /// Events in the batch.
    events: usize,
    /// Per class id: event indexes, ascending, without repeats.
    by_class: Vec<Vec<usize>>,
}

impl EventsByClass {
    fn of(batch: &EventBatch, kb: &KnowledgeBase) -> Self {
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); kb.class_count()];
        let orders = batch.table(TableName::Orders);
        let column = |name: &str| {
            orders
                .schema()
                .index_of(name)
                .ok()
                .map(|i| orders.column(i))
        };
        let codes = column("hilist_code").and_then(|c| c.as_string_opt::<i32>().cloned());
        let events = column("event_idx").and_then(|c| c.as_primitive_opt::<Int64Type>().cloned());
        if let (Some(codes), Some(events)) = (codes, events) {
            for row in 0..codes.len() {
                if codes.is_null(row) || events.is_null(row) {
                    continue;
                }
                let event = events.value(row) as usize;
                for class in kb.classes_listing(codes.value(row)) {
                    let list = &mut by_class[class.index()];
                    if list.last() != Some(&event) {
                        list.push(event);
                    }
                }
            }
        }
        for list in &mut by_class {
            list.sort_unstable();
            list.dedup();
        }
        Self {
            events: batch.event_count(),
            by_class,
        }
    }

    fn events_of(&self, class: ClassId) -> &[usize] {
        self.by_class
            .get(class.index())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// For each gate, what of `batch` its rule runs over. Codes are looked up only
/// when some gate names classes.
pub(crate) fn scopes<'a>(
    gates: impl ExactSizeIterator<Item = &'a CompiledGate> + Clone,
    batch: &EventBatch,
    kb: &KnowledgeBase,
) -> Vec<Scope> {
    let present = if gates.clone().any(|g| !g.classes.is_empty()) {
        EventsByClass::of(batch, kb)
    } else {
        EventsByClass {
            events: batch.event_count(),
            by_class: Vec::new(),
        }
    };
    gates.map(|gate| gate.scope(batch, &present)).collect()
}
