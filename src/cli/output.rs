//! Human-readable tables for `plan` and `catalog`.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::live::LiveReport;
use crate::catalog::DaemonSetOverhead;
use crate::catalog::live::Origin;
use crate::model::slice::ShareModel;
use crate::model::{Catalog, MIB};
use crate::planner::{Plan, PlanOptions};

/// Left-aligned columns separated by two spaces.
pub(super) fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{s:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Dollars with 3 decimals; a non-zero amount under $0.001 (moto's placeholder spot
/// prices, say) with 6, so that it does not print as 0.
fn usd(x: f64) -> String {
    // -0.0 (an empty sum of negated prices, say) prints as 0.000, not -0.000.
    let x = if x == 0.0 { 0.0 } else { x };
    if x != 0.0 && x.abs() < 0.0005 {
        format!("{x:.6}")
    } else {
        format!("{x:.3}")
    }
}

fn pct(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        format!("{:.1}%", 100.0 * part / whole)
    } else {
        "-".to_string()
    }
}

/// Node groups, pods per group, $/h, and the savings summary.
pub fn plan_table(plan: &Plan, cat: &Catalog, opts: &PlanOptions) -> String {
    let s = &plan.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} GPU pods: {} placed on {} node(s) ({} GPUs), {} unplaced; prices: {} (observed {})",
        s.pods,
        s.placed_pods,
        s.nodes,
        s.gpus,
        plan.unplaced.len(),
        cat.source.name,
        cat.source.observed
    );
    // Every pod's GPU memory counts its CUDA context, and its share is read by the
    // planner's model and its pool's (`model::slice`, `PlanOptions::fit_rules`).
    let own: Vec<String> = opts
        .pools
        .iter()
        .filter_map(|p| {
            let rules = opts.fit_rules(Some(p));
            (rules.context_mib != opts.context_memory_mib)
                .then(|| format!("pool {}: {} MiB", p.name, rules.context_mib))
        })
        .collect();
    let _ = write!(
        out,
        "GPU memory per pod counts its CUDA context: {} MiB",
        opts.context_memory_mib
    );
    if own.is_empty() {
        out.push('\n');
    } else {
        let _ = writeln!(out, " ({})", own.join(", "));
    }
    let base = opts.fit_rules(None).shares;
    let own: Vec<String> = opts
        .pools
        .iter()
        .filter_map(|p| {
            let shares = opts.fit_rules(Some(p)).shares;
            (shares != base).then(|| format!("pool {}: {}", p.name, shares.as_str()))
        })
        .collect();
    let e = opts.efficiency;
    let _ = write!(out, "gpu-share is read as {}", opts.share_model.as_str());
    if opts.share_model == ShareModel::Throughput || !own.is_empty() {
        let _ = write!(
            out,
            " (time-slicing delivers {:.2} / R per busy pod, MPS {:.2} / R)",
            f64::from(e.time_slicing_milli) / 1000.0,
            f64::from(e.mps_milli) / 1000.0
        );
    }
    if own.is_empty() {
        out.push('\n');
    } else {
        let _ = writeln!(out, "; {}", own.join(", "));
    }
    out.push('\n');
    // Group identical nodes.
    type Key = (
        String,
        String,
        String,
        Option<String>,
        u32,
        String,
        u32,
        String,
        String,
        String,
    );
    let mut groups: BTreeMap<Key, (usize, usize, usize, f64)> = BTreeMap::new();
    for n in &plan.nodes {
        let key = (
            n.node_pool.clone(),
            n.instance_type.clone(),
            n.capacity_type.to_string(),
            n.zone.clone(),
            n.gpus,
            n.gpu_model.clone(),
            n.replicas_per_gpu,
            n.profile.clone(),
            // `gpu-slicer.io/sharing-strategy`: none, time-slicing, mps or fractional.
            n.sharing.clone(),
            // The slice labels (`gpu-slicer.io/slice-gpu-memory-mib`, `-share-milli`).
            format!("{}Mi/{}m", n.slice_gpu_memory_mib, n.slice_share_milli),
        );
        let e = groups
            .entry(key)
            .or_insert((0, usize::MAX, 0, n.hourly_price));
        e.0 += 1;
        e.1 = e.1.min(n.pods.len());
        e.2 = e.2.max(n.pods.len());
    }
    let mut rows = vec![vec![
        "NODEPOOL".to_string(),
        "INSTANCE TYPE".into(),
        "CAPACITY".into(),
        "ZONE".into(),
        "GPUS".into(),
        "GPU".into(),
        "R".into(),
        "PROFILE".into(),
        "SHARING".into(),
        "SLICE".into(),
        "NODES".into(),
        "PODS/NODE".into(),
        "$/H/NODE".into(),
        "$/H".into(),
    ]];
    for ((pool, ty, ct, zone, gpus, gpu, r, profile, sharing, slice), (count, min, max, price)) in
        &groups
    {
        rows.push(vec![
            pool.clone(),
            ty.clone(),
            ct.clone(),
            zone.clone().unwrap_or_else(|| "-".into()),
            gpus.to_string(),
            gpu.clone(),
            r.to_string(),
            profile.clone(),
            sharing.clone(),
            slice.clone(),
            count.to_string(),
            if min == max {
                min.to_string()
            } else {
                format!("{min}-{max}")
            },
            usd(*price),
            usd(price * *count as f64),
        ]);
    }
    if groups.is_empty() {
        out.push_str("No nodes to launch.\n");
    } else {
        // The zone column only matters when pods pinned nodes to zones.
        if plan.nodes.iter().all(|n| n.zone.is_none()) {
            for r in &mut rows {
                r.remove(3);
            }
        }
        out.push_str(&table(&rows));
    }
    out.push('\n');
    let ct = opts
        .capacity_types
        .first()
        .map_or("on-demand".to_string(), ToString::to_string);
    let mut cost = vec![vec![
        "COST".to_string(),
        "$/H".into(),
        "NODES".into(),
        "GPUS".into(),
        "NOTE".into(),
    ]];
    cost.push(vec![
        format!("sliced ({ct}, this plan)"),
        usd(s.hourly_cost),
        s.nodes.to_string(),
        s.gpus.to_string(),
        String::new(),
    ]);
    cost.push(vec![
        "lower bound (proven)".into(),
        usd(s.lower_bound_hourly_cost),
        String::new(),
        String::new(),
        if plan.solver.proven_optimal {
            format!(
                "plan is proven optimal ({:.2} s)",
                plan.solver.elapsed_seconds
            )
        } else {
            format!(
                "plan is within {} of any valid plan ({} bound, stopped by {}, {:.2} s)",
                if s.lower_bound_hourly_cost > 0.0 {
                    pct(
                        s.hourly_cost - s.lower_bound_hourly_cost,
                        s.lower_bound_hourly_cost,
                    )
                } else {
                    "-".into()
                },
                plan.solver.bound_kind.as_str(),
                plan.solver.stopped_by.as_str(),
                plan.solver.elapsed_seconds
            )
        },
    ]);
    cost.push(vec![
        format!("dedicated ({ct}, no sharing)"),
        usd(s.dedicated_hourly_cost),
        s.dedicated_nodes.to_string(),
        s.dedicated_gpus.to_string(),
        "every pod on whole GPUs".into(),
    ]);
    cost.push(vec![
        "savings vs dedicated".into(),
        usd(s.dedicated_hourly_cost - s.hourly_cost),
        String::new(),
        String::new(),
        pct(
            s.dedicated_hourly_cost - s.hourly_cost,
            s.dedicated_hourly_cost,
        ),
    ]);
    match (s.spot_hourly_cost, s.dedicated_spot_hourly_cost) {
        (Some(sp), Some(dsp)) => {
            cost.push(vec![
                "sliced at spot prices".into(),
                usd(sp),
                String::new(),
                String::new(),
                String::new(),
            ]);
            cost.push(vec![
                "dedicated at spot prices".into(),
                usd(dsp),
                String::new(),
                String::new(),
                format!("savings {}", pct(dsp - sp, dsp)),
            ]);
        }
        _ if s.nodes > 0 => cost.push(vec![
            "spot".into(),
            "unknown".into(),
            String::new(),
            String::new(),
            "no spot price for the planned types in this catalog".into(),
        ]),
        _ => {}
    }
    out.push_str(&table(&cost));
    if !plan.unplaced.is_empty() {
        out.push_str("\nUnplaced pods:\n");
        for u in &plan.unplaced {
            let _ = writeln!(out, "  {}: {}", u.pod, u.reason);
        }
    }
    out
}

