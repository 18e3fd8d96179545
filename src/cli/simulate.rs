//! `gpu-slicer simulate`: read a workload, replay it through the strategies (the pure
//! `crate::sim`), print the ranked comparison and write the report folder (JSON, table,
//! SVG plots, `plots`). `--sweep` replays it once per setting combination and prints how
//! the ranking moves (`sweep`). `--fgd` runs the FGD paper's fixed-cluster experiment
//! instead.
//!
//! `parse_time_scale` (a clap `value_parser`) and `parse_variant` (one `--strategies`
//! entry, its message turned into a usage error) return `Result<_, String>`: that is
//! clap's convention for value parsers, and the message follows the flag's name.
//!
//! Size (~640 code lines): the replay's flags, their checks into a `SimConfig`, and its
//! text report; the SVGs are `simulate/plots.rs`.

#[cfg(feature = "plots")]
mod plots;
mod sweep;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::repack_flags::RepackFlags;
use super::{
    CapacityArg, CatalogSource, Failure, OutputFormat, bad_input, load_catalog, parse_duration,
    usage,
};
use crate::demand::LoadOptions;
use crate::model::CapacityType;
use crate::sim::engine::Binding;
use crate::sim::workload::{self, Pattern};
use crate::sim::{Consolidation, Report, SimConfig, Strategy, Variant, Workload, engine, fgd};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PatternArg {
    Burst,
    Diurnal,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum BindingArg {
    /// No admission webhook: the scheduler knows nothing of shares or GPU memory.
    KubeScheduler,
    /// gpu-slicer's admission affinity on every GPU pod, matched against slice labels.
    Admission,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ConsolidationArg {
    Empty,
    Delete,
    Replace,
    Multi,
}

/// The strategies replayed when `--strategies` is not given.
pub const DEFAULT_STRATEGIES: &str =
    "dedicated,dedicated+multi,slicing-unaware,overlay,overlay-safe,overlay-safe+multi,gpu-slicer";

/// Default of `--max-replay-days`: a little over a year.
const DEFAULT_MAX_REPLAY_DAYS: u32 = 400;
/// Most sampled points per strategy in a replay.
const MAX_SAMPLES: u64 = 100_000;

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A trace: an Alibaba `openb_pod_list_*.csv`, or our CSV / JSON Lines format
    /// (told apart by the header and the .jsonl extension).
    #[arg(long, value_name = "FILE", conflicts_with = "filenames", required_unless_present_any = ["filenames", "fgd"])]
    trace: Option<PathBuf>,
    /// An Alibaba pod list whose creation/deletion times fill in the --trace's missing
    /// ones, by pod name (the multigpu* variants carry none; they are `default`'s pods).
    #[arg(long, value_name = "FILE", requires = "trace")]
    times_from: Option<PathBuf>,
    /// Kubernetes manifests (like `plan -f`) replayed with --pattern.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    filenames: Vec<String>,
    /// Arrival pattern of the manifests' pods.
    #[arg(long, value_enum, default_value = "burst")]
    pattern: PatternArg,
    /// --pattern burst: how long the pods run.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    duration: Duration,
    /// --pattern diurnal: how many days (at most --max-replay-days).
    #[arg(long, value_name = "N", default_value_t = 2)]
    days: u32,
    /// Longest replay: a workload whose pods span more days (first arrival to last
    /// departure) is refused.
    #[arg(long, value_name = "DAYS", default_value_t = DEFAULT_MAX_REPLAY_DAYS)]
    max_replay_days: u32,
    /// Strategies to compare, comma-separated: dedicated, slicing-unaware[-rN], overlay[-rN]
    /// (N defaults to --replicas), overlay-safe, gpu-slicer; a Karpenter-like one may end
    /// in +empty, +delete, +replace or +multi (its consolidation; default --consolidation).
    #[arg(long, value_name = "LIST", default_value = DEFAULT_STRATEGIES)]
    strategies: String,
    /// Consolidation of the Karpenter-like strategies named without a +suffix.
    #[arg(long, value_enum, default_value = "delete")]
    consolidation: ConsolidationArg,
    /// How pods of gpu-slicer and overlay-safe are bound (the other strategies have no
    /// admission webhook).
    #[arg(long, value_enum, default_value = "admission")]
    binding: BindingArg,
    /// Replay the trace K times denser: arrivals compressed K-fold towards the first,
    /// durations kept (about K times the concurrency).
    #[arg(long, value_name = "K", default_value_t = 1.0, value_parser = parse_time_scale)]
    time_scale: f64,
    /// Window of the floor (the full planner's LP bound on the pods present throughout).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    floor_window: Option<Duration>,
    /// Threads for the floor's LP bounds (default: the CPUs available).
    #[arg(long, value_name = "N")]
    floor_threads: Option<usize>,
    /// Replay once per combination, e.g. `launch-delay=45s,90s,120s
    /// consolidate-after=0s,30s,300s`, and print how the ranking moves.
    #[arg(long, value_name = "KEY=V1,V2", num_args = 1..)]
    sweep: Vec<String>,
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
    /// Re-packing, as the controller does it.
    #[command(flatten)]
    repack: RepackFlags,
    /// The gpu-slicer NodePool's disruption budget, percent of its nodes (Karpenter's
    /// default for a NodePool without budgets).
    #[arg(long, value_name = "PERCENT", default_value_t = 10)]
    repack_budget: u32,
    /// gpu-slicer's planner stops once its plan is proven within this fraction of the
    /// optimum (as `run --gap`).
    #[arg(long, value_name = "FRACTION", default_value_t = 0.01, value_parser = super::parse_gap)]
    gap: f64,
    /// ... or after this long per batch (as `run --plan-deadline`).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    plan_deadline: Duration,
    /// How shares are read (as `run --share-model`): gpu-slicer and overlay-safe plan and
    /// admit by it; the report counts share violations under both readings.
    #[command(flatten)]
    shares: super::share_flags::ShareFlags,
    /// Folder for report.json, summary.txt and the plots (cost.svg, gpus.svg, pending-cdf.svg).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Output format on stdout.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: OutputFormat,
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
    #[command(flatten)]
    limits: super::InputLimits,
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
            let mut pods = crate::trace::parse_alibaba_pods(&source, &text).map_err(bad_input)?;
            if let Some(t) = &a.times_from {
                let timed = crate::trace::parse_alibaba_pods(&t.display().to_string(), &read(t)?)
                    .map_err(bad_input)?;
                workload::borrow_times(&mut pods, &timed);
                // Pods --times-from does not know keep no time: they are left out.
                let before = pods.len();
                pods.retain(|p| p.creation_time.is_some());
                if pods.len() < before {
                    eprintln!(
                        "warning: {} pods of {} have no time in {} and are left out",
                        before - pods.len(),
                        path.display(),
                        t.display()
                    );
                }
            }
            workload::from_alibaba(&source, &name, &pods).map_err(bad_input)
        } else {
            workload::parse_csv(&source, &name, &text).map_err(bad_input)
        };
    }
    let load = LoadOptions {
        max_documents: a.limits.max_documents,
        max_pods: a.limits.max_pods,
        ..LoadOptions::default()
    };
    let inputs = super::read_inputs(&a.filenames, &load, &a.limits)?;
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
        PatternArg::Diurnal if a.days > a.max_replay_days => {
            return Err(usage(format!(
                "--days {} is more than --max-replay-days {}",
                a.days, a.max_replay_days
            )));
        }
        PatternArg::Diurnal => Pattern::Diurnal { days: a.days },
    };
    let name = a
        .filenames
        .first()
        .map(|f| file_name(Path::new(f)))
        .unwrap_or_else(|| "manifests".to_string());
    Ok(workload::synthetic(&name, &inputs.items, pattern))
}

