//! `gpu-slicer run`: discovery, the watches (`watch`), the leader elector, the probe
//! server, the admission webhook (every replica, see `webhook`), and the loop: it batches
//! pending pods, runs a round (`reconcile::round`), records metrics, publishes the
//! round's Events (computed as data by `reconcile::notes`) once per change, hands the
//! actions to the writer, re-packs (`repack`), and removes startup taints from nodes
//! that came up sliced.
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject};
use kube::runtime::events::Reporter;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Discovery};
use tokio::sync::{Notify, watch};

use super::elector::{Elector, LeaseConfig};
use super::error::RunError;
use super::events::{Events, subject_ref};
use super::metrics::Metrics;
use super::server::{self, Shared};
use super::watch::Watches;
use super::webhook;
use super::writer::{ApiResources, LeaderFlag, Writer, WriterConfig, honouring_retry_after};
use crate::model::Catalog;
use crate::model::contract::{MANAGED_BY, MANAGER, POOL_LABEL, SLICING_PENDING_TAINT};
use crate::reconcile::ObjectKey;
use crate::reconcile::batch::Batcher;
use crate::reconcile::cache::{Cache, SnapshotSettings, WatchedKind};
use crate::reconcile::nodes::{Slicing, slicing};
use crate::reconcile::notes::{self, Note, Reason, Subject};
use crate::reconcile::round::{self, Settings};
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
pub async fn run(client: Client, mut cfg: RunConfig) -> Result<(), RunError> {
    // The webhook's certificate and port first: a wrong mount or a taken port stops the
    // process before it touches the API.
    let webhook = match &cfg.webhook {
        None => None,
        Some(w) => Some(bind_webhook(w).await?),
    };
    let (served, served_resources) = served(&client).await.map_err(RunError::Discovery)?;
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
    let client_w = honouring_retry_after(&client);
    let watches = Watches {
        cache: cache.clone(),
        shared: shared.clone(),
    };
    let mut watched = vec![WatchedKind::Pod, WatchedKind::Node, WatchedKind::ConfigMap];
    // Finished pods are not worth a watch event; a pod's first sight is worth a round.
    watches.spawn(
        Api::<Pod>::all(client_w.clone()),
        watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed"),
        WatchedKind::Pod,
        pods_changed.clone(),
        |ev| !matches!(ev, Event::InitApply(_)),
    );
    watches.spawn(
        Api::<Node>::all(client_w.clone()),
        watcher::Config::default().labels(POOL_LABEL),
        WatchedKind::Node,
        nodes_changed.clone(),
        |ev| matches!(ev, Event::Apply(_) | Event::InitDone),
    );
    let (cm_ns, _) = cfg
        .snapshot
        .device_plugin_configmap
        .clone()
        .unwrap_or_else(|| ("kube-system".into(), String::new()));
    let cm_changed = |ev: &Event<ConfigMap>| matches!(ev, Event::Apply(_) | Event::Delete(_));
    watches.spawn(
        Api::<ConfigMap>::namespaced(client_w.clone(), &cm_ns),
        watcher::Config::default(),
        WatchedKind::ConfigMap,
        pods_changed.clone(),
        cm_changed,
    );
    // gpu-slicer's own ConfigMap must be seen too (to skip unchanged applies), wherever
    // it is written.
    if cfg.settings.render.configmap_namespace != cm_ns {
        watched.push(WatchedKind::OwnedConfigMap);
        watches.spawn(
            Api::<ConfigMap>::namespaced(
                client_w.clone(),
                &cfg.settings.render.configmap_namespace,
            ),
            watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGER}")),
            WatchedKind::OwnedConfigMap,
            pods_changed.clone(),
            cm_changed,
        );
    }
    for kind in WatchedKind::KARPENTER {
        let Some(group) = kind.karpenter_group() else {
            continue;
        };
        let Some(version) = version_of(&served, group, kind.as_str()) else {
            continue;
        };
        let Some(ar) = resources.get(&format!("{group}/{version}"), kind.as_str()) else {
            continue;
        };
        watched.push(kind);
        watches.spawn(
            Api::<DynamicObject>::all_with(client_w.clone(), &ar),
            watcher::Config::default(),
            kind,
            pods_changed.clone(),
            super::watch::owned_or_annotated,
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
            context_memory_mib: cfg.settings.plan.context_memory_mib,
            share_model: cfg.settings.plan.share_model,
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
) -> Result<(tokio::net::TcpListener, Arc<webhook::CertStore>), RunError> {
    let certs = webhook::CertStore::load(&w.cert_dir)
        .map_err(|source| RunError::WebhookCertificate { source })?;
    let listener = tokio::net::TcpListener::bind(w.addr)
        .await
        .map_err(|source| RunError::WebhookPort {
            addr: w.addr,
            source,
        })?;
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

/// What the loop remembers between rounds.
#[derive(Default)]
struct LoopState {
    /// The last note per slot (subject and reason, [`Note::slot`]), so an object gets an
    /// Event only when its fate changes, and repeated rounds with the same outcome
    /// publish nothing new. Pods' slots are dropped once the pod is no longer pending.
    notes: BTreeMap<(Subject, Reason), String>,
    /// Nodes already reported as not sliced in time.
    timed_out: BTreeSet<String>,
    /// The planner's columns from earlier rounds: re-planning similar demand starts from
    /// them (`planner::Columns`).
    columns: crate::planner::Columns,
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

/// Publishes a note unless its slot already holds the same text. Pod notes spend
/// `pod_budget` (Events are writes too); once it is spent they wait for a later round.
async fn publish_note(lp: &Loop<'_>, state: &mut LoopState, note: Note, pod_budget: &mut usize) {
    let slot = note.slot();
    if state.notes.get(&slot) == Some(&note.text) {
        return;
    }
    if note.subject.pod().is_some() {
        if *pod_budget == 0 {
            return;
        }
        *pod_budget -= 1;
    }
    publish(lp, &note).await;
    state.notes.insert(slot, note.text);
}

/// Publishes an Event, unless in dry-run or not the leader (Events are writes too).
async fn publish(lp: &Loop<'_>, note: &Note) {
    let skip = lp.cfg.writer.dry_run || !lp.leader.is_leader();
    let r = subject_ref(&note.subject);
    let reason = note.reason;
    lp.events
        .send(
            skip,
            &r,
            reason.is_warning(),
            reason.as_str(),
            note.text.clone(),
            "Plan",
        )
        .await;
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
    let m = &shared.metrics;
    for _ in &snap.pod_errors {
        Metrics::count_kind(&m.invalid_input, WatchedKind::Pod.as_str());
    }
    for (object, why) in &snap.pool_errors {
        Metrics::count_kind(&m.invalid_input, WatchedKind::NodePool.as_str());
        tracing::warn!(%object, %why, "annotated NodePool cannot be read");
    }
    if let Some(e) = &snap.device_plugin_error {
        Metrics::count_kind(&m.invalid_input, WatchedKind::ConfigMap.as_str());
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
    }
    if let Some(e) = &out.error {
        m.refusals
            .get_or_create(&super::metrics::ReasonLabel {
                reason: "invalid_configuration".into(),
            })
            .inc();
        tracing::warn!(error = %e, "plan cannot be rendered");
    }
    for c in &out.conflicts {
        tracing::warn!(object = %c, "name taken by an object gpu-slicer does not own; left alone");
    }
    for n in &out.notes {
        tracing::info!(note = %n, "pool sharing settled");
    }
    let mut pod_budget = cfg.max_pod_events;
    for note in notes::round_notes(&snap, &out) {
        publish_note(lp, state, note, &mut pod_budget).await;
    }
    // A pod no longer pending has no fate left to report.
    let pending: BTreeSet<&str> = snap.pending.iter().map(|d| d.id.as_str()).collect();
    state
        .notes
        .retain(|(s, _), _| s.pod().is_none_or(|p| pending.contains(p)));

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
        cfg, cache, writer, ..
    } = *lp;
    let m = &lp.shared.metrics;
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
                        m.taints_removed.inc();
                        tracing::info!(node = %name, "sliced as planned; startup taint removed");
                    }
                    Ok(false) => {}
                    Err((category, message)) => {
                        m.count_apply("failed", category.as_str(), 1);
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
                    m.slicing_timeouts.inc();
                    let note = notes::slicing_timeout(&name, expected, actual, waited);
                    tracing::warn!(node = %name, note = %note.text, "not sliced in time");
                    publish(lp, &note).await;
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
