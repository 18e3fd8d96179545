//! Errors by category: the metric label and the Event reason. Invalid input waits for a
//! change to the input; transient failures are retried with backoff and jitter.

use std::fmt;

/// What kind of failure, decided by the API server's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// 400/422: the object or the input is wrong; retrying cannot help.
    Invalid,
    /// 401/403: RBAC does not allow it; retrying cannot help.
    Forbidden,
    /// 404.
    NotFound,
    /// 409: a concurrent change; retried.
    Conflict,
    /// 429: the API server asked to slow down; retried.
    Throttled,
    /// 5xx, timeouts, connection errors; retried.
    Transient,
}

impl Category {
    /// Classifies a kube client error.
    pub fn of(e: &kube::Error) -> Category {
        match e {
            kube::Error::Api(s) => Self::of_code(s.code),
            kube::Error::SerdeError(_) | kube::Error::BuildRequest(_) => Category::Invalid,
            _ => Category::Transient,
        }
    }

    pub fn of_code(code: u16) -> Category {
        match code {
            400 | 422 => Category::Invalid,
            401 | 403 => Category::Forbidden,
            404 | 410 => Category::NotFound,
            409 => Category::Conflict,
            429 => Category::Throttled,
            _ => Category::Transient,
        }
    }

    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Category::Conflict | Category::Throttled | Category::Transient
        )
    }

    /// Label value / Event reason suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Invalid => "invalid",
            Category::Forbidden => "forbidden",
            Category::NotFound => "not_found",
            Category::Conflict => "conflict",
            Category::Throttled => "throttled",
            Category::Transient => "transient",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why `gpu-slicer run` stopped before serving (the CLI exits 3).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The webhook's certificate cannot be loaded.
    #[error(
        "admission webhook certificate: {source} (--webhook-cert-dir must hold {cert} and \
         {key}; --webhook-port 0 turns the webhook off)",
        cert = super::webhook::CERT_FILE,
        key = super::webhook::KEY_FILE
    )]
    WebhookCertificate {
        #[source]
        source: super::webhook::TlsError,
    },
    /// The webhook's port cannot be bound.
    #[error("admission webhook: cannot listen on {addr}: {source}")]
    WebhookPort {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The API server's discovery failed.
    #[error("API discovery failed: {0}")]
    Discovery(#[source] kube::Error),
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    #[test]
    fn a_run_error_says_what_to_do_and_keeps_its_cause() {
        let e = RunError::WebhookPort {
            addr: "127.0.0.1:8443".parse().expect("an address"),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert!(
            e.to_string()
                .starts_with("admission webhook: cannot listen on 127.0.0.1:8443: "),
            "{e}"
        );
        assert!(e.source().is_some());
        let e = RunError::WebhookCertificate {
            source: super::super::webhook::CertStore::load("/nonexistent-gpu-slicer-certs")
                .expect_err("no such directory"),
        };
        let text = e.to_string();
        assert!(
            text.contains("--webhook-cert-dir must hold tls.crt and tls.key"),
            "{text}"
        );
        assert!(
            text.contains("--webhook-port 0 turns the webhook off"),
            "{text}"
        );
        assert!(e.source().is_some());
    }

    #[test]
    fn codes() {
        assert_eq!(Category::of_code(422), Category::Invalid);
        assert_eq!(Category::of_code(403), Category::Forbidden);
        assert_eq!(Category::of_code(409), Category::Conflict);
        assert_eq!(Category::of_code(429), Category::Throttled);
        assert_eq!(Category::of_code(503), Category::Transient);
        assert!(Category::Throttled.is_retryable());
        assert!(!Category::Invalid.is_retryable());
        assert!(!Category::Forbidden.is_retryable());
    }
}
