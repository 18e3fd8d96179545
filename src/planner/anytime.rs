//! The one planner, anytime: every command plans through here.
//!
//! 1. The greedy cover (`greedy.rs`): a plan in milliseconds, with a weak proven bound.
//! 2. For demands that are not small, the assignment bound (`fluid.rs`), ~0.8 % below
//!    the pattern LP on 10,000 trace pods and 30–100 ms to prove. Under a deadline it runs
//!    on a thread of its own when there are two, and everything below reads it when it
//!    decides whether to stop; without one it runs first, so that the plan depends only
//!    on the input.
//! 3. Column generation warm-started from the greedy's nodes and every pattern of its
//!    passes (`lp.rs`, the dense simplex of `simplex.rs` as its master), with cheap
//!    pricing that widens as it runs dry, until a dive over its master would be within
//!    the gap of the bound in hand, it runs dry at its widest, or 85 % of the deadline
//!    passes.
//! 4. The integer step:
//!    - small demands (`exact::is_small`): column generation went to the LP optimum; a
//!      dive for a better plan, then every pattern that can be in a better plan is
//!      enumerated and the integer programme over them solved, which proves the plan
//!      optimal (`exact.rs`) when the enumeration stays short and branch and bound
//!      finishes;
//!    - otherwise a dive over the generated columns (fix whole patterns, re-solve), the
//!      rest repaired by the greedy cover. While the dive lost more than allowed, the
//!      cheap column generation resumes with the loss it measured, and dives again. If
//!      the plan is still not within `gap` of the best bound, column generation resumes
//!      with exact rounds (Farley bounds, and the columns the cheap search missed) until
//!      85 % of the deadline, a new dive follows where the LP moved, and the
//!      restricted-master integer programme warm-started from the best plan runs while
//!      time is left.
//!
//! The cheapest plan found is kept, with the best bound, its kind, the gap between them
//! and why the search stopped. Without a deadline (or with one that is not reached) the
//! result depends only on the input; a deadline that stops the search makes it depend on
//! the machine's speed too, which is what a time limit means.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::pattern::{Pattern, class_demand, cost, cover_homogeneous, downsize, into_packing};
use super::space::Space;
use super::{BoundKind, Effort, Packing, PlanOptions, SolverStats, StoppedBy};
use super::{exact, fluid, greedy, lp};
use crate::model::{Catalog, DemandItem, Pool};

/// Branch-and-bound nodes of the integer programme: small demands (microlp's search is
/// slow on thousands of columns: a larger budget mostly spends the deadline) ...
const EXACT_NODES: u64 = 500;
/// ... and the restricted master of a large one (its LP is already tight: a few dives).
const MASTER_NODES: u64 = 200;
/// Share of the deadline column generation may use; the integer step gets the rest.
/// On 10,000 trace pods: 0.75 gave 0.2 % cheaper plans than 0.6 and 0.45 at 1 s; since
/// the dive starts from the master's optimum and its refresh takes at most half the time
/// left, 0.85 gives 1.60 % at 100 ms against 1.68 % for 0.8, and the same plan at 1 s.
const COLUMN_SHARE: f64 = 0.85;
/// Share of the deadline the proving rounds (after the first plan) may use; the last
/// plan from their columns gets the rest.
const PROOF_SHARE: f64 = 0.85;
/// What a dive over the columns usually costs above the master's value (0.06–0.08 % on
/// 10,000 trace pods). The first phase stops once the master is within the gap less this;
/// a dive that loses more resumes it with the loss it measured. At 0.15 % the warm rounds
/// of the controller bench ran column generation far into its tail (545–889 ms a round
/// against 253 ms at 0.1 %, with the fractional types in the catalog).
const ROUNDING_LOSS: f64 = 0.001;
/// Time kept back from the deadline per pod for turning the plan into nodes.
const OUTPUT_PER_POD: Duration = Duration::from_nanos(800);

/// The greedy cover of `residual`, or homogeneous nodes for any class it leaves.
fn repair(sp: &Space, residual: &[u32]) -> Vec<Pattern> {
    let mut rest = greedy::solve(sp, residual).nodes;
    let mut left = residual.to_vec();
    for p in &rest {
        for &(c, n) in &p.counts {
            left[c] = left[c].saturating_sub(n);
        }
    }
    cover_homogeneous(sp, &mut left, &mut rest);
    rest
}

/// Diving over column generation's columns from its master's optimum (`lp::round`),
/// whatever it leaves repaired: a whole plan.
fn dive(
    sp: &Space,
    cg: &lp::ColGen,
    demand: &[u32],
    opts: &PlanOptions,
    deadline: Option<Instant>,
    start: Instant,
) -> Vec<Pattern> {
    let (mut nodes, residual) = lp::round(
        sp,
        &cg.patterns,
        &cg.x,
        demand,
        opts,
        deadline,
        start.elapsed(),
    );
    if residual.iter().any(|r| *r > 0) {
        nodes.extend(repair(sp, &residual));
    }
    nodes
}

