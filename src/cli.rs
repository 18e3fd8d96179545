//! Command line: clap arguments → validated settings → the pure stages → stdout.
//!
//! Exit codes (the contract): 0 a plan was made (unplaced pods are listed), 1 bad
//! input (the message names the file, object and field), 2 usage error.
//!
//! The clap `value_parser` functions (`parse_size`, `parse_gap`, `parse_duration`) return
//! `Result<_, String>`: that is clap's convention, and clap prints the message after the
//! flag's name.
//!
//! Size (~710 code lines): the flag structs of `plan`, `render` and `catalog` and the
//! shared steps every subcommand runs (catalog, inputs, policy, output); `run`,
//! `simulate`, `admit`, live prices and the tables are already their own files, and
//! splitting the shared steps further would scatter one pipeline over several files.

mod admit;
mod live;
mod memory;
mod output;
mod repack_flags;
#[cfg(feature = "controller")]
mod run_command;
mod share_flags;
#[cfg(feature = "controller")]
use run_command::from_cluster;
mod simulate;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::catalog::{self, DaemonSetOverhead};
use crate::config;
use crate::demand::{self, Inputs, LoadOptions};
use crate::guard;
use crate::model::{CapacityType, Catalog, MIB, Pool, ReplicaPolicy, quantity};
use crate::planner::{self, PlanOptions};
use crate::render;

#[derive(Debug, Parser)]
#[command(
    name = "gpu-slicer",
    version,
    about = "Replica-aware, GPU-memory-safe capacity planning for NVIDIA time-slicing with Karpenter"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Dry-run capacity planning: read pending GPU pods and print the cheapest plan.
    Plan(PlanArgs),
    /// Print the Kubernetes objects (multi-document YAML) that make Karpenter launch the plan.
    Render(RenderArgs),
    /// Run the controller: watch pending GPU pods, plan, render and apply continuously.
    #[cfg(feature = "controller")]
    Run(Box<run_command::RunArgs>),
    /// Print the instance catalog in use (types, GPUs, allocatable, prices and their source).
    Catalog(CatalogArgs),
    /// Replay a workload trace through provisioning strategies and compare cost and waiting.
    Simulate(Box<simulate::SimulateArgs>),
    /// Print, offline, what the admission webhook does to the pods among the inputs: the
    /// node affinity it adds, or why it rejects them.
    Admit(admit::AdmitArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum CapacityArg {
    #[value(name = "on-demand")]
    OnDemand,
    Spot,
}

#[derive(Debug, Args)]
struct CatalogSource {
    /// A CSV in the columns of the embedded aws-gpu-instances.csv (default: the embedded catalog).
    #[arg(long, value_name = "FILE")]
    catalog: Option<PathBuf>,
    /// Per-node DaemonSet overhead added to the DaemonSets among the inputs,
    /// e.g. `cpu=250m,memory=512Mi,pods=4`.
    #[arg(long, value_name = "LIST")]
    daemonset_overhead: Option<String>,
    #[command(flatten)]
    live: live::LiveFlags,
}

/// When to ask AWS for live instance data and prices.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LiveWhen {
    /// Always (warn and fall back when AWS cannot be reached).
    True,
    /// Never.
    False,
    /// When the AWS credential chain yields credentials (the default of run).
    Auto,
}

