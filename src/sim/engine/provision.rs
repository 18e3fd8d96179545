//! Batch close: Karpenter-like provisioning (strategies a, b, c, e), the claims
//! Karpenter would open (also for consolidation's replacements), and gpu-slicer's round
//! (strategy d). See the module docs of `engine` for the algorithm.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use super::cluster::{Cluster, Use};
use crate::model::slice::{NodeSharing, Slice};
use crate::model::{CapacityType, DemandItem, Operator, Pool, Resources, labels};
use crate::planner::{self, PlannedNode, effective_pools};
use crate::reconcile::round::{FleetNode, Used, assign_in_flight};
use crate::sim::{OVERLAY_SAFE_REPLICAS, Strategy};

/// A node claim opened in this batch.
struct Claim {
    /// Types that can still hold all its pods.
    types: Vec<usize>,
    pods: Vec<usize>,
    used: Use,
    /// Its NodePool's R and the slices per GPU Karpenter believes a node of it has.
    r: u32,
    per_gpu: u32,
}

impl Cluster<'_> {
    /// Node `n` as a round sees it in the fleet: an in-flight node counts the room its
    /// reservations took, a ready one what its pods use.
    pub(super) fn fleet_node(&self, n: usize, ct: CapacityType, in_flight: bool) -> FleetNode {
        let node = &self.nodes[n];
        let used = if in_flight {
            &node.reserved_use
        } else {
            &node.used
        };
        FleetNode {
            name: n.to_string(),
            pool: node.pool.clone(),
            instance_type: self.catalog.types[self.tys[node.ty].cat].name.clone(),
            capacity_type: ct,
            replicas: node.r,
            zone: node.labels.get(labels::ZONE).cloned(),
            in_flight,
            used: Used {
                slices: used.slices,
                requests: Resources::new(used.cpu, used.mem),
                pods: u32::try_from(used.pods).unwrap_or(u32::MAX),
            },
            labels: node.labels.clone(),
            taints: node.taints.clone(),
        }
    }

    /// The batch closed: provision for the pending pods without a reservation.
    pub(super) fn provision(&mut self) {
        let pods: Vec<usize> = self
            .pending
            .iter()
            .map(|&(_, p)| p)
            .filter(|&p| self.pods[p].reserved.is_none() && !self.pods[p].unprovisionable)
            .collect();
        if pods.is_empty() {
            return;
        }
        match self.strategy {
            Strategy::GpuSlicer => self.provision_gpu_slicer(pods),
            _ => self.provision_karpenter(pods),
        }
    }

    /// The NodePools a Karpenter-like strategy opens claims in, in the order Karpenter
    /// tries them: (real R, slices per GPU Karpenter believes a new node has). Empty for
    /// gpu-slicer.
    pub(super) fn claim_options(&self) -> Vec<(u32, u32)> {
        match self.strategy {
            Strategy::Dedicated => vec![(1, 1)],
            Strategy::SlicingUnaware { .. } => vec![(self.r, 1)],
            Strategy::FixedOverlay { .. } => vec![(self.r, self.r)],
            Strategy::OverlaySafe => OVERLAY_SAFE_REPLICAS.iter().map(|&r| (r, r)).collect(),
            Strategy::GpuSlicer => Vec::new(),
        }
    }

    /// A claim of type `t` in pool (r, per_gpu) may take pod `p` with `used` in total.
    fn claim_takes(&self, p: usize, t: usize, r: u32, per_gpu: u32, used: Use) -> bool {
        used.within(self.tys[t].capacity(per_gpu))
            && self.type_admits(p, t)
            && self.slice_admits(p, t, r)
    }

    /// The claim Karpenter would open for `pods` together: in the first pool where some
    /// type holds them all, the cheapest such type (ties: catalog order); `(type, R)`.
    pub(super) fn cheapest_claim(&self, pods: &[usize]) -> Option<(usize, u32)> {
        let used = pods
            .iter()
            .fold(Use::default(), |a, &p| a.plus(Use::of(self.item(p))));
        self.claim_options().into_iter().find_map(|(r, per)| {
            (0..self.tys.len())
                .filter(|&t| pods.iter().all(|&p| self.claim_takes(p, t, r, per, used)))
                .min_by(|&a, &b| {
                    self.tys[a]
                        .price
                        .total_cmp(&self.tys[b].price)
                        .then(a.cmp(&b))
                })
                .map(|t| (t, r))
        })
    }

    /// The labels a Karpenter-like node of type `ty` at R gets beyond its type's: the
    /// slice labels, for overlay-safe (its pools label their nodes).
    pub(super) fn karpenter_labels(&self, ty: usize, r: u32) -> BTreeMap<String, String> {
        if !self.strategy.labels_slices() {
            return BTreeMap::new();
        }
        self.slice(ty, r)
            .labels()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    fn provision_karpenter(&mut self, mut pods: Vec<usize>) {
        pods.sort_by_key(|&p| {
            let it = self.item(p);
            (
                Reverse(it.requests.cpu_milli),
                Reverse(it.requests.memory_bytes),
                self.jobs[p].arrival,
                p,
            )
        });
        // In-flight nodes, not the replacements consolidation launched for other pods.
        let in_flight: Vec<usize> = self
            .live
            .iter()
            .copied()
            .filter(|&n| !self.nodes[n].ready && self.nodes[n].replaces.is_empty())
            .collect();
        let options = self.claim_options();
        let mut claims: Vec<Claim> = Vec::new();
        for p in pods {
            let u = Use::of(self.item(p));
            // 1. In-flight nodes, with the capacity Karpenter believes they have.
            let spot = in_flight.iter().copied().find(|&n| {
                self.nodes[n].reserved_use.plus(u).within(self.believed(n))
                    && self.labels_admit(p, n)
            });
            if let Some(n) = spot {
                self.reserve(p, n);
                continue;
            }
            // 2. A claim of this batch, first fit.
            let mut placed = false;
            for c in &mut claims {
                let used = c.used.plus(u);
                let types: Vec<usize> = c
                    .types
                    .iter()
                    .copied()
                    .filter(|&t| self.claim_takes(p, t, c.r, c.per_gpu, used))
                    .collect();
                if !types.is_empty() {
                    c.types = types;
                    c.used = used;
                    c.pods.push(p);
                    placed = true;
                    break;
                }
            }
            if placed {
                continue;
            }
            // 3. A new claim, in the first pool with a type that holds the pod alone,
            //    with every such type.
            let claim = options.iter().find_map(|&(r, per_gpu)| {
                let types: Vec<usize> = (0..self.tys.len())
                    .filter(|&t| self.claim_takes(p, t, r, per_gpu, u))
                    .collect();
                (!types.is_empty()).then_some(Claim {
                    types,
                    pods: vec![p],
                    used: u,
                    r,
                    per_gpu,
                })
            });
            match claim {
                Some(c) => claims.push(c),
                None => self.pods[p].unprovisionable = true,
            }
        }
        for c in claims {
            // The cheapest type left (ties: catalog order). A claim's set is never empty.
            let Some(ty) = c.types.iter().copied().min_by(|&a, &b| {
                self.tys[a]
                    .price
                    .total_cmp(&self.tys[b].price)
                    .then(a.cmp(&b))
            }) else {
                continue;
            };
            let labels = self.karpenter_labels(ty, c.r);
            let n = self.launch(ty, c.r, labels, Vec::new(), String::new());
            for p in c.pods {
                self.reserve(p, n);
            }
        }
    }

    fn provision_gpu_slicer(&mut self, pods: Vec<usize>) {
        let pools = effective_pools(&self.plan_opts);
        let ct = self.cfg.capacity_type;
        // Pods under their index as id, so the answers map back without ambiguity.
        let items: Vec<DemandItem> = pods
            .iter()
            .map(|&p| {
                let mut it = self.item(p).clone();
                it.id = p.to_string();
                it
            })
            .collect();
        let fleet: Vec<FleetNode> = self
            .live
            .iter()
            .copied()
            // In-flight nodes, not repack's replacements (their room is for the pods
            // they replace).
            .filter(|&n| !self.nodes[n].ready && self.nodes[n].in_move.is_none())
            .map(|n| self.fleet_node(n, ct, true))
            .collect();
        let (rest, onto) = assign_in_flight(&items, &fleet, self.catalog, &pools, &self.plan_opts);
        for (pod, node) in onto {
            if let (Ok(p), Ok(n)) = (pod.parse::<usize>(), node.parse::<usize>()) {
                self.reserve(p, n);
            }
        }
        if rest.is_empty() {
            return;
        }
        let plan = planner::plan_with(self.catalog, &rest, &self.plan_opts, &mut self.columns);
        for u in &plan.unplaced {
            if let Ok(p) = u.pod.parse::<usize>() {
                self.pods[p].unprovisionable = true;
            }
        }
        for pn in &plan.nodes {
            let ids: Vec<usize> = pn.pods.iter().filter_map(|s| s.parse().ok()).collect();
            let Some(n) = self.launch_planned(pn, &pools) else {
                // Not a type this simulation launches (cannot happen with the capacity
                // type forced): its pods are not provisioned.
                for p in ids {
                    self.pods[p].unprovisionable = true;
                }
                continue;
            };
            for p in ids {
                self.reserve(p, n);
            }
        }
    }

    /// The type and pool of a planned node, if this simulation launches that type and
    /// the pool is among `pools`.
    pub(super) fn planned_type<'p>(
        &self,
        pn: &PlannedNode,
        pools: &'p [Pool],
    ) -> Option<(usize, &'p Pool)> {
        let ty = *self.ty_by_name.get(&pn.instance_type)?;
        let pool = pools.iter().find(|p| p.name == pn.node_pool)?;
        Some((ty, pool))
    }

    /// Launches a node the planner planned, as the controller would: its instance type
    /// and R, its pool's labels and taints, the slice labels (the type's GPU memory less
    /// the pool's headroom, at its R, shared by MPS where the plan says so) and its zone.
    /// Reserves nothing. `None` (nothing launched) when [`Cluster::planned_type`] finds no
    /// type or pool.
    pub(super) fn launch_planned(&mut self, pn: &PlannedNode, pools: &[Pool]) -> Option<usize> {
        let (ty, pool) = self.planned_type(pn, pools)?;
        let mut node_labels = pool_labels(pool, self.catalog.types.first());
        let usable = self.tys[ty]
            .gpu_mem
            .saturating_sub(pool.gpu_memory_headroom_mib);
        let slice = Slice::of_node(
            usable,
            1000,
            pn.replicas_per_gpu,
            pn.sharing == NodeSharing::Mps.as_str(),
            self.plan_opts.efficiency(Some(pool)),
        );
        for (k, v) in slice.labels() {
            node_labels.insert(k.to_string(), v);
        }
        if let Some(z) = &pn.zone {
            node_labels.insert(labels::ZONE.to_string(), z.clone());
        }
        Some(self.launch(
            ty,
            pn.replicas_per_gpu,
            node_labels,
            pool.taints.clone(),
            pool.name.clone(),
        ))
    }
}

/// The labels a node of the pool carries beyond its instance type's, as the planner
/// models them: the pool's template labels, its name, and single-valued `In`
/// requirements on keys that are not instance-type labels.
fn pool_labels(
    pool: &Pool,
    any_type: Option<&crate::model::InstanceType>,
) -> BTreeMap<String, String> {
    let mut extra = pool.labels.clone();
    extra.insert(labels::NODEPOOL.to_string(), pool.name.clone());
    for r in &pool.requirements {
        let known = any_type.is_some_and(|t| t.label(&r.key).is_some())
            || r.key == labels::CAPACITY_TYPE
            || r.key == labels::ZONE
            || r.key == labels::ZONE_BETA;
        if !known
            && r.operator == Operator::In
            && let Some(v) = r.values.first()
        {
            extra.entry(r.key.clone()).or_insert_with(|| v.clone());
        }
    }
    extra
}
