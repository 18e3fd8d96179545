//! The assignment ("fluid") bound: a lower bound that needs no pricing search.
//!
//! The assignment LP is `min Σ_q price_q n_q` s.t. `Σ_q z_cq ≥ d_c` for every class and,
//! for every configuration and dimension, `Σ_c w_cd z_cq ≤ cap_qd n_q`; `n, z ≥ 0`. Every
//! plan is a solution of it (`n_q` its nodes of `q`, `z_cq` its pods of `c` on them). Its
//! capacity rows are strengthened with Fekete and Schepers' dual feasible functions ("A
//! general framework for bounds for higher-dimensional orthogonal packing problems", Math.
//! Methods of OR 60, 2004): `Σ_c u(w_cd / cap_qd) z_cq ≤ n_q` holds for whole pods
//! whenever the plain row does; `u^(k)` counts a pod with more than a half (a third, a
//! quarter) of a node's cpu, memory or slices as the whole (a half, a third) of it.
//!
//! It is not solved as written (~1,650 rows × 8,100 columns on 10,000 trace pods over the
//! 67-type catalog: 150–170 ms in microlp, too slow for a 100 ms deadline, and microlp
//! gives no duals). Its dual is solved instead, one configuration set at a time:
//! `max Σ_c d_c y_c` s.t., for each configuration `q` of a working set `S`,
//! `y_c ≤ Σ_r a_rcq μ_qr` for its classes and `Σ_r μ_qr ≤ price_q` (`μ ≥ 0`, one per
//! capacity row `r`). `S` starts as the greedy cover's configurations. Configurations
//! outside it whose cheap bound is violated at the dual's weights are repaired away for
//! the round's bound (the weights of the classes they pack lowered until they are not,
//! [`repaired`]), then join `S` for another round, while one fits the deadline. On
//! 10,000 trace pods the first round (30–40 ms) proves 8,442.40 $/h this way, where
//! scaling the weights proved 7,570; the second (another 30 ms) proves 8,443.17.
//!
//! Why every answer is a proven bound, whatever `S` and the solver's accuracy: let `y ≥ 0`
//! be any weights and `UB_q ≥ max { y·p : p a node pattern of q }`. Then `y / ρ` with
//! `ρ = max(1, max_q UB_q / price_q)` is a feasible dual of the pattern LP, so `d·y / ρ`
//! is at most the pattern LP, hence at most any plan's cost (as in `lp.rs`). The `UB_q`:
//! - `q ∈ S`, with the dual's `μ_q`: every pattern `p` fits, so each row gives
//!   `Σ_c a_rc p_c ≤ 1` (the plain rows directly, the transformed ones by the DFF
//!   property), and with `t_q = max_c y_c / (a_cq·μ_q)`:
//!   `y·p ≤ t_q Σ_c p_c a_cq·μ_q = t_q Σ_r μ_qr (Σ_c a_rc p_c) ≤ t_q Σ_r μ_qr`;
//! - `q ∉ S`: any one row alone is a relaxation: the fractional one-row knapsack with at
//!   most `min(fit, d_c)` pods of each class.
//!
//! Plans packed from the LP's assignment came out 6–12 % above its bound on the trace
//! (pods with more than half a node cannot pair, which the assignment ignores), so only
//! its bound and duals are used.
//!
//! Its pivot is the textbook Gauss–Jordan step that `simplex.rs` also takes (a dense
//! tableau here, a basis and its inverse there), written again on purpose: this bound
//! checks the planner's own LP, so it shares no solver code with it.

use std::time::Instant;

use microlp::{ComparisonOp, OptimizationDirection, Problem};

use super::pattern::{homogeneous, weights};
use super::space::Space;

/// Dual feasible functions `u^(1) ..= u^(k)` applied to every capacity row (10,000 trace
/// pods over 67 types: the bound 8,408 with none, 8,423 with k = 1, 8,425 with 2, 8,443
/// with 3, 8,443 with 4).
const DFF_ORDER: usize = 3;

