//! The slice-fit rule: which GPU slices a pod may use, and the node-affinity terms that
//! say so. Pure; GPU memory in MiB, shares in thousandths of a GPU.
//!
//! This is the one place the rule lives (`../shared/design/STYLE.md`, example 2). The
//! planner (`planner/space.rs`), the controller's round (`reconcile/round.rs`), admission
//! (`admission`), the simulator (`sim/engine/cluster.rs`) and the tests all call it, so
//! what is planned is what the kube-scheduler and Karpenter enforce. The one allowed
//! second copy is the independent verifier, `planner/check.rs`.
//!
//! # The rule
//!
//! A node with `R` replicas per GPU, GPUs of `M` MiB and a pool headroom of `H` MiB has
//! slices of [`Slice::new`]`(M − H, R)`:
//!
//! - `gpu-slicer.io/slice-gpu-memory-mib` = ⌊(M − H) / R⌋,
//! - `gpu-slicer.io/slice-share-milli` = ⌊1000 / R⌋,
//! - `gpu-slicer.io/slice-throughput-milli` = the throughput one busy slice gets when
//!   every slice of its GPU is busy, thousandths of the GPU alone: ⌊`e_ts` / R⌋ under
//!   time-slicing and ⌊`e_mps` / R⌋ under MPS (at most 1000), with the GPU's sharing
//!   efficiencies [`Efficiency`] (measured: 730 and 1010); 1000 at R = 1,
//! - `gpu-slicer.io/replicas` = R,
//! - `gpu-slicer.io/sharing-strategy` = `none` (R = 1), `time-slicing`, or `mps` when
//!   the device plugin shares the GPU with CUDA MPS ([`Slice::under_mps`]: the same
//!   numbers, since MPS caps each client at GPU memory / R and 1/R of the threads).
//!
//! A hardware-fractional GPU (AWS's g6f/gr6f: a fixed, memory-isolated part `f` of a
//! GPU) has one slice, [`Slice::fractional`]: its own memory, share `1000 × f`, R = 1,
//! strategy `fractional`.
//!
//! A pod ([`SliceNeed`]) fits a slice when its GPU memory ≤ the slice's memory, its
//! `gpu-share` (if declared) ≤ the slice's share, and:
//! - an exclusive pod: a whole, unshared GPU (strategy `none`);
//! - a pod with `isolation: memory`: never time-slicing;
//! - a pod whose GPU memory is a share `m` of whatever GPU it gets (vLLM's
//!   `--gpu-memory-utilization`): `m × R ≤ 1` on a shared whole GPU (its neighbours get
//!   the same GPU), any fractional GPU (the share is of the part it sees).
//!
//! A pod's GPU memory counts its CUDA context `C` (the pool's `context-memory`, default
//! [`crate::model::DEFAULT_CONTEXT_MEMORY_MIB`]): every process on a GPU holds one. It is
//! `C` for a pod that declares no memory, `max(gpu-memory, C)` for one that declares it
//! (the contract's convention: the declared amount includes the context) and
//! `gpu-memory + C` for one whose declared amount leaves it out
//! (`gpu-memory-context: excluded`, or an MPS client limit). With `C = 0` a pod that
//! declares nothing needs nothing, as before the reserve existed.
//!
//! Because memory and share are whole numbers, `need ≤ ⌊M/R⌋` ⇔ `need × R ≤ M`,
//! `share ≤ ⌊1000/R⌋` ⇔ `share × R ≤ 1000` and `share ≤ ⌊e/R⌋` ⇔ `share × R ≤ e`: the
//! labels lose nothing. So under throughput `gpu-share: 0.25` tolerates R ≤ ⌊730/250⌋ = 2
//! on time-slicing and R ≤ ⌊1010/250⌋ = 4 on MPS (⌊1100/250⌋ = 4 with MPS unlimited).
//!
//! # The affinity
//!
//! [`SliceNeed::requirements`] gives the node-selector requirements that match exactly
//! the nodes whose slice labels satisfy the rule: `slice-gpu-memory-mib Gt need − 1`,
//! `slice-share-milli Gt share − 1` (time reading), `slice-throughput-milli Gt share − 1`
//! (throughput reading), `replicas In ["1"]` and `sharing-strategy In
//! ["none"]` for exclusive pods, `sharing-strategy In ["fractional", "mps", "none"]` for
//! isolated ones, `sharing-strategy In ["fractional", "none", "time-slicing"]` for shared
//! pods asking for several `nvidia.com/gpu`, and `replicas Lt ⌊1000 / m⌋ + 1` for a
//! memory share `m` (`Gt` and `Lt`
//! because Kubernetes has no `Ge` or `Le`). A pod that declares nothing and is shared
//! needs the memory term for its context only; with no context reserve it needs no term:
//! every slice is safe for it. A node without the labels never matches a term, so
//! a pod with a need is never bound to a GPU node gpu-slicer did not slice.

