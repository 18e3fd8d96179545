use std::borrow::Cow;

use super::*;
use k8s_openapi::api::core::v1::{
    Container, NodeCondition, NodeSpec, NodeStatus, Pod, PodCondition, PodSpec, PodStatus,
    ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

/// A GPU pod (1 `nvidia.com/gpu`, 500m cpu): pending and unschedulable without `node`,
/// running on `node` with one. Shared with the controller's watch tests.
pub(crate) fn gpu_pod(
    ns: &str,
    name: &str,
    node: Option<&str>,
    annotations: &[(&str, &str)],
) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: node.map(str::to_string),
            containers: vec![Container {
                name: "c".into(),
                resources: Some(ResourceRequirements {
                    limits: Some(BTreeMap::from([(
                        "nvidia.com/gpu".to_string(),
                        Quantity("1".into()),
                    )])),
                    requests: Some(BTreeMap::from([(
                        "cpu".to_string(),
                        Quantity("500m".into()),
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
                    ..PodCondition::default()
                }]
            }),
            ..PodStatus::default()
        }),
    }
}

fn node(name: &str, ready: bool, tainted: bool) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([
                (POOL_LABEL.to_string(), "gpu-slicer".to_string()),
                (labels::INSTANCE_TYPE.to_string(), "g4dn.xlarge".to_string()),
                (REPLICAS_LABEL.to_string(), "4".to_string()),
                (labels::NODEPOOL.to_string(), "gpu-slicer-ts-r4".to_string()),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: tainted.then(|| {
                vec![k8s_openapi::api::core::v1::Taint {
                    key: SLICING_PENDING_TAINT.into(),
                    value: Some("true".into()),
                    effect: "NoSchedule".into(),
                    ..Default::default()
                }]
            }),
            ..NodeSpec::default()
        }),
        status: Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..NodeCondition::default()
            }]),
            ..NodeStatus::default()
        }),
    }
}

#[test]
fn store_init_protocol_replaces_contents() {
    let mut s: Store<u32> = Store::default();
    s.apply("a".into(), 1);
    assert!(!s.synced());
    s.init();
    s.init_apply("b".into(), 2);
    assert_eq!(s.len(), 1, "old contents kept until init_done");
    s.init_done();
    assert!(s.synced());
    assert_eq!(s.get("a"), None);
    assert_eq!(s.get("b"), Some(&2));
    s.delete("b");
    assert!(s.is_empty());
}

#[test]
fn pods_reduce_to_demand_or_usage_or_errors() {
    let p = gpu_pod("ml", "a", None, &[]);
    let e = pod_entry(&p).expect("kept");
    assert!(matches!(e.pending, Some(Ok(ref d)) if d.id == "ml/a"));
    let bound = gpu_pod("ml", "b", Some("n1"), &[]);
    let e = pod_entry(&bound).expect("kept");
    assert_eq!(e.bound, Some(("n1".into(), Resources::new(500, 0), 1)));
    let bad = gpu_pod("ml", "c", None, &[("gpu-slicer.io/gpu-share", "2")]);
    let e = pod_entry(&bad).expect("kept");
    assert!(
        matches!(e.pending, Some(Err(ref m)) if m.contains("gpu-share")),
        "{e:?}"
    );
    let mut done = gpu_pod("ml", "d", Some("n1"), &[]);
    done.status.as_mut().expect("status").phase = Some("Succeeded".into());
    assert!(pod_entry(&done).is_none());
}

