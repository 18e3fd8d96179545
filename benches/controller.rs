//! Controller benchmark (`cargo bench --bench controller`): caches holding 10,000 pending
//! GPU pods (drawn from the Alibaba `default` trace, as real `Pod` objects folded through
//! the watch path) and 2,000 gpu-slicer nodes with 3 running pods each; then planning
//! rounds (snapshot + in-flight assignment + fast plan + render + diff), median of 5.
//! Reports the resident set size after filling the caches and its peak after the rounds
//! (`/proc/self/status`), and the round time. Then repack rounds on the same 2,000 nodes
//! (every pod an hour old, Karpenter's default budget of 10 % per NodePool): `propose`
//! with the controller's default allowance (10 nodes an hour) and with the whole budget
//! (200 nodes), median of 5 each, and the move each one finds.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gpu_slicer::catalog;
use gpu_slicer::guard::Budget;
use gpu_slicer::model::{DemandItem, ReplicaPolicy, Sharing};
use gpu_slicer::planner::{Columns, PlanOptions};
use gpu_slicer::reconcile::cache::{Cache, SnapshotSettings, pod_entry, pod_key, trim_node};
use gpu_slicer::reconcile::repack;
use gpu_slicer::reconcile::round::{self, Settings};
use gpu_slicer::render::RenderOptions;
use gpu_slicer::trace::{alibaba_demand, parse_alibaba_pods, sample_demand};
use k8s_openapi::api::core::v1::{
    Affinity, Container, Node, NodeAffinity, NodeCondition, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, NodeSpec, NodeStatus, Pod, PodCondition, PodSpec, PodStatus,
    ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn rss_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn q(s: String) -> Quantity {
    Quantity(s)
}

/// A pending pod as the API server would send it.
fn pod(d: &DemandItem, node: Option<&str>) -> Pod {
    let (ns, name) = d.id.split_once('/').unwrap_or(("default", &d.id));
    let mut ann = BTreeMap::new();
    if let Some(m) = d.gpu_memory_mib {
        ann.insert("gpu-slicer.io/gpu-memory".to_string(), format!("{m}Mi"));
    }
    if let Some(s) = d.gpu_share_milli {
        ann.insert("gpu-slicer.io/gpu-share".to_string(), format!("{s}m"));
    }
    if d.sharing == Sharing::Exclusive && d.gpus == 1 {
        ann.insert("gpu-slicer.io/sharing".to_string(), "exclusive".to_string());
    }
    let affinity = d.affinity_terms.first().map(|term| Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(
                        term.iter()
                            .map(|r| NodeSelectorRequirement {
                                key: r.key.clone(),
                                operator: r.operator.as_str().to_string(),
                                values: Some(r.values.clone()),
                            })
                            .collect(),
                    ),
                    ..NodeSelectorTerm::default()
                }],
            }),
            ..NodeAffinity::default()
        }),
        ..Affinity::default()
    });
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            annotations: Some(ann),
            labels: Some(BTreeMap::from([("app".to_string(), "bench".to_string())])),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: node.map(str::to_string),
            affinity,
            containers: vec![Container {
                name: "main".into(),
                image: Some("example/inference:latest".into()),
                resources: Some(ResourceRequirements {
                    requests: Some(BTreeMap::from([
                        ("cpu".to_string(), q(format!("{}m", d.requests.cpu_milli))),
                        (
                            "memory".to_string(),
                            q(format!("{}", d.requests.memory_bytes)),
                        ),
                    ])),
                    limits: Some(BTreeMap::from([(
                        "nvidia.com/gpu".to_string(),
                        q(d.gpus.to_string()),
                    )])),
                    ..ResourceRequirements::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some(if node.is_some() { "Running" } else { "Pending" }.into()),
            conditions: node.is_none().then(|| {
                vec![PodCondition {
                    type_: "PodScheduled".into(),
                    status: "False".into(),
                    reason: Some("Unschedulable".into()),
                    message: Some("0/2000 nodes are available: insufficient nvidia.com/gpu".into()),
                    ..PodCondition::default()
                }]
            }),
            ..PodStatus::default()
        }),
    }
}

