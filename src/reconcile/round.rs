//! One planning round, pure: pending pods first go onto capacity gpu-slicer has already
//! launched but that cannot take pods yet (in flight); the rest is planned; the plan is
//! checked against the budgets; the fleet plus the plan is rendered; the result is
//! compared with the objects gpu-slicer owns. The caller writes the actions.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Actions, ObjectKey, diff, is_owned};
use crate::catalog;
use crate::config::DevicePluginConfig;
use crate::guard::{self, Budget, Existing, Refusal};
use crate::model::slice::{
    Efficiency, FitRules, NodeSharing, SLICE_THROUGHPUT_LABEL, Slice, SliceNeed,
};
use crate::model::{
    CapacityType, Catalog, DemandItem, Pool, Resources, Sharing, Taint, tolerates_all,
};
use crate::planner::{self, Plan, PlanOptions, PlannedNode};
use crate::render::{self, Emission, Frame, RenderError, RenderOptions};

/// A node gpu-slicer runs or has launched: a Node, or a NodeClaim whose Node has not
/// registered yet.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetNode {
    /// Node name (or NodeClaim name while in flight).
    pub name: String,
    /// The gpu-slicer pool (`gpu-slicer.io/pool`).
    pub pool: String,
    pub instance_type: String,
    pub capacity_type: CapacityType,
    pub replicas: u32,
    /// Zone its NodePool pins, if any.
    pub zone: Option<String>,
    /// Cannot take pods yet: no Node, not Ready, or still `slicing-pending`.
    pub in_flight: bool,
    /// What pods bound to it already take.
    pub used: Used,
    /// Its node labels beyond the instance type's (pool labels, capacity type, zone).
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
}

impl FleetNode {
    /// Its GPUs are shared by MPS (its `gpu-slicer.io/sharing-strategy` label says `mps`).
    pub fn mps(&self) -> bool {
        NodeSharing::is_mps_labelled(&self.labels)
    }

    /// Its slice (`model::slice`) on GPUs with `usable_gpu_memory_mib` after headroom,
    /// rated with its pool's efficiencies `e`; the throughput its
    /// `slice-throughput-milli` label states where it has one (what the kube-scheduler
    /// matches, whatever the settings are now).
    fn slice(&self, usable_gpu_memory_mib: u64, fraction_milli: u32, e: Efficiency) -> Slice {
        let s = Slice::of_node(
            usable_gpu_memory_mib,
            fraction_milli,
            self.replicas,
            self.mps(),
            e,
        );
        match self
            .labels
            .get(SLICE_THROUGHPUT_LABEL)
            .and_then(|v| v.parse::<u32>().ok())
        {
            Some(t) => Slice {
                throughput_milli: t,
                ..s
            },
            None => s,
        }
    }
}

/// Capacity already taken on a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Used {
    pub slices: u64,
    pub requests: Resources,
    pub pods: u32,
}

/// The round's inputs, read from the caches.
pub struct RoundInputs<'a> {
    pub catalog: &'a Catalog,
    /// Pending, unschedulable GPU pods (namespace lists already applied).
    pub pending: &'a [DemandItem],
    pub fleet: &'a [FleetNode],
    /// Annotated NodePools and their objects.
    pub pools: &'a [(Pool, Value)],
    pub ec2nodeclasses: &'a [Value],
    pub device_plugin: Option<&'a DevicePluginConfig>,
    /// Live objects of the kinds gpu-slicer writes (owned or not).
    pub live: &'a [Value],
    /// Nodes per NodePool/Provisioner (for draining instead of deleting).
    pub nodes_of: &'a dyn Fn(&ObjectKey) -> usize,
}

/// How the round plans, renders and guards.
#[derive(Debug, Clone)]
pub struct Settings {
    pub plan: PlanOptions,
    pub render: RenderOptions,
    pub budget: Budget,
}

