//! Trace-replay simulator (pure: no I/O, no clock; the caller reads traces and writes
//! reports). Replays pod arrivals and departures through provisioning strategies on a
//! virtual clock and reports cost, waiting and utilisation, beside the floor no strategy
//! can beat (the planner's lower bound on the cost of the pods present, integrated over
//! time). `fgd` reproduces the FGD paper's fixed-cluster experiment.
//!
//! The engine and strategies are in `engine`; see its docs for the Karpenter-like
//! algorithm the baseline strategies follow.

pub mod engine;
pub mod fgd;
#[cfg(test)]
mod tests;
pub mod workload;

use serde::{Deserialize, Serialize};

use crate::model::{CapacityType, DemandItem};
use crate::planner::PlanOptions;

/// One pod of a workload: when it arrives (becomes pending) and when it leaves, in
/// seconds of virtual time. `departure: None` runs to the end of the replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub arrival: u64,
    pub departure: Option<u64>,
    /// The pod as the planner sees it (`id` is the pod's name).
    pub item: DemandItem,
}

/// A workload to replay: jobs sorted by arrival.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    pub name: String,
    pub jobs: Vec<Job>,
}

/// A provisioning strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "strategy")]
pub enum Strategy {
    /// (a) Karpenter-like, no sharing: every pod on whole GPUs.
    Dedicated,
    /// (b) Time-slicing at `replicas` on every node, Karpenter unaware of it (plans with
    /// physical GPUs, over-provisions, consolidates the empty nodes).
    SlicingUnaware { replicas: u32 },
    /// (c) Karpenter with hand-written NodeOverlays at a fixed `replicas` (the AWS
    /// blueprint uses 4): it plans with GPUs × replicas, no memory or share check.
    FixedOverlay { replicas: u32 },
    /// (e) What a careful user builds by hand: one NodePool per R ∈ [`OVERLAY_SAFE_REPLICAS`]
    /// with its NodeOverlay and slice labels, and gpu-slicer's admission affinity on the
    /// pods: Karpenter-like claims of (type, R), only slices that fit the pod.
    OverlaySafe,
    /// (d) gpu-slicer: in-flight and existing capacity first, then the planner chooses
    /// instance types and replicas per GPU together, memory- and share-safe.
    GpuSlicer,
}

/// The NodePools' R of [`Strategy::OverlaySafe`], in the order Karpenter tries them
/// (the densest pool carries the highest weight).
pub const OVERLAY_SAFE_REPLICAS: [u32; 3] = [4, 2, 1];

impl Strategy {
    /// A short name for tables and file names.
    pub fn name(&self) -> String {
        match self {
            Strategy::Dedicated => "dedicated".to_string(),
            Strategy::SlicingUnaware { replicas } => format!("slicing-unaware-r{replicas}"),
            Strategy::FixedOverlay { replicas } => format!("overlay-r{replicas}"),
            Strategy::OverlaySafe => "overlay-safe".to_string(),
            Strategy::GpuSlicer => "gpu-slicer".to_string(),
        }
    }

    /// Karpenter provisions its nodes (every strategy but gpu-slicer).
    pub fn is_karpenter(&self) -> bool {
        *self != Strategy::GpuSlicer
    }

    /// Its nodes carry the slice labels, so pods admitted by gpu-slicer's webhook (the
    /// [`engine::Binding::Admission`] affinity) can bind to them.
    pub fn labels_slices(&self) -> bool {
        matches!(self, Strategy::OverlaySafe | Strategy::GpuSlicer)
    }
}

/// How Karpenter-like strategies consolidate (`WhenEmptyOrUnderutilized`, by method;
/// each includes the ones before it). See the `engine` docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consolidation {
    /// Only empty nodes are removed.
    Empty,
    /// Also a node whose pods all fit on other nodes is deleted (the pods move).
    #[default]
    Delete,
    /// Also single-node replacement: a node is replaced by one cheaper node that holds
    /// the pods the other nodes cannot.
    Replace,
    /// Also multi-node consolidation: N ≥ 2 nodes replaced by at most one cheaper node.
    Multi,
}

