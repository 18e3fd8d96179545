//! Helpers of tests/chart.rs: the helm and kubernetes-validate binaries that
//! `.ci/tools.sh` installs, `helm lint` / `helm template` of charts/gpu-slicer, and the
//! rendered documents. Nothing here talks to a network: helm renders offline and
//! kubernetes-validate carries its schemas.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// The Kubernetes version the chart is rendered and validated for.
pub const KUBE_VERSION: &str = "1.33.0";

/// The release name and namespace of every rendering.
pub const RELEASE: &str = "gs";
pub const NAMESPACE: &str = "gpu-slicer";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart_dir() -> PathBuf {
    repo().join("charts/gpu-slicer")
}

/// Where `.ci/tools.sh` installs (`GPU_SLICER_TOOLS`, else target/tools).
pub fn tools_dir() -> PathBuf {
    std::env::var_os("GPU_SLICER_TOOLS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/tools"))
}

fn tool(env: &str, default: PathBuf) -> PathBuf {
    let path = std::env::var_os(env)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or(default);
    assert!(
        path.is_file(),
        "{} not found ({env} unset or wrong): run `bash .ci/tools.sh` to install helm and \
         kubernetes-validate into target/tools, or set {env}",
        path.display()
    );
    path
}

/// helm 4, from `HELM` or `<tools>/kubectl-layer/helm/helm`.
pub fn helm_bin() -> PathBuf {
    tool("HELM", tools_dir().join("kubectl-layer/helm/helm"))
}

/// kubernetes-validate, from `KUBERNETES_VALIDATE` or its venv under the tools dir.
pub fn kubernetes_validate_bin() -> PathBuf {
    tool(
        "KUBERNETES_VALIDATE",
        tools_dir().join("kubevalidate/bin/kubernetes-validate"),
    )
}

/// Runs helm with its cache, config and data dirs under the tools dir (never $HOME).
pub fn helm(args: &[&str]) -> Output {
    let home = tools_dir().join("helm-home");
    let mut cmd = Command::new(helm_bin());
    cmd.args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        // Nothing may look for a cluster.
        .env("KUBECONFIG", "/nonexistent/kubeconfig");
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", helm_bin().display()))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `-f FILE` for each values file and `--set` for each setting.
fn value_args(values: &[&Path], sets: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    for f in values {
        args.push("-f".to_string());
        args.push(f.display().to_string());
    }
    for s in sets {
        args.push("--set".to_string());
        args.push((*s).to_string());
    }
    args
}

/// `helm lint --strict`: Ok(output) when it passes, Err(output) when not.
pub fn lint(values: &[&Path], sets: &[&str]) -> Result<String, String> {
    let chart = chart_dir().display().to_string();
    let mut args = vec![
        "lint".to_string(),
        "--strict".to_string(),
        "--kube-version".to_string(),
        KUBE_VERSION.to_string(),
        chart,
    ];
    args.extend(value_args(values, sets));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = helm(&argv);
    if out.status.success() {
        Ok(text(&out))
    } else {
        Err(text(&out))
    }
}

/// `helm template` of the chart: Ok(the multi-document YAML) or Err(helm's message).
pub fn template(values: &[&Path], sets: &[&str]) -> Result<String, String> {
    template_with_apis(values, sets, &[])
}

/// [`template`] as if the cluster served `api_versions` too (`--api-versions`, e.g.
/// `monitoring.coreos.com/v1`), for objects gated on `.Capabilities.APIVersions`.
pub fn template_with_apis(
    values: &[&Path],
    sets: &[&str],
    api_versions: &[&str],
) -> Result<String, String> {
    let chart = chart_dir().display().to_string();
    let mut args = vec![
        "template".to_string(),
        RELEASE.to_string(),
        chart,
        "--namespace".to_string(),
        NAMESPACE.to_string(),
        "--kube-version".to_string(),
        KUBE_VERSION.to_string(),
    ];
    for api in api_versions {
        args.push("--api-versions".to_string());
        args.push((*api).to_string());
    }
    args.extend(value_args(values, sets));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = helm(&argv);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(text(&out))
    }
}

/// The documents of helm's output (empty documents dropped).
pub fn parse_docs(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml)
        .unwrap_or_else(|e| panic!("helm's output is not YAML: {e}\n{yaml}"));
    docs.into_iter()
        .filter(|d| !d.is_null())
        .inspect(|d| {
            assert!(d.is_object(), "a rendered document is not an object: {d}");
        })
        .collect()
}

/// The chart's `ci/*-values.yaml` files, sorted.
pub fn ci_values_files() -> Vec<PathBuf> {
    let dir = chart_dir().join("ci");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("-values.yaml"))
        })
        .collect();
    files.sort();
    files
}

pub fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub fn kind(doc: &Value) -> &str {
    str_at(doc, "/kind")
}

pub fn name(doc: &Value) -> &str {
    str_at(doc, "/metadata/name")
}

/// `Kind/namespace/name` of a document, for messages.
pub fn describe(doc: &Value) -> String {
    format!(
        "{} {}/{}",
        kind(doc),
        str_at(doc, "/metadata/namespace"),
        name(doc)
    )
}

/// A fresh scratch directory under the system temp dir.
pub fn scratch(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "gpu-slicer-chart-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    d
}

/// Runs `kubernetes-validate --strict -k <KUBE_VERSION>` once over all `docs` (each written
/// to its own file). Ok when every one passed; Err with the tool's report otherwise.
pub fn kubernetes_validate(docs: &[&Value]) -> Result<(), String> {
    let dir = scratch("kv");
    let mut files = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let f = dir.join(format!("{i:02}-{}-{}.json", kind(d), name(d)));
        std::fs::write(&f, serde_json::to_string_pretty(d).expect("JSON"))
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        files.push(f);
    }
    let version = KUBE_VERSION.to_string();
    let out = Command::new(kubernetes_validate_bin())
        .args(["--strict", "--no-warn", "-k", &version])
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubernetes-validate: {e}"));
    let report = text(&out);
    let _ = std::fs::remove_dir_all(&dir);
    // Every document must have been checked against a schema, not skipped.
    let passed = report.lines().filter(|l| l.contains(" passed ")).count();
    if out.status.success() && passed == docs.len() {
        Ok(())
    } else {
        Err(format!(
            "kubernetes-validate (exit {:?}, {passed}/{} passed):\n{report}",
            out.status.code(),
            docs.len()
        ))
    }
}
