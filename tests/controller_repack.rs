//! Mock API server scenarios for defragmentation (issue 14): the controller's repack step
//! (`controller::repack::Repacker`) with a real kube client against the fake API server
//! of `tests/support/fake_api.rs`, real JSON objects, and assertions on the HTTP requests
//! the server received. The caches are filled from the server's objects before each step,
//! as the watches would.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "controller")]

#[path = "support/fake_api.rs"]
mod fake_api;
#[path = "support/objects.rs"]
mod objects;

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_api::{FakeApi, Seen, object_path};
use gpu_slicer::controller::events::Events;
use gpu_slicer::controller::metrics::Metrics;
use gpu_slicer::controller::repack::{Io, RepackConfig, Repacker};
use gpu_slicer::controller::writer::{LeaderFlag, Writer, WriterConfig};
use gpu_slicer::guard::Budget;
use gpu_slicer::model::contract::{MANAGED_BY, MANAGER, POOL_LABEL, SLICING_PENDING_TAINT};
use gpu_slicer::model::{ReplicaPolicy, profile_name};
use gpu_slicer::planner::{Effort, PlanOptions};
use gpu_slicer::reconcile::cache::{
    Cache, SnapshotSettings, WatchedKind, pod_entry, pod_key, trim_node, trim_object,
};
use gpu_slicer::reconcile::repack::{
    DO_NOT_DISRUPT, MOVE_LABEL, MOVE_SIZE_ANNOTATION, REPLACES_ANNOTATION,
};
use gpu_slicer::reconcile::round::{self, Settings};
use gpu_slicer::render::RenderOptions;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};

const NODEPOOL: &str = "gpu-slicer-ts-r4-4096mi";

fn now_s() -> i64 {
    Timestamp::now().as_second()
}

fn ts(s: i64) -> String {
    Timestamp::from_second(s).expect("timestamp").to_string()
}

fn writer_cfg(dry_run: bool) -> WriterConfig {
    WriterConfig {
        dry_run,
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        writes_per_second: NonZeroU32::new(1000).expect("non-zero"),
        burst: NonZeroU32::new(1000).expect("non-zero"),
        ..WriterConfig::default()
    }
}

fn settings() -> Settings {
    Settings {
        plan: PlanOptions {
            default_replicas: ReplicaPolicy::Auto { max: 10 },
            dedicated: false,
            effort: Effort::Fast,
            ..PlanOptions::default()
        },
        render: RenderOptions {
            cluster_name: "test".into(),
            ..RenderOptions::default()
        },
        budget: Budget::default(),
    }
}

/// A NodePool gpu-slicer owns (its nodes' `karpenter.sh/nodepool`), with these budgets.
fn owned_nodepool(name: &str, budgets: Option<Value>) -> Value {
    let mut np = json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": name, "labels": {MANAGED_BY: MANAGER, POOL_LABEL: "gpu-slicer"}},
        "spec": {"template": {"spec": {"requirements": [],
            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu-slicer"}}}}});
    if let Some(b) = budgets {
        np["spec"]["disruption"] = json!({"budgets": b});
    }
    np
}

fn users_nodepool() -> Value {
    json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": "users-pool"},
        "spec": {"template": {"spec": {"requirements": [],
            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "x"}}}}})
}

/// A registered gpu-slicer node: Ready, sliced (no startup taint) unless `tainted`.
fn node(name: &str, ty: &str, r: u32, nodepool: Option<&str>, ready: bool, tainted: bool) -> Value {
    let mut labels = json!({POOL_LABEL: "gpu-slicer", "node.kubernetes.io/instance-type": ty,
        "gpu-slicer.io/replicas": r.to_string(), "karpenter.sh/capacity-type": "on-demand"});
    if let Some(np) = nodepool {
        labels["karpenter.sh/nodepool"] = json!(np);
    }
    let taints = if tainted {
        json!([{"key": SLICING_PENDING_TAINT, "value": "true", "effect": "NoSchedule"}])
    } else {
        json!([])
    };
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "allocatable": {"nvidia.com/gpu": r.to_string(), "cpu": "8", "memory": "32Gi", "pods": "29"}}})
}