#[derive(Debug, Args)]
struct PlanArgs {
    #[command(flatten)]
    input: PlanInput,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: OutputFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum EmissionArg {
    Auto,
    Overlay,
    Static,
    Nodeclaim,
    V1beta1,
    V1alpha5,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum AmiFamilyArg {
    Bottlerocket,
    Al2023,
    Al2,
}

#[derive(Debug, Args)]
struct RenderArgs {
    #[command(flatten)]
    input: PlanInput,
    #[command(flatten)]
    flags: RenderFlags,
}

/// How plans become objects; shared by render and run.
#[derive(Debug, Args)]
struct RenderFlags {
    /// Emission mode; auto = each NodePool's gpu-slicer.io/emission annotation, else by --karpenter-version.
    #[arg(long, value_enum, default_value = "auto")]
    emission: EmissionArg,
    /// Karpenter version the objects are for (auto: <=0.32 v1alpha5, 0.33-0.37 v1beta1, 1.0-1.6 nodeclaim, >=1.7 overlay).
    #[arg(long, value_name = "X.Y", default_value = "1.14")]
    karpenter_version: String,
    /// AMI family of the node classes gpu-slicer generates.
    #[arg(long, value_enum, default_value = "al2023")]
    ami_family: AmiFamilyArg,
    /// AMI version in the generated amiSelectorTerms alias (pin one in production).
    #[arg(long, value_name = "VERSION", default_value = "latest")]
    ami_version: String,
    /// Cluster name: subnets and security groups tagged karpenter.sh/discovery=<name>.
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,
    /// IAM role of generated EC2NodeClasses (default KarpenterNodeRole-<cluster>).
    #[arg(long, value_name = "ROLE")]
    node_role: Option<String>,
    /// Instance profile of generated AWSNodeTemplates (default KarpenterNodeInstanceProfile-<cluster>).
    #[arg(long, value_name = "NAME")]
    instance_profile: Option<String>,
    /// Name of the device-plugin ConfigMap gpu-slicer writes.
    #[arg(long, value_name = "NAME", default_value = render::DEVICE_PLUGIN_CONFIGMAP)]
    configmap_name: String,
    /// Namespace of that ConfigMap (the NVIDIA device plugin's namespace).
    #[arg(long, value_name = "NS", default_value = "kube-system")]
    configmap_namespace: String,
    /// Write failRequestsGreaterThanOne: true in the time-slicing profiles.
    #[arg(long)]
    fail_requests_greater_than_one: bool,
}

#[derive(Debug, Args)]
struct PlanInput {
    /// Kubernetes YAML/JSON: a file, a directory (its *.yaml, *.yml, *.json), or - for stdin. Repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "PATH",
        required_unless_present = "from_cluster",
        conflicts_with = "from_cluster"
    )]
    filenames: Vec<String>,
    /// Read pending pods, gpu-slicer's nodes, NodePools, EC2NodeClasses and the device-plugin
    /// ConfigMap from the kubeconfig's cluster (read-only).
    #[arg(long)]
    from_cluster: bool,
    #[command(flatten)]
    limits: InputLimits,
    #[command(flatten)]
    policy: PolicyFlags,
}

/// How much a one-shot command reads from `-f`, over all its sources.
#[derive(Debug, Clone, Args)]
pub(super) struct InputLimits {
    /// Most bytes read over every -f source (a Kubernetes quantity: 256Mi, 1Gi).
    #[arg(long, value_name = "SIZE", default_value = "256Mi", value_parser = parse_size)]
    max_input_size: u64,
    /// Most YAML/JSON documents read over every -f source.
    #[arg(long, value_name = "N", default_value_t = demand::DEFAULT_MAX_DOCUMENTS)]
    max_documents: usize,
    /// Most pods read over every -f source, workloads' replicas included.
    #[arg(long, value_name = "N", default_value_t = demand::DEFAULT_MAX_PODS)]
    max_pods: usize,
}

fn parse_size(s: &str) -> Result<u64, String> {
    crate::model::quantity::bytes(s)
        .map_err(|e| format!("{e} (a size such as 256Mi or 1Gi)"))
        .and_then(|b| {
            if b == 0 {
                Err("must be more than 0".to_string())
            } else {
                Ok(b)
            }
        })
}

