//! Consolidation (a simplified `WhenEmptyOrUnderutilized`; see the module docs of
//! `engine`).

use std::cmp::Reverse;

use super::cluster::{Cluster, Use};

impl Cluster<'_> {
    /// One consolidation pass at the current time.
    pub(super) fn consolidate(&mut self) {
        let now = self.now();
        let after = self.cfg.consolidate_after_s;
        let eligible = |c: &Cluster<'_>, n: usize| {
            let node = &c.nodes[n];
            node.ready
                && node.removed.is_none()
                && node.reserved.is_empty()
                && now.saturating_sub(node.last_change) >= after
        };
        let candidates: Vec<usize> = self
            .live
            .iter()
            .copied()
            .filter(|&n| eligible(self, n))
            .collect();
        let (empty, mut busy): (Vec<usize>, Vec<usize>) = candidates
            .into_iter()
            .partition(|&n| self.nodes[n].bound.is_empty());
        for n in empty {
            self.remove_node(n);
        }
        busy.retain(|&n| self.nodes[n].fail_epoch != Some(self.epoch));
        busy.sort_by(|&a, &b| {
            let (na, nb) = (&self.nodes[a], &self.nodes[b]);
            na.bound
                .len()
                .cmp(&nb.bound.len())
                .then(self.tys[nb.ty].price.total_cmp(&self.tys[na.ty].price))
                .then(a.cmp(&b))
        });
        for n in busy {
            // A node that received moved pods in this pass is no longer a candidate.
            if !eligible(self, n) {
                continue;
            }
            match self.moves_for(n) {
                Some(moves) => {
                    for (p, to) in moves {
                        self.unbind(p);
                        self.bind(p, to);
                        self.disruptions += 1;
                    }
                    self.remove_node(n);
                }
                None => self.nodes[n].fail_epoch = Some(self.epoch),
            }
        }
    }

    /// Where node `n`'s pods would go, first fit (largest first) onto the other ready
    /// nodes that run pods, by the scheduler's rules; `None` if some pod fits nowhere.
    fn moves_for(&self, n: usize) -> Option<Vec<(usize, usize)>> {
        let targets: Vec<usize> = self
            .live
            .iter()
            .copied()
            .filter(|&m| m != n && self.nodes[m].ready && !self.nodes[m].bound.is_empty())
            .collect();
        if targets.is_empty() {
            return None;
        }
        let mut used: Vec<Use> = targets.iter().map(|&m| self.nodes[m].used).collect();
        let mut pods = self.nodes[n].bound.clone();
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
        for p in pods {
            let i = (0..targets.len()).find(|&i| self.sched_fits_with(p, targets[i], used[i]))?;
            used[i] = used[i].plus(Use::of(self.item(p)));
            moves.push((p, targets[i]));
        }
        Some(moves)
    }
}