/// The NodeClaim Karpenter launched for `node` (not gpu-slicer's: its NodePool's).
fn claim(name: &str, node: &str, ty: &str, nodepool: &str) -> Value {
    json!({"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
        "metadata": {"name": name, "labels": {"karpenter.sh/nodepool": nodepool,
            "node.kubernetes.io/instance-type": ty}},
        "spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu-slicer"},
            "requirements": []},
        "status": {"nodeName": node}})
}

/// A running 2 GiB one-slice pod of a ReplicaSet, started an hour ago.
fn pod(name: &str, node: &str, annotations: Value) -> Value {
    let mut ann = json!({"gpu-slicer.io/gpu-memory": "2Gi"});
    if let Some(a) = annotations.as_object() {
        for (k, v) in a {
            ann[k] = v.clone();
        }
    }
    objects::pod(name)
        .namespace("ml")
        .annotations(ann)
        .controlled_by("apps/v1", "ReplicaSet", "infer", "rs-1")
        .node(node)
        .image("x")
        .requests("500m", "1Gi")
        .gpu(1)
        .running_since(&ts(now_s() - 3600))
        .build()
}

/// `n` half-empty g4dn.2xlarge nodes at R = 2 with one 2 GiB pod each, their NodeClaims
/// (of `nodepool`), and the NodePools.
fn fleet(api: &FakeApi, n: usize, nodepool: &str, budgets: Option<Value>, pod_ann: Value) {
    api.insert(owned_nodepool(NODEPOOL, budgets));
    api.insert(users_nodepool());
    for i in 0..n {
        let name = format!("n{i}");
        api.insert(node(&name, "g4dn.2xlarge", 2, Some(nodepool), true, false));
        api.insert(claim(&format!("c-n{i}"), &name, "g4dn.2xlarge", nodepool));
        api.insert(pod(&format!("p{i}"), &name, pod_ann.clone()));
    }
}

/// The controller's caches, filled from what the server holds (as the watches would).
fn cache_of(api: &FakeApi) -> Mutex<Cache> {
    let mut c = Cache::default();
    for o in api.objects() {
        match o["kind"].as_str() {
            Some("Pod") => {
                let p: Pod = serde_json::from_value(o).expect("pod");
                if let Some(e) = pod_entry(&p) {
                    c.pods.apply(pod_key(&p), e);
                }
            }
            Some("Node") => {
                let n: Node = serde_json::from_value(o).expect("node");
                let name = n.metadata.name.clone().unwrap_or_default();
                c.nodes.apply(name, trim_node(n));
            }
            Some(kind) => {
                if let Some(s) = WatchedKind::parse(kind).and_then(|k| c.object_store(k)) {
                    s.apply(Cache::object_key(&o), trim_object(o));
                }
            }
            None => {}
        }
    }
    Mutex::new(c)
}

/// One controller replica's repacking: its writer, Events, metrics and state.
struct Replica {
    writer: Writer,
    events: Events,
    metrics: Metrics,
    leader: LeaderFlag,
    dry_run: bool,
    repacker: Repacker,
}

impl Replica {
    fn new(api: &FakeApi, dry_run: bool) -> Self {
        let leader = LeaderFlag::new(true);
        Replica {
            writer: Writer::new(api.client(), writer_cfg(dry_run), leader.clone()),
            events: Events::new(
                &api.client(),
                Reporter {
                    controller: "gpu-slicer".into(),
                    instance: None,
                },
            ),
            metrics: Metrics::new(),
            leader,
            dry_run,
            repacker: Repacker::new(RepackConfig::default(), true),
        }
    }

    async fn propose(&mut self, api: &FakeApi) -> gpu_slicer::controller::repack::Proposed {
        let cache = cache_of(api);
        let cat = Arc::new(gpu_slicer::catalog::embedded().expect("catalog"));
        let io = Io {
            writer: &self.writer,
            events: &self.events,
            metrics: &self.metrics,
            leader: &self.leader,
            dry_run: self.dry_run,
        };
        self.repacker
            .propose(
                &io,
                &cache,
                cat,
                &settings(),
                &SnapshotSettings::default(),
                now_s(),
            )
            .await
    }

    async fn progress(
        &mut self,
        api: &FakeApi,
        at_s: i64,
    ) -> gpu_slicer::controller::repack::Progress {
        let cache = cache_of(api);
        let io = Io {
            writer: &self.writer,
            events: &self.events,
            metrics: &self.metrics,
            leader: &self.leader,
            dry_run: self.dry_run,
        };
        self.repacker.progress(&io, &cache, at_s).await
    }
}