/// Rounds of the working set before the best bound so far is kept.
const MAX_ROUNDS: usize = 8;

/// Steps of [`repaired`] per violating configuration.
const REPAIR_STEPS: usize = 32;

/// Under a deadline, another round of the working set starts only while this many
/// rounds as long as the last still fit before it: at 100 ms on 10,000 trace pods the
/// repaired first round is the bound (8,442.40 $/h at ~50 ms), and the second (8,443.17
/// at ~85 ms) would take the other core from column generation when it matters most.
const ROUND_ROOM: u32 = 4;

/// Configurations that join the working set per round, most violated first.
const JOIN: usize = 20;

/// Relative margin taken off the bound for the solver's rounding.
const TOLERANCE: f64 = 1e-9;

/// The capacity rows of configuration `qi` (plain and through the DFFs) as coefficients
/// per eligible class, in the order of `eligible`.
fn rows(sp: &Space, qi: usize) -> Vec<Vec<f64>> {
    let q = &sp.configs[qi];
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for k in 0..=DFF_ORDER {
        for d in 0..4 {
            if q.cap[d] == 0 {
                continue;
            }
            let mut r = Vec::with_capacity(q.eligible.len());
            let mut differs = false;
            for &(c, _) in &q.eligible {
                let w = weights(sp, c)[d];
                let x = w as f64 / q.cap[d] as f64;
                let f = if k == 0 { x } else { dff(w, q.cap[d], k) };
                differs |= (f - x).abs() > 1e-12;
                r.push(f);
            }
            if (k == 0 || differs) && r.iter().any(|v| *v > 0.0) {
                rows.push(r);
            }
        }
    }
    rows
}

/// The best valid bound from the dual of the assignment LP, `None` when the deadline
/// passed before the first round or the solver failed on it. `start` is the working set
/// to begin with (the configurations of a plan in hand). Every round's bound is handed
/// to `publish` as soon as it is proven.
pub(crate) fn bound(
    sp: &Space,
    demand: &[u32],
    start: &[usize],
    deadline: Option<Instant>,
    publish: impl Fn(f64),
) -> Option<f64> {
    let nq = sp.configs.len();
    let rows: Vec<Vec<Vec<f64>>> = (0..nq).map(|qi| rows(sp, qi)).collect();
    let mut in_set = vec![false; nq];
    for &q in start {
        if let Some(s) = in_set.get_mut(q) {
            *s = true;
        }
    }
    // The homogeneous price per pod caps each weight: no optimal dual of the pattern LP
    // goes above it, and it keeps the restricted dual bounded for classes `S` misses.
    let caps: Vec<f64> = (0..demand.len())
        .map(|c| {
            homogeneous(sp, c, demand[c].max(1)).map_or(0.0, |p| {
                sp.configs[p.config].price / f64::from(p.counts.first().map_or(1, |x| x.1))
            })
        })
        .collect();
    let mut best: Option<f64> = None;
    for _ in 0..MAX_ROUNDS {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let started = Instant::now();
        let Some((y, mu)) = restricted_dual(sp, demand, &rows, &in_set, &caps, deadline) else {
            break;
        };
        // The restricted dual's value: no later round can prove more.
        let dual = weighted(&y, demand);
        let (rho, violated) = certify(sp, &rows, &mu, &y, demand, &in_set);
        let mut b = dual / rho * (1.0 - TOLERANCE);
        if !violated.is_empty() {
            let y2 = repaired(sp, &rows, &y, demand, &violated);
            let (rho2, _) = certify(sp, &rows, &mu, &y2, demand, &in_set);
            b = b.max(weighted(&y2, demand) / rho2 * (1.0 - TOLERANCE));
        }
        if best.is_none_or(|f| b > f) {
            best = Some(b);
            publish(b);
        }
        // Another round only while it can gain and is cheap next to the time left.
        let round = started.elapsed();
        let cheap = deadline
            .is_none_or(|d| d.saturating_duration_since(Instant::now()) >= round * ROUND_ROOM);
        if violated.is_empty() || b >= dual * (1.0 - 1e-6) || !cheap {
            break;
        }
        for &(_, qi) in violated.iter().take(JOIN) {
            in_set[qi] = true;
        }
    }
    best
}

