//! The controller's caches, folded from watch events (and, for `--from-cluster`, from one
//! list of each resource), and the snapshot a round plans from. Pure: typed objects in,
//! values out. Pods are reduced to what planning needs as they arrive, so 10,000 pending
//! pods cost their demand items, not their full objects.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::Value;

use super::is_owned;
use super::round::{FleetNode, Used};
use crate::config::{self, DevicePluginConfig};
use crate::demand::{demand_from_pod, effective_requests};
use crate::model::{CapacityType, DemandItem, Pool, Resources, Taint, TaintEffect, labels};
use crate::render::{POOL_LABEL, REPLICAS_LABEL, SLICING_PENDING_TAINT};

use super::guard::Namespaces;

/// One watched resource's objects, with the watcher's initial-list protocol: `init`,
/// `init_apply`…, `init_done` replaces the contents; `apply`/`delete` edit them.
#[derive(Debug, Clone)]
pub struct Store<T> {
    items: BTreeMap<String, T>,
    init: Option<BTreeMap<String, T>>,
    synced: bool,
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Store {
            items: BTreeMap::new(),
            init: None,
            synced: false,
        }
    }
}

impl<T> Store<T> {
    pub fn init(&mut self) {
        self.init = Some(BTreeMap::new());
    }
    pub fn init_apply(&mut self, key: String, v: T) {
        self.init.get_or_insert_with(BTreeMap::new).insert(key, v);
    }
    pub fn init_done(&mut self) {
        if let Some(i) = self.init.take() {
            self.items = i;
        }
        self.synced = true;
    }
    pub fn apply(&mut self, key: String, v: T) {
        self.items.insert(key, v);
    }
    pub fn delete(&mut self, key: &str) {
        self.items.remove(key);
    }
    pub fn synced(&self) -> bool {
        self.synced
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.items.values()
    }
    pub fn get(&self, key: &str) -> Option<&T> {
        self.items.get(key)
    }
}

/// A pod reduced to what planning needs.
#[derive(Debug, Clone, PartialEq)]
pub struct PodEntry {
    pub namespace: String,
    /// Pending and marked unschedulable: its demand, or why it cannot be read.
    pub pending: Option<Result<DemandItem, String>>,
    /// The node it is bound to, with its requests there (running pods only).
    pub bound: Option<(String, Resources, u32)>,
}

/// `namespace/name`.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

fn is_unschedulable(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let pending = status.and_then(|s| s.phase.as_deref()) == Some("Pending");
    let unschedulable = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })
        });
    pending && unschedulable && pod.spec.as_ref().is_some_and(|s| s.node_name.is_none())
}

/// Reduces a pod; `None` when it is of no interest (no GPU, finished).
pub fn pod_entry(pod: &Pod) -> Option<PodEntry> {
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) || pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    if is_unschedulable(pod) {
        return match demand_from_pod(pod) {
            Ok(Some(item)) => Some(PodEntry {
                namespace,
                pending: Some(Ok(item)),
                bound: None,
            }),
            Ok(None) => None,
            Err(e) => Some(PodEntry {
                namespace,
                pending: Some(Err(e.to_string())),
                bound: None,
            }),
        };
    }
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone())?;
    let spec = serde_json::to_value(pod.spec.as_ref()?).ok()?;
    let r = effective_requests(&spec, "spec").ok()?;
    Some(PodEntry {
        namespace,
        pending: None,
        bound: Some((
            node,
            Resources::new(r.cpu_milli, r.memory_bytes),
            u32::try_from(r.gpus).unwrap_or(u32::MAX),
        )),
    })
}

/// Keeps what the controller reads of a Node.
pub fn trim_node(mut n: Node) -> Node {
    n.metadata.managed_fields = None;
    n.metadata.annotations = None;
    if let Some(s) = n.status.as_mut() {
        s.images = None;
        s.volumes_attached = None;
        s.volumes_in_use = None;
        s.node_info = None;
        s.addresses = None;
        s.daemon_endpoints = None;
        s.capacity = None;
        s.config = None;
    }
    n
}

/// Keeps what the controller reads of a Karpenter object or ConfigMap.
pub fn trim_object(mut v: Value) -> Value {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    v
}