fn parse_time_scale(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(k) if k.is_finite() && k > 0.0 => Ok(k),
        _ => Err(format!("{s:?} is not a positive number like 10 or 0.5")),
    }
}

/// One `--strategies` entry: `base[+consolidation]`.
fn parse_variant(entry: &str, replicas: u32, default: Consolidation) -> Result<Variant, String> {
    let (base, cons) = match entry.split_once('+') {
        Some((b, c)) => (
            b,
            Some(Consolidation::parse(c).ok_or_else(|| {
                format!("{entry:?}: consolidation {c:?} is not empty, delete, replace or multi")
            })?),
        ),
        None => (entry, None),
    };
    let with_r = |prefix: &str| -> Option<Result<u32, String>> {
        let rest = base.strip_prefix(prefix)?;
        if rest.is_empty() {
            return Some(Ok(replicas));
        }
        let n = rest.strip_prefix("-r")?;
        Some(match n.parse::<u32>() {
            Ok(r) if (2..=48).contains(&r) => Ok(r),
            _ => Err(format!("{entry:?}: replicas must be 2..48")),
        })
    };
    let strategy = match base {
        "dedicated" => Strategy::Dedicated,
        "overlay-safe" => Strategy::OverlaySafe,
        "gpu-slicer" => Strategy::GpuSlicer,
        _ => {
            if let Some(r) = with_r("slicing-unaware") {
                Strategy::SlicingUnaware { replicas: r? }
            } else if let Some(r) = with_r("overlay") {
                Strategy::FixedOverlay { replicas: r? }
            } else {
                return Err(format!(
                    "{entry:?} is not a strategy (dedicated, slicing-unaware[-rN], overlay[-rN], overlay-safe, gpu-slicer)"
                ));
            }
        }
    };
    let consolidation = match (strategy, cons) {
        (Strategy::GpuSlicer, Some(c)) if c != Consolidation::Delete => {
            return Err(format!(
                "{entry:?}: gpu-slicer's nodes are consolidated by deletion only (replace and multi are Karpenter's)"
            ));
        }
        (Strategy::GpuSlicer, _) => Consolidation::Delete,
        (_, Some(c)) => c,
        (_, None) => default,
    };
    Ok(Variant::new(strategy, consolidation))
}

