//! Demand: Kubernetes manifests → pending GPU pods ([`DemandItem`]s), the pools they may
//! use and the per-node DaemonSet overhead.
//!
//! Pure: [`load_str`] parses text it is given (the CLI reads the files) and
//! [`demand_from_pod_spec`] converts one pod spec (the loader and the controller's
//! watches share it). Nothing here panics on any input.
//!
//! # Inputs
//!
//! YAML (multi-document, `---`) or JSON (one object, a stream of objects, or a `List` /
//! `*List` with `items`). Empty documents are skipped; an input without any object is an
//! error. Kinds read:
//!
//! | kind | apiVersion | effect |
//! |---|---|---|
//! | Pod | v1 | one item `namespace/name` (pending pods only) |
//! | Deployment, StatefulSet, ReplicaSet | apps/v1 | `spec.replicas` (default 1) items `namespace/<name>-<i>` |
//! | Job | batch/v1 | `min(parallelism (default 1), completions)` items; none while suspended |
//! | LeaderWorkerSet | leaderworkerset.x-k8s.io/v1 | `spec.replicas` (default 1) groups of `spec.leaderWorkerTemplate.size` (default 1): leader `namespace/<name>-<g>` from `leaderTemplate` (else `workerTemplate`), workers `namespace/<name>-<g>-<w>`, w in 1..size, from `workerTemplate` |
//! | DaemonSet | apps/v1 | adds its pod's requests and one pod to [`Inputs::daemonset_overhead`] |
//! | NodePool | karpenter.sh/v1, v1beta1 | opted-in pools ([`crate::config::pool_from_nodepool`]) |
//! | Provisioner | karpenter.sh/v1alpha5 | likewise |
//! | EC2NodeClass | karpenter.k8s.aws/* | kept raw for `render` |
//! | ConfigMap | v1 | the one named [`LoadOptions::device_plugin_configmap`] → [`Inputs::device_plugin`]; others ignored |
//!
//! Anything else is skipped with a warning. Without a `gpu-slicer.io/gpu-memory`
//! annotation, a pod's GPU memory is what its containers state (`engines`: vLLM, TGI,
//! SGLang flags, the MPS limit), and [`Inputs::notes`] says what was read from where.
//!
//! # Errors
//!
//! [`InputError`] displays as
//! `{source}: document {n} ({object}): field `{field}`: {message}`, leaving out the
//! parts that are unknown. `document` is 1-based and counts `---`-separated documents of
//! YAML (an empty document keeps its number) or JSON values of a JSON stream. `object` is
//! `Kind namespace/name` (`Kind name` for cluster-scoped kinds). `field` is the path
//! inside the document, so an item of a List has `items[3].` in front.

mod engines;
mod load;
mod pod;
mod requests;
pub(crate) mod text;

use crate::catalog::DaemonSetOverhead;
use crate::config::{DevicePluginConfig, FieldError};
use crate::model::{DemandItem, Pool};

pub use load::load_str;
pub use pod::{demand_from_pod_spec, never_matching_requirement};
pub use requests::{MAX_CPU_MILLI, MAX_GPUS, MAX_MEMORY_BYTES, PodRequests, effective_requests};

/// Name of the NVIDIA device plugin's ConfigMap in the seed guide and the Helm chart.
pub const DEFAULT_DEVICE_PLUGIN_CONFIGMAP: &str = "nvidia-device-plugin";

/// Most pods one workload may expand to; more is taken for a mistake.
pub const MAX_WORKLOAD_PODS: u64 = 100_000;

