//! The FGD paper's fixed-cluster experiment (Weng et al., "Beware of Fragmentation:
//! Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent", USENIX ATC '23):
//! pods of the Alibaba `openb` trace arrive one by one onto the trace's own 1,213-node,
//! 6,212-GPU cluster, with no departures, until the GPUs they have asked for add up to
//! 100 % of the cluster's GPU capacity; the metric is the share of GPU capacity left
//! unallocated at that point (FGD: 4.8 % on `default`,
//! [`FGD_PUBLISHED_DEFAULT_UNALLOCATED_PCT`]).
//!
//! Pure: parses text given to it ([`parse_alibaba_nodes`]; pod lists are parsed by
//! [`crate::trace::parse_alibaba_pods`]) and returns values. No I/O, clock or threads;
//! randomness is a seeded SplitMix64.
//!
//! # What is implemented
//!
//! **Arrival stream** ([`fgd_arrivals`]), as FGD's simulator builds it (its workload
//! "tuning" at ratio 1.3 with `--shuffle-pod`): every pod of the trace once, plus pods
//! drawn uniformly with replacement from the trace until the pool's GPU requests reach
//! 130 % of the cluster's GPU capacity (or the requested cut-off, if higher); the pool
//! is then shuffled (Fisher–Yates). A trace whose own requests exceed that target is
//! thinned by removing uniformly drawn pods instead, as FGD does. The replay stops once
//! the arrived requests reach `arrived_until_pct` of capacity, so with the default
//! 100 % only the first ~77 % of the pool arrives. A pod's GPU request is
//! `num_gpu × gpu_milli` (FGD's `TotalMilliGpu`); CPU-only pods (`num_gpu = 0`) add
//! nothing to it but are scheduled when they arrive and take CPU and memory.
//!
//! **FgdCluster model** (FGD's GPU-sharing model): a node has CPU (millicores), memory
//! (MiB) and `gpus` GPUs of one model. A pod needs its CPU and memory on one node and,
//! with `num_gpu = n ≥ 1` and per-GPU share `gpu_milli = m`, `n` distinct GPUs of that
//! node each with `m` milli free (a GPU holds pods whose milli sum to at most 1000;
//! `n > 1` pods ask for whole GPUs). A non-empty `gpu_spec` restricts a GPU pod to
//! nodes whose `model` it lists. A pod that fits nowhere fails and is not retried.
//!
//! **Metric**: unallocated GPU % = idle GPU capacity ÷ total GPU capacity, read right
//! after the pod whose arrival takes the arrived requests to the cut-off. The curve has
//! one point per whole arrived percent `k = 0, 1, …`: the unallocated % right after
//! the first pod that takes the arrived requests to at least `k` %.
//!
//! # Policies
//!
//! - [`FgdPolicy::BestFit`]: among the nodes where the pod fits, the one left with the
//!   least free GPU capacity after placing it (tie: least free CPU, then the first in
//!   the node list); on that node, the GPU(s) left with the least free milli.
//! - [`FgdPolicy::GpuSlicer`]: gpu-slicer's time-slicing model on the same fixed cluster.
//!   A shared pod (`num_gpu = 1`, `gpu_milli < 1000`) takes one *slice* of a GPU. A GPU
//!   is cut into `R` equal slices when its first shared pod lands, `R = ⌊1000 ÷
//!   gpu_milli⌋` capped at [`SLICER_MAX_REPLICAS`] (gpu-slicer's default
//!   `--max-replicas`); a later shared pod may take a free slice of it only if its
//!   `gpu_milli ≤ 1000 ÷ R` (share-safe). A slice is reserved whole: it counts
//!   `1000 ÷ R` milli as allocated, whatever the pod uses of it. Exclusive pods
//!   (`gpu_milli = 1000`) take whole GPUs that are neither sliced nor used. Node choice
//!   and GPU choice are best fit as above, by the capacity each placement reserves.
//!   Unlike FGD's milli-packing, a 650-milli pod reserves a whole GPU (R = 1) and two
//!   470-milli pods fill one (R = 2, 60 milli idle): what time-slicing does, since the
//!   device plugin advertises equal replicas and cannot pack arbitrary fractions. The
//!   report therefore gives both [`FgdReport::unallocated_gpu_pct`] (capacity neither
//!   reserved nor sliced: free GPUs plus free slices) and
//!   [`FgdReport::idle_in_slices_gpu_pct`] (reserved slice capacity minus the pods'
//!   own milli), so `100 − unallocated = placed requests + idle in slices`.
//!
//! # Where this may differ from FGD's simulator
//!
//! - Random numbers: SplitMix64, not Go's `math/rand`, so seed `s` here is not FGD's
//!   seed `s`; FGD reports the mean of seeds 42–51, so compare with a few seeds.
//! - FGD's pool growth stops before the sampled pod that would overshoot 130 % (its
//!   test compares the per-GPU milli); here sampling stops once the pool reaches the
//!   target (it may overshoot by one pod). FGD sorts pods by name before shuffling;
//!   here the pool is shuffled as built. Same distribution of streams either way.
//! - FGD's published value at 100 % is the mean over every scheduling step whose
//!   arrived share rounds to 100 % (99.5–100.5 %); here it is the single state at the
//!   first step reaching the cut-off. The two agree to first order.
//! - FGD's BestFit scores nodes by `0.5·free CPU/max CPU + 0.5·free GPU/max GPU` after
//!   placement, truncated to an integer score with kube-scheduler's random tie-break;
//!   here it is lexicographic (free GPU, then free CPU, then node order). FGD's
//!   published BestFit is [`FGD_PUBLISHED_DEFAULT_BESTFIT_UNALLOCATED_PCT`].
//! - Memory is checked as a node resource (kube-scheduler's NodeResourcesFit does the
//!   same in FGD's simulator); `gpu_spec` is applied to GPU pods only.
//! - A GPU pod with `gpu_milli = 0` (none in the published traces) is taken as asking
//!   for whole GPUs (as `crate::trace` maps it), so it counts `num_gpu × 1000` milli.
//!
//! Size (~610 code lines): the FGD policy, its fragmentation measure and the experiment
//! that runs it are one method to be read against the paper; split, each part would
//! need the others' definitions to be checked.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::trace::{AlibabaPod, SplitMix64, TraceError};

