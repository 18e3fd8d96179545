//! Command line: clap arguments → validated settings → the pure stages → stdout.
//!
//! Exit codes (the contract): 0 a plan was made (unplaced pods are listed), 1 bad
//! input (the message names the file, object and field), 2 usage error.

mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::catalog::{self, DaemonSetOverhead};
use crate::config;
use crate::demand::{self, Inputs, LoadOptions};
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
    /// Print the instance catalog in use (types, GPUs, allocatable, prices and their source).
    Catalog(CatalogArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
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
}

#[derive(Debug, Args)]
struct PlanArgs {
    #[command(flatten)]
    input: PlanInput,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Output,
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
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    filenames: Vec<String>,
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
    /// Only these instance types (comma-separated).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    instance_types: Vec<String>,
    /// Only these instance families (comma-separated), e.g. g5,g6.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    families: Vec<String>,
    /// Capacity type to plan with (spot needs spot prices in the catalog).
    #[arg(long, value_enum, default_value = "on-demand")]
    capacity_type: CapacityArg,
    /// Name of the NVIDIA device plugin's ConfigMap among the inputs.
    #[arg(long, value_name = "NAME", default_value = demand::DEFAULT_DEVICE_PLUGIN_CONFIGMAP)]
    device_plugin_configmap: String,
}

#[derive(Debug, Args)]
struct CatalogArgs {
    #[command(flatten)]
    source: CatalogSource,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Output,
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
        Command::Catalog(a) => catalog_cmd(a),
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
fn read_inputs(paths: &[String], opts: &LoadOptions) -> Result<Inputs, Failure> {
    let mut inputs = Inputs::default();
    for p in paths {
        if p == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| bad_input(format!("<stdin>: {e}")))?;
            demand::load_str(&mut inputs, "<stdin>", &text, opts).map_err(bad_input)?;
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
            let text =
                std::fs::read_to_string(&f).map_err(|e| bad_input(format!("{name}: {e}")))?;
            demand::load_str(&mut inputs, &name, &text, opts).map_err(bad_input)?;
        }
    }
    Ok(inputs)
}

/// Everything one planning run read and decided.
struct Planned {
    catalog: Catalog,
    inputs: Inputs,
    opts: PlanOptions,
    plan: planner::Plan,
}

fn plan(a: PlanArgs) -> Result<(), Failure> {
    let Planned {
        catalog: cat,
        opts,
        plan,
        ..
    } = make_plan(&a.input)?;
    let text = match a.output {
        Output::Table => output::plan_table(&plan, &cat, &opts),
        Output::Json => serde_json::to_string_pretty(&plan).map_err(bad_input)? + "\n",
        Output::Yaml => serde_saphyr::to_string(&plan).map_err(bad_input)?,
    };
    print!("{text}");
    Ok(())
}

fn render_cmd(a: RenderArgs) -> Result<(), Failure> {
    let karpenter_version =
        render::KarpenterVersion::parse(&a.karpenter_version).ok_or_else(|| {
            usage(format!(
                "--karpenter-version: {:?} is not a version like 1.14 or 0.32.10",
                a.karpenter_version
            ))
        })?;
    let opts = render::RenderOptions {
        emission: match a.emission {
            EmissionArg::Auto => render::Emission::Auto,
            EmissionArg::Overlay => render::Emission::Overlay,
            EmissionArg::Static => render::Emission::Static,
            EmissionArg::Nodeclaim => render::Emission::NodeClaim,
            EmissionArg::V1beta1 => render::Emission::V1beta1,
            EmissionArg::V1alpha5 => render::Emission::V1alpha5,
        },
        karpenter_version,
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
    };
    let p = make_plan(&a.input)?;
    let frame = render::Frame {
        pools: &p.inputs.pools,
        ec2nodeclasses: &p.inputs.ec2nodeclasses,
        device_plugin: p.inputs.device_plugin.as_ref(),
        fleet: &[],
    };
    let rendered = render::render(&p.plan, &p.catalog, frame, &opts).map_err(bad_input)?;
    for n in &rendered.notes {
        eprintln!("note: {n}");
    }
    print!("{}", rendered.to_yaml().map_err(bad_input)?);
    Ok(())
}