#[test]
fn snapshot_filters_namespaces_and_builds_the_fleet() {
    let mut c = Cache::default();
    for (ns, name, node) in [
        ("ml", "p1", None),
        ("dev", "p2", None),
        ("ml", "p3", Some("n1")),
    ] {
        let p = gpu_pod(ns, name, node, &[]);
        c.pods.apply(pod_key(&p), pod_entry(&p).expect("kept"));
    }
    c.nodes.apply("n1".into(), node("n1", true, true));
    c.nodes.apply("n2".into(), node("n2", true, false));
    let claim = json!({"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
        "metadata": {"name": "c1", "labels": {
            POOL_LABEL: "gpu-slicer", labels::INSTANCE_TYPE: "g5.xlarge",
            REPLICAS_LABEL: "2", labels::NODEPOOL: "gpu-slicer-ts-r2"}},
        "status": {}});
    c.object_store(WatchedKind::NodeClaim)
        .expect("kind")
        .apply("c1".into(), claim);
    let settings = SnapshotSettings {
        namespaces: Namespaces {
            allow: vec![],
            deny: vec!["dev".into()],
        },
        device_plugin_configmap: None,
        repack_now_s: None,
    };
    let s = c.snapshot(&settings);
    assert_eq!(s.pending.len(), 1);
    assert_eq!(s.pending[0].id, "ml/p1");
    assert_eq!(s.fleet.len(), 3);
    let n1 = s.fleet.iter().find(|f| f.name == "n1").expect("n1");
    assert!(n1.in_flight, "still slicing-pending");
    assert_eq!(n1.used.slices, 1);
    assert!(
        n1.taints.is_empty(),
        "the startup taint is not a scheduling taint"
    );
    assert!(
        !s.fleet
            .iter()
            .find(|f| f.name == "n2")
            .expect("n2")
            .in_flight
    );
    let c1 = s.fleet.iter().find(|f| f.name == "c1").expect("claim");
    assert!(c1.in_flight);
    assert_eq!(c1.replicas, 2);
    assert_eq!(s.nodes_per_nodepool.get("gpu-slicer-ts-r4"), Some(&2));
    assert_eq!(s.nodes_per_nodepool.get("gpu-slicer-ts-r2"), Some(&1));
    assert!(!c.all_synced(&[WatchedKind::Pod, WatchedKind::Node, WatchedKind::NodeClaim]));
}

fn owned_by(mut p: Pod, kind: &str) -> Pod {
    p.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: "w".into(),
            uid: "u".into(),
            controller: Some(true),
            ..Default::default()
        },
    ]);
    p.status.as_mut().expect("status").start_time =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(1_000).expect("ts"),
        ));
    p
}

#[test]
fn running_pods_keep_what_repack_needs() {
    let p = owned_by(gpu_pod("ml", "a", Some("n1"), &[]), "ReplicaSet");
    let r = pod_entry(&p).expect("kept").running.expect("running");
    assert!(matches!(&r.demand, Ok(d) if d.id == "ml/a" && d.gpus == 1));
    assert_eq!(r.started_s, Some(1_000));
    assert!(!r.do_not_disrupt);
    // DaemonSet pods count on the node but are never moved.
    let ds = owned_by(gpu_pod("ml", "b", Some("n1"), &[]), "DaemonSet");
    let e = pod_entry(&ds).expect("kept");
    assert!(e.bound.is_some() && e.running.is_none());
    // No controller: unmovable, and why.
    let bare = gpu_pod("ml", "c", Some("n1"), &[(repack::DO_NOT_DISRUPT, "true")]);
    let r = pod_entry(&bare).expect("kept").running.expect("running");
    assert_eq!(r.demand, Err(Cow::Borrowed(NO_CONTROLLER)));
    assert!(r.do_not_disrupt);
    // An annotation that cannot be read: the demand parser's error is kept.
    let bad = owned_by(
        gpu_pod("ml", "d", Some("n1"), &[("gpu-slicer.io/gpu-share", "2")]),
        "ReplicaSet",
    );
    let e = pod_entry(&bad).expect("kept");
    assert!(e.bound.is_some(), "it still takes room");
    let r = e.running.expect("running");
    assert!(
        matches!(&r.demand, Err(m) if m.contains("gpu-share")),
        "{r:?}"
    );
}

fn claim_of(name: &str, node: Option<&str>, owned: bool, extra: Value) -> Value {
    let mut labels = json!({labels::NODEPOOL: "gpu-slicer-ts-r4"});
    if owned {
        labels[crate::model::contract::MANAGED_BY] = json!(crate::model::contract::MANAGER);
    }
    if let Some(l) = extra.get("labels").and_then(Value::as_object) {
        for (k, v) in l {
            labels[k] = v.clone();
        }
    }
    json!({"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "labels": labels,
            "annotations": extra.get("annotations").cloned().unwrap_or(json!({}))},
        "spec": extra.get("spec").cloned().unwrap_or(json!({})),
        "status": node.map_or(json!({}), |n| json!({"nodeName": n}))})
}