/// Everything read from the inputs of one `plan`/`render`.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Pending GPU pods, in input order.
    pub items: Vec<DemandItem>,
    /// Opted-in NodePools (and Provisioners) and their raw objects.
    pub pools: Vec<(Pool, serde_json::Value)>,
    /// Raw EC2NodeClass objects among the inputs (kept for render).
    pub ec2nodeclasses: Vec<serde_json::Value>,
    /// The device-plugin ConfigMap, when one was among the inputs.
    pub device_plugin: Option<DevicePluginConfig>,
    /// Sum over the DaemonSets among the inputs: their pods' requests and one pod each.
    pub daemonset_overhead: DaemonSetOverhead,
    /// What was skipped and why; each names source, document and object.
    pub warnings: Vec<String>,
    /// What was read from where, one per object: the GPU memory a pod's containers state
    /// (`Deployment default/vllm: GPU memory 0.90 of the GPU, from vLLM's default …`).
    pub notes: Vec<String>,
    /// Documents read so far (for [`LoadOptions::max_documents`]).
    pub documents: usize,
    /// Pods made by every [`load_str`] so far, those of a load that failed and was rolled
    /// back included: what the loads cost (`items` holds what they kept). The fuzz
    /// target's memory rule counts them.
    pub expanded_pods: usize,
}

/// Most documents one `plan`/`render`/`admit` reads, over all its inputs, unless
/// `--max-documents` says otherwise.
pub const DEFAULT_MAX_DOCUMENTS: usize = 1_000_000;
/// Most pods one `plan`/`render` reads, over all its inputs (workloads' replicas
/// included), unless `--max-pods` says otherwise: ~400 MB of demand at ~410 bytes a pod.
pub const DEFAULT_MAX_PODS: usize = 1_000_000;
/// Most bytes one `plan`/`render`/`admit` reads, over all its inputs, unless
/// `--max-input-size` says otherwise (256 MiB).
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 256 << 20;

/// How [`load_str`] reads its inputs.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The name of the device plugin's ConfigMap (default `nvidia-device-plugin`).
    pub device_plugin_configmap: String,
    /// Most documents over every source loaded into one [`Inputs`].
    pub max_documents: usize,
    /// Most pods (items) over every source loaded into one [`Inputs`]: a workload's
    /// `replicas` is checked against it before it is expanded.
    pub max_pods: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            device_plugin_configmap: DEFAULT_DEVICE_PLUGIN_CONFIGMAP.to_string(),
            max_documents: DEFAULT_MAX_DOCUMENTS,
            max_pods: DEFAULT_MAX_PODS,
        }
    }
}

/// Bad input: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{}{}: {message}",
    location(source, *document, object.as_deref()),
    field.as_ref().map(|f| format!(": field `{f}`")).unwrap_or_default()
)]
pub struct InputError {
    /// A file path, or `<stdin>`.
    pub source: String,
    /// 1-based document number within the source.
    pub document: Option<usize>,
    /// `Deployment default/web`, `NodePool gpu`.
    pub object: Option<String>,
    /// Path of the field inside the document: `spec.template.spec.containers[0].resources.limits.cpu`.
    pub field: Option<String>,
    pub message: String,
    /// The field error this one was made from (its field relative to the object), when
    /// there was one; the [`source`](std::error::Error::source) of this error.
    #[source]
    pub cause: Option<Box<FieldError>>,
}

impl InputError {
    /// An error about the source as a whole.
    pub fn new(source: &str, message: impl Into<String>) -> Self {
        InputError {
            source: source.to_string(),
            document: None,
            object: None,
            field: None,
            message: message.into(),
            cause: None,
        }
    }
}

/// `{source}: document {n} ({object})`, leaving out the parts that are absent.
fn location(source: &str, document: Option<usize>, object: Option<&str>) -> String {
    match (document, object) {
        (Some(n), Some(o)) => format!("{source}: document {n} ({o})"),
        (Some(n), None) => format!("{source}: document {n}"),
        (None, Some(o)) => format!("{source} ({o})"),
        (None, None) => source.to_string(),
    }
}

/// Converts a typed pod (from a watch) with [`demand_from_pod_spec`]; the id is
/// `namespace/name` (namespace `default` when unset). Errors name fields relative to the
/// pod. The caller decides whether the pod is pending.
pub fn demand_from_pod(
    pod: &k8s_openapi::api::core::v1::Pod,
) -> Result<Option<DemandItem>, FieldError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let spec = serde_json::to_value(&pod.spec)
        .map_err(|e| FieldError::new("spec", format!("cannot be read: {e}")))?;
    demand_from_pod_spec(format!("{ns}/{name}"), &annotations, &spec)
}

#[cfg(test)]
mod tests;
