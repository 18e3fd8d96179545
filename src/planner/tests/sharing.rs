//! Issue 19's hand-worked cases: what sharing a GPU costs in the slice-fit rule (the
//! CUDA context each pod holds, shares read as throughput) and the plans and costs that
//! follow, checked by the independent verifier.

use super::*;

/// Issue 19's hand-worked case: 10 pods on T4s (16,384 MiB) whose CUDA context (618 MiB)
/// counts, undeclared or added to 1 GiB.
#[test]
fn the_cuda_context_sets_the_largest_r_and_the_cost() {
    use crate::model::DEFAULT_CONTEXT_MEMORY_MIB as C;
    use crate::model::slice::SliceNeed;
    assert_eq!(C, 618);
    let t4 = 16_384;
    let all: Vec<u32> = (1..=48).collect();
    let silent = DemandItem::shared("default/silent", Resources::ZERO);
    // ⌊16384 / 618⌋ = 26: far above --max-replicas 10, so it does not bind there.
    assert_eq!(
        SliceNeed::of(&silent, FitRules::time(C)).max_replicas(t4, &all),
        Some(26)
    );
    assert_eq!(
        SliceNeed::of(&silent, FitRules::time(0)).max_replicas(t4, &all),
        Some(48)
    );
    let mut one_gib = silent.clone();
    one_gib.gpu_memory_mib = Some(1024);
    // The context included (the contract's convention): ⌊16384 / 1024⌋ = 16.
    assert_eq!(
        SliceNeed::of(&one_gib, FitRules::time(C)).max_replicas(t4, &all),
        Some(16)
    );
    // The context added: ⌊16384 / (1024 + 618)⌋ = 9 (R = 10 gives 1,638 MiB < 1,642).
    one_gib.gpu_memory_excludes_context = true;
    assert_eq!(
        SliceNeed::of(&one_gib, FitRules::time(C)).max_replicas(t4, &all),
        Some(9)
    );
    // A declared amount below the context still counts the context.
    let mut tiny = silent.clone();
    tiny.gpu_memory_mib = Some(100);
    assert_eq!(
        SliceNeed::of(&tiny, FitRules::time(C)).gpu_memory_mib,
        Some(C)
    );

    // The costs that follow, on g4dn.xlarge only: 10 undeclared pods share one T4 at
    // R = 10; 10 pods of 1 GiB without their context need R ≤ 9, so two nodes.
    let cat = catalog();
    let price = crate::catalog::find(&cat, "g4dn.xlarge")
        .and_then(|t| t.price(crate::model::CapacityType::OnDemand))
        .expect("priced");
    let opts = PlanOptions {
        instance_types: vec!["g4dn.xlarge".into()],
        ..PlanOptions::default()
    };
    let request = Resources::new(100, 256 * MIB);
    let silent_pods = pods("silent", 10, |d| d.requests = request);
    let p = plan(&cat, &silent_pods, &opts);
    assert_valid(&p, &cat, &silent_pods, &opts);
    assert_eq!(p.nodes.len(), 1);
    assert_eq!(p.nodes[0].replicas_per_gpu, 10);
    assert!((p.summary.hourly_cost - price).abs() < 1e-9);
    let added = pods("added", 10, |d| {
        d.requests = request;
        d.gpu_memory_mib = Some(1024);
        d.gpu_memory_excludes_context = true;
    });
    let p = plan(&cat, &added, &opts);
    assert_valid(&p, &cat, &added, &opts);
    assert!(p.unplaced.is_empty());
    assert_eq!(p.nodes.len(), 2);
    assert!(
        p.nodes.iter().all(|n| n.replicas_per_gpu <= 9),
        "{:?}",
        p.nodes
    );
    assert!((p.summary.hourly_cost - 2.0 * price).abs() < 1e-9);
    // The independent verifier counts the context too: the first plan, checked for pods
    // whose 1 GiB leaves the context out, is refused (R = 10 is one too many).
    let silent_plan = plan(&cat, &silent_pods, &opts);
    let renamed: Vec<DemandItem> = silent_pods
        .iter()
        .map(|d| DemandItem {
            gpu_memory_mib: Some(1024),
            gpu_memory_excludes_context: true,
            ..d.clone()
        })
        .collect();
    let errs = check(&silent_plan, &cat, &renamed, &opts);
    assert!(
        errs.iter().any(|e| e.contains("needs 1642 MiB GPU memory")),
        "{errs:#?}"
    );
    // A pod that fits a T4 only without its context is unplaced for its GPU memory, and
    // the reason counts the context: 16,384 + 618 MiB.
    let whole = pods("whole", 1, |d| {
        d.requests = request;
        d.gpu_memory_mib = Some(16_384);
        d.gpu_memory_excludes_context = true;
    });
    let p = plan(&cat, &whole, &opts);
    assert_eq!(p.unplaced.len(), 1, "{:?}", p.nodes);
    assert_eq!(
        p.unplaced[0].reason,
        UnplacedReason::GpuMemory {
            needs_mib: 16_384 + C,
            most_mib: 16_384,
            headroom_mib: 0
        }
    );
    // A pool's own reserve wins over the planner's.
    let mut pool = Pool::default_pool(ReplicaPolicy::Auto { max: 48 });
    pool.context_memory_mib = Some(2048);
    let pooled = PlanOptions {
        pools: vec![pool],
        ..opts.clone()
    };
    let p = plan(&cat, &silent_pods, &pooled);
    assert_valid(&p, &cat, &silent_pods, &pooled);
    // ⌊16384 / 2048⌋ = 8: two nodes for 10 pods.
    assert!(
        p.nodes.iter().all(|n| n.replicas_per_gpu <= 8),
        "{:?}",
        p.nodes
    );
    assert_eq!(p.nodes.len(), 2);
}

