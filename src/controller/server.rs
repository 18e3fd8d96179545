//! The probe and metrics server: `/healthz` (the process runs), `/readyz` (every cache has
//! synced), `/metrics` (Prometheus text) and `/plan` (the latest plan as the contract's
//! plan JSON; 503 before the first round).
//!
//! Only GET and HEAD are served (HEAD: the GET answer's status and headers, no body); any
//! other method gets 405 with `Allow: GET, HEAD`. A client must send its request head
//! within the header-read timeout ([`HEADER_READ_TIMEOUT`]; also bounds an idle keep-alive
//! connection), or the connection is closed, so slow clients cannot hold connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::metrics::Metrics;

/// How long a client may take to send a request head before its connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server shows; shared with the controller loop.
#[derive(Default)]
pub struct Shared {
    pub ready: std::sync::atomic::AtomicBool,
    pub plan_json: Mutex<Option<String>>,
    pub metrics: Metrics,
}

fn respond(code: StatusCode, ctype: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Answers one request.
pub fn route(shared: &Shared, path: &str) -> Response<Full<Bytes>> {
    use std::sync::atomic::Ordering;
    match path {
        "/healthz" => respond(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" if shared.ready.load(Ordering::SeqCst) => {
            respond(StatusCode::OK, "text/plain", "ok\n".into())
        }
        "/readyz" => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "caches not synced\n".into(),
        ),
        "/metrics" => respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            shared.metrics.encode(),
        ),
        "/plan" => {
            let plan = shared
                .plan_json
                .lock()
                .map(|p| p.clone())
                .unwrap_or_default();
            match plan {
                Some(p) => respond(StatusCode::OK, "application/json", p),
                None => respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "no plan yet\n".into(),
                ),
            }
        }
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// Answers one request by method and path: GET as [`route`], HEAD as GET without the
/// body (`Content-Length` still says the GET body's length), anything else 405.
pub fn handle(shared: &Shared, method: &Method, path: &str) -> Response<Full<Bytes>> {
    use hyper::body::Body;
    if method == Method::GET {
        return route(shared, path);
    }
    if method == Method::HEAD {
        let (mut parts, body) = route(shared, path).into_parts();
        if let Some(n) = body.size_hint().exact() {
            parts.headers.insert(
                hyper::header::CONTENT_LENGTH,
                hyper::header::HeaderValue::from(n),
            );
        }
        return Response::from_parts(parts, Full::new(Bytes::new()));
    }
    let mut r = respond(
        StatusCode::METHOD_NOT_ALLOWED,
        "text/plain",
        "method not allowed\n".into(),
    );
    r.headers_mut().insert(
        hyper::header::ALLOW,
        hyper::header::HeaderValue::from_static("GET, HEAD"),
    );
    r
}

/// Serves on `addr` until `shutdown` turns true.
pub async fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /healthz /readyz /metrics /plan");
    serve_with(listener, shared, shutdown, HEADER_READ_TIMEOUT).await
}

/// Serves on a bound listener until `shutdown` turns true, closing connections whose
/// request head does not arrive within `header_read_timeout`.
pub(crate) async fn serve_with(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => a?,
            _ = shutdown.changed() => return Ok(()),
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let r = handle(&shared, req.method(), req.uri().path());
                async move { Ok::<_, Infallible>(r) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "probe connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests;
