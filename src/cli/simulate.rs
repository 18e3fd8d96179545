//! `gpu-slicer simulate`: read a workload, replay it through the strategies (the pure
//! `crate::sim`), print the comparison and write the report folder (JSON, table, SVG
//! plots). `--fgd` runs the FGD paper's fixed-cluster experiment instead.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use plotters::prelude::*;

use super::{
    CapacityArg, CatalogSource, Failure, Output, bad_input, load_catalog, parse_duration, usage,
};
use crate::demand::LoadOptions;
use crate::model::CapacityType;
use crate::sim::workload::{self, Pattern};
use crate::sim::{Report, SimConfig, Strategy, Workload, engine, fgd};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PatternArg {
    Burst,
    Diurnal,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum StrategyArg {
    /// (a) Karpenter, no sharing.
    Dedicated,
    /// (b) time-slicing at --replicas, Karpenter unaware of it.
    SlicingUnaware,
    /// (c) Karpenter with hand-written NodeOverlays at --replicas.
    Overlay,
    /// (d) gpu-slicer.
    GpuSlicer,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A trace: an Alibaba `openb_pod_list_*.csv`, or our CSV / JSON Lines format
    /// (told apart by the header and the .jsonl extension).
    #[arg(long, value_name = "FILE", conflicts_with = "filenames", required_unless_present_any = ["filenames", "fgd"])]
    trace: Option<PathBuf>,
    /// Kubernetes manifests (like `plan -f`) replayed with --pattern.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    filenames: Vec<String>,
    /// Arrival pattern of the manifests' pods.
    #[arg(long, value_enum, default_value = "burst")]
    pattern: PatternArg,
    /// --pattern burst: how long the pods run.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    duration: Duration,
    /// --pattern diurnal: how many days.
    #[arg(long, value_name = "N", default_value_t = 2)]
    days: u32,
    /// Strategies to compare (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "dedicated,slicing-unaware,overlay,gpu-slicer"
    )]
    strategies: Vec<StrategyArg>,
    /// Replicas per GPU of the slicing-unaware and overlay strategies (the AWS blueprint uses 4).
    #[arg(long, value_name = "N", default_value_t = 4)]
    replicas: u32,
    /// Upper bound of gpu-slicer's replicas per GPU.
    #[arg(long, value_name = "N", default_value_t = 10)]
    max_replicas: u32,
    /// Launch to ready of a new GPU node (default: see the README's sources).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    launch_delay: Option<Duration>,
    /// An empty or underused node is removed after this long (Karpenter's consolidateAfter).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    consolidate_after: Option<Duration>,
    /// Time-series interval and lower-bound sampling.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    sample_every: Option<Duration>,
    #[arg(long, value_enum, default_value = "on-demand")]
    capacity_type: CapacityArg,
    /// Folder for report.json, summary.txt and the plots (cost.svg, gpus.svg, pending-cdf.svg).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Output format on stdout.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Output,
    /// Run the FGD paper's fixed-cluster experiment on the trace's own cluster instead.
    #[arg(long, requires = "nodes")]
    fgd: bool,
    /// --fgd: the Alibaba node list (openb_node_list_gpu_node.csv).
    #[arg(long, value_name = "FILE")]
    nodes: Option<PathBuf>,
    /// --fgd: seed of the pod sampling.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    source: CatalogSource,
}

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| bad_input(format!("{}: {e}", path.display())))
}

fn file_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trace".to_string())
}

