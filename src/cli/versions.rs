//! The version registry as the `kb`, `rules`, `backtest` and `serve` commands
//! reach it (docs/registry.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use fundwatch_connectors::http::config::EngineConfig;
use fundwatch_engine::deploy::{ActivationReport, Builder};
use fundwatch_engine::{Clock, Engine, VersionManager};
use fundwatch_rules::Registry;
use fundwatch_rules::registry::default_registry_dir;

use super::common;

/// `--registry DIR`.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Version registry (default $FUNDWATCH_REGISTRY, else var/registry).
    #[arg(long, value_name = "DIR")]
    pub registry: Option<PathBuf>,
}

impl RegistryArgs {
    /// The registry these arguments name.
    pub fn open(&self) -> Registry {
        Registry::open(self.registry.clone().unwrap_or_else(default_registry_dir))
    }

    /// A builder (loader + compiler) over the registry with the shipped pack as
    /// the default.
    pub fn builder(&self) -> Builder {
        Builder::new(self.open(), &common::default_pack_dir())
    }
}

/// Who acts: `--actor`, else `$USER`, else `cli`.
pub fn actor(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "cli".to_string())
}

/// Prints an activation's outcome.
pub fn print_activation(report: &ActivationReport) {
    let a = &report.activation;
    println!(
        "activation {} by {}: {:?} {}",
        a.seq, a.actor, a.action, a.target
    );
    println!(
        "  pack {} → {}; KB timeline [{}] → [{}]; shadow {} → {}",
        a.from.pack.as_deref().unwrap_or("default"),
        a.to.pack.as_deref().unwrap_or("default"),
        a.from.kb.join(", "),
        a.to.kb.join(", "),
        a.from.shadow.as_deref().unwrap_or("-"),
        a.to.shadow.as_deref().unwrap_or("-"),
    );
    if let Some(v) = &report.validation {
        println!(
            "  validated {} × {}: {} rules compiled in {} ms, {}/{} cases passed in {} ms{}",
            v.pack,
            v.kb,
            v.rules,
            v.compile_ms,
            v.passed,
            v.cases,
            v.cases_ms,
            if v.dormant.is_empty() {
                String::new()
            } else {
                format!(
                    "; dormant (KB lacks their classes): {}",
                    v.dormant.join(", ")
                )
            }
        );
    }
    eprintln!("(a running `fundwatch serve` on this registry follows within its poll interval)");
}

/// A pack named on the command line: a published id, `default`/`shipped`, or a
/// pack directory (which is loaded as is, unpublished).
pub fn load_pack_ref(
    builder: &Builder,
    name: &str,
) -> anyhow::Result<Arc<fundwatch_rules::RulePack>> {
    if name == "default" || name == "shipped" {
        return builder.pack(None).context("loading the shipped pack");
    }
    let path = Path::new(name);
    if path.join("pack.toml").is_file() {
        return common::load_pack(Some(path));
    }
    builder
        .pack(Some(name))
        .with_context(|| format!("loading pack {name}"))
}

/// Where a long-running command's versions come from (`[engine]` of its config).
#[derive(Debug, Clone, Copy)]
pub struct EngineSource<'a> {
    /// Fixed KB version directory.
    pub kb: Option<&'a Path>,
    /// Fixed pack directory.
    pub rules: Option<&'a Path>,
    /// The registry (default `$FUNDWATCH_REGISTRY`, else `var/registry`).
    pub registry: Option<&'a Path>,
}

impl<'a> From<&'a EngineConfig> for EngineSource<'a> {
    fn from(c: &'a EngineConfig) -> Self {
        Self {
            kb: c.kb.as_deref(),
            rules: c.rules.as_deref(),
            registry: c.registry.as_deref(),
        }
    }
}

/// The engine a long-running command serves with: fixed versions when the
/// config names a KB or a pack directory, else the registry's active versions
/// with a [`VersionManager`] to change them while running.
pub async fn serving_engine(
    source: impl Into<EngineSource<'_>>,
    clock: Clock,
) -> anyhow::Result<(Engine, Option<Arc<VersionManager>>)> {
    let source = source.into();
    if source.kb.is_some() || source.rules.is_some() {
        let engine = common::load_engine(source.kb, source.rules, clock).await?;
        return Ok((engine, None));
    }
    let dir = source
        .registry
        .map(Path::to_path_buf)
        .unwrap_or_else(default_registry_dir);
    let manager = VersionManager::start(
        Registry::open(&dir),
        &common::default_pack_dir(),
        clock,
        None,
    )
    .await
    .with_context(|| {
        format!(
            "deploying the active versions of the registry {}",
            dir.display()
        )
    })?;
    let engine = manager.engine().clone();
    Ok((engine, Some(Arc::new(manager))))
}

/// The registry poll interval (`engine.registry_poll_ms`, default 2 s).
pub fn poll_interval(ms: Option<u64>) -> Duration {
    Duration::from_millis(ms.unwrap_or(2000).max(100))
}