use serde::{Deserialize, Serialize};

use super::{DemandItem, Isolation, Operator, Requirement, Sharing};

/// Node label: GPU memory of one slice, MiB (⌊(GPU memory − headroom) / R⌋).
pub const SLICE_GPU_MEMORY_LABEL: &str = "gpu-slicer.io/slice-gpu-memory-mib";
/// Node label: share of one GPU's time one slice gets, thousandths (⌊1000 / R⌋).
pub const SLICE_SHARE_LABEL: &str = "gpu-slicer.io/slice-share-milli";
/// Node label: throughput one busy slice gets with every slice of its GPU busy,
/// thousandths of the GPU alone ([`Efficiency`]).
pub const SLICE_THROUGHPUT_LABEL: &str = "gpu-slicer.io/slice-throughput-milli";
/// Node label: replicas per GPU.
pub const REPLICAS_LABEL: &str = "gpu-slicer.io/replicas";
/// Node label: how the node's GPUs are shared ([`NodeSharing`]).
pub const SHARING_STRATEGY_LABEL: &str = "gpu-slicer.io/sharing-strategy";

/// The node labels the slice-fit rule reads.
pub const SLICE_LABELS: [&str; 5] = [
    SLICE_GPU_MEMORY_LABEL,
    SLICE_SHARE_LABEL,
    SLICE_THROUGHPUT_LABEL,
    REPLICAS_LABEL,
    SHARING_STRATEGY_LABEL,
];

/// How a node's GPUs are shared: the `gpu-slicer.io/sharing-strategy` label and the plan's
/// `sharing` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeSharing {
    /// Whole GPUs, one pod each (R = 1).
    None,
    /// The device plugin's time-slicing: no memory isolation.
    TimeSlicing,
    /// The device plugin's MPS: each client's memory capped at GPU memory / R.
    Mps,
    /// A hardware-fractional GPU (g6f, gr6f): memory-isolated by the hardware.
    Fractional,
}

impl NodeSharing {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeSharing::None => "none",
            NodeSharing::TimeSlicing => "time-slicing",
            NodeSharing::Mps => "mps",
            NodeSharing::Fractional => "fractional",
        }
    }

    pub fn parse(s: &str) -> Option<NodeSharing> {
        [
            NodeSharing::None,
            NodeSharing::TimeSlicing,
            NodeSharing::Mps,
            NodeSharing::Fractional,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// The strategy of a whole GPU at `replicas` per GPU: time-slicing above 1.
    pub fn for_replicas(replicas: u32) -> NodeSharing {
        if replicas > 1 {
            NodeSharing::TimeSlicing
        } else {
            NodeSharing::None
        }
    }

    /// True when neighbours on a GPU cannot touch each other's memory.
    pub fn isolates_memory(self) -> bool {
        self != NodeSharing::TimeSlicing
    }

    /// True when a node's labels say its GPUs are shared by MPS (its
    /// `gpu-slicer.io/sharing-strategy` is `mps`).
    pub fn is_mps_labelled(labels: &std::collections::BTreeMap<String, String>) -> bool {
        labels.get(SHARING_STRATEGY_LABEL).map(String::as_str) == Some(NodeSharing::Mps.as_str())
    }
}

/// How a pod's `gpu-share` is read (`--share-model`, NodePool `gpu-slicer.io/share-model`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ShareModel {
    /// A share of the GPU's time (`⌊1000 / R⌋`): what time-slicing hands out.
    #[default]
    Time,
    /// A share of what the GPU does alone, switching loss counted ([`Efficiency`]).
    Throughput,
}

impl ShareModel {
    /// The flag's and annotation's values.
    pub const VALUES: [&'static str; 2] = ["time", "throughput"];

    pub fn as_str(self) -> &'static str {
        match self {
            ShareModel::Time => "time",
            ShareModel::Throughput => "throughput",
        }
    }

    pub fn parse(s: &str) -> Option<ShareModel> {
        match s {
            "time" => Some(ShareModel::Time),
            "throughput" => Some(ShareModel::Throughput),
            _ => None,
        }
    }
}

