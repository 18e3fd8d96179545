//! Live instance data and prices from AWS (`--live-prices`): the EC2 and Pricing SDK
//! clients, every call behind one governor rate limiter, a per-attempt timeout, and
//! retries with exponential backoff and jitter on throttling, 5xx, timeouts and
//! connection failures (after the answer's `Retry-After`, capped at 60 s, when it has one).
//!
//! What is fetched becomes plain values ([`crate::catalog::live`]); the pure merge
//! turns them into a catalog. Nothing here can make planning fail: a kind of data that
//! cannot be fetched is taken from the cache (stale, flagged) or from the base catalog.
//!
//! Credentials and region come from the standard AWS chain (environment, profile, web
//! identity / IRSA, EKS Pod Identity, IMDS). The SDK is built without its default HTTPS
//! client (no aws-lc-sys, no second TLS stack), so one is built here on rustls + ring.

mod cache;
mod fetch;

pub use cache::{
    CacheError, LiveSource, Refresh, cache_file, load_cache, now_unix, refresh, save_cache,
};

use std::collections::BTreeMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::backoff::{Backoff, parse_retry_after, retry_delay};
use crate::catalog::live::Ttls;

pub use crate::catalog::live::DEFAULT_PRICING_REGION;

/// How gpu-slicer talks to AWS.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// The region whose instance types and prices are wanted; `None`: the AWS chain's.
    pub region: Option<String>,
    /// EC2 endpoint override (testing, private endpoints).
    pub endpoint_url: Option<String>,
    /// Pricing endpoint override.
    pub pricing_endpoint_url: Option<String>,
    pub pricing_region: String,
    /// governor quota shared by every AWS request (each attempt counts).
    pub requests_per_second: NonZeroU32,
    pub burst: NonZeroU32,
    /// Timeout of one attempt (connect included).
    pub attempt_timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    pub base_backoff: Duration,
    pub throttle_backoff: Duration,
    pub max_backoff: Duration,
    pub ttls: Ttls,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            region: None,
            endpoint_url: None,
            pricing_endpoint_url: None,
            pricing_region: DEFAULT_PRICING_REGION.to_string(),
            requests_per_second: NonZeroU32::MIN.saturating_add(4),
            burst: NonZeroU32::MIN.saturating_add(4),
            attempt_timeout: Duration::from_secs(10),
            max_attempts: 4,
            base_backoff: Duration::from_millis(200),
            throttle_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            ttls: Ttls::default(),
        }
    }
}

