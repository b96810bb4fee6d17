//! 3101/3102 over real HTTP on loopback with the shipped national KB and pack:
//! the DOMAIN B.1 request gets its GZ10000301004000 alert in the national response
//! shape, the alerts equal `fundwatch check`'s for the same events, alerts and
//! feedback survive a restart, and bad input gets an error naming the field.

use crate::http_support;

use std::process::Command;

use http_support::{HOSPITAL_A, HOSPITAL_B, KEY_A, KEY_B, Server, b1_request, fixture_lines};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b1_gets_the_sex_alert_in_the_national_shape_and_it_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::real("[http]\nadmdvs = \"430796\"", dir.path()).await;

    let reply = server.post("/fsi/3101", KEY_A, b1_request()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let keys: Vec<&str> = reply
        .body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "infcode",
            "err_msg",
            "inf_refmsgid",
            "refmsg_time",
            "respond_time",
            "output"
        ]
    );
    assert_eq!(reply.body["infcode"], 0);
    assert_eq!(reply.body["err_msg"], "");
    let refmsgid = reply.body["inf_refmsgid"].as_str().expect("inf_refmsgid");
    assert_eq!(refmsgid.len(), 30, "{refmsgid}");
    assert!(refmsgid.starts_with("430796") && refmsgid.bytes().all(|b| b.is_ascii_digit()));
    for field in ["refmsg_time", "respond_time"] {
        let time = reply.body[field].as_str().expect(field);
        assert_eq!(time.len(), 17, "{field} = {time}");
        assert!(time.bytes().all(|b| b.is_ascii_digit()), "{field} = {time}");
    }
    assert!(reply.header("x-fundwatch-eval-us").is_some());
    assert!(reply.header("x-fundwatch-server-us").is_some());

    let result = reply.body["output"]["result"].as_array().expect("result");
    let sex: Vec<&Value> = result
        .iter()
        .filter(|a| a["rule_id"] == "GZ10000301004000")
        .collect();
    assert_eq!(sex.len(), 1, "{result:#?}");
    let alert = sex[0];
    assert_eq!(alert["rule_name"], "药品区分性别使用");
    assert_eq!(
        alert["vola_cont"],
        "左炔诺孕酮宫内节育系统限女性使用，与患者性别(男)不符"
    );
    assert_eq!(alert["patn_id"], "P0001");
    assert_eq!(alert["mdtrt_id"], "M0001");
    assert_eq!(alert["vola_amt"], 1153.0);
    assert_eq!(alert["task_id"], "T-000001");
    assert_eq!(alert["fixmedins_code"], HOSPITAL_A);
    assert_eq!(alert["judge_result_detail_dtos"][0]["rx_id"], "RX-100");
    assert_eq!(alert["judge_result_detail_dtos"][0]["vola_item_type"], "1");
    let jr_id = alert["jr_id"].as_str().expect("jr_id").to_string();

    // Stored: readable by encounter and by time, then feedback is attached.
    let listed = server.get("/api/v1/alerts?mdtrt_id=M0001", KEY_A).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert!(
        listed.body["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .any(|a| a["jr_id"] == jr_id.as_str()),
        "{}",
        listed.text
    );
    let by_event_time = server
        .get(
            "/api/v1/alerts?from=2025-06-14&to=2025-06-14&time_field=event_time",
            KEY_A,
        )
        .await;
    assert_eq!(
        by_event_time.body["count"],
        result.len(),
        "{}",
        by_event_time.text
    );
    let before = server.get("/api/v1/alerts?to=2000-01-01", KEY_A).await;
    assert_eq!(before.body["count"], 0, "{}", before.text);

    let feedback = json!({"infno": "3103", "fixmedins_code": HOSPITAL_A, "msgid": "M-1",
        "input": {"data": {"warn_type": "1", "warns": [
            {"warn_rslt_id": jr_id, "dspo_way": "1", "dspo_way_rea": "医嘱录入错误已另行处理"}]}}});
    let reply = server.post("/fsi/3103", KEY_A, feedback.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["infcode"], 0);
    assert_eq!(reply.body["output"]["accepted"], 1);

    server.stop().await;
    let server = Server::real("", dir.path()).await;
    let one = server.get(&format!("/api/v1/alerts/{jr_id}"), KEY_A).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    assert_eq!(one.body["rule_id"], "GZ10000301004000");
    assert_eq!(one.body["feedback"][0]["dspo_way"], "1");
    assert_eq!(
        one.body["feedback"][0]["dspo_way_rea"],
        "医嘱录入错误已另行处理"
    );
    assert_eq!(one.body["feedback"][0]["msgid"], "M-1");
    server.stop().await;
}

