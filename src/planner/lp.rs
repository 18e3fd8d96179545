//! Column generation for the LP relaxation and its lower bound, and rounding to a plan.
//!
//! Master LP (set cover over node patterns, `master.rs`): `min Σ_p cost_p x_p` s.t.
//! `Σ_p a_pc x_p ≥ d_c` for every pod class `c`, `x ≥ 0`; its duals `y` price new
//! patterns, a bounded multi-dimensional knapsack per configuration (`pricing.rs`).
//!
//! Lower bound (Farley): for any `y ≥ 0`, let `ρ ≥ max_p (Σ_c a_pc y_c) / cost_p` over
//! ALL feasible patterns (an upper bound from the knapsack search). Every valid plan
//! covers each class exactly `d_c` times, so `cost(plan) ≥ Σ_c d_c y_c / ρ`. This holds
//! whatever the LP solver's accuracy, because `y` is only used as a vector of weights;
//! at convergence (`ρ ≤ 1`) it equals the LP relaxation.
//!
//! Rounds: cheap pricing (partial, a narrow search) generates columns; a full, exact
//! round proves a Farley bound. Exact rounds cost 0.1–0.5 s on 10,000 trace pods (the
//! 8-GPU shapes with a hundred classes), so one is only started while twice the last one
//! (half the column budget before the first) still fits before the deadline: at a 1 s
//! deadline the time goes to the plan, whose bound then comes from the assignment LP
//! (`fluid.rs`), and at 3 s and up the exact rounds tighten it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::PlanOptions;
use super::master::{self, Master};
use super::pattern::{Pattern, homogeneous, take, trim};
use super::pricing::{self, Search, price, price_all};
use super::space::Space;

/// Search nodes per knapsack while generating columns (the final pass uses the
/// option's larger budget to prove the bound).
const HEURISTIC_NODES: usize = 512;
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
/// Diving steps after which columns are generated for the residual (10,000 trace pods
/// at 1 s: none 8,534 $/h in 19 ms, one 8,528 in 95 ms, three 8,528 in 210 ms).
const RESIDUAL_REFRESHES: usize = 1;
/// Weight of the best-bound duals in the pricing point.
const SMOOTHING: f64 = 0.5;
/// Columns added to the master per round at most, per class in demand.
const COLUMNS_PER_CLASS: usize = 4;
/// The cheap searches widen by this factor each time they run dry or tail off, up to
/// [`MAX_DEPTH`] (narrow searches give more rounds early, wide ones the last columns:
/// 10,000 trace pods at 300 ms / 1 s: 2,000 slice-search nodes 1.25 / 1.04 %, 20,000
/// 1.41 / 1.01 %, 100,000 1.57 / 0.97 %).
const WIDEN: usize = 4;
const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Cheap pricing (small search) to generate columns.
    Heuristic,
    /// Full search with Lagrangian bounds: proves or finds columns.
    Exact,
    /// As `Exact`, plus the MILP fallback where the search cannot close the gap.
    Final,
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
    /// The master's optimum: each of `patterns`' values (empty when the solver keeps
    /// only duals or the last re-optimisation failed). The dive starts from it.
    pub(crate) x: Vec<f64>,
    pub(crate) rounds: usize,
    /// Pricing proved the master optimal: `lower_bound` is the LP relaxation.
    pub(crate) converged: bool,
    /// The deadline stopped it.
    pub(crate) timed_out: bool,
    /// It stopped because the master came within its tolerance of the bound.
    pub(crate) near: bool,
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

/// A lower bound shared between threads (an `f64` in an atomic; 0 until one is known):
/// the assignment bound, proven on another thread while column generation runs.
#[derive(Debug, Default)]
pub(crate) struct SharedBound(AtomicU64);

impl SharedBound {
    pub(crate) fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Acquire))
    }

    /// Raises the bound to `b` if that is higher.
    pub(crate) fn raise(&self, b: f64) {
        let mut cur = self.0.load(Ordering::Acquire);
        while f64::from_bits(cur) < b {
            match self
                .0
                .compare_exchange(cur, b.to_bits(), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }
}

/// When column generation may stop before it converges.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits<'a> {
    pub(crate) deadline: Option<Instant>,
    /// Cost of the best plan already known: stop once the bound is within `gap` of it.
    pub(crate) incumbent: f64,
    pub(crate) gap: f64,
    /// Stop once the master's value is within this fraction of the bound (more rounds
    /// would buy little); `None`: half the gap, at most 0.5 %.
    pub(crate) master_tolerance: Option<f64>,
    /// A bound proven elsewhere, counted in the stopping tests.
    pub(crate) shared: Option<&'a SharedBound>,
}