/// Planning policy shared by plan, render and run.
#[derive(Debug, Args)]
struct PolicyFlags {
    #[command(flatten)]
    source: CatalogSource,
    /// Replicas per GPU for sliced nodes: an integer 2..48, 1 (no sharing), or auto.
    /// Default: the device-plugin ConfigMap among the inputs, else auto.
    #[arg(long, value_name = "N|auto")]
    replicas: Option<String>,
    /// Upper bound for --replicas auto.
    #[arg(long, value_name = "N", default_value_t = 10)]
    max_replicas: u32,
    /// GPU memory kept free on every GPU (a quantity, e.g. 1Gi); overrides the NodePools' annotation.
    #[arg(long, value_name = "QTY")]
    gpu_memory_headroom: Option<String>,
    /// GPU memory each pod's CUDA context holds (a quantity), in pools without their own
    /// gpu-slicer.io/context-memory annotation. Default: 618Mi, measured (see the README);
    /// 0 counts none.
    #[arg(long, value_name = "QTY")]
    context_memory: Option<String>,
    #[command(flatten)]
    shares: share_flags::ShareFlags,
    /// Only these instance types (comma-separated).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    instance_types: Vec<String>,
    /// Only these instance families (comma-separated), e.g. g5,g6.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    families: Vec<String>,
    /// Capacity type to plan with (spot needs spot prices in the catalog).
    #[arg(long, value_enum, default_value = "on-demand")]
    capacity_type: CapacityArg,
    /// Name of the NVIDIA device plugin's ConfigMap (among the inputs, or in the cluster).
    #[arg(long, value_name = "NAME", default_value = demand::DEFAULT_DEVICE_PLUGIN_CONFIGMAP)]
    device_plugin_configmap: String,
    /// Namespace of that ConfigMap in the cluster (--from-cluster and run).
    #[arg(long, value_name = "NS", default_value = "kube-system")]
    device_plugin_namespace: String,
    /// Planner effort, a tuning knob: full (the anytime planner, to --gap or
    /// --plan-deadline) or fast (its first step only: the greedy cover, a weaker bound).
    #[arg(long, value_enum, default_value = "full")]
    effort: EffortArg,
    /// Stop once the plan is proven within this fraction of the optimum (0.01 = 1 %).
    /// Small demands are solved to proven optimality regardless.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.01, value_parser = parse_gap)]
    gap: f64,
    /// ... or once planning has taken this long: the best plan so far, with its proven
    /// gap. Default: 30s for plan and render, 1s for run.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    plan_deadline: Option<Duration>,
}

/// `--gap`: a fraction in [0, 1).
pub(super) fn parse_gap(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a fraction like 0.01"))?;
    if !(0.0..1.0).contains(&v) {
        return Err(format!("{s:?}: the gap must be at least 0 and below 1"));
    }
    Ok(v)
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum EffortArg {
    Full,
    Fast,
}

/// The planner's deadline for `plan` and `render` (`run`'s is in `run_command.rs`).
const PLAN_DEADLINE: Duration = Duration::from_secs(30);

/// `1s`, `500ms`, `10m`, `2h`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 1s, 500ms, 10m"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("{s:?}: unit must be ms, s, m or h")),
    };
    if !secs.is_finite() || !(0.0..=86_400.0 * 30.0).contains(&secs) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[derive(Debug, Args)]
struct CatalogArgs {
    #[command(flatten)]
    source: CatalogSource,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: OutputFormat,
}

/// A failure with its exit code: 1 bad input, 2 usage.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

fn bad_input(message: impl std::fmt::Display) -> Failure {
    Failure {
        code: 1,
        message: message.to_string(),
    }
}

fn usage(message: impl std::fmt::Display) -> Failure {
    Failure {
        code: 2,
        message: message.to_string(),
    }
}

/// Parses arguments and runs; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Plan(a) => plan(a),
        Command::Render(a) => render_cmd(a),
        #[cfg(feature = "controller")]
        Command::Run(a) => run_command::run_cmd(*a),
        Command::Catalog(a) => catalog_cmd(a),
        Command::Simulate(a) => simulate::simulate_cmd(*a),
        Command::Admit(a) => admit::admit_cmd(a),
    }
}

fn load_catalog(src: &CatalogSource) -> Result<Catalog, Failure> {
    match &src.catalog {
        None => catalog::embedded().map_err(bad_input),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
            let name = path.display().to_string();
            let prices = crate::model::PriceSource {
                name: format!("file: {name}"),
                observed: "unknown (from --catalog)".to_string(),
            };
            catalog::parse_csv(&name, &text, prices).map_err(bad_input)
        }
    }
}

