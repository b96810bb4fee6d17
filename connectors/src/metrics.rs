//! [`Metrics`]: the process's one Prometheus registry (SPEC §8, prefix
//! `fundwatch_`), created once at start-up and handed to every source — the
//! HTTP service, the Kafka pipeline, the demo — and to the engine as a
//! [`StageObserver`].
//!
//! Families shared by all sources carry a constant `source` label (`http`,
//! `kafka`, `synthetic`, `file`): each source registers its own collectors under
//! the same names, and the registry merges them into one family per name, so a
//! dashboard sums or splits by `source` without knowing which sources run.
//! Source-specific families keep their own prefix (`fundwatch_http_…`,
//! `fundwatch_kafka_…`, in [`crate::http::metrics`] and [`crate::kafka::metrics`]).
//!
//! No label ever carries a patient, encounter, order or alert id: label values
//! are rule ids, severities, stages, versions, topics and partitions only.
//! `docs/metrics.md` lists every name and label; a test keeps the two in step.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use fundwatch_engine::{Engine, Stage, StageObserver};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    CounterVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds: 25 µs … 10 s, dense around the 5 ms inline and
/// 100 ms stream targets.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005,
    0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Batch-size buckets (events per engine call).
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Where events come from: the value of the `source` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// Inline 3101/3102 calls (`fundwatch serve`).
    Http,
    /// The settlements topic (`fundwatch stream` / `serve` with `[kafka]`).
    Kafka,
    /// The labelled synthetic generator (`fundwatch demo`).
    Synthetic,
    /// NDJSON files (`fundwatch check`).
    File,
}

impl Source {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Http => "http",
            Source::Kafka => "kafka",
            Source::Synthetic => "synthetic",
            Source::File => "file",
        }
    }
}

/// Most distinct `fixmedins_code` values one source labels
/// `fundwatch_institution_alerts_total` with; alerts of further institutions
/// count under `other`, so a flood of codes cannot blow up the series count.
pub const MAX_INSTITUTIONS: usize = 2000;

/// Kinds of the `fundwatch_errors_total` counter, all present from the start
/// (at 0) so rates and alert rules see the series before the first error.
pub const ERROR_KINDS: &[&str] = &["decode", "evaluate", "sink"];

