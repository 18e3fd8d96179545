//! The kinds the controller watches, by name: one enum for the cache's stores, the
//! readiness check, the watch restart and invalid-input metrics' `kind` label, and the
//! Karpenter groups discovery is asked about.

use std::fmt;

/// One watched kind. [`WatchedKind::as_str`] is the metric label and the log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WatchedKind {
    /// Pending and running GPU pods (reduced to demand as they arrive).
    Pod,
    /// Nodes carrying the gpu-slicer pool label.
    Node,
    NodePool,
    NodeClaim,
    NodeOverlay,
    Ec2NodeClass,
    /// The device plugin's namespace's ConfigMaps.
    ConfigMap,
    /// gpu-slicer's own ConfigMap, when it is written to another namespace than the
    /// device plugin's.
    OwnedConfigMap,
    /// Karpenter v1alpha5.
    Provisioner,
    /// Karpenter v1alpha1 (the Provisioner's node template).
    AwsNodeTemplate,
}

impl WatchedKind {
    /// The kinds cached as JSON values (every kind but pods and nodes).
    pub const OBJECTS: [WatchedKind; 8] = [
        WatchedKind::NodePool,
        WatchedKind::NodeClaim,
        WatchedKind::NodeOverlay,
        WatchedKind::Ec2NodeClass,
        WatchedKind::ConfigMap,
        WatchedKind::OwnedConfigMap,
        WatchedKind::Provisioner,
        WatchedKind::AwsNodeTemplate,
    ];

    /// The Karpenter kinds, watched where discovery finds them served.
    pub const KARPENTER: [WatchedKind; 6] = [
        WatchedKind::NodePool,
        WatchedKind::NodeClaim,
        WatchedKind::NodeOverlay,
        WatchedKind::Ec2NodeClass,
        WatchedKind::Provisioner,
        WatchedKind::AwsNodeTemplate,
    ];

    /// The label value, and the Kubernetes kind where there is one (`OwnedConfigMap` is
    /// a second store of ConfigMaps).
    pub fn as_str(self) -> &'static str {
        match self {
            WatchedKind::Pod => "Pod",
            WatchedKind::Node => "Node",
            WatchedKind::NodePool => "NodePool",
            WatchedKind::NodeClaim => "NodeClaim",
            WatchedKind::NodeOverlay => "NodeOverlay",
            WatchedKind::Ec2NodeClass => "EC2NodeClass",
            WatchedKind::ConfigMap => "ConfigMap",
            WatchedKind::OwnedConfigMap => "OwnedConfigMap",
            WatchedKind::Provisioner => "Provisioner",
            WatchedKind::AwsNodeTemplate => "AWSNodeTemplate",
        }
    }

    /// The watched kind named `name` ([`Self::as_str`]), if any.
    pub fn parse(name: &str) -> Option<WatchedKind> {
        [WatchedKind::Pod, WatchedKind::Node]
            .into_iter()
            .chain(WatchedKind::OBJECTS)
            .find(|k| k.as_str() == name)
    }

    /// The API group of a Karpenter kind; None for core kinds.
    pub fn karpenter_group(self) -> Option<&'static str> {
        match self {
            WatchedKind::NodePool
            | WatchedKind::NodeClaim
            | WatchedKind::NodeOverlay
            | WatchedKind::Provisioner => Some("karpenter.sh"),
            WatchedKind::Ec2NodeClass | WatchedKind::AwsNodeTemplate => Some("karpenter.k8s.aws"),
            WatchedKind::Pod
            | WatchedKind::Node
            | WatchedKind::ConfigMap
            | WatchedKind::OwnedConfigMap => None,
        }
    }

    /// Whether the cache keeps this kind as JSON values ([`Self::OBJECTS`]).
    pub fn is_object(self) -> bool {
        !matches!(self, WatchedKind::Pod | WatchedKind::Node)
    }
}

impl fmt::Display for WatchedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_kubernetes_kinds_and_groups_cover_karpenter_only() {
        for k in WatchedKind::KARPENTER {
            assert!(k.karpenter_group().is_some(), "{k}");
            assert!(WatchedKind::OBJECTS.contains(&k), "{k}");
        }
        assert_eq!(WatchedKind::Ec2NodeClass.as_str(), "EC2NodeClass");
        assert_eq!(WatchedKind::AwsNodeTemplate.as_str(), "AWSNodeTemplate");
        assert!(WatchedKind::ConfigMap.karpenter_group().is_none());
        assert!(!WatchedKind::Pod.is_object() && !WatchedKind::Node.is_object());
        for k in WatchedKind::OBJECTS {
            assert_eq!(WatchedKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(WatchedKind::parse("Pod"), Some(WatchedKind::Pod));
        assert_eq!(WatchedKind::parse("Secret"), None);
        assert_eq!(
            WatchedKind::OBJECTS
                .iter()
                .filter(|k| k.is_object())
                .count(),
            8
        );
    }
}
