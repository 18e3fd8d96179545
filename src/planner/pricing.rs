//! Pricing: for one configuration and weights `y`, the node patterns worth more than its
//! price, and a proven upper bound on what any pattern is worth (for the Farley bound).
//!
//! Cheapest test first: the one-dimension fractional bound settles most configurations in
//! microseconds. Then the knapsack over the classes that are not dominated (a class is
//! skipped when another is worth no less, weighs no more and is not scarcer:
//! `knapsack::undominated`; on the trace's 4- and 8-GPU shapes this halves the classes
//! and cuts the exact search 4–10×), searched by:
//! - the slice-exact branch and bound (`knapsack::solve_slices`) where the node has few
//!   GPU slices, or always when proving, and the dynamic programme with dominance
//!   (`knapsack::solve_dp`) where that search did not close and slices are few;
//! - the surrogate branch and bound (`knapsack::solve_with`) elsewhere;
//! - microlp's branch and bound as a last resort in the final, proving pass.
//!
//! Many columns a round: besides the best patterns, every class not in the best one is
//! given a greedy completion around it ("anchored" columns). In a Python/HiGHS prototype
//! on 10,000 trace pods, exact anchored columns cut column generation from ~208 rounds
//! to ~35; the greedy completions here cost microseconds and keep most of that.

use std::time::Instant;

use super::knapsack::{self, Item};
use super::pattern::{fractional_bound, weights};
use super::space::Space;

/// Relative tolerance of pricing: a pattern is only searched for where it could beat
/// its configuration's price by more than this (the bound gives up at most as much).
pub(crate) const TOLERANCE: f64 = 0.003;
/// Configurations with at most this many GPU slices are searched slice-exactly and by
/// dynamic programming even while only generating columns.
const FEW_SLICES: u64 = 16;
/// Search nodes of the slice-exact search while generating columns, at depth 1 ...
const SLICE_NODES: usize = 2_000;
/// ... and when proving the bound.
const SLICE_NODES_EXACT: usize = 1_000_000;
/// Partial packings the dynamic programme keeps alive when proving the bound.
const DP_STATES: usize = 50_000;
/// ... and while generating columns (10,000 trace pods, gap at a 1 s / 3 s deadline:
/// 1,000 states 3.0 / 2.0 %, 300 2.7 / 1.6 %, 100 2.6 / 1.5 %, 30 2.7 / 1.7 %: a narrow
/// beam finds columns nearly as good in a fraction of the time, so more rounds fit).
const DP_BEAM: usize = 100;
/// Branch-and-bound nodes for the MILP fallback of one pricing problem.
const MIP_NODES: u64 = 2_000;

/// How one pricing call searches: search nodes of the surrogate branch and bound, how
/// much wider than at first the cheap searches go (`depth` ≥ 1: column generation widens
/// them as it converges), the full searches (to prove), the MILP fallback, and when the
/// searches must stop (their bounds then cover the rest).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Search<'a> {
    pub(crate) nodes: usize,
    pub(crate) depth: usize,
    /// Multipliers kept across rounds, and the round this is.
    pub(crate) multipliers: Option<(&'a Multipliers, usize)>,
    pub(crate) exact: bool,
    pub(crate) mip: bool,
    pub(crate) deadline: Option<Instant>,
}

/// The knapsack LP's multipliers per configuration, kept across rounds: they cost
/// ~0.2 ms a configuration (a third of a cheap round's pricing on 10,000 trace pods) and
/// move little from one round to the next. Any multipliers keep the searches' bounds
/// valid; stale ones only make them looser, so they are recomputed every
/// [`REUSE_ROUNDS`] rounds, and always when proving.
#[derive(Debug, Default)]
pub(crate) struct Multipliers(Vec<std::sync::Mutex<Option<Kept>>>);

/// Multipliers and the round they were computed in.
type Kept = (usize, [f64; 4]);

/// Rounds a configuration's multipliers are reused for.
const REUSE_ROUNDS: usize = 8;

impl Multipliers {
    pub(crate) fn new(configs: usize) -> Multipliers {
        Multipliers((0..configs).map(|_| std::sync::Mutex::new(None)).collect())
    }

    fn get(
        &self,
        qi: usize,
        round: usize,
        fresh: bool,
        compute: impl FnOnce() -> Option<[f64; 4]>,
    ) -> Option<[f64; 4]> {
        let Some(slot) = self.0.get(qi) else {
            return compute();
        };
        // A poisoned slot only means another pricing thread panicked (a bug, re-raised
        // by `price_all`): its value is still a valid vector of multipliers.
        let mut slot = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !fresh
            && let Some((at, l)) = *slot
            && round < at + REUSE_ROUNDS
        {
            return Some(l);
        }
        let l = compute();
        if let Some(l) = l {
            *slot = Some((round, l));
        }
        l
    }
}