/// The per-source metrics: counters and histograms every source has.
#[derive(Debug, Clone)]
pub struct SourceMetrics {
    source: Source,
    /// `fundwatch_events_in_total`: events received.
    pub events_in: IntCounter,
    /// `fundwatch_events_out_total`: events fully processed (alerts, if any,
    /// delivered; or answered fail-open; or dead-lettered).
    pub events_out: IntCounter,
    /// `fundwatch_alerts_total{rule_id,sev_deg}`: alerts delivered.
    pub alerts: IntCounterVec,
    /// `fundwatch_stage_duration_seconds{stage}`, indexed like [`Stage::ALL`].
    stages: Arc<[Histogram; 6]>,
    /// `fundwatch_batch_duration_seconds`: one engine call over a micro-batch.
    pub batch_seconds: Histogram,
    /// `fundwatch_batch_events`: events per engine call.
    pub batch_events: Histogram,
    /// `fundwatch_event_to_alert_seconds`: from an event's arrival (Kafka: its
    /// message timestamp) to the delivery of its alerts.
    pub event_to_alert: Histogram,
    /// `fundwatch_errors_total{kind}`, kinds in [`ERROR_KINDS`].
    pub errors: IntCounterVec,
    /// `fundwatch_institution_alerts_total{fixmedins_code}`: alerts delivered
    /// per institution (a medical institution, never a person), for the "top
    /// institutions" panel; at most [`MAX_INSTITUTIONS`] codes.
    pub institution_alerts: IntCounterVec,
    institutions: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl SourceMetrics {
    fn register(registry: &Registry, source: Source) -> Self {
        let s = source.as_str();
        let opts = |name: &str, help: &str| Opts::new(name, help).const_label("source", s);
        let hopts = |name: &str, help: &str, buckets: &[f64]| {
            HistogramOpts::new(name, help)
                .const_label("source", s)
                .buckets(buckets.to_vec())
        };
        // Names, label sets and buckets are constants, and each source registers
        // once (`Metrics::source` caches): creation and registration cannot fail.
        let events_in = IntCounter::with_opts(opts(
            "fundwatch_events_in_total",
            "Events received, by source",
        ))
        .expect("valid metric");
        let events_out = IntCounter::with_opts(opts(
            "fundwatch_events_out_total",
            "Events fully processed (alerts delivered, fail-open answer or dead letter), by source",
        ))
        .expect("valid metric");
        let alerts = IntCounterVec::new(
            opts(
                "fundwatch_alerts_total",
                "Alerts delivered, by source, rule and severity (sev_deg)",
            ),
            &["rule_id", "sev_deg"],
        )
        .expect("valid metric");
        let stage_vec = HistogramVec::new(
            hopts(
                "fundwatch_stage_duration_seconds",
                "Time spent in each stage of one micro-batch, by source and stage",
                LATENCY_BUCKETS,
            ),
            &["stage"],
        )
        .expect("valid metric");
        let stages =
            Arc::new(Stage::ALL.map(|stage| stage_vec.with_label_values(&[stage.as_str()])));
        let batch_seconds = Histogram::with_opts(hopts(
            "fundwatch_batch_duration_seconds",
            "One engine call over a micro-batch (batch build + evaluate + alert build), by source",
            LATENCY_BUCKETS,
        ))
        .expect("valid metric");
        let batch_events = Histogram::with_opts(hopts(
            "fundwatch_batch_events",
            "Events per engine call, by source",
            BATCH_BUCKETS,
        ))
        .expect("valid metric");
        let event_to_alert = Histogram::with_opts(hopts(
            "fundwatch_event_to_alert_seconds",
            "From an event's arrival to the delivery of its alerts, by source",
            LATENCY_BUCKETS,
        ))
        .expect("valid metric");
        let errors = IntCounterVec::new(
            opts(
                "fundwatch_errors_total",
                "Errors by source and kind (decode, evaluate, sink)",
            ),
            &["kind"],
        )
        .expect("valid metric");
        for kind in ERROR_KINDS {
            errors.with_label_values(&[kind]);
        }
        let institution_alerts = IntCounterVec::new(
            opts(
                "fundwatch_institution_alerts_total",
                "Alerts delivered, by source and institution (fixmedins_code; `other` past the cap)",
            ),
            &["fixmedins_code"],
        )
        .expect("valid metric");
        let collectors: [Box<dyn Collector>; 9] = [
            Box::new(institution_alerts.clone()),
            Box::new(events_in.clone()),
            Box::new(events_out.clone()),
            Box::new(alerts.clone()),
            Box::new(stage_vec),
            Box::new(batch_seconds.clone()),
            Box::new(batch_events.clone()),
            Box::new(event_to_alert.clone()),
            Box::new(errors.clone()),
        ];
        for collector in collectors {
            registry.register(collector).expect("unique metric");
        }
        Self {
            source,
            events_in,
            events_out,
            alerts,
            stages,
            batch_seconds,
            batch_events,
            event_to_alert,
            errors,
            institution_alerts,
            institutions: Arc::default(),
        }
    }

    /// The source these metrics are labelled with.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The histogram of `stage`.
    pub fn stage(&self, stage: Stage) -> &Histogram {
        let index = Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0);
        &self.stages[index]
    }

    /// Counts one delivered alert of `fixmedins_code`'s institution.
    pub fn alert(&self, rule_id: &str, sev_deg: &str, fixmedins_code: &str) {
        self.alerts.with_label_values(&[rule_id, sev_deg]).inc();
        let code = if fixmedins_code.is_empty() {
            "unknown"
        } else {
            fixmedins_code
        };
        let known = {
            let mut seen = self
                .institutions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            seen.contains(code) || (seen.len() < MAX_INSTITUTIONS && seen.insert(code.to_string()))
        };
        let label = if known { code } else { "other" };
        self.institution_alerts.with_label_values(&[label]).inc();
    }

    /// Counts one error of `kind` (one of [`ERROR_KINDS`]).
    pub fn error(&self, kind: &str) {
        self.errors.with_label_values(&[kind]).inc();
    }

    /// Alerts delivered so far, all rules.
    pub fn alerts_total(&self) -> u64 {
        sum_counter_vec(&self.alerts)
    }
}

impl StageObserver for SourceMetrics {
    fn observe(&self, stage: Stage, elapsed: Duration, _events: usize) {
        self.stage(stage).observe(elapsed.as_secs_f64());
    }
}

/// Sum of every child of a counter vector.
pub fn sum_counter_vec(vec: &IntCounterVec) -> u64 {
    vec.collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// The process-wide registry and the families no single source owns. Cheap to
/// clone (one `Arc`); every clone is the same registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    sources: Mutex<HashMap<Source, SourceMetrics>>,
    kb_info: IntGaugeVec,
    rule_pack_info: IntGaugeVec,
    versions: Mutex<VersionLabels>,
    http: OnceLock<Arc<crate::http::metrics::Metrics>>,
    kafka: OnceLock<crate::kafka::KafkaMetrics>,
}