/// The `--strategies` list.
pub fn parse_strategies(
    list: &str,
    replicas: u32,
    default: Consolidation,
) -> Result<Vec<Variant>, Failure> {
    let mut out: Vec<Variant> = Vec::new();
    for entry in list.split(',').map(str::trim) {
        if entry.is_empty() {
            continue;
        }
        let v = parse_variant(entry, replicas, default)
            .map_err(|e| usage(format!("--strategies: {e}")))?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    if out.is_empty() {
        return Err(usage("--strategies: no strategy given"));
    }
    Ok(out)
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
    let default_consolidation = match a.consolidation {
        ConsolidationArg::Empty => Consolidation::Empty,
        ConsolidationArg::Delete => Consolidation::Delete,
        ConsolidationArg::Replace => Consolidation::Replace,
        ConsolidationArg::Multi => Consolidation::Multi,
    };
    let variants = parse_strategies(&a.strategies, a.replicas, default_consolidation)?;
    let sweep = sweep::parse(&a.sweep)?;
    let mut workload = load_workload(&a)?;
    if workload.jobs.is_empty() {
        return Err(bad_input("the workload has no GPU pods"));
    }
    workload = workload::time_scaled(&workload, a.time_scale);
    // The replay's span bounds its events, samples and floor windows.
    let t0 = workload.jobs.iter().map(|j| j.arrival).min().unwrap_or(0);
    let t_end = workload
        .jobs
        .iter()
        .map(|j| j.departure.unwrap_or(j.arrival).max(j.arrival))
        .max()
        .unwrap_or(0);
    let span = t_end.saturating_sub(t0);
    if span > u64::from(a.max_replay_days) * 86_400 {
        return Err(bad_input(format!(
            "the workload spans {:.1} days (first arrival to last departure), more than \
             --max-replay-days {}; replay a part of it, or raise the limit",
            span as f64 / 86_400.0,
            a.max_replay_days
        )));
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
    // At most MAX_SAMPLES points per strategy: a longer replay is sampled more sparsely.
    let sparsest = span.div_ceil(MAX_SAMPLES).max(1);
    if cfg.sample_every_s > 0 && cfg.sample_every_s < sparsest {
        eprintln!(
            "note: sampling every {sparsest} s instead of {} s, to keep at most {MAX_SAMPLES} \
             points over {:.1} days",
            cfg.sample_every_s,
            span as f64 / 86_400.0
        );
        cfg.sample_every_s = sparsest;
    }
    if let Some(d) = a.floor_window {
        if d.as_secs() == 0 {
            return Err(usage("--floor-window must be at least 1s"));
        }
        cfg.floor_window_s = d.as_secs();
    }
    cfg.floor_threads = match a.floor_threads {
        Some(0) => return Err(usage("--floor-threads must be at least 1")),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    cfg.binding = match a.binding {
        BindingArg::KubeScheduler => Binding::KubeScheduler,
        BindingArg::Admission => Binding::Admission,
    };
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
    cfg.plan.gap = a.gap;
    cfg.plan.deadline = Some(a.plan_deadline);
    cfg.plan.share_model = a.shares.model();
    cfg.plan.efficiency = a.shares.efficiency();
    repack_settings(&a, &mut cfg)?;

    if !sweep.is_empty() {
        return sweep::run(&catalog, &workload, &variants, &cfg, &sweep, a.output);
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:40}] {pos}/{len} events ({elapsed})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("replaying {}", workload.name));
    let started = std::time::Instant::now();
    let report = engine::simulate(&catalog, &workload, &variants, &cfg, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    let elapsed = started.elapsed();

    let table = summary_table(&report, &cfg);
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("simulations/out").join(&report.workload));
    write_report(&out, &report, &table)?;
    match a.output {
        OutputFormat::Table => {
            print!("{table}");
            println!(
                "\nreplayed in {:.1} s; report, plots: {}",
                elapsed.as_secs_f64(),
                out.display()
            );
        }
        OutputFormat::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).map_err(bad_input)?
            );
        }
        OutputFormat::Yaml => print!("{}", serde_saphyr::to_string(&report).map_err(bad_input)?),
    }
    Ok(())
}

