//! The Helm chart (charts/gpu-slicer), the image and the IAM policy, checked without a
//! cluster: `helm lint --strict` and `helm template` with every `ci/*-values.yaml`, every
//! rendered object against the Kubernetes 1.33 schemas (kubernetes-validate) and the
//! k8s-openapi types, RBAC against the issue's list, the restricted Pod Security Standard,
//! and the Deployment's arguments against `gpu-slicer run --help` and the binary itself.
//!
//! Needs helm and kubernetes-validate: `bash .ci/tools.sh` installs them into target/tools
//! (or set HELM and KUBERNETES_VALIDATE).

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "cli")]

#[path = "support/helm.rs"]
mod helm;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use helm::{describe, kind, name, str_at};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// The issue's list of permissions
// ---------------------------------------------------------------------------------------

/// Where a permission may be granted: cluster-wide (ClusterRole) or by a Role in one of
/// the namespaces the controller is configured with (read from the Deployment's args).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
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
enum Names {
    Any,
    /// Only the ConfigMap of `--configmap-name`.
    ConfigMap,
    /// Only the Lease of `--lease-name`.
    Lease,
}

use Names::{Any, ConfigMap, Lease};
use Scope::{Cluster, ConfigMapNs, DevicePluginNs, LeaseNs};

/// A row of ALLOWED: (where, apiGroup, resources, verbs, by name).
type Row = (
    Scope,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    Names,
);

/// The issue's list (#6): every (apiGroup, resource, verb) the chart may grant, with where
/// and whether only on a named object. Each row expands to the tuples
/// resources × verbs. The chart must grant exactly these (fewer breaks the controller,
/// more is not least privilege).
const ALLOWED: &[Row] = &[
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

/// Kinds whose schema kubernetes-validate does not have (CRDs); checked by hand.
const CRD_KINDS: &[&str] = &["ServiceMonitor", "Certificate", "Issuer"];

/// The API the ServiceMonitor is gated on (`.Capabilities.APIVersions.Has`).
const PROMETHEUS_OPERATOR_API: &str = "monitoring.coreos.com/v1";

/// APIs the ci files' clusters serve besides the built-in ones: their renderings pass
/// them as `--api-versions`, as `helm install` would find them in such a cluster.
const CI_API_VERSIONS: &[&str] = &[PROMETHEUS_OPERATOR_API];

/// The flags of `gpu-slicer run` that every-flag-values.yaml cannot pass because they
/// conflict with one it passes: (flag, the flag it conflicts with). Another ci file must
/// pass each.
const CONFLICTING_FLAGS: &[(&str, &str)] = &[("no-price-cache", "price-cache")];

// ---------------------------------------------------------------------------------------
// Renderings, shared by the tests
// ---------------------------------------------------------------------------------------

struct Rendered {
    /// The ci file's name, e.g. `every-flag-values.yaml`.
    file: String,
    docs: Vec<Value>,
}

fn renderings() -> &'static [Rendered] {
    static R: OnceLock<Vec<Rendered>> = OnceLock::new();
    R.get_or_init(|| {
        let files = helm::ci_values_files();
        for needed in [
            "minimal",
            "dry-run",
            "irsa-live-prices",
            "monitoring-networkpolicy",
            "every-flag",
            "bottlerocket-overlay",
        ] {
            let f = format!("{needed}-values.yaml");
            assert!(
                files.iter().any(|p| p.ends_with(&f)),
                "charts/gpu-slicer/ci/{f} is missing"
            );
        }
        files
            .iter()
            .map(|f| {
                let yaml = helm::template_with_apis(&[f.as_path()], &[], CI_API_VERSIONS)
                    .unwrap_or_else(|e| panic!("helm template -f {}:\n{e}", f.display()));
                Rendered {
                    file: file_name(f),
                    docs: helm::parse_docs(&yaml),
                }
            })
            .collect()
    })
}

fn rendered(file: &str) -> &'static Rendered {
    renderings()
        .iter()
        .find(|r| r.file == file)
        .unwrap_or_else(|| panic!("no rendering of ci/{file}"))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string()
}

fn render_with(sets: &[&str]) -> Vec<Value> {
    let yaml =
        helm::template(&[], sets).unwrap_or_else(|e| panic!("helm template --set {sets:?}:\n{e}"));
    helm::parse_docs(&yaml)
}

/// [`render_with`] for a cluster that also serves `apis`.
fn render_with_apis(sets: &[&str], apis: &[&str]) -> Vec<Value> {
    let yaml = helm::template_with_apis(&[], sets, apis)
        .unwrap_or_else(|e| panic!("helm template --api-versions {apis:?} --set {sets:?}:\n{e}"));
    helm::parse_docs(&yaml)
}

/// The Service of the metrics port (not the webhook's).
fn metrics_service<'a>(docs: &'a [Value], ctx: &str) -> &'a Value {
    let all: Vec<&Value> = docs_of(docs, "Service")
        .into_iter()
        .filter(|s| str_at(s, "/metadata/labels/app.kubernetes.io~1component") == "controller")
        .collect();
    assert_eq!(all.len(), 1, "{ctx}: expected one metrics Service");
    all[0]
}

fn webhook_service(docs: &[Value]) -> Option<&Value> {
    docs_of(docs, "Service")
        .into_iter()
        .find(|s| str_at(s, "/metadata/labels/app.kubernetes.io~1component") == "webhook")
}

fn docs_of<'a>(docs: &'a [Value], k: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == k).collect()
}

fn one<'a>(docs: &'a [Value], k: &str, ctx: &str) -> &'a Value {
    let all = docs_of(docs, k);
    assert_eq!(all.len(), 1, "{ctx}: expected one {k}, found {}", all.len());
    all[0]
}

fn deployment<'a>(docs: &'a [Value], ctx: &str) -> &'a Value {
    one(docs, "Deployment", ctx)
}

fn controller_container<'a>(deploy: &'a Value, ctx: &str) -> &'a Value {
    let containers = deploy
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{ctx}: Deployment has no containers"));
    containers
        .iter()
        .find(|c| str_at(c, "/name") == "controller")
        .unwrap_or_else(|| panic!("{ctx}: no container named controller"))
}

/// The container's args: `run` followed by `--flag[=value]`, as a map flag -> value
/// (None for a flag without `=`). Panics on anything else or on a repeated flag.
fn run_args(deploy: &Value, ctx: &str) -> BTreeMap<String, Option<String>> {
    let c = controller_container(deploy, ctx);
    assert!(
        c.get("command").is_none(),
        "{ctx}: the container must keep the image's ENTRYPOINT /gpu-slicer (no command)"
    );
    let args: Vec<&str> = c
        .get("args")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{ctx}: controller container has no args"))
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap_or_else(|| panic!("{ctx}: arg {a} is not a string"))
        })
        .collect();
    assert_eq!(
        args.first(),
        Some(&"run"),
        "{ctx}: args must start with `run`"
    );
    let mut flags = BTreeMap::new();
    for a in &args[1..] {
        let rest = a
            .strip_prefix("--")
            .unwrap_or_else(|| panic!("{ctx}: arg {a:?} is not a long flag"));
        let (flag, value) = match rest.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (rest.to_string(), None),
        };
        assert!(
            flags.insert(flag.clone(), value).is_none(),
            "{ctx}: --{flag} is passed twice"
        );
    }
    flags
}

fn arg<'a>(flags: &'a BTreeMap<String, Option<String>>, flag: &str, ctx: &str) -> &'a str {
    flags
        .get(flag)
        .and_then(|v| v.as_deref())
        .unwrap_or_else(|| panic!("{ctx}: the Deployment does not pass --{flag}=VALUE"))
}

fn pod_labels(deploy: &Value) -> BTreeMap<String, String> {
    string_map(deploy.pointer("/spec/template/metadata/labels"))
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// `selector` (matchLabels only, as the chart writes them) selects `labels`.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

// ---------------------------------------------------------------------------------------
// `gpu-slicer run --help`
// ---------------------------------------------------------------------------------------

/// The long flags of `gpu-slicer run --help` (without help/version), each with whether it
/// takes a value.
fn run_help_flags() -> &'static BTreeMap<String, bool> {
    static F: OnceLock<BTreeMap<String, bool>> = OnceLock::new();
    F.get_or_init(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_gpu-slicer"))
            .args(["run", "--help"])
            .output()
            .expect("run gpu-slicer run --help");
        assert!(out.status.success(), "gpu-slicer run --help failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut flags = BTreeMap::new();
        for line in text.lines() {
            // Option lines are indented by at most 6 spaces; descriptions by more.
            let indent = line.len() - line.trim_start().len();
            let t = line.trim_start();
            if indent > 6 || !t.starts_with('-') {
                continue;
            }
            // `-h, --help` style: the long form after the comma.
            let t = match t.split_once(", ") {
                Some((short, long)) if !short.starts_with("--") => long,
                _ => t,
            };
            let Some(rest) = t.strip_prefix("--") else {
                continue;
            };
            let flag: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if flag.is_empty() || flag == "help" || flag == "version" {
                continue;
            }
            flags.insert(flag, rest.contains('<'));
        }
        assert!(
            flags.len() > 30 && flags.contains_key("cluster-name"),
            "could not read the flags of `gpu-slicer run --help`:\n{text}"
        );
        flags
    })
}

// ---------------------------------------------------------------------------------------
// 1. helm lint
// ---------------------------------------------------------------------------------------

/// What `helm template` / `helm install` say without `clusterName` (the `required` in
/// gpu-slicer.args).
const CLUSTER_NAME_REQUIRED: &str = "clusterName is required";

#[test]
fn lint_strict_passes_with_defaults_and_every_ci_values_file() {
    // The defaults: Helm lints `required` leniently (a warning, as chart-testing expects);
    // the schema lets the empty default through so that this is the message users see.
    let out = helm::lint(&[], &[])
        .unwrap_or_else(|e| panic!("helm lint --strict on the defaults failed:\n{e}"));
    assert!(
        out.contains(CLUSTER_NAME_REQUIRED),
        "helm lint on the defaults must warn that clusterName is missing:\n{out}"
    );
    // ... but nothing renders or installs without it, and the message names it.
    let err = helm::template(&[], &[]).expect_err("helm template without clusterName must fail");
    assert!(err.contains(CLUSTER_NAME_REQUIRED), "{err}");
    helm::lint(&[], &["clusterName=x"])
        .unwrap_or_else(|e| panic!("helm lint --strict --set clusterName=x failed:\n{e}"));
    let files = helm::ci_values_files();
    assert!(files.len() >= 8, "only {} ci values files", files.len());
    for f in files {
        helm::lint(&[f.as_path()], &[])
            .unwrap_or_else(|e| panic!("helm lint --strict -f {}:\n{e}", f.display()));
    }
}

