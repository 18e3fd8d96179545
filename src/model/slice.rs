//! The slice-fit rule: which GPU slices a pod may use, and the node-affinity terms that
//! say so. Pure; GPU memory in MiB, shares in thousandths of a GPU.
//!
//! This is the one place the rule lives (`../shared/design/STYLE.md`, example 2). The
//! planner (`planner/space.rs`), the controller's round (`reconcile/round.rs`), admission
//! (`admission`), the simulator (`sim/engine/cluster.rs`) and the tests all call it, so
//! what is planned is what the kube-scheduler and Karpenter enforce. The one allowed
//! second copy is the independent verifier, `planner/check.rs`.
//!
//! # The rule
//!
//! A node with `R` replicas per GPU, GPUs of `M` MiB and a pool headroom of `H` MiB has
//! slices of [`Slice::new`]`(M − H, R)`:
//!
//! - `gpu-slicer.io/slice-gpu-memory-mib` = ⌊(M − H) / R⌋,
//! - `gpu-slicer.io/slice-share-milli` = ⌊1000 / R⌋,
//! - `gpu-slicer.io/replicas` = R.
//!
//! A pod ([`SliceNeed`]) fits a slice when its `gpu-memory` (if declared) ≤ the slice's
//! memory, its `gpu-share` (if declared) ≤ the slice's share, and, for an exclusive pod,
//! R = 1. Because memory and share are whole numbers, `need ≤ ⌊M/R⌋` ⇔ `need × R ≤ M`,
//! and `share ≤ ⌊1000/R⌋` ⇔ `share × R ≤ 1000`: the labels lose nothing.
//!
//! # The affinity
//!
//! [`SliceNeed::requirements`] gives the node-selector requirements that match exactly
//! the nodes whose slice labels satisfy the rule: `slice-gpu-memory-mib Gt need − 1`,
//! `slice-share-milli Gt share − 1`, and `replicas In ["1"]` for exclusive pods (`Gt`
//! because Kubernetes has no `Ge`). A pod that declares nothing and is shared needs no
//! term: every slice is safe for it. A node without the labels never matches a term, so
//! a pod with a need is never bound to a GPU node gpu-slicer did not slice.

use super::{DemandItem, Operator, Requirement, Sharing};

/// Node label: GPU memory of one slice, MiB (⌊(GPU memory − headroom) / R⌋).
pub const SLICE_GPU_MEMORY_LABEL: &str = "gpu-slicer.io/slice-gpu-memory-mib";
/// Node label: share of one GPU's time one slice gets, thousandths (⌊1000 / R⌋).
pub const SLICE_SHARE_LABEL: &str = "gpu-slicer.io/slice-share-milli";
/// Node label: replicas per GPU.
pub const REPLICAS_LABEL: &str = "gpu-slicer.io/replicas";

/// The node labels the slice-fit rule reads.
pub const SLICE_LABELS: [&str; 3] = [SLICE_GPU_MEMORY_LABEL, SLICE_SHARE_LABEL, REPLICAS_LABEL];

/// True for a label key the slice-fit rule reads.
pub fn is_slice_key(key: &str) -> bool {
    SLICE_LABELS.contains(&key)
}

/// What one slice of a node offers: its labels, as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slice {
    /// Replicas per GPU, ≥ 1.
    pub replicas: u32,
    /// GPU memory of one slice, MiB.
    pub gpu_memory_mib: u64,
    /// Share of a GPU's time, thousandths.
    pub share_milli: u32,
}

impl Slice {
    /// The slice of a GPU with `usable_gpu_memory_mib` (after headroom) at `replicas` per
    /// GPU (0 is read as 1).
    pub fn new(usable_gpu_memory_mib: u64, replicas: u32) -> Slice {
        let r = replicas.max(1);
        Slice {
            replicas: r,
            gpu_memory_mib: usable_gpu_memory_mib / u64::from(r),
            share_milli: 1000 / r,
        }
    }

    /// The slice a node's labels describe; `None` when a label is absent or not a number.
    pub fn from_labels(label: &dyn Fn(&str) -> Option<String>) -> Option<Slice> {
        let num = |k: &str| label(k).and_then(|v| v.parse::<u64>().ok());
        Some(Slice {
            replicas: u32::try_from(num(REPLICAS_LABEL)?).ok()?.max(1),
            gpu_memory_mib: num(SLICE_GPU_MEMORY_LABEL)?,
            share_milli: u32::try_from(num(SLICE_SHARE_LABEL)?).ok()?,
        })
    }

