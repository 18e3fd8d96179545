//! `gpu-slicer simulate --sweep KEY=V1,V2 …`: replays the workload once per combination
//! of the settings and prints, per combination, each strategy's cost over the floor and
//! rank (safe strategies first). Prints to stdout; writes nothing.
//!
//! Keys: durations `launch-delay`, `consolidate-after`, and gpu-slicer's
//! `repack-interval` and `repack-min-pod-age`; percentages (plain numbers, e.g. `2,5,10`)
//! `repack-min-saving` and `repack-budget`; the switch `repack-steer` (0, 1). The floors
//! depend on none of them (only the end of a replay whose jobs lack a departure depends
//! on the launch delay), so they are computed once per distinct end. The JSON rows also
//! carry each strategy's pending p50/p95, repack moves, rollbacks, restarts per day and
//! overlap node-hours.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use serde::Serialize;

use super::OutputFormat;
use crate::cli::{Failure, bad_input, parse_duration, usage};
use crate::model::Catalog;
use crate::sim::engine::{self, Floors};
use crate::sim::{SimConfig, Variant, Workload};

/// A setting a sweep may vary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    LaunchDelay,
    ConsolidateAfter,
    RepackInterval,
    RepackMinPodAge,
    RepackMinSaving,
    RepackBudget,
    RepackSteer,
}

impl Key {
    pub fn as_str(&self) -> &'static str {
        match self {
            Key::LaunchDelay => "launch-delay",
            Key::ConsolidateAfter => "consolidate-after",
            Key::RepackInterval => "repack-interval",
            Key::RepackMinPodAge => "repack-min-pod-age",
            Key::RepackMinSaving => "repack-min-saving",
            Key::RepackBudget => "repack-budget",
            Key::RepackSteer => "repack-steer",
        }
    }

    /// The unit its values are printed with.
    fn unit(&self) -> &'static str {
        match self {
            Key::RepackMinSaving | Key::RepackBudget => "%",
            Key::RepackSteer => "",
            _ => "s",
        }
    }

    /// Plain numbers (percentages, or 0/1 for a switch), not durations.
    fn is_percent(&self) -> bool {
        self.unit() != "s"
    }

    fn set(&self, cfg: &mut SimConfig, secs: u64) {
        match self {
            Key::LaunchDelay => cfg.launch_delay_s = secs,
            Key::ConsolidateAfter => cfg.consolidate_after_s = secs,
            Key::RepackInterval => cfg.repack_interval_s = secs,
            Key::RepackMinPodAge => cfg.repack_min_pod_age_s = secs,
            Key::RepackMinSaving => cfg.repack_min_saving = secs as f64 / 100.0,
            Key::RepackBudget => cfg.repack_budget_pct = u32::try_from(secs).unwrap_or(100),
            Key::RepackSteer => cfg.repack_steer = secs != 0,
        }
    }
}

/// Parses `--sweep` arguments (`KEY=V1,V2,…`, each key once).
pub fn parse(args: &[String]) -> Result<Vec<(Key, Vec<u64>)>, Failure> {
    let mut out: Vec<(Key, Vec<u64>)> = Vec::new();
    for a in args {
        let Some((k, vs)) = a.split_once('=') else {
            return Err(usage(format!(
                "--sweep: {a:?} is not KEY=V1,V2 (e.g. launch-delay=45s,90s)"
            )));
        };
        let key = match k.trim() {
            "launch-delay" => Key::LaunchDelay,
            "consolidate-after" => Key::ConsolidateAfter,
            "repack-interval" => Key::RepackInterval,
            "repack-min-pod-age" => Key::RepackMinPodAge,
            "repack-min-saving" => Key::RepackMinSaving,
            "repack-budget" => Key::RepackBudget,
            "repack-steer" => Key::RepackSteer,
            other => {
                return Err(usage(format!(
                    "--sweep: unknown key {other:?} (launch-delay, consolidate-after, repack-interval, repack-min-pod-age, repack-min-saving, repack-budget, repack-steer)"
                )));
            }
        };
        if out.iter().any(|(q, _)| *q == key) {
            return Err(usage(format!("--sweep: {} given twice", key.as_str())));
        }
        let mut values = Vec::new();
        for v in vs.split(',').map(str::trim).filter(|v| !v.is_empty()) {
            if key.is_percent() {
                let pct = v
                    .trim_end_matches('%')
                    .parse::<u64>()
                    .ok()
                    .filter(|p| *p <= 100)
                    .ok_or_else(|| {
                        usage(format!(
                            "--sweep {}: {v:?} is not a percentage from 0 to 100",
                            key.as_str()
                        ))
                    })?;
                values.push(pct);
                continue;
            }
            let d =
                parse_duration(v).map_err(|e| usage(format!("--sweep {}: {e}", key.as_str())))?;
            values.push(d.as_secs());
        }
        if values.is_empty() {
            return Err(usage(format!("--sweep {}: no values", key.as_str())));
        }
        out.push((key, values));
    }
    Ok(out)
}

