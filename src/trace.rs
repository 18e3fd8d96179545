//! Workload traces as demand: the Alibaba GPU-sharing trace (cluster-trace-gpu-v2023,
//! "openb", FGD paper, USENIX ATC'23). Pure: parses text given to it.
//!
//! Mapping to gpu-slicer demand (documented in the README):
//! - `num_gpu == 0`: CPU-only, not a GPU pod (skipped by `demand`).
//! - `num_gpu == 1 && gpu_milli < 1000`: a shared pod taking one slice, with
//!   `gpu-share = gpu_milli / 1000`.
//! - otherwise: an exclusive pod taking `num_gpu` whole GPUs.
//! - `gpu_spec` (`T4|V100M16|...`) → required affinity `instance-gpu-name In [...]` with
//!   T4→t4, V100M16/V100M32→v100, A10→a10g. A spec naming a model with no EC2
//!   counterpart (P100, G2, G3) leaves the pod unconstrained.

use std::sync::Arc;

use crate::model::{DemandItem, MIB, Operator, Requirement, Resources, Sharing, labels};

/// One row of an `openb_pod_list_*.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlibabaPod {
    pub name: String,
    pub cpu_milli: u64,
    pub memory_mib: u64,
    pub num_gpu: u32,
    pub gpu_milli: u32,
    /// Allowed GPU models (empty = any).
    pub gpu_spec: Vec<String>,
    /// Seconds from trace start (absent in the `multigpu*` files).
    pub creation_time: Option<u64>,
    pub deletion_time: Option<u64>,
}

/// A trace or workload file that could not be read: `{source}:{line}: {message}`.
///
/// An error made from another one (the CSV reader's, the JSON parser's, a number's, a
/// quantity's or an annotation value's) keeps it as its
/// [`source`](std::error::Error::source), shared so that the error stays `Clone`
/// (downcast through `cause`); the message already says what it says.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{source}:{line}: {message}")]
pub struct TraceError {
    /// The file (or other source) name.
    pub source: String,
    /// 1-based line.
    pub line: usize,
    pub message: String,
    /// The error this one was made from, if any.
    #[source]
    pub cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl TraceError {
    /// An error at `source:line` without a cause.
    pub fn new(source: &str, line: usize, message: impl Into<String>) -> Self {
        TraceError {
            source: source.to_string(),
            line,
            message: message.into(),
            cause: None,
        }
    }

    /// The same error, made from `cause`.
    pub fn caused_by(self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        TraceError {
            cause: Some(Arc::new(cause)),
            ..self
        }
    }
}

/// Parses an Alibaba pod list (11- or 5-column variant) by header names.
pub fn parse_alibaba_pods(source: &str, text: &str) -> Result<Vec<AlibabaPod>, TraceError> {
    let e = |line: usize, message: String| TraceError::new(source, line, message);
    let table =
        crate::table::read(text, false).map_err(|t| e(t.line, t.to_string()).caused_by(t))?;
    if table.header.is_empty() {
        return Err(e(1, "empty trace".into()));
    }
    let col = |name: &str| table.column(name);
    let need = |name: &str| {
        col(name).ok_or_else(|| e(table.header_line, format!("missing column `{name}`")))
    };
    let (c_name, c_cpu, c_mem, c_gpu, c_milli) = (
        need("name")?,
        need("cpu_milli")?,
        need("memory_mib")?,
        need("num_gpu")?,
        need("gpu_milli")?,
    );
    let (c_spec, c_create, c_delete) =
        (col("gpu_spec"), col("creation_time"), col("deletion_time"));
    let mut out = Vec::new();
    for (ln, row) in &table.rows {
        let ln = *ln;
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let num = |c: usize, what: &str| -> Result<u64, TraceError> {
            cells[c].parse::<u64>().map_err(|p| {
                e(
                    ln,
                    format!("column `{what}`: not a whole number: {:?}", cells[c]),
                )
                .caused_by(p)
            })
        };
        let opt = |c: Option<usize>, what: &str| -> Result<Option<u64>, TraceError> {
            match c {
                Some(c) if !cells[c].is_empty() => {
                    let v = num(c, what)?;
                    if v > MAX_TRACE_SECONDS {
                        return Err(e(ln, too_late(what, v)));
                    }
                    Ok(Some(v))
                }
                _ => Ok(None),
            }
        };
        let num_gpu = u32::try_from(num(c_gpu, "num_gpu")?)
            .map_err(|_| e(ln, "column `num_gpu`: too large".into()))?;
        let gpu_milli = u32::try_from(num(c_milli, "gpu_milli")?)
            .ok()
            .filter(|m| *m <= 1000)
            .ok_or_else(|| e(ln, "column `gpu_milli`: must be 0..=1000".into()))?;
        out.push(AlibabaPod {
            name: cells[c_name].to_string(),
            cpu_milli: num(c_cpu, "cpu_milli")?,
            memory_mib: num(c_mem, "memory_mib")?,
            num_gpu,
            gpu_milli,
            gpu_spec: c_spec
                .map(|c| cells[c])
                .filter(|s| !s.is_empty())
                .map(|s| s.split('|').map(str::to_string).collect())
                .unwrap_or_default(),
            creation_time: opt(c_create, "creation_time")?,
            deletion_time: opt(c_delete, "deletion_time")?,
        });
    }
    Ok(out)
}

/// Latest time a trace may name: 100 years of seconds from its start. A time past it is a
/// mistake (2^64 − 1 as "never", say), and replaying it would grow without bound.
pub const MAX_TRACE_SECONDS: u64 = 100 * 36_525 * 864;

/// The message for a time past [`MAX_TRACE_SECONDS`] in column or field `what`.
pub fn too_late(what: &str, v: u64) -> String {
    format!(
        "column `{what}`: {v} s is more than 100 years after the trace's start \
         (at most {MAX_TRACE_SECONDS}); leave it empty for a pod that never leaves"
    )
}

/// Karpenter `instance-gpu-name` for an Alibaba GPU model, if EC2 has one.
pub fn ec2_gpu_name(model: &str) -> Option<&'static str> {
    match model {
        "T4" => Some("t4"),
        "V100M16" | "V100M32" | "V100" => Some("v100"),
        "A10" => Some("a10g"),
        _ => None,
    }
}

