//! `gpu-slicer run` (feature `controller`): the flags, checked and turned into the
//! controller's [`RunConfig`] (`TryFrom<RunArgs>`: every flag error is a usage error,
//! exit 2), then the runtime, the kube client and the controller. A kube client that
//! cannot be made and a controller that stops on an error exit 3 (the environment
//! failed), not 1 (bad input). Also `plan --from-cluster`'s read of the cluster.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::repack_flags::RepackFlags;
use super::{
    Caller, Failure, Inputs, LiveWhen, PolicyFlags, RenderFlags, parse_duration, plan_options,
    render_options, resolve, usage,
};
use crate::controller::run::RunConfig;
use crate::guard::Namespaces;
use crate::model::Catalog;
use crate::planner;
use crate::reconcile::cache::SnapshotSettings;
use crate::render;

/// The planner's deadline in `run` (and `simulate`, see `sim::SimConfig`): the controller
/// re-plans every batch.
const RUN_PLAN_DEADLINE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    #[command(flatten)]
    policy: PolicyFlags,
    #[command(flatten)]
    flags: RenderFlags,
    /// Do everything but write: plans are served at /plan, nothing is applied.
    #[arg(long)]
    dry_run: bool,
    /// A batch of pending pods closes after this long without a new one (like Karpenter).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    batch_idle_duration: Duration,
    /// ... or this long after it opened.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    batch_max_duration: Duration,
    /// A round runs at least this often, even without pod events.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    resync_period: Duration,
    /// A node not sliced as planned after this long gets an Event and stays tainted.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    slicing_timeout: Duration,
    /// Refuse plans that bring gpu-slicer's capacity above this many $/h.
    #[arg(long, value_name = "USD")]
    max_hourly_cost: Option<f64>,
    /// Refuse plans that bring gpu-slicer's nodes above this count.
    #[arg(long, value_name = "N")]
    max_nodes: Option<usize>,
    /// Plan only for pods in these namespaces (comma-separated; default all).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Never plan for pods in these namespaces.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    exclude_namespaces: Vec<String>,
    /// Address of /healthz, /readyz, /metrics and /plan.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    metrics_bind_address: std::net::SocketAddr,
    /// Port of the admission webhook (HTTPS only, POST /mutate-pods); 0 turns it off.
    #[arg(long, value_name = "PORT", default_value_t = 9443)]
    webhook_port: u16,
    /// IP address the admission webhook listens on (`::` for IPv6 clusters).
    #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
    webhook_bind_address: std::net::IpAddr,
    /// Directory of the webhook's tls.crt and tls.key (PEM), re-read when they change.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/etc/gpu-slicer/webhook-tls"
    )]
    webhook_cert_dir: PathBuf,
    /// The leader Lease.
    #[arg(long, value_name = "NAME", default_value = "gpu-slicer")]
    lease_name: String,
    #[arg(
        long,
        value_name = "NS",
        env = "POD_NAMESPACE",
        default_value = "gpu-slicer"
    )]
    lease_namespace: String,
    /// This replica's identity in the Lease (default: the pod name, else the host name).
    #[arg(long, value_name = "ID", env = "POD_NAME")]
    identity: Option<String>,
    /// Sustained writes per second (governor quota) and burst.
    #[arg(long, value_name = "N", default_value_t = 10)]
    writes_per_second: u32,
    #[arg(long, value_name = "N", default_value_t = 20)]
    write_burst: u32,
    /// Most pod Events per round.
    #[arg(long, value_name = "N", default_value_t = 200)]
    max_pod_events: usize,
    /// Log format; the level comes from RUST_LOG (default info).
    #[arg(long, value_enum, default_value = "plain")]
    log_format: LogFormat,
    #[command(flatten)]
    repack: RepackFlags,
    /// Replacement nodes not Ready and sliced after this long roll the move back.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    repack_ready_timeout: Duration,
}

/// `--repack-*` → the controller's repack settings, each flag checked.
fn repack_config(a: &RunArgs) -> Result<crate::controller::repack::RepackConfig, Failure> {
    a.repack.check()?;
    if a.repack_ready_timeout.is_zero() {
        return Err(usage("--repack-ready-timeout must be more than 0s"));
    }
    Ok(crate::controller::repack::RepackConfig {
        interval: a.repack.interval(),
        settings: crate::reconcile::repack::Settings {
            min_saving: a.repack.repack_min_saving,
            min_pod_age_s: a.repack.repack_min_pod_age.as_secs(),
        },
        max_nodes_per_hour: a.repack.repack_max_nodes_per_hour as usize,
        ready_timeout: a.repack_ready_timeout,
    })
}

