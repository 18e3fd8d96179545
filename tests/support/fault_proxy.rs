//! A fault-injecting HTTP/1.1 reverse proxy on 127.0.0.1, in front of moto (or any plain
//! HTTP upstream on 127.0.0.1).
//!
//! Every request (method, path and query, headers with the original `Host`, body) is
//! forwarded to the upstream over a fresh connection (hyper's client,
//! `hyper::client::conn::http1`) and the upstream's answer (status, headers, body) is
//! returned, unless a fault applies: queued faults ([`FaultProxy::push_fault`]) are consumed
//! one per request, FIFO; when none is queued, the standing fault of
//! [`FaultProxy::fail_all`] (if set) applies. The faults answer EC2's query-protocol XML
//! errors, so the AWS SDK sees what EC2 would send.
//!
//! Every request is recorded ([`FaultProxy::requests`]) with the EC2 `Action` parsed from
//! its form body (or query). Dropping the proxy aborts the server task and its connections.
//! It needs a tokio runtime (`start` spawns onto the current one).
//!
//! [`http_request`] is a small raw HTTP/1.1 client for tests (hyper, one connection per
//! request).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Headers that describe one connection, not the message: never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

/// A fault answered instead of forwarding.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 503 with EC2's `RequestLimitExceeded` XML error.
    Throttle,
    /// 500 with EC2's `InternalError` XML error.
    ServerError,
    /// Sleeps, then forwards.
    Delay(Duration),
    /// Drops the connection without answering.
    Close,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct ProxyRequest {
    /// When it arrived.
    pub time: Instant,
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The path and query as received.
    pub uri: String,
    /// The EC2 `Action=` parameter (form body first, then query).
    pub action: Option<String>,
    /// Every form-body and query parameter, decoded, in order (body first).
    pub params: Vec<(String, String)>,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
    /// The status answered (`None` while in flight or when the connection was dropped;
    /// 502 when the upstream could not be reached).
    pub status: Option<u16>,
}

impl ProxyRequest {
    /// The first value of a parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Fault>,
    standing: Option<Fault>,
    requests: Vec<ProxyRequest>,
}