struct Best {
    nodes: Vec<Pattern>,
    cost: f64,
}

impl Best {
    fn offer(&mut self, sp: &Space, mut nodes: Vec<Pattern>) {
        downsize(sp, &mut nodes);
        let c = cost(sp, &nodes);
        if c < self.cost - 1e-9 {
            self.nodes = nodes;
            self.cost = c;
        }
    }
}

pub(crate) fn solve(
    sp: &Space,
    catalog: &Catalog,
    items: &[DemandItem],
    pools: &[Pool],
    opts: &PlanOptions,
    cached: &[Pattern],
    start: Instant,
) -> Packing {
    // The deadline covers the whole plan: the last part is left for writing the nodes
    // out (`into_packing`: ~0.5 µs a pod, 50 ms for 100,000), at most a tenth of it.
    let deadline = opts.deadline.map(|d| {
        let pods = u32::try_from(items.len()).unwrap_or(u32::MAX);
        start + d.saturating_sub((OUTPUT_PER_POD * pods).min(d / 10))
    });
    let mut stats = SolverStats {
        classes: sp.classes.len(),
        configurations: sp.configs.len(),
        ..SolverStats::default()
    };
    if sp.classes.is_empty() {
        stats.bound_kind = BoundKind::Optimal;
        stats.stopped_by = StoppedBy::Optimal;
        stats.proven_optimal = true;
        stats.elapsed_seconds = start.elapsed().as_secs_f64();
        return into_packing(sp, catalog, items, pools, Vec::new(), 0.0, stats);
    }
    let demand = class_demand(sp);
    let greedy = greedy::solve(sp, &demand);
    let small = opts.prove_small && exact::is_small(&demand);
    let within = |cost: f64, bound: f64| cost <= bound * (1.0 + opts.gap) + 1e-9;
    let greedy_cost = cost(sp, &greedy.nodes);
    // The assignment bound (`fluid.rs`) for demands that are not small, on a thread of its
    // own beside column generation when there are threads to spare.
    // Not for a plan whose bound is not wanted (the dedicated comparison).
    let wants_fluid = opts.effort == Effort::Full
        && opts.prove_bound
        && !small
        && !within(greedy_cost, greedy.bound);
    // Its working set starts from the configurations of the greedy's nodes only: on
    // 10,000 trace pods 29 of them against 38 with every pattern of its passes, two rounds
    // either way to the same bound, which arrives at 86–91 ms instead of 97–108 ms.
    let mut configs: Vec<usize> = greedy.nodes.iter().map(|p| p.config).collect();
    configs.sort_unstable();
    configs.dedup();
    let shared = lp::SharedBound::default();
    let fluid_bound = || fluid::bound(sp, &demand, &configs, deadline, |b| shared.raise(b));
    // Without a deadline the plan must not depend on when the bound arrives: it is
    // computed first.
    let beside = opts.threads > 1 && opts.deadline.is_some();
    let (fluid, mut outcome) = std::thread::scope(|s| {
        let helper = (wants_fluid && beside).then(|| s.spawn(fluid_bound));
        let mut fluid = None;
        if wants_fluid && helper.is_none() {
            fluid = fluid_bound();
        }
        // Pricing keeps every thread: the bound's thread is done within ~100 ms.
        let outcome = search(
            sp, opts, &demand, greedy, cached, small, &shared, start, deadline,
        );
        if let Some(h) = helper {
            // The bound's thread only panics on a bug; re-raise it here.
            fluid = h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        }
        (fluid, outcome)
    });
    if let Some(f) = fluid
        && f > outcome.bound
        && outcome.kind != BoundKind::Optimal
    {
        outcome.bound = f;
        outcome.kind = BoundKind::Fluid;
    }
    let Searched {
        best,
        mut bound,
        mut kind,
        columns,
        cg,
        ended,
    } = outcome;
    if best.cost <= bound + 1e-9 {
        bound = best.cost;
        kind = BoundKind::Optimal;
    }
    let stopped = if kind == BoundKind::Optimal {
        StoppedBy::Optimal
    } else if opts.effort == Effort::Fast {
        StoppedBy::Effort
    } else if within(best.cost, bound) {
        StoppedBy::Gap
    } else {
        ended
    };
    if let Some(cg) = cg {
        stats.rounds = cg.rounds;
        stats.columns = cg.columns;
        stats.lp_value = cg.lp_value;
        stats.converged = cg.converged;
    }
    stats.bound_kind = kind;
    stats.stopped_by = stopped;
    stats.proven_optimal = kind == BoundKind::Optimal;
    stats.gap = if bound > 0.0 {
        (best.cost / bound - 1.0).max(0.0)
    } else {
        0.0
    };
    stats.elapsed_seconds = start.elapsed().as_secs_f64();
    let mut packing = into_packing(sp, catalog, items, pools, best.nodes, bound, stats);
    packing.columns = columns;
    packing
}

