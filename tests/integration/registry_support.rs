//! Shared by the `registry_*` and `backtest_*` tests: test packs derived from the
//! national pack, 3101 requests built field by field, the real `fundwatch`
//! binary, and an in-process service with a version manager.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use fundwatch_connectors::http::{MemoryStore, Service, VersionControl};
use fundwatch_connectors::metrics::Metrics;
use fundwatch_engine::{Clock, VersionManager};
use fundwatch_rules::Registry;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::http_support::{self, HOSPITAL_A, Reply};

/// The national pack of this repository.
pub fn national_pack() -> PathBuf {
    http_support::repo().join("rule-base/packs/national")
}

/// The national batch attachments.
pub fn xlsx_dir() -> PathBuf {
    http_support::repo().join("../shared/data/nhsa-batches/xlsx")
}

/// A copy of the national pack in `dir/<name>-<version>` named `name@version`,
/// with no `requires_classes` (so it runs on partial KB versions: rules whose
/// knowledge is missing are dormant), each rule file passed through `tweak`
/// (`None` drops it), plus `extra` rule files.
pub fn derive_pack(
    dir: &Path,
    name: &str,
    version: &str,
    tweak: impl Fn(&str, String) -> Option<String>,
    extra: &[(&str, String)],
) -> PathBuf {
    let out = dir.join(format!("{name}-{version}"));
    std::fs::create_dir_all(out.join("rules")).expect("mkdir pack");
    let manifest = std::fs::read_to_string(national_pack().join("pack.toml")).expect("pack.toml");
    let mut lines: Vec<String> = Vec::new();
    let mut skipping = false;
    for line in manifest.lines() {
        if skipping {
            if line.trim_end().ends_with(']') {
                skipping = false;
            }
            continue;
        }
        if line.starts_with("requires_classes") {
            lines.push("requires_classes = []".into());
            skipping = !line.trim_end().ends_with(']');
            continue;
        }
        if line.starts_with("name = ") {
            lines.push(format!("name = \"{name}\""));
            continue;
        }
        if line.starts_with("version = ") {
            lines.push(format!("version = \"{version}\""));
            continue;
        }
        lines.push(line.to_string());
    }
    std::fs::write(out.join("pack.toml"), lines.join("\n") + "\n").expect("write pack.toml");
    for entry in std::fs::read_dir(national_pack().join("rules")).expect("rules dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        let text = std::fs::read_to_string(&path).expect("rule");
        if let Some(text) = tweak(&file, text) {
            std::fs::write(out.join("rules").join(&file), text).expect("write rule");
        }
    }
    for (file, text) in extra {
        std::fs::write(out.join("rules").join(file), text).expect("write extra rule");
    }
    out
}

/// One fee line of a request.
#[derive(Debug, Clone)]
pub struct Line {
    pub rx_id: &'static str,
    pub code: &'static str,
    pub name: &'static str,
    pub cnt: f64,
    pric: f64,
    pub begn: String,
}

impl Line {
    pub fn new(rx_id: &'static str, code: &'static str, name: &'static str, begn: &str) -> Self {
        Self {
            rx_id,
            code,
            name,
            cnt: 1.0,
            pric: 20.0,
            begn: begn.to_string(),
        }
    }
}

/// A 3101 envelope from hospital A: one inpatient encounter admitted on `adm`
/// (`YYYY-MM-DD HH:MM:SS`) with `lines` all under check.
pub fn request(patn_id: &str, gend: &str, brdy: &str, adm: &str, lines: &[Line]) -> String {
    let orders: Vec<Value> = lines
        .iter()
        .map(|l| {
            json!({
                "rx_id": l.rx_id, "rxno": format!("RX-{patn_id}"), "hilist_type": "201",
                "hilist_code": l.code, "hilist_name": l.name, "cnt": l.cnt, "pric": l.pric,
                "sumamt": l.cnt * l.pric, "drord_begn_date": l.begn, "curr_drord_flag": "1",
                "long_drord_flag": "0", "drord_dr_codg": "D1"
            })
        })
        .collect();
    json!({
        "infno": "3101", "msgid": format!("{HOSPITAL_A}-{patn_id}"), "fixmedins_code": HOSPITAL_A,
        "inf_time": adm,
        "input": {"data": {
            "syscode": "IMS", "task_id": format!("T-{patn_id}"), "trig_scen": "4", "rule_ids": [],
            "patient_dtos": [{
                "patn_id": patn_id, "patn_name": "测试", "gend": gend, "brdy": brdy,
                "poolarea": "110105", "curr_mdtrt_id": format!("M-{patn_id}"),
                "fsi_encounter_dtos": [{
                    "mdtrt_id": format!("M-{patn_id}"), "medins_id": HOSPITAL_A, "medins_type": "A",
                    "medins_lv": "3", "adm_date": adm, "med_mdtrt_type": "2", "med_type": "21",
                    "insutype": "310", "fsi_diagnose_dtos": [], "fsi_operation_dtos": [],
                    "fsi_order_dtos": orders
                }]
            }]
        }}
    })
    .to_string()
}

/// The alerts of a 3101 answer.
pub fn alerts(reply: &Reply) -> Vec<Value> {
    reply.body["output"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Alerts of `rule_id` in a 3101 answer.
pub fn alerts_of(reply: &Reply, rule_id: &str) -> Vec<Value> {
    alerts(reply)
        .into_iter()
        .filter(|a| a["rule_id"] == rule_id)
        .collect()
}

/// Runs the real `fundwatch` binary.
pub fn fundwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fundwatch"))
        .args(args)
        .output()
        .expect("runs fundwatch")
}

/// Runs `fundwatch` and fails the test with its stderr when it fails.
pub fn fundwatch_ok(args: &[&str]) -> String {
    let out = fundwatch(args);
    assert!(
        out.status.success(),
        "fundwatch {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An in-process service whose engine a [`VersionManager`] over `registry` owns,
/// with the version endpoints enabled; `extra` is `[http]` TOML.
pub struct ManagedServer {
    pub addr: SocketAddr,
    pub manager: Arc<VersionManager>,
    pub metrics: Metrics,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl ManagedServer {
    pub async fn start(registry: &Path, extra: &str) -> Self {
        let manager = Arc::new(
            VersionManager::start(
                Registry::open(registry),
                &national_pack(),
                Clock::Wall,
                None,
            )
            .await
            .expect("the registry's versions deploy"),
        );
        let (config, auth) = http_support::config(extra);
        let metrics = Metrics::new();
        let service = Service::with_metrics(
            &config.http,
            auth,
            Arc::new(manager.engine().clone()),
            Arc::new(MemoryStore::new()),
            &metrics,
        )
        .expect("service");
        service.set_version_control(Arc::new(
            VersionControl::new(Arc::clone(&manager)).with_metrics(&metrics),
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(service.serve(listener, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            manager,
            metrics,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn post(&self, path: &str, key: &str, body: impl Into<Vec<u8>>) -> Reply {
        http_support::call(
            self.addr,
            hyper::Method::POST,
            path,
            Some(key),
            Some(body.into()),
        )
        .await
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        http_support::call(self.addr, hyper::Method::GET, path, Some(key), None).await
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for ManagedServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