fn claim_writes(api: &FakeApi) -> Vec<Seen> {
    api.writes()
        .into_iter()
        .filter(|w| w.path().contains("/nodeclaims"))
        .collect()
}

fn events(api: &FakeApi, reason: &str) -> Vec<Seen> {
    api.writes()
        .into_iter()
        .filter(|w| w.path().contains("/events") && w.body["reason"] == reason)
        .collect()
}

fn claims_in(api: &FakeApi) -> Vec<Value> {
    api.objects()
        .into_iter()
        .filter(|o| o["kind"] == "NodeClaim")
        .collect()
}

fn replacements_in(api: &FakeApi) -> Vec<Value> {
    claims_in(api)
        .into_iter()
        .filter(|c| c["metadata"]["labels"].get(MOVE_LABEL).is_some())
        .collect()
}

/// Karpenter launches the replacements: each gets a Node (Ready, and sliced unless
/// `tainted`) and `status.nodeName`.
fn launch_replacements(api: &FakeApi, ready: bool, tainted: bool) {
    for (i, c) in replacements_in(api).into_iter().enumerate() {
        let node_name = format!("new-{i}");
        let ty = c["spec"]["requirements"]
            .as_array()
            .and_then(|rs| {
                rs.iter()
                    .find(|r| r["key"] == "node.kubernetes.io/instance-type")
            })
            .and_then(|r| r["values"][0].as_str())
            .expect("pinned instance type")
            .to_string();
        let r: u32 = c["metadata"]["labels"]["gpu-slicer.io/replicas"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("replicas label");
        let mut claim = c.clone();
        claim["status"] = json!({"nodeName": node_name});
        api.update(claim);
        api.insert(node(&node_name, &ty, r, None, ready, tainted));
    }
}

fn metric(m: &Metrics, line: &str) -> bool {
    m.encode().lines().any(|l| l == line)
}

/// (i) A move that saves: replacement NodeClaims applied with the move's labels and
/// annotations; nothing deleted while they launch; once their Nodes are Ready and sliced,
/// the old NodeClaims are deleted with their uid as precondition.
#[tokio::test]
async fn a_move_that_saves_launches_then_deletes_the_old_claims() {
    let api = FakeApi::default();
    fleet(
        &api,
        3,
        NODEPOOL,
        Some(json!([{"nodes": "100%"}])),
        json!({}),
    );
    let uids: Vec<(String, Value)> = claims_in(&api)
        .iter()
        .map(|c| {
            (
                c["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                c["metadata"]["uid"].clone(),
            )
        })
        .collect();
    let mut r = Replica::new(&api, false);
    let out = r.propose(&api).await;
    let id = out.started.clone().expect("a move started");
    assert!(
        out.force_round,
        "replacements launched: the next round counts them"
    );
    let m = out
        .proposal
        .as_ref()
        .and_then(|p| p.chosen.as_ref())
        .expect("chosen");
    assert_eq!(m.replaced, ["n0", "n1", "n2"]);
    assert!(m.saving_per_hour() > 0.05 * m.old_hourly_cost);

    // The writes: server-side apply of the replacements, nothing else on NodeClaims.
    let writes = claim_writes(&api);
    assert!(!writes.is_empty());
    assert_eq!(writes.len(), m.plan.nodes.len());
    for w in &writes {
        assert_eq!(w.method, "PATCH", "{w:?}");
        assert!(w.content_type.contains("apply-patch"), "{}", w.content_type);
        assert!(w.uri.contains("fieldManager=gpu-slicer"), "{}", w.uri);
        let meta = &w.body["metadata"];
        assert_eq!(meta["labels"][MOVE_LABEL], json!(id));
        assert_eq!(meta["labels"][MANAGED_BY], MANAGER);
        assert_eq!(meta["annotations"][REPLACES_ANNOTATION], "c-n0,c-n1,c-n2");
        assert_eq!(
            meta["annotations"][MOVE_SIZE_ANNOTATION],
            json!(writes.len().to_string())
        );
        assert_eq!(w.body["spec"]["expireAfter"], "Never");
    }
    assert_eq!(
        events(&api, "RepackStarted").len(),
        3,
        "one per replaced node"
    );
    let started = &events(&api, "RepackStarted")[0].body;
    assert!(
        started["note"].as_str().is_some_and(|n| n.contains("/h")),
        "{started}"
    );
    assert!(metric(
        &r.metrics,
        "gpu_slicer_repack_moves_total{outcome=\"started\"} 1"
    ));

    // The next round counts the replacements (in flight, pinned by their requirements):
    // the device-plugin ConfigMap gets their profile, and nothing of theirs is deleted.
    let snap = cache_of(&api)
        .lock()
        .expect("lock")
        .snapshot(&SnapshotSettings::default());
    let cat = gpu_slicer::catalog::embedded().expect("catalog");
    let round = round::round(
        &round::RoundInputs {
            catalog: &cat,
            pending: &snap.pending,
            fleet: &snap.fleet,
            pools: &snap.pools,
            ec2nodeclasses: &snap.ec2nodeclasses,
            device_plugin: snap.device_plugin.as_ref(),
            live: &snap.live,
            nodes_of: &|_| 0,
        },
        &settings(),
    );
    let cm = round
        .actions
        .apply
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .expect("the device-plugin ConfigMap");
    for c in replacements_in(&api) {
        let r: u32 = c["metadata"]["labels"]["gpu-slicer.io/replicas"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("replicas label");
        assert_ne!(r, 2, "the old nodes' R: the check would not bite");
        assert!(
            cm["data"].get(profile_name(r)).is_some(),
            "{} missing from {}",
            profile_name(r),
            cm["data"]
        );
    }
    assert!(
        round
            .actions
            .delete
            .iter()
            .all(|d| d.key.kind != "NodeClaim"),
        "{:?}",
        round.actions.delete
    );

    // The same names for the same move, and no second move while this one runs.
    api.clear_seen();
    let again = r.propose(&api).await;
    assert!(again.skipped.is_some_and(|s| s.contains("in progress")));
    assert!(api.writes().is_empty(), "{:?}", api.writes());

    // Launching: no Node yet, then Ready but still slicing-pending. Nothing deleted.
    assert!(r.progress(&api, now_s()).await.waiting.contains(&id));
    launch_replacements(&api, true, true);
    assert!(r.progress(&api, now_s()).await.waiting.contains(&id));
    assert!(claim_writes(&api).is_empty());

    // Ready and sliced: the old claims go, with their uids.
    launch_replacements_sliced(&api);
    api.clear_seen();
    let p = r.progress(&api, now_s()).await;
    assert_eq!(p.finished, std::slice::from_ref(&id));
    let deletes = claim_writes(&api);
    assert_eq!(deletes.len(), 3, "{deletes:?}");
    for d in &deletes {
        assert_eq!(d.method, "DELETE");
        let name = d.path().rsplit('/').next().unwrap_or_default();
        let uid = &uids
            .iter()
            .find(|(n, _)| n == name)
            .expect("an old claim")
            .1;
        assert_eq!(&d.body["preconditions"]["uid"], uid, "{d:?}");
    }
    assert_eq!(events(&api, "RepackFinished").len(), 3);
    assert!(replacements_in(&api).len() == m.plan.nodes.len());
    assert_eq!(
        claims_in(&api).len(),
        m.plan.nodes.len(),
        "only the new claims are left"
    );
    assert!(metric(
        &r.metrics,
        "gpu_slicer_repack_moves_total{outcome=\"finished\"} 1"
    ));
    assert!(metric(
        &r.metrics,
        "gpu_slicer_repack_pods_restarted_total 3"
    ));

    // Done: nothing more to write.
    api.clear_seen();
    let p = r.progress(&api, now_s()).await;
    assert!(p.finished.is_empty() && p.deleted.is_empty());
    assert!(api.writes().is_empty());
}

/// The replacements' Nodes lose the startup taint (the controller removes it once sliced).
fn launch_replacements_sliced(api: &FakeApi) {
    for o in api.objects() {
        if o["kind"] == "Node"
            && o["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("new-"))
        {
            let mut n = o.clone();
            n["spec"]["taints"] = json!([]);
            api.update(n);
        }
    }
}

/// (ii) Nothing cheaper: one g4dn.xlarge with one 12 GiB pod (the cheapest GPU node
/// that holds it: a 2 GiB pod would move to a g6f.large part of an L4, $0.202/h).
#[tokio::test]
async fn a_move_that_does_not_save_writes_nothing() {
    let api = FakeApi::default();
    api.insert(owned_nodepool(NODEPOOL, Some(json!([{"nodes": "100%"}]))));
    api.insert(node("n0", "g4dn.xlarge", 4, Some(NODEPOOL), true, false));
    api.insert(claim("c-n0", "n0", "g4dn.xlarge", NODEPOOL));
    api.insert(pod("p0", "n0", json!({"gpu-slicer.io/gpu-memory": "12Gi"})));
    let mut r = Replica::new(&api, false);
    api.clear_seen();
    let out = r.propose(&api).await;
    let p = out.proposal.expect("proposed");
    assert!(p.chosen.is_none(), "{:?}", p.chosen);
    assert_eq!(p.candidates, 1);
    assert!(!p.tried.is_empty());
    assert!(api.writes().is_empty(), "{:?}", api.writes());
    assert!(metric(
        &r.metrics,
        "gpu_slicer_repack_last_proposal_saving_dollars_per_hour 0.0"
    ));
}

/// (iii) A `karpenter.sh/do-not-disrupt` pod pins its node: zero writes (and without the
/// annotation, the same node is moved).
#[tokio::test]
async fn a_do_not_disrupt_pod_pins_its_node() {
    let api = FakeApi::default();
    fleet(
        &api,
        1,
        NODEPOOL,
        Some(json!([{"nodes": "100%"}])),
        json!({DO_NOT_DISRUPT: "true"}),
    );
    let mut r = Replica::new(&api, false);
    api.clear_seen();
    let out = r.propose(&api).await;
    assert!(out.started.is_none());
    let p = out.proposal.expect("proposed");
    assert_eq!(p.blocked.len(), 1);
    assert_eq!(p.blocked[0].1.reason(), "do_not_disrupt");
    assert!(api.writes().is_empty(), "{:?}", api.writes());
    assert!(metric(
        &r.metrics,
        "gpu_slicer_repack_blocked_nodes{reason=\"do_not_disrupt\"} 1"
    ));

    // The check bites: the same fleet without the annotation moves (g4dn.2xlarge →
    // g4dn.xlarge).
    let api = FakeApi::default();
    fleet(
        &api,
        1,
        NODEPOOL,
        Some(json!([{"nodes": "100%"}])),
        json!({}),
    );
    let mut r = Replica::new(&api, false);
    assert!(r.propose(&api).await.started.is_some());
    assert_eq!(claim_writes(&api).len(), 1);
}

/// (iv) A disruption budget of 0 on the NodePool: zero writes. An unreadable budget: an
/// Event on the NodePool naming the field, the invalid-input metric, and no move.
#[tokio::test]
async fn a_budget_of_zero_or_an_unreadable_budget_blocks_the_nodepool() {
    let api = FakeApi::default();
    fleet(&api, 2, NODEPOOL, Some(json!([{"nodes": "0"}])), json!({}));
    let mut r = Replica::new(&api, false);
    api.clear_seen();
    let out = r.propose(&api).await;
    assert!(out.started.is_none());
    let p = out.proposal.expect("proposed");
    assert!(
        p.blocked.iter().all(|(_, b)| b.reason() == "budget") && p.blocked.len() == 2,
        "{:?}",
        p.blocked
    );
    assert!(api.writes().is_empty(), "{:?}", api.writes());

    let api = FakeApi::default();
    fleet(
        &api,
        2,
        NODEPOOL,
        Some(json!([{"nodes": "ten"}])),
        json!({}),
    );
    let mut r = Replica::new(&api, false);
    api.clear_seen();
    assert!(r.propose(&api).await.started.is_none());
    assert!(claim_writes(&api).is_empty());
    let ev = events(&api, "InvalidConfiguration");
    assert_eq!(ev.len(), 1, "{:?}", api.writes());
    let note = ev[0].body["note"].as_str().unwrap_or_default();
    assert!(
        note.contains(NODEPOOL) && note.contains("spec.disruption.budgets[0].nodes"),
        "{note}"
    );
    assert_eq!(ev[0].body["regarding"]["kind"], "NodePool");
    assert!(metric(
        &r.metrics,
        "gpu_slicer_invalid_input_total{kind=\"NodePool\"} 1"
    ));
    // The same error is not published again.
    api.clear_seen();
    r.propose(&api).await;
    assert!(events(&api, "InvalidConfiguration").is_empty());
}

/// (v) The lease is lost mid-move: the replacements were applied, then nothing is
/// deleted; a new leader with fresh state finishes the move from the API objects alone.
#[tokio::test]
async fn losing_the_lease_mid_move_and_a_new_leader_finishes_it() {
    let api = FakeApi::default();
    fleet(
        &api,
        3,
        NODEPOOL,
        Some(json!([{"nodes": "100%"}])),
        json!({}),
    );
    let mut old = Replica::new(&api, false);
    let id = old.propose(&api).await.started.expect("a move");
    assert!(!replacements_in(&api).is_empty());
    old.leader.set(false);
    launch_replacements(&api, true, false);
    api.clear_seen();
    let p = old.progress(&api, now_s()).await;
    assert!(p.deleted.is_empty());
    assert!(api.writes().is_empty(), "{:?}", api.writes());
    // A follower proposes nothing either.
    assert!(old.propose(&api).await.skipped.is_some());
    assert!(api.writes().is_empty());

    let mut new = Replica::new(&api, false);
    let p = new.progress(&api, now_s()).await;
    assert_eq!(p.finished, [id]);
    let deletes: Vec<String> = claim_writes(&api)
        .iter()
        .filter(|w| w.method == "DELETE")
        .map(|w| w.path().rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(deletes, ["c-n0", "c-n1", "c-n2"]);
    // And the old leader, back, does not delete again what is gone.
    old.leader.set(true);
    api.clear_seen();
    old.progress(&api, now_s()).await;
    assert!(claim_writes(&api).is_empty());
}

/// (vi) Replacements that never become Ready: after `--repack-ready-timeout` they are
/// deleted and the old NodeClaims are kept.
#[tokio::test]
async fn replacements_that_never_become_ready_are_rolled_back() {
    let api = FakeApi::default();
    fleet(
        &api,
        3,
        NODEPOOL,
        Some(json!([{"nodes": "100%"}])),
        json!({}),
    );
    let mut r = Replica::new(&api, false);
    let id = r.propose(&api).await.started.expect("a move");
    let reps: Vec<(String, Value)> = replacements_in(&api)
        .iter()
        .map(|c| {
            (
                c["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                c["metadata"]["uid"].clone(),
            )
        })
        .collect();
    launch_replacements(&api, false, true);
    api.clear_seen();
    // Within the timeout: waiting.
    let p = r.progress(&api, now_s() + 60).await;
    assert!(p.waiting.contains(&id));
    assert!(api.writes().is_empty());
    // After it: the replacements go, uid preconditions included; the old claims stay.
    let later = now_s() + RepackConfig::default().ready_timeout.as_secs() as i64 + 60;
    let p = r.progress(&api, later).await;
    assert_eq!(p.rolled_back, std::slice::from_ref(&id));
    let deletes = claim_writes(&api);
    assert_eq!(deletes.len(), reps.len());
    for d in &deletes {
        assert_eq!(d.method, "DELETE");
        let name = d.path().rsplit('/').next().unwrap_or_default();
        let uid = &reps
            .iter()
            .find(|(n, _)| n == name)
            .expect("a replacement")
            .1;
        assert_eq!(&d.body["preconditions"]["uid"], uid);
    }
    let left: Vec<String> = claims_in(&api)
        .iter()
        .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(left, ["c-n0", "c-n1", "c-n2"]);
    let rolled = events(&api, "RepackRolledBack");
    assert_eq!(rolled.len(), 3, "one per kept node");
    assert_eq!(rolled[0].body["type"], "Warning");
    assert!(
        rolled[0].body["note"]
            .as_str()
            .is_some_and(|n| n.contains("not Ready and sliced")),
        "{}",
        rolled[0].body
    );
    assert!(metric(
        &r.metrics,
        "gpu_slicer_repack_moves_total{outcome=\"rolled_back\"} 1"
    ));
    // Nothing more afterwards.
    api.clear_seen();
    r.progress(&api, later + 60).await;
    assert!(api.writes().is_empty());
}

/// A NodeClaim of a NodePool gpu-slicer does not own is never deleted: its nodes are not
/// candidates, and a replacement naming it (someone's label on an owned claim) does not
/// get it deleted.
#[tokio::test]
async fn a_claim_of_a_nodepool_gpu_slicer_does_not_own_is_never_deleted() {
    let api = FakeApi::default();
    fleet(&api, 3, "users-pool", None, json!({}));
    let mut r = Replica::new(&api, false);
    api.clear_seen();
    let out = r.propose(&api).await;
    assert!(out.started.is_none());
    let p = out.proposal.expect("proposed");
    assert!(
        p.blocked.iter().all(|(_, b)| b.reason() == "no_claim"),
        "{:?}",
        p.blocked
    );
    assert!(api.writes().is_empty(), "{:?}", api.writes());

    // An owned replacement that names c-n0 as replaced, with a Ready, sliced node.
    let rep = json!({"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
        "metadata": {"name": "rep", "labels": {MANAGED_BY: MANAGER, MOVE_LABEL: "m1"},
            "annotations": {REPLACES_ANNOTATION: "c-n0", MOVE_SIZE_ANNOTATION: "1"}},
        "spec": {}, "status": {"nodeName": "new-0"}});
    api.insert(rep);
    api.insert(node("new-0", "g4dn.xlarge", 4, None, true, false));
    api.clear_seen();
    let p = r.progress(&api, now_s()).await;
    assert!(p.deleted.is_empty(), "{p:?}");
    assert!(api.writes().is_empty(), "{:?}", api.writes());
    assert!(
        api.get(&object_path(&claim("c-n0", "n0", "", "")).expect("path"))
            .is_some()
    );
}

/// `--dry-run`: the move is proposed and logged, nothing is written.
#[tokio::test]
async fn dry_run_proposes_and_writes_nothing() {
    let api = FakeApi::default();
    fleet(
        &api,
        3,
        NODEPOOL,
        Some(json!([{"nodes": "100%"}])),
        json!({}),
    );
    let mut r = Replica::new(&api, true);
    api.clear_seen();
    let out = r.propose(&api).await;
    assert!(out.started.is_some());
    assert!(!out.replacements.is_empty());
    assert!(!out.force_round);
    assert!(api.writes().is_empty(), "{:?}", api.writes());
    assert!(metric(
        &r.metrics,
        "gpu_slicer_repack_moves_total{outcome=\"proposed_dry_run\"} 1"
    ));
}

#[tokio::test]
async fn a_budget_of_one_paces_the_deletions_in_waves() {
    // Karpenter's budgets bound the nodes being deleted at once: the move replaces all
    // three nodes, and their claims go one per loop.
    let api = FakeApi::default();
    fleet(&api, 3, NODEPOOL, Some(json!([{"nodes": "1"}])), json!({}));
    let mut r = Replica::new(&api, false);
    let out = r.propose(&api).await;
    let id = out.started.clone().expect("a move started");
    let m = out
        .proposal
        .as_ref()
        .and_then(|p| p.chosen.as_ref())
        .expect("chosen");
    assert_eq!(m.replaced.len(), 3, "the budget does not cap the move");
    launch_replacements(&api, true, false);
    let mut waves = Vec::new();
    for _ in 0..4 {
        api.clear_seen();
        let p = r.progress(&api, now_s()).await;
        let deletes = claim_writes(&api)
            .iter()
            .filter(|w| w.method == "DELETE")
            .count();
        waves.push(deletes);
        if p.finished.is_empty() && deletes == 0 {
            break;
        }
        assert!(p.finished.is_empty() || p.finished == std::slice::from_ref(&id));
    }
    assert_eq!(&waves[..3], [1, 1, 1], "one claim per wave: {waves:?}");
    assert_eq!(
        claims_in(&api).len(),
        m.plan.nodes.len(),
        "only the new claims are left"
    );
    assert!(metric(
        &r.metrics,
        "gpu_slicer_repack_pods_restarted_total 3"
    ));
    assert!(metric(
        &r.metrics,
        "gpu_slicer_repack_moves_total{outcome=\"finished\"} 1"
    ));
}
