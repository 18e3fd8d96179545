//! Issue 13's honest replay, hand-worked on the two-type catalog of `sim::tests`
//! (`one.gpu` 1 GPU at $1/h, `four.gpu` 4 GPUs at $3/h, 16 GiB GPUs): admission binding,
//! overlay-safe's pools, replacement and multi-node consolidation, the ranking and the
//! time scale. Defaults: batch 1 s / 10 s, launch 90 s, consolidateAfter 30 s.

use super::*;
use crate::model::SharingChoice;
use crate::model::slice::ShareModel;
use crate::sim::engine::rank;
use crate::sim::workload::time_scaled;

fn with_share(id: &str, arrival: u64, share: u32) -> Job {
    let mut j = job(id, arrival, 3600);
    j.item.gpu_share_milli = Some(share);
    j
}

#[test]
fn admission_keeps_gpu_slicer_pods_off_unsafe_slices() {
    // A (no share) at 0: the batch closes at 1, the planner launches one.gpu at R = 10
    // (ready 91). B (share 0.6) at 2: its batch closes at 3; the in-flight R = 10 node is
    // unsafe for it, so the planner launches a one.gpu at R = 1 (ready 93).
    let w = workload(vec![job("a", 0, 3600), with_share("b", 2, 600)]);
    // Without admission the scheduler binds B onto the R = 10 node at 91 (a free slice):
    // a share violation; B's own node becomes ready empty at 93 and goes at 123.
    let kube_cfg = SimConfig {
        repack_interval_s: 0,
        ..no_admission()
    };
    let (kube, nodes) = run(&w, Strategy::GpuSlicer, &kube_cfg);
    assert_eq!(
        nodes.into_iter().collect::<Vec<_>>(),
        vec![(0, "one.gpu".into(), 10), (1, "one.gpu".into(), 1)]
    );
    assert_eq!(kube.pending_times_s, vec![91, 89]);
    assert_eq!((kube.share_violations, kube.memory_violations), (1, 0));
    assert!(!kube.safe);
    assert!(
        close(kube.cost, usd(3630 - 1, 1.0) + usd(120, 1.0)),
        "{}",
        kube.cost
    );
    // With admission B carries `slice-share-milli Gt 599`: the R = 10 node's label is
    // 100, so B waits for its own node (ready 93): 91 s, no violation.
    let (adm, _) = run(&w, Strategy::GpuSlicer, &no_repack());
    assert_eq!(adm.pending_times_s, vec![91, 91]);
    assert_eq!((adm.share_violations, adm.memory_violations), (0, 0));
    assert!(adm.safe);
    assert!(close(adm.cost, usd(3630 - 1, 1.0) + usd(3630 - 3, 1.0)));
}

#[test]
fn overlay_safe_opens_claims_in_the_densest_pool_that_fits() {
    // share 0.6 at 0: R = 4 (250) and R = 2 (500) are too small: the R = 1 pool, one.gpu
    // (ready 91). 8 GiB at 100: the R = 1 node is full; R = 4 gives 4 GiB, R = 2 gives
    // 8 GiB: one.gpu at R = 2 (batch 101, ready 191). A plain pod at 200 binds at once to
    // that node's free slice.
    let mut mem = job("mem", 100, 3600);
    mem.item.gpu_memory_mib = Some(8 * 1024);
    let w = workload(vec![
        with_share("share", 0, 600),
        mem,
        job("plain", 200, 3600),
    ]);
    let (r, nodes) = run(&w, Strategy::OverlaySafe, &SimConfig::default());
    assert_eq!(
        nodes.into_iter().collect::<Vec<_>>(),
        vec![(0, "one.gpu".into(), 1), (1, "one.gpu".into(), 2)]
    );
    assert_eq!(r.pending_times_s, vec![91, 91, 0]);
    assert_eq!((r.share_violations, r.memory_violations), (0, 0));
    assert_eq!(r.strategy, "overlay-safe");
    // The same pods under the R = 4 overlay: one one.gpu at R = 4, two violations.
    let (ov, _) = run(
        &w,
        Strategy::FixedOverlay { replicas: 4 },
        &SimConfig::default(),
    );
    assert_eq!((ov.share_violations, ov.memory_violations), (1, 1));
}

