//! [`VersionManager`]: activation, rollback and shadow mode over a registry, for
//! a running engine.
//!
//! Every change goes the same way, whoever asks (admin HTTP endpoint, CLI, or a
//! registry change another process made): plan the new state in the registry →
//! load and compile every program it needs (pack × each KB version of the
//! timeline, and the shadow candidate's) → run every case of the pack being
//! activated against the target KB version — all off the hot path, while the
//! old deployment keeps serving → log the activation → swap. A failure at any
//! step leaves the old deployment and the registry untouched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use fundwatch_kb::{KbError, KnowledgeBase, NATIONAL, date_to_days};
use fundwatch_rules::registry::{Action, Activation, ActiveState, Kind, Planned};
use fundwatch_rules::{Registry, RegistryError, RulePack, RulesError};
use serde::Serialize;

use super::{Deployment, Shadow, Slot};
use crate::engine::{Clock, Engine};
use crate::eval::{EvalError, Program, ProgramOptions};
use crate::history::DurableHistory;
use crate::pack_test::run_pack_cases;

/// Why an activation did not happen; the old deployment stays in force.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The registry refused or could not be read.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A KB version could not be loaded (boxed: large and rare).
    #[error(transparent)]
    Kb(Box<KbError>),
    /// The shipped pack could not be loaded.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// A rule does not compile against a KB version of the timeline.
    #[error(transparent)]
    Compile(#[from] EvalError),
    /// Cases of the pack fail against the target KB version.
    #[error(
        "{pack} fails {failed} of {cases} cases against KB {kb}; not activated. First failures: {}",
        first.join("; ")
    )]
    Validation {
        /// The pack.
        pack: String,
        /// The KB version.
        kb: String,
        /// Cases run.
        cases: usize,
        /// Cases failed.
        failed: usize,
        /// `rule_id / case: why`, the first ten.
        first: Vec<String>,
    },
}

impl From<KbError> for DeployError {
    fn from(err: KbError) -> Self {
        DeployError::Kb(Box::new(err))
    }
}

/// What validating a pack against a KB version found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Validation {
    /// The pack.
    pub pack: String,
    /// The KB version.
    pub kb: String,
    /// Rules compiled.
    pub rules: usize,
    /// Rules left out because the KB lacks their classes (`rule_id: classes`).
    pub dormant: Vec<String>,
    /// Cases run.
    pub cases: usize,
    /// Cases passed.
    pub passed: usize,
    /// Milliseconds spent compiling every program of the new deployment.
    pub compile_ms: u64,
    /// Milliseconds spent running the cases.
    pub cases_ms: u64,
}

/// The outcome of an activation.
#[derive(Debug, Clone, Serialize)]
pub struct ActivationReport {
    /// The logged activation.
    pub activation: Activation,
    /// The validation that allowed it (absent for discard).
    pub validation: Option<Validation>,
}

/// One KB version of the deployed timeline.
#[derive(Debug, Clone, Serialize)]
pub struct SlotStatus {
    /// KB version id.
    pub kb: String,
    /// First service date it applies to.
    pub effective_from: String,
    /// Rules compiled.
    pub rules: usize,
    /// Rules dormant on it.
    pub dormant: Vec<String>,
}

/// What runs now.
#[derive(Debug, Clone, Serialize)]
pub struct ManagerStatus {
    /// The registry directory.
    pub registry: String,
    /// The registry's state.
    pub state: ActiveState,
    /// Activation the running deployment was built from.
    pub deployed_seq: u64,
    /// The active pack, `name@version`.
    pub pack: String,
    /// The KB timeline.
    pub kb: Vec<SlotStatus>,
    /// The shadow candidate, `name@version`.
    pub shadow: Option<String>,
}

/// Loads, compiles, validates and swaps the versions a registry names.
#[derive(Debug)]
pub struct VersionManager {
    builder: Builder,
    engine: Engine,
    /// One activation at a time in this process.
    gate: tokio::sync::Mutex<()>,
}

