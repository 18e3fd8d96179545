//! The permissions the controller needs, one table for two tests: tests/chart.rs checks
//! that the chart's RBAC grants exactly [`ALLOWED`] (where and on which named objects),
//! tests/rbac.rs that the controller, run against the mock API server, is allowed every
//! call it makes and uses every grant, but those in [`NOT_EXERCISED`] (the documented
//! difference: what its scenario cannot reach).

// Each test reads only part of the table.
#![allow(dead_code)]

/// Where a permission may be granted: cluster-wide (ClusterRole) or by a Role in one of
/// the namespaces the controller is configured with (read from the Deployment's args).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Cluster,
    /// `--device-plugin-namespace`: the user's device-plugin ConfigMap is read there.
    DevicePluginNs,
    /// `--configmap-namespace`: gpu-slicer writes its own ConfigMap there.
    ConfigMapNs,
    /// `--lease-namespace`: the leader Lease.
    LeaseNs,
}

/// Whether a permission must be restricted to one object by `resourceNames`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    Any,
    /// Only the ConfigMap of `--configmap-name`.
    ConfigMap,
    /// Only the Lease of `--lease-name`.
    Lease,
}

use Names::{Any, ConfigMap, Lease};
use Scope::{Cluster, ConfigMapNs, DevicePluginNs, LeaseNs};

/// A row of ALLOWED: (where, apiGroup, resources, verbs, by name).
pub type Row = (
    Scope,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    Names,
);

/// The list (#6): every (apiGroup, resource, verb) the chart may grant, with where
/// and whether only on a named object. Each row expands to the tuples
/// resources × verbs. The chart must grant exactly these (fewer breaks the controller,
/// more is not least privilege): tests/chart.rs. The controller must use each of them,
/// except those in [`NOT_EXERCISED`]: tests/rbac.rs.
pub const ALLOWED: &[Row] = &[
    // Pending GPU pods and what bound pods use.
    (Cluster, "", &["pods"], &["get", "list", "watch"], Any),
    // gpu-slicer's nodes; patch removes the startup taint (JSON patch with a test op).
    (
        Cluster,
        "",
        &["nodes"],
        &["get", "list", "watch", "patch"],
        Any,
    ),
    // Server-side apply creates and patches; delete only objects labelled managed-by
    // gpu-slicer, and NodeClaims only for repack moves (`repack::may_delete`).
    (
        Cluster,
        "karpenter.sh",
        &["nodepools", "nodeoverlays", "provisioners"],
        &["list", "watch", "create", "patch", "delete"],
        Any,
    ),
    (
        Cluster,
        "karpenter.sh",
        &["nodeclaims"],
        &["list", "watch", "create", "patch", "delete"],
        Any,
    ),
    (
        Cluster,
        "karpenter.k8s.aws",
        &["ec2nodeclasses", "awsnodetemplates"],
        &["list", "watch", "create", "patch", "delete"],
        Any,
    ),
    // kube-rs's Recorder: events.k8s.io/v1 Events, series patched.
    (
        Cluster,
        "events.k8s.io",
        &["events"],
        &["create", "patch"],
        Any,
    ),
    (Cluster, "", &["events"], &["create", "patch"], Any),
    // The user's device-plugin ConfigMap (watched with the namespace's ConfigMaps).
    (DevicePluginNs, "", &["configmaps"], &["list", "watch"], Any),
    // gpu-slicer's own ConfigMap: create cannot be limited by name; patch can. It is
    // never deleted.
    (
        ConfigMapNs,
        "",
        &["configmaps"],
        &["list", "watch", "create"],
        Any,
    ),
    (ConfigMapNs, "", &["configmaps"], &["patch"], ConfigMap),
    // The leader Lease: GET, CREATE once, PUT renewals.
    (
        LeaseNs,
        "coordination.k8s.io",
        &["leases"],
        &["create"],
        Any,
    ),
    (
        LeaseNs,
        "coordination.k8s.io",
        &["leases"],
        &["get", "update"],
        Lease,
    ),
];

/// The grants of [`ALLOWED`] that tests/rbac.rs's scenario (the controller against the mock
/// API server) does not exercise, and why they are still needed: (apiGroup, resource,
/// verbs, reason), verbs `*` for all or `a|b`. tests/rbac.rs fails on any other grant the
/// controller does not use.
pub const NOT_EXERCISED: &[(&str, &str, &str, &str)] = &[
    (
        "karpenter.sh",
        "provisioners",
        "*",
        "Karpenter <= 0.32 (v1alpha5): the scenario's cluster serves v1",
    ),
    (
        "karpenter.k8s.aws",
        "awsnodetemplates",
        "*",
        "Karpenter <= 0.32 (v1alpha5): the scenario's cluster serves v1",
    ),
    (
        "karpenter.sh",
        "nodeclaims",
        "create|patch",
        "the nodeclaim emission mode; the scenario uses overlay",
    ),
    (
        "",
        "events",
        "create|patch",
        "core/v1 Events: clusters without events.k8s.io/v1 (kube-rs's Recorder uses it when served)",
    ),
    (
        "events.k8s.io",
        "events",
        "patch",
        "a repeated Event becomes a series (a PATCH); the scenario's Events are all new",
    ),
    (
        "",
        "nodes",
        "get",
        "kubectl-style reads of one Node; the watch lists them",
    ),
    ("", "pods", "get", "reads of one Pod; the watch lists them"),
];