fn gib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * MIB as f64))
}

/// `catalog -o json|yaml`: the catalog (`types`, `source`) and, with `--live-prices`,
/// where each value came from.
#[derive(serde::Serialize)]
pub struct CatalogDoc<'a> {
    #[serde(flatten)]
    pub catalog: &'a Catalog,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<&'a LiveReport>,
}

impl<'a> CatalogDoc<'a> {
    pub fn new(catalog: &'a Catalog, live: Option<&'a LiveReport>) -> Self {
        CatalogDoc { catalog, live }
    }
}

/// "live 4m", "live 13h02m STALE", or "catalog" for a value from the base catalog.
fn origin_cell(o: Option<&Origin>) -> String {
    match o {
        None => "-".to_string(),
        Some(Origin::Catalog) => "catalog".to_string(),
        Some(Origin::Live {
            age_seconds, stale, ..
        }) => format!(
            "live {}{}",
            super::live::age(*age_seconds),
            if *stale { " STALE" } else { "" }
        ),
    }
}

/// The catalog with allocatable after the given DaemonSet overhead; with a live report,
/// the source of every price and how old it is.
pub fn catalog_table(
    cat: &Catalog,
    overhead: DaemonSetOverhead,
    live: Option<&LiveReport>,
) -> String {
    let mut out = format!(
        "{} instance types; prices: {} (observed {})\n",
        cat.types.len(),
        cat.source.name,
        cat.source.observed
    );
    if let Some(l) = live {
        let _ = writeln!(
            out,
            "live data for {}; \"catalog\" below means the catalog above the live data:",
            l.region
        );
        for st in &l.status {
            let _ = match st.fetched_at {
                Some(at) => writeln!(
                    out,
                    "  {:<17} fetched {} ({} ago){}",
                    st.kind.as_str(),
                    crate::catalog::live::format_unix(at),
                    super::live::age(st.age_seconds.unwrap_or(0)),
                    if st.stale {
                        ", STALE (past its TTL, used anyway)"
                    } else {
                        ""
                    }
                ),
                None => writeln!(out, "  {:<17} not fetched (catalog used)", st.kind.as_str()),
            };
        }
    }
    out.push('\n');
    let mut header = vec![
        "TYPE".to_string(),
        "GPUS".into(),
        "GPU".into(),
        "GPU MIB".into(),
        "VCPU".into(),
        "MEM GIB".into(),
        "ALLOC CPU".into(),
        "ALLOC GIB".into(),
        "MAX PODS".into(),
        "ON-DEMAND $/H".into(),
        "$/GPU-H".into(),
        "SPOT $/H".into(),
    ];
    if live.is_some() {
        header.extend([
            "ON-DEMAND FROM".to_string(),
            "SPOT FROM".into(),
            "ZONES".into(),
        ]);
    }
    let mut rows = vec![header];
    for t in &cat.types {
        let (alloc, pods) = overhead.remaining(t);
        let mut row = vec![
            t.name.clone(),
            // A fractional GPU shows its share of one (`1/8`).
            if t.is_fractional() {
                fraction(t.gpu_fraction_milli)
            } else {
                t.gpu_count.to_string()
            },
            t.gpu_name.clone(),
            t.gpu_memory_mib.to_string(),
            t.vcpus.to_string(),
            gib(t.memory_mib * MIB),
            format!("{}m", alloc.cpu_milli),
            gib(alloc.memory_bytes),
            pods.to_string(),
            format!("{:.4}", t.on_demand_price),
            format!("{:.4}", t.on_demand_price / f64::from(t.gpu_count.max(1))),
            t.spot_price.map_or_else(
                || "-".to_string(),
                |p| {
                    if p < 0.00005 {
                        format!("{p:.6}")
                    } else {
                        format!("{p:.4}")
                    }
                },
            ),
        ];
        if let Some(l) = live {
            let o = l.origins.get(&t.name);
            row.push(origin_cell(o.map(|o| &o.on_demand)));
            row.push(origin_cell(o.and_then(|o| o.spot.as_ref())));
            row.push(
                o.and_then(|o| o.zones.as_ref())
                    .map_or_else(|| "-".to_string(), |z| z.len().to_string()),
            );
        }
        rows.push(row);
    }
    out.push_str(&table(&rows));
    if let Some(l) = live {
        for n in &l.notes {
            let _ = writeln!(out, "note: {n}");
        }
    }
    out
}

/// A share of a GPU in thousandths as a fraction in lowest terms (`125` → `1/8`).
fn fraction(milli: u32) -> String {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let g = gcd(milli, 1000).max(1);
    format!("{}/{}", milli / g, 1000 / g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_never_print_a_negative_zero() {
        assert_eq!(usd(-0.0), "0.000");
        assert_eq!(usd(0.0), "0.000");
        assert_eq!(usd(0.0001), "0.000100");
        assert_eq!(usd(-1.25), "-1.250");
    }
}
