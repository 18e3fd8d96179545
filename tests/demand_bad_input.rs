//! Malformed inputs: each error's exact message, and no panic on any truncation.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gpu_slicer::demand::{Inputs, LoadOptions, load_str};

const MIXED: &str = include_str!("fixtures/demand/mixed.yaml");

fn load(text: &str) -> Result<Inputs, String> {
    let mut inputs = Inputs::default();
    load_str(&mut inputs, "bad.yaml", text, &LoadOptions::default()).map_err(|e| e.to_string())?;
    Ok(inputs)
}

/// A GPU pod with `resources` and annotations spliced in.
fn pod(annotations: &str, resources: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: p
  annotations: {{{annotations}}}
spec:
  containers:
  - name: c
    resources: {resources}
"
    )
}

fn gpu_pod(annotations: &str) -> String {
    pod(annotations, "{limits: {nvidia.com/gpu: 1}}")
}

#[test]
fn malformed_inputs() {
    let affinity = "apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: karpenter.sh/capacity-type, operator: Equals, values: [spot]}
  containers:
  - name: c
    resources: {limits: {nvidia.com/gpu: 1}}
";
    let deployment = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ml}
spec:
  replicas: 2
  template:
    metadata:
      annotations: {gpu-slicer.io/gpu-memory: lots}
    spec:
      containers:
      - name: c
        resources: {limits: {nvidia.com/gpu: 1}}
";
    let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ok"},
   "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}},
  {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad", "namespace": "ml"},
   "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "-1"}}}]}}
]}"#;
    let configmap = "apiVersion: v1
kind: ConfigMap
metadata: {name: nvidia-device-plugin, namespace: kube-system}
data:
  any: |-
    version: v1
    sharing:
      timeSlicing:
        resources:
        - name: nvidia.com/gpu
          replicas: 4