/// The controller could not run: no cluster to talk to, or it stopped on an error.
fn environment(message: impl std::fmt::Display) -> Failure {
    Failure {
        code: 3,
        message: message.to_string(),
    }
}

impl TryFrom<RunArgs> for RunConfig {
    type Error = Failure;

    fn try_from(a: RunArgs) -> Result<RunConfig, Failure> {
        let repack = repack_config(&a)?;
        let r = resolve(&a.policy, Caller::Controller)?;
        let mut render = render_options(&a.flags)?;
        if render.cluster_name == render::CLUSTER_PLACEHOLDER {
            return Err(usage(
                "run needs --cluster-name: generated EC2NodeClasses select subnets and security groups by it",
            ));
        }
        let emission_forced = render.emission != render::Emission::Auto;
        render.discovered = None;
        let nz = |n: u32, flag: &str| {
            std::num::NonZeroU32::new(n).ok_or_else(|| usage(format!("{flag} must be at least 1")))
        };
        let writer = crate::controller::writer::WriterConfig {
            dry_run: a.dry_run,
            writes_per_second: nz(a.writes_per_second, "--writes-per-second")?,
            burst: nz(a.write_burst, "--write-burst")?,
            ..Default::default()
        };
        let identity = a.identity.clone().unwrap_or_else(|| {
            std::env::var("HOSTNAME")
                .unwrap_or_else(|_| format!("gpu-slicer-{}", std::process::id()))
        });
        let mut plan = plan_options(&a.policy, &r, &Inputs::default());
        // The controller re-plans every batch: a short deadline unless told otherwise.
        plan.deadline = Some(a.policy.plan_deadline.unwrap_or(RUN_PLAN_DEADLINE));
        // The dedicated comparison is for reports; the controller does not need it.
        plan.dedicated = false;
        Ok(RunConfig {
            settings: crate::reconcile::round::Settings {
                plan,
                render,
                budget: crate::guard::Budget {
                    max_hourly_cost: a.max_hourly_cost,
                    max_nodes: a.max_nodes,
                },
            },
            catalog: r.catalog,
            live: match a.policy.source.live.live_prices.unwrap_or(LiveWhen::Auto) {
                LiveWhen::False => None,
                when => Some(crate::controller::prices::LiveConfig {
                    settings: a.policy.source.live.settings()?,
                    only_with_credentials: when == LiveWhen::Auto,
                    cache_dir: a.policy.source.live.cache_dir(false),
                    tick: Duration::from_secs(60),
                    sdk_config: None,
                }),
            },
            snapshot: SnapshotSettings {
                namespaces: Namespaces {
                    allow: a.namespaces.clone(),
                    deny: a.exclude_namespaces.clone(),
                },
                device_plugin_configmap: Some((
                    a.policy.device_plugin_namespace.clone(),
                    a.policy.device_plugin_configmap.clone(),
                )),
                repack_now_s: None,
            },
            batch_idle: a.batch_idle_duration,
            batch_max: a.batch_max_duration,
            resync: a.resync_period,
            slicing_timeout: a.slicing_timeout,
            addr: a.metrics_bind_address,
            lease: crate::controller::elector::LeaseConfig {
                name: a.lease_name.clone(),
                namespace: a.lease_namespace.clone(),
                identity,
                duration: Duration::from_secs(15),
                renew_every: Duration::from_secs(5),
            },
            writer,
            emission_forced,
            max_pod_events: a.max_pod_events,
            webhook: (a.webhook_port != 0).then(|| crate::controller::webhook::WebhookConfig {
                addr: std::net::SocketAddr::new(a.webhook_bind_address, a.webhook_port),
                cert_dir: a.webhook_cert_dir.clone(),
            }),
            repack,
        })
    }
}