/// Reads the workload named by the flags.
fn load_workload(a: &SimulateArgs) -> Result<Workload, Failure> {
    if let Some(path) = &a.trace {
        let text = read(path)?;
        let source = path.display().to_string();
        let name = file_name(path);
        let header = text.lines().next().unwrap_or_default();
        let is_jsonl =
            path.extension().is_some_and(|e| e == "jsonl") || text.trim_start().starts_with('{');
        return if is_jsonl {
            workload::parse_jsonl(&source, &name, &text).map_err(bad_input)
        } else if header.split(',').any(|h| h.trim() == "gpu_milli") {
            let pods = crate::trace::parse_alibaba_pods(&source, &text).map_err(bad_input)?;
            workload::from_alibaba(&source, &name, &pods).map_err(bad_input)
        } else {
            workload::parse_csv(&source, &name, &text).map_err(bad_input)
        };
    }
    let load = LoadOptions::default();
    let inputs = super::read_inputs(&a.filenames, &load)?;
    for w in &inputs.warnings {
        eprintln!("warning: {w}");
    }
    let pattern = match a.pattern {
        PatternArg::Burst if a.duration.as_secs() == 0 => {
            return Err(usage("--duration must be at least 1s"));
        }
        PatternArg::Burst => Pattern::Burst {
            duration_s: a.duration.as_secs(),
        },
        PatternArg::Diurnal if a.days == 0 => return Err(usage("--days must be at least 1")),
        PatternArg::Diurnal => Pattern::Diurnal { days: a.days },
    };
    let name = a
        .filenames
        .first()
        .map(|f| file_name(Path::new(f)))
        .unwrap_or_else(|| "manifests".to_string());
    Ok(workload::synthetic(&name, &inputs.items, pattern))
}

pub fn simulate_cmd(a: SimulateArgs) -> Result<(), Failure> {
    if a.fgd {
        return fgd_cmd(&a);
    }
    if !(2..=48).contains(&a.replicas) {
        return Err(usage(format!(
            "--replicas must be 2..48, got {}",
            a.replicas
        )));
    }
    if !(2..=48).contains(&a.max_replicas) {
        return Err(usage(format!(
            "--max-replicas must be 2..48, got {}",
            a.max_replicas
        )));
    }
    let mut catalog = load_catalog(&a.source)?;
    if super::one_shot_live(&a.source.live) {
        catalog = super::live::apply(&a.source.live, catalog)?.0;
    }
    let workload = load_workload(&a)?;
    if workload.jobs.is_empty() {
        return Err(bad_input("the workload has no GPU pods"));
    }
    let mut cfg = SimConfig::default();
    if let Some(d) = a.launch_delay {
        cfg.launch_delay_s = d.as_secs();
    }
    if let Some(d) = a.consolidate_after {
        cfg.consolidate_after_s = d.as_secs();
    }
    if let Some(d) = a.sample_every {
        if d.as_secs() == 0 {
            return Err(usage("--sample-every must be at least 1s"));
        }
        cfg.sample_every_s = d.as_secs();
    }
    cfg.capacity_type = match a.capacity_type {
        CapacityArg::OnDemand => CapacityType::OnDemand,
        CapacityArg::Spot => CapacityType::Spot,
    };
    if cfg.capacity_type == CapacityType::Spot
        && catalog.types.iter().all(|t| t.spot_price.is_none())
    {
        return Err(usage(
            "--capacity-type spot: the catalog has no spot prices; pass --live-prices, or --catalog with a spot_usd_per_hour column",
        ));
    }
    cfg.plan.default_replicas = crate::model::ReplicaPolicy::Auto {
        max: a.max_replicas,
    };
    let strategies: Vec<Strategy> = a
        .strategies
        .iter()
        .map(|s| match s {
            StrategyArg::Dedicated => Strategy::Dedicated,
            StrategyArg::SlicingUnaware => Strategy::SlicingUnaware {
                replicas: a.replicas,
            },
            StrategyArg::Overlay => Strategy::FixedOverlay {
                replicas: a.replicas,
            },
            StrategyArg::GpuSlicer => Strategy::GpuSlicer,
        })
        .collect();

    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:40}] {pos}/{len} events ({elapsed})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("replaying {}", workload.name));
    let started = std::time::Instant::now();
    let report = engine::simulate(
        &catalog,
        &workload,
        &strategies,
        &cfg,
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    );
    bar.finish_and_clear();
    let elapsed = started.elapsed();

    let table = summary_table(&report, &cfg);
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("simulations/out").join(&report.workload));
    write_report(&out, &report, &table)?;
    match a.output {
        Output::Table => {
            print!("{table}");
            println!(
                "\nreplayed in {:.1} s; report, plots: {}",
                elapsed.as_secs_f64(),
                out.display()
            );
        }
        Output::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).map_err(bad_input)?
            );
        }
        Output::Yaml => print!("{}", serde_saphyr::to_string(&report).map_err(bad_input)?),
    }
    Ok(())
}

