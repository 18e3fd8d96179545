//! The pure planner: pending GPU pods + catalog + policy → nodes to launch, with replicas
//! per GPU, an assignment of every pod (or a reason it cannot be placed), the hourly cost,
//! a proven lower bound on that cost, and the cost of the same demand without sharing.
//!
//! Method (see README "How the planner works"):
//! 1. Node kinds are (pool, instance type, capacity type, zone) with a known price.
//!    For each pod we compute, per kind, the largest replicas-per-GPU R it tolerates
//!    (`gpu-memory ≤ (GPU memory − headroom) / R`, `gpu-share ≤ 1 / R`, the pool's
//!    allowed R values; exclusive pods need R = 1), or that it cannot go there.
//! 2. Identical pods form classes. A configuration is (kind, R); its capacity is the
//!    kind's allocatable cpu, memory, pod slots and `GPUs × R` slices.
//!    Configurations dominated by another (no cheaper, no smaller in any dimension,
//!    admitting a superset of the classes) are dropped.
//! 3. [`pack`], the one dispatch, runs the anytime planner (`anytime.rs`): a greedy cover,
//!    column generation warm-started from it (the Farley bound at every round, the LP
//!    relaxation at convergence), and an integer step (exact for small demands, diving and
//!    a restricted-master integer programme otherwise), until the proven gap reaches
//!    [`PlanOptions::gap`] or [`PlanOptions::deadline`] passes.
//! 4. Every node is moved to the cheapest configuration that still holds its pods.
//!
//! Modules: `pattern` (node patterns and their conversion to nodes), `greedy`, `lp`
//! (column generation and diving), `exact` (the integer programmes), `anytime` (the
//! order they run in). Only `anytime` calls the others; none of them call each other
//! except through `pattern`.

mod anytime;
pub mod check;
mod exact;
mod fluid;
mod greedy;
pub mod knapsack;
mod lp;
mod master;
mod pattern;
mod pricing;
mod simplex;
mod space;
pub mod undeclared;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::catalog::DaemonSetOverhead;
use crate::model::slice::{Efficiency, FitRules, ShareModel, ShareReadings};
use crate::model::{CapacityType, Catalog, DemandItem, Pool, ReplicaPolicy, Sharing};

/// What the planner may use and how hard it may try.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// Capacity types to plan with (a type without a known price for one is skipped).
    pub capacity_types: Vec<CapacityType>,
    /// Only these instance types (empty = all).
    pub instance_types: Vec<String>,
    /// Only these families (empty = all).
    pub families: Vec<String>,
    /// Per-node DaemonSet requests and pod slots.
    pub daemonset_overhead: DaemonSetOverhead,
    /// Pools to plan in; empty = one implicit pool with `default_replicas`.
    pub pools: Vec<Pool>,
    /// Policy of the implicit pool.
    pub default_replicas: ReplicaPolicy,
    /// Column-generation rounds before settling for the bound reached.
    pub max_rounds: usize,
    /// Search nodes per pricing knapsack in the final, bound-proving pass.
    pub knapsack_nodes: usize,
    /// Also plan the same demand without sharing (for `dedicatedHourlyCost`).
    pub dedicated: bool,
    /// Prove the lower bound with the full pricing search. Off, column generation stops
    /// when the cheap search finds no more columns: faster, and the reported bound (still
    /// valid) is weaker. The dedicated comparison plan always runs with it off.
    pub prove_bound: bool,
    /// Threads that price configurations in parallel (1 = on the caller's thread). The
    /// plan does not depend on it.
    pub threads: usize,
    /// A tuning knob: `Full` (the default) runs the anytime planner; `Fast` stops after
    /// its first step, the greedy cover.
    pub effort: Effort,
    /// The planner stops once the plan is proven within this fraction of the optimum
    /// (`cost ≤ bound × (1 + gap)`). Small demands are solved to proven optimality anyway.
    pub gap: f64,
    /// ... or once this much time has passed (the best plan so far is returned, with its
    /// proven gap). `None`: no time limit, the plan depends only on the input. With the
    /// dedicated comparison on, it gets a quarter of the deadline: beside the main plan
    /// when `threads > 1`, after it (which then gets three quarters) otherwise.
    pub deadline: Option<Duration>,
    /// Run the integer step (the exact programme for small demands, diving otherwise).
    /// Off, the plan is the greedy cover and only the bound is worked on: for callers
    /// that want the bound alone (the replay's floor).
    pub integer_step: bool,
    /// Solve small demands (`≤ 50 pods or ≤ 12 classes`) to a proof of optimality, past
    /// `gap`. Off, they stop at the gap like any other demand: for callers that only
    /// need a good plan fast (repack's candidate moves, which only have to show a saving).
    pub prove_small: bool,
    /// Plan hardware-fractional GPU types (g6f, gr6f). Off for the replay, whose cluster
    /// has only time-sliced whole GPUs.
    pub fractional_gpus: bool,
    /// The CUDA context each pod on a GPU holds, MiB, in pools without their own
    /// `context-memory` (`--context-memory`; default
    /// [`crate::model::DEFAULT_CONTEXT_MEMORY_MIB`]).
    pub context_memory_mib: u64,
    /// How `gpu-share` is read (`--share-model`): in every pool, besides a pool's own
    /// `share-model`; admission enforces this one.
    pub share_model: ShareModel,
    /// What shared GPUs deliver, in pools without their own efficiencies
    /// (`--time-slicing-efficiency`, `--mps-efficiency`): the `slice-throughput-milli`
    /// labels.
    pub efficiency: Efficiency,
}