/// What all busy processes on one shared GPU get together, thousandths of one process
/// alone, compute-bound fp16 matrix products (driver 580, CUDA 13, PyTorch 2.11):
///
/// - time-slicing: 0.728 at 2, 4 and 8 processes on an NVIDIA H200 (2026-12-02,
///   `../shared/data/gpu-sharing-measurements.md`), 0.726 at 2 and 4 on an H100
///   (2026-12-07, `examples/gpu-probe/h100-output.txt`): **0.73**;
/// - MPS: 1.10–1.11 with no limit on the clients' threads (H200 and H100), but **1.01**
///   (1.017, H100) with each of 4 clients held to 25 % of the SMs, which is what the
///   device plugin's MPS does (`set_default_active_thread_percentage` 100 / R in its MPS
///   control daemon, `cmd/mps-control-daemon/mps/daemon.go`). The default is the
///   figure under the plugin's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Efficiency {
    /// Under time-slicing at R ≥ 2 (`--time-slicing-efficiency`).
    pub time_slicing_milli: u32,
    /// Under MPS at R ≥ 2 (`--mps-efficiency`).
    pub mps_milli: u32,
}

impl Efficiency {
    /// The measured defaults (above).
    pub const MEASURED: Efficiency = Efficiency {
        time_slicing_milli: 730,
        mps_milli: 1010,
    };
}

impl Default for Efficiency {
    fn default() -> Self {
        Efficiency::MEASURED
    }
}

/// Which readings of `gpu-share` a placement honours: the cluster's share model, and a
/// pool's own where it names another (a pod placed there keeps both promises, so what
/// admission enforces with the cluster's model never refuses what a pool planned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShareReadings {
    pub time: bool,
    pub throughput: bool,
}

impl ShareReadings {
    /// One model's reading.
    pub fn of(model: ShareModel) -> ShareReadings {
        ShareReadings {
            time: model == ShareModel::Time,
            throughput: model == ShareModel::Throughput,
        }
    }

    /// These readings and `model`'s.
    pub fn and(self, model: Option<ShareModel>) -> ShareReadings {
        let other = model.map(ShareReadings::of).unwrap_or(self);
        ShareReadings {
            time: self.time || other.time,
            throughput: self.throughput || other.throughput,
        }
    }

    /// The readings' names, for messages (`time`, `throughput`, `time+throughput`).
    pub fn as_str(self) -> &'static str {
        match (self.time, self.throughput) {
            (true, true) => "time+throughput",
            (false, true) => "throughput",
            _ => "time",
        }
    }
}

impl Default for ShareReadings {
    fn default() -> Self {
        ShareReadings::of(ShareModel::Time)
    }
}

/// The settings the rule reads besides the pod and the slice: the CUDA context each pod
/// holds and the readings of its share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FitRules {
    /// MiB ([`memory_with_context`]).
    pub context_mib: u64,
    pub shares: ShareReadings,
}

impl FitRules {
    /// A context of `context_mib` and shares read as GPU time.
    pub fn time(context_mib: u64) -> FitRules {
        FitRules {
            context_mib,
            shares: ShareReadings::default(),
        }
    }

    /// A context of `context_mib` and shares read under `model`.
    pub fn new(context_mib: u64, model: ShareModel) -> FitRules {
        FitRules {
            context_mib,
            shares: ShareReadings::of(model),
        }
    }
}

/// True for a label key the slice-fit rule reads.
pub fn is_slice_key(key: &str) -> bool {
    SLICE_LABELS.contains(&key)
}

/// What one slice of a node offers: its labels, as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slice {
    /// Replicas per GPU, ≥ 1.
    pub replicas: u32,
    /// GPU memory of one slice, MiB.
    pub gpu_memory_mib: u64,
    /// Share of a GPU's time, thousandths.
    pub share_milli: u32,
    /// Throughput of one busy slice beside busy neighbours, thousandths of the GPU alone
    /// ([`Slice::rated`]); 0 on a node labelled before the label existed.
    pub throughput_milli: u32,
    pub sharing: NodeSharing,
}

