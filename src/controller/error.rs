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

#[cfg(test)]
mod tests {
    use super::*;

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