impl PlanOptions {
    /// The slice-fit rule's settings on a node of `pool` (`None`: the planner's own):
    /// the larger of the pool's CUDA context and the planner's, the planner's share
    /// reading and the pool's. Admission enforces the planner's settings (its flags), so
    /// a pool may add to them but not relax them: a plan never uses a slice admission
    /// refuses.
    pub fn fit_rules(&self, pool: Option<&Pool>) -> FitRules {
        FitRules {
            context_mib: pool
                .and_then(|p| p.context_memory_mib)
                .map_or(self.context_memory_mib, |c| c.max(self.context_memory_mib)),
            shares: ShareReadings::of(self.share_model).and(pool.and_then(|p| p.share_model)),
        }
    }

    /// The efficiencies of `pool`'s GPUs: its own where it states them, else the
    /// planner's.
    pub fn efficiency(&self, pool: Option<&Pool>) -> Efficiency {
        pool.map_or(self.efficiency, |p| p.efficiency(self.efficiency))
    }
}

/// How far the planner may search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    /// The anytime planner, to [`PlanOptions::gap`] or [`PlanOptions::deadline`].
    #[default]
    Full,
    /// Only the greedy cover: a millisecond plan a few percent dearer, with a weak bound.
    Fast,
}

/// What the reported lower bound is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BoundKind {
    /// The plan is proven optimal: the bound is its cost.
    Optimal,
    /// The LP relaxation over node patterns, solved to optimality.
    #[serde(rename = "lp-optimum")]
    Lp,
    /// A Farley bound from column generation's duals (stopped before the LP optimum).
    Farley,
    /// The assignment ("fluid") LP's optimum: pods may split across nodes (a little
    /// below the pattern LP).
    #[serde(rename = "assignment-lp")]
    Fluid,
    /// The greedy cover's Lagrangian bound (column generation did not run or improve it).
    #[default]
    Lagrangian,
}

impl BoundKind {
    /// The name in the plan JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            BoundKind::Optimal => "optimal",
            BoundKind::Lp => "lp-optimum",
            BoundKind::Farley => "farley",
            BoundKind::Fluid => "assignment-lp",
            BoundKind::Lagrangian => "lagrangian",
        }
    }
}

/// Why the planner stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoppedBy {
    /// The plan is proven optimal.
    Optimal,
    /// The proven gap reached [`PlanOptions::gap`].
    Gap,
    /// [`PlanOptions::deadline`] passed.
    Deadline,
    /// [`Effort::Fast`]: only the greedy cover ran.
    Effort,
    /// Every step ran without reaching the gap.
    #[default]
    Exhausted,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            capacity_types: vec![CapacityType::OnDemand],
            instance_types: Vec::new(),
            families: Vec::new(),
            daemonset_overhead: DaemonSetOverhead::default(),
            pools: Vec::new(),
            default_replicas: ReplicaPolicy::Auto { max: 10 },
            max_rounds: 200,
            knapsack_nodes: 2_000,
            dedicated: true,
            prove_bound: true,
            threads: 1,
            effort: Effort::Full,
            gap: 0.01,
            deadline: None,
            integer_step: true,
            prove_small: true,
            fractional_gpus: true,
            context_memory_mib: crate::model::DEFAULT_CONTEXT_MEMORY_MIB,
            share_model: ShareModel::Time,
            efficiency: Efficiency::MEASURED,
        }
    }
}

