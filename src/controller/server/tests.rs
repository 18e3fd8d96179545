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

#[test]
fn methods() {
    let s = Shared::default();
    assert_eq!(
        handle(&s, &Method::GET, "/healthz").status(),
        StatusCode::OK
    );
    let head = handle(&s, &Method::HEAD, "/healthz");
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()[hyper::header::CONTENT_LENGTH], "3");
    for m in [Method::DELETE, Method::POST, Method::PUT, Method::PATCH] {
        let r = handle(&s, &m, "/plan");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{m}");
        assert_eq!(r.headers()[hyper::header::ALLOW], "GET, HEAD", "{m}");
    }
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

/// A server on 127.0.0.1 with the given header-read timeout.
async fn start(
    timeout: Duration,
) -> (
    SocketAddr,
    watch::Sender<bool>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(serve_with(
        listener,
        Arc::new(Shared::default()),
        rx,
        timeout,
    ));
    (addr, tx, task)
}

/// Sends `raw` on a new connection and reads the answer until the server closes.
async fn exchange(addr: SocketAddr, raw: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(raw.as_bytes()).await.expect("write");
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .expect("answer in time")
        .expect("read");
    out
}

#[tokio::test]
async fn delete_is_405_with_allow_over_tcp() {
    let (addr, tx, task) = start(HEADER_READ_TIMEOUT).await;
    let out = exchange(
        addr,
        "DELETE /plan HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 405"), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("\r\nallow: get, head\r\n"),
        "{out}"
    );
    tx.send(true).expect("shutdown");
    task.await.expect("join").expect("served");
}

#[tokio::test]
async fn head_is_200_without_a_body_over_tcp() {
    let (addr, tx, task) = start(HEADER_READ_TIMEOUT).await;
    let out = exchange(
        addr,
        "HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let (head, body) = out.split_once("\r\n\r\n").expect("a head");
    assert_eq!(body, "", "HEAD answered with a body: {out}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 3"),
        "{out}"
    );
    tx.send(true).expect("shutdown");
    task.await.expect("join").expect("served");
}

/// A client that sends part of a request head and then nothing is disconnected after
/// the header-read timeout, and others are served meanwhile.
#[tokio::test]
async fn slow_client_is_cut_off_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let timeout = Duration::from_millis(200);
    let (addr, tx, task) = start(timeout).await;
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let started = tokio::time::Instant::now();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");

    let out = exchange(
        addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        started.elapsed() < timeout,
        "the other client waited for the slow one: {:?}",
        started.elapsed()
    );

    let mut buf = Vec::new();
    let read = tokio::time::timeout(timeout * 5, slow.read_to_end(&mut buf)).await;
    let closed_after = started.elapsed();
    // Closed: end of stream, or a reset, both within the bound.
    assert!(
        read.is_ok(),
        "still open after {closed_after:?}: {:?}",
        String::from_utf8_lossy(&buf)
    );
    assert!(
        closed_after >= timeout.mul_f64(0.9),
        "closed before the timeout: {closed_after:?}"
    );
    tx.send(true).expect("shutdown");
    task.await.expect("join").expect("served");
}
