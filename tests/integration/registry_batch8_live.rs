//! Issue 7 item 6, end to end with the real binary: national batches 1–7 (the
//! xlsx as published) imported as KB version A, batch 8 imported on top as B,
//! a running `fundwatch serve` switched from A to B through the admin endpoint —
//! an item that only batch 8 lists (住院诊查费 limited to once a day) alerts
//! after the activation and not before, without a restart. Also: the KB version
//! is chosen by service date (a back-dated claim keeps version A), the diff
//! lists batch 8's 93 points, and the activation is in the audit log and the
//! registry's activation log with the admin key's name.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::http_support::{self, KEY_A, KEY_ADMIN, KEY_B, Reply};
use crate::registry_support::{Line, alerts_of, derive_pack, fundwatch_ok, request, xlsx_dir};

/// 限定频次 (batch 8-1) and 药品区分性别使用 (batch 1).
const FREQUENCY: &str = "GZ10000102014000";
const SEX: &str = "GZ10000301004000";

/// A male inpatient on `day` with the female-only IUD (batch 1) and 住院诊查费
/// twice on one day (batch 8-1 allows once a day).
fn claim(patn: &str, day: &str) -> String {
    request(
        patn,
        "1",
        "1970-01-01",
        &format!("{day} 08:00:00"),
        &[
            Line::new(
                "R1",
                "XG02BAZ061Z007010279543",
                "左炔诺孕酮宫内节育系统",
                &format!("{day} 09:00:00"),
            ),
            Line::new(
                "R2",
                "001102000050000",
                "住院诊查费",
                &format!("{day} 09:00:00"),
            ),
            Line::new(
                "R3",
                "001102000050000",
                "住院诊查费",
                &format!("{day} 17:00:00"),
            ),
        ],
    )
}

fn saved_id(stdout: &str) -> String {
    stdout
        .split_whitespace()
        .find(|w| w.starts_with("kb-"))
        .unwrap_or_else(|| panic!("no version id in {stdout:?}"))
        .to_string()
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_8_goes_live_on_a_running_serve_without_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = dir.path().join("registry");
    let reg = registry.to_str().expect("utf8 path");
    let xlsx = xlsx_dir();
    let files = |prefixes: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&xlsx)
            .expect("national xlsx")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.ends_with(".xlsx") && prefixes.iter().any(|pre| name.starts_with(pre))
            })
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };

    // Version A: batches 1–7; version B: A + batch 8 (the four xlsx as published).
    let first = files(&[
        "batch01", "batch02", "batch03", "batch04", "batch05", "batch06", "batch07",
    ]);
    assert_eq!(first.len(), 10, "{first:?}");
    let mut args = vec!["kb", "import", "--registry", reg, "--notes", "batches 1-7"];
    args.extend(first.iter().map(String::as_str));
    let a = saved_id(&fundwatch_ok(&args));
    let eighth = files(&["batch08"]);
    assert_eq!(eighth.len(), 4, "{eighth:?}");
    let mut args = vec!["kb", "import", "--registry", reg, "--base", &a];
    args.extend(eighth.iter().map(String::as_str));
    let b = saved_id(&fundwatch_ok(&args));
    assert_ne!(a, b);
    let diff = fundwatch_ok(&["kb", "diff", "--registry", reg, &a, &b]);
    assert!(diff.contains("93 added, 0 removed, 0 changed"), "{diff}");
    assert!(diff.contains("医疗服务项目限定频次"), "{diff}");

    // The national rules without requires_classes (a KB of batches 1–7 lacks most
    // classes: their rules are dormant until a version brings the knowledge).
    let pack = derive_pack(dir.path(), "national-partial", "1.0.0", |_, t| Some(t), &[]);
    fundwatch_ok(&[
        "rules",
        "publish",
        "--registry",
        reg,
        pack.to_str().expect("utf8"),
    ]);
    fundwatch_ok(&[
        "rules",
        "activate",
        "--registry",
        reg,
        "national-partial@1.0.0",
    ]);
    let activated = fundwatch_ok(&["kb", "activate", "--registry", reg, &a]);
    assert!(activated.contains("dormant"), "{activated}");
    assert!(
        activated.contains(FREQUENCY),
        "the 限定频次 rule waits for batch 8: {activated}"
    );

    // `fundwatch serve` on that registry.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            r#"[http]
addr = "127.0.0.1:{port}"
admdvs = "430796"
budget_ms = 30000

[engine]
registry = "{reg}"
registry_poll_ms = 200

[store]
kind = "memory"

[[auth.keys]]
role = "institution"
fixmedins_code = "{hospital}"
key = "{KEY_A}"

[[auth.keys]]
role = "institution"
fixmedins_code = "H11010500003"
key = "{KEY_B}"

