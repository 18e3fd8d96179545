//! The admission webhook's HTTPS server (`controller::webhook`) on 127.0.0.1, driven the
//! way the API server drives it: real `admission.k8s.io/v1` AdmissionReview JSON over TLS,
//! answered by the real `admission::review`. Certificates come from a test CA (rcgen) and,
//! in one test, from the chart's own Helm-generated Secret and caBundle (`helm template`
//! through tests/support/helm.rs), so the chart's certificates are known to work with
//! rustls. Also: the client trusts only the CA, plaintext gets no HTTP answer, bad requests
//! get HTTP errors (never a panic or a hang), outcomes are counted, and a rotated
//! certificate is picked up without a restart, and silent clients are cut off by the
//! handshake and header timeouts (about 10 s of this file's run time).

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "controller")]

#[allow(dead_code)]
#[path = "support/helm.rs"]
mod helm;
#[path = "support/objects.rs"]
mod objects;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gpu_slicer::admission::{self, Policy};
use gpu_slicer::controller::server::Shared;
use gpu_slicer::controller::webhook::{self, CertStore, TlsError, Webhook};
use gpu_slicer::guard::Namespaces;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

// ---------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------

/// A CA and a serving certificate it signed, PEM.
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

fn pki(names: &[&str]) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "gpu-slicer test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<String>>())
            .expect("params");
    let cert = params.signed_by(&key, &issuer).expect("cert");
    Pki {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn write_pair(dir: &Path, cert: &str, key: &str) {
    std::fs::create_dir_all(dir).expect("cert dir");
    std::fs::write(dir.join(webhook::CERT_FILE), cert).expect("tls.crt");
    std::fs::write(dir.join(webhook::KEY_FILE), key).expect("tls.key");
}

fn cert_dir(p: &Pki) -> PathBuf {
    let dir = helm::scratch("webhook-certs");
    write_pair(&dir, &p.cert, &p.key);
    dir
}

// ---------------------------------------------------------------------------------------
// Server and client
// ---------------------------------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), TlsError>>,
}

impl Server {
    async fn stop(self) {
        self.stop.send(true).expect("stop");
        self.task.await.expect("join").expect("served");
    }
}

fn policy() -> Policy {
    Policy {
        namespaces: Namespaces {
            allow: vec![],
            deny: vec!["kube-system".into()],
        },
        fail_requests_greater_than_one: false,
        context_memory_mib: 0,
        ..Policy::default()
    }
}

async fn start(dir: &Path, reload_every: Duration) -> Server {
    let certs = Arc::new(CertStore::load(dir).expect("certificate loads"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shared = Arc::new(Shared::default());
    let p = policy();
    let wh = Webhook {
        certs,
        reviewer: Arc::new(move |req| admission::review(req, &p)),
        shared: shared.clone(),
        reload_every,
    };
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(webhook::serve(listener, wh, rx));
    Server {
        addr,
        shared,
        stop,
        task,
    }
}

/// A client config that trusts only `ca_pem` (no system roots).
fn client(ca_pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("CA PEM")).expect("add CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// One HTTP/1.1 request over TLS (`Connection: close`): Ok((status, body)), or Err with
/// the TLS or I/O error.
async fn https(
    addr: SocketAddr,
    ca_pem: &str,
    server_name: &str,
    head: &str,
    body: &[u8],
) -> Result<(u16, String), std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_string()).expect("server name");
    let mut tls = client(ca_pem).connect(name, tcp).await?;
    let mut req = format!(
        "{head}\r\nHost: {server_name}\r\nContent-Type: application/json\r\nConnection: close\r\n"
    );
    if !head.contains("Content-Length") && !head.contains("Transfer-Encoding") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    tls.write_all(req.as_bytes()).await?;
    tls.write_all(body).await?;
    tls.flush().await?;
    let mut out = Vec::new();
    // A peer that closes without close_notify ends the read with UnexpectedEof.
    match tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut out)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => panic!("no answer within 20 s"),
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Ok((status, body.to_string()))
}