/// `cpu=250m,memory=512Mi,pods=4`.
fn parse_overhead(s: &str) -> Result<DaemonSetOverhead, Failure> {
    let mut o = DaemonSetOverhead::default();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            usage(format!(
                "--daemonset-overhead: `{part}` is not key=value (keys: cpu, memory, pods)"
            ))
        })?;
        let field = |e: quantity::QuantityError| usage(format!("--daemonset-overhead {k}: {e}"));
        match k {
            "cpu" => o.resources.cpu_milli = quantity::cpu_milli(v).map_err(field)?,
            "memory" => o.resources.memory_bytes = quantity::bytes(v).map_err(field)?,
            "pods" => {
                o.pods = u32::try_from(quantity::count(v).map_err(field)?)
                    .map_err(|_| usage(format!("--daemonset-overhead pods: {v} is too large")))?
            }
            _ => {
                return Err(usage(format!(
                    "--daemonset-overhead: unknown key `{k}` (keys: cpu, memory, pods)"
                )));
            }
        }
    }
    Ok(o)
}

fn add_overhead(a: DaemonSetOverhead, b: DaemonSetOverhead) -> DaemonSetOverhead {
    DaemonSetOverhead {
        resources: a.resources.saturating_add(b.resources),
        pods: a.pods.saturating_add(b.pods),
    }
}

/// Reads every source named by `-f` (files in a directory in name order, not recursive).
fn read_inputs(
    paths: &[String],
    opts: &LoadOptions,
    limits: &InputLimits,
) -> Result<Inputs, Failure> {
    let mut inputs = Inputs::default();
    for (name, text) in read_sources(paths, limits.max_input_size)? {
        demand::load_str(&mut inputs, &name, &text, opts).map_err(bad_input)?;
    }
    Ok(inputs)
}

/// The text of every source named by `-f`, with its name for messages (`<stdin>` for
/// `-`): a file, or a directory's *.yaml, *.yml and *.json files in name order. More than
/// `max_bytes` over all of them is an error naming the source that crossed the limit (and
/// nothing past the limit is read).
fn read_sources(paths: &[String], max_bytes: u64) -> Result<Vec<(String, String)>, Failure> {
    let mut out = Vec::new();
    let mut used = 0u64;
    let mut read = |name: &str, r: &mut dyn std::io::Read| -> Result<String, Failure> {
        let mut text = String::new();
        let left = max_bytes.saturating_sub(used);
        std::io::Read::read_to_string(
            &mut std::io::Read::take(r, left.saturating_add(1)),
            &mut text,
        )
        .map_err(|e| bad_input(format!("{name}: {e}")))?;
        let n = text.len() as u64;
        if n > left {
            return Err(bad_input(format!(
                "{name}: the inputs are larger than --max-input-size ({max_bytes} bytes); \
                 raise the limit if they are meant"
            )));
        }
        used += n;
        Ok(text)
    };
    for p in paths {
        if p == "-" {
            let text = read("<stdin>", &mut std::io::stdin())?;
            out.push(("<stdin>".to_string(), text));
            continue;
        }
        let path = Path::new(p);
        let files: Vec<PathBuf> = if path.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| bad_input(format!("{p}: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && f.extension()
                            .and_then(|x| x.to_str())
                            .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"))
                })
                .collect();
            v.sort();
            if v.is_empty() {
                return Err(bad_input(format!("{p}: no *.yaml, *.yml or *.json files")));
            }
            v
        } else {
            vec![path.to_path_buf()]
        };
        for f in files {
            let name = f.display().to_string();
            let mut file =
                std::fs::File::open(&f).map_err(|e| bad_input(format!("{name}: {e}")))?;
            let text = read(&name, &mut file)?;
            out.push((name, text));
        }
    }
    Ok(out)
}

/// Everything one planning run read and decided.
struct Planned {
    catalog: Catalog,
    inputs: Inputs,
    opts: PlanOptions,
    plan: planner::Plan,
    /// gpu-slicer's existing nodes (from --from-cluster).
    fleet: Vec<planner::PlannedNode>,
}