fn make_plan(a: &PlanInput) -> Result<Planned, Failure> {
    let cat = load_catalog(&a.source)?;
    let flag_overhead = match &a.source.daemonset_overhead {
        Some(s) => parse_overhead(s)?,
        None => DaemonSetOverhead::default(),
    };
    if !(2..=48).contains(&a.max_replicas) {
        return Err(usage(format!(
            "--max-replicas must be an integer from 2 to 48, got {}",
            a.max_replicas
        )));
    }
    let flag_replicas = match &a.replicas {
        Some(s) => Some(config::parse_replicas_flag(s, a.max_replicas).map_err(usage)?),
        None => None,
    };
    let flag_headroom_mib = match &a.gpu_memory_headroom {
        Some(q) => Some(
            quantity::bytes(q)
                .map(|b| b.div_ceil(MIB))
                .map_err(|e| usage(format!("--gpu-memory-headroom: {e}")))?,
        ),
        None => None,
    };
    for t in &a.instance_types {
        if catalog::find(&cat, t).is_none() {
            return Err(usage(format!(
                "--instance-types: {t} is not in the catalog"
            )));
        }
    }
    let capacity = match a.capacity_type {
        CapacityArg::OnDemand => CapacityType::OnDemand,
        CapacityArg::Spot => CapacityType::Spot,
    };
    if capacity == CapacityType::Spot && cat.types.iter().all(|t| t.spot_price.is_none()) {
        return Err(usage(
            "--capacity-type spot: the catalog has no spot prices (the embedded one has none); \
             pass --catalog with a spot_usd_per_hour column",
        ));
    }
    let load = LoadOptions {
        device_plugin_configmap: a.device_plugin_configmap.clone(),
    };
    let inputs = read_inputs(&a.filenames, &load)?;
    for w in &inputs.warnings {
        eprintln!("warning: {w}");
    }
    // Replicas: the flag wins, then annotated NodePools, then the device-plugin
    // ConfigMap, then auto.
    let default_replicas = flag_replicas.clone().unwrap_or_else(|| {
        inputs
            .device_plugin
            .as_ref()
            .and_then(|d| d.replica_policy())
            .unwrap_or(ReplicaPolicy::Auto {
                max: a.max_replicas,
            })
    });
    // The implicit pool when no NodePool opted in; the flags override every pool.
    let mut pools: Vec<Pool> = inputs.pools.iter().map(|(p, _)| p.clone()).collect();
    if pools.is_empty() {
        pools.push(Pool::default_pool(default_replicas.clone()));
    }
    for p in &mut pools {
        if let Some(r) = &flag_replicas {
            p.replicas = r.clone();
        }
        if let Some(h) = flag_headroom_mib {
            p.gpu_memory_headroom_mib = h;
        }
    }
    let opts = PlanOptions {
        capacity_types: vec![capacity],
        instance_types: a.instance_types.clone(),
        families: a.families.clone(),
        daemonset_overhead: add_overhead(inputs.daemonset_overhead, flag_overhead),
        pools,
        default_replicas,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..PlanOptions::default()
    };
    let plan = planner::plan(&cat, &inputs.items, &opts);
    Ok(Planned {
        catalog: cat,
        inputs,
        opts,
        plan,
    })
}

fn catalog_cmd(a: CatalogArgs) -> Result<(), Failure> {
    let cat = load_catalog(&a.source)?;
    let overhead = match &a.source.daemonset_overhead {
        Some(s) => parse_overhead(s)?,
        None => DaemonSetOverhead::default(),
    };
    let text = match a.output {
        Output::Table => output::catalog_table(&cat, overhead),
        Output::Json => serde_json::to_string_pretty(&cat).map_err(bad_input)? + "\n",
        Output::Yaml => serde_saphyr::to_string(&cat).map_err(bad_input)?,
    };
    print!("{text}");
    Ok(())
}