/// Loads versions from the registry and compiles programs, with caches so a
/// rollback or a KB activation recompiles only what is new.
#[derive(Debug)]
pub struct Builder {
    registry: Registry,
    default_pack: PathBuf,
    options: ProgramOptions,
    kbs: Mutex<HashMap<String, Arc<KnowledgeBase>>>,
    packs: Mutex<HashMap<String, Arc<RulePack>>>,
    programs: Mutex<HashMap<(String, String), Arc<Program>>>,
}

impl VersionManager {
    /// Builds the deployment the registry names (the shipped pack and national
    /// KB when it names none) and an engine over it. `history`: `None` for an
    /// in-memory history sized to the deployment's rules.
    pub async fn start(
        registry: Registry,
        default_pack: &Path,
        clock: Clock,
        history: Option<DurableHistory>,
    ) -> Result<Self, DeployError> {
        let builder = Builder::new(registry, default_pack);
        let state = builder.registry.state()?;
        let deployment = builder.build(&state, None).await?;
        let history = history.unwrap_or_else(|| {
            DurableHistory::in_memory(
                deployment
                    .slots()
                    .iter()
                    .map(|s| s.program.history_days())
                    .max()
                    .unwrap_or(0),
            )
        });
        Ok(Self {
            builder,
            engine: Engine::with_deployment(deployment, clock, history),
            gate: tokio::sync::Mutex::new(()),
        })
    }

    /// The engine (clone it for every front end: they share the deployment).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.builder.registry
    }

    /// The loader and compiler (to validate a version without activating it).
    pub fn builder(&self) -> &Builder {
        &self.builder
    }

    /// What runs now.
    pub fn status(&self) -> Result<ManagerStatus, DeployError> {
        let d = self.engine.deployment();
        Ok(ManagerStatus {
            registry: self.builder.registry.root.display().to_string(),
            state: self.builder.registry.state()?,
            deployed_seq: d.seq(),
            pack: d.latest().pack().version_label(),
            kb: d
                .slots()
                .iter()
                .map(|s| SlotStatus {
                    kb: s.program.kb().id().to_string(),
                    effective_from: s.program.kb().manifest().effective_from.to_string(),
                    rules: s.program.rules().len(),
                    dormant: s
                        .program
                        .dormant()
                        .iter()
                        .map(|r| r.rule_id.clone())
                        .collect(),
                })
                .collect(),
            shadow: d.shadow().map(|s| s.label()),
        })
    }

    /// Makes published pack `id` active.
    pub async fn activate_pack(
        &self,
        id: &str,
        actor: &str,
    ) -> Result<ActivationReport, DeployError> {
        let _gate = self.gate.lock().await;
        let planned = self.builder.registry.plan_activate_pack(id)?;
        self.apply(planned, actor).await
    }

    /// Puts KB version `id` into the timeline (see `Registry::plan_activate_kb`).
    pub async fn activate_kb(
        &self,
        id: &str,
        actor: &str,
    ) -> Result<ActivationReport, DeployError> {
        let _gate = self.gate.lock().await;
        let planned = self.builder.registry.plan_activate_kb(id)?;
        self.apply(planned, actor).await
    }

    /// Returns the pack or the KB timeline to the previous activation's.
    pub async fn rollback(&self, kind: Kind, actor: &str) -> Result<ActivationReport, DeployError> {
        let _gate = self.gate.lock().await;
        let planned = self.builder.registry.plan_rollback(kind)?;
        self.apply(planned, actor).await
    }

    /// Runs published pack `id` in shadow mode.
    pub async fn shadow(&self, id: &str, actor: &str) -> Result<ActivationReport, DeployError> {
        let _gate = self.gate.lock().await;
        let planned = self.builder.registry.plan_shadow(id)?;
        self.apply(planned, actor).await
    }

    /// Makes the shadow candidate active.
    pub async fn promote(&self, actor: &str) -> Result<ActivationReport, DeployError> {
        let _gate = self.gate.lock().await;
        let planned = self.builder.registry.plan_promote()?;
        self.apply(planned, actor).await
    }

    /// Drops the shadow candidate.
    pub async fn discard(&self, actor: &str) -> Result<ActivationReport, DeployError> {
        let _gate = self.gate.lock().await;
        let planned = self.builder.registry.plan_discard()?;
        self.apply(planned, actor).await
    }

    /// Follows the registry when another process (the CLI) activated something:
    /// builds and swaps in its state. Returns whether anything changed. The
    /// activating process already ran the cases; this one compiles only.
    pub async fn reload(&self) -> Result<bool, DeployError> {
        let _gate = self.gate.lock().await;
        let state = self.builder.registry.state()?;
        let current = self.engine.deployment();
        if state.seq == current.seq() {
            return Ok(false);
        }
        let deployment = self.builder.build(&state, Some(&current)).await?;
        self.engine.swap(Arc::new(deployment));
        tracing::info!(seq = state.seq, "deployment reloaded from the registry");
        Ok(true)
    }

    /// Follows activations made by other processes (`fundwatch rules activate`
    /// on the same registry): every `interval` the registry's state is compared
    /// with the running deployment (a small file read) and, when it moved, built
    /// and swapped in — on a thread of its own, so neither the caller's runtime
    /// nor live traffic waits for the compiler. `on_change` runs after a swap.
    pub fn follow(
        self: &Arc<Self>,
        interval: std::time::Duration,
        on_change: impl Fn() + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match this.registry().state() {
                    Ok(s) if s.seq == this.engine.deployment().seq() => continue,
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot read the registry state");
                        continue;
                    }
                }
                let manager = Arc::clone(&this);
                let (tx, rx) = tokio::sync::oneshot::channel();
                let spawned = std::thread::Builder::new()
                    .name("fundwatch-reload".into())
                    .spawn(move || {
                        let outcome = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .map_err(|e| e.to_string())
                            .and_then(|rt| {
                                rt.block_on(manager.reload()).map_err(|e| e.to_string())
                            });
                        let _ = tx.send(outcome);
                    });
                if let Err(err) = spawned {
                    tracing::error!(error = %err, "cannot start the reload thread");
                    continue;
                }
                match rx.await {
                    Ok(Ok(true)) => on_change(),
                    Ok(Ok(false)) => {}
                    Ok(Err(err)) => tracing::error!(
                        error = %err,
                        "the registry's state cannot be deployed; the running versions stay"
                    ),
                    Err(_) => tracing::error!("the reload thread stopped without an answer"),
                }
            }
        })
    }

    /// Plans are applied under the gate: build (compile), validate, commit, swap.
    async fn apply(&self, planned: Planned, actor: &str) -> Result<ActivationReport, DeployError> {
        let current = self.engine.deployment();
        let (mut next, validation, notes) = self.builder.prepare(&planned, Some(&current)).await?;
        let activation = self.builder.registry.commit(planned, actor, &notes)?;
        next.seq = activation.seq;
        let old = self.engine.swap(Arc::new(next));
        tracing::info!(
            seq = activation.seq,
            action = ?activation.action,
            target = %activation.target,
            actor,
            "activated"
        );
        // The old deployment is freed when the last batch holding it finishes.
        drop(old);
        self.builder.prune_caches();
        Ok(ActivationReport {
            activation,
            validation,
        })
    }
}

