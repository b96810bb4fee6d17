//! [`StageObserver`]: how the engine reports where a batch's time went, without
//! knowing about Prometheus (the connectors turn the reports into histograms).
//!
//! The engine measures the stages only it can see — laying the batch out as
//! Arrow tables, executing the compiled plans, building alerts, recording
//! history; the connectors measure decoding and delivery around it.

use std::fmt::Debug;
use std::time::Duration;

/// A stage of processing one micro-batch, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Bytes → typed events (measured by the connector that decodes).
    Decode,
    /// Events (+ the history of their persons) → Arrow tables.
    BatchBuild,
    /// Executing the compiled rule plans over the tables.
    Evaluate,
    /// Findings → national-shape alerts.
    AlertBuild,
    /// Recording the evaluated events into history.
    History,
    /// Handing alerts to their destination (measured by the connector).
    Sink,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 6] = [
        Stage::Decode,
        Stage::BatchBuild,
        Stage::Evaluate,
        Stage::AlertBuild,
        Stage::History,
        Stage::Sink,
    ];

    /// The stage's name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::BatchBuild => "batch_build",
            Stage::Evaluate => "evaluate",
            Stage::AlertBuild => "alert_build",
            Stage::History => "history",
            Stage::Sink => "sink",
        }
    }
}

/// Receives the duration of each stage of each batch. Called on the evaluating
/// thread, so implementations must be cheap (an atomic histogram update).
pub trait StageObserver: Send + Sync + Debug {
    /// `stage` of one batch of `events` events took `elapsed`.
    fn observe(&self, stage: Stage, elapsed: Duration, events: usize);
}