#[test]
fn replacement_swaps_a_mostly_empty_node_for_a_cheaper_one() {
    // Dedicated: four pods at 0 get a four.gpu (launched 1, ready 91). Three leave at
    // 1000; the fourth runs to 3600.
    let mut jobs: Vec<Job> = (0..4).map(|i| job(&format!("p{i}"), 0, 3600)).collect();
    for j in &mut jobs[..3] {
        j.departure = Some(1000);
    }
    let w = workload(jobs);
    // Delete only: nowhere to move the last pod: the four.gpu stays to 3630.
    let (del, _) = run(&w, Strategy::Dedicated, &SimConfig::default());
    assert!(close(del.cost, usd(3629, 3.0)), "{}", del.cost);
    // Replace: at 1030 the four.gpu ($3) is replaced by a one.gpu ($1) that holds the
    // pod: launched 1030, ready 1120, the pod moves, the four.gpu goes at 1120 (up
    // 1119 s); the one.gpu stays to 3630 (2600 s).
    let v = Variant::new(Strategy::Dedicated, Consolidation::Replace);
    let (rep, nodes) = run(&w, v, &SimConfig::default());
    assert_eq!(rep.strategy, "dedicated+replace");
    assert_eq!(
        nodes.into_iter().collect::<Vec<_>>(),
        vec![(0, "four.gpu".into(), 1), (1, "one.gpu".into(), 1)]
    );
    assert!(
        close(rep.cost, usd(1119, 3.0) + usd(2600, 1.0)),
        "{}",
        rep.cost
    );
    assert_eq!(rep.disruptions, 1);
    assert!(rep.cost < del.cost);
    assert_eq!(rep.pending_times_s, del.pending_times_s);
}

#[test]
fn multi_node_consolidation_merges_four_nodes_into_one() {
    // Dedicated, one pod at 0, 20, 40, 60 (the burst): four one.gpu nodes launched at
    // 1, 21, 41, 61, ready 91..151. At 181 all four are candidates; together ($4/h) they
    // fit one four.gpu ($3/h): launched 181, ready 271, four moves, the one.gpu nodes go
    // at 271 (up 270 + 250 + 230 + 210 s); the four.gpu stays to 3630 (3449 s). Before
    // 181 no prefix pays: 2 pods need a four.gpu ($3 > $2), 3 too ($3 = $3).
    let v = Variant::new(Strategy::Dedicated, Consolidation::Multi);
    let (multi, _) = run(&burst(), v, &SimConfig::default());
    assert_eq!(multi.nodes_launched, 5);
    assert_eq!(multi.disruptions, 4);
    assert!(
        close(multi.cost, usd(270 + 250 + 230 + 210, 1.0) + usd(3449, 3.0)),
        "{}",
        multi.cost
    );
    let (del, _) = run(&burst(), Strategy::Dedicated, &SimConfig::default());
    assert!(multi.cost < del.cost);
    // Empty-only consolidation never moves a pod.
    let empty = Variant::new(Strategy::Dedicated, Consolidation::Empty);
    let (e, _) = run(&burst(), empty, &SimConfig::default());
    assert_eq!(e.disruptions, 0);
}

#[test]
fn an_unsafe_strategy_never_ranks_above_a_safe_one() {
    let (base, _) = run(&four_at_once(), Strategy::Dedicated, &SimConfig::default());
    let mk = |name: &str, cost: f64, safe: bool| StrategyReport {
        strategy: name.to_string(),
        cost,
        safe,
        ..base.clone()
    };
    let mut v = vec![
        mk("cheap-unsafe", 1.0, false),
        mk("dear-safe", 9.0, true),
        mk("cheap-safe", 2.0, true),
        mk("dearer-unsafe", 5.0, false),
    ];
    rank(&mut v);
    let ranks: Vec<(&str, usize)> = v.iter().map(|r| (r.strategy.as_str(), r.rank)).collect();
    assert_eq!(
        ranks,
        [
            ("cheap-unsafe", 3),
            ("dear-safe", 2),
            ("cheap-safe", 1),
            ("dearer-unsafe", 4)
        ]
    );
    // In a replay: overlay-r4 puts a share-0.6 pod on a quarter GPU and is cheapest, yet
    // ranks after every safe strategy.
    let w = workload(vec![
        with_share("s", 0, 600),
        job("a", 0, 3600),
        job("b", 0, 3600),
    ]);
    let cat = catalog();
    let vs: Vec<Variant> = [
        Strategy::Dedicated,
        Strategy::FixedOverlay { replicas: 4 },
        Strategy::OverlaySafe,
        Strategy::GpuSlicer,
    ]
    .map(Variant::from)
    .to_vec();
    let report = simulate(&cat, &w, &vs, &SimConfig::default(), &mut |_, _| {});
    let worst_safe = report
        .strategies
        .iter()
        .filter(|s| s.safe)
        .map(|s| s.rank)
        .max();
    let best_unsafe = report
        .strategies
        .iter()
        .filter(|s| !s.safe)
        .map(|s| s.rank)
        .min();
    assert_eq!((worst_safe, best_unsafe), (Some(3), Some(4)), "{report:#?}");
}