fn plan(a: PlanArgs) -> Result<(), Failure> {
    let Planned {
        catalog: cat,
        opts,
        plan,
        ..
    } = make_plan(&a.input, None)?;
    let text = match a.output {
        OutputFormat::Table => output::plan_table(&plan, &cat, &opts),
        OutputFormat::Json => serde_json::to_string_pretty(&plan).map_err(bad_input)? + "\n",
        OutputFormat::Yaml => serde_saphyr::to_string(&plan).map_err(bad_input)?,
    };
    print!("{text}");
    Ok(())
}

fn render_options(a: &RenderFlags) -> Result<render::RenderOptions, Failure> {
    let karpenter_version =
        render::KarpenterVersion::parse(&a.karpenter_version).ok_or_else(|| {
            usage(format!(
                "--karpenter-version: {:?} is not a version like 1.14 or 0.32.10",
                a.karpenter_version
            ))
        })?;
    Ok(render::RenderOptions {
        emission: match a.emission {
            EmissionArg::Auto => render::Emission::Auto,
            EmissionArg::Overlay => render::Emission::Overlay,
            EmissionArg::Static => render::Emission::Static,
            EmissionArg::Nodeclaim => render::Emission::NodeClaim,
            EmissionArg::V1beta1 => render::Emission::V1beta1,
            EmissionArg::V1alpha5 => render::Emission::V1alpha5,
        },
        karpenter_version,
        discovered: None,
        ami_family: match a.ami_family {
            AmiFamilyArg::Bottlerocket => render::AmiFamily::Bottlerocket,
            AmiFamilyArg::Al2023 => render::AmiFamily::Al2023,
            AmiFamilyArg::Al2 => render::AmiFamily::Al2,
        },
        ami_version: a.ami_version.clone(),
        cluster_name: a
            .cluster_name
            .clone()
            .unwrap_or_else(|| render::CLUSTER_PLACEHOLDER.to_string()),
        node_role: a.node_role.clone(),
        instance_profile: a.instance_profile.clone(),
        configmap_namespace: a.configmap_namespace.clone(),
        configmap_name: a.configmap_name.clone(),
        fail_requests_greater_than_one: a.fail_requests_greater_than_one,
    })
}

fn render_cmd(a: RenderArgs) -> Result<(), Failure> {
    let opts = render_options(&a.flags)?;
    let p = make_plan(&a.input, Some((opts.ami_family, opts.ami_version.as_str())))?;
    let frame = render::Frame {
        pools: &p.inputs.pools,
        ec2nodeclasses: &p.inputs.ec2nodeclasses,
        device_plugin: p.inputs.device_plugin.as_ref(),
        fleet: &p.fleet,
    };
    // Nothing runs yet: the plan alone against each pool's budget and limits.
    guard::check(
        &p.plan,
        &p.opts.pools,
        &p.catalog,
        &guard::Budget::default(),
        &guard::Existing::default(),
    )
    .map_err(|refusals| bad_input(refused(&refusals, &p.inputs.pools)))?;
    let rendered = render::render(&p.plan, &p.catalog, frame, &opts).map_err(bad_input)?;
    for n in &rendered.notes {
        eprintln!("note: {n}");
    }
    print!("{}", rendered.to_yaml().map_err(bad_input)?);
    Ok(())
}

/// The budget guard's refusals, one line each, naming the pool's object and field.
fn refused(refusals: &[guard::Refusal], pools: &[(Pool, serde_json::Value)]) -> String {
    let lines: Vec<String> = refusals
        .iter()
        .map(|r| {
            let object = r.pool().map(|name| {
                let kind = pools
                    .iter()
                    .find(|(p, _)| p.name == name)
                    .and_then(|(_, raw)| raw.get("kind").and_then(serde_json::Value::as_str))
                    .unwrap_or("pool");
                format!("{kind} {name}: ")
            });
            let field = r.field().map(|f| format!("field `{f}`: "));
            format!(
                "{}{}{r}",
                object.unwrap_or_default(),
                field.unwrap_or_default()
            )
        })
        .collect();
    lines.join("\n")
}

