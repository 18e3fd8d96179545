//! The discrete-event engine, the five provisioning strategies and their consolidation,
//! and the floors (pure).
//!
//! # Clock and events
//!
//! Time is a virtual clock in whole seconds. Events are pod arrivals and departures
//! (from the workload), node readiness (launch + `launch_delay_s`), the close of a
//! provisioning batch, consolidation checks, gpu-slicer's repack rounds and sample
//! ticks. Events at the same second run in a fixed order, so a replay is deterministic:
//! departures, then arrivals, then nodes becoming ready, then batch closes, then
//! consolidation, then repack, then samples; within a kind by pod index or node id.
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
//! type, the capacity type, and for gpu-slicer and overlay-safe nodes their pool's and
//! the slice labels), and the pool's taints. Like the real kube-scheduler it does not
//! know GPU memory or GPU shares. It binds a pod the moment it arrives if it fits a ready
//! node; it retries the pending pods, oldest first, on a node when that node becomes
//! ready and when a pod leaves it. So after every event no pending pod fits any ready
//! node. A node being consolidated (tainted disrupted) takes no new pods.
//!
//! **Admission** ([`Binding::Admission`], `SimConfig::binding`, the default). gpu-slicer
//! and overlay-safe label every node with its slice (`model::slice`:
//! `Slice::new(GPU memory − the pool's headroom, R)`; overlay-safe has no headroom), and
//! gpu-slicer's admission webhook adds `SliceNeed::requirements()` to every GPU pod's
//! required node affinity. The scheduler (and overlay-safe's provisioner) match those
//! requirements against the node's labels like any affinity: nothing here is specific
//! to gpu-slicer, and a pod with a need never binds to a node without slice labels. So
//! these two strategies have no violations by construction. The other strategies run
//! without the webhook (their nodes have no slice labels); [`Binding::KubeScheduler`]
//! turns it off for the two as well, to show what the plain scheduler does.
//!
//! **Violations.** When a pod is bound to a node with R replicas per GPU (by the scheduler
//! or a consolidation move), it counts once as a *share violation* if the slice-fit rule
//! (`model::slice`, `SliceNeed::fits` on `Slice::new(GPU memory, R)`: no headroom, the
//! physical test for every strategy; under MPS where gpu-slicer planned MPS) fails on its
//! share under the replay's reading (`plan.share_model`: `gpu-share > ⌊1000/R⌋` of time,
//! or `> ⌊e/R⌋` of throughput) or it is exclusive on R > 1, and once as a *memory
//! violation* if it fails on its GPU memory (`gpu-memory > ⌊GPU memory / R⌋`, context
//! counted). Share violations are also counted under each reading alone
//! (`share_violations_by_time`, `_by_throughput`), whichever the replay used. A strategy
//! with no violation is *safe*; the ranking ([`rank`]) puts every safe strategy before
//! every unsafe one, each by cost.
//!
//! Only gpu-slicer's nodes may run MPS (its planner chooses it in `auto` pools where a
//! pod needs it: isolation, or a share read as throughput); every other strategy's nodes
//! are time-sliced, as hand-written pools with the device plugin's time-slicing are.
//!
//! # Karpenter-like provisioning (strategies a, b, c, e)
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
//! 3. else a new claim in the first NodePool (in weight order) with a type that can hold
//!    the pod alone, with every such type; if there is none the pod can never be
//!    provisioned (it still binds if it ever fits a ready node).
//!
//! In-flight nodes launched as consolidation replacements take no reservations (their
//! room is for the pods they replace).
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
//! - (e) `OverlaySafe`: what a careful user writes by hand: one NodePool per R in
//!   `OVERLAY_SAFE_REPLICAS` (4, 2, 1, the densest weighted first), each with its
//!   NodeOverlay (`GPUs × R` slices, believed and real) and the slice labels on its
//!   nodes, and gpu-slicer's admission affinity on the pods. A claim is (type, R); under
//!   admission a type joins a claim only if its slice at that R fits every pod of it.
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
//! consolidated like Karpenter's (deletion only), and the fleet is re-packed every
//! `repack_interval_s` (below, "Repack"; on by default, as in the controller; 0 turns
//! it off). Nothing else provisions for these pods (Karpenter's own provisioner is not
//! modelled beside gpu-slicer), and the controller's budget guard (`max_hourly_cost`,
//! `max_nodes`) is not applied.
//!
//! # Repack (gpu-slicer)
//!
//! Every `repack_interval_s` of virtual time (from the first arrival, while before the
//! end `T`), the controller's own decision runs: `reconcile::repack::propose` (see its
//! docs for the candidates, their order, the prefixes tried and the saving rule) on the
//! ready gpu-slicer nodes that are not part of a move, each with its real usage and its
//! bound pods (a pod's age is the time since it was last bound: arrival to bind, or its
//! last move), with `SimConfig::planner_options()` over the effective pools,
//! `repack_min_saving` and `repack_min_pod_age_s`. Its budget is the NodePool's
//! `disruption.budgets: [{nodes: "<repack_budget_pct>%"}]` read by
//! `reconcile::repack::allowed_disruptions` (that percentage of the pool's ready nodes,
//! rounded up, less its nodes being replaced); the default, 10 %, is Karpenter's for a
//! NodePool without budgets, what a user gets in a real cluster. `propose` lets a pool whose
//! budget is 0 now keep its nodes, and a larger budget only paces a finished move's
//! deletions (`repack::pace`): the replay removes them in the second the move finishes (it
//! models no drain time, so the waves would all end then). Its allowance is
//! `repack_max_nodes_per_hour` less the nodes that moves started in the last 3,600 s
//! replaced (rolled-back moves count).
//!
//! The chosen move launches every node of its plan as a *replacement* (labels, taints and
//! slice labels as a round's launches; nothing is reserved for it, and rounds do not
//! reserve pending pods onto it) and taints the replaced nodes (no new pods). The
//! replacements launch together, so they are ready in the same second; then the replaced
//! nodes' pods move by the scheduler's rules (first fit, largest first, through the
//! slice-fit path of every bind) onto the other ready nodes that run pods, then onto the
//! replacements in plan order, the replaced nodes are removed, and only then does the
//! scheduler's pass for pending pods run on the replacements. If some pod fits nowhere
//! (arrivals took the room the plan counted on, or first fit packs worse than the
//! planner), the move *rolls back*: nothing moves, the replaced nodes take pods again,
//! and the replacements stay as ordinary nodes (consolidated when empty). A move whose
//! plan has no new node (every pod fits the nodes that stay) moves at once. A moved pod
//! counts as a restart (`pods_restarted`; Karpenter-like moves count in `disruptions`
//! instead); it keeps running and its pending time does not change. What the move costs
//! is in `cost` already, since every node is billed while it runs: the replacements from
//! their launch, the replaced nodes until their removal; `overlap_node_hours` reports the
//! part paid twice (replacements' hours from launch until the move finished or rolled
//! back). With `repack_steer` (on by default) each pod first goes where the move's plan
//! put it (checked by the scheduler's rules), first fit only for the rest, so a move is
//! carried out as decided, as Karpenter-like moves are (they decide and execute with the
//! same first fit); the real kube-scheduler's default `LeastAllocated` scoring prefers the
//! empty replacements the plan filled. Off, first fit packs the planner's moves worse than
//! the plan and most large moves roll back (`default`: $59,459 with 1,544 rollbacks, against
//! $55,364 with 0): both are reported in `simulations/results/ISSUE14.md`. Not modelled: the eviction's and the
//! pods' restart delay (the pods move in the
//! second the replacements are ready), PDBs, the controller's ready timeout (a
//! replacement here is always ready after `launch_delay_s`).
//!
//! # Consolidation (all strategies)
//!
//! Karpenter's `WhenEmptyOrUnderutilized`, by method (`Consolidation`, per variant: a
//! strategy's name gets `+empty`, `+replace` or `+multi` when it is not the default
//! `delete`; each method includes the ones before it; gpu-slicer's nodes are only
//! deleted, and re-packed by its own controller, "Repack" above). A ready node with no reservation, not being disrupted, whose pods last
//! changed (a pod bound or left, or the node became ready) at least
//! `consolidate_after_s` ago is a candidate. A check runs `consolidate_after_s` after
//! every change on any node, so candidates are checked within that time of becoming one.
//!
//! - `empty`: empty candidates are removed.
//! - `delete`: then, fewest pods first (then the most expensive, then id), a candidate
//!   whose pods all fit, by the scheduler's rules (first fit, largest first), onto other
//!   ready nodes that run pods is removed and its pods moved there at once. A candidate
//!   that did not fit is tried again only after capacity was freed somewhere.
//! - `replace`: a candidate that cannot be deleted is *replaced* if the pods that fit
//!   nowhere else fit one new claim (the strategy's own: first pool that holds them all,
//!   cheapest type) costing less per hour than the candidate.
//! - `multi` (Karpenter's default): before single nodes, N ≥ 2 candidates in that order
//!   (all of them up to 100, else the longest prefix Karpenter's binary search finds) are
//!   deleted or replaced by at most one new node costing less than they do together.
//!
//! A replacement launches at once; the nodes it replaces are tainted (no new pods) and
//! keep running their pods until it is ready; then their pods move (onto the other
//! nodes, then the replacement, first fit) and they are removed. If some pod fits
//! nowhere by then, nothing moves and the replaced nodes take pods again. Each move
//! counts as a disruption; the pod keeps running and its pending time does not change.
//! Not modelled: disruption budgets, the eviction's own delay, spot-to-spot rules.
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
//!   (pods, each counted once), `disruptions` (consolidation moves), `repack_moves`,
//!   `repack_rollbacks`, `pods_restarted` (repack's moves) and `restarts_per_day` (÷ the
//!   horizon `T` − first arrival, in days), `overlap_node_hours` (replacement nodes'
//!   hours, launch to the end of their move or consolidation replacement), samples every
//!   `sample_every_s` from the first arrival while the replay or its nodes last.
//! - `cost_over_lower_bound` is filled by [`simulate`] (0 from [`simulate_one`], and when
//!   the bound is 0).
//!
//! # Floor
//!
//! The *floor* (`Report::lower_bound_cost`, [`floor_series`]): the replay from its first
//! arrival to its end is cut into windows of `floor_window_s` (600 s; the last may be
//! shorter). For each window, the pods present throughout it (arrived at or before its
//! start, leaving at or after its end) are planned with `SimConfig::plan` at the full
//! effort (`Effort::Full`, column generation, `prove_bound`) and the simulation's
//! capacity type; the window's rate is that plan's proven LP bound
//! (`summary.lower_bound_hourly_cost`; or the fast effort's bound on the same pods when
//! that is higher, as it can be by a rounding hair on a handful of pods). The floor is
//! the sum of rate × window length. It is valid: a strategy that runs every pod while it
//! is present, share- and memory-safe, has at every instant of a window nodes that hold
//! at least those pods, so it pays at least the LP bound for them over the window; pods
//! that are present only part of a window are left out, which only lowers the floor.
//! Windows with the same demand (names aside) are planned once.
//!
//! What the floor does not bind: an unsafe strategy (it packs pods onto slices the LP
//! does not allow), and a strategy that leaves pods pending (batching, launch delay,
//! pods that leave while pending cost it nothing): so a strategy can dip below the floor
//! at moments, and on traces of short jobs even in total; the ratio is reported anyway.
//!
//! The *weak floor* (`Report::weak_lower_bound_cost`, [`weak_floor_series`]), the floor
//! before issue 13: whenever the set of pods present changes, the planner's bound for
//! those pods with `SimConfig::plan` as given (the fast effort's by default), integrated
//! piecewise-constant. Reported beside the floor so that "floor ≥ weak floor" can be
//! checked on every trace.

