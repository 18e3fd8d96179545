//! The mutating admission webhook's HTTPS server (I/O; `gpu-slicer run`, every replica:
//! it is stateless, so it does not wait for the leader Lease or the caches).
//!
//! `POST /mutate-pods` takes an `admission.k8s.io/v1` AdmissionReview of a Pod and answers
//! the AdmissionReview that the [`Reviewer`] (in `run`: [`crate::admission::review`])
//! makes of it: a JSONPatch, an unchanged allow, or a denial with its message. What is
//! decided lives in `admission`; this file only carries it:
//!
//! - TLS only (rustls on ring, TLS 1.2/1.3, ALPN `http/1.1`): a plaintext request fails the
//!   handshake and gets no HTTP answer. The certificate is `tls.crt` (the chain, leaf
//!   first) and `tls.key` (PKCS#8, PKCS#1 or SEC1 PEM) in the cert dir, the layout of a
//!   `kubernetes.io/tls` Secret volume. [`CertStore`] re-reads both every
//!   [`RELOAD_EVERY`] and switches to a changed pair once it parses and the key matches the
//!   certificate (cert-manager rotation, a Helm upgrade); a broken pair is logged, counted
//!   and the one in use kept.
//! - Bounded: the body at [`MAX_BODY_BYTES`] (the API server's own request limit, 3 MiB;
//!   413 above), the handshake, the headers and the body each within a timeout, at most
//!   [`MAX_CONNECTIONS`] connections at a time (so at most about 200 MiB of bodies).
//! - Only POST to the one path (405, 404 otherwise). A body that is not an AdmissionReview
//!   gets 400; a review without a request gets `AdmissionResponse::invalid`. Nothing a
//!   client sends panics or blocks the server.
//!
//! Every answer is counted in `gpu_slicer_webhook_requests_total{outcome}` (`patched`,
//! `allowed`, `rejected`, `error`) and timed in `gpu_slicer_webhook_duration_seconds`.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use kube::core::DynamicObject;
use kube::core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, META_API_VERSION_V1, META_KIND,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::metrics::Metrics;
use super::server::Shared;

/// The webhook's path; the chart's MutatingWebhookConfiguration calls it.
pub const PATH: &str = "/mutate-pods";
/// File names in the cert dir (a `kubernetes.io/tls` Secret's keys).
pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";
/// Largest request body: the API server's own limit on a request (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// Connections served at once; the next waits in the listen queue.
pub const MAX_CONNECTIONS: usize = 64;
/// The TLS handshake, the request headers and the body must each arrive within this
/// (the API server gives a webhook at most 30 s in all).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the certificate files are re-read.
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);

/// `run`'s webhook settings (`--webhook-bind-address`, `--webhook-port`,
/// `--webhook-cert-dir`).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub addr: std::net::SocketAddr,
    /// Holds `tls.crt` and `tls.key`.
    pub cert_dir: PathBuf,
}

/// Why the serving certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a PEM certificate chain: {source}", path.display())]
    Pem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{}: no CERTIFICATE block", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no usable PEM private key: {source}", path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{} with {}: {source}", cert.display(), key.display())]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// The bytes of `tls.crt` and `tls.key` and what they parse to.
struct Loaded {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    key: Arc<CertifiedKey>,
}

/// The serving certificate of the cert dir, swapped when its files change. It is the
/// server's rustls certificate resolver, so a new one applies from the next handshake.
pub struct CertStore {
    dir: PathBuf,
    current: RwLock<Arc<Loaded>>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore").field("dir", &self.dir).finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses a PEM chain and key into a certified key, checking that they belong together.
fn certified(dir: &Path, cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: cert_path.clone(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_path });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| TlsError::Key {
        path: key_path.clone(),
        source,
    })?;
    CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider()).map_err(
        |source| TlsError::Pair {
            cert: cert_path,
            key: key_path,
            source,
        },
    )
}

