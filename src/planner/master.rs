//! The master LP of column generation: the covering LP over node patterns, solved by the
//! dense simplex (`simplex.rs`), or by microlp on its dual (one row per pattern) where
//! the demand has too many classes for a dense inverse.

use microlp::{ComparisonOp, OptimizationDirection, Problem};

use super::pattern::Pattern;
use super::simplex;
use super::space::Space;

/// Pivots one re-optimisation of the dense master may take.
const PIVOTS: usize = 100_000;

pub(crate) enum Master {
    Dense(simplex::Master),
    /// The dual `max d·y` s.t. `a_p·y ≤ c_p`; `None` only while a row is being added.
    Micro {
        sol: Option<microlp::Solution>,
        vars: Vec<microlp::Variable>,
    },
}

fn column_of(sp: &Space, p: &Pattern) -> simplex::Column {
    simplex::Column {
        entries: p.counts.iter().map(|&(c, n)| (c, f64::from(n))).collect(),
        cost: sp.configs[p.config].price,
    }
}

impl Master {
    /// The master over `patterns` (which must hold a pattern of a single class for every
    /// class in demand), solved; `None` when no solver managed.
    pub(crate) fn build(sp: &Space, demand: &[u32], patterns: &[Pattern]) -> Option<Master> {
        Self::build_with(sp, demand, patterns, simplex::MAX_ROWS)
    }

    /// [`Master::build`] with the dense solver only up to `dense_rows` classes.
    pub(crate) fn build_with(
        sp: &Space,
        demand: &[u32],
        patterns: &[Pattern],
        dense_rows: usize,
    ) -> Option<Master> {
        let d: Vec<f64> = demand.iter().map(|&x| f64::from(x)).collect();
        if d.len() <= dense_rows {
            let cols = patterns.iter().map(|p| column_of(sp, p)).collect();
            if let Ok(mut m) = simplex::Master::new(&d, cols)
                && m.solve(PIVOTS).is_ok()
            {
                return Some(Master::Dense(m));
            }
        }
        let mut prob = Problem::new(OptimizationDirection::Maximize);
        let vars: Vec<_> = d
            .iter()
            .map(|x| prob.add_var(*x, (0.0, f64::INFINITY)))
            .collect();
        for p in patterns {
            let row: Vec<_> = p
                .counts
                .iter()
                .map(|&(c, n)| (vars[c], f64::from(n)))
                .collect();
            prob.add_constraint(row, ComparisonOp::Le, sp.configs[p.config].price);
        }
        let sol = prob.solve().ok()?.into_solution().ok()?;
        Some(Master::Micro {
            sol: Some(sol),
            vars,
        })
    }

    /// The duals (non-negative).
    pub(crate) fn duals(&self) -> Vec<f64> {
        match self {
            Master::Dense(m) => m.duals().into_iter().map(|y| y.max(0.0)).collect(),
            Master::Micro { sol: Some(s), vars } => {
                vars.iter().map(|v| s.var_value(*v).max(0.0)).collect()
            }
            Master::Micro { sol: None, vars } => vec![0.0; vars.len()],
        }
    }

    /// The master's optimum (an upper bound on the LP relaxation).
    pub(crate) fn value(&self) -> f64 {
        match self {
            Master::Dense(m) => m.objective(),
            Master::Micro { sol, .. } => sol.as_ref().map_or(f64::INFINITY, |s| s.objective()),
        }
    }

    /// Each column's value in the optimum, in the order the columns were given and added;
    /// `None` for microlp's dual, which keeps only the duals.
    pub(crate) fn values(&self) -> Option<Vec<f64>> {
        match self {
            Master::Dense(m) => Some(m.values()),
            Master::Micro { .. } => None,
        }
    }

    /// Adds a column (microlp re-optimises at once); false when that failed.
    pub(crate) fn add(&mut self, sp: &Space, p: &Pattern) -> bool {
        match self {
            Master::Dense(m) => {
                m.add_column(column_of(sp, p));
                true
            }
            Master::Micro { sol, vars } => {
                let row: Vec<_> = p
                    .counts
                    .iter()
                    .map(|&(c, n)| (vars[c], f64::from(n)))
                    .collect();
                let Some(s) = sol.take() else {
                    return false;
                };
                *sol = s
                    .add_constraint(row, ComparisonOp::Le, sp.configs[p.config].price)
                    .ok()
                    .and_then(|o| o.into_solution().ok());
                sol.is_some()
            }
        }
    }

    /// Re-optimises after columns were added; false when that failed.
    pub(crate) fn reoptimize(&mut self) -> bool {
        match self {
            Master::Dense(m) => m.solve(PIVOTS).is_ok(),
            Master::Micro { sol, .. } => sol.is_some(),
        }
    }
}