#[test]
fn schema_and_template_refuse_bad_values() {
    // (settings, what the error must mention)
    let cases: &[(&[&str], &str)] = &[
        (&["clusterName=x", "replicaCount=0"], "replicaCount"),
        (&["clusterName=x", "cluserName=y"], "cluserName"),
        (&["clusterName=-bad"], "clusterName"),
        (&["clusterName=x", "strategy.type=Sometimes"], "strategy"),
        (
            &["clusterName=x", "extraVolumeMounts[0].name=a"],
            "mountPath",
        ),
        (&["clusterName=x", "render.emission=v2"], "emission"),
        (&["clusterName=x", "render.amiFamily=ubuntu"], "amiFamily"),
        (
            &["clusterName=x", "planner.capacityType=reserved"],
            "capacityType",
        ),
        (&["clusterName=x", "planner.effort=medium"], "effort"),
        (&["clusterName=x", "planner.gap=1.5"], "gap"),
        (
            &["clusterName=x", "planner.planDeadline=soon"],
            "planDeadline",
        ),
        (&["clusterName=x", "controller.logFormat=xml"], "logFormat"),
        (&["clusterName=x", "aws.livePrices=sometimes"], "livePrices"),
        (&["clusterName=x", "aws.maxAttempts=0"], "maxAttempts"),
        (
            &["clusterName=x", "controller.resyncPeriod=often"],
            "resyncPeriod",
        ),
        (&["clusterName=x", "planner.maxReplicas=49"], "maxReplicas"),
        (&["clusterName=x", "repack.minSaving=1.5"], "minSaving"),
        (
            &["clusterName=x", "repack.maxNodesPerHour=0"],
            "maxNodesPerHour",
        ),
        (&["clusterName=x", "repack.readyTimeout=0s"], "readyTimeout"),
        (&["clusterName=x", "planner.replicas=many"], "replicas"),
        (&["clusterName=x", "metrics.port=0"], "port"),
        (&["clusterName=x", "image.digest=latest"], "digest"),
        (
            &["clusterName=x", "serviceAccount.roleArn=gpu-slicer"],
            "roleArn",
        ),
        (&["clusterName=x", "controller.typo=1"], "typo"),
        (
            &["clusterName=x", "render.karpenterVersion=1"],
            "karpenterVersion",
        ),
        (
            &[
                "clusterName=x",
                "aws.priceCache.enabled=true",
                "aws.noPriceCache=true",
            ],
            "/aws",
        ),
    ];
    for (sets, needle) in cases {
        let err = match helm::lint(&[], sets) {
            Ok(out) => panic!("helm lint --set {sets:?} passed but must fail:\n{out}"),
            Err(e) => e,
        };
        assert!(
            err.contains(needle),
            "helm lint --set {sets:?} failed without naming {needle:?}:\n{err}"
        );
    }
    // helm template applies the same schema (checked for a few; each call costs 0.1 s).
    for (sets, _) in &cases[..3] {
        assert!(
            helm::template(&[], sets).is_err(),
            "helm template --set {sets:?} must fail too"
        );
    }
    // Past the schema, the templates' own checks.
    let template_cases: &[(&[&str], &str)] = &[
        (&["--skip-schema-validation"], "clusterName is required"),
        (
            &["clusterName=x", "leaderElection.identity=fixed"],
            "leaderElection.identity",
        ),
        (
            &["clusterName=x", "serviceAccount.create=false"],
            "serviceAccount.name",
        ),
        (
            &[
                "clusterName=x",
                "serviceMonitor.enabled=true",
                "service.enabled=false",
            ],
            "service.enabled",
        ),
        (
            &[
                "clusterName=x",
                "planner.catalog.csv=a",
                "planner.catalog.existingConfigMap=b",
            ],
            "not both",
        ),
        // `run --capacity-type spot --live-prices=false` exits at once without spot prices
        // in its catalog (with live prices they come from EC2).
        (
            &[
                "clusterName=x",
                "planner.capacityType=spot",
                "aws.livePrices=false",
            ],
            "spot_usd_per_hour",
        ),
        (
            &[
                "clusterName=x",
                "planner.capacityType=spot",
                "aws.livePrices=false",
                "planner.catalog.csv=instance_type",
            ],
            "spot_usd_per_hour",
        ),
    ];
    for (sets, needle) in template_cases {
        let (flags, sets): (Vec<&str>, Vec<&str>) = sets.iter().partition(|s| s.starts_with("--"));
        let err = match template_raw(&flags, &sets) {
            Ok(_) => panic!("helm template {flags:?} --set {sets:?} must fail"),
            Err(e) => e,
        };
        assert!(
            err.contains(needle),
            "helm template {flags:?} --set {sets:?} failed without naming {needle:?}:\n{err}"
        );
    }
}

/// helm template with extra flags (e.g. --skip-schema-validation).
fn template_raw(flags: &[&str], sets: &[&str]) -> Result<String, String> {
    let chart = helm::chart_dir().display().to_string();
    let mut args = vec![
        "template",
        "gs",
        chart.as_str(),
        "--kube-version",
        helm::KUBE_VERSION,
    ];
    args.extend_from_slice(flags);
    for s in sets {
        args.push("--set");
        args.push(s);
    }
    let out = helm::helm(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

// ---------------------------------------------------------------------------------------
// 2. Every rendered object: schema, types, namespaces
// ---------------------------------------------------------------------------------------

/// Deserializes a built-in object into its k8s-openapi type; Err names the field.
fn typed(doc: &Value) -> Result<(), String> {
    fn de<T: serde::de::DeserializeOwned>(doc: &Value) -> Result<(), String> {
        serde_path_to_error::deserialize::<_, T>(doc)
            .map(|_| ())
            .map_err(|e| format!("field `{}`: {}", e.path(), e.inner()))
    }
    use k8s_openapi::api::{admissionregistration, apps, core, networking, policy, rbac};
    match kind(doc) {
        "Secret" => de::<core::v1::Secret>(doc),
        "MutatingWebhookConfiguration" => {
            de::<admissionregistration::v1::MutatingWebhookConfiguration>(doc)
        }
        "Deployment" => de::<apps::v1::Deployment>(doc),
        "Service" => de::<core::v1::Service>(doc),
        "ServiceAccount" => de::<core::v1::ServiceAccount>(doc),
        "ConfigMap" => de::<core::v1::ConfigMap>(doc),
        "ClusterRole" => de::<rbac::v1::ClusterRole>(doc),
        "ClusterRoleBinding" => de::<rbac::v1::ClusterRoleBinding>(doc),
        "Role" => de::<rbac::v1::Role>(doc),
        "RoleBinding" => de::<rbac::v1::RoleBinding>(doc),
        "PodDisruptionBudget" => de::<policy::v1::PodDisruptionBudget>(doc),
        "NetworkPolicy" => de::<networking::v1::NetworkPolicy>(doc),
        other => Err(format!(
            "kind {other} is neither a known built-in kind nor in CRD_KINDS: add it to tests/chart.rs"
        )),
    }
}

const CLUSTER_SCOPED: &[&str] = &[
    "ClusterRole",
    "ClusterRoleBinding",
    "MutatingWebhookConfiguration",
];

#[test]
fn rendered_objects_pass_kubernetes_validate_and_k8s_openapi() {
    for r in renderings() {
        let mut builtin = Vec::new();
        for d in &r.docs {
            let what = format!("ci/{}: {}", r.file, describe(d));
            // kubectl apply -f of the rendered output must land in the right namespaces.
            let ns = str_at(d, "/metadata/namespace");
            if CLUSTER_SCOPED.contains(&kind(d)) {
                assert!(
                    ns.is_empty(),
                    "{what}: a cluster-scoped object has a namespace"
                );
            } else {
                assert!(!ns.is_empty(), "{what}: no explicit metadata.namespace");
            }
            if CRD_KINDS.contains(&kind(d)) {
                continue;
            }
            typed(d).unwrap_or_else(|e| panic!("{what}: not a valid k8s-openapi object: {e}"));
            builtin.push(d);
        }
        helm::kubernetes_validate(&builtin).unwrap_or_else(|e| panic!("ci/{}: {e}", r.file));
    }
}

#[test]
fn kubernetes_validate_rejects_a_broken_deployment() {
    let docs = &rendered("minimal-values.yaml").docs;
    let good = deployment(docs, "minimal").clone();
    helm::kubernetes_validate(&[&good]).expect("the rendered Deployment passes");

    let mut bad = good.clone();
    bad["spec"]["replicas"] = json!("two");
    let err = helm::kubernetes_validate(&[&bad])
        .expect_err("kubernetes-validate must reject replicas: \"two\"");
    assert!(err.contains("replicas"), "{err}");

    let mut unknown = good;
    unknown["spec"]["template"]["spec"]["containers"][0]["runAsRoot"] = json!(true);
    let err = helm::kubernetes_validate(&[&unknown])
        .expect_err("kubernetes-validate --strict must reject an unknown field");
    assert!(err.contains("runAsRoot"), "{err}");
}

// ---------------------------------------------------------------------------------------
// RBAC
// ---------------------------------------------------------------------------------------

/// One granted permission: (namespace or "" for cluster-wide, apiGroup, resource, verb,
/// resourceNames).
type Grant = (String, String, String, String, Vec<String>);

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or("<not a string>").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn grants_of(role: &Value, what: &str) -> Vec<Grant> {
    assert!(
        role.get("aggregationRule").is_none(),
        "{what}: aggregationRule would pull in other roles' rules"
    );
    let ns = str_at(role, "/metadata/namespace").to_string();
    let rules = role
        .get("rules")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{what}: no rules"));
    let mut out = Vec::new();
    for rule in rules {
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "{what}: nonResourceURLs in {rule}"
        );
        let groups = strings(rule.get("apiGroups"));
        let resources = strings(rule.get("resources"));
        let verbs = strings(rule.get("verbs"));
        let names = strings(rule.get("resourceNames"));
        assert!(
            !groups.is_empty() && !resources.is_empty() && !verbs.is_empty(),
            "{what}: incomplete rule {rule}"
        );
        for s in groups.iter().chain(&resources).chain(&verbs).chain(&names) {
            assert!(!s.contains('*'), "{what}: wildcard {s:?} in {rule}");
        }
        for r in &resources {
            assert!(
                !r.starts_with("secrets"),
                "{what}: a rule on {r} (nothing on secrets): {rule}"
            );
        }
        for g in &groups {
            for r in &resources {
                for v in &verbs {
                    out.push((ns.clone(), g.clone(), r.clone(), v.clone(), names.clone()));
                }
            }
        }
    }
    out
}

/// Checks the RBAC objects of one rendering against ALLOWED; returns the grants.
fn check_rbac(docs: &[Value], ctx: &str) -> BTreeSet<Grant> {
    let deploy = deployment(docs, ctx);
    let flags = run_args(deploy, ctx);
    let dp_ns = arg(&flags, "device-plugin-namespace", ctx);
    let cm_ns = arg(&flags, "configmap-namespace", ctx);
    let cm_name = arg(&flags, "configmap-name", ctx);
    let lease_ns = arg(&flags, "lease-namespace", ctx);
    let lease_name = arg(&flags, "lease-name", ctx);
    let sa = str_at(deploy, "/spec/template/spec/serviceAccountName");
    let release_ns = str_at(deploy, "/metadata/namespace");

    // The allowed set, resolved against this rendering's namespaces and names.
    let mut allowed: BTreeSet<Grant> = BTreeSet::new();
    for (scope, group, resources, verbs, names) in ALLOWED {
        let ns = match scope {
            Cluster => "",
            DevicePluginNs => dp_ns,
            ConfigMapNs => cm_ns,
            LeaseNs => lease_ns,
        };
        let names: Vec<String> = match names {
            Any => vec![],
            ConfigMap => vec![cm_name.to_string()],
            Lease => vec![lease_name.to_string()],
        };
        for r in *resources {
            for v in *verbs {
                allowed.insert((
                    ns.to_string(),
                    group.to_string(),
                    r.to_string(),
                    v.to_string(),
                    names.clone(),
                ));
            }
        }
    }
    // A grant without names is allowed only where the list allows it without names; one
    // with names where the list allows it with exactly those names (or without any).
    let permitted = |g: &Grant| {
        allowed.contains(g) || {
            let mut unnamed = g.clone();
            unnamed.4.clear();
            allowed.contains(&unnamed)
        }
    };

    let mut granted = BTreeSet::new();
    let roles: Vec<&Value> = docs
        .iter()
        .filter(|d| matches!(kind(d), "ClusterRole" | "Role"))
        .collect();
    for role in &roles {
        let what = format!("{ctx}: {}", describe(role));
        for g in grants_of(role, &what) {
            assert!(
                permitted(&g),
                "{what} grants {g:?}, which is not in the issue's list (ALLOWED in tests/chart.rs)"
            );
            granted.insert(g);
        }
        // Bound to the controller's ServiceAccount, by a binding of the same scope.
        let binding_kind = if kind(role) == "ClusterRole" {
            "ClusterRoleBinding"
        } else {
            "RoleBinding"
        };
        let bound = docs.iter().any(|b| {
            kind(b) == binding_kind
                && str_at(b, "/metadata/namespace") == str_at(role, "/metadata/namespace")
                && str_at(b, "/roleRef/kind") == kind(role)
                && str_at(b, "/roleRef/name") == name(role)
                && b.get("subjects")
                    .and_then(Value::as_array)
                    .is_some_and(|s| {
                        s.iter().any(|s| {
                            str_at(s, "/kind") == "ServiceAccount"
                                && str_at(s, "/name") == sa
                                && str_at(s, "/namespace") == release_ns
                        })
                    })
        });
        assert!(
            bound,
            "{what}: no {binding_kind} binds it to ServiceAccount {release_ns}/{sa}"
        );
    }
    // Bindings refer only to the chart's own roles (never e.g. cluster-admin).
    for b in docs
        .iter()
        .filter(|d| matches!(kind(d), "ClusterRoleBinding" | "RoleBinding"))
    {
        let target = roles.iter().any(|r| {
            kind(r) == str_at(b, "/roleRef/kind")
                && name(r) == str_at(b, "/roleRef/name")
                && (kind(r) == "ClusterRole"
                    || str_at(r, "/metadata/namespace") == str_at(b, "/metadata/namespace"))
        });
        assert!(
            target,
            "{ctx}: {} binds a role the chart does not define",
            describe(b)
        );
    }
    // Nothing the controller needs is missing.
    let missing: Vec<&Grant> = allowed.iter().filter(|a| !granted.contains(*a)).collect();
    assert!(
        missing.is_empty(),
        "{ctx}: the chart does not grant what the controller needs: {missing:#?}"
    );
    granted
}

#[test]
fn rbac_is_least_privilege_and_complete() {
    for r in renderings() {
        let ctx = format!("ci/{}", r.file);
        check_rbac(&r.docs, &ctx);
    }
    // The default namespaces: one ConfigMap Role in kube-system, the Lease in the release's.
    let docs = &rendered("minimal-values.yaml").docs;
    let roles = docs_of(docs, "Role");
    let namespaces: BTreeSet<&str> = roles
        .iter()
        .map(|r| str_at(r, "/metadata/namespace"))
        .collect();
    assert_eq!(
        namespaces,
        BTreeSet::from(["kube-system", helm::NAMESPACE]),
        "Roles by default: ConfigMaps in kube-system, the Lease in the release namespace"
    );
    // A separate ConfigMap namespace: read-only in the device plugin's, write in its own.
    let docs = &rendered("every-flag-values.yaml").docs;
    let granted = check_rbac(docs, "ci/every-flag-values.yaml");
    let writes_in = |ns: &str| {
        granted.iter().any(|g| {
            g.0 == ns && g.2 == "configmaps" && g.3 != "get" && g.3 != "list" && g.3 != "watch"
        })
    };
    assert!(
        !writes_in("nvidia-device-plugin"),
        "no ConfigMap writes in the device plugin's namespace"
    );
    assert!(
        writes_in("gpu-operator"),
        "ConfigMap writes where gpu-slicer writes its ConfigMap"
    );
    // rbac.create=false renders no RBAC at all.
    let docs = render_with(&["clusterName=x", "rbac.create=false"]);
    assert!(
        docs.iter()
            .all(|d| !str_at(d, "/apiVersion").starts_with("rbac.authorization.k8s.io/")),
        "rbac.create=false still renders RBAC objects"
    );
}

#[test]
fn rbac_check_bites() {
    // A copy of the default rendering with one extra verb, a wildcard and a secret rule.
    let docs = &rendered("minimal-values.yaml").docs;
    let tamper = |f: &dyn Fn(&mut Value)| {
        let mut docs = docs.clone();
        let cr = docs
            .iter_mut()
            .find(|d| kind(d) == "ClusterRole")
            .expect("ClusterRole");
        f(cr);
        std::panic::catch_unwind(|| check_rbac(&docs, "tampered")).is_err()
    };
    assert!(tamper(&|cr| cr["rules"][0]["verbs"]
        .as_array_mut()
        .expect("verbs")
        .push(json!("delete"))));
    assert!(tamper(&|cr| cr["rules"][0]["resources"] = json!(["*"])));
    assert!(tamper(&|cr| cr["rules"]
        .as_array_mut()
        .expect("rules")
        .push(
            json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
        )));
    assert!(tamper(&|cr| cr["rules"]
        .as_array_mut()
        .expect("rules")
        .push(
            json!({"nonResourceURLs": ["/metrics"], "verbs": ["get"]})
        )));
    // Dropping a needed permission fails too.
    assert!(tamper(&|cr| {
        cr["rules"].as_array_mut().expect("rules").remove(1);
    }));
}

// ---------------------------------------------------------------------------------------
// Pod security: the restricted Pod Security Standard, plus a read-only root file system
// ---------------------------------------------------------------------------------------

/// Volume types the restricted profile allows.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];
/// Sysctls the baseline profile allows.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
const SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// What the pod template violates of the restricted profile (and of readOnlyRootFilesystem).
fn restricted_violations(template: &Value) -> Vec<String> {
    let mut v = Vec::new();
    let spec = &template["spec"];
    let psc = &spec["securityContext"];
    let annotations = string_map(template.pointer("/metadata/annotations"));

    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[host] == json!(true) {
            v.push(format!("pod: {host} is true"));
        }
    }
    for vol in spec["volumes"].as_array().into_iter().flatten() {
        let name = str_at(vol, "/name");
        let types: Vec<&String> = vol
            .as_object()
            .map(|m| m.keys().filter(|k| *k != "name").collect())
            .unwrap_or_default();
        for t in types {
            if !RESTRICTED_VOLUMES.contains(&t.as_str()) {
                v.push(format!(
                    "volume {name}: type {t} is not allowed (hostPath and others)"
                ));
            }
        }
    }
    for s in psc["sysctls"].as_array().into_iter().flatten() {
        let n = str_at(s, "/name");
        if !SAFE_SYSCTLS.contains(&n) {
            v.push(format!("pod: unsafe sysctl {n}"));
        }
    }
    if psc["runAsUser"] == json!(0) {
        v.push("pod: runAsUser 0".into());
    }
    check_selinux(&psc["seLinuxOptions"], "pod", &mut v);
    let pod_seccomp = str_at(psc, "/seccompProfile/type");
    if !pod_seccomp.is_empty() && !matches!(pod_seccomp, "RuntimeDefault" | "Localhost") {
        v.push(format!("pod: seccompProfile {pod_seccomp}"));
    }
    let pod_apparmor = str_at(psc, "/appArmorProfile/type");
    if !pod_apparmor.is_empty() && !matches!(pod_apparmor, "RuntimeDefault" | "Localhost") {
        v.push(format!("pod: appArmorProfile {pod_apparmor}"));
    }
    if psc["windowsOptions"]["hostProcess"] == json!(true) {
        v.push("pod: windowsOptions.hostProcess".into());
    }

    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten());
    let mut any = false;
    for c in containers {
        any = true;
        let n = format!("container {}", str_at(c, "/name"));
        let sc = &c["securityContext"];
        if sc["privileged"] == json!(true) {
            v.push(format!("{n}: privileged"));
        }
        if sc["allowPrivilegeEscalation"] != json!(false) {
            v.push(format!("{n}: allowPrivilegeEscalation must be false"));
        }
        // runAsNonRoot: true on the container, or on the pod and not false on the container.
        let non_root = sc["runAsNonRoot"] == json!(true)
            || (psc["runAsNonRoot"] == json!(true) && sc["runAsNonRoot"] != json!(false));
        if !non_root {
            v.push(format!("{n}: runAsNonRoot must be true (pod or container)"));
        }
        if sc["runAsUser"] == json!(0) {
            v.push(format!("{n}: runAsUser 0"));
        }
        let seccomp = str_at(sc, "/seccompProfile/type");
        let seccomp_ok = match seccomp {
            "" => matches!(pod_seccomp, "RuntimeDefault" | "Localhost"),
            "RuntimeDefault" | "Localhost" => true,
            _ => false,
        };
        if !seccomp_ok {
            v.push(format!("{n}: seccompProfile must be RuntimeDefault or Localhost (pod or container), got {seccomp:?}"));
        }
        let drops = strings(sc.pointer("/capabilities/drop"));
        if !drops.iter().any(|d| d == "ALL") {
            v.push(format!("{n}: capabilities.drop must contain ALL"));
        }
        for add in strings(sc.pointer("/capabilities/add")) {
            if add != "NET_BIND_SERVICE" {
                v.push(format!("{n}: capabilities.add {add}"));
            }
        }
        let proc_mount = str_at(sc, "/procMount");
        if !matches!(proc_mount, "" | "Default") {
            v.push(format!("{n}: procMount {proc_mount}"));
        }
        check_selinux(&sc["seLinuxOptions"], &n, &mut v);
        let apparmor = str_at(sc, "/appArmorProfile/type");
        if !apparmor.is_empty() && !matches!(apparmor, "RuntimeDefault" | "Localhost") {
            v.push(format!("{n}: appArmorProfile {apparmor}"));
        }
        if let Some(a) = annotations.get(&format!(
            "container.apparmor.security.beta.kubernetes.io/{}",
            str_at(c, "/name")
        )) && !(a == "runtime/default" || a.starts_with("localhost/"))
        {
            v.push(format!("{n}: AppArmor annotation {a}"));
        }
        if sc["windowsOptions"]["hostProcess"] == json!(true) {
            v.push(format!("{n}: windowsOptions.hostProcess"));
        }
        for p in c["ports"].as_array().into_iter().flatten() {
            if p.get("hostPort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                v.push(format!("{n}: hostPort {}", p["hostPort"]));
            }
        }
        // Not part of the profile, but required of this chart.
        if sc["readOnlyRootFilesystem"] != json!(true) {
            v.push(format!("{n}: readOnlyRootFilesystem must be true"));
        }
    }
    if !any {
        v.push("pod: no containers".into());
    }
    v
}