/// What column generation reported, for the plan's statistics.
struct CgStats {
    rounds: usize,
    columns: usize,
    lp_value: f64,
    converged: bool,
}

/// The search's result: the best plan, the best bound it proved itself and its kind,
/// the columns to keep for later plans, and why it stopped short of the gap.
struct Searched {
    best: Best,
    bound: f64,
    kind: BoundKind,
    columns: Vec<Pattern>,
    cg: Option<CgStats>,
    ended: StoppedBy,
}

/// Everything after the greedy cover: column generation and the integer step. `shared`
/// holds the best bound proven elsewhere (the assignment bound's thread), read at each
/// decision.
#[allow(clippy::too_many_arguments)]
fn search(
    sp: &Space,
    opts: &PlanOptions,
    demand: &[u32],
    greedy: greedy::Greedy,
    cached: &[Pattern],
    small: bool,
    shared: &lp::SharedBound,
    start: Instant,
    deadline: Option<Instant>,
) -> Searched {
    let expired = || deadline.is_some_and(|d| Instant::now() >= d);
    let within = |cost: f64, bound: f64| cost <= bound * (1.0 + opts.gap) + 1e-9;
    let greedy::Greedy {
        nodes: greedy_nodes,
        bound: greedy_bound,
        patterns: greedy_patterns,
    } = greedy;
    let mut best = Best {
        cost: cost(sp, &greedy_nodes),
        nodes: greedy_nodes,
    };
    let mut own = (greedy_bound, BoundKind::Lagrangian);
    let bound_now = |own: (f64, BoundKind)| {
        let s = shared.get();
        if s > own.0 {
            (s, BoundKind::Fluid)
        } else {
            own
        }
    };
    let done = |best: &Best, own: (f64, BoundKind)| {
        let b = bound_now(own).0;
        best.cost <= b + 1e-9 || (within(best.cost, b) && !small)
    };
    let outcome = |best: Best, own: (f64, BoundKind), columns, cg, ended| {
        let (bound, kind) = bound_now(own);
        Searched {
            best,
            bound,
            kind,
            columns,
            cg,
            ended,
        }
    };
    if opts.effort == Effort::Fast {
        return outcome(best, own, Vec::new(), None, StoppedBy::Effort);
    }
    if done(&best, own) {
        return outcome(best, own, Vec::new(), None, StoppedBy::Gap);
    }
    if expired() {
        return outcome(best, own, Vec::new(), None, StoppedBy::Deadline);
    }
    // Small demands aim at the proof, so they do not stop at the gap.
    let limits = lp::Limits {
        deadline: deadline.map(|d| start + (d - start).mul_f64(COLUMN_SHARE)),
        incumbent: best.cost,
        gap: if small { 0.0 } else { opts.gap },
        // Small demands want the LP optimum: its duals keep the enumeration short
        // (not when only the bound was asked for: the usual tolerance then).
        master_tolerance: (small && opts.integer_step).then_some(1e-6),
        shared: (!small).then_some(shared),
    };
    // Two phases for demands that are not small and want a plan: columns for the plan
    // first (cheap pricing until it runs dry), a plan from them, and only if that plan is
    // not yet within the gap, the exact rounds that raise the bound (and find the columns
    // the cheap search missed), then a plan again. Small demands want the proof at once,
    // and the replay's floor only the bound.
    let two_phase = !small && opts.integer_step;
    let mut cg_opts = opts.clone();
    cg_opts.prove_bound = small || (opts.prove_bound && !two_phase);
    // The first phase is done once a dive over its master would be within the gap of
    // the bound in hand (a dive has cost at most `ROUNDING_LOSS` more than the master
    // on the trace samples): without this it would go on until the cheap search runs
    // dry, 3.4 s instead of 0.9 s for 15,000 trace pods.
    let limits = if two_phase {
        lp::Limits {
            master_tolerance: Some(((1.0 + opts.gap) / (1.0 + ROUNDING_LOSS) - 1.0).max(1e-6)),
            ..limits
        }
    } else {
        limits
    };
    // Seeds: the greedy's nodes and every pattern of its passes, then the columns of
    // earlier plans (`Columns`).
    let mut seed = best.nodes.clone();
    let greedy_len = seed.len();
    seed.extend_from_slice(&greedy_patterns);
    seed.extend_from_slice(cached);
    let mut cg = lp::column_generation(sp, &cg_opts, demand, &seed, limits);
    let mut rounds = cg.rounds;
    let raise = |own: &mut (f64, BoundKind), cg: &lp::ColGen| {
        if cg.lower_bound >= own.0 {
            *own = (
                cg.lower_bound,
                if cg.converged {
                    BoundKind::Lp
                } else {
                    BoundKind::Farley
                },
            );
        }
    };
    raise(&mut own, &cg);
    let mut proven = best.cost <= bound_now(own).0 + 1e-9;
    let integer = opts.integer_step;
    if integer && small && !proven && !expired() {
        // A better plan first: it shrinks the allowance, hence the enumeration.
        best.offer(sp, dive(sp, &cg, demand, opts, deadline, start));
        proven = best.cost <= own.0 + 1e-9;
    }
    if integer && small && !proven && !expired() {
        let y = cg.feasible_duals(demand);
        let allowance = best.cost - cg.lower_bound.max(0.0);
        if let Some(patterns) = exact::enumerate(sp, demand, &y, allowance, deadline)
            && let Some((nodes, optimal)) =
                exact::integer_master(sp, &patterns, demand, &best.nodes, EXACT_NODES, deadline)
        {
            best.offer(sp, nodes);
            if optimal {
                proven = true;
            }
        }
    } else if integer && !small && !done(&best, own) && !expired() {
        best.offer(sp, dive(sp, &cg, demand, opts, deadline, start));
        // The dive lost more than allowed: the first phase goes on from its columns
        // with the allowance it measured, while that leaves room to reach the gap.
        let mut loss = ROUNDING_LOSS;
        let resume_by = deadline.map(|d| start + (d - start).mul_f64(PROOF_SHARE));
        while two_phase
            && cg.near
            && !done(&best, own)
            && resume_by.is_none_or(|d| Instant::now() < d)
        {
            loss = loss.max((best.cost / cg.lp_value - 1.0) * 1.25);
            let tolerance = (1.0 + opts.gap) / (1.0 + loss) - 1.0;
            if tolerance <= 0.0 {
                break;
            }
            let resumed = lp::Limits {
                deadline: resume_by,
                master_tolerance: Some(tolerance),
                incumbent: best.cost,
                ..limits
            };
            let before = cg.lp_value;
            let resumed = lp::column_generation(sp, &cg_opts, demand, &cg.patterns, resumed);
            rounds += resumed.rounds;
            // No lower master, no better dive: on to the proving rounds.
            if !(resumed.lp_value > 0.0 && resumed.lp_value < before * (1.0 - 1e-6)) {
                break;
            }
            cg = resumed;
            best.offer(sp, dive(sp, &cg, demand, opts, deadline, start));
        }
        if two_phase && opts.prove_bound && !done(&best, own) && !expired() {
            let proving = lp::Limits {
                deadline: deadline.map(|d| start + (d - start).mul_f64(PROOF_SHARE)),
                incumbent: best.cost,
                master_tolerance: None,
                ..limits
            };
            let first = cg.lp_value;
            cg = lp::column_generation(sp, opts, demand, &cg.patterns, proving);
            rounds += cg.rounds;
            raise(&mut own, &cg);
            if cg.lp_value < first * (1.0 - 1e-6) && !done(&best, own) && !expired() {
                best.offer(sp, dive(sp, &cg, demand, opts, deadline, start));
            }
        }
        if !done(&best, own)
            && !expired()
            && let Some((nodes, _)) = exact::integer_master(
                sp,
                &cg.patterns,
                demand,
                &best.nodes,
                MASTER_NODES,
                deadline,
            )
        {
            best.offer(sp, nodes);
        }
    }
    // The columns kept for later plans leave out the greedy's extra patterns: the
    // greedy makes them again in milliseconds, and the cache (`Columns`) is for what
    // pricing found.
    let kept: HashSet<&Pattern> = seed[..greedy_len].iter().chain(cached).collect();
    let extra: HashSet<&Pattern> = greedy_patterns
        .iter()
        .filter(|p| !kept.contains(p))
        .collect();
    let columns: Vec<Pattern> = cg
        .patterns
        .iter()
        .filter(|p| !extra.contains(p))
        .cloned()
        .collect();
    if proven {
        own = (best.cost, BoundKind::Optimal);
    }
    let ended = if expired() || cg.timed_out {
        StoppedBy::Deadline
    } else {
        StoppedBy::Exhausted
    };
    let stats = CgStats {
        rounds,
        columns: cg.patterns.len(),
        lp_value: cg.lp_value,
        converged: cg.converged,
    };
    outcome(best, own, columns, Some(stats), ended)
}
