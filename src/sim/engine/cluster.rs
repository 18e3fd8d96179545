//! One strategy's replay: nodes, pods, the event queue, the scheduler, the capacity
//! invariant and the metrics.
//!
//! Size (~830 code lines, one file on purpose): the event loop, the scheduler's filter
//! and score, binding, launches and consolidation all mutate the same `Cluster` and its
//! index vectors in step, and the invariant (`cluster/invariant.rs`) checks them
//! together; the provisioner (`provision.rs`) and re-packing (`repack.rs`) are already
//! their own files, as `impl Cluster` blocks.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use super::Binding;
use crate::model::slice::{NodeSharing, ShareModel, ShareReadings, Slice, SliceNeed};
use crate::model::{
    Catalog, DemandItem, Requirement, Resources, Sharing, Taint, labels, tolerates_all,
};
use crate::planner::PlanOptions;
use crate::reconcile::batch::Batcher;
use crate::sim::{
    Consolidation, Job, Sample, SimConfig, Strategy, StrategyReport, Variant, Workload,
};

mod invariant;
pub use invariant::InvariantError;

// Event kinds, in the order they run within one second.
pub(super) const DEPARTURE: u8 = 0;
pub(super) const ARRIVAL: u8 = 1;
pub(super) const READY: u8 = 2;
pub(super) const BATCH: u8 = 3;
pub(super) const CONSOLIDATE: u8 = 4;
pub(super) const REPACK: u8 = 5;
pub(super) const SAMPLE: u8 = 6;

/// Arrivals and departures of a workload (the unit of progress).
pub(super) fn workload_events(w: &Workload) -> usize {
    w.jobs
        .iter()
        .map(|j| 1 + usize::from(j.departure.is_some()))
        .sum()
}

/// The replay's first arrival and end `T` (see the module docs).
pub(super) fn window(w: &Workload, cfg: &SimConfig) -> (u64, u64) {
    let t0 = w.jobs.iter().map(|j| j.arrival).min().unwrap_or(0);
    let last_arrival = w.jobs.iter().map(|j| j.arrival).max().unwrap_or(0);
    let last_departure = w.jobs.iter().filter_map(|j| j.departure).max().unwrap_or(0);
    let mut end = last_departure.max(last_arrival);
    if w.jobs.iter().any(|j| j.departure.is_none()) {
        end = end.max(
            last_arrival
                .saturating_add(cfg.batch_max_s)
                .saturating_add(cfg.launch_delay_s),
        );
    }
    (t0, end.max(t0))
}

/// cpu, memory, pod slots and slices, taken or offered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Use {
    pub cpu: u64,
    pub mem: u64,
    pub pods: u64,
    pub slices: u64,
}

impl Use {
    pub fn of(it: &DemandItem) -> Use {
        Use {
            cpu: it.requests.cpu_milli,
            mem: it.requests.memory_bytes,
            pods: 1,
            slices: u64::from(it.gpus),
        }
    }

    pub fn plus(self, o: Use) -> Use {
        Use {
            cpu: self.cpu.saturating_add(o.cpu),
            mem: self.mem.saturating_add(o.mem),
            pods: self.pods.saturating_add(o.pods),
            slices: self.slices.saturating_add(o.slices),
        }
    }

    pub fn minus(self, o: Use) -> Use {
        Use {
            cpu: self.cpu.saturating_sub(o.cpu),
            mem: self.mem.saturating_sub(o.mem),
            pods: self.pods.saturating_sub(o.pods),
            slices: self.slices.saturating_sub(o.slices),
        }
    }

    pub fn within(self, cap: Use) -> bool {
        self.cpu <= cap.cpu
            && self.mem <= cap.mem
            && self.pods <= cap.pods
            && self.slices <= cap.slices
    }

    /// The first dimension in which `self` exceeds `cap`.
    fn over(self, cap: Use) -> Option<&'static str> {
        [
            (self.cpu > cap.cpu, "cpu"),
            (self.mem > cap.mem, "memory"),
            (self.pods > cap.pods, "pods"),
            (self.slices > cap.slices, "slices"),
        ]
        .into_iter()
        .find_map(|(over, what)| over.then_some(what))
    }
}

