//! Shared values of the pure core: resource vectors, instance types, demand items,
//! node requirements, taints and tolerations, sharing policy.
//!
//! Nothing here does I/O. Units are fixed: CPU in millicores, memory in bytes,
//! GPU memory in MiB (as EC2 reports it), prices in USD per hour.

pub mod contract;
pub mod quantity;
pub mod slice;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Mebibyte in bytes.
pub const MIB: u64 = 1024 * 1024;

/// GPU memory one process's CUDA context holds, MiB: 618 MiB for a PyTorch process that
/// has touched the GPU once, 8 at once (622 MiB under MPS), measured on an NVIDIA H200,
/// driver 580.159.04, CUDA 13.0, PyTorch 2.11.0 on 2026-12-02
/// (`../shared/data/gpu-sharing-measurements.md`, `tools/gpu_probe.py`). It depends on the
/// GPU, driver and CUDA/PyTorch versions (lazy module loading lowers it): an order of
/// magnitude, overridden by `--context-memory` and `gpu-slicer.io/context-memory`.
pub const DEFAULT_CONTEXT_MEMORY_MIB: u64 = 618;

/// The extended resource the NVIDIA device plugin advertises.
pub const NVIDIA_GPU: &str = "nvidia.com/gpu";

/// Well-known and Karpenter label keys that requirements on instance types may use.
pub mod labels {
    pub const INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
    pub const INSTANCE_TYPE_BETA: &str = "beta.kubernetes.io/instance-type";
    pub const ARCH: &str = "kubernetes.io/arch";
    pub const ARCH_BETA: &str = "beta.kubernetes.io/arch";
    pub const OS: &str = "kubernetes.io/os";
    pub const ZONE: &str = "topology.kubernetes.io/zone";
    pub const ZONE_BETA: &str = "failure-domain.beta.kubernetes.io/zone";
    pub const CAPACITY_TYPE: &str = "karpenter.sh/capacity-type";
    pub const NODEPOOL: &str = "karpenter.sh/nodepool";
    pub const INSTANCE_FAMILY: &str = "karpenter.k8s.aws/instance-family";
    pub const INSTANCE_SIZE: &str = "karpenter.k8s.aws/instance-size";
    pub const INSTANCE_CPU: &str = "karpenter.k8s.aws/instance-cpu";
    pub const INSTANCE_MEMORY: &str = "karpenter.k8s.aws/instance-memory";
    pub const INSTANCE_GPU_NAME: &str = "karpenter.k8s.aws/instance-gpu-name";
    pub const INSTANCE_GPU_MANUFACTURER: &str = "karpenter.k8s.aws/instance-gpu-manufacturer";
    pub const INSTANCE_GPU_COUNT: &str = "karpenter.k8s.aws/instance-gpu-count";
    pub const INSTANCE_GPU_MEMORY: &str = "karpenter.k8s.aws/instance-gpu-memory";
}

/// CPU and memory of a node or a pod.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Resources {
    pub cpu_milli: u64,
    pub memory_bytes: u64,
}

impl Resources {
    pub const ZERO: Resources = Resources {
        cpu_milli: 0,
        memory_bytes: 0,
    };

    pub fn new(cpu_milli: u64, memory_bytes: u64) -> Self {
        Self {
            cpu_milli,
            memory_bytes,
        }
    }

    /// Component-wise sum, saturating.
    pub fn saturating_add(self, o: Resources) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli.saturating_add(o.cpu_milli),
            memory_bytes: self.memory_bytes.saturating_add(o.memory_bytes),
        }
    }

    /// Component-wise difference, saturating at zero.
    pub fn saturating_sub(self, o: Resources) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli.saturating_sub(o.cpu_milli),
            memory_bytes: self.memory_bytes.saturating_sub(o.memory_bytes),
        }
    }

    /// Component-wise maximum.
    pub fn max(self, o: Resources) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli.max(o.cpu_milli),
            memory_bytes: self.memory_bytes.max(o.memory_bytes),
        }
    }

    /// True when every component fits in `cap`.
    pub fn fits_in(self, cap: Resources) -> bool {
        self.cpu_milli <= cap.cpu_milli && self.memory_bytes <= cap.memory_bytes
    }
}

/// EC2 purchase option, as Karpenter's `karpenter.sh/capacity-type` label spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CapacityType {
    #[serde(rename = "on-demand")]
    OnDemand,
    #[serde(rename = "spot")]
    Spot,
}