fn fgd_cmd(a: &SimulateArgs) -> Result<(), Failure> {
    let Some(trace) = &a.trace else {
        return Err(usage("--fgd needs --trace (an Alibaba pod list)"));
    };
    let Some(nodes_path) = &a.nodes else {
        return Err(usage("--fgd needs --nodes (the Alibaba node list)"));
    };
    let nodes = fgd::parse_alibaba_nodes(&nodes_path.display().to_string(), &read(nodes_path)?)
        .map_err(bad_input)?;
    let pods = crate::trace::parse_alibaba_pods(&trace.display().to_string(), &read(trace)?)
        .map_err(bad_input)?;
    let mut reports = Vec::new();
    for policy in [fgd::Policy::BestFit, fgd::Policy::GpuSlicer] {
        let cfg = fgd::FgdConfig {
            policy,
            seed: a.seed,
            arrived_until_pct: 100.0,
        };
        reports.push(fgd::run(&nodes, &pods, &cfg));
    }
    let mut text = format!(
        "FGD fixed-cluster experiment: {} nodes, {} GPUs; pods sampled from {} (seed {}) until their GPU requests reach 100 % of the cluster's GPUs\n\n",
        nodes.len(),
        reports.first().map_or(0, |r| r.total_gpus),
        trace.display(),
        a.seed
    );
    let mut rows = vec![vec![
        "POLICY".to_string(),
        "UNALLOCATED GPU %".into(),
        "IDLE IN SLICES %".into(),
        "PLACED".into(),
        "FAILED".into(),
    ]];
    for r in &reports {
        rows.push(vec![
            r.policy.clone(),
            format!("{:.1}", r.unallocated_gpu_pct),
            format!("{:.1}", r.idle_in_slices_gpu_pct),
            r.placed_pods.to_string(),
            r.failed_pods.to_string(),
        ]);
    }
    for (name, pct) in [
        (
            "best-fit (published, default)",
            fgd::FGD_PUBLISHED_DEFAULT_BESTFIT_UNALLOCATED_PCT,
        ),
        (
            "FGD (published, default)",
            fgd::FGD_PUBLISHED_DEFAULT_UNALLOCATED_PCT,
        ),
    ] {
        rows.push(vec![
            name.into(),
            format!("{pct:.1}"),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
    }
    text.push_str(&super::output::table(&rows));
    match a.output {
        Output::Table => print!("{text}"),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&reports).map_err(bad_input)?
        ),
        Output::Yaml => print!("{}", serde_saphyr::to_string(&reports).map_err(bad_input)?),
    }
    Ok(())
}

fn usd(x: f64) -> String {
    if x >= 1000.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// The comparison table (also `summary.txt`).
pub fn summary_table(r: &Report, cfg: &SimConfig) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} GPU pods over {:.1} days; launch delay {} s, consolidateAfter {} s, {} prices",
        r.workload,
        r.pods,
        r.horizon_s as f64 / 86_400.0,
        cfg.launch_delay_s,
        cfg.consolidate_after_s,
        cfg.capacity_type
    );
    let _ = writeln!(
        out,
        "floor (the planner's lower bound on the pods present, integrated): ${}\n",
        usd(r.lower_bound_cost)
    );
    let mut rows = vec![vec![
        "STRATEGY".to_string(),
        "COST $".into(),
        "× FLOOR".into(),
        "$/USED GPU-H".into(),
        "GPU-H PAID".into(),
        "PENDING P50/P95/P99 S".into(),
        "NODES".into(),
        "PEAK".into(),
        "NEVER PLACED".into(),
        "SHARE/MEM VIOLATIONS".into(),
    ]];
    for s in &r.strategies {
        rows.push(vec![
            s.strategy.clone(),
            usd(s.cost),
            format!("{:.2}", s.cost_over_lower_bound),
            format!("{:.3}", s.cost_per_used_gpu_hour),
            format!("{:.0}", s.gpu_hours_paid),
            format!(
                "{:.0}/{:.0}/{:.0}",
                s.pending_p50_s, s.pending_p95_s, s.pending_p99_s
            ),
            s.nodes_launched.to_string(),
            s.peak_nodes.to_string(),
            s.never_placed.to_string(),
            format!("{}/{}", s.share_violations, s.memory_violations),
        ]);
    }
    out.push_str(&super::output::table(&rows));
    if let Some(base) = r.strategies.iter().find(|s| s.strategy == "dedicated") {
        for s in r.strategies.iter().filter(|s| s.strategy != "dedicated") {
            if base.cost > 0.0 {
                let _ = writeln!(
                    out,
                    "{} vs dedicated: {:+.1} % cost",
                    s.strategy,
                    100.0 * (s.cost - base.cost) / base.cost
                );
            }
        }
    }
    out
}

