//! The floors (pure): the windowed full-effort LP bound (the floor every strategy is
//! measured against) and the weak floor (the fast effort's bound at every change of the
//! pods present). See `engine`'s module docs, "Floor", for why both are valid.

use std::collections::{BTreeSet, HashMap};

use super::cluster::window;
use crate::model::{Catalog, DemandItem};
use crate::planner::{self, Effort};
use crate::sim::{SimConfig, Workload};

/// The windows of the floor: `(start, end)` from the first arrival, `floor_window_s`
/// long (the last one may be shorter), covering the replay up to its end.
pub(super) fn windows(workload: &Workload, cfg: &SimConfig) -> Vec<(u64, u64)> {
    let (t0, t_end) = window(workload, cfg);
    let w = cfg.floor_window_s.max(1);
    let mut out = Vec::new();
    let mut s = t0;
    while s < t_end {
        let e = s.saturating_add(w).min(t_end);
        out.push((s, e));
        s = e;
    }
    out
}

/// The floor: for each window, the full effort's proven LP bound (USD/h; or the fast
/// effort's, if higher) on the pods present throughout it (arrived at or before its start, leaving at or after its end),
/// times its length; summed. Returns (USD, `(window start, USD/h)` per window).
/// Windows with the same pods (as demand, names aside) are solved once, on
/// `cfg.floor_threads` threads. `progress(done)` counts windows (in proportion to the
/// distinct sets solved).
pub(super) fn floor(
    catalog: &Catalog,
    workload: &Workload,
    cfg: &SimConfig,
    progress: &mut dyn FnMut(usize),
) -> (f64, Vec<(u64, f64)>) {
    let mut fast = cfg.planner_options();
    fast.effort = Effort::Fast;
    let mut full = cfg.planner_options();
    full.effort = Effort::Full;
    full.prove_bound = true;
    // The floor wants the tightest bound the LP proves, the same on every machine: no
    // stop at a gap, no deadline.
    full.gap = 0.0;
    full.deadline = None;
    full.integer_step = false;
    let (_, t_end) = window(workload, cfg);
    // Each job's demand class: equal demands (names aside) share a class, so windows
    // with the same multiset of classes share one planner call.
    let mut class_of: HashMap<String, u32> = HashMap::new();
    let classes: Vec<u32> = workload
        .jobs
        .iter()
        .map(|j| {
            let mut it = j.item.clone();
            it.id.clear();
            // DemandItem is plain data; serialising it cannot fail, and if it ever did
            // the job would only get a class of its own.
            let key = serde_json::to_string(&it).unwrap_or_else(|_| j.item.id.clone());
            let next = u32::try_from(class_of.len()).unwrap_or(u32::MAX);
            *class_of.entry(key).or_insert(next)
        })
        .collect();
    let spans: Vec<(u64, u64)> = workload
        .jobs
        .iter()
        .map(|j| (j.arrival, j.departure.unwrap_or(t_end).min(t_end)))
        .collect();
    let mut order: Vec<usize> = (0..spans.len())
        .filter(|&i| spans[i].1 > spans[i].0)
        .collect();
    order.sort_by_key(|&i| (spans[i].0, i));
    // Pass 1: each window's key (the sorted classes of the pods present throughout it)
    // and, per distinct key, the jobs of its first window.
    let mut key_of: HashMap<Vec<u32>, usize> = HashMap::new();
    let mut sets: Vec<Vec<usize>> = Vec::new();
    let mut window_set: Vec<Option<usize>> = Vec::new();
    let wins = windows(workload, cfg);
    let mut active: Vec<usize> = Vec::new();
    let mut next = 0;
    for &(s, e) in &wins {
        while next < order.len() && spans[order[next]].0 <= s {
            active.push(order[next]);
            next += 1;
        }
        active.retain(|&i| spans[i].1 > s);
        let present: Vec<usize> = active
            .iter()
            .copied()
            .filter(|&i| spans[i].1 >= e)
            .collect();
        if present.is_empty() {
            window_set.push(None);
            continue;
        }
        let mut key: Vec<u32> = present.iter().map(|&i| classes[i]).collect();
        key.sort_unstable();
        let id = *key_of.entry(key).or_insert_with(|| {
            sets.push(present);
            sets.len() - 1
        });
        window_set.push(Some(id));
    }
    // Pass 2: one bound per distinct set, on `floor_threads` threads (each set's bound
    // is independent of the others, so the result does not depend on the count).
    let bound_of = |set: &[usize]| {
        let items: Vec<DemandItem> = set.iter().map(|&i| workload.jobs[i].item.clone()).collect();
        // Both bounds hold for the same pods, so their maximum does: the LP bound is
        // usually far stronger, but on a few pods the greedy's bound can be a hair above
        // the LP's proven (rounded) one.
        let bound = |o| {
            planner::plan(catalog, &items, o)
                .summary
                .lower_bound_hourly_cost
        };
        bound(&full).max(bound(&fast))
    };
    let threads = cfg.floor_threads.clamp(1, 64);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let mut rates = vec![0.0; sets.len()];
    // Progress in windows: the share of the distinct sets solved, each value once.
    let mut last = 0;
    let mut step = |solved: usize| {
        let w = solved * wins.len() / sets.len().max(1);
        if w > last {
            last = w;
            progress(w);
        }
    };
    if threads == 1 || sets.len() < 2 {
        for (i, set) in sets.iter().enumerate() {
            rates[i] = bound_of(set);
            step(i + 1);
        }
    } else {
        let chunks: Vec<Vec<(usize, f64)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (sets, bound_of, done) = (&sets, &bound_of, &done);
                    scope.spawn(move || {
                        let mut out = Vec::new();
                        for i in (t..sets.len()).step_by(threads) {
                            out.push((i, bound_of(&sets[i])));
                            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        out
                    })
                })
                .collect();
            // A worker that panicked has already failed the replay's invariant; its
            // sets keep the trivial bound 0, which is still a valid floor.
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        for (i, r) in chunks.into_iter().flatten() {
            rates[i] = r;
        }
        step(done.into_inner());
    }
    if last < wins.len() {
        progress(wins.len());
    }
    let mut total = 0.0;
    let mut series = Vec::with_capacity(wins.len());
    for (&(s, e), set) in wins.iter().zip(&window_set) {
        let rate = set.map_or(0.0, |i| rates[i]);
        total += rate * (e - s) as f64 / 3600.0;
        series.push((s, rate));
    }
    (total, series)
}

