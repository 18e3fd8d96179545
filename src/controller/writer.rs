//! The one writer: server-side apply with field manager `gpu-slicer`, deletion of owned
//! objects (with a uid precondition), and the startup-taint patch on nodes. Every write
//! waits for the governor rate limiter, checks that this replica still holds the lease,
//! and is retried with exponential backoff and jitter on conflicts, throttling and server
//! errors. Invalid or forbidden writes are not retried. In dry-run mode nothing is sent.
//!
//! A throttled or failed write whose answer asks to retry after a while is retried after
//! that long instead of the computed backoff (at most [`crate::backoff::MAX_RETRY_AFTER`]).
//! kube-rs builds its error from the answer's `Status` body alone and drops the headers, so
//! the writer's client goes through [`RetryAfterHeader`], which copies a `Retry-After`
//! header (seconds or HTTP date) into the `Status`'s `details.retryAfterSeconds` (what the
//! API server itself sets on some 429 and 5xx statuses); plain-text answers, such as API
//! Priority and Fairness's 429, get the `Status` kube-rs would have built from them.

use std::collections::BTreeMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use crate::backoff::{Backoff, MAX_RETRY_AFTER, parse_retry_after, retry_delay};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http_body_util::BodyExt;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::client::Body;
use kube::core::Status;
use kube::core::response::StatusDetails;
use serde_json::Value;

use super::error::Category;
use crate::reconcile::{Actions, Deletion, ObjectKey};

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "gpu-slicer";

/// Why a write did not happen.
#[derive(Debug)]
enum Stop {
    /// The lease was lost before an attempt (retries included): counted as `not_leader`,
    /// not as a failure.
    NotLeader,
    /// The API refused it, or the retries ran out.
    Failed(Category, String),
}

impl From<(Category, String)> for Stop {
    fn from((category, message): (Category, String)) -> Self {
        Stop::Failed(category, message)
    }
}

/// Whether this replica may write (it holds the leader Lease). Shared with the elector.
#[derive(Debug, Clone, Default)]
pub struct LeaderFlag(Arc<AtomicBool>);

impl LeaderFlag {
    pub fn new(leading: bool) -> Self {
        LeaderFlag(Arc::new(AtomicBool::new(leading)))
    }
    pub fn is_leader(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    pub fn set(&self, leading: bool) {
        self.0.store(leading, Ordering::SeqCst);
    }
}

/// How the writer behaves.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub dry_run: bool,
    /// Attempts per write, the first included.
    pub max_attempts: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Sustained writes per second and burst (governor quota).
    pub writes_per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            dry_run: false,
            max_attempts: 5,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            writes_per_second: NonZeroU32::MIN.saturating_add(9),
            burst: NonZeroU32::MIN.saturating_add(19),
        }
    }
}

/// A write that did not happen, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed {
    pub object: String,
    pub category: Category,
    pub message: String,
}

/// What a round of writes did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    pub applied: Vec<ObjectKey>,
    pub deleted: Vec<ObjectKey>,
    pub failed: Vec<Failed>,
    /// Writes not attempted because this replica is not (or no longer) the leader.
    pub not_leader: usize,
    /// Writes that dry-run mode skipped.
    pub dry_run: usize,
}

/// The API resources gpu-slicer reads and writes, by apiVersion and kind. `run` fills it
/// from the API server's discovery before its first round; until then, and for a kind
/// discovery did not list, the resource is the one the generated Karpenter type or the
/// k8s-openapi type describes (its group, version and plural). No plural is spelt here.
#[derive(Debug, Clone)]
pub struct ApiResources(BTreeMap<(String, String), ApiResource>);

impl Default for ApiResources {
    fn default() -> Self {
        use crate::karpenter::{
            awsnodetemplate_v1alpha1, ec2nodeclass_v1, ec2nodeclass_v1beta1, nodeclaim_v1,
            nodeoverlay_v1alpha1, nodepool_v1, nodepool_v1beta1, provisioner_v1alpha5,
        };
        use k8s_openapi::api::core::v1::{ConfigMap, Node};
        ApiResources(BTreeMap::new()).with([
            ApiResource::erase::<nodepool_v1::NodePool>(&()),
            ApiResource::erase::<nodeclaim_v1::NodeClaim>(&()),
            ApiResource::erase::<ec2nodeclass_v1::Ec2NodeClass>(&()),
            ApiResource::erase::<nodeoverlay_v1alpha1::NodeOverlay>(&()),
            ApiResource::erase::<nodepool_v1beta1::NodePool>(&()),
            ApiResource::erase::<ec2nodeclass_v1beta1::Ec2NodeClass>(&()),
            ApiResource::erase::<provisioner_v1alpha5::Provisioner>(&()),
            ApiResource::erase::<awsnodetemplate_v1alpha1::AwsNodeTemplate>(&()),
            ApiResource::erase::<ConfigMap>(&()),
            ApiResource::erase::<Node>(&()),
        ])
    }
}

