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
use std::time::Instant;

use microlp::{ComparisonOp, OptimizationDirection, Problem};

use super::PlanOptions;
use super::knapsack::{self, Item};
use super::pattern::{Pattern, fractional_bound, homogeneous, take, trim, weights};
use super::space::Space;

/// Search nodes per knapsack while generating columns (the final pass uses the
/// option's larger budget to prove the bound).
const HEURISTIC_NODES: usize = 512;
/// Relative tolerance of pricing: a pattern is only searched for where it could beat
/// its configuration's price by more than this (the bound gives up at most as much).
const PRICING_TOLERANCE: f64 = 0.003;
/// Configurations with at most this many GPU slices are priced by dynamic programming.
const DP_MAX_SLICES: u64 = 16;
/// Partial packings the dynamic programme keeps alive when proving the bound.
const DP_STATES: usize = 50_000;
/// ... and while generating columns (10,000 trace pods, gap at a 1 s / 3 s deadline:
/// 1,000 states 3.0 / 2.0 %, 300 2.7 / 1.6 %, 100 2.6 / 1.5 %, 30 2.7 / 1.7 %: a narrow
/// beam finds columns nearly as good in a fraction of the time, so more rounds fit).
const DP_BEAM: usize = 100;
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

/// How one pricing call searches: search nodes, the full search (to prove), the MILP
/// fallback, and when the dynamic programme must stop (its bound then covers the rest).
#[derive(Debug, Clone, Copy)]
struct Search {
    nodes: usize,
    exact: bool,
    mip: bool,
    deadline: Option<Instant>,
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
    search: Search,
) -> (f64, Vec<Found>) {
    let Search {
        nodes,
        exact,
        mip,
        deadline,
    } = search;
    let cfg = &sp.configs[cfg_idx];
    // Heuristic first, exact only to certify: the one-dimension fractional bound settles
    // most configurations at the duals in microseconds (no pattern can beat the price).
    let quick = fractional_bound(sp, cfg_idx, y, limit);
    if quick <= cfg.price * (1.0 + PRICING_TOLERANCE) {
        return (quick, Vec::new());
    }
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
            knapsack::solve_dp(&items, cfg.cap, l, target, states, deadline)
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
    (s.upper_bound.min(quick), found)
}

/// What column generation reached.
pub(crate) struct ColGen {
    /// Every column of the master (the seed's, trimmed, then the generated ones).
    pub(crate) patterns: Vec<Pattern>,
    seen: HashSet<Pattern>,
    /// The duals of the best bound (`lower_bound = Σ y_c d_c / ρ`).
    pub(crate) y: Vec<f64>,
    /// The best proven lower bound (Farley), 0 before the first complete pricing round.
    pub(crate) lower_bound: f64,
    /// The master LP's value (an upper bound on the LP relaxation).
    pub(crate) lp_value: f64,
    pub(crate) rounds: usize,
    /// Pricing proved the master optimal: `lower_bound` is the LP relaxation.
    pub(crate) converged: bool,
    /// The deadline stopped it.
    pub(crate) timed_out: bool,
}

impl ColGen {
    /// Duals scaled to be feasible for every pattern: `y_f · d = lower_bound`, and no
    /// pattern's value at `y_f` exceeds its price (what the Farley bound proves).
    pub(crate) fn feasible_duals(&self, demand: &[u32]) -> Vec<f64> {
        let dual: f64 = self
            .y
            .iter()
            .zip(demand)
            .map(|(y, d)| y * f64::from(*d))
            .sum();
        if dual <= 0.0 || self.lower_bound <= 0.0 {
            return vec![0.0; demand.len()];
        }
        let s = self.lower_bound / dual;
        self.y.iter().map(|y| y * s).collect()
    }
}

/// When column generation may stop before it converges.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) deadline: Option<Instant>,
    /// Cost of the best plan already known: stop once the bound is within `gap` of it.
    pub(crate) incumbent: f64,
    pub(crate) gap: f64,
    /// Stop once the master's value is within this fraction of the bound (more rounds
    /// would buy little); `None`: half the gap, at most 0.5 %.
    pub(crate) master_tolerance: Option<f64>,
}

