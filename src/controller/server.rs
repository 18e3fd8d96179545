//! The probe and metrics server: `/healthz` (the process runs), `/readyz` (every cache has
//! synced), `/metrics` (Prometheus text) and `/plan` (the latest plan as the contract's
//! plan JSON; 503 before the first round).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::metrics::Metrics;

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

/// Serves until `shutdown` turns true.
pub async fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /healthz /readyz /metrics /plan");
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => a?,
            _ = shutdown.changed() => return Ok(()),
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let r = route(&shared, req.uri().path());
                async move { Ok::<_, Infallible>(r) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "probe connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn routes() {
        let s = Shared::default();
        assert_eq!(route(&s, "/healthz").status(), StatusCode::OK);
        assert_eq!(
            route(&s, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        s.ready.store(true, Ordering::SeqCst);
        assert_eq!(route(&s, "/readyz").status(), StatusCode::OK);
        assert_eq!(route(&s, "/plan").status(), StatusCode::SERVICE_UNAVAILABLE);
        *s.plan_json.lock().expect("lock") = Some("{}".into());
        assert_eq!(route(&s, "/plan").status(), StatusCode::OK);
        assert_eq!(route(&s, "/metrics").status(), StatusCode::OK);
        assert_eq!(route(&s, "/nope").status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn serves_over_tcp_on_loopback() {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = watch::channel(false);
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = probe.local_addr().expect("addr");
        drop(probe);
        let task = tokio::spawn(serve(addr, shared.clone(), rx));
        let mut body = String::new();
        for _ in 0..50 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .await
                    .expect("write");
                s.read_to_string(&mut body).await.expect("read");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.ends_with("ok\n"), "{body}");
        tx.send(true).expect("shutdown");
        task.await.expect("join").expect("served");
    }
}