impl Builder {
    /// Activates without a running engine (the CLI): prepare, then commit. A
    /// running `serve` follows through [`VersionManager::reload`].
    pub async fn activate(
        &self,
        planned: Planned,
        actor: &str,
    ) -> Result<ActivationReport, DeployError> {
        let (_, validation, notes) = self.prepare(&planned, None).await?;
        let activation = self.registry.commit(planned, actor, &notes)?;
        Ok(ActivationReport {
            activation,
            validation,
        })
    }

    /// Builds the deployment `planned` leads to and validates it: every case of
    /// the pack being activated (the shadow candidate for `Shadow`) against the
    /// newest KB version of the timeline — what new services are judged by.
    /// Returns the deployment, the validation and a one-line summary for the log.
    pub async fn prepare(
        &self,
        planned: &Planned,
        current: Option<&Deployment>,
    ) -> Result<(Deployment, Option<Validation>, String), DeployError> {
        let started = Instant::now();
        let next = self.build(&planned.to, current).await?;
        let compile_ms = started.elapsed().as_millis() as u64;
        let validation = match planned.action {
            Action::Discard => None,
            Action::Shadow => {
                let shadow = next
                    .shadow()
                    .and_then(|s| s.programs().last().cloned())
                    .ok_or_else(|| {
                        RegistryError::Refused("the shadow candidate did not build".into())
                    })?;
                Some(self.validate(&shadow, compile_ms).await?)
            }
            _ => Some(self.validate(next.latest(), compile_ms).await?),
        };
        let notes = validation
            .as_ref()
            .map(|v| {
                format!(
                    "{} × {}: {} rules, {}/{} cases passed{}",
                    v.pack,
                    v.kb,
                    v.rules,
                    v.passed,
                    v.cases,
                    if v.dormant.is_empty() {
                        String::new()
                    } else {
                        format!(", dormant: {}", v.dormant.join(", "))
                    }
                )
            })
            .unwrap_or_default();
        Ok((next, validation, notes))
    }

