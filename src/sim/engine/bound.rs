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
/// Windows with the same pods (as demand, names aside) are solved once. `progress(done)`
/// counts windows.
pub(super) fn floor(
    catalog: &Catalog,
    workload: &Workload,
    cfg: &SimConfig,
    progress: &mut dyn FnMut(usize),
) -> (f64, Vec<(u64, f64)>) {
    let mut fast = cfg.plan.clone();
    fast.capacity_types = vec![cfg.capacity_type];
    fast.dedicated = false;
    fast.threads = 1;
    let mut full = fast.clone();
    full.effort = Effort::Full;
    full.prove_bound = true;
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
    let mut cache: HashMap<Vec<u32>, f64> = HashMap::new();
    let mut active: Vec<usize> = Vec::new();
    let mut next = 0;
    let mut total = 0.0;
    let mut series = Vec::new();
    for (k, (s, e)) in windows(workload, cfg).into_iter().enumerate() {
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
        let rate = if present.is_empty() {
            0.0
        } else {
            let mut key: Vec<u32> = present.iter().map(|&i| classes[i]).collect();
            key.sort_unstable();
            match cache.get(&key) {
                Some(&r) => r,
                None => {
                    let items: Vec<DemandItem> = present
                        .iter()
                        .map(|&i| workload.jobs[i].item.clone())
                        .collect();
                    // Both bounds hold for the same pods, so their maximum does: the LP
                    // bound is usually far stronger, but on a few pods the greedy's
                    // bound can be a hair above the LP's proven (rounded) one.
                    let bound = |o| {
                        planner::plan(catalog, &items, o)
                            .summary
                            .lower_bound_hourly_cost
                    };
                    let r = bound(&full).max(bound(&fast));
                    cache.insert(key, r);
                    r
                }
            }
        };
        total += rate * (e - s) as f64 / 3600.0;
        series.push((s, rate));
        progress(k + 1);
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
    let mut opts = cfg.plan.clone();
    opts.capacity_types = vec![cfg.capacity_type];
    opts.dedicated = false;
    opts.threads = 1;
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
