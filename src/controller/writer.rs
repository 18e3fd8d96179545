//! The one writer: server-side apply with field manager `gpu-slicer`, deletion of owned
//! objects (with a uid precondition), and the startup-taint patch on nodes. Every write
//! waits for the governor rate limiter, checks that this replica still holds the lease,
//! and is retried with exponential backoff and jitter on conflicts, throttling and server
//! errors. Invalid or forbidden writes are not retried. In dry-run mode nothing is sent.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::backoff::Backoff;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
    Preconditions,
};
use serde_json::Value;

use super::error::Category;
use crate::reconcile::{Actions, Deletion, ObjectKey};

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "gpu-slicer";

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
pub struct Outcome {
    pub applied: Vec<ObjectKey>,
    pub deleted: Vec<ObjectKey>,
    pub failed: Vec<Failed>,
    /// Writes not attempted because this replica is not (or no longer) the leader.
    pub not_leader: usize,
    /// Writes that dry-run mode skipped.
    pub dry_run: usize,
}

/// Plural resource names of the kinds gpu-slicer writes.
pub fn plural(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "NodePool" => "nodepools",
        "NodeClaim" => "nodeclaims",
        "NodeOverlay" => "nodeoverlays",
        "EC2NodeClass" => "ec2nodeclasses",
        "Provisioner" => "provisioners",
        "AWSNodeTemplate" => "awsnodetemplates",
        "ConfigMap" => "configmaps",
        "Node" => "nodes",
        _ => return None,
    })
}

/// The API resource of an apiVersion and kind.
pub fn resource(api_version: &str, kind: &str) -> Option<ApiResource> {
    let (group, version) = match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Some(ApiResource::from_gvk_with_plural(&gvk, plural(kind)?))
}

pub struct Writer {
    client: Client,
    cfg: WriterConfig,
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
        Writer {
            backoff: Backoff::new(cfg.base_backoff, cfg.max_backoff),
            client,
            cfg,
            limiter,
            leader,
            sent: AtomicU64::new(0),
        }
    }

    /// Requests sent so far (every attempt).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    fn api(&self, api_version: &str, kind: &str, ns: Option<&str>) -> Option<Api<DynamicObject>> {
        let ar = resource(api_version, kind)?;
        Some(match ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        })
    }

    /// Applies, drains and deletes, in that order. Stops writing (and counts the rest as
    /// `not_leader`) as soon as the lease is lost.
    pub async fn execute(&self, actions: &Actions) -> Outcome {
        let mut out = Outcome::default();
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
                Err((category, message)) => out.failed.push(Failed {
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
                Err((category, message)) => out.failed.push(Failed {
                    object: d.key.to_string(),
                    category,
                    message,
                }),
            }
        }
        out
    }

    /// Whether a write may be sent now (not dry-run, still the leader); counts why not.
    fn may_write(&self, out: &mut Outcome) -> bool {
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

    async fn apply(&self, key: &ObjectKey, obj: &Value) -> Result<(), (Category, String)> {
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

    async fn delete(&self, d: &Deletion) -> Result<(), (Category, String)> {
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
            Err((Category::NotFound, _)) => Ok(()),
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
        self.retrying(|| async {
            api.patch(node, &params, &Patch::<()>::Json(patch.clone()))
                .await
                .map(|_| ())
        })
        .await
        .map(|()| true)
    }

    async fn retrying<F, Fut>(&self, mut op: F) -> Result<(), (Category, String)>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), kube::Error>>,
    {
        let mut attempt = 0u32;
        loop {
            self.limiter.until_ready().await;
            self.sent.fetch_add(1, Ordering::SeqCst);
            let err = match op().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let category = Category::of(&err);
            attempt += 1;
            if !category.is_retryable() || attempt >= self.cfg.max_attempts {
                return Err((category, err.to_string()));
            }
            tokio::time::sleep(self.backoff.delay(attempt)).await;
        }
    }
}