impl CapacityType {
    pub fn as_str(self) -> &'static str {
        match self {
            CapacityType::OnDemand => "on-demand",
            CapacityType::Spot => "spot",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "on-demand" => Some(CapacityType::OnDemand),
            "spot" => Some(CapacityType::Spot),
            _ => None,
        }
    }
}

impl std::fmt::Display for CapacityType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a price came from, shown by `catalog` and in plan output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceSource {
    /// e.g. "embedded: karpenter-provider-aws zz_generated.pricing_aws.go (us-east-1)".
    pub name: String,
    /// The date the prices were observed, `YYYY-MM-DD`.
    pub observed: String,
}

/// The architecture of a catalog row without an `arch` cell, and the only one a pod
/// that names none is planned on (container images are amd64 unless built otherwise).
pub const DEFAULT_ARCH: &str = "amd64";

fn whole_gpu() -> u32 {
    1000
}

/// One EC2 instance type as the planner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceType {
    pub name: String,
    pub family: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub gpu_count: u32,
    /// Karpenter's `instance-gpu-name` label value, lower case (`t4`, `a10g`, `v100`, ...).
    pub gpu_name: String,
    /// Karpenter's `instance-gpu-manufacturer` label value (`nvidia`).
    pub gpu_manufacturer: String,
    /// Memory of one GPU in MiB as EC2 reports it.
    pub gpu_memory_mib: u64,
    /// Max pods Karpenter uses for the type (ENI-limited, no prefix delegation).
    pub max_pods: u32,
    pub arch: String,
    /// Share of one physical GPU the type gets, thousandths: 1000 for whole GPUs, 125 for
    /// AWS's `g6f.large` (1/8 of an L4). Below 1000 only with `gpu_count` 1.
    #[serde(default = "whole_gpu")]
    pub gpu_fraction_milli: u32,
    /// Karpenter's `instance-gpu-count` label (EC2's `GpuInfo` count): `gpu_count`, or 0
    /// for the fractional types, which Karpenter cannot launch for GPU pods on its own.
    pub gpu_label_count: u32,
    pub mig_supported: bool,
    /// On-demand USD per hour.
    pub on_demand_price: f64,
    /// Spot USD per hour where known.
    pub spot_price: Option<f64>,
    /// Node allocatable as Karpenter models it (before DaemonSet overhead).
    pub allocatable: Resources,
}

impl InstanceType {
    /// True for AWS's hardware-fractional GPU types (g6f, gr6f): one device that is a
    /// fixed part of a physical GPU.
    pub fn is_fractional(&self) -> bool {
        self.gpu_fraction_milli < 1000
    }

    /// Whether the planner may put pods on this type at all: any type with a GPU,
    /// hardware-fractional ones (g6f, gr6f) included (their one slice is their part of a
    /// GPU, `model::slice::Slice::fractional`). The replay does not use fractional types
    /// yet (`sim::engine`).
    pub fn is_plannable(&self) -> bool {
        self.gpu_count > 0
    }

    /// The slice of this type at `replicas` per GPU with `headroom_mib` kept free on each
    /// GPU (`model::slice`): a fractional type's one slice is its part of a GPU.
    pub fn slice(&self, headroom_mib: u64, replicas: u32) -> slice::Slice {
        slice::Slice::of_gpu(
            self.gpu_memory_mib.saturating_sub(headroom_mib),
            self.gpu_fraction_milli,
            replicas,
        )
    }

    /// True for [`DEFAULT_ARCH`] nodes: what a pod that names no architecture may use.
    pub fn is_default_arch(&self) -> bool {
        self.arch == DEFAULT_ARCH
    }

    /// Price for a capacity type, if known.
    pub fn price(&self, ct: CapacityType) -> Option<f64> {
        match ct {
            CapacityType::OnDemand => Some(self.on_demand_price),
            CapacityType::Spot => self.spot_price,
        }
    }

