//! Evaluation: a rule pack compiled against a KB version into a [`Program`] of
//! DataFusion physical plans, executed per micro-batch without re-planning.
//!
//! Per batch: wrap the [`EventBatch`](crate::batch::EventBatch) in a fresh
//! `TaskContext`, reset each kept plan's state (`reset_plan_states`: without it, a
//! re-executed hash join returns the previous batch's build side) and execute it.
//! Planning cost is paid once per (pack, KB) version; see `benches/RESULTS.md` for
//! the measured difference against `ctx.sql` per batch.

mod functions;
mod gate;
mod lean;
mod program;
mod slot;

pub use functions::kb_functions;
pub use program::{DormantRule, EvalError, Finding, OutputColumns, Program, ProgramOptions, VIEWS};
pub use slot::{CurrentBatch, SlotExec, SlotTable};
