//! `fundwatch rules test|validate`: rule authors' tools.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use fundwatch_engine::{Clock, Engine, Program, ProgramOptions, run_pack_cases};

use super::common;

/// Rule-pack subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Run every case of every rule; per-rule pass/fail and coverage.
    Test {
        /// Pack directory.
        pack: PathBuf,
        /// KB version directory (default: the shipped national KB).
        #[arg(long)]
        kb: Option<PathBuf>,
        /// Show only failing rules.
        #[arg(long)]
        failures: bool,
    },
    /// Check the pack's format and compile every rule against the KB.
    Validate {
        /// Pack directory.
        pack: PathBuf,
        /// KB version directory (default: the shipped national KB).
        #[arg(long)]
        kb: Option<PathBuf>,
    },
}

/// Runs a `rules` subcommand.
pub fn run(cmd: RulesCommand) -> anyhow::Result<ExitCode> {
    common::runtime()?.block_on(async move {
        match cmd {
            RulesCommand::Validate { pack, kb } => {
                let kb = common::load_kb(kb.as_deref())?;
                let pack = common::load_pack(Some(&pack))?;
                let missing: Vec<&String> = pack
                    .manifest
                    .requires_classes
                    .iter()
                    .filter(|class| kb.class_id(class).is_none())
                    .collect();
                if !missing.is_empty() {
                    anyhow::bail!(
                        "KB {} lacks rule classes the pack requires: {missing:?}",
                        kb.id()
                    );
                }
                let program =
                    Program::compile(pack.clone(), kb, &ProgramOptions::default()).await?;
                println!(
                    "{}: {} rules compiled against KB {} ({} cases)",
                    pack.version_label(),
                    program.rules().len(),
                    program.kb().id(),
                    pack.rules.iter().map(|r| r.cases.len()).sum::<usize>()
                );
                Ok(ExitCode::SUCCESS)
            }
            RulesCommand::Test { pack, kb, failures } => {
                let engine =
                    common::load_engine(kb.as_deref(), Some(&pack), Clock::EventTime).await?;
                test(&engine, failures).await
            }
        }
    })
}

async fn test(engine: &Engine, only_failures: bool) -> anyhow::Result<ExitCode> {
    let results = run_pack_cases(engine).await;
    let (mut cases, mut passed, mut covered) = (0, 0, 0);
    for rule in &results {
        let ok = rule.cases.iter().filter(|c| c.passed).count();
        cases += rule.cases.len();
        passed += ok;
        covered += usize::from(rule.covered());
        if only_failures && rule.passed() && rule.covered() {
            continue;
        }
        println!(
            "{} {} {}: {ok}/{} cases pass ({} positive, {} negative){}",
            if rule.passed() { "PASS" } else { "FAIL" },
            rule.rule_id,
            rule.name,
            rule.cases.len(),
            rule.positives(),
            rule.negatives(),
            if rule.covered() {
                ""
            } else {
                " — needs ≥2 positive and ≥2 negative cases"
            }
        );
        for case in rule.cases.iter().filter(|c| !c.passed) {
            println!("    FAIL {}: {}", case.name, case.message);
        }
    }
    println!(
        "{} rules, {cases} cases, {passed} passed, {} failed; {covered}/{} rules covered (≥2 positive, ≥2 negative)",
        results.len(),
        cases - passed,
        results.len()
    );
    Ok(if passed == cases && covered == results.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
