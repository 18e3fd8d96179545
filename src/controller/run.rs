//! `gpu-slicer run`: discovery, watches folded into the caches, the leader elector, the
//! probe server, the admission webhook (every replica, see `webhook`), and the loop that batches pending pods, runs a round, publishes Events
//! and metrics, hands the actions to the writer, and removes startup taints from nodes
//! that came up sliced.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, ObjectReference, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::events::Reporter;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Discovery};
use serde_json::Value;
use tokio::sync::{Notify, watch};

use super::elector::{Elector, LeaseConfig};
use super::events::{Events, object_ref};
use super::server::{self, Shared};
use super::webhook;
use super::writer::{
    ApiResources, LeaderFlag, Writer, WriterConfig, honouring_retry_after, retry_after,
};
use crate::model::contract::{MANAGED_BY, MANAGER, POOL_LABEL, SLICING_PENDING_TAINT};
use crate::model::{Catalog, DemandItem};
use crate::reconcile::batch::Batcher;
use crate::reconcile::cache::{
    Cache, SnapshotSettings, Store, pod_entry, pod_key, trim_node, trim_object,
};
use crate::reconcile::nodes::{Slicing, slicing};
use crate::reconcile::round::{self, Settings};
use crate::reconcile::{ObjectKey, is_owned};
use crate::render::emission_for_served;

/// Everything `run` needs, validated by the CLI.
pub struct RunConfig {
    pub settings: Settings,
    /// The base catalog (embedded or `--catalog`).
    pub catalog: Catalog,
    /// Live AWS data merged into the base catalog, if asked.
    pub live: Option<super::prices::LiveConfig>,
    pub snapshot: SnapshotSettings,
    pub batch_idle: Duration,
    pub batch_max: Duration,
    /// A round runs at least this often, even without pod events.
    pub resync: Duration,
    pub slicing_timeout: Duration,
    pub addr: SocketAddr,
    pub lease: LeaseConfig,
    pub writer: WriterConfig,
    /// `--emission` other than auto: discovery does not override it.
    pub emission_forced: bool,
    /// Most pod Events per round (Events are writes too).
    pub max_pod_events: usize,
    /// The admission webhook's HTTPS server (every replica); None with `--webhook-port 0`.
    pub webhook: Option<super::webhook::WebhookConfig>,
    /// Defragmentation (`--repack-*`).
    pub repack: super::repack::RepackConfig,
}

/// Kinds whose watches must sync before `/readyz`.
type Watched = Vec<&'static str>;

/// What the cluster serves of Karpenter's groups, as (group, version, kind), and each
/// served resource as discovery describes it (its plural included).
type Served = (
    BTreeSet<(String, String, String)>,
    Vec<kube::api::ApiResource>,
);

async fn served(client: &Client) -> Result<Served, kube::Error> {
    let d = Discovery::new(client.clone())
        .filter(&["karpenter.sh", "karpenter.k8s.aws"])
        .run()
        .await?;
    let mut s = BTreeSet::new();
    let mut resources = Vec::new();
    for g in d.groups() {
        for v in g.versions() {
            for (ar, _) in g.versioned_resources(v) {
                s.insert((ar.group.clone(), ar.version.clone(), ar.kind.clone()));
                resources.push(ar);
            }
        }
    }
    Ok((s, resources))
}

/// Picks the served version of a Karpenter kind to watch (newest first).
fn version_of(
    served: &BTreeSet<(String, String, String)>,
    group: &str,
    kind: &str,
) -> Option<String> {
    ["v1", "v1beta1", "v1alpha5", "v1alpha1"]
        .into_iter()
        .find(|v| served.contains(&(group.to_string(), v.to_string(), kind.to_string())))
        .map(str::to_string)
}