/// The running proxy. Dropping it stops it.
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Binds 127.0.0.1:0 and forwards to `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let upstream_uri: Uri = upstream
            .parse()
            .unwrap_or_else(|e| panic!("FaultProxy: bad upstream URL {upstream:?}: {e}"));
        let authority = authority_of(&upstream_uri)
            .unwrap_or_else(|e| panic!("FaultProxy: bad upstream URL {upstream:?}: {e}"));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("FaultProxy: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("FaultProxy: local_addr");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let authority: Arc<str> = authority.into();
        let task = tokio::spawn(async move {
            // Owned by the accept task: aborting it aborts every connection too.
            let mut conns = JoinSet::new();
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                while conns.try_join_next().is_some() {}
                let state = shared.clone();
                let authority = authority.clone();
                conns.spawn(async move {
                    let service =
                        service_fn(move |req| handle(state.clone(), authority.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy {
            addr,
            upstream: upstream.to_string(),
            state,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Queues a fault for one request (FIFO).
    pub fn push_fault(&self, f: Fault) {
        self.lock().queue.push_back(f);
    }

    /// Drops the queued faults not yet consumed (the standing one stays).
    pub fn clear_faults(&self) {
        self.lock().queue.clear();
    }

    /// A fault for every request while set (after the queued ones); `None` clears it.
    pub fn fail_all(&self, f: Option<Fault>) {
        self.lock().standing = f;
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<ProxyRequest> {
        self.lock().requests.clone()
    }

    /// The `Action` of every request seen so far (`"?"` where there was none).
    pub fn actions(&self) -> Vec<String> {
        self.lock()
            .requests
            .iter()
            .map(|r| r.action.clone().unwrap_or_else(|| "?".into()))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

async fn handle(
    state: Arc<Mutex<State>>,
    upstream: Arc<str>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let time = Instant::now();
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();

    let path = parts.uri.path().to_string();
    let uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let is_form = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let mut params = Vec::new();
    if is_form {
        params.extend(parse_form(&String::from_utf8_lossy(&body)));
    }
    if let Some(q) = parts.uri.query() {
        params.extend(parse_form(q));
    }
    let action = params
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.clone());

    let (index, fault) = {
        let mut s = lock(&state);
        let fault = s.queue.pop_front().or_else(|| s.standing.clone());
        s.requests.push(ProxyRequest {
            time,
            method: parts.method.to_string(),
            path,
            uri: uri.clone(),
            action,
            params,
            fault: fault.clone(),
            status: None,
        });
        (s.requests.len() - 1, fault)
    };

    let response = match fault {
        Some(Fault::Close) => return Err("FaultProxy: injected Close fault".into()),
        Some(Fault::Throttle) => ec2_error(
            503,
            "RequestLimitExceeded",
            "Request limit exceeded.",
            "00000000-0000-0000-0000-000000000000",
        ),
        Some(Fault::ServerError) => ec2_error(
            500,
            "InternalError",
            "An internal error has occurred",
            &request_id(),
        ),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            forward(&upstream, parts.method, &uri, &parts.headers, body).await
        }
        None => forward(&upstream, parts.method, &uri, &parts.headers, body).await,
    };
    lock(&state).requests[index].status = Some(response.status().as_u16());
    Ok(response)
}

/// Sends the request upstream; a transport failure answers 502 (text/plain).
async fn forward(
    authority: &str,
    method: hyper::Method,
    uri: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            builder = builder.header(name, value);
        }
    }
    let request = match builder.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => return bad_gateway(format!("cannot build the upstream request: {e}")),
    };
    match send(authority, request).await {
        Ok((status, headers, body)) => {
            let mut b = Response::builder().status(status);
            for (name, value) in &headers {
                if !HOP_BY_HOP.contains(&name.as_str()) {
                    b = b.header(name, value);
                }
            }
            b.body(Full::new(body))
                .unwrap_or_else(|e| bad_gateway(format!("bad upstream response: {e}")))
        }
        Err(e) => bad_gateway(format!("upstream {authority}: {e}")),
    }
}

fn bad_gateway(message: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::BAD_GATEWAY)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(format!("fault_proxy: {message}"))))
        .expect("a valid response")
}

/// One request over a fresh connection to `authority` (`host:port`).
async fn send(
    authority: &str,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, HeaderMap, Bytes), BoxError> {
    let stream = TcpStream::connect(authority).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok::<_, BoxError>((parts.status, parts.headers, body))
    }
    .await;
    drop(sender);
    conn.abort();
    result
}

/// EC2's query-protocol error document.
fn ec2_error(status: u16, code: &str, message: &str, request_id: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
    );
    Response::builder()
        .status(StatusCode::from_u16(status).expect("a valid HTTP status code"))
        .header("content-type", "text/xml;charset=UTF-8")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(1);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// `application/x-www-form-urlencoded` pairs, decoded.
pub fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'+' {
            out.push(b' ');
        } else if b == b'%'
            && let Some(v) = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        } else {
            out.push(b);
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn authority_of(uri: &Uri) -> Result<String, String> {
    if uri.scheme_str().is_some_and(|s| s != "http") {
        return Err("only http:// is supported".into());
    }
    let host = uri.host().ok_or("no host")?;
    Ok(format!("{host}:{}", uri.port_u16().unwrap_or(80)))
}

/// A response as [`http_request`] returns it.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A raw HTTP/1.1 request to `url` (`http://HOST:PORT/path?query`) over a fresh connection.
/// `Host` is set from the URL unless `headers` has one. `Err` carries the transport error
/// (e.g. the server dropped the connection).
pub async fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<HttpResponse, String> {
    let uri: Uri = url.parse().map_err(|e| format!("bad URL {url:?}: {e}"))?;
    let authority = authority_of(&uri).map_err(|e| format!("bad URL {url:?}: {e}"))?;
    let path = uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .to_string();
    let mut builder = Request::builder().method(method).uri(path.as_str());
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        let host = uri.authority().map(|a| a.as_str()).unwrap_or(&authority);
        builder = builder.header(
            "host",
            HeaderValue::from_str(host).map_err(|e| e.to_string())?,
        );
    }
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let (status, headers, body) = send(&authority, request)
        .await
        .map_err(|e| format!("{method} {url}: {e}"))?;
    Ok(HttpResponse {
        status: status.as_u16(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
