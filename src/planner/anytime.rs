//! The one planner, anytime: every command plans through here.
//!
//! 1. The greedy cover (`greedy.rs`): a plan in milliseconds, with a weak proven bound;
//!    then, for demands that are not small, the assignment LP (`fluid.rs`): a bound
//!    0.1–1 % below the pattern LP without any pricing.
//! 2. Column generation warm-started from the greedy's nodes and every pattern of its
//!    passes (`lp.rs`; not kept in the column cache): the master's duals
//!    give the Farley bound at every round and the LP relaxation at convergence. It stops
//!    as soon as the bound is within `gap` of the plan in hand, or at 75 % of the deadline
//!    (the integer step needs the rest).
//! 3. The integer step:
//!    - small demands (`exact::is_small`): column generation to the LP optimum, diving
//!      for a better plan, then every pattern that can be in a better plan is enumerated
//!      and the integer programme over them solved, which proves the plan optimal
//!      (`exact.rs`) when the enumeration stays short and branch and bound finishes;
//!    - otherwise diving over the generated columns (fix whole patterns, re-solve), the
//!      rest repaired by the greedy cover, then the restricted-master integer programme
//!      warm-started from the best plan, while time is left.
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
/// Share of the deadline column generation may use; the integer step gets the rest
/// (0.75 gave 0.2 % cheaper plans than 0.6 and 0.45 at 1 s on 10,000 trace pods: diving
/// over the columns needs ~200 ms whatever its share).
const COLUMN_SHARE: f64 = 0.75;
/// Time kept back from the deadline per pod for turning the plan into nodes.
const OUTPUT_PER_POD: Duration = Duration::from_nanos(500);

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

/// Diving over `patterns` (`lp::round`), whatever it leaves repaired: a whole plan.
fn dive(
    sp: &Space,
    patterns: &[Pattern],
    demand: &[u32],
    opts: &PlanOptions,
    deadline: Option<Instant>,
) -> Vec<Pattern> {
    let (mut nodes, residual) = lp::round(sp, patterns, demand, opts, deadline);
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
    let expired = || deadline.is_some_and(|d| Instant::now() >= d);
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
    let within = |cost: f64, bound: f64| cost <= bound * (1.0 + opts.gap) + 1e-9;

    let greedy::Greedy {
        nodes: greedy_nodes,
        mut bound,
        patterns: greedy_patterns,
    } = greedy::solve(sp, &demand);
    let mut kind = BoundKind::Lagrangian;
    let mut best = Best {
        cost: cost(sp, &greedy_nodes),
        nodes: greedy_nodes,
    };
    let small = opts.prove_small && exact::is_small(&demand);
    if opts.effort == Effort::Full
        && !small
        && !within(best.cost, bound)
        && let Some(f) = fluid::solve(sp, &demand, deadline)
        && f > bound
    {
        bound = f;
        kind = BoundKind::Fluid;
    }
    let mut columns = Vec::new();
    let mut stopped = if opts.effort == Effort::Fast {
        Some(StoppedBy::Effort)
    } else if best.cost <= bound + 1e-9 {
        Some(StoppedBy::Optimal)
    } else if within(best.cost, bound) && !small {
        Some(StoppedBy::Gap)
    } else if expired() {
        Some(StoppedBy::Deadline)
    } else {
        None
    };

    if stopped.is_none() {
        // Small demands aim at the proof, so they do not stop at the gap.
        let limits = lp::Limits {
            deadline: deadline.map(|d| start + (d - start).mul_f64(COLUMN_SHARE)),
            incumbent: best.cost,
            gap: if small { 0.0 } else { opts.gap },
            // Small demands want the LP optimum: its duals keep the enumeration short
            // (not when only the bound was asked for: the usual tolerance then).
            master_tolerance: (small && opts.integer_step).then_some(1e-6),
        };
        let mut cg_opts = opts.clone();
        cg_opts.prove_bound |= small;
        // Seeds: the greedy's nodes and every pattern of its passes, then the columns of
        // earlier plans (`Columns`).
        let mut seed = best.nodes.clone();
        seed.extend_from_slice(&greedy_patterns);
        seed.extend_from_slice(cached);
        let cg = lp::column_generation(sp, &cg_opts, &demand, &seed, limits);
        // The columns kept for later plans leave out the greedy's extra patterns: the
        // greedy makes them again in milliseconds, and the cache (`Columns`) is for what
        // pricing found.
        let kept: HashSet<&Pattern> = best.nodes.iter().chain(cached).collect();
        let extra: HashSet<&Pattern> = greedy_patterns
            .iter()
            .filter(|p| !kept.contains(p))
            .collect();
        columns = cg
            .patterns
            .iter()
            .filter(|p| !extra.contains(p))
            .cloned()
            .collect();
        stats.rounds = cg.rounds;
        stats.columns = cg.patterns.len();
        stats.lp_value = cg.lp_value;
        stats.converged = cg.converged;
        if cg.lower_bound >= bound {
            bound = cg.lower_bound;
            kind = if cg.converged {
                BoundKind::Lp
            } else {
                BoundKind::Farley
            };
        }
        let mut proven = best.cost <= bound + 1e-9;
        let integer = opts.integer_step;
        if integer && small && !proven && !expired() {
            // A better plan first: it shrinks the allowance, hence the enumeration.
            best.offer(sp, dive(sp, &cg.patterns, &demand, opts, deadline));
            proven = best.cost <= bound + 1e-9;
        }
        if integer && small && !proven && !expired() {
            let y = cg.feasible_duals(&demand);
            let allowance = best.cost - cg.lower_bound.max(0.0);
            if let Some(patterns) = exact::enumerate(sp, &demand, &y, allowance, deadline)
                && let Some((nodes, optimal)) = exact::integer_master(
                    sp,
                    &patterns,
                    &demand,
                    &best.nodes,
                    EXACT_NODES,
                    deadline,
                )
            {
                best.offer(sp, nodes);
                if optimal {
                    proven = true;
                }
            }
        } else if integer && !small && !within(best.cost, bound) && !expired() {
            best.offer(sp, dive(sp, &cg.patterns, &demand, opts, deadline));
            if !within(best.cost, bound)
                && !expired()
                && let Some((nodes, _)) = exact::integer_master(
                    sp,
                    &cg.patterns,
                    &demand,
                    &best.nodes,
                    MASTER_NODES,
                    deadline,
                )
            {
                best.offer(sp, nodes);
            }
        }
        proven |= best.cost <= bound + 1e-9;
        if proven {
            bound = best.cost;
            kind = BoundKind::Optimal;
        }
        stopped = Some(if proven {
            StoppedBy::Optimal
        } else if within(best.cost, bound) {
            StoppedBy::Gap
        } else if expired() || cg.timed_out {
            StoppedBy::Deadline
        } else {
            StoppedBy::Exhausted
        });
    }
    let stopped = stopped.unwrap_or(StoppedBy::Exhausted);
    if stopped == StoppedBy::Optimal {
        bound = best.cost;
        kind = BoundKind::Optimal;
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
