//! The chart's RBAC is derived from what the controller does: the real `run` loop
//! (discovery, watches, Lease, rounds, writes, Events, taint removal) runs against the mock
//! API server (`tests/support/fake_api.rs`) with a scenario that makes it do every kind
//! of call; every request it sends is turned into the (API group, resource, verb,
//! namespace, name) that Kubernetes RBAC authorises, and each must be allowed by the
//! ClusterRole and Roles `helm template` renders. The other way round, every rule the
//! chart grants must be used by the scenario, or be in [`NOT_EXERCISED`] with the reason.
//! So a new API call without a rule fails, and so does a rule nothing needs.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "controller")]

#[path = "support/fake_api.rs"]
mod fake_api;
#[allow(dead_code)]
#[path = "support/helm.rs"]
mod helm;
#[path = "support/objects.rs"]
mod objects;
#[path = "support/permissions.rs"]
mod permissions;

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::time::Duration;

use fake_api::{FakeApi, Seen};
use gpu_slicer::controller::elector::LeaseConfig;
use gpu_slicer::controller::run::{self, RunConfig};
use gpu_slicer::controller::writer::WriterConfig;
use gpu_slicer::guard::Budget;
use gpu_slicer::model::ReplicaPolicy;
use gpu_slicer::planner::{Effort, PlanOptions};
use gpu_slicer::reconcile::cache::SnapshotSettings;
use gpu_slicer::reconcile::round::Settings;
use gpu_slicer::render::RenderOptions;
use objects::pod;
use permissions::NOT_EXERCISED;
use serde_json::{Value, json};

const RELEASE_NS: &str = helm::NAMESPACE;

/// One request as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Access {
    group: String,
    resource: String,
    verb: String,
    namespace: Option<String>,
    name: Option<String>,
}

/// What RBAC checks for a request: its verb, and for a server-side apply also `create`
/// (an apply that creates the object is authorised as create).
fn accesses(s: &Seen) -> Vec<Access> {
    let Some(a) = access(s) else {
        return Vec::new();
    };
    let mut v = vec![a.clone()];
    if s.method == "PATCH" && s.content_type.contains("apply-patch") {
        v.push(Access {
            verb: "create".to_string(),
            name: None,
            ..a
        });
    }
    v
}

/// The RBAC attributes of a request, `None` for discovery (non-resource URLs every
/// authenticated user may read through the `system:discovery` ClusterRole).
fn access(s: &Seen) -> Option<Access> {
    let path = s.path();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("".to_string(), rest.to_vec()),
        ["apis", group, _version, rest @ ..] => (group.to_string(), rest.to_vec()),
        _ => return None,
    };
    let (namespace, rest) = match rest.as_slice() {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest.to_vec()),
        _ => (None, rest),
    };
    let (resource, name) = match rest.as_slice() {
        [] => return None,
        [resource] => (resource.to_string(), None),
        [resource, name, ..] => (resource.to_string(), Some(name.to_string())),
    };
    let verb = match (s.method.as_str(), &name) {
        ("GET", Some(_)) => "get",
        ("GET", None) if s.uri.contains("watch=true") || s.uri.contains("watch=1") => "watch",
        ("GET", None) => "list",
        ("POST", _) => "create",
        ("PATCH", _) => "patch",
        ("PUT", _) => "update",
        ("DELETE", Some(_)) => "delete",
        ("DELETE", None) => "deletecollection",
        (m, _) => panic!("unexpected method {m} {path}"),
    };
    Some(Access {
        group,
        resource,
        verb: verb.to_string(),
        namespace,
        name,
    })
}

fn discovery(api: &FakeApi) {
    api.insert_at(
        "/apis",
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": "karpenter.sh", "versions": [
                {"groupVersion": "karpenter.sh/v1", "version": "v1"},
                {"groupVersion": "karpenter.sh/v1alpha1", "version": "v1alpha1"}],
             "preferredVersion": {"groupVersion": "karpenter.sh/v1", "version": "v1"}},
            {"name": "karpenter.k8s.aws", "versions": [
                {"groupVersion": "karpenter.k8s.aws/v1", "version": "v1"}],
             "preferredVersion": {"groupVersion": "karpenter.k8s.aws/v1", "version": "v1"}},
            {"name": "events.k8s.io", "versions": [
                {"groupVersion": "events.k8s.io/v1", "version": "v1"}],
             "preferredVersion": {"groupVersion": "events.k8s.io/v1", "version": "v1"}}
        ]}),
    );
    let res = |name: &str, kind: &str| {
        json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": false, "kind": kind,
               "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
    };
    api.insert_at(
        "/apis/karpenter.sh/v1",
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "karpenter.sh/v1",
               "resources": [res("nodepools", "NodePool"), res("nodeclaims", "NodeClaim")]}),
    );
    api.insert_at(
        "/apis/karpenter.sh/v1alpha1",
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "karpenter.sh/v1alpha1",
               "resources": [res("nodeoverlays", "NodeOverlay")]}),
    );
    api.insert_at(
        "/apis/karpenter.k8s.aws/v1",
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "karpenter.k8s.aws/v1",
               "resources": [res("ec2nodeclasses", "EC2NodeClass")]}),
    );
}

