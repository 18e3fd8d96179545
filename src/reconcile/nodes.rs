//! Born-sliced check: a node gpu-slicer launched carries the startup taint
//! `gpu-slicer.io/slicing-pending` until its allocatable `nvidia.com/gpu` equals
//! GPUs × R, where R is its `gpu-slicer.io/replicas` label and GPUs its
//! `karpenter.k8s.aws/instance-gpu-count` label (or its instance type's GPU count).

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;

use crate::model::contract::{REPLICAS_LABEL, SLICING_PENDING_TAINT};
use crate::model::{NVIDIA_GPU, labels};

/// Where a node stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slicing {
    /// No slicing-pending taint: nothing to do.
    NotPending,
    /// Allocatable equals GPUs × R: remove the taint.
    Ready,
    /// Not yet sliced as planned.
    Waiting { expected: u64, actual: u64 },
    /// Not sliced within the timeout: the node stays tainted; an Event and a metric say so.
    TimedOut {
        expected: u64,
        actual: u64,
        waited: Duration,
    },
    /// The node's labels do not say what to expect (the taint stays; an Event says why).
    Unknown(String),
}

fn allocatable_gpus(node: &Node) -> u64 {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get(NVIDIA_GPU))
        .and_then(|Quantity(q)| q.parse().ok())
        .unwrap_or(0)
}

/// Decides for one node. `gpus_of_type` looks up an instance type's GPU count when the
/// node has no `instance-gpu-count` label.
pub fn slicing(
    node: &Node,
    now: Timestamp,
    timeout: Duration,
    gpus_of_type: &dyn Fn(&str) -> Option<u32>,
) -> Slicing {
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.key == SLICING_PENDING_TAINT));
    if !tainted {
        return Slicing::NotPending;
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let Some(r) = labels
        .get(REPLICAS_LABEL)
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return Slicing::Unknown(format!("label {REPLICAS_LABEL} is missing or not a number"));
    };
    let gpus = labels
        .get(labels::INSTANCE_GPU_COUNT)
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| {
            labels
                .get(labels::INSTANCE_TYPE)
                .and_then(|t| gpus_of_type(t))
                .map(u64::from)
        });
    let Some(gpus) = gpus else {
        return Slicing::Unknown(format!(
            "neither {} nor a known {} says how many GPUs it has",
            labels::INSTANCE_GPU_COUNT,
            labels::INSTANCE_TYPE
        ));
    };
    let expected = gpus * r;
    let actual = allocatable_gpus(node);
    if actual == expected {
        return Slicing::Ready;
    }
    let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let waited = created
        .and_then(|c| {
            let secs = now.as_second() - c.as_second();
            u64::try_from(secs).ok().map(Duration::from_secs)
        })
        .unwrap_or_default();
    if waited >= timeout {
        Slicing::TimedOut {
            expected,
            actual,
            waited,
        }
    } else {
        Slicing::Waiting { expected, actual }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus, Taint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use std::collections::BTreeMap;

    fn node(labels: &[(&str, &str)], tainted: bool, alloc: Option<&str>, age: i64) -> Node {
        let now = Timestamp::from_second(1_000_000).expect("ts");
        Node {
            metadata: ObjectMeta {
                name: Some("n".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                creation_timestamp: Some(Time(
                    Timestamp::from_second(now.as_second() - age).expect("ts"),
                )),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                taints: tainted.then(|| {
                    vec![Taint {
                        key: SLICING_PENDING_TAINT.into(),
                        value: Some("true".into()),
                        effect: "NoSchedule".into(),
                        ..Taint::default()
                    }]
                }),
                ..NodeSpec::default()
            }),
            status: Some(NodeStatus {
                allocatable: alloc
                    .map(|a| BTreeMap::from([(NVIDIA_GPU.to_string(), Quantity(a.into()))])),
                ..NodeStatus::default()
            }),
        }
    }

    fn decide(n: &Node) -> Slicing {
        let now = Timestamp::from_second(1_000_000).expect("ts");
        slicing(n, now, Duration::from_secs(600), &|t| {
            (t == "g5.12xlarge").then_some(4)
        })
    }

    #[test]
    fn taint_goes_only_at_the_right_allocatable() {
        let l = [(REPLICAS_LABEL, "4"), (labels::INSTANCE_GPU_COUNT, "2")];
        assert_eq!(decide(&node(&l, true, Some("8"), 30)), Slicing::Ready);
        assert_eq!(
            decide(&node(&l, true, Some("2"), 30)),
            Slicing::Waiting {
                expected: 8,
                actual: 2
            }
        );
        // Over-sliced (say, the device plugin's default config) is not ready either.
        assert!(matches!(
            decide(&node(&l, true, Some("20"), 30)),
            Slicing::Waiting { .. }
        ));
        assert_eq!(
            decide(&node(&l, true, None, 30)),
            Slicing::Waiting {
                expected: 8,
                actual: 0
            }
        );
        assert!(matches!(
            decide(&node(&l, true, Some("2"), 601)),
            Slicing::TimedOut {
                expected: 8,
                actual: 2,
                ..
            }
        ));
        assert_eq!(decide(&node(&l, false, Some("8"), 30)), Slicing::NotPending);
    }

    #[test]
    fn gpu_count_from_the_type_and_unknowns() {
        let l = [
            (REPLICAS_LABEL, "3"),
            (labels::INSTANCE_TYPE, "g5.12xlarge"),
        ];
        assert_eq!(decide(&node(&l, true, Some("12"), 1)), Slicing::Ready);
        let l = [(REPLICAS_LABEL, "3"), (labels::INSTANCE_TYPE, "x1.unknown")];
        assert!(matches!(
            decide(&node(&l, true, Some("12"), 1)),
            Slicing::Unknown(_)
        ));
        let l = [(REPLICAS_LABEL, "many")];
        assert!(matches!(
            decide(&node(&l, true, Some("12"), 1)),
            Slicing::Unknown(_)
        ));
    }
}