impl Limits<'_> {
    pub(crate) fn none() -> Limits<'static> {
        Limits {
            deadline: None,
            incumbent: f64::INFINITY,
            gap: 0.0,
            master_tolerance: None,
            shared: None,
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

    /// Whether a round expected to take `cost` should start: no deadline, or twice that
    /// still fits before it.
    fn affords(&self, cost: Duration) -> bool {
        self.deadline
            .is_none_or(|d| d.saturating_duration_since(Instant::now()) >= cost * 2)
    }
}

/// Column generation for covering `demand`, starting from `seed` (trimmed to it) and the
/// homogeneous patterns.
pub(crate) fn column_generation(
    sp: &Space,
    opts: &PlanOptions,
    demand: &[u32],
    seed: &[Pattern],
    limits: Limits<'_>,
) -> ColGen {
    let nc = sp.classes.len();
    let started = Instant::now();
    let mut cg = ColGen {
        patterns: Vec::new(),
        seen: HashSet::new(),
        y: vec![0.0; nc],
        lower_bound: 0.0,
        lp_value: 0.0,
        x: Vec::new(),
        rounds: 0,
        converged: false,
        timed_out: false,
        near: false,
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
    let Some(mut master) = Master::build(sp, demand, &cg.patterns) else {
        return cg;
    };
    cg.lp_value = master.value();
    let bound_now = |cg: &ColGen| {
        limits
            .shared
            .map_or(cg.lower_bound, |s| s.get().max(cg.lower_bound))
    };
    let mut phase = Phase::Heuristic;
    let multipliers = pricing::Multipliers::new(sp.configs.len());
    let mut depth = 1usize;
    let mut smoothing = SMOOTHING;
    let mut closing = false;
    let mut full_rounds = 0usize;
    let mut exact_passes = 0usize;
    let mut final_passes = 0usize;
    // An exact round costs what the last one did; before the first, half the budget.
    let mut exact_cost: Option<Duration> = None;
    let exact_affordable = |cost: Option<Duration>| {
        limits.affords(cost.unwrap_or_else(|| {
            limits
                .deadline
                .map_or(Duration::ZERO, |d| d.saturating_duration_since(started) / 4)
        }))
    };
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
    loop {
        let now = Instant::now();
        let last_round = now - round_start;
        round_start = now;
        if limits.expired() || limits.deadline.is_some_and(|d| now + last_round > d) {
            cg.timed_out = true;
            break;
        }
        cg.rounds += 1;
        let y_lp: Vec<f64> = master.duals();
        cg.lp_value = master.value();
        // Wentges smoothing: price at a point between the LP duals and the duals of the
        // best bound so far; columns must still improve the LP at `y_lp`. Only in the
        // exact rounds: while the cheap search runs, the best bound's duals are those of
        // the first rounds (no later one prices everything), and pricing halfway to them
        // slowed the master (10,000 trace pods: 8,617 $/h after 100 ms with smoothing,
        // 8,572 without; 0.97 % at 1 s either way).
        let smooth = smoothing > 0.0 && cg.lower_bound > 0.0 && phase != Phase::Heuristic;
        let y: Vec<f64> = if smooth {
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
        let restricted = phase == Phase::Heuristic && !force_full;
        let todo: Vec<usize> = (0..sp.configs.len())
            .filter(|&qi| {
                !restricted
                    || useful_at[qi] + PARTIAL_RECENT >= cg.rounds
                    || (qi + cg.rounds).is_multiple_of(PARTIAL_ROTATION)
            })
            .collect();
        // The first rounds price every configuration anyway (all were useful lately):
        // their ρ is a bound like a full round's.
        let partial = todo.len() < sp.configs.len();
        let priced_at = Instant::now();
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
                        depth,
                        multipliers: Some((&multipliers, cg.rounds)),
                        exact,
                        mip,
                        deadline: limits.deadline,
                    },
                )
            }
        });
        if exact {
            exact_cost = Some(priced_at.elapsed());
        }

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
        let proven = bound_now(&cg);
        if cg.lp_value <= proven * (1.0 + limits.master_tolerance())
            || limits.incumbent <= proven * (1.0 + limits.gap)
        {
            cg.near = true;
            break;
        }
        if closing {
            break;
        }
        let can_prove = opts.prove_bound && exact_affordable(exact_cost);
        if cg.rounds >= opts.max_rounds {
            // Out of rounds: one last pass with the full search (no new columns) so the
            // bound reflects the duals reached, not the cheap pricing's loose one.
            if phase == Phase::Final || !can_prove {
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
                if !can_prove {
                    break;
                }
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
        let widen = phase == Phase::Heuristic && (cands.is_empty() || stalled) && depth < MAX_DEPTH;
        if widen {
            // Wider cheap searches before anything is concluded.
            depth *= WIDEN;
            cheap_values.clear();
            if cands.is_empty() {
                force_full = true;
                continue;
            }
        }
        phase = match (phase, (cands.is_empty() || stalled) && !widen) {
            // Without a wish or the time to prove: done when nothing more is found, else
            // the cheap search goes on until the deadline. A plan with neither a deadline
            // nor a bound to prove (the dedicated comparison of a run without deadline)
            // is also done when the master tails off at the widest search (10,000 trace
            // pods: 1.9 s instead of 4.9 s, the same plan within 0.05 %).
            (Phase::Heuristic, true) if !can_prove => {
                if cands.is_empty() || (!opts.prove_bound && limits.deadline.is_none()) {
                    break;
                }
                cheap_values.clear();
                Phase::Heuristic
            }
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
        cands.truncate((COLUMNS_PER_CLASS * nc).max(64));
        let mut failed = false;
        for (_, p) in cands {
            // Past the deadline the rest wait (the microlp master re-optimises per row).
            if limits.expired() {
                break;
            }
            if !cg.seen.insert(p.clone()) {
                continue;
            }
            // A failed re-optimisation ends column generation, with the bound and values
            // of the last good round.
            if !master.add(sp, &p) {
                failed = true;
                break;
            }
            cg.patterns.push(p);
        }
        if failed || !master.reoptimize() {
            return cg;
        }
    }
    // Every exit above but a failed re-optimisation leaves the master optimal over
    // `patterns`.
    cg.x = master.values().unwrap_or_default();
    cg.lp_value = master.value();
    cg
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
    x: &[f64],
    demand: &[u32],
    opts: &PlanOptions,
    deadline: Option<Instant>,
    spent: Duration,
) -> (Vec<Pattern>, Vec<u32>) {
    let mut residual = demand.to_vec();
    let mut refreshes = 0usize;
    let mut chosen = Vec::new();
    let mut pool: Vec<Pattern> = patterns.to_vec();
    let mut guard = 0usize;
    // The first fixing step runs even past the deadline: it is what turns the LP into a
    // plan (without it a late column generation left the greedy cover's plan). A later
    // one starts only while a step as long as the last still ends before the deadline
    // (the caller repairs what is left, in a few milliseconds).
    let mut last_step = Duration::ZERO;
    while residual.iter().any(|r| *r > 0)
        && (guard == 0 || deadline.is_none_or(|d| Instant::now() + last_step < d))
    {
        guard += 1;
        let step_started = Instant::now();
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
        // The first step starts from `x` when it is the optimum over exactly these
        // columns (the master column generation ended with: 8 ms saved at 10,000 trace
        // pods, a tenth of a 100 ms plan).
        let x = if guard == 1 && x.len() == cur.len() && cur == pool {
            Some(x.to_vec())
        } else if guard < 10_000 {
            master::primal(sp, &cur, &residual)
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
        last_step = step_started.elapsed();
        if refreshes < RESIDUAL_REFRESHES && residual.iter().any(|r| *r > 0) {
            refreshes += 1;
            let mut o = opts.clone();
            o.prove_bound = false;
            o.max_rounds = RESIDUAL_ROUNDS;
            let now = Instant::now();
            // At most half the time left: the fixing steps after it need the rest (at
            // 100 ms on 10,000 trace pods it took every millisecond to the deadline, and
            // the greedy repaired 3 % of the pods). And at most as long as the plan took
            // to get here: the controller bench's warm rounds reached the dive in ~60 ms,
            // then refreshed for 130–210 ms (a round of 315 ms, 127 ms with this cap;
            // 10,000 pods at 1 s reach the 1 % gap in 0.6 s instead of 0.8 s).
            let by = now + spent;
            let refresh = Limits {
                deadline: Some(
                    deadline.map_or(by, |d| by.min(now + d.saturating_duration_since(now) / 2)),
                ),
                ..Limits::none()
            };
            let cg = column_generation(sp, &o, &residual, &cur, refresh);
            cur.extend(cg.patterns);
        }
        pool = cur;
    }
    (chosen, residual)
}
