//! Column generation for the LP relaxation and its lower bound, and rounding to a plan.
//!
//! Master LP (set cover over node patterns): `min Σ_p cost_p x_p` s.t.
//! `Σ_p a_pc x_p ≥ d_c` for every pod class `c`, `x ≥ 0`. We solve its dual,
//! `max Σ_c d_c y_c` s.t. `Σ_c a_pc y_c ≤ cost_p`, `y ≥ 0`, adding one row per
//! generated pattern (a cutting-plane loop that microlp re-optimises from the previous
//! basis). Pricing is a bounded multi-dimensional knapsack per configuration.
//!
//! Lower bound (Farley): for any `y ≥ 0`, let `ρ ≥ max_p (Σ_c a_pc y_c) / cost_p` over
//! ALL feasible patterns (an upper bound from the knapsack search). Every valid plan
//! covers each class exactly `d_c` times, so `cost(plan) ≥ Σ_c d_c y_c / ρ`. This holds
//! whatever the LP solver's accuracy, because `y` is only used as a vector of weights;
//! at convergence (`ρ ≤ 1`) it equals the LP relaxation.

use std::collections::HashSet;

use microlp::{ComparisonOp, OptimizationDirection, Problem};

use super::knapsack::{self, Item};
use super::space::{Config, Space};
use super::{Packing, PlanOptions, PlannedNode, SolverStats, Unplaced};
use crate::model::slice::Slice;
use crate::model::{Catalog, DemandItem, Pool, profile_name};

/// A node pattern: a configuration and how many pods of each class it holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Pattern {
    pub(crate) config: usize,
    /// (class, count > 0), sorted by class.
    pub(crate) counts: Vec<(usize, u32)>,
}

/// Search nodes per knapsack while generating columns (the final pass uses the
/// option's larger budget to prove the bound).
const HEURISTIC_NODES: usize = 512;
const EPS: f64 = 1e-9;
/// Relative tolerance of pricing: a pattern is only searched for where it could beat
/// its configuration's price by more than this (the bound gives up at most as much).
const PRICING_TOLERANCE: f64 = 0.003;
/// Configurations with at most this many GPU slices are priced by dynamic programming.
const DP_MAX_SLICES: u64 = 16;
/// Partial packings the dynamic programme keeps alive when proving the bound.
const DP_STATES: usize = 50_000;
/// ... and while generating columns.
const DP_BEAM: usize = 1000;
/// Branch-and-bound nodes for the MILP fallback of one pricing problem.
const MIP_NODES: u64 = 2_000;
/// Bound-proving passes that may still find columns before the loop stays exact.
const MAX_EXACT_PASSES: usize = 4;
/// Final passes (with the MILP fallback) that may still add columns.
const MAX_FINAL_PASSES: usize = 2;
/// Column generation stops once the proven bound is this close to the master's value.
const GAP_TOLERANCE: f64 = 0.005;
/// Rounds with the full search (they dominate the running time) before closing.
const MAX_FULL_ROUNDS: usize = 8;
/// Partial pricing: configurations that produced a column within this many rounds are
/// always priced ...
const PARTIAL_RECENT: usize = 3;
/// ... and one in this many of the others, in rotation.
const PARTIAL_ROTATION: usize = 8;
/// Tailing off: the cheap search counts as done when the master improved by less than
/// this fraction over this many rounds.
const STALL_IMPROVEMENT: f64 = 0.0005;
const STALL_ROUNDS: usize = 10;
/// Column-generation rounds for the residual demand while rounding.
const RESIDUAL_ROUNDS: usize = 40;
/// Diving steps after which columns are generated for the residual.
const RESIDUAL_REFRESHES: usize = 3;
/// Weight of the best-bound duals in the pricing point.
const SMOOTHING: f64 = 0.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Cheap pricing (small search) to generate columns.
    Heuristic,
    /// Full search with Lagrangian bounds: proves or finds columns.
    Exact,
    /// As `Exact`, plus the MILP fallback where the search cannot close the gap.
    Final,
}

pub(crate) fn weights(sp: &Space, c: usize) -> [u64; 4] {
    let cl = &sp.classes[c];
    [cl.cpu, cl.mem, 1, u64::from(cl.gpus)]
}