/// A pattern found by pricing: its value under the pricing weights and its counts.
pub(crate) type Found = (f64, Vec<(usize, u32)>);

/// Pricing of configuration `cfg_idx` under weights `y` with at most `limit[c]` pods of
/// each class: the proven upper bound on any pattern's value, and the best patterns found
/// (value, counts), best first, then the anchored ones.
pub(crate) fn price(
    sp: &Space,
    cfg_idx: usize,
    y: &[f64],
    limit: &[u32],
    search: Search,
) -> (f64, Vec<Found>) {
    let Search {
        nodes,
        depth,
        multipliers,
        exact,
        mip,
        deadline,
    } = search;
    let depth = depth.max(1);
    let nodes = nodes * depth;
    let cfg = &sp.configs[cfg_idx];
    let quick = fractional_bound(sp, cfg_idx, y, limit);
    if quick <= cfg.price * (1.0 + TOLERANCE) {
        return (quick, Vec::new());
    }
    let mut items: Vec<Item> = cfg
        .eligible
        .iter()
        .map(|&(c, max)| Item {
            value: y[c],
            weight: weights(sp, c),
            max_count: max.min(limit[c]),
        })
        .collect();
    let keep = knapsack::undominated(&items, cfg.cap);
    for (it, keep) in items.iter_mut().zip(keep) {
        if !keep {
            it.max_count = 0;
        }
    }
    let few_slices = cfg.cap[3] <= FEW_SLICES;
    // The LP multipliers cost ~0.2 ms: only where a Lagrangian search uses them.
    let lambda = if few_slices || exact {
        let compute = || knapsack::lp_multipliers(&items, cfg.cap).map(|(l, _)| l);
        match multipliers {
            Some((m, round)) => m.get(cfg_idx, round, exact, compute),
            None => compute(),
        }
    } else {
        None
    };
    // Subtrees that cannot beat the price by more than the tolerance are not searched:
    // column generation is then ε-optimal and the bound loses at most ε.
    let target = cfg.price * (1.0 + TOLERANCE);
    let closed = |s: &knapsack::Solution| s.upper_bound <= s.value.max(target) * (1.0 + 1e-9);
    let mut s: Option<knapsack::Solution> = None;
    if few_slices || exact {
        let budget = if exact && few_slices {
            SLICE_NODES_EXACT
        } else {
            SLICE_NODES * depth
        };
        s = knapsack::solve_slices(
            &items,
            cfg.cap,
            lambda.unwrap_or([0.0; 4]),
            target,
            budget,
            deadline,
        );
    }
    if s.as_ref().is_none_or(|s| !closed(s)) {
        let other = match lambda {
            Some(l) if few_slices => {
                let states = if exact {
                    DP_STATES
                } else {
                    (DP_BEAM * depth).min(DP_STATES)
                };
                knapsack::solve_dp(&items, cfg.cap, l, target, states, deadline)
            }
            _ => knapsack::solve_with(&items, cfg.cap, nodes, lambda, target),
        };
        s = Some(match s {
            Some(a) => merge(a, other),
            None => other,
        });
    }
    // One of the searches above always ran.
    let Some(mut s) = s else {
        return (quick, Vec::new());
    };
    if mip
        && !closed(&s)
        && let Some(m) = knapsack::solve_mip(&items, cfg.cap, MIP_NODES, TOLERANCE)
    {
        s = merge(s, m);
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
    if s.value > cfg.price * (1.0 + 1e-7) {
        found.extend(
            anchored(&items, cfg.cap, &s.counts)
                .into_iter()
                .filter(|(v, _)| *v > cfg.price * (1.0 + 1e-7))
                .map(|(v, c)| (v, sparse(&c))),
        );
    }
    (s.upper_bound.min(quick), found)
}

/// Two searches of the same problem: the better packing, the tighter bound, and the
/// other packings kept as alternatives.
fn merge(a: knapsack::Solution, b: knapsack::Solution) -> knapsack::Solution {
    let (mut hi, lo) = if b.value > a.value { (b, a) } else { (a, b) };
    hi.upper_bound = hi.upper_bound.min(lo.upper_bound).max(hi.value);
    if lo.value > 0.0 && lo.counts != hi.counts {
        hi.alternatives.push((lo.value, lo.counts));
    }
    hi.alternatives.extend(lo.alternatives);
    hi.alternatives.sort_by(|x, y| y.0.total_cmp(&x.0));
    hi.alternatives.dedup_by(|x, y| x.1 == y.1);
    hi.nodes += lo.nodes;
    hi
}

/// A greedy completion around every item the best packing `best` leaves out: one copy
/// of it, then every item as often as it still fits, by value per share of the node's
/// tightest dimension. Returns (value, counts) for each.
fn anchored(items: &[Item], cap: [u64; 4], best: &[u32]) -> Vec<(f64, Vec<u32>)> {
    let share = |it: &Item| -> f64 {
        (0..4)
            .filter(|&d| it.weight[d] > 0)
            .map(|d| it.weight[d] as f64 / cap[d].max(1) as f64)
            .fold(0.0, f64::max)
    };
    let mut order: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].value > 0.0 && items[i].max_count > 0)
        .collect();
    order.sort_by(|&a, &b| {
        (items[b].value / share(&items[b]).max(1e-12))
            .total_cmp(&(items[a].value / share(&items[a]).max(1e-12)))
            .then(a.cmp(&b))
    });
    let put = |j: usize, n: u32, rem: &mut [u64; 4], counts: &mut [u32]| -> u32 {
        let w = items[j].weight;
        let mut k = n.min(items[j].max_count - counts[j]);
        for (r, wd) in rem.iter().zip(&w) {
            if let Some(m) = r.checked_div(*wd) {
                k = k.min(u32::try_from(m).unwrap_or(u32::MAX));
            }
        }
        for d in 0..4 {
            rem[d] -= w[d] * u64::from(k);
        }
        counts[j] += k;
        k
    };
    let mut out = Vec::new();
    for &i in &order {
        if best.get(i).is_some_and(|&n| n > 0) {
            continue;
        }
        let mut rem = cap;
        let mut counts = vec![0u32; items.len()];
        if put(i, 1, &mut rem, &mut counts) == 0 {
            continue;
        }
        let mut value = items[i].value;
        for &j in &order {
            value += items[j].value * f64::from(put(j, u32::MAX, &mut rem, &mut counts));
        }
        out.push((value, counts));
    }
    out
}