mod bound;
mod cluster;
mod consolidate;
mod provision;
mod repack;

pub use cluster::{Cluster, InvariantError, NodeView};

use super::{Report, SimConfig, StrategyReport, Variant, Workload};
use crate::model::{CapacityType, Catalog};
use crate::planner::PlanOptions;

impl SimConfig {
    /// The planner's options as every part of the replay uses them: the simulation's
    /// capacity type only, no dedicated comparison plan, one thread (the floor's windows
    /// run in parallel themselves), whole GPUs only (the replay has no fractional types).
    pub(super) fn planner_options(&self) -> PlanOptions {
        PlanOptions {
            capacity_types: vec![self.capacity_type],
            dedicated: false,
            threads: 1,
            fractional_gpus: false,
            ..self.plan.clone()
        }
    }
}

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
            floor_window_s: 600,
            floor_threads: 1,
            binding: Binding::default(),
            plan: PlanOptions {
                dedicated: false,
                deadline: Some(std::time::Duration::from_secs(1)),
                ..PlanOptions::default()
            },
            repack_interval_s: 3600,
            repack_min_saving: 0.05,
            repack_min_pod_age_s: 300,
            repack_max_nodes_per_hour: 10,
            repack_budget_pct: 10,
            repack_steer: true,
        }
    }
}