/// What the round decided.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The plan for the pods not absorbed by in-flight capacity (new nodes only).
    pub plan: Plan,
    /// Pods expected to land on in-flight nodes: (pod, node).
    pub onto_fleet: Vec<(String, String)>,
    /// Budget refusals: when present nothing is written.
    pub refusals: Vec<Refusal>,
    /// Configuration that could not be rendered: nothing is written.
    pub error: Option<RenderError>,
    pub actions: Actions,
    /// Desired objects whose names are taken by objects gpu-slicer does not own.
    pub conflicts: Vec<ObjectKey>,
    pub modes: BTreeMap<String, Emission>,
    /// What the round decided on the pools' behalf (a pool's MPS its AMI cannot run).
    pub notes: Vec<String>,
}

/// Runs one round.
pub fn round(inp: &RoundInputs<'_>, settings: &Settings) -> Outcome {
    round_with(inp, settings, &mut planner::Columns::default())
}

/// [`round`], planning from the columns of earlier rounds and keeping this round's.
pub fn round_with(
    inp: &RoundInputs<'_>,
    settings: &Settings,
    columns: &mut planner::Columns,
) -> Outcome {
    let mut pools: Vec<Pool> = if inp.pools.is_empty() {
        crate::planner::effective_pools(&settings.plan)
    } else {
        inp.pools.iter().map(|(p, _)| p.clone()).collect()
    };
    let generated = (
        settings.render.ami_family,
        settings.render.ami_version.as_str(),
    );
    // A pool asking for MPS its AMI cannot run is a configuration error: the round still
    // plans (for `/plan`), but writes nothing, like any other render error.
    let (sharing_notes, sharing_error) =
        match render::settle_sharing(&mut pools, inp.pools, inp.ec2nodeclasses, Some(generated)) {
            Ok(n) => (n, None),
            Err(e) => (Vec::new(), Some(e)),
        };
    let (remaining, onto_fleet) =
        assign_in_flight(inp.pending, inp.fleet, inp.catalog, &pools, &settings.plan);
    let mut plan_opts = settings.plan.clone();
    if !inp.pools.is_empty() {
        plan_opts.pools = pools.clone();
    }
    let plan = planner::plan_with(inp.catalog, &remaining, &plan_opts, columns);
    let mut out = Outcome {
        plan,
        onto_fleet,
        refusals: Vec::new(),
        error: None,
        actions: Actions::default(),
        conflicts: Vec::new(),
        modes: BTreeMap::new(),
        notes: sharing_notes,
    };
    if let Some(e) = sharing_error {
        out.error = Some(e);
        return out;
    }
    let existing = existing_cost(inp.fleet, inp.catalog);
    if let Err(r) = guard::check(&out.plan, &pools, inp.catalog, &settings.budget, &existing) {
        out.refusals = r;
        return out;
    }
    let fleet: Vec<PlannedNode> = inp
        .fleet
        .iter()
        .filter_map(|f| as_planned(f, inp.catalog, &pools))
        .collect();
    let frame = Frame {
        pools: inp.pools,
        ec2nodeclasses: inp.ec2nodeclasses,
        device_plugin: inp.device_plugin,
        fleet: &fleet,
    };
    let rendered = match render::render(&out.plan, inp.catalog, frame, &settings.render) {
        Ok(r) => r,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    out.modes = rendered.modes.clone();
    let mut desired = rendered.objects;
    rename_taken_claims(&mut desired, inp.live);
    // Standalone NodeClaims gpu-slicer made earlier stay (their nodes run pods); only
    // Karpenter removes them, when their instance goes away.
    desired.extend(
        inp.live
            .iter()
            .filter(|o| o.get("kind").and_then(Value::as_str) == Some("NodeClaim") && is_owned(o))
            .cloned(),
    );
    let (actions, conflicts) = diff(&desired, inp.live, inp.nodes_of);
    out.actions = actions;
    out.conflicts = conflicts;
    out
}

/// Gives a new NodeClaim whose name an existing NodeClaim already has the first free name
/// `<name>-<k>` (k = 1, 2, …; deterministic for the same live objects).
///
/// A new claim is named by a hash of the pods planned onto it, and only pods the in-flight
/// claims have no room for are planned. Those are assigned first-fit in pod-id order, so a
/// newer pod (`ml/p-10` sorts before `ml/p-9`) can take the claim launched for an older
/// one; the older pod, planned alone again, hashed to the name of its first claim, and
/// "launching" it wrote nothing: the pod waited without capacity for good (found by
/// tests/controller_chaos.rs, `a_pod_replanned_alone_gets_a_new_claim_not_the_name_of_its_first`).
/// A new claim never stands for an existing one: it is capacity the live claims lack.
fn rename_taken_claims(desired: &mut [Value], live: &[Value]) {
    let claim_name = |o: &Value| {
        (o.get("kind").and_then(Value::as_str) == Some("NodeClaim"))
            .then(|| o.pointer("/metadata/name").and_then(Value::as_str))
            .flatten()
            .map(str::to_string)
    };
    let existing: std::collections::BTreeSet<String> = live.iter().filter_map(claim_name).collect();
    let mut taken = existing.clone();
    taken.extend(desired.iter().filter_map(claim_name));
    for o in desired.iter_mut() {
        let Some(name) = claim_name(o).filter(|n| existing.contains(n)) else {
            continue;
        };
        let Some(free) = (1..)
            .map(|k| render::fit_name(&format!("{name}-{k}"), render::NAME_MAX))
            .find(|n| !taken.contains(n))
        else {
            continue;
        };
        taken.insert(free.clone());
        if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("name".into(), Value::String(free));
        }
    }
}