/// `Σ_c y_c d_c`.
fn weighted(y: &[f64], demand: &[u32]) -> f64 {
    y.iter().zip(demand).map(|(a, &d)| a * f64::from(d)).sum()
}

/// `ρ` of the module doc for weights `y` (the working set certified by its multipliers
/// `mu`, the others by their own rows), and the configurations outside the set that
/// beat their price, most violated first.
fn certify(
    sp: &Space,
    rows: &[Vec<Vec<f64>>],
    mu: &[(usize, Vec<f64>)],
    y: &[f64],
    demand: &[u32],
    in_set: &[bool],
) -> (f64, Vec<(f64, usize)>) {
    let mut rho = 1.0f64;
    for (qi, m) in mu {
        rho = rho.max(certified(sp, *qi, &rows[*qi], m, y) / sp.configs[*qi].price);
    }
    let mut violated: Vec<(f64, usize)> = Vec::new();
    for qi in (0..sp.configs.len()).filter(|&q| !in_set[q]) {
        let ratio = outside(sp, qi, &rows[qi], y, demand) / sp.configs[qi].price;
        rho = rho.max(ratio);
        if ratio > 1.0 + 1e-6 {
            violated.push((ratio, qi));
        }
    }
    violated.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    (rho, violated)
}

/// `UB_q` of a configuration outside the working set: the one-row bound, or where that
/// beats the price, the configuration's own LP if it is tighter.
fn outside(sp: &Space, qi: usize, rows: &[Vec<f64>], y: &[f64], demand: &[u32]) -> f64 {
    outside_lp(sp, qi, rows, y, demand).0
}

/// [`outside`], with the multipliers of the configuration's own LP when it was solved
/// (the one-row bound beat the price and the LP finished).
fn outside_lp(
    sp: &Space,
    qi: usize,
    rows: &[Vec<f64>],
    y: &[f64],
    demand: &[u32],
) -> (f64, Option<Vec<f64>>) {
    let price = sp.configs[qi].price;
    let ub = one_row(sp, qi, rows, y, demand);
    if ub <= price * (1.0 + 1e-6) {
        return (ub, None);
    }
    // The rows together may still hold the price: solve this configuration's own LP
    // (its multipliers certify the bound as for the working set).
    let values: Vec<f64> = sp.configs[qi].eligible.iter().map(|&(c, _)| y[c]).collect();
    match row_multipliers(rows, &values) {
        Some(mu) => (ub.min(certified(sp, qi, rows, &mu, y)), Some(mu)),
        None => (ub, None),
    }
}

/// The weights `y` lowered until the configurations in `violated` no longer beat their
/// price: each step scales down the classes its own LP packs (those its multipliers pay
/// exactly) by `price / UB_q`, and repeats while another packing still beats the price.
/// Lower weights never raise another configuration's `UB_q`, so the bound from the
/// result loses only what these classes lose, where scaling every weight by `ρ` loses
/// that share of everything (10,000 trace pods: 8,440 $/h after the first round, where
/// `ρ` gave 7,570 and a second round 8,443 in another 30 ms). Whatever this returns is
/// certified again by [`certify`], so it only decides how good the bound is.
fn repaired(
    sp: &Space,
    rows: &[Vec<Vec<f64>>],
    y: &[f64],
    demand: &[u32],
    violated: &[(f64, usize)],
) -> Vec<f64> {
    let mut y = y.to_vec();
    for &(_, qi) in violated {
        let q = &sp.configs[qi];
        for _ in 0..REPAIR_STEPS {
            let (ub, mu) = outside_lp(sp, qi, &rows[qi], &y, demand);
            if ub <= q.price * (1.0 + 1e-9) {
                break;
            }
            let scale = q.price / ub;
            // The LP `outside_lp` solved, or (one-row bound within its tolerance of the
            // price) solved here.
            let mu = mu.or_else(|| {
                let values: Vec<f64> = q.eligible.iter().map(|&(c, _)| y[c]).collect();
                row_multipliers(&rows[qi], &values)
            });
            let Some(mu) = mu else {
                // No LP: every class it takes is scaled.
                for &(c, _) in &q.eligible {
                    y[c] *= scale;
                }
                break;
            };
            for (i, &(c, _)) in q.eligible.iter().enumerate() {
                let paid: f64 = rows[qi].iter().zip(&mu).map(|(r, m)| r[i] * m).sum();
                if y[c] > 0.0 && paid <= y[c] * (1.0 + 1e-7) {
                    y[c] *= scale;
                }
            }
        }
    }
    y
}

