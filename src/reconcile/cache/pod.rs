//! Pods reduced as they arrive: a pending pod to its demand (or why it cannot be read),
//! a bound one to its node and requests, and, for repacking, whether it may be moved.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use crate::demand::{demand_from_pod, demand_from_pod_spec, effective_requests};
use crate::model::{DemandItem, Resources};
use crate::reconcile::repack;

/// A pod reduced to what planning needs.
#[derive(Debug, Clone, PartialEq)]
pub struct PodEntry {
    pub namespace: String,
    /// Pending and marked unschedulable: its demand, or why it cannot be read.
    pub pending: Option<Result<DemandItem, String>>,
    /// The node it is bound to, with its requests there (running pods only).
    pub bound: Option<(String, Resources, u32)>,
    /// A bound pod as repacking sees it; `None` for pending pods and for DaemonSet pods
    /// (they come with every node: counted in `bound`, never moved).
    pub running: Option<Box<Running>>,
}

/// What repacking needs of a running pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    /// Its demand (the pending pods' parser), or why it may not be moved: no controller
    /// re-creates it, a static pod, no GPU request, or an annotation that cannot be read.
    pub demand: Result<DemandItem, Cow<'static, str>>,
    /// `status.startTime`, seconds since the epoch.
    pub started_s: Option<i64>,
    /// Annotated `karpenter.sh/do-not-disrupt: "true"`.
    pub do_not_disrupt: bool,
}

/// Why a pod without a controller owner may not be moved.
pub const NO_CONTROLLER: &str = "no controller re-creates it";

/// The running-pod view of a bound pod; `None` for a DaemonSet's pod.
fn running(pod: &Pod, spec: &Value) -> Option<Running> {
    let owner = pod
        .metadata
        .owner_references
        .as_ref()
        .and_then(|os| os.iter().find(|o| o.controller == Some(true)));
    if owner.is_some_and(|o| o.kind == "DaemonSet") {
        return None;
    }
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let demand = match owner {
        None => Err(Cow::Borrowed(NO_CONTROLLER)),
        Some(o) if o.kind == "Node" => Err(Cow::Borrowed(
            "a static pod: the kubelet runs it from a file",
        )),
        Some(_) => match demand_from_pod_spec(pod_key(pod), &annotations, spec) {
            Ok(Some(item)) => Ok(item),
            Ok(None) => Err(Cow::Borrowed(
                "requests no nvidia.com/gpu: gpu-slicer does not plan where it would go",
            )),
            Err(e) => Err(Cow::Owned(e.to_string())),
        },
    };
    Some(Running {
        demand,
        started_s: pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.as_second()),
        do_not_disrupt: annotations
            .get(repack::DO_NOT_DISRUPT)
            .is_some_and(|v| v == "true"),
    })
}

/// `namespace/name`.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

fn is_unschedulable(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let pending = status.and_then(|s| s.phase.as_deref()) == Some("Pending");
    let unschedulable = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })
        });
    pending && unschedulable && pod.spec.as_ref().is_some_and(|s| s.node_name.is_none())
}

/// Reduces a pod; `None` when it is of no interest (no GPU, finished).
pub fn pod_entry(pod: &Pod) -> Option<PodEntry> {
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) || pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    if is_unschedulable(pod) {
        return match demand_from_pod(pod) {
            Ok(Some(item)) => Some(PodEntry {
                namespace,
                pending: Some(Ok(item)),
                bound: None,
                running: None,
            }),
            Ok(None) => None,
            Err(e) => Some(PodEntry {
                namespace,
                pending: Some(Err(e.to_string())),
                bound: None,
                running: None,
            }),
        };
    }
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone())?;
    let spec = serde_json::to_value(pod.spec.as_ref()?).ok()?;
    let r = effective_requests(&spec, "spec").ok()?;
    Some(PodEntry {
        namespace,
        pending: None,
        bound: Some((
            node,
            Resources::new(r.cpu_milli, r.memory_bytes),
            u32::try_from(r.gpus).unwrap_or(u32::MAX),
        )),
        running: running(pod, &spec).map(Box::new),
    })
}
