use super::*;
use crate::planner::{PlanOptions, effective_pools, pattern::class_demand};
use proptest::prelude::*;

/// The assignment LP as written (primal, every configuration), for comparison.
fn primal(sp: &Space, demand: &[u32]) -> f64 {
    let mut prob = Problem::new(OptimizationDirection::Minimize);
    let mut by_class: Vec<Vec<(microlp::Variable, f64)>> = vec![Vec::new(); demand.len()];
    for qi in 0..sp.configs.len() {
        let q = &sp.configs[qi];
        let n = prob.add_var(q.price, (0.0, f64::INFINITY));
        let z: Vec<_> = q
            .eligible
            .iter()
            .map(|&(c, _)| {
                let v = prob.add_var(0.0, (0.0, f64::INFINITY));
                by_class[c].push((v, 1.0));
                v
            })
            .collect();
        for r in rows(sp, qi) {
            let mut e: Vec<_> = z
                .iter()
                .zip(&r)
                .filter(|(_, a)| **a > 0.0)
                .map(|(v, a)| (*v, *a))
                .collect();
            e.push((n, -1.0));
            prob.add_constraint(e, ComparisonOp::Le, 0.0);
        }
    }
    for (c, r) in by_class.into_iter().enumerate() {
        prob.add_constraint(r, ComparisonOp::Ge, f64::from(demand[c]));
    }
    prob.solve().unwrap().into_solution().unwrap().objective()
}