fn pattern_fits(sp: &Space, cfg: &Config, counts: &[(usize, u32)]) -> bool {
    let mut used = [0u64; 4];
    for &(c, n) in counts {
        let Some(&(_, max)) = cfg.eligible.iter().find(|(ec, _)| *ec == c) else {
            return false;
        };
        if n > max {
            return false;
        }
        let w = weights(sp, c);
        for d in 0..4 {
            used[d] += w[d] * u64::from(n);
        }
    }
    (0..4).all(|d| used[d] <= cfg.cap[d])
}

/// A pattern found by pricing: its value under the pricing weights and its counts.
type Found = (f64, Vec<(usize, u32)>);

/// Pricing of one configuration under weights `y` and per-class bounds `limit`: the
/// proven upper bound on any pattern's value, and the best patterns found (value, counts),
/// best first.
fn price(
    sp: &Space,
    cfg_idx: usize,
    y: &[f64],
    limit: &[u32],
    nodes: usize,
    exact: bool,
    mip: bool,
) -> (f64, Vec<Found>) {
    let cfg = &sp.configs[cfg_idx];
    let items: Vec<Item> = cfg
        .eligible
        .iter()
        .map(|&(c, max)| Item {
            value: y[c],
            weight: weights(sp, c),
            max_count: max.min(limit[c]),
        })
        .collect();
    let few_slices = cfg.cap[3] <= DP_MAX_SLICES;
    let lambda = if exact || few_slices {
        knapsack::lp_multipliers(&items, cfg.cap).map(|(l, _)| l)
    } else {
        None
    };
    // Subtrees that cannot beat the price by more than the tolerance are not searched:
    // column generation is then ε-optimal and the bound loses at most ε.
    let target = cfg.price * (1.0 + PRICING_TOLERANCE);
    let mut s = match lambda {
        // Few slices, many classes: dynamic programming with dominance (a narrow beam
        // while generating columns, a wide one to prove the bound).
        Some(l) if few_slices => {
            let states = if exact { DP_STATES } else { DP_BEAM };
            knapsack::solve_dp(&items, cfg.cap, l, target, states)
        }
        _ => knapsack::solve_with(&items, cfg.cap, nodes, lambda, target),
    };
    if mip && s.upper_bound > target && s.upper_bound > s.value * (1.0 + 1e-7) {
        // The combinatorial search could not close the gap: let the MILP solver try.
        if let Some(m) = knapsack::solve_mip(&items, cfg.cap, MIP_NODES, PRICING_TOLERANCE)
            && m.upper_bound < s.upper_bound
        {
            s.upper_bound = m.upper_bound.max(s.value);
            if m.value > s.value {
                s.alternatives
                    .insert(0, (s.value, std::mem::take(&mut s.counts)));
                s.value = m.value;
                s.counts = m.counts;
            }
        }
    }
    let sparse = |counts: &[u32]| -> Vec<(usize, u32)> {
        cfg.eligible
            .iter()
            .zip(counts)
            .filter(|(_, n)| **n > 0)
            .map(|(&(c, _), &n)| (c, n))
            .collect()
    };
    let mut found = vec![(s.value, sparse(&s.counts))];
    found.extend(s.alternatives.iter().map(|(v, c)| (*v, sparse(c))));
    (s.upper_bound, found)
}

struct ColGen {
    patterns: Vec<Pattern>,
    seen: HashSet<Pattern>,
    y: Vec<f64>,
    lower_bound: f64,
    lp_value: f64,
    rounds: usize,
    converged: bool,
}

fn homogeneous(sp: &Space, c: usize, limit: u32) -> Option<Pattern> {
    let mut best: Option<(f64, usize, u32)> = None;
    for (qi, q) in sp.configs.iter().enumerate() {
        if let Some(&(_, max)) = q.eligible.iter().find(|(ec, _)| *ec == c) {
            let n = max.min(limit);
            if n == 0 {
                continue;
            }
            let per = q.price / f64::from(n);
            if best.is_none_or(|(b, _, _)| per < b - EPS) {
                best = Some((per, qi, n));
            }
        }
    }
    best.map(|(_, qi, n)| Pattern {
        config: qi,
        counts: vec![(c, n)],
    })
}