/// `--repack-*` → the replay's repack settings, each flag checked as `run` checks it.
fn repack_settings(a: &SimulateArgs, cfg: &mut SimConfig) -> Result<(), Failure> {
    a.repack.check()?;
    let r = &a.repack;
    cfg.repack_interval_s = r.interval().map_or(0, |d| d.as_secs());
    cfg.repack_min_saving = r.repack_min_saving;
    cfg.repack_min_pod_age_s = r.repack_min_pod_age.as_secs();
    cfg.repack_max_nodes_per_hour = r.repack_max_nodes_per_hour as usize;
    if a.repack_budget > 100 {
        return Err(usage(format!(
            "--repack-budget must be a percentage from 0 to 100, not {}",
            a.repack_budget
        )));
    }
    cfg.repack_budget_pct = a.repack_budget;
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
    for policy in [fgd::FgdPolicy::BestFit, fgd::FgdPolicy::GpuSlicer] {
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
        OutputFormat::Table => print!("{text}"),
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&reports).map_err(bad_input)?
        ),
        OutputFormat::Yaml => print!("{}", serde_saphyr::to_string(&reports).map_err(bad_input)?),
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

/// The reports in rank order.
pub fn ranked(r: &Report) -> Vec<&crate::sim::StrategyReport> {
    let mut v: Vec<_> = r.strategies.iter().collect();
    v.sort_by_key(|s| s.rank);
    v
}