/// The weak floor: (USD integrated from the first arrival to the end, `(t, USD/h)` at
/// every sample). `progress(done)` counts workload events applied.
pub(super) fn weak_floor(
    catalog: &Catalog,
    workload: &Workload,
    cfg: &SimConfig,
    progress: &mut dyn FnMut(usize),
) -> (f64, Vec<(u64, f64)>) {
    let mut opts = cfg.planner_options();
    opts.effort = Effort::Fast;
    let (t0, t_end) = window(workload, cfg);
    // (time, 0 = departure / 1 = arrival, job): departures first within a second.
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(workload.jobs.len() * 2);
    for (i, j) in workload.jobs.iter().enumerate() {
        let dep = j.departure.unwrap_or(t_end).min(t_end);
        if dep > j.arrival {
            events.push((j.arrival, 1, i));
            events.push((dep, 0, i));
        }
    }
    events.sort_unstable();
    let skipped = super::cluster::workload_events(workload).saturating_sub(events.len());
    let mut done = skipped;
    // Piecewise-constant rate: (from, USD/h).
    let mut steps: Vec<(u64, f64)> = vec![(t0, 0.0)];
    let mut present: BTreeSet<usize> = BTreeSet::new();
    let mut i = 0;
    while i < events.len() {
        let t = events[i].0;
        while i < events.len() && events[i].0 == t {
            let (_, kind, job) = events[i];
            if kind == 1 {
                present.insert(job);
            } else {
                present.remove(&job);
            }
            i += 1;
            done += 1;
            progress(done);
        }
        let rate = if present.is_empty() {
            0.0
        } else {
            let items: Vec<DemandItem> = present
                .iter()
                .map(|&j| workload.jobs[j].item.clone())
                .collect();
            planner::plan(catalog, &items, &opts)
                .summary
                .lower_bound_hourly_cost
        };
        steps.push((t, rate));
    }
    let mut total = 0.0;
    for (k, &(from, rate)) in steps.iter().enumerate() {
        let to = steps.get(k + 1).map_or(t_end, |s| s.0).min(t_end);
        total += rate * to.saturating_sub(from) as f64 / 3600.0;
    }
    let mut series = Vec::new();
    if cfg.sample_every_s > 0 && !workload.jobs.is_empty() {
        let mut k = 0;
        let mut t = t0;
        while t <= t_end {
            while k + 1 < steps.len() && steps[k + 1].0 <= t {
                k += 1;
            }
            series.push((t, steps[k].1));
            t = match t.checked_add(cfg.sample_every_s) {
                Some(next) => next,
                None => break,
            };
        }
    }
    (total, series)
}
