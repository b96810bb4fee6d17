//! The pack: manifest plus rules, read from a directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dictionary::{Dictionaries, Parameters};
use crate::error::RulesError;
use crate::rule::Rule;

/// `pack.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackManifest {
    /// Pack name, e.g. `national`.
    pub name: String,
    /// Semantic version, e.g. `1.0.0`.
    pub version: String,
    /// What the pack is for.
    #[serde(default)]
    pub description: String,
    /// Knowledge rule classes the pack needs in the KB version it runs against.
    #[serde(default)]
    pub requires_classes: Vec<String>,
    /// Dictionaries (`sev_deg`, `vola_bhvr_type`, input normalisation) with overrides.
    #[serde(default)]
    pub dictionaries: Dictionaries,
    /// Thresholds the national lists do not fix, with overrides.
    #[serde(default)]
    pub parameters: Parameters,
}

/// A loaded, checked rule pack.
#[derive(Debug, Clone)]
pub struct RulePack {
    /// The manifest.
    pub manifest: PackManifest,
    /// Rules ordered by `rule_id` (the order alerts are emitted in for one event).
    pub rules: Vec<Rule>,
    /// SHA-256 over the manifest and rule files, hex.
    pub content_hash: String,
    /// The directory the pack was read from.
    pub dir: PathBuf,
}

impl RulePack {
    /// Reads `dir/pack.toml` and every `dir/rules/*.toml`, then checks the pack
    /// (unique rule ids, dictionary codes declared, cases well-formed).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, RulesError> {
        let dir = dir.as_ref().to_path_buf();
        let manifest_path = dir.join("pack.toml");
        let manifest_text = read(&manifest_path)?;
        let manifest: PackManifest = parse_toml(&manifest_path, &manifest_text)?;

        let mut hasher = Sha256::new();
        hasher.update(manifest_text.as_bytes());

        let rules_dir = dir.join("rules");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&rules_dir)
            .map_err(|source| RulesError::Io {
                path: rules_dir.clone(),
                source,
            })?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        files.sort();

        let mut rules = Vec::with_capacity(files.len());
        for path in files {
            let text = read(&path)?;
            hasher.update(
                path.file_name()
                    .map(|n| n.as_encoded_bytes())
                    .unwrap_or_default(),
            );
            hasher.update(text.as_bytes());
            let mut rule: Rule = parse_toml(&path, &text)?;
            rule.source = path;
            rules.push(rule);
        }
        rules.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));

        let pack = Self {
            manifest,
            rules,
            content_hash: hex::encode(hasher.finalize()),
            dir,
        };
        pack.check()?;
        Ok(pack)
    }

    /// `name@version`, the label alerts carry as `rule_pack_version`.
    pub fn version_label(&self) -> String {
        format!("{}@{}", self.manifest.name, self.manifest.version)
    }

    /// The rule with `rule_id`.
    pub fn rule(&self, rule_id: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.rule_id == rule_id)
    }

    fn check(&self) -> Result<(), RulesError> {
        let manifest_path = self.dir.join("pack.toml");
        let invalid = |path: &Path, message: String| RulesError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if self.manifest.version.split('.').count() != 3
            || self
                .manifest
                .version
                .split('.')
                .any(|part| part.parse::<u64>().is_err())
        {
            return Err(invalid(
                &manifest_path,
                format!(
                    "version \"{}\" is not a semantic version like 1.2.0",
                    self.manifest.version
                ),
            ));
        }
        let dicts = &self.manifest.dictionaries;
        for name in ["sev_deg", "vola_bhvr_type"] {
            if dicts.get(name).is_none() {
                return Err(invalid(
                    &manifest_path,
                    format!("dictionary `{name}` is missing from [dictionaries.defaults]"),
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for rule in &self.rules {
            let path = rule.source.as_path();
            if !seen.insert(rule.rule_id.as_str()) {
                return Err(invalid(path, format!("duplicate rule_id {}", rule.rule_id)));
            }
            if rule.sql.trim().is_empty() {
                return Err(invalid(path, "sql is empty".into()));
            }
            if rule.trig_scen.is_empty() || rule.trig_scen.iter().any(|s| !(1..=10).contains(s)) {
                return Err(invalid(
                    path,
                    format!(
                        "trig_scen {:?} must list scenarios 1–10 (1–5 事前, 6–10 事中)",
                        rule.trig_scen
                    ),
                ));
            }
            if dicts.lookup("sev_deg", "", &rule.sev_deg).is_none() {
                return Err(invalid(
                    path,
                    format!(
                        "sev_deg \"{}\" is not in the pack's sev_deg dictionary",
                        rule.sev_deg
                    ),
                ));
            }
            if dicts
                .lookup("vola_bhvr_type", "", &rule.vola_bhvr_type)
                .is_none()
            {
                return Err(invalid(
                    path,
                    format!(
                        "vola_bhvr_type \"{}\" is not in the pack's vola_bhvr_type dictionary",
                        rule.vola_bhvr_type
                    ),
                ));
            }
            for case in &rule.cases {
                if case.event.is_none() && case.orders.is_empty() && case.history.is_empty() {
                    return Err(invalid(
                        path,
                        format!("case \"{}\" has neither orders nor an event", case.name),
                    ));
                }
                for expect in &case.expect {
                    if let Some(sev) = &expect.sev_deg
                        && dicts.lookup("sev_deg", "", sev).is_none()
                    {
                        return Err(invalid(
                            path,
                            format!("case \"{}\" expects unknown sev_deg \"{sev}\"", case.name),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn read(path: &Path) -> Result<String, RulesError> {
    std::fs::read_to_string(path).map_err(|source| RulesError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, RulesError> {
    toml::from_str(text).map_err(|err| RulesError::Toml {
        path: path.to_path_buf(),
        message: err.to_string(),
    })
}