impl Limits {
    pub(crate) fn none() -> Limits {
        Limits {
            deadline: None,
            incumbent: f64::INFINITY,
            gap: 0.0,
            master_tolerance: None,
        }
    }

    pub(crate) fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// The master's value is this close to the bound: more rounds buy little.
    fn master_tolerance(&self) -> f64 {
        if let Some(t) = self.master_tolerance {
            t
        } else if self.gap > 0.0 {
            (self.gap / 2.0).min(GAP_TOLERANCE)
        } else {
            GAP_TOLERANCE
        }
    }
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

/// Column generation for covering `demand`, starting from `seed` (trimmed to it) and the
/// homogeneous patterns.
pub(crate) fn column_generation(
    sp: &Space,
    opts: &PlanOptions,
    demand: &[u32],
    seed: &[Pattern],
    limits: Limits,
) -> ColGen {
    let nc = sp.classes.len();
    let mut cg = ColGen {
        patterns: Vec::new(),
        seen: HashSet::new(),
        y: vec![0.0; nc],
        lower_bound: 0.0,
        lp_value: 0.0,
        rounds: 0,
        converged: false,
        timed_out: false,
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
    // A round that would end past the deadline, judged by the last one, is not started,
    // so the integer step keeps its share.
    let mut round_start = Instant::now();
    'rounds: loop {
        let now = Instant::now();
        let last_round = now - round_start;
        round_start = now;
        if limits.expired() || limits.deadline.is_some_and(|d| now + last_round > d) {
            cg.timed_out = true;
            break;
        }
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
        // Past the deadline the rest of the round is skipped: ρ = ∞, no bound from it.
        let priced = price_all(&todo, opts.threads, |qi| {
            if limits.expired() {
                (f64::INFINITY, Vec::new())
            } else {
                price(
                    sp,
                    qi,
                    &y,
                    demand,
                    Search {
                        nodes,
                        exact,
                        mip,
                        deadline: limits.deadline,
                    },
                )
            }
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
        // bound is within the tolerance of it, or of a plan already in hand.
        if cg.lp_value <= cg.lower_bound * (1.0 + limits.master_tolerance())
            || limits.incumbent <= cg.lower_bound * (1.0 + limits.gap)
        {
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
        for (_, p) in cands {
            // Each added row re-optimises the master: past the deadline the rest wait.
            if limits.expired() {
                break;
            }
            if !cg.seen.insert(p.clone()) {
                continue;
            }
            let r = row(&p);
            let cost = sp.configs[p.config].price;
            cg.patterns.push(p);
            // The master consumed by a failed re-optimisation ends column generation
            // (with the bound and values of the last good round), so it is not cloned.
            sol = match sol
                .add_constraint(r, ComparisonOp::Le, cost)
                .ok()
                .and_then(|o| o.into_solution().ok())
            {
                Some(s) => s,
                None => break 'rounds,
            };
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

/// Diving: fix whole copies of patterns from the LP solution, re-solve the residual,
/// and when nothing is whole, fix one copy of the largest fractional pattern.
/// After each of the first fixing steps, columns are generated again for what is left
/// (cheap pricing only), since the leftovers mix in ways the full demand's columns may not.
/// Returns the fixed nodes and what is left uncovered: everything is covered unless the
/// deadline passed or an LP failed, and the caller repairs the rest.
pub(crate) fn round(
    sp: &Space,
    patterns: &[Pattern],
    demand: &[u32],
    opts: &PlanOptions,
    deadline: Option<Instant>,
) -> (Vec<Pattern>, Vec<u32>) {
    let limits = Limits {
        deadline,
        ..Limits::none()
    };
    let mut residual = demand.to_vec();
    let mut refreshes = 0usize;
    let mut chosen = Vec::new();
    let mut pool: Vec<Pattern> = patterns.to_vec();
    let mut guard = 0usize;
    // The first fixing step runs even past the deadline: it is what turns the LP into a
    // plan (without it a late column generation left the greedy cover's plan).
    while residual.iter().any(|r| *r > 0) && (guard == 0 || !limits.expired()) {
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
            let cg = column_generation(sp, &o, &residual, &cur, limits);
            cur.extend(cg.patterns);
        }
        pool = cur;
    }
    (chosen, residual)
}