fn check_selinux(opts: &Value, who: &str, v: &mut Vec<String>) {
    if opts.is_null() {
        return;
    }
    let t = str_at(opts, "/type");
    if !SELINUX_TYPES.contains(&t) {
        v.push(format!("{who}: seLinuxOptions.type {t}"));
    }
    for f in ["user", "role"] {
        if !str_at(opts, &format!("/{f}")).is_empty() {
            v.push(format!("{who}: seLinuxOptions.{f} must be unset"));
        }
    }
}

#[test]
fn pods_meet_the_restricted_pod_security_standard() {
    for r in renderings() {
        let d = deployment(&r.docs, &r.file);
        let template = &d["spec"]["template"];
        let v = restricted_violations(template);
        assert!(
            v.is_empty(),
            "ci/{}: the controller pod violates the restricted profile:\n  {}",
            r.file,
            v.join("\n  ")
        );
        // The chart sets both levels explicitly, as the issue asks.
        let sc = &controller_container(d, &r.file)["securityContext"];
        let psc = &template["spec"]["securityContext"];
        assert_eq!(
            psc["runAsNonRoot"],
            json!(true),
            "ci/{}: pod runAsNonRoot",
            r.file
        );
        assert_eq!(
            psc["runAsUser"],
            json!(65532),
            "ci/{}: pod runAsUser",
            r.file
        );
        assert_eq!(
            str_at(psc, "/seccompProfile/type"),
            "RuntimeDefault",
            "ci/{}",
            r.file
        );
        assert_eq!(
            str_at(sc, "/seccompProfile/type"),
            "RuntimeDefault",
            "ci/{}",
            r.file
        );
        assert_eq!(
            sc["runAsUser"],
            json!(65532),
            "ci/{}: container runAsUser",
            r.file
        );
    }
}

#[test]
fn pod_security_check_bites() {
    let good =
        deployment(&rendered("minimal-values.yaml").docs, "minimal")["spec"]["template"].clone();
    assert!(restricted_violations(&good).is_empty());
    let cases: &[(&str, Value, &str)] = &[
        ("/spec/hostNetwork", json!(true), "hostNetwork"),
        ("/spec/hostPID", json!(true), "hostPID"),
        ("/spec/hostIPC", json!(true), "hostIPC"),
        (
            "/spec/volumes",
            json!([{"name": "root", "hostPath": {"path": "/"}}]),
            "hostPath",
        ),
        (
            "/spec/containers/0/securityContext/privileged",
            json!(true),
            "privileged",
        ),
        (
            "/spec/containers/0/securityContext/allowPrivilegeEscalation",
            json!(true),
            "allowPrivilegeEscalation",
        ),
        (
            "/spec/containers/0/securityContext/runAsNonRoot",
            json!(false),
            "runAsNonRoot",
        ),
        (
            "/spec/containers/0/securityContext/runAsUser",
            json!(0),
            "runAsUser 0",
        ),
        (
            "/spec/containers/0/securityContext/capabilities",
            json!({"add": ["SYS_ADMIN"], "drop": ["ALL"]}),
            "SYS_ADMIN",
        ),
        (
            "/spec/containers/0/securityContext/capabilities",
            json!({"drop": ["NET_RAW"]}),
            "drop must contain ALL",
        ),
        (
            "/spec/containers/0/securityContext/seccompProfile",
            json!({"type": "Unconfined"}),
            "seccompProfile",
        ),
        (
            "/spec/containers/0/securityContext/readOnlyRootFilesystem",
            json!(false),
            "readOnlyRootFilesystem",
        ),
        (
            "/spec/containers/0/ports",
            json!([{"containerPort": 8080, "hostPort": 8080}]),
            "hostPort",
        ),
        (
            "/spec/initContainers",
            json!([{"name": "init", "image": "busybox"}]),
            "container init",
        ),
    ];
    for (pointer, value, needle) in cases {
        let mut t = good.clone();
        set_pointer(&mut t, pointer, value.clone());
        let v = restricted_violations(&t);
        assert!(
            v.iter().any(|m| m.contains(needle)),
            "setting {pointer} = {value} must be caught ({needle}); got {v:?}"
        );
    }
}