/// What the fleet costs and holds per pool (for the budget guard).
pub fn existing_cost(fleet: &[FleetNode], cat: &Catalog) -> Existing {
    let mut e = Existing::default();
    for f in fleet {
        let t = catalog::find(cat, &f.instance_type);
        let price = t.and_then(|t| t.price(f.capacity_type)).unwrap_or(0.0);
        e.per_pool.entry(f.pool.clone()).or_default().add(t, price);
    }
    e
}

/// A fleet node as a plan node (for rendering its pool); `None` for an unknown type.
/// `pools` give its pool's GPU memory headroom (none when its pool is not among them);
/// its throughput is its label's, else its pool's own efficiencies', else the measured
/// ones' (a node labelled before the label existed).
pub fn as_planned(f: &FleetNode, cat: &Catalog, pools: &[Pool]) -> Option<PlannedNode> {
    let t = catalog::find(cat, &f.instance_type)?;
    let usable = t.gpu_memory_mib.saturating_sub(headroom_of(pools, &f.pool));
    let e = pools
        .iter()
        .find(|p| p.name == f.pool)
        .map_or(Efficiency::MEASURED, |p| p.efficiency(Efficiency::MEASURED));
    let slice = f.slice(usable, t.gpu_fraction_milli, e);
    Some(PlannedNode {
        instance_type: t.name.clone(),
        capacity_type: f.capacity_type,
        gpus: t.gpu_count,
        gpu_model: t.gpu_name.clone(),
        gpu_memory_mib: t.gpu_memory_mib,
        replicas_per_gpu: f.replicas,
        slice_gpu_memory_mib: slice.gpu_memory_mib,
        slice_share_milli: slice.share_milli,
        slice_throughput_milli: slice.throughput_milli,
        sharing: slice.sharing.as_str().to_string(),
        profile: slice.profile(),
        hourly_price: t.price(f.capacity_type).unwrap_or(0.0),
        pods: Vec::new(),
        node_pool: f.pool.clone(),
        zone: f.zone.clone(),
        spot_hourly_price: t.spot_price,
    })
}

/// The GPU memory headroom of the pool named `name`, MiB (0 when it is not among `pools`).
fn headroom_of(pools: &[Pool], name: &str) -> u64 {
    pools
        .iter()
        .find(|p| p.name == name)
        .map_or(0, |p| p.gpu_memory_headroom_mib)
}

