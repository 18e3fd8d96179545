//! The planner's tests. One file (~910 code lines) on purpose: the tests share the small
//! catalogs and demand builders at its top, and each checks a plan for validity and for
//! cost against a lower bound or the exact optimum; split by topic, the files would
//! import each other's fixtures. The one exception, the hand-worked costs of sharing
//! (CUDA contexts, shares read as throughput), is the child module `tests/sharing.rs`,
//! which only uses the fixtures here. Where a test builds a `PlannedNode` it spells the
//! fields out as `pattern.rs` does, on purpose: the expected node is built independently
//! of the code under test.

use super::check::check;
use super::*;
use crate::model::slice::FitRules;
use crate::model::{
    Catalog, DemandItem, MIB, Operator, Pool, ReplicaPolicy, Requirement, Resources, Sharing,
    SharingChoice,
};

fn catalog() -> Catalog {
    crate::catalog::embedded().expect("embedded catalog parses")
}

fn pods(prefix: &str, n: usize, f: impl Fn(&mut DemandItem)) -> Vec<DemandItem> {
    (0..n)
        .map(|i| {
            let mut d = DemandItem::shared(format!("default/{prefix}-{i}"), Resources::ZERO);
            f(&mut d);
            d
        })
        .collect()
}

fn assert_valid(plan: &Plan, cat: &Catalog, items: &[DemandItem], opts: &PlanOptions) {
    let errs = check(plan, cat, items, opts);
    assert!(errs.is_empty(), "invalid plan: {errs:#?}\n{plan:#?}");
}

