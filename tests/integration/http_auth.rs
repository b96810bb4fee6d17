//! Per-institution API keys over real HTTP: a missing or wrong key is 401, a key
//! submits and reads only its own institution's requests, alerts and feedback
//! (another institution's alert is a 404, the same as an unknown one), 3103
//! validation names the field, and admin endpoints need the admin role and are
//! audit-logged to the append-only log.

use crate::http_support;

use http_support::{HOSPITAL_A, KEY_A, KEY_ADMIN, KEY_B, Server, b1_request};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

/// Posts B.1 as hospital A and returns the jr_id of its first alert.
async fn first_alert(server: &Server) -> String {
    let reply = server.post("/fsi/3101", KEY_A, b1_request()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body["output"]["result"][0]["jr_id"]
        .as_str()
        .expect("B.1 gets an alert")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_wrong_keys_are_401_and_bearer_works() {
    let server = Server::real_in_memory("").await;
    let reply = server
        .call(
            Method::POST,
            "/fsi/3101",
            None,
            Some(b1_request().into_bytes()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body["infcode"], -1);
    assert_eq!(reply.field(), "X-FundWatch-Key");
    assert!(
        reply.err_msg().contains("missing API key"),
        "{}",
        reply.err_msg()
    );
    assert!(reply.header("www-authenticate").is_some());

    let reply = server
        .post("/fsi/3101", "not-a-configured-key-123", b1_request())
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(
        reply.err_msg().contains("not recognised"),
        "{}",
        reply.err_msg()
    );
    let reply = server
        .get("/api/v1/alerts", "not-a-configured-key-123")
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // The same key as a bearer token.
    let stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(Method::POST)
        .uri("/fsi/3101")
        .header("host", "fundwatch")
        .header("authorization", format!("Bearer {KEY_A}"))
        .body(http_body_util::Full::new(bytes::Bytes::from(b1_request())))
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_institution_submits_and_reads_only_its_own() {
    let server = Server::real_in_memory("").await;
    // B's key may not submit A's request.
    let reply = server.post("/fsi/3101", KEY_B, b1_request()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(reply.field(), "fixmedins_code");
    assert!(reply.err_msg().contains(HOSPITAL_A), "{}", reply.err_msg());
    // An admin key cannot act for an institution.
    let reply = server.post("/fsi/3101", KEY_ADMIN, b1_request()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    let jr_id = first_alert(&server).await;
    let own = server.get(&format!("/api/v1/alerts/{jr_id}"), KEY_A).await;
    assert_eq!(own.status, StatusCode::OK);

    // B cannot read A's alert: the same 404 as for an id that does not exist.
    let theirs = server.get(&format!("/api/v1/alerts/{jr_id}"), KEY_B).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{}", theirs.text);
    assert_eq!(theirs.field(), "jr_id");
    let unknown = server.get("/api/v1/alerts/JR-does-not-exist", KEY_B).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let listed = server.get("/api/v1/alerts?mdtrt_id=M0001", KEY_B).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["count"], 0, "{}", listed.text);

    // …nor give feedback on it.
    let feedback = json!({"warn_type": 1, "warns": [
        {"warn_rslt_id": jr_id, "dspo_way": 2}]});
    let reply = server.post("/fsi/3103", KEY_B, feedback.to_string()).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert_eq!(reply.field(), "warns[0].warn_rslt_id");
    assert_eq!(reply.body["error"]["value"], format!("{jr_id:?}"));
    // A's own feedback goes through (numbers accepted for the codes).
    let reply = server.post("/fsi/3103", KEY_A, feedback.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let own = server.get(&format!("/api/v1/alerts/{jr_id}"), KEY_A).await;
    assert_eq!(own.body["feedback"][0]["dspo_way"], "2");
    assert_eq!(own.body["feedback"][0]["warn_type"], "1");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_validated_field_by_field_and_all_or_nothing() {
    let server = Server::real_in_memory("").await;
    let jr_id = first_alert(&server).await;

    // dspo_way = 1 without a reason, bare and in the envelope.
    let bare = json!({"warn_type": "1", "warns": [
        {"warn_rslt_id": jr_id, "dspo_way": "1"}]});
    let reply = server.post("/fsi/3103", KEY_A, bare.to_string()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["infcode"], -1);
    assert_eq!(reply.field(), "warns[0].dspo_way_rea");
    assert!(
        reply
            .err_msg()
            .starts_with("warns[0].dspo_way_rea: mandatory when dspo_way = 1"),
        "{}",
        reply.err_msg()
    );
    let enveloped = json!({"infno": "3103", "input": {"data": {"warn_type": "1", "warns": [
        {"warn_rslt_id": jr_id, "dspo_way": "1", "dspo_way_rea": "  "}]}}});
    let reply = server.post("/fsi/3103", KEY_A, enveloped.to_string()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.field(), "input.data.warns[0].dspo_way_rea");

    // An unknown warn_rslt_id after a valid one: named, and nothing is stored.
    let mixed = json!({"warn_type": "1", "warns": [
        {"warn_rslt_id": jr_id, "dspo_way": "2"},
        {"warn_rslt_id": "JR-unknown", "dspo_way": "2"}]});
    let reply = server.post("/fsi/3103", KEY_A, mixed.to_string()).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.field(), "warns[1].warn_rslt_id");
    assert!(
        reply.err_msg().contains("JR-unknown"),
        "{}",
        reply.err_msg()
    );
    let own = server.get(&format!("/api/v1/alerts/{jr_id}"), KEY_A).await;
    assert_eq!(own.body["feedback"], json!([]));

    for (body, field) in [
        (
            json!({"warns": [{"warn_rslt_id": jr_id, "dspo_way": "2"}]}),
            "warn_type",
        ),
        (json!({"warn_type": "3", "warns": []}), "warn_type"),
        (json!({"warn_type": "2", "warns": []}), "warns"),
        (
            json!({"warn_type": "2", "warns": [{"dspo_way": "2"}]}),
            "warns[0].warn_rslt_id",
        ),
        (
            json!({"warn_type": "2", "warns": [{"warn_rslt_id": jr_id, "dspo_way": "9"}]}),
            "warns[0].dspo_way",
        ),
    ] {
        let reply = server.post("/fsi/3103", KEY_A, body.to_string()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text
        );
        assert_eq!(reply.field(), field, "{body}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_need_the_admin_role_and_are_audit_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::real("", dir.path()).await;
    let jr_id = first_alert(&server).await;

    let denied = server.get("/api/v1/admin/audit", KEY_A).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.field(), "X-FundWatch-Key");
    let anonymous = server
        .call(Method::GET, "/api/v1/admin/status", None, None)
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let status = server.get("/api/v1/admin/status", KEY_ADMIN).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.text);
    assert!(
        status.body["rule_pack"]
            .as_str()
            .is_some_and(|p| p.starts_with("national@"))
    );
    let alerts = server
        .get(
            &format!("/api/v1/admin/alerts?fixmedins_code={HOSPITAL_A}&mdtrt_id=M0001"),
            KEY_ADMIN,
        )
        .await;
    assert_eq!(alerts.status, StatusCode::OK, "{}", alerts.text);
    assert!(
        alerts.body["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .any(|a| a["jr_id"] == jr_id.as_str())
    );
    let missing = server.get("/api/v1/admin/alerts", KEY_ADMIN).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.field(), "fixmedins_code");

    let audit = server.get("/api/v1/admin/audit", KEY_ADMIN).await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    let entries: Vec<(String, String, u64)> = audit.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or("").to_string(),
                e["action"].as_str().unwrap_or("").to_string(),
                e["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (
                HOSPITAL_A.to_string(),
                "GET /api/v1/admin/audit".to_string(),
                403
            ),
            ("-".to_string(), "GET /api/v1/admin/status".to_string(), 401),
            (
                "ops".to_string(),
                "GET /api/v1/admin/status".to_string(),
                200
            ),
            (
                "ops".to_string(),
                format!("GET /api/v1/admin/alerts?fixmedins_code={HOSPITAL_A}&mdtrt_id=M0001"),
                200
            ),
            (
                "ops".to_string(),
                "GET /api/v1/admin/alerts".to_string(),
                400
            ),
        ]
    );
    // The audit log is an append-only file that outlives the process.
    server.stop().await;
    let log = std::fs::read_to_string(dir.path().join("audit.ndjson")).expect("audit log");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line"))
        .collect();
    assert_eq!(lines.len(), 6, "{log}");
    assert_eq!(lines[5]["action"], "GET /api/v1/admin/audit");
}
