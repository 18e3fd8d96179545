//! gpu-slicer's repack in the replay (the `engine` docs' "Repack"), hand-worked on the
//! two-type catalog of `sim::tests` (`one.gpu` 1 GPU, 8 cpu, 30 GiB at $1/h; `four.gpu`
//! 4 GPUs, 32 cpu, 120 GiB at $3/h). Defaults: batch 1 s / 10 s, launch 90 s,
//! consolidateAfter 30 s, repack every 3,600 s from the first arrival, min saving 5 %,
//! min pod age 300 s, Karpenter's default budget (10 % of the pool's nodes, rounded up).

use super::*;
use crate::model::labels;

/// A pod of 4.5 cpu and 10 GiB: one fits a `one.gpu` (8 cpu), seven a `four.gpu`.
fn big(id: &str, arrival: u64, departure: u64) -> Job {
    let mut j = job(id, arrival, departure);
    j.item.requests = Resources::new(4500, 10 * GIB);
    j
}

fn off() -> SimConfig {
    SimConfig {
        repack_interval_s: 0,
        ..SimConfig::default()
    }
}

/// Two batches of seven big pods, 100 s apart, each on its own `four.gpu`; all but one of
/// each batch leave early, the two survivors stay until 10,000.
fn staggered() -> Workload {
    let mut jobs = Vec::new();
    for (batch, start, early) in [("a", 0, 1000), ("b", 100, 1200)] {
        for i in 0..7 {
            let leave = if i == 0 { 10_000 } else { early + i };
            jobs.push(big(&format!("{batch}{i}"), start + i, leave));
        }
    }
    jobs.sort_by_key(|j| j.arrival);
    workload(jobs)
}

#[test]
fn repack_replaces_an_emptied_node_by_cheaper_ones() {
    let w = staggered();
    // Off: the batches get four.gpu nodes 0 (ready 97) and 1 (ready 197). Once a's early
    // pods left (by 1006), delete consolidation moves a0 onto node 1 (1036) and removes
    // node 0; node 1 then runs a0 and b0 at $3/h until they leave at 10,000.
    let (plain, nodes) = run(&w, Strategy::GpuSlicer, &off());
    assert!(nodes.iter().all(|(_, t, _)| t == "four.gpu"), "{nodes:?}");
    assert_eq!((plain.repack_moves, plain.pods_restarted), (0, 0));
    assert_eq!(plain.disruptions, 1);
    // On: the round at 3,600 sees node 1 alone (budget ⌈10 % × 1⌉ = 1): a0 and b0 (9 cpu)
    // need two one.gpu ($2/h < $3/h, a 33 % saving). They launch at 3,600, are ready at
    // 3,690, the two pods move and node 1 goes.
    let cat = catalog();
    let mut during = Vec::new();
    let on = simulate_one_with(
        &cat,
        &w,
        Strategy::GpuSlicer,
        &SimConfig::default(),
        &mut |c| {
            if let Err(e) = c.check_capacity() {
                panic!("t={}: {e}", c.now());
            }
            if (3600..3690).contains(&c.now()) {
                during.push(c.nodes());
            }
        },
    );
    assert_eq!((on.repack_moves, on.repack_rollbacks), (1, 0));
    assert_eq!(on.pods_restarted, 2);
    assert!(
        close(on.restarts_per_day, 2.0 * 86_400.0 / 10_000.0),
        "{}",
        on.restarts_per_day
    );
    // Two replacements ran 90 s each beside the node they replaced.
    assert!(
        close(on.overlap_node_hours, 2.0 * 90.0 / 3600.0),
        "{}",
        on.overlap_node_hours
    );
    // While the move runs, the replaced node keeps its pods and the replacements take none.
    let last = during.last().expect("the move ran through 3,600..3,690");
    assert_eq!(last.len(), 3, "{last:?}");
    assert_eq!(last[0].pods.len(), 2);
    assert!(
        last[1..]
            .iter()
            .all(|n| !n.ready && n.pods.is_empty() && n.reserved.is_empty())
    );
    assert!(last[1..].iter().all(|n| n.instance_type == "one.gpu"));
    // Node 1 ($3/h) until 3,690 instead of 10,030; two one.gpu from 3,600 to 10,030.
    let saved = usd(10_030 - 3690, 3.0) - usd(2 * (10_030 - 3600), 1.0);
    assert!(
        close(plain.cost - on.cost, saved),
        "{} {} {saved}",
        plain.cost,
        on.cost
    );
    assert!(on.cost < plain.cost);
    assert_eq!((on.share_violations, on.memory_violations), (0, 0));
    // Moves keep pending times.
    assert_eq!(on.pending_times_s, plain.pending_times_s);
}

#[test]
fn young_pods_and_the_rate_limit_block_repack() {
    let w = staggered();
    // Every pod bound for less than the whole replay: nothing is old enough.
    let young = SimConfig {
        repack_min_pod_age_s: 20_000,
        ..SimConfig::default()
    };
    let (r, _) = run(&w, Strategy::GpuSlicer, &young);
    assert_eq!((r.repack_moves, r.pods_restarted), (0, 0));
    // A saving threshold above the 33 % on offer.
    let greedy = SimConfig {
        repack_min_saving: 0.5,
        ..SimConfig::default()
    };
    let (r, _) = run(&w, Strategy::GpuSlicer, &greedy);
    assert_eq!(r.repack_moves, 0);
    let (on, _) = run(&w, Strategy::GpuSlicer, &SimConfig::default());
    assert_eq!(on.repack_moves, 1);
    // Karpenter-like strategies never repack.
    let (k, _) = run(&w, Strategy::Dedicated, &SimConfig::default());
    assert_eq!(
        (k.repack_moves, k.pods_restarted, k.overlap_node_hours),
        (0, 0, 0.0)
    );
}

#[test]
fn a_move_rolls_back_when_arrivals_take_the_room_it_counted_on() {
    // c0..c6 at 0 on a four.gpu (node 0); five leave at 1000, c0 and c1 stay. s (1 cpu,
    // pinned to one.gpu) at 3400 gets a one.gpu (node 1, ready 3491). At the round at
    // 3600, node 1 is blocked (s is 109 s old) but its room counts: c0 goes there, c1 on
    // a new one.gpu (node 2, ready 3690): $1/h for $3/h. y (4.5 cpu) arrives at 3650 and
    // binds to node 1 (node 0 is tainted). At 3690 c0 and c1 fit nowhere but node 2 (one
    // of them): the move rolls back, node 0 keeps both, node 2 goes empty at 3720.
    let mut jobs: Vec<Job> = (0..7)
        .map(|i| big(&format!("c{i}"), 0, if i < 2 { 10_000 } else { 1000 }))
        .collect();
    let mut s = job("s", 3400, 10_000);
    s.item
        .node_selector
        .insert(labels::INSTANCE_TYPE.to_string(), "one.gpu".to_string());
    jobs.push(s);
    jobs.push(big("y", 3650, 10_000));
    let w = workload(jobs);
    let (r, nodes) = run(&w, Strategy::GpuSlicer, &SimConfig::default());
    let types: Vec<&str> = nodes.iter().map(|(_, t, _)| t.as_str()).collect();
    assert_eq!(&types[..3], ["four.gpu", "one.gpu", "one.gpu"], "{nodes:?}");
    assert!(r.repack_rollbacks >= 1, "{r:?}");
    assert_eq!((r.share_violations, r.memory_violations), (0, 0));
    assert_eq!(r.never_placed, 0);
    // The rolled-back replacement's 90 s are counted as overlap.
    assert!(r.overlap_node_hours >= 90.0 / 3600.0 - 1e-9);
}
