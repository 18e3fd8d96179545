//! Property test: for random catalogs (fractional GPU types included), demands (memory
//! isolation and GPU memory stated as a share included) and replica policies, every plan is
//! valid (checked by the independent `planner::check`) and its cost is at least the
//! reported lower bound.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gpu_slicer::catalog::karpenter_allocatable;
use gpu_slicer::model::{
    Catalog, DemandItem, InstanceType, Isolation, MIB, Operator, Pool, PriceSource, ReplicaPolicy,
    Requirement, Resources, Sharing, SharingChoice, labels,
};
use gpu_slicer::planner::{self, Effort, PlanOptions, check::check};
use proptest::prelude::*;

const GPU_NAMES: [&str; 3] = ["t4", "a10g", "h100"];

fn arb_type(i: usize) -> impl Strategy<Value = InstanceType> {
    (
        prop::sample::select(vec![1u32, 2, 4, 8]),
        prop::sample::select(vec![4u32, 8, 16, 48, 96]),
        1u64..=8,
        prop::sample::select(vec![16384u64, 22888, 81920]),
        50u32..2000,
        prop::sample::select(vec![8u32, 29, 58, 234]),
        // Some types are hardware-fractional (one part of a GPU, like g6f).
        prop::sample::select(vec![1000u32, 1000, 1000, 125, 250, 500]),
    )
        .prop_map(
            move |(gpus, vcpus, mem_per_cpu, gmem, cents, pods, fraction)| {
                let memory_mib = u64::from(vcpus) * mem_per_cpu * 1024;
                let gpu_name = GPU_NAMES[(gmem as usize) % 3].to_string();
                let fractional = fraction < 1000;
                let gpus = if fractional { 1 } else { gpus };
                let gmem = if fractional {
                    gmem * u64::from(fraction) / 1000
                } else {
                    gmem
                };
                InstanceType {
                    name: format!("x{i}.{vcpus}xl"),
                    family: format!("x{i}"),
                    vcpus,
                    memory_mib,
                    gpu_count: gpus,
                    gpu_fraction_milli: fraction,
                    gpu_label_count: if fractional { 0 } else { gpus },
                    gpu_name,
                    gpu_manufacturer: "nvidia".into(),
                    gpu_memory_mib: gmem,
                    max_pods: pods,
                    arch: "amd64".into(),
                    mig_supported: false,
                    on_demand_price: f64::from(cents) / 100.0 * f64::from(gpus),
                    spot_price: None,
                    allocatable: karpenter_allocatable(vcpus, memory_mib, pods),
                }
            },
        )
}

fn arb_catalog() -> impl Strategy<Value = Catalog> {
    (arb_type(0), arb_type(1), arb_type(2), arb_type(3)).prop_map(|(a, b, c, d)| Catalog {
        types: vec![a, b, c, d],
        source: PriceSource {
            name: "proptest".into(),
            observed: "-".into(),
        },
    })
}

fn arb_item() -> impl Strategy<Value = DemandItem> {
    (
        0u64..20_000,
        0u64..64,
        prop::sample::select(vec![1u32, 1, 1, 2, 4, 8, 16]),
        any::<bool>(),
        prop::option::of(1u64..40_000),
        prop::option::of(1u32..=1000),
        prop::option::of(0usize..3),
        prop::bool::weighted(0.25),
        prop::option::of(100u32..=1000),
    )
        .prop_map(
            |(cpu, mem_gib, gpus, excl, gmem, share, aff, isolated, fraction)| {
                let mut d = DemandItem::shared("x", Resources::new(cpu, mem_gib * 1024 * MIB));
                d.gpus = gpus;
                if excl || gpus > 2 {
                    d.sharing = Sharing::Exclusive;
                } else {
                    d.gpu_share_milli = share;
                }
                d.gpu_memory_mib = gmem;
                // Memory isolation, and GPU memory stated as a share of the GPU (vLLM).
                if isolated {
                    d.isolation = Isolation::Memory;
                }
                d.gpu_memory_fraction_milli = fraction;
                if let Some(a) = aff {
                    d.affinity_terms = vec![vec![Requirement {
                        key: labels::INSTANCE_GPU_NAME.into(),
                        operator: Operator::In,
                        values: vec![GPU_NAMES[a].into()],
                    }]];
                }
                d
            },
        )
}

fn arb_policy() -> impl Strategy<Value = ReplicaPolicy> {
    prop_oneof![
        (2u32..=48).prop_map(ReplicaPolicy::Fixed),
        (2u32..=12).prop_map(|max| ReplicaPolicy::Auto { max }),
        prop::collection::vec(2u32..=16, 0..3).prop_map(ReplicaPolicy::OneOf),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn plans_are_valid_and_above_their_bound(
        cat in arb_catalog(),
        mut items in prop::collection::vec(arb_item(), 0..40),
        policy in arb_policy(),
        copies in 1usize..4,
        fast in any::<bool>(),
        sharing in prop::sample::select(vec![SharingChoice::Auto, SharingChoice::Mps, SharingChoice::TimeSlicing]),
    ) {
        // Repeat some pods so classes have several members.
        let base = items.clone();
        for _ in 1..copies {
            items.extend(base.iter().cloned());
        }
        for (i, it) in items.iter_mut().enumerate() {
            it.id = format!("ns/p-{i}");
        }
        // The implicit pool, sharing its GPUs as drawn (MPS where the pool or an isolated
        // pod calls for it: the check re-derives which nodes must say so).
        let opts = PlanOptions {
            pools: vec![Pool {
                sharing_strategy: sharing,
                ..Pool::default_pool(policy.clone())
            }],
            default_replicas: policy,
            max_rounds: 40,
            effort: if fast { Effort::Fast } else { Effort::Full },
            ..PlanOptions::default()
        };
        let plan = planner::plan(&cat, &items, &opts);
        let errs = check(&plan, &cat, &items, &opts);
        prop_assert!(errs.is_empty(), "{errs:#?}");
        let s = &plan.summary;
        prop_assert!(s.lower_bound_hourly_cost <= s.hourly_cost + 1e-9);
        prop_assert_eq!(s.placed_pods + plan.unplaced.len(), items.len());
    }
}