/// Sets the value at a JSON pointer, creating the last key.
fn set_pointer(v: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    let p = v
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    match p {
        Value::Object(m) => {
            m.insert(key.to_string(), value);
        }
        Value::Array(a) => {
            let i: usize = key.parse().expect("index");
            a[i] = value;
        }
        _ => panic!("{parent} is not a container"),
    }
}

// ---------------------------------------------------------------------------------------
// The Deployment's arguments and `gpu-slicer run`
// ---------------------------------------------------------------------------------------

#[test]
fn deployment_args_are_flags_of_gpu_slicer_run() {
    let known = run_help_flags();
    let mut union = BTreeSet::new();
    for r in renderings() {
        let ctx = format!("ci/{}", r.file);
        let flags = run_args(deployment(&r.docs, &ctx), &ctx);
        for (flag, value) in &flags {
            let takes_value = known.get(flag).unwrap_or_else(|| {
                panic!("{ctx}: the Deployment passes --{flag}, which `gpu-slicer run --help` does not list")
            });
            // Valued flags as --flag=value; booleans bare (only when true).
            match (takes_value, value) {
                (true, None) => panic!("{ctx}: --{flag} needs =VALUE"),
                (false, Some(v)) => panic!("{ctx}: boolean --{flag} passed with ={v}"),
                (true, Some(v)) if v.is_empty() => {
                    panic!(
                        "{ctx}: --{flag}= is empty (an empty optional value must leave the flag out)"
                    )
                }
                _ => {}
            }
            union.insert(flag.clone());
        }
        assert!(flags.contains_key("cluster-name"), "{ctx}: --cluster-name");
    }
    // controller.extraArgs are checked like the rest.
    let docs = render_with(&["clusterName=x", "controller.extraArgs[0]=--no-such-flag=1"]);
    let extra = run_args(deployment(&docs, "extraArgs"), "extraArgs");
    assert!(
        extra.contains_key("no-such-flag") && !known.contains_key("no-such-flag"),
        "controller.extraArgs must reach the args (and the check above would refuse them)"
    );
    // every-flag-values.yaml passes every flag, so a new flag without a chart value fails.
    let every = run_args(
        deployment(&rendered("every-flag-values.yaml").docs, "every-flag"),
        "every-flag",
    );
    let missing: Vec<&String> = known
        .keys()
        .filter(|f| !every.contains_key(*f))
        .filter(|f| !CONFLICTING_FLAGS.iter().any(|(c, _)| c == f))
        .collect();
    assert!(
        missing.is_empty(),
        "ci/every-flag-values.yaml does not pass {missing:?}: give each flag of `gpu-slicer run` a chart value (values.yaml, values.schema.json, templates/_helpers.tpl)"
    );
    for (flag, conflicts_with) in CONFLICTING_FLAGS {
        assert!(
            known.contains_key(*flag),
            "CONFLICTING_FLAGS names --{flag}, which run no longer has"
        );
        assert!(
            every.contains_key(*conflicts_with),
            "every-flag must pass --{conflicts_with}"
        );
        assert!(
            union.contains(*flag),
            "no ci values file passes --{flag} (it conflicts with --{conflicts_with}, so every-flag cannot)"
        );
    }
}

/// Runs the binary with a rendering's args, as the container would (with `$(POD_NAME)`
/// expanded and the mounted catalog replaced by a local copy), without a cluster: every
/// check of the arguments passes and it stops where it needs the API server.
fn run_with_rendered_args(docs: &[Value], ctx: &str) {
    let deploy = deployment(docs, ctx);
    let c = controller_container(deploy, ctx);
    let dir = helm::scratch("run");
    let mut args: Vec<String> = Vec::new();
    for a in c["args"].as_array().expect("args") {
        let a = a
            .as_str()
            .expect("string arg")
            .replace("$(POD_NAME)", "gs-gpu-slicer-0");
        let a = match a.strip_prefix("--catalog=") {
            Some(path) => {
                let file = Path::new(path)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .expect("catalog file name")
                    .to_string();
                // The chart's own ConfigMap when it renders one, else the embedded CSV.
                let csv = docs
                    .iter()
                    .filter(|d| kind(d) == "ConfigMap")
                    .find_map(|d| d.pointer(&format!("/data/{file}")).and_then(Value::as_str))
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        std::fs::read_to_string(
                            helm::repo().join("src/catalog/aws-gpu-instances.csv"),
                        )
                        .expect("embedded catalog")
                    });
                let local = dir.join(&file);
                std::fs::write(&local, csv).expect("write catalog");
                format!("--catalog={}", local.display())
            }
            None => a,
        };
        args.push(a);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpu-slicer"))
        .args(&args)
        .env_clear()
        .env("HOME", &dir)
        .env("KUBECONFIG", dir.join("no-kubeconfig"))
        .env("POD_NAMESPACE", helm::NAMESPACE)
        .env("POD_NAME", "gs-gpu-slicer-0")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gpu-slicer");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{ctx}: gpu-slicer {args:?} did not stop without a cluster");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("output");
    let stderr = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        status.code() == Some(1) && stderr.contains("no usable in-cluster config or kubeconfig"),
        "{ctx}: gpu-slicer must accept the chart's arguments and stop only for want of a cluster; \
         exit {:?}:\n{stderr}\nargs: {args:?}",
        status.code()
    );
}