/// A cluster where the controller has something of every kind to do.
fn scenario(api: &FakeApi, c: &ChartArgs) {
    discovery(api);
    for i in 0..3 {
        api.insert(
            pod(&format!("infer-{i}"))
                .namespace("ml")
                .requests("1", "2Gi")
                .gpu(1)
                .pending_unschedulable()
                .build(),
        );
    }
    // A node of gpu-slicer's, sliced as its labels say, still carrying the startup taint.
    api.insert(json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "ip-10-0-0-1", "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"gpu-slicer.io/pool": "gpu-slicer", "gpu-slicer.io/replicas": "4",
                "karpenter.k8s.aws/instance-gpu-count": "1",
                "node.kubernetes.io/instance-type": "g4dn.xlarge",
                "karpenter.sh/nodepool": "gpu-slicer-ts-r4"}},
        "spec": {"taints": [{"key": "gpu-slicer.io/slicing-pending", "effect": "NoSchedule"}]},
        "status": {"allocatable": {"cpu": "3920m", "memory": "14Gi", "pods": "29", "nvidia.com/gpu": "4"}}}));
    // An overlay gpu-slicer made earlier that no plan wants any more: deleted.
    api.insert(json!({"apiVersion": "karpenter.sh/v1alpha1", "kind": "NodeOverlay",
        "metadata": {"name": "gpu-slicer-stale-g9", "labels": {"app.kubernetes.io/managed-by": "gpu-slicer"}},
        "spec": {"weight": 1000, "requirements": [
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g4dn.xlarge"]}],
            "capacity": {"nvidia.com/gpu": "4"}}}));
    // A pool and a class gpu-slicer made earlier, with no nodes left: deleted.
    api.insert(json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": "gpu-slicer-stale", "labels": {"app.kubernetes.io/managed-by": "gpu-slicer"}},
        "spec": {"template": {"spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu-slicer-stale"},
            "requirements": []}}}}));
    api.insert(json!({"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass",
        "metadata": {"name": "gpu-slicer-stale", "labels": {"app.kubernetes.io/managed-by": "gpu-slicer"}},
        "spec": {"role": "r", "amiSelectorTerms": [{"alias": "al2023@latest"}]}}));
    // A repack move whose replacement is Ready and sliced: the replaced NodeClaim (one
    // gpu-slicer made) is deleted.
    let class = json!({"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu-slicer"});
    api.insert(json!({"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
        "metadata": {"name": "gpu-slicer-replaced", "labels": {"app.kubernetes.io/managed-by": "gpu-slicer"}},
        "spec": {"nodeClassRef": class, "requirements": []}}));
    api.insert(json!({"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
        "metadata": {"name": "gpu-slicer-replacement",
            "labels": {"app.kubernetes.io/managed-by": "gpu-slicer", "gpu-slicer.io/repack-move": "m1"},
            "annotations": {"gpu-slicer.io/repack-replaces": "gpu-slicer-replaced", "gpu-slicer.io/repack-size": "1"}},
        "spec": {"nodeClassRef": class, "requirements": []},
        "status": {"nodeName": "ip-10-0-0-2"}}));
    api.insert(json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "ip-10-0-0-2",
            "labels": {"gpu-slicer.io/pool": "gpu-slicer", "gpu-slicer.io/replicas": "4",
                "node.kubernetes.io/instance-type": "g4dn.xlarge"}},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
            "allocatable": {"cpu": "3920m", "memory": "14Gi", "pods": "29", "nvidia.com/gpu": "4"}}}));
    // The NVIDIA device plugin's own ConfigMap (read, never written).
    api.insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": c.device_plugin_configmap, "namespace": c.device_plugin_namespace},
        "data": {"any": "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 4\n"}}));
}

/// The chart's Deployment args that name objects RBAC may restrict by name or namespace.
struct ChartArgs {
    lease_name: String,
    configmap_name: String,
    configmap_namespace: String,
    device_plugin_configmap: String,
    device_plugin_namespace: String,
}