/// The dual restricted to the working set: the weights `y` and each member's row
/// multipliers `μ_q`.
#[allow(clippy::type_complexity)]
fn restricted_dual(
    sp: &Space,
    demand: &[u32],
    rows: &[Vec<Vec<f64>>],
    in_set: &[bool],
    caps: &[f64],
    deadline: Option<Instant>,
) -> Option<(Vec<f64>, Vec<(usize, Vec<f64>)>)> {
    let mut prob = Problem::new(OptimizationDirection::Maximize);
    if let Some(d) = deadline {
        prob.set_time_limit(d.saturating_duration_since(Instant::now()));
    }
    let y: Vec<_> = demand
        .iter()
        .zip(caps)
        .map(|(&d, &cap)| prob.add_var(f64::from(d), (0.0, cap)))
        .collect();
    let mut mus: Vec<(usize, Vec<microlp::Variable>)> = Vec::new();
    for (qi, q) in sp.configs.iter().enumerate() {
        if !in_set[qi] {
            continue;
        }
        let mu: Vec<_> = rows[qi]
            .iter()
            .map(|_| prob.add_var(0.0, (0.0, f64::INFINITY)))
            .collect();
        prob.add_constraint(
            mu.iter().map(|m| (*m, 1.0)).collect::<Vec<_>>(),
            ComparisonOp::Le,
            q.price,
        );
        for (i, &(c, _)) in q.eligible.iter().enumerate() {
            if demand[c] == 0 {
                continue;
            }
            let mut e = vec![(y[c], 1.0)];
            e.extend(
                rows[qi]
                    .iter()
                    .zip(&mu)
                    .filter(|(r, _)| r[i] > 0.0)
                    .map(|(r, m)| (*m, -r[i])),
            );
            prob.add_constraint(e, ComparisonOp::Le, 0.0);
        }
        mus.push((qi, mu));
    }
    let outcome = prob.solve().ok()?;
    if !outcome.is_optimal() {
        return None;
    }
    let sol = outcome.into_solution().ok()?;
    let yv = y.iter().map(|v| sol.var_value(*v).max(0.0)).collect();
    let mv = mus
        .into_iter()
        .map(|(qi, mu)| (qi, mu.iter().map(|v| sol.var_value(*v).max(0.0)).collect()))
        .collect();
    Some((yv, mv))
}

/// `UB_q` of a working-set member from its multipliers (module doc).
fn certified(sp: &Space, qi: usize, rows: &[Vec<f64>], mu: &[f64], y: &[f64]) -> f64 {
    let q = &sp.configs[qi];
    let mut t = 0.0f64;
    for (i, &(c, _)) in q.eligible.iter().enumerate() {
        if y[c] <= 0.0 {
            continue;
        }
        let paid: f64 = rows.iter().zip(mu).map(|(r, m)| r[i] * m).sum();
        t = t.max(if paid > 0.0 {
            y[c] / paid
        } else {
            f64::INFINITY
        });
    }
    t * mu.iter().sum::<f64>()
}