#[test]
fn gpu_slicer_accepts_the_rendered_args() {
    for r in renderings() {
        run_with_rendered_args(&r.docs, &format!("ci/{}", r.file));
    }
    // And it does refuse bad ones (the check bites): a conflicting pair.
    let mut docs = rendered("every-flag-values.yaml").docs.clone();
    let d = docs
        .iter_mut()
        .find(|d| kind(d) == "Deployment")
        .expect("Deployment");
    d["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array_mut()
        .expect("args")
        .push(json!("--no-price-cache"));
    assert!(
        std::panic::catch_unwind(|| run_with_rendered_args(&docs, "tampered")).is_err(),
        "--price-cache with --no-price-cache must be refused"
    );
}

#[test]
fn values_map_to_their_flags() {
    let ctx = "ci/every-flag-values.yaml";
    let flags = run_args(
        deployment(&rendered("every-flag-values.yaml").docs, ctx),
        ctx,
    );
    let expect = [
        ("cluster-name", "every-flag"),
        ("daemonset-overhead", "cpu=250m,memory=512Mi,pods=4"),
        ("live-prices", "true"),
        ("region", "us-west-2"),
        ("pricing-region", "ap-south-1"),
        ("aws-requests-per-second", "2"),
        ("aws-timeout", "20s"),
        ("aws-max-attempts", "6"),
        ("price-cache", "/cache"),
        ("replicas", "auto"),
        ("max-replicas", "8"),
        ("gpu-memory-headroom", "1Gi"),
        ("instance-types", "g5.xlarge,g6.xlarge"),
        ("families", "g5,g6"),
        ("capacity-type", "spot"),
        ("device-plugin-configmap", "time-slicing-config"),
        ("device-plugin-namespace", "nvidia-device-plugin"),
        ("effort", "fast"),
        ("gap", "0.02"),
        ("plan-deadline", "500ms"),
        ("max-hourly-cost", "125.5"),
        ("max-nodes", "40"),
        ("namespaces", "ml,inference"),
        ("exclude-namespaces", "kube-system"),
        ("emission", "static"),
        ("karpenter-version", "1.8"),
        ("ami-family", "al2"),
        ("ami-version", "v20250101"),
        ("node-role", "KarpenterNodeRole-custom"),
        ("instance-profile", "KarpenterNodeInstanceProfile-custom"),
        ("configmap-name", "slicer-profiles"),
        ("configmap-namespace", "gpu-operator"),
        ("batch-idle-duration", "2s"),
        ("batch-max-duration", "20s"),
        ("resync-period", "2m"),
        ("slicing-timeout", "15m"),
        ("metrics-bind-address", "[::]:9090"),
        ("lease-name", "slicer-leader"),
        ("lease-namespace", "gpu-slicer-leases"),
        ("identity", "gpu-slicer/$(POD_NAME)"),
        ("writes-per-second", "5"),
        ("write-burst", "10"),
        ("max-pod-events", "50"),
        ("log-format", "json"),
        ("webhook-port", "8443"),
        ("webhook-bind-address", "::"),
        ("webhook-cert-dir", "/etc/gpu-slicer/webhook-tls"),
        ("repack-interval", "30m"),
        ("repack-min-saving", "0.1"),
        ("repack-min-pod-age", "10m"),
        ("repack-max-nodes-per-hour", "4"),
        ("repack-ready-timeout", "20m"),
    ];
    for (flag, value) in expect {
        assert_eq!(arg(&flags, flag, ctx), value, "{ctx}: --{flag}");
    }
    for flag in ["dry-run", "fail-requests-greater-than-one"] {
        assert_eq!(flags.get(flag), Some(&None), "{ctx}: --{flag}");
    }
    // Defaults: optional flags left out, booleans absent, derived names.
    let ctx = "ci/minimal-values.yaml";
    let flags = run_args(deployment(&rendered("minimal-values.yaml").docs, ctx), ctx);
    for flag in [
        "catalog",
        "daemonset-overhead",
        "region",
        "endpoint-url",
        "pricing-endpoint-url",
        "price-cache",
        "no-price-cache",
        "replicas",
        "gpu-memory-headroom",
        "instance-types",
        "families",
        "max-hourly-cost",
        "max-nodes",
        "namespaces",
        "exclude-namespaces",
        "node-role",
        "instance-profile",
        "fail-requests-greater-than-one",
        "dry-run",
        "identity",
    ] {
        assert!(
            !flags.contains_key(flag),
            "{ctx}: --{flag} must be left out by default"
        );
    }
    assert_eq!(arg(&flags, "live-prices", ctx), "auto");
    assert_eq!(arg(&flags, "effort", ctx), "full");
    assert_eq!(arg(&flags, "gap", ctx), "0.01");
    assert_eq!(arg(&flags, "plan-deadline", ctx), "1s");
    assert_eq!(arg(&flags, "lease-namespace", ctx), helm::NAMESPACE);
    assert_eq!(arg(&flags, "lease-name", ctx), "gs-gpu-slicer");
    assert_eq!(arg(&flags, "configmap-namespace", ctx), "kube-system");
    assert_eq!(arg(&flags, "metrics-bind-address", ctx), "0.0.0.0:8080");
    for (flag, value) in [
        ("repack-interval", "1h"),
        ("repack-min-saving", "0.05"),
        ("repack-min-pod-age", "5m"),
        ("repack-max-nodes-per-hour", "10"),
        ("repack-ready-timeout", "15m"),
    ] {
        assert_eq!(arg(&flags, flag, ctx), value, "{ctx}: --{flag} default");
    }
    // Whole dollars are written as integers (no 1e+06).
    let flags = run_args(
        deployment(
            &render_with(&["clusterName=x", "planner.maxHourlyCost=1000000"]),
            "cost",
        ),
        "cost",
    );
    assert_eq!(arg(&flags, "max-hourly-cost", "cost"), "1000000");
    let flags = run_args(
        deployment(
            &render_with(&["clusterName=x", "aws.livePrices=false"]),
            "bool",
        ),
        "bool",
    );
    assert_eq!(arg(&flags, "live-prices", "bool"), "false");
}

// ---------------------------------------------------------------------------------------
// Shape: replicas, PDB, affinity, probes, env, ServiceAccount, image
// ---------------------------------------------------------------------------------------

#[test]
fn deployment_pdb_affinity_probes_and_service_account() {
    for r in renderings() {
        let ctx = format!("ci/{}", r.file);
        let docs = &r.docs;
        let d = deployment(docs, &ctx);
        let labels = pod_labels(d);
        let selector = string_map(d.pointer("/spec/selector/matchLabels"));
        assert!(
            selects(&selector, &labels),
            "{ctx}: selector does not match the pod labels"
        );
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        assert!(replicas >= 2, "{ctx}: replicas {replicas}, want >= 2");

        // A PDB that selects these pods and keeps one up.
        let pdb = one(docs, "PodDisruptionBudget", &ctx);
        assert!(
            selects(
                &string_map(pdb.pointer("/spec/selector/matchLabels")),
                &labels
            ),
            "{ctx}: the PodDisruptionBudget does not select the controller pods"
        );
        let min = &pdb["spec"]["minAvailable"];
        let max = &pdb["spec"]["maxUnavailable"];
        assert!(
            (*min == json!(1) && max.is_null()) || (*max == json!(1) && min.is_null()),
            "{ctx}: PDB must have minAvailable 1 or maxUnavailable 1, got {min} / {max}"
        );

        // Anti-affinity (the chart's preferred default, or the user's).
        let anti = d.pointer("/spec/template/spec/affinity/podAntiAffinity");
        assert!(anti.is_some(), "{ctx}: no pod anti-affinity");

        // Probes on the metrics port, which is the one --metrics-bind-address opens.
        let c = controller_container(d, &ctx);
        let flags = run_args(d, &ctx);
        let bind = arg(&flags, "metrics-bind-address", &ctx);
        let port: i64 = bind
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("{ctx}: --metrics-bind-address={bind}"));
        let ports = c["ports"].as_array().expect("ports");
        assert!(
            ports
                .iter()
                .any(|p| str_at(p, "/name") == "http-metrics" && p["containerPort"] == json!(port)),
            "{ctx}: no container port http-metrics = {port}"
        );
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            assert_eq!(
                str_at(c, &format!("/{probe}/httpGet/path")),
                path,
                "{ctx}: {probe}"
            );
            assert_eq!(
                str_at(c, &format!("/{probe}/httpGet/port")),
                "http-metrics",
                "{ctx}: {probe} port"
            );
        }
        // The downward API gives the Lease namespace and identity.
        for (var, field) in [
            ("POD_NAMESPACE", "metadata.namespace"),
            ("POD_NAME", "metadata.name"),
        ] {
            let e = c["env"]
                .as_array()
                .and_then(|env| env.iter().find(|e| str_at(e, "/name") == var))
                .unwrap_or_else(|| panic!("{ctx}: no env {var}"));
            assert_eq!(
                str_at(e, "/valueFrom/fieldRef/fieldPath"),
                field,
                "{ctx}: {var}"
            );
        }
        // The ServiceAccount the pods use is the chart's.
        let sa = one(docs, "ServiceAccount", &ctx);
        assert_eq!(
            name(sa),
            str_at(d, "/spec/template/spec/serviceAccountName"),
            "{ctx}: serviceAccountName"
        );
        // Resources are set.
        assert!(
            c.pointer("/resources/requests/memory").is_some(),
            "{ctx}: memory request"
        );
        assert!(
            c.pointer("/resources/limits/memory").is_some(),
            "{ctx}: memory limit"
        );
    }

    // IRSA: the role ARN becomes the annotation, with the extra annotations.
    let docs = &rendered("irsa-live-prices-values.yaml").docs;
    let sa = one(docs, "ServiceAccount", "irsa");
    let ann = string_map(sa.pointer("/metadata/annotations"));
    assert_eq!(
        ann.get("eks.amazonaws.com/role-arn").map(String::as_str),
        Some("arn:aws:iam::123456789012:role/gpu-slicer"),
        "irsa: eks.amazonaws.com/role-arn"
    );
    assert_eq!(
        ann.get("eks.amazonaws.com/sts-regional-endpoints")
            .map(String::as_str),
        Some("true")
    );
    let minimal = &rendered("minimal-values.yaml").docs;
    assert!(
        one(minimal, "ServiceAccount", "minimal")
            .pointer("/metadata/annotations")
            .is_none(),
        "minimal: no ServiceAccount annotations without a role"
    );

    // Image: appVersion by default, the digest when given.
    let image = |docs: &[Value], ctx: &str| {
        str_at(controller_container(deployment(docs, ctx), ctx), "/image").to_string()
    };
    assert_eq!(
        image(minimal, "minimal"),
        format!("gpu-slicer:{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        image(&rendered("every-flag-values.yaml").docs, "every-flag"),
        "registry.example/platform/gpu-slicer@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );

    // One replica: no PDB (it would block every drain), and no anti-affinity needed but harmless.
    let single = render_with(&["clusterName=x", "replicaCount=1"]);
    assert!(
        docs_of(&single, "PodDisruptionBudget").is_empty(),
        "replicaCount=1: no PDB"
    );
    // maxUnavailable instead of minAvailable.
    let max = render_with(&["clusterName=x", "podDisruptionBudget.maxUnavailable=1"]);
    let pdb = one(&max, "PodDisruptionBudget", "maxUnavailable");
    assert_eq!(pdb["spec"]["maxUnavailable"], json!(1));
    assert!(pdb["spec"]["minAvailable"].is_null());
}

#[test]
fn service_monitor_and_network_policy() {
    for file in [
        "monitoring-networkpolicy-values.yaml",
        "every-flag-values.yaml",
    ] {
        let ctx = format!("ci/{file}");
        let docs = &rendered(file).docs;
        let d = deployment(docs, &ctx);
        let svc = metrics_service(docs, &ctx);
        let sm = one(docs, "ServiceMonitor", &ctx);
        // The ServiceMonitor does not select the webhook's Service.
        if let Some(wh) = webhook_service(docs) {
            let sel = string_map(sm.pointer("/spec/selector/matchLabels"));
            assert!(
                !selects(&sel, &string_map(wh.pointer("/metadata/labels"))),
                "{ctx}: the ServiceMonitor selects the webhook Service"
            );
        }

        // The Service selects the controller pods and targets the metrics port by name.
        assert!(
            selects(&string_map(svc.pointer("/spec/selector")), &pod_labels(d)),
            "{ctx}: the Service does not select the controller pods"
        );
        let svc_ports = svc["spec"]["ports"].as_array().expect("service ports");
        assert!(
            svc_ports
                .iter()
                .any(|p| str_at(p, "/name") == "http-metrics"
                    && str_at(p, "/targetPort") == "http-metrics"),
            "{ctx}: Service port http-metrics -> http-metrics"
        );

        // The ServiceMonitor by hand (kubernetes-validate has no schema for it).
        assert_eq!(
            str_at(sm, "/apiVersion"),
            "monitoring.coreos.com/v1",
            "{ctx}"
        );
        let sel = string_map(sm.pointer("/spec/selector/matchLabels"));
        assert!(
            selects(&sel, &string_map(svc.pointer("/metadata/labels"))),
            "{ctx}: ServiceMonitor selector {sel:?} does not match the Service's labels"
        );
        let svc_ns = str_at(svc, "/metadata/namespace");
        if str_at(sm, "/metadata/namespace") != svc_ns {
            assert!(
                strings(sm.pointer("/spec/namespaceSelector/matchNames"))
                    .contains(&svc_ns.to_string()),
                "{ctx}: ServiceMonitor in another namespace must select {svc_ns}"
            );
        }
        let endpoints = sm["spec"]["endpoints"].as_array().expect("endpoints");
        assert!(!endpoints.is_empty(), "{ctx}: no endpoints");
        for e in endpoints {
            let port = str_at(e, "/port");
            assert!(
                svc_ports.iter().any(|p| str_at(p, "/name") == port),
                "{ctx}: ServiceMonitor endpoint port {port:?} is not a Service port name"
            );
            assert_eq!(str_at(e, "/path"), "/metrics", "{ctx}");
            for key in e.as_object().expect("endpoint").keys() {
                assert!(
                    [
                        "port",
                        "path",
                        "scheme",
                        "interval",
                        "scrapeTimeout",
                        "relabelings",
                        "metricRelabelings"
                    ]
                    .contains(&key.as_str()),
                    "{ctx}: unexpected ServiceMonitor endpoint field {key}"
                );
            }
        }

        // The NetworkPolicy: the controller pods, ingress only to the metrics port.
        let np = one(docs, "NetworkPolicy", &ctx);
        check_network_policy(np, d, &ctx);
        let types = strings(np.pointer("/spec/policyTypes"));
        assert!(
            types.contains(&"Egress".to_string()),
            "{ctx}: egress is restricted here"
        );
        assert!(
            np["spec"]["egress"]
                .as_array()
                .is_some_and(|e| !e.is_empty()),
            "{ctx}: restricted egress needs rules"
        );
    }
    // Enabled with defaults: ingress restricted, egress open (no Egress policy type).
    let docs = render_with(&["clusterName=x", "networkPolicy.enabled=true"]);
    let np = one(&docs, "NetworkPolicy", "default networkPolicy");
    check_network_policy(np, deployment(&docs, "np"), "default networkPolicy");
    assert_eq!(
        strings(np.pointer("/spec/policyTypes")),
        vec!["Ingress".to_string()]
    );
    assert!(np["spec"].get("egress").is_none(), "egress open by default");
    // Off by default; no ServiceMonitor by default.
    let minimal = &rendered("minimal-values.yaml").docs;
    assert!(docs_of(minimal, "NetworkPolicy").is_empty());
    assert!(docs_of(minimal, "ServiceMonitor").is_empty());
}

fn check_network_policy(np: &Value, d: &Value, ctx: &str) {
    assert!(
        selects(
            &string_map(np.pointer("/spec/podSelector/matchLabels")),
            &pod_labels(d)
        ),
        "{ctx}: NetworkPolicy does not select the controller pods"
    );
    let c = controller_container(d, ctx);
    let metrics_port = c["ports"]
        .as_array()
        .and_then(|p| p.iter().find(|p| str_at(p, "/name") == "http-metrics"))
        .map(|p| p["containerPort"].clone())
        .expect("metrics port");
    let webhook_port = c["ports"]
        .as_array()
        .and_then(|p| p.iter().find(|p| str_at(p, "/name") == "https-webhook"))
        .map(|p| p["containerPort"].clone());
    let ingress = np["spec"]["ingress"].as_array().expect("ingress rules");
    assert!(!ingress.is_empty(), "{ctx}: no ingress rule");
    for rule in ingress {
        let ports = rule["ports"]
            .as_array()
            .expect("ingress rule without ports opens every port");
        for p in ports {
            assert!(
                p["port"] == metrics_port
                    || str_at(p, "/port") == "http-metrics"
                    || webhook_port.as_ref() == Some(&p["port"]),
                "{ctx}: ingress to a port other than the metrics and webhook ports: {p}"
            );
        }
    }
    assert!(strings(np.pointer("/spec/policyTypes")).contains(&"Ingress".to_string()));
}

// ---------------------------------------------------------------------------------------
// Hardening: priority, node affinity, extra pod settings, the ServiceMonitor's API gate
// ---------------------------------------------------------------------------------------

/// Node labels of the capacity the controller must never run on: Karpenter v1/v1beta1 and
/// v1alpha5 nodes, and gpu-slicer's own (`render::POOL_LABEL`, spelt out here so that the
/// chart's contract is read from the chart, not from the crate's current layout).
const PROVISIONED_NODE_LABELS: &[&str] = &[
    "karpenter.sh/nodepool",
    "karpenter.sh/provisioner-name",
    "gpu-slicer.io/pool",
];

fn pod_spec(d: &Value) -> &Value {
    &d["spec"]["template"]["spec"]
}

/// Whether a node with `labels` satisfies the pod's required node affinity (the
/// nodeSelectorTerms are ORed, their matchExpressions ANDed), as the scheduler decides;
/// true when there is none.
fn node_admitted(d: &Value, labels: &[(&str, &str)]) -> bool {
    let Some(terms) = pod_spec(d)
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    else {
        return true;
    };
    let label = |k: &str| labels.iter().find(|(l, _)| *l == k).map(|(_, v)| *v);
    terms.iter().any(|term| {
        assert!(
            term.get("matchFields").is_none(),
            "matchFields are not evaluated here: {term}"
        );
        term["matchExpressions"].as_array().is_some_and(|exprs| {
            exprs.iter().all(|e| {
                let key = str_at(e, "/key");
                let values = strings(e.get("values"));
                match (str_at(e, "/operator"), label(key)) {
                    ("Exists", l) => l.is_some(),
                    ("DoesNotExist", l) => l.is_none(),
                    ("In", Some(v)) => values.iter().any(|x| x == v),
                    ("NotIn", l) => l.is_none_or(|v| !values.iter().any(|x| x == v)),
                    ("In", None) => false,
                    (op, _) => panic!("operator {op} is not evaluated here: {e}"),
                }
            })
        })
    })
}

/// The pod anti-affinity terms (required ones, and the podAffinityTerm of preferred ones).
fn anti_affinity_terms(d: &Value) -> Vec<&Value> {
    let anti = &pod_spec(d)["affinity"]["podAntiAffinity"];
    let required = anti["requiredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .into_iter()
        .flatten();
    let preferred = anti["preferredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| &p["podAffinityTerm"]);
    required.chain(preferred).collect()
}

#[test]
fn priority_class_is_system_cluster_critical_by_default_and_removable() {
    let pc = |docs: &[Value], ctx: &str| {
        pod_spec(deployment(docs, ctx))
            .get("priorityClassName")
            .cloned()
    };
    let minimal = &rendered("minimal-values.yaml").docs;
    assert_eq!(
        pc(minimal, "minimal"),
        Some(json!("system-cluster-critical")),
        "the default priority class"
    );
    assert_eq!(
        pc(&rendered("every-flag-values.yaml").docs, "every-flag"),
        Some(json!("platform-critical")),
        "priorityClassName overrides the default"
    );
    let none = render_with(&["clusterName=x", "priorityClassName="]);
    assert_eq!(
        pc(&none, "empty"),
        None,
        "priorityClassName=\"\" must leave the field out"
    );
    // The field left out is still a valid Deployment.
    helm::kubernetes_validate(&[deployment(&none, "empty")]).expect("valid without a priority");
}

#[test]
fn node_affinity_keeps_the_controller_off_provisioned_nodes_and_is_overridable() {
    // Default: required, and every term excludes every provisioned-node label.
    let d = deployment(&rendered("minimal-values.yaml").docs, "minimal");
    let terms = pod_spec(d)
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
        .expect("minimal: a required node affinity by default");
    assert!(!terms.is_empty());
    for term in terms {
        for label in PROVISIONED_NODE_LABELS {
            assert!(
                term["matchExpressions"].as_array().is_some_and(|e| e
                    .iter()
                    .any(
                        |e| str_at(e, "/key") == *label && str_at(e, "/operator") == "DoesNotExist"
                    )),
                "minimal: the term {term} lets a node with {label} in"
            );
        }
    }
    assert!(node_admitted(
        d,
        &[("eks.amazonaws.com/nodegroup", "system")]
    ));
    for label in PROVISIONED_NODE_LABELS {
        assert!(
            !node_admitted(
                d,
                &[("eks.amazonaws.com/nodegroup", "system"), (label, "x")]
            ),
            "minimal: a node labelled {label} must not be admitted"
        );
    }
    // The default anti-affinity terms got the chart's selector labels: they select the pods.
    let anti = anti_affinity_terms(d);
    assert_eq!(anti.len(), 2, "minimal: preferred across nodes and zones");
    for t in &anti {
        assert!(
            selects(
                &string_map(t.pointer("/labelSelector/matchLabels")),
                &pod_labels(d)
            ),
            "minimal: anti-affinity term {t} does not select the controller pods"
        );
    }

    // Replaced (every-flag): the user's terms only, not merged with the default's.
    let ctx = "ci/every-flag-values.yaml";
    let d = deployment(&rendered("every-flag-values.yaml").docs, ctx);
    assert!(node_admitted(
        d,
        &[
            ("eks.amazonaws.com/nodegroup", "system"),
            ("karpenter.sh/nodepool", "x")
        ]
    ));
    assert!(!node_admitted(d, &[]), "{ctx}: the user's term is required");
    let anti = &pod_spec(d)["affinity"]["podAntiAffinity"];
    assert!(
        anti.get("preferredDuringSchedulingIgnoredDuringExecution")
            .is_none(),
        "{ctx}: the default preferred terms were set to null"
    );
    assert_eq!(
        anti["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"],
        json!({"matchLabels": {"app.kubernetes.io/name": "slicer"}}),
        "{ctx}: a term's own labelSelector is kept"
    );

    // Dropped: the node affinity alone, or the whole affinity.
    let no_node = render_with(&["clusterName=x", "affinity.nodeAffinity=null"]);
    let d = deployment(&no_node, "nodeAffinity=null");
    assert!(pod_spec(d).pointer("/affinity/nodeAffinity").is_none());
    assert!(node_admitted(d, &[("karpenter.sh/nodepool", "x")]));
    assert_eq!(anti_affinity_terms(d).len(), 2, "anti-affinity kept");
    let none = render_with(&["clusterName=x", "affinity=null"]);
    assert!(
        pod_spec(deployment(&none, "affinity=null"))
            .get("affinity")
            .is_none(),
        "affinity=null renders no affinity"
    );
    helm::kubernetes_validate(&[
        deployment(&no_node, "nodeAffinity=null"),
        deployment(&none, "affinity=null"),
    ])
    .expect("valid Deployments");
}

#[test]
fn node_affinity_check_bites() {
    let d = deployment(&rendered("minimal-values.yaml").docs, "minimal");
    let mut open = d.clone();
    open["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        .as_array_mut()
        .expect("terms")
        .push(json!({"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}));
    assert!(
        node_admitted(
            &open,
            &[
                ("kubernetes.io/os", "linux"),
                ("karpenter.sh/nodepool", "x")
            ]
        ),
        "an ORed term that lets Karpenter nodes in must be seen"
    );
}

#[test]
fn extra_volumes_mounts_env_from_and_strategy_are_rendered() {
    let ctx = "ci/every-flag-values.yaml";
    let d = deployment(&rendered("every-flag-values.yaml").docs, ctx);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}),
        "{ctx}: strategy"
    );
    let c = controller_container(d, ctx);
    assert_eq!(
        c["envFrom"],
        json!([{"configMapRef": {"name": "aws-env"}}]),
        "{ctx}: envFrom"
    );
    let volumes = pod_spec(d)["volumes"].as_array().expect("volumes");
    assert!(
        volumes
            .iter()
            .any(|v| *v == json!({"name": "aws-config", "configMap": {"name": "aws-config"}})),
        "{ctx}: extraVolumes in {volumes:?}"
    );
    let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
    assert!(
        mounts.iter().any(
            |m| *m == json!({"name": "aws-config", "mountPath": "/etc/aws", "readOnly": true})
        ),
        "{ctx}: extraVolumeMounts in {mounts:?}"
    );
    // The chart's own volumes are kept beside them.
    for own in ["catalog", "price-cache", "webhook-tls"] {
        assert!(
            volumes.iter().any(|v| str_at(v, "/name") == own),
            "{ctx}: volume {own} lost"
        );
    }

    // Defaults: none of them rendered.
    let ctx = "ci/minimal-values.yaml";
    let d = deployment(&rendered("minimal-values.yaml").docs, ctx);
    assert!(d["spec"].get("strategy").is_none(), "{ctx}: no strategy");
    assert!(
        controller_container(d, ctx).get("envFrom").is_none(),
        "{ctx}: no envFrom"
    );
    let names: Vec<&str> = pod_spec(d)["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| str_at(v, "/name"))
        .collect();
    assert_eq!(names, ["webhook-tls"], "{ctx}: only the chart's volumes");

    // Alone (no webhook, no catalog, no cache): the lists are still rendered, and valid.
    let docs = render_with(&[
        "clusterName=x",
        "webhook.enabled=false",
        "extraVolumes[0].name=scratch",
        "extraVolumes[0].emptyDir.medium=Memory",
        "extraVolumeMounts[0].name=scratch",
        "extraVolumeMounts[0].mountPath=/scratch",
        "envFrom[0].secretRef.name=creds",
        "strategy.type=Recreate",
    ]);
    let d = deployment(&docs, "extras alone");
    assert_eq!(
        pod_spec(d)["volumes"],
        json!([{"name": "scratch", "emptyDir": {"medium": "Memory"}}])
    );
    let c = controller_container(d, "extras alone");
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "scratch", "mountPath": "/scratch"}])
    );
    assert_eq!(c["envFrom"], json!([{"secretRef": {"name": "creds"}}]));
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    typed(d).expect("a k8s-openapi Deployment");
    helm::kubernetes_validate(&[d]).expect("a valid Deployment");
    assert!(restricted_violations(&d["spec"]["template"]).is_empty());
}

#[test]
fn service_monitor_needs_the_prometheus_operator_api() {
    let sets = ["clusterName=x", "serviceMonitor.enabled=true"];
    // Enabled, but the cluster does not serve the API: left out, not an error.
    assert!(
        docs_of(&render_with(&sets), "ServiceMonitor").is_empty(),
        "a ServiceMonitor rendered without {PROMETHEUS_OPERATOR_API}"
    );
    // Enabled and served: rendered.
    let docs = render_with_apis(&sets, &[PROMETHEUS_OPERATOR_API]);
    let sm = one(&docs, "ServiceMonitor", "enabled, API served");
    assert_eq!(str_at(sm, "/apiVersion"), PROMETHEUS_OPERATOR_API);
    // Served but not enabled: none.
    let docs = render_with_apis(&["clusterName=x"], &[PROMETHEUS_OPERATOR_API]);
    assert!(docs_of(&docs, "ServiceMonitor").is_empty());
    // The ci file that enables it renders one only with the API (renderings() passes it).
    let f = helm::chart_dir().join("ci/monitoring-networkpolicy-values.yaml");
    let without = helm::parse_docs(&helm::template(&[f.as_path()], &[]).expect("template"));
    assert!(docs_of(&without, "ServiceMonitor").is_empty());
    one(
        &rendered("monitoring-networkpolicy-values.yaml").docs,
        "ServiceMonitor",
        "ci/monitoring-networkpolicy-values.yaml with the API",
    );
}

// ---------------------------------------------------------------------------------------
// Documentation, metadata, image, IAM
// ---------------------------------------------------------------------------------------

/// Every value in values.yaml that the schema defines (not the contents of free-form
/// Kubernetes objects such as securityContext) has a comment right above it, and every
/// such value has a description in values.schema.json.
#[test]
fn every_value_is_documented() {
    let values =
        std::fs::read_to_string(helm::chart_dir().join("values.yaml")).expect("values.yaml");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(helm::chart_dir().join("values.schema.json")).expect("schema"),
    )
    .expect("values.schema.json is JSON");
    assert_eq!(
        str_at(&schema, "/$schema"),
        "http://json-schema.org/draft-07/schema#",
        "values.schema.json: JSON Schema draft-07"
    );
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut prev_comment = false;
    let mut undocumented = Vec::new();
    let mut seen = 0;
    for line in values.lines() {
        let t = line.trim_start();
        if t.is_empty() {
            prev_comment = false;
            continue;
        }
        if t.starts_with('#') {
            prev_comment = true;
            continue;
        }
        let indent = line.len() - t.len();
        let key = t
            .split_once(':')
            .map(|(k, _)| k)
            .filter(|k| !k.starts_with('-') && k.chars().all(|c| c.is_ascii_alphanumeric()));
        let Some(key) = key else {
            prev_comment = false;
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_string()));
        // Walk the schema; stop inside free-form objects.
        let mut node = &schema;
        let mut defined = true;
        for (_, k) in &stack {
            match node.pointer(&format!("/properties/{k}")) {
                Some(n) => node = n,
                None => {
                    defined = false;
                    break;
                }
            }
        }
        if defined {
            seen += 1;
            let is_group = node.get("properties").is_some();
            let path: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
            if !is_group && !prev_comment {
                undocumented.push(format!("{} (no comment above it)", path.join(".")));
            }
            if node
                .get("description")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                undocumented.push(format!("{} (no description in the schema)", path.join(".")));
            }
        }
        prev_comment = false;
    }
    assert!(seen > 80, "read only {seen} values from values.yaml");
    assert!(
        undocumented.is_empty(),
        "undocumented values:\n  {}",
        undocumented.join("\n  ")
    );
}