    /// Imports national batch files (xlsx as published, JSON, ICD lists) into a
    /// new KB version of the registry, on top of `base` (a registry id or
    /// `national`). Blocking (seconds): call it off the async threads.
    pub fn import_kb(
        &self,
        base: Option<&str>,
        files: &[PathBuf],
        options: &fundwatch_kb::ImportOptions,
    ) -> Result<(fundwatch_kb::Manifest, bool), DeployError> {
        let store = self.registry.kb();
        let base = match base {
            Some(id) => Some(self.kb(id)?),
            None => None,
        };
        let kb = fundwatch_kb::import_files(base.as_deref(), files, options)?;
        let existed = store.path_of(kb.id()).exists();
        store.save(&kb)?;
        Ok((kb.manifest().clone(), !existed))
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A builder over `registry`; `default_pack` is the shipped pack's directory.
    pub fn new(registry: Registry, default_pack: &Path) -> Self {
        Self {
            registry,
            default_pack: default_pack.to_path_buf(),
            options: ProgramOptions::default(),
            kbs: Mutex::new(HashMap::new()),
            packs: Mutex::new(HashMap::new()),
            programs: Mutex::new(HashMap::new()),
        }
    }

    /// Runs every case of `program`'s pack against its KB version on an engine
    /// of its own (fresh history, event-time clock).
    pub async fn validate(
        &self,
        program: &Arc<Program>,
        compile_ms: u64,
    ) -> Result<Validation, DeployError> {
        let started = Instant::now();
        let engine = Engine::new(Arc::clone(program), Clock::EventTime);
        let results = run_pack_cases(&engine).await;
        let cases: usize = results.iter().map(|r| r.cases.len()).sum();
        let failures: Vec<String> = results
            .iter()
            .flat_map(|r| {
                r.cases
                    .iter()
                    .filter(|c| !c.passed)
                    .map(move |c| format!("{} / {}: {}", r.rule_id, c.name, c.message))
            })
            .collect();
        let pack = program.pack().version_label();
        let kb = program.kb().id().to_string();
        if !failures.is_empty() {
            return Err(DeployError::Validation {
                pack,
                kb,
                cases,
                failed: failures.len(),
                first: failures.into_iter().take(10).collect(),
            });
        }
        Ok(Validation {
            pack,
            kb,
            rules: program.rules().len(),
            dormant: program
                .dormant()
                .iter()
                .map(|r| format!("{} ({})", r.rule_id, r.missing_classes.join(", ")))
                .collect(),
            cases,
            passed: cases,
            compile_ms,
            cases_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Compiles the deployment `state` names. `current`: the running one, whose
    /// shadow measurements carry over when the same candidate stays.
    pub async fn build(
        &self,
        state: &ActiveState,
        current: Option<&Deployment>,
    ) -> Result<Deployment, DeployError> {
        let pack = self.pack(state.pack.as_deref())?;
        let kbs = self.timeline(&state.kb)?;
        let mut slots = Vec::with_capacity(kbs.len());
        for kb in &kbs {
            slots.push(Slot {
                from_day: date_to_days(kb.manifest().effective_from),
                program: self.program(&pack, kb).await?,
            });
        }
        let shadow = match &state.shadow {
            None => None,
            Some(id) => {
                let candidate = self.pack(Some(id))?;
                let mut programs = Vec::with_capacity(kbs.len());
                for kb in &kbs {
                    programs.push(self.program(&candidate, kb).await?);
                }
                let carried = current
                    .and_then(|d| d.shadow())
                    .filter(|s| s.label() == candidate.version_label())
                    .map(|s| s.report_handle());
                Some(Arc::new(Shadow::new(
                    programs,
                    &pack.version_label(),
                    carried,
                )))
            }
        };
        Deployment::new(slots, shadow, state.seq).ok_or_else(|| {
            DeployError::Registry(RegistryError::Refused("the KB timeline is empty".into()))
        })
    }

    /// The KB versions `ids` names (empty: the shipped national KB), by
    /// `effective_from` — the slot order of a deployment.
    pub fn timeline(&self, ids: &[String]) -> Result<Vec<Arc<KnowledgeBase>>, DeployError> {
        let mut kbs = Vec::with_capacity(ids.len().max(1));
        if ids.is_empty() {
            kbs.push(self.kb(NATIONAL)?);
        }
        for id in ids {
            kbs.push(self.kb(id)?);
        }
        kbs.sort_by_key(|kb| date_to_days(kb.manifest().effective_from));
        Ok(kbs)
    }

    /// `pack` over the KB timeline `kb_ids` (empty: the shipped national KB),
    /// without a shadow: what `backtest` evaluates a pack with.
    pub async fn deployment_for(
        &self,
        pack: &Arc<RulePack>,
        kb_ids: &[String],
    ) -> Result<Deployment, DeployError> {
        let mut slots = Vec::new();
        for kb in self.timeline(kb_ids)? {
            slots.push(Slot {
                from_day: date_to_days(kb.manifest().effective_from),
                program: self.program(pack, &kb).await?,
            });
        }
        Deployment::new(slots, None, 0).ok_or_else(|| {
            DeployError::Registry(RegistryError::Refused("the KB timeline is empty".into()))
        })
    }

    /// The pack `id` names (`None`: the shipped one), cached.
    pub fn pack(&self, id: Option<&str>) -> Result<Arc<RulePack>, DeployError> {
        let key = id.unwrap_or("").to_string();
        if let Some(p) = self.lock(&self.packs).get(&key) {
            return Ok(Arc::clone(p));
        }
        let pack = Arc::new(match id {
            Some(id) => self.registry.packs().load(id)?,
            None => RulePack::load(&self.default_pack)?,
        });
        self.lock(&self.packs).insert(key, Arc::clone(&pack));
        Ok(pack)
    }

    /// KB version `id`, cached.
    pub fn kb(&self, id: &str) -> Result<Arc<KnowledgeBase>, DeployError> {
        if let Some(kb) = self.lock(&self.kbs).get(id) {
            return Ok(Arc::clone(kb));
        }
        let kb = Arc::new(self.registry.kb().load(id)?);
        self.lock(&self.kbs).insert(id.to_string(), Arc::clone(&kb));
        Ok(kb)
    }

    /// `pack` compiled against `kb`, cached.
    pub async fn program(
        &self,
        pack: &Arc<RulePack>,
        kb: &Arc<KnowledgeBase>,
    ) -> Result<Arc<Program>, DeployError> {
        let key = (
            pack.content_hash.clone(),
            kb.manifest().content_hash.clone(),
        );
        if let Some(p) = self.lock(&self.programs).get(&key) {
            return Ok(Arc::clone(p));
        }
        let program =
            Arc::new(Program::compile(Arc::clone(pack), Arc::clone(kb), &self.options).await?);
        self.lock(&self.programs).insert(key, Arc::clone(&program));
        Ok(program)
    }

    /// Keeps cached versions only while a deployment or another cache entry uses
    /// them, plus the programs of the previous deployment for a fast rollback.
    pub(crate) fn prune_caches(&self) {
        const KEEP: usize = 16;
        let mut programs = self.lock(&self.programs);
        if programs.len() > KEEP {
            // Anything only the cache holds goes first.
            programs.retain(|_, p| Arc::strong_count(p) > 1);
        }
        let mut kbs = self.lock(&self.kbs);
        if kbs.len() > KEEP {
            kbs.retain(|_, kb| Arc::strong_count(kb) > 1);
        }
    }

    fn lock<'a, T>(&self, m: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
