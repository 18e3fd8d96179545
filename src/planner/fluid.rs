//! The assignment ("fluid") LP: a bound that needs no pricing, and a first plan from it.
//!
//! `min Σ_q price_q n_q` s.t. `Σ_q z_cq ≥ d_c` for every class and, for every
//! configuration and dimension, `Σ_c w_cd z_cq ≤ cap_qd n_q`; `n, z ≥ 0`. Every plan is a
//! solution (`n_q` its nodes of `q`, `z_cq` its pods of `c` on them), so the optimum is a
//! lower bound; it relaxes the pattern LP (pods may be split across nodes) and is a little
//! weaker (0.26 % below it on 10,000 trace pods). One LP, solved once, instead of rounds
//! of pricing. Plans packed from its assignment (each configuration's pods onto its whole
//! nodes, the rest by the greedy) came out 6 % dearer than the greedy cover itself on the
//! trace, and 12 % above the bound with a best-fit packing per configuration: it is weak
//! per configuration (on 10,000 trace pods it puts 1,155 pods on 578 two-slot
//! `g4dn.4xlarge` nodes whose own pattern LP needs 853, since pods with more than half a
//! node's cpu or memory cannot pair) and makes that up elsewhere. So only its bound is
//! used.

use std::time::Instant;

use microlp::{ComparisonOp, OptimizationDirection, Problem};

use super::pattern::weights;
use super::space::Space;

/// Relative tolerance taken off the LP optimum so the bound stays below the true optimum
/// whatever the simplex's rounding.
const TOLERANCE: f64 = 1e-7;

/// The LP's optimum, less its tolerance: a proven lower bound on any plan's cost.
pub(crate) fn solve(sp: &Space, demand: &[u32], deadline: Option<Instant>) -> Option<f64> {
    let mut prob = Problem::new(OptimizationDirection::Minimize);
    if let Some(d) = deadline {
        prob.set_time_limit(d.saturating_duration_since(Instant::now()));
    }
    let n: Vec<_> = sp
        .configs
        .iter()
        .map(|q| prob.add_var(q.price, (0.0, f64::INFINITY)))
        .collect();
    let mut by_class: Vec<Vec<(microlp::Variable, f64)>> = vec![Vec::new(); demand.len()];
    for (qi, q) in sp.configs.iter().enumerate() {
        let mut rows: [Vec<(microlp::Variable, f64)>; 4] = Default::default();
        for &(c, _) in &q.eligible {
            if demand[c] == 0 {
                continue;
            }
            let v = prob.add_var(0.0, (0.0, f64::from(demand[c])));
            by_class[c].push((v, 1.0));
            let w = weights(sp, c);
            for d in 0..4 {
                if w[d] > 0 && q.cap[d] > 0 {
                    // Scaled by the capacity: coefficients ≤ 1, whatever the unit.
                    rows[d].push((v, w[d] as f64 / q.cap[d] as f64));
                }
            }
        }
        for mut r in rows {
            if !r.is_empty() {
                r.push((n[qi], -1.0));
                prob.add_constraint(r, ComparisonOp::Le, 0.0);
            }
        }
    }
    for (c, r) in by_class.into_iter().enumerate() {
        if demand[c] > 0 {
            if r.is_empty() {
                return None;
            }
            prob.add_constraint(r, ComparisonOp::Ge, f64::from(demand[c]));
        }
    }
    // Interrupted by the deadline: no proven optimum, no bound.
    let outcome = prob.solve().ok()?;
    if !outcome.is_optimal() {
        return None;
    }
    let sol = outcome.into_solution().ok()?;
    Some(sol.objective().max(0.0) * (1.0 - TOLERANCE))
}