/// `gpu-slicer run`.
pub(super) fn run_cmd(a: RunArgs) -> Result<(), Failure> {
    init_tracing(a.log_format);
    let cfg = RunConfig::try_from(a)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| environment(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| environment(format!("no usable in-cluster config or kubeconfig: {e}")))?;
        crate::controller::run::run(client, cfg)
            .await
            .map_err(|e| environment(e.to_string()))
    })
}

/// Logs to stderr; plain logs are coloured only when stderr is a terminal and `NO_COLOR`
/// is unset or empty (so `kubectl logs` shows no escape codes).
fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = log_colours(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Plain => builder.try_init(),
    };
}

/// Whether plain logs carry ANSI colours: on a terminal, unless `NO_COLOR` is set to a
/// non-empty value (<https://no-color.org>).
fn log_colours(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Reads the cluster in the kubeconfig, read-only, through the controller's caches.
pub(super) fn from_cluster(
    a: &PolicyFlags,
    cat: &Catalog,
) -> Result<(Inputs, Vec<planner::PlannedNode>), Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| environment(format!("cannot start the async runtime: {e}")))?;
    let settings = SnapshotSettings {
        namespaces: Namespaces::default(),
        device_plugin_configmap: Some((
            a.device_plugin_namespace.clone(),
            a.device_plugin_configmap.clone(),
        )),
        repack_now_s: None,
    };
    let snap = rt.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| environment(format!("--from-cluster: no usable kubeconfig: {e}")))?;
        crate::controller::oneshot::snapshot(&client, &settings, &a.device_plugin_namespace)
            .await
            .map_err(|e| environment(e.to_string()))
    })?;
    for (pod, why) in &snap.pod_errors {
        eprintln!("warning: pod {pod}: {why}");
    }
    for (obj, why) in &snap.pool_errors {
        eprintln!("warning: {obj}: {why}");
    }
    if let Some(e) = &snap.device_plugin_error {
        eprintln!("warning: device-plugin ConfigMap: {e}");
    }
    let pools: Vec<crate::model::Pool> = snap.pools.iter().map(|(p, _)| p.clone()).collect();
    let fleet = snap
        .fleet
        .iter()
        .filter_map(|f| crate::reconcile::round::as_planned(f, cat, &pools))
        .collect();
    let inputs = Inputs {
        items: snap.pending,
        pools: snap.pools,
        ec2nodeclasses: snap.ec2nodeclasses,
        device_plugin: snap.device_plugin,
        ..Inputs::default()
    };
    Ok((inputs, fleet))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(log_colours(true, None));
        assert!(log_colours(true, Some(OsStr::new(""))));
        assert!(!log_colours(true, Some(OsStr::new("1"))));
        assert!(!log_colours(false, None));
        assert!(!log_colours(false, Some(OsStr::new(""))));
    }

    fn repack_of(extra: &[&str]) -> Result<crate::controller::repack::RepackConfig, Failure> {
        let mut v = vec!["gpu-slicer", "run", "--cluster-name", "c"];
        v.extend_from_slice(extra);
        match Cli::try_parse_from(v).expect("parses").command {
            Command::Run(a) => repack_config(&a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn repack_flags_are_checked_and_errors_name_the_flag() {
        let d = repack_of(&[]).expect("defaults");
        assert_eq!(d, crate::controller::repack::RepackConfig::default());
        let c = repack_of(&[
            "--repack-interval=0s",
            "--repack-min-saving=0.1",
            "--repack-min-pod-age=10m",
            "--repack-max-nodes-per-hour=3",
            "--repack-ready-timeout=20m",
        ])
        .expect("valid");
        assert_eq!(c.interval, None, "0s turns repacking off");
        assert_eq!(c.settings.min_saving, 0.1);
        assert_eq!(c.settings.min_pod_age_s, 600);
        assert_eq!(c.max_nodes_per_hour, 3);
        assert_eq!(c.ready_timeout, Duration::from_secs(1200));
        for bad in [
            "--repack-min-saving=1.5",
            "--repack-min-saving=-0.1",
            "--repack-min-saving=NaN",
            "--repack-max-nodes-per-hour=0",
            "--repack-ready-timeout=0s",
        ] {
            let e = repack_of(&[bad]).expect_err(bad);
            let flag = bad.split('=').next().unwrap_or_default();
            assert!(e.message.contains(flag), "{bad}: {}", e.message);
            assert_eq!(e.code, 2, "{bad}");
        }
    }
}