impl Slice {
    /// The time-sliced slice of a GPU with `usable_gpu_memory_mib` (after headroom) at
    /// `replicas` per GPU (0 is read as 1; R = 1 is an unshared GPU), rated with the
    /// measured [`Efficiency`] (a node of a pool with its own: [`Slice::rated`]).
    pub fn new(usable_gpu_memory_mib: u64, replicas: u32) -> Slice {
        let r = replicas.max(1);
        Slice {
            replicas: r,
            gpu_memory_mib: usable_gpu_memory_mib / u64::from(r),
            share_milli: 1000 / r,
            throughput_milli: 0,
            sharing: NodeSharing::for_replicas(r),
        }
        .rated(Efficiency::MEASURED)
    }

    /// The same slice with its throughput from the GPU's efficiencies `e`: 1000 at R = 1,
    /// the part on a fractional GPU (no neighbours to switch with), ⌊`e` / R⌋ of
    /// time-slicing or MPS at R ≥ 2, at most 1000.
    pub fn rated(self, e: Efficiency) -> Slice {
        let per_gpu = match self.sharing {
            NodeSharing::None => 1000,
            NodeSharing::Fractional => {
                return Slice {
                    throughput_milli: self.share_milli,
                    ..self
                };
            }
            NodeSharing::TimeSlicing => e.time_slicing_milli,
            NodeSharing::Mps => e.mps_milli,
        };
        let r = self.replicas.max(1);
        let each = if r == 1 { 1000 } else { per_gpu / r };
        Slice {
            throughput_milli: each.min(1000),
            ..self
        }
    }

    /// The slice of a GPU whose share of a physical GPU is `fraction_milli`: its one
    /// part ([`Slice::fractional`], R = 1) below 1000, else [`Slice::new`] at `replicas`.
    pub fn of_gpu(usable_gpu_memory_mib: u64, fraction_milli: u32, replicas: u32) -> Slice {
        if fraction_milli < 1000 {
            Slice::fractional(usable_gpu_memory_mib, fraction_milli)
        } else {
            Slice::new(usable_gpu_memory_mib, replicas)
        }
    }

    /// The slice of a node's GPUs: [`Slice::of_gpu`] at `replicas`, shared by MPS when
    /// `mps` ([`Slice::under_mps`]: whole GPUs at R > 1 only), rated with the GPU's
    /// efficiencies `e`. What the planner, the rounds and the replay build for a node.
    pub fn of_node(
        usable_gpu_memory_mib: u64,
        fraction_milli: u32,
        replicas: u32,
        mps: bool,
        e: Efficiency,
    ) -> Slice {
        let s = Slice::of_gpu(usable_gpu_memory_mib, fraction_milli, replicas).rated(e);
        if mps { s.under_mps(e) } else { s }
    }

    /// The same slice with the GPU shared by MPS instead of time-slicing (R > 1 only; an
    /// unshared or fractional slice is returned as is), rated with `e`. The device plugin
    /// caps each MPS client at GPU memory / R and 1/R of the GPU's threads, the numbers
    /// the memory and share labels carry; the throughput is MPS's.
    pub fn under_mps(self, e: Efficiency) -> Slice {
        if self.sharing == NodeSharing::TimeSlicing {
            Slice {
                sharing: NodeSharing::Mps,
                ..self
            }
            .rated(e)
        } else {
            self
        }
    }

    /// The device-plugin profile (ConfigMap key and `nvidia.com/device-plugin.config`
    /// label) of nodes with this slice: `mps-r<R>` under MPS, else `ts-r<R>` (`ts-r1` for
    /// whole and fractional GPUs).
    pub fn profile(&self) -> String {
        if self.sharing == NodeSharing::Mps {
            super::mps_profile_name(self.replicas)
        } else {
            super::profile_name(self.replicas)
        }
    }

    /// The one slice of a hardware-fractional GPU: `usable_gpu_memory_mib` is the part's
    /// own memory (after headroom), `fraction_milli` its share of the physical GPU.
    pub fn fractional(usable_gpu_memory_mib: u64, fraction_milli: u32) -> Slice {
        let part = fraction_milli.min(1000);
        Slice {
            replicas: 1,
            gpu_memory_mib: usable_gpu_memory_mib,
            share_milli: part,
            throughput_milli: part,
            sharing: NodeSharing::Fractional,
        }
    }