fn chart_docs() -> Vec<Value> {
    let yaml = helm::template(&[], &["clusterName=test"]).unwrap_or_else(|e| panic!("{e}"));
    helm::parse_docs(&yaml)
}

fn chart_args(docs: &[Value]) -> ChartArgs {
    let deploy = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("the chart renders a Deployment");
    let args: Vec<String> = strings(&deploy["spec"]["template"]["spec"]["containers"][0], "args");
    let flag = |name: &str, default: &str| {
        let eq = format!("{name}=");
        args.iter()
            .enumerate()
            .find_map(|(i, a)| {
                a.strip_prefix(&eq)
                    .map(str::to_string)
                    .or_else(|| (a == name).then(|| args.get(i + 1).cloned()).flatten())
            })
            .unwrap_or_else(|| default.to_string())
    };
    ChartArgs {
        lease_name: flag("--lease-name", "gpu-slicer"),
        configmap_name: flag("--configmap-name", "gpu-slicer-device-plugin"),
        configmap_namespace: flag("--configmap-namespace", "kube-system"),
        device_plugin_configmap: flag("--device-plugin-configmap", "nvidia-device-plugin"),
        device_plugin_namespace: flag("--device-plugin-namespace", "kube-system"),
    }
}

fn config(c: &ChartArgs) -> RunConfig {
    RunConfig {
        settings: Settings {
            plan: PlanOptions {
                default_replicas: ReplicaPolicy::Fixed(4),
                dedicated: false,
                effort: Effort::Fast,
                ..PlanOptions::default()
            },
            render: RenderOptions {
                cluster_name: "test".into(),
                configmap_name: c.configmap_name.clone(),
                configmap_namespace: c.configmap_namespace.clone(),
                ..RenderOptions::default()
            },
            budget: Budget::default(),
        },
        catalog: gpu_slicer::catalog::embedded().expect("catalog"),
        live: None,
        snapshot: SnapshotSettings {
            device_plugin_configmap: Some((
                c.device_plugin_namespace.clone(),
                c.device_plugin_configmap.clone(),
            )),
            ..SnapshotSettings::default()
        },
        batch_idle: Duration::from_millis(50),
        batch_max: Duration::from_millis(200),
        resync: Duration::from_millis(500),
        slicing_timeout: Duration::from_secs(600),
        addr: "127.0.0.1:0".parse().expect("addr"),
        lease: LeaseConfig {
            name: c.lease_name.clone(),
            namespace: RELEASE_NS.into(),
            identity: "test-replica".into(),
            duration: Duration::from_secs(2),
            renew_every: Duration::from_millis(200),
        },
        writer: WriterConfig {
            writes_per_second: NonZeroU32::new(1000).expect("non-zero"),
            burst: NonZeroU32::new(1000).expect("non-zero"),
            ..WriterConfig::default()
        },
        emission_forced: false,
        max_pod_events: 100,
        // The webhook serves HTTPS and calls no API (tests/webhook.rs).
        webhook: None,
        repack: gpu_slicer::controller::repack::RepackConfig::default(),
    }
}

/// What the controller, run with the chart's flags, asked of the API server in a few
/// seconds of the scenario.
async fn recorded(c: &ChartArgs) -> Vec<Seen> {
    let api = FakeApi::default();
    scenario(&api, c);
    let client = api.client();
    let _ = tokio::time::timeout(Duration::from_secs(4), run::run(client, config(c))).await;
    api.seen()
}