/// The comparison table (also `summary.txt`), in rank order: safe strategies first by
/// cost, then the unsafe ones by cost.
pub fn summary_table(r: &Report, cfg: &SimConfig) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} GPU pods over {:.1} days; launch delay {} s, consolidateAfter {} s, {} prices, binding {}",
        r.workload,
        r.pods,
        r.horizon_s as f64 / 86_400.0,
        cfg.launch_delay_s,
        cfg.consolidate_after_s,
        cfg.capacity_type,
        cfg.binding.as_str(),
    );
    let _ = writeln!(
        out,
        "gpu-slicer repack: {}",
        if cfg.repack_interval_s == 0 {
            "off".to_string()
        } else {
            format!(
                "every {} s, min saving {:.0} %, min pod age {} s, at most {} nodes per hour, disruption budget {} % of a pool's nodes{}",
                cfg.repack_interval_s,
                100.0 * cfg.repack_min_saving,
                cfg.repack_min_pod_age_s,
                cfg.repack_max_nodes_per_hour,
                cfg.repack_budget_pct,
                if cfg.repack_budget_pct == 10 {
                    " (Karpenter's default)"
                } else {
                    ""
                }
            )
        }
    );
    let _ = writeln!(
        out,
        "shares read as {} (--share-model; time-slicing efficiency {:.2}, MPS {:.2}): SHARE VIOL counts that reading, TIME/THRU each reading alone",
        cfg.plan.share_model.as_str(),
        f64::from(cfg.plan.efficiency.time_slicing_milli) / 1000.0,
        f64::from(cfg.plan.efficiency.mps_milli) / 1000.0,
    );
    let _ = writeln!(
        out,
        "floor (full planner's LP bound on the pods present throughout each {} s window): ${}",
        r.floor_window_s,
        usd(r.lower_bound_cost)
    );
    let _ = writeln!(
        out,
        "weak floor (fast planner's bound at every change of the pods present): ${}{}\n",
        usd(r.weak_lower_bound_cost),
        if r.lower_bound_cost + 1e-6 >= r.weak_lower_bound_cost {
            ""
        } else {
            "  (ABOVE the floor)"
        }
    );
    let mut rows = vec![vec![
        "RANK".to_string(),
        "STRATEGY".into(),
        "SAFETY".into(),
        "COST $".into(),
        "× FLOOR".into(),
        "$/USED GPU-H".into(),
        "GPU-H PAID".into(),
        "PENDING P50/P95/P99 S".into(),
        "NODES".into(),
        "PEAK".into(),
        "NEVER PLACED".into(),
        "MOVES".into(),
        "REPACKS/RB".into(),
        "RESTARTS/DAY".into(),
        "OVERLAP NODE-H".into(),
        "SHARE VIOL".into(),
        "TIME/THRU".into(),
        "MEM VIOL".into(),
    ]];
    for s in ranked(r) {
        rows.push(vec![
            s.rank.to_string(),
            s.strategy.clone(),
            if s.safe { "safe" } else { "UNSAFE" }.to_string(),
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
            s.disruptions.to_string(),
            format!("{}/{}", s.repack_moves, s.repack_rollbacks),
            format!("{:.1}", s.restarts_per_day),
            format!("{:.1}", s.overlap_node_hours),
            s.share_violations.to_string(),
            format!(
                "{}/{}",
                s.share_violations_by_time, s.share_violations_by_throughput
            ),
            s.memory_violations.to_string(),
        ]);
    }
    out.push_str(&super::output::table(&rows));
    if r.strategies.iter().any(|s| !s.safe) {
        out.push_str(
            "UNSAFE: puts pods on slices smaller than their gpu-share or gpu-memory; ranked after every safe strategy\n",
        );
    }
    out.push_str(
        "MOVES: pods moved by Karpenter-like consolidation; REPACKS/RB: gpu-slicer's repack moves finished / rolled back; RESTARTS/DAY: pods restarted by repack per day; OVERLAP NODE-H: replacement nodes' hours beside the nodes they replace (paid twice; already in COST)\n",
    );
    if let Some(gs) = r.strategies.iter().find(|s| s.strategy == "gpu-slicer") {
        for s in ranked(r).into_iter().filter(|s| s.strategy != "gpu-slicer") {
            if s.cost > 0.0 {
                let _ = writeln!(
                    out,
                    "gpu-slicer vs {} ({}): {:+.1} % cost",
                    s.strategy,
                    if s.safe { "safe" } else { "unsafe" },
                    100.0 * (gs.cost - s.cost) / s.cost
                );
            }
        }
    }
    out
}

/// The report folder: `report.json`, `summary.txt` and, with the `plots` feature, three
/// SVG plots (`plots.rs`).
fn write_report(dir: &Path, r: &Report, table: &str) -> Result<(), Failure> {
    let io = |e: std::io::Error| bad_input(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let json = serde_json::to_string_pretty(r).map_err(bad_input)?;
    std::fs::write(dir.join("report.json"), json).map_err(io)?;
    std::fs::write(dir.join("summary.txt"), table).map_err(io)?;
    #[cfg(feature = "plots")]
    plots::write_plots(dir, r)?;
    #[cfg(not(feature = "plots"))]
    eprintln!("note: no plots: this gpu-slicer was built without the `plots` feature");
    Ok(())
}
