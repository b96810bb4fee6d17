//! Loading what every evaluating command needs: a KB version and a rule pack,
//! compiled into an [`Engine`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use fundwatch_engine::{Clock, Engine, Program, ProgramOptions};
use fundwatch_kb::KnowledgeBase;
use fundwatch_rules::RulePack;

/// The national pack shipped in this repository.
pub fn default_pack_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("FUNDWATCH_RULES") {
        return PathBuf::from(dir);
    }
    let local = PathBuf::from("rule-base/packs/national");
    if local.join("pack.toml").exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rule-base/packs/national")
}

/// Loads the KB: `--kb DIR` (a version directory), else the shipped national KB.
pub fn load_kb(kb: Option<&Path>) -> anyhow::Result<Arc<KnowledgeBase>> {
    let kb = match kb {
        Some(dir) => {
            // A version directory is `<root>/<version id>/`.
            let id = dir
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("--kb {} is not a KB version directory", dir.display()))?;
            let root = dir.parent().unwrap_or(Path::new("."));
            fundwatch_kb::KbStore::new(root)
                .load(id)
                .with_context(|| format!("loading the KB version in {}", dir.display()))?
        }
        None => fundwatch_kb::national().context("loading the shipped national KB")?,
    };
    Ok(Arc::new(kb))
}

/// Loads a rule pack directory (default: the national pack).
pub fn load_pack(rules: Option<&Path>) -> anyhow::Result<Arc<RulePack>> {
    let dir = rules
        .map(Path::to_path_buf)
        .unwrap_or_else(default_pack_dir);
    let pack = RulePack::load(&dir)
        .with_context(|| format!("loading the rule pack in {}", dir.display()))?;
    Ok(Arc::new(pack))
}

/// KB + pack compiled into an engine.
pub async fn load_engine(
    kb: Option<&Path>,
    rules: Option<&Path>,
    clock: Clock,
) -> anyhow::Result<Engine> {
    let kb = load_kb(kb)?;
    let pack = load_pack(rules)?;
    let program = Program::compile(pack, kb, &ProgramOptions::default()).await?;
    Ok(Engine::new(Arc::new(program), clock))
}

/// Loads the person-status file (registered deaths, docs/history.md § 8) into the
/// person-status table of `engine` (shared by its clones); `None` leaves it empty.
pub fn load_person_status(engine: &Engine, path: Option<&Path>) -> anyhow::Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let statuses = fundwatch_engine::history::PersonStatuses::load_csv(path)?;
    tracing::info!(path = %path.display(), persons = statuses.len(), "person status loaded");
    engine
        .history()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .set_person_statuses(statuses);
    Ok(())
}

/// A tokio runtime for the command line.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
