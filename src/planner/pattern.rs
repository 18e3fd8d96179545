//! Node patterns, the currency every planning method trades in: a configuration (kind ×
//! replicas per GPU) and how many pods of each class it holds. Shared by the greedy cover,
//! column generation and the exact solver, and turned into [`PlannedNode`]s here, once.

use std::collections::HashMap;

use super::space::{Config, Space};
use super::{Packing, PlannedNode, SolverStats, Unplaced, UnplacedReason};
use crate::model::slice::SliceNeed;
use crate::model::{CapacityType, Catalog, DemandItem, Pool, SharingChoice};

const EPS: f64 = 1e-9;

/// A node pattern: a configuration and how many pods of each class it holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Pattern {
    pub(crate) config: usize,
    /// (class, count > 0), sorted by class.
    pub(crate) counts: Vec<(usize, u32)>,
}

/// What one pod of class `c` takes: cpu (milli), memory (bytes), a pod slot, GPU slices.
pub(crate) fn weights(sp: &Space, c: usize) -> [u64; 4] {
    let cl = &sp.classes[c];
    [cl.cpu, cl.mem, 1, u64::from(cl.gpus)]
}

/// Whether `counts` fit on an empty node of configuration `cfg`.
pub(crate) fn fits(sp: &Space, cfg: &Config, counts: &[(usize, u32)]) -> bool {
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

/// Pods per class.
pub(crate) fn class_demand(sp: &Space) -> Vec<u32> {
    sp.classes
        .iter()
        .map(|c| u32::try_from(c.items.len()).unwrap_or(u32::MAX))
        .collect()
}

/// Hourly price of a set of nodes.
pub(crate) fn cost(sp: &Space, nodes: &[Pattern]) -> f64 {
    nodes.iter().map(|p| sp.configs[p.config].price).sum()
}

/// The cheapest node per pod holding only class `c` (at most `limit` of them).
pub(crate) fn homogeneous(sp: &Space, c: usize, limit: u32) -> Option<Pattern> {
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

/// The pattern cut down to what `residual` still needs; `None` when nothing is left.
pub(crate) fn trim(p: &Pattern, residual: &[u32]) -> Option<Pattern> {
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

/// [`trim`], and the pods it holds taken off `residual`.
pub(crate) fn take(p: &Pattern, residual: &mut [u32]) -> Option<Pattern> {
    let t = trim(p, residual)?;
    for &(c, n) in &t.counts {
        residual[c] -= n;
    }
    Some(t)
}

/// Covers whatever `residual` still needs with homogeneous nodes (always valid).
pub(crate) fn cover_homogeneous(sp: &Space, residual: &mut [u32], chosen: &mut Vec<Pattern>) {
    for c in 0..residual.len() {
        while residual[c] > 0 {
            match homogeneous(sp, c, residual[c]) {
                Some(h) => chosen.extend(take(&h, residual)),
                None => residual[c] = 0,
            }
        }
    }
}

/// Moves every node to the cheapest configuration that holds the same pods (the first in
/// configuration order among equally cheap ones). Plans repeat patterns by the thousand
/// (100,000 pods: ~34,000 nodes), so each distinct pattern is looked up once, and only
/// configurations cheaper than its own are tried, cheapest first.
pub(crate) fn downsize(sp: &Space, nodes: &mut [Pattern]) {
    let mut by_price: Vec<usize> = (0..sp.configs.len()).collect();
    by_price.sort_by(|&a, &b| {
        sp.configs[a]
            .price
            .total_cmp(&sp.configs[b].price)
            .then(a.cmp(&b))
    });
    let mut memo: HashMap<Pattern, usize> = HashMap::new();
    for n in nodes.iter_mut() {
        if let Some(&to) = memo.get(n) {
            n.config = to;
            continue;
        }
        let own = sp.configs[n.config].price;
        let to = by_price
            .iter()
            .copied()
            .take_while(|&qi| sp.configs[qi].price < own - EPS)
            .find(|&qi| fits(sp, &sp.configs[qi], &n.counts))
            .unwrap_or(n.config);
        memo.insert(n.clone(), to);
        n.config = to;
    }
}

/// Turns chosen patterns into nodes with concrete pods (deterministic order), and reports
/// any pod left without one (never silently dropped).
pub(crate) fn into_packing(
    sp: &Space,
    catalog: &Catalog,
    items: &[DemandItem],
    pools: &[Pool],
    mut chosen: Vec<Pattern>,
    lower_bound: f64,
    stats: SolverStats,
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
    // Borrowed keys: a plan of 100,000 pods has ~34,000 nodes to order.
    /// Pool, type name, capacity type, zone, counts.
    type Key<'a> = (
        usize,
        &'a str,
        CapacityType,
        &'a Option<String>,
        &'a [(usize, u32)],
    );
    fn key<'a>(sp: &'a Space, catalog: &'a Catalog, p: &'a Pattern) -> Key<'a> {
        let q = &sp.configs[p.config];
        let k = &sp.kinds[q.kind];
        (
            k.pool,
            catalog.types[k.ty].name.as_str(),
            k.ct,
            &k.zone,
            p.counts.as_slice(),
        )
    }
    chosen.sort_by(|a, b| key(sp, catalog, a).cmp(&key(sp, catalog, b)));
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
        // An `auto` pool runs MPS only where a pod needs it: where the same slice under
        // time-slicing fits every pod of the node (`model::slice`), it is time-sliced. An
        // isolated pod needs MPS; under the throughput reading, so does a share only
        // MPS's throughput gives.
        let ts = k.slice_shared(r, false);
        let all_fit_ts = p.counts.iter().all(|&(c, _)| {
            sp.classes[c]
                .items
                .first()
                .is_none_or(|&i| SliceNeed::of(&items[i], k.rules).fits(&ts))
        });
        let slice = if k.mps && all_fit_ts && pools[k.pool].sharing_strategy == SharingChoice::Auto
        {
            ts
        } else {
            k.slice(r)
        };
        nodes.push(PlannedNode {
            instance_type: t.name.clone(),
            capacity_type: k.ct,
            gpus: t.gpu_count,
            gpu_model: t.gpu_name.clone(),
            gpu_memory_mib: t.gpu_memory_mib,
            replicas_per_gpu: r,
            slice_gpu_memory_mib: slice.gpu_memory_mib,
            slice_share_milli: slice.share_milli,
            slice_throughput_milli: slice.throughput_milli,
            sharing: slice.sharing.as_str().to_string(),
            profile: slice.profile(),
            hourly_price: k.price,
            pods,
            node_pool: pools[k.pool].name.clone(),
            zone: k.zone.clone(),
            spot_hourly_price: k.spot_price,
        });
    }
    for (c, cl) in sp.classes.iter().enumerate() {
        for &i in &cl.items[next[c].min(cl.items.len())..] {
            unplaced.push(Unplaced {
                pod: items[i].id.clone(),
                reason: UnplacedReason::NotCovered,
            });
        }
    }
    Packing {
        nodes,
        unplaced,
        lower_bound,
        stats,
        columns: Vec::new(),
    }
}

