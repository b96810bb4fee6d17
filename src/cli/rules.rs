//! `fundwatch rules …`: rule authors' tools (`test`, `validate`) and the pack
//! versions of the registry (`publish`, `list`, `activate`, `rollback`, `diff`,
//! `shadow`, `promote`, `discard`, `log`; docs/registry.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use fundwatch_engine::{Clock, Engine, Program, ProgramOptions, run_pack_cases};
use fundwatch_kb::KnowledgeBase;
use fundwatch_rules::registry::{Kind, Planned, diff_packs};

use super::common;
use super::versions::{RegistryArgs, actor, load_pack_ref, print_activation};

/// Rule-pack subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Run every case of every rule; per-rule pass/fail and coverage.
    Test {
        /// Pack directory.
        pack: PathBuf,
        /// KB version: a directory, or an id in the registry (default: the
        /// shipped national KB).
        #[arg(long)]
        kb: Option<PathBuf>,
        /// Show only failing rules.
        #[arg(long)]
        failures: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Check the pack's format and compile every rule against the KB.
    Validate {
        /// Pack directory.
        pack: PathBuf,
        /// KB version: a directory, or an id in the registry (default: the
        /// shipped national KB).
        #[arg(long)]
        kb: Option<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Publish a pack directory into the registry as an immutable version
    /// `name@version` (content-hashed, with author, time and notes).
    Publish {
        /// Pack directory.
        pack: PathBuf,
        /// Author (default $USER).
        #[arg(long)]
        author: Option<String>,
        /// Release notes.
        #[arg(long, default_value = "")]
        notes: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// List published packs, what is active and in shadow, and recent activations.
    List {
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Make a published pack active: compiled against every KB version in force,
    /// all its cases checked against the newest, then logged. A running `serve`
    /// swaps to it without dropping a request.
    Activate {
        /// Pack id (`name@version`).
        version: String,
        /// Who activates (default $USER).
        #[arg(long)]
        actor: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Return to the pack in force before the last pack activation.
    Rollback {
        /// Who rolls back (default $USER).
        #[arg(long)]
        actor: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Compare two packs (published ids, `default`, or directories): rules added,
    /// removed and changed, manifest and parameter changes.
    Diff {
        /// Older pack.
        a: String,
        /// Newer pack.
        b: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Evaluate a published pack in shadow mode beside the active one (alerts
    /// measured and compared, never sent).
    Shadow {
        /// Pack id (`name@version`).
        version: String,
        /// Who starts it (default $USER).
        #[arg(long)]
        actor: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Make the shadow candidate the active pack.
    Promote {
        /// Who promotes (default $USER).
        #[arg(long)]
        actor: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Stop the shadow candidate.
    Discard {
        /// Who discards (default $USER).
        #[arg(long)]
        actor: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// The activation log (who, when, what, from → to).
    Log {
        /// Latest entries to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

/// Runs a `rules` subcommand.
pub fn run(cmd: RulesCommand) -> anyhow::Result<ExitCode> {
    common::runtime()?.block_on(async move {
        match cmd {
            RulesCommand::Validate { pack, kb, registry } => {
                let kb = resolve_kb(kb.as_deref(), &registry)?;
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
            RulesCommand::Test {
                pack,
                kb,
                failures,
                registry,
            } => {
                let kb = resolve_kb(kb.as_deref(), &registry)?;
                let pack = common::load_pack(Some(&pack))?;
                let program = Program::compile(pack, kb, &ProgramOptions::default()).await?;
                let engine = Engine::new(Arc::new(program), Clock::EventTime);
                test(&engine, failures).await
            }
            RulesCommand::Publish {
                pack,
                author,
                notes,
                registry,
            } => {
                let reg = registry.open();
                let (record, new) = reg
                    .packs()
                    .publish(&pack, &actor(author), &notes)
                    .with_context(|| format!("publishing {}", pack.display()))?;
                println!(
                    "{} {} (sha256 {}…, {} rules, {} cases) by {} at {} in {}",
                    if new { "published" } else { "unchanged" },
                    record.id,
                    &record.content_hash[..12.min(record.content_hash.len())],
                    record.rules,
                    record.cases,
                    record.author,
                    record.published_at.format("%Y-%m-%d %H:%M:%S"),
                    reg.packs().path_of(&record.id).display()
                );
                Ok(ExitCode::SUCCESS)
            }
            RulesCommand::List { registry } => list(&registry),
            RulesCommand::Activate {
                version,
                actor: who,
                registry,
            } => {
                let planned = registry.open().plan_activate_pack(&version)?;
                activate(&registry, planned, who).await
            }
            RulesCommand::Rollback {
                actor: who,
                registry,
            } => {
                let planned = registry.open().plan_rollback(Kind::Pack)?;
                activate(&registry, planned, who).await
            }
            RulesCommand::Shadow {
                version,
                actor: who,
                registry,
            } => {
                let planned = registry.open().plan_shadow(&version)?;
                activate(&registry, planned, who).await
            }
            RulesCommand::Promote {
                actor: who,
                registry,
            } => {
                let planned = registry.open().plan_promote()?;
                activate(&registry, planned, who).await
            }
            RulesCommand::Discard {
                actor: who,
                registry,
            } => {
                let planned = registry.open().plan_discard()?;
                activate(&registry, planned, who).await
            }
            RulesCommand::Diff { a, b, registry } => {
                let builder = registry.builder();
                let (pa, pb) = (load_pack_ref(&builder, &a)?, load_pack_ref(&builder, &b)?);
                print_pack_diff(&diff_packs(&pa, &pb));
                Ok(ExitCode::SUCCESS)
            }
            RulesCommand::Log { limit, registry } => {
                let log = registry.open().log()?;
                for a in log.iter().skip(log.len().saturating_sub(limit)) {
                    println!(
                        "{:>4} {} {:<10} {:<14} {:<28} pack {} → {}; KB [{}] → [{}]{}",
                        a.seq,
                        a.time.format("%Y-%m-%d %H:%M:%S"),
                        a.actor,
                        format!("{:?}", a.action),
                        a.target,
                        a.from.pack.as_deref().unwrap_or("default"),
                        a.to.pack.as_deref().unwrap_or("default"),
                        a.from.kb.join(","),
                        a.to.kb.join(","),
                        if a.notes.is_empty() {
                            String::new()
                        } else {
                            format!("\n       {}", a.notes)
                        }
                    );
                }
                if log.is_empty() {
                    eprintln!(
                        "(no activations yet: the shipped pack and national KB are in force)"
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// `--kb`: a version directory, an id in the registry, or (absent) the shipped KB.
fn resolve_kb(kb: Option<&Path>, registry: &RegistryArgs) -> anyhow::Result<Arc<KnowledgeBase>> {
    match kb {
        Some(path) if !path.is_dir() => {
            let id = path.to_string_lossy();
            registry.builder().kb(&id).with_context(|| {
                format!("--kb {id} is neither a directory nor a version in the registry")
            })
        }
        other => common::load_kb(other),
    }
}

async fn activate(
    registry: &RegistryArgs,
    planned: Planned,
    who: Option<String>,
) -> anyhow::Result<ExitCode> {
    let report = registry.builder().activate(planned, &actor(who)).await?;
    print_activation(&report);
    Ok(ExitCode::SUCCESS)
}

fn list(registry: &RegistryArgs) -> anyhow::Result<ExitCode> {
    let reg = registry.open();
    let state = reg.state()?;
    let records = reg.packs().list()?;
    let active = state.pack.as_deref();
    println!(
        "  {:<28} {:<14} {:<20} {:>5} {:>6}  notes",
        "pack", "sha256", "published", "rules", "cases"
    );
    if active.is_none() {
        println!(
            "* {:<28} (shipped: {})",
            "default",
            common::default_pack_dir().display()
        );
    }
    for r in &records {
        let mark = if Some(r.id.as_str()) == active {
            "*"
        } else if state.shadow.as_deref() == Some(r.id.as_str()) {
            "S"
        } else {
            " "
        };
        println!(
            "{mark} {:<28} {:<14} {:<20} {:>5} {:>6}  {} ({})",
            r.id,
            &r.content_hash[..12.min(r.content_hash.len())],
            r.published_at.format("%Y-%m-%d %H:%M:%S"),
            r.rules,
            r.cases,
            r.notes,
            r.author
        );
    }
    println!(
        "\nKB timeline: {}",
        if state.kb.is_empty() {
            "national (shipped)".to_string()
        } else {
            state.kb.join(" → ")
        }
    );
    eprintln!("(* = active, S = shadow; `rules log` shows every activation)");
    Ok(ExitCode::SUCCESS)
}

fn print_pack_diff(d: &fundwatch_rules::registry::PackDiff) {
    println!(
        "{} → {}: {} rules added, {} removed, {} changed{}",
        d.a,
        d.b,
        d.added.len(),
        d.removed.len(),
        d.changed.len(),
        if d.manifest.is_empty() {
            String::new()
        } else {
            format!("; manifest: {}", d.manifest.join(", "))
        }
    );
    for id in &d.added {
        println!("  + {id}");
    }
    for id in &d.removed {
        println!("  - {id}");
    }
    for (id, fields) in &d.changed {
        println!("  ~ {id} [{}]", fields.join(", "));
    }
    for (name, (a, b)) in &d.parameters {
        let show = |v: &Option<f64>| v.map_or("-".to_string(), |x| x.to_string());
        println!("  parameter {name}: {} → {}", show(a), show(b));
    }
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