    /// The slice a node's labels describe; `None` when a label is absent or not a number.
    /// A node without the strategy label (made before it existed) is read as `none` at
    /// R = 1 and `time-slicing` above; one without the throughput label, as promising no
    /// throughput (0: the affinity admission writes under `throughput` does not match it
    /// either).
    pub fn from_labels(label: &dyn Fn(&str) -> Option<String>) -> Option<Slice> {
        let num = |k: &str| label(k).and_then(|v| v.parse::<u64>().ok());
        let replicas = u32::try_from(num(REPLICAS_LABEL)?).ok()?.max(1);
        let sharing = match label(SHARING_STRATEGY_LABEL) {
            Some(v) => NodeSharing::parse(&v)?,
            None => NodeSharing::for_replicas(replicas),
        };
        Some(Slice {
            replicas,
            gpu_memory_mib: num(SLICE_GPU_MEMORY_LABEL)?,
            share_milli: u32::try_from(num(SLICE_SHARE_LABEL)?).ok()?,
            throughput_milli: match label(SLICE_THROUGHPUT_LABEL) {
                None => 0,
                Some(v) => u32::try_from(v.parse::<u64>().ok()?).ok()?,
            },
            sharing,
        })
    }

    /// The value of one of the slice labels; `None` for any other key.
    pub fn label(&self, key: &str) -> Option<String> {
        match key {
            SLICE_GPU_MEMORY_LABEL => Some(self.gpu_memory_mib.to_string()),
            SLICE_SHARE_LABEL => Some(self.share_milli.to_string()),
            SLICE_THROUGHPUT_LABEL => Some(self.throughput_milli.to_string()),
            REPLICAS_LABEL => Some(self.replicas.to_string()),
            SHARING_STRATEGY_LABEL => Some(self.sharing.as_str().to_string()),
            _ => None,
        }
    }

    /// The labels, in [`SLICE_LABELS`] order.
    pub fn labels(&self) -> [(&'static str, String); 5] {
        [
            (SLICE_GPU_MEMORY_LABEL, self.gpu_memory_mib.to_string()),
            (SLICE_SHARE_LABEL, self.share_milli.to_string()),
            (SLICE_THROUGHPUT_LABEL, self.throughput_milli.to_string()),
            (REPLICAS_LABEL, self.replicas.to_string()),
            (SHARING_STRATEGY_LABEL, self.sharing.as_str().to_string()),
        ]
    }
}

/// What a pod needs of a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SliceNeed {
    /// GPU memory with the CUDA context ([`memory_with_context`]), MiB.
    pub gpu_memory_mib: Option<u64>,
    /// `gpu-slicer.io/gpu-share`, thousandths (an exclusive pod has none).
    pub share_milli: Option<u32>,
    /// How the share is read: of the slice's time, throughput, or both.
    pub shares: ShareReadings,
    /// Whole GPUs only: R = 1, not fractional.
    pub exclusive: bool,
    /// `isolation: memory`: never time-slicing.
    pub isolation: bool,
    /// GPU memory as a share of whatever GPU the pod gets, thousandths.
    pub memory_fraction_milli: Option<u32>,
    /// A shared pod asking for more than one `nvidia.com/gpu`: never MPS (the device
    /// plugin refuses such requests under MPS, `failRequestsGreaterThanOne`).
    pub multi_unit: bool,
}

impl SliceNeed {
    /// What `it` needs of a slice under `rules` (the CUDA context each process holds, the
    /// readings of its share).
    pub fn of(it: &DemandItem, rules: FitRules) -> SliceNeed {
        SliceNeed {
            gpu_memory_mib: memory_with_context(it, rules.context_mib),
            share_milli: it.gpu_share_milli,
            shares: rules.shares,
            exclusive: it.sharing == Sharing::Exclusive,
            isolation: it.isolation == Isolation::Memory,
            memory_fraction_milli: it.gpu_memory_fraction_milli,
            multi_unit: it.sharing == Sharing::Shared && it.gpus > 1,
        }
    }

    /// The rule: may the pod use this slice?
    pub fn fits(&self, s: &Slice) -> bool {
        (!self.exclusive || (s.replicas == 1 && s.sharing == NodeSharing::None))
            && (!self.isolation || s.sharing.isolates_memory())
            && (!self.multi_unit || s.sharing != NodeSharing::Mps)
            && self.memory_fraction_milli.is_none_or(|m| {
                s.sharing == NodeSharing::Fractional || u64::from(m) * u64::from(s.replicas) <= 1000
            })
            && self.gpu_memory_mib.is_none_or(|m| m <= s.gpu_memory_mib)
            && self.share_milli.is_none_or(|x| {
                (!self.shares.time || x <= s.share_milli)
                    && (!self.shares.throughput || x <= s.throughput_milli)
            })
    }