/// Issue 19's hand-worked case: `gpu-share: 0.25` read as throughput tolerates
/// R ≤ ⌊730 / 250⌋ = 2 on time-slicing and R ≤ ⌊1100 / 250⌋ = 4 on MPS (the issue's
/// figure, MPS without a thread limit; ⌊1010 / 250⌋ = 4 with the default), where the time
/// reading allows R ≤ ⌊1000 / 250⌋ = 4 on both.
#[test]
fn a_share_read_as_throughput_sets_the_largest_r_and_the_cost() {
    use crate::model::slice::{Efficiency, ShareModel, Slice, SliceNeed};
    // The default: MPS under the device plugin's 100/R thread limit.
    assert_eq!(
        (
            Efficiency::MEASURED.time_slicing_milli,
            Efficiency::MEASURED.mps_milli
        ),
        (730, 1010)
    );
    let e = Efficiency {
        time_slicing_milli: 730,
        mps_milli: 1100,
    };
    let t4 = 16_384;
    let mut quarter = DemandItem::shared("default/q", Resources::ZERO);
    quarter.gpu_share_milli = Some(250);
    let rs: Vec<u32> = (1..=48).collect();
    let largest = |it: &DemandItem, model: ShareModel, mps: bool| {
        let need = SliceNeed::of(it, FitRules::new(0, model));
        rs.iter()
            .copied()
            .filter(|&r| {
                let s = Slice::new(t4, r).rated(e);
                need.fits(&if mps { s.under_mps(e) } else { s })
            })
            .max()
    };
    assert_eq!(largest(&quarter, ShareModel::Time, false), Some(4));
    assert_eq!(largest(&quarter, ShareModel::Time, true), Some(4));
    assert_eq!(largest(&quarter, ShareModel::Throughput, false), Some(2));
    assert_eq!(largest(&quarter, ShareModel::Throughput, true), Some(4));
    // 0.26 is past MPS's time share at R = 4 (250) but within its throughput (275).
    let mut more = quarter.clone();
    more.gpu_share_milli = Some(260);
    assert_eq!(largest(&more, ShareModel::Time, true), Some(3));
    assert_eq!(largest(&more, ShareModel::Throughput, true), Some(4));
    assert_eq!(largest(&more, ShareModel::Throughput, false), Some(2));
    // A lower time-slicing efficiency of 0.49 leaves 0.25 only R = 1.
    let low = Efficiency {
        time_slicing_milli: 490,
        ..e
    };
    let need = SliceNeed::of(&quarter, FitRules::new(0, ShareModel::Throughput));
    assert!(!need.fits(&Slice::new(t4, 2).rated(low)));
    assert!(need.fits(&Slice::new(t4, 1).rated(low)));
    // With the default MPS figure 0.25 still gets R = 4 (⌊1010 / 4⌋ = 252), 0.26 only 3.
    let d = Efficiency::MEASURED;
    assert!(need.fits(&Slice::new(t4, 4).rated(d).under_mps(d)));
    let more_need = SliceNeed::of(&more, FitRules::new(0, ShareModel::Throughput));
    assert!(!more_need.fits(&Slice::new(t4, 4).rated(d).under_mps(d)));
    assert!(more_need.fits(&Slice::new(t4, 3).rated(d).under_mps(d)));

    // The costs that follow: 8 pods of 0.25 on g4dn.xlarge (one T4).
    let cat = catalog();
    let price = crate::catalog::find(&cat, "g4dn.xlarge")
        .and_then(|t| t.price(crate::model::CapacityType::OnDemand))
        .expect("priced");
    let request = Resources::new(100, 256 * MIB);
    let quarters = pods("q", 8, |d| {
        d.requests = request;
        d.gpu_share_milli = Some(250);
    });
    let pooled = |strategy: SharingChoice, model: ShareModel| {
        let mut pool = Pool::default_pool(ReplicaPolicy::Auto { max: 10 });
        pool.sharing_strategy = strategy;
        PlanOptions {
            instance_types: vec!["g4dn.xlarge".into()],
            pools: vec![pool],
            share_model: model,
            ..PlanOptions::default()
        }
    };
    let cases = [
        // Time: R = 4, two nodes, time-sliced (MPS adds nothing an `auto` pool pays for).
        (SharingChoice::Auto, ShareModel::Time, 2, 4, "time-slicing"),
        // Throughput on time-slicing only: R = 2, four nodes.
        (
            SharingChoice::TimeSlicing,
            ShareModel::Throughput,
            4,
            2,
            "time-slicing",
        ),
        // Throughput where MPS may run: R = 4 under MPS, two nodes again.
        (SharingChoice::Mps, ShareModel::Throughput, 2, 4, "mps"),
        (SharingChoice::Auto, ShareModel::Throughput, 2, 4, "mps"),
    ];
    for (strategy, model, nodes, r, sharing) in cases {
        let opts = pooled(strategy, model);
        let p = plan(&cat, &quarters, &opts);
        assert_valid(&p, &cat, &quarters, &opts);
        let case = format!("{strategy:?} {model:?}: {:?}", p.nodes);
        assert!(p.unplaced.is_empty(), "{case}");
        assert_eq!(p.nodes.len(), nodes, "{case}");
        assert!(
            p.nodes
                .iter()
                .all(|n| n.replicas_per_gpu == r && n.sharing == sharing),
            "{case}"
        );
        assert!(
            (p.summary.hourly_cost - nodes as f64 * price).abs() < 1e-9,
            "{case}"
        );
        // The slice labels carry the throughput the rule read.
        let want = if sharing == "mps" { 1010 / r } else { 730 / r };
        assert!(
            p.nodes.iter().all(|n| n.slice_throughput_milli == want),
            "{case}"
        );
    }
    // A pool's own reading adds to the planner's: a `time` planner with a `throughput`
    // pool of time-slicing keeps both, R ≤ 2.
    let mut opts = pooled(SharingChoice::TimeSlicing, ShareModel::Time);
    opts.pools[0].share_model = Some(ShareModel::Throughput);
    let p = plan(&cat, &quarters, &opts);
    assert_valid(&p, &cat, &quarters, &opts);
    assert_eq!(p.nodes.len(), 4, "{:?}", p.nodes);
    // The independent verifier reads shares as the planner does: the time plan (R = 4 on
    // time-slicing) is refused when checked as throughput.
    let time_opts = pooled(SharingChoice::TimeSlicing, ShareModel::Time);
    let time_plan = plan(&cat, &quarters, &time_opts);
    let errs = check(
        &time_plan,
        &cat,
        &quarters,
        &pooled(SharingChoice::TimeSlicing, ShareModel::Throughput),
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("wants share 250/1000 of throughput")),
        "{errs:#?}"
    );
}