/// Runs until SIGTERM/SIGINT.
pub async fn run(client: Client, mut cfg: RunConfig) -> Result<(), String> {
    // The webhook's certificate and port first: a wrong mount or a taken port stops the
    // process before it touches the API.
    let webhook = match &cfg.webhook {
        None => None,
        Some(w) => Some(bind_webhook(w).await?),
    };
    let (served, served_resources) = served(&client)
        .await
        .map_err(|e| format!("API discovery failed: {e}"))?;
    // Plurals come from discovery; the generated types' only for what it did not list.
    let resources = ApiResources::default().with(served_resources);
    let discovered = emission_for_served(&served);
    if !cfg.emission_forced {
        cfg.settings.render.discovered = discovered;
    }
    tracing::info!(
        discovered = discovered.map_or("none", |e| e.as_str()),
        forced = cfg.emission_forced,
        "Karpenter APIs discovered"
    );

    let shared = Arc::new(Shared::default());
    let cache = Arc::new(Mutex::new(Cache::default()));
    let pods_changed = Arc::new(Notify::new());
    let nodes_changed = Arc::new(Notify::new());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    // Watches, through a client whose errors carry the server's `Retry-After` (the
    // fold waits that long before the watch's next request).
    let watches = honouring_retry_after(&client);
    let mut watched: Watched = vec!["Pod", "Node", "ConfigMap"];
    spawn_pod_watch(
        watches.clone(),
        cache.clone(),
        pods_changed.clone(),
        shared.clone(),
    );
    spawn_node_watch(
        watches.clone(),
        cache.clone(),
        nodes_changed.clone(),
        shared.clone(),
    );
    let (cm_ns, _) = cfg
        .snapshot
        .device_plugin_configmap
        .clone()
        .unwrap_or_else(|| ("kube-system".into(), String::new()));
    spawn_configmap_watch(
        watches.clone(),
        cache.clone(),
        &cm_ns,
        "ConfigMap",
        pods_changed.clone(),
        shared.clone(),
    );
    // gpu-slicer's own ConfigMap must be seen too (to skip unchanged applies), wherever
    // it is written.
    if cfg.settings.render.configmap_namespace != cm_ns {
        watched.push("OwnedConfigMap");
        spawn_configmap_watch(
            watches.clone(),
            cache.clone(),
            &cfg.settings.render.configmap_namespace,
            "OwnedConfigMap",
            pods_changed.clone(),
            shared.clone(),
        );
    }
    for (group, kind) in [
        ("karpenter.sh", "NodePool"),
        ("karpenter.sh", "NodeClaim"),
        ("karpenter.sh", "NodeOverlay"),
        ("karpenter.k8s.aws", "EC2NodeClass"),
        ("karpenter.sh", "Provisioner"),
        ("karpenter.k8s.aws", "AWSNodeTemplate"),
    ] {
        let Some(version) = version_of(&served, group, kind) else {
            continue;
        };
        let api_version = format!("{group}/{version}");
        let Some(ar) = resources.get(&api_version, kind) else {
            continue;
        };
        watched.push(match kind {
            "NodePool" => "NodePool",
            "NodeClaim" => "NodeClaim",
            "NodeOverlay" => "NodeOverlay",
            "EC2NodeClass" => "EC2NodeClass",
            "Provisioner" => "Provisioner",
            _ => "AWSNodeTemplate",
        });
        let api: Api<DynamicObject> = Api::all_with(watches.clone(), &ar);
        spawn_object_watch(
            api,
            kind,
            cache.clone(),
            pods_changed.clone(),
            shared.clone(),
        );
    }

    // Leader election, probes.
    let leader = LeaderFlag::new(false);
    let elector = Elector::new(client.clone(), cfg.lease.clone(), leader.clone());
    tokio::spawn(elector.run(shutdown_rx.clone()));
    let server_task = tokio::spawn(server::serve(cfg.addr, shared.clone(), shutdown_rx.clone()));
    if let Some((listener, certs)) = webhook {
        let policy = crate::admission::Policy {
            namespaces: cfg.snapshot.namespaces.clone(),
            fail_requests_greater_than_one: cfg.settings.render.fail_requests_greater_than_one,
        };
        let wh = webhook::Webhook {
            certs,
            reviewer: Arc::new(move |req| crate::admission::review(req, &policy)),
            shared: shared.clone(),
            reload_every: webhook::RELOAD_EVERY,
        };
        let rx = shutdown_rx.clone();
        tokio::spawn(async move {
            if let Err(e) = webhook::serve(listener, wh, rx).await {
                tracing::error!(error = %e, "the admission webhook stopped");
            }
        });
    }
    let catalog = super::prices::spawn(
        cfg.catalog.clone(),
        cfg.live.clone(),
        shared.clone(),
        shutdown_rx.clone(),
    );

    let writer = Writer::new(client.clone(), cfg.writer.clone(), leader.clone())
        .with_resources(resources.clone());
    let events = Events::new(
        &client,
        Reporter {
            controller: "gpu-slicer".into(),
            instance: Some(cfg.lease.identity.clone()),
        },
    );
    let lp = Loop {
        cfg: &cfg,
        catalog: &catalog,
        cache: &cache,
        shared: &shared,
        writer: &writer,
        events: &events,
        leader: &leader,
    };
    let mut state = LoopState::default();
    let nodeclaim_v1 = version_of(&served, "karpenter.sh", "NodeClaim").as_deref() == Some("v1");
    let mut repacker = super::repack::Repacker::new(cfg.repack.clone(), nodeclaim_v1);
    let mut last_repack: Option<Instant> = None;
    let mut batcher = Batcher::new(cfg.batch_idle, cfg.batch_max);
    let start = Instant::now();
    let mut last_round: Option<Instant> = None;
    let mut shutdown = Box::pin(shutdown_signal());
    loop {
        let now = start.elapsed();
        let wake = batcher
            .deadline()
            .map_or(cfg.resync, |d| d.saturating_sub(now))
            .min(Duration::from_secs(5));
        tokio::select! {
            _ = pods_changed.notified() => batcher.observe(start.elapsed()),
            _ = nodes_changed.notified() => {}
            _ = tokio::time::sleep(wake) => {}
            _ = &mut shutdown => break,
        }
        shared.metrics.leader.set(i64::from(leader.is_leader()));
        let ready = cache
            .lock()
            .map(|c| c.all_synced(&watched))
            .unwrap_or(false);
        shared
            .ready
            .store(ready, std::sync::atomic::Ordering::SeqCst);
        if !ready {
            continue;
        }
        let resync_due = last_round.is_none_or(|t| t.elapsed() >= cfg.resync);
        if batcher.is_due(start.elapsed()) || resync_due {
            batcher.take();
            last_round = Some(Instant::now());
            run_round(&lp, &mut state).await;
        }
        check_nodes(&lp, &mut state).await;
        if repack(&lp, &mut repacker, &mut last_repack).await {
            // Replacements were launched: plan now, so the device-plugin ConfigMap and
            // the pools count them before their nodes register.
            last_round = Some(Instant::now());
            run_round(&lp, &mut state).await;
        }
    }
    let _ = shutdown_tx.send(true);
    let _ = server_task.await;
    Ok(())
}