impl StoppedBy {
    /// The name in the plan JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            StoppedBy::Optimal => "optimal",
            StoppedBy::Gap => "gap",
            StoppedBy::Deadline => "deadline",
            StoppedBy::Effort => "effort",
            StoppedBy::Exhausted => "exhausted",
        }
    }
}

/// One node to launch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedNode {
    pub instance_type: String,
    pub capacity_type: CapacityType,
    pub gpus: u32,
    pub gpu_model: String,
    #[serde(rename = "gpuMemoryMiB")]
    pub gpu_memory_mib: u64,
    pub replicas_per_gpu: u32,
    /// The node's slice (`model::slice`, the `gpu-slicer.io/slice-gpu-memory-mib` label):
    /// GPU memory of one slice after the pool's headroom, MiB.
    #[serde(rename = "sliceGpuMemoryMiB", default)]
    pub slice_gpu_memory_mib: u64,
    /// `gpu-slicer.io/slice-share-milli`: the share of a GPU one slice gets, thousandths.
    #[serde(default)]
    pub slice_share_milli: u32,
    /// `gpu-slicer.io/slice-throughput-milli`: what one busy slice gets beside busy
    /// neighbours, thousandths of the GPU alone (`model::slice::Slice::rated`).
    #[serde(default)]
    pub slice_throughput_milli: u32,
    /// How the node's GPUs are shared (`gpu-slicer.io/sharing-strategy`): `none`,
    /// `time-slicing`, `mps` or `fractional` (a hardware part of a GPU, g6f/gr6f).
    #[serde(default)]
    pub sharing: String,
    pub profile: String,
    pub hourly_price: f64,
    pub pods: Vec<String>,
    /// The pool (annotated NodePool, or the implicit `gpu-slicer` pool) it belongs to.
    pub node_pool: String,
    /// Zone the node is pinned to, when pods required one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Spot price of the same type where known (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_hourly_price: Option<f64>,
}

/// A pod that could not be placed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unplaced {
    pub pod: String,
    /// Written in the plan JSON as its message ([`UnplacedReason`]'s `Display`).
    pub reason: UnplacedReason,
}

/// Why a pod fits nowhere, found by applying the planner's filters one at a time
/// (`space.rs`). `Display` is the message users read (the plan's `unplaced[].reason`,
/// the `Unplaced` Event); [`UnplacedReason::as_str`] is a short, stable label (the
/// controller's `gpu_slicer_unplaced_pods{reason}` metric).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnplacedReason {
    /// The pod requests no `nvidia.com/gpu`.
    NoGpu,
    /// The catalog, the flags and the NodePools' requirements leave no instance type.
    NoInstanceType,
    /// No allowed type satisfies the pod's node selector or affinity on these keys.
    NodeSelector { keys: Vec<String> },
    /// The pod does not tolerate this taint (`key=value:Effect`) of this NodePool.
    Taint { taint: String, pool: String },
    /// The pod does not tolerate the NodePools' taints.
    Taints,
    /// An exclusive pod needs more whole GPUs than the largest allowed type has.
    WholeGpus { needs: u32, most: u32 },
    /// The pod's GPU memory, with its CUDA context (`model::slice::memory_with_context`),
    /// is more than the largest allowed GPU has (after headroom).
    GpuMemory {
        needs_mib: u64,
        most_mib: u64,
        headroom_mib: u64,
    },
    /// The pod needs more GPU slices than fit on one allowed node.
    GpuSlices { needs: u32, most: u64 },
    /// The pod requests more CPU than any allowed GPU type's allocatable.
    Cpu {
        requests_milli: u64,
        most_milli: u64,
    },
    /// The pod requests more memory than any allowed GPU type's allocatable.
    Memory {
        requests_bytes: u64,
        most_bytes: u64,
    },
    /// DaemonSets leave no pod slot on any allowed type.
    PodSlots,
    /// CPU and memory together exceed every allowed type.
    CpuAndMemory,
    /// The rounded plan left the pod out (a planner bug; the independent check fails it).
    NotCovered,
}