impl CertStore {
    /// Loads `tls.crt` and `tls.key` from `dir`.
    pub fn load(dir: impl Into<PathBuf>) -> Result<Self, TlsError> {
        let dir = dir.into();
        let cert_pem = read(&dir.join(CERT_FILE))?;
        let key_pem = read(&dir.join(KEY_FILE))?;
        let key = Arc::new(certified(&dir, &cert_pem, &key_pem)?);
        Ok(CertStore {
            current: RwLock::new(Arc::new(Loaded {
                cert_pem,
                key_pem,
                key,
            })),
            dir,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn current(&self) -> Arc<Loaded> {
        // A poisoned lock still holds a complete Loaded (it is only ever replaced whole).
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Re-reads the files: Ok(true) when a changed pair is now in use, Ok(false) when they
    /// are unchanged, Err (the pair in use kept) when a changed pair does not load.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let cert_pem = read(&self.dir.join(CERT_FILE))?;
        let key_pem = read(&self.dir.join(KEY_FILE))?;
        let old = self.current();
        if old.cert_pem == cert_pem && old.key_pem == key_pem {
            return Ok(false);
        }
        let key = Arc::new(certified(&self.dir, &cert_pem, &key_pem)?);
        let new = Arc::new(Loaded {
            cert_pem,
            key_pem,
            key,
        });
        match self.current.write() {
            Ok(mut c) => *c = new,
            Err(p) => *p.into_inner() = new,
        }
        Ok(true)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().key.clone())
    }
}

/// The rustls server configuration over a certificate store: ring, TLS 1.2 and 1.3, no
/// client certificates (the API server authenticates the webhook, not the reverse), HTTP/1.1.
pub fn server_config(certs: Arc<CertStore>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Turns one admission request into its response (pure; in `run`, `admission::review`
/// with the run's policy).
pub type Reviewer =
    Arc<dyn Fn(&AdmissionRequest<DynamicObject>) -> AdmissionResponse + Send + Sync>;

/// How a request was answered (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewResult {
    /// Allowed with a JSONPatch.
    Patched,
    /// Allowed unchanged.
    Allowed,
    /// Denied by the review.
    Rejected,
    /// Not a usable request: wrong method or path, too large, unreadable, not a review.
    Error,
}

impl ReviewResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewResult::Patched => "patched",
            ReviewResult::Allowed => "allowed",
            ReviewResult::Rejected => "rejected",
            ReviewResult::Error => "error",
        }
    }

    fn of(resp: &AdmissionResponse) -> Self {
        match (resp.allowed, resp.patch.is_some()) {
            (true, true) => ReviewResult::Patched,
            (true, false) => ReviewResult::Allowed,
            (false, _) => ReviewResult::Rejected,
        }
    }
}

/// An HTTP answer: status, content type, body, outcome.
pub struct Answer {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub outcome: ReviewResult,
}

fn text(status: StatusCode, message: impl fmt::Display) -> Answer {
    Answer {
        status,
        content_type: "text/plain; charset=utf-8",
        body: format!("{message}\n").into_bytes(),
        outcome: ReviewResult::Error,
    }
}

fn review_json(review: &AdmissionReview<DynamicObject>, outcome: ReviewResult) -> Answer {
    match serde_json::to_vec(review) {
        Ok(body) => Answer {
            status: StatusCode::OK,
            content_type: "application/json",
            body,
            outcome,
        },
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the AdmissionReview: {e}"),
        ),
    }
}

/// Answers one request body (no I/O): 400 when it is not an `admission.k8s.io/v1`
/// AdmissionReview (the chart registers v1 only), the reviewer's response otherwise.
pub fn answer(body: &[u8], reviewer: &Reviewer) -> Answer {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("the body is not an admission.k8s.io/v1 AdmissionReview: {e}"),
            );
        }
    };
    let t = &review.types;
    if t.api_version != META_API_VERSION_V1 || t.kind != META_KIND {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "expected apiVersion {META_API_VERSION_V1}, kind {META_KIND}; got {:?}, {:?}",
                t.api_version, t.kind
            ),
        );
    }
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => {
            return review_json(
                &AdmissionResponse::invalid(format!("not an admission request: {e}")).into_review(),
                ReviewResult::Error,
            );
        }
    };
    let response = reviewer(&request);
    let outcome = ReviewResult::of(&response);
    review_json(&response.into_review(), outcome)
}