fn object_key(v: &Value) -> String {
    let ns = v.pointer("/metadata/namespace").and_then(Value::as_str);
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match ns {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// Stores of objects cached as JSON values, by kind. `ConfigMap` holds the device
/// plugin's namespace; `OwnedConfigMap` holds gpu-slicer's own ConfigMap when it is written
/// to another namespace.
pub const OBJECT_KINDS: [&str; 8] = [
    "NodePool",
    "NodeClaim",
    "NodeOverlay",
    "EC2NodeClass",
    "ConfigMap",
    "OwnedConfigMap",
    "Provisioner",
    "AWSNodeTemplate",
];

/// Everything the controller watches.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    pub pods: Store<PodEntry>,
    pub nodes: Store<Node>,
    pub objects: BTreeMap<&'static str, Store<Value>>,
}

impl Cache {
    pub fn object_store(&mut self, kind: &str) -> Option<&mut Store<Value>> {
        let k = OBJECT_KINDS.iter().find(|k| **k == kind)?;
        Some(self.objects.entry(k).or_default())
    }

    /// Every store that must be synced before `/readyz` (those that were started).
    pub fn all_synced(&self, watched: &[&str]) -> bool {
        watched.iter().all(|w| match *w {
            "Pod" => self.pods.synced(),
            "Node" => self.nodes.synced(),
            k => self.objects.get(k).is_some_and(Store::synced),
        })
    }

    pub fn object_key(v: &Value) -> String {
        object_key(v)
    }

    fn objects_of(&self, kind: &str) -> impl Iterator<Item = &Value> {
        self.objects.get(kind).into_iter().flat_map(Store::values)
    }

    /// What a round needs, read from the caches.
    pub fn snapshot(&self, s: &SnapshotSettings) -> Snapshot {
        let mut snap = Snapshot::default();
        for (key, p) in &self.pods.items {
            if !s.namespaces.allows(&p.namespace) {
                continue;
            }
            match &p.pending {
                Some(Ok(item)) => snap.pending.push(item.clone()),
                Some(Err(e)) => snap.pod_errors.push((key.clone(), e.clone())),
                None => {}
            }
        }
        // Pools (annotated NodePools and Provisioners).
        for kind in ["NodePool", "Provisioner"] {
            for np in self.objects_of(kind) {
                match config::pool_from_nodepool(np) {
                    Ok(Some(pool)) => snap.pools.push((pool, np.clone())),
                    Ok(None) => {}
                    Err(e) => snap
                        .pool_errors
                        .push((format!("{kind} {}", object_key(np)), e.to_string())),
                }
            }
        }
        snap.ec2nodeclasses = self.objects_of("EC2NodeClass").cloned().collect();
        if let Some((ns, name)) = &s.device_plugin_configmap
            && let Some(cm) = self
                .objects_of("ConfigMap")
                .find(|c| object_key(c) == format!("{ns}/{name}"))
        {
            match config::device_plugin_from_configmap(cm) {
                Ok(d) => snap.device_plugin = Some(d),
                Err(e) => snap.device_plugin_error = Some(e.to_string()),
            }
        }
        for kind in OBJECT_KINDS {
            snap.live.extend(self.objects_of(kind).cloned());
        }
        // Nodes per NodePool (Karpenter's label on claims and nodes).
        let mut per_pool: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for c in self.objects_of("NodeClaim") {
            if let Some(np) = c
                .pointer("/metadata/labels")
                .and_then(|l| l.get(labels::NODEPOOL))
                .and_then(Value::as_str)
            {
                per_pool
                    .entry(np.to_string())
                    .or_default()
                    .insert(object_key(c));
            }
        }
        for n in self.nodes.values() {
            if let Some(np) = n
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::NODEPOOL))
            {
                per_pool.entry(np.clone()).or_default().insert(format!(
                    "node/{}",
                    n.metadata.name.clone().unwrap_or_default()
                ));
            }
        }
        snap.nodes_per_nodepool = per_pool.into_iter().map(|(k, v)| (k, v.len())).collect();
        snap.fleet = self.fleet();
        snap
    }

    /// gpu-slicer's nodes: registered Nodes, and launched NodeClaims without a Node yet.
    fn fleet(&self) -> Vec<FleetNode> {
        let mut used: BTreeMap<&str, Used> = BTreeMap::new();
        for p in self.pods.values() {
            if let Some((node, req, gpus)) = &p.bound {
                let u = used.entry(node.as_str()).or_default();
                u.requests = u.requests.saturating_add(*req);
                u.slices += u64::from(*gpus);
                u.pods += 1;
            }
        }
        let zone_of_pool = self.nodepool_zones();
        let mut fleet = Vec::new();
        let mut registered = BTreeSet::new();
        for n in self.nodes.values() {
            let name = n.metadata.name.clone().unwrap_or_default();
            let labels = n.metadata.labels.clone().unwrap_or_default();
            let Some(mut f) = fleet_node(name.clone(), labels, &zone_of_pool) else {
                continue;
            };
            registered.insert(name.clone());
            let taints: Vec<Taint> = n
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .map(|ts| {
                    ts.iter()
                        .filter_map(|t| {
                            Some(Taint {
                                key: t.key.clone(),
                                value: t.value.clone().filter(|v| !v.is_empty()),
                                effect: TaintEffect::parse(&t.effect)?,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let pending_taint = taints.iter().any(|t| t.key == SLICING_PENDING_TAINT);
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            f.in_flight = !ready || pending_taint;
            f.used = used.get(name.as_str()).copied().unwrap_or_default();
            f.taints = taints
                .into_iter()
                .filter(|t| t.key != SLICING_PENDING_TAINT)
                .collect();
            fleet.push(f);
        }
        for c in self.objects_of("NodeClaim") {
            let node_name = c.pointer("/status/nodeName").and_then(Value::as_str);
            if node_name.is_some_and(|n| registered.contains(n)) {
                continue;
            }
            let labels: BTreeMap<String, String> = c
                .pointer("/metadata/labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            if let Some(f) = fleet_node(object_key(c), labels, &zone_of_pool) {
                fleet.push(f);
            }
        }
        fleet
    }

    /// Owned NodePools that pin a single zone.
    fn nodepool_zones(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for np in self.objects_of("NodePool").filter(|o| is_owned(o)) {
            let reqs = np
                .pointer("/spec/template/spec/requirements")
                .and_then(Value::as_array);
            if let Some(z) = reqs.and_then(|rs| {
                rs.iter().find_map(|r| {
                    (r.get("key").and_then(Value::as_str) == Some(labels::ZONE)
                        && r.get("operator").and_then(Value::as_str) == Some("In"))
                    .then(|| r.get("values").and_then(Value::as_array))
                    .flatten()
                    .filter(|v| v.len() == 1)
                    .and_then(|v| v[0].as_str().map(str::to_string))
                })
            }) {
                m.insert(object_key(np), z);
            }
        }
        m
    }
}

/// A fleet node from a Node's or NodeClaim's labels (`None` without gpu-slicer's pool,
/// instance type and replicas labels); `in_flight`, usage and taints are the caller's.
fn fleet_node(
    name: String,
    labels: BTreeMap<String, String>,
    zone_of_pool: &BTreeMap<String, String>,
) -> Option<FleetNode> {
    let pool = labels.get(POOL_LABEL)?.clone();
    let instance_type = labels.get(labels::INSTANCE_TYPE)?.clone();
    let replicas = labels.get(REPLICAS_LABEL)?.parse::<u32>().ok()?;
    Some(FleetNode {
        name,
        pool,
        instance_type,
        capacity_type: labels
            .get(labels::CAPACITY_TYPE)
            .and_then(|c| CapacityType::parse(c))
            .unwrap_or(CapacityType::OnDemand),
        replicas,
        zone: labels
            .get(labels::NODEPOOL)
            .and_then(|np| zone_of_pool.get(np).cloned()),
        in_flight: true,
        used: Used::default(),
        taints: Vec::new(),
        labels,
    })
}

/// What the snapshot reads beyond the caches.
#[derive(Debug, Clone, Default)]
pub struct SnapshotSettings {
    pub namespaces: Namespaces,
    /// The user's device-plugin ConfigMap (namespace, name).
    pub device_plugin_configmap: Option<(String, String)>,
}

/// The cluster as one round sees it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub pending: Vec<DemandItem>,
    /// Pending pods whose spec or annotations cannot be read: (pod, why).
    pub pod_errors: Vec<(String, String)>,
    pub pools: Vec<(Pool, Value)>,
    /// Annotated NodePools that cannot be read: (object, why).
    pub pool_errors: Vec<(String, String)>,
    pub ec2nodeclasses: Vec<Value>,
    pub device_plugin: Option<DevicePluginConfig>,
    pub device_plugin_error: Option<String>,
    pub live: Vec<Value>,
    pub nodes_per_nodepool: BTreeMap<String, usize>,
    pub fleet: Vec<FleetNode>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, NodeCondition, NodeSpec, NodeStatus, PodCondition, PodSpec, PodStatus,
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
        c.object_store("NodeClaim")
            .expect("kind")
            .apply("c1".into(), claim);
        let settings = SnapshotSettings {
            namespaces: Namespaces {
                allow: vec![],
                deny: vec!["dev".into()],
            },
            device_plugin_configmap: None,
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
        assert!(!c.all_synced(&["Pod", "Node", "NodeClaim"]));
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
        c.object_store("ConfigMap")
            .expect("store")
            .apply(Cache::object_key(&user), user);
        c.object_store("OwnedConfigMap")
            .expect("store")
            .apply(Cache::object_key(&ours), ours.clone());
        let s = c.snapshot(&SnapshotSettings {
            namespaces: Namespaces::default(),
            device_plugin_configmap: Some(("kube-system".into(), "nvidia-device-plugin".into())),
        });
        assert!(
            s.live.contains(&ours),
            "gpu-slicer's ConfigMap is compared, not re-applied"
        );
        let dp = s.device_plugin.expect("device plugin read");
        assert_eq!(dp.name, "nvidia-device-plugin");
    }
}