impl UnplacedReason {
    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            UnplacedReason::NoGpu => "no-gpu",
            UnplacedReason::NoInstanceType => "no-instance-type",
            UnplacedReason::NodeSelector { .. } => "node-selector",
            UnplacedReason::Taint { .. } | UnplacedReason::Taints => "taint",
            UnplacedReason::WholeGpus { .. } => "whole-gpus",
            UnplacedReason::GpuMemory { .. } => "gpu-memory",
            UnplacedReason::GpuSlices { .. } => "gpu-slices",
            UnplacedReason::Cpu { .. } => "cpu",
            UnplacedReason::Memory { .. } => "memory",
            UnplacedReason::PodSlots => "pod-slots",
            UnplacedReason::CpuAndMemory => "cpu-and-memory",
            UnplacedReason::NotCovered => "internal",
        }
    }
}

impl std::fmt::Display for UnplacedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use space::gib;
        let gib_of_bytes = |b: u64| gib(b as f64 / (1024.0 * crate::model::MIB as f64));
        match self {
            UnplacedReason::NoGpu => f.write_str("requests no nvidia.com/gpu"),
            UnplacedReason::NoInstanceType => f.write_str(
                "no instance type is allowed by the catalog, --instance-types, --families, \
                 --capacity-type and the NodePools' requirements",
            ),
            UnplacedReason::NodeSelector { keys } => write!(
                f,
                "no allowed instance type satisfies its node selector/affinity on {}",
                keys.join(", ")
            ),
            UnplacedReason::Taint { taint, pool } => {
                write!(f, "does not tolerate taint {taint} of NodePool {pool}")
            }
            UnplacedReason::Taints => f.write_str("does not tolerate the NodePools' taints"),
            UnplacedReason::WholeGpus { needs, most } => write!(
                f,
                "needs {needs} whole GPUs on one node; the largest allowed type has {most}"
            ),
            UnplacedReason::GpuMemory {
                needs_mib,
                most_mib,
                headroom_mib,
            } => {
                write!(
                    f,
                    "needs {} GiB GPU memory; largest GPU allowed has {} GiB",
                    gib(*needs_mib as f64 / 1024.0),
                    gib(*most_mib as f64 / 1024.0)
                )?;
                if *headroom_mib > 0 {
                    write!(
                        f,
                        " after {} GiB headroom",
                        gib(*headroom_mib as f64 / 1024.0)
                    )?;
                }
                Ok(())
            }
            UnplacedReason::GpuSlices { needs, most } => write!(
                f,
                "needs {needs} GPU slices on one node; at most {most} fit on an allowed node"
            ),
            UnplacedReason::Cpu {
                requests_milli,
                most_milli,
            } => write!(
                f,
                "requests {} vCPU; the largest allocatable of an allowed GPU type is {} vCPU",
                *requests_milli as f64 / 1000.0,
                *most_milli as f64 / 1000.0
            ),
            UnplacedReason::Memory {
                requests_bytes,
                most_bytes,
            } => write!(
                f,
                "requests {} GiB memory; the largest allocatable of an allowed GPU type is {} GiB",
                gib_of_bytes(*requests_bytes),
                gib_of_bytes(*most_bytes)
            ),
            UnplacedReason::PodSlots => {
                f.write_str("no pod slots left after DaemonSets on any allowed type")
            }
            UnplacedReason::CpuAndMemory => f.write_str(
                "requests more cpu and memory together than any allowed GPU type offers",
            ),
            UnplacedReason::NotCovered => f.write_str("internal: not covered by the rounded plan"),
        }
    }
}

impl Serialize for UnplacedReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub pods: usize,
    pub placed_pods: usize,
    pub nodes: usize,
    pub hourly_cost: f64,
    pub lower_bound_hourly_cost: f64,
    pub dedicated_hourly_cost: f64,
    /// Cost of the dedicated plan's nodes: number of GPUs it launches.
    pub dedicated_nodes: usize,
    /// The planned nodes at spot prices, when every planned type has a known spot price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_hourly_cost: Option<f64>,
    /// The dedicated plan's nodes at spot prices, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedicated_spot_hourly_cost: Option<f64>,
    /// GPUs launched by this plan and by the dedicated plan.
    pub gpus: u32,
    pub dedicated_gpus: u32,
}