/// Free capacity of an in-flight node.
struct Free {
    node: usize,
    requests: Resources,
    pods: u32,
    slices: u64,
    /// Usable GPU memory per GPU after the pool's headroom, MiB.
    gpu_mem: u64,
    /// The slice-fit rule's settings there (the pool's, else the planner's).
    rules: FitRules,
    efficiency: Efficiency,
    gpus: u32,
}

/// First fit of the pending pods (largest first) onto in-flight nodes, respecting every
/// dimension, GPU memory and share per slice, node labels and pool taints. Returns the
/// pods left and the (pod, node) placements.
pub fn assign_in_flight(
    pending: &[DemandItem],
    fleet: &[FleetNode],
    cat: &Catalog,
    pools: &[Pool],
    opts: &PlanOptions,
) -> (Vec<DemandItem>, Vec<(String, String)>) {
    let overhead = opts.daemonset_overhead;
    let mut free: Vec<Free> = fleet
        .iter()
        .enumerate()
        .filter(|(_, f)| f.in_flight)
        .filter_map(|(i, f)| {
            let t = catalog::find(cat, &f.instance_type)?;
            let (res, pods) = overhead.remaining(t);
            let pool = pools.iter().find(|p| p.name == f.pool);
            let headroom = pool.map_or(0, |p| p.gpu_memory_headroom_mib);
            Some(Free {
                node: i,
                requests: res.saturating_sub(f.used.requests),
                pods: pods.saturating_sub(f.used.pods),
                slices: (u64::from(t.gpu_count) * u64::from(f.replicas))
                    .saturating_sub(f.used.slices),
                gpu_mem: t.gpu_memory_mib.saturating_sub(headroom),
                rules: opts.fit_rules(pool),
                efficiency: opts.efficiency(pool),
                gpus: t.gpu_count,
            })
        })
        .collect();
    if free.is_empty() {
        return (pending.to_vec(), Vec::new());
    }
    let mut order: Vec<usize> = (0..pending.len()).collect();
    order.sort_by_key(|&i| {
        let p = &pending[i];
        (
            std::cmp::Reverse(p.gpus),
            std::cmp::Reverse(p.requests.cpu_milli),
            std::cmp::Reverse(p.requests.memory_bytes),
            p.id.clone(),
        )
    });
    let mut placed = vec![false; pending.len()];
    let mut onto = Vec::new();
    for i in order {
        let p = &pending[i];
        let spot = free.iter_mut().find(|fr| {
            let f = &fleet[fr.node];
            fits(p, f, fr, cat)
        });
        if let Some(fr) = spot {
            let f = &fleet[fr.node];
            fr.requests = fr.requests.saturating_sub(p.requests);
            fr.pods -= 1;
            fr.slices -= u64::from(p.gpus);
            placed[i] = true;
            onto.push((p.id.clone(), f.name.clone()));
        }
    }
    let left = pending
        .iter()
        .zip(&placed)
        .filter(|(_, done)| !**done)
        .map(|(p, _)| p.clone())
        .collect();
    (left, onto)
}

fn fits(p: &DemandItem, f: &FleetNode, fr: &Free, cat: &Catalog) -> bool {
    if fr.pods == 0 || !p.requests.fits_in(fr.requests) || u64::from(p.gpus) > fr.slices {
        return false;
    }
    let Some(t) = catalog::find(cat, &f.instance_type) else {
        return false;
    };
    // The slice-fit rule (`model::slice`), on the node's R and its pool's headroom (a
    // fractional type's one slice is its part of a GPU).
    let slice = f.slice(fr.gpu_mem, t.gpu_fraction_milli, fr.efficiency);
    if !SliceNeed::of(p, fr.rules).fits(&slice) {
        return false;
    }
    if p.sharing == Sharing::Exclusive && p.gpus > fr.gpus {
        return false;
    }
    let label = |k: &str| {
        f.labels.get(k).cloned().or_else(|| t.label(k)).or_else(|| {
            (k == crate::model::labels::CAPACITY_TYPE).then(|| f.capacity_type.as_str().to_string())
        })
    };
    p.matches_labels(&label) && tolerates_all(&p.tolerations, &f.taints)
}

#[cfg(test)]
pub(crate) mod tests;