async fn post_review(
    addr: SocketAddr,
    ca: &str,
    name: &str,
    review: &Value,
) -> Result<Value, std::io::Error> {
    let body = serde_json::to_vec(review).expect("JSON");
    let (status, text) = https(
        addr,
        ca,
        name,
        &format!("POST {} HTTP/1.1", webhook::PATH),
        &body,
    )
    .await?;
    assert_eq!(status, 200, "{text}");
    Ok(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")))
}

// ---------------------------------------------------------------------------------------
// AdmissionReview JSON
// ---------------------------------------------------------------------------------------

const UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";

fn pod(annotations: Value, resources: Value) -> Value {
    objects::pod("infer-0")
        .namespace("ml")
        .annotations(annotations)
        .image("registry.example/infer:1")
        .resources(resources)
        .build()
}

fn gpu_pod(annotations: Value) -> Value {
    pod(annotations, json!({"limits": {"nvidia.com/gpu": "1"}}))
}

/// The AdmissionReview v1 the API server sends for a pod CREATE.
fn review(object: &Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": UID,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "infer-0",
            "namespace": "ml",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "u", "groups": ["system:serviceaccounts"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}}})
}

/// The JSONPatch of a response (bytes as a JSON array or a base64 string).
fn patch_of(response: &Value) -> Option<json_patch::Patch> {
    let p = response.get("patch")?;
    let bytes: Vec<u8> = match p {
        Value::String(s) => decode_base64(s),
        other => serde_json::from_value(other.clone()).expect("patch bytes"),
    };
    Some(serde_json::from_slice(&bytes).expect("patch is a JSON patch"))
}

