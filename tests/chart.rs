//! The Helm chart (charts/gpu-slicer), the image and the IAM policy, checked without a
//! cluster: `helm lint --strict` and `helm template` with every `ci/*-values.yaml`, every
//! rendered object against the Kubernetes 1.33 schemas (kubernetes-validate) and the
//! k8s-openapi types, RBAC against the list, the restricted Pod Security Standard,
//! and the Deployment's arguments against `gpu-slicer run --help` and the binary itself.
//!
//! Needs helm and kubernetes-validate: `bash .ci/tools.sh` installs them into target/tools
//! (or set HELM and KUBERNETES_VALIDATE).

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "cli")]

#[path = "support/helm.rs"]
mod helm;
#[path = "support/permissions.rs"]
mod permissions;

// The tests, by concern; the renderings and helpers they share are below.
#[path = "chart/docs.rs"]
mod docs;
#[path = "chart/pod.rs"]
mod pod;
#[path = "chart/rbac.rs"]
mod rbac;
#[path = "chart/validation.rs"]
mod validation;
#[path = "chart/webhook.rs"]
mod webhook;
#[path = "chart/workload.rs"]
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use helm::{describe, kind, name, str_at};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Lists shared by the tests
// ---------------------------------------------------------------------------------------

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

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or("<not a string>").to_string())
                .collect()
        })
        .unwrap_or_default()
}

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
