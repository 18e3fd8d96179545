//! `Retry-After` is honoured by both retry loops.
//!
//! * AWS: a real SDK client ([`Clients`], Pricing `GetProducts`) against an in-process
//!   HTTP server on 127.0.0.1 that answers 503 (with or without `Retry-After: 1`), then 200.
//! * Kubernetes: the one writer against kube-rs's `tower-test` mock service answering 429
//!   or 503 with a wait in the `Status`'s `details.retryAfterSeconds`, or in a
//!   `Retry-After` header (seconds or HTTP date) on a `Status` or a plain-text body, then
//!   200.
//! * The other kube clients, on a mock API server routing by method and path in paused
//!   time: the Lease elector (waits 60 s as asked, yet a holder gives up leading 0.8 of
//!   the Lease's duration after its last renewal), a watch's throttled list (the wait
//!   read from a plain `Retry-After` header, capped at 60 s) and Events (paused 30 s,
//!   the ones in between dropped and counted).
//!
//! The computed backoff is configured at 10–100 ms, so a second attempt at least ~1 s after
//! the first can only come from the server's request.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "controller")]

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

// The other kube clients: the Lease elector, the watches and the Event recorder, each on a
// mock API server that routes by method and path, in paused time (a wait of 60 s costs no
// wall time, and every arrival is at an exact instant).

/// One request the routing mock saw: when, the method and the path.
type Seen = Arc<Mutex<Vec<(tokio::time::Instant, String, String)>>>;

/// A kube client on a mock API server answering each request with `route(method, path,
/// n)` (n: how many requests of that method and path came before) as (status, extra
/// header, JSON body).
fn routed<F>(route: F) -> (kube::Client, Seen)
where
    F: Fn(&str, &str, usize) -> (u16, Option<(&'static str, String)>, serde_json::Value)
        + Send
        + 'static,
{
    use kube::client::Body;
    let (svc, mut handle) = tower_test::mock::pair::<http::Request<Body>, http::Response<Body>>();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let n = {
                let mut l = log.lock().expect("lock");
                let n = l
                    .iter()
                    .filter(|(_, m, p)| *m == method && *p == path)
                    .count();
                l.push((tokio::time::Instant::now(), method.clone(), path.clone()));
                n
            };
            let (code, header, body) = route(&method, &path, n);
            let mut resp = http::Response::builder()
                .status(code)
                .header("content-type", "application/json");
            if let Some((k, v)) = header {
                resp = resp.header(k, v);
            }
            let body = serde_json::to_vec(&body).expect("json");
            send.send_response(resp.body(Body::from(body)).expect("response"));
        }
    });
    (kube::Client::new(svc, "default"), seen)
}

fn status(code: u16, reason: &str) -> serde_json::Value {
    serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": "slow down", "reason": reason, "code": code})
}

fn arrivals_of(seen: &Seen, method: &str, path: &str) -> Vec<tokio::time::Instant> {
    seen.lock()
        .expect("lock")
        .iter()
        .filter(|(_, m, p)| m == method && p == path)
        .map(|(t, _, _)| *t)
        .collect()
}

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/gpu-slicer";

fn lease_config(duration_s: u64) -> gpu_slicer::controller::elector::LeaseConfig {
    gpu_slicer::controller::elector::LeaseConfig {
        name: "gpu-slicer".into(),
        namespace: "ns".into(),
        identity: "a".into(),
        duration: Duration::from_secs(duration_s),
        renew_every: Duration::from_secs(2),
    }
}

