//! `[http.tls]` with `client_ca`: HTTPS where a hospital must present a client
//! certificate signed by the configured CA (mTLS), its API key still required.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    SanType,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::http_support::{KEY_A, Server, b1_request};

/// A CA and the key that signs with it.
struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn ca() -> Ca {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("CA certificate");
    Ca { cert, key }
}

/// A certificate signed by `ca`: the server's (for localhost and 127.0.0.1) or a
/// hospital's (client authentication).
fn issue(ca: &Ca, server: bool) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(if server {
        vec!["localhost".to_string()]
    } else {
        Vec::new()
    })
    .expect("params");
    if server {
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
    } else {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    let cert = params.signed_by(&key, &ca.cert, &ca.key).expect("sign");
    (cert, key)
}

fn write(dir: &Path, name: &str, pem: String) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("write PEM");
    path.display().to_string()
}

/// POSTs the B1 request to /fsi/3101 over TLS, presenting `client` if given.
async fn post_3101(
    addr: SocketAddr,
    server_ca: &Ca,
    client: Option<&(Certificate, KeyPair)>,
) -> Result<(u16, String), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(server_ca.cert.der().clone())
        .map_err(|e| e.to_string())?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(|e| e.to_string())?,
        None => builder.with_no_client_auth(),
    };
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = Request::post("/fsi/3101")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .header("x-fundwatch-key", KEY_A)
        .body(Full::new(Bytes::from(b1_request())))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_admits_only_clients_with_a_certificate_of_the_configured_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hospitals = ca();
    let server_ca = ca();
    let (server_cert, server_key) = issue(&server_ca, true);
    let config = format!(
        "[http.tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n",
        write(dir.path(), "server.pem", server_cert.pem()),
        write(dir.path(), "server.key", server_key.serialize_pem()),
        write(dir.path(), "hospitals-ca.pem", hospitals.cert.pem()),
    );
    let server = Server::real_in_memory(&config).await;

    let hospital = issue(&hospitals, false);
    let (status, body) = post_3101(server.addr, &server_ca, Some(&hospital))
        .await
        .expect("a hospital with a certificate of the CA is served");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"infcode\":0"), "{body}");
    assert!(body.contains("GZ10000301004000"), "the B1 alert: {body}");

    let without = post_3101(server.addr, &server_ca, None).await;
    assert!(
        without.is_err(),
        "served without a client certificate: {without:?}"
    );

    let stranger = issue(&ca(), false);
    let foreign = post_3101(server.addr, &server_ca, Some(&stranger)).await;
    assert!(
        foreign.is_err(),
        "served a certificate of another CA: {foreign:?}"
    );

    // Plain HTTP to the TLS port gets no answer.
    let plain = TcpStream::connect(server.addr).await.expect("connect");
    let plain = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(plain)).await;
    if let Ok((mut sender, connection)) = plain {
        tokio::spawn(connection);
        let request = Request::get("/healthz")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .expect("request");
        assert!(
            sender.send_request(request).await.is_err(),
            "plain HTTP was answered"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn an_unreadable_tls_file_is_a_start_up_error_naming_the_key() {
    let (config, _) = crate::http_support::config(
        "[http.tls]\ncert = \"/nonexistent/server.pem\"\nkey = \"/nonexistent/server.key\"\n",
    );
    let started = fundwatch_connectors::http::Service::new(
        &config.http,
        fundwatch_connectors::http::Authenticator::default(),
        Arc::new(crate::http_support::engine()),
        Arc::new(fundwatch_connectors::http::MemoryStore::new()),
    );
    let Err(err) = started else {
        panic!("a service with unreadable TLS files starts");
    };
    let message = err.to_string();
    assert!(message.contains("http.tls.cert"), "{message}");
}
