//! The controller's caches, folded from watch events (and, for `--from-cluster`, from one
//! list of each resource), and the snapshot a round plans from. Pure: typed objects in,
//! values out. Pods are reduced to what planning needs as they arrive, so 10,000 pending
//! pods cost their demand items, not their full objects; a running pod keeps its demand,
//! start time and whether it may be moved ([`Running`]), so repacking needs no second
//! pass over the API.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Node;
use serde_json::Value;

use super::is_owned;
use super::repack::{self, ClaimNode, MOVE_LABEL, REPLACES_ANNOTATION, Step};
use super::round::{FleetNode, Used};
use crate::config::{self, DevicePluginConfig};
use crate::model::contract::{POOL_LABEL, REPLICAS_LABEL, SLICING_PENDING_TAINT};
use crate::model::{CapacityType, DemandItem, Pool, Resources, Taint, TaintEffect, labels};

use crate::guard::Namespaces;

mod kind;
mod pod;
mod store;
pub use kind::WatchedKind;
pub use pod::{NO_CONTROLLER, PodEntry, Running, pod_entry, pod_key};
pub use store::Store;

/// Keeps what the controller reads of a Node (of its annotations, only
/// `karpenter.sh/do-not-disrupt`, which repacking honours).
pub fn trim_node(mut n: Node) -> Node {
    n.metadata.managed_fields = None;
    n.metadata.annotations = n.metadata.annotations.take().and_then(|a| {
        a.get(repack::DO_NOT_DISRUPT)
            .map(|v| BTreeMap::from([(repack::DO_NOT_DISRUPT.to_string(), v.clone())]))
    });
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

/// Everything the controller watches.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    pub pods: Store<PodEntry>,
    pub nodes: Store<Node>,
    /// The stores of [`WatchedKind::OBJECTS`].
    pub objects: BTreeMap<WatchedKind, Store<Value>>,
}

impl Cache {
    /// The store of a kind cached as JSON values; None for pods and nodes.
    pub fn object_store(&mut self, kind: WatchedKind) -> Option<&mut Store<Value>> {
        kind.is_object()
            .then(|| self.objects.entry(kind).or_default())
    }

    /// Every store that must be synced before `/readyz` (those that were started).
    pub fn all_synced(&self, watched: &[WatchedKind]) -> bool {
        watched.iter().all(|w| match w {
            WatchedKind::Pod => self.pods.synced(),
            WatchedKind::Node => self.nodes.synced(),
            k => self.objects.get(k).is_some_and(Store::synced),
        })
    }

    pub fn object_key(v: &Value) -> String {
        object_key(v)
    }

    /// The cached objects of one of [`WatchedKind::OBJECTS`].
    pub fn objects_of(&self, kind: WatchedKind) -> impl Iterator<Item = &Value> + Clone {
        self.objects.get(&kind).into_iter().flat_map(Store::values)
    }