/// The documented values of values.yaml as dotted paths: each key whose line follows a
/// comment block that opens with `# --` (helm-docs' convention; every_value_is_documented
/// checks that every value has one), and the top-level keys.
fn documented_values(values: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut stack: Vec<(usize, String)> = Vec::new();
    // None outside a comment block; else whether the block opened with `# --`.
    let mut block: Option<bool> = None;
    let (mut documented, mut top) = (BTreeSet::new(), BTreeSet::new());
    for line in values.lines() {
        let t = line.trim_start();
        if t.is_empty() {
            block = None;
            continue;
        }
        if t.starts_with('#') {
            block.get_or_insert(t.starts_with("# --"));
            continue;
        }
        let is_doc = block.take() == Some(true);
        let indent = line.len() - t.len();
        let Some(key) = t
            .split_once(':')
            .map(|(k, _)| k)
            .filter(|k| k.chars().next().is_some_and(|c| c.is_ascii_alphabetic()))
            .filter(|k| k.chars().all(|c| c.is_ascii_alphanumeric()))
        else {
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_string()));
        if indent == 0 {
            top.insert(key.to_string());
        }
        if is_doc {
            let path: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
            documented.insert(path.join("."));
        }
    }
    (documented, top)
}

/// The values named in the first column of the tables under `## Values` of the chart's
/// README: the backquoted names outside parentheses, `.x` standing for a sibling of the
/// name before it (`a.b` / `.c` is `a.b` and `a.c`).
fn readme_table_values(readme: &str) -> BTreeSet<String> {
    let start = readme
        .find("\n## Values\n")
        .expect("the chart README has a `## Values` section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let is_name = |t: &str| {
        let t = t.strip_prefix('.').unwrap_or(t);
        t.split('.').all(|p| {
            p.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && p.chars().all(|c| c.is_ascii_alphanumeric())
        })
    };
    let mut names = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with('|')) {
        let cell = row.split('|').nth(1).unwrap_or_default().trim();
        if cell == "value" || cell.starts_with("---") {
            continue;
        }
        // Drop parenthesised remarks (`(empty: ...)`, `(list)`).
        let mut depth = 0usize;
        let outside: String = cell
            .chars()
            .filter(|c| {
                match c {
                    '(' => depth += 1,
                    ')' => depth = depth.saturating_sub(1),
                    _ => return depth == 0,
                }
                false
            })
            .collect();
        let mut last: Option<String> = None;
        for token in outside.split('`').skip(1).step_by(2) {
            if !is_name(token) {
                continue;
            }
            let full = match token.strip_prefix('.') {
                Some(rel) => {
                    let prev = last
                        .as_deref()
                        .unwrap_or_else(|| panic!("`{token}` with no name before it: {row}"));
                    match prev.rsplit_once('.') {
                        Some((parent, _)) => format!("{parent}.{rel}"),
                        None => rel.to_string(),
                    }
                }
                None => token.to_string(),
            };
            names.insert(full.clone());
            last = Some(full);
        }
    }
    names
}