#[derive(Debug, Default)]
struct VersionLabels {
    kb: Option<String>,
    active: Option<String>,
    shadow: Option<String>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with the process-wide families: `fundwatch_build_info`,
    /// `fundwatch_kb_info`, `fundwatch_rule_pack_info`.
    pub fn new() -> Self {
        let registry = Registry::new();
        // Constant names and labels, registered once in a fresh registry.
        let build_info = IntGaugeVec::new(
            Opts::new(
                "fundwatch_build_info",
                "The running FundWatch version (value 1)",
            ),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let kb_info = IntGaugeVec::new(
            Opts::new(
                "fundwatch_kb_info",
                "The knowledge-base version in force (value 1)",
            ),
            &["version"],
        )
        .expect("valid metric");
        let rule_pack_info = IntGaugeVec::new(
            Opts::new(
                "fundwatch_rule_pack_info",
                "Rule pack versions loaded, by mode (active, shadow) (value 1)",
            ),
            &["version", "mode"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(build_info) as Box<dyn Collector>,
            Box::new(kb_info.clone()),
            Box::new(rule_pack_info.clone()),
        ] {
            registry.register(collector).expect("unique metric");
        }
        Self {
            inner: Arc::new(Inner {
                registry,
                sources: Mutex::new(HashMap::new()),
                kb_info,
                rule_pack_info,
                versions: Mutex::new(VersionLabels::default()),
                http: OnceLock::new(),
                kafka: OnceLock::new(),
            }),
        }
    }

    /// The registry, e.g. to register more collectors.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Exposes what each rule of `engine`'s active programs has cost since they
    /// were compiled (`fundwatch_rule_eval_seconds_total`, `fundwatch_rule_evals_total`,
    /// per `rule_id` and `pack`), read from the programs at every scrape: the
    /// rule to look at first when evaluation gets slower. A version swap starts
    /// new programs, so the counters restart (Prometheus' `rate` handles resets).
    pub fn watch_rule_costs(&self, engine: &Engine) {
        let collector = RuleCostCollector::new(engine.clone());
        if let Err(err) = self.registry().register(Box::new(collector)) {
            tracing::warn!(error = %err, "rule cost metrics not registered");
        }
    }

    /// The metrics of `source`, registered on first use and shared afterwards.
    pub fn source(&self, source: Source) -> SourceMetrics {
        let mut sources = self
            .inner
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        sources
            .entry(source)
            .or_insert_with(|| SourceMetrics::register(&self.inner.registry, source))
            .clone()
    }

    /// The HTTP service's metrics (registered on first use).
    pub fn http(&self) -> Arc<crate::http::metrics::Metrics> {
        Arc::clone(
            self.inner
                .http
                .get_or_init(|| Arc::new(crate::http::metrics::Metrics::register(self))),
        )
    }

    /// The Kafka pipeline's metrics (registered on first use).
    pub fn kafka(&self) -> crate::kafka::KafkaMetrics {
        self.inner
            .kafka
            .get_or_init(|| crate::kafka::KafkaMetrics::register(self))
            .clone()
    }

    /// Records the versions in force: `fundwatch_kb_info{version}` and
    /// `fundwatch_rule_pack_info{version,mode="active"}` (the previous ones are
    /// removed, so each gauge names exactly what runs).
    pub fn set_active_versions(&self, rule_pack: &str, kb: &str) {
        let mut v = self
            .inner
            .versions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = v.kb.take() {
            let _ = self.inner.kb_info.remove_label_values(&[&old]);
        }
        if let Some(old) = v.active.take() {
            let _ = self
                .inner
                .rule_pack_info
                .remove_label_values(&[&old, "active"]);
        }
        self.inner.kb_info.with_label_values(&[kb]).set(1);
        self.inner
            .rule_pack_info
            .with_label_values(&[rule_pack, "active"])
            .set(1);
        v.kb = Some(kb.to_string());
        v.active = Some(rule_pack.to_string());
    }

    /// Records the pack evaluated in shadow mode (`None`: no shadow).
    pub fn set_shadow_version(&self, rule_pack: Option<&str>) {
        let mut v = self
            .inner
            .versions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = v.shadow.take() {
            let _ = self
                .inner
                .rule_pack_info
                .remove_label_values(&[&old, "shadow"]);
        }
        if let Some(pack) = rule_pack {
            self.inner
                .rule_pack_info
                .with_label_values(&[pack, "shadow"])
                .set(1);
            v.shadow = Some(pack.to_string());
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.inner.registry.gather())
            .unwrap_or_else(|err| format!("# encoding metrics failed: {err}\n"))
    }

    /// Names of every metric family currently exposed.
    pub fn family_names(&self) -> Vec<String> {
        self.inner
            .registry
            .gather()
            .iter()
            .map(|family| family.name().to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_share_families_and_register_once() {
        let metrics = Metrics::new();
        let http = metrics.source(Source::Http);
        let again = metrics.source(Source::Http);
        let kafka = metrics.source(Source::Kafka);
        http.events_in.inc();
        again.events_in.inc();
        kafka.events_in.inc();
        kafka.alert("GZ1", "1", "H1");
        kafka.observe(Stage::Evaluate, Duration::from_millis(2), 10);
        let text = metrics.render();
        assert!(
            text.contains("fundwatch_events_in_total{source=\"http\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("fundwatch_events_in_total{source=\"kafka\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "fundwatch_alerts_total{rule_id=\"GZ1\",sev_deg=\"1\",source=\"kafka\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "fundwatch_stage_duration_seconds_count{source=\"kafka\",stage=\"evaluate\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("fundwatch_errors_total{kind=\"decode\",source=\"http\"} 0"));
        assert!(text.contains(
            "fundwatch_institution_alerts_total{fixmedins_code=\"H1\",source=\"kafka\"} 1"
        ));
        // Registering HTTP and Kafka families twice returns the same handles.
        let _ = metrics.http();
        let _ = metrics.http();
        let _ = metrics.kafka();
        let _ = metrics.kafka();
    }

    #[test]
    fn version_gauges_name_only_what_runs() {
        let metrics = Metrics::new();
        metrics.set_active_versions("national@1.0.0", "kb-a");
        metrics.set_active_versions("national@1.1.0", "kb-b");
        metrics.set_shadow_version(Some("national@1.2.0"));
        let text = metrics.render();
        assert!(!text.contains("kb-a"), "{text}");
        assert!(!text.contains("national@1.0.0"), "{text}");
        assert!(
            text.contains("fundwatch_kb_info{version=\"kb-b\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("fundwatch_rule_pack_info{mode=\"active\",version=\"national@1.1.0\"} 1")
        );
        assert!(
            text.contains("fundwatch_rule_pack_info{mode=\"shadow\",version=\"national@1.2.0\"} 1")
        );
        metrics.set_shadow_version(None);
        assert!(!metrics.render().contains("mode=\"shadow\""));
    }
}

/// Reads the per-rule costs of the engine's active programs at scrape time.
#[derive(Debug)]
struct RuleCostCollector {
    engine: Engine,
    descs: Vec<Desc>,
}

impl RuleCostCollector {
    const SECONDS: (&str, &str) = (
        "fundwatch_rule_eval_seconds_total",
        "Time spent executing each rule's plan since its program was compiled",
    );
    const RUNS: (&str, &str) = (
        "fundwatch_rule_evals_total",
        "Executions of each rule's plan (one per micro-batch whose gate lets the rule run)",
    );

    fn new(engine: Engine) -> Self {
        let descs = [Self::SECONDS, Self::RUNS]
            .iter()
            .flat_map(|(name, help)| {
                let family = Self::family(name, help);
                family.desc().into_iter().cloned().collect::<Vec<_>>()
            })
            .collect();
        Self { engine, descs }
    }

    fn family(name: &str, help: &str) -> CounterVec {
        // Constant, valid names and labels.
        CounterVec::new(Opts::new(name, help), &["rule_id", "pack"]).expect("valid metric")
    }
}

impl Collector for RuleCostCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let seconds = Self::family(Self::SECONDS.0, Self::SECONDS.1);
        let runs = Self::family(Self::RUNS.0, Self::RUNS.1);
        let deployment = self.engine.deployment();
        // A KB timeline has one program per slot, all of the same pack: summed.
        for slot in deployment.slots() {
            let pack = slot.program.pack().version_label();
            for rule in slot.program.rules() {
                let (n, time) = rule.cost();
                let labels = [rule.rule.rule_id.as_str(), pack.as_str()];
                seconds
                    .with_label_values(&labels)
                    .inc_by(time.as_secs_f64());
                runs.with_label_values(&labels).inc_by(n as f64);
            }
        }
        let mut out = seconds.collect();
        out.extend(runs.collect());
        out
    }
}
