//! The simulator engine on the Alibaba `default` trace: the capacity invariant after every
//! event for every strategy on a 500-pod sample, and (ignored; run with
//! `cargo test --release --test sim_engine -- --ignored --nocapture`) the whole trace
//! through the four strategies, timed.

use std::time::Instant;

use gpu_slicer::catalog;
use gpu_slicer::sim::engine::{Binding, lower_bound_series, simulate, simulate_one_with};
use gpu_slicer::sim::{Job, SimConfig, Strategy, Workload};
use gpu_slicer::trace::{alibaba_demand, parse_alibaba_pods};

const DEFAULT_TRACE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/simulations/data/alibaba-gpu-2023/openb_pod_list_default.csv"
);

const STRATEGIES: [Strategy; 4] = [
    Strategy::Dedicated,
    Strategy::SlicingUnaware { replicas: 4 },
    Strategy::FixedOverlay { replicas: 4 },
    Strategy::GpuSlicer,
];

/// The GPU pods of the `default` trace as jobs, sorted by arrival.
fn default_trace() -> Workload {
    let text = std::fs::read_to_string(DEFAULT_TRACE).expect("read the default trace");
    let pods = parse_alibaba_pods(DEFAULT_TRACE, &text).expect("parse the default trace");
    let mut jobs: Vec<Job> = pods
        .iter()
        .filter_map(|p| {
            let item = alibaba_demand(p, "openb")?;
            Some(Job {
                arrival: p.creation_time?,
                departure: p.deletion_time,
                item,
            })
        })
        .collect();
    jobs.sort_by_key(|j| j.arrival);
    Workload {
        name: "default".into(),
        jobs,
    }
}

/// Every `step`-th job of the trace, up to `n` of them (a deterministic sample that keeps
/// the trace's timing).
fn sample(w: &Workload, n: usize) -> Workload {
    let step = (w.jobs.len() / n).max(1);
    Workload {
        name: format!("{}-{n}", w.name),
        jobs: w.jobs.iter().step_by(step).take(n).cloned().collect(),
    }
}

#[test]
fn capacity_holds_after_every_event_on_an_alibaba_sample() {
    let cat = catalog::embedded().expect("catalog");
    let w = sample(&default_trace(), 500);
    assert_eq!(w.jobs.len(), 500);
    let cfg = SimConfig::default();
    for s in STRATEGIES {
        for binding in [Binding::KubeScheduler, Binding::SafeForGpuSlicer] {
            let mut events = 0usize;
            let r = simulate_one_with(&cat, &w, s, &cfg, binding, &mut |c| {
                events += 1;
                if let Err(e) = c.check_capacity() {
                    panic!("{} at t={}: {e}", s.name(), c.now());
                }
            });
            assert!(events > 1000, "{}: {events} events", s.name());
            let placed = r.pending_times_s.len();
            assert_eq!(
                placed + r.never_placed + r.left_pending,
                500,
                "{}: every pod placed, never placed or left pending",
                s.name()
            );
            assert!(r.cost > 0.0 && r.nodes_launched > 0);
            assert!(r.gpu_hours_used <= r.gpu_hours_paid * 4.0 + 1e-9);
            if s == Strategy::GpuSlicer && binding == Binding::SafeForGpuSlicer {
                assert_eq!((r.share_violations, r.memory_violations), (0, 0));
            }
            if s == Strategy::Dedicated {
                assert_eq!(r.share_violations, 0);
            }
        }
    }
}

#[test]
#[ignore = "the whole default trace; run in release"]
fn default_trace_through_four_strategies_is_timed() {
    let cat = catalog::embedded().expect("catalog");
    let w = default_trace();
    assert_eq!(w.jobs.len(), 7064);
    let cfg = SimConfig::default();
    let t = Instant::now();
    let (lb, _) = lower_bound_series(&cat, &w, &cfg);
    println!(
        "lower bound alone: ${lb:.2} in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let mut last = (0, 0);
    let report = simulate(&cat, &w, &STRATEGIES, &cfg, &mut |d, t| last = (d, t));
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(last.0, last.1);
    println!(
        "default trace: {} pods, horizon {} s, lower bound ${:.2}; {secs:.1} s for the bound and 4 strategies",
        report.pods, report.horizon_s, report.lower_bound_cost
    );
    for s in &report.strategies {
        println!(
            "{:<22} ${:>10.2} x{:.3} p50 {:>5} p95 {:>5} p99 {:>5} never {:>4} left {:>4} \
             launched {:>5} peak {:>3} share-v {:>5} mem-v {} moves {} paid {:.0} used {:.0} GPU-h",
            s.strategy,
            s.cost,
            s.cost_over_lower_bound,
            s.pending_p50_s,
            s.pending_p95_s,
            s.pending_p99_s,
            s.never_placed,
            s.left_pending,
            s.nodes_launched,
            s.peak_nodes,
            s.share_violations,
            s.memory_violations,
            s.disruptions,
            s.gpu_hours_paid,
            s.gpu_hours_used,
        );
    }
    let t = Instant::now();
    let safe = simulate_one_with(
        &cat,
        &w,
        Strategy::GpuSlicer,
        &cfg,
        Binding::SafeForGpuSlicer,
        &mut |_| {},
    );
    println!(
        "gpu-slicer, safe binding: ${:.2} p50 {} p95 {} never {} left {} launched {} share-v {} ({:.1} s)",
        safe.cost,
        safe.pending_p50_s,
        safe.pending_p95_s,
        safe.never_placed,
        safe.left_pending,
        safe.nodes_launched,
        safe.share_violations,
        t.elapsed().as_secs_f64()
    );
    assert!(secs <= 60.0, "took {secs:.1} s");
}