/// Why an AWS call failed, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Throttling or request-limit error codes, HTTP 429.
    Throttled,
    /// HTTP 5xx.
    ServerError,
    /// The attempt did not finish in time.
    Timeout,
    /// The connection could not be made (refused, DNS, TLS).
    Connect,
    /// Credentials missing or refused, or not authorised.
    Denied,
    /// The answer could not be read.
    BadResponse,
    /// Anything else the service refused (4xx); not retried.
    Rejected,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Throttled => "throttled",
            Reason::ServerError => "server-error",
            Reason::Timeout => "timeout",
            Reason::Connect => "connect",
            Reason::Denied => "denied",
            Reason::BadResponse => "bad-response",
            Reason::Rejected => "rejected",
        }
    }

    fn is_retryable(self) -> bool {
        matches!(
            self,
            Reason::Throttled | Reason::ServerError | Reason::Timeout | Reason::Connect
        )
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call that failed after its retries. The error of the last attempt (the SDK's, or the
/// timeout's) is its [`source`](std::error::Error::source), shared so that the error
/// stays `Clone` (downcast through `cause`); the message already says what it says. An
/// answer that did not make sense has no cause.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{api} failed after {attempts} attempt(s) ({reason}): {message}")]
pub struct CallError {
    pub api: &'static str,
    pub reason: Reason,
    pub attempts: u32,
    pub message: String,
    /// The error this one was made from, if any.
    #[source]
    pub cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// Receives one report per attempt: the API and `ok` or the failure reason. The
/// controller's metrics implement it; [`Counts`] counts for the CLI and tests.
pub trait Observer: Send + Sync {
    fn attempt(&self, api: &'static str, outcome: &'static str);
}

/// Attempts per (API, outcome).
#[derive(Debug, Default)]
pub struct Counts {
    inner: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Counts {
    pub fn snapshot(&self) -> BTreeMap<(&'static str, &'static str), u64> {
        self.inner.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Attempts of an API with any outcome.
    pub fn attempts(&self, api: &str) -> u64 {
        self.snapshot()
            .iter()
            .filter(|((a, _), _)| *a == api)
            .map(|(_, n)| n)
            .sum()
    }
}

impl Observer for Counts {
    fn attempt(&self, api: &'static str, outcome: &'static str) {
        if let Ok(mut m) = self.inner.lock() {
            *m.entry((api, outcome)).or_default() += 1;
        }
    }
}

/// The two SDK clients and what every call shares.
pub struct Clients {
    ec2: aws_sdk_ec2::Client,
    pricing: aws_sdk_pricing::Client,
    region: String,
    settings: AwsSettings,
    limiter: DefaultDirectRateLimiter,
    backoff: Backoff,
    observers: Vec<Arc<dyn Observer>>,
}

/// Why the clients could not be made (no region, no credentials provider: nothing
/// underneath, so no source).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// The HTTPS client the SDK needs (rustls on ring; see the module docs).
pub fn https_client() -> aws_sdk_ec2::config::SharedHttpClient {
    use aws_smithy_http_client::{Builder, tls};
    Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// The AWS SDK configuration from the standard chain (environment, profile, web identity
/// / IRSA, EKS Pod Identity, IMDS), with gpu-slicer's HTTPS client and `--region`.
pub async fn load_sdk_config(settings: &AwsSettings) -> aws_config::SdkConfig {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client());
    if let Some(r) = &settings.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    loader.load().await
}

/// Whether the configuration's credential chain yields credentials within `timeout`.
pub async fn has_credentials(conf: &aws_config::SdkConfig, timeout: Duration) -> bool {
    use aws_sdk_ec2::config::ProvideCredentials;
    let Some(p) = conf.credentials_provider() else {
        return false;
    };
    matches!(
        tokio::time::timeout(timeout, p.provide_credentials()).await,
        Ok(Ok(_))
    )
}

impl Clients {
    /// Loads credentials and region through the standard AWS chain ([`load_sdk_config`]).
    /// Fails (without sending a request) when there is no region or no credentials
    /// provider.
    pub async fn load(settings: &AwsSettings) -> Result<Self, SetupError> {
        Self::from_sdk_config(&load_sdk_config(settings).await, settings)
    }

    /// Clients from a ready SDK configuration (tests pass static credentials here). The
    /// endpoint overrides, retries (ours, not the SDK's) and timeouts of `settings` apply.
    pub fn from_sdk_config(
        conf: &aws_config::SdkConfig,
        settings: &AwsSettings,
    ) -> Result<Self, SetupError> {
        let region = settings
            .region
            .clone()
            .or_else(|| conf.region().map(|r| r.to_string()))
            .ok_or_else(|| {
                SetupError(
                    "no AWS region: set --region, AWS_REGION or a profile region".to_string(),
                )
            })?;
        if conf.credentials_provider().is_none() {
            return Err(SetupError("no AWS credentials provider".to_string()));
        }
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(settings.attempt_timeout)
            .operation_attempt_timeout(settings.attempt_timeout)
            .build();
        let mut ec2 = aws_sdk_ec2::config::Builder::from(conf)
            .region(aws_sdk_ec2::config::Region::new(region.clone()))
            .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
            .timeout_config(timeouts.clone());
        if let Some(u) = &settings.endpoint_url {
            ec2 = ec2.endpoint_url(u);
        }
        let mut pricing = aws_sdk_pricing::config::Builder::from(conf)
            .region(aws_sdk_pricing::config::Region::new(
                settings.pricing_region.clone(),
            ))
            .retry_config(aws_sdk_pricing::config::retry::RetryConfig::disabled())
            .timeout_config(timeouts);
        if let Some(u) = &settings.pricing_endpoint_url {
            pricing = pricing.endpoint_url(u);
        }
        Ok(Clients {
            ec2: aws_sdk_ec2::Client::from_conf(ec2.build()),
            pricing: aws_sdk_pricing::Client::from_conf(pricing.build()),
            region,
            limiter: RateLimiter::direct(
                Quota::per_second(settings.requests_per_second).allow_burst(settings.burst),
            ),
            backoff: Backoff::new(settings.base_backoff, settings.max_backoff),
            settings: settings.clone(),
            observers: Vec::new(),
        })
    }

    /// Adds an observer of every attempt.
    pub fn observe(mut self, o: Arc<dyn Observer>) -> Self {
        self.observers.push(o);
        self
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    fn report(&self, api: &'static str, outcome: &'static str) {
        for o in &self.observers {
            o.attempt(api, outcome);
        }
    }

    /// One AWS call: every attempt waits for the rate limiter and has its own timeout;
    /// throttling, 5xx, timeouts and connection failures are retried with backoff and
    /// jitter (throttling from a longer base). A throttling or 5xx answer with a
    /// `Retry-After` header is retried after what it asks for instead (at most
    /// [`crate::backoff::MAX_RETRY_AFTER`]).
    async fn call<T, E, F, Fut>(&self, api: &'static str, mut op: F) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut attempt = 0u32;
        loop {
            self.limiter.until_ready().await;
            attempt += 1;
            let result = tokio::time::timeout(self.settings.attempt_timeout, op()).await;
            type Cause = Arc<dyn std::error::Error + Send + Sync>;
            let ((reason, message), retry_after, cause) = match result {
                Ok(Ok(v)) => {
                    self.report(api, "ok");
                    return Ok(v);
                }
                Ok(Err(e)) => (
                    classify(&e),
                    retry_after(&e, std::time::SystemTime::now()),
                    Arc::new(e) as Cause,
                ),
                Err(elapsed) => (
                    (
                        Reason::Timeout,
                        format!("no answer within {:?}", self.settings.attempt_timeout),
                    ),
                    None,
                    Arc::new(elapsed) as Cause,
                ),
            };
            self.report(api, reason.as_str());
            tracing::debug!(api, attempt, %reason, %message, "AWS call failed");
            if !reason.is_retryable() || attempt >= self.settings.max_attempts.max(1) {
                return Err(CallError {
                    api,
                    reason,
                    attempts: attempt,
                    message,
                    cause: Some(cause),
                });
            }
            let computed = if reason == Reason::Throttled {
                self.backoff
                    .delay_from(self.settings.throttle_backoff, attempt)
            } else {
                self.backoff.delay(attempt)
            };
            let delay = match reason {
                Reason::Throttled | Reason::ServerError => retry_delay(retry_after, computed),
                _ => computed,
            };
            if retry_after.is_some() {
                tracing::debug!(api, attempt, ?delay, "AWS asked to retry after a while");
            }
            tokio::time::sleep(delay).await;
        }
    }
}

pub(crate) type HttpResponse = aws_sdk_ec2::config::http::HttpResponse;

/// Error codes AWS services use for throttling.
const THROTTLING_CODES: [&str; 8] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
];

/// Error codes of missing, invalid or unauthorised credentials.
const DENIED_CODES: [&str; 7] = [
    "AuthFailure",
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
];

fn classify<E>(e: &SdkError<E, HttpResponse>) -> (Reason, String)
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match e {
        SdkError::TimeoutError(_) => (Reason::Timeout, "timed out".to_string()),
        SdkError::DispatchFailure(d) => {
            let reason = if d.is_timeout() {
                Reason::Timeout
            } else if d.is_user() {
                Reason::Denied
            } else {
                Reason::Connect
            };
            (reason, format!("{:?}", d.as_connector_error()))
        }
        SdkError::ConstructionFailure(_) => (
            Reason::Denied,
            format!("request not sent: {}", error_chain(e)),
        ),
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            let reason = if status == 429 {
                Reason::Throttled
            } else if status >= 500 {
                Reason::ServerError
            } else {
                Reason::BadResponse
            };
            (reason, format!("HTTP {status}: {}", error_chain(e)))
        }
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let code = s.err().code().unwrap_or("");
            let message = format!(
                "HTTP {status}{}{code}: {}",
                if code.is_empty() { "" } else { " " },
                s.err().message().unwrap_or("(no message)")
            );
            let reason = if THROTTLING_CODES.contains(&code) || status == 429 {
                Reason::Throttled
            } else if status >= 500 {
                Reason::ServerError
            } else if DENIED_CODES.contains(&code) || status == 401 || status == 403 {
                Reason::Denied
            } else {
                Reason::Rejected
            };
            (reason, message)
        }
        _ => (Reason::BadResponse, error_chain(e)),
    }
}

/// The wait the answer's `Retry-After` header asks for (seconds or an HTTP date, read at
/// `now`), when the error carries an HTTP answer that has one.
fn retry_after<E>(e: &SdkError<E, HttpResponse>, now: std::time::SystemTime) -> Option<Duration> {
    let raw = match e {
        SdkError::ServiceError(s) => s.raw(),
        SdkError::ResponseError(r) => r.raw(),
        _ => return None,
    };
    parse_retry_after(raw.headers().get("retry-after")?, now)
}

/// The error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn call_error_displays_its_attempts_and_keeps_the_sdk_error() {
        type Ec2Error = aws_sdk_ec2::operation::describe_instance_types::DescribeInstanceTypesError;
        let sdk = SdkError::<Ec2Error, HttpResponse>::timeout_error("no answer");
        let (reason, message) = classify(&sdk);
        let e = CallError {
            api: "ec2:DescribeInstanceTypes",
            reason,
            attempts: 3,
            message,
            cause: Some(Arc::new(sdk)),
        };
        assert_eq!(
            e.to_string(),
            "ec2:DescribeInstanceTypes failed after 3 attempt(s) (timeout): timed out"
        );
        // The source is the shared cause: the SDK error's text and its own sources.
        let source = e.source().expect("the SDK error");
        assert_eq!(source.to_string(), "request has timed out");
        assert_eq!(
            source.source().map(ToString::to_string).as_deref(),
            Some("no answer")
        );
        let cause = e.cause.as_deref().expect("a cause");
        assert!(
            cause
                .downcast_ref::<SdkError<Ec2Error, HttpResponse>>()
                .is_some()
        );
        let e = CallError { cause: None, ..e };
        assert!(e.source().is_none());
    }

    #[test]
    fn setup_error_is_its_message() {
        let e = SetupError("no AWS credentials provider".to_string());
        assert_eq!(e.to_string(), "no AWS credentials provider");
        assert!(e.source().is_none());
    }
}