/// The policy flags, checked.
struct Resolved {
    catalog: Catalog,
    overhead: DaemonSetOverhead,
    replicas: Option<ReplicaPolicy>,
    headroom_mib: Option<u64>,
    context_mib: u64,
    capacity: CapacityType,
    max_replicas: u32,
}

/// Who resolves the policy: a one-shot command merges live data (if asked) before the
/// checks; the controller merges it later, in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    OneShot,
    Controller,
}

fn resolve(a: &PolicyFlags, caller: Caller) -> Result<Resolved, Failure> {
    let mut catalog = load_catalog(&a.source)?;
    if caller == Caller::OneShot && one_shot_live(&a.source.live) {
        catalog = live::apply(&a.source.live, catalog)?.0;
    }
    // The controller's live data may bring spot prices the base catalog lacks.
    let live_later = caller == Caller::Controller
        && a.source.live.live_prices.unwrap_or(LiveWhen::Auto) != LiveWhen::False;
    let overhead = match &a.source.daemonset_overhead {
        Some(s) => parse_overhead(s)?,
        None => DaemonSetOverhead::default(),
    };
    if !(2..=48).contains(&a.max_replicas) {
        return Err(usage(format!(
            "--max-replicas must be an integer from 2 to 48, got {}",
            a.max_replicas
        )));
    }
    let replicas = match &a.replicas {
        Some(s) => Some(config::parse_replicas_flag(s, a.max_replicas).map_err(usage)?),
        None => None,
    };
    let headroom_mib = mib_flag("--gpu-memory-headroom", a.gpu_memory_headroom.as_deref())?;
    let context_mib = context_memory_flag(a.context_memory.as_deref())?;
    for t in &a.instance_types {
        if catalog::find(&catalog, t).is_none() {
            return Err(usage(format!(
                "--instance-types: {t} is not in the catalog"
            )));
        }
    }
    let capacity = match a.capacity_type {
        CapacityArg::OnDemand => CapacityType::OnDemand,
        CapacityArg::Spot => CapacityType::Spot,
    };
    if capacity == CapacityType::Spot
        && catalog.types.iter().all(|t| t.spot_price.is_none())
        && !live_later
    {
        return Err(usage(
            "--capacity-type spot: the catalog has no spot prices (the embedded one has none); \
             pass --live-prices, or --catalog with a spot_usd_per_hour column",
        ));
    }
    Ok(Resolved {
        catalog,
        overhead,
        replicas,
        headroom_mib,
        context_mib,
        capacity,
        max_replicas: a.max_replicas,
    })
}

/// A quantity flag in MiB (rounded up); a bad value is a usage error naming the flag.
fn mib_flag(flag: &str, value: Option<&str>) -> Result<Option<u64>, Failure> {
    value
        .map(|q| {
            quantity::bytes(q)
                .map(|b| b.div_ceil(MIB))
                .map_err(|e| usage(format!("{flag}: {e}")))
        })
        .transpose()
}

/// `--context-memory` (`plan`, `render`, `run`, `admit`), else the measured default.
fn context_memory_flag(value: Option<&str>) -> Result<u64, Failure> {
    Ok(mib_flag("--context-memory", value)?.unwrap_or(crate::model::DEFAULT_CONTEXT_MEMORY_MIB))
}