/// Reads a request and answers it (method, path, size, timeout).
async fn handle(req: Request<Incoming>, reviewer: &Reviewer) -> Answer {
    if req.uri().path() != PATH {
        return text(StatusCode::NOT_FOUND, format!("not found; POST {PATH}"));
    }
    if req.method() != Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{PATH} takes POST only"),
        );
    }
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        );
    }
    let body = Limited::new(req.into_body(), MAX_BODY_BYTES);
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Err(_) => {
            return text(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {BODY_TIMEOUT:?}"),
            );
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            );
        }
        Ok(Err(e)) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            );
        }
        Ok(Ok(b)) => b.to_bytes(),
    };
    answer(&bytes, reviewer)
}

/// What the server needs besides its listener.
#[derive(Clone)]
pub struct Webhook {
    pub certs: Arc<CertStore>,
    pub reviewer: Reviewer,
    pub shared: Arc<Shared>,
    /// How often the certificate files are re-read ([`RELOAD_EVERY`] in `run`).
    pub reload_every: Duration,
}

fn respond(a: Answer, metrics: &Metrics, started: Instant) -> Response<Full<Bytes>> {
    Metrics::count_outcome(&metrics.webhook_requests, a.outcome.as_str());
    metrics
        .webhook_duration
        .observe(started.elapsed().as_secs_f64());
    let mut r = Response::new(Full::new(Bytes::from(a.body)));
    *r.status_mut() = a.status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(a.content_type),
    );
    r
}

async fn reload(wh: &Webhook) {
    let certs = wh.certs.clone();
    // The two files are a few KiB; read them off the async workers anyway.
    let result = tokio::task::spawn_blocking(move || certs.reload()).await;
    let metrics = &wh.shared.metrics;
    match result {
        Ok(Ok(false)) => {}
        Ok(Ok(true)) => {
            tracing::info!(dir = %wh.certs.dir().display(), "webhook certificate reloaded");
            Metrics::count_outcome(&metrics.webhook_certificate_reloads, "reloaded");
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "webhook certificate not reloaded; the one in use is kept");
            Metrics::count_outcome(&metrics.webhook_certificate_reloads, "failed");
        }
        Err(e) => tracing::warn!(error = %e, "webhook certificate reload task failed"),
    }
}

/// Serves TLS connections from `listener` until `shutdown` turns true, re-reading the
/// certificate every `reload_every`.
pub async fn serve(
    listener: TcpListener,
    wh: Webhook,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), TlsError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(wh.certs.clone())?);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let reloader = {
        let wh = wh.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(wh.reload_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => reload(&wh).await,
                    _ = shutdown.changed() => return,
                }
            }
        })
    };
    let result = accept_loop(listener, &acceptor, &permits, &wh, &mut shutdown).await;
    reloader.abort();
    result
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: &tokio_rustls::TlsAcceptor,
    permits: &Arc<Semaphore>,
    wh: &Webhook,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), TlsError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, path = PATH, "serving the admission webhook (HTTPS)");
    }
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                // The semaphore is never closed.
                Err(_) => return Ok(()),
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin or exit.
                    tracing::warn!(error = %e, "webhook accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let wh = wh.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "webhook TLS handshake timed out");
                    return;
                }
            };
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let wh = wh.clone();
                async move {
                    let started = Instant::now();
                    let a = handle(req, &wh.reviewer).await;
                    Ok::<_, Infallible>(respond(a, &wh.shared.metrics, started))
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "webhook connection ended");
            }
        });
    }
}
