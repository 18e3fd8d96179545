//! Mock API server scenarios for the controller's write path (kube-rs's `tower-test`
//! pattern): render → diff against what the server holds → the one writer.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "controller")]

#[path = "support/fake_api.rs"]
mod fake_api;

use std::num::NonZeroU32;
use std::time::Duration;

use fake_api::{FakeApi, object_path};
use gpu_slicer::controller::error::Category;
use gpu_slicer::controller::writer::{Applied, LeaderFlag, Writer, WriterConfig};
use gpu_slicer::model::{DemandItem, ReplicaPolicy, Resources};
use gpu_slicer::planner::{self, PlanOptions};
use gpu_slicer::reconcile::{self, Actions, ObjectKey, is_owned};
use gpu_slicer::render::{self, Frame, RenderOptions};
use serde_json::{Value, json};

fn cfg() -> WriterConfig {
    WriterConfig {
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        writes_per_second: NonZeroU32::new(1000).expect("non-zero"),
        burst: NonZeroU32::new(1000).expect("non-zero"),
        ..WriterConfig::default()
    }
}

/// The objects for `n` one-slice pods at R = 4.
fn desired(n: usize) -> Vec<Value> {
    let cat = gpu_slicer::catalog::embedded().expect("catalog");
    let items: Vec<DemandItem> = (0..n)
        .map(|i| DemandItem::shared(format!("ml/p-{i}"), Resources::new(500, 1 << 30)))
        .collect();
    let opts = PlanOptions {
        default_replicas: ReplicaPolicy::Fixed(4),
        dedicated: false,
        ..PlanOptions::default()
    };
    let plan = planner::plan(&cat, &items, &opts);
    render::render(&plan, &cat, Frame::default(), &RenderOptions::default())
        .expect("renders")
        .objects
}

fn actions(desired: &[Value], api: &FakeApi) -> Actions {
    let (a, conflicts) = reconcile::diff(desired, &api.objects(), &|_| 0);
    assert!(conflicts.is_empty(), "{conflicts:?}");
    a
}

async fn round(api: &FakeApi, writer: &Writer, want: &[Value]) -> Applied {
    writer.execute(&actions(want, api)).await
}