/// How the solver got there (not part of the contract; for reports and benchmarks).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SolverStats {
    pub classes: usize,
    pub configurations: usize,
    pub rounds: usize,
    pub columns: usize,
    /// LP relaxation value reached by column generation (the master's optimum).
    pub lp_value: f64,
    /// True when column generation proved the LP optimum.
    pub converged: bool,
    /// The proven gap: `cost / bound − 1` (0 when proven optimal).
    #[serde(default)]
    pub gap: f64,
    #[serde(default)]
    pub bound_kind: BoundKind,
    #[serde(default)]
    pub stopped_by: StoppedBy,
    #[serde(default)]
    pub proven_optimal: bool,
    /// Wall time of the whole plan (its dedicated comparison included), seconds.
    #[serde(default)]
    pub elapsed_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub nodes: Vec<PlannedNode>,
    pub unplaced: Vec<Unplaced>,
    pub summary: Summary,
    #[serde(default)]
    pub solver: SolverStats,
}

/// The result of one packing run (no dedicated comparison).
pub(crate) struct Packing {
    pub nodes: Vec<PlannedNode>,
    pub unplaced: Vec<Unplaced>,
    pub lower_bound: f64,
    pub stats: SolverStats,
    /// The columns column generation used, for [`Columns`].
    pub columns: Vec<pattern::Pattern>,
}

/// Columns kept from one plan to the next (the controller keeps one across rounds), so
/// re-planning similar demand starts column generation where the last plan left it.
/// Patterns are stored by what their classes and configuration are (hashed requests,
/// sharing, selectors and tolerations; pool, type, capacity type, zone and R), not by
/// index, and checked again against the new demand's capacities before use, so a stale
/// or mismatched entry can only be useless, never wrong. Prices are not stored: a column
/// costs what its configuration costs now.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    /// (configuration key, (class key, count)), oldest first.
    entries: std::collections::VecDeque<(u64, Vec<(u64, u32)>)>,
    seen: std::collections::HashSet<(u64, Vec<(u64, u32)>)>,
}

impl Columns {
    /// Columns kept at most; the oldest go first.
    pub const CAPACITY: usize = 5_000;

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The stored columns that exist in `sp` and fit there.
    fn lookup(&self, sp: &space::Space) -> Vec<pattern::Pattern> {
        if self.entries.is_empty() {
            return Vec::new();
        }
        let config: std::collections::HashMap<u64, usize> = sp
            .config_keys
            .iter()
            .enumerate()
            .map(|(i, k)| (*k, i))
            .collect();
        let class: std::collections::HashMap<u64, usize> = sp
            .classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.key, i))
            .collect();
        self.entries
            .iter()
            .filter_map(|(q, counts)| {
                let qi = *config.get(q)?;
                let mut mapped: Vec<(usize, u32)> = counts
                    .iter()
                    .map(|(c, n)| class.get(c).map(|&ci| (ci, *n)))
                    .collect::<Option<_>>()?;
                mapped.sort_unstable();
                pattern::fits(sp, &sp.configs[qi], &mapped).then_some(pattern::Pattern {
                    config: qi,
                    counts: mapped,
                })
            })
            .collect()
    }

    fn remember(&mut self, sp: &space::Space, patterns: &[pattern::Pattern]) {
        for p in patterns {
            let e = (
                sp.config_keys[p.config],
                p.counts
                    .iter()
                    .map(|&(c, n)| (sp.classes[c].key, n))
                    .collect::<Vec<_>>(),
            );
            if self.seen.insert(e.clone()) {
                self.entries.push_back(e);
            }
        }
        while self.entries.len() > Self::CAPACITY {
            if let Some(old) = self.entries.pop_front() {
                self.seen.remove(&old);
            }
        }
    }
}

/// Plans the demand. Pure and deterministic: the same inputs give the same plan.
pub fn plan(catalog: &Catalog, items: &[DemandItem], opts: &PlanOptions) -> Plan {
    plan_with(catalog, items, opts, &mut Columns::default())
}

