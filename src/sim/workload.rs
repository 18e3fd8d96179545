//! Workloads to replay, from text (pure: the caller reads the files).
//!
//! Three inputs:
//! - **The Alibaba GPU-sharing trace** (`openb_pod_list_*.csv`, see `crate::trace`):
//!   `creation_time` → arrival, `deletion_time` → departure. CPU-only pods are not GPU
//!   demand and are left out (on EKS they run on other NodePools). GPU models map to EC2
//!   by `gpu_spec` (T4 → t4, the g4dn family; V100M16/V100M32 → v100, p3/p3dn; A10 →
//!   a10g, g5); P100, G2 and G3 have no EC2 counterpart and leave the pod unconstrained.
//!   The `multigpu*` variants have no times and are refused.
//! - **Our own trace format**, CSV or JSON Lines, one pod per row: `name`, `arrival` and
//!   `departure` in seconds (empty/absent departure: runs to the end), `cpu` and `memory`
//!   as Kubernetes quantities, `gpus` (the `nvidia.com/gpu` request), and optionally
//!   `gpu_share` (`0.25` or `250m`), `gpu_memory` (`4Gi`) and `sharing`
//!   (`shared`/`exclusive`), with the meaning of the pod annotations of the same names.
//! - **Kubernetes manifests** (the pods `plan` reads) with a synthetic arrival pattern:
//!   `burst` (every pod arrives at 0 and leaves after `duration`) or `diurnal` (over
//!   `days` days, hour by hour, the first ⌈N × (1 − cos(2π h/24))/2⌉ of the N pods run
//!   during hour h: none at midnight, all at noon; each pod runs one contiguous stretch a
//!   day around noon).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Job, Workload};
use crate::config::{parse_gpu_memory_mib, parse_share, parse_sharing};
use crate::model::{DemandItem, Resources, Sharing, quantity};
use crate::trace::{AlibabaPod, TraceError, alibaba_demand};

fn err(source: &str, line: usize, message: String) -> TraceError {
    TraceError::new(source, line, message)
}

/// The Alibaba trace's GPU pods as a workload (see the module docs). `source` names the
/// file in errors.
pub fn from_alibaba(source: &str, name: &str, pods: &[AlibabaPod]) -> Result<Workload, TraceError> {
    let mut jobs = Vec::new();
    for (i, p) in pods.iter().enumerate() {
        let Some(item) = alibaba_demand(p, "trace") else {
            continue;
        };
        let (Some(arrival), departure) = (p.creation_time, p.deletion_time) else {
            return Err(err(
                source,
                i + 2,
                format!(
                    "{}: no creation_time (the multigpu* variants carry no times and cannot be replayed)",
                    p.name
                ),
            ));
        };
        if let Some(d) = departure
            && d < arrival
        {
            return Err(err(
                source,
                i + 2,
                format!(
                    "{}: deletion_time {d} is before creation_time {arrival}",
                    p.name
                ),
            ));
        }
        jobs.push(Job {
            arrival,
            departure,
            item,
        });
    }
    Ok(sorted(name, jobs))
}

fn sorted(name: &str, mut jobs: Vec<Job>) -> Workload {
    jobs.sort_by(|a, b| {
        a.arrival
            .cmp(&b.arrival)
            .then_with(|| a.item.id.cmp(&b.item.id))
    });
    Workload {
        name: name.to_string(),
        jobs,
    }
}