/// The chart README's values tables and values.yaml name the same values.
#[test]
fn chart_readme_values_tables_match_values_yaml() {
    let values =
        std::fs::read_to_string(helm::chart_dir().join("values.yaml")).expect("values.yaml");
    let readme =
        std::fs::read_to_string(helm::chart_dir().join("README.md")).expect("chart README.md");
    let (documented, top) = documented_values(&values);
    let table = readme_table_values(&readme);
    assert!(
        documented.len() > 100 && table.len() > 100,
        "read only {} documented values and {} table entries",
        documented.len(),
        table.len()
    );
    let missing: Vec<&String> = documented.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "values.yaml documents values the chart README's tables do not list: {missing:?}"
    );
    let unknown: Vec<&String> = table.difference(&documented).collect();
    assert!(
        unknown.is_empty(),
        "the chart README's tables list values that values.yaml does not have: {unknown:?}"
    );
    for key in &top {
        assert!(
            table
                .iter()
                .any(|t| t == key || t.starts_with(&format!("{key}."))),
            "top-level value {key} is not in the chart README's tables"
        );
    }
    // The parsers bite: a value added to values.yaml, or a row naming none, is seen.
    let (more, _) = documented_values(&format!("{values}\n# -- New.\nnewValue: 1\n"));
    assert!(more.contains("newValue") && !table.contains("newValue"));
    let extra = readme.replace(
        "| `replicaCount` |",
        "| `replicaCount` / `.typo` / `image.tag` / `.nope` |",
    );
    let extra = readme_table_values(&extra);
    for bad in ["typo", "image.nope"] {
        assert!(extra.contains(bad), "{bad} not read from {extra:?}");
    }
}

/// The chart's README maps every flag of `gpu-slicer run` to its value.
#[test]
fn chart_readme_names_every_flag() {
    let readme =
        std::fs::read_to_string(helm::chart_dir().join("README.md")).expect("chart README.md");
    let missing: Vec<&String> = run_help_flags()
        .keys()
        .filter(|f| !readme.contains(&format!("`--{f}")))
        .collect();
    assert!(
        missing.is_empty(),
        "charts/gpu-slicer/README.md does not name {missing:?}"
    );
}

#[test]
fn chart_metadata() {
    let text = std::fs::read_to_string(helm::chart_dir().join("Chart.yaml")).expect("Chart.yaml");
    let chart: Value = serde_saphyr::from_str(&text).expect("Chart.yaml is YAML");
    assert_eq!(str_at(&chart, "/apiVersion"), "v2");
    assert_eq!(str_at(&chart, "/name"), "gpu-slicer");
    assert_eq!(str_at(&chart, "/version"), "0.1.0");
    assert_eq!(
        str_at(&chart, "/appVersion"),
        env!("CARGO_PKG_VERSION"),
        "appVersion = the crate's version"
    );
    assert_eq!(str_at(&chart, "/kubeVersion"), ">=1.25.0-0");
    // NOTES.txt renders (helm template --show-notes is not offline-stable; lint renders it).
    let notes =
        std::fs::read_to_string(helm::chart_dir().join("templates/NOTES.txt")).expect("NOTES.txt");
    for needle in ["/readyz", "/plan", "port-forward", "dryRun"] {
        assert!(notes.contains(needle), "NOTES.txt should mention {needle}");
    }
}

#[test]
fn dockerfile_builds_what_the_chart_runs() {
    let repo = helm::repo();
    let docker = std::fs::read_to_string(repo.join("Dockerfile")).expect("Dockerfile");
    let cargo = std::fs::read_to_string(repo.join("Cargo.toml")).expect("Cargo.toml");
    for needle in [
        "cargo build --release --locked --bin gpu-slicer",
        "ca-certificates",
        "USER 65532:65532",
        "ENTRYPOINT [\"/gpu-slicer\"]",
        "CMD [\"run\"]",
        // The image's copy is stripped (the release profile keeps line tables for the
        // benches, so stripping there is not an option).
        "ARG STRIP_FLAGS=--strip-all",
        "strip ${STRIP_FLAGS} /out/gpu-slicer",
    ] {
        assert!(docker.contains(needle), "Dockerfile lacks {needle:?}");
    }
    // The Rust image is at least the crate's rust-version.
    let rust_version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("rust-version in Cargo.toml");
    let image_version = docker
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_IMAGE=rust:"))
        .and_then(|v| v.split('-').next())
        .expect("ARG RUST_IMAGE=rust:X.Y-...");
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    assert!(
        parse(image_version) >= parse(&rust_version),
        "rust:{image_version} is older than rust-version {rust_version}"
    );
    // The dependency layer stubs every bench Cargo.toml names (cargo checks their paths).
    let benches: Vec<String> = cargo
        .split("[[bench]]")
        .skip(1)
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.trim().strip_prefix("name = "))
                .map(|n| n.trim_matches('"').to_string())
        })
        .collect();
    assert!(!benches.is_empty());
    let stub_line = docker
        .lines()
        .find(|l| l.contains("for b in "))
        .expect("the bench stub loop");
    for b in &benches {
        assert!(
            stub_line
                .split_whitespace()
                .any(|w| w == b || w == format!("{b};")),
            "Dockerfile's dependency layer does not stub bench {b}: {stub_line}"
        );
    }
    // The image's user is the one the chart runs as.
    let values = std::fs::read_to_string(helm::chart_dir().join("values.yaml")).expect("values");
    assert!(values.contains("runAsUser: 65532"));
    // The build context keeps what the build needs.
    let ignore = std::fs::read_to_string(repo.join(".dockerignore")).expect(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(ignored.contains(&"target/") && ignored.contains(&".git/"));
    for needed in [
        "src",
        "src/",
        "benches",
        "benches/",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        assert!(
            !ignored.contains(&needed),
            ".dockerignore excludes {needed}"
        );
    }
}

