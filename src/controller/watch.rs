//! The watches: one generic fold from a watcher's events into the cache's stores.
//!
//! Each watched type says, through [`Cached`], what the cache keeps of an object and in
//! which store; [`apply`] then follows the watcher's init protocol for every type alike
//! (`Init`, `InitApply`…, `InitDone` replace a store; `Apply`/`Delete` edit it), and
//! [`spawn`] runs one watch with restarts counted by [`WatchedKind`] and the server's
//! `Retry-After` honoured. Which events wake the planning loop stays per watch (a pod
//! added is worth a round, a node's heartbeat is not), so callers pass it.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Notify;

use super::metrics::Metrics;
use super::server::Shared;
use super::writer::retry_after;
use crate::model::contract::{ENABLED, MANAGED_BY, MANAGER};
use crate::reconcile::cache::{
    Cache, PodEntry, Store, WatchedKind, pod_entry, pod_key, trim_node, trim_object,
};

/// A type the controller watches, and what the cache keeps of it.
pub trait Cached: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static {
    /// What the store holds per object.
    type Entry;

    /// What the cache keeps of this object; None when it should not be cached (a pod
    /// that finished, an object that cannot be serialised). An `Apply` of such an object
    /// removes any earlier entry.
    fn entry(self) -> Option<Self::Entry>;

    /// The store this type's objects of `kind` go to; None when `kind` is not one of
    /// this type's.
    fn store(cache: &mut Cache, kind: WatchedKind) -> Option<&mut Store<Self::Entry>>;

    /// The cache key: `namespace/name`, or `name` for cluster-scoped objects.
    fn key(&self) -> String {
        let name = self.meta().name.as_deref().unwrap_or_default();
        match self.meta().namespace.as_deref() {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_string(),
        }
    }
}

impl Cached for Pod {
    type Entry = PodEntry;

    fn entry(self) -> Option<PodEntry> {
        pod_entry(&self)
    }

    fn store(cache: &mut Cache, _: WatchedKind) -> Option<&mut Store<PodEntry>> {
        Some(&mut cache.pods)
    }

    /// A pod without a namespace is in `default`, as the API server would put it.
    fn key(&self) -> String {
        pod_key(self)
    }
}

impl Cached for Node {
    type Entry = Node;

    fn entry(self) -> Option<Node> {
        Some(trim_node(self))
    }

    fn store(cache: &mut Cache, _: WatchedKind) -> Option<&mut Store<Node>> {
        Some(&mut cache.nodes)
    }
}

impl Cached for ConfigMap {
    type Entry = Value;

    /// A typed ConfigMap carries no `apiVersion`/`kind` of its own; the cached value
    /// does, like every other cached object.
    fn entry(self) -> Option<Value> {
        let mut v = serde_json::to_value(&self).ok()?;
        if let Some(m) = v.as_object_mut() {
            m.insert("apiVersion".into(), "v1".into());
            m.insert("kind".into(), "ConfigMap".into());
        }
        Some(trim_object(v))
    }

    fn store(cache: &mut Cache, kind: WatchedKind) -> Option<&mut Store<Value>> {
        cache.object_store(kind)
    }
}

impl Cached for DynamicObject {
    type Entry = Value;

    fn entry(self) -> Option<Value> {
        serde_json::to_value(&self).ok().map(trim_object)
    }

    fn store(cache: &mut Cache, kind: WatchedKind) -> Option<&mut Store<Value>> {
        cache.object_store(kind)
    }
}

/// Folds one watch event of `kind` into the shared cache.
pub fn apply<K: Cached>(cache: &Mutex<Cache>, kind: WatchedKind, ev: Event<K>) {
    if let Ok(mut c) = cache.lock() {
        apply_to(&mut c, kind, ev);
    }
}

/// Folds one watch event of `kind` into a cache (`--from-cluster` folds its one list
/// through here too).
pub fn apply_to<K: Cached>(cache: &mut Cache, kind: WatchedKind, ev: Event<K>) {
    let Some(store) = K::store(cache, kind) else {
        return;
    };
    match ev {
        Event::Init => store.init(),
        Event::InitDone => store.init_done(),
        Event::InitApply(o) => {
            let key = o.key();
            if let Some(e) = o.entry() {
                store.init_apply(key, e);
            }
        }
        Event::Apply(o) => {
            let key = o.key();
            match o.entry() {
                Some(e) => store.apply(key, e),
                None => store.delete(&key),
            }
        }
        Event::Delete(o) => store.delete(&o.key()),
    }
}