    /// The value of a well-known or Karpenter label on a node of this type.
    /// Zone and capacity type are not properties of the type and return `None`.
    pub fn label(&self, key: &str) -> Option<String> {
        use labels::*;
        Some(match key {
            INSTANCE_TYPE | INSTANCE_TYPE_BETA => self.name.clone(),
            ARCH | ARCH_BETA => self.arch.clone(),
            OS => "linux".to_string(),
            INSTANCE_FAMILY => self.family.clone(),
            INSTANCE_SIZE => self.name.split_once('.').map(|(_, s)| s)?.to_string(),
            INSTANCE_CPU => self.vcpus.to_string(),
            INSTANCE_MEMORY => self.memory_mib.to_string(),
            INSTANCE_GPU_NAME => self.gpu_name.clone(),
            INSTANCE_GPU_MANUFACTURER => self.gpu_manufacturer.clone(),
            INSTANCE_GPU_COUNT => self.gpu_label_count.to_string(),
            INSTANCE_GPU_MEMORY => self.gpu_memory_mib.to_string(),
            _ => return None,
        })
    }
}

/// The instance types in use and where their prices came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub types: Vec<InstanceType>,
    pub source: PriceSource,
}

/// Node selector operator (Kubernetes `NodeSelectorRequirement.operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

impl Operator {
    /// The operator as the Kubernetes API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "In",
            Operator::NotIn => "NotIn",
            Operator::Exists => "Exists",
            Operator::DoesNotExist => "DoesNotExist",
            Operator::Gt => "Gt",
            Operator::Lt => "Lt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            "Gt" => Operator::Gt,
            "Lt" => Operator::Lt,
            _ => return None,
        })
    }
}

/// One node selector requirement.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

impl Requirement {
    /// Evaluates the requirement against a label value (`None` = label absent),
    /// with Kubernetes semantics (NotIn and DoesNotExist match an absent label;
    /// Gt/Lt compare integers and fail on a non-integer value).
    pub fn matches(&self, value: Option<&str>) -> bool {
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::Gt | Operator::Lt => {
                let (Some(v), Some(bound)) = (value, self.values.first()) else {
                    return false;
                };
                let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else {
                    return false;
                };
                if self.operator == Operator::Gt {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

/// Taint effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "NoSchedule" => TaintEffect::NoSchedule,
            "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
            "NoExecute" => TaintEffect::NoExecute,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    pub effect: TaintEffect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TolerationOperator {
    Equal,
    Exists,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Toleration {
    /// Empty/None with `Exists` tolerates every taint.
    pub key: Option<String>,
    pub operator: TolerationOperator,
    pub value: Option<String>,
    /// None tolerates every effect.
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// Kubernetes `ToleratesTaint`.
    pub fn tolerates(&self, t: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != t.effect) {
            return false;
        }
        match &self.key {
            None => self.operator == TolerationOperator::Exists,
            Some(k) if k != &t.key => false,
            Some(_) => match self.operator {
                TolerationOperator::Exists => true,
                TolerationOperator::Equal => {
                    self.value.as_deref().unwrap_or("") == t.value.as_deref().unwrap_or("")
                }
            },
        }
    }
}

/// True when every NoSchedule/NoExecute taint is tolerated (PreferNoSchedule never blocks).
pub fn tolerates_all(tolerations: &[Toleration], taints: &[Taint]) -> bool {
    taints
        .iter()
        .filter(|t| t.effect != TaintEffect::PreferNoSchedule)
        .all(|t| tolerations.iter().any(|tol| tol.tolerates(t)))
}

/// How a pod uses its GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// Takes `gpus` time-slices of a sliced (or unsliced) node.
    Shared,
    /// Takes `gpus` whole GPUs on an unsliced node.
    Exclusive,
}

/// `gpu-slicer.io/isolation`: whether a pod may share GPU memory unprotected.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Any slice the slice-fit rule allows, time-slicing included.
    #[default]
    None,
    /// Never a time-sliced GPU: a hardware-fractional GPU, an MPS-shared GPU (whose
    /// clients' memory is capped) or a dedicated GPU.
    Memory,
}

impl Isolation {
    /// The annotation's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::None => "none",
            Isolation::Memory => "memory",
        }
    }
}

