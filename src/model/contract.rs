//! The names gpu-slicer shares with users and other software (CONTRACT.md): the
//! annotations users write, the labels and taint gpu-slicer puts on the objects and nodes
//! it makes, and the ownership label that marks what it may touch. Every stage reads them
//! from here: the parsers in `config`, the objects `render` writes, the decisions of
//! `reconcile` and the controller's watches.

use std::collections::BTreeMap;

use super::{Taint, TaintEffect};

/// Prefix of every gpu-slicer annotation and label.
pub const ANNOTATION_PREFIX: &str = "gpu-slicer.io/";

/// Pod: GPU memory the pod uses on its GPU (quantity).
pub const GPU_MEMORY: &str = "gpu-slicer.io/gpu-memory";
/// Pod: smallest share of one GPU's time the pod accepts (decimal in (0,1] or milli).
pub const GPU_SHARE: &str = "gpu-slicer.io/gpu-share";
/// Pod: `shared` or `exclusive`.
pub const SHARING: &str = "gpu-slicer.io/sharing";
/// Pod: `none` (default) or `memory`: never on a time-sliced GPU.
pub const ISOLATION: &str = "gpu-slicer.io/isolation";

/// NodePool: `true` opts the NodePool in.
pub const ENABLED: &str = "gpu-slicer.io/enabled";
/// NodePool: integer 2..48 or `auto`.
pub const REPLICAS: &str = "gpu-slicer.io/replicas";
/// NodePool: integer 2..48, cap for `auto`.
pub const MAX_REPLICAS: &str = "gpu-slicer.io/max-replicas";
/// NodePool: quantity kept free on every GPU.
pub const GPU_MEMORY_HEADROOM: &str = "gpu-slicer.io/gpu-memory-headroom";
/// NodePool: USD per hour this pool may reach.
pub const MAX_HOURLY_COST: &str = "gpu-slicer.io/max-hourly-cost";
/// NodePool: emission mode.
pub const EMISSION: &str = "gpu-slicer.io/emission";
/// NodePool: `true` (default) or `false`, whether the controller may re-pack (defragment)
/// the pool's nodes.
pub const REPACK: &str = "gpu-slicer.io/repack";
/// NodePool: `time-slicing`, `mps` or `auto` (default): how the pool's shared GPUs are
/// shared ([`crate::model::SharingChoice`]).
pub const SHARING_STRATEGY: &str = "gpu-slicer.io/sharing-strategy";
/// NodePool annotation: the CUDA context every pod on the pool's GPUs holds (quantity).
pub const CONTEXT_MEMORY: &str = "gpu-slicer.io/context-memory";
/// NodePool annotation: `time` or `throughput`, a reading of `gpu-share` the pool's nodes
/// keep besides the cluster's (`--share-model`; [`crate::model::slice::ShareModel`]).
pub const SHARE_MODEL: &str = "gpu-slicer.io/share-model";
/// NodePool annotation: what all busy pods on one time-sliced GPU get together, of the
/// GPU alone (decimal in (0, 1]).
pub const TIME_SLICING_EFFICIENCY: &str = "gpu-slicer.io/time-slicing-efficiency";
/// NodePool annotation: the same under MPS (decimal in (0, 2]).
pub const MPS_EFFICIENCY: &str = "gpu-slicer.io/mps-efficiency";
/// Pod annotation: whether `gpu-memory` includes the CUDA context (`included`, the
/// default) or leaves it out (`excluded`).
pub const GPU_MEMORY_CONTEXT: &str = "gpu-slicer.io/gpu-memory-context";

/// The annotations a pod may carry.
pub const POD_ANNOTATIONS: &[&str] = &[
    GPU_MEMORY,
    GPU_MEMORY_CONTEXT,
    GPU_SHARE,
    SHARING,
    ISOLATION,
];
/// The annotations a NodePool may carry.
pub const NODEPOOL_ANNOTATIONS: &[&str] = &[
    ENABLED,
    REPLICAS,
    MAX_REPLICAS,
    GPU_MEMORY_HEADROOM,
    MAX_HOURLY_COST,
    EMISSION,
    REPACK,
    SHARING_STRATEGY,
    CONTEXT_MEMORY,
    SHARE_MODEL,
    TIME_SLICING_EFFICIENCY,
    MPS_EFFICIENCY,
];
/// Values of `gpu-slicer.io/emission`.
pub const EMISSION_MODES: &[&str] = &[
    "auto",
    "overlay",
    "static",
    "nodeclaim",
    "v1beta1",
    "v1alpha5",
];

/// Label every object gpu-slicer creates carries; it never touches an object without it.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY`].
pub const MANAGER: &str = "gpu-slicer";
/// Object label naming the pool an object was generated for.
pub const POOL_LABEL: &str = "gpu-slicer.io/pool";
/// Node label the NVIDIA device plugin reads to pick its config.
pub const DEVICE_PLUGIN_CONFIG_LABEL: &str = "nvidia.com/device-plugin.config";
/// Node label: the gpu-slicer profile (`ts-r4`).
pub const PROFILE_LABEL: &str = "gpu-slicer.io/profile";
/// Node labels of the slice-fit rule: replicas per GPU, one slice's GPU memory and share,
/// and the sharing strategy (`time-slicing`, `none` on unsliced nodes, `fractional`).
pub use super::slice::{
    REPLICAS_LABEL, SHARING_STRATEGY_LABEL, SLICE_GPU_MEMORY_LABEL, SLICE_SHARE_LABEL,
};
/// Startup taint the controller removes once the node advertises GPUs × R slices.
pub const SLICING_PENDING_TAINT: &str = "gpu-slicer.io/slicing-pending";
/// The node labels gpu-slicer sets; a frame NodePool may not set them itself.
pub const RESERVED_NODE_LABELS: [&str; 7] = [
    POOL_LABEL,
    DEVICE_PLUGIN_CONFIG_LABEL,
    PROFILE_LABEL,
    REPLICAS_LABEL,
    SHARING_STRATEGY_LABEL,
    SLICE_GPU_MEMORY_LABEL,
    SLICE_SHARE_LABEL,
];

/// Labels on every object gpu-slicer creates: the ownership label, and the pool's name
/// when the object belongs to one.
pub fn owned_labels(pool: Option<&str>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([(MANAGED_BY.to_string(), MANAGER.to_string())]);
    if let Some(p) = pool {
        l.insert(POOL_LABEL.to_string(), p.to_string());
    }
    l
}

/// `gpu-slicer.io/slicing-pending=true:NoSchedule`.
pub fn slicing_pending() -> Taint {
    Taint {
        key: SLICING_PENDING_TAINT.to_string(),
        value: Some("true".to_string()),
        effect: TaintEffect::NoSchedule,
    }
}