/// Loads the webhook's certificate and binds its port.
async fn bind_webhook(
    w: &webhook::WebhookConfig,
) -> Result<(tokio::net::TcpListener, Arc<webhook::CertStore>), String> {
    let certs = webhook::CertStore::load(&w.cert_dir).map_err(|e| {
        format!(
            "admission webhook certificate: {e} (--webhook-cert-dir must hold {} and {}; \
             --webhook-port 0 turns the webhook off)",
            webhook::CERT_FILE,
            webhook::KEY_FILE
        )
    })?;
    let listener = tokio::net::TcpListener::bind(w.addr)
        .await
        .map_err(|e| format!("admission webhook: cannot listen on {}: {e}", w.addr))?;
    Ok((listener, Arc::new(certs)))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A pod Event to publish: (note key: the pod id, or the id with [`UNDECLARED_SUFFIX`];
/// warning; reason; note).
type PodNote = (String, bool, &'static str, String);

/// The pod Events a round's outcome calls for, before de-duplication and the per-round cap.
fn pod_notes(out: &round::Outcome, pending: &[DemandItem]) -> Vec<PodNote> {
    let mut notes: Vec<PodNote> = Vec::new();
    for n in &out.plan.nodes {
        for p in &n.pods {
            notes.push((
                p.clone(),
                false,
                "Planned",
                format!(
                    "planned onto a new {} ({} {}, {} replicas per GPU) in pool {}",
                    n.instance_type,
                    n.capacity_type.as_str(),
                    n.profile,
                    n.replicas_per_gpu,
                    n.node_pool
                ),
            ));
        }
    }
    for (p, node) in &out.onto_fleet {
        notes.push((
            p.clone(),
            false,
            "Planned",
            format!("expected on node {node}, launched earlier"),
        ));
    }
    for u in &out.plan.unplaced {
        notes.push((u.pod.clone(), true, "Unplaced", u.reason.to_string()));
    }
    // Pods that share a time-sliced GPU and say nothing of their GPU memory: a Warning
    // each, kept apart from the pod's placement note.
    for (p, others) in crate::planner::undeclared::undeclared_memory(pending, &out.plan.nodes) {
        notes.push((
            format!("{p}{UNDECLARED_SUFFIX}"),
            true,
            "UndeclaredGpuMemory",
            crate::planner::undeclared::message(others),
        ));
    }
    notes
}

/// Key suffix of a pod's undeclared-GPU-memory note in the per-pod note map (its placement
/// note has the bare pod id).
const UNDECLARED_SUFFIX: &str = "#undeclared-gpu-memory";

/// What the loop remembers between rounds.
#[derive(Default)]
struct LoopState {
    /// The last Event note per pod, so a pod gets an Event only when its fate changes.
    pod_notes: BTreeMap<String, String>,
    /// The last Event note per (object, reason) of pools and Nodes: repeated rounds with
    /// the same outcome publish nothing new.
    object_notes: BTreeMap<(String, String), String>,
    /// Nodes already reported as not sliced in time.
    timed_out: BTreeSet<String>,
    /// The planner's columns from earlier rounds: re-planning similar demand starts from
    /// them (`planner::Columns`).
    columns: crate::planner::Columns,
}

fn pod_ref(id: &str) -> ObjectReference {
    let (ns, name) = id.split_once('/').unwrap_or(("default", id));
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..ObjectReference::default()
    }
}

fn nodepool_ref(object: &str, pools: &[(crate::model::Pool, Value)]) -> Option<ObjectReference> {
    // `NodePool name` or `Provisioner name`.
    let (kind, name) = object.split_once(' ')?;
    let api = pools
        .iter()
        .find(|(p, _)| p.name == name)
        .and_then(|(_, raw)| raw.get("apiVersion").and_then(Value::as_str))
        .unwrap_or("karpenter.sh/v1");
    Some(object_ref(api, kind, name))
}

/// What the loop's steps share.
struct Loop<'a> {
    cfg: &'a RunConfig,
    /// The catalog in use (the base one with live data merged in, if any).
    catalog: &'a watch::Receiver<Arc<Catalog>>,
    cache: &'a Mutex<Cache>,
    shared: &'a Shared,
    writer: &'a Writer,
    events: &'a Events,
    leader: &'a LeaderFlag,
}

/// [`publish`] unless the same object already got the same note for the same reason.
async fn publish_once(
    lp: &Loop<'_>,
    state: &mut LoopState,
    r: &ObjectReference,
    warning: bool,
    reason: &str,
    note: String,
) {
    let key = (
        format!(
            "{}/{}",
            r.kind.as_deref().unwrap_or_default(),
            r.name.as_deref().unwrap_or_default()
        ),
        reason.to_string(),
    );
    if state.object_notes.get(&key) == Some(&note) {
        return;
    }
    publish(lp, r, warning, reason, note.clone()).await;
    state.object_notes.insert(key, note);
}

/// Publishes an Event, unless in dry-run or not the leader (Events are writes too).
async fn publish(lp: &Loop<'_>, r: &ObjectReference, warning: bool, reason: &str, note: String) {
    let skip = lp.cfg.writer.dry_run || !lp.leader.is_leader();
    lp.events.send(skip, r, warning, reason, note, "Plan").await;
}

async fn run_round(lp: &Loop<'_>, state: &mut LoopState) {
    let Loop {
        cfg,
        cache,
        shared,
        writer,
        ..
    } = *lp;
    let started = Instant::now();
    let snap = match cache.lock() {
        Ok(c) => c.snapshot(&cfg.snapshot),
        Err(_) => return,
    };
    for (pod, why) in &snap.pod_errors {
        super::metrics::Metrics::count_kind(&shared.metrics.invalid_input, "Pod");
        let note = format!("gpu-slicer cannot plan this pod: {why}");
        if state.pod_notes.get(pod) != Some(&note) {
            publish(lp, &pod_ref(pod), true, "InvalidInput", note.clone()).await;
            state.pod_notes.insert(pod.clone(), note);
        }
    }
    for (object, why) in &snap.pool_errors {
        super::metrics::Metrics::count_kind(&shared.metrics.invalid_input, "NodePool");
        tracing::warn!(%object, %why, "annotated NodePool cannot be read");
        if let Some(r) = nodepool_ref(object, &[]) {
            publish_once(lp, state, &r, true, "InvalidConfiguration", why.clone()).await;
        }
    }
    if let Some(e) = &snap.device_plugin_error {
        super::metrics::Metrics::count_kind(&shared.metrics.invalid_input, "ConfigMap");
        tracing::warn!(error = %e, "device-plugin ConfigMap cannot be read; planning without it");
    }
    let settings = cfg.settings.clone();
    let catalog = lp.catalog.borrow().clone();
    let nodes_per_pool = snap.nodes_per_nodepool.clone();
    let snap = Arc::new(snap);
    let snap2 = snap.clone();
    let mut columns = std::mem::take(&mut state.columns);
    let outcome = tokio::task::spawn_blocking(move || {
        let nodes_of = |k: &ObjectKey| nodes_per_pool.get(&k.name).copied().unwrap_or(0);
        let inputs = round::RoundInputs {
            catalog: &catalog,
            pending: &snap2.pending,
            fleet: &snap2.fleet,
            pools: &snap2.pools,
            ec2nodeclasses: &snap2.ec2nodeclasses,
            device_plugin: snap2.device_plugin.as_ref(),
            live: &snap2.live,
            nodes_of: &nodes_of,
        };
        let out = round::round_with(&inputs, &settings, &mut columns);
        (out, columns)
    })
    .await;
    let Ok((out, columns)) = outcome else {
        tracing::error!("planning round panicked");
        return;
    };
    state.columns = columns;
    let m = &shared.metrics;
    m.rounds.inc();
    m.pending_gpu_pods
        .set(i64::try_from(snap.pending.len()).unwrap_or(i64::MAX));
    m.planned_nodes
        .set(i64::try_from(out.plan.nodes.len()).unwrap_or(i64::MAX));
    m.planned_hourly_cost.set(out.plan.summary.hourly_cost);
    // This round's unplaced pods by reason; reasons of earlier rounds drop out.
    m.unplaced_pods.clear();
    for u in &out.plan.unplaced {
        m.unplaced_pods
            .get_or_create(&super::metrics::ReasonLabel {
                reason: u.reason.as_str().to_string(),
            })
            .inc();
    }
    if let Ok(json) = serde_json::to_string_pretty(&out.plan)
        && let Ok(mut p) = shared.plan_json.lock()
    {
        *p = Some(json);
    }

    // Refusals and render errors: nothing is written; Events say why.
    for r in &out.refusals {
        m.refusals
            .get_or_create(&super::metrics::ReasonLabel {
                reason: "budget".into(),
            })
            .inc();
        tracing::warn!(refusal = %r, "plan refused");
        let targets: Vec<ObjectReference> = match r.pool() {
            Some(p) => nodepool_ref(&format!("NodePool {p}"), &snap.pools)
                .into_iter()
                .collect(),
            None => snap
                .pools
                .iter()
                .filter_map(|(p, _)| nodepool_ref(&format!("NodePool {}", p.name), &snap.pools))
                .collect(),
        };
        for t in targets {
            publish_once(lp, state, &t, true, "PlanRefused", r.to_string()).await;
        }
    }
    if let Some(e) = &out.error {
        m.refusals
            .get_or_create(&super::metrics::ReasonLabel {
                reason: "invalid_configuration".into(),
            })
            .inc();
        tracing::warn!(error = %e, "plan cannot be rendered");
        if let Some(r) = nodepool_ref(&e.object, &snap.pools) {
            publish_once(lp, state, &r, true, "InvalidConfiguration", e.to_string()).await;
        }
    }
    for c in &out.conflicts {
        tracing::warn!(object = %c, "name taken by an object gpu-slicer does not own; left alone");
    }
    for n in &out.notes {
        tracing::info!(note = %n, "pool sharing settled");
        if let Some((object, _)) = n.split_once(": ")
            && let Some(r) = nodepool_ref(object, &snap.pools)
        {
            publish_once(lp, state, &r, false, "SharingStrategy", n.clone()).await;
        }
    }

    // Pod Events: only when a pod's fate changed, at most max_pod_events per round.
    let mut budget = cfg.max_pod_events;
    let notes = pod_notes(&out, &snap.pending);
    for (key, warning, reason, note) in notes {
        if state.pod_notes.get(&key) == Some(&note) {
            continue;
        }
        let pod = key
            .strip_suffix(UNDECLARED_SUFFIX)
            .unwrap_or(&key)
            .to_string();
        if budget == 0 {
            break;
        }
        budget -= 1;
        publish(lp, &pod_ref(&pod), warning, reason, note.clone()).await;
        state.pod_notes.insert(key, note);
    }
    let pending: BTreeSet<&str> = snap.pending.iter().map(|d| d.id.as_str()).collect();
    state
        .pod_notes
        .retain(|p, _| pending.contains(p.strip_suffix(UNDECLARED_SUFFIX).unwrap_or(p)));

    if out.refusals.is_empty() && out.error.is_none() && !out.actions.is_empty() {
        let res = writer.execute(&out.actions).await;
        m.count_apply("applied", "none", res.applied.len() as u64);
        m.count_apply("deleted", "none", res.deleted.len() as u64);
        m.count_apply("skipped_dry_run", "none", res.dry_run as u64);
        m.count_apply("skipped_not_leader", "none", res.not_leader as u64);
        for f in &res.failed {
            m.count_apply("failed", f.category.as_str(), 1);
            tracing::warn!(object = %f.object, category = %f.category, message = %f.message, "write failed");
        }
        tracing::info!(
            applied = res.applied.len(),
            deleted = res.deleted.len(),
            failed = res.failed.len(),
            dry_run = res.dry_run,
            not_leader = res.not_leader,
            "round written"
        );
    }
    for (pool, raw) in &snap.pools {
        let nodes: Vec<_> = out
            .plan
            .nodes
            .iter()
            .filter(|n| n.node_pool == pool.name)
            .collect();
        if nodes.is_empty() {
            continue;
        }
        let cost: f64 = nodes.iter().map(|n| n.hourly_price).sum();
        let api = raw
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("karpenter.sh/v1");
        let kind = raw
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("NodePool");
        publish_once(
            lp,
            state,
            &object_ref(api, kind, &pool.name),
            false,
            "Planned",
            format!("{} new node(s), ${cost:.3}/h", nodes.len()),
        )
        .await;
    }
    m.planning_duration.observe(started.elapsed().as_secs_f64());
}

/// Repacking's share of a loop: a move's next step every time, a proposal every
/// `--repack-interval` (the first as soon as the caches have synced). True when
/// replacements were launched.
async fn repack(
    lp: &Loop<'_>,
    repacker: &mut super::repack::Repacker,
    last: &mut Option<Instant>,
) -> bool {
    let io = super::repack::Io {
        writer: lp.writer,
        events: lp.events,
        metrics: &lp.shared.metrics,
        leader: lp.leader,
        dry_run: lp.cfg.writer.dry_run,
    };
    let now_s = Timestamp::now().as_second();
    repacker.progress(&io, lp.cache, now_s).await;
    let Some(interval) = repacker.config().interval else {
        return false;
    };
    if !(lp.leader.is_leader() || lp.cfg.writer.dry_run)
        || last.is_some_and(|t| t.elapsed() < interval)
    {
        return false;
    }
    *last = Some(Instant::now());
    let catalog = lp.catalog.borrow().clone();
    let out = repacker
        .propose(
            &io,
            lp.cache,
            catalog,
            &lp.cfg.settings,
            &lp.cfg.snapshot,
            now_s,
        )
        .await;
    if let Some(why) = &out.skipped {
        tracing::debug!(%why, "repack: no proposal");
    }
    out.force_round
}

async fn check_nodes(lp: &Loop<'_>, state: &mut LoopState) {
    let Loop {
        cfg,
        cache,
        shared,
        writer,
        ..
    } = *lp;
    let nodes: Vec<Node> = match cache.lock() {
        Ok(c) => c
            .nodes
            .values()
            .filter(|n| {
                n.spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|ts| ts.iter().any(|t| t.key == SLICING_PENDING_TAINT))
            })
            .cloned()
            .collect(),
        Err(_) => return,
    };
    let now = Timestamp::now();
    let catalog = lp.catalog.borrow().clone();
    let gpus_of = |t: &str| crate::catalog::find(&catalog, t).map(|it| it.gpu_count);
    for n in nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        match slicing(&n, now, cfg.slicing_timeout, &gpus_of) {
            Slicing::Ready => {
                let Some((i, t)) = n
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .and_then(|ts| {
                        ts.iter()
                            .enumerate()
                            .find(|(_, t)| t.key == SLICING_PENDING_TAINT)
                    })
                else {
                    continue;
                };
                let Ok(taint) = serde_json::to_value(t) else {
                    continue;
                };
                match writer.remove_taint(&name, i, &taint).await {
                    Ok(true) => {
                        shared.metrics.taints_removed.inc();
                        tracing::info!(node = %name, "sliced as planned; startup taint removed");
                    }
                    Ok(false) => {}
                    Err((category, message)) => {
                        shared.metrics.count_apply("failed", category.as_str(), 1);
                        tracing::warn!(node = %name, %category, %message, "startup taint not removed");
                    }
                }
            }
            Slicing::TimedOut {
                expected,
                actual,
                waited,
            } => {
                if state.timed_out.insert(name.clone()) {
                    shared.metrics.slicing_timeouts.inc();
                    let note = format!(
                        "node advertises {actual} nvidia.com/gpu after {}s, expected {expected} \
                         (GPUs x replicas); it stays tainted {SLICING_PENDING_TAINT}. Check the \
                         device plugin's config for this node's profile label",
                        waited.as_secs()
                    );
                    tracing::warn!(node = %name, %note, "not sliced in time");
                    publish(
                        lp,
                        &object_ref("v1", "Node", &name),
                        true,
                        "SlicingTimeout",
                        note,
                    )
                    .await;
                }
            }
            Slicing::Unknown(why) => {
                if state.timed_out.insert(name.clone()) {
                    tracing::warn!(node = %name, %why, "cannot tell whether the node is sliced");
                }
            }
            Slicing::Waiting { .. } | Slicing::NotPending => {}
        }
    }
}