/// What the simulated scheduler checks when it binds a pod of a strategy whose nodes
/// carry slice labels (gpu-slicer, overlay-safe); see the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Binding {
    /// kube-scheduler with no admission webhook: slices, cpu, memory, pod slots, labels,
    /// taints; not GPU memory or shares.
    KubeScheduler,
    /// kube-scheduler with gpu-slicer's admission: every GPU pod also carries
    /// `SliceNeed::requirements()` in its required node affinity, matched against the
    /// node's slice labels. What gpu-slicer and overlay-safe run with.
    #[default]
    Admission,
}

impl Binding {
    pub fn as_str(&self) -> &'static str {
        match self {
            Binding::KubeScheduler => "kube-scheduler",
            Binding::Admission => "admission",
        }
    }
}

/// Both floors of a workload (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Floors {
    /// The floor, USD, and `(window start, USD/h)` per window.
    pub floor: f64,
    pub series: Vec<(u64, f64)>,
    /// The weak floor, USD.
    pub weak: f64,
    pub window_s: u64,
}

/// Computes both floors. `progress(done, total)` counts the floor's windows, then the
/// workload events (arrivals and departures) of the weak floor's pass.
pub fn floors(
    catalog: &Catalog,
    workload: &Workload,
    cfg: &SimConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Floors {
    let wins = bound::windows(workload, cfg).len();
    let total = wins + cluster::workload_events(workload);
    let (floor, series) = bound::floor(catalog, workload, cfg, &mut |d| progress(d, total));
    let (weak, _) = bound::weak_floor(catalog, workload, cfg, &mut |d| progress(wins + d, total));
    Floors {
        floor,
        series,
        weak,
        window_s: cfg.floor_window_s,
    }
}

/// Replays the workload through every variant against floors computed before (the
/// floors depend on the workload, the window and the planner's options, not on delays,
/// so a sweep computes them once), then ranks the variants (safe ones first by cost,
/// then the unsafe ones by cost). `progress(done, total)` counts workload events.
pub fn replay(
    catalog: &Catalog,
    workload: &Workload,
    variants: &[Variant],
    cfg: &SimConfig,
    floors: &Floors,
    progress: &mut dyn FnMut(usize, usize),
) -> Report {
    let per = cluster::workload_events(workload);
    let total = per * variants.len();
    let mut reports = Vec::with_capacity(variants.len());
    for (i, v) in variants.iter().enumerate() {
        let base = per * i;
        let mut r = cluster::run(catalog, workload, *v, cfg, &mut |_| {}, &mut |d| {
            progress(base + d, total)
        });
        r.cost_over_lower_bound = ratio(r.cost, floors.floor);
        reports.push(r);
    }
    rank(&mut reports);
    let (t0, t_end) = cluster::window(workload, cfg);
    Report {
        workload: workload.name.clone(),
        pods: workload.jobs.len(),
        horizon_s: t_end - t0,
        lower_bound_cost: floors.floor,
        lower_bound_series: floors.series.clone(),
        weak_lower_bound_cost: floors.weak,
        floor_window_s: floors.window_s,
        strategies: reports,
    }
}

/// [`floors`] then [`replay`]. `progress(done, total)` counts the floors' steps, then
/// each variant's workload events.
pub fn simulate(
    catalog: &Catalog,
    workload: &Workload,
    variants: &[Variant],
    cfg: &SimConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Report {
    let first = bound::windows(workload, cfg).len() + cluster::workload_events(workload);
    let total = first + cluster::workload_events(workload) * variants.len();
    let f = floors(catalog, workload, cfg, &mut |d, _| progress(d, total));
    replay(catalog, workload, variants, cfg, &f, &mut |d, _| {
        progress(first + d, total)
    })
}

/// Fills `rank`: safe reports first by cost, then the unsafe ones by cost (ties: the
/// order given). An unsafe strategy never ranks above a safe one, however cheap.
pub fn rank(reports: &mut [StrategyReport]) {
    let mut order: Vec<usize> = (0..reports.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&reports[a], &reports[b]);
        y.safe
            .cmp(&x.safe)
            .then(x.cost.total_cmp(&y.cost))
            .then(a.cmp(&b))
    });
    for (k, i) in order.into_iter().enumerate() {
        reports[i].rank = k + 1;
    }
}