impl ApiResources {
    /// These resources added, replacing what was known for the same apiVersion and kind.
    pub fn with(mut self, resources: impl IntoIterator<Item = ApiResource>) -> Self {
        for ar in resources {
            self.0.insert((ar.api_version.clone(), ar.kind.clone()), ar);
        }
        self
    }

    /// The resource of an apiVersion and kind, if gpu-slicer knows it.
    pub fn get(&self, api_version: &str, kind: &str) -> Option<ApiResource> {
        self.0
            .get(&(api_version.to_string(), kind.to_string()))
            .cloned()
    }

    /// The plural of a kind in any version known (the same in every version).
    pub fn plural(&self, kind: &str) -> Option<&str> {
        self.0
            .values()
            .find(|ar| ar.kind == kind)
            .map(|ar| ar.plural.as_str())
    }
}

pub struct Writer {
    client: Client,
    cfg: WriterConfig,
    resources: ApiResources,
    limiter: DefaultDirectRateLimiter,
    leader: LeaderFlag,
    /// Writes sent to the API server (each attempt counts), for metrics and tests.
    sent: AtomicU64,
    backoff: Backoff,
}

impl Writer {
    pub fn new(client: Client, cfg: WriterConfig, leader: LeaderFlag) -> Self {
        let limiter =
            RateLimiter::direct(Quota::per_second(cfg.writes_per_second).allow_burst(cfg.burst));
        // Writes go through a service that shows kube-rs the `Retry-After` header.
        let client = honouring_retry_after(&client);
        Writer {
            backoff: Backoff::new(cfg.base_backoff, cfg.max_backoff),
            client,
            cfg,
            resources: ApiResources::default(),
            limiter,
            leader,
            sent: AtomicU64::new(0),
        }
    }

    /// The writer with the resources discovery found (see [`ApiResources`]).
    pub fn with_resources(mut self, resources: ApiResources) -> Self {
        self.resources = resources;
        self
    }