/// Upper bound on `Σ y_c x_c` over the patterns of configuration `qi` with at most
/// `limit[c]` pods of class `c`: the smallest of the four single-dimension fractional
/// bounded knapsacks. Microseconds; at column generation's duals it certifies most
/// configurations without a search.
pub(crate) fn fractional_bound(sp: &Space, qi: usize, y: &[f64], limit: &[u32]) -> f64 {
    let q = &sp.configs[qi];
    let mut best = f64::INFINITY;
    let mut items: Vec<(f64, u64, u32, f64)> = Vec::with_capacity(q.eligible.len());
    for d in 0..4 {
        items.clear();
        items.extend(
            q.eligible
                .iter()
                .filter(|&&(c, _)| y[c] > 0.0 && limit[c] > 0)
                .map(|&(c, max)| {
                    let wd = weights(sp, c)[d];
                    let ratio = if wd == 0 {
                        f64::INFINITY
                    } else {
                        y[c] / wd as f64
                    };
                    (ratio, wd, max.min(limit[c]), y[c])
                }),
        );
        items.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut left = q.cap[d] as f64;
        let mut v = 0.0;
        for &(_, wd, max, yc) in &items {
            if wd == 0 {
                v += yc * f64::from(max);
                continue;
            }
            let n = (left / wd as f64).min(f64::from(max));
            if n <= 0.0 {
                break;
            }
            v += yc * n;
            left -= n * wd as f64;
        }
        best = best.min(v);
    }
    best
}

/// A configuration's greedy fill: its value and (class, count) pairs.
pub(crate) type Fill = (f64, Vec<(usize, u32)>);

/// Share of the configuration's tightest dimension one pod of class `c` takes.
fn bottleneck(sp: &Space, cap: &[u64; 4], c: usize) -> f64 {
    let wt = weights(sp, c);
    (0..4)
        .map(|d| {
            if wt[d] == 0 {
                0.0
            } else if cap[d] == 0 {
                f64::INFINITY
            } else {
                wt[d] as f64 / cap[d] as f64
            }
        })
        .fold(0.0, f64::max)
}

/// Greedy fill of configuration `qi` with the remaining demand: (value, counts).
pub(crate) fn fill(sp: &Space, qi: usize, w: &[f64], remaining: &[u32]) -> Fill {
    let q = &sp.configs[qi];
    let mut order: Vec<(f64, usize, u32)> = q
        .eligible
        .iter()
        .filter(|&&(c, _)| remaining[c] > 0 && w[c] > 0.0)
        .map(|&(c, max)| {
            let b = bottleneck(sp, &q.cap, c);
            let density = if b > 0.0 { w[c] / b } else { f64::INFINITY };
            (density, c, max.min(remaining[c]))
        })
        .collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut left = q.cap;
    let mut value = 0.0;
    let mut counts = Vec::new();
    for (_, c, max) in order {
        let wt = weights(sp, c);
        let mut n = u64::from(max);
        for d in 0..4 {
            if let Some(fit) = left[d].checked_div(wt[d]) {
                n = n.min(fit);
            }
        }
        if n == 0 {
            continue;
        }
        for d in 0..4 {
            left[d] -= wt[d] * n;
        }
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        value += w[c] * f64::from(n);
        counts.push((c, n));
    }
    counts.sort_unstable();
    (value, counts)
}