    /// The largest R of `allowed` whose slice of a GPU with `usable_gpu_memory_mib` fits;
    /// `None` if none does. `allowed` need not be sorted.
    pub fn max_replicas(&self, usable_gpu_memory_mib: u64, allowed: &[u32]) -> Option<u32> {
        allowed
            .iter()
            .copied()
            .filter(|&r| r >= 1 && self.fits(&Slice::new(usable_gpu_memory_mib, r)))
            .max()
    }

    /// True when every slice fits: the pod needs no affinity term.
    pub fn is_unconstrained(&self) -> bool {
        !self.exclusive
            && !self.isolation
            && self.gpu_memory_mib.is_none()
            && self.share_milli.is_none()
            && self.memory_fraction_milli.is_none()
            && !self.multi_unit
    }

    /// The node-selector requirements (an AND) that match exactly the nodes whose slice
    /// labels fit the pod; empty when every slice fits.
    pub fn requirements(&self) -> Vec<Requirement> {
        let mut out = Vec::new();
        if let Some(m) = self.gpu_memory_mib {
            out.push(gt(SLICE_GPU_MEMORY_LABEL, m));
        }
        if let Some(s) = self.share_milli {
            if self.shares.time {
                out.push(gt(SLICE_SHARE_LABEL, u64::from(s)));
            }
            if self.shares.throughput {
                out.push(gt(SLICE_THROUGHPUT_LABEL, u64::from(s)));
            }
        }
        if self.exclusive {
            out.push(Requirement {
                key: REPLICAS_LABEL.to_string(),
                operator: Operator::In,
                values: vec!["1".to_string()],
            });
            out.push(strategies(&[NodeSharing::None]));
        } else if self.isolation {
            out.push(strategies(&[
                NodeSharing::Fractional,
                NodeSharing::Mps,
                NodeSharing::None,
            ]));
        }
        if self.multi_unit {
            out.push(strategies(&[
                NodeSharing::Fractional,
                NodeSharing::None,
                NodeSharing::TimeSlicing,
            ]));
        }
        if let Some(m) = self.memory_fraction_milli
            && !self.exclusive
        {
            // m × R ≤ 1000 ⇔ R < ⌊1000 / m⌋ + 1; fractional nodes have R = 1.
            out.push(Requirement {
                key: REPLICAS_LABEL.to_string(),
                operator: Operator::Lt,
                values: vec![(1000 / u64::from(m.max(1)) + 1).to_string()],
            });
        }
        out
    }
}

/// A pod's GPU memory with its CUDA context ([the rule](self)); None when it declares
/// nothing and the context counts nothing.
pub fn memory_with_context(it: &DemandItem, context_mib: u64) -> Option<u64> {
    match it.gpu_memory_mib {
        None => (context_mib > 0).then_some(context_mib),
        Some(m) if it.gpu_memory_excludes_context => Some(m.saturating_add(context_mib)),
        Some(m) => Some(m.max(context_mib)),
    }
}

/// `sharing-strategy In [..]`.
fn strategies(allowed: &[NodeSharing]) -> Requirement {
    Requirement {
        key: SHARING_STRATEGY_LABEL.to_string(),
        operator: Operator::In,
        values: allowed.iter().map(|s| s.as_str().to_string()).collect(),
    }
}

/// `key Gt need − 1`, i.e. the label's value ≥ `need`. A need of 0 becomes `Gt -1`,
/// which every non-negative label value satisfies (and an absent label does not).
fn gt(key: &str, need: u64) -> Requirement {
    let bound = i128::from(need) - 1;
    Requirement {
        key: key.to_string(),
        operator: Operator::Gt,
        values: vec![bound.to_string()],
    }
}

/// True when every slice-key requirement of some term of the pod's required affinity
/// (or its node selector) allows the slice; requirements on other keys are not looked
/// at. A pod with no term on slice keys allows every slice. Used where the slice is
/// chosen after the node's other labels (the planner picks R per node).
pub fn terms_allow(it: &DemandItem, s: &Slice) -> bool {
    let sel_ok = it
        .node_selector
        .iter()
        .filter(|(k, _)| is_slice_key(k))
        .all(|(k, v)| s.label(k).as_deref() == Some(v.as_str()));
    sel_ok
        && (it.affinity_terms.is_empty()
            || it.affinity_terms.iter().any(|t| {
                t.iter()
                    .filter(|r| is_slice_key(&r.key))
                    .all(|r| r.matches(s.label(&r.key).as_deref()))
            }))
}

#[cfg(test)]
mod tests;