/// Alerts without `emitted_at` (stamped by the wall clock over HTTP and by the
/// event time in `check`).
fn without_emitted_at(mut alerts: Vec<Value>) -> Vec<Value> {
    for alert in &mut alerts {
        if let Some(obj) = alert.as_object_mut() {
            obj.remove("emitted_at");
        }
    }
    alerts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_gives_the_same_alerts_as_fundwatch_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = http_support::repo().join("tests/fixtures/events.ndjson");
    let output = dir.path().join("alerts.ndjson");
    let check = Command::new(env!("CARGO_BIN_EXE_fundwatch"))
        .args(["check", "--input"])
        .arg(&fixture)
        .arg("--output")
        .arg(&output)
        .output()
        .expect("runs fundwatch check");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let expected: Vec<Value> = std::fs::read_to_string(&output)
        .expect("check output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert"))
        .collect();
    assert!(!expected.is_empty());

    let server = Server::real_in_memory("").await;
    // Each line to its interface with its institution's key; sequentially first…
    let route = |line: &str| -> (&'static str, &'static str) {
        let value: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        let data = value
            .pointer("/input/data")
            .cloned()
            .unwrap_or_else(|| value.clone());
        let scenario = match &data["trig_scen"] {
            Value::String(s) => s.parse::<u8>().unwrap_or(0),
            Value::Number(n) => n.as_u64().unwrap_or(0) as u8,
            _ => 0,
        };
        let path = if scenario >= 6 {
            "/fsi/3102"
        } else {
            "/fsi/3101"
        };
        let key = if line.contains(HOSPITAL_B) {
            KEY_B
        } else {
            KEY_A
        };
        (path, key)
    };
    let lines = fixture_lines();
    let mut sequential = Vec::new();
    let mut errors = Vec::new();
    for line in &lines {
        let (path, key) = route(line);
        let reply = server.post(path, key, line.clone()).await;
        if reply.status == StatusCode::OK {
            assert_eq!(reply.body["infcode"], 0, "{}", reply.text);
            assert!(
                reply.body.get("warn_msg").is_none(),
                "skipped: {}",
                reply.text
            );
            sequential.extend(
                reply.body["output"]["result"]
                    .as_array()
                    .expect("result")
                    .iter()
                    .cloned(),
            );
        } else {
            errors.push((reply.status, reply.field().to_string()));
        }
    }
    assert_eq!(
        without_emitted_at(sequential),
        without_emitted_at(expected.clone())
    );
    // The fixture's unreadable lines: a bad birth date and a line that is not JSON.
    assert_eq!(
        errors,
        [
            (
                StatusCode::BAD_REQUEST,
                "input.data.patient_dtos[0].brdy".to_string()
            ),
            (StatusCode::BAD_REQUEST, "$".to_string())
        ]
    );

    // …then all at once on a fresh server (history of its own), so they share
    // micro-batches: the same alerts.
    server.stop().await;
    let server = Server::real_in_memory("").await;
    let addr = server.addr;
    let tasks: Vec<_> = lines
        .iter()
        .map(|line| {
            let (path, key) = route(line);
            let line = line.clone();
            tokio::spawn(async move {
                http_support::call(addr, Method::POST, path, Some(key), Some(line.into_bytes()))
                    .await
            })
        })
        .collect();
    let mut concurrent = Vec::new();
    for task in tasks {
        let reply = task.await.expect("request task");
        if reply.status == StatusCode::OK {
            concurrent.extend(
                reply.body["output"]["result"]
                    .as_array()
                    .expect("result")
                    .iter()
                    .cloned(),
            );
        }
    }
    assert_eq!(without_emitted_at(concurrent), without_emitted_at(expected));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_data_interfaces_and_scenarios_are_checked() {
    let server = Server::real_in_memory("").await;
    let envelope: Value = serde_json::from_str(&b1_request()).expect("B.1");
    let enveloped = server.post("/fsi/3101", KEY_A, envelope.to_string()).await;

    // The bare data object gives the same alerts (same jr_id).
    let bare = envelope["input"]["data"].clone();
    let reply = server.post("/fsi/3101", KEY_A, bare.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let ids = |v: &Value| -> Vec<String> {
        v["output"]["result"]
            .as_array()
            .expect("result")
            .iter()
            .map(|a| a["jr_id"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(ids(&reply.body), ids(&enveloped.body));
    assert!(!ids(&reply.body).is_empty());

    // A 事中 scenario on the 事前 interface, and the reverse.
    let mut wrong = envelope.clone();
    wrong["input"]["data"]["trig_scen"] = json!("6");
    wrong["infno"] = json!("3101");
    let reply = server.post("/fsi/3101", KEY_A, wrong.to_string()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["infcode"], -1);
    assert_eq!(reply.field(), "input.data.trig_scen");
    assert!(reply.err_msg().contains("1–5"), "{}", reply.err_msg());
    let reply = server.post("/fsi/3102", KEY_A, bare.to_string()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.field(), "trig_scen");
    // infno of another interface.
    let reply = server.post("/fsi/3102", KEY_A, envelope.to_string()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.field(), "infno");
    // rule_ids narrows: asking only for another rule gives no sex alert.
    let mut narrowed = envelope.clone();
    narrowed["input"]["data"]["rule_ids"] = json!(["GZ10000101007000"]);
    let reply = server.post("/fsi/3101", KEY_A, narrowed.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(
        reply.body["output"]["result"]
            .as_array()
            .expect("result")
            .iter()
            .all(|a| a["rule_id"] == "GZ10000101007000"),
        "{}",
        reply.text
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_json_errors_naming_the_field() {
    let server = Server::real_in_memory("").await;

    let reply = server
        .post("/fsi/3101", KEY_A, "{\"input\": {\"data\": ")
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["infcode"], -1);
    assert_eq!(reply.field(), "$");
    assert!(
        reply.err_msg().starts_with("$: not valid JSON"),
        "{}",
        reply.err_msg()
    );
    assert_eq!(reply.body["inf_refmsgid"].as_str().map(str::len), Some(30));

    let reply = server.post("/fsi/3101", KEY_A, "").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.err_msg().contains("empty body"),
        "{}",
        reply.err_msg()
    );

    let mut bad: Value = serde_json::from_str(&b1_request()).expect("B.1");
    bad["input"]["data"]["patient_dtos"][0]["fsi_encounter_dtos"][0]["fsi_order_dtos"][0]["cnt"] =
        json!("lots");
    let reply = server.post("/fsi/3101", KEY_A, bad.to_string()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(
        reply.field(),
        "input.data.patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[0].cnt"
    );
    assert!(
        !reply.body["error"]["reason"]
            .as_str()
            .unwrap_or("")
            .is_empty()
    );
    assert_eq!(reply.body["error"]["value"], "\"lots\"");

    let reply = server
        .call(Method::GET, "/fsi/3101", Some(KEY_A), None)
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.field(), "method");
    let reply = server.get("/fsi/3104", KEY_A).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.field(), "path");
    let reply = server.get("/api/v1/alerts?mdtrt=M0001", KEY_A).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.field(), "mdtrt");
    let reply = server.get("/api/v1/alerts?from=yesterday", KEY_A).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.field(), "from");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_openapi_is_the_checked_in_document_and_lists_every_route() {
    let server = Server::real_in_memory("").await;
    let reply = server.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let checked_in = std::fs::read_to_string(http_support::repo().join("docs/openapi.json"))
        .expect("docs/openapi.json");
    assert_eq!(reply.text, checked_in);
    let doc: Value = serde_json::from_str(&checked_in).expect("valid JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.0"))
    );
    for path in [
        "/fsi/3101",
        "/fsi/3102",
        "/fsi/3103",
        "/api/v1/alerts",
        "/api/v1/alerts/{jr_id}",
        "/api/v1/admin/alerts",
        "/api/v1/admin/audit",
        "/api/v1/admin/status",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from docs/openapi.json"
        );
    }
    let health = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.body["status"], "ok");
    let ready = server.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["status"], "ready");
    let metrics = server.call(Method::GET, "/metrics", None, None).await;
    assert!(
        metrics.text.contains("fundwatch_http_requests_total"),
        "{}",
        metrics.text
    );
    server.stop().await;
}
