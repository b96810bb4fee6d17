//! Issue 7 item 4: a candidate pack in shadow mode beside the active one on live
//! requests. The HIS gets only the active pack's alerts; the candidate's are
//! counted per rule and compared (only-candidate, only-active) in
//! `GET /api/v1/admin/shadow` and `/metrics`; promote makes it active, discard
//! drops it.

use hyper::StatusCode;
use serde_json::{Value, json};

use crate::http_support::{KEY_A, KEY_ADMIN, b1_request};
use crate::registry_support::{ManagedServer, derive_pack, fundwatch_ok};

const SEX: &str = "GZ10000301004000";
const COPY: &str = "FW-性别用药复核";

fn rule_ids(reply: &crate::http_support::Reply) -> Vec<String> {
    reply.body["output"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["rule_id"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_candidate_is_measured_not_answered_then_promoted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = dir.path().join("registry");
    let reg = registry.to_str().expect("utf8");
    // The candidate replaces the national sex rule by a local copy under another id:
    // the same requests give only-active alerts of one rule and only-candidate
    // alerts of the other.
    let original = std::fs::read_to_string(
        crate::registry_support::national_pack().join(format!("rules/{SEX}.toml")),
    )
    .expect("sex rule");
    let copy = original.replacen(
        &format!("rule_id = \"{SEX}\""),
        &format!("rule_id = \"{COPY}\""),
        1,
    );
    let candidate = derive_pack(
        dir.path(),
        "candidate",
        "1.0.0",
        |file, t| (file != format!("{SEX}.toml")).then_some(t),
        &[(&format!("{COPY}.toml"), copy)],
    );
    fundwatch_ok(&[
        "rules",
        "publish",
        "--registry",
        reg,
        candidate.to_str().expect("utf8"),
    ]);

    // An empty registry: the shipped pack and national KB are active.
    let server = ManagedServer::start(&registry, "[http]\nbudget_ms = 60000").await;
    let active = server.manager.engine().program().pack().version_label();

    let missing = server.get("/api/v1/admin/shadow", KEY_ADMIN).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
    let denied = server
        .post(
            "/api/v1/admin/shadow",
            KEY_A,
            json!({"version": "candidate@1.0.0"}).to_string(),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let started = server
        .post(
            "/api/v1/admin/shadow",
            KEY_ADMIN,
            json!({"version": "candidate@1.0.0"}).to_string(),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    assert_eq!(started.body["validation"]["pack"], "candidate@1.0.0");

    for _ in 0..3 {
        let reply = server.post("/fsi/3101", KEY_A, b1_request()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let ids = rule_ids(&reply);
        assert!(ids.contains(&SEX.to_string()), "{ids:?}");
        assert!(
            !ids.contains(&COPY.to_string()),
            "shadow alerts are never sent: {ids:?}"
        );
        for alert in reply.body["output"]["result"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(alert["rule_pack_version"], active.as_str());
        }
    }
    let shadow = server
        .manager
        .engine()
        .deployment()
        .shadow()
        .cloned()
        .expect("shadow runs");
    shadow.settle().await;

    let report = server.get("/api/v1/admin/shadow", KEY_ADMIN).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    let r = &report.body;
    assert_eq!(r["candidate"], "candidate@1.0.0");
    assert_eq!(r["active"], active.as_str());
    let batches = r["batches"].as_u64().unwrap_or(0) + r["skipped_batches"].as_u64().unwrap_or(0);
    assert_eq!(batches, 3, "{r}");
    let evaluated = r["batches"].as_u64().unwrap_or(0);
    assert!(evaluated >= 1, "{r}");
    let rule = |id: &str, field: &str| r["rules"][id][field].as_u64().unwrap_or(0);
    assert_eq!(rule(SEX, "active"), evaluated);
    assert_eq!(rule(SEX, "candidate"), 0);
    assert_eq!(rule(SEX, "only_active"), evaluated);
    assert_eq!(rule(COPY, "candidate"), evaluated);
    assert_eq!(rule(COPY, "only_candidate"), evaluated);
    assert_eq!(r["only_candidate"], r["only_active"]);
    let recent = r["recent"].as_array().expect("recent diffs");
    assert!(
        recent
            .iter()
            .any(|d| d["side"] == "only_candidate" && d["rule_id"] == COPY)
    );
    // Rules both packs share raise the same alerts: no difference reported.
    for (id, stats) in r["rules"].as_object().expect("rules") {
        if id != SEX && id != COPY {
            assert_eq!(stats["only_active"], 0, "{id}: {stats}");
            assert_eq!(stats["only_candidate"], 0, "{id}: {stats}");
        }
    }

    let metrics = server.metrics.render();
    let line = format!(
        "fundwatch_shadow_alert_diff{{rule_id=\"{COPY}\",side=\"only_candidate\"}} {evaluated}"
    );
    assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    assert!(
        metrics.contains("fundwatch_rule_pack_info{mode=\"shadow\",version=\"candidate@1.0.0\"} 1"),
        "{metrics}"
    );

    // Promote: the candidate answers from now on.
    let promoted = server
        .post("/api/v1/admin/shadow/promote", KEY_ADMIN, "")
        .await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.text);
    let reply = server.post("/fsi/3101", KEY_A, b1_request()).await;
    let ids = rule_ids(&reply);
    assert!(
        ids.contains(&COPY.to_string()) && !ids.contains(&SEX.to_string()),
        "{ids:?}"
    );
    let versions: Vec<&Value> = reply.body["output"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| &a["rule_pack_version"])
        .collect();
    assert!(
        versions.iter().all(|v| *v == "candidate@1.0.0"),
        "{versions:?}"
    );
    assert_eq!(
        server.get("/api/v1/admin/shadow", KEY_ADMIN).await.status,
        StatusCode::NOT_FOUND
    );

    // Shadow again and discard: nothing changes for the HIS.
    let again = server
        .post(
            "/api/v1/admin/shadow",
            KEY_ADMIN,
            json!({"version": "candidate@1.0.0"}).to_string(),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    let discarded = server
        .post("/api/v1/admin/shadow/discard", KEY_ADMIN, "")
        .await;
    assert_eq!(discarded.status, StatusCode::OK, "{}", discarded.text);
    assert_eq!(discarded.body["activation"]["action"], "discard");
    let log = server.manager.registry().log().expect("log");
    let actions: Vec<String> = log.iter().map(|a| format!("{:?}", a.action)).collect();
    assert_eq!(
        actions,
        ["Shadow", "Promote", "Shadow", "Discard"],
        "{log:#?}"
    );
    server.stop().await;
}