#[test]
fn time_scale_compresses_arrivals_and_keeps_durations() {
    let w = workload(vec![
        job("a", 100, 150),
        job("b", 200, 1200),
        job("c", 1100, 1300),
    ]);
    let x10 = time_scaled(&w, 10.0);
    let spans: Vec<(u64, Option<u64>)> =
        x10.jobs.iter().map(|j| (j.arrival, j.departure)).collect();
    // Arrivals 100 + ⌊(t − 100) / 10⌋: 100, 110, 200; durations 50, 1000, 200.
    assert_eq!(
        spans,
        [(100, Some(150)), (110, Some(1110)), (200, Some(400))]
    );
    assert_eq!(x10.name, "test-x10");
    // Jobs without a departure keep none; a bad factor leaves the workload as it is.
    let mut open = w.clone();
    open.jobs[2].departure = None;
    assert_eq!(time_scaled(&open, 2.0).jobs[2].departure, None);
    for k in [0.0, -1.0, f64::NAN, f64::INFINITY, 1.0] {
        assert_eq!(time_scaled(&w, k), w, "{k}");
    }
}

/// Issue 19: shares read as throughput. Four pods of `gpu-share: 0.25` arrive together.
/// Read as time, one one.gpu at R = 4 holds them. Read as throughput a time slice at R = 4
/// gives ⌊730 / 4⌋ = 182 < 250, an MPS slice ⌊1010 / 4⌋ = 252: the default (`auto`) pool
/// runs MPS at R = 4; a time-slicing-only pool needs R ≤ 2, two one.gpu. The R = 4 overlay
/// breaks every share under throughput and none under time, and the report counts both.
#[test]
fn shares_read_as_throughput_cost_time_slicing_and_not_mps() {
    let w = workload(
        (0..4)
            .map(|i| with_share(&format!("q{i}"), 0, 250))
            .collect(),
    );
    let throughput = |strategy: SharingChoice| {
        let mut cfg = no_repack();
        cfg.plan.share_model = ShareModel::Throughput;
        let mut pool = crate::model::Pool::default_pool(cfg.plan.default_replicas.clone());
        pool.sharing_strategy = strategy;
        cfg.plan.pools = vec![pool];
        cfg
    };
    let (time, nodes) = run(&w, Strategy::GpuSlicer, &no_repack());
    assert_eq!(
        nodes.into_iter().collect::<Vec<_>>(),
        vec![(0, "one.gpu".into(), 4)]
    );
    assert_eq!(
        (
            time.share_violations_by_time,
            time.share_violations_by_throughput
        ),
        (0, 4)
    );
    let (mps, nodes) = run(&w, Strategy::GpuSlicer, &throughput(SharingChoice::Auto));
    assert_eq!(
        nodes.into_iter().collect::<Vec<_>>(),
        vec![(0, "one.gpu".into(), 4)]
    );
    assert!(mps.safe);
    assert_eq!(
        (
            mps.share_violations_by_time,
            mps.share_violations_by_throughput
        ),
        (0, 0)
    );
    assert!(close(mps.cost, time.cost), "{} vs {}", mps.cost, time.cost);
    let (ts, nodes) = run(
        &w,
        Strategy::GpuSlicer,
        &throughput(SharingChoice::TimeSlicing),
    );
    assert_eq!(
        nodes.into_iter().collect::<Vec<_>>(),
        vec![(0, "one.gpu".into(), 2), (1, "one.gpu".into(), 2)]
    );
    assert!(ts.safe);
    assert!(
        close(ts.cost, 2.0 * time.cost),
        "{} vs {}",
        ts.cost,
        time.cost
    );
    let (ov, _) = run(
        &w,
        Strategy::FixedOverlay { replicas: 4 },
        &throughput(SharingChoice::Auto),
    );
    assert_eq!(
        (
            ov.share_violations,
            ov.share_violations_by_time,
            ov.share_violations_by_throughput
        ),
        (4, 0, 4)
    );
    assert!(!ov.safe);
}