/// Prices the configurations `todo` with up to `threads` scoped threads (configurations
/// dealt round-robin); results come back in the order of `todo`, so the outcome does not
/// depend on the number of threads.
pub(crate) fn price_all<F>(todo: &[usize], threads: usize, f: F) -> Vec<(f64, Vec<Found>)>
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchored_completions_fit_and_hold_their_anchor() {
        let items = vec![
            Item {
                value: 5.0,
                weight: [4, 4, 1, 1],
                max_count: 3,
            },
            Item {
                value: 3.0,
                weight: [2, 5, 1, 1],
                max_count: 3,
            },
            Item {
                value: 2.0,
                weight: [1, 1, 1, 1],
                max_count: 3,
            },
        ];
        let cap = [8, 10, 4, 4];
        let best = [2, 0, 0];
        let out = anchored(&items, cap, &best);
        // Items 1 and 2 are left out of the best packing: one completion each.
        assert_eq!(out.len(), 2);
        for (v, counts) in &out {
            for (d, c) in cap.iter().enumerate() {
                let used: u64 = items
                    .iter()
                    .zip(counts)
                    .map(|(it, n)| it.weight[d] * u64::from(*n))
                    .sum();
                assert!(used <= *c);
            }
            let value: f64 = items
                .iter()
                .zip(counts)
                .map(|(it, n)| it.value * f64::from(*n))
                .sum();
            assert!((value - v).abs() < 1e-12);
        }
        assert!(out[0].1[1] >= 1 || out[0].1[2] >= 1);
        assert!(out.iter().any(|(_, c)| c[1] >= 1) && out.iter().any(|(_, c)| c[2] >= 1));
    }

    #[test]
    fn merged_searches_keep_the_better_packing_and_the_tighter_bound() {
        let solution = |value: f64, counts: Vec<u32>, upper_bound: f64, nodes| knapsack::Solution {
            value,
            counts,
            upper_bound,
            nodes,
            alternatives: vec![],
        };
        let a = solution(3.0, vec![1, 0], 5.0, 1);
        let b = solution(4.0, vec![0, 1], 6.0, 2);
        let m = merge(a, b);
        assert_eq!(m.value, 4.0);
        assert_eq!(m.upper_bound, 5.0);
        assert_eq!(m.alternatives, vec![(3.0, vec![1, 0])]);
    }
}