";
    let two_configmaps = format!("{configmap}---\n{configmap}");

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "broken YAML",
            format!("{}---\nkind: Pod\nmetadata: {{name: p\n", gpu_pod("")),
            "bad.yaml: document 2: invalid YAML at line 12, column 11: unclosed bracket '{'",
        ),
        (
            "broken JSON",
            "{\"apiVersion\": \"v1\",\n \"kind\": [}".to_string(),
            "bad.yaml: document 1: invalid JSON at line 2, column 11: expected value",
        ),
        (
            "negative cpu",
            pod("", "{requests: {cpu: -1}, limits: {nvidia.com/gpu: 1}}"),
            r#"bad.yaml: document 1 (Pod default/p): field `spec.containers[0].resources.requests.cpu`: invalid quantity "-1": must not be negative"#,
        ),
        (
            "absurd memory",
            pod("", "{requests: {memory: \"1e30\"}, limits: {nvidia.com/gpu: 1}}"),
            r#"bad.yaml: document 1 (Pod default/p): field `spec.containers[0].resources.requests.memory`: invalid quantity "1e30": out of range"#,
        ),
        (
            "memory above 1Pi",
            pod("", "{limits: {memory: 2Pi, nvidia.com/gpu: 1}}"),
            r#"bad.yaml: document 1 (Pod default/p): field `spec.containers[0].resources.limits.memory`: invalid quantity "2Pi": more than 1Pi of memory"#,
        ),
        (
            "cpu above 100000 cores",
            pod("", "{requests: {cpu: 1e6}, limits: {nvidia.com/gpu: 1}}"),
            r#"bad.yaml: document 1 (Pod default/p): field `spec.containers[0].resources.requests.cpu`: invalid quantity "1000000.0": more than 100000 cores"#,
        ),
        (
            "gpu not a number",
            pod("", "{limits: {nvidia.com/gpu: \"abc\"}}"),
            r#"bad.yaml: document 1 (Pod default/p): field `spec.containers[0].resources.limits["nvidia.com/gpu"]`: invalid quantity "abc": no number"#,
        ),
        (
            "fractional gpu",
            pod("", "{limits: {nvidia.com/gpu: 0.5}}"),
            r#"bad.yaml: document 1 (Pod default/p): field `spec.containers[0].resources.limits["nvidia.com/gpu"]`: invalid quantity "0.5": must be a whole number"#,
        ),
        (
            "too many gpus",
            pod("", "{limits: {nvidia.com/gpu: 65}}"),
            r#"bad.yaml: document 1 (Pod default/p): field `spec.containers[0].resources.limits["nvidia.com/gpu"]`: invalid quantity "65": more than 64 GPUs per pod"#,
        ),
        (
            "gpu request differs from limit",
            pod("", "{requests: {nvidia.com/gpu: 2}, limits: {nvidia.com/gpu: 1}}"),
            r#"bad.yaml: document 1 (Pod default/p): field `spec.containers[0].resources.requests["nvidia.com/gpu"]`: must equal the limit for nvidia.com/gpu (request 2, limit 1)"#,
        ),
        (
            "gpu request without limit",
            pod("", "{requests: {nvidia.com/gpu: 1}}"),
            r#"bad.yaml: document 1 (Pod default/p): field `spec.containers[0].resources.requests["nvidia.com/gpu"]`: nvidia.com/gpu is requested (1) without a limit; extended resources must be set in limits"#,
        ),
        (
            "gpu-share above 1",
            gpu_pod("gpu-slicer.io/gpu-share: 2"),
            r#"bad.yaml: document 1 (Pod default/p): field `metadata.annotations["gpu-slicer.io/gpu-share"]`: must be at most 1 (a whole GPU), got "2""#,
        ),
        (
            "negative gpu-memory",
            gpu_pod("gpu-slicer.io/gpu-memory: -1Gi"),
            r#"bad.yaml: document 1 (Pod default/p): field `metadata.annotations["gpu-slicer.io/gpu-memory"]`: must be positive, got "-1Gi""#,
        ),
        (
            "sharing value",
            gpu_pod("gpu-slicer.io/sharing: sometimes"),
            r#"bad.yaml: document 1 (Pod default/p): field `metadata.annotations["gpu-slicer.io/sharing"]`: must be "shared" or "exclusive", got "sometimes""#,
        ),
        (
            "gpu-share on an exclusive pod",
            gpu_pod("gpu-slicer.io/sharing: exclusive, gpu-slicer.io/gpu-share: 0.5"),
            r#"bad.yaml: document 1 (Pod default/p): field `metadata.annotations["gpu-slicer.io/gpu-share"]`: not allowed on an exclusive pod, which gets whole GPUs"#,
        ),
        (
            "unknown gpu-slicer.io annotation",
            gpu_pod("gpu-slicer.io/foo: bar"),
            r#"bad.yaml: document 1 (Pod default/p): field `metadata.annotations["gpu-slicer.io/foo"]`: unknown gpu-slicer.io annotation on a pod (known: gpu-slicer.io/gpu-memory, gpu-slicer.io/gpu-memory-context, gpu-slicer.io/gpu-share, gpu-slicer.io/sharing, gpu-slicer.io/isolation)"#,
        ),
        (
            "bad affinity operator",
            affinity.to_string(),
            r#"bad.yaml: document 1 (Pod default/p): field `spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator`: unknown operator "Equals" (expected In, NotIn, Exists, DoesNotExist, Gt or Lt)"#,
        ),
        (
            "workload template annotation",
            deployment.to_string(),
            r#"bad.yaml: document 1 (Deployment ml/web): field `spec.template.metadata.annotations["gpu-slicer.io/gpu-memory"]`: must be a Kubernetes quantity such as 4Gi or 512Mi, got "lots" (no number)"#,
        ),
        ("empty input", String::new(), "bad.yaml: no Kubernetes objects found"),
        (
            "only empty documents",
            "# nothing here\n---\n---\n".to_string(),
            "bad.yaml: no Kubernetes objects found",
        ),
        (
            "List with a bad item",
            list.to_string(),
            r#"bad.yaml: document 1 (Pod ml/bad): field `items[1].spec.containers[0].resources.limits["nvidia.com/gpu"]`: invalid quantity "-1": must not be negative"#,
        ),
        (
            "missing kind",
            "apiVersion: v1\nmetadata: {name: p}\n".to_string(),
            "bad.yaml: document 1: field `kind`: required field is missing",
        ),
        (
            "missing apiVersion",
            "kind: Deployment\nmetadata: {name: web}\n".to_string(),
            "bad.yaml: document 1 (Deployment default/web): field `apiVersion`: required field is missing",
        ),
        (
            "missing name",
            "apiVersion: v1\nkind: Pod\nmetadata: {namespace: ml}\nspec: {}\n".to_string(),
            "bad.yaml: document 1 (Pod): field `metadata.name`: required field is missing",
        ),
        (
            "not an object",
            "just a string\n".to_string(),
            "bad.yaml: document 1: expected a Kubernetes object (a mapping), found the string \"just a string\"",
        ),
        (
            "negative replicas",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: -2}\n"
                .to_string(),
            "bad.yaml: document 1 (Deployment default/web): field `spec.replicas`: must not be negative, got -2",
        ),
        (
            "absurd replicas",
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nspec: {replicas: 1000000000, template: {spec: {containers: [{name: c}]}}}\n"
                .to_string(),
            "bad.yaml: document 1 (StatefulSet default/s): field `spec.replicas`: 1000000000 pods is more than the limit of 100000 per workload",
        ),
        (
            "no containers",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n".to_string(),
            "bad.yaml: document 1 (Pod default/p): field `spec.containers`: a pod needs at least one container",
        ),
        (
            "bad toleration",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  tolerations: [{key: a, operator: Exists, value: b}]\n  containers: [{name: c, resources: {limits: {nvidia.com/gpu: 1}}}]\n".to_string(),
            "bad.yaml: document 1 (Pod default/p): field `spec.tolerations[0].value`: must be empty when operator is Exists",
        ),
        (
            "second device-plugin ConfigMap",
            two_configmaps,
            r#"bad.yaml: document 2 (ConfigMap kube-system/nvidia-device-plugin): a second device-plugin ConfigMap named "nvidia-device-plugin"; give only one"#,
        ),
    ];

    let mut failures = Vec::new();
    for (name, input, want) in &cases {
        match load(input) {
            Ok(i) => failures.push(format!("{name}: accepted ({} items)", i.items.len())),
            Err(got) if got != *want => {
                failures.push(format!("{name}:\n   got: {got}\n  want: {want}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn no_panic_on_truncations() {
    let mut ok = 0;
    for (i, _) in MIXED.char_indices() {
        if load(&MIXED[..i]).is_ok() {
            ok += 1;
        }
    }
    assert!(ok > 0);
    assert!(load(MIXED).is_ok());
}

#[test]
fn no_panic_on_dropped_or_mangled_lines() {
    let lines: Vec<&str> = MIXED.lines().collect();
    for skip in 0..lines.len() {
        let dropped: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, l)| *l)
            .collect();
        let _ = load(&dropped.join("\n"));
        for junk in [
            "- ", "{", "]", "x: [", "  ", "\t", "'", "&a", "*a", "!!int", "null", "-1",
        ] {
            let mut mangled = lines.clone();
            let replaced = format!("{junk}{}", lines[skip]);
            mangled[skip] = &replaced;
            let _ = load(&mangled.join("\n"));
        }
    }
    // The same through JSON.
    let json = include_str!("fixtures/demand/list.json");
    for (i, _) in json.char_indices() {
        let _ = load(&json[..i]);
    }
}

#[test]
fn no_panic_on_hostile_inputs() {
    let laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
";
    let hostile = [
        "[".repeat(100_000),
        "{\"a\":".repeat(100_000),
        "a:\n".to_string() + &"  ".repeat(1000) + "b: 1",
        "- ".repeat(10_000),
        laughs.to_string(),
        "\u{feff}\u{0}\u{7f}\n---\n\u{1F600}: x".to_string(),
        "---\n".repeat(10_000),
        "kind: List\napiVersion: v1\nitems: [[], 1, null, {kind: List, items: []}]\n".to_string(),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{resources: {limits: {nvidia.com/gpu: 1e308}}}]}\n".to_string(),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{resources: {limits: {nvidia.com/gpu: .inf}}}]}\n".to_string(),
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec: {parallelism: 18446744073709551615}\n".to_string(),
    ];
    for text in &hostile {
        let _ = load(text);
    }
}