impl Consolidation {
    pub fn as_str(&self) -> &'static str {
        match self {
            Consolidation::Empty => "empty",
            Consolidation::Delete => "delete",
            Consolidation::Replace => "replace",
            Consolidation::Multi => "multi",
        }
    }

    pub fn parse(s: &str) -> Option<Consolidation> {
        [
            Consolidation::Empty,
            Consolidation::Delete,
            Consolidation::Replace,
            Consolidation::Multi,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// One contender of a replay: a strategy and how its nodes are consolidated. Its name is
/// the strategy's, with `+empty`, `+replace` or `+multi` when the consolidation is not
/// the default `delete` (e.g. `dedicated+multi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub strategy: Strategy,
    pub consolidation: Consolidation,
}

impl From<Strategy> for Variant {
    fn from(strategy: Strategy) -> Variant {
        Variant {
            strategy,
            consolidation: Consolidation::default(),
        }
    }
}

impl Variant {
    pub fn new(strategy: Strategy, consolidation: Consolidation) -> Variant {
        Variant {
            strategy,
            consolidation,
        }
    }

    pub fn name(&self) -> String {
        match self.consolidation {
            Consolidation::Delete => self.strategy.name(),
            c => format!("{}+{}", self.strategy.name(), c.as_str()),
        }
    }
}

/// Simulation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seconds from a node's launch to the node being ready for pods.
    pub launch_delay_s: u64,
    /// An empty (or, for consolidation, underused) node is removed after this long.
    pub consolidate_after_s: u64,
    /// Pending pods are batched: a batch closes after this long without a new pod...
    pub batch_idle_s: u64,
    /// ... or this long after it opened (Karpenter's 1 s / 10 s).
    pub batch_max_s: u64,
    /// Per-second billing with this minimum per node (EC2 Linux: 60 s).
    pub billing_minimum_s: u64,
    pub capacity_type: CapacityType,
    /// Interval of the time series (allocation over time, cost over time) and of the
    /// weak floor's samples.
    pub sample_every_s: u64,
    /// Length of the floor's windows, seconds (see `engine`'s "Floor").
    pub floor_window_s: u64,
    /// Threads that compute the floor's window bounds (the floor does not depend on it).
    pub floor_threads: usize,
    /// How the scheduler binds the pods of the strategies whose nodes carry slice labels
    /// (gpu-slicer, overlay-safe); the other strategies run without admission.
    pub binding: engine::Binding,
    /// The planner's options for the gpu-slicer strategy and the weak floor (the floor
    /// runs them at the full effort).
    pub plan: PlanOptions,
    /// gpu-slicer re-packs its fleet every this many seconds (0 = never); see `engine`'s
    /// "Repack".
    pub repack_interval_s: u64,
    /// A repack move must save at least this fraction of the replaced nodes' hourly cost.
    pub repack_min_saving: f64,
    /// Pods bound for less than this (seconds) pin their node.
    pub repack_min_pod_age_s: u64,
    /// Nodes a repack may replace in any hour (the controller's default: 10).
    pub repack_max_nodes_per_hour: usize,
    /// The gpu-slicer NodePool's disruption budget, percent of its nodes (Karpenter's
    /// default when a NodePool has no `disruption.budgets`: 10).
    pub repack_budget_pct: u32,
    /// On (the default): a move's pods go where the move's plan put them (each checked by
    /// the scheduler's rules), first fit only if that no longer fits: a move is carried out
    /// as it was decided, as every Karpenter-like move is (those decide with first fit and
    /// execute with it). The controller cannot pin re-created pods; the kube-scheduler's
    /// default scoring (`NodeResourcesFit`, `LeastAllocated`) prefers the empty
    /// replacements, which is what the plan filled. Off (`--sweep repack-steer=0`): first
    /// fit from the old nodes on, the pessimistic reading; see `engine`'s "Repack".
    pub repack_steer: bool,
}

/// One point of a strategy's time series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    pub t: u64,
    pub nodes: usize,
    /// Physical GPUs of the nodes up (paid for).
    pub gpus: u32,
    /// GPUs' worth of requests placed: whole GPUs of exclusive pods plus each shared
    /// pod's share of a GPU.
    pub gpus_allocated: f64,
    /// USD per hour of the nodes up.
    pub cost_rate: f64,
    pub pending: usize,
}