/// [`plan`], starting column generation from `columns` and leaving this plan's columns
/// there. With the same `columns` content, the same input gives the same plan.
pub fn plan_with(
    catalog: &Catalog,
    items: &[DemandItem],
    opts: &PlanOptions,
    columns: &mut Columns,
) -> Plan {
    let start = Instant::now();
    let dedicated_plan = |deadline: Option<Duration>| {
        let ded_items: Vec<DemandItem> = items.iter().map(dedicated_item).collect();
        let mut ded_opts = opts.clone();
        ded_opts.prove_bound = false;
        ded_opts.deadline = deadline;
        ded_opts.pools = effective_pools(opts)
            .into_iter()
            .map(|mut p| {
                p.replicas = ReplicaPolicy::OneOf(Vec::new());
                p
            })
            .collect();
        pack(
            catalog,
            &ded_items,
            &ded_opts,
            &mut Columns::default(),
            start,
        )
    };
    let (main, dedicated) = if !opts.dedicated {
        (pack(catalog, items, opts, columns, start), None)
    } else if opts.threads > 1 {
        // With threads to spare the comparison runs beside the plan, with a quarter of
        // the deadline, and the plan keeps all of it. Each result depends only on its own
        // input (and deadline), so the pair is the same as one after the other.
        std::thread::scope(|s| {
            let ded = s.spawn(|| dedicated_plan(opts.deadline.map(|d| d.mul_f64(0.25))));
            let main = pack(catalog, items, opts, columns, start);
            // The comparison only panics on a bug; re-raise it on the caller's thread.
            let ded = ded.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            (main, Some(ded))
        })
    } else {
        let mut o = opts.clone();
        o.deadline = opts.deadline.map(|d| d.mul_f64(0.75));
        let main = pack(catalog, items, &o, columns, start);
        let ded = dedicated_plan(opts.deadline);
        (main, Some(ded))
    };
    let hourly_cost = sum_price(&main.nodes);
    let spot_hourly_cost = spot_cost(&main.nodes);
    let (dedicated_hourly_cost, dedicated_nodes, dedicated_gpus, dedicated_spot_hourly_cost) =
        match &dedicated {
            Some(d) => (
                sum_price(&d.nodes),
                d.nodes.len(),
                d.nodes.iter().map(|n| n.gpus).sum(),
                spot_cost(&d.nodes),
            ),
            None => (0.0, 0, 0, None),
        };
    let placed: usize = main.nodes.iter().map(|n| n.pods.len()).sum();
    Plan {
        summary: Summary {
            pods: items.len(),
            placed_pods: placed,
            nodes: main.nodes.len(),
            hourly_cost: round6(hourly_cost),
            lower_bound_hourly_cost: round6_down(main.lower_bound.min(hourly_cost)),
            dedicated_hourly_cost: round6(dedicated_hourly_cost),
            dedicated_nodes,
            spot_hourly_cost: spot_hourly_cost.map(round6),
            dedicated_spot_hourly_cost: dedicated_spot_hourly_cost.map(round6),
            gpus: main.nodes.iter().map(|n| n.gpus).sum(),
            dedicated_gpus,
        },
        nodes: main.nodes,
        unplaced: main.unplaced,
        solver: SolverStats {
            elapsed_seconds: start.elapsed().as_secs_f64(),
            ..main.stats
        },
    }
}

fn sum_price(nodes: &[PlannedNode]) -> f64 {
    nodes.iter().map(|n| n.hourly_price).sum()
}

fn spot_cost(nodes: &[PlannedNode]) -> Option<f64> {
    if nodes.is_empty() {
        return None;
    }
    nodes
        .iter()
        .map(|n| {
            if n.capacity_type == CapacityType::Spot {
                Some(n.hourly_price)
            } else {
                n.spot_hourly_price
            }
        })
        .sum()
}

/// Rounds a dollar figure to 6 decimals for output.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Rounds down, so a rounded lower bound is still a lower bound.
fn round6_down(x: f64) -> f64 {
    ((x * 1e6) - 1e-6).floor().max(0.0) / 1e6
}

/// The same pod without sharing: whole GPUs, unsliced nodes.
fn dedicated_item(it: &DemandItem) -> DemandItem {
    let mut d = it.clone();
    d.sharing = Sharing::Exclusive;
    d.gpu_share_milli = None;
    d
}

pub fn effective_pools(opts: &PlanOptions) -> Vec<Pool> {
    if opts.pools.is_empty() {
        vec![Pool::default_pool(opts.default_replicas.clone())]
    } else {
        opts.pools.clone()
    }
}

/// The one dispatch: the search space, then the anytime planner over it.
/// Plans `items`; `opts.deadline` counts from `started` (the plan's start), so building
/// the classes of a large demand is inside it.
fn pack(
    catalog: &Catalog,
    items: &[DemandItem],
    opts: &PlanOptions,
    columns: &mut Columns,
    started: Instant,
) -> Packing {
    let pools = effective_pools(opts);
    let sp = space::Space::build(catalog, items, &pools, opts);
    let cached = columns.lookup(&sp);
    let mut packing = anytime::solve(&sp, catalog, items, &pools, opts, &cached, started);
    columns.remember(&sp, &std::mem::take(&mut packing.columns));
    packing
}

#[cfg(test)]
mod tests;
