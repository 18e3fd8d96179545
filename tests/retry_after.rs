//! `Retry-After` is honoured by both retry loops.
//!
//! * AWS: a real SDK client ([`Clients`], Pricing `GetProducts`) against an in-process
//!   HTTP server on 127.0.0.1 that answers 503 (with or without `Retry-After: 1`), then 200.
//! * Kubernetes: the one writer against kube-rs's `tower-test` mock service answering 429
//!   or 503 with a wait in the `Status`'s `details.retryAfterSeconds`, or in a
//!   `Retry-After` header (seconds or HTTP date) on a `Status` or a plain-text body, then
//!   200.
//!
//! The computed backoff is configured at 10–100 ms, so a second attempt at least ~1 s after
//! the first can only come from the server's request.
#![cfg(feature = "cli")]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gpu_slicer::aws::{self, AwsSettings, Clients, Counts};
use gpu_slicer::controller::writer::{LeaderFlag, Writer, WriterConfig};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// One scripted answer: the status and an extra header.
type Answer = (u16, Option<(&'static str, String)>);

/// Scripted answers and the arrival time of every request.
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Script {
    fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().expect("lock").clone()
    }

    /// The gap between the first two requests.
    fn first_gap(&self) -> Duration {
        let a = self.arrivals();
        assert!(a.len() >= 2, "expected a retry, saw {} request(s)", a.len());
        a[1] - a[0]
    }
}

/// A Pricing-shaped (awsJson1.1) server on 127.0.0.1 following `script`; after the script,
/// 200 with an empty price list.
async fn pricing_server(script: Script) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let script = script.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                    script.arrivals.lock().expect("lock").push(Instant::now());
                    let next = script.answers.lock().expect("lock").pop_front();
                    let (status, header) = next.unwrap_or((200, None));
                    let body = if status == 200 {
                        r#"{"FormatVersion":"aws_v1","PriceList":[]}"#
                    } else {
                        r#"{"__type":"ServiceUnavailableException","message":"busy"}"#
                    };
                    let mut r = Response::builder()
                        .status(status)
                        .header("content-type", "application/x-amz-json-1.1");
                    if let Some((k, v)) = header {
                        r = r.header(k, v);
                    }
                    let r = r
                        .body(Full::new(Bytes::from_static(body.as_bytes())))
                        .expect("response");
                    async move { Ok::<_, Infallible>(r) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

async fn pricing_client(url: &str) -> (Clients, Arc<Counts>) {
    let settings = AwsSettings {
        region: Some("us-east-1".to_string()),
        endpoint_url: Some("http://127.0.0.1:9".to_string()),
        pricing_endpoint_url: Some(url.to_string()),
        requests_per_second: NonZeroU32::new(100).expect("non-zero"),
        burst: NonZeroU32::new(100).expect("non-zero"),
        attempt_timeout: Duration::from_secs(5),
        max_attempts: 3,
        base_backoff: Duration::from_millis(10),
        throttle_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ..AwsSettings::default()
    };
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(aws::https_client())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "static",
        ))
        .load()
        .await;
    let counts = Arc::new(Counts::default());
    let c = Clients::from_sdk_config(&conf, &settings)
        .expect("clients")
        .observe(counts.clone());
    (c, counts)
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_503_with_retry_after_is_retried_after_that_long() {
    let script = Script::default();
    script
        .answers
        .lock()
        .expect("lock")
        .push_back((503, Some(("retry-after", "1".to_string()))));
    let url = pricing_server(script.clone()).await;
    let (c, counts) = pricing_client(&url).await;
    let (prices, _) = c
        .on_demand_prices()
        .await
        .expect("GetProducts after a retry");
    assert!(prices.is_empty());
    assert_eq!(counts.attempts("pricing:GetProducts"), 2);
    let gap = script.first_gap();
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, not after Retry-After: 1"
    );
    assert!(gap < Duration::from_secs(5), "{gap:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_503_without_retry_after_uses_the_backoff() {
    let script = Script::default();
    script.answers.lock().expect("lock").push_back((503, None));
    let url = pricing_server(script.clone()).await;
    let (c, counts) = pricing_client(&url).await;
    c.on_demand_prices()
        .await
        .expect("GetProducts after a retry");
    assert_eq!(counts.attempts("pricing:GetProducts"), 2);
    let gap = script.first_gap();
    assert!(gap < Duration::from_millis(700), "{gap:?}");
}

/// What the mock API server's error answers carry.
#[derive(Clone)]
enum ErrorBody {
    /// A `Status` JSON, with these `details` if any.
    Status(Option<serde_json::Value>),
    /// Plain text, as API Priority and Fairness answers.
    Plain,
}

/// A kube client on a mock API server: node PATCHes are answered from the script (status
/// and an extra header) with `error` bodies, then 200 with the node; every arrival is
/// recorded.
fn kube_client(script: Script, error: ErrorBody) -> kube::Client {
    use kube::client::Body;
    let (svc, mut handle) = tower_test::mock::pair::<http::Request<Body>, http::Response<Body>>();
    tokio::spawn(async move {
        while let Some((_req, send)) = handle.next_request().await {
            script.arrivals.lock().expect("lock").push(Instant::now());
            let next = script.answers.lock().expect("lock").pop_front();
            let mut resp = http::Response::builder();
            let (status, body) = match (next, &error) {
                (Some((code, header)), error) => {
                    if let Some((k, v)) = header {
                        resp = resp.header(k, v);
                    }
                    let body = match error {
                        ErrorBody::Plain => {
                            resp = resp.header("content-type", "text/plain; charset=utf-8");
                            b"Too many requests, please try again later.\n".to_vec()
                        }
                        ErrorBody::Status(details) => {
                            resp = resp.header("content-type", "application/json");
                            let mut st = serde_json::json!({
                                "kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Failure", "message": "slow down",
                                "reason": "TooManyRequests", "code": code,
                            });
                            if let Some(d) = details {
                                st["details"] = d.clone();
                            }
                            serde_json::to_vec(&st).expect("json")
                        }
                    };
                    (code, body)
                }
                (None, _) => {
                    resp = resp.header("content-type", "application/json");
                    let node = serde_json::json!({
                        "apiVersion": "v1", "kind": "Node",
                        "metadata": {"name": "n1"}, "spec": {}
                    });
                    (200, serde_json::to_vec(&node).expect("json"))
                }
            };
            let resp = resp
                .status(status)
                .body(Body::from(body))
                .expect("response");
            send.send_response(resp);
        }
    });
    kube::Client::new(svc, "default")
}

fn writer(client: kube::Client) -> Writer {
    let cfg = WriterConfig {
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        max_attempts: 3,
        writes_per_second: NonZeroU32::new(1000).expect("non-zero"),
        burst: NonZeroU32::new(1000).expect("non-zero"),
        ..WriterConfig::default()
    };
    Writer::new(client, cfg, LeaderFlag::new(true))
}

/// One taint removal whose first attempt is answered `code` with `header`; returns the
/// gap between the two attempts.
async fn patch_once(
    code: u16,
    header: Option<(&'static str, String)>,
    error: ErrorBody,
) -> Duration {
    let script = Script::default();
    script
        .answers
        .lock()
        .expect("lock")
        .push_back((code, header));
    let w = writer(kube_client(script.clone(), error));
    let taint = serde_json::json!({"key": "gpu-slicer.io/slicing-pending", "effect": "NoSchedule"});
    let removed = w
        .remove_taint("n1", 0, &taint)
        .await
        .expect("patched after a retry");
    assert!(removed);
    assert_eq!(w.sent(), 2);
    script.first_gap()
}

fn waited_about_a_second(gap: Duration) {
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, not after the 1 s the server asked for"
    );
    assert!(gap < Duration::from_secs(5), "{gap:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_429_with_retry_after_seconds_in_the_status_waits_that_long() {
    let details = serde_json::json!({"retryAfterSeconds": 1});
    waited_about_a_second(patch_once(429, None, ErrorBody::Status(Some(details))).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_429_with_a_retry_after_header_and_a_status_waits_that_long() {
    let header = Some(("retry-after", "1".to_string()));
    waited_about_a_second(patch_once(429, header, ErrorBody::Status(None)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_plain_text_429_with_a_retry_after_header_waits_that_long() {
    let header = Some(("retry-after", "1".to_string()));
    waited_about_a_second(patch_once(429, header, ErrorBody::Plain).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_503_with_a_retry_after_date_waits_until_then() {
    // An HTTP date 2 s ahead, to the second (rounded down): a wait of 1–2 s (the writer
    // rounds a part second up).
    let at = std::time::SystemTime::now() + Duration::from_secs(2);
    let date = aws_sdk_ec2::primitives::DateTime::from(at)
        .fmt(aws_sdk_ec2::primitives::DateTimeFormat::HttpDate)
        .expect("http date");
    let gap = patch_once(503, Some(("retry-after", date)), ErrorBody::Plain).await;
    waited_about_a_second(gap);
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_an_absurd_retry_after_is_capped_not_a_crash() {
    // 10^22 seconds: more than u64 holds. The wait is capped at 60 s; here the write's
    // second attempt must simply not come early.
    let script = Script::default();
    script
        .answers
        .lock()
        .expect("lock")
        .push_back((429, Some(("retry-after", "1".repeat(23)))));
    let w = writer(kube_client(script.clone(), ErrorBody::Plain));
    let taint = serde_json::json!({"key": "k", "effect": "NoSchedule"});
    let r = tokio::time::timeout(Duration::from_secs(2), w.remove_taint("n1", 0, &taint)).await;
    assert!(r.is_err(), "retried within 2 s despite a huge Retry-After");
    assert_eq!(script.arrivals().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_429_without_retry_after_uses_the_backoff() {
    let gap = patch_once(429, None, ErrorBody::Plain).await;
    assert!(gap < Duration::from_millis(700), "{gap:?}");
    let gap = patch_once(429, None, ErrorBody::Status(None)).await;
    assert!(gap < Duration::from_millis(700), "{gap:?}");
}
