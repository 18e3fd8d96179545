//! Leader election on a `coordination.k8s.io/v1` Lease, decided purely: who holds it, and
//! whether it has expired at `now`. The controller's elector reads the Lease, asks
//! [`decide`], and writes with the Lease's resourceVersion, so of two replicas racing for
//! an expired Lease exactly one wins (the other gets a 409 and follows).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;

/// What to do with the Lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No Lease yet: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Another holder let it expire: take it over.
    TakeOver,
    /// Another holder's Lease is current: follow (do not write).
    Follow,
}

/// Decides for `me` at `now`.
pub fn decide(lease: Option<&Lease>, me: &str, now: Timestamp) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let spec = lease.spec.as_ref();
    let holder = spec.and_then(|s| s.holder_identity.as_deref());
    if holder == Some(me) {
        return Decision::Renew;
    }
    if holder.is_none_or(str::is_empty) {
        return Decision::TakeOver;
    }
    let renewed = spec.and_then(|s| s.renew_time.as_ref().or(s.acquire_time.as_ref()));
    let duration = spec
        .and_then(|s| s.lease_duration_seconds)
        .map_or(15, i64::from);
    match renewed {
        Some(MicroTime(t)) if t.as_second().saturating_add(duration) > now.as_second() => {
            Decision::Follow
        }
        _ => Decision::TakeOver,
    }
}

/// The Lease to write for a decision (`None` for [`Decision::Follow`]). Keeps the
/// resourceVersion of `current`, so the write fails if someone else wrote first.
pub fn next(
    current: Option<&Lease>,
    decision: Decision,
    name: &str,
    namespace: &str,
    me: &str,
    duration: Duration,
    now: Timestamp,
) -> Option<Lease> {
    let secs = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX).max(1);
    let stamp = MicroTime(now);
    let mut spec = current.and_then(|l| l.spec.clone()).unwrap_or_default();
    match decision {
        Decision::Follow => return None,
        Decision::Renew => {
            spec.renew_time = Some(stamp);
            spec.lease_duration_seconds = Some(secs);
        }
        Decision::Create | Decision::TakeOver => {
            spec = LeaseSpec {
                holder_identity: Some(me.to_string()),
                acquire_time: Some(stamp.clone()),
                renew_time: Some(stamp),
                lease_duration_seconds: Some(secs),
                lease_transitions: Some(
                    spec.lease_transitions.unwrap_or(0) + i32::from(decision == Decision::TakeOver),
                ),
                ..LeaseSpec::default()
            };
        }
    }
    let metadata = match current {
        Some(l) => l.metadata.clone(),
        None => ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(crate::model::contract::owned_labels(None)),
            ..ObjectMeta::default()
        },
    };
    Some(Lease {
        metadata,
        spec: Some(spec),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("timestamp")
    }

    fn held_by(who: &str, renewed: i64) -> Lease {
        next(
            None,
            Decision::Create,
            "gpu-slicer",
            "kube-system",
            who,
            Duration::from_secs(15),
            at(renewed),
        )
        .expect("lease")
    }

    #[test]
    fn create_renew_follow_take_over() {
        assert_eq!(decide(None, "a", at(100)), Decision::Create);
        let l = held_by("a", 100);
        assert_eq!(decide(Some(&l), "a", at(105)), Decision::Renew);
        assert_eq!(decide(Some(&l), "b", at(105)), Decision::Follow);
        assert_eq!(decide(Some(&l), "b", at(114)), Decision::Follow);
        assert_eq!(decide(Some(&l), "b", at(115)), Decision::TakeOver);
        let taken = next(
            Some(&l),
            Decision::TakeOver,
            "x",
            "y",
            "b",
            Duration::from_secs(15),
            at(120),
        )
        .expect("lease");
        let spec = taken.spec.as_ref().expect("spec");
        assert_eq!(spec.holder_identity.as_deref(), Some("b"));
        assert_eq!(spec.lease_transitions, Some(1));
        assert_eq!(taken.metadata.name, l.metadata.name, "same object");
        assert!(
            next(
                Some(&l),
                Decision::Follow,
                "x",
                "y",
                "b",
                Duration::from_secs(15),
                at(1)
            )
            .is_none()
        );
    }

    #[test]
    fn renew_keeps_holder_and_moves_time() {
        let l = held_by("a", 100);
        let r = next(
            Some(&l),
            Decision::Renew,
            "x",
            "y",
            "a",
            Duration::from_secs(15),
            at(110),
        )
        .expect("lease");
        let spec = r.spec.expect("spec");
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.renew_time, Some(MicroTime(at(110))));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(100))));
    }
}