/// Folds a watcher stream into one store of the cache until it ends; a watch error
/// counts a restart (the watcher then backs off and re-lists, and the store's init
/// protocol replaces its contents with the fresh list).
async fn fold_stream<K, F, T>(
    stream: impl futures::Stream<Item = Result<Event<K>, watcher::Error>>,
    kind: &'static str,
    shared: Arc<Shared>,
    notify: Arc<Notify>,
    mut apply: F,
    mut wants_notify: T,
) where
    F: FnMut(Event<K>),
    T: FnMut(&Event<K>) -> bool,
{
    futures::pin_mut!(stream);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(ev) => {
                let n = wants_notify(&ev);
                apply(ev);
                if n {
                    notify.notify_one();
                }
            }
            Err(e) => {
                super::metrics::Metrics::count_kind(&shared.metrics.watch_restarts, kind);
                tracing::warn!(%kind, error = %e, "watch failed; restarting with backoff");
                // The watcher's own backoff follows this wait.
                if let Some(wait) = watch_retry_after(&e) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// The wait a failed watch's answer asks for (`Retry-After`), at most
/// [`crate::backoff::MAX_RETRY_AFTER`].
pub fn watch_retry_after(e: &watcher::Error) -> Option<std::time::Duration> {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => retry_after(e),
        watcher::Error::WatchError(s) => retry_after(&kube::Error::Api(s.clone())),
        watcher::Error::NoResourceVersion => None,
    }
}

fn fold<K, F, T>(
    stream: impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
    kind: &'static str,
    shared: Arc<Shared>,
    notify: Arc<Notify>,
    apply: F,
    wants_notify: T,
) where
    K: Send + 'static,
    F: FnMut(Event<K>) + Send + 'static,
    T: FnMut(&Event<K>) -> bool + Send + 'static,
{
    tokio::spawn(fold_stream(
        stream,
        kind,
        shared,
        notify,
        apply,
        wants_notify,
    ));
}

/// Applies one pod watch event to the cache (the pod watch's fold).
pub fn apply_pod_event(cache: &Mutex<Cache>, ev: Event<Pod>) {
    let Ok(mut c) = cache.lock() else { return };
    match ev {
        Event::Init => c.pods.init(),
        Event::InitApply(p) => {
            if let Some(e) = pod_entry(&p) {
                c.pods.init_apply(pod_key(&p), e);
            }
        }
        Event::InitDone => c.pods.init_done(),
        Event::Apply(p) => match pod_entry(&p) {
            Some(e) => c.pods.apply(pod_key(&p), e),
            None => c.pods.delete(&pod_key(&p)),
        },
        Event::Delete(p) => c.pods.delete(&pod_key(&p)),
    }
}

fn spawn_pod_watch(
    client: Client,
    cache: Arc<Mutex<Cache>>,
    notify: Arc<Notify>,
    shared: Arc<Shared>,
) {
    let api: Api<Pod> = Api::all(client);
    let conf = watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    let stream = watcher::watcher(api, conf).default_backoff();
    fold(
        stream,
        "Pod",
        shared,
        notify,
        move |ev| apply_pod_event(&cache, ev),
        |ev| !matches!(ev, Event::InitApply(_)),
    );
}

fn spawn_node_watch(
    client: Client,
    cache: Arc<Mutex<Cache>>,
    notify: Arc<Notify>,
    shared: Arc<Shared>,
) {
    let api: Api<Node> = Api::all(client);
    let conf = watcher::Config::default().labels(POOL_LABEL);
    let stream = watcher::watcher(api, conf).default_backoff();
    fold(
        stream,
        "Node",
        shared,
        notify,
        move |ev| {
            let Ok(mut c) = cache.lock() else { return };
            let key = |n: &Node| n.metadata.name.clone().unwrap_or_default();
            match ev {
                Event::Init => c.nodes.init(),
                Event::InitApply(n) => {
                    let k = key(&n);
                    c.nodes.init_apply(k, trim_node(n));
                }
                Event::InitDone => c.nodes.init_done(),
                Event::Apply(n) => {
                    let k = key(&n);
                    c.nodes.apply(k, trim_node(n));
                }
                Event::Delete(n) => c.nodes.delete(&key(&n)),
            }
        },
        |ev| matches!(ev, Event::Apply(_) | Event::InitDone),
    );
}

/// Applies one watch event of a kind cached as JSON values, converted by `conv`.
fn apply_value_event<K>(store: &mut Store<Value>, ev: Event<K>, conv: impl Fn(K) -> Option<Value>) {
    let mut with = |o: K, f: &mut dyn FnMut(&mut Store<Value>, Value)| {
        if let Some(v) = conv(o) {
            f(store, v);
        }
    };
    match ev {
        Event::Init => store.init(),
        Event::InitDone => store.init_done(),
        Event::InitApply(o) => with(o, &mut |s, v| s.init_apply(Cache::object_key(&v), v)),
        Event::Apply(o) => with(o, &mut |s, v| s.apply(Cache::object_key(&v), v)),
        Event::Delete(o) => with(o, &mut |s, v| s.delete(&Cache::object_key(&v))),
    }
}

/// Watches the ConfigMaps of one namespace into the cache store `kind` (`ConfigMap` for
/// the device plugin's namespace; `OwnedConfigMap`, gpu-slicer's own only, when
/// gpu-slicer writes its ConfigMap to another namespace).
fn spawn_configmap_watch(
    client: Client,
    cache: Arc<Mutex<Cache>>,
    ns: &str,
    kind: &'static str,
    notify: Arc<Notify>,
    shared: Arc<Shared>,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let conf = if kind == "ConfigMap" {
        watcher::Config::default()
    } else {
        watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGER}"))
    };
    let stream = watcher::watcher(api, conf).default_backoff();
    fold(
        stream,
        kind,
        shared,
        notify,
        move |ev| {
            let Ok(mut c) = cache.lock() else { return };
            let Some(store) = c.object_store(kind) else {
                return;
            };
            let conv = |cm: ConfigMap| {
                serde_json::to_value(&cm).ok().map(|mut v| {
                    if let Some(m) = v.as_object_mut() {
                        m.insert("apiVersion".into(), "v1".into());
                        m.insert("kind".into(), "ConfigMap".into());
                    }
                    trim_object(v)
                })
            };
            apply_value_event(store, ev, conv);
        },
        |ev| matches!(ev, Event::Apply(_) | Event::Delete(_)),
    );
}