fn unowned_pool() -> Value {
    json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
           "metadata": {"name": "users-pool", "labels": {"team": "a"}},
           "spec": {"template": {"spec": {"requirements": [],
               "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "x"}}}}})
}

#[tokio::test]
async fn first_round_creates_second_writes_nothing_drop_deletes_only_owned() {
    let api = FakeApi::default();
    api.insert(unowned_pool());
    let writer = Writer::new(api.client(), cfg(), LeaderFlag::new(true));
    let want = desired(8);

    // First round: everything is created by server-side apply.
    let out = round(&api, &writer, &want).await;
    assert!(out.failed.is_empty(), "{out:?}");
    assert_eq!(out.applied.len(), want.len());
    let writes = api.writes();
    assert_eq!(writes.len(), want.len());
    for w in &writes {
        assert_eq!(w.method, "PATCH");
        assert!(w.content_type.contains("apply-patch"), "{}", w.content_type);
        assert!(w.uri.contains("fieldManager=gpu-slicer"), "{}", w.uri);
        assert!(w.uri.contains("force=true"), "{}", w.uri);
    }
    let kinds: Vec<&str> = want.iter().filter_map(|o| o["kind"].as_str()).collect();
    for k in ["ConfigMap", "EC2NodeClass", "NodePool", "NodeOverlay"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }

    // Second, identical round: no write at all.
    api.clear_seen();
    let out = round(&api, &writer, &want).await;
    assert_eq!(out, Applied::default());
    assert!(api.seen().is_empty(), "{:?}", api.seen());

    // Demand drops to nothing: owned pools, overlays and classes go; the ConfigMap stays
    // (it is still desired) and the user's NodePool is never touched.
    api.clear_seen();
    let empty = desired(0);
    let out = round(&api, &writer, &empty).await;
    assert!(out.failed.is_empty(), "{out:?}");
    assert!(!out.deleted.is_empty());
    for w in api.writes() {
        assert!(
            !w.path().contains("users-pool"),
            "touched the user's pool: {w:?}"
        );
    }
    let deletes: Vec<String> = api
        .writes()
        .iter()
        .filter(|w| w.method == "DELETE")
        .map(|w| w.path().to_string())
        .collect();
    assert!(deletes.iter().any(|p| p.contains("/nodeoverlays/")));
    assert!(deletes.iter().any(|p| p.contains("/nodepools/")));
    // Deletions carry the uid precondition.
    for w in api.writes().iter().filter(|w| w.method == "DELETE") {
        assert!(w.body.pointer("/preconditions/uid").is_some(), "{w:?}");
    }
    let left: Vec<Value> = api.objects();
    assert!(left.iter().any(|o| o["metadata"]["name"] == "users-pool"));
    assert!(left.iter().all(|o| o["kind"] != "NodePool" || !is_owned(o)));
}

#[tokio::test]
async fn conflicts_throttling_and_server_errors_are_retried_and_converge() {
    let api = FakeApi::default();
    let writer = Writer::new(api.client(), cfg(), LeaderFlag::new(true));
    let want = desired(4);
    api.fail_next("PATCH", "/nodepools/", 409);
    api.fail_next("PATCH", "/nodepools/", 429);
    api.fail_next("PATCH", "/nodeoverlays/", 500);
    api.fail_next("PATCH", "/configmaps/", 503);
    let out = round(&api, &writer, &want).await;
    assert!(out.failed.is_empty(), "{out:?}");
    assert_eq!(out.applied.len(), want.len());
    assert_eq!(
        api.writes().len(),
        want.len() + 4,
        "each failure retried once"
    );
    assert_eq!(writer.sent(), (want.len() + 4) as u64);
    // Converged: the next round writes nothing.
    api.clear_seen();
    assert_eq!(round(&api, &writer, &want).await, Applied::default());
}

#[tokio::test]
async fn invalid_is_not_retried_and_persistent_errors_give_up() {
    let api = FakeApi::default();
    let writer = Writer::new(api.client(), cfg(), LeaderFlag::new(true));
    let want = desired(4);
    api.fail_next("PATCH", "/nodepools/", 422);
    for _ in 0..5 {
        api.fail_next("PATCH", "/nodeoverlays/", 500);
    }
    let out = round(&api, &writer, &want).await;
    assert_eq!(out.failed.len(), 2, "{out:?}");
    let pool = out
        .failed
        .iter()
        .find(|f| f.object.starts_with("NodePool"))
        .expect("pool failed");
    assert_eq!(pool.category, Category::Invalid);
    let overlay = out
        .failed
        .iter()
        .find(|f| f.object.starts_with("NodeOverlay"))
        .expect("overlay failed");
    assert_eq!(overlay.category, Category::Transient);
    let pool_writes = api
        .writes()
        .iter()
        .filter(|w| w.path().contains("/nodepools/"))
        .count();
    assert_eq!(pool_writes, 1, "422 is not retried");
    let overlay_writes = api
        .writes()
        .iter()
        .filter(|w| w.path().contains("/nodeoverlays/"))
        .count();
    assert_eq!(overlay_writes, 5, "max_attempts");
}

#[tokio::test]
async fn dry_run_makes_zero_writes() {
    let api = FakeApi::default();
    let writer = Writer::new(
        api.client(),
        WriterConfig {
            dry_run: true,
            ..cfg()
        },
        LeaderFlag::new(true),
    );
    let want = desired(6);
    let out = round(&api, &writer, &want).await;
    assert_eq!(out.dry_run, want.len());
    assert!(out.applied.is_empty());
    assert!(api.seen().is_empty());
    assert_eq!(writer.sent(), 0);
}

#[tokio::test]
async fn losing_the_lease_stops_writes() {
    let api = FakeApi::default();
    let leader = LeaderFlag::new(true);
    let writer = Writer::new(api.client(), cfg(), leader.clone());
    // The lease is lost while the first write is in flight.
    let flag = leader.clone();
    api.on_request(move |_| flag.set(false));
    let want = desired(6);
    let out = round(&api, &writer, &want).await;
    assert_eq!(api.writes().len(), 1);
    assert_eq!(out.applied.len(), 1);
    assert_eq!(out.not_leader, want.len() - 1);
    // Not leader from the start: nothing at all.
    let api2 = FakeApi::default();
    let writer2 = Writer::new(api2.client(), cfg(), LeaderFlag::new(false));
    let out = round(&api2, &writer2, &want).await;
    assert_eq!(out.not_leader, want.len());
    assert!(api2.seen().is_empty());
}

#[tokio::test]
async fn deleting_an_object_recreated_by_someone_else_is_refused_by_uid() {
    let api = FakeApi::default();
    let writer = Writer::new(api.client(), cfg(), LeaderFlag::new(true));
    let want = desired(4);
    round(&api, &writer, &want).await;
    let empty = desired(0);
    let acts = actions(&empty, &api);
    // Between the read and the delete, the pool is replaced by another object.
    let pool = want
        .iter()
        .find(|o| o["kind"] == "NodePool")
        .expect("pool")
        .clone();
    let path = object_path(&pool).expect("path");
    let before = api.get(&path).expect("exists");
    // insert() stores it again under a fresh uid, as a re-created object would have.
    api.insert(before.clone());
    assert_ne!(
        api.get(&path).expect("stored")["metadata"]["uid"],
        before["metadata"]["uid"]
    );
    let out = writer.execute(&acts).await;
    let key = ObjectKey::of(&pool).expect("key");
    assert!(
        !out.deleted.contains(&key),
        "deleted an object with another uid: {out:?}"
    );
    assert!(api.get(&path).is_some());
}

fn tainted_node(taints: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": "n1", "labels": {"gpu-slicer.io/replicas": "4"}},
           "spec": {"taints": taints},
           "status": {"allocatable": {"nvidia.com/gpu": "4"}}})
}

#[tokio::test]
async fn startup_taint_is_removed_by_a_guarded_json_patch() {
    let api = FakeApi::default();
    let pending =
        json!({"key": "gpu-slicer.io/slicing-pending", "value": "true", "effect": "NoSchedule"});
    let other = json!({"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"});
    api.insert(tainted_node(json!([other, pending])));
    let writer = Writer::new(api.client(), cfg(), LeaderFlag::new(true));
    assert_eq!(writer.remove_taint("n1", 1, &pending).await, Ok(true));
    let node = api.get("/api/v1/nodes/n1").expect("node");
    assert_eq!(
        node["spec"]["taints"],
        json!([other]),
        "only gpu-slicer's taint goes"
    );
    let w = api.writes();
    assert_eq!(w.len(), 1);
    assert!(
        w[0].content_type.contains("json-patch"),
        "{}",
        w[0].content_type
    );
    assert_eq!(w[0].body[0]["op"], "test");

    // The taint list changed since it was read: the test op fails, nothing is removed.
    api.insert(tainted_node(json!([pending.clone(), other.clone()])));
    let r = writer.remove_taint("n1", 1, &pending).await;
    assert!(matches!(r, Err((Category::Invalid, _))), "{r:?}");
    let node = api.get("/api/v1/nodes/n1").expect("node");
    assert_eq!(node["spec"]["taints"].as_array().map(Vec::len), Some(2));

    // Dry-run and followers do not touch nodes.
    api.clear_seen();
    let dry = Writer::new(
        api.client(),
        WriterConfig {
            dry_run: true,
            ..cfg()
        },
        LeaderFlag::new(true),
    );
    assert_eq!(dry.remove_taint("n1", 0, &pending).await, Ok(false));
    let follower = Writer::new(api.client(), cfg(), LeaderFlag::new(false));
    assert_eq!(follower.remove_taint("n1", 0, &pending).await, Ok(false));
    assert!(api.seen().is_empty());
}

#[tokio::test]
async fn the_budget_guard_refuses_and_nothing_is_written() {
    use gpu_slicer::guard::Budget;
    use gpu_slicer::reconcile::round::{self, RoundInputs, Settings};
    let api = FakeApi::default();
    let writer = Writer::new(api.client(), cfg(), LeaderFlag::new(true));
    let cat = gpu_slicer::catalog::embedded().expect("catalog");
    let pending: Vec<DemandItem> = (0..12)
        .map(|i| DemandItem::shared(format!("ml/p-{i}"), Resources::new(500, 1 << 30)))
        .collect();
    let live = api.objects();
    let inputs = RoundInputs {
        catalog: &cat,
        pending: &pending,
        fleet: &[],
        pools: &[],
        ec2nodeclasses: &[],
        device_plugin: None,
        live: &live,
        nodes_of: &|_| 0,
    };
    let mut settings = Settings {
        plan: PlanOptions {
            default_replicas: ReplicaPolicy::Fixed(4),
            dedicated: false,
            effort: gpu_slicer::planner::Effort::Fast,
            ..PlanOptions::default()
        },
        render: RenderOptions::default(),
        budget: Budget {
            max_hourly_cost: Some(0.5),
            max_nodes: None,
        },
    };
    let out = round::round(&inputs, &settings);
    assert_eq!(out.refusals.len(), 1, "{:?}", out.refusals);
    assert!(out.actions.is_empty());
    let res = writer.execute(&out.actions).await;
    assert_eq!(res, Applied::default());
    assert!(api.seen().is_empty());
    // Within budget, the same round writes.
    settings.budget.max_hourly_cost = Some(100.0);
    let out = round::round(&inputs, &settings);
    assert!(out.refusals.is_empty());
    let res = writer.execute(&out.actions).await;
    assert!(!res.applied.is_empty());
}

#[tokio::test]
async fn taint_is_removed_only_at_the_right_allocatable() {
    use gpu_slicer::reconcile::nodes::{Slicing, slicing};
    use k8s_openapi::api::core::v1::Node;
    use k8s_openapi::jiff::Timestamp;
    let api = FakeApi::default();
    let writer = Writer::new(api.client(), cfg(), LeaderFlag::new(true));
    let pending =
        json!({"key": "gpu-slicer.io/slicing-pending", "value": "true", "effect": "NoSchedule"});
    for (alloc, expect_removed) in [("1", false), ("2", true)] {
        let obj = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n1", "labels": {"gpu-slicer.io/replicas": "2",
                "karpenter.k8s.aws/instance-gpu-count": "1"}},
            "spec": {"taints": [pending.clone()]},
            "status": {"allocatable": {"nvidia.com/gpu": alloc}}});
        api.insert(obj.clone());
        api.clear_seen();
        let node: Node = serde_json::from_value(obj).expect("node");
        let decision = slicing(&node, Timestamp::now(), Duration::from_secs(600), &|_| None);
        if decision == Slicing::Ready {
            writer
                .remove_taint("n1", 0, &pending)
                .await
                .expect("patched");
        }
        let taints = api.get("/api/v1/nodes/n1").expect("node")["spec"]["taints"].clone();
        assert_eq!(
            taints.as_array().is_some_and(Vec::is_empty),
            expect_removed,
            "allocatable {alloc}: {decision:?}"
        );
        assert_eq!(api.writes().len(), usize::from(expect_removed));
    }
}