fn decode_base64(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()) {
        let v = alphabet
            .iter()
            .position(|a| *a == c)
            .unwrap_or_else(|| panic!("not base64: {s}")) as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn required_terms(pod: &Value) -> Vec<Value> {
    pod.pointer(
        "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms",
    )
    .and_then(Value::as_array)
    .cloned()
    .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn patches_gpu_pods_rejects_bad_annotations_and_passes_other_pods() {
    let p = pki(&["localhost", "127.0.0.1"]);
    let dir = cert_dir(&p);
    let s = start(&dir, webhook::RELOAD_EVERY).await;

    // A GPU pod with its memory: allowed with a patch that adds required node affinity.
    let gpu = gpu_pod(json!({"gpu-slicer.io/gpu-memory": "4Gi"}));
    let out = post_review(s.addr, &p.ca, "localhost", &review(&gpu))
        .await
        .expect("TLS");
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(out["kind"], "AdmissionReview");
    let r = &out["response"];
    assert_eq!(r["uid"], UID, "the response carries the request's uid");
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["patchType"], "JSONPatch", "{r}");
    let patch = patch_of(r).expect("a patch");
    let mut after = gpu.clone();
    json_patch::patch(&mut after, &patch).expect("the patch applies to the pod");
    let terms = required_terms(&after);
    assert_eq!(terms.len(), 1, "one required term: {after}");
    let exprs = terms[0]["matchExpressions"]
        .as_array()
        .expect("expressions");
    let memory = exprs
        .iter()
        .find(|e| e["key"] == "gpu-slicer.io/slice-gpu-memory-mib")
        .unwrap_or_else(|| panic!("no slice memory requirement: {exprs:?}"));
    assert_eq!(memory["operator"], "Gt");
    assert_eq!(memory["values"], json!(["4095"]), "4Gi = 4096 MiB: Gt 4095");

    // The same pod over the same (kept-alive or new) connection again: still served.
    let again = post_review(s.addr, &p.ca, "127.0.0.1", &review(&gpu))
        .await
        .expect("TLS by IP SAN");
    assert_eq!(again["response"]["allowed"], true);

    // A malformed annotation: denied, and the message names it.
    let bad = gpu_pod(json!({"gpu-slicer.io/gpu-memory": "lots"}));
    let out = post_review(s.addr, &p.ca, "localhost", &review(&bad))
        .await
        .expect("TLS");
    let r = &out["response"];
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(r["uid"], UID);
    let msg = r["status"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("gpu-slicer.io/gpu-memory"), "{r}");
    assert!(r.get("patch").is_none(), "{r}");

    // A pod without GPUs: allowed, unchanged.
    let cpu = pod(json!({}), json!({"requests": {"cpu": "1"}}));
    let out = post_review(s.addr, &p.ca, "localhost", &review(&cpu))
        .await
        .expect("TLS");
    assert_eq!(out["response"]["allowed"], true);
    assert!(out["response"].get("patch").is_none(), "{out}");

    // Counted by outcome.
    let text = s.shared.metrics.encode();
    for (outcome, n) in [("patched", 2), ("rejected", 1), ("allowed", 1)] {
        let line = format!("gpu_slicer_webhook_requests_total{{outcome=\"{outcome}\"}} {n}");
        assert!(text.contains(&line), "{line} in\n{text}");
    }
    assert!(
        text.contains("gpu_slicer_webhook_duration_seconds_count 4"),
        "{text}"
    );
    s.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn bad_requests_get_http_errors_and_the_server_keeps_serving() {
    let p = pki(&["localhost"]);
    let dir = cert_dir(&p);
    let s = start(&dir, webhook::RELOAD_EVERY).await;
    let path = webhook::PATH;
    let cases: Vec<(String, Vec<u8>, u16)> = vec![
        (format!("GET {path} HTTP/1.1"), vec![], 405),
        ("POST /mutate HTTP/1.1".into(), b"{}".to_vec(), 404),
        (format!("POST {path} HTTP/1.1"), b"not json".to_vec(), 400),
        (
            format!("POST {path} HTTP/1.1"),
            br#"{"apiVersion":"v1","kind":"Pod"}"#.to_vec(),
            400,
        ),
        (format!("POST {path} HTTP/1.1"), vec![b'['; 10_000], 400),
        // Declared too large: refused before reading.
        (
            format!("POST {path} HTTP/1.1\r\nContent-Length: 999999999"),
            vec![],
            413,
        ),
    ];
    for (head, body, want) in &cases {
        let (status, text) = https(s.addr, &p.ca, "localhost", head, body)
            .await
            .unwrap_or_else(|e| panic!("{head}: {e}"));
        assert_eq!(status, *want, "{head}: {text}");
    }
    // Sent too large without a length (chunked): cut at the limit. The server stops
    // reading there, so the client may see the connection reset instead of the 413.
    let n = webhook::MAX_BODY_BYTES + 1;
    let mut chunked = format!("{n:x}\r\n").into_bytes();
    chunked.extend(std::iter::repeat_n(b' ', n));
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let head = format!("POST {path} HTTP/1.1\r\nTransfer-Encoding: chunked");
    match https(s.addr, &p.ca, "localhost", &head, &chunked).await {
        Ok((status, text)) => assert_eq!(status, 413, "{text}"),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{e}"
        ),
    }
    // A review without a request: an AdmissionResponse that refuses it.
    let empty = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"});
    let out = post_review(s.addr, &p.ca, "localhost", &empty)
        .await
        .expect("TLS");
    assert_eq!(out["response"]["allowed"], false, "{out}");
    // Still serving real reviews after all that.
    let gpu = gpu_pod(json!({"gpu-slicer.io/gpu-memory": "1Gi"}));
    let out = post_review(s.addr, &p.ca, "localhost", &review(&gpu))
        .await
        .expect("TLS");
    assert_eq!(out["response"]["allowed"], true);
    let text = s.shared.metrics.encode();
    let errors = format!(
        "gpu_slicer_webhook_requests_total{{outcome=\"error\"}} {}",
        cases.len() + 2
    );
    assert!(text.contains(&errors), "{errors} in\n{text}");
    s.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_client_trusts_only_the_ca_and_plaintext_gets_no_http_answer() {
    let p = pki(&["localhost"]);
    let other = pki(&["localhost"]);
    let dir = cert_dir(&p);
    let s = start(&dir, webhook::RELOAD_EVERY).await;
    let body = serde_json::to_vec(&review(&gpu_pod(json!({})))).expect("JSON");
    let head = format!("POST {} HTTP/1.1", webhook::PATH);

    // Another CA: the handshake fails.
    let err = https(s.addr, &other.ca, "localhost", &head, &body)
        .await
        .expect_err("a certificate from another CA must not be trusted");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // The right CA but a name the certificate does not carry: fails too.
    let err = https(s.addr, &p.ca, "gpu-slicer.example", &head, &body)
        .await
        .expect_err("a name outside the SANs must fail");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // The right CA and name: served.
    let (status, _) = https(s.addr, &p.ca, "localhost", &head, &body)
        .await
        .expect("trusted");
    assert_eq!(status, 200);

    // Plain HTTP: no HTTP response, the connection just ends.
    let mut tcp = TcpStream::connect(s.addr).await.expect("connect");
    let plain = format!(
        "POST {} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        webhook::PATH,
        body.len()
    );
    let _ = tcp.write_all(plain.as_bytes()).await;
    let _ = tcp.write_all(&body).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server must close a plaintext connection");
    assert!(
        !String::from_utf8_lossy(&out).contains("HTTP/"),
        "plaintext got an HTTP answer: {:?}",
        String::from_utf8_lossy(&out)
    );
    s.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let first = pki(&["localhost"]);
    let second = pki(&["localhost"]);
    let dir = cert_dir(&first);
    let s = start(&dir, Duration::from_millis(50)).await;
    let body = serde_json::to_vec(&review(&gpu_pod(json!({})))).expect("JSON");
    let head = format!("POST {} HTTP/1.1", webhook::PATH);
    https(s.addr, &first.ca, "localhost", &head, &body)
        .await
        .expect("the first certificate is served");

    // cert-manager renews: both files change.
    write_pair(&dir, &second.cert, &second.key);
    let deadline = Instant::now() + Duration::from_secs(10);
    while https(s.addr, &second.ca, "localhost", &head, &body)
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        https(s.addr, &first.ca, "localhost", &head, &body)
            .await
            .is_err(),
        "the old certificate is no longer served"
    );
    assert!(
        s.shared
            .metrics
            .encode()
            .contains("gpu_slicer_webhook_certificate_reloads_total{outcome=\"reloaded\"} 1")
    );

    // A key that does not belong to the certificate (half-written rotation): kept serving
    // the second one, and counted.
    write_pair(&dir, &first.cert, &second.key);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s
        .shared
        .metrics
        .encode()
        .contains("gpu_slicer_webhook_certificate_reloads_total{outcome=\"failed\"}")
    {
        assert!(Instant::now() < deadline, "the broken pair was not noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    https(s.addr, &second.ca, "localhost", &head, &body)
        .await
        .expect("still the second certificate");
    s.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn certificate_errors_name_the_file() {
    let dir = helm::scratch("webhook-bad");
    let err = CertStore::load(&dir).expect_err("no files");
    assert!(err.to_string().contains("tls.crt"), "{err}");

    let p = pki(&["localhost"]);
    write_pair(&dir, "not a certificate\n", &p.key);
    let err = CertStore::load(&dir).expect_err("no PEM");
    assert!(err.to_string().contains("tls.crt"), "{err}");

    write_pair(
        &dir,
        &p.cert,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    let err = CertStore::load(&dir).expect_err("bad key");
    assert!(err.to_string().contains("tls.key"), "{err}");

    let other = pki(&["localhost"]);
    write_pair(&dir, &p.cert, &other.key);
    let err = CertStore::load(&dir).expect_err("mismatched pair");
    assert!(
        err.to_string().contains("tls.crt") && err.to_string().contains("tls.key"),
        "{err}"
    );

    write_pair(&dir, &p.cert, &p.key);
    CertStore::load(&dir).expect("a good pair loads");
    let _ = std::fs::remove_dir_all(dir);
}

/// Decodes a base64 value of a rendered Secret or webhook configuration.
fn b64_text(v: &Value, what: &str) -> String {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    String::from_utf8(decode_base64(s)).unwrap_or_else(|e| panic!("{what}: {e}"))
}

#[tokio::test]
async fn the_charts_generated_certificate_serves_and_its_ca_bundle_trusts_it() {
    let yaml = helm::template(&[], &["clusterName=x"]).unwrap_or_else(|e| panic!("{e}"));
    let docs = helm::parse_docs(&yaml);
    let secret = docs
        .iter()
        .find(|d| helm::kind(d) == "Secret" && helm::str_at(d, "/type") == "kubernetes.io/tls")
        .expect("the chart renders a kubernetes.io/tls Secret");
    let mwc = docs
        .iter()
        .find(|d| helm::kind(d) == "MutatingWebhookConfiguration")
        .expect("the chart renders a MutatingWebhookConfiguration");
    let hook = &mwc["webhooks"][0];
    let ca = b64_text(&hook["clientConfig"]["caBundle"], "caBundle");
    let svc = &hook["clientConfig"]["service"];
    // The name the API server checks: <service>.<namespace>.svc.
    let host = format!(
        "{}.{}.svc",
        helm::str_at(svc, "/name"),
        helm::str_at(svc, "/namespace")
    );
    assert_eq!(helm::str_at(svc, "/path"), webhook::PATH);

    let dir = helm::scratch("webhook-chart");
    write_pair(
        &dir,
        &b64_text(&secret["data"]["tls.crt"], "tls.crt"),
        &b64_text(&secret["data"]["tls.key"], "tls.key"),
    );
    let s = start(&dir, webhook::RELOAD_EVERY).await;
    let gpu = gpu_pod(json!({"gpu-slicer.io/gpu-memory": "4Gi"}));
    let out = post_review(s.addr, &ca, &host, &review(&gpu))
        .await
        .unwrap_or_else(|e| panic!("rustls refused the chart's certificate for {host}: {e}"));
    assert_eq!(out["response"]["allowed"], true);
    assert!(patch_of(&out["response"]).is_some());
    // The Secret's ca.crt is the caBundle, and nothing else is trusted.
    assert_eq!(b64_text(&secret["data"]["ca.crt"], "ca.crt"), ca);
    let err = https(
        s.addr,
        &pki(&["x"]).ca,
        &host,
        "POST /mutate-pods HTTP/1.1",
        b"{}",
    )
    .await;
    assert!(err.is_err(), "another CA must not be trusted");
    s.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_silent_client_is_cut_off() {
    let p = pki(&["localhost"]);
    let dir = cert_dir(&p);
    let s = start(&dir, webhook::RELOAD_EVERY).await;
    let started = Instant::now();
    // A TCP connection that never starts the handshake: closed after the handshake timeout.
    let raw = async {
        let mut tcp = TcpStream::connect(s.addr).await.expect("connect");
        let mut buf = Vec::new();
        tokio::time::timeout(
            webhook::HANDSHAKE_TIMEOUT + Duration::from_secs(5),
            tcp.read_to_end(&mut buf),
        )
        .await
        .is_ok()
    };
    // A TLS connection that never sends a request: closed after the header timeout.
    let idle = async {
        let tcp = TcpStream::connect(s.addr).await.expect("connect");
        let name = ServerName::try_from("localhost".to_string()).expect("name");
        let mut tls = client(&p.ca).connect(name, tcp).await.expect("handshake");
        let mut buf = Vec::new();
        tokio::time::timeout(
            webhook::HEADER_READ_TIMEOUT + Duration::from_secs(5),
            tls.read_to_end(&mut buf),
        )
        .await
        .is_ok()
    };
    let (raw_closed, idle_closed) = tokio::join!(raw, idle);
    assert!(
        raw_closed,
        "a connection without a handshake must be closed"
    );
    assert!(
        idle_closed,
        "an idle connection must be closed by the server"
    );
    assert!(started.elapsed() >= webhook::HEADER_READ_TIMEOUT - Duration::from_secs(1));
    s.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