/// The covering LP over `patterns` for demand `residual`, solved once: each pattern's
/// value. `None` when a class in demand has no pattern or the solvers failed.
pub(crate) fn primal(sp: &Space, patterns: &[Pattern], residual: &[u32]) -> Option<Vec<f64>> {
    let d: Vec<f64> = residual.iter().map(|&x| f64::from(x)).collect();
    if d.len() <= simplex::MAX_ROWS {
        let cols = patterns.iter().map(|p| column_of(sp, p)).collect();
        if let Ok(mut m) = simplex::Master::new(&d, cols)
            && m.solve(PIVOTS).is_ok()
        {
            return Some(m.values());
        }
    }
    let mut prob = Problem::new(OptimizationDirection::Minimize);
    let xs: Vec<_> = patterns
        .iter()
        .map(|p| prob.add_var(sp.configs[p.config].price, (0.0, f64::INFINITY)))
        .collect();
    add_cover_rows(&mut prob, patterns, &xs, residual)?;
    let sol = prob.solve().ok()?.into_solution().ok()?;
    Some(xs.iter().map(|x| sol.var_value(*x)).collect())
}

/// The covering rows `Σ_p a_cp x_p ≥ demand_c` of a microlp programme whose variable for
/// `patterns[i]` is `xs[i]`, for every class in demand. `None` when a class in demand has
/// no pattern (the programme is infeasible).
pub(crate) fn add_cover_rows<'p>(
    prob: &mut Problem,
    patterns: impl IntoIterator<Item = &'p Pattern>,
    xs: &[microlp::Variable],
    demand: &[u32],
) -> Option<()> {
    let mut rows: Vec<Vec<(microlp::Variable, f64)>> = vec![Vec::new(); demand.len()];
    for (p, x) in patterns.into_iter().zip(xs) {
        for &(c, n) in &p.counts {
            rows[c].push((*x, f64::from(n)));
        }
    }
    for (c, r) in rows.into_iter().enumerate() {
        if demand[c] > 0 {
            if r.is_empty() {
                return None;
            }
            prob.add_constraint(r, ComparisonOp::Ge, f64::from(demand[c]));
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::pattern::{class_demand, homogeneous};
    use crate::planner::{PlanOptions, effective_pools};

    /// The dense master and microlp's dual give the same optimum, with duals feasible for
    /// every column, before and after columns are added.
    #[test]
    fn both_solvers_agree_on_a_trace_master() {
        let cat = crate::catalog::embedded().unwrap();
        let opts = PlanOptions::default();
        let path = format!(
            "{}/simulations/data/alibaba-gpu-2023/openb_pod_list_default.csv",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let all: Vec<_> = crate::trace::parse_alibaba_pods(&path, &text)
            .unwrap()
            .iter()
            .filter_map(|p| crate::trace::alibaba_demand(p, "default"))
            .collect();
        let items = crate::trace::sample_demand(&all, 400, 3);
        let sp = Space::build(&cat, &items, &effective_pools(&opts), &opts);
        let demand = class_demand(&sp);
        let homog: Vec<Pattern> = (0..demand.len())
            .filter_map(|c| homogeneous(&sp, c, demand[c]))
            .collect();
        let greedy = crate::planner::greedy::solve(&sp, &demand);
        let mut dense = Master::build(&sp, &demand, &homog).unwrap();
        let mut micro = Master::build_with(&sp, &demand, &homog, 0).unwrap();
        assert!(matches!(dense, Master::Dense(_)) && matches!(micro, Master::Micro { .. }));
        let check = |m: &Master, cols: &[Pattern]| {
            let y = m.duals();
            for p in cols {
                let v: f64 = p.counts.iter().map(|&(c, n)| y[c] * f64::from(n)).sum();
                assert!(v <= sp.configs[p.config].price * (1.0 + 1e-6));
            }
            let dual: f64 = y.iter().zip(&demand).map(|(a, &d)| a * f64::from(d)).sum();
            assert!((dual - m.value()).abs() <= 1e-6 * m.value());
        };
        assert!((dense.value() - micro.value()).abs() <= 1e-6 * dense.value());
        check(&dense, &homog);
        let before = dense.value();
        let mut all_cols = homog.clone();
        for p in greedy.patterns.iter().take(60) {
            assert!(dense.add(&sp, p) && micro.add(&sp, p));
            all_cols.push(p.clone());
        }
        assert!(dense.reoptimize() && micro.reoptimize());
        assert!(
            dense.value() < before * (1.0 - 1e-6),
            "the greedy's patterns improve it"
        );
        assert!(
            (dense.value() - micro.value()).abs() <= 1e-6 * dense.value(),
            "{} vs {}",
            dense.value(),
            micro.value()
        );
        check(&dense, &all_cols);
        check(&micro, &all_cols);
        // The one-shot solve agrees with the incremental one.
        let x = primal(&sp, &all_cols, &demand).unwrap();
        let cost: f64 = all_cols
            .iter()
            .zip(&x)
            .map(|(p, v)| sp.configs[p.config].price * v)
            .sum();
        assert!((cost - dense.value()).abs() <= 1e-6 * cost);
    }
}