    /// Requests sent so far (every attempt).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    fn api(&self, api_version: &str, kind: &str, ns: Option<&str>) -> Option<Api<DynamicObject>> {
        let ar = self.resources.get(api_version, kind)?;
        Some(match ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        })
    }

    /// Applies, drains and deletes, in that order. Stops writing (and counts the rest as
    /// `not_leader`) as soon as the lease is lost.
    pub async fn execute(&self, actions: &Actions) -> Applied {
        let mut out = Applied::default();
        for obj in actions.apply.iter().chain(&actions.drain) {
            let Some(key) = ObjectKey::of(obj) else {
                out.failed.push(Failed {
                    object: "object without kind or name".into(),
                    category: Category::Invalid,
                    message: "cannot be applied".into(),
                });
                continue;
            };
            if !self.may_write(&mut out) {
                continue;
            }
            match self.apply(&key, obj).await {
                Ok(()) => out.applied.push(key),
                Err(Stop::NotLeader) => out.not_leader += 1,
                Err(Stop::Failed(category, message)) => out.failed.push(Failed {
                    object: key.to_string(),
                    category,
                    message,
                }),
            }
        }
        for d in &actions.delete {
            if !self.may_write(&mut out) {
                continue;
            }
            match self.delete(d).await {
                Ok(()) => out.deleted.push(d.key.clone()),
                Err(Stop::NotLeader) => out.not_leader += 1,
                Err(Stop::Failed(category, message)) => out.failed.push(Failed {
                    object: d.key.to_string(),
                    category,
                    message,
                }),
            }
        }
        out
    }

    /// Whether a write may be sent now (not dry-run, still the leader); counts why not.
    fn may_write(&self, out: &mut Applied) -> bool {
        if self.cfg.dry_run {
            out.dry_run += 1;
            false
        } else if !self.leader.is_leader() {
            out.not_leader += 1;
            false
        } else {
            true
        }
    }

    async fn apply(&self, key: &ObjectKey, obj: &Value) -> Result<(), Stop> {
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let api = self
            .api(api_version, &key.kind, key.namespace.as_deref())
            .ok_or_else(|| {
                (
                    Category::Invalid,
                    format!("gpu-slicer does not write {}", key.kind),
                )
            })?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.retrying(|| async {
            api.patch(&key.name, &params, &Patch::Apply(obj))
                .await
                .map(|_| ())
        })
        .await
    }

    async fn delete(&self, d: &Deletion) -> Result<(), Stop> {
        let api = self
            .api(&d.api_version, &d.key.kind, d.key.namespace.as_deref())
            .ok_or_else(|| {
                (
                    Category::Invalid,
                    format!("gpu-slicer does not delete {}", d.key.kind),
                )
            })?;
        let params = DeleteParams {
            preconditions: d.uid.as_ref().map(|uid| Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        let r = self
            .retrying(|| async { api.delete(&d.key.name, &params).await.map(|_| ()) })
            .await;
        match r {
            // Already gone: what was wanted.
            Err(Stop::Failed(Category::NotFound, _)) => Ok(()),
            other => other,
        }
    }

    /// Removes the `gpu-slicer.io/slicing-pending` taint from a node with a JSON patch
    /// that first tests the taint is still where it was seen.
    pub async fn remove_taint(
        &self,
        node: &str,
        index: usize,
        taint: &Value,
    ) -> Result<bool, (Category, String)> {
        if self.cfg.dry_run || !self.leader.is_leader() {
            return Ok(false);
        }
        let api: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.client.clone());
        let path = format!("/spec/taints/{index}");
        let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
            {"op": "test", "path": path, "value": taint},
            {"op": "remove", "path": path},
        ]))
        .map_err(|e| (Category::Invalid, e.to_string()))?;
        let params = PatchParams::default();
        let r = self
            .retrying(|| async {
                api.patch(node, &params, &Patch::<()>::Json(patch.clone()))
                    .await
                    .map(|_| ())
            })
            .await;
        match r {
            Ok(()) => Ok(true),
            Err(Stop::NotLeader) => Ok(false),
            Err(Stop::Failed(category, message)) => Err((category, message)),
        }
    }

    async fn retrying<F, Fut>(&self, mut op: F) -> Result<(), Stop>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), kube::Error>>,
    {
        let mut attempt = 0u32;
        loop {
            self.limiter.until_ready().await;
            // Every attempt checks the lease, retries included: it may be lost during a
            // backoff or a rate-limit wait, and a replica that is no longer the leader
            // must not write (tests/controller_chaos.rs: a lease lost while a write is
            // answered 503 used to be followed by its retry).
            if !self.leader.is_leader() {
                return Err(Stop::NotLeader);
            }
            self.sent.fetch_add(1, Ordering::SeqCst);
            let err = match op().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let category = Category::of(&err);
            attempt += 1;
            if !category.is_retryable() || attempt >= self.cfg.max_attempts {
                return Err(Stop::Failed(category, err.to_string()));
            }
            let delay = match category {
                Category::Throttled | Category::Transient => {
                    retry_delay(retry_after(&err), self.backoff.delay(attempt))
                }
                _ => self.backoff.delay(attempt),
            };
            tokio::time::sleep(delay).await;
        }
    }
}

/// `client` with every answer through [`RetryAfterHeader`], so that an error's `Status`
/// carries the `Retry-After` wait (the writer's, the Lease elector's, the watches' and the
/// Event recorder's clients).
pub fn honouring_retry_after(client: &Client) -> Client {
    Client::new(
        RetryAfterHeader(client.clone()),
        client.default_namespace().to_string(),
    )
}

/// The wait a failed request's answer asks for: its `Status`'s
/// `details.retryAfterSeconds` (0 means unset), at most [`MAX_RETRY_AFTER`].
pub fn retry_after(e: &kube::Error) -> Option<Duration> {
    match e {
        kube::Error::Api(s) => s
            .details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|&n| n > 0)
            .map(|n| Duration::from_secs(u64::from(n)).min(MAX_RETRY_AFTER)),
        _ => None,
    }
}

/// A `Service` in front of a kube [`Client`]: an error answer with a `Retry-After` header
/// gets that wait in its `Status`'s `details.retryAfterSeconds` (see the module docs).
#[derive(Clone)]
struct RetryAfterHeader(Client);