/// One rule of a rendered Role or ClusterRole.
#[derive(Debug, Clone)]
struct Rule {
    /// `None` for a ClusterRole (every namespace and cluster-scoped resources).
    namespace: Option<String>,
    groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
    names: Vec<String>,
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn chart_rules(docs: &[Value]) -> Vec<Rule> {
    let mut rules = Vec::new();
    for d in docs {
        let kind = d["kind"].as_str().unwrap_or_default();
        if kind != "ClusterRole" && kind != "Role" {
            continue;
        }
        let namespace = (kind == "Role").then(|| {
            d.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(RELEASE_NS)
                .to_string()
        });
        for r in d["rules"].as_array().into_iter().flatten() {
            rules.push(Rule {
                namespace: namespace.clone(),
                groups: strings(r, "apiGroups"),
                resources: strings(r, "resources"),
                verbs: strings(r, "verbs"),
                names: strings(r, "resourceNames"),
            });
        }
    }
    assert!(!rules.is_empty(), "the chart renders RBAC rules");
    rules
}

fn allows(rule: &Rule, a: &Access) -> bool {
    rule.groups.contains(&a.group)
        && rule.resources.contains(&a.resource)
        && rule.verbs.contains(&a.verb)
        && rule
            .namespace
            .as_ref()
            .is_none_or(|ns| a.namespace.as_ref() == Some(ns))
        && (rule.names.is_empty() || a.name.as_ref().is_some_and(|n| rule.names.contains(n)))
}

fn not_exercised(group: &str, resource: &str, verb: &str) -> bool {
    NOT_EXERCISED.iter().any(|(g, r, verbs, _)| {
        *g == group && *r == resource && (*verbs == "*" || verbs.split('|').any(|v| v == verb))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_grants_exactly_what_the_controller_calls() {
    let docs = chart_docs();
    let args = chart_args(&docs);
    let seen = recorded(&args).await;
    let accesses: BTreeSet<Access> = seen.iter().flat_map(accesses).collect();
    // The scenario did what it is for.
    let did = |group: &str, resource: &str, verb: &str| {
        accesses
            .iter()
            .any(|a| a.group == group && a.resource == resource && a.verb == verb)
    };
    for (g, r, v) in [
        ("", "pods", "watch"),
        ("", "nodes", "patch"),
        ("", "configmaps", "patch"),
        ("karpenter.sh", "nodepools", "patch"),
        ("karpenter.sh", "nodeoverlays", "delete"),
        ("karpenter.sh", "nodepools", "delete"),
        ("karpenter.k8s.aws", "ec2nodeclasses", "delete"),
        ("karpenter.sh", "nodepools", "create"),
        ("karpenter.k8s.aws", "ec2nodeclasses", "patch"),
        ("coordination.k8s.io", "leases", "create"),
        ("coordination.k8s.io", "leases", "update"),
        ("events.k8s.io", "events", "create"),
    ] {
        assert!(
            did(g, r, v),
            "the scenario never did {v} {g}/{r}: {accesses:#?}"
        );
    }

    let rules = chart_rules(&docs);
    let denied: Vec<&Access> = accesses
        .iter()
        .filter(|a| !rules.iter().any(|r| allows(r, a)))
        .collect();
    assert!(
        denied.is_empty(),
        "the controller made calls the chart's RBAC does not allow (add a rule to charts/gpu-slicer/templates): {denied:#?}"
    );

    // Every granted (group, resource, verb) is used, or listed with its reason.
    let mut unused = Vec::new();
    for r in &rules {
        for g in &r.groups {
            for res in &r.resources {
                for v in &r.verbs {
                    let used = accesses
                        .iter()
                        .any(|a| &a.group == g && &a.resource == res && &a.verb == v);
                    if !used && !not_exercised(g, res, v) {
                        unused.push(format!("{v} {g}/{res} in {:?}", r.namespace));
                    }
                }
            }
        }
    }
    assert!(
        unused.is_empty(),
        "the chart grants what the controller never does (remove it, or add it to NOT_EXERCISED with the reason): {unused:#?}"
    );
}

#[test]
fn request_attributes_follow_rbac() {
    let seen = |method: &str, uri: &str| Seen {
        method: method.into(),
        uri: uri.into(),
        content_type: String::new(),
        body: Value::Null,
    };
    let a = access(&seen("GET", "/api/v1/pods?watch=true&resourceVersion=1")).expect("access");
    assert_eq!(
        (a.group.as_str(), a.resource.as_str(), a.verb.as_str()),
        ("", "pods", "watch")
    );
    let a = access(&seen(
        "PATCH",
        "/api/v1/namespaces/kube-system/configmaps/x?fieldManager=g",
    ))
    .expect("access");
    assert_eq!(
        (a.verb.as_str(), a.namespace.as_deref(), a.name.as_deref()),
        ("patch", Some("kube-system"), Some("x"))
    );
    let mut apply = seen(
        "PATCH",
        "/apis/karpenter.sh/v1/nodepools/p?fieldManager=gpu-slicer",
    );
    apply.content_type = "application/apply-patch+yaml".into();
    let verbs: Vec<String> = accesses(&apply).into_iter().map(|a| a.verb).collect();
    assert_eq!(verbs, ["patch", "create"]);
    let a = access(&seen("DELETE", "/apis/karpenter.sh/v1/nodepools/p")).expect("access");
    assert_eq!(
        (a.group.as_str(), a.verb.as_str()),
        ("karpenter.sh", "delete")
    );
    assert_eq!(access(&seen("GET", "/apis")), None);
    assert_eq!(access(&seen("GET", "/apis/karpenter.sh/v1")), None);
}
