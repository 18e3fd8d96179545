//! Plan quality on the Alibaba GPU-sharing trace (the full numbers are in
//! `cargo bench --bench planner` and the README): a 200-pod sample of each pod list
//! is planned, checked for validity, and its cost compared with the proven lower bound.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gpu_slicer::catalog;
use gpu_slicer::planner::{self, PlanOptions, check::check};
use gpu_slicer::trace::{alibaba_demand, parse_alibaba_pods, sample_demand};

fn sample(name: &str, n: usize, seed: u64) -> Vec<gpu_slicer::model::DemandItem> {
    let path = format!(
        "{}/simulations/data/alibaba-gpu-2023/openb_pod_list_{name}.csv",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("trace file");
    let pods = parse_alibaba_pods(&path, &text).expect("trace parses");
    let items: Vec<_> = pods
        .iter()
        .filter_map(|p| alibaba_demand(p, name))
        .collect();
    sample_demand(&items, n, seed)
}

#[test]
fn alibaba_samples_are_valid_and_near_their_bound() {
    let cat = catalog::embedded().expect("catalog");
    let opts = PlanOptions::default();
    for name in ["default", "gpushare60", "gpuspec33", "multigpu30"] {
        let items = sample(name, 200, 1);
        let plan = planner::plan(&cat, &items, &opts);
        let errs = check(&plan, &cat, &items, &opts);
        assert!(errs.is_empty(), "{name}: {errs:#?}");
        let s = &plan.summary;
        assert_eq!(s.placed_pods, 200, "{name}: {:?}", plan.unplaced);
        assert!(s.lower_bound_hourly_cost > 0.0);
        let ratio = s.hourly_cost / s.lower_bound_hourly_cost;
        // Measured 1.018–1.049 on these samples (README, seed 1); the target of 1.02
        // applies to the 2,000-pod samples and full lists, reported by the benchmark.
        assert!(ratio <= 1.08, "{name}: cost/bound = {ratio:.4}");
        assert!(s.hourly_cost <= s.dedicated_hourly_cost + 1e-9, "{name}");
    }
}
