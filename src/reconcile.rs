//! The controller's decisions, pure: what to write given what is desired and what the
//! caches hold, when a batch of pending pods is due, which nodes are sliced and may lose
//! the startup taint, and whether a plan is within budget. No client, no clock: `now` is an
//! argument. `src/controller/` does the I/O around these functions.

pub mod batch;
pub mod cache;
pub mod lease;
pub mod nodes;
pub mod notes;
pub mod repack;
pub mod round;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::model::contract::{MANAGED_BY, MANAGER};

/// Identity of an object: apiVersion group, kind, namespace, name. The version is not
/// part of it (the API server serves one object under each served version).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    /// The key of an object, when it has a kind and a name.
    pub fn of(obj: &Value) -> Option<ObjectKey> {
        let api = obj.get("apiVersion")?.as_str()?;
        let group = match api.rsplit_once('/') {
            Some((g, _)) => g.to_string(),
            None => String::new(),
        };
        let kind = obj.get("kind")?.as_str()?.to_string();
        let meta = obj.get("metadata")?;
        let name = meta.get("name")?.as_str()?.to_string();
        let namespace = meta
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        Some(ObjectKey {
            group,
            kind,
            namespace,
            name,
        })
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// True when gpu-slicer created the object (label `app.kubernetes.io/managed-by:
/// gpu-slicer`). Nothing else is ever modified or deleted.
pub fn is_owned(obj: &Value) -> bool {
    obj.pointer("/metadata/labels")
        .and_then(|l| l.get(MANAGED_BY))
        .and_then(Value::as_str)
        == Some(MANAGER)
}

/// True when every field of `desired` has the same value in `live` (maps recursively,
/// lists and scalars exactly). Fields the server adds (status, defaults, metadata) do not
/// count, so re-applying an unchanged object is skipped.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, dv)| l.get(k).is_some_and(|lv| is_subset(dv, lv))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        // The API server may return an int-or-string quantity in either form.
        (Value::String(a), Value::Number(b)) | (Value::Number(b), Value::String(a)) => {
            a.parse::<f64>().ok() == b.as_f64()
        }
        (a, b) => a == b,
    }
}

/// An owned object to delete: its key, the apiVersion it was read in, and its uid (a
/// deletion precondition, so an object re-created under the same name is not hit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub key: ObjectKey,
    pub api_version: String,
    pub uid: Option<String>,
}