#[test]
fn repack_nodes_join_nodes_claims_and_pods() {
    let mut c = Cache::default();
    let owned_np = json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": "gpu-slicer-ts-r4", "labels": {crate::model::contract::MANAGED_BY: crate::model::contract::MANAGER}}});
    c.object_store(WatchedKind::NodePool)
        .expect("kind")
        .apply("gpu-slicer-ts-r4".into(), owned_np);
    for n in ["n1", "n2", "n3"] {
        c.nodes.apply(n.into(), node(n, true, false));
    }
    let claims = [
        claim_of("c1", Some("n1"), false, json!({})),
        // n2's claim is being replaced by a move in progress.
        claim_of("c2", Some("n2"), false, json!({})),
        claim_of(
            "r1",
            None,
            true,
            json!({"labels": {repack::MOVE_LABEL: "m1", labels::INSTANCE_TYPE: "g4dn.xlarge",
                POOL_LABEL: "gpu-slicer", REPLICAS_LABEL: "4"},
                "annotations": {repack::REPLACES_ANNOTATION: "c2"}}),
        ),
        // n3's claim is of a NodePool gpu-slicer does not own.
        json!({"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
            "metadata": {"name": "c3", "labels": {labels::NODEPOOL: "users"}},
            "status": {"nodeName": "n3"}}),
    ];
    for cl in claims {
        let k = Cache::object_key(&cl);
        c.object_store(WatchedKind::NodeClaim)
            .expect("kind")
            .apply(k, cl);
    }
    let p = owned_by(gpu_pod("ml", "a", Some("n1"), &[]), "ReplicaSet");
    c.pods.apply(pod_key(&p), pod_entry(&p).expect("kept"));
    let ds = owned_by(gpu_pod("kube-system", "ds", Some("n1"), &[]), "DaemonSet");
    c.pods.apply(pod_key(&ds), pod_entry(&ds).expect("kept"));
    let other = owned_by(gpu_pod("dev", "b", Some("n3"), &[]), "ReplicaSet");
    c.pods
        .apply(pod_key(&other), pod_entry(&other).expect("kept"));

    let s = c.snapshot(&SnapshotSettings::default());
    assert!(s.repack.is_empty(), "only when asked");
    let s = c.snapshot(&SnapshotSettings {
        namespaces: Namespaces {
            allow: vec![],
            deny: vec!["dev".into()],
        },
        device_plugin_configmap: None,
        repack_now_s: Some(4_600),
    });
    assert_eq!(s.repack.len(), 3, "registered nodes only: {:?}", s.repack);
    let by = |n: &str| s.repack.iter().find(|r| r.fleet.name == n).expect(n);
    let n1 = by("n1");
    assert_eq!(n1.claim.as_deref(), Some("c1"));
    assert_eq!(n1.nodepool.as_deref(), Some("gpu-slicer-ts-r4"));
    assert!(!n1.moving);
    assert_eq!(n1.pods.len(), 1, "the DaemonSet pod is left out");
    assert_eq!(n1.pods[0].age_s, 3_600);
    assert_eq!(n1.fleet.used.pods, 2, "but it counts in used");
    assert!(by("n2").moving, "replaced by a move in progress");
    assert_eq!(by("n3").claim, None, "not gpu-slicer's to delete");
    assert!(
        by("n3").pods[0]
            .unmovable
            .as_deref()
            .is_some_and(|w| w.contains("namespace")),
        "{:?}",
        by("n3").pods
    );
    // The replacement claim, pinned by a requirement, is in the fleet.
    let r1 = s
        .fleet
        .iter()
        .find(|f| f.name == "r1")
        .expect("r1 in the fleet");
    assert!(r1.in_flight);
    // Karpenter's do-not-disrupt on a Node pins it too (trim_node keeps that one
    // annotation).
    let mut n1 = node("n1", true, false);
    n1.metadata.annotations = Some(BTreeMap::from([
        (repack::DO_NOT_DISRUPT.to_string(), "true".to_string()),
        ("other".to_string(), "dropped".to_string()),
    ]));
    let n1 = trim_node(n1);
    assert_eq!(n1.metadata.annotations.as_ref().map(BTreeMap::len), Some(1));
    c.nodes.apply("n1".into(), n1);
    let s = c.snapshot(&SnapshotSettings {
        repack_now_s: Some(4_600),
        ..SnapshotSettings::default()
    });
    let n1 = s.repack.iter().find(|r| r.fleet.name == "n1").expect("n1");
    assert!(n1.pods[0].do_not_disrupt && n1.pods[0].item.id == "node/n1");
    c.nodes.apply("n1".into(), node("n1", true, false));
    // Once r1's node is Ready and c2 is gone, the move is over: nothing is moving.
    c.object_store(WatchedKind::NodeClaim)
        .expect("kind")
        .delete("c2");
    let s = c.snapshot(&SnapshotSettings {
        repack_now_s: Some(4_600),
        ..SnapshotSettings::default()
    });
    assert!(s.repack.iter().all(|r| !r.moving));
}

