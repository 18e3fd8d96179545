//! The lower bound: the planner's proven bound on the hourly cost of the pods present,
//! re-evaluated whenever that set changes and integrated over the replay.

use std::collections::BTreeSet;

use super::cluster::window;
use crate::model::{Catalog, DemandItem};
use crate::planner;
use crate::sim::{SimConfig, Workload};

/// (USD integrated from the first arrival to the end, `(t, USD/h)` at every sample).
/// `progress(done)` counts workload events applied.
pub(super) fn lower_bound(
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