#[test]
fn iam_policy_allows_exactly_what_live_prices_call() {
    let path: PathBuf = helm::repo().join("examples/iam/gpu-slicer-policy.json");
    let policy: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("policy"))
        .expect("policy JSON");
    assert_eq!(str_at(&policy, "/Version"), "2012-10-17");
    let mut actions = BTreeSet::new();
    for s in policy["Statement"].as_array().expect("Statement") {
        assert_eq!(str_at(s, "/Effect"), "Allow");
        assert_eq!(
            s["Resource"],
            json!("*"),
            "these actions have no resource-level permissions"
        );
        assert!(s.get("NotAction").is_none() && s.get("NotResource").is_none());
        for a in strings(s.get("Action")) {
            assert!(!a.contains('*'), "wildcard action {a}");
            actions.insert(a);
        }
    }
    let expected: BTreeSet<String> = [
        "ec2:DescribeInstanceTypes",
        "ec2:DescribeInstanceTypeOfferings",
        "ec2:DescribeSpotPriceHistory",
        "pricing:GetProducts",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(actions, expected);
    // The project README lists the same actions.
    let readme = std::fs::read_to_string(helm::repo().join("README.md")).expect("README");
    for a in &expected {
        assert!(
            readme.contains(&format!("`{a}`")),
            "README.md does not name {a}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The admission webhook: configuration, Service, certificate (Helm's or cert-manager's)
// ---------------------------------------------------------------------------------------

fn mutating_webhook<'a>(docs: &'a [Value], ctx: &str) -> &'a Value {
    let mwc = one(docs, "MutatingWebhookConfiguration", ctx);
    let hooks = mwc["webhooks"].as_array().expect("webhooks");
    assert_eq!(hooks.len(), 1, "{ctx}: one webhook");
    &hooks[0]
}

/// The Secret the Deployment mounts at `--webhook-cert-dir`.
fn mounted_webhook_secret(d: &Value, ctx: &str) -> String {
    let flags = run_args(d, ctx);
    let dir = arg(&flags, "webhook-cert-dir", ctx);
    let c = controller_container(d, ctx);
    let mount = c["volumeMounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| str_at(m, "/mountPath") == dir))
        .unwrap_or_else(|| panic!("{ctx}: nothing mounted at --webhook-cert-dir={dir}"));
    assert_eq!(mount["readOnly"], json!(true), "{ctx}: read-only mount");
    let vol = str_at(mount, "/name");
    let volumes = d
        .pointer("/spec/template/spec/volumes")
        .and_then(Value::as_array)
        .expect("volumes");
    let v = volumes
        .iter()
        .find(|v| str_at(v, "/name") == vol)
        .expect("the mounted volume");
    let keys: BTreeSet<String> = v["secret"]["items"]
        .as_array()
        .map(|i| i.iter().map(|i| str_at(i, "/path").to_string()).collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        BTreeSet::from(["tls.crt".to_string(), "tls.key".to_string()]),
        "{ctx}: the volume holds tls.crt and tls.key"
    );
    str_at(v, "/secret/secretName").to_string()
}

/// The NotIn and In values of the webhook's namespaceSelector.
fn namespace_selector(hook: &Value) -> (BTreeSet<String>, Option<BTreeSet<String>>) {
    let exprs = hook["namespaceSelector"]["matchExpressions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let values = |op: &str| {
        exprs
            .iter()
            .find(|e| {
                str_at(e, "/operator") == op && str_at(e, "/key") == "kubernetes.io/metadata.name"
            })
            .map(|e| {
                strings(e.get("values"))
                    .into_iter()
                    .collect::<BTreeSet<_>>()
            })
    };
    (values("NotIn").unwrap_or_default(), values("In"))
}

#[test]
fn the_webhook_is_registered_for_gpu_pod_creates_and_served_by_the_pods() {
    for r in renderings()
        .iter()
        .filter(|r| r.file != "webhook-off-values.yaml")
    {
        let ctx = format!("ci/{}", r.file);
        let docs = &r.docs;
        let d = deployment(docs, &ctx);
        let hook = mutating_webhook(docs, &ctx);
        assert_eq!(hook["admissionReviewVersions"], json!(["v1"]), "{ctx}");
        assert_eq!(str_at(hook, "/sideEffects"), "None", "{ctx}");
        assert!(
            hook["timeoutSeconds"]
                .as_u64()
                .is_some_and(|t| (1..=30).contains(&t))
        );
        assert_eq!(
            hook["rules"],
            json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                "resources": ["pods"], "scope": "Namespaced"}]),
            "{ctx}: pod CREATE only"
        );
        // Only pods requesting nvidia.com/gpu (limits or requests, any container).
        let conds = hook["matchConditions"].as_array().expect("matchConditions");
        let expr = str_at(&conds[0], "/expression");
        for needle in [
            "'nvidia.com/gpu' in c.resources.limits",
            "'nvidia.com/gpu' in c.resources.requests",
            "object.spec.containers.exists",
            "object.spec.initContainers.exists",
        ] {
            assert!(expr.contains(needle), "{ctx}: {needle} in {expr}");
        }
        // The controller's own namespace and kube-system are never sent.
        let (not_in, _) = namespace_selector(hook);
        for ns in [helm::NAMESPACE, "kube-system"] {
            assert!(
                not_in.contains(ns),
                "{ctx}: {ns} must be excluded: {not_in:?}"
            );
        }
        // The Service: the webhook port of the controller pods, as the config calls it.
        let svc = webhook_service(docs).unwrap_or_else(|| panic!("{ctx}: no webhook Service"));
        let cc = &hook["clientConfig"]["service"];
        assert_eq!(str_at(cc, "/name"), name(svc), "{ctx}");
        assert_eq!(str_at(cc, "/namespace"), helm::NAMESPACE, "{ctx}");
        assert_eq!(str_at(cc, "/path"), "/mutate-pods", "{ctx}");
        let sp = &svc["spec"]["ports"][0];
        assert_eq!(
            cc["port"], sp["port"],
            "{ctx}: clientConfig port = Service port"
        );
        assert_eq!(str_at(sp, "/targetPort"), "https-webhook", "{ctx}");
        assert!(
            selects(&string_map(svc.pointer("/spec/selector")), &pod_labels(d)),
            "{ctx}: the webhook Service selects the controller pods"
        );
        let flags = run_args(d, &ctx);
        let port = controller_container(d, &ctx)["ports"]
            .as_array()
            .and_then(|p| p.iter().find(|p| str_at(p, "/name") == "https-webhook"))
            .map(|p| p["containerPort"].to_string())
            .unwrap_or_else(|| panic!("{ctx}: no https-webhook container port"));
        assert_eq!(arg(&flags, "webhook-port", &ctx), port, "{ctx}");
        // The certificate is mounted, never read through the API.
        let secret = mounted_webhook_secret(d, &ctx);
        assert!(!secret.is_empty(), "{ctx}");
        for role in docs
            .iter()
            .filter(|d| matches!(kind(d), "Role" | "ClusterRole"))
        {
            assert!(
                !role.to_string().contains("secrets"),
                "{ctx}: {} mentions secrets",
                describe(role)
            );
        }
    }

    // Defaults: Fail, and the Helm-generated Secret whose CA is the caBundle.
    let docs = &rendered("minimal-values.yaml").docs;
    let hook = mutating_webhook(docs, "minimal");
    assert_eq!(str_at(hook, "/failurePolicy"), "Fail");
    assert_eq!(str_at(hook, "/reinvocationPolicy"), "IfNeeded");
    assert!(hook.get("objectSelector").is_none());
    let secret = one(docs, "Secret", "minimal");
    assert_eq!(str_at(secret, "/type"), "kubernetes.io/tls");
    assert_eq!(
        name(secret),
        mounted_webhook_secret(deployment(docs, "minimal"), "minimal")
    );
    assert_eq!(
        hook["clientConfig"]["caBundle"], secret["data"]["ca.crt"],
        "caBundle = the Secret's CA"
    );
    let (not_in, only) = namespace_selector(hook);
    assert_eq!(
        not_in,
        BTreeSet::from([helm::NAMESPACE.to_string(), "kube-system".to_string()])
    );
    assert!(only.is_none(), "all other namespaces by default");

    // Values reach the configuration.
    let ctx = "ci/every-flag-values.yaml";
    let hook = mutating_webhook(&rendered("every-flag-values.yaml").docs, ctx);
    assert_eq!(str_at(hook, "/failurePolicy"), "Ignore", "{ctx}");
    assert_eq!(hook["timeoutSeconds"], json!(10), "{ctx}");
    assert_eq!(str_at(hook, "/reinvocationPolicy"), "Never", "{ctx}");
    assert_eq!(
        str_at(&hook["objectSelector"]["matchExpressions"][0], "/key"),
        "gpu-slicer.io/skip"
    );
    let (not_in, only) = namespace_selector(hook);
    assert!(
        not_in.contains("monitoring") && not_in.contains("gpu-slicer"),
        "{not_in:?}"
    );
    assert_eq!(
        only,
        Some(BTreeSet::from(["ml".to_string(), "inference".to_string()])),
        "{ctx}: planner.namespaces narrows the webhook too"
    );
    let docs = render_with(&["clusterName=x", "webhook.failurePolicy=Ignore"]);
    assert_eq!(
        str_at(mutating_webhook(&docs, "Ignore"), "/failurePolicy"),
        "Ignore"
    );
    let err = template_raw(&[], &["clusterName=x", "webhook.failurePolicy=Sometimes"])
        .expect_err("the schema refuses an unknown failurePolicy");
    assert!(err.contains("failurePolicy"), "{err}");

    // Before Kubernetes 1.28 there are no matchConditions: left out, not refused.
    let out = helm::helm(&[
        "template",
        "gs",
        &helm::chart_dir().display().to_string(),
        "--namespace",
        helm::NAMESPACE,
        "--kube-version",
        "1.27.0",
        "--set",
        "clusterName=x",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = helm::parse_docs(&String::from_utf8_lossy(&out.stdout));
    assert!(
        mutating_webhook(&docs, "1.27")
            .get("matchConditions")
            .is_none()
    );
}

#[test]
fn webhook_off_renders_no_webhook_objects() {
    let ctx = "ci/webhook-off-values.yaml";
    let docs = &rendered("webhook-off-values.yaml").docs;
    assert!(
        docs_of(docs, "MutatingWebhookConfiguration").is_empty(),
        "{ctx}"
    );
    assert!(docs_of(docs, "Secret").is_empty(), "{ctx}");
    assert!(webhook_service(docs).is_none(), "{ctx}");
    let d = deployment(docs, ctx);
    let flags = run_args(d, ctx);
    assert_eq!(arg(&flags, "webhook-port", ctx), "0");
    assert!(!flags.contains_key("webhook-cert-dir"), "{ctx}");
    let c = controller_container(d, ctx);
    assert!(
        !c.to_string().contains("https-webhook"),
        "{ctx}: no webhook port"
    );
    assert!(
        !d.to_string().contains("webhook-tls"),
        "{ctx}: no certificate volume"
    );
}

#[test]
fn cert_manager_issues_the_certificate_and_injects_the_ca() {
    // An existing ClusterIssuer.
    let ctx = "ci/cert-manager-webhook-values.yaml";
    let docs = &rendered("cert-manager-webhook-values.yaml").docs;
    assert!(
        docs_of(docs, "Secret").is_empty(),
        "{ctx}: cert-manager writes the Secret"
    );
    assert!(
        docs_of(docs, "Issuer").is_empty(),
        "{ctx}: the given issuer is used"
    );
    let cert = one(docs, "Certificate", ctx);
    assert_eq!(str_at(cert, "/apiVersion"), "cert-manager.io/v1");
    assert_eq!(
        str_at(cert, "/spec/secretName"),
        mounted_webhook_secret(deployment(docs, ctx), ctx),
        "{ctx}: the pods mount cert-manager's Secret"
    );
    assert_eq!(
        cert["spec"]["issuerRef"],
        json!({"name": "platform-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"})
    );
    let svc = webhook_service(docs).expect("webhook Service");
    let host = format!("{}.{}.svc", name(svc), helm::NAMESPACE);
    assert!(
        strings(cert.pointer("/spec/dnsNames")).contains(&host),
        "{ctx}: the certificate names {host}"
    );
    let mwc = one(docs, "MutatingWebhookConfiguration", ctx);
    assert_eq!(
        str_at(mwc, "/metadata/annotations/cert-manager.io~1inject-ca-from"),
        format!("{}/{}", helm::NAMESPACE, name(cert))
    );
    assert!(
        mutating_webhook(docs, ctx)["clientConfig"]
            .get("caBundle")
            .is_none(),
        "{ctx}: the CA injector fills caBundle"
    );

    // No issuer given: a self-signed CA chain in the release namespace.
    let docs = render_with(&["clusterName=x", "webhook.certManager.enabled=true"]);
    let issuers = docs_of(&docs, "Issuer");
    let certs = docs_of(&docs, "Certificate");
    assert_eq!(
        (issuers.len(), certs.len()),
        (2, 2),
        "self-signed + CA issuers, CA + serving"
    );
    let selfsigned = issuers
        .iter()
        .find(|i| i["spec"].get("selfSigned").is_some())
        .expect("a selfSigned Issuer");
    let ca_cert = certs
        .iter()
        .find(|c| c["spec"]["isCA"] == json!(true))
        .expect("a CA Certificate");
    assert_eq!(str_at(ca_cert, "/spec/issuerRef/name"), name(selfsigned));
    let ca_issuer = issuers
        .iter()
        .find(|i| str_at(i, "/spec/ca/secretName") == str_at(ca_cert, "/spec/secretName"))
        .expect("an Issuer of the CA's Secret");
    let serving = certs
        .iter()
        .find(|c| c["spec"]["isCA"] != json!(true))
        .expect("the serving Certificate");
    assert_eq!(str_at(serving, "/spec/issuerRef/name"), name(ca_issuer));
    assert_eq!(str_at(serving, "/spec/issuerRef/kind"), "Issuer");
}

/// Renders a copy of the chart in which `lookup` of the webhook Secret returns `existing`
/// (a Helm dict literal): `helm template` never reaches a cluster, so this is how the
/// reuse branch of gpu-slicer.webhookCerts is exercised.
fn render_with_existing_secret(existing: &str) -> Vec<Value> {
    let dir = helm::scratch("lookup");
    let copy = dir.join("gpu-slicer");
    let status = Command::new("cp")
        .args([
            "-r",
            &helm::chart_dir().display().to_string(),
            &copy.display().to_string(),
        ])
        .status()
        .expect("cp");
    assert!(status.success());
    let helpers = copy.join("templates/_helpers.tpl");
    let text = std::fs::read_to_string(&helpers).expect("helpers");
    let call = r#"(lookup "v1" "Secret" .Release.Namespace $secret)"#;
    assert_eq!(
        text.matches("lookup ").count(),
        1,
        "the chart has one lookup, of the webhook Secret"
    );
    assert!(text.contains(call), "_helpers.tpl no longer has {call}");
    std::fs::write(&helpers, text.replace(call, existing)).expect("write helpers");
    let out = helm::helm(&[
        "template",
        helm::RELEASE,
        &copy.display().to_string(),
        "--namespace",
        helm::NAMESPACE,
        "--kube-version",
        helm::KUBE_VERSION,
        "--set",
        "clusterName=x",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    helm::parse_docs(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn the_generated_certificate_is_kept_when_the_secret_exists() {
    let data = |docs: &[Value]| one(docs, "Secret", "lookup")["data"].clone();
    let ca_bundle =
        |docs: &[Value]| mutating_webhook(docs, "lookup")["clientConfig"]["caBundle"].clone();
    // Nothing to look up (helm template, a first install): a new CA every time, and the
    // caBundle of the same rendering is that CA.
    let a = render_with(&["clusterName=x"]);
    let b = render_with(&["clusterName=x"]);
    assert_ne!(
        data(&a)["ca.crt"],
        data(&b)["ca.crt"],
        "fresh certificates per install"
    );
    assert_eq!(ca_bundle(&a), data(&a)["ca.crt"]);
    assert_eq!(ca_bundle(&b), data(&b)["ca.crt"]);

    // An upgrade finds the Secret: its certificate and CA are reused, byte for byte.
    let old = data(&a);
    let existing = format!(
        r#"(dict "data" (dict "ca.crt" {:?} "tls.crt" {:?} "tls.key" {:?}))"#,
        str_at(&old, "/ca.crt"),
        str_at(&old, "/tls.crt"),
        str_at(&old, "/tls.key"),
    );
    for _ in 0..2 {
        let docs = render_with_existing_secret(&existing);
        assert_eq!(data(&docs), old, "the existing Secret's data is kept");
        assert_eq!(
            ca_bundle(&docs),
            old["ca.crt"],
            "and the caBundle stays its CA"
        );
    }
    // A Secret without ca.crt (e.g. written by hand) is replaced by a fresh pair.
    let partial = format!(
        r#"(dict "data" (dict "tls.crt" {:?} "tls.key" {:?}))"#,
        str_at(&old, "/tls.crt"),
        str_at(&old, "/tls.key"),
    );
    let docs = render_with_existing_secret(&partial);
    assert_ne!(data(&docs)["tls.crt"], old["tls.crt"]);
    assert_eq!(ca_bundle(&docs), data(&docs)["ca.crt"]);
}
