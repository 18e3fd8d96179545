//! gpu-slicer's defragmentation ("repack") in the replay (pure, on the replay's state):
//! every `SimConfig::repack_interval_s` the fleet's ready nodes are handed to the
//! controller's own decision, `reconcile::repack::propose`, and the move it chooses is
//! carried out as the controller would: replacements launched, replaced nodes tainted
//! until every replacement is ready, then the pods moved and the replaced nodes removed,
//! or the move rolled back. See the module docs of `engine`, "Repack".

use std::collections::BTreeMap;

use serde_json::json;

use super::cluster::{Cluster, REPACK, RepackMove};
use crate::planner::{PlanOptions, effective_pools};
use crate::reconcile::repack::{self, Node, RepackInputs, RunningPod, Settings};

/// The rate limit's window, seconds (`--repack-max-nodes-per-hour`).
const HOUR_S: u64 = 3600;

impl Cluster<'_> {
    /// One repack round (the `REPACK` event): the next round is queued, then at most one
    /// move is proposed and started.
    pub(super) fn repack(&mut self) {
        let next = self.now().saturating_add(self.cfg.repack_interval_s);
        if next <= self.t_end() {
            self.push(next, REPACK, 0);
        }
        let now = self.now();
        while self
            .repacked
            .front()
            .is_some_and(|&(t, _)| t.saturating_add(HOUR_S) <= now)
        {
            self.repacked.pop_front();
        }
        let recent: usize = self.repacked.iter().map(|&(_, k)| k).sum();
        let allowance = self.cfg.repack_max_nodes_per_hour.saturating_sub(recent);
        if allowance == 0 {
            return;
        }
        let nodes = self.repack_nodes();
        if nodes.is_empty() {
            return;
        }
        let pools = effective_pools(&self.plan_opts);
        let plan = PlanOptions {
            pools: pools.clone(),
            ..self.plan_opts.clone()
        };
        let budgets = self.repack_budgets();
        let settings = Settings {
            min_saving: self.cfg.repack_min_saving,
            min_pod_age_s: self.cfg.repack_min_pod_age_s,
        };
        let proposal = repack::propose(
            &RepackInputs {
                catalog: self.catalog,
                nodes: &nodes,
                pools: &pools,
                plan: &plan,
                budgets: &budgets,
                allowance,
            },
            &settings,
        );
        let Some(chosen) = proposal.chosen else {
            return;
        };
        let replaced: Vec<usize> = chosen
            .replaced
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        // Every replacement must be launchable (it always is: the planner plans only the
        // simulation's types and pools); a move that is not is dropped whole.
        if replaced.len() != chosen.replaced.len()
            || chosen
                .plan
                .nodes
                .iter()
                .any(|pn| self.planned_type(pn, &pools).is_none())
        {
            return;
        }
        let m = self.moves.len();
        let mut replacements = Vec::with_capacity(chosen.plan.nodes.len());
        let mut planned: Vec<(usize, usize)> = chosen
            .onto_kept
            .iter()
            .filter_map(|(p, n)| Some((p.parse().ok()?, n.parse().ok()?)))
            .collect();
        for pn in &chosen.plan.nodes {
            if let Some(n) = self.launch_planned(pn, &pools) {
                self.nodes[n].in_move = Some(m);
                replacements.push(n);
                planned.extend(pn.pods.iter().filter_map(|p| Some((p.parse().ok()?, n))));
            }
        }
        for &n in &replaced {
            self.nodes[n].disrupting = true;
        }
        self.repacked.push_back((now, replaced.len()));
        self.moves.push(RepackMove {
            replaced,
            replacements,
            open: true,
            planned,
        });
        if self.moves[m].replacements.is_empty() {
            // Every pod fits the nodes that stay: nothing to wait for.
            self.repack_replacement_ready(m);
        }
    }

    /// The fleet as repacking sees it: ready nodes not part of a move, with their bound
    /// pods (id = pod index, age = time since the pod was last bound).
    fn repack_nodes(&self) -> Vec<Node> {
        let now = self.now();
        let ct = self.cfg.capacity_type;
        self.live
            .iter()
            .copied()
            .filter(|&n| {
                let node = &self.nodes[n];
                node.ready && !node.disrupting && node.in_move.is_none()
            })
            .map(|n| {
                let node = &self.nodes[n];
                let pods = node
                    .bound
                    .iter()
                    .map(|&p| {
                        let mut item = self.item(p).clone();
                        item.id = p.to_string();
                        RunningPod {
                            item,
                            age_s: now.saturating_sub(self.pods[p].bound_since),
                            do_not_disrupt: false,
                            unmovable: None,
                        }
                    })
                    .collect();
                Node {
                    fleet: self.fleet_node(n, ct, false),
                    claim: Some(n.to_string()),
                    nodepool: Some(node.pool.clone()),
                    pods,
                    moving: false,
                }
            })
            .collect()
    }

    /// The disruption budget per pool: `repack_budget_pct` % of its ready nodes, rounded
    /// up, less those being replaced now (10 %: Karpenter's default, what a NodePool
    /// without `budgets` allows). `propose` reads 0 as "pinned".
    fn repack_budgets(&self) -> BTreeMap<String, u32> {
        let mut count: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for &n in &self.live {
            let node = &self.nodes[n];
            if node.ready {
                let e = count.entry(node.pool.as_str()).or_default();
                e.0 += 1;
                e.1 += usize::from(node.disrupting);
            }
        }
        let nodepool = json!({"spec": {"disruption": {"budgets": [
            {"nodes": format!("{}%", self.cfg.repack_budget_pct)}
        ]}}});
        count
            .into_iter()
            .map(|(pool, (nodes, disrupting))| {
                // A percentage budget cannot fail to read; 0 (no move) if it did.
                let allowed =
                    repack::allowed_disruptions(&nodepool, nodes, disrupting).unwrap_or(0);
                (pool.to_string(), allowed)
            })
            .collect()
    }

    /// A replacement of move `m` became ready (or the move has none). Once all are, the
    /// replaced nodes' pods move by the scheduler's rules and the replaced nodes go, or,
    /// if some pod fits nowhere now, the move rolls back; then the scheduler's pass runs
    /// on the replacements. Their readiness comes in one second (they launched together),
    /// so pending pods do not take their room before the move.
    pub(super) fn repack_replacement_ready(&mut self, m: usize) {
        let mv = &self.moves[m];
        if !mv.open || mv.replacements.iter().any(|&n| !self.nodes[n].ready) {
            return;
        }
        let (replaced, replacements) = (mv.replaced.clone(), mv.replacements.clone());
        self.moves[m].open = false;
        for &n in &replacements {
            self.nodes[n].in_move = None;
            self.overlap_s += self.now() - self.nodes[n].launched;
        }
        if self.cfg.repack_steer
            && let Some(moves) = self.steered(m)
        {
            self.repack_moves += 1;
            self.pods_restarted += self.move_and_remove(&replaced, moves);
            for n in replacements {
                self.schedule_onto(n);
            }
            return;
        }
        match self.finish_replacement(&replacements, &replaced) {
            Some(moved) => {
                self.repack_moves += 1;
                self.pods_restarted += moved;
            }
            None => self.repack_rollbacks += 1,
        }
        for n in replacements {
            self.schedule_onto(n);
        }
    }

    /// `repack_steer`: the replaced nodes' pods onto the nodes the move's plan chose, if
    /// each still fits there by the scheduler's rules (labels, slice labels, every
    /// dimension) with the pods placed before it.
    fn steered(&self, m: usize) -> Option<Vec<(usize, usize)>> {
        let mv = &self.moves[m];
        let mut used: BTreeMap<usize, super::cluster::Use> = BTreeMap::new();
        let mut moves = Vec::new();
        for &r in &mv.replaced {
            for &p in &self.nodes[r].bound {
                let &(_, to) = mv.planned.iter().find(|&&(q, _)| q == p)?;
                let u = *used.entry(to).or_insert(self.nodes[to].used);
                if !self.sched_fits_with(p, to, u) {
                    return None;
                }
                used.insert(to, u.plus(super::cluster::Use::of(self.item(p))));
                moves.push((p, to));
            }
        }
        Some(moves)
    }
}