/// The demand item of a trace pod, or `None` for a CPU-only pod.
pub fn alibaba_demand(p: &AlibabaPod, namespace: &str) -> Option<DemandItem> {
    if p.num_gpu == 0 {
        return None;
    }
    let mut d = DemandItem::shared(
        format!("{namespace}/{}", p.name),
        Resources::new(p.cpu_milli, p.memory_mib.saturating_mul(MIB)),
    );
    d.gpus = p.num_gpu;
    if p.num_gpu == 1 && p.gpu_milli < 1000 && p.gpu_milli > 0 {
        d.gpu_share_milli = Some(p.gpu_milli);
    } else {
        d.sharing = Sharing::Exclusive;
    }
    let names: Option<Vec<String>> = p
        .gpu_spec
        .iter()
        .map(|m| ec2_gpu_name(m).map(str::to_string))
        .collect();
    if let Some(mut names) = names.filter(|n| !n.is_empty()) {
        names.sort();
        names.dedup();
        d.affinity_terms = vec![vec![Requirement {
            key: labels::INSTANCE_GPU_NAME.to_string(),
            operator: Operator::In,
            values: names,
        }]];
    }
    Some(d)
}

/// A deterministic sample of `n` items (SplitMix64 from `seed`): without replacement
/// when `n ≤ len`, with replacement beyond. Sampled ids get a `-s<i>` suffix so they
/// stay unique.
pub fn sample_demand(items: &[DemandItem], n: usize, seed: u64) -> Vec<DemandItem> {
    let mut rng = SplitMix64(seed);
    let mut next = move || rng.next_u64();
    if items.is_empty() {
        return Vec::new();
    }
    let picks: Vec<usize> = if n <= items.len() {
        let mut idx: Vec<usize> = (0..items.len()).collect();
        for i in 0..n {
            let j = i + (next() % (items.len() - i) as u64) as usize;
            idx.swap(i, j);
        }
        idx.truncate(n);
        idx
    } else {
        (0..n)
            .map(|_| (next() % items.len() as u64) as usize)
            .collect()
    };
    picks
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let mut d = items[p].clone();
            d.id = format!("{}-s{i}", d.id);
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_cells_and_a_bom_are_read_as_csv() {
        let text = "\u{feff}name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n\
                    p0,1000,1024,1,500,\"T4|V100M16\",LS,Running,0,10,0\n\
                    \"p,1\",1000,1024,1,500,\"A10\",LS,Running,0,10,0\n";
        let pods = parse_alibaba_pods("t.csv", text).expect("a BOM and quotes are CSV");
        assert_eq!(pods[0].gpu_spec, ["T4", "V100M16"]);
        assert_eq!(pods[1].name, "p,1");
        let d = alibaba_demand(&pods[0], "ali").expect("a GPU pod");
        // The pod keeps its GPU constraint (it lost it when the quotes were part of the
        // model names).
        assert_eq!(d.affinity_terms[0][0].values, vec!["t4", "v100"]);
        // Row lengths are still checked, with the line.
        let short = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1,1,1,1\np1,1,1\n";
        assert_eq!(
            parse_alibaba_pods("t.csv", short).map_err(|e| e.to_string()),
            Err("t.csv:3: expected 5 cells (as in the header), found 3".to_string())
        );
    }

    #[test]
    fn errors_name_the_line_and_keep_their_cause() {
        use std::error::Error as _;
        let short = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1,1,1,1\np1,1,1\n";
        let e = parse_alibaba_pods("t.csv", short).expect_err("short row");
        assert_eq!(
            e.to_string(),
            "t.csv:3: expected 5 cells (as in the header), found 3"
        );
        let table = e.source().map(ToString::to_string);
        assert_eq!(
            table.as_deref(),
            Some("expected 5 cells (as in the header), found 3")
        );
        let bad = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,x,1,1,1\n";
        let e = parse_alibaba_pods("t.csv", bad).expect_err("not a number");
        assert_eq!(
            e.to_string(),
            "t.csv:2: column `cpu_milli`: not a whole number: \"x\""
        );
        assert!(e.source().is_some(), "the ParseIntError");
        let e = TraceError::new("t.csv", 1, "empty trace");
        assert_eq!(e.to_string(), "t.csv:1: empty trace");
        assert!(e.source().is_none());
    }

    #[test]
    fn times_past_a_century_are_refused_with_their_line() {
        let head = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n";
        let ok = format!("{head}p0,1000,1024,1,500,,LS,Running,0,{MAX_TRACE_SECONDS},0\n");
        assert_eq!(
            parse_alibaba_pods("t.csv", &ok)
                .map(|p| p.len())
                .map_err(|e| e.to_string()),
            Ok(1)
        );
        let never = format!(
            "{head}p0,1000,1024,1,500,,LS,Running,0,10,0\np1,1000,1024,1,500,,LS,Running,0,18446744073709551615,0\n"
        );
        let e = parse_alibaba_pods("t.csv", &never).expect_err("2^64 - 1");
        assert_eq!(
            e.to_string(),
            "t.csv:3: column `deletion_time`: 18446744073709551615 s is more than 100 years \
             after the trace's start (at most 3155760000); leave it empty for a pod that never \
             leaves"
        );
    }

    #[test]
    fn parses_and_maps() {
        let text = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n\
                    p0,12000,16384,1,460,,LS,Running,0,10,0\n\
                    p1,8000,1024,8,1000,V100M16|T4,LS,Running,5,9,\n\
                    p2,1000,1024,0,0,,BE,Running,5,9,5\n\
                    p3,1000,1024,1,1000,P100|T4,BE,Running,5,9,5\n";
        let pods = parse_alibaba_pods("t.csv", text).unwrap();
        assert_eq!(pods.len(), 4);
        let d0 = alibaba_demand(&pods[0], "ali").unwrap();
        assert_eq!(
            (d0.sharing, d0.gpu_share_milli, d0.gpus),
            (Sharing::Shared, Some(460), 1)
        );
        let d1 = alibaba_demand(&pods[1], "ali").unwrap();
        assert_eq!((d1.sharing, d1.gpus), (Sharing::Exclusive, 8));
        assert_eq!(d1.affinity_terms[0][0].values, vec!["t4", "v100"]);
        assert!(alibaba_demand(&pods[2], "ali").is_none());
        assert!(
            alibaba_demand(&pods[3], "ali")
                .unwrap()
                .affinity_terms
                .is_empty()
        );
    }

    #[test]
    fn bad_rows_name_the_line() {
        let h = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n";
        let err = parse_alibaba_pods("t.csv", &format!("{h}p0,1,2,x,0\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.csv:2: column `num_gpu`: not a whole number: \"x\""
        );
        let err = parse_alibaba_pods("t.csv", &format!("{h}p0,1,2,1,1001\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.csv:2: column `gpu_milli`: must be 0..=1000"
        );
        let err = parse_alibaba_pods("t.csv", "name,cpu_milli\n").unwrap_err();
        assert_eq!(err.to_string(), "t.csv:1: missing column `memory_mib`");
        let err = parse_alibaba_pods("t.csv", &format!("{h}p0,1,2\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.csv:2: expected 5 cells (as in the header), found 3"
        );
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014): small, seedable, good enough for sampling.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by the multiply-shift of Lemire (bias < n / 2⁶⁴).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}