/// Plan options from the policy and what was read. Replicas: the flag wins, then annotated
/// NodePools, then the device-plugin ConfigMap, then auto.
fn plan_options(a: &PolicyFlags, r: &Resolved, inputs: &Inputs) -> PlanOptions {
    let default_replicas = r.replicas.clone().unwrap_or_else(|| {
        inputs
            .device_plugin
            .as_ref()
            .and_then(|d| d.replica_policy())
            .unwrap_or(ReplicaPolicy::Auto {
                max: r.max_replicas,
            })
    });
    let mut pools: Vec<Pool> = inputs.pools.iter().map(|(p, _)| p.clone()).collect();
    if pools.is_empty() {
        pools.push(Pool::default_pool(default_replicas.clone()));
    }
    for p in &mut pools {
        if let Some(rp) = &r.replicas {
            p.replicas = rp.clone();
        }
        if let Some(h) = r.headroom_mib {
            p.gpu_memory_headroom_mib = h;
        }
    }
    PlanOptions {
        effort: match a.effort {
            EffortArg::Fast => planner::Effort::Fast,
            EffortArg::Full => planner::Effort::Full,
        },
        gap: a.gap,
        deadline: Some(a.plan_deadline.unwrap_or(PLAN_DEADLINE)),
        capacity_types: vec![r.capacity],
        instance_types: a.instance_types.clone(),
        families: a.families.clone(),
        daemonset_overhead: add_overhead(inputs.daemonset_overhead, r.overhead),
        pools,
        default_replicas,
        context_memory_mib: r.context_mib,
        share_model: a.shares.model(),
        efficiency: a.shares.efficiency(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..PlanOptions::default()
    }
}

/// Without the `controller` feature there is no kube client: `--from-cluster` is a
/// usage error that says how to get it.
#[cfg(not(feature = "controller"))]
fn from_cluster(
    _: &PolicyFlags,
    _: &Catalog,
) -> Result<(Inputs, Vec<planner::PlannedNode>), Failure> {
    Err(usage(
        "--from-cluster: this gpu-slicer was built without the `controller` feature \
         (cargo build --features controller)",
    ))
}

/// Whether a one-shot command asks AWS (`--live-prices` or `--live-prices=auto`).
fn one_shot_live(flags: &live::LiveFlags) -> bool {
    matches!(flags.live_prices, Some(LiveWhen::True | LiveWhen::Auto))
}

/// Reads the inputs and plans. `generated`: the AMI family and version of the node classes
/// `render` would generate (`None` for `plan`, which generates none).
fn make_plan(
    a: &PlanInput,
    generated: Option<(render::AmiFamily, &str)>,
) -> Result<Planned, Failure> {
    let r = resolve(&a.policy, Caller::OneShot)?;
    let (inputs, fleet) = if a.from_cluster {
        from_cluster(&a.policy, &r.catalog)?
    } else {
        let load = LoadOptions {
            device_plugin_configmap: a.policy.device_plugin_configmap.clone(),
            max_documents: a.limits.max_documents,
            max_pods: a.limits.max_pods,
        };
        let inputs = read_inputs(&a.filenames, &load, &a.limits)?;
        for w in &inputs.warnings {
            eprintln!("warning: {w}");
        }
        for n in &inputs.notes {
            eprintln!("note: {n}");
        }
        (inputs, Vec::new())
    };
    let mut opts = plan_options(&a.policy, &r, &inputs);
    if !inputs.pools.is_empty() {
        let notes = render::settle_sharing(
            &mut opts.pools,
            &inputs.pools,
            &inputs.ec2nodeclasses,
            generated,
        )
        .map_err(bad_input)?;
        for n in notes {
            eprintln!("note: {n}");
        }
    }
    let plan = planner::plan(&r.catalog, &inputs.items, &opts);
    for w in memory::undeclared_memory_warnings(&inputs.items, &plan.nodes) {
        eprintln!("warning: {w}");
    }
    Ok(Planned {
        catalog: r.catalog,
        inputs,
        opts,
        plan,
        fleet,
    })
}

fn catalog_cmd(a: CatalogArgs) -> Result<(), Failure> {
    let mut cat = load_catalog(&a.source)?;
    let mut report = None;
    if one_shot_live(&a.source.live) {
        (cat, report) = live::apply(&a.source.live, cat)?;
    }
    let overhead = match &a.source.daemonset_overhead {
        Some(s) => parse_overhead(s)?,
        None => DaemonSetOverhead::default(),
    };
    let text = match a.output {
        OutputFormat::Table => output::catalog_table(&cat, overhead, report.as_ref()),
        OutputFormat::Json => {
            serde_json::to_string_pretty(&output::CatalogDoc::new(&cat, report.as_ref()))
                .map_err(bad_input)?
                + "\n"
        }
        OutputFormat::Yaml => {
            serde_saphyr::to_string(&output::CatalogDoc::new(&cat, report.as_ref()))
                .map_err(bad_input)?
        }
    };
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        for bad in ["", "s", "1d", "-1s", "1e999s", "9999h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