fn node(i: usize, ty: &str, r: u32) -> Node {
    let labels = BTreeMap::from([
        ("gpu-slicer.io/pool".to_string(), "gpu-slicer".to_string()),
        ("gpu-slicer.io/replicas".to_string(), r.to_string()),
        ("gpu-slicer.io/profile".to_string(), format!("ts-r{r}")),
        (
            "node.kubernetes.io/instance-type".to_string(),
            ty.to_string(),
        ),
        (
            "karpenter.sh/capacity-type".to_string(),
            "on-demand".to_string(),
        ),
        (
            "karpenter.sh/nodepool".to_string(),
            format!("gpu-slicer-ts-r{r}"),
        ),
        (
            "topology.kubernetes.io/zone".to_string(),
            "us-east-1a".to_string(),
        ),
    ]);
    Node {
        metadata: ObjectMeta {
            name: Some(format!("ip-10-0-{}-{}.ec2.internal", i / 250, i % 250)),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..NodeCondition::default()
            }]),
            allocatable: Some(BTreeMap::from([(
                "nvidia.com/gpu".to_string(),
                q((r * 4).to_string()),
            )])),
            ..NodeStatus::default()
        }),
    }
}

fn main() {
    let before = rss_kib("VmRSS:").unwrap_or(0);
    let path = format!(
        "{}/simulations/data/alibaba-gpu-2023/openb_pod_list_default.csv",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("trace");
    let pods = parse_alibaba_pods(&path, &text).expect("parses");
    let all: Vec<DemandItem> = pods
        .iter()
        .filter_map(|p| alibaba_demand(p, "default"))
        .collect();
    let pending = sample_demand(&all, 10_000, 7);
    drop(text);
    let cat = catalog::embedded().expect("catalog");

    let mut cache = Cache::default();
    let t = Instant::now();
    cache.pods.init();
    for d in &pending {
        let p = pod(d, None);
        if let Some(e) = pod_entry(&p) {
            cache.pods.init_apply(pod_key(&p), e);
        }
    }
    let types = ["g4dn.xlarge", "g5.xlarge", "g6.xlarge", "g4dn.12xlarge"];
    cache.nodes.init();
    for i in 0..2_000 {
        let n = node(i, types[i % types.len()], 4);
        let name = n.metadata.name.clone().unwrap_or_default();
        for j in 0..3 {
            let mut d = all[(i * 3 + j) % all.len()].clone();
            d.id = format!("running/p-{i}-{j}");
            let p = pod(&d, Some(&name));
            if let Some(e) = pod_entry(&p) {
                cache.pods.init_apply(pod_key(&p), e);
            }
        }
        cache.nodes.init_apply(name, trim_node(n));
    }
    cache.pods.init_done();
    cache.nodes.init_done();
    let fold = t.elapsed();
    let filled = rss_kib("VmRSS:").unwrap_or(0);

    let settings = Settings {
        // `run`'s defaults: the anytime planner with a 1 s deadline, no dedicated plan.
        plan: PlanOptions {
            deadline: Some(Duration::from_secs(1)),
            dedicated: false,
            default_replicas: ReplicaPolicy::Auto { max: 10 },
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ..PlanOptions::default()
        },
        render: RenderOptions {
            cluster_name: "bench".into(),
            ..RenderOptions::default()
        },
        budget: Budget::default(),
    };
    let snap_settings = SnapshotSettings::default();
    let mut snap_times = Vec::new();
    let mut round_times = Vec::new();
    let mut last = None;
    // Columns carried from round to round, as the controller does.
    let mut columns = Columns::default();
    let mut gaps = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let snap = cache.snapshot(&snap_settings);
        snap_times.push(t.elapsed());
        let nodes = snap.nodes_per_nodepool.clone();
        let nodes_of =
            |k: &gpu_slicer::reconcile::ObjectKey| nodes.get(&k.name).copied().unwrap_or(0);
        let inputs = round::RoundInputs {
            catalog: &cat,
            pending: &snap.pending,
            fleet: &snap.fleet,
            pools: &snap.pools,
            ec2nodeclasses: &snap.ec2nodeclasses,
            device_plugin: snap.device_plugin.as_ref(),
            live: &snap.live,
            nodes_of: &nodes_of,
        };
        let out = round::round_with(&inputs, &settings, &mut columns);
        round_times.push(t.elapsed());
        let st = &out.plan.solver;
        gaps.push(format!(
            "{:.2} % ({} rounds, {:?}, plan {:.0} ms)",
            100.0 * st.gap,
            st.rounds,
            st.stopped_by,
            1000.0 * st.elapsed_seconds
        ));
        last = Some((snap.pending.len(), snap.fleet.len(), out));
    }
    let repack_times = repack_rounds(&cache, &all, &cat, &settings.plan);
    let peak = rss_kib("VmHWM:").unwrap_or(0);
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (pending_n, fleet_n, out) = last.expect("rounds ran");
    println!(
        "caches: {pending_n} pending GPU pods, {fleet_n} gpu-slicer nodes, 6,000 running pods"
    );
    println!("fold into caches: {:.1} ms", fold.as_secs_f64() * 1000.0);
    println!(
        "snapshot: median {:.1} ms; full round (snapshot + plan + render + diff): median {:.1} ms",
        median(snap_times).as_secs_f64() * 1000.0,
        median(round_times).as_secs_f64() * 1000.0
    );
    println!("proven gap, round by round: {}", gaps.join(", "));
    println!(
        "plan: {} new nodes, ${:.2}/h, bound ${:.2}/h, {} objects to apply, {} unplaced",
        out.plan.nodes.len(),
        out.plan.summary.hourly_cost,
        out.plan.summary.lower_bound_hourly_cost,
        out.actions.apply.len(),
        out.plan.unplaced.len()
    );
    for (allowance, t, p) in repack_times {
        let m = p.chosen.as_ref();
        println!(
            "repack round, allowance {allowance} nodes: median {:.1} ms over {} candidates, \
             {} prefixes tried; move: {} nodes -> {} new (+{} onto kept), saves ${:.2}/h, \
             {} pods restarted",
            t.as_secs_f64() * 1000.0,
            p.candidates,
            p.tried.len(),
            m.map_or(0, |m| m.replaced.len()),
            m.map_or(0, |m| m.plan.nodes.len()),
            m.map_or(0, |m| m.onto_kept.len()),
            m.map_or(0.0, repack::Move::saving_per_hour),
            m.map_or(0, |m| m.pods_restarted),
        );
    }
    println!(
        "RSS: {:.1} MiB at start, {:.1} MiB with caches filled, peak {:.1} MiB",
        before as f64 / 1024.0,
        filled as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}

/// The 2,000 nodes as repack sees them (the bench's own running pods, an hour old), then
/// `propose` at two allowances: (allowance, median time, last proposal).
fn repack_rounds(
    cache: &Cache,
    all: &[DemandItem],
    cat: &gpu_slicer::model::Catalog,
    plan: &PlanOptions,
) -> Vec<(usize, Duration, repack::Proposal)> {
    let snap = cache.snapshot(&SnapshotSettings::default());
    let mut nodes: Vec<repack::Node> = Vec::with_capacity(snap.fleet.len());
    let mut per_pool: BTreeMap<String, usize> = BTreeMap::new();
    for f in &snap.fleet {
        // Node names are ip-10-0-<i/250>-<i%250>.ec2.internal.
        let mut parts = f.name.split(['-', '.']).skip(3);
        let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) else {
            continue;
        };
        let i = a * 250 + b;
        let pods = (0..3)
            .map(|j| {
                let mut d = all[(i * 3 + j) % all.len()].clone();
                d.id = format!("running/p-{i}-{j}");
                repack::RunningPod {
                    item: d,
                    age_s: 3_600,
                    do_not_disrupt: false,
                    unmovable: None,
                }
            })
            .collect();
        let np = f.labels.get("karpenter.sh/nodepool").cloned();
        if let Some(np) = &np {
            *per_pool.entry(np.clone()).or_default() += 1;
        }
        nodes.push(repack::Node {
            fleet: f.clone(),
            claim: Some(format!("claim-{i}")),
            nodepool: np,
            pods,
            moving: false,
        });
    }
    let budgets: BTreeMap<String, u32> = per_pool
        .iter()
        .filter_map(|(np, &n)| {
            repack::allowed_disruptions(&serde_json::json!({"spec": {}}), n, 0)
                .ok()
                .map(|a| (np.clone(), a))
        })
        .collect();
    let pools = gpu_slicer::planner::effective_pools(plan);
    let mut out = Vec::new();
    for allowance in [10, 2_000] {
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..5 {
            let t = Instant::now();
            let p = repack::propose(
                &repack::RepackInputs {
                    catalog: cat,
                    nodes: &nodes,
                    pools: &pools,
                    plan,
                    budgets: &budgets,
                    allowance,
                },
                &repack::Settings::default(),
            );
            times.push(t.elapsed());
            last = Some(p);
        }
        times.sort();
        if let Some(p) = last {
            out.push((allowance, times[times.len() / 2], p));
        }
    }
    out
}