/// Every combination of the values, the first key varying slowest.
pub fn combinations(sweep: &[(Key, Vec<u64>)]) -> Vec<Vec<(Key, u64)>> {
    let mut out: Vec<Vec<(Key, u64)>> = vec![Vec::new()];
    for (key, values) in sweep {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |&v| {
                    let mut c = prefix.clone();
                    c.push((*key, v));
                    c
                })
            })
            .collect();
    }
    out
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Cell {
    strategy: String,
    cost: f64,
    cost_over_floor: f64,
    rank: usize,
    safe: bool,
    share_violations: usize,
    memory_violations: usize,
    pending_p50_s: f64,
    pending_p95_s: f64,
    repack_moves: usize,
    repack_rollbacks: usize,
    restarts_per_day: f64,
    overlap_node_hours: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    settings: Vec<(String, u64)>,
    floor: f64,
    strategies: Vec<Cell>,
}

/// Runs the sweep and prints its table (or JSON/YAML rows).
pub fn run(
    catalog: &Catalog,
    workload: &Workload,
    variants: &[Variant],
    cfg: &SimConfig,
    sweep: &[(Key, Vec<u64>)],
    output: OutputFormat,
) -> Result<(), Failure> {
    let combos = combinations(sweep);
    let open_ended = workload.jobs.iter().any(|j| j.departure.is_none());
    let mut floors: HashMap<u64, Floors> = HashMap::new();
    let mut rows = Vec::new();
    let started = Instant::now();
    for (i, combo) in combos.iter().enumerate() {
        let mut c = cfg.clone();
        for (k, v) in combo {
            k.set(&mut c, *v);
        }
        eprintln!(
            "sweep {}/{}: {} ({:.0} s so far)",
            i + 1,
            combos.len(),
            describe(combo),
            started.elapsed().as_secs_f64()
        );
        let end_key = if open_ended { c.launch_delay_s } else { 0 };
        let f = floors
            .entry(end_key)
            .or_insert_with(|| engine::floors(catalog, workload, &c, &mut |_, _| {}));
        let report = engine::replay(catalog, workload, variants, &c, f, &mut |_, _| {});
        rows.push(Row {
            settings: combo
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
            floor: report.lower_bound_cost,
            strategies: report
                .strategies
                .iter()
                .map(|s| Cell {
                    strategy: s.strategy.clone(),
                    cost: s.cost,
                    cost_over_floor: s.cost_over_lower_bound,
                    rank: s.rank,
                    safe: s.safe,
                    share_violations: s.share_violations,
                    memory_violations: s.memory_violations,
                    pending_p50_s: s.pending_p50_s,
                    pending_p95_s: s.pending_p95_s,
                    repack_moves: s.repack_moves,
                    repack_rollbacks: s.repack_rollbacks,
                    restarts_per_day: s.restarts_per_day,
                    overlap_node_hours: s.overlap_node_hours,
                })
                .collect(),
        });
    }
    match output {
        OutputFormat::Table => print!("{}", table(workload, sweep, &rows)),
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(bad_input)?
        ),
        OutputFormat::Yaml => print!("{}", serde_saphyr::to_string(&rows).map_err(bad_input)?),
    }
    Ok(())
}