/// An instance type the simulation may launch.
#[derive(Debug, Clone)]
pub(super) struct Ty {
    /// Index in the catalog.
    pub cat: usize,
    /// USD per hour at the simulation's capacity type.
    pub price: f64,
    /// Allocatable after DaemonSets.
    pub cap: Resources,
    pub pods: u32,
    pub gpus: u32,
    pub gpu_mem: u64,
}

impl Ty {
    /// Capacity with `slices_per_gpu` slices per GPU.
    pub fn capacity(&self, slices_per_gpu: u32) -> Use {
        Use {
            cpu: self.cap.cpu_milli,
            mem: self.cap.memory_bytes,
            pods: u64::from(self.pods),
            slices: u64::from(self.gpus) * u64::from(slices_per_gpu.max(1)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    NotArrived,
    Pending,
    Bound(usize),
    Gone,
}

#[derive(Debug, Clone)]
pub(super) struct Pod {
    pub phase: Phase,
    /// The in-flight node the provisioner reserved for it.
    pub reserved: Option<usize>,
    pub first_bound: Option<u64>,
    pub bound_since: u64,
    /// No node can be provisioned for it (it may still bind to a ready node).
    pub unprovisionable: bool,
    /// Bound at least once where its share was not met under the replay's reading; under
    /// the time reading alone; under the throughput reading alone.
    pub share_violation: bool,
    pub share_violation_by_time: bool,
    pub share_violation_by_throughput: bool,
    pub memory_violation: bool,
    /// Departed while pending, before the end.
    pub left_pending: bool,
}

/// A pod's safety on a slice ([`Cluster::safety`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Safety {
    /// Its share is met under the replay's reading (`plan.share_model`).
    pub share: bool,
    pub share_by_time: bool,
    pub share_by_throughput: bool,
    pub memory: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Node {
    pub ty: usize,
    pub r: u32,
    pub launched: u64,
    pub ready: bool,
    pub removed: Option<u64>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// The gpu-slicer pool (empty for Karpenter strategies).
    pub pool: String,
    pub used: Use,
    pub reserved_use: Use,
    pub bound: Vec<usize>,
    pub reserved: Vec<usize>,
    pub last_change: u64,
    /// The capacity epoch at which moving its pods away last failed.
    pub fail_epoch: Option<u64>,
    /// Being consolidated: tainted `karpenter.sh/disrupted:NoSchedule`, no new pods; it
    /// goes once its replacement is ready and its pods moved.
    pub disrupting: bool,
    /// The nodes this one replaces (consolidation); its pods move here when it is ready.
    pub replaces: Vec<usize>,
    /// A replacement launched by the repack move of this index, until the move ends.
    pub in_move: Option<usize>,
}

/// A node as the state callback sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub id: usize,
    pub instance_type: String,
    pub replicas: u32,
    pub launched: u64,
    pub ready: bool,
    /// Ids of the pods bound to it.
    pub pods: Vec<String>,
    /// Ids of the pods reserved for it (in flight).
    pub reserved: Vec<String>,
}

/// The state of one strategy's replay. Handed to the callback of
/// [`super::simulate_one_with`] after every event.
pub struct Cluster<'a> {
    pub(super) catalog: &'a Catalog,
    pub(super) jobs: &'a [Job],
    pub(super) cfg: &'a SimConfig,
    pub(super) strategy: Strategy,
    pub(super) consolidation: Consolidation,
    /// Replicas per GPU of the Karpenter strategies' nodes (overlay-safe: per claim).
    pub(super) r: u32,
    /// Pods carry gpu-slicer's admitted affinity (`needs`) and the scheduler honours it.
    pub(super) admission: bool,
    /// Per pod, the slice requirements admission adds (empty without admission).
    needs: Vec<Vec<Requirement>>,
    /// The planner's options (capacity type forced to the simulation's).
    pub(super) plan_opts: PlanOptions,
    /// gpu-slicer's planner columns across batches, as the controller keeps them.
    pub(super) columns: crate::planner::Columns,
    pub(super) tys: Vec<Ty>,
    pub(super) ty_by_name: HashMap<String, usize>,
    now: u64,
    t_end: u64,
    pub(super) pods: Vec<Pod>,
    pub(super) nodes: Vec<Node>,
    /// Nodes up (in flight or ready), in launch order.
    pub(super) live: Vec<usize>,
    /// Pending pods by (arrival, index): the scheduler's queue.
    pub(super) pending: BTreeSet<(u64, usize)>,
    heap: BinaryHeap<Reverse<(u64, u8, usize)>>,
    batcher: Batcher,
    last_pass: Option<u64>,
    /// Bumped whenever a ready node gains free capacity.
    pub(super) epoch: u64,
    /// The (epoch, candidates) at which multi-node consolidation last found nothing.
    pub(super) multi_fail: Option<(u64, Vec<usize>)>,
    /// gpu-slicer's repack moves, by index (finished ones included).
    pub(super) moves: Vec<RepackMove>,
    /// (start, nodes replaced) of the repack moves of the last hour: the rate limit.
    pub(super) repacked: VecDeque<(u64, usize)>,
    pub(super) repack_moves: usize,
    pub(super) repack_rollbacks: usize,
    pub(super) pods_restarted: usize,
    /// Seconds replacement nodes ran beside the nodes they replace.
    pub(super) overlap_s: u64,
    t0: u64,
    cost: f64,
    gpu_hours_used: f64,
    gpu_hours_paid: f64,
    nodes_launched: usize,
    peak_nodes: usize,
    pub(super) disruptions: usize,
    series: Vec<Sample>,
    /// Pods bound now (kept to cross-check the nodes' lists).
    bound_count: usize,
}

pub(super) fn run(
    catalog: &Catalog,
    workload: &Workload,
    variant: Variant,
    cfg: &SimConfig,
    on_event: &mut dyn FnMut(&Cluster<'_>),
    progress: &mut dyn FnMut(usize),
) -> StrategyReport {
    let mut c = Cluster::new(catalog, workload, variant, cfg);
    let mut done = 0;
    while let Some(Reverse((t, kind, id))) = c.heap.pop() {
        c.now = t;
        match kind {
            DEPARTURE => c.depart(id),
            ARRIVAL => c.arrive(id),
            READY => c.node_ready(id),
            BATCH => c.batch_due(),
            CONSOLIDATE => {
                if c.last_pass != Some(t) {
                    c.last_pass = Some(t);
                    c.consolidate();
                }
            }
            REPACK => c.repack(),
            _ => c.sample(),
        }
        c.peak_nodes = c.peak_nodes.max(c.live.len());
        if kind == DEPARTURE || kind == ARRIVAL {
            done += 1;
            progress(done);
        }
        #[cfg(debug_assertions)]
        if let Err(e) = c.check_capacity() {
            panic!("capacity invariant broken after event {kind}/{id} at t={t}: {e}");
        }
        on_event(&c);
    }
    // Every pod has left and every node is empty by now; remove what is left anyway.
    for n in c.live.clone() {
        c.remove_node(n);
    }
    c.report()
}

impl<'a> Cluster<'a> {
    fn new(
        catalog: &'a Catalog,
        workload: &'a Workload,
        variant: Variant,
        cfg: &'a SimConfig,
    ) -> Self {
        let strategy = variant.strategy;
        let plan_opts = cfg.planner_options();
        let ds = cfg.plan.daemonset_overhead;
        let mut tys = Vec::new();
        let mut ty_by_name = HashMap::new();
        for (i, t) in catalog.types.iter().enumerate() {
            let Some(price) = t.price(cfg.capacity_type) else {
                continue;
            };
            // Trace pods name no architecture: like the planner (`planner/space.rs`),
            // every strategy keeps to the plannable types of the default architecture.
            let usable =
                // Fractional types are not replayed yet: the replay's slices are
                // time-sliced whole GPUs.
                t.is_plannable()
                    && !t.is_fractional()
                    && t.is_default_arch()
                    && price.is_finite()
                    && price > 0.0;
            if !usable
                || (!cfg.plan.instance_types.is_empty()
                    && !cfg.plan.instance_types.contains(&t.name))
                || (!cfg.plan.families.is_empty() && !cfg.plan.families.contains(&t.family))
                || ty_by_name.contains_key(&t.name)
            {
                continue;
            }
            let (cap, pods) = ds.remaining(t);
            ty_by_name.insert(t.name.clone(), tys.len());
            tys.push(Ty {
                cat: i,
                price,
                cap,
                pods,
                gpus: t.gpu_count,
                gpu_mem: t.gpu_memory_mib,
            });
        }
        let r = match strategy {
            Strategy::SlicingUnaware { replicas } | Strategy::FixedOverlay { replicas } => {
                replicas.max(1)
            }
            Strategy::Dedicated | Strategy::OverlaySafe | Strategy::GpuSlicer => 1,
        };
        let admission = cfg.binding == Binding::Admission && strategy.labels_slices();
        let needs = workload
            .jobs
            .iter()
            .map(|j| {
                if admission {
                    SliceNeed::of(&j.item, plan_opts.fit_rules(None)).requirements()
                } else {
                    Vec::new()
                }
            })
            .collect();
        let (t0, t_end) = window(workload, cfg);
        let jobs = &workload.jobs[..];
        let mut heap = BinaryHeap::with_capacity(jobs.len() * 2 + 16);
        for (i, j) in jobs.iter().enumerate() {
            heap.push(Reverse((j.arrival, ARRIVAL, i)));
            heap.push(Reverse((j.departure.unwrap_or(t_end), DEPARTURE, i)));
        }
        if cfg.sample_every_s > 0 && !jobs.is_empty() {
            heap.push(Reverse((t0, SAMPLE, 0)));
        }
        let first_repack = t0.saturating_add(cfg.repack_interval_s);
        if strategy == Strategy::GpuSlicer
            && cfg.repack_interval_s > 0
            && !jobs.is_empty()
            && first_repack <= t_end
        {
            heap.push(Reverse((first_repack, REPACK, 0)));
        }
        Cluster {
            catalog,
            jobs,
            cfg,
            strategy,
            consolidation: variant.consolidation,
            r,
            admission,
            needs,
            plan_opts,
            columns: crate::planner::Columns::default(),
            tys,
            ty_by_name,
            now: t0,
            t_end,
            pods: vec![
                Pod {
                    phase: Phase::NotArrived,
                    reserved: None,
                    first_bound: None,
                    bound_since: 0,
                    unprovisionable: false,
                    share_violation: false,
                    share_violation_by_time: false,
                    share_violation_by_throughput: false,
                    memory_violation: false,
                    left_pending: false,
                };
                jobs.len()
            ],
            nodes: Vec::new(),
            live: Vec::new(),
            pending: BTreeSet::new(),
            heap,
            batcher: Batcher::new(
                Duration::from_secs(cfg.batch_idle_s),
                Duration::from_secs(cfg.batch_max_s),
            ),
            last_pass: None,
            epoch: 0,
            multi_fail: None,
            moves: Vec::new(),
            repacked: VecDeque::new(),
            repack_moves: 0,
            repack_rollbacks: 0,
            pods_restarted: 0,
            overlap_s: 0,
            t0,
            cost: 0.0,
            gpu_hours_used: 0.0,
            gpu_hours_paid: 0.0,
            nodes_launched: 0,
            peak_nodes: 0,
            disruptions: 0,
            series: Vec::new(),
            bound_count: 0,
        }
    }

    /// Seconds of virtual time.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The end `T` of the replay (see the module docs).
    pub(super) fn t_end(&self) -> u64 {
        self.t_end
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Pods arrived and not bound (including those that can never be provisioned).
    pub fn pending_pods(&self) -> usize {
        self.pending.len()
    }

    /// The nodes up (in flight or ready), in launch order.
    pub fn nodes(&self) -> Vec<NodeView> {
        let ids = |v: &[usize]| v.iter().map(|&p| self.item(p).id.clone()).collect();
        self.live
            .iter()
            .map(|&n| {
                let node = &self.nodes[n];
                NodeView {
                    id: n,
                    instance_type: self.catalog.types[self.tys[node.ty].cat].name.clone(),
                    replicas: node.r,
                    launched: node.launched,
                    ready: node.ready,
                    pods: ids(&node.bound),
                    reserved: ids(&node.reserved),
                }
            })
            .collect()
    }

    pub(super) fn item(&self, p: usize) -> &'a DemandItem {
        &self.jobs[p].item
    }

    /// Slices the provisioner believes an in-flight node of this strategy has.
    pub(super) fn believed(&self, n: usize) -> Use {
        let node = &self.nodes[n];
        let ty = &self.tys[node.ty];
        match self.strategy {
            Strategy::SlicingUnaware { .. } if !node.ready => ty.capacity(1),
            _ => ty.capacity(node.r),
        }
    }

    /// The real capacity of a node.
    pub(super) fn real(&self, n: usize) -> Use {
        let node = &self.nodes[n];
        self.tys[node.ty].capacity(node.r)
    }

    /// Node labels and taints admit the pod: its node selector and required affinity,
    /// with admission also the slice requirements, against the node's labels.
    pub(super) fn labels_admit(&self, p: usize, n: usize) -> bool {
        let it = self.item(p);
        let node = &self.nodes[n];
        let needs = &self.needs[p];
        if !needs
            .iter()
            .all(|q| q.matches(node.labels.get(&q.key).map(String::as_str)))
        {
            return false;
        }
        if it.node_selector.is_empty() && it.affinity_terms.is_empty() && node.taints.is_empty() {
            return true;
        }
        let t = &self.catalog.types[self.tys[node.ty].cat];
        let ct = self.cfg.capacity_type;
        let label = |k: &str| {
            node.labels
                .get(k)
                .cloned()
                .or_else(|| t.label(k))
                .or_else(|| (k == labels::CAPACITY_TYPE).then(|| ct.as_str().to_string()))
        };
        it.matches_labels(&label) && tolerates_all(&it.tolerations, &node.taints)
    }

    /// A Karpenter claim's type admits the pod by labels (no taints on its nodes).
    pub(super) fn type_admits(&self, p: usize, ty: usize) -> bool {
        let it = self.item(p);
        if it.node_selector.is_empty() && it.affinity_terms.is_empty() {
            return true;
        }
        let t = &self.catalog.types[self.tys[ty].cat];
        let ct = self.cfg.capacity_type;
        let label = |k: &str| {
            t.label(k)
                .or_else(|| (k == labels::CAPACITY_TYPE).then(|| ct.as_str().to_string()))
        };
        it.matches_labels(&label)
    }

    /// With admission, a claim of type `ty` at R = `r` would get slice labels the pod's
    /// admitted affinity matches (overlay-safe's pools have no headroom).
    pub(super) fn slice_admits(&self, p: usize, ty: usize, r: u32) -> bool {
        !self.admission
            || SliceNeed::of(self.item(p), self.plan_opts.fit_rules(None)).fits(&self.slice(ty, r))
    }

    /// The slice of a node of type `ty` at R = `r` with no headroom, rated with the
    /// replay's efficiencies (`plan.efficiency`).
    pub(super) fn slice(&self, ty: usize, r: u32) -> Slice {
        Slice::new(self.tys[ty].gpu_mem, r).rated(self.plan_opts.efficiency)
    }

    /// Whether the pod is safe on node `n`: the model's slice-fit rule (`model::slice`) on
    /// the GPU's physical memory (no headroom), time-sliced or, where gpu-slicer planned
    /// it, shared by MPS, split into its share part (share, exclusive ⇒ R = 1) under the
    /// replay's reading and under each reading alone, and its memory part.
    pub(super) fn safety(&self, p: usize, n: usize) -> Safety {
        let node = &self.nodes[n];
        let rules = self.plan_opts.fit_rules(None);
        let need = SliceNeed::of(self.item(p), rules);
        let slice = Slice::of_node(
            self.tys[node.ty].gpu_mem,
            1000,
            node.r,
            NodeSharing::is_mps_labelled(&node.labels),
            self.plan_opts.efficiency,
        );
        let share = |shares: ShareReadings| {
            SliceNeed {
                gpu_memory_mib: None,
                shares,
                ..need
            }
            .fits(&slice)
        };
        let mem = SliceNeed {
            gpu_memory_mib: need.gpu_memory_mib,
            ..SliceNeed::default()
        };
        Safety {
            share: share(rules.shares),
            share_by_time: share(ShareReadings::of(ShareModel::Time)),
            share_by_throughput: share(ShareReadings::of(ShareModel::Throughput)),
            memory: mem.fits(&slice),
        }
    }

    /// The scheduler would bind the pod to the ready node given `used` there.
    pub(super) fn sched_fits_with(&self, p: usize, n: usize, used: Use) -> bool {
        let node = &self.nodes[n];
        if !node.ready || node.removed.is_some() || node.disrupting {
            return false;
        }
        used.plus(Use::of(self.item(p))).within(self.real(n)) && self.labels_admit(p, n)
    }

    pub(super) fn sched_fits(&self, p: usize, n: usize) -> bool {
        self.sched_fits_with(p, n, self.nodes[n].used)
    }

    pub(super) fn push(&mut self, t: u64, kind: u8, id: usize) {
        self.heap.push(Reverse((t, kind, id)));
    }

    // ---- pods ------------------------------------------------------------------------

    fn arrive(&mut self, p: usize) {
        if self.pods[p].phase != Phase::NotArrived {
            return;
        }
        self.pods[p].phase = Phase::Pending;
        self.pending.insert((self.jobs[p].arrival, p));
        let spot = self.live.iter().copied().find(|&n| self.sched_fits(p, n));
        match spot {
            Some(n) => self.bind(p, n),
            None => self.wants_capacity(),
        }
    }

    fn depart(&mut self, p: usize) {
        match self.pods[p].phase {
            // A job whose departure is not after its arrival never becomes pending.
            Phase::NotArrived => {
                self.pods[p].phase = Phase::Gone;
                self.pods[p].left_pending = self.jobs[p].departure.is_some();
            }
            Phase::Pending => {
                self.unreserve(p);
                self.pending.remove(&(self.jobs[p].arrival, p));
                self.pods[p].phase = Phase::Gone;
                // Its own departure came first; a job without one is still pending at the
                // end, and a pod that cannot be provisioned is never placed either way.
                self.pods[p].left_pending =
                    self.jobs[p].departure.is_some() && !self.pods[p].unprovisionable;
            }
            Phase::Bound(n) => {
                self.unbind(p);
                self.pods[p].phase = Phase::Gone;
                self.epoch += 1;
                self.schedule_onto(n);
            }
            Phase::Gone => {}
        }
    }

    /// A pending pod without a reservation needs capacity: open or extend the batch.
    pub(super) fn wants_capacity(&mut self) {
        self.batcher.observe(Duration::from_secs(self.now));
        if let Some(d) = self.batcher.deadline() {
            self.push(d.as_secs(), BATCH, 0);
        }
    }

    fn batch_due(&mut self) {
        if self.batcher.is_due(Duration::from_secs(self.now)) {
            self.batcher.take();
            self.provision();
        }
    }

    pub(super) fn reserve(&mut self, p: usize, n: usize) {
        let u = Use::of(self.item(p));
        self.pods[p].reserved = Some(n);
        let node = &mut self.nodes[n];
        node.reserved.push(p);
        node.reserved_use = node.reserved_use.plus(u);
    }

    fn unreserve(&mut self, p: usize) {
        if let Some(n) = self.pods[p].reserved.take() {
            let u = Use::of(self.item(p));
            let node = &mut self.nodes[n];
            node.reserved.retain(|&q| q != p);
            node.reserved_use = node.reserved_use.minus(u);
        }
    }

    /// Binds a pending (or just unbound, when moved) pod to a ready node.
    pub(super) fn bind(&mut self, p: usize, n: usize) {
        self.unreserve(p);
        self.pending.remove(&(self.jobs[p].arrival, p));
        let safe = self.safety(p, n);
        let now = self.now;
        let u = Use::of(self.item(p));
        let pod = &mut self.pods[p];
        pod.phase = Phase::Bound(n);
        pod.bound_since = now;
        pod.first_bound.get_or_insert(now);
        pod.share_violation |= !safe.share;
        pod.share_violation_by_time |= !safe.share_by_time;
        pod.share_violation_by_throughput |= !safe.share_by_throughput;
        pod.memory_violation |= !safe.memory;
        let node = &mut self.nodes[n];
        node.bound.push(p);
        node.used = node.used.plus(u);
        self.bound_count += 1;
        self.changed(n);
    }

    /// Takes a bound pod off its node (it leaves, or is moved), accounting its GPU use.
    pub(super) fn unbind(&mut self, p: usize) {
        let Phase::Bound(n) = self.pods[p].phase else {
            return;
        };
        let used = self.gpus_used(p, self.nodes[n].r);
        let hours = (self.now - self.pods[p].bound_since) as f64 / 3600.0;
        self.gpu_hours_used += used * hours;
        let u = Use::of(self.item(p));
        let node = &mut self.nodes[n];
        node.bound.retain(|&q| q != p);
        node.used = node.used.minus(u);
        self.bound_count -= 1;
        self.pods[p].phase = Phase::Pending;
        self.changed(n);
    }

    /// GPUs' worth a bound pod uses on a node with R replicas per GPU.
    fn gpus_used(&self, p: usize, r: u32) -> f64 {
        let it = self.item(p);
        let g = f64::from(it.gpus);
        match (it.sharing, it.gpu_share_milli) {
            (Sharing::Exclusive, _) => g,
            (Sharing::Shared, Some(s)) => g * f64::from(s) / 1000.0,
            (Sharing::Shared, None) => g / f64::from(r.max(1)),
        }
    }

    /// The node's pods changed now: restart its consolidation clock.
    fn changed(&mut self, n: usize) {
        self.nodes[n].last_change = self.now;
        self.nodes[n].fail_epoch = None;
        let t = self.now.saturating_add(self.cfg.consolidate_after_s);
        self.push(t, CONSOLIDATE, n);
    }

    /// The scheduler retries the pending pods, oldest first, on node `n`.
    pub(super) fn schedule_onto(&mut self, n: usize) {
        let queue: Vec<usize> = self.pending.iter().map(|&(_, p)| p).collect();
        for p in queue {
            if self.sched_fits(p, n) {
                self.bind(p, n);
            }
        }
    }

    // ---- nodes -----------------------------------------------------------------------

    /// Launches a node now; it becomes ready after the launch delay.
    pub(super) fn launch(
        &mut self,
        ty: usize,
        r: u32,
        labels: BTreeMap<String, String>,
        taints: Vec<Taint>,
        pool: String,
    ) -> usize {
        let id = self.nodes.len();
        self.nodes.push(Node {
            ty,
            r: r.max(1),
            launched: self.now,
            ready: false,
            removed: None,
            labels,
            taints,
            pool,
            used: Use::default(),
            reserved_use: Use::default(),
            bound: Vec::new(),
            reserved: Vec::new(),
            last_change: self.now,
            fail_epoch: None,
            disrupting: false,
            replaces: Vec::new(),
            in_move: None,
        });
        self.live.push(id);
        self.nodes_launched += 1;
        let t = self.now.saturating_add(self.cfg.launch_delay_s);
        self.push(t, READY, id);
        id
    }

    fn node_ready(&mut self, n: usize) {
        if self.nodes[n].removed.is_some() {
            return;
        }
        self.nodes[n].ready = true;
        self.epoch += 1;
        self.changed(n);
        if let Some(m) = self.nodes[n].in_move {
            // A repack replacement (no reservations): the move, then the scheduler.
            self.repack_replacement_ready(m);
            return;
        }
        let replaced = std::mem::take(&mut self.nodes[n].replaces);
        if !replaced.is_empty() {
            let launched = self.nodes[n].launched;
            if let Some(moved) = self.finish_replacement(&[n], &replaced) {
                self.disruptions += moved;
            }
            self.overlap_s += self.now - launched;
        }
        self.schedule_onto(n);
        let left = std::mem::take(&mut self.nodes[n].reserved);
        self.nodes[n].reserved_use = Use::default();
        let mut again = false;
        for p in left {
            self.pods[p].reserved = None;
            again |= !self.pods[p].unprovisionable;
        }
        if again {
            self.wants_capacity();
        }
    }

    /// Removes a node now (it must hold no pods) and bills it.
    pub(super) fn remove_node(&mut self, n: usize) {
        let now = self.now;
        let node = &mut self.nodes[n];
        if node.removed.is_some() {
            return;
        }
        node.removed = Some(now);
        let ty = &self.tys[node.ty];
        let life = now - node.launched;
        let billed = life.max(self.cfg.billing_minimum_s);
        self.cost += billed as f64 * ty.price / 3600.0;
        self.gpu_hours_paid += f64::from(ty.gpus) * life as f64 / 3600.0;
        self.live.retain(|&m| m != n);
    }

    // ---- samples and report ----------------------------------------------------------

    fn sample(&mut self) {
        let mut gpus = 0;
        let mut rate = 0.0;
        let mut alloc = 0.0;
        for &n in &self.live {
            let node = &self.nodes[n];
            let ty = &self.tys[node.ty];
            gpus += ty.gpus;
            rate += ty.price;
            for &p in &node.bound {
                alloc += self.gpus_used(p, node.r);
            }
        }
        self.series.push(Sample {
            t: self.now,
            nodes: self.live.len(),
            gpus,
            gpus_allocated: alloc,
            cost_rate: rate,
            pending: self.pending.len(),
        });
        // Sample up to the end, and beyond while other events (the nodes' tail) remain.
        let next = self.now.saturating_add(self.cfg.sample_every_s);
        if next <= self.t_end || !self.heap.is_empty() {
            self.push(next, SAMPLE, 0);
        }
    }

    fn report(&self) -> StrategyReport {
        let mut order: Vec<usize> = (0..self.jobs.len()).collect();
        order.sort_by_key(|&p| (self.jobs[p].arrival, p));
        let pending_times: Vec<u64> = order
            .iter()
            .filter_map(|&p| {
                self.pods[p]
                    .first_bound
                    .map(|b| b.saturating_sub(self.jobs[p].arrival))
            })
            .collect();
        let mut sorted = pending_times.clone();
        sorted.sort_unstable();
        let never = |p: &Pod| p.first_bound.is_none() && !p.left_pending;
        let share_violations = self.pods.iter().filter(|p| p.share_violation).count();
        let share_violations_by_time = self
            .pods
            .iter()
            .filter(|p| p.share_violation_by_time)
            .count();
        let share_violations_by_throughput = self
            .pods
            .iter()
            .filter(|p| p.share_violation_by_throughput)
            .count();
        let memory_violations = self.pods.iter().filter(|p| p.memory_violation).count();
        StrategyReport {
            strategy: Variant::new(self.strategy, self.consolidation).name(),
            consolidation: self.consolidation,
            safe: share_violations == 0 && memory_violations == 0,
            rank: 0,
            cost: self.cost,
            cost_per_used_gpu_hour: if self.gpu_hours_used > 0.0 {
                self.cost / self.gpu_hours_used
            } else {
                0.0
            },
            gpu_hours_used: self.gpu_hours_used,
            gpu_hours_paid: self.gpu_hours_paid,
            cost_over_lower_bound: 0.0,
            pending_p50_s: percentile(&sorted, 0.50),
            pending_p95_s: percentile(&sorted, 0.95),
            pending_p99_s: percentile(&sorted, 0.99),
            never_placed: self.pods.iter().filter(|p| never(p)).count(),
            left_pending: self
                .pods
                .iter()
                .filter(|p| p.first_bound.is_none() && p.left_pending)
                .count(),
            nodes_launched: self.nodes_launched,
            peak_nodes: self.peak_nodes,
            share_violations,
            share_violations_by_time,
            share_violations_by_throughput,
            memory_violations,
            disruptions: self.disruptions,
            repack_moves: self.repack_moves,
            repack_rollbacks: self.repack_rollbacks,
            pods_restarted: self.pods_restarted,
            restarts_per_day: if self.t_end > self.t0 {
                self.pods_restarted as f64 * 86_400.0 / (self.t_end - self.t0) as f64
            } else {
                0.0
            },
            overlap_node_hours: self.overlap_s as f64 / 3600.0,
            pending_times_s: pending_times,
            series: self.series.clone(),
        }
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// A repack move in the replay.
#[derive(Debug, Clone)]
pub(super) struct RepackMove {
    /// The nodes it replaces (tainted `disrupting` while it runs).
    pub replaced: Vec<usize>,
    /// The nodes it launched.
    pub replacements: Vec<usize>,
    /// Still running: some replacement is not ready yet.
    pub open: bool,
    /// Where the move's plan put each pod: (pod, node), onto nodes that stay and onto the
    /// replacements.
    pub planned: Vec<(usize, usize)>,
}