fn sample(name: &str, n: usize, seed: u64) -> Vec<crate::model::DemandItem> {
    let path = format!(
        "{}/simulations/data/alibaba-gpu-2023/openb_pod_list_{name}.csv",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let items: Vec<_> = crate::trace::parse_alibaba_pods(&path, &text)
        .unwrap()
        .iter()
        .filter_map(|p| crate::trace::alibaba_demand(p, name))
        .collect();
    crate::trace::sample_demand(&items, n, seed)
}

/// Configuration generation on the dual reaches the assignment LP's optimum (it may
/// pass it slightly: outside the working set, a configuration's bound counts at most
/// as many pods of a class as are in demand, which the LP does not), starting from
/// one configuration as well as from a plan's.
#[test]
fn the_dual_by_configuration_generation_reaches_the_assignment_lp() {
    let cat = crate::catalog::embedded().unwrap();
    let opts = PlanOptions::default();
    for (name, n) in [("default", 300), ("multigpu30", 300), ("gpuspec33", 300)] {
        let items = sample(name, n, 5);
        let sp = Space::build(&cat, &items, &effective_pools(&opts), &opts);
        let demand = class_demand(&sp);
        let lp = primal(&sp, &demand);
        for start in [vec![0usize], (0..sp.configs.len()).step_by(7).collect()] {
            let b = bound(&sp, &demand, &start, None, |_| ()).unwrap();
            assert!(
                b >= lp * (1.0 - 1e-6),
                "{name}: bound {b} below the assignment LP {lp}"
            );
            assert!(
                b <= lp * 1.01,
                "{name}: bound {b} far above the assignment LP {lp}"
            );
        }
        // A deadline already past: nothing is claimed.
        assert!(bound(&sp, &demand, &[0], Some(Instant::now()), |_| ()).is_none());
    }
}

/// The repair after a round over too small a working set: the weights only go down,
/// every configuration it was given stops beating its price, and what is left of the
/// dual beats scaling every weight by `ρ`.
#[test]
fn repaired_weights_hold_every_price_and_beat_uniform_scaling() {
    let cat = crate::catalog::embedded().unwrap();
    let opts = PlanOptions::default();
    let mut repairs = 0;
    for (name, seed) in [("default", 5), ("multigpu30", 6), ("gpuspec33", 7)] {
        let items = sample(name, 400, seed);
        let sp = Space::build(&cat, &items, &effective_pools(&opts), &opts);
        let demand = class_demand(&sp);
        let nq = sp.configs.len();
        let rows: Vec<_> = (0..nq).map(|qi| rows(&sp, qi)).collect();
        let caps: Vec<f64> = (0..demand.len())
            .map(|c| {
                homogeneous(&sp, c, demand[c].max(1)).map_or(0.0, |p| {
                    sp.configs[p.config].price / f64::from(p.counts[0].1)
                })
            })
            .collect();
        let mut in_set = vec![false; nq];
        for qi in (0..nq).step_by(11) {
            in_set[qi] = true;
        }
        let (y, mu) = restricted_dual(&sp, &demand, &rows, &in_set, &caps, None).unwrap();
        let (rho, violated) = certify(&sp, &rows, &mu, &y, &demand, &in_set);
        if violated.is_empty() {
            continue;
        }
        repairs += 1;
        let fixed = repaired(&sp, &rows, &y, &demand, &violated);
        assert!(fixed.iter().zip(&y).all(|(a, b)| *a <= *b));
        for &(_, qi) in &violated {
            let ub = outside(&sp, qi, &rows[qi], &fixed, &demand);
            assert!(
                ub <= sp.configs[qi].price * (1.0 + 1e-6),
                "{name}: configuration {qi} still at {ub} against {}",
                sp.configs[qi].price
            );
        }
        let (rho2, _) = certify(&sp, &rows, &mu, &fixed, &demand, &in_set);
        let scaled = weighted(&y, &demand) / rho;
        let kept = weighted(&fixed, &demand) / rho2;
        assert!(
            kept > scaled,
            "{name}: repaired {kept} against scaled {scaled}"
        );
        // Still a bound: at most the assignment LP (which `one_row`'s counts may
        // only tighten by a little).
        assert!(kept <= primal(&sp, &demand) * 1.01);
    }
    assert!(repairs >= 2, "the samples gave {repairs} repairs");
}

proptest! {
    /// A configuration's own packing LP: the multipliers are dual feasible after
    /// `certified`'s scaling and their total matches microlp's optimum.
    #[test]
    fn row_multipliers_solve_the_packing_lp(
        rows_in in proptest::collection::vec(proptest::collection::vec(0u32..100, 6), 1..6),
        values in proptest::collection::vec(0u32..50, 6),
    ) {
        let rows: Vec<Vec<f64>> = rows_in
            .iter()
            .map(|r| r.iter().map(|&a| f64::from(a) / 100.0).collect())
            .collect();
        let v: Vec<f64> = values.iter().map(|&x| f64::from(x)).collect();
        // Unbounded when a valued column uses no row.
        let bounded = (0..6).all(|c| v[c] == 0.0 || rows.iter().any(|r| r[c] > 0.0));
        prop_assume!(bounded);
        let mut prob = Problem::new(OptimizationDirection::Maximize);
        let z: Vec<_> = v.iter().map(|&x| prob.add_var(x, (0.0, f64::INFINITY))).collect();
        for r in &rows {
            prob.add_constraint(
                z.iter().zip(r).map(|(z, a)| (*z, *a)).collect::<Vec<_>>(),
                ComparisonOp::Le,
                1.0,
            );
        }
        let want = prob.solve().unwrap().into_solution().unwrap().objective();
        let mu = row_multipliers(&rows, &v).unwrap();
        prop_assert!(mu.iter().all(|m| *m >= 0.0));
        let total: f64 = mu.iter().sum();
        prop_assert!((total - want).abs() <= 1e-6 * want.max(1.0), "{total} vs {want}");
        for (c, &vc) in v.iter().enumerate() {
            let paid: f64 = rows.iter().zip(&mu).map(|(r, m)| r[c] * m).sum();
            prop_assert!(vc <= paid + 1e-6, "class {c}: {vc} > {paid}");
        }
    }

    /// A dual feasible function keeps every packing that fits a node fitting: the
    /// transformed rows cut off no plan.
    #[test]
    fn transformed_shares_of_a_fitting_node_still_fit(
        cap in 1u64..1_000_000_000_000,
        parts in proptest::collection::vec(1u64..1_000, 1..12),
        k in 1usize..=3,
    ) {
        // Pods whose requests sum to at most the capacity (the last one fills it).
        let total: u64 = parts.iter().sum();
        let mut w: Vec<u64> = parts.iter().map(|p| cap / total * p).collect();
        let used: u64 = w.iter().sum();
        if let Some(last) = w.last_mut() {
            *last += cap - used;
        }
        let sum: f64 = w.iter().map(|&x| dff(x, cap, k)).sum();
        prop_assert!(sum <= 1.0 + 1e-9, "Σ u(w) = {sum} for {w:?} of {cap}");
    }
}

#[test]
fn big_pods_count_whole_and_exact_shares_stay() {
    // More than half: the whole node; less than half: nothing (k = 1).
    assert_eq!(dff(51, 100, 1), 1.0);
    assert_eq!(dff(49, 100, 1), 0.0);
    // Exactly half stays half, whatever k.
    assert_eq!(dff(50, 100, 1), 0.5);
    assert_eq!(dff(50, 100, 2), 1.0 / 2.0);
    // k = 2: between a third and two thirds counts as half.
    assert_eq!(dff(40, 100, 2), 0.5);
    assert_eq!(dff(70, 100, 2), 1.0);
    // k = 3: between a quarter and a half counts as a third.
    assert_eq!(dff(30, 100, 3), 1.0 / 3.0);
}
