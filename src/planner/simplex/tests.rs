use super::*;
use microlp::{ComparisonOp, OptimizationDirection, Problem};
use proptest::prelude::*;

fn microlp_value(d: &[f64], cols: &[Column]) -> f64 {
    let mut p = Problem::new(OptimizationDirection::Minimize);
    let xs: Vec<_> = cols
        .iter()
        .map(|c| p.add_var(c.cost, (0.0, f64::INFINITY)))
        .collect();
    for (i, &di) in d.iter().enumerate() {
        let row: Vec<_> = cols
            .iter()
            .zip(&xs)
            .filter_map(|(c, x)| {
                c.entries
                    .iter()
                    .find(|(r, _)| *r == i)
                    .map(|(_, a)| (*x, *a))
            })
            .collect();
        p.add_constraint(row, ComparisonOp::Ge, di);
    }
    p.solve().unwrap().into_solution().unwrap().objective()
}

#[test]
fn cutting_stock_textbook() {
    // Rolls of 10: items 3 (demand 4), 4 (demand 3), 5 (demand 2).
    let d = [4.0, 3.0, 2.0];
    let col = |e: Vec<(usize, f64)>| Column {
        entries: e,
        cost: 1.0,
    };
    let cols = vec![
        col(vec![(0, 3.0)]),
        col(vec![(1, 2.0)]),
        col(vec![(2, 2.0)]),
        col(vec![(0, 2.0), (1, 1.0)]),
        col(vec![(0, 1.0), (2, 1.0)]),
        col(vec![(1, 1.0), (2, 1.0)]),
    ];
    let mut m = Master::new(&d, cols.clone()).unwrap();
    m.solve(1_000).unwrap();
    let want = microlp_value(&d, &cols);
    assert!(
        (m.objective() - want).abs() < 1e-9,
        "{} vs {want}",
        m.objective()
    );
    // Duals are feasible (no column has a negative reduced cost) and prove the value.
    let y = m.duals();
    for c in &cols {
        let v: f64 = c.entries.iter().map(|&(i, a)| y[i] * a).sum();
        assert!(v <= c.cost + 1e-9);
    }
    let dual: f64 = y.iter().zip(&d).map(|(a, b)| a * b).sum();
    assert!((dual - want).abs() < 1e-9);
    assert!(y.iter().all(|v| *v >= -1e-12));
}

#[test]
fn columns_added_later_improve_a_solved_master() {
    let d = [5.0, 5.0];
    let cols = vec![
        Column {
            entries: vec![(0, 1.0)],
            cost: 1.0,
        },
        Column {
            entries: vec![(1, 1.0)],
            cost: 1.0,
        },
    ];
    let mut m = Master::new(&d, cols).unwrap();
    m.solve(100).unwrap();
    assert!((m.objective() - 10.0).abs() < 1e-9);
    m.add_column(Column {
        entries: vec![(0, 1.0), (1, 1.0)],
        cost: 1.2,
    });
    m.solve(100).unwrap();
    assert!((m.objective() - 6.0).abs() < 1e-9);
    let x = m.values();
    assert!((x[2] - 5.0).abs() < 1e-9);
}

#[test]
fn zero_demand_rows_start_on_their_surplus() {
    let d = [0.0, 3.0];
    let cols = vec![
        Column {
            entries: vec![(1, 1.0)],
            cost: 2.0,
        },
        Column {
            entries: vec![(0, 1.0), (1, 3.0)],
            cost: 3.0,
        },
    ];
    let mut m = Master::new(&d, cols).unwrap();
    m.solve(100).unwrap();
    assert!((m.objective() - 3.0).abs() < 1e-9);
}

#[test]
fn a_row_without_a_single_covering_column_is_refused() {
    let d = [1.0, 1.0];
    let cols = vec![Column {
        entries: vec![(0, 1.0), (1, 1.0)],
        cost: 1.0,
    }];
    assert_eq!(Master::new(&d, cols).err(), Some(Failure::NoStart));
}

proptest! {
    /// Random covering LPs (small integer patterns, as column generation makes them):
    /// the same optimum as microlp, feasible duals that prove it.
    #[test]
    fn matches_microlp_on_random_covering_lps(
        m in 1usize..12,
        seed_cols in proptest::collection::vec(
            (proptest::collection::vec((0usize..12, 1u32..5), 1..5), 1u32..40),
            0..60,
        ),
        demand in proptest::collection::vec(0u32..50, 12),
    ) {
        let d: Vec<f64> = demand[..m].iter().map(|&x| f64::from(x)).collect();
        let mut cols: Vec<Column> = (0..m)
            .map(|i| Column { entries: vec![(i, 1.0 + (i % 3) as f64)], cost: 5.0 + i as f64 })
            .collect();
        for (entries, cost) in seed_cols {
            let mut e: Vec<(usize, f64)> = Vec::new();
            for (i, a) in entries {
                if i < m && !e.iter().any(|(r, _)| *r == i) {
                    e.push((i, f64::from(a)));
                }
            }
            if !e.is_empty() {
                e.sort_by_key(|x| x.0);
                cols.push(Column { entries: e, cost: f64::from(cost) / 4.0 });
            }
        }
        // Half the columns first, the rest added to the solved master.
        let half = cols.len() / 2;
        let mut master = Master::new(&d, cols[..half.max(m)].to_vec()).unwrap();
        master.solve(10_000).unwrap();
        for c in cols.iter().skip(half.max(m)) {
            master.add_column(c.clone());
        }
        master.solve(10_000).unwrap();
        let want = microlp_value(&d, &cols);
        prop_assert!((master.objective() - want).abs() <= 1e-6 * want.max(1.0),
            "ours {} microlp {}", master.objective(), want);
        let y = master.duals();
        for c in &cols {
            let v: f64 = c.entries.iter().map(|&(i, a)| y[i] * a).sum();
            prop_assert!(v <= c.cost + 1e-7 * c.cost.max(1.0));
        }
        prop_assert!(y.iter().all(|v| *v >= -1e-9));
        let x = master.values();
        for (i, di) in d.iter().enumerate() {
            let cover: f64 = cols.iter().zip(&x)
                .map(|(c, xj)| c.entries.iter().filter(|e| e.0 == i).map(|e| e.1 * xj).sum::<f64>())
                .sum();
            prop_assert!(cover >= di - 1e-6, "row {i}: {cover} < {di}");
        }
    }
}