/// One pending pod, reduced to what placement needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemandItem {
    /// `namespace/name`; a workload's pods are `namespace/<workload>-<index>`.
    pub id: String,
    /// Effective requests (containers, init containers, overhead) as the scheduler computes them.
    pub requests: Resources,
    /// `nvidia.com/gpu` request: slices for a shared pod, whole GPUs for an exclusive one.
    pub gpus: u32,
    pub sharing: Sharing,
    /// `gpu-slicer.io/gpu-memory` in MiB (rounded up).
    pub gpu_memory_mib: Option<u64>,
    /// `gpu-slicer.io/gpu-share` in thousandths of a GPU, 1..=1000.
    pub gpu_share_milli: Option<u32>,
    /// The declared `gpu_memory_mib` leaves the CUDA context out
    /// (`gpu-slicer.io/gpu-memory-context: excluded`, or an MPS client limit, which caps
    /// allocations, not the context): the slice must hold it and the context. False
    /// (the contract's convention): the declared memory includes the context.
    #[serde(default)]
    pub gpu_memory_excludes_context: bool,
    /// GPU memory stated as a share of whichever GPU the pod lands on, thousandths
    /// (vLLM's `--gpu-memory-utilization` and the like), when no `gpu-memory` says it.
    #[serde(default)]
    pub gpu_memory_fraction_milli: Option<u32>,
    /// `gpu-slicer.io/isolation`.
    #[serde(default)]
    pub isolation: Isolation,
    /// `spec.nodeSelector`.
    pub node_selector: BTreeMap<String, String>,
    /// Required node affinity: OR of terms, each an AND of requirements. Empty = none.
    pub affinity_terms: Vec<Vec<Requirement>>,
    pub tolerations: Vec<Toleration>,
}

impl DemandItem {
    /// A shared GPU pod with no constraints (builder for tests and examples).
    pub fn shared(id: impl Into<String>, requests: Resources) -> Self {
        DemandItem {
            id: id.into(),
            requests,
            gpus: 1,
            sharing: Sharing::Shared,
            gpu_memory_mib: None,
            gpu_share_milli: None,
            gpu_memory_excludes_context: false,
            gpu_memory_fraction_milli: None,
            isolation: Isolation::None,
            node_selector: BTreeMap::new(),
            affinity_terms: Vec::new(),
            tolerations: Vec::new(),
        }
    }

    /// Does a node with these labels satisfy the pod's nodeSelector and required affinity?
    /// `label` returns a label's value on the node, `None` if absent.
    pub fn matches_labels(&self, label: &dyn Fn(&str) -> Option<String>) -> bool {
        let sel_ok = self
            .node_selector
            .iter()
            .all(|(k, v)| label(k).as_deref() == Some(v.as_str()));
        sel_ok
            && (self.affinity_terms.is_empty()
                || self
                    .affinity_terms
                    .iter()
                    .any(|term| term.iter().all(|r| r.matches(label(&r.key).as_deref()))))
    }
}

/// Replicas-per-GPU policy of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaPolicy {
    /// Sliced nodes use exactly this R (2..=48); unsliced (R = 1) nodes remain possible
    /// for exclusive pods and pods that cannot share.
    Fixed(u32),
    /// R chosen per node in 1..=max.
    Auto { max: u32 },
    /// R chosen per node from this set (1 is always allowed too); from a device-plugin
    /// ConfigMap with several time-slicing profiles.
    OneOf(Vec<u32>),
}

impl ReplicaPolicy {
    /// The smallest and largest R a contract allows.
    pub const MIN_SLICED: u32 = 2;
    pub const MAX: u32 = 48;

