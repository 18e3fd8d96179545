use super::*;
use crate::model::Resources;
use proptest::prelude::*;

fn need(mem: Option<u64>, share: Option<u32>, exclusive: bool) -> SliceNeed {
    SliceNeed {
        gpu_memory_mib: mem,
        share_milli: share,
        exclusive,
        ..SliceNeed::default()
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
fn isolation_exclusivity_and_memory_shares() {
    let ts = Slice::new(16384, 4);
    let whole = Slice::new(16384, 1);
    // g6f.large: 1/8 of an L4 with 2,861 MiB of its own.
    let part = Slice::fractional(2861, 125);
    let mps = Slice {
        sharing: NodeSharing::Mps,
        ..ts
    };
    let iso = SliceNeed {
        isolation: true,
        ..SliceNeed::default()
    };
    assert!(!iso.fits(&ts));
    assert!(iso.fits(&whole) && iso.fits(&part) && iso.fits(&mps));
    // An exclusive pod wants a whole unshared GPU: not a fractional one (R = 1 too).
    let excl = need(None, None, true);
    assert!(excl.fits(&whole) && !excl.fits(&part) && !excl.fits(&mps));
    // vLLM at 0.9 of the GPU: alone on a whole GPU, or on a part of one; 0.3 allows R = 3.
    let vllm = SliceNeed {
        memory_fraction_milli: Some(900),
        ..SliceNeed::default()
    };
    assert!(vllm.fits(&whole) && vllm.fits(&part));
    assert!(!vllm.fits(&Slice::new(16384, 2)));
    let third = SliceNeed {
        memory_fraction_milli: Some(300),
        ..SliceNeed::default()
    };
    assert_eq!(third.max_replicas(16384, &[1, 2, 3, 4]), Some(3));
    // The share a fractional GPU offers is its part of the GPU.
    assert!(need(Some(2048), Some(100), false).fits(&part));
    assert!(!need(Some(2048), Some(126), false).fits(&part));
    assert!(!need(Some(2862), None, false).fits(&part));
    assert_eq!(
        part.label(SHARING_STRATEGY_LABEL).as_deref(),
        Some("fractional")
    );
    // A node labelled before the strategy label existed reads as before.
    let old = |k: &str| match k {
        SHARING_STRATEGY_LABEL => None,
        k => ts.label(k),
    };
    assert_eq!(Slice::from_labels(&old), Some(ts));
}

#[test]
fn mps_keeps_the_numbers_and_refuses_multi_unit_requests() {
    let ts = Slice::new(16384, 4);
    let mps = ts.under_mps(Efficiency::MEASURED);
    assert_eq!(
        (mps.gpu_memory_mib, mps.share_milli, mps.replicas),
        (4096, 250, 4)
    );
    assert_eq!(
        (ts.profile(), mps.profile()),
        ("ts-r4".into(), "mps-r4".into())
    );
    // Whole and fractional GPUs have nothing to share: they stay as they are.
    assert_eq!(
        Slice::new(16384, 1).under_mps(Efficiency::MEASURED).sharing,
        NodeSharing::None
    );
    let part = Slice::fractional(2861, 125);
    assert_eq!(part.under_mps(Efficiency::MEASURED), part);
    assert_eq!(part.profile(), "ts-r1");
    // Two nvidia.com/gpu of a shared GPU: time-slicing yes, MPS no.
    let two = SliceNeed {
        multi_unit: true,
        ..SliceNeed::default()
    };
    assert!(two.fits(&ts) && !two.fits(&mps));
    assert!(!two.is_unconstrained());
    let term = &two.requirements()[0];
    assert!(term.matches(Some("time-slicing")) && !term.matches(Some("mps")));
    assert!(!term.matches(None), "an unlabelled node never matches");
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
        isolation in any::<bool>(),
        fraction in proptest::option::of(1u32..=1000),
        multi_unit in any::<bool>(),
        kind in 0u8..3,
        part in 1u32..=1000,
        readings in 0u8..3,
        ts_e in 1u32..=1000,
        mps_e in 1u32..=2000,
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
        let shares = ShareReadings {
            time: readings != 1,
            throughput: readings != 0,
        };
        let n = SliceNeed {
            isolation,
            memory_fraction_milli: fraction,
            multi_unit: multi_unit && !exclusive,
            shares,
            ..need(mem, if exclusive { None } else { share }, exclusive)
        };
        // Time-sliced (or whole), hardware-fractional and MPS-shared slices, rated with
        // random efficiencies.
        let e = Efficiency { time_slicing_milli: ts_e, mps_milli: mps_e };
        let s = match kind {
            0 => Slice::new(gpu_mem, r).rated(e),
            1 => Slice::fractional(gpu_mem, part),
            _ => Slice::new(gpu_mem, r).rated(e).under_mps(e),
        };
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