/// FGD's unallocated GPU share (%) on the `default` trace at 100 % arrived workload:
/// Weng et al., "Beware of Fragmentation: Scheduling GPU-Sharing Workloads with
/// Fragmentation Gradient Descent", USENIX ATC '23 (Fig. 9a; mean of 10 seeds in the
/// paper's artifact, `hkust-adsl/kubernetes-scheduler-simulator`).
pub const FGD_PUBLISHED_DEFAULT_UNALLOCATED_PCT: f64 = 4.8;

/// BestFit's unallocated GPU share (%) in the same experiment of the same paper
/// (FGD's baseline; same source as [`FGD_PUBLISHED_DEFAULT_UNALLOCATED_PCT`]).
pub const FGD_PUBLISHED_DEFAULT_BESTFIT_UNALLOCATED_PCT: f64 = 7.1;

/// FGD's simulator grows the trace to this share (%) of the cluster's GPU capacity
/// before shuffling it (its workload tuning ratio 1.3).
pub const FGD_POOL_PCT: f64 = 130.0;

/// The cap on slices per GPU in [`FgdPolicy::GpuSlicer`]: gpu-slicer's default
/// `--max-replicas`.
pub const SLICER_MAX_REPLICAS: u32 = 10;

/// The highest cut-off [`run`] and [`replay`] accept (%); higher values are clamped,
/// so the arrival stream stays finite.
pub const MAX_ARRIVED_PCT: f64 = 1000.0;

const MILLI: u64 = 1000;
/// Capacity is counted in 1/2520 milli so that a slice of any `R ≤ 10` is a whole
/// number of units (2520 is divisible by 1..=10): all comparisons are exact.
const UNITS_PER_MILLI: u64 = 2520;
const GPU_UNITS: u64 = MILLI * UNITS_PER_MILLI;

/// One node of `openb_node_list_*.csv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNode {
    pub name: String,
    pub cpu_milli: u64,
    pub memory_mib: u64,
    pub gpus: u32,
    /// GPU model (`T4`, `V100M16`, `V100M32`, `P100`, `A10`, `G2`, `G3`); empty only for
    /// a node without GPUs.
    pub model: String,
}