    /// What a round needs, read from the caches.
    pub fn snapshot(&self, s: &SnapshotSettings) -> Snapshot {
        let mut snap = Snapshot::default();
        for (key, p) in self.pods.iter() {
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
        for kind in [WatchedKind::NodePool, WatchedKind::Provisioner] {
            for np in self.objects_of(kind) {
                match config::pool_from_nodepool(np) {
                    Ok(Some(pool)) => snap.pools.push((pool, np.clone())),
                    Ok(None) => {
                        let keys = config::annotations_without_enabled(np);
                        if !keys.is_empty() {
                            snap.pool_errors.push((
                                format!("{kind} {}", object_key(np)),
                                format!(
                                    "has {} but not {}: \"true\", so gpu-slicer ignores it",
                                    keys.join(", "),
                                    config::ENABLED
                                ),
                            ));
                        }
                    }
                    Err(e) => snap
                        .pool_errors
                        .push((format!("{kind} {}", object_key(np)), e.to_string())),
                }
            }
        }
        snap.ec2nodeclasses = self
            .objects_of(WatchedKind::Ec2NodeClass)
            .cloned()
            .collect();
        if let Some((ns, name)) = &s.device_plugin_configmap
            && let Some(cm) = self
                .objects_of(WatchedKind::ConfigMap)
                .find(|c| object_key(c) == format!("{ns}/{name}"))
        {
            match config::device_plugin_from_configmap(cm) {
                Ok(d) => snap.device_plugin = Some(d),
                Err(e) => snap.device_plugin_error = Some(e.to_string()),
            }
        }
        for kind in WatchedKind::OBJECTS {
            snap.live.extend(self.objects_of(kind).cloned());
        }
        // Nodes per NodePool (Karpenter's label on claims and nodes).
        let mut per_pool: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for c in self.objects_of(WatchedKind::NodeClaim) {
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
        if let Some(now_s) = s.repack_now_s {
            snap.repack = self.repack_nodes(&snap.fleet, &snap.live, s, now_s);
        }
        snap
    }

    /// Where a NodeClaim's node (`status.nodeName`) stands.
    pub fn claim_node(&self, claim: &Value) -> ClaimNode {
        claim
            .pointer("/status/nodeName")
            .and_then(Value::as_str)
            .and_then(|n| self.nodes.get(n))
            .map_or(ClaimNode::NotReady, node_state)
    }

    /// The NodeClaims of moves (replacements and the claims they replace), cloned: few,
    /// so the controller can read a move's progress every loop without copying the fleet.
    pub fn move_claims(&self) -> Vec<Value> {
        move_claims(self.objects_of(WatchedKind::NodeClaim))
    }

    /// gpu-slicer's registered nodes as repacking sees them (see [`repack::Node`]): the
    /// NodeClaim whose `status.nodeName` is the node, only when [`repack::may_delete`]
    /// allows it; the pods bound to it (DaemonSet pods left out; pods of namespaces
    /// gpu-slicer does not plan for are unmovable); `moving` when its claim takes part in
    /// a move that is not over, or the node or its claim is being deleted.
    fn repack_nodes(
        &self,
        fleet: &[FleetNode],
        live: &[Value],
        s: &SnapshotSettings,
        now_s: i64,
    ) -> Vec<repack::Node> {
        let claims = self.move_claims();
        let steps = repack::progress(&claims, &|c| self.claim_node(c), &|_| 0, u64::MAX);
        let moving = moving_claims(&claims, &steps);
        let mut claim_of: BTreeMap<&str, &Value> = BTreeMap::new();
        for c in self.objects_of(WatchedKind::NodeClaim) {
            if let Some(n) = c.pointer("/status/nodeName").and_then(Value::as_str) {
                claim_of.insert(n, c);
            }
        }
        let registered: BTreeSet<&str> = fleet
            .iter()
            .map(|f| f.name.as_str())
            .filter(|n| self.nodes.get(n).is_some())
            .collect();
        let mut pods_of: BTreeMap<&str, Vec<repack::RunningPod>> = BTreeMap::new();
        for (key, p) in self.pods.iter() {
            let (Some((node, req, gpus)), Some(r)) = (&p.bound, &p.running) else {
                continue;
            };
            if !registered.contains(node.as_str()) {
                continue;
            }
            let mut unmovable = r.demand.as_ref().err().map(|e| e.to_string());
            if unmovable.is_none() && !s.namespaces.allows(&p.namespace) {
                unmovable = Some("in a namespace gpu-slicer does not plan for".to_string());
            }
            let item = match &r.demand {
                Ok(d) => d.clone(),
                Err(_) => DemandItem {
                    gpus: *gpus,
                    ..DemandItem::shared(key.clone(), *req)
                },
            };
            pods_of
                .entry(node.as_str())
                .or_default()
                .push(repack::RunningPod {
                    item,
                    age_s: r
                        .started_s
                        .map_or(0, |t| u64::try_from(now_s.saturating_sub(t)).unwrap_or(0)),
                    do_not_disrupt: r.do_not_disrupt,
                    unmovable,
                });
        }
        let mut out = Vec::new();
        for f in fleet
            .iter()
            .filter(|f| registered.contains(f.name.as_str()))
        {
            let node = self.nodes.get(&f.name);
            let claim = claim_of.get(f.name.as_str()).copied();
            // Karpenter's do-not-disrupt on the Node or its NodeClaim pins the node like a
            // pod's: repack::Node has no field for it, so it stands as an annotated
            // pseudo-pod `node/<name>` (never planned: its node is never a candidate).
            let pinned = node
                .and_then(|n| n.metadata.annotations.as_ref())
                .and_then(|a| a.get(repack::DO_NOT_DISRUPT))
                .is_some_and(|v| v == "true")
                || claim
                    .and_then(|c| c.pointer("/metadata/annotations"))
                    .and_then(|a| a.get(repack::DO_NOT_DISRUPT))
                    .and_then(Value::as_str)
                    == Some("true");
            let mut pods = pods_of.remove(f.name.as_str()).unwrap_or_default();
            if pinned {
                pods.insert(
                    0,
                    repack::RunningPod {
                        item: DemandItem::shared(format!("node/{}", f.name), Resources::ZERO),
                        age_s: u64::MAX,
                        do_not_disrupt: true,
                        unmovable: None,
                    },
                );
            }
            let claim_name = claim
                .and_then(|c| c.pointer("/metadata/name"))
                .and_then(Value::as_str);
            let deleting = claim
                .is_some_and(|c| c.pointer("/metadata/deletionTimestamp").is_some())
                || node.is_some_and(|n| n.metadata.deletion_timestamp.is_some());
            out.push(repack::Node {
                fleet: f.clone(),
                claim: claim
                    .filter(|c| repack::may_delete(c, live))
                    .and(claim_name)
                    .map(str::to_string),
                nodepool: node
                    .and_then(|n| n.metadata.labels.as_ref())
                    .and_then(|l| l.get(labels::NODEPOOL))
                    .cloned(),
                pods,
                moving: deleting || claim_name.is_some_and(|n| moving.contains(n)),
            });
        }
        out
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
        for c in self.objects_of(WatchedKind::NodeClaim) {
            let node_name = c.pointer("/status/nodeName").and_then(Value::as_str);
            if node_name.is_some_and(|n| registered.contains(n)) {
                continue;
            }
            let mut labels: BTreeMap<String, String> = c
                .pointer("/metadata/labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            // Karpenter labels a claim with its instance type once launched; a claim
            // gpu-slicer just created pins it by a single-value requirement.
            for key in [labels::INSTANCE_TYPE, labels::CAPACITY_TYPE] {
                if !labels.contains_key(key)
                    && let Some(v) = pinned(c, key)
                {
                    labels.insert(key.to_string(), v);
                }
            }
            if let Some(f) = fleet_node(object_key(c), labels, &zone_of_pool) {
                fleet.push(f);
            }
        }
        fleet
    }

    /// Owned NodePools that pin a single zone.
    fn nodepool_zones(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for np in self
            .objects_of(WatchedKind::NodePool)
            .filter(|o| is_owned(o))
        {
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

/// The one value a NodeClaim's `spec.requirements` allow for `key` (`In` with one value).
fn pinned(claim: &Value, key: &str) -> Option<String> {
    claim
        .pointer("/spec/requirements")?
        .as_array()?
        .iter()
        .find(|r| {
            r.get("key").and_then(Value::as_str) == Some(key)
                && r.get("operator").and_then(Value::as_str) == Some("In")
        })
        .and_then(|r| r.get("values")?.as_array())
        .filter(|v| v.len() == 1)
        .and_then(|v| v[0].as_str().map(str::to_string))
}

/// The NodeClaims of moves: gpu-slicer's replacements ([`MOVE_LABEL`]) and the claims
/// they name in [`REPLACES_ANNOTATION`]. What [`repack::progress`] reads.
fn move_claims<'a>(claims: impl Iterator<Item = &'a Value> + Clone) -> Vec<Value> {
    let label = |c: &Value| {
        c.pointer("/metadata/labels")
            .and_then(|l| l.get(MOVE_LABEL))
            .is_some()
    };
    let replaced: BTreeSet<String> = claims
        .clone()
        .filter(|c| is_owned(c) && label(c))
        .filter_map(|c| {
            c.pointer("/metadata/annotations")
                .and_then(|a| a.get(REPLACES_ANNOTATION))
                .and_then(Value::as_str)
        })
        .flat_map(|s| s.split(',').map(|n| n.trim().to_string()))
        .filter(|n| !n.is_empty())
        .collect();
    claims
        .filter(|c| {
            (is_owned(c) && label(c))
                || c.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| replaced.contains(n))
        })
        .cloned()
        .collect()
}

/// Names of the NodeClaims taking part in a move that is not over (`Done`): its
/// replacements and the claims they replace.
pub fn moving_claims(claims: &[Value], steps: &[Step]) -> BTreeSet<String> {
    let open: BTreeSet<&str> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Done { .. } => None,
            Step::Wait { id } | Step::Finish { id, .. } | Step::RollBack { id, .. } => {
                Some(id.as_str())
            }
        })
        .collect();
    let mut out = BTreeSet::new();
    for c in claims.iter().filter(|c| is_owned(c)) {
        let Some(id) = c
            .pointer("/metadata/labels")
            .and_then(|l| l.get(MOVE_LABEL))
            .and_then(Value::as_str)
        else {
            continue;
        };
        if !open.contains(id) {
            continue;
        }
        if let Some(n) = c.pointer("/metadata/name").and_then(Value::as_str) {
            out.insert(n.to_string());
        }
        if let Some(r) = c
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(REPLACES_ANNOTATION))
            .and_then(Value::as_str)
        {
            out.extend(
                r.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string),
            );
        }
    }
    out
}

/// Where a Node stands for a move: Ready (condition `Ready: True`, not being deleted),
/// and sliced (no `slicing-pending` taint).
pub fn node_state(n: &Node) -> ClaimNode {
    let ready = n.metadata.deletion_timestamp.is_none()
        && n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let pending = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.key == SLICING_PENDING_TAINT));
    match (ready, pending) {
        (false, _) => ClaimNode::NotReady,
        (true, true) => ClaimNode::Unsliced,
        (true, false) => ClaimNode::Ready,
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
    /// `Some(now)` (seconds since the epoch) fills [`Snapshot::repack`], with pod ages
    /// at `now`; `None` (planning rounds) leaves it empty.
    pub repack_now_s: Option<i64>,
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
    /// gpu-slicer's registered nodes with their pods, for repacking (only with
    /// [`SnapshotSettings::repack_now_s`]).
    pub repack: Vec<repack::Node>,
}

#[cfg(test)]
pub(crate) mod tests;