#[tokio::test(start_paused = true)]
async fn the_lease_elector_waits_as_asked_and_a_holder_still_gives_up_in_time() {
    // The first look creates the Lease (404, then 201); every later look is answered 429
    // with `Retry-After: 60`.
    let (client, seen) = routed(|method, path, n| match (method, n) {
        ("GET", 0) => (404, None, status(404, "NotFound")),
        ("POST", _) => {
            let lease = serde_json::json!({"apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease", "metadata": {"name": "gpu-slicer", "namespace": "ns",
                "resourceVersion": "1"}, "spec": {"holderIdentity": "a"}});
            assert!(path.ends_with("/leases"), "{path}");
            (201, None, lease)
        }
        _ => (
            429,
            Some(("retry-after", "60".to_string())),
            status(429, "TooManyRequests"),
        ),
    });
    let flag = LeaderFlag::new(false);
    let elector =
        gpu_slicer::controller::elector::Elector::new(client, lease_config(10), flag.clone());
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let start = tokio::time::Instant::now();
    tokio::spawn(elector.run(shutdown));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(flag.is_leader(), "the first look takes the Lease");
    // The renewal at 2 s is answered 429 + 60 s: the holder may not wait 60 s as leader;
    // 0.8 × 10 s after its last renewal it stops writing.
    tokio::time::sleep(Duration::from_millis(7_800)).await;
    assert!(flag.is_leader(), "still within 0.8 of the Lease's duration");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!flag.is_leader(), "gave up 8 s after its last renewal");
    // No look before the 60 s the server asked for (the computed cadence is 2 s).
    tokio::time::sleep(Duration::from_secs(60)).await;
    let gets = arrivals_of(&seen, "GET", LEASE);
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert_eq!(gets[1] - start, Duration::from_secs(2));
    assert_eq!(gets[2] - gets[1], Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn a_watch_whose_list_is_throttled_waits_as_asked() {
    use futures::StreamExt;
    use gpu_slicer::controller::watch::watch_retry_after;
    use gpu_slicer::controller::writer::honouring_retry_after;
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::watcher;
    // The list is answered 429 with a plain `Retry-After: 7` header, then a huge one.
    let (client, _) = routed(|_, _, n| {
        let wait = if n == 0 { "7" } else { "100000" };
        (
            429,
            Some(("retry-after", wait.to_string())),
            status(429, "TooManyRequests"),
        )
    });
    // The watcher's events before its first error (`Init`), then the error.
    async fn next_error(
        s: &mut (impl futures::Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Unpin),
    ) -> watcher::Error {
        loop {
            if let Err(e) = s.next().await.expect("an item") {
                return e;
            }
        }
    }
    let api: kube::Api<Pod> = kube::Api::all(honouring_retry_after(&client));
    let stream = watcher::watcher(api, watcher::Config::default());
    futures::pin_mut!(stream);
    let first = next_error(&mut stream).await;
    assert!(
        matches!(first, watcher::Error::InitialListFailed(_)),
        "{first:?}"
    );
    assert_eq!(watch_retry_after(&first), Some(Duration::from_secs(7)));
    let second = next_error(&mut stream).await;
    assert_eq!(
        watch_retry_after(&second),
        Some(gpu_slicer::backoff::MAX_RETRY_AFTER),
        "capped"
    );
    // Without the header (kube's own client), no wait is read.
    let (plain, _) = routed(|_, _, _| (429, None, status(429, "TooManyRequests")));
    let api: kube::Api<Pod> = kube::Api::all(plain);
    let stream = watcher::watcher(api, watcher::Config::default());
    futures::pin_mut!(stream);
    let e = next_error(&mut stream).await;
    assert_eq!(watch_retry_after(&e), None);
}

#[tokio::test(start_paused = true)]
async fn events_pause_as_asked_and_resume_after() {
    use gpu_slicer::controller::events::Events;
    use k8s_openapi::api::core::v1::ObjectReference;
    const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ml/events";
    // The first Event is answered 429 + `Retry-After: 30`; later ones are created.
    let (client, seen) = routed(|method, _, n| match (method, n) {
        ("POST", 0) => (
            429,
            Some(("retry-after", "30".to_string())),
            status(429, "TooManyRequests"),
        ),
        _ => (
            201,
            None,
            serde_json::json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "e", "namespace": "ml"}, "eventTime": "2026-12-07T00:00:00.000000Z"}),
        ),
    });
    let events = Events::new(
        &client,
        kube::runtime::events::Reporter {
            controller: "gpu-slicer".into(),
            instance: None,
        },
    );
    let pod = |name: &str| ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(name.into()),
        namespace: Some("ml".into()),
        uid: Some(format!("uid-{name}")),
        ..ObjectReference::default()
    };
    let send = |name: &'static str| {
        let r = pod(name);
        let events = &events;
        async move {
            events
                .send(
                    false,
                    &r,
                    true,
                    "Unplaceable",
                    format!("{name} fits nowhere"),
                    "Plan",
                )
                .await;
        }
    };
    send("a").await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    send("b").await;
    send("c").await;
    assert_eq!(
        arrivals_of(&seen, "POST", EVENTS).len(),
        1,
        "paused for 30 s"
    );
    assert_eq!(events.dropped(), 2);
    tokio::time::sleep(Duration::from_secs(21)).await;
    send("d").await;
    assert_eq!(
        arrivals_of(&seen, "POST", EVENTS).len(),
        2,
        "resumed after 30 s"
    );
    assert_eq!(events.dropped(), 2);
    // `skip` (dry run, not the leader) sends nothing and drops nothing.
    events
        .send(true, &pod("e"), false, "Planned", "x".into(), "Plan")
        .await;
    assert_eq!(arrivals_of(&seen, "POST", EVENTS).len(), 2);
}