/// Every pod of one of the repository's Alibaba trace files, as demand.
fn trace_items(name: &str) -> Vec<DemandItem> {
    let path = format!(
        "{}/simulations/data/alibaba-gpu-2023/openb_pod_list_{name}.csv",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("trace");
    let pods = crate::trace::parse_alibaba_pods(&path, &text).expect("parses");
    pods.iter()
        .filter_map(|p| crate::trace::alibaba_demand(p, name))
        .collect()
}

/// The plan less the time it took (the only field that may differ between equal runs).
fn timeless(mut p: Plan) -> Plan {
    p.solver.elapsed_seconds = 0.0;
    p
}

#[test]
fn seed_scenario_fits_one_small_gpu() {
    // The seed guide: 10 pods × 1 nvidia.com/gpu, time-slicing replicas 10.
    let cat = catalog();
    let items = pods("gpu-timeslice-test", 10, |_| {});
    let opts = PlanOptions {
        default_replicas: ReplicaPolicy::Fixed(10),
        ..PlanOptions::default()
    };
    let plan = plan(&cat, &items, &opts);
    assert_valid(&plan, &cat, &items, &opts);
    assert_eq!(plan.nodes.len(), 1);
    assert_eq!(plan.nodes[0].instance_type, "g4dn.xlarge");
    assert_eq!(plan.nodes[0].replicas_per_gpu, 10);
    assert_eq!(plan.summary.hourly_cost, 0.526);
    // Without sharing: 10 GPUs; ten g4dn.xlarge are the cheapest way.
    assert!((plan.summary.dedicated_hourly_cost - 5.26).abs() < 1e-9);
    assert!(plan.summary.lower_bound_hourly_cost <= 0.526);
    assert!(
        plan.summary.lower_bound_hourly_cost > 0.5,
        "{:?}",
        plan.summary
    );
}

#[test]
fn gpu_memory_limits_replicas() {
    // 6 GiB per pod on a 16 GiB T4 allows at most R = 2; 22888 MiB A10G/L4 allows 3.
    let cat = catalog();
    let items = pods("infer", 6, |d| d.gpu_memory_mib = Some(6 * 1024));
    let opts = PlanOptions::default();
    let plan = plan(&cat, &items, &opts);
    assert_valid(&plan, &cat, &items, &opts);
    for n in &plan.nodes {
        assert!(
            6 * 1024 * u64::from(n.replicas_per_gpu) <= n.gpu_memory_mib,
            "{n:?}"
        );
    }
    assert!(plan.summary.hourly_cost <= plan.summary.dedicated_hourly_cost);
}

#[test]
fn exclusive_pods_get_whole_gpus_and_big_ones_are_explained() {
    let cat = catalog();
    let mut items = pods("train", 2, |d| {
        d.sharing = Sharing::Exclusive;
        d.gpus = 4;
    });
    items.extend(pods("huge", 1, |d| {
        d.sharing = Sharing::Exclusive;
        d.gpus = 16;
    }));
    // 96 GiB: the RTX PRO 6000 (g7e) and the H200/B200/B300 have it.
    items.extend(pods("bigmem", 1, |d| d.gpu_memory_mib = Some(96 * 1024)));
    // More than the largest GPU of 2026 (B300, 275,040 MiB).
    items.extend(pods("hugemem", 1, |d| d.gpu_memory_mib = Some(300 * 1024)));
    let opts = PlanOptions::default();
    let plan = plan(&cat, &items, &opts);
    assert_valid(&plan, &cat, &items, &opts);
    assert_eq!(plan.summary.placed_pods, 3);
    let big = plan
        .nodes
        .iter()
        .find(|n| n.pods.iter().any(|p| p == "default/bigmem-0"))
        .expect("bigmem placed");
    assert!(big.slice_gpu_memory_mib >= 96 * 1024, "{big:#?}");
    let reasons: Vec<(&str, String, &str)> = plan
        .unplaced
        .iter()
        .map(|u| (u.pod.as_str(), u.reason.to_string(), u.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (
                "default/huge-0",
                "needs 16 whole GPUs on one node; the largest allowed type has 8".to_string(),
                "whole-gpus"
            ),
            (
                "default/hugemem-0",
                "needs 300 GiB GPU memory; largest GPU allowed has 268.59 GiB".to_string(),
                "gpu-memory"
            ),
        ]
    );
    for n in &plan.nodes {
        assert_eq!(n.replicas_per_gpu, 1);
    }
}

#[test]
fn affinity_and_instance_filters_are_respected() {
    let cat = catalog();
    let items = pods("a10", 5, |d| {
        d.affinity_terms = vec![vec![Requirement {
            key: "karpenter.k8s.aws/instance-gpu-name".into(),
            operator: Operator::In,
            values: vec!["a10g".into()],
        }]];
        d.requests = Resources::new(2000, 4 * 1024 * MIB);
    });
    let opts = PlanOptions::default();
    let plan = plan(&cat, &items, &opts);
    assert_valid(&plan, &cat, &items, &opts);
    assert!(
        plan.nodes.iter().all(|n| n.gpu_model == "a10g"),
        "{plan:#?}"
    );
    assert_eq!(plan.summary.placed_pods, 5);
}

#[test]
fn deterministic() {
    let cat = catalog();
    let mut items = pods("a", 37, |d| {
        d.requests = Resources::new(3000, 6 * 1024 * MIB);
        d.gpu_share_milli = Some(300);
    });
    items.extend(pods("b", 11, |d| {
        d.requests = Resources::new(8000, 30 * 1024 * MIB);
        d.sharing = Sharing::Exclusive;
    }));
    let opts = PlanOptions::default();
    let p1 = timeless(plan(&cat, &items, &opts));
    let p2 = timeless(plan(&cat, &items, &opts));
    assert_eq!(p1, p2);
    assert_valid(&p1, &cat, &items, &opts);
    // Parallel pricing merges results in configuration order: same plan.
    let threaded = PlanOptions {
        threads: 3,
        ..PlanOptions::default()
    };
    assert_eq!(timeless(plan(&cat, &items, &threaded)), p1);
}

#[test]
fn empty_demand_is_an_empty_plan() {
    let cat = catalog();
    let opts = PlanOptions::default();
    let p = plan(&cat, &[], &opts);
    assert!(p.nodes.is_empty() && p.unplaced.is_empty());
    assert_eq!(p.summary.hourly_cost, 0.0);
    assert_eq!(p.summary.lower_bound_hourly_cost, 0.0);
}

#[test]
fn check_catches_a_pod_on_a_node_its_affinity_excludes() {
    let cat = catalog();
    let items = pods("a10", 1, |d| {
        d.affinity_terms = vec![vec![Requirement {
            key: "karpenter.k8s.aws/instance-gpu-name".into(),
            operator: Operator::In,
            values: vec!["a10g".into()],
        }]];
    });
    let opts = PlanOptions::default();
    let mut p = plan(&cat, &items, &opts);
    assert_valid(&p, &cat, &items, &opts);
    // Move the node to a T4 type of the same price class: the checker must object.
    let n = &mut p.nodes[0];
    n.instance_type = "g4dn.xlarge".into();
    n.gpu_model = "t4".into();
    n.gpu_memory_mib = 16384;
    n.slice_gpu_memory_mib = 16384 / u64::from(n.replicas_per_gpu);
    n.hourly_price = 0.526;
    p.summary.hourly_cost = 0.526;
    p.summary.lower_bound_hourly_cost = 0.0;
    let errs = check(&p, &cat, &items, &opts);
    assert_eq!(
        errs,
        vec!["node 0: pod default/a10-0 does not match the node's labels".to_string()]
    );
}

#[test]
fn fast_effort_is_valid_bounded_and_close_on_a_trace_sample() {
    let cat = catalog();
    let all = trace_items("default");
    let items = crate::trace::sample_demand(&all, 300, 3);
    let full = PlanOptions {
        dedicated: false,
        ..PlanOptions::default()
    };
    let fast = PlanOptions {
        effort: Effort::Fast,
        ..full.clone()
    };
    let pf = plan(&cat, &items, &full);
    let pq = plan(&cat, &items, &fast);
    assert_valid(&pq, &cat, &items, &fast);
    assert_eq!(pq.summary.placed_pods, pf.summary.placed_pods);
    let (cf, cq) = (pf.summary.hourly_cost, pq.summary.hourly_cost);
    // The fast bound is proven too: below the full planner's cost, and below its own.
    assert!(pq.summary.lower_bound_hourly_cost <= cf + 1e-6);
    assert!(pq.summary.lower_bound_hourly_cost <= cq + 1e-6);
    assert!(pq.summary.lower_bound_hourly_cost > 0.0);
    // Greedy is within 15 % of column generation on this sample (measured: see README).
    assert!(cq <= cf * 1.15, "fast {cq} vs full {cf}");
    assert_eq!(pq.solver.rounds, 0);
}

/// Column generation hands its master's optimum to the dive: one value per column, a
/// cover of the demand at the master's value, whether it stopped at a deadline or ran
/// dry; the dive from it leaves nothing uncovered.
#[test]
fn the_masters_optimum_reaches_the_dive() {
    let cat = catalog();
    let all = trace_items("default");
    let items = crate::trace::sample_demand(&all, 2000, 9);
    let opts = PlanOptions {
        dedicated: false,
        ..PlanOptions::default()
    };
    let sp = space::Space::build(&cat, &items, &effective_pools(&opts), &opts);
    let demand = pattern::class_demand(&sp);
    let seed = greedy::solve(&sp, &demand).nodes;
    for deadline in [Some(Instant::now() + Duration::from_millis(5)), None] {
        let limits = lp::Limits {
            deadline,
            ..lp::Limits::none()
        };
        let cg = lp::column_generation(&sp, &opts, &demand, &seed, limits);
        assert_eq!(cg.x.len(), cg.patterns.len());
        let mut covered = vec![0.0f64; demand.len()];
        let mut value = 0.0;
        for (p, x) in cg.patterns.iter().zip(&cg.x) {
            value += sp.configs[p.config].price * x;
            for &(c, n) in &p.counts {
                covered[c] += f64::from(n) * x;
            }
        }
        assert!((value - cg.lp_value).abs() <= 1e-6 * cg.lp_value.max(1.0));
        for (c, d) in demand.iter().enumerate() {
            assert!(covered[c] >= f64::from(*d) - 1e-6, "class {c}: {covered:?}");
        }
        let (nodes, residual) = lp::round(
            &sp,
            &cg.patterns,
            &cg.x,
            &demand,
            &opts,
            None,
            Duration::from_secs(1),
        );
        assert!(residual.iter().all(|r| *r == 0));
        assert!(pattern::cost(&sp, &nodes) >= cg.lower_bound - 1e-6);
    }
}

/// Mixed pods: shared with memory and share needs, and exclusive ones.
fn mixed_pods() -> Vec<DemandItem> {
    let mut items = pods("mem", 7, |d| d.gpu_memory_mib = Some(5 * 1024));
    items.extend(pods("share", 5, |d| d.gpu_share_milli = Some(300)));
    items.extend(pods("both", 3, |d| {
        d.gpu_memory_mib = Some(3000);
        d.gpu_share_milli = Some(120);
    }));
    items.extend(pods("excl", 2, |d| {
        d.sharing = Sharing::Exclusive;
        d.gpu_memory_mib = Some(20_000);
    }));
    items
}

#[test]
fn every_planned_pod_fits_its_nodes_slice_by_the_model_rule_and_the_checker() {
    use crate::model::slice::{Slice, SliceNeed};
    let cat = catalog();
    let items = mixed_pods();
    for opts in [
        PlanOptions::default(),
        PlanOptions {
            default_replicas: ReplicaPolicy::Auto { max: 16 },
            ..PlanOptions::default()
        },
    ] {
        let plan = plan(&cat, &items, &opts);
        assert_valid(&plan, &cat, &items, &opts);
        assert!(plan.unplaced.is_empty(), "{:?}", plan.unplaced);
        for n in &plan.nodes {
            // The node's slice labels as the plan reports them, read back as labels.
            let labels = [
                ("gpu-slicer.io/replicas", n.replicas_per_gpu.to_string()),
                (
                    "gpu-slicer.io/slice-gpu-memory-mib",
                    n.slice_gpu_memory_mib.to_string(),
                ),
                (
                    "gpu-slicer.io/slice-share-milli",
                    n.slice_share_milli.to_string(),
                ),
                (
                    "gpu-slicer.io/slice-throughput-milli",
                    n.slice_throughput_milli.to_string(),
                ),
            ];
            let slice = Slice::from_labels(&|k| {
                labels.iter().find(|(l, _)| *l == k).map(|(_, v)| v.clone())
            })
            .expect("the plan reports all four labels");
            assert_eq!(slice, Slice::new(n.gpu_memory_mib, n.replicas_per_gpu));
            for p in &n.pods {
                let it = items.iter().find(|i| &i.id == p).expect("known pod");
                assert!(
                    SliceNeed::of(it, FitRules::time(crate::model::DEFAULT_CONTEXT_MEMORY_MIB))
                        .fits(&slice),
                    "{p} on {n:?}"
                );
            }
        }
    }
}

#[test]
fn admitted_affinity_changes_nothing_in_the_plan() {
    // The terms admission adds only restate the pod's annotations, so planning pods that
    // carry them gives the same cost and a valid plan (the planner reads slice labels per R).
    use crate::model::slice::SliceNeed;
    let cat = catalog();
    let plain = mixed_pods();
    let admitted: Vec<DemandItem> = plain
        .iter()
        .map(|it| {
            let mut a = it.clone();
            let reqs = SliceNeed::of(it, FitRules::time(crate::model::DEFAULT_CONTEXT_MEMORY_MIB))
                .requirements();
            if !reqs.is_empty() {
                a.affinity_terms = vec![reqs];
            }
            a
        })
        .collect();
    let opts = PlanOptions::default();
    let p1 = plan(&cat, &plain, &opts);
    let p2 = plan(&cat, &admitted, &opts);
    assert_valid(&p2, &cat, &admitted, &opts);
    assert!(p2.unplaced.is_empty(), "{:?}", p2.unplaced);
    assert!(
        (p1.summary.hourly_cost - p2.summary.hourly_cost).abs() < 1e-9,
        "{} vs {}",
        p1.summary.hourly_cost,
        p2.summary.hourly_cost
    );
    // A hand-written term that asks for bigger slices than the annotation moves the pods.
    let mut picky = plain.clone();
    for it in picky
        .iter_mut()
        .filter(|i| i.id.starts_with("default/share"))
    {
        it.affinity_terms = vec![vec![Requirement {
            key: "gpu-slicer.io/slice-share-milli".into(),
            operator: Operator::Gt,
            values: vec!["499".into()],
        }]];
    }
    let p3 = plan(&cat, &picky, &opts);
    assert_valid(&p3, &cat, &picky, &opts);
    for n in &p3.nodes {
        if n.pods.iter().any(|p| p.starts_with("default/share")) {
            assert!(n.replicas_per_gpu <= 2, "{n:?}");
        }
    }
}

/// The cheapest single node (type × R) that holds `block`, by the independent checker.
fn cheapest_node(cat: &Catalog, block: &[DemandItem], opts: &PlanOptions) -> Option<f64> {
    let pool = &effective_pools(opts)[0];
    let mut best: Option<f64> = None;
    for t in &cat.types {
        if !opts.instance_types.is_empty() && !opts.instance_types.contains(&t.name) {
            continue;
        }
        let Some(price) = t.price(CapacityType::OnDemand) else {
            continue;
        };
        let rs: Vec<u32> = if t.is_fractional() {
            vec![1]
        } else {
            std::iter::once(1).chain(pool.replicas.allowed()).collect()
        };
        for r in rs {
            let slice = t.slice(0, r);
            let node = PlannedNode {
                instance_type: t.name.clone(),
                capacity_type: CapacityType::OnDemand,
                gpus: t.gpu_count,
                gpu_model: t.gpu_name.clone(),
                gpu_memory_mib: t.gpu_memory_mib,
                replicas_per_gpu: r,
                slice_gpu_memory_mib: slice.gpu_memory_mib,
                slice_share_milli: slice.share_milli,
                slice_throughput_milli: slice.throughput_milli,
                sharing: slice.sharing.as_str().to_string(),
                profile: crate::model::profile_name(r),
                hourly_price: price,
                pods: block.iter().map(|i| i.id.clone()).collect(),
                node_pool: pool.name.clone(),
                zone: None,
                spot_hourly_price: None,
            };
            let plan = Plan {
                nodes: vec![node],
                unplaced: Vec::new(),
                summary: Summary {
                    pods: block.len(),
                    placed_pods: block.len(),
                    nodes: 1,
                    hourly_cost: price,
                    lower_bound_hourly_cost: 0.0,
                    dedicated_hourly_cost: 0.0,
                    dedicated_nodes: 0,
                    spot_hourly_cost: None,
                    dedicated_spot_hourly_cost: None,
                    gpus: t.gpu_count,
                    dedicated_gpus: 0,
                },
                solver: SolverStats::default(),
            };
            if check(&plan, cat, block, opts).is_empty() && best.is_none_or(|b| price < b) {
                best = Some(price);
            }
        }
    }
    best
}

/// The optimum by brute force: the cheapest node of every subset, then the cheapest
/// partition of all pods into subsets (dynamic programme over bitmasks).
fn brute_force_optimum(cat: &Catalog, items: &[DemandItem], opts: &PlanOptions) -> Option<f64> {
    let n = items.len();
    let full = (1usize << n) - 1;
    let node: Vec<Option<f64>> = (0..=full)
        .map(|m| {
            let block: Vec<DemandItem> = (0..n)
                .filter(|i| m & (1 << i) != 0)
                .map(|i| items[i].clone())
                .collect();
            if block.is_empty() {
                Some(0.0)
            } else {
                cheapest_node(cat, &block, opts)
            }
        })
        .collect();
    let mut best = vec![None::<f64>; full + 1];
    best[0] = Some(0.0);
    for m in 1..=full {
        // The subset holding the lowest pod of `m`, and the best of the rest.
        let low = m & m.wrapping_neg();
        let rest = m & !low;
        let mut s = rest;
        loop {
            let block = s | low;
            if let (Some(a), Some(b)) = (node[block], best[m & !block])
                && best[m].is_none_or(|x| a + b < x)
            {
                best[m] = Some(a + b);
            }
            if s == 0 {
                break;
            }
            s = (s - 1) & rest;
        }
    }
    best[full]
}

/// A small deterministic generator (no seed files, no extra dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[test]
fn small_random_demands_are_proven_optimal_and_match_brute_force() {
    let cat = catalog();
    let opts = PlanOptions {
        instance_types: [
            "g4dn.xlarge",
            "g4dn.2xlarge",
            "g4dn.12xlarge",
            "g5.xlarge",
            "g6.xlarge",
        ]
        .map(String::from)
        .to_vec(),
        default_replicas: ReplicaPolicy::Auto { max: 4 },
        dedicated: false,
        ..PlanOptions::default()
    };
    let mut rng = Lcg(2026);
    let mut proven = 0;
    for case in 0..200 {
        let n = 1 + rng.next(6) as usize;
        let items: Vec<DemandItem> = (0..n)
            .map(|i| {
                let mut d = DemandItem::shared(
                    format!("default/c{case}-{i}"),
                    Resources {
                        cpu_milli: 500 * (1 + rng.next(12)),
                        memory_bytes: (1 + rng.next(24)) * 1024 * MIB,
                    },
                );
                match rng.next(5) {
                    0 => d.gpu_memory_mib = Some(1024 * (2 + rng.next(10))),
                    1 => d.gpu_share_milli = Some(200 + 100 * rng.next(4) as u32),
                    2 => {
                        d.sharing = Sharing::Exclusive;
                        d.gpus = 1 + rng.next(2) as u32;
                    }
                    _ => {}
                }
                d
            })
            .collect();
        let p = plan(&cat, &items, &opts);
        assert_valid(&p, &cat, &items, &opts);
        let Some(opt) = brute_force_optimum(&cat, &items, &opts) else {
            assert!(
                !p.unplaced.is_empty(),
                "case {case}: brute force found no plan"
            );
            continue;
        };
        if !p.unplaced.is_empty() {
            continue;
        }
        assert!(
            p.summary.hourly_cost <= opt + 1e-6,
            "case {case}: plan {} > optimum {opt}\n{items:#?}\n{p:#?}",
            p.summary.hourly_cost
        );
        assert!(
            p.summary.hourly_cost >= opt - 1e-6,
            "case {case}: below the optimum?"
        );
        assert!(p.solver.proven_optimal, "case {case}: {:?}", p.solver);
        assert_eq!(p.solver.bound_kind, BoundKind::Optimal);
        assert!(p.summary.lower_bound_hourly_cost >= opt - 1e-5);
        // The assignment bound (not used for demands this small) is a bound too.
        let sp = super::space::Space::build(&cat, &items, &super::effective_pools(&opts), &opts);
        let demand = super::pattern::class_demand(&sp);
        if let Some(b) = super::fluid::bound(&sp, &demand, &[0], None, |_| ()) {
            assert!(
                b <= opt + 1e-6,
                "case {case}: assignment bound {b} > optimum {opt}"
            );
        }
        proven += 1;
    }
    assert!(proven >= 150, "only {proven} of 200 cases were placeable");
}

#[test]
fn the_gap_and_its_kind_are_reported_and_hold() {
    // 2,000 trace pods: not small, so the anytime path (assignment LP, column generation,
    // the integer step) runs; the reported gap must be what the plan and bound say.
    let cat = catalog();
    let items = crate::trace::sample_demand(&trace_items("gpushare60"), 2000, 3);
    let opts = PlanOptions {
        dedicated: false,
        ..PlanOptions::default()
    };
    let p = plan(&cat, &items, &opts);
    assert_valid(&p, &cat, &items, &opts);
    let s = &p.solver;
    assert!(!s.proven_optimal);
    assert_ne!(s.bound_kind, BoundKind::Lagrangian, "{s:?}");
    let ratio = p.summary.hourly_cost / p.summary.lower_bound_hourly_cost;
    assert!((ratio - 1.0 - s.gap).abs() < 1e-4, "{ratio} vs {s:?}");
    assert!(s.elapsed_seconds > 0.0);
    // No deadline: it stops at the 1 % gap or having tried everything.
    assert!(
        s.stopped_by == StoppedBy::Gap && s.gap <= 0.01 || s.stopped_by == StoppedBy::Exhausted,
        "{s:?}"
    );
    // A deadline of zero still gives a valid plan, with the greedy's bound.
    let quick = PlanOptions {
        deadline: Some(std::time::Duration::ZERO),
        ..opts.clone()
    };
    let q = plan(&cat, &items, &quick);
    assert_valid(&q, &cat, &items, &quick);
    assert_eq!(q.solver.stopped_by, StoppedBy::Deadline, "{:?}", q.solver);
    assert!(q.summary.hourly_cost >= p.summary.hourly_cost - 1e-6);
}

#[test]
fn solver_names_in_the_json_are_the_documented_ones() {
    for k in [
        BoundKind::Optimal,
        BoundKind::Lp,
        BoundKind::Farley,
        BoundKind::Fluid,
        BoundKind::Lagrangian,
    ] {
        assert_eq!(serde_json::to_value(k).ok(), Some(k.as_str().into()));
    }
    for s in [
        StoppedBy::Optimal,
        StoppedBy::Gap,
        StoppedBy::Deadline,
        StoppedBy::Effort,
        StoppedBy::Exhausted,
    ] {
        assert_eq!(serde_json::to_value(s).ok(), Some(s.as_str().into()));
    }
}

#[test]
fn columns_carry_across_plans_and_stale_ones_are_harmless() {
    let cat = catalog();
    let all = trace_items("default");
    let opts = PlanOptions {
        dedicated: false,
        ..PlanOptions::default()
    };
    let mut columns = Columns::default();
    let first = crate::trace::sample_demand(&all, 300, 1);
    let p1 = plan_with(&cat, &first, &opts, &mut columns);
    assert_valid(&p1, &cat, &first, &opts);
    assert!(!columns.is_empty() && columns.len() <= Columns::CAPACITY);
    // Similar demand from the kept columns: valid, and the same with the same columns.
    let next = crate::trace::sample_demand(&all, 300, 2);
    let mut a = columns.clone();
    let mut b = columns.clone();
    let pa = timeless(plan_with(&cat, &next, &opts, &mut a));
    assert_valid(&pa, &cat, &next, &opts);
    assert_eq!(pa, timeless(plan_with(&cat, &next, &opts, &mut b)));
    // Columns of a wider catalog, offered to a plan restricted to one family: those that
    // do not exist or do not fit there are dropped, the plan stays valid.
    let g4dn = PlanOptions {
        families: vec!["g4dn".into()],
        ..opts.clone()
    };
    let pg = plan_with(&cat, &next, &g4dn, &mut columns);
    assert_valid(&pg, &cat, &next, &g4dn);
    assert!(
        pg.nodes
            .iter()
            .all(|n| n.instance_type.starts_with("g4dn."))
    );
}

#[test]
fn arm64_only_where_allowed_and_fractional_types_are_planned() {
    let cat = catalog();
    // One small pod: g6f.large (1/8 of an L4, $0.202/h) is the cheapest; g5g.xlarge
    // (arm64 T4G, $0.42/h) is cheaper than g4dn.xlarge ($0.526/h).
    let small = |d: &mut DemandItem| d.requests = Resources::new(500, 1024 * MIB);
    let opts = PlanOptions::default();
    let types = |plan: &Plan| -> Vec<String> {
        plan.nodes.iter().map(|n| n.instance_type.clone()).collect()
    };
    let items = pods("plain", 1, small);
    let p = plan(&cat, &items, &opts);
    assert_valid(&p, &cat, &items, &opts);
    assert_eq!(types(&p), ["g6f.large"]);
    assert_eq!(p.nodes[0].sharing, "fractional");
    assert_eq!(p.nodes[0].replicas_per_gpu, 1);
    assert_eq!(p.nodes[0].slice_share_milli, 125);
    // Without fractional types: amd64 only, the T4.
    let whole = PlanOptions {
        families: ["g4dn", "g5g", "g5", "g6"].map(String::from).to_vec(),
        ..PlanOptions::default()
    };
    let p = plan(&cat, &items, &whole);
    assert_valid(&p, &cat, &items, &whole);
    assert_eq!(types(&p), ["g4dn.xlarge"]);
    // The independent check objects to that pod on the cheaper Graviton node.
    let mut moved = p.clone();
    let g5g = crate::catalog::find(&cat, "g5g.xlarge").expect("g5g.xlarge");
    moved.nodes[0].instance_type = g5g.name.clone();
    moved.nodes[0].gpu_model = g5g.gpu_name.clone();
    moved.nodes[0].hourly_price = g5g.on_demand_price;
    moved.summary.hourly_cost = g5g.on_demand_price;
    moved.summary.lower_bound_hourly_cost = 0.0;
    assert_eq!(
        check(&moved, &cat, &items, &whole),
        ["node 0: pod default/plain-0 names no architecture but the node is arm64"]
    );
    // ... and to a time-sliced node relabelled as a fractional L4.
    let mut moved = p.clone();
    let g6f = crate::catalog::find(&cat, "g6f.large").expect("g6f.large");
    let n = &mut moved.nodes[0];
    n.instance_type = g6f.name.clone();
    n.gpu_model = g6f.gpu_name.clone();
    n.gpu_memory_mib = g6f.gpu_memory_mib;
    n.hourly_price = g6f.on_demand_price;
    let r = n.replicas_per_gpu;
    moved.summary.hourly_cost = g6f.on_demand_price;
    moved.summary.lower_bound_hourly_cost = 0.0;
    let errs = check(&moved, &cat, &items, &opts);
    assert!(
        errs.iter()
            .any(|e| e == &format!("node 0: g6f.large is a fractional GPU with R={r}")),
        "{errs:?}"
    );
    let items = pods("arm", 1, |d| {
        small(d);
        d.node_selector
            .insert("kubernetes.io/arch".into(), "arm64".into());
    });
    let p = plan(&cat, &items, &opts);
    assert_valid(&p, &cat, &items, &opts);
    assert_eq!(types(&p), ["g5g.xlarge"]);
    // An affinity term that allows both: the cheaper arm64 node over the T4.
    let items = pods("either", 1, |d| {
        small(d);
        d.affinity_terms = vec![vec![Requirement {
            key: "kubernetes.io/arch".into(),
            operator: Operator::In,
            values: vec!["amd64".into(), "arm64".into()],
        }]];
    });
    let p = plan(&cat, &items, &whole);
    assert_eq!(types(&p), ["g5g.xlarge"]);
    // A term that does not name the architecture keeps the pod on amd64, even when
    // another term of the same pod names it but excludes every GPU type.
    let items = pods("other-term", 1, |d| {
        small(d);
        d.affinity_terms = vec![
            vec![Requirement {
                key: "karpenter.k8s.aws/instance-gpu-name".into(),
                operator: Operator::In,
                values: vec!["t4".into(), "t4g".into()],
            }],
            vec![Requirement {
                key: "kubernetes.io/arch".into(),
                operator: Operator::In,
                values: vec!["s390x".into()],
            }],
        ];
    });
    let p = plan(&cat, &items, &opts);
    assert_eq!(types(&p), ["g4dn.xlarge"]);
    // A pool that names the architecture opens arm64 to pods that name none.
    let mut pool = crate::model::Pool::default_pool(PlanOptions::default().default_replicas);
    pool.requirements = vec![Requirement {
        key: "kubernetes.io/arch".into(),
        operator: Operator::In,
        values: vec!["arm64".into(), "amd64".into()],
    }];
    let opts = PlanOptions {
        pools: vec![pool],
        families: whole.families.clone(),
        ..PlanOptions::default()
    };
    let items = pods("pool", 1, small);
    let p = plan(&cat, &items, &opts);
    assert_valid(&p, &cat, &items, &opts);
    assert_eq!(types(&p), ["g5g.xlarge"]);
}

/// Issue 16's hand-worked cases: pods of 100m CPU, 256Mi memory, `gpu-share: 0.1`,
/// `gpu-memory: 2Gi`.
#[test]
fn fractional_gpus_against_time_slicing_by_hand() {
    let cat = catalog();
    let pod = |d: &mut DemandItem| {
        d.requests = Resources::new(100, 256 * MIB);
        d.gpu_share_milli = Some(100);
        d.gpu_memory_mib = Some(2048);
    };
    let opts = PlanOptions {
        dedicated: false,
        ..PlanOptions::default()
    };
    let cost = |p: &Plan| p.summary.hourly_cost;
    // 1 pod: g6f.large's part (1/8 of an L4: share 125 ≥ 100, 2,861 MiB ≥ 2,048) at
    // $0.202/h is the cheapest GPU there is.
    let items = pods("one", 1, pod);
    let p = plan(&cat, &items, &opts);
    assert_valid(&p, &cat, &items, &opts);
    assert_eq!(p.nodes.len(), 1);
    assert_eq!(p.nodes[0].instance_type, "g6f.large");
    assert_eq!(p.nodes[0].sharing, "fractional");
    assert!((cost(&p) - 0.202).abs() < 1e-9, "{}", cost(&p));
    assert!(p.solver.proven_optimal);
    // 2 pods: two g6f.large, 2 × 0.202 = $0.404/h, against one g4dn.xlarge at R = 2
    // ($0.526/h).
    let items = pods("two", 2, pod);
    let p = plan(&cat, &items, &opts);
    assert_valid(&p, &cat, &items, &opts);
    assert!(p.nodes.iter().all(|n| n.instance_type == "g6f.large"));
    assert!((cost(&p) - 0.404).abs() < 1e-9, "{}", cost(&p));
    assert!(p.solver.proven_optimal);
    // 12 pods: a T4 holds ⌊16,384 / 2,048⌋ = 8 (share 0.1 would allow 10), so two
    // g4dn.xlarge at R = 8 = $1.052/h; twelve g6f.large would cost 12 × 0.202 = $2.424,
    // and an L4 for 10 plus two parts 0.8048 + 0.404 = $1.209. Fractions lose here.
    let items = pods("twelve", 12, pod);
    let p = plan(&cat, &items, &opts);
    assert_valid(&p, &cat, &items, &opts);
    assert!((cost(&p) - 1.052).abs() < 1e-9, "{p:#?}");
    assert!(
        p.nodes
            .iter()
            .all(|n| n.instance_type == "g4dn.xlarge" && n.replicas_per_gpu == 8),
        "{p:#?}"
    );
    assert!(p.solver.proven_optimal);
    // Small enough for brute force: the same optima.
    for n in [1, 2] {
        let items = pods("bf", n, pod);
        let opt = brute_force_optimum(&cat, &items, &opts).expect("placeable");
        assert!((cost(&plan(&cat, &items, &opts)) - opt).abs() < 1e-9);
    }
    // An exclusive pod never goes on a part of a GPU, nor a pod asking for 2 slices.
    let items = pods("excl", 1, |d| {
        d.requests = Resources::new(100, 256 * MIB);
        d.sharing = Sharing::Exclusive;
    });
    let p = plan(&cat, &items, &opts);
    assert_valid(&p, &cat, &items, &opts);
    assert_eq!(p.nodes[0].instance_type, "g4dn.xlarge");
    assert_eq!(p.nodes[0].sharing, "none");
    let items = pods("two-slices", 1, |d| {
        pod(d);
        d.gpus = 2;
        d.gpu_share_milli = None;
    });
    let p = plan(&cat, &items, &opts);
    assert_valid(&p, &cat, &items, &opts);
    assert!(p.nodes.iter().all(|n| n.sharing != "fractional"), "{p:#?}");
}

#[test]
fn memory_isolation_is_never_time_sliced() {
    let cat = catalog();
    let pool = |s: SharingChoice| PlanOptions {
        dedicated: false,
        pools: vec![Pool {
            sharing_strategy: s,
            ..Pool::default_pool(ReplicaPolicy::Auto { max: 10 })
        }],
        ..PlanOptions::default()
    };
    // 16 pods of 100m CPU, 256Mi and 2 GiB of GPU memory, asking for isolation. Shared
    // freely they would take two T4s at R = 8 (16 GiB / 8 = 2 GiB each), 2 × $0.526.
    let items = pods("iso", 16, |d| {
        d.requests = Resources::new(100, 256 * MIB);
        d.gpu_memory_mib = Some(2048);
        d.isolation = crate::model::Isolation::Memory;
    });
    // A time-slicing pool: each gets a part of an L4 or a whole GPU, never a time slice:
    // 16 × g6f.large at $0.202 = $3.232.
    let opts = pool(SharingChoice::TimeSlicing);
    let p = plan(&cat, &items, &opts);
    assert_valid(&p, &cat, &items, &opts);
    assert!(p.unplaced.is_empty());
    assert!(
        p.nodes
            .iter()
            .all(|n| n.sharing == "fractional" || n.sharing == "none"),
        "{p:#?}"
    );
    assert!((p.summary.hourly_cost - 16.0 * 0.202).abs() < 1e-9);
    // An MPS pool, or `auto`: MPS caps each client at 16 GiB / 8 = 2 GiB, so the two T4s
    // at R = 8 are safe: 2 × $0.526 = $1.052, profile mps-r8.
    for s in [SharingChoice::Mps, SharingChoice::Auto] {
        let opts = pool(s);
        let p = plan(&cat, &items, &opts);
        assert_valid(&p, &cat, &items, &opts);
        assert!(
            (p.summary.hourly_cost - 2.0 * 0.526).abs() < 1e-9,
            "{s:?}: {p:#?}"
        );
        for n in &p.nodes {
            assert_eq!(
                (
                    n.instance_type.as_str(),
                    n.sharing.as_str(),
                    n.profile.as_str()
                ),
                ("g4dn.xlarge", "mps", "mps-r8")
            );
        }
    }
    // `auto` with 16 more pods that need no isolation: 32 pods on four T4s at R = 8
    // ($2.104); MPS only on nodes that carry an isolated pod, time-slicing elsewhere.
    let mut mixed = items.clone();
    mixed.extend(pods("plain", 16, |d| {
        d.requests = Resources::new(100, 256 * MIB);
        d.gpu_memory_mib = Some(2048);
    }));
    let opts = pool(SharingChoice::Auto);
    let p = plan(&cat, &mixed, &opts);
    assert_valid(&p, &cat, &mixed, &opts);
    assert!((p.summary.hourly_cost - 4.0 * 0.526).abs() < 1e-9, "{p:#?}");
    for n in &p.nodes {
        let isolated = n.pods.iter().any(|id| id.contains("/iso-"));
        let want = if isolated { "mps" } else { "time-slicing" };
        assert_eq!(n.sharing, want, "{n:#?}");
    }
    // A pod asking for two nvidia.com/gpu of a shared GPU never lands on MPS (the device
    // plugin refuses such requests there): in an MPS pool it takes a whole GPU.
    let two = pods("two", 1, |d| {
        d.requests = Resources::new(100, 256 * MIB);
        d.gpus = 2;
    });
    let opts = PlanOptions {
        families: vec!["g4dn".into()],
        ..pool(SharingChoice::Mps)
    };
    let p = plan(&cat, &two, &opts);
    assert_valid(&p, &cat, &two, &opts);
    assert!(p.unplaced.is_empty());
    assert!(p.nodes.iter().all(|n| n.sharing != "mps"), "{p:#?}");
    // The independent check catches an MPS node in a time-slicing pool.
    let ts = pool(SharingChoice::TimeSlicing);
    let mut relabelled = plan(&cat, &items, &pool(SharingChoice::Mps));
    relabelled.nodes[0].pods.truncate(1);
    let errs = check(&relabelled, &cat, &items, &ts);
    assert!(
        errs.iter().any(|e| e.contains("expected time-slicing")),
        "{errs:?}"
    );
    // Without fractional types or MPS: whole GPUs, one pod each.
    let whole = PlanOptions {
        families: vec!["g4dn".into()],
        ..pool(SharingChoice::TimeSlicing)
    };
    let p = plan(&cat, &items, &whole);
    assert_valid(&p, &cat, &items, &whole);
    assert!(p.nodes.iter().all(|n| n.replicas_per_gpu == 1));
    // The independent check catches an isolated pod moved onto a time-sliced node.
    let shared = pods("shared", 2, |d| d.requests = Resources::new(100, 256 * MIB));
    let p = plan(&cat, &shared, &whole);
    let mut moved = p.clone();
    let iso = &items[0];
    moved.nodes[0].pods[0] = iso.id.clone();
    let mut both = shared.clone();
    both[0] = DemandItem {
        id: iso.id.clone(),
        ..shared[0].clone()
    };
    both[0].isolation = crate::model::Isolation::Memory;
    assert!(p.nodes[0].replicas_per_gpu > 1);
    let errs = check(&moved, &cat, &both, &whole);
    assert!(
        errs.iter()
            .any(|e| e.contains("asks for memory isolation on a time-sliced GPU")),
        "{errs:?}"
    );
}

mod sharing;