/// The scheduling policy of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FgdPolicy {
    /// Best fit on FGD's milli-packing GPU-sharing model.
    BestFit,
    /// gpu-slicer's time-slicing model (equal slices per GPU, share-safe), best fit.
    GpuSlicer,
}

impl FgdPolicy {
    /// A short name for tables and file names.
    pub fn name(&self) -> &'static str {
        match self {
            FgdPolicy::BestFit => "best-fit",
            FgdPolicy::GpuSlicer => "gpu-slicer",
        }
    }
}

/// Settings of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FgdConfig {
    pub policy: FgdPolicy,
    /// Seed of the arrival stream (sampling and shuffle).
    pub seed: u64,
    /// Stop once the arrived GPU requests reach this share (%) of the cluster's GPU
    /// capacity (FGD: 100). Clamped to `0..=`[`MAX_ARRIVED_PCT`]; NaN counts as 0.
    pub arrived_until_pct: f64,
}

impl Default for FgdConfig {
    fn default() -> Self {
        FgdConfig {
            policy: FgdPolicy::BestFit,
            seed: 1,
            arrived_until_pct: 100.0,
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FgdReport {
    pub policy: String,
    pub total_gpus: u32,
    /// GPU requests of the arrived pods (placed or failed) as % of GPU capacity, at the
    /// end of the run (the cut-off, or a little above it: the last pod may overshoot).
    pub arrived_gpu_pct: f64,
    /// GPU capacity neither allocated nor reserved, % of capacity, at the end. For
    /// [`FgdPolicy::GpuSlicer`]: free unsliced GPUs plus free slices.
    pub unallocated_gpu_pct: f64,
    /// Capacity reserved for placed pods beyond what they asked for, % of capacity:
    /// the unused part of each taken slice ([`FgdPolicy::GpuSlicer`]; 0 for
    /// [`FgdPolicy::BestFit`], which allocates exactly the requests).
    pub idle_in_slices_gpu_pct: f64,
    /// GPU requests of the pods that fit nowhere, % of capacity.
    pub failed_gpu_pct: f64,
    /// Pods that arrived (CPU-only ones included).
    pub arrived_pods: usize,
    pub failed_pods: usize,
    pub placed_pods: usize,
    /// (arrived %, unallocated %) at every whole arrived percent from 0 to the cut-off.
    pub curve: Vec<(f64, f64)>,
}

/// Parses an Alibaba node list (`sn,cpu_milli,memory_mib,gpu,model`) by header names,
/// with the one CSV reader (`table::read`). Errors name the source, the line and the
/// column.
pub fn parse_alibaba_nodes(source: &str, text: &str) -> Result<Vec<ClusterNode>, TraceError> {
    let e = |line: usize, message: String| TraceError::new(source, line, message);
    let table =
        crate::table::read(text, false).map_err(|t| e(t.line, t.to_string()).caused_by(t))?;
    if table.header.is_empty() {
        return Err(e(1, "empty node list".into()));
    }
    let need = |name: &str| {
        table
            .column(name)
            .ok_or_else(|| e(table.header_line, format!("missing column `{name}`")))
    };
    let (c_sn, c_cpu, c_mem, c_gpu, c_model) = (
        need("sn")?,
        need("cpu_milli")?,
        need("memory_mib")?,
        need("gpu")?,
        need("model")?,
    );
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (ln, cells) in &table.rows {
        let ln = *ln;
        let num = |c: usize, what: &str| -> Result<u64, TraceError> {
            cells[c].parse::<u64>().map_err(|p| {
                e(
                    ln,
                    format!("column `{what}`: not a whole number: {:?}", cells[c]),
                )
                .caused_by(p)
            })
        };
        let name = cells[c_sn].as_str();
        if name.is_empty() {
            return Err(e(ln, "column `sn`: empty".into()));
        }
        let gpus = u32::try_from(num(c_gpu, "gpu")?)
            .ok()
            .filter(|g| *g <= 1024)
            .ok_or_else(|| e(ln, "column `gpu`: more than 1024 GPUs".into()))?;
        let model = cells[c_model].as_str();
        if gpus > 0 && model.is_empty() {
            return Err(e(ln, "column `model`: empty for a node with GPUs".into()));
        }
        let node = ClusterNode {
            name: name.to_string(),
            cpu_milli: num(c_cpu, "cpu_milli")?,
            memory_mib: num(c_mem, "memory_mib")?,
            gpus,
            model: model.to_string(),
        };
        if let Some(first) = seen.insert(node.name.clone(), ln) {
            return Err(e(
                ln,
                format!("column `sn`: node {name:?} already on line {first}"),
            ));
        }
        out.push(node);
    }
    Ok(out)
}

/// `(n, per-GPU milli)` a pod asks for; `gpu_milli = 0` with GPUs means whole GPUs.
fn gpu_need(pod: &AlibabaPod) -> (u32, u64) {
    let m = u64::from(pod.gpu_milli).min(MILLI);
    match pod.num_gpu {
        0 => (0, 0),
        n if m == 0 => (n, MILLI),
        n => (n, m),
    }
}

/// A pod's GPU request in milli (`num_gpu × gpu_milli`), as FGD counts arrivals.
pub fn gpu_request_milli(pod: &AlibabaPod) -> u64 {
    let (n, m) = gpu_need(pod);
    u64::from(n) * m
}

fn clamp_pct(pct: f64) -> f64 {
    if pct.is_nan() {
        0.0
    } else {
        pct.clamp(0.0, MAX_ARRIVED_PCT)
    }
}

/// FGD's arrival stream over `pods`, as indices into it: every pod once plus pods drawn
/// with replacement until the pool's GPU requests reach `max(130 %, cut-off)` of
/// `total_gpus`' capacity (or, for a trace already above that, the trace thinned by
/// random removal), shuffled. Deterministic in `seed`. With no GPU capacity or no pod
/// asking for GPUs it is the trace once, shuffled.
pub fn fgd_arrivals(
    pods: &[AlibabaPod],
    total_gpus: u32,
    seed: u64,
    arrived_until_pct: f64,
) -> Vec<usize> {
    let mut rng = SplitMix64(seed);
    let mut pool: Vec<usize> = (0..pods.len()).collect();
    let capacity = u64::from(total_gpus) * MILLI;
    let has_gpu_pods = pods.iter().any(|p| gpu_request_milli(p) > 0);
    if capacity > 0 && has_gpu_pods {
        let pct = FGD_POOL_PCT.max(clamp_pct(arrived_until_pct));
        // ≤ 1000 % of a capacity below 2^42 milli: far inside f64's exact range.
        let target = (capacity as f64 * pct / 100.0).ceil() as u64;
        let mut total: u64 = pods.iter().map(gpu_request_milli).sum();
        if total > target {
            while total > target && !pool.is_empty() {
                let i = rng.below(pool.len());
                total -= gpu_request_milli(&pods[pool.swap_remove(i)]);
            }
        } else {
            // Terminates: some pod has a positive request, drawn with probability > 0.
            while total < target {
                let i = rng.below(pods.len());
                total += gpu_request_milli(&pods[i]);
                pool.push(i);
            }
        }
    }
    for i in (1..pool.len()).rev() {
        let j = rng.below(i + 1);
        pool.swap(i, j);
    }
    pool
}

/// Runs the experiment: [`fgd_arrivals`] from `cfg.seed`, replayed by [`replay`].
pub fn run(nodes: &[ClusterNode], pods: &[AlibabaPod], cfg: &FgdConfig) -> FgdReport {
    let total_gpus = nodes.iter().fold(0u32, |a, n| a.saturating_add(n.gpus));
    let order = fgd_arrivals(pods, total_gpus, cfg.seed, cfg.arrived_until_pct);
    replay(
        nodes,
        order.iter().filter_map(|&i| pods.get(i)),
        cfg.policy,
        cfg.arrived_until_pct,
    )
}

/// Schedules `stream` in order onto a fresh cluster of `nodes` until the arrived GPU
/// requests reach `arrived_until_pct` of its capacity (or the stream ends), and
/// reports. The pod that reaches the cut-off is scheduled; none after it.
pub fn replay<'a, I>(
    nodes: &[ClusterNode],
    stream: I,
    policy: FgdPolicy,
    arrived_until_pct: f64,
) -> FgdReport
where
    I: IntoIterator<Item = &'a AlibabaPod>,
{
    let mut cluster = FgdCluster::new(nodes, policy);
    let capacity = u128::from(cluster.total_gpus) * u128::from(MILLI);
    let target = clamp_pct(arrived_until_pct);
    // Whole percents of the curve: 0..=⌊target⌋ (target ≤ 1000).
    let last_k = target.floor() as u128;
    let pct = |milli: u64| {
        if capacity == 0 {
            0.0
        } else {
            milli as f64 * 100.0 / capacity as f64
        }
    };
    let (mut arrived, mut failed_milli) = (0u64, 0u64);
    let (mut arrived_pods, mut placed, mut failed) = (0usize, 0usize, 0usize);
    let mut curve = Vec::new();
    let mut next_k: u128 = 0;
    let mut record = |arrived: u64, cluster: &FgdCluster, curve: &mut Vec<(f64, f64)>| {
        while next_k <= last_k && u128::from(arrived) * 100 >= next_k * capacity {
            curve.push((next_k as f64, cluster.unallocated_gpu_pct()));
            next_k += 1;
        }
    };
    if capacity > 0 {
        record(0, &cluster, &mut curve);
        for pod in stream {
            if pct(arrived) >= target {
                break;
            }
            let req = gpu_request_milli(pod);
            arrived += req;
            arrived_pods += 1;
            if cluster.place(pod).is_some() {
                placed += 1;
            } else {
                failed += 1;
                failed_milli += req;
            }
            record(arrived, &cluster, &mut curve);
        }
    }
    FgdReport {
        policy: policy.name().to_string(),
        total_gpus: cluster.total_gpus,
        arrived_gpu_pct: pct(arrived),
        unallocated_gpu_pct: cluster.unallocated_gpu_pct(),
        idle_in_slices_gpu_pct: cluster.idle_in_slices_gpu_pct(),
        failed_gpu_pct: pct(failed_milli),
        arrived_pods,
        failed_pods: failed,
        placed_pods: placed,
        curve,
    }
}

/// Where a pod was placed: node index (in the node list) and GPU indices on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    pub node: usize,
    pub gpus: Vec<usize>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Gpu {
    /// Units allocated: the pods' shares (best fit), or whole slices / whole GPUs.
    used: u64,
    /// Units the pods on it asked for.
    own: u64,
    /// Slices it is cut into (0: not sliced). GpuSlicer only.
    slices: u32,
    slices_used: u32,
    /// Taken whole by an exclusive pod. GpuSlicer only.
    exclusive: bool,
}

#[derive(Debug, Clone)]
struct NodeState {
    cpu_free: u64,
    mem_free: u64,
    free_units: u64,
    model: String,
    gpus: Vec<Gpu>,
}

/// The fixed cluster under one policy: place pods one at a time and read its state.
#[derive(Debug, Clone)]
pub struct FgdCluster {
    policy: FgdPolicy,
    nodes: Vec<NodeState>,
    total_gpus: u32,
    free_units: u64,
    idle_units: u64,
}

/// What placing a pod on one node would do: units it reserves there, and for a
/// one-GPU pod the GPU.
struct Fit {
    alloc: u64,
    gpu: Option<usize>,
}

/// Slices for a GPU whose first shared pod asks `m` milli (`0 < m < 1000`).
fn slices_for(m: u64) -> u32 {
    // m ≥ 1 so 1000 / m ≤ 1000; capped at 10 and at least 1 (m < 1000).
    (MILLI / m.max(1)).clamp(1, u64::from(SLICER_MAX_REPLICAS)) as u32
}

impl FgdCluster {
    pub fn new(nodes: &[ClusterNode], policy: FgdPolicy) -> FgdCluster {
        let states: Vec<NodeState> = nodes
            .iter()
            .map(|n| NodeState {
                cpu_free: n.cpu_milli,
                mem_free: n.memory_mib,
                free_units: u64::from(n.gpus) * GPU_UNITS,
                model: n.model.clone(),
                gpus: vec![Gpu::default(); n.gpus as usize],
            })
            .collect();
        let total_gpus = nodes.iter().fold(0u32, |a, n| a.saturating_add(n.gpus));
        FgdCluster {
            policy,
            free_units: states.iter().map(|n| n.free_units).sum(),
            nodes: states,
            total_gpus,
            idle_units: 0,
        }
    }

    pub fn total_gpus(&self) -> u32 {
        self.total_gpus
    }

    /// Free GPU capacity (free GPUs and free slices), % of capacity (0 with no GPUs).
    pub fn unallocated_gpu_pct(&self) -> f64 {
        self.share_pct(self.free_units)
    }

    /// Reserved slice capacity the pods do not ask for, % of capacity.
    pub fn idle_in_slices_gpu_pct(&self) -> f64 {
        self.share_pct(self.idle_units)
    }

    fn share_pct(&self, units: u64) -> f64 {
        let total = u64::from(self.total_gpus) * GPU_UNITS;
        if total == 0 {
            0.0
        } else {
            units as f64 * 100.0 / total as f64
        }
    }

    /// Milli allocated on a GPU (slices count whole), or `None` for no such GPU.
    pub fn gpu_allocated_milli(&self, node: usize, gpu: usize) -> Option<f64> {
        let g = self.nodes.get(node)?.gpus.get(gpu)?;
        Some(g.used as f64 / UNITS_PER_MILLI as f64)
    }

    /// Slices a GPU is cut into (0: not sliced), or `None` for no such GPU.
    pub fn gpu_slices(&self, node: usize, gpu: usize) -> Option<u32> {
        Some(self.nodes.get(node)?.gpus.get(gpu)?.slices)
    }

    /// Free (CPU milli, memory MiB) of a node, or `None` for no such node.
    pub fn node_free(&self, node: usize) -> Option<(u64, u64)> {
        let n = self.nodes.get(node)?;
        Some((n.cpu_free, n.mem_free))
    }

    /// Places `pod` by the policy, or returns `None` (and changes nothing) when it
    /// fits on no node.
    pub fn place(&mut self, pod: &AlibabaPod) -> Option<Placement> {
        let (n, m) = gpu_need(pod);
        let mut best: Option<((u64, u64, usize), Fit)> = None;
        for (i, node) in self.nodes.iter().enumerate() {
            if node.cpu_free < pod.cpu_milli || node.mem_free < pod.memory_mib {
                continue;
            }
            if n > 0 && !pod.gpu_spec.is_empty() && !pod.gpu_spec.contains(&node.model) {
                continue;
            }
            let Some(fit) = self.fit(node, n, m) else {
                continue;
            };
            let key = (
                node.free_units - fit.alloc,
                node.cpu_free - pod.cpu_milli,
                i,
            );
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((key, fit));
            }
        }
        let ((_, _, i), fit) = best?;
        let gpus = self.commit(i, pod, n, m, &fit);
        Some(Placement { node: i, gpus })
    }

    /// Whether `n` GPUs of `m` milli fit on `node`'s GPUs, and what that reserves.
    fn fit(&self, node: &NodeState, n: u32, m: u64) -> Option<Fit> {
        let mu = m * UNITS_PER_MILLI;
        if n == 0 {
            return Some(Fit {
                alloc: 0,
                gpu: None,
            });
        }
        if (node.gpus.len() as u64) < u64::from(n) {
            return None;
        }
        let shared = self.policy == FgdPolicy::GpuSlicer && n == 1 && m < MILLI;
        if shared {
            // The GPU left with the least free capacity after taking a slice.
            let mut best: Option<(u64, usize, u64)> = None;
            for (j, g) in node.gpus.iter().enumerate() {
                let slice = if g.exclusive {
                    continue;
                } else if g.slices == 0 {
                    if g.used > 0 {
                        continue;
                    }
                    GPU_UNITS / u64::from(slices_for(m))
                } else if g.slices_used < g.slices && m * u64::from(g.slices) <= MILLI {
                    GPU_UNITS / u64::from(g.slices)
                } else {
                    continue;
                };
                let after = GPU_UNITS - g.used - slice;
                if best.is_none_or(|(a, _, _)| after < a) {
                    best = Some((after, j, slice));
                }
            }
            let (_, j, slice) = best?;
            return Some(Fit {
                alloc: slice,
                gpu: Some(j),
            });
        }
        let exclusive = self.policy == FgdPolicy::GpuSlicer;
        let usable = |g: &Gpu| {
            if exclusive {
                g.used == 0 && g.slices == 0
            } else {
                GPU_UNITS - g.used >= mu
            }
        };
        let per_gpu = if exclusive { GPU_UNITS } else { mu };
        if n == 1 {
            // Best fit: least free after placement, first on ties.
            let mut best: Option<(u64, usize)> = None;
            for (j, g) in node.gpus.iter().enumerate() {
                if usable(g) {
                    let after = GPU_UNITS - g.used - per_gpu;
                    if best.is_none_or(|(a, _)| after < a) {
                        best = Some((after, j));
                    }
                }
            }
            let (_, j) = best?;
            return Some(Fit {
                alloc: per_gpu,
                gpu: Some(j),
            });
        }
        let count = node.gpus.iter().filter(|g| usable(g)).count() as u64;
        (count >= u64::from(n)).then_some(Fit {
            alloc: per_gpu * u64::from(n),
            gpu: None,
        })
    }

    fn commit(&mut self, i: usize, pod: &AlibabaPod, n: u32, m: u64, fit: &Fit) -> Vec<usize> {
        let policy = self.policy;
        let mu = m * UNITS_PER_MILLI;
        let node = &mut self.nodes[i];
        node.cpu_free -= pod.cpu_milli;
        node.mem_free -= pod.memory_mib;
        node.free_units -= fit.alloc;
        self.free_units -= fit.alloc;
        self.idle_units += fit.alloc - mu * u64::from(n);
        let chosen: Vec<usize> = match fit.gpu {
            Some(j) => vec![j],
            None if n == 0 => Vec::new(),
            None => {
                // n > 1: the n usable GPUs left with the least free capacity.
                let mut c: Vec<(u64, usize)> = node
                    .gpus
                    .iter()
                    .enumerate()
                    .filter(|(_, g)| match policy {
                        FgdPolicy::GpuSlicer => g.used == 0 && g.slices == 0,
                        FgdPolicy::BestFit => GPU_UNITS - g.used >= mu,
                    })
                    .map(|(j, g)| (GPU_UNITS - g.used, j))
                    .collect();
                c.sort_unstable();
                c.into_iter().take(n as usize).map(|(_, j)| j).collect()
            }
        };
        let shared = policy == FgdPolicy::GpuSlicer && n == 1 && m < MILLI;
        for &j in &chosen {
            let g = &mut node.gpus[j];
            g.own += mu;
            match policy {
                FgdPolicy::BestFit => g.used += mu,
                FgdPolicy::GpuSlicer if shared => {
                    if g.slices == 0 {
                        g.slices = slices_for(m);
                    }
                    g.slices_used += 1;
                    g.used += GPU_UNITS / u64::from(g.slices);
                }
                FgdPolicy::GpuSlicer => {
                    g.used = GPU_UNITS;
                    g.exclusive = true;
                }
            }
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(cpu: u64, n: u32, m: u32) -> AlibabaPod {
        AlibabaPod {
            name: "p".into(),
            cpu_milli: cpu,
            memory_mib: 1,
            num_gpu: n,
            gpu_milli: m,
            gpu_spec: Vec::new(),
            creation_time: None,
            deletion_time: None,
        }
    }

    fn node(gpus: u32) -> ClusterNode {
        ClusterNode {
            name: "n".into(),
            cpu_milli: 64_000,
            memory_mib: 1 << 20,
            gpus,
            model: "T4".into(),
        }
    }

    #[test]
    fn slices_follow_the_first_share() {
        assert_eq!(slices_for(810), 1);
        assert_eq!(slices_for(500), 2);
        assert_eq!(slices_for(470), 2);
        assert_eq!(slices_for(320), 3);
        assert_eq!(slices_for(230), 4);
        assert_eq!(slices_for(100), 10);
        assert_eq!(slices_for(50), 10);
        assert_eq!(slices_for(1), 10);
        for r in 1..=10 {
            assert_eq!(GPU_UNITS % r, 0, "slice of {r} is whole units");
        }
    }

    #[test]
    fn requests_count_whole_gpus_for_zero_milli() {
        assert_eq!(gpu_request_milli(&pod(1, 0, 0)), 0);
        assert_eq!(gpu_request_milli(&pod(1, 1, 470)), 470);
        assert_eq!(gpu_request_milli(&pod(1, 8, 1000)), 8000);
        assert_eq!(gpu_request_milli(&pod(1, 2, 0)), 2000);
    }

    #[test]
    fn prng_is_deterministic_and_in_range() {
        let mut a = SplitMix64(7);
        let mut b = SplitMix64(7);
        for _ in 0..1000 {
            let x = a.below(13);
            assert_eq!(x, b.below(13));
            assert!(x < 13);
        }
        let mut c = SplitMix64(8);
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        assert_ne!(xs, ys);
    }

    #[test]
    fn arrivals_hold_every_pod_and_reach_the_pool_target() {
        // 1 GPU of capacity; pods of 300 and 0 milli: pool ≥ 1300 milli.
        let pods = vec![pod(1, 1, 300), pod(1, 0, 0)];
        let order = fgd_arrivals(&pods, 1, 3, 100.0);
        assert!(order.contains(&0) && order.contains(&1));
        let total: u64 = order.iter().map(|&i| gpu_request_milli(&pods[i])).sum();
        assert!((1300..1600).contains(&total), "{total}");
        assert_eq!(order, fgd_arrivals(&pods, 1, 3, 100.0));
        // Above the target: thinned to it.
        let big = vec![pod(1, 1, 500); 10];
        let order = fgd_arrivals(&big, 1, 3, 100.0);
        assert_eq!(order.len(), 2, "1000 milli ≤ 1300, 1500 is above");
        // No capacity: the trace once.
        assert_eq!(fgd_arrivals(&pods, 0, 3, 100.0).len(), 2);
    }

    #[test]
    fn cut_off_is_clamped() {
        let nodes = vec![node(1)];
        let pods = vec![pod(1, 1, 500)];
        let r = run(
            &nodes,
            &pods,
            &FgdConfig {
                arrived_until_pct: f64::NAN,
                ..FgdConfig::default()
            },
        );
        assert_eq!((r.arrived_pods, r.curve.len()), (0, 1));
        assert_eq!(r.unallocated_gpu_pct, 100.0);
        let r = run(
            &nodes,
            &pods,
            &FgdConfig {
                arrived_until_pct: f64::INFINITY,
                ..FgdConfig::default()
            },
        );
        assert!(
            r.arrived_gpu_pct >= MAX_ARRIVED_PCT,
            "{}",
            r.arrived_gpu_pct
        );
        assert_eq!(r.curve.len(), 1001);
    }

    #[test]
    fn no_gpus_reports_zeros() {
        let r = run(&[node(0)], &[pod(1, 1, 500)], &FgdConfig::default());
        assert_eq!((r.total_gpus, r.arrived_pods), (0, 0));
        assert_eq!(r.unallocated_gpu_pct, 0.0);
        assert!(r.curve.is_empty());
    }

    #[test]
    fn node_parse_errors() {
        let h = "sn,cpu_milli,memory_mib,gpu,model\n";
        let err = parse_alibaba_nodes("n.csv", "").unwrap_err();
        assert_eq!(err.to_string(), "n.csv:1: empty node list");
        let err = parse_alibaba_nodes("n.csv", "sn,cpu_milli\n").unwrap_err();
        assert_eq!(err.to_string(), "n.csv:1: missing column `memory_mib`");
        let err = parse_alibaba_nodes("n.csv", &format!("{h}a,1,2,x,T4\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "n.csv:2: column `gpu`: not a whole number: \"x\""
        );
        let err = parse_alibaba_nodes("n.csv", &format!("{h}a,1,2,1,\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "n.csv:2: column `model`: empty for a node with GPUs"
        );
        let err =
            parse_alibaba_nodes("n.csv", &format!("{h}a,1,2,1,T4\n\na,1,2,1,T4\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "n.csv:4: column `sn`: node \"a\" already on line 2"
        );
        let ok = parse_alibaba_nodes("n.csv", &format!("{h}c,8000,32768,0,\r\n")).unwrap();
        assert_eq!(ok[0].gpus, 0);
        assert_eq!(ok[0].model, "");
    }
}