[[auth.keys]]
role = "admin"
name = "ops"
key = "{KEY_ADMIN}"
"#,
            hospital = http_support::HOSPITAL_A,
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fundwatch"))
        .args(["serve", "--log-format", "text", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts fundwatch serve");
    // Drain stderr so the server never blocks on a full pipe.
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || for _ in BufReader::new(stderr).lines() {});
    let serve = Serve(child);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let call = |method: Method, path: &'static str, key: &'static str, body: Option<String>| {
        http_support::call(addr, method, path, Some(key), body.map(String::into_bytes))
    };
    let started = Instant::now();
    loop {
        let ready =
            tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
                .await;
        if matches!(ready, Ok(Ok(_))) {
            let r = call(Method::GET, "/readyz", KEY_A, None).await;
            if r.status == StatusCode::OK {
                assert_eq!(r.body["kb"], a.as_str(), "{}", r.text);
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "fundwatch serve did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Before: version A has no 限定频次 knowledge.
    let before: Reply = call(
        Method::POST,
        "/fsi/3101",
        KEY_A,
        Some(claim("P-before", "2026-03-02")),
    )
    .await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text);
    assert!(alerts_of(&before, FREQUENCY).is_empty(), "{}", before.text);
    let sex = alerts_of(&before, SEX);
    assert_eq!(sex.len(), 1, "{}", before.text);
    assert_eq!(sex[0]["kb_version"], a.as_str());

    // Activating needs the admin role.
    let denied = call(
        Method::POST,
        "/api/v1/admin/kb/activate",
        KEY_A,
        Some(json!({"version": b}).to_string()),
    )
    .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.text);

    let activation = call(
        Method::POST,
        "/api/v1/admin/kb/activate",
        KEY_ADMIN,
        Some(json!({"version": b}).to_string()),
    )
    .await;
    assert_eq!(activation.status, StatusCode::OK, "{}", activation.text);
    let validation = &activation.body["validation"];
    assert_eq!(validation["kb"], b.as_str());
    assert!(
        validation["cases"].as_u64().unwrap_or(0) > 100,
        "{validation}"
    );
    assert_eq!(validation["cases"], validation["passed"]);
    assert_eq!(activation.body["activation"]["actor"], "ops");
    assert_eq!(
        activation.body["activation"]["to"]["kb"],
        json!([a.as_str(), b.as_str()]),
        "A stays for services before B's effective date"
    );

    // After, same process: batch 8's limit applies to services from 2026-01-06.
    let after = call(
        Method::POST,
        "/fsi/3101",
        KEY_A,
        Some(claim("P-after", "2026-03-02")),
    )
    .await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.text);
    let frequency = alerts_of(&after, FREQUENCY);
    assert_eq!(frequency.len(), 1, "{}", after.text);
    assert_eq!(frequency[0]["kb_version"], b.as_str());
    let lines: Vec<&Value> = frequency[0]["judge_result_detail_dtos"]
        .as_array()
        .expect("details")
        .iter()
        .filter(|d| d["vola_item_type"] == "1")
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["rx_id"], "R3", "the later line carries the excess");
    assert_eq!(alerts_of(&after, SEX)[0]["kb_version"], b.as_str());

    // A back-dated claim (service date before B took effect) keeps version A.
    let old = call(
        Method::POST,
        "/fsi/3101",
        KEY_A,
        Some(claim("P-old", "2025-12-20")),
    )
    .await;
    assert_eq!(old.status, StatusCode::OK, "{}", old.text);
    assert!(alerts_of(&old, FREQUENCY).is_empty(), "{}", old.text);
    assert_eq!(alerts_of(&old, SEX)[0]["kb_version"], a.as_str());

    let ready = call(Method::GET, "/readyz", KEY_A, None).await;
    assert_eq!(ready.body["kb"], b.as_str(), "{}", ready.text);
    let versions = call(Method::GET, "/api/v1/admin/versions", KEY_ADMIN, None).await;
    assert_eq!(versions.status, StatusCode::OK, "{}", versions.text);
    let slots = versions.body["status"]["kb"].as_array().expect("slots");
    assert_eq!(slots.len(), 2);
    assert!(
        slots[0]["dormant"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
    );

    // Audited: the admin call, and the registry's activation log with the actor.
    let audit = call(Method::GET, "/api/v1/admin/audit", KEY_ADMIN, None).await;
    let entries = audit.body["entries"].as_array().expect("audit entries");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "POST /api/v1/admin/kb/activate"
                && e["status"] == 200
                && e["actor"] == "ops"),
        "{}",
        audit.text
    );
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "POST /api/v1/admin/kb/activate" && e["status"] == 403),
        "refused attempts are audited too: {}",
        audit.text
    );
    let log = fundwatch_ok(&["rules", "log", "--registry", reg]);
    let last = log
        .lines()
        .rev()
        .find(|l| l.contains("ActivateKb"))
        .expect("log line");
    assert!(last.contains("ops") && last.contains(&b), "{log}");

    // A rollback from the CLI — another process — reaches the running service
    // through the registry: it returns to version A without a restart.
    let rolled = fundwatch_ok(&["kb", "rollback", "--registry", reg]);
    assert!(rolled.contains("RollbackKb"), "{rolled}");
    let waited = Instant::now();
    loop {
        let r = call(Method::GET, "/readyz", KEY_A, None).await;
        if r.body["kb"] == a.as_str() {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "serve did not follow the rollback: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = call(
        Method::POST,
        "/fsi/3101",
        KEY_A,
        Some(claim("P-again", "2026-03-02")),
    )
    .await;
    assert!(alerts_of(&again, FREQUENCY).is_empty(), "{}", again.text);
    assert_eq!(alerts_of(&again, SEX)[0]["kb_version"], a.as_str());
    drop(serve);
}