/// Replays the workload through one variant. `cost_over_lower_bound` and `rank` are left
/// at 0 ([`simulate`] fills them in).
pub fn simulate_one(
    catalog: &Catalog,
    workload: &Workload,
    variant: impl Into<Variant>,
    cfg: &SimConfig,
) -> StrategyReport {
    simulate_one_with(catalog, workload, variant, cfg, &mut |_| {})
}

/// [`simulate_one`] with a callback that sees the state after every event (tests check
/// [`Cluster::check_capacity`] there).
pub fn simulate_one_with(
    catalog: &Catalog,
    workload: &Workload,
    variant: impl Into<Variant>,
    cfg: &SimConfig,
    on_event: &mut dyn FnMut(&Cluster<'_>),
) -> StrategyReport {
    cluster::run(
        catalog,
        workload,
        variant.into(),
        cfg,
        on_event,
        &mut |_| {},
    )
}

/// The floor (see the module docs): the USD summed over the windows and
/// `(window start, USD per hour)` per window.
pub fn floor_series(
    catalog: &Catalog,
    workload: &Workload,
    cfg: &SimConfig,
) -> (f64, Vec<(u64, f64)>) {
    bound::floor(catalog, workload, cfg, &mut |_| {})
}

/// The weak floor (see the module docs): the USD integrated over the replay and
/// `(t, USD per hour)` at every sample time.
pub fn weak_floor_series(
    catalog: &Catalog,
    workload: &Workload,
    cfg: &SimConfig,
) -> (f64, Vec<(u64, f64)>) {
    bound::weak_floor(catalog, workload, cfg, &mut |_| {})
}

fn ratio(cost: f64, bound: f64) -> f64 {
    if bound > 0.0 { cost / bound } else { 0.0 }
}
