//! deploy/: the docker-compose file and the Kubernetes manifests parsed into
//! typed, closed schemas (the subset of the compose specification and of the
//! Kubernetes API — apps/v1 Deployment, v1 Service and ConfigMap, autoscaling/v2
//! HorizontalPodAutoscaler, policy/v1 PodDisruptionBudget — that the files use:
//! required fields are required, types are checked, and an unknown or misspelt
//! key is an error, as `kubectl apply --validate=strict` would say), then
//! cross-checked: selectors match pod labels, probes hit /healthz and /readyz,
//! the HPA scales the Deployment on the consumer-lag metric, mounted files
//! exist, and the embedded FundWatch configs parse with the real loaders.

use std::collections::BTreeMap;

use fundwatch_connectors::http::ServeConfig;
use fundwatch_connectors::kafka::StreamConfig;
use serde::Deserialize;

use crate::ops_support;

type Labels = BTreeMap<String, String>;

// ---- Kubernetes (closed subset of the API schema) ----------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ObjectMeta {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    annotations: Labels,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LabelSelector {
    match_labels: Labels,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Deployment {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: DeploymentSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DeploymentSpec {
    replicas: Option<u32>,
    revision_history_limit: Option<u32>,
    selector: LabelSelector,
    strategy: Option<Strategy>,
    template: PodTemplate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Strategy {
    #[serde(rename = "type")]
    kind: String,
    rolling_update: Option<RollingUpdate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RollingUpdate {
    max_unavailable: serde_norway::Value,
    max_surge: serde_norway::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PodTemplate {
    metadata: TemplateMeta,
    spec: PodSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TemplateMeta {
    labels: Labels,
    #[serde(default)]
    annotations: Labels,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PodSpec {
    termination_grace_period_seconds: Option<u32>,
    security_context: Option<PodSecurityContext>,
    containers: Vec<Container>,
    #[serde(default)]
    volumes: Vec<Volume>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PodSecurityContext {
    run_as_non_root: Option<bool>,
    run_as_user: Option<i64>,
    fs_group: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Container {
    name: String,
    image: String,
    image_pull_policy: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    ports: Vec<ContainerPort>,
    #[serde(default)]
    env: Vec<EnvVar>,
    readiness_probe: Option<Probe>,
    liveness_probe: Option<Probe>,
    startup_probe: Option<Probe>,
    resources: Option<Resources>,
    #[serde(default)]
    volume_mounts: Vec<VolumeMount>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ContainerPort {
    name: Option<String>,
    container_port: u16,
    protocol: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EnvVar {
    name: String,
    value: Option<String>,
    value_from: Option<EnvVarSource>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EnvVarSource {
    secret_key_ref: KeyRef,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KeyRef {
    name: String,
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Probe {
    http_get: HttpGet,
    initial_delay_seconds: Option<u32>,
    period_seconds: Option<u32>,
    failure_threshold: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HttpGet {
    path: String,
    port: serde_norway::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Resources {
    requests: Option<BTreeMap<String, serde_norway::Value>>,
    limits: Option<BTreeMap<String, serde_norway::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VolumeMount {
    name: String,
    mount_path: String,
    read_only: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Volume {
    name: String,
    config_map: Option<NameRef>,
    empty_dir: Option<BTreeMap<String, serde_norway::Value>>,
    persistent_volume_claim: Option<ClaimRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ClaimRef {
    claim_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PersistentVolumeClaim {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: ClaimSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ClaimSpec {
    access_modes: Vec<String>,
    resources: ClaimResources,
    #[serde(default)]
    storage_class_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ClaimResources {
    requests: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NameRef {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct K8sService {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: ServiceSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceSpec {
    #[serde(rename = "type")]
    kind: Option<String>,
    selector: Labels,
    ports: Vec<ServicePort>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServicePort {
    name: Option<String>,
    port: u16,
    target_port: serde_norway::Value,
    protocol: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConfigMap {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    data: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Hpa {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: HpaSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HpaSpec {
    scale_target_ref: ScaleTargetRef,
    min_replicas: Option<u32>,
    max_replicas: u32,
    metrics: Vec<MetricSpec>,
    behavior: Option<serde_norway::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ScaleTargetRef {
    api_version: String,
    kind: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MetricSpec {
    #[serde(rename = "type")]
    kind: String,
    external: Option<ExternalMetric>,
    resource: Option<ResourceMetric>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternalMetric {
    metric: MetricIdentifier,
    target: MetricTarget,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricIdentifier {
    name: String,
    selector: Option<LabelSelector>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MetricTarget {
    #[serde(rename = "type")]
    kind: String,
    average_value: Option<String>,
    average_utilization: Option<u32>,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceMetric {
    name: String,
    target: MetricTarget,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Pdb {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: PdbSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PdbSpec {
    min_available: Option<serde_norway::Value>,
    max_unavailable: Option<serde_norway::Value>,
    selector: LabelSelector,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    resources: Vec<String>,
}

fn parse<T: for<'de> Deserialize<'de>>(path: &str) -> T {
    serde_norway::from_str(&ops_support::read(path))
        .unwrap_or_else(|err| panic!("{path} does not match its schema: {err}"))
}

fn fundwatch_config_parses(origin: &str, toml: &str) {
    let serve = ServeConfig::from_toml(toml, origin)
        .unwrap_or_else(|err| panic!("{origin}: not a valid `serve` config: {err}"));
    serve
        .validate()
        .unwrap_or_else(|err| panic!("{origin}: {err}"));
    let (kafka, _) = StreamConfig::from_toml(toml, origin)
        .unwrap_or_else(|err| panic!("{origin}: not a valid [kafka] table: {err}"));
    kafka
        .validate()
        .unwrap_or_else(|err| panic!("{origin}: {err}"));
}

#[test]
fn kubernetes_manifests_match_the_api_schema_and_each_other() {
    let kustomization: Kustomization = parse("deploy/k8s/kustomization.yaml");
    assert_eq!(kustomization.kind, "Kustomization");
    assert!(
        kustomization
            .api_version
            .starts_with("kustomize.config.k8s.io/")
    );
    for resource in &kustomization.resources {
        assert!(
            ops_support::repo()
                .join("deploy/k8s")
                .join(resource)
                .exists(),
            "kustomization names a missing file {resource}"
        );
    }
    let _ = kustomization.namespace;

    let deployment: Deployment = parse("deploy/k8s/deployment.yaml");
    assert_eq!(
        (deployment.api_version.as_str(), deployment.kind.as_str()),
        ("apps/v1", "Deployment")
    );
    let spec = &deployment.spec;
    let pod_labels = &spec.template.metadata.labels;
    for (k, v) in &spec.selector.match_labels {
        assert_eq!(
            pod_labels.get(k),
            Some(v),
            "selector {k}={v} must match the pod template"
        );
    }
    assert!(
        spec.replicas.unwrap_or(1) >= 2,
        "two replicas at least: a consumer group"
    );
    let _ = (&spec.revision_history_limit, &deployment.metadata.namespace);
    if let Some(strategy) = &spec.strategy {
        assert!(["RollingUpdate", "Recreate"].contains(&strategy.kind.as_str()));
        let _ = strategy
            .rolling_update
            .as_ref()
            .map(|r| (&r.max_surge, &r.max_unavailable));
    }
    let pod = &spec.template.spec;
    assert!(
        pod.termination_grace_period_seconds.unwrap_or(30) >= 30,
        "SIGTERM drain needs time"
    );
    let _ = pod
        .security_context
        .as_ref()
        .map(|s| (s.run_as_non_root, s.run_as_user, s.fs_group));
    let annotations = &spec.template.metadata.annotations;
    assert_eq!(
        annotations.get("prometheus.io/scrape").map(String::as_str),
        Some("true")
    );
    let container = pod.containers.first().expect("a container");
    assert!(!container.name.is_empty() && !container.image.is_empty());
    let _ = (&container.image_pull_policy, &container.env);
    let resources = container.resources.as_ref().expect("resources");
    assert!(
        resources
            .requests
            .as_ref()
            .is_some_and(|r| r.contains_key("cpu") && r.contains_key("memory")),
        "CPU and memory requests (the HPA's CPU target needs them)"
    );
    let _ = &resources.limits;
    assert_eq!(container.args.first().map(String::as_str), Some("serve"));
    let port = container.ports.first().expect("a container port");
    assert_eq!(port.container_port, 8080);
    assert_eq!(
        annotations.get("prometheus.io/port").map(String::as_str),
        Some(port.container_port.to_string().as_str())
    );
    let _ = (&port.name, &port.protocol);
    let readiness = container.readiness_probe.as_ref().expect("readiness probe");
    assert_eq!(readiness.http_get.path, "/readyz");
    let liveness = container.liveness_probe.as_ref().expect("liveness probe");
    assert_eq!(liveness.http_get.path, "/healthz");
    for probe in [readiness, liveness]
        .into_iter()
        .chain(&container.startup_probe)
    {
        let _ = (
            &probe.http_get.port,
            probe.initial_delay_seconds,
            probe.period_seconds,
            probe.failure_threshold,
        );
    }
    for env in &container.env {
        assert!(
            env.value.is_some() != env.value_from.is_some(),
            "env {} needs value xor valueFrom",
            env.name
        );
        if let Some(from) = &env.value_from {
            assert!(!from.secret_key_ref.name.is_empty() && !from.secret_key_ref.key.is_empty());
        }
    }
    for mount in &container.volume_mounts {
        assert!(mount.mount_path.starts_with('/'));
        let _ = mount.read_only;
        assert!(
            pod.volumes.iter().any(|v| v.name == mount.name),
            "volume mount {} has no volume",
            mount.name
        );
    }

    let config_map: ConfigMap = parse("deploy/k8s/configmap.yaml");
    assert_eq!(
        (config_map.api_version.as_str(), config_map.kind.as_str()),
        ("v1", "ConfigMap")
    );
    let claim: PersistentVolumeClaim = parse("deploy/k8s/history-pvc.yaml");
    assert_eq!(
        (claim.api_version.as_str(), claim.kind.as_str()),
        ("v1", "PersistentVolumeClaim")
    );
    assert_eq!(
        claim.spec.access_modes,
        ["ReadWriteMany"],
        "every pod mounts the history volume: a partition's state follows it to any pod"
    );
    assert!(claim.spec.resources.requests.contains_key("storage"));
    let _ = (&claim.spec.storage_class_name, &claim.metadata.labels);
    for volume in &pod.volumes {
        let _ = &volume.empty_dir;
        if let Some(pvc) = &volume.persistent_volume_claim {
            assert_eq!(pvc.claim_name, claim.metadata.name, "the shipped claim");
            let mount = container
                .volume_mounts
                .iter()
                .find(|m| m.name == volume.name)
                .expect("the claim is mounted");
            let state_dir = format!("state_dir = \"{}\"", mount.mount_path);
            assert!(
                config_map
                    .data
                    .get("fundwatch.toml")
                    .is_some_and(|t| t.contains(&state_dir)),
                "kafka.state_dir is the mounted claim ({state_dir})"
            );
        }
        if let Some(cm) = &volume.config_map {
            assert_eq!(
                cm.name, config_map.metadata.name,
                "the pod mounts the shipped ConfigMap"
            );
        }
    }
    let toml = config_map
        .data
        .get("fundwatch.toml")
        .expect("fundwatch.toml in the ConfigMap");
    fundwatch_config_parses("deploy/k8s/configmap.yaml", toml);
    assert!(
        toml.contains("0.0.0.0:8080"),
        "listen on all interfaces in a pod"
    );

    let service: K8sService = parse("deploy/k8s/service.yaml");
    assert_eq!(
        (service.api_version.as_str(), service.kind.as_str()),
        ("v1", "Service")
    );
    for (k, v) in &service.spec.selector {
        assert_eq!(pod_labels.get(k), Some(v), "service selector {k}={v}");
    }
    let _ = &service.spec.kind;
    for p in &service.spec.ports {
        let _ = (&p.name, &p.protocol, p.port);
        let target_ok = match &p.target_port {
            serde_norway::Value::Number(n) => n.as_u64() == Some(u64::from(port.container_port)),
            serde_norway::Value::String(s) => port.name.as_deref() == Some(s.as_str()),
            _ => false,
        };
        assert!(
            target_ok,
            "service targetPort must name or number the container port"
        );
    }

    let hpa: Hpa = parse("deploy/k8s/hpa.yaml");
    assert_eq!(
        (hpa.api_version.as_str(), hpa.kind.as_str()),
        ("autoscaling/v2", "HorizontalPodAutoscaler")
    );
    let target = &hpa.spec.scale_target_ref;
    assert_eq!(
        (
            target.api_version.as_str(),
            target.kind.as_str(),
            target.name.as_str()
        ),
        ("apps/v1", "Deployment", deployment.metadata.name.as_str())
    );
    assert!(hpa.spec.max_replicas >= hpa.spec.min_replicas.unwrap_or(1));
    let _ = &hpa.spec.behavior;
    let lag = hpa
        .spec
        .metrics
        .iter()
        .find_map(|m| m.external.as_ref().filter(|_| m.kind == "External"))
        .expect("an External metric");
    assert_eq!(
        lag.metric.name, "fundwatch_kafka_consumer_lag_messages",
        "scale on consumer lag"
    );
    assert!(ops_support::documented().contains(&lag.metric.name));
    let _ = lag.metric.selector.as_ref().map(|s| &s.match_labels);
    for metric in &hpa.spec.metrics {
        assert!(
            [
                "External",
                "Resource",
                "Pods",
                "Object",
                "ContainerResource"
            ]
            .contains(&metric.kind.as_str())
        );
        let targets = metric
            .external
            .iter()
            .map(|e| &e.target)
            .chain(metric.resource.iter().map(|r| &r.target));
        for t in targets {
            assert!(["AverageValue", "Utilization", "Value"].contains(&t.kind.as_str()));
            let _ = (&t.average_value, t.average_utilization, &t.value);
        }
        let _ = metric.resource.as_ref().map(|r| &r.name);
    }

    let pdb: Pdb = parse("deploy/k8s/pdb.yaml");
    assert_eq!(
        (pdb.api_version.as_str(), pdb.kind.as_str()),
        ("policy/v1", "PodDisruptionBudget")
    );
    assert!(
        pdb.spec.min_available.is_some() != pdb.spec.max_unavailable.is_some(),
        "exactly one of minAvailable / maxUnavailable"
    );
    for (k, v) in &pdb.spec.selector.match_labels {
        assert_eq!(pod_labels.get(k), Some(v), "PDB selector {k}={v}");
    }
    for meta in [
        &deployment.metadata,
        &service.metadata,
        &hpa.metadata,
        &pdb.metadata,
    ] {
        assert_eq!(
            meta.labels
                .get("app.kubernetes.io/name")
                .map(String::as_str),
            Some("fundwatch")
        );
        let _ = &meta.annotations;
    }
}

// ---- docker compose (closed subset of the compose specification) -------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Compose {
    name: Option<String>,
    services: BTreeMap<String, ComposeService>,
    #[serde(default)]
    volumes: BTreeMap<String, Option<serde_norway::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComposeService {
    image: Option<String>,
    build: Option<Build>,
    restart: Option<String>,
    command: Option<serde_norway::Value>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    ports: Vec<String>,
    #[serde(default)]
    volumes: Vec<String>,
    depends_on: Option<serde_norway::Value>,
    healthcheck: Option<Healthcheck>,
    stop_signal: Option<String>,
    stop_grace_period: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Build {
    context: String,
    dockerfile: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Healthcheck {
    test: Vec<String>,
    interval: Option<String>,
    timeout: Option<String>,
    retries: Option<u32>,
    start_period: Option<String>,
}

#[test]
fn compose_file_matches_the_compose_schema_and_mounts_what_exists() {
    let compose: Compose = parse("deploy/compose/docker-compose.yml");
    let _ = &compose.name;
    let dir = ops_support::repo().join("deploy/compose");
    for needed in ["broker", "engine", "prometheus", "grafana"] {
        assert!(
            compose.services.contains_key(needed),
            "service {needed} missing"
        );
    }
    for (name, service) in &compose.services {
        assert!(
            service.image.is_some() || service.build.is_some(),
            "service {name} needs image or build"
        );
        let _ = (
            &service.restart,
            &service.command,
            &service.environment,
            &service.stop_grace_period,
        );
        if let Some(restart) = &service.restart {
            assert!(["no", "always", "on-failure", "unless-stopped"].contains(&restart.as_str()));
        }
        for port in &service.ports {
            let (host, container) = port.split_once(':').expect("HOST:CONTAINER ports");
            assert!(
                host.parse::<u16>().is_ok() && container.parse::<u16>().is_ok(),
                "{name}: port {port}"
            );
        }
        for volume in &service.volumes {
            let source = volume.split(':').next().unwrap_or_default();
            if source.starts_with('.') {
                assert!(dir.join(source).exists(), "{name} mounts missing {source}");
            } else {
                assert!(
                    compose.volumes.contains_key(source),
                    "{name}: undeclared volume {source}"
                );
            }
        }
        if let Some(build) = &service.build {
            let context = dir.join(&build.context);
            assert!(
                context.join("Cargo.toml").exists(),
                "{name}: build context is the repository"
            );
            let dockerfile = build.dockerfile.as_deref().unwrap_or("Dockerfile");
            assert!(
                context.join(dockerfile).exists(),
                "{name}: missing {dockerfile}"
            );
        }
        if let Some(check) = &service.healthcheck {
            assert!(matches!(
                check.test.first().map(String::as_str),
                Some("CMD" | "CMD-SHELL" | "NONE")
            ));
            let _ = (
                &check.interval,
                &check.timeout,
                check.retries,
                &check.start_period,
            );
        }
        if let Some(deps) = &service.depends_on {
            let names: Vec<String> = match deps {
                serde_norway::Value::Sequence(s) => s
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                serde_norway::Value::Mapping(m) => m
                    .keys()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                other => panic!("{name}: depends_on must be a list or a map, not {other:?}"),
            };
            for dep in names {
                assert!(
                    compose.services.contains_key(&dep),
                    "{name} depends on unknown {dep}"
                );
            }
        }
    }
    let engine = &compose.services["engine"];
    assert_eq!(engine.stop_signal.as_deref(), Some("SIGTERM"));
    let readyz = engine
        .healthcheck
        .as_ref()
        .map(|h| h.test.join(" "))
        .unwrap_or_default();
    assert!(
        readyz.contains("/readyz"),
        "engine healthcheck uses /readyz"
    );
    fundwatch_config_parses(
        "deploy/compose/fundwatch.toml",
        &ops_support::read("deploy/compose/fundwatch.toml"),
    );
}

#[test]
fn grafana_provisioning_points_at_the_dashboard_and_its_datasource() {
    let datasources: serde_norway::Value =
        parse("deploy/grafana/provisioning/datasources/prometheus.yml");
    let uid = datasources["datasources"][0]["uid"]
        .as_str()
        .expect("datasource uid")
        .to_string();
    assert_eq!(
        datasources["datasources"][0]["type"].as_str(),
        Some("prometheus")
    );
    let providers: serde_norway::Value =
        parse("deploy/grafana/provisioning/dashboards/fundwatch.yml");
    assert_eq!(
        providers["providers"][0]["options"]["path"].as_str(),
        Some("/var/lib/grafana/dashboards")
    );
    let dashboard: serde_json::Value = serde_json::from_str(&ops_support::read(
        "deploy/grafana/dashboards/fundwatch.json",
    ))
    .expect("dashboard JSON");
    let mut ids = std::collections::BTreeSet::new();
    let mut titles = String::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "duplicate panel id"
        );
        titles.push_str(panel["title"].as_str().unwrap_or_default());
        titles.push('\n');
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"].as_str(),
                Some(uid.as_str()),
                "{panel}"
            );
            for key in ["x", "y", "w", "h"] {
                assert!(
                    panel["gridPos"][key].is_u64(),
                    "gridPos.{key} of {}",
                    panel["title"]
                );
            }
        }
    }
    // What issue 6 asks the dashboard to show.
    for topic in [
        "Events in",
        "Alerts by rule",
        "severity",
        "institutions",
        "Stage latency p50",
        "Stage latency p99",
        "Event → alert",
        "Consumer lag",
        "Dead letters",
        "Errors",
        "knowledge base",
    ] {
        assert!(titles.contains(topic), "no panel about {topic}:\n{titles}");
    }
    let k8s: serde_norway::Value = parse("deploy/prometheus/prometheus-k8s.yml");
    assert!(k8s["scrape_configs"][0]["kubernetes_sd_configs"].is_sequence());
}