impl Deletion {
    /// The deletion of a live object: its key, the apiVersion it was read in, its uid as
    /// the precondition (`None` without a kind, name or apiVersion).
    pub fn of(obj: &Value) -> Option<Deletion> {
        Some(Deletion {
            key: ObjectKey::of(obj)?,
            api_version: obj.get("apiVersion")?.as_str()?.to_string(),
            uid: obj
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}

/// What one round writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actions {
    /// Objects to server-side apply (new or changed), in apply order.
    pub apply: Vec<Value>,
    /// Owned objects no longer desired, deleted in this order (dependents first).
    pub delete: Vec<Deletion>,
    /// NodePools no longer desired that still have nodes: applied with a zero limit so
    /// Karpenter launches nothing more and removes their nodes as they empty, instead of
    /// being deleted under running pods.
    pub drain: Vec<Value>,
    /// Desired objects already as wanted.
    pub unchanged: usize,
}

impl Actions {
    pub fn is_empty(&self) -> bool {
        self.apply.is_empty() && self.delete.is_empty() && self.drain.is_empty()
    }
}

/// Kinds whose objects launch nodes: one still owning nodes is drained, not deleted.
const POOL_KINDS: [&str; 2] = ["NodePool", "Provisioner"];

/// Kinds gpu-slicer never deletes, even when it owns them and no longer wants them: its
/// device-plugin ConfigMap lives in a namespace it does not own (kube-system), where its
/// RBAC may only patch that one ConfigMap by name. One left behind by a changed
/// `--configmap-name` is for the user to remove.
const NEVER_DELETED: [&str; 1] = ["ConfigMap"];

/// Compares the desired objects with the live objects gpu-slicer owns.
///
/// `live` may contain objects of anyone: those without the ownership label are never
/// scheduled for a write or a deletion (a desired object whose name is taken by an
/// unowned one is reported in `conflicts` instead). `nodes_of` says how many nodes a
/// NodePool/Provisioner still has.
pub fn diff(
    desired: &[Value],
    live: &[Value],
    nodes_of: &dyn Fn(&ObjectKey) -> usize,
) -> (Actions, Vec<ObjectKey>) {
    let live_by_key: BTreeMap<ObjectKey, &Value> = live
        .iter()
        .filter_map(|o| ObjectKey::of(o).map(|k| (k, o)))
        .collect();
    let mut actions = Actions::default();
    let mut conflicts = Vec::new();
    let mut wanted = BTreeSet::new();
    for d in desired {
        let Some(key) = ObjectKey::of(d) else {
            continue;
        };
        wanted.insert(key.clone());
        match live_by_key.get(&key) {
            Some(l) if !is_owned(l) => conflicts.push(key),
            Some(l) if is_subset(d, l) => actions.unchanged += 1,
            _ => actions.apply.push(d.clone()),
        }
    }
    for (key, l) in live_by_key.iter().rev() {
        if wanted.contains(key) || !is_owned(l) || NEVER_DELETED.contains(&key.kind.as_str()) {
            continue;
        }
        if POOL_KINDS.contains(&key.kind.as_str()) && nodes_of(key) > 0 {
            if let Some(d) = drained(l)
                && !is_subset(&d, l)
            {
                actions.drain.push(d);
            }
            continue;
        }
        actions.delete.push(Deletion {
            key: key.clone(),
            api_version: l
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            uid: l
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .map(str::to_string),
        });
    }
    // Delete what depends on others first: overlays and claims, then pools, then classes
    // and the ConfigMap.
    actions
        .delete
        .sort_by_key(|d| (delete_rank(&d.key.kind), d.key.clone()));
    (actions, conflicts)
}

fn delete_rank(kind: &str) -> u8 {
    match kind {
        "NodeOverlay" | "NodeClaim" => 0,
        "NodePool" | "Provisioner" => 1,
        "EC2NodeClass" | "AWSNodeTemplate" => 2,
        _ => 3,
    }
}

/// The apply body that drains a pool: its identity and labels, its spec with every
/// `nvidia.com/gpu` limit at zero.
fn drained(live: &Value) -> Option<Value> {
    let mut d = serde_json::json!({
        "apiVersion": live.get("apiVersion")?,
        "kind": live.get("kind")?,
        "metadata": {
            "name": live.pointer("/metadata/name")?,
            "labels": live.pointer("/metadata/labels")?,
        },
        "spec": live.get("spec")?,
    });
    let zero = Value::String("0".to_string());
    let limits = if live.get("kind")?.as_str()? == "Provisioner" {
        d.pointer_mut("/spec/limits/resources")
    } else {
        d.pointer_mut("/spec/limits")
    };
    match limits.and_then(Value::as_object_mut) {
        Some(l) => {
            l.insert(crate::model::NVIDIA_GPU.to_string(), zero);
        }
        None => {
            let spec = d.get_mut("spec")?.as_object_mut()?;
            let gpu = serde_json::json!({ crate::model::NVIDIA_GPU: "0" });
            if live.get("kind")?.as_str()? == "Provisioner" {
                spec.insert("limits".into(), serde_json::json!({ "resources": gpu }));
            } else {
                spec.insert("limits".into(), gpu);
            }
        }
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(kind: &str, name: &str, owned: bool, spec: Value) -> Value {
        let mut labels = serde_json::Map::new();
        if owned {
            labels.insert(MANAGED_BY.into(), json!(MANAGER));
        }
        json!({"apiVersion": "karpenter.sh/v1", "kind": kind,
               "metadata": {"name": name, "labels": labels}, "spec": spec})
    }

    fn no_nodes(_: &ObjectKey) -> usize {
        0
    }

    #[test]
    fn subset_ignores_server_fields_but_not_changes() {
        let d = json!({"spec": {"limits": {"nvidia.com/gpu": "10"}, "x": [1, 2]}});
        let live =
            json!({"spec": {"limits": {"nvidia.com/gpu": 10}, "x": [1, 2], "d": 1}, "status": {}});
        assert!(is_subset(&d, &live));
        let changed = json!({"spec": {"limits": {"nvidia.com/gpu": "12"}, "x": [1, 2]}});
        assert!(!is_subset(&changed, &live));
        let list_changed = json!({"spec": {"limits": {"nvidia.com/gpu": "10"}, "x": [1]}});
        assert!(!is_subset(&list_changed, &live));
    }

    #[test]
    fn creates_skips_unchanged_deletes_only_owned() {
        let a = obj("NodePool", "a", true, json!({"n": 1}));
        let b = obj("NodePool", "b", true, json!({"n": 2}));
        let old = obj("NodeOverlay", "old", true, json!({}));
        let theirs = obj("NodePool", "theirs", false, json!({}));
        let (acts, conflicts) = diff(
            &[a.clone(), b.clone()],
            &[a.clone(), old, theirs],
            &no_nodes,
        );
        assert_eq!(acts.apply, vec![b]);
        assert_eq!(acts.unchanged, 1);
        assert_eq!(acts.delete.len(), 1);
        assert_eq!(acts.delete[0].key.name, "old");
        assert!(conflicts.is_empty());
    }

    #[test]
    fn unowned_name_clash_is_a_conflict_not_a_write() {
        let mine = obj("NodePool", "gpu", true, json!({"n": 1}));
        let theirs = obj("NodePool", "gpu", false, json!({"n": 0}));
        let (acts, conflicts) = diff(&[mine], &[theirs], &no_nodes);
        assert!(acts.is_empty());
        assert_eq!(conflicts.len(), 1);
    }

    #[test]
    fn pools_with_nodes_are_drained_then_deleted() {
        let live = obj(
            "NodePool",
            "old",
            true,
            json!({"limits": {"nvidia.com/gpu": "40"}, "template": {}}),
        );
        let overlay = obj("NodeOverlay", "old-g1", true, json!({}));
        let (acts, _) = diff(&[], &[live.clone(), overlay.clone()], &|_| 2);
        assert_eq!(acts.drain.len(), 1);
        assert_eq!(acts.drain[0]["spec"]["limits"]["nvidia.com/gpu"], "0");
        assert_eq!(acts.delete.len(), 1, "the overlay goes, the pool stays");
        // Already drained: nothing to write again.
        let (acts, _) = diff(&[], &[acts.drain[0].clone()], &|_| 2);
        assert!(acts.is_empty(), "{acts:?}");
        // No nodes left: deleted.
        let (acts, _) = diff(&[], &[live, overlay], &no_nodes);
        assert_eq!(acts.delete.len(), 2);
        assert_eq!(acts.delete[0].key.kind, "NodeOverlay");
    }

    #[test]
    fn deletion_order_puts_dependents_first() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "kube-system", "labels": {MANAGED_BY: MANAGER}}});
        let live = [
            cm,
            obj("NodePool", "p", true, json!({})),
            obj("NodeOverlay", "o", true, json!({})),
            json!({"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass",
                   "metadata": {"name": "c", "labels": {MANAGED_BY: MANAGER}}}),
        ];
        let (acts, _) = diff(&[], &live, &no_nodes);
        let kinds: Vec<&str> = acts.delete.iter().map(|d| d.key.kind.as_str()).collect();
        // The ConfigMap is never deleted (see NEVER_DELETED).
        assert_eq!(kinds, ["NodeOverlay", "NodePool", "EC2NodeClass"]);
        assert_eq!(acts.delete[2].api_version, "karpenter.k8s.aws/v1");
    }
}