/// Folds a watcher stream into the cache until it ends, notifying `notify` after the
/// events `wakes` picks. A watch error counts a restart of `kind` (the watcher then
/// backs off and re-lists, and the store's init protocol replaces its contents with the
/// fresh list).
pub async fn fold<K>(
    stream: impl futures::Stream<Item = Result<Event<K>, watcher::Error>>,
    kind: WatchedKind,
    cache: Arc<Mutex<Cache>>,
    shared: Arc<Shared>,
    notify: Arc<Notify>,
    wakes: fn(&Event<K>) -> bool,
) where
    K: Cached,
{
    futures::pin_mut!(stream);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(ev) => {
                let wake = wakes(&ev);
                apply(&cache, kind, ev);
                if wake {
                    notify.notify_one();
                }
            }
            Err(e) => {
                Metrics::count_kind(&shared.metrics.watch_restarts, kind.as_str());
                tracing::warn!(%kind, error = %e, "watch failed; restarting with backoff");
                // The watcher's own backoff follows this wait.
                if let Some(wait) = watch_retry_after(&e) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// What every watch shares: the cache it folds into and the metrics it counts in.
#[derive(Clone)]
pub struct Watches {
    pub cache: Arc<Mutex<Cache>>,
    pub shared: Arc<Shared>,
}

impl Watches {
    /// Starts watching `api` into the store of `kind`, with the watcher's default backoff.
    pub fn spawn<K>(
        &self,
        api: Api<K>,
        config: watcher::Config,
        kind: WatchedKind,
        notify: Arc<Notify>,
        wakes: fn(&Event<K>) -> bool,
    ) where
        K: Cached + Sync,
    {
        let stream = watcher::watcher(api, config).default_backoff();
        tokio::spawn(fold(
            stream,
            kind,
            self.cache.clone(),
            self.shared.clone(),
            notify,
            wakes,
        ));
    }
}

/// The wait a failed watch's answer asks for (`Retry-After`), at most
/// [`crate::backoff::MAX_RETRY_AFTER`].
pub fn watch_retry_after(e: &watcher::Error) -> Option<std::time::Duration> {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => retry_after(e),
        watcher::Error::WatchError(s) => retry_after(&kube::Error::Api(s.clone())),
        watcher::Error::NoResourceVersion => None,
    }
}

/// A change to an annotated or owned pool (or any other watched Karpenter object
/// gpu-slicer owns) is worth a round; other objects' changes wait for the next one.
pub fn owned_or_annotated(ev: &Event<DynamicObject>) -> bool {
    match ev {
        Event::Apply(o) | Event::Delete(o) => {
            o.labels().get(MANAGED_BY).map(String::as_str) == Some(MANAGER)
                || o.annotations().contains_key(ENABLED)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(name: &str) -> Pod {
        crate::reconcile::cache::tests::gpu_pod("ml", name, None, &[])
    }

    #[tokio::test]
    async fn a_watch_error_and_relist_converge_and_are_counted() {
        let cache = Arc::new(Mutex::new(Cache::default()));
        let shared = Arc::new(Shared::default());
        let notify = Arc::new(Notify::new());
        // Initial list with p1, then p2 appears; the watch fails (desync, e.g. 410 Gone);
        // the re-list no longer has p1 (deleted while the watch was down).
        let events: Vec<Result<Event<Pod>, watcher::Error>> = vec![
            Ok(Event::Init),
            Ok(Event::InitApply(pending("p1"))),
            Ok(Event::InitDone),
            Ok(Event::Apply(pending("p2"))),
            Err(watcher::Error::NoResourceVersion),
            Ok(Event::Init),
            Ok(Event::InitApply(pending("p2"))),
            Ok(Event::InitApply(pending("p3"))),
            Ok(Event::InitDone),
        ];
        fold(
            futures::stream::iter(events),
            WatchedKind::Pod,
            cache.clone(),
            shared.clone(),
            notify,
            |_| true,
        )
        .await;
        let c = cache.lock().expect("lock");
        assert!(c.pods.synced());
        let keys: Vec<String> = ["ml/p1", "ml/p2", "ml/p3"]
            .into_iter()
            .filter(|k| c.pods.get(k).is_some())
            .map(str::to_string)
            .collect();
        assert_eq!(keys, ["ml/p2", "ml/p3"]);
        let text = shared.metrics.encode();
        assert!(
            text.contains("gpu_slicer_watch_restarts_total{kind=\"Pod\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn values_are_keyed_by_namespace_and_carry_their_kind() {
        let cache = Mutex::new(Cache::default());
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "plugin", "namespace": "kube-system",
                         "managedFields": [{"manager": "kubectl"}]},
            "data": {"any": "x"}
        }))
        .expect("a ConfigMap");
        apply(&cache, WatchedKind::ConfigMap, Event::Apply(cm.clone()));
        let mut c = cache.lock().expect("lock");
        let v = c
            .objects_of(WatchedKind::ConfigMap)
            .next()
            .cloned()
            .expect("cached");
        assert_eq!(v["kind"], "ConfigMap");
        assert_eq!(v["apiVersion"], "v1");
        assert!(v.pointer("/metadata/managedFields").is_none());
        assert!(
            c.object_store(WatchedKind::ConfigMap)
                .expect("store")
                .get("kube-system/plugin")
                .is_some()
        );
        // The other ConfigMap store is untouched, and deleting by key empties this one.
        assert_eq!(c.objects_of(WatchedKind::OwnedConfigMap).count(), 0);
        drop(c);
        apply(&cache, WatchedKind::ConfigMap, Event::Delete(cm));
        assert_eq!(
            cache
                .lock()
                .expect("lock")
                .objects_of(WatchedKind::ConfigMap)
                .count(),
            0
        );
    }

    #[test]
    fn a_pod_that_finished_leaves_the_cache_and_a_namespaceless_pod_is_in_default() {
        let cache = Mutex::new(Cache::default());
        let mut p = pending("p1");
        apply(&cache, WatchedKind::Pod, Event::Apply(p.clone()));
        assert!(cache.lock().expect("lock").pods.get("ml/p1").is_some());
        p.status.get_or_insert_with(Default::default).phase = Some("Succeeded".into());
        apply(&cache, WatchedKind::Pod, Event::Apply(p));
        assert!(cache.lock().expect("lock").pods.get("ml/p1").is_none());
        let mut bare = pending("p2");
        bare.metadata.namespace = None;
        assert_eq!(bare.key(), "default/p2");
    }
}
