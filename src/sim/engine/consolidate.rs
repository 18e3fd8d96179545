//! Consolidation (Karpenter's `WhenEmptyOrUnderutilized`, by method; see the module
//! docs of `engine`, "Consolidation"). Pure, on the replay's state.

use std::cmp::Reverse;

use super::cluster::{Cluster, Use};
use crate::sim::Consolidation;

/// At most this many nodes go in one multi-node consolidation (Karpenter's own cap).
const MULTI_MAX: usize = 100;

/// What consolidating a set of nodes takes: pods moved onto other nodes, and for the
/// rest, if any, one new node of `(type, R)`.
struct Decision {
    moves: Vec<(usize, usize)>,
    replacement: Option<(usize, u32)>,
}

impl Cluster<'_> {
    /// A ready node that may be consolidated now.
    fn eligible(&self, n: usize) -> bool {
        let node = &self.nodes[n];
        node.ready
            && node.removed.is_none()
            && !node.disrupting
            && node.reserved.is_empty()
            && self.now().saturating_sub(node.last_change) >= self.cfg.consolidate_after_s
    }

    /// One consolidation pass at the current time: empty nodes, then (multi) N → ≤ 1
    /// nodes, then each node alone: deleted, or (replace, multi) replaced.
    pub(super) fn consolidate(&mut self) {
        let candidates: Vec<usize> = self
            .live
            .iter()
            .copied()
            .filter(|&n| self.eligible(n))
            .collect();
        let (empty, mut busy): (Vec<usize>, Vec<usize>) = candidates
            .into_iter()
            .partition(|&n| self.nodes[n].bound.is_empty());
        for n in empty {
            self.remove_node(n);
        }
        if self.consolidation == Consolidation::Empty {
            return;
        }
        // Fewest pods first (the cheapest to disrupt), then the most expensive, then id.
        busy.sort_by(|&a, &b| {
            let (na, nb) = (&self.nodes[a], &self.nodes[b]);
            na.bound
                .len()
                .cmp(&nb.bound.len())
                .then(self.tys[nb.ty].price.total_cmp(&self.tys[na.ty].price))
                .then(a.cmp(&b))
        });
        if self.consolidation == Consolidation::Multi && busy.len() >= 2 {
            self.multi(&busy);
        }
        busy.retain(|&n| self.nodes[n].fail_epoch != Some(self.epoch));
        for n in busy {
            // A node that received moved pods in this pass is no longer a candidate.
            if !self.eligible(n) {
                continue;
            }
            let replace = self.consolidation >= Consolidation::Replace;
            match self.decide(&[n], replace) {
                Some(d) => self.execute(&[n], d),
                None => self.nodes[n].fail_epoch = Some(self.epoch),
            }
        }
    }

    /// Multi-node consolidation: all candidates (up to 100) if they can go for at most
    /// one cheaper node, else the longest such prefix found by Karpenter's binary search
    /// (which assumes that validity shrinks with the prefix, and may miss one).
    fn multi(&mut self, busy: &[usize]) {
        let hi_max = busy.len().min(MULTI_MAX);
        let key = (self.epoch, busy[..hi_max].to_vec());
        if self.multi_fail.as_ref() == Some(&key) {
            return;
        }
        let mut best: Option<(usize, Decision)> =
            self.decide(&busy[..hi_max], true).map(|d| (hi_max, d));
        if best.is_none() {
            let (mut lo, mut hi) = (2, hi_max - 1);
            while lo <= hi {
                let mid = (lo + hi) / 2;
                match self.decide(&busy[..mid], true) {
                    Some(d) => {
                        best = Some((mid, d));
                        lo = mid + 1;
                    }
                    None => hi = mid - 1,
                }
            }
        }
        match best {
            Some((k, d)) => {
                self.multi_fail = None;
                self.execute(&busy[..k], d);
            }
            None => self.multi_fail = Some(key),
        }
    }

    /// Whether `set` can be consolidated: its pods first fit (largest first) onto the
    /// other ready nodes that run pods, by the scheduler's rules; the rest, if
    /// `replace`, onto one new node of the strategy's cheapest claim, which must cost
    /// less per hour than the nodes of `set` together.
    fn decide(&self, set: &[usize], replace: bool) -> Option<Decision> {
        let targets: Vec<usize> = self
            .live
            .iter()
            .copied()
            .filter(|&m| {
                !set.contains(&m) && self.nodes[m].ready && !self.nodes[m].bound.is_empty()
            })
            .collect();
        let (moves, rest) = self.plan_moves(set, &targets);
        if rest.is_empty() {
            return Some(Decision {
                moves,
                replacement: None,
            });
        }
        if !replace {
            return None;
        }
        let (ty, r) = self.cheapest_claim(&rest)?;
        let price: f64 = set.iter().map(|&n| self.tys[self.nodes[n].ty].price).sum();
        (self.tys[ty].price < price).then_some(Decision {
            moves,
            replacement: Some((ty, r)),
        })
    }

    /// First fit of the pods of `set` (largest first) onto `targets` in order: the moves,
    /// and the pods that fit nowhere.
    pub(super) fn plan_moves(
        &self,
        set: &[usize],
        targets: &[usize],
    ) -> (Vec<(usize, usize)>, Vec<usize>) {
        let mut used: Vec<Use> = targets.iter().map(|&m| self.nodes[m].used).collect();
        let mut pods: Vec<usize> = set
            .iter()
            .flat_map(|&n| self.nodes[n].bound.iter().copied())
            .collect();
        pods.sort_by_key(|&p| {
            let it = self.item(p);
            (
                Reverse(it.gpus),
                Reverse(it.requests.cpu_milli),
                Reverse(it.requests.memory_bytes),
                p,
            )
        });
        let mut moves = Vec::with_capacity(pods.len());
        let mut rest = Vec::new();
        for p in pods {
            match (0..targets.len()).find(|&i| self.sched_fits_with(p, targets[i], used[i])) {
                Some(i) => {
                    used[i] = used[i].plus(Use::of(self.item(p)));
                    moves.push((p, targets[i]));
                }
                None => rest.push(p),
            }
        }
        (moves, rest)
    }

    /// Carries a decision out: moves now and removes `set`; or launches the replacement,
    /// and taints `set` until it is ready ([`Cluster::finish_replacement`]).
    fn execute(&mut self, set: &[usize], d: Decision) {
        match d.replacement {
            None => {
                self.disruptions += self.move_and_remove(set, d.moves);
            }
            Some((ty, r)) => {
                let labels = self.karpenter_labels(ty, r);
                let new = self.launch(ty, r, labels, Vec::new(), String::new());
                self.nodes[new].replaces = set.to_vec();
                for &n in set {
                    self.nodes[n].disrupting = true;
                }
            }
        }
    }

    /// Moves pods (unbind, bind: the scheduler's slice-fit bookkeeping) and removes
    /// `set`, which the moves empty. Returns the pods moved.
    pub(super) fn move_and_remove(&mut self, set: &[usize], moves: Vec<(usize, usize)>) -> usize {
        let moved = moves.len();
        for (p, to) in moves {
            self.unbind(p);
            self.bind(p, to);
        }
        for &n in set {
            self.remove_node(n);
        }
        moved
    }

    /// The replacements `new` are all ready: the replaced nodes' pods move onto the
    /// other ready nodes that run pods, then onto `new` in order (first fit, largest
    /// first), and the replaced nodes go; returns the pods moved. If some pod fits
    /// nowhere now (capacity was taken meanwhile), nothing moves (`None`): the replaced
    /// nodes take pods again and `new` are consolidated like any node. Karpenter's
    /// replace consolidation calls it with its one replacement, repack with a move's.
    pub(super) fn finish_replacement(
        &mut self,
        new: &[usize],
        replaced: &[usize],
    ) -> Option<usize> {
        let mut targets: Vec<usize> = self
            .live
            .iter()
            .copied()
            .filter(|&m| {
                !new.contains(&m)
                    && !replaced.contains(&m)
                    && self.nodes[m].ready
                    && !self.nodes[m].bound.is_empty()
            })
            .collect();
        targets.extend_from_slice(new);
        let (moves, rest) = self.plan_moves(replaced, &targets);
        if rest.is_empty() {
            Some(self.move_and_remove(replaced, moves))
        } else {
            self.epoch += 1;
            for &m in replaced {
                self.nodes[m].disrupting = false;
                self.schedule_onto(m);
            }
            None
        }
    }
}