/// One row of our own format, as strings by field name.
fn job_from_fields(
    source: &str,
    line: usize,
    f: &BTreeMap<String, String>,
) -> Result<Job, TraceError> {
    let get = |k: &str| f.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let need = |k: &str| get(k).ok_or_else(|| err(source, line, format!("field `{k}` is missing")));
    let field = |k: &str, e: String| err(source, line, format!("field `{k}`: {e}"));
    let name = need("name")?.to_string();
    let secs = |k: &str, v: &str| {
        let t = v.parse::<u64>().map_err(|p| {
            field(k, format!("{v:?} is not a whole number of seconds")).caused_by(p)
        })?;
        if t > crate::trace::MAX_TRACE_SECONDS {
            return Err(err(
                source,
                line,
                crate::trace::too_late(k, t).replacen("column", "field", 1),
            ));
        }
        Ok(t)
    };
    let arrival = secs("arrival", need("arrival")?)?;
    let departure = match get("departure") {
        Some(v) => Some(secs("departure", v)?),
        None => None,
    };
    if let Some(d) = departure
        && d < arrival
    {
        return Err(field(
            "departure",
            format!("{d} is before arrival {arrival}"),
        ));
    }
    let cpu =
        quantity::cpu_milli(need("cpu")?).map_err(|e| field("cpu", e.to_string()).caused_by(e))?;
    let memory = quantity::bytes(need("memory")?)
        .map_err(|e| field("memory", e.to_string()).caused_by(e))?;
    let gpus =
        quantity::count(need("gpus")?).map_err(|e| field("gpus", e.to_string()).caused_by(e))?;
    let gpus = u32::try_from(gpus)
        .ok()
        .filter(|g| *g >= 1)
        .ok_or_else(|| field("gpus", format!("{gpus} is not a GPU count from 1")))?;
    let mut item = DemandItem::shared(name, Resources::new(cpu, memory));
    item.gpus = gpus;
    item.sharing = match get("sharing") {
        Some(v) => parse_sharing(v).map_err(|e| field("sharing", e.to_string()).caused_by(e))?,
        None if gpus == 1 => Sharing::Shared,
        None => Sharing::Exclusive,
    };
    if let Some(v) = get("gpu_share").or_else(|| get("gpuShare")) {
        item.gpu_share_milli =
            Some(parse_share(v).map_err(|e| field("gpu_share", e.to_string()).caused_by(e))?);
    }
    if let Some(v) = get("gpu_memory").or_else(|| get("gpuMemory")) {
        item.gpu_memory_mib = Some(
            parse_gpu_memory_mib(v).map_err(|e| field("gpu_memory", e.to_string()).caused_by(e))?,
        );
    }
    Ok(Job {
        arrival,
        departure,
        item,
    })
}

/// Our CSV format (see the module docs): a header row names the columns.
pub fn parse_csv(source: &str, name: &str, text: &str) -> Result<Workload, TraceError> {
    let table = crate::table::read(text, true)
        .map_err(|t| err(source, t.line, t.to_string()).caused_by(t))?;
    if table.header.is_empty() {
        return Err(err(
            source,
            1,
            "empty workload: expected a header row".into(),
        ));
    }
    let mut jobs = Vec::new();
    for (line, cells) in &table.rows {
        let fields = table
            .header
            .iter()
            .zip(cells)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        jobs.push(job_from_fields(source, *line, &fields)?);
    }
    Ok(sorted(name, jobs))
}

/// Our JSON Lines format: one object per line with the same fields.
pub fn parse_jsonl(source: &str, name: &str, text: &str) -> Result<Workload, TraceError> {
    let mut jobs = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = i + 1;
        let l = l.trim();
        if l.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(l)
            .map_err(|e| err(source, line, format!("not JSON: {e}")).caused_by(e))?;
        let Some(obj) = v.as_object() else {
            return Err(err(source, line, "not a JSON object".into()));
        };
        let fields = obj
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), s)
            })
            .collect();
        jobs.push(job_from_fields(source, line, &fields)?);
    }
    Ok(sorted(name, jobs))
}

/// An arrival pattern for pods read from manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Every pod at 0, leaving after `duration_s`.
    Burst { duration_s: u64 },
    /// Over `days`, the day/night wave of the module docs.
    Diurnal { days: u32 },
}

/// Pods (from manifests) with a synthetic arrival pattern.
pub fn synthetic(name: &str, items: &[DemandItem], pattern: Pattern) -> Workload {
    let mut jobs = Vec::new();
    match pattern {
        Pattern::Burst { duration_s } => {
            for it in items {
                jobs.push(Job {
                    arrival: 0,
                    departure: Some(duration_s),
                    item: it.clone(),
                });
            }
        }
        Pattern::Diurnal { days } => {
            let n = items.len();
            // Pods running during hour h of a day.
            let present = |h: u64| -> usize {
                let x = (1.0 - (2.0 * std::f64::consts::PI * h as f64 / 24.0).cos()) / 2.0;
                ((n as f64) * x).ceil().min(n as f64) as usize
            };
            for day in 0..u64::from(days) {
                for (i, it) in items.iter().enumerate() {
                    // Pod i runs in the hours where more than i pods are present: one
                    // stretch around noon (the wave rises then falls once a day).
                    let hours: Vec<u64> = (0..24).filter(|h| present(*h) > i).collect();
                    let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
                        continue;
                    };
                    let mut item = it.clone();
                    item.id = format!("{}-d{day}", it.id);
                    jobs.push(Job {
                        arrival: day * 86_400 + first * 3600,
                        departure: Some(day * 86_400 + (last + 1) * 3600),
                        item,
                    });
                }
            }
        }
    }
    sorted(name, jobs)
}

