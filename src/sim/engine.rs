//! The discrete-event engine and the four provisioning strategies.
//!
//! # Clock and events
//!
//! Time is a virtual clock in whole seconds. Events are pod arrivals and departures
//! (from the workload), node readiness (launch + `launch_delay_s`), the close of a
//! provisioning batch, consolidation checks and sample ticks. Events at the same second
//! run in a fixed order, so a replay is deterministic: departures, then arrivals, then
//! nodes becoming ready, then batch closes, then consolidation, then samples; within a
//! kind by pod index or node id.
//!
//! The replay runs from the first arrival to the *end* `T`: the last departure, or, when
//! some job has no departure, the later of that and the last arrival + `batch_max_s` +
//! `launch_delay_s` (time enough for the last pod to be provisioned); jobs without a
//! departure leave at `T`. Nodes still up at `T` stay until consolidation removes them
//! (they are all empty by then), and that tail is billed: a real cluster pays for it too.
//! A job whose departure is not after its arrival never becomes pending.
//!
//! # Nodes and capacity
//!
//! A node is an instance type, the configured capacity type (`SimConfig::capacity_type`;
//! types without a price for it, without GPUs, or excluded by `plan.instance_types` /
//! `plan.families` are never launched, by any strategy) and a number R of replicas per
//! GPU (R = 1: unsliced). Its capacity is the type's allocatable cpu and memory and its
//! pod slots (`max_pods`), less `plan.daemonset_overhead` (none by default), and
//! `GPUs × R` *slices*, what the device plugin advertises as `nvidia.com/gpu`. Every pod
//! takes its `nvidia.com/gpu` request in slices: a shared pod 1 (or its `gpus`); an
//! exclusive pod asking n GPUs takes n slices, on a sliced node too, which is what
//! kube-scheduler does with time-slicing: such a pod may then share a physical GPU with
//! others (it counts as a share violation, below). A node is billed per second from its
//! launch to its removal, at least `billing_minimum_s`, at the capacity type's price.
//!
//! **Capacity invariant.** After every event, no node holds more than its capacity in
//! cpu, memory, pod slots or slices, and no in-flight node has more pods reserved for it
//! than the provisioner believes it holds. [`Cluster::check_capacity`] checks it (and the
//! engine's own bookkeeping); debug builds assert it after every event, and
//! [`simulate_one_with`] hands the state to a callback after every event so tests can
//! check it in any build.
//!
//! # The scheduler
//!
//! A kube-scheduler-like binder, first fit over the ready nodes in launch order, with
//! each node's *real* capacity: free cpu, memory, pod slots and slices, the pod's node
//! selector and required affinity against the node's labels (the type's, the capacity
//! type, and for gpu-slicer nodes their pool's), and the pool's taints. Like the real
//! kube-scheduler it does not know GPU memory or GPU shares ([`Binding::KubeScheduler`],
//! the default). It binds a pod the moment it arrives if it fits a ready node; it retries
//! the pending pods, oldest first, on a node when that node becomes ready and when a pod
//! leaves it. So after every event no pending pod fits any ready node.
//! [`Binding::SafeForGpuSlicer`] makes it refuse, for the gpu-slicer strategy only, a
//! node whose R is unsafe for the pod (share or GPU memory, exclusive pods only on R = 1),
//! as a scheduler plugin or per-pod affinity on the R label would; it is not what runs
//! in a cluster today, so it is not the default.
//!
//! **Violations.** When a pod is bound to a node with R replicas per GPU (by the scheduler
//! or a consolidation move), it counts once as a *share violation* if it is shared with a
//! `gpu_share_milli` s and `s × R > 1000` (R above ⌊1000/s⌋), or exclusive and R > 1 (it
//! asked for whole GPUs); and once as a *memory violation* if it declares
//! `gpu_memory_mib` m and `m × R` exceeds the GPU's memory. That is the planner's rule
//! (`gpu-memory ≤ GPU memory / R`, `gpu-share ≤ 1/R`, exclusive ⇒ R = 1) with no
//! headroom, so the same physical test applies to every strategy.
//!
//! # Karpenter-like provisioning (strategies a, b, c)
//!
//! Following Karpenter's provisioner: pods the scheduler could not bind are *pending*. A
//! pending pod with no reservation opens a batch, which closes `batch_idle_s` after the
//! last such pod or `batch_max_s` after it opened (Karpenter's 1 s / 10 s; the
//! controller's `reconcile::batch::Batcher`). At the close, the pending pods without a
//! reservation are sorted by cpu, then memory, descending (then arrival) and each is
//! placed, first fit, with the capacity *Karpenter believes* nodes have:
//!
//! 1. onto an in-flight node (launched, not ready), in launch order, if its believed
//!    capacity minus the pods already reserved for it holds the pod: the pod is
//!    *reserved* for that node and waits for it. Ready nodes are not tried: by the
//!    scheduler's invariant none has room for a pending pod, and Karpenter sees ready
//!    nodes' real allocatable;
//! 2. else onto a node claim opened in this batch, first fit; a claim keeps the set of
//!    instance types that can still hold all its pods and takes the pod if that set stays
//!    non-empty;
//! 3. else a new claim with every type that can hold the pod alone; if there is none the
//!    pod can never be provisioned (it still binds if it ever fits a ready node).
//!
//! At the end of the batch every claim launches the cheapest type left in its set (ties:
//! catalog order), and its pods are reserved for the new node. When a node becomes ready
//! the scheduler binds pending pods onto it oldest first, whichever node they were
//! reserved for; a pod bound elsewhere frees its reservation, and pods still reserved for
//! the node after that pass lose their reservation and are pending again (a new batch).
//!
//! - (a) `Dedicated`: R = 1 everywhere; Karpenter's belief is the real capacity.
//! - (b) `SlicingUnaware{R}`: every node's device plugin slices R ways (real slices
//!   `GPUs × R`), but Karpenter believes new and in-flight nodes have `GPUs` slots (it
//!   sees ready nodes' real allocatable). It over-provisions in bursts; the extra nodes
//!   become ready empty, or are emptied by the scheduler, and are consolidated. A pod
//!   asking more slices than any type's physical GPUs gets no claim.
//! - (c) `FixedOverlay{R}`: Karpenter believes, and nodes have, `GPUs × R` slices. Neither
//!   (b) nor (c) checks shares or GPU memory.
//!
//! # gpu-slicer (d)
//!
//! At a batch close the pending pods without a reservation first go onto in-flight
//! gpu-slicer nodes with `reconcile::round::assign_in_flight`, exactly the controller's
//! function (first fit, largest first, every dimension, share and memory for the node's R
//! and its pool's headroom, labels, taints). The rest are planned with
//! `planner::plan(catalog, rest, plan)` (with `plan.capacity_types` set to the
//! simulation's capacity type, no dedicated comparison plan, one thread); each planned node is
//! launched with its instance type, its R, its pool's labels and taints, and its planned
//! pods reserved for it; pods the planner leaves unplaced can never be provisioned. The
//! scheduler may bind reserved pods elsewhere first, as a real one would; nodes are
//! consolidated like Karpenter's. Nothing else provisions for these pods (Karpenter's own
//! provisioner is not modelled beside gpu-slicer), and the controller's budget guard
//! (`max_hourly_cost`, `max_nodes`) is not applied.
//!
//! # Consolidation (all strategies)
//!
//! A simplified `WhenEmptyOrUnderutilized`: a ready node with no reservation whose pods
//! last changed (a pod bound or left, or the node became ready) at least
//! `consolidate_after_s` ago is a candidate. A check runs `consolidate_after_s` after
//! every change on any node, so candidates are checked within that time of becoming one.
//! Empty candidates are removed. Then, fewest pods first (then the most expensive,
//! then id), a candidate whose pods all fit, by the scheduler's rules, onto other ready
//! nodes that already run pods is removed and its pods moved there at once (each move
//! counts as a disruption; the pod keeps running, its pending time is not changed). A
//! candidate that did not fit is tried again only after capacity was freed somewhere.
//! Not modelled: replacing a node by a cheaper one, multi-node consolidation, disruption
//! budgets, and the eviction's own delay.
//!
//! # Metrics
//!
//! - cost: the nodes' billed seconds × price; `gpu_hours_paid`: physical GPUs × node
//!   lifetime; `gpu_hours_used`: over each pod's bound time, its whole GPUs if exclusive,
//!   else `gpus × gpu_share_milli/1000` (or `gpus / R` without a share);
//!   `cost_per_used_gpu_hour` = cost ÷ `gpu_hours_used` (0 when nothing ran).
//! - pending time of a placed pod: first bind − arrival; p50/p95/p99 by nearest rank
//!   (0 when none placed).
//! - `never_placed`: pods never bound that could not be provisioned or had no departure
//!   and were still pending at the end; `left_pending`: the other pods never bound, whose
//!   own departure came while they were still pending (jobs shorter than the provisioning
//!   delay, or that lost the race for capacity). Placed + `never_placed` + `left_pending`
//!   = all pods.
//! - `nodes_launched`, `peak_nodes` (in flight or ready), share and memory violations
//!   (pods, each counted once), `disruptions` (consolidation moves), samples every
//!   `sample_every_s` from the first arrival while the replay or its nodes last.
//! - `cost_over_lower_bound` is filled by [`simulate`] (0 from [`simulate_one`], and when
//!   the bound is 0).
//!
//! # Lower bound
//!
//! [`lower_bound_series`]: whenever the set of pods present (arrived, not departed)
//! changes, the planner's `summary.lower_bound_hourly_cost` for those pods, with
//! `SimConfig::plan` and the simulation's capacity type (the fast effort's bound by
//! default); integrated piecewise-constant from the first arrival to the end. It is a
//! floor on the cost of running exactly the pods present, for as long as they are
//! present. Strategies start paying later (a pod waits for a batch and a node launch) and
//! pods that leave while pending cost them nothing, so a strategy can dip below the bound
//! at moments, and on traces of short jobs even in total; the ratio is reported anyway.