fn spawn_object_watch(
    api: Api<DynamicObject>,
    kind: &'static str,
    cache: Arc<Mutex<Cache>>,
    notify: Arc<Notify>,
    shared: Arc<Shared>,
) {
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    fold(
        stream,
        kind,
        shared,
        notify,
        move |ev| {
            let Ok(mut c) = cache.lock() else { return };
            let Some(store) = c.object_store(kind) else {
                return;
            };
            let conv = |o: DynamicObject| serde_json::to_value(&o).ok().map(trim_object);
            apply_value_event(store, ev, conv);
        },
        // A change to an annotated or owned pool is worth a round.
        |ev| match ev {
            Event::Apply(o) | Event::Delete(o) => serde_json::to_value(o)
                .map(|v| {
                    is_owned(&v)
                        || v.pointer("/metadata/annotations/gpu-slicer.io~1enabled")
                            .is_some()
                })
                .unwrap_or(false),
            _ => false,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(name: &str) -> Pod {
        crate::reconcile::cache::tests::gpu_pod("ml", name, None, &[])
    }

    #[test]
    fn undeclared_gpu_memory_gets_a_warning_on_time_slicing_only() {
        use crate::model::Resources;
        let node = |r: u32, sharing: &str, pods: &[&str]| -> crate::planner::PlannedNode {
            serde_json::from_value(serde_json::json!({
                "instanceType": "g5.xlarge", "capacityType": "on-demand", "gpus": 1,
                "gpuModel": "a10g", "gpuMemoryMiB": 22888, "replicasPerGpu": r,
                "sharing": sharing, "profile": "x", "hourlyPrice": 1.0,
                "pods": pods, "nodePool": "gpu-slicer",
            }))
            .expect("a planned node")
        };
        let mut sized = DemandItem::shared("ml/sized", Resources::ZERO);
        sized.gpu_memory_mib = Some(4096);
        let pending = vec![
            DemandItem::shared("ml/silent", Resources::ZERO),
            sized,
            DemandItem::shared("ml/capped", Resources::ZERO),
        ];
        let plan = crate::planner::plan(
            &crate::catalog::embedded().expect("catalog"),
            &[],
            &crate::planner::PlanOptions::default(),
        );
        let out = round::Outcome {
            plan: crate::planner::Plan {
                nodes: vec![
                    node(4, "time-slicing", &["ml/silent", "ml/sized"]),
                    node(4, "mps", &["ml/capped"]),
                ],
                ..plan
            },
            onto_fleet: Vec::new(),
            refusals: Vec::new(),
            error: None,
            actions: Default::default(),
            conflicts: Vec::new(),
            modes: BTreeMap::new(),
            notes: Vec::new(),
        };
        let warnings: Vec<(String, &str, String)> = pod_notes(&out, &pending)
            .into_iter()
            .filter(|n| n.1)
            .map(|(k, _, r, n)| (k, r, n))
            .collect();
        assert_eq!(
            warnings,
            [(
                format!("ml/silent{UNDECLARED_SUFFIX}"),
                "UndeclaredGpuMemory",
                "shares a GPU with up to 3 pods and declares no GPU memory".to_string()
            )]
        );
        // Each pod still gets its placement note under its own id.
        let planned = pod_notes(&out, &pending)
            .into_iter()
            .filter(|n| n.2 == "Planned")
            .count();
        assert_eq!(planned, 3);
    }

    #[tokio::test]
    async fn a_watch_error_and_relist_converge_and_are_counted() {
        let cache = Arc::new(Mutex::new(Cache::default()));
        let shared = Arc::new(Shared::default());
        let notify = Arc::new(Notify::new());
        // Initial list with p1, then p2 appears; the watch fails (desync, e.g. 410 Gone);
        // the re-list no longer has p1 (deleted while the watch was down).
        let events: Vec<Result<Event<Pod>, watcher::Error>> = vec![
            Ok(Event::Init),
            Ok(Event::InitApply(pending("p1"))),
            Ok(Event::InitDone),
            Ok(Event::Apply(pending("p2"))),
            Err(watcher::Error::NoResourceVersion),
            Ok(Event::Init),
            Ok(Event::InitApply(pending("p2"))),
            Ok(Event::InitApply(pending("p3"))),
            Ok(Event::InitDone),
        ];
        let c2 = cache.clone();
        fold_stream(
            futures::stream::iter(events),
            "Pod",
            shared.clone(),
            notify,
            move |ev| apply_pod_event(&c2, ev),
            |_| true,
        )
        .await;
        let c = cache.lock().expect("lock");
        assert!(c.pods.synced());
        let keys: Vec<String> = ["ml/p1", "ml/p2", "ml/p3"]
            .into_iter()
            .filter(|k| c.pods.get(k).is_some())
            .map(str::to_string)
            .collect();
        assert_eq!(keys, ["ml/p2", "ml/p3"]);
        let text = shared.metrics.encode();
        assert!(
            text.contains("gpu_slicer_watch_restarts_total{kind=\"Pod\"} 1"),
            "{text}"
        );
    }
}
