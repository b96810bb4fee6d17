//! The FundWatch rule base (规则库): the rule-pack format.
//!
//! A rule pack is a directory — `pack.toml` (manifest, dictionaries, parameters,
//! per-统筹区 overrides) and `rules/*.toml` (one national rule each: metadata, logic as
//! SQL over the documented tables, and its test cases). This crate reads and checks
//! that format; it knows nothing about DataFusion. Compiling the SQL and running the
//! cases happens in `fundwatch-engine` (which owns the tables the SQL reads).
//!
//! Entry point: [`RulePack::load`]. Published packs, KB versions and what is
//! active live in a [`Registry`] (docs/registry.md).

mod case;
mod dictionary;
mod error;
mod pack;
pub mod registry;
mod rule;

pub use case::{Case, CaseEncounter, CaseExpect, CaseOrder, CasePatient};
pub use dictionary::{Dictionaries, Dictionary, Parameters};
pub use error::RulesError;
pub use pack::{PackManifest, RulePack};
pub use registry::{Registry, RegistryError};
pub use rule::{Gate, Rule, TrigScen};
