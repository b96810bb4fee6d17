//! What is in force, and the append-only log of how it got there.
//!
//! `active.json` holds the current [`ActiveState`]; `activations.jsonl` one
//! [`Activation`] per change (who, when, what, from → to). Rollback needs no
//! separate history: each activation records which earlier entry it replaced
//! (`undo`), so "roll back" follows that link — repeated rollbacks walk back
//! through the activations of that kind, and a rollback is itself logged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the engine runs: the pack, the KB timeline and the shadow candidate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveState {
    /// Sequence number of the last activation that produced this state (0: none yet).
    pub seq: u64,
    /// Active pack id (`name@version`); `None`: the pack shipped with the product.
    pub pack: Option<String>,
    /// KB versions in force, by `effective_from` ascending: an event uses the last
    /// one whose `effective_from` is not after its service date (the first one
    /// for earlier dates). Empty: the shipped national KB.
    pub kb: Vec<String>,
    /// Candidate pack evaluated in shadow mode beside the active one.
    pub shadow: Option<String>,
    /// The activation that set the current pack (`None`: the shipped pack).
    pub pack_entry: Option<u64>,
    /// The activation that set the current KB timeline (`None`: the default).
    pub kb_entry: Option<u64>,
}

/// What an activation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A pack became active.
    ActivatePack,
    /// A KB version was added to the timeline (newer ones dropped).
    ActivateKb,
    /// The pack went back to the one before the last pack activation.
    RollbackPack,
    /// The KB timeline went back to the one before the last KB activation.
    RollbackKb,
    /// A candidate pack started running in shadow mode.
    Shadow,
    /// The shadow candidate became the active pack.
    Promote,
    /// The shadow candidate was dropped.
    Discard,
}

impl Action {
    /// The kind of version the action changes.
    pub fn kind(self) -> Kind {
        match self {
            Action::ActivatePack | Action::RollbackPack | Action::Promote => Kind::Pack,
            Action::ActivateKb | Action::RollbackKb => Kind::Kb,
            Action::Shadow | Action::Discard => Kind::Shadow,
        }
    }
}

/// Which part of the state an action touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The active pack.
    Pack,
    /// The KB timeline.
    Kb,
    /// The shadow candidate.
    Shadow,
}

/// One line of `activations.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activation {
    /// 1, 2, 3 … in log order.
    pub seq: u64,
    /// When.
    pub time: DateTime<Utc>,
    /// Who (admin key name, or the CLI user).
    pub actor: String,
    /// What.
    pub action: Action,
    /// The version the action names (pack id or KB id; for a rollback, the one
    /// that is in force afterwards, `default` for the shipped one).
    pub target: String,
    /// State before.
    pub from: ActiveState,
    /// State after.
    pub to: ActiveState,
    /// For activations: the entry whose state of this kind to return to on
    /// rollback (`None`: the default).
    pub undo: Option<u64>,
    /// Free text (e.g. the validation summary).
    #[serde(default)]
    pub notes: String,
}