fn write_report(dir: &Path, r: &Report, table: &str) -> Result<(), Failure> {
    let io = |e: std::io::Error| bad_input(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let json = serde_json::to_string_pretty(r).map_err(bad_input)?;
    std::fs::write(dir.join("report.json"), json).map_err(io)?;
    std::fs::write(dir.join("summary.txt"), table).map_err(io)?;
    plot_cost(&dir.join("cost.svg"), r).map_err(|e| bad_input(format!("cost.svg: {e}")))?;
    plot_gpus(&dir.join("gpus.svg"), r).map_err(|e| bad_input(format!("gpus.svg: {e}")))?;
    plot_pending_cdf(&dir.join("pending-cdf.svg"), r)
        .map_err(|e| bad_input(format!("pending-cdf.svg: {e}")))?;
    Ok(())
}

const COLORS: [RGBColor; 5] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x44, 0x44, 0x44),
];

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// Lines of (x, y) per label on one chart.
fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[(String, Vec<(f64, f64)>)],
) -> PlotResult {
    let x_max = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let y_max = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.05;
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    for (i, (label, points)) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn days(t: u64) -> f64 {
    t as f64 / 86_400.0
}

fn plot_cost(path: &Path, r: &Report) -> PlotResult {
    let mut lines: Vec<(String, Vec<(f64, f64)>)> = r
        .strategies
        .iter()
        .map(|s| {
            (
                s.strategy.clone(),
                s.series.iter().map(|p| (days(p.t), p.cost_rate)).collect(),
            )
        })
        .collect();
    lines.push((
        "floor (lower bound)".to_string(),
        r.lower_bound_series
            .iter()
            .map(|(t, c)| (days(*t), *c))
            .collect(),
    ));
    line_chart(
        path,
        &format!("{}: cost over time", r.workload),
        "days",
        "USD per hour",
        &lines,
    )
}

fn plot_gpus(path: &Path, r: &Report) -> PlotResult {
    let mut lines: Vec<(String, Vec<(f64, f64)>)> = r
        .strategies
        .iter()
        .map(|s| {
            (
                format!("{} (paid)", s.strategy),
                s.series
                    .iter()
                    .map(|p| (days(p.t), f64::from(p.gpus)))
                    .collect(),
            )
        })
        .collect();
    if let Some(s) = r.strategies.first() {
        lines.push((
            "requested".to_string(),
            s.series
                .iter()
                .map(|p| (days(p.t), p.gpus_allocated))
                .collect(),
        ));
    }
    line_chart(
        path,
        &format!("{}: GPUs paid and requested", r.workload),
        "days",
        "GPUs",
        &lines,
    )
}

fn plot_pending_cdf(path: &Path, r: &Report) -> PlotResult {
    let lines: Vec<(String, Vec<(f64, f64)>)> = r
        .strategies
        .iter()
        .map(|s| {
            let mut v = s.pending_times_s.clone();
            v.sort_unstable();
            let n = v.len().max(1) as f64;
            let points = v
                .iter()
                .enumerate()
                .map(|(i, t)| (*t as f64, (i + 1) as f64 / n))
                .collect();
            (s.strategy.clone(), points)
        })
        .collect();
    line_chart(
        path,
        &format!("{}: pending time CDF", r.workload),
        "seconds pending",
        "fraction of pods",
        &lines,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_svg_documents() {
        let dir = std::env::temp_dir().join(format!("gpu-slicer-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("t.svg");
        line_chart(
            &path,
            "t",
            "x",
            "y",
            &[
                ("a".into(), vec![(0.0, 1.0), (1.0, 2.0)]),
                ("b".into(), vec![]),
            ],
        )
        .expect("plots");
        let svg = std::fs::read_to_string(&path).expect("svg");
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{svg}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
