//! Rule gates: skip a compiled plan for a batch that cannot give it a finding.
//!
//! Executing a kept plan has a fixed cost (stream setup, metrics, hash tables over
//! tiny inputs: ~0.1 ms in release) however few rows it sees. Most national rules
//! report only lines whose code their knowledge class lists, and a request names
//! the codes of a few classes out of twenty, so most plans would run to return
//! nothing. A rule's [`Gate`] (declared in its TOML) says which batches it can
//! report on; the check here is a hash lookup per fee line.

use arrow::array::{Array, AsArray};
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

    fn is_open(&self, batch: &EventBatch, present: &ClassesPresent) -> bool {
        let codes = self.classes.is_empty() || self.classes.iter().any(|c| present.has(*c));
        let rows = self
            .tables
            .iter()
            .all(|table| batch.table(*table).num_rows() > 0);
        codes && rows
    }
}

/// The knowledge classes that list a code of the batch's fee lines.
struct ClassesPresent(Vec<bool>);

impl ClassesPresent {
    fn of(batch: &EventBatch, kb: &KnowledgeBase) -> Self {
        let mut present = vec![false; kb.class_count()];
        let orders = batch.table(TableName::Orders);
        if let Some(codes) = orders
            .schema()
            .index_of("hilist_code")
            .ok()
            .and_then(|i| orders.column(i).as_string_opt::<i32>())
        {
            for row in 0..codes.len() {
                if codes.is_valid(row) {
                    for class in kb.classes_listing(codes.value(row)) {
                        present[class.index()] = true;
                    }
                }
            }
        }
        Self(present)
    }

    fn has(&self, class: ClassId) -> bool {
        self.0.get(class.index()).copied().unwrap_or(false)
    }
}

/// For each gate, whether it is open for `batch`. The classes present are looked
/// up only when some gate names classes.
pub(crate) fn open_gates<'a>(
    gates: impl ExactSizeIterator<Item = &'a CompiledGate> + Clone,
    batch: &EventBatch,
    kb: &KnowledgeBase,
) -> Vec<bool> {
    let needs_codes = gates.clone().any(|g| !g.classes.is_empty());
    let present = if needs_codes {
        ClassesPresent::of(batch, kb)
    } else {
        ClassesPresent(Vec::new())
    };
    gates.map(|gate| gate.is_open(batch, &present)).collect()
}
