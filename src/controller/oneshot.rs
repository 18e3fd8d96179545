//! `plan --from-cluster` and `render --from-cluster`: one read-only list of each resource
//! the controller watches, folded into the same [`Cache`] by the same functions, and the
//! same snapshot a controller round plans from.

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};

use super::writer::ApiResources;
use crate::model::contract::POOL_LABEL;
use crate::reconcile::cache::{
    Cache, Snapshot, SnapshotSettings, pod_entry, pod_key, trim_node, trim_object,
};

/// Lists everything once and returns the snapshot. Only GET requests are sent.
pub async fn snapshot(
    client: &Client,
    settings: &SnapshotSettings,
    configmap_namespace: &str,
) -> Result<Snapshot, String> {
    let mut cache = Cache::default();
    let err = |what: &str, e: kube::Error| format!("listing {what}: {e}");
    let pods: Api<Pod> = Api::all(client.clone());
    let lp = ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    for p in pods.list(&lp).await.map_err(|e| err("pods", e))? {
        if let Some(e) = pod_entry(&p) {
            cache.pods.apply(pod_key(&p), e);
        }
    }
    let nodes: Api<Node> = Api::all(client.clone());
    for n in nodes
        .list(&ListParams::default().labels(POOL_LABEL))
        .await
        .map_err(|e| err("nodes", e))?
    {
        let k = n.metadata.name.clone().unwrap_or_default();
        cache.nodes.apply(k, trim_node(n));
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), configmap_namespace);
    for cm in cms
        .list(&ListParams::default())
        .await
        .map_err(|e| err("configmaps", e))?
    {
        if let Ok(mut v) = serde_json::to_value(&cm) {
            if let Some(m) = v.as_object_mut() {
                m.insert("apiVersion".into(), "v1".into());
                m.insert("kind".into(), "ConfigMap".into());
            }
            let v = trim_object(v);
            if let Some(s) = cache.object_store("ConfigMap") {
                s.apply(Cache::object_key(&v), v);
            }
        }
    }
    let resources = ApiResources::default();
    for (api_version, kind) in [
        ("karpenter.sh/v1", "NodePool"),
        ("karpenter.sh/v1", "NodeClaim"),
        ("karpenter.sh/v1alpha1", "NodeOverlay"),
        ("karpenter.k8s.aws/v1", "EC2NodeClass"),
    ] {
        let Some(ar) = resources.get(api_version, kind) else {
            continue;
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                for o in list {
                    if let Ok(v) = serde_json::to_value(&o) {
                        let v = trim_object(v);
                        if let Some(s) = cache.object_store(kind) {
                            s.apply(Cache::object_key(&v), v);
                        }
                    }
                }
            }
            // Not served (Karpenter not installed, or NodeOverlay gated off): nothing to read.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(err(kind, e)),
        }
    }
    Ok(cache.snapshot(settings))
}
