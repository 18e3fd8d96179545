//! An independent validity check of a plan against its inputs, used by the tests, the
//! property tests and `plan --check`. It re-derives capacities from the catalog rather
//! than trusting the planner's internal tables, and it is the one allowed second copy of
//! the slice-fit rule (`model::slice`): it re-derives the share and memory test and the
//! slice labels itself, so a mistake in the rule shows up here instead of agreeing with
//! itself. Its tests compare the two (`planner::tests`).

use std::collections::HashMap;

use super::{Plan, PlanOptions};
use crate::model::slice::ShareModel;
use crate::model::{
    Catalog, DEFAULT_ARCH, DemandItem, Isolation, MIB, Operator, Sharing, SharingChoice, labels,
};

/// Zone label value standing for "not pinned" (never a real zone name).
const UNPINNED: &str = "<unpinned>";

/// Checks that every pod is placed exactly once or explained, that no node is over
/// capacity in cpu, memory, pod slots or GPU slices, that replicas are 1 or 2..=48 and
/// safe for the GPU memory and share of every pod on the node, that exclusive pods are
/// on unsliced whole GPUs, that pods asking for memory isolation are never time-sliced,
/// that a shared GPU uses MPS exactly where the pool's `sharing-strategy` says (in `auto`:
/// where a pod asks for isolation) and that no pod asks an MPS GPU for several slices,
/// that a hardware-fractional GPU (g6f, gr6f) runs at R = 1 with its part's memory and
/// share as its slice, that a
/// node of another architecture than amd64 holds only pods whose requirements or pool
/// name `kubernetes.io/arch`, and that the summary's cost is the node prices' sum and is no
/// lower than the reported lower bound. Returns every violation found.
pub fn check(
    plan: &Plan,
    catalog: &Catalog,
    items: &[DemandItem],
    opts: &PlanOptions,
) -> Vec<String> {
    let mut errs = Vec::new();
    let by_id: HashMap<&str, &DemandItem> = items.iter().map(|i| (i.id.as_str(), i)).collect();
    if by_id.len() != items.len() {
        errs.push("duplicate pod ids in the demand".to_string());
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let pools = super::effective_pools(opts);
    let ds = opts.daemonset_overhead;
    let mut total = 0.0;
    for (ni, n) in plan.nodes.iter().enumerate() {
        total += n.hourly_price;
        let Some(t) = catalog.types.iter().find(|t| t.name == n.instance_type) else {
            errs.push(format!("node {ni}: unknown type {}", n.instance_type));
            continue;
        };
        if t.price(n.capacity_type) != Some(n.hourly_price) {
            errs.push(format!(
                "node {ni}: price {} is not the catalog's",
                n.hourly_price
            ));
        }
        let r = n.replicas_per_gpu;
        if !(r == 1 || (2..=48).contains(&r)) {
            errs.push(format!("node {ni}: replicas {r} out of range"));
        }
        let pool = pools.iter().find(|p| p.name == n.node_pool);
        let headroom = pool.map_or(0, |p| p.gpu_memory_headroom_mib);
        // The context: the pool's where it is larger than the planner's (admission
        // enforces the planner's).
        let context = pool
            .and_then(|p| p.context_memory_mib)
            .unwrap_or(0)
            .max(opts.context_memory_mib);
        // The readings of shares: the planner's, and the pool's own; the efficiencies:
        // the pool's, else the planner's.
        let pool_model = pool.and_then(|p| p.share_model);
        let by_time = opts.share_model == ShareModel::Time || pool_model == Some(ShareModel::Time);
        let by_throughput = opts.share_model == ShareModel::Throughput
            || pool_model == Some(ShareModel::Throughput);
        let ts_e = pool
            .and_then(|p| p.time_slicing_efficiency_milli)
            .unwrap_or(opts.efficiency.time_slicing_milli);
        let mps_e = pool
            .and_then(|p| p.mps_efficiency_milli)
            .unwrap_or(opts.efficiency.mps_milli);
        if let Some(p) = pool {
            if r > 1 && !p.replicas.allowed().contains(&r) {
                errs.push(format!("node {ni}: R={r} not allowed by pool {}", p.name));
            }
        } else {
            errs.push(format!("node {ni}: unknown pool {}", n.node_pool));
        }
        // A fractional type's one slice is its own part of a GPU: its memory (after
        // headroom) and its fraction, at R = 1.
        let fractional = t.gpu_fraction_milli < 1000;
        if fractional && r != 1 {
            errs.push(format!(
                "node {ni}: {} is a fractional GPU with R={r}",
                t.name
            ));
        }
        let arch_key = |k: &str| k == labels::ARCH || k == labels::ARCH_BETA;
        let pool_names_arch = pool.is_some_and(|p| p.requirements.iter().any(|r| arch_key(&r.key)));
        let usable = t.gpu_memory_mib.saturating_sub(headroom);
        let r1 = u64::from(r.max(1));
        let (slice_mem, slice_share) = if fractional {
            (usable, t.gpu_fraction_milli)
        } else {
            (usable / r1, 1000 / r.max(1))
        };
        // A shared whole GPU uses MPS when the pool says so, or in an `auto` pool when a
        // pod on it asks for memory isolation or, read as throughput, a share more than a
        // time slice gives (⌊e_ts / R⌋); time-slicing otherwise.
        let ts_throughput = if r > 1 { (ts_e / r).min(1000) } else { 1000 };
        let needs_mps = n.pods.iter().any(|p| {
            by_id.get(p.as_str()).is_some_and(|it| {
                it.isolation == Isolation::Memory
                    || (by_throughput && it.gpu_share_milli.is_some_and(|s| s > ts_throughput))
            })
        });
        let mps = match pool.map(|p| p.sharing_strategy) {
            Some(SharingChoice::Mps) => true,
            Some(SharingChoice::Auto) => needs_mps,
            Some(SharingChoice::TimeSlicing) | None => false,
        };
        let sharing = if fractional {
            "fractional"
        } else if r > 1 && mps {
            "mps"
        } else if r > 1 {
            "time-slicing"
        } else {
            "none"
        };
        let profile = if sharing == "mps" {
            format!("mps-r{r}")
        } else {
            format!("ts-r{r}")
        };
        if n.profile != profile {
            errs.push(format!(
                "node {ni}: profile {} for R={r}, expected {profile}",
                n.profile
            ));
        }
        if n.slice_gpu_memory_mib != slice_mem || n.slice_share_milli != slice_share {
            errs.push(format!(
                "node {ni}: slice labels {} MiB / {} milli, expected {slice_mem} / \
                 {slice_share} for R={r}",
                n.slice_gpu_memory_mib, n.slice_share_milli,
            ));
        }
        // What one busy slice gets beside busy neighbours: the part of a fractional GPU,
        // a whole GPU alone, else the efficiency over R.
        let slice_throughput = match sharing {
            "fractional" => t.gpu_fraction_milli,
            "none" => 1000,
            "mps" => (mps_e / r).min(1000),
            _ => ts_throughput,
        };
        if n.slice_throughput_milli != slice_throughput {
            errs.push(format!(
                "node {ni}: slice throughput {} milli, expected {slice_throughput} for R={r} \
                 ({sharing})",
                n.slice_throughput_milli
            ));
        }
        if n.sharing != sharing {
            errs.push(format!(
                "node {ni}: sharing {:?}, expected {sharing}",
                n.sharing
            ));
        }
        let (mut cpu, mut mem, mut slices) = (0u64, 0u64, 0u64);
        for pod in &n.pods {
            *seen.entry(pod.as_str()).or_default() += 1;
            let Some(it) = by_id.get(pod.as_str()) else {
                errs.push(format!("node {ni}: unknown pod {pod}"));
                continue;
            };
            cpu += it.requests.cpu_milli;
            mem += it.requests.memory_bytes;
            slices += u64::from(it.gpus);
            let pod_names_arch = it.node_selector.keys().any(|k| arch_key(k))
                || it.affinity_terms.iter().flatten().any(|r| arch_key(&r.key));
            if t.arch != DEFAULT_ARCH && !pool_names_arch && !pod_names_arch {
                errs.push(format!(
                    "node {ni}: pod {pod} names no architecture but the node is {}",
                    t.arch
                ));
            }
            if it.sharing == Sharing::Exclusive && (r != 1 || fractional) {
                errs.push(format!(
                    "node {ni}: exclusive pod {pod} on a {sharing} node with R={r}"
                ));
            }
            // The node's own claim and the re-derived strategy both count.
            let claims = |x: &str| sharing == x || n.sharing == x;
            if it.sharing == Sharing::Shared && it.gpus > 1 && claims("mps") {
                errs.push(format!(
                    "node {ni}: pod {pod} asks for {} nvidia.com/gpu of an MPS-shared GPU",
                    it.gpus
                ));
            }
            if it.isolation == Isolation::Memory && claims("time-slicing") {
                errs.push(format!(
                    "node {ni}: pod {pod} asks for memory isolation on a time-sliced GPU"
                ));
            }
            // The pod's memory with its CUDA context: the context alone when it declares
            // none, at least the context when the declared amount includes it, and the
            // two added when it does not.
            let with_context = match it.gpu_memory_mib {
                None if context == 0 => None,
                None => Some(context),
                Some(m) if it.gpu_memory_excludes_context => Some(m + context),
                Some(m) => Some(m.max(context)),
            };
            if let Some(m) = with_context {
                // m ≤ (GPU memory − headroom) / R, or the fractional part's memory.
                let over = if fractional {
                    m > usable
                } else {
                    m * r1 > usable
                };
                if over {
                    errs.push(format!(
                        "node {ni}: pod {pod} needs {m} MiB GPU memory; {usable}/{r} MiB per slice"
                    ));
                }
            }
            if let Some(f) = it.gpu_memory_fraction_milli
                && !fractional
                && u64::from(f) * r1 > 1000
            {
                errs.push(format!(
                    "node {ni}: pod {pod} takes {f}/1000 of its GPU's memory with R={r}"
                ));
            }
            if let Some(s) = it.gpu_share_milli
                && by_time
                && (if fractional {
                    s > t.gpu_fraction_milli
                } else {
                    u64::from(s) * r1 > 1000
                })
            {
                errs.push(format!(
                    "node {ni}: pod {pod} wants share {s}/1000 with R={r}"
                ));
            }
            if let Some(s) = it.gpu_share_milli
                && by_throughput
                && s > slice_throughput
            {
                errs.push(format!(
                    "node {ni}: pod {pod} wants share {s}/1000 of throughput; a slice of \
                     {sharing} at R={r} gets {slice_throughput}"
                ));
            }
            if !it.matches_labels(&|k: &str| {
                use crate::model::labels::{CAPACITY_TYPE, NODEPOOL, ZONE, ZONE_BETA};
                use crate::model::slice::{
                    REPLICAS_LABEL, SHARING_STRATEGY_LABEL, SLICE_GPU_MEMORY_LABEL,
                    SLICE_SHARE_LABEL, SLICE_THROUGHPUT_LABEL,
                };
                t.label(k).or_else(|| match k {
                    CAPACITY_TYPE => Some(n.capacity_type.to_string()),
                    // An unpinned node has some zone Karpenter picks: it satisfies
                    // `Exists`/`NotIn` on the zone, never `In` a named zone.
                    ZONE | ZONE_BETA => Some(n.zone.clone().unwrap_or_else(|| UNPINNED.into())),
                    NODEPOOL => Some(n.node_pool.clone()),
                    // The slice labels, re-derived here (not by `model::slice`).
                    REPLICAS_LABEL => Some(r.to_string()),
                    SLICE_GPU_MEMORY_LABEL => Some(slice_mem.to_string()),
                    SLICE_SHARE_LABEL => Some(slice_share.to_string()),
                    SLICE_THROUGHPUT_LABEL => Some(slice_throughput.to_string()),
                    SHARING_STRATEGY_LABEL => Some(sharing.to_string()),
                    _ => pool.and_then(|p| {
                        p.labels.get(k).cloned().or_else(|| {
                            // Karpenter labels nodes with a pool's single-valued `In`
                            // requirement on a custom key.
                            p.requirements
                                .iter()
                                .find(|r| r.key == k && r.operator == Operator::In)
                                .and_then(|r| r.values.first().cloned())
                        })
                    }),
                })
            }) {
                errs.push(format!(
                    "node {ni}: pod {pod} does not match the node's labels"
                ));
            }
            if let Some(p) = pool
                && !crate::model::tolerates_all(&it.tolerations, &p.taints)
            {
                errs.push(format!(
                    "node {ni}: pod {pod} does not tolerate pool taints"
                ));
            }
        }
        let cap = t.allocatable.saturating_sub(ds.resources);
        let pods_cap = u64::from(t.max_pods.saturating_sub(ds.pods));
        if cpu > cap.cpu_milli {
            errs.push(format!("node {ni}: cpu {cpu}m > {}m", cap.cpu_milli));
        }
        if mem > cap.memory_bytes {
            errs.push(format!(
                "node {ni}: memory {} MiB > {} MiB",
                mem / MIB,
                cap.memory_bytes / MIB
            ));
        }
        if n.pods.len() as u64 > pods_cap {
            errs.push(format!("node {ni}: {} pods > {pods_cap}", n.pods.len()));
        }
        if slices > u64::from(t.gpu_count) * u64::from(r) {
            errs.push(format!(
                "node {ni}: {slices} GPU units > {} × {r}",
                t.gpu_count
            ));
        }
        if n.gpus != t.gpu_count {
            errs.push(format!("node {ni}: gpus {} != {}", n.gpus, t.gpu_count));
        }
    }
    for u in &plan.unplaced {
        *seen.entry(u.pod.as_str()).or_default() += 1;
        if u.reason == super::UnplacedReason::NotCovered {
            errs.push(format!("unplaced {}: {}", u.pod, u.reason));
        }
    }
    for it in items {
        match seen.get(it.id.as_str()) {
            Some(1) => {}
            Some(n) => errs.push(format!("pod {} appears {n} times", it.id)),
            None => errs.push(format!("pod {} neither placed nor explained", it.id)),
        }
    }
    let s = &plan.summary;
    if (s.hourly_cost - total).abs() > 1e-5 {
        errs.push(format!(
            "summary cost {} != sum of nodes {total}",
            s.hourly_cost
        ));
    }
    if s.lower_bound_hourly_cost > s.hourly_cost + 1e-9 {
        errs.push(format!(
            "lower bound {} above cost {}",
            s.lower_bound_hourly_cost, s.hourly_cost
        ));
    }
    if s.nodes != plan.nodes.len() || s.pods != items.len() {
        errs.push("summary counts disagree with the plan".to_string());
    }
    errs
}