    /// The value of one of the three slice labels; `None` for any other key.
    pub fn label(&self, key: &str) -> Option<String> {
        match key {
            SLICE_GPU_MEMORY_LABEL => Some(self.gpu_memory_mib.to_string()),
            SLICE_SHARE_LABEL => Some(self.share_milli.to_string()),
            REPLICAS_LABEL => Some(self.replicas.to_string()),
            _ => None,
        }
    }

    /// The three labels, in [`SLICE_LABELS`] order.
    pub fn labels(&self) -> [(&'static str, String); 3] {
        [
            (SLICE_GPU_MEMORY_LABEL, self.gpu_memory_mib.to_string()),
            (SLICE_SHARE_LABEL, self.share_milli.to_string()),
            (REPLICAS_LABEL, self.replicas.to_string()),
        ]
    }
}

/// What a pod needs of a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SliceNeed {
    /// `gpu-slicer.io/gpu-memory`, MiB.
    pub gpu_memory_mib: Option<u64>,
    /// `gpu-slicer.io/gpu-share`, thousandths (an exclusive pod has none).
    pub share_milli: Option<u32>,
    /// Whole GPUs only: R = 1.
    pub exclusive: bool,
}

impl SliceNeed {
    pub fn of(it: &DemandItem) -> SliceNeed {
        SliceNeed {
            gpu_memory_mib: it.gpu_memory_mib,
            share_milli: it.gpu_share_milli,
            exclusive: it.sharing == Sharing::Exclusive,
        }
    }

    /// The rule: may the pod use this slice?
    pub fn fits(&self, s: &Slice) -> bool {
        (!self.exclusive || s.replicas == 1)
            && self.gpu_memory_mib.is_none_or(|m| m <= s.gpu_memory_mib)
            && self.share_milli.is_none_or(|x| x <= s.share_milli)
    }

    /// The largest R of `allowed` whose slice of a GPU with `usable_gpu_memory_mib` fits;
    /// `None` if none does. `allowed` need not be sorted.
    pub fn max_replicas(&self, usable_gpu_memory_mib: u64, allowed: &[u32]) -> Option<u32> {
        allowed
            .iter()
            .copied()
            .filter(|&r| r >= 1 && self.fits(&Slice::new(usable_gpu_memory_mib, r)))
            .max()
    }

    /// True when every slice fits: the pod needs no affinity term.
    pub fn is_unconstrained(&self) -> bool {
        !self.exclusive && self.gpu_memory_mib.is_none() && self.share_milli.is_none()
    }

    /// The node-selector requirements (an AND) that match exactly the nodes whose slice
    /// labels fit the pod; empty when every slice fits.
    pub fn requirements(&self) -> Vec<Requirement> {
        let mut out = Vec::new();
        if let Some(m) = self.gpu_memory_mib {
            out.push(gt(SLICE_GPU_MEMORY_LABEL, m));
        }
        if let Some(s) = self.share_milli {
            out.push(gt(SLICE_SHARE_LABEL, u64::from(s)));
        }
        if self.exclusive {
            out.push(Requirement {
                key: REPLICAS_LABEL.to_string(),
                operator: Operator::In,
                values: vec!["1".to_string()],
            });
        }
        out
    }
}

/// `key Gt need − 1`, i.e. the label's value ≥ `need`. A need of 0 becomes `Gt -1`,
/// which every non-negative label value satisfies (and an absent label does not).
fn gt(key: &str, need: u64) -> Requirement {
    let bound = i128::from(need) - 1;
    Requirement {
        key: key.to_string(),
        operator: Operator::Gt,
        values: vec![bound.to_string()],
    }
}