/// `UB_q` of a configuration outside the working set: the least, over its rows, of the
/// fractional one-row knapsack (module doc).
fn one_row(sp: &Space, qi: usize, rows: &[Vec<f64>], y: &[f64], demand: &[u32]) -> f64 {
    let q = &sp.configs[qi];
    let mut best = f64::INFINITY;
    let mut items: Vec<(f64, f64, f64)> = Vec::with_capacity(q.eligible.len());
    for r in rows {
        items.clear();
        let mut v = 0.0;
        for (&(c, max), &a) in q.eligible.iter().zip(r) {
            if y[c] <= 0.0 {
                continue;
            }
            let most = f64::from(max.min(demand[c]));
            if a <= 0.0 {
                v += y[c] * most;
            } else {
                items.push((y[c] / a, a, most));
            }
        }
        items.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut left = 1.0;
        for &(density, a, most) in &items {
            if left <= 0.0 {
                break;
            }
            let n = (left / a).min(most);
            v += density * a * n;
            left -= a * n;
        }
        best = best.min(v);
    }
    best
}

/// Multipliers of one configuration's capacity rows for values `v` (per eligible class):
/// an optimal dual of its packing LP `max v·z` s.t. `Σ_c a_rc z_c ≤ 1` for every row,
/// `z ≥ 0`, by a dense primal simplex from the slack basis (a dozen rows, a hundred
/// columns: microseconds). `None` when it does not finish (the caller then keeps the
/// one-row bound); what it returns is checked by [`certified`], so rounding here can
/// only loosen a bound.
fn row_multipliers(rows: &[Vec<f64>], v: &[f64]) -> Option<Vec<f64>> {
    let m = rows.len();
    let n = v.len();
    if m == 0 {
        return None;
    }
    // Tableau rows: [A | I | b]; objective row: reduced costs of the columns.
    let width = n + m + 1;
    let mut t = vec![0.0f64; m * width];
    for (r, row) in rows.iter().enumerate() {
        t[r * width..r * width + n].copy_from_slice(&row[..n.min(row.len())]);
        t[r * width + n + r] = 1.0;
        t[r * width + width - 1] = 1.0;
    }
    let mut obj: Vec<f64> = v
        .iter()
        .copied()
        .chain(std::iter::repeat_n(0.0, m + 1))
        .collect();
    let scale = v.iter().copied().fold(1e-12, f64::max);
    for _ in 0..(50 * (n + m)) {
        // Entering: the largest positive reduced value (Dantzig).
        let Some((e, _)) = obj[..n + m]
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 1e-12 * scale)
            .max_by(|a, b| a.1.total_cmp(b.1))
        else {
            // Optimal: the slacks' reduced values are −μ.
            return Some(obj[n..n + m].iter().map(|c| (-c).max(0.0)).collect());
        };
        let mut leave: Option<(usize, f64)> = None;
        for r in 0..m {
            let a = t[r * width + e];
            if a > 1e-12 {
                let ratio = t[r * width + width - 1] / a;
                if leave.is_none_or(|(_, best)| ratio < best) {
                    leave = Some((r, ratio));
                }
            }
        }
        let (l, _) = leave?;
        let piv = t[l * width + e];
        for k in 0..width {
            t[l * width + k] /= piv;
        }
        for r in 0..m {
            if r != l {
                let f = t[r * width + e];
                if f != 0.0 {
                    for k in 0..width {
                        t[r * width + k] -= f * t[l * width + k];
                    }
                }
            }
        }
        let f = obj[e];
        for k in 0..width {
            obj[k] -= f * t[l * width + k];
        }
    }
    None
}

/// Fekete and Schepers' dual feasible function `u^(k)` on the share `w / cap` of a
/// capacity: the share itself when `(k+1)·w/cap` is whole, else `⌊(k+1)·w/cap⌋ / k`
/// (in integers, so no rounding decides which). Whole pods whose shares fit in a node
/// have transformed shares that fit too, so the transformed rows are valid.
fn dff(w: u64, cap: u64, k: usize) -> f64 {
    let scaled = u128::from(w) * (k as u128 + 1);
    let cap128 = u128::from(cap);
    if scaled.is_multiple_of(cap128) {
        w as f64 / cap as f64
    } else {
        (scaled / cap128) as f64 / k as f64
    }
}

#[cfg(test)]
mod tests;
