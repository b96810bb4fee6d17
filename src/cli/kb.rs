//! `fundwatch kb …`: import national batches into immutable KB versions, list,
//! show, diff, activate and roll them back. Versions live in the registry's
//! `kb/` (`--registry`, default `$FUNDWATCH_REGISTRY` or `var/registry`; `--root`
//! or `$FUNDWATCH_KB_ROOT` name another store); the version shipped in the binary
//! is `national`. See docs/registry.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use fundwatch_kb::{ImportOptions, KbStore, KnowledgeBase, Manifest, NATIONAL, NaiveDate};
use fundwatch_rules::registry::Kind;

use super::common;
use super::versions::{RegistryArgs, actor, print_activation};

/// Knowledge-base subcommands.
#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// Import national batch files into a new KB version. Without FILES: the full
    /// national set under --data; with FILES: those xlsx/json/ICD files added on
    /// top of --base.
    Import {
        /// National data directory (nhsa-batches/, icd-chs/).
        #[arg(long, default_value = "../shared/data")]
        data: PathBuf,
        /// KB store (default: the registry's kb/, or $FUNDWATCH_KB_ROOT).
        #[arg(long)]
        root: Option<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Version to build on (`national` or an id under --root).
        #[arg(long)]
        base: Option<String>,
        /// In-force date for the imported points, instead of the batches'
        /// publication dates (YYYY-MM-DD).
        #[arg(long, value_parser = parse_date)]
        effective_from: Option<NaiveDate>,
        /// Author recorded in the manifest (default $USER).
        #[arg(long)]
        author: Option<String>,
        /// Notes recorded in the manifest.
        #[arg(long)]
        notes: Option<String>,
        /// Batch files (batchNN-*.xlsx, batch_NN.json, updates_*.json, ZD_INFO.dat, SS_INFO.dat).
        files: Vec<PathBuf>,
    },
    /// List the stored KB versions (and the shipped `national`).
    List {
        /// KB store (default: the registry's kb/, or $FUNDWATCH_KB_ROOT).
        #[arg(long)]
        root: Option<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Show a version's manifest: sources, counts per rule class.
    Show {
        /// Version id, or `national`.
        version: String,
        /// KB store (default: the registry's kb/, or $FUNDWATCH_KB_ROOT).
        #[arg(long)]
        root: Option<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Compare two versions: points added, removed and changed (by kp_id).
    Diff {
        /// Older version (id or `national`).
        a: String,
        /// Newer version (id or `national`).
        b: String,
        /// KB store (default: the registry's kb/, or $FUNDWATCH_KB_ROOT).
        #[arg(long)]
        root: Option<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Detail lines to print per section.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Put a version into force from its effective-from date: compiled with the
    /// active pack, every case checked against it, then logged in the registry.
    /// Versions of earlier dates stay for back-dated events; later ones leave.
    Activate {
        /// Version id (or `national`).
        version: String,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Who activates (default $USER).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Return the KB timeline to what it was before the last KB activation.
    Rollback {
        #[command(flatten)]
        registry: RegistryArgs,
        /// Who rolls back (default $USER).
        #[arg(long)]
        actor: Option<String>,
    },
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    fundwatch_kb::parse_date(s).map_err(|e| e.to_string())
}

/// `--root`, else `$FUNDWATCH_KB_ROOT`, else the registry's `kb/`.
fn store(root: Option<PathBuf>, registry: &RegistryArgs) -> KbStore {
    match root.or_else(|| {
        std::env::var_os(fundwatch_kb::ROOT_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }) {
        Some(root) => KbStore::new(root),
        None => registry.open().kb(),
    }
}

/// Runs a `kb` subcommand.
pub fn run(cmd: KbCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KbCommand::Import {
            data,
            root,
            registry,
            base,
            effective_from,
            author,
            notes,
            files,
        } => import(
            data,
            store(root, &registry),
            base,
            effective_from,
            author,
            notes,
            files,
        ),
        KbCommand::List { root, registry } => list(&store(root, &registry), &registry),
        KbCommand::Show {
            version,
            root,
            registry,
        } => show(&store(root, &registry), &version),
        KbCommand::Diff {
            a,
            b,
            root,
            registry,
            limit,
        } => diff(&store(root, &registry), &a, &b, limit),
        KbCommand::Activate {
            version,
            registry,
            actor: who,
        } => common::runtime()?.block_on(async move {
            let builder = registry.builder();
            let planned = builder.registry().plan_activate_kb(&version)?;
            let report = builder.activate(planned, &actor(who)).await?;
            print_activation(&report);
            Ok(ExitCode::SUCCESS)
        }),
        KbCommand::Rollback {
            registry,
            actor: who,
        } => common::runtime()?.block_on(async move {
            let builder = registry.builder();
            let planned = builder.registry().plan_rollback(Kind::Kb)?;
            let report = builder.activate(planned, &actor(who)).await?;
            print_activation(&report);
            Ok(ExitCode::SUCCESS)
        }),
    }
}

fn import(
    data: PathBuf,
    store: KbStore,
    base: Option<String>,
    effective_from: Option<NaiveDate>,
    author: Option<String>,
    notes: Option<String>,
    files: Vec<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let options = ImportOptions {
        effective_from,
        author: author.or_else(|| std::env::var("USER").ok()),
        notes,
        created_at: None,
        progress: Some(Arc::new(|line: &str| eprintln!("[kb] {line}"))),
    };
    let base_kb = match &base {
        Some(id) => Some(
            store
                .load(id)
                .with_context(|| format!("while loading the base version {id}"))?,
        ),
        None => None,
    };
    let kb = if files.is_empty() {
        if base_kb.is_some() {
            anyhow::bail!(
                "--base needs FILES to add; without FILES the full national set is imported from --data"
            );
        }
        eprintln!("[kb] importing the national set from {}", data.display());
        fundwatch_kb::import_national(&data, &options)
            .with_context(|| format!("while importing the national set from {}", data.display()))?
    } else {
        fundwatch_kb::import_files(base_kb.as_ref(), &files, &options).context("while importing")?
    };
    let existed = store.path_of(kb.id()).exists();
    let dir = store.save(&kb)?;
    let m = kb.manifest();
    println!(
        "{} {} ({} points, {} rule classes, effective from {}) at {}",
        if existed { "unchanged" } else { "saved" },
        m.id,
        m.counts.points,
        m.counts.by_rule_class.len(),
        m.effective_from,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn list(store: &KbStore, registry: &RegistryArgs) -> anyhow::Result<ExitCode> {
    let state = registry.open().state().unwrap_or_default();
    let timeline: Vec<String> = if state.kb.is_empty() {
        vec![NATIONAL.to_string()]
    } else {
        state.kb.clone()
    };
    let mut rows: Vec<(String, Manifest)> = Vec::new();
    match fundwatch_kb::national() {
        Ok(kb) => rows.push((NATIONAL.to_string(), kb.manifest().clone())),
        Err(e) => eprintln!("warning: the shipped national version cannot be loaded: {e}"),
    }
    for m in store.list()? {
        rows.push((m.id.clone(), m));
    }
    println!(
        "  {:<24} {:<24} {:>10} {:>7} {:>7}  {:<20} notes",
        "version", "id", "effective", "points", "classes", "created"
    );
    for (name, m) in &rows {
        let active = timeline.iter().any(|t| t == name);
        println!(
            "{} {:<24} {:<24} {:>10} {:>7} {:>7}  {:<20} {}",
            if active { "*" } else { " " },
            name,
            m.id,
            m.effective_from.to_string(),
            m.counts.points,
            m.counts.by_rule_class.len(),
            m.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            m.notes
        );
    }
    eprintln!("(* = in the active KB timeline; `kb activate <id>` changes it)");
    if rows.len() == 1 {
        eprintln!(
            "(no versions under {}; `fundwatch kb import` makes one)",
            store.root.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show(store: &KbStore, version: &str) -> anyhow::Result<ExitCode> {
    let m = store.show(version)?;
    println!("id             {}", m.id);
    println!("content hash   {}", m.content_hash);
    println!("effective from {}", m.effective_from);
    println!("created        {} by {}", m.created_at, m.author);
    if let Some(base) = &m.base {
        println!("base           {base}");
    }
    if !m.notes.is_empty() {
        println!("notes          {}", m.notes);
    }
    println!(
        "counts         {} points, {} code links, ICD-10 {}, ICD-9-CM-3 {}{}",
        m.counts.points,
        m.counts.code_links,
        m.counts.icd10,
        m.counts.icd9,
        if m.counts.unresolved_supersedes > 0 {
            format!(
                ", {} unresolved supersede links",
                m.counts.unresolved_supersedes
            )
        } else {
            String::new()
        }
    );
    println!("\nsources:");
    println!(
        "  {:<40} {:<16} {:>10} {:>6} {:>7}  rule classes (points)",
        "file", "batch", "published", "rows", "skipped"
    );
    for s in &m.sources {
        let classes: Vec<String> = s
            .rule_classes
            .iter()
            .map(|(c, n)| format!("{c} {}", n.points))
            .collect();
        println!(
            "  {:<40} {:<16} {:>10} {:>6} {:>7}  {}",
            s.file,
            s.batch.as_deref().unwrap_or(&s.kind),
            s.published_at.map(|d| d.to_string()).unwrap_or_default(),
            s.rows,
            s.skipped_rows,
            classes.join(", ")
        );
    }
    println!("\nrule classes:");
    println!(
        "  {:<28} {:>6} {:>6} {:>10} {:>9} {:>8} {:>8} {:>8}",
        "class", "points", "codes", "superseded", "condition", "dx", "evidence", "decided"
    );
    for (class, c) in &m.counts.by_rule_class {
        println!(
            "  {:<28} {:>6} {:>6} {:>10} {:>9} {:>8} {:>8} {:>8}",
            class,
            c.points,
            c.codes,
            c.superseded,
            c.with_condition,
            c.dx_decidable,
            c.needs_evidence,
            c.fully_decidable
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn diff(store: &KbStore, a: &str, b: &str, limit: usize) -> anyhow::Result<ExitCode> {
    let load = |id: &str| -> anyhow::Result<KnowledgeBase> {
        store
            .load(id)
            .with_context(|| format!("while loading {id}"))
    };
    let (ka, kb) = (load(a)?, load(b)?);
    let d = fundwatch_kb::diff(&ka, &kb);
    println!(
        "{} → {}: {} added, {} removed, {} changed; ICD-10 +{} −{}, ICD-9 +{} −{}",
        d.a,
        d.b,
        d.added.len(),
        d.removed.len(),
        d.changed.len(),
        d.icd10_added,
        d.icd10_removed,
        d.icd9_added,
        d.icd9_removed
    );
    if d.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "\n  {:<28} {:>6} {:>8} {:>8}",
        "rule class", "added", "removed", "changed"
    );
    for (class, (added, removed, changed)) in d.by_rule_class() {
        println!("  {class:<28} {added:>6} {removed:>8} {changed:>8}");
    }
    for (title, list) in [
        ("added", &d.added),
        ("removed", &d.removed),
        ("changed", &d.changed),
    ] {
        if list.is_empty() {
            continue;
        }
        println!("\n{title}:");
        for c in list.iter().take(limit) {
            let fields = if c.fields.is_empty() {
                String::new()
            } else {
                format!("  [{}]", c.fields.join(", "))
            };
            println!("  {} {} {}{}", c.kp_id, c.rule_class, c.item_name, fields);
        }
        if list.len() > limit {
            println!("  … {} more (--limit)", list.len() - limit);
        }
    }
    Ok(ExitCode::SUCCESS)
}