#[test]
fn a_claim_without_an_instance_type_label_is_pinned_by_its_requirements() {
    let mut c = Cache::default();
    let cl = claim_of(
        "r1",
        None,
        true,
        json!({"labels": {POOL_LABEL: "gpu-slicer", REPLICAS_LABEL: "4"},
            "spec": {"requirements": [
                {"key": labels::INSTANCE_TYPE, "operator": "In", "values": ["g5.xlarge"]},
                {"key": labels::CAPACITY_TYPE, "operator": "In", "values": ["spot"]}]}}),
    );
    c.object_store(WatchedKind::NodeClaim)
        .expect("kind")
        .apply("r1".into(), cl);
    let s = c.snapshot(&SnapshotSettings::default());
    assert_eq!(s.fleet.len(), 1);
    assert_eq!(s.fleet[0].instance_type, "g5.xlarge");
    assert_eq!(s.fleet[0].capacity_type, CapacityType::Spot);
}

#[test]
fn nodeclaims_keep_what_moves_read() {
    let v = json!({"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
        "metadata": {"name": "c", "uid": "u", "labels": {"a": "b"}, "annotations": {"x": "y"},
            "creationTimestamp": "2026-12-02T08:00:00Z", "deletionTimestamp": "2026-12-02T09:00:00Z",
            "managedFields": [{"manager": "karpenter"}]},
        "status": {"nodeName": "n"}});
    let t = trim_object(v);
    for p in [
        "/metadata/uid",
        "/metadata/labels/a",
        "/metadata/annotations/x",
        "/metadata/creationTimestamp",
        "/metadata/deletionTimestamp",
        "/status/nodeName",
    ] {
        assert!(t.pointer(p).is_some(), "{p}");
    }
    assert!(t.pointer("/metadata/managedFields").is_none());
}

#[test]
fn own_configmap_in_another_namespace_is_live_but_not_the_device_plugin() {
    let mut c = Cache::default();
    let user = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "nvidia-device-plugin", "namespace": "kube-system"},
        "data": {"any": "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 4\n"}});
    let ours = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "gpu-slicer-device-plugin", "namespace": "nvidia",
                     "labels": {"app.kubernetes.io/managed-by": "gpu-slicer"}},
        "data": {"ts-r1": "version: v1\n"}});
    c.object_store(WatchedKind::ConfigMap)
        .expect("store")
        .apply(Cache::object_key(&user), user);
    c.object_store(WatchedKind::OwnedConfigMap)
        .expect("store")
        .apply(Cache::object_key(&ours), ours.clone());
    let s = c.snapshot(&SnapshotSettings {
        namespaces: Namespaces::default(),
        device_plugin_configmap: Some(("kube-system".into(), "nvidia-device-plugin".into())),
        repack_now_s: None,
    });
    assert!(
        s.live.contains(&ours),
        "gpu-slicer's ConfigMap is compared, not re-applied"
    );
    let dp = s.device_plugin.expect("device plugin read");
    assert_eq!(dp.name, "nvidia-device-plugin");
}

#[test]
fn a_nodepool_configured_but_not_enabled_is_reported_not_planned() {
    let mut c = Cache::default();
    let configured = json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": "gpu", "annotations": {"gpu-slicer.io/replicas": "4"}}});
    let plain = json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": "cpu"}});
    let store = c.object_store(WatchedKind::NodePool).expect("kind");
    store.apply("gpu".into(), configured);
    store.apply("cpu".into(), plain);
    let s = c.snapshot(&SnapshotSettings::default());
    assert!(s.pools.is_empty());
    assert_eq!(
        s.pool_errors,
        [(
            "NodePool gpu".to_string(),
            "has gpu-slicer.io/replicas but not gpu-slicer.io/enabled: \"true\", so gpu-slicer \
             ignores it"
                .to_string()
        )]
    );
}