/// What one strategy did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategyReport {
    pub strategy: String,
    /// How its nodes were consolidated.
    #[serde(default)]
    pub consolidation: Consolidation,
    /// No share and no memory violation.
    #[serde(default)]
    pub safe: bool,
    /// 1 = best: safe strategies first by cost, then the unsafe ones by cost (filled by
    /// [`engine::simulate`]; 0 from a single run).
    #[serde(default)]
    pub rank: usize,
    /// Total USD over the replay (per-second billing with the minimum).
    pub cost: f64,
    /// `cost` ÷ GPU-hours used (whole GPUs of exclusive pods plus shares of shared pods,
    /// over their running time).
    pub cost_per_used_gpu_hour: f64,
    pub gpu_hours_used: f64,
    pub gpu_hours_paid: f64,
    /// `cost` ÷ the floor ([`Report::lower_bound_cost`]).
    pub cost_over_lower_bound: f64,
    pub pending_p50_s: f64,
    pub pending_p95_s: f64,
    pub pending_p99_s: f64,
    /// Pods never placed (no type fits, or still pending at the end).
    pub never_placed: usize,
    /// Pods that left (their own departure came) while still pending: jobs shorter than
    /// the provisioning delay. Not counted in `never_placed`.
    #[serde(default)]
    pub left_pending: usize,
    pub nodes_launched: usize,
    pub peak_nodes: usize,
    /// Pods placed on a GPU slice smaller than the share they asked for
    /// (`gpu-slicer.io/gpu-share`; strategies that do not check shares), under the
    /// replay's reading of shares (`--share-model`).
    pub share_violations: usize,
    /// The same under each reading alone: of GPU time (`⌊1000/R⌋`) and of throughput
    /// (`⌊e/R⌋`, switching loss counted).
    #[serde(default)]
    pub share_violations_by_time: usize,
    #[serde(default)]
    pub share_violations_by_throughput: usize,
    /// Pods placed on a slice with less GPU memory than they declared.
    pub memory_violations: usize,
    /// Pods moved off a node by consolidation (each move counts).
    #[serde(default)]
    pub disruptions: usize,
    /// gpu-slicer's repack moves that finished (replaced nodes removed).
    #[serde(default)]
    pub repack_moves: usize,
    /// Repack moves rolled back (some pod fitted nowhere once the replacements were ready).
    #[serde(default)]
    pub repack_rollbacks: usize,
    /// Pods evicted and re-created by repack moves (each move of a pod counts).
    #[serde(default)]
    pub pods_restarted: usize,
    /// `pods_restarted` ÷ the replay's horizon in days.
    #[serde(default)]
    pub restarts_per_day: f64,
    /// Node-hours of replacement nodes (repack's, and Karpenter's replace consolidation)
    /// from their launch until the nodes they replace were removed (or the move rolled
    /// back): capacity paid twice. Already part of `cost`.
    #[serde(default)]
    pub overlap_node_hours: f64,
    /// Each placed pod's pending time, seconds, in arrival order (for the CDF).
    pub pending_times_s: Vec<u64>,
    pub series: Vec<Sample>,
}

/// The replay's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub workload: String,
    pub pods: usize,
    /// Seconds from the first arrival to the last departure.
    pub horizon_s: u64,
    /// The floor (USD): per window of `floor_window_s`, the full planner effort's proven
    /// LP bound on the hourly cost of the pods present throughout the window, times its
    /// length, summed. No share- and memory-safe strategy that runs the pods while they
    /// are present can cost less.
    pub lower_bound_cost: f64,
    /// (window start, USD per hour) of the floor.
    pub lower_bound_series: Vec<(u64, f64)>,
    /// The weak floor (USD): the fast effort's bound on the pods present, at every change
    /// of that set, integrated (the floor before issue 13, kept to show the new one is
    /// stronger).
    #[serde(default)]
    pub weak_lower_bound_cost: f64,
    #[serde(default)]
    pub floor_window_s: u64,
    pub strategies: Vec<StrategyReport>,
}