fn describe(combo: &[(Key, u64)]) -> String {
    combo
        .iter()
        .map(|(k, v)| format!("{}={v}{}", k.as_str(), k.unit()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn table(workload: &Workload, sweep: &[(Key, Vec<u64>)], rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: cost ÷ floor and rank (#1 best; safe strategies rank before unsafe ones, marked !)\n",
        workload.name
    );
    let mut head: Vec<String> = sweep
        .iter()
        .map(|(k, _)| k.as_str().to_uppercase())
        .collect();
    head.push("FLOOR $".into());
    if let Some(r) = rows.first() {
        head.extend(r.strategies.iter().map(|c| c.strategy.clone()));
    }
    let mut t = vec![head];
    for r in rows {
        let mut line: Vec<String> = r
            .settings
            .iter()
            .zip(sweep)
            .map(|((_, v), (k, _))| format!("{v}{}", k.unit()))
            .collect();
        line.push(format!("{:.0}", r.floor));
        line.extend(r.strategies.iter().map(|c| {
            format!(
                "{:.2} #{}{}",
                c.cost_over_floor,
                c.rank,
                if c.safe { "" } else { "!" }
            )
        }));
        t.push(line);
    }
    out.push_str(&crate::cli::output::table(&t));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_and_crosses_their_values() {
        let s = parse(&[
            "launch-delay=45s,90s".into(),
            "consolidate-after=0s,30s,5m".into(),
        ])
        .expect("parses");
        assert_eq!(s[1].1, vec![0, 30, 300]);
        let c = combinations(&s);
        assert_eq!(c.len(), 6);
        assert_eq!(
            c[0],
            vec![(Key::LaunchDelay, 45), (Key::ConsolidateAfter, 0)]
        );
        assert_eq!(
            c[5],
            vec![(Key::LaunchDelay, 90), (Key::ConsolidateAfter, 300)]
        );
        for bad in [
            "launch-delay",
            "speed=1s",
            "launch-delay=soon",
            "launch-delay=",
        ] {
            let e = parse(&[bad.into()]).expect_err(bad);
            assert_eq!(e.code, 2, "{bad}");
            assert!(e.message.starts_with("--sweep"), "{bad}: {}", e.message);
        }
        assert!(parse(&["launch-delay=1s".into(), "launch-delay=2s".into()]).is_err());
    }

    #[test]
    fn repack_keys_set_the_replay_and_take_percentages() {
        let s = parse(&[
            "repack-interval=0s,30m".into(),
            "repack-min-saving=2,5%".into(),
            "repack-budget=10,100".into(),
            "repack-min-pod-age=1m".into(),
        ])
        .expect("parses");
        assert_eq!(s[0].1, vec![0, 1800]);
        assert_eq!(s[1].1, vec![2, 5]);
        assert_eq!(s[2].1, vec![10, 100]);
        let mut cfg = SimConfig::default();
        for (k, v) in [
            (Key::RepackInterval, 1800),
            (Key::RepackMinSaving, 2),
            (Key::RepackBudget, 100),
            (Key::RepackMinPodAge, 60),
        ] {
            k.set(&mut cfg, v);
        }
        assert_eq!(cfg.repack_interval_s, 1800);
        assert!((cfg.repack_min_saving - 0.02).abs() < 1e-12);
        assert_eq!(cfg.repack_budget_pct, 100);
        assert_eq!(cfg.repack_min_pod_age_s, 60);
        assert_eq!(
            describe(&[(Key::RepackBudget, 50), (Key::RepackInterval, 600)]),
            "repack-budget=50% repack-interval=600s"
        );
        for bad in [
            "repack-budget=101",
            "repack-min-saving=5s",
            "repack-min-saving=-1",
        ] {
            let e = parse(&[bad.into()]).expect_err(bad);
            assert_eq!(e.code, 2, "{bad}");
        }
    }
}
