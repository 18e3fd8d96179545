//! The replay's invariant, checked after every event in the tests: no node over
//! capacity, gpu-slicer's reservations share- and memory-safe, and the engine's own
//! bookkeeping consistent.

use super::*;

impl Cluster<'_> {
    /// Checks that no node is over capacity (cpu, memory, pod slots, slices), that no
    /// in-flight node has more reserved than the provisioner believes it holds, that
    /// gpu-slicer's reservations are share- and memory-safe, and that the engine's
    /// bookkeeping (usage sums, pod phases, the pending queue) is consistent.
    pub fn check_capacity(&self) -> Result<(), InvariantError> {
        let mut seen_bound = 0usize;
        let mut seen_reserved = 0usize;
        for &n in &self.live {
            let node = &self.nodes[n];
            let name = &self.catalog.types[self.tys[node.ty].cat].name;
            let sum = |ps: &[usize]| {
                ps.iter()
                    .fold(Use::default(), |a, &p| a.plus(Use::of(self.item(p))))
            };
            let used = sum(&node.bound);
            if used != node.used {
                return Err(InvariantError::UsageRecorded {
                    node: n,
                    name: name.clone(),
                    used: format!("{used:?}"),
                    recorded: format!("{:?}", node.used),
                });
            }
            if let Some(what) = used.over(self.real(n)) {
                return Err(InvariantError::OverCapacity {
                    node: n,
                    name: name.clone(),
                    replicas: node.r,
                    what,
                    used: format!("{used:?}"),
                    capacity: format!("{:?}", self.real(n)),
                });
            }
            let reserved = sum(&node.reserved);
            if reserved != node.reserved_use {
                return Err(InvariantError::ReservedOutOfStep {
                    node: n,
                    name: name.clone(),
                });
            }
            if node.ready && !node.reserved.is_empty() {
                return Err(InvariantError::ReadyWithReservations {
                    node: n,
                    name: name.clone(),
                });
            }
            if !node.ready && !node.bound.is_empty() {
                return Err(InvariantError::BoundBeforeReady {
                    node: n,
                    name: name.clone(),
                });
            }
            if let Some(what) = reserved.over(self.believed(n)) {
                return Err(InvariantError::AboveBelief {
                    node: n,
                    name: name.clone(),
                    replicas: node.r,
                    what,
                });
            }
            for &p in &node.bound {
                if self.pods[p].phase != Phase::Bound(n) {
                    return Err(InvariantError::BoundPhase {
                        pod: p,
                        node: n,
                        phase: format!("{:?}", self.pods[p].phase),
                    });
                }
            }
            for &p in &node.reserved {
                if self.pods[p].phase != Phase::Pending || self.pods[p].reserved != Some(n) {
                    return Err(InvariantError::ReservedInconsistently { pod: p, node: n });
                }
                if self.strategy == Strategy::GpuSlicer {
                    let safe = self.safety(p, n);
                    if !(safe.share && safe.memory) {
                        return Err(InvariantError::ReservedUnsafely {
                            pod: p,
                            node: n,
                            name: name.clone(),
                            replicas: node.r,
                        });
                    }
                }
            }
            seen_bound += node.bound.len();
            seen_reserved += node.reserved.len();
        }
        // Every pending pod is pending, and each reservation is on a node counted above.
        let mut reserved = 0;
        for &(arrival, p) in &self.pending {
            if self.pods[p].phase != Phase::Pending || self.jobs[p].arrival != arrival {
                return Err(InvariantError::QueuedPhase {
                    pod: p,
                    phase: format!("{:?}", self.pods[p].phase),
                });
            }
            reserved += usize::from(self.pods[p].reserved.is_some());
        }
        if seen_bound != self.bound_count || reserved != seen_reserved {
            return Err(InvariantError::CountsOutOfStep {
                bound: self.bound_count,
                seen_bound,
                reserved,
                seen_reserved,
            });
        }
        Ok(())
    }
}

/// A broken engine invariant ([`Cluster::check_capacity`]): what, on which node or pod.
/// Nodes and pods are engine indices; `name` is the node's instance type; usages and
/// phases are in the engine's debug form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvariantError {
    #[error("node {node} ({name}): usage {used} recorded as {recorded}")]
    UsageRecorded {
        node: usize,
        name: String,
        used: String,
        recorded: String,
    },
    #[error("node {node} ({name}, R={replicas}): over capacity in {what}: {used} > {capacity}")]
    OverCapacity {
        node: usize,
        name: String,
        replicas: u32,
        what: &'static str,
        used: String,
        capacity: String,
    },
    #[error("node {node} ({name}): reserved usage out of step")]
    ReservedOutOfStep { node: usize, name: String },
    #[error("node {node} ({name}): ready with reservations")]
    ReadyWithReservations { node: usize, name: String },
    #[error("node {node} ({name}): pods bound before it is ready")]
    BoundBeforeReady { node: usize, name: String },
    #[error("node {node} ({name}, R={replicas}): reservations exceed believed capacity in {what}")]
    AboveBelief {
        node: usize,
        name: String,
        replicas: u32,
        what: &'static str,
    },
    #[error("pod {pod} on node {node} but phase {phase}")]
    BoundPhase {
        pod: usize,
        node: usize,
        phase: String,
    },
    #[error("pod {pod} reserved on node {node} inconsistently")]
    ReservedInconsistently { pod: usize, node: usize },
    #[error("pod {pod} reserved unsafely on node {node} ({name}, R={replicas})")]
    ReservedUnsafely {
        pod: usize,
        node: usize,
        name: String,
        replicas: u32,
    },
    #[error("pod {pod} queued as pending but {phase}")]
    QueuedPhase { pod: usize, phase: String },
    #[error("pods out of step: bound {bound}/{seen_bound}, reserved {reserved}/{seen_reserved}")]
    CountsOutOfStep {
        bound: usize,
        seen_bound: usize,
        reserved: usize,
        seen_reserved: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invariant_errors_read_as_before() {
        let over = InvariantError::OverCapacity {
            node: 3,
            name: "g5.xlarge".into(),
            replicas: 4,
            what: "memory",
            used: format!("{:?}", Use::default()),
            capacity: format!("{:?}", Use::default()),
        };
        let u = format!("{:?}", Use::default());
        assert_eq!(
            over.to_string(),
            format!("node 3 (g5.xlarge, R=4): over capacity in memory: {u} > {u}")
        );
        let step = InvariantError::CountsOutOfStep {
            bound: 2,
            seen_bound: 1,
            reserved: 0,
            seen_reserved: 1,
        };
        assert_eq!(
            step.to_string(),
            "pods out of step: bound 2/1, reserved 0/1"
        );
        let phase = InvariantError::QueuedPhase {
            pod: 7,
            phase: format!("{:?}", Phase::Pending),
        };
        assert_eq!(phase.to_string(), "pod 7 queued as pending but Pending");
        assert!(std::error::Error::source(&phase).is_none());
    }
}