impl tower_service::Service<hyper::Request<Body>> for RetryAfterHeader {
    type Response = hyper::Response<Body>;
    type Error = kube::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, kube::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), kube::Error>> {
        // The inner client waits for its own readiness in `send`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: hyper::Request<Body>) -> Self::Future {
        let client = self.0.clone();
        Box::pin(
            async move { header_into_status(client.send(req).await?, SystemTime::now()).await },
        )
    }
}

/// Copies an error answer's `Retry-After` (read at `now`) into its `Status` body, parsing
/// the body as kube-rs does (a non-`Status` body becomes `Status::failure(text, "Failed
/// to parse error data")` with the answer's code). Other answers pass unchanged, as do
/// ones whose `Status` already carries a wait or whose header asks for none.
async fn header_into_status(
    res: hyper::Response<Body>,
    now: SystemTime,
) -> Result<hyper::Response<Body>, kube::Error> {
    let code = res.status();
    if !(code.is_client_error() || code.is_server_error()) {
        return Ok(res);
    }
    let secs = res
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now))
        // Whole seconds, rounded up: wait at least as long as asked.
        .map(|d| d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0)))
        .map(|s| u32::try_from(s).unwrap_or(u32::MAX))
        .unwrap_or(0);
    if secs == 0 {
        return Ok(res);
    }
    let (mut parts, body) = res.into_parts();
    let bytes = body.collect().await?.to_bytes();
    let mut status = serde_json::from_slice::<Status>(&bytes).unwrap_or_else(|_| {
        Status::failure(
            String::from_utf8_lossy(&bytes).trim(),
            "Failed to parse error data",
        )
        .with_code(code.as_u16())
    });
    let details = status.details.get_or_insert_with(|| StatusDetails {
        name: String::new(),
        group: String::new(),
        kind: String::new(),
        uid: String::new(),
        causes: Vec::new(),
        retry_after_seconds: 0,
    });
    if details.retry_after_seconds == 0 {
        details.retry_after_seconds = secs;
    }
    let json = serde_json::to_vec(&status).map_err(kube::Error::SerdeError)?;
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    parts.headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(hyper::Response::from_parts(parts, Body::from(json)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::GroupVersionKind;

    /// Until discovery answers, every kind gpu-slicer writes has the resource its type
    /// describes; what discovery lists replaces it, for that version only.
    #[test]
    fn resources_come_from_the_types_then_from_discovery() {
        let typed = ApiResources::default();
        for (api_version, kind, plural) in [
            ("karpenter.sh/v1", "NodePool", "nodepools"),
            ("karpenter.sh/v1beta1", "NodePool", "nodepools"),
            ("karpenter.sh/v1", "NodeClaim", "nodeclaims"),
            ("karpenter.sh/v1alpha1", "NodeOverlay", "nodeoverlays"),
            ("karpenter.k8s.aws/v1", "EC2NodeClass", "ec2nodeclasses"),
            (
                "karpenter.k8s.aws/v1beta1",
                "EC2NodeClass",
                "ec2nodeclasses",
            ),
            ("karpenter.sh/v1alpha5", "Provisioner", "provisioners"),
            (
                "karpenter.k8s.aws/v1alpha1",
                "AWSNodeTemplate",
                "awsnodetemplates",
            ),
            ("v1", "ConfigMap", "configmaps"),
            ("v1", "Node", "nodes"),
        ] {
            let ar = typed.get(api_version, kind).expect(kind);
            assert_eq!(
                (ar.plural.as_str(), ar.api_version.as_str()),
                (plural, api_version)
            );
        }
        assert!(typed.get("karpenter.sh/v2", "NodePool").is_none());
        assert!(typed.get("v1", "Pod").is_none());
        let gvk = GroupVersionKind::gvk("karpenter.sh", "v1", "NodePool");
        let served = ApiResource::from_gvk_with_plural(&gvk, "nodepools-served");
        let discovered = typed.with([served]);
        assert_eq!(
            discovered
                .get("karpenter.sh/v1", "NodePool")
                .map(|a| a.plural),
            Some("nodepools-served".to_string())
        );
        assert_eq!(
            discovered
                .get("karpenter.sh/v1beta1", "NodePool")
                .map(|a| a.plural),
            Some("nodepools".to_string())
        );
    }
}