    /// Allowed R values in increasing order, always starting with 1.
    pub fn allowed(&self) -> Vec<u32> {
        let mut v: Vec<u32> = match self {
            ReplicaPolicy::Fixed(r) => vec![1, *r],
            ReplicaPolicy::Auto { max } => (1..=(*max).max(1)).collect(),
            ReplicaPolicy::OneOf(rs) => std::iter::once(1).chain(rs.iter().copied()).collect(),
        };
        v.retain(|r| *r >= 1 && *r <= Self::MAX);
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Profile name for R replicas per GPU (`ts-r4`); R = 1 is the unsliced profile `ts-r1`.
pub fn profile_name(replicas: u32) -> String {
    format!("ts-r{replicas}")
}

/// Profile name for R MPS clients per GPU (`mps-r4`).
pub fn mps_profile_name(replicas: u32) -> String {
    format!("mps-r{replicas}")
}

/// A pool gpu-slicer plans inside: the implicit default pool, or an annotated NodePool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub name: String,
    pub replicas: ReplicaPolicy,
    /// GPU memory kept free on every GPU, MiB.
    pub gpu_memory_headroom_mib: u64,
    /// `gpu-slicer.io/context-memory`: the CUDA context every pod on a shared GPU holds,
    /// MiB; None: the planner's (`--context-memory`, default
    /// [`DEFAULT_CONTEXT_MEMORY_MIB`]).
    pub context_memory_mib: Option<u64>,
    /// `gpu-slicer.io/share-model`: a reading of `gpu-share` the pool's nodes keep besides
    /// the planner's (`--share-model`); None: the planner's alone.
    #[serde(default)]
    pub share_model: Option<slice::ShareModel>,
    /// `gpu-slicer.io/time-slicing-efficiency` and `gpu-slicer.io/mps-efficiency`,
    /// thousandths: what the pool's GPUs deliver shared; None: the planner's.
    #[serde(default)]
    pub time_slicing_efficiency_milli: Option<u32>,
    #[serde(default)]
    pub mps_efficiency_milli: Option<u32>,
    pub max_hourly_cost: Option<f64>,
    /// The NodePool's `spec.template.spec.requirements` (instance-type, family, capacity-type, ...).
    pub requirements: Vec<Requirement>,
    /// The NodePool's `spec.template.metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// The NodePool's `spec.template.spec.taints` (startup taints do not block scheduling).
    pub taints: Vec<Taint>,
    /// `gpu-slicer.io/emission` annotation value, kept verbatim for `render`.
    pub emission: Option<String>,
    /// `gpu-slicer.io/repack`: the controller may re-pack (defragment) the pool's nodes
    /// (`true` unless the annotation says `false`).
    pub repack: bool,
    /// `gpu-slicer.io/sharing-strategy`: how GPUs of the pool's nodes are shared.
    #[serde(default)]
    pub sharing_strategy: SharingChoice,
    /// The NodePool's `spec.limits` on cpu and memory (`spec.limits.resources` for a
    /// Provisioner): the budget guard keeps gpu-slicer's capacity in the pool under them.
    #[serde(default)]
    pub limits: PoolLimits,
}

/// A NodePool's `spec.limits` (`spec.limits.resources` for a Provisioner).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolLimits {
    /// Every entry as written: the NodePools gpu-slicer emits for the pool carry them.
    pub written: BTreeMap<String, String>,
    /// Where they were read (`spec.limits`), for messages.
    pub field: String,
    /// The cpu limit in milli-CPUs and the memory limit in bytes, which the budget guard
    /// holds gpu-slicer's capacity in the pool under (`nvidia.com/gpu` is not a cap: see
    /// the README, "The frame").
    pub cpu_milli: Option<u64>,
    pub memory_bytes: Option<u64>,
}

/// A pool's `gpu-slicer.io/sharing-strategy`: how its shared GPUs are shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SharingChoice {
    /// The planner chooses per node: MPS where a pod needs memory isolation, else
    /// time-slicing.
    #[default]
    Auto,
    /// The device plugin's time-slicing on every shared GPU.
    TimeSlicing,
    /// The device plugin's MPS on every shared GPU.
    Mps,
}

impl SharingChoice {
    /// The annotation values, in the order the contract lists them.
    pub const VALUES: [&'static str; 3] = ["time-slicing", "mps", "auto"];

    pub fn parse(s: &str) -> Option<SharingChoice> {
        match s {
            "time-slicing" => Some(SharingChoice::TimeSlicing),
            "mps" => Some(SharingChoice::Mps),
            "auto" => Some(SharingChoice::Auto),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SharingChoice::Auto => "auto",
            SharingChoice::TimeSlicing => "time-slicing",
            SharingChoice::Mps => "mps",
        }
    }
}

impl Pool {
    /// The efficiencies of the pool's GPUs: its own where it states them, else
    /// `default`'s.
    pub fn efficiency(&self, default: slice::Efficiency) -> slice::Efficiency {
        slice::Efficiency {
            time_slicing_milli: self
                .time_slicing_efficiency_milli
                .unwrap_or(default.time_slicing_milli),
            mps_milli: self.mps_efficiency_milli.unwrap_or(default.mps_milli),
        }
    }

    /// The implicit pool used when no annotated NodePool is among the inputs.
    pub fn default_pool(replicas: ReplicaPolicy) -> Self {
        Pool {
            name: "gpu-slicer".to_string(),
            replicas,
            gpu_memory_headroom_mib: 0,
            context_memory_mib: None,
            share_model: None,
            time_slicing_efficiency_milli: None,
            mps_efficiency_milli: None,
            max_hourly_cost: None,
            requirements: Vec::new(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            emission: None,
            repack: true,
            sharing_strategy: SharingChoice::Auto,
            limits: PoolLimits::default(),
        }
    }
}
