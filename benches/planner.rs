//! Planner benchmark and quality report (`cargo bench --bench planner`).
//!
//! Prints, for samples of the Alibaba GPU-sharing trace and for synthetic 10,000 and
//! 100,000-pod demands drawn from it: classes, nodes, cost, the proven lower bound and
//! their ratio, the dedicated cost, and the wall time of `plan` (median of 3 runs for the
//! 200-pod samples, one run for the larger demands; parsing excluded and timed
//! separately).

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use gpu_slicer::catalog;
use gpu_slicer::model::DemandItem;
use gpu_slicer::planner::{self, Effort, PlanOptions};
use gpu_slicer::trace::{alibaba_demand, parse_alibaba_pods, sample_demand};

const TRACES: [&str; 4] = ["default", "gpushare60", "gpuspec33", "multigpu30"];

fn load(name: &str) -> (Vec<DemandItem>, Duration) {
    let path = format!(
        "{}/simulations/data/alibaba-gpu-2023/openb_pod_list_{name}.csv",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("trace file");
    let t = Instant::now();
    let pods = parse_alibaba_pods(&path, &text).expect("trace parses");
    let items = pods
        .iter()
        .filter_map(|p| alibaba_demand(p, name))
        .collect();
    (items, t.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn run(label: &str, items: &[DemandItem], reps: usize) {
    if !fast_only() {
        run_with(label, items, reps, Effort::Full);
    }
    run_with(&format!("{label} fast"), items, reps.max(5), Effort::Fast);
}

/// `cargo bench --bench planner -- --fast`: only the fast planner.
fn fast_only() -> bool {
    std::env::args().any(|a| a == "--fast")
}

fn run_with(label: &str, items: &[DemandItem], reps: usize, effort: Effort) {
    let cat = catalog::embedded().expect("catalog");
    let opts = PlanOptions {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        effort,
        ..PlanOptions::default()
    };
    let mut times = Vec::new();
    let mut plan = None;
    for _ in 0..reps {
        let t = Instant::now();
        let p = planner::plan(&cat, items, &opts);
        times.push(t.elapsed());
        plan = Some(p);
    }
    let p = plan.expect("at least one rep");
    let s = &p.summary;
    let errs = planner::check::check(&p, &cat, items, &opts);
    assert!(errs.is_empty(), "{label}: invalid plan: {errs:?}");
    let ratio = if s.lower_bound_hourly_cost > 0.0 {
        s.hourly_cost / s.lower_bound_hourly_cost
    } else {
        f64::NAN
    };
    println!(
        "{label:<27} {:>7} {:>5} {:>6} {:>6} {:>11.2} {:>11.2} {:>7.4} {:>13} {:>11.2} {:>5} {:>9.1}",
        s.pods,
        p.solver.classes,
        s.placed_pods,
        s.nodes,
        s.hourly_cost,
        s.lower_bound_hourly_cost,
        ratio,
        p.solver.bound_kind.as_str(),
        s.dedicated_hourly_cost,
        p.solver.rounds,
        median(times).as_secs_f64() * 1000.0,
    );
}

/// `cargo bench --bench planner -- curve [N] [MS,MS,..] [no-dedicated]`: the gap against
/// the deadline for N synthetic pods (default 10,000), 5 runs per deadline: the median
/// run's plan (its master's value, bound and gap), the worst gap, and the median and
/// longest wall time. The
/// dedicated comparison runs beside the plan, as in `plan`, unless `no-dedicated` is
/// given: the controller (`run`) and `simulate` plan without it.
fn curve(args: &[String]) {
    let cat = catalog::embedded().expect("catalog");
    let (items, _) = load("default");
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let deadlines: Vec<u64> = args
        .get(3)
        .map(|a| a.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![25, 50, 100, 200, 500, 1000, 2000, 5000]);
    let items = sample_demand(&items, n, 7);
    println!(
        "{:>9} {:>11} {:>11} {:>11} {:>8} {:>8} {:>10} {:>9} {:>6} {:>10} {:>8}",
        "deadline",
        "$/h",
        "master $/h",
        "bound $/h",
        "gap %",
        "worst %",
        "bound",
        "stopped",
        "rnds",
        "median ms",
        "max ms"
    );
    for ms in deadlines {
        let opts = PlanOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            deadline: Some(Duration::from_millis(ms)),
            dedicated: args.get(4).is_none_or(|a| a != "no-dedicated"),
            ..PlanOptions::default()
        };
        // Under a deadline the plan depends on how far each run got: every run's plan is
        // checked, and the one with the median gap is shown beside the worst gap.
        let mut runs = Vec::new();
        for _ in 0..CURVE_RUNS {
            let t = Instant::now();
            let p = planner::plan(&cat, &items, &opts);
            let took = t.elapsed();
            assert!(planner::check::check(&p, &cat, &items, &opts).is_empty());
            runs.push((p, took));
        }
        runs.sort_by(|a, b| a.0.solver.gap.total_cmp(&b.0.solver.gap));
        let worst = runs.last().map_or(0.0, |r| r.0.solver.gap);
        let times: Vec<Duration> = runs.iter().map(|r| r.1).collect();
        let slowest = times.iter().max().copied().unwrap_or_default();
        let p = &runs[runs.len() / 2].0;
        let s = &p.summary;
        println!(
            "{:>7}ms {:>11.2} {:>11.2} {:>11.2} {:>8.3} {:>8.3} {:>10} {:>9} {:>6} {:>10.1} {:>8.1}",
            ms,
            s.hourly_cost,
            p.solver.lp_value,
            s.lower_bound_hourly_cost,
            100.0 * p.solver.gap,
            100.0 * worst,
            format!("{:?}", p.solver.bound_kind),
            format!("{:?}", p.solver.stopped_by),
            p.solver.rounds,
            median(times).as_secs_f64() * 1000.0,
            slowest.as_secs_f64() * 1000.0,
        );
    }
}

/// Runs per deadline in the curve.
const CURVE_RUNS: usize = 5;

/// `cargo bench --bench planner -- small`: controller-sized demands (1–50 pods drawn from
/// each trace, 20 samples per size): how often they are proven optimal and how long it takes.
fn small() {
    let cat = catalog::embedded().expect("catalog");
    println!(
        "{:<12} {:>5} {:>8} {:>9} {:>11} {:>11}",
        "trace", "pods", "samples", "optimal", "median ms", "max ms"
    );
    for name in TRACES {
        let (items, _) = load(name);
        let sizes: Vec<usize> = std::env::var("SIZES")
            .ok()
            .map_or(vec![1, 3, 10, 25, 50], |v| {
                v.split(',').filter_map(|x| x.parse().ok()).collect()
            });
        for n in sizes {
            let opts = PlanOptions {
                dedicated: false,
                deadline: Some(Duration::from_secs(1)),
                ..PlanOptions::default()
            };
            let mut times = Vec::new();
            let mut optimal = 0;
            for seed in 1..=20u64 {
                let demand = sample_demand(&items, n, seed);
                let t = Instant::now();
                let p = planner::plan(&cat, &demand, &opts);
                times.push(t.elapsed());
                optimal += usize::from(p.solver.proven_optimal);
            }
            let max = times.iter().max().copied().unwrap_or_default();
            println!(
                "{name:<12} {n:>5} {:>8} {optimal:>9} {:>11.2} {:>11.2}",
                times.len(),
                median(times).as_secs_f64() * 1000.0,
                max.as_secs_f64() * 1000.0
            );
        }
    }
}

/// `cargo bench --bench planner -- replan [N] [MS,..]`: re-planning similar demand with the
/// columns of the previous plan (`planner::Columns`, as the controller keeps them across
/// rounds): N pods (default 10,000) planned once without a deadline to fill the cache, then
/// a different sample of the same trace planned at each deadline, without and with it.
fn replan(args: &[String]) {
    let cat = catalog::embedded().expect("catalog");
    let (items, _) = load("default");
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let deadlines: Vec<u64> = args
        .get(3)
        .map(|a| a.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 300, 1000, 3000]);
    let first = sample_demand(&items, n, 7);
    let next = sample_demand(&items, n, 8);
    let base = PlanOptions {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        dedicated: false,
        ..PlanOptions::default()
    };
    let mut warm = planner::Columns::default();
    let t = Instant::now();
    let p0 = planner::plan_with(&cat, &first, &base, &mut warm);
    println!(
        "first plan: {:.2} $/h, gap {:.3} %, {} columns kept, {:.1} s",
        p0.summary.hourly_cost,
        100.0 * p0.solver.gap,
        warm.len(),
        t.elapsed().as_secs_f64()
    );
    println!(
        "{:>9} {:>6} {:>11} {:>11} {:>8} {:>6} {:>10}",
        "deadline", "cache", "$/h", "bound $/h", "gap %", "rnds", "median ms"
    );
    for ms in deadlines {
        let opts = PlanOptions {
            deadline: Some(Duration::from_millis(ms)),
            ..base.clone()
        };
        for cached in [false, true] {
            let mut times = Vec::new();
            let mut plan = None;
            for _ in 0..3 {
                let mut cols = if cached {
                    warm.clone()
                } else {
                    planner::Columns::default()
                };
                let t = Instant::now();
                let p = planner::plan_with(&cat, &next, &opts, &mut cols);
                times.push(t.elapsed());
                plan = Some(p);
            }
            let p = plan.expect("three runs");
            assert!(planner::check::check(&p, &cat, &next, &opts).is_empty());
            println!(
                "{:>7}ms {:>6} {:>11.2} {:>11.2} {:>8.3} {:>6} {:>10.1}",
                ms,
                if cached { "warm" } else { "cold" },
                p.summary.hourly_cost,
                p.summary.lower_bound_hourly_cost,
                100.0 * p.solver.gap,
                p.solver.rounds,
                median(times).as_secs_f64() * 1000.0,
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "replan") {
        replan(&args);
        return;
    }
    if args.get(1).is_some_and(|a| a == "curve") {
        curve(&args);
        return;
    }
    if args.get(1).is_some_and(|a| a == "small") {
        small();
        return;
    }
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    println!(
        "{:<27} {:>7} {:>5} {:>6} {:>6} {:>11} {:>11} {:>7} {:>13} {:>11} {:>5} {:>9}",
        "demand",
        "pods",
        "cls",
        "placed",
        "nodes",
        "$/h",
        "bound $/h",
        "ratio",
        "bound",
        "dedic $/h",
        "rnds",
        "median ms"
    );
    for name in TRACES {
        let (items, parse) = load(name);
        if filter
            .as_deref()
            .is_some_and(|f| !name.contains(f) && f != "synthetic")
        {
            continue;
        }
        if filter.as_deref() != Some("synthetic") {
            for seed in 1..=3u64 {
                run(
                    &format!("{name}/200/s{seed}"),
                    &sample_demand(&items, 200, seed),
                    3,
                );
            }
            // Larger demands take a minute or two each: one sample, one run.
            run(
                &format!("{name}/2000/s1"),
                &sample_demand(&items, 2000, 1),
                1,
            );
            run(&format!("{name}/all"), &items, 1);
            println!("  (parsing {name}: {:.1} ms)", parse.as_secs_f64() * 1000.0);
        }
        if name == "default" && filter.as_deref().is_none_or(|f| f == "synthetic") {
            run("synthetic/10000", &sample_demand(&items, 10_000, 7), 1);
            run("synthetic/100000", &sample_demand(&items, 100_000, 7), 1);
        }
    }
}
