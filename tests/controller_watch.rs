//! A real kube-runtime watcher against the mock API server: after a watch error (410 Gone,
//! the "too old resource version" desync), the watcher re-lists and the cache, folded by
//! the controller's own pod fold, converges to the server's state.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "controller")]

#[path = "support/fake_api.rs"]
mod fake_api;
#[path = "support/objects.rs"]
mod objects;

use std::sync::Mutex;
use std::time::Duration;

use fake_api::FakeApi;
use futures::StreamExt;
use gpu_slicer::controller::watch::apply;
use gpu_slicer::reconcile::cache::{Cache, WatchedKind};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};

fn pending(name: &str) -> Value {
    objects::pod(name)
        .namespace("ml")
        .gpu(1)
        .pending_unschedulable()
        .build()
}

#[tokio::test]
async fn watch_desync_relists_and_the_cache_converges() {
    let api = FakeApi::default();
    api.insert(pending("p1"));
    // First watch: p2 is added, then the server says the resource version is too old.
    api.push_watch(vec![
        json!({"type": "ADDED", "object": pending("p2")}),
        json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
               "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410}}),
    ]);
    let client = api.client();
    let pods: Api<Pod> = Api::all(client);
    let cache = Mutex::new(Cache::default());
    let stream = watcher::watcher(pods, watcher::Config::default());
    futures::pin_mut!(stream);
    let mut errors = 0;
    let mut lists = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while lists < 2 {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("watcher made progress before the deadline")
            .expect("stream continues");
        match next {
            Ok(ev) => {
                if matches!(ev, Event::InitDone) {
                    lists += 1;
                    if lists == 1 {
                        // While the watch runs, p1 is deleted and p3 created on the server;
                        // the watch will not tell (it fails), only the re-list can.
                        api.remove("/api/v1/namespaces/ml/pods/p1");
                        api.insert(pending("p2"));
                        api.insert(pending("p3"));
                    }
                }
                apply(&cache, WatchedKind::Pod, ev);
            }
            Err(_) => errors += 1,
        }
    }
    assert_eq!(errors, 1, "the 410 surfaced once");
    let c = cache.lock().expect("lock");
    let mut keys: Vec<&str> = ["ml/p1", "ml/p2", "ml/p3"]
        .into_iter()
        .filter(|k| c.pods.get(k).is_some())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["ml/p2", "ml/p3"], "p1 is gone after the re-list");
    assert!(c.pods.synced());
    // List, watch (failed with 410), list again.
    let seen = api.seen();
    let kinds: Vec<bool> = seen.iter().map(|s| s.uri.contains("watch=true")).collect();
    assert_eq!(kinds, [false, true, false], "{seen:?}");
}
