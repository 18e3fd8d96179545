//! Leader election against the mock API server: one holder, followers do not write,
//! an expired Lease is taken over, a lost race follows.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "controller")]

#[path = "support/fake_api.rs"]
mod fake_api;

use std::time::Duration;

use fake_api::FakeApi;
use gpu_slicer::controller::elector::{Elector, LeaseConfig};
use gpu_slicer::controller::writer::LeaderFlag;
use k8s_openapi::jiff::Timestamp;

fn cfg(who: &str) -> LeaseConfig {
    LeaseConfig {
        name: "gpu-slicer".into(),
        namespace: "gpu-slicer".into(),
        identity: who.into(),
        duration: Duration::from_secs(15),
        renew_every: Duration::from_secs(5),
    }
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).expect("timestamp")
}

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/gpu-slicer/leases/gpu-slicer";

#[tokio::test]
async fn one_leader_takeover_after_expiry() {
    let api = FakeApi::default();
    let (fa, fb) = (LeaderFlag::new(false), LeaderFlag::new(false));
    let a = Elector::new(api.client(), cfg("a"), fa.clone());
    let b = Elector::new(api.client(), cfg("b"), fb.clone());

    assert_eq!(a.step(at(0)).await, Ok(true));
    assert!(fa.is_leader());
    let lease = api.get(LEASE).expect("lease created");
    assert_eq!(lease["spec"]["holderIdentity"], "a");
    assert_eq!(
        lease["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "gpu-slicer"
    );

    // b follows while a renews, and writes nothing.
    api.clear_seen();
    assert_eq!(b.step(at(5)).await, Ok(false));
    assert!(!fb.is_leader());
    assert!(api.writes().is_empty(), "{:?}", api.writes());
    assert_eq!(a.step(at(10)).await, Ok(true));
    assert_eq!(
        b.step(at(20)).await,
        Ok(false),
        "renewed at 10, valid until 25"
    );

    // a stops renewing: b takes over after the Lease expires, and a steps down.
    assert_eq!(b.step(at(26)).await, Ok(true));
    assert!(fb.is_leader());
    assert_eq!(
        api.get(LEASE).expect("lease")["spec"]["holderIdentity"],
        "b"
    );
    assert_eq!(
        api.get(LEASE).expect("lease")["spec"]["leaseTransitions"],
        1
    );
    assert_eq!(a.step(at(27)).await, Ok(false));
    assert!(!fa.is_leader());
}

#[tokio::test]
async fn a_lost_race_follows() {
    let api = FakeApi::default();
    let fa = LeaderFlag::new(true);
    let a = Elector::new(api.client(), cfg("a"), fa.clone());
    assert_eq!(a.step(at(0)).await, Ok(true));
    // The renewal races with another writer: the PUT answers 409.
    api.fail_next("PUT", "/leases/", 409);
    assert_eq!(a.step(at(5)).await, Ok(false));
    assert!(!fa.is_leader());
    // A server error is reported, not taken as leadership.
    api.fail_next("GET", "/leases/", 500);
    assert!(a.step(at(6)).await.is_err());
}