/// Fills in the pods' missing creation and deletion times from `timed`, by pod name
/// (the `multigpu*` variants of the Alibaba trace carry no times; they re-draw the GPU
/// requests of the `default` trace's pods, which have the same names). Pods that already
/// have a creation time, or whose name `timed` lacks, are left as they are.
pub fn borrow_times(pods: &mut [AlibabaPod], timed: &[AlibabaPod]) -> usize {
    let by_name: std::collections::HashMap<&str, &AlibabaPod> =
        timed.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut filled = 0;
    for p in pods.iter_mut().filter(|p| p.creation_time.is_none()) {
        if let Some(t) = by_name.get(p.name.as_str()) {
            p.creation_time = t.creation_time;
            p.deletion_time = t.deletion_time;
            filled += usize::from(t.creation_time.is_some());
        }
    }
    filled
}

/// The workload replayed `k` times denser (`--time-scale k`): every arrival moves to
/// `t0 + ⌊(arrival − t0) / k⌋` (`t0` the first arrival) and every job keeps its duration,
/// so about `k` times as many jobs run at once, over a horizon about `k` times shorter.
/// `k` must be finite and > 0 (the CLI refuses anything else; here any other value
/// leaves the workload as it is); `k` < 1 stretches the arrivals instead.
pub fn time_scaled(w: &Workload, k: f64) -> Workload {
    if !(k.is_finite() && k > 0.0) || k == 1.0 {
        return w.clone();
    }
    let t0 = w.jobs.iter().map(|j| j.arrival).min().unwrap_or(0);
    let jobs = w
        .jobs
        .iter()
        .map(|j| {
            // The float is ≥ 0 and at most (u64::MAX − t0) / k; `as` saturates anyway.
            let offset = ((j.arrival - t0) as f64 / k).floor() as u64;
            let arrival = t0.saturating_add(offset);
            Job {
                arrival,
                departure: j
                    .departure
                    .map(|d| arrival.saturating_add(d.saturating_sub(j.arrival))),
                item: j.item.clone(),
            }
        })
        .collect();
    let mut out = sorted(&w.name, jobs);
    out.name = format!("{}-x{k}", w.name);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::parse_alibaba_pods;

    #[test]
    fn alibaba_rows_become_jobs_and_cpu_only_pods_are_left_out() {
        let text = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n\
                    p0,1000,1024,1,500,T4,LS,Running,10,100,10\n\
                    p1,1000,1024,0,0,,LS,Running,0,50,0\n\
                    p2,8000,4096,2,1000,,LS,Running,5,20,5\n";
        let pods = parse_alibaba_pods("t.csv", text).expect("parses");
        let w = from_alibaba("t.csv", "t", &pods).expect("workload");
        let ids: Vec<&str> = w.jobs.iter().map(|j| j.item.id.as_str()).collect();
        assert_eq!(
            ids,
            ["trace/p2", "trace/p0"],
            "sorted by arrival, CPU-only left out"
        );
        assert_eq!((w.jobs[1].arrival, w.jobs[1].departure), (10, Some(100)));
        assert_eq!(w.jobs[1].item.gpu_share_milli, Some(500));
        assert_eq!(w.jobs[0].item.sharing, Sharing::Exclusive);
        let backwards = text.replace("10,100,10", "100,10,10");
        let pods = parse_alibaba_pods("t.csv", &backwards).expect("parses");
        let e = from_alibaba("t.csv", "t", &pods).expect_err("backwards");
        assert!(
            e.to_string()
                .contains("t.csv:2: p0: deletion_time 10 is before"),
            "{e}"
        );
    }

    #[test]
    fn our_csv_and_jsonl_formats_agree() {
        let csv = "name,arrival,departure,cpu,memory,gpus,gpu_share,gpu_memory,sharing\n\
                   a,0,3600,2,8Gi,1,0.25,4Gi,\n\
                   b,60,,4,16Gi,2,,,\n";
        let jsonl = r#"{"name":"a","arrival":0,"departure":3600,"cpu":"2","memory":"8Gi","gpus":1,"gpuShare":"0.25","gpuMemory":"4Gi"}
{"name":"b","arrival":60,"cpu":4,"memory":"16Gi","gpus":2}"#;
        let a = parse_csv("w.csv", "w", csv).expect("csv");
        let b = parse_jsonl("w.jsonl", "w", jsonl).expect("jsonl");
        assert_eq!(a, b);
        assert_eq!(a.jobs[0].item.gpu_share_milli, Some(250));
        assert_eq!(a.jobs[0].item.gpu_memory_mib, Some(4096));
        assert_eq!(a.jobs[1].departure, None);
        assert_eq!(a.jobs[1].item.sharing, Sharing::Exclusive);
    }

    #[test]
    fn bad_rows_name_the_file_line_and_field() {
        let cases = [
            (
                "name,arrival,cpu,memory,gpus\na,x,1,1Gi,1\n",
                "w.csv:2: field `arrival`",
            ),
            (
                "name,arrival,cpu,memory,gpus\na,0,1,lots,1\n",
                "w.csv:2: field `memory`",
            ),
            (
                "name,arrival,cpu,memory,gpus\na,0,1,1Gi,0\n",
                "w.csv:2: field `gpus`",
            ),
            (
                "name,arrival,cpu,memory\na,0,1,1Gi\n",
                "w.csv:2: field `gpus` is missing",
            ),
            (
                "name,arrival,departure,cpu,memory,gpus\na,10,5,1,1Gi,1\n",
                "w.csv:2: field `departure`",
            ),
            (
                "name,arrival,cpu,memory,gpus\na,0,1\n",
                "w.csv:2: expected 5 cells",
            ),
            (
                "name,arrival,departure,cpu,memory,gpus\na,0,18446744073709551615,1,1Gi,1\n",
                "w.csv:2: field `departure`: 18446744073709551615 s is more than 100 years",
            ),
            (
                "name,arrival,cpu,memory,gpus,gpu_share\na,0,1,1Gi,1,2\n",
                "w.csv:2: field `gpu_share`",
            ),
        ];
        for (text, want) in cases {
            let e = parse_csv("w.csv", "w", text).expect_err(text);
            assert!(e.to_string().starts_with(want), "{e} vs {want}");
        }
        let e = parse_jsonl("w.jsonl", "w", "{\"name\":\"a\"}\n[1]").expect_err("fields");
        assert!(
            e.to_string()
                .starts_with("w.jsonl:1: field `arrival` is missing"),
            "{e}"
        );
        let e = parse_jsonl("w.jsonl", "w", "{").expect_err("json");
        assert!(e.to_string().starts_with("w.jsonl:1: not JSON"), "{e}");
    }

    #[test]
    fn synthetic_patterns() {
        let items: Vec<DemandItem> = (0..4)
            .map(|i| DemandItem::shared(format!("ns/p{i}"), Resources::new(1000, 1 << 30)))
            .collect();
        let w = synthetic("b", &items, Pattern::Burst { duration_s: 600 });
        assert!(
            w.jobs
                .iter()
                .all(|j| j.arrival == 0 && j.departure == Some(600))
        );
        let w = synthetic("d", &items, Pattern::Diurnal { days: 2 });
        // Pod 0 runs from 01:00 to 24:00 (present(h) > 0 for h = 1..23), pod 3 only
        // around noon; nothing runs at midnight.
        let p0: Vec<(u64, Option<u64>)> = w
            .jobs
            .iter()
            .filter(|j| j.item.id.starts_with("ns/p0"))
            .map(|j| (j.arrival, j.departure))
            .collect();
        assert_eq!(
            p0,
            [(3600, Some(86_400)), (86_400 + 3600, Some(2 * 86_400))]
        );
        let p3 = w.jobs.iter().find(|j| j.item.id == "ns/p3-d0").expect("p3");
        assert!(p3.arrival > 6 * 3600 && p3.departure.is_some_and(|d| d <= 18 * 3600));
        assert!(w.jobs.windows(2).all(|p| p[0].arrival <= p[1].arrival));
    }
}