/// Prices the configurations `todo` with up to `threads` scoped threads (configurations
/// dealt round-robin); results come back in the order of `todo`, so the outcome does not
/// depend on the number of threads.
fn price_all<F>(todo: &[usize], threads: usize, f: F) -> Vec<(f64, Vec<Found>)>
where
    F: Fn(usize) -> (f64, Vec<Found>) + Sync,
{
    let threads = threads.clamp(1, todo.len().max(1));
    if threads == 1 {
        return todo.iter().map(|&qi| f(qi)).collect();
    }
    let mut out: Vec<Option<(f64, Vec<Found>)>> = vec![None; todo.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                scope.spawn(move || {
                    (t..todo.len())
                        .step_by(threads)
                        .map(|i| (i, f(todo[i])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            // A pricing thread only panics on a bug; re-raise it on the caller's thread.
            let part = h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            for (i, r) in part {
                out[i] = Some(r);
            }
        }
    });
    // Every index was dealt to exactly one thread above.
    out.into_iter().flatten().collect()
}

/// Pods per class.
fn class_demand(sp: &Space) -> Vec<u32> {
    sp.classes
        .iter()
        .map(|c| u32::try_from(c.items.len()).unwrap_or(u32::MAX))
        .collect()
}

/// Column generation for covering `demand`, starting from `seed` (trimmed to it) and the
/// homogeneous patterns.
fn column_generation(sp: &Space, opts: &PlanOptions, demand: &[u32], seed: &[Pattern]) -> ColGen {
    let nc = sp.classes.len();
    let mut cg = ColGen {
        patterns: Vec::new(),
        seen: HashSet::new(),
        y: vec![0.0; nc],
        lower_bound: 0.0,
        lp_value: 0.0,
        rounds: 0,
        converged: false,
    };
    for p in seed {
        if let Some(t) = trim(p, demand)
            && cg.seen.insert(t.clone())
        {
            cg.patterns.push(t);
        }
    }
    for (c, &d) in demand.iter().enumerate() {
        if let Some(p) = homogeneous(sp, c, d)
            && cg.seen.insert(p.clone())
        {
            cg.patterns.push(p);
        }
    }
    // Dual LP.
    let mut prob = Problem::new(OptimizationDirection::Maximize);
    let vars: Vec<_> = demand
        .iter()
        .map(|d| prob.add_var(f64::from(*d), (0.0, f64::INFINITY)))
        .collect();
    let row = |p: &Pattern| -> Vec<(microlp::Variable, f64)> {
        p.counts
            .iter()
            .map(|&(c, n)| (vars[c], f64::from(n)))
            .collect()
    };
    for p in &cg.patterns {
        prob.add_constraint(row(p), ComparisonOp::Le, sp.configs[p.config].price);
    }
    let Ok(mut sol) = prob.solve().and_then(|o| {
        o.into_solution()
            .map_err(|_| microlp::Error::InternalError("interrupted".into()))
    }) else {
        return cg;
    };
    let mut phase = Phase::Heuristic;
    let mut smoothing = SMOOTHING;
    let mut closing = false;
    let mut full_rounds = 0usize;
    let mut exact_passes = 0usize;
    let mut final_passes = 0usize;
    // Partial pricing: while generating columns cheaply, price only the configurations
    // that produced columns lately and a rotating share of the others; a round that
    // finds nothing is repeated with all of them before anything is concluded.
    let mut useful_at = vec![0usize; sp.configs.len()];
    let mut force_full = true;
    // Master values of the cheap rounds since the last full search (tailing-off test).
    let mut cheap_values: Vec<f64> = Vec::new();
    loop {
        cg.rounds += 1;
        let y_lp: Vec<f64> = vars.iter().map(|v| sol.var_value(*v).max(0.0)).collect();
        cg.lp_value = sol.objective();
        // Wentges smoothing: price at a point between the LP duals and the duals of the
        // best bound so far; columns must still improve the LP at `y_lp`.
        let y: Vec<f64> = if smoothing > 0.0 && cg.lower_bound > 0.0 {
            y_lp.iter()
                .zip(&cg.y)
                .map(|(l, c)| smoothing * c + (1.0 - smoothing) * l)
                .collect()
        } else {
            y_lp.clone()
        };
        let dual_obj: f64 = y.iter().zip(demand).map(|(y, d)| y * f64::from(*d)).sum();
        let (nodes, exact, mip) = match phase {
            Phase::Heuristic => (HEURISTIC_NODES, false, false),
            Phase::Exact => (opts.knapsack_nodes, true, false),
            Phase::Final => (opts.knapsack_nodes, true, true),
        };
        let mut rho: f64 = 0.0;
        let mut cands: Vec<(f64, Pattern)> = Vec::new();
        let partial = phase == Phase::Heuristic && !force_full;
        let todo: Vec<usize> = (0..sp.configs.len())
            .filter(|&qi| {
                !partial
                    || useful_at[qi] + PARTIAL_RECENT >= cg.rounds
                    || (qi + cg.rounds).is_multiple_of(PARTIAL_ROTATION)
            })
            .collect();
        let priced = price_all(&todo, opts.threads, |qi| {
            price(sp, qi, &y, demand, nodes, exact, mip)
        });
        for (&qi, (ub, found)) in todo.iter().zip(priced) {
            let q = &sp.configs[qi];
            rho = rho.max(ub / q.price);
            for (value, counts) in found {
                let value_lp: f64 = counts.iter().map(|&(c, n)| y_lp[c] * f64::from(n)).sum();
                if value > q.price * (1.0 + 1e-7) && value_lp > q.price * (1.0 + 1e-7) {
                    let p = Pattern { config: qi, counts };
                    if !cg.seen.contains(&p) {
                        cands.push((value / q.price, p));
                        useful_at[qi] = cg.rounds;
                    }
                }
            }
        }
        if partial && cands.is_empty() {
            force_full = true;
            continue;
        }
        force_full = false;
        // A partial round's ρ does not cover every configuration: no bound from it.
        if rho > 0.0 && !partial {
            let lb = dual_obj / rho.max(1.0) * (1.0 - 1e-9);
            if lb > cg.lower_bound {
                cg.lower_bound = lb;
                cg.y = y.clone();
            }
        }
        if cands.is_empty() && smoothing > 0.0 && !closing {
            // Mis-pricing at the smoothed point: retry at the LP duals.
            smoothing = 0.0;
            continue;
        }
        if !closing {
            smoothing = SMOOTHING;
        }
        if cands.is_empty() && rho <= 1.0 + 1e-7 {
            cg.converged = true;
            break;
        }
        // The master's value bounds the LP optimum from above: stop once the proven
        // bound is within the tolerance of it.
        if cg.lp_value <= cg.lower_bound * (1.0 + GAP_TOLERANCE) {
            break;
        }
        if closing {
            break;
        }
        if cg.rounds >= opts.max_rounds {
            // Out of rounds: one last pass with the full search (no new columns) so the
            // bound reflects the duals reached, not the cheap pricing's loose one.
            if phase == Phase::Final || !opts.prove_bound {
                break;
            }
            closing = true;
            phase = Phase::Final;
            smoothing = 0.0;
            continue;
        }
        if phase != Phase::Heuristic {
            full_rounds += 1;
            if full_rounds >= MAX_FULL_ROUNDS && phase == Phase::Exact {
                // The full search's budget is spent: one closing pass with the fallback.
                closing = true;
                phase = Phase::Final;
                smoothing = 0.0;
                continue;
            }
        }
        // Tailing off: the cheap search still finds columns but the master barely moves;
        // a full search gives the bound (and the columns the cheap one misses) sooner.
        if phase == Phase::Heuristic {
            cheap_values.push(cg.lp_value);
        } else {
            cheap_values.clear();
        }
        let n = cheap_values.len();
        let stalled = n > STALL_ROUNDS
            && cg.lp_value >= cheap_values[n - 1 - STALL_ROUNDS] * (1.0 - STALL_IMPROVEMENT);
        phase = match (phase, cands.is_empty() || stalled) {
            (Phase::Heuristic, true) if !opts.prove_bound => break,
            (Phase::Heuristic, true) => Phase::Exact,
            (Phase::Heuristic, false) => Phase::Heuristic,
            (Phase::Exact, true) => Phase::Final,
            (Phase::Exact, false) => {
                exact_passes += 1;
                if exact_passes >= MAX_EXACT_PASSES {
                    Phase::Exact
                } else {
                    Phase::Heuristic
                }
            }
            (Phase::Final, _) => {
                final_passes += 1;
                if cands.is_empty() || final_passes >= MAX_FINAL_PASSES {
                    break;
                }
                Phase::Exact
            }
        };
        if cands.is_empty() {
            continue;
        }
        cands.sort_by(|a, b| b.0.total_cmp(&a.0));
        cands.truncate(nc.clamp(8, 64));
        let mut failed = false;
        for (_, p) in cands {
            if !cg.seen.insert(p.clone()) {
                continue;
            }
            let r = row(&p);
            let cost = sp.configs[p.config].price;
            cg.patterns.push(p);
            match sol
                .clone()
                .add_constraint(r, ComparisonOp::Le, cost)
                .ok()
                .and_then(|o| o.into_solution().ok())
            {
                Some(s) => sol = s,
                None => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            break;
        }
    }
    cg
}

/// Solves the primal master over `patterns` trimmed to `residual`; returns x per pattern.
fn primal(sp: &Space, patterns: &[Pattern], residual: &[u32]) -> Option<Vec<f64>> {
    let mut prob = Problem::new(OptimizationDirection::Minimize);
    let xs: Vec<_> = patterns
        .iter()
        .map(|p| prob.add_var(sp.configs[p.config].price, (0.0, f64::INFINITY)))
        .collect();
    let mut rows: Vec<Vec<(microlp::Variable, f64)>> = vec![Vec::new(); residual.len()];
    for (p, x) in patterns.iter().zip(&xs) {
        for &(c, n) in &p.counts {
            rows[c].push((*x, f64::from(n)));
        }
    }
    for (c, r) in rows.into_iter().enumerate() {
        if residual[c] > 0 {
            if r.is_empty() {
                return None;
            }
            prob.add_constraint(r, ComparisonOp::Ge, f64::from(residual[c]));
        }
    }
    let sol = prob.solve().ok()?.into_solution().ok()?;
    Some(xs.iter().map(|x| sol.var_value(*x)).collect())
}

fn trim(p: &Pattern, residual: &[u32]) -> Option<Pattern> {
    let counts: Vec<(usize, u32)> = p
        .counts
        .iter()
        .map(|&(c, n)| (c, n.min(residual[c])))
        .filter(|(_, n)| *n > 0)
        .collect();
    (!counts.is_empty()).then_some(Pattern {
        config: p.config,
        counts,
    })
}

fn take(p: &Pattern, residual: &mut [u32]) -> Option<Pattern> {
    let t = trim(p, residual)?;
    for &(c, n) in &t.counts {
        residual[c] -= n;
    }
    Some(t)
}

/// Diving: fix whole copies of patterns from the LP solution, re-solve the residual,
/// and when nothing is whole, fix one copy of the largest fractional pattern.
/// After each of the first fixing steps, columns are generated again for what is left
/// (cheap pricing only), since the leftovers mix in ways the full demand's columns may not.
fn round(sp: &Space, patterns: &[Pattern], opts: &PlanOptions) -> Vec<Pattern> {
    let mut residual = class_demand(sp);
    let mut refreshes = 0usize;
    let mut chosen = Vec::new();
    let mut pool: Vec<Pattern> = patterns.to_vec();
    let mut guard = 0usize;
    while residual.iter().any(|r| *r > 0) {
        guard += 1;
        // Trim the pool to the residual, add homogeneous patterns, dedupe.
        let mut seen = HashSet::new();
        let mut cur: Vec<Pattern> = Vec::new();
        for p in &pool {
            if let Some(t) = trim(p, &residual)
                && seen.insert(t.clone())
            {
                cur.push(t);
            }
        }
        for (c, r) in residual.iter().enumerate() {
            if *r > 0
                && let Some(h) = homogeneous(sp, c, *r)
                && seen.insert(h.clone())
            {
                cur.push(h);
            }
        }
        let x = if guard < 10_000 {
            primal(sp, &cur, &residual)
        } else {
            None
        };
        let Some(x) = x else {
            // Fallback: cover what is left with homogeneous nodes (always valid).
            for c in 0..residual.len() {
                while residual[c] > 0 {
                    match homogeneous(sp, c, residual[c]) {
                        Some(h) => chosen.extend(take(&h, &mut residual)),
                        None => residual[c] = 0,
                    }
                }
            }
            break;
        };
        let mut order: Vec<usize> = (0..cur.len()).collect();
        order.sort_by(|&a, &b| x[b].total_cmp(&x[a]).then(a.cmp(&b)));
        let mut fixed = false;
        for &i in &order {
            let whole = (x[i] + 1e-6).floor() as u64;
            for _ in 0..whole {
                match take(&cur[i], &mut residual) {
                    Some(t) => {
                        chosen.push(t);
                        fixed = true;
                    }
                    None => break,
                }
            }
        }
        if !fixed && let Some(&i) = order.first() {
            chosen.extend(take(&cur[i], &mut residual));
        }
        if refreshes < RESIDUAL_REFRESHES && residual.iter().any(|r| *r > 0) {
            refreshes += 1;
            let mut o = opts.clone();
            o.prove_bound = false;
            o.max_rounds = RESIDUAL_ROUNDS;
            let cg = column_generation(sp, &o, &residual, &cur);
            cur.extend(cg.patterns);
        }
        pool = cur;
    }
    chosen
}

/// Moves every node to the cheapest configuration that holds the same pods.
pub(crate) fn downsize(sp: &Space, nodes: &mut [Pattern]) {
    for n in nodes.iter_mut() {
        let mut best = n.config;
        let mut best_price = sp.configs[n.config].price;
        for (qi, q) in sp.configs.iter().enumerate() {
            if q.price < best_price - EPS && pattern_fits(sp, q, &n.counts) {
                best = qi;
                best_price = q.price;
            }
        }
        n.config = best;
    }
}

pub(crate) fn solve(
    sp: &Space,
    catalog: &Catalog,
    items: &[DemandItem],
    pools: &[Pool],
    opts: &PlanOptions,
) -> Packing {
    let mut unplaced: Vec<Unplaced> = sp
        .unplaced
        .iter()
        .map(|(i, r)| Unplaced {
            pod: items[*i].id.clone(),
            reason: r.clone(),
        })
        .collect();
    unplaced.sort_by(|a, b| a.pod.cmp(&b.pod));
    if sp.classes.is_empty() {
        return Packing {
            nodes: Vec::new(),
            unplaced,
            lower_bound: 0.0,
            stats: SolverStats {
                configurations: sp.configs.len(),
                ..SolverStats::default()
            },
        };
    }
    let (mut chosen, cg) = match opts.effort {
        super::Effort::Fast => {
            let (chosen, bound) = super::greedy::solve(sp, &class_demand(sp));
            let cg = ColGen {
                patterns: Vec::new(),
                seen: HashSet::new(),
                y: Vec::new(),
                lower_bound: bound,
                lp_value: 0.0,
                rounds: 0,
                converged: false,
            };
            (chosen, cg)
        }
        super::Effort::Full => {
            let cg = column_generation(sp, opts, &class_demand(sp), &[]);
            let chosen = round(sp, &cg.patterns, opts);
            (chosen, cg)
        }
    };
    downsize(sp, &mut chosen);

    // Deterministic node order, then hand out concrete pods class by class.
    let key = |p: &Pattern| {
        let q = &sp.configs[p.config];
        let k = &sp.kinds[q.kind];
        (
            k.pool,
            catalog.types[k.ty].name.clone(),
            k.ct,
            k.zone.clone(),
            p.counts.clone(),
        )
    };
    chosen.sort_by_key(key);
    let mut next: Vec<usize> = vec![0; sp.classes.len()];
    let mut nodes = Vec::with_capacity(chosen.len());
    for p in &chosen {
        let q = &sp.configs[p.config];
        let k = &sp.kinds[q.kind];
        let t = &catalog.types[k.ty];
        // The largest R every pod on the node tolerates (≥ the configuration's R).
        let r = p
            .counts
            .iter()
            .map(|&(c, _)| sp.classes[c].r[q.kind])
            .min()
            .unwrap_or(q.r)
            .max(q.r);
        let mut pods = Vec::new();
        for &(c, n) in &p.counts {
            let cl = &sp.classes[c];
            for _ in 0..n {
                if let Some(&i) = cl.items.get(next[c]) {
                    pods.push(items[i].id.clone());
                    next[c] += 1;
                }
            }
        }
        let slice = Slice::new(k.gpu_mem_mib, r);
        nodes.push(PlannedNode {
            instance_type: t.name.clone(),
            capacity_type: k.ct,
            gpus: t.gpu_count,
            gpu_model: t.gpu_name.clone(),
            gpu_memory_mib: t.gpu_memory_mib,
            replicas_per_gpu: r,
            slice_gpu_memory_mib: slice.gpu_memory_mib,
            slice_share_milli: slice.share_milli,
            profile: profile_name(r),
            hourly_price: k.price,
            pods,
            node_pool: pools[k.pool].name.clone(),
            zone: k.zone.clone(),
            spot_hourly_price: k.spot_price,
        });
    }
    // Any class member not handed out (should not happen) is reported, never dropped.
    for (c, cl) in sp.classes.iter().enumerate() {
        for &i in &cl.items[next[c].min(cl.items.len())..] {
            unplaced.push(Unplaced {
                pod: items[i].id.clone(),
                reason: "internal: not covered by the rounded plan".to_string(),
            });
        }
    }
    Packing {
        nodes,
        unplaced,
        lower_bound: cg.lower_bound,
        stats: SolverStats {
            classes: sp.classes.len(),
            configurations: sp.configs.len(),
            rounds: cg.rounds,
            columns: cg.patterns.len(),
            lp_value: cg.lp_value,
            converged: cg.converged,
        },
    }
}