/// True when every slice-key requirement of some term of the pod's required affinity
/// (or its node selector) allows the slice; requirements on other keys are not looked
/// at. A pod with no term on slice keys allows every slice. Used where the slice is
/// chosen after the node's other labels (the planner picks R per node).
pub fn terms_allow(it: &DemandItem, s: &Slice) -> bool {
    let sel_ok = it
        .node_selector
        .iter()
        .filter(|(k, _)| is_slice_key(k))
        .all(|(k, v)| s.label(k).as_deref() == Some(v.as_str()));
    sel_ok
        && (it.affinity_terms.is_empty()
            || it.affinity_terms.iter().any(|t| {
                t.iter()
                    .filter(|r| is_slice_key(&r.key))
                    .all(|r| r.matches(s.label(&r.key).as_deref()))
            }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Resources;
    use proptest::prelude::*;

    fn need(mem: Option<u64>, share: Option<u32>, exclusive: bool) -> SliceNeed {
        SliceNeed {
            gpu_memory_mib: mem,
            share_milli: share,
            exclusive,
        }
    }

    #[test]
    fn slice_labels_floor() {
        let s = Slice::new(15360 - 512, 3);
        assert_eq!(s.gpu_memory_mib, 4949);
        assert_eq!(s.share_milli, 333);
        assert_eq!(s.label(SLICE_GPU_MEMORY_LABEL).as_deref(), Some("4949"));
        assert_eq!(Slice::new(100, 0).replicas, 1);
    }

    #[test]
    fn memory_and_share_at_the_boundary() {
        // 16 GiB at R = 4 is exactly 4 GiB a slice: a 4 GiB pod fits, 4 GiB + 1 MiB does not.
        let s = Slice::new(16384, 4);
        assert!(need(Some(4096), None, false).fits(&s));
        assert!(!need(Some(4097), None, false).fits(&s));
        assert!(need(None, Some(250), false).fits(&s));
        assert!(!need(None, Some(251), false).fits(&s));
        assert!(!need(None, None, true).fits(&s));
        assert!(need(Some(16384), None, true).fits(&Slice::new(16384, 1)));
    }

    #[test]
    fn max_replicas_picks_the_largest_safe() {
        let n = need(Some(5000), Some(300), false);
        assert_eq!(n.max_replicas(24576, &[1, 2, 3, 4, 8]), Some(3));
        assert_eq!(n.max_replicas(4000, &[1, 2]), None);
        assert_eq!(need(None, None, true).max_replicas(1, &[4, 1, 2]), Some(1));
    }

    #[test]
    fn unconstrained_pods_get_no_terms() {
        assert!(need(None, None, false).requirements().is_empty());
        assert_eq!(need(Some(0), None, false).requirements()[0].values, ["-1"]);
    }

    #[test]
    fn terms_allow_reads_only_slice_keys() {
        let mut it = DemandItem::shared("ns/p", Resources::ZERO);
        it.affinity_terms = vec![vec![
            gt(SLICE_GPU_MEMORY_LABEL, 8000),
            Requirement {
                key: "other".into(),
                operator: Operator::In,
                values: vec!["x".into()],
            },
        ]];
        assert!(terms_allow(&it, &Slice::new(16000, 2)));
        assert!(!terms_allow(&it, &Slice::new(16000, 3)));
    }

    proptest! {
        /// The admitted affinity matches a node's labels exactly when the node's slice is
        /// safe for the pod, for random pods and random slices (labels absent included).
        #[test]
        fn affinity_matches_exactly_the_safe_slices(
            mem in proptest::option::of(0u64..200_000),
            share in proptest::option::of(1u32..=1000),
            exclusive in any::<bool>(),
            gpu_mem in 0u64..200_000,
            r in 1u32..=48,
            labelled in any::<bool>(),
            at_boundary in any::<bool>(),
            delta in -2i64..=2,
        ) {
            // Half the cases sit within 2 of the boundaries (need × R = GPU memory,
            // share = ⌊1000 / R⌋), where an off-by-one in the terms would show.
            let (gpu_mem, share) = if at_boundary {
                let m = mem.map_or(gpu_mem, |m| {
                    (i128::from(m) * i128::from(r) + i128::from(delta)).max(0) as u64
                });
                let s = share.map(|_| (i64::from(1000 / r) + delta).clamp(1, 1000) as u32);
                (m, s)
            } else {
                (gpu_mem, share)
            };
            let n = need(mem, if exclusive { None } else { share }, exclusive);
            let s = Slice::new(gpu_mem, r);
            let label = |k: &str| if labelled { s.label(k) } else { None };
            let matched = n.requirements().iter().all(|q| q.matches(label(&q.key).as_deref()));
            let safe = n.fits(&s);
            if labelled {
                prop_assert_eq!(matched, safe);
            } else {
                // An unlabelled node only matches a pod that needs nothing of its slice.
                prop_assert_eq!(matched, n.is_unconstrained());
            }
            // The round trip through labels loses nothing.
            prop_assert_eq!(Slice::from_labels(&|k| s.label(k)), Some(s));
        }
    }
}
