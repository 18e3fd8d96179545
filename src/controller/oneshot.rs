//! `plan --from-cluster` and `render --from-cluster`: one read-only list of each resource
//! the controller watches, folded into the same [`Cache`] by the same functions, and the
//! same snapshot a controller round plans from.

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::watcher::Event;

use super::watch::{Cached, apply_to};
use super::writer::ApiResources;
use crate::model::contract::POOL_LABEL;
use crate::reconcile::cache::{Cache, Snapshot, SnapshotSettings, WatchedKind};

/// A list the snapshot needs was refused or failed.
#[derive(Debug, thiserror::Error)]
#[error("listing {what}: {source}")]
pub struct ListError {
    /// The resource, as the message names it (`pods`, `NodePool`…).
    pub what: String,
    #[source]
    pub source: kube::Error,
}

/// Lists `api` with `params` and folds every object into the store of `kind`, as the
/// watch's initial list would.
async fn list_into<K: Cached + Sync>(
    cache: &mut Cache,
    api: Api<K>,
    params: &ListParams,
    kind: WatchedKind,
) -> Result<(), kube::Error> {
    for o in api.list(params).await? {
        apply_to(cache, kind, Event::Apply(o));
    }
    Ok(())
}

/// Lists everything once and returns the snapshot. Only GET requests are sent.
pub async fn snapshot(
    client: &Client,
    settings: &SnapshotSettings,
    configmap_namespace: &str,
) -> Result<Snapshot, ListError> {
    let mut cache = Cache::default();
    let err = |what: &str| {
        let what = what.to_string();
        move |source| ListError { what, source }
    };
    let running = ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    list_into(
        &mut cache,
        Api::<Pod>::all(client.clone()),
        &running,
        WatchedKind::Pod,
    )
    .await
    .map_err(err("pods"))?;
    let pooled = ListParams::default().labels(POOL_LABEL);
    list_into(
        &mut cache,
        Api::<Node>::all(client.clone()),
        &pooled,
        WatchedKind::Node,
    )
    .await
    .map_err(err("nodes"))?;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), configmap_namespace);
    list_into(
        &mut cache,
        cms,
        &ListParams::default(),
        WatchedKind::ConfigMap,
    )
    .await
    .map_err(err("configmaps"))?;
    let resources = ApiResources::default();
    for (version, kind) in [
        ("v1", WatchedKind::NodePool),
        ("v1", WatchedKind::NodeClaim),
        ("v1alpha1", WatchedKind::NodeOverlay),
        ("v1", WatchedKind::Ec2NodeClass),
    ] {
        let Some(group) = kind.karpenter_group() else {
            continue;
        };
        let Some(ar) = resources.get(&format!("{group}/{version}"), kind.as_str()) else {
            continue;
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        match list_into(&mut cache, api, &ListParams::default(), kind).await {
            Ok(()) => {}
            // Not served (Karpenter not installed, or NodeOverlay gated off): nothing to read.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(err(kind.as_str())(e)),
        }
    }
    Ok(cache.snapshot(settings))
}
