//! The FundWatch engine: from a 3101/3102 event to national-shape alerts.
//!
//! Flow (ARCHITECTURE.md): [`event`] decodes lenient JSON into typed events →
//! [`batch`] lays a micro-batch out as Arrow tables (`orders`, `diagnoses`,
//! `encounters`, `operations`) → [`eval`] executes the rule pack's SQL, compiled once
//! into DataFusion physical plans per (pack, KB) version → [`alert`] turns findings
//! into alerts with deterministic `jr_id`s. [`Engine::evaluate`] is the one entry
//! point all modes share.
//!
//! Glossary (national name → here): 知识库 → `KnowledgeBase` (crate `fundwatch-kb`),
//! 规则库/规则包 → `RulePack` (crate `fundwatch-rules`), `jr_id` → [`Alert::jr_id`],
//! `judge_result_detail_dtos` → [`AlertDetail`], `trig_scen` → scenario, compiled
//! pack × KB → [`Program`], the programs in force (KB timeline, shadow candidate)
//! → [`Deployment`], 激活/回滚 (activation, rollback) → [`VersionManager`].

pub mod alert;
pub mod batch;
pub mod deploy;
mod engine;
pub mod eval;
pub mod event;
pub mod history;
pub mod observe;
mod pack_test;

pub use alert::{Alert, AlertDetail, AlertSummary};
pub use deploy::{Deployment, VersionManager, service_day};
pub use engine::{Clock, Engine, selects};
pub use eval::{DormantRule, EvalError, Program, ProgramOptions};
pub use event::{
    DataPath, DecodeError, Event, data_path, decode_event, decode_reference, decode_request,
    decode_value,
};
pub use observe::{Stage, StageObserver};
pub use pack_test::{CaseResult, RuleResult, run_pack_cases};