mod bound;
mod cluster;
mod consolidate;
mod provision;

pub use cluster::{Cluster, NodeView};

use super::{Report, SimConfig, Strategy, StrategyReport, Workload};
use crate::model::{CapacityType, Catalog};
use crate::planner::{Effort, PlanOptions};

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            launch_delay_s: 90,
            consolidate_after_s: 30,
            batch_idle_s: 1,
            batch_max_s: 10,
            billing_minimum_s: 60,
            capacity_type: CapacityType::OnDemand,
            sample_every_s: 600,
            plan: PlanOptions {
                effort: Effort::Fast,
                dedicated: false,
                ..PlanOptions::default()
            },
        }
    }
}

/// What the simulated scheduler checks when it binds a pod (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Binding {
    /// kube-scheduler as it is: slices, cpu, memory, pod slots, labels, taints; not GPU
    /// memory or shares.
    #[default]
    KubeScheduler,
    /// For the gpu-slicer strategy only: also the pod's share and GPU memory against the
    /// node's R (exclusive pods only on R = 1), as a scheduler plugin or per-pod affinity
    /// would enforce.
    SafeForGpuSlicer,
}

/// Replays the workload through every strategy and computes the lower bound.
/// `progress(done, total)` counts workload events (arrivals and departures) processed,
/// over the lower bound's pass and each strategy's.
pub fn simulate(
    catalog: &Catalog,
    workload: &Workload,
    strategies: &[Strategy],
    cfg: &SimConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Report {
    let per = cluster::workload_events(workload);
    let total = per * (strategies.len() + 1);
    let (lower_bound_cost, lower_bound_series) =
        bound::lower_bound(catalog, workload, cfg, &mut |d| progress(d, total));
    let mut reports = Vec::with_capacity(strategies.len());
    for (i, s) in strategies.iter().enumerate() {
        let base = per * (i + 1);
        let mut r = cluster::run(
            catalog,
            workload,
            *s,
            cfg,
            Binding::default(),
            &mut |_| {},
            &mut |d| progress(base + d, total),
        );
        r.cost_over_lower_bound = ratio(r.cost, lower_bound_cost);
        reports.push(r);
    }
    let (t0, t_end) = cluster::window(workload, cfg);
    Report {
        workload: workload.name.clone(),
        pods: workload.jobs.len(),
        horizon_s: t_end - t0,
        lower_bound_cost,
        lower_bound_series,
        strategies: reports,
    }
}

/// Replays the workload through one strategy with the default [`Binding`].
/// `cost_over_lower_bound` is left at 0 ([`simulate`] fills it in).
pub fn simulate_one(
    catalog: &Catalog,
    workload: &Workload,
    strategy: Strategy,
    cfg: &SimConfig,
) -> StrategyReport {
    cluster::run(
        catalog,
        workload,
        strategy,
        cfg,
        Binding::default(),
        &mut |_| {},
        &mut |_| {},
    )
}

/// [`simulate_one`] with a choice of [`Binding`] and a callback that sees the state after
/// every event (tests check [`Cluster::check_capacity`] there).
pub fn simulate_one_with(
    catalog: &Catalog,
    workload: &Workload,
    strategy: Strategy,
    cfg: &SimConfig,
    binding: Binding,
    on_event: &mut dyn FnMut(&Cluster<'_>),
) -> StrategyReport {
    cluster::run(
        catalog,
        workload,
        strategy,
        cfg,
        binding,
        on_event,
        &mut |_| {},
    )
}

/// The lower bound (see the module docs): the USD integrated over the replay and
/// `(t, USD per hour)` at every sample time.
pub fn lower_bound_series(
    catalog: &Catalog,
    workload: &Workload,
    cfg: &SimConfig,
) -> (f64, Vec<(u64, f64)>) {
    bound::lower_bound(catalog, workload, cfg, &mut |_| {})
}

fn ratio(cost: f64, bound: f64) -> f64 {
    if bound > 0.0 { cost / bound } else { 0.0 }
}
