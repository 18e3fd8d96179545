//! Binary-level tests of `gpu-slicer admit`: the text, YAML and JSON outputs on the mixed
//! example, that the admitted manifests plan exactly like the originals, exit codes and
//! error messages.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/cli.rs"]
mod cli_support;

use cli_support::{root, run, run_stdin};
use serde_json::Value;

#[test]
fn text_names_every_gpu_workload_and_what_is_added() {
    let (code, out, err) = run(&["admit", "-f", &root("examples/mixed")]);
    assert_eq!(code, 0, "{err}");
    // 6 GiB and a quarter of a GPU; 2 GiB; 9 GiB; the exclusive 20 GiB job.
    assert!(
        out.contains("Deployment ml/chat-small: patched: adds to every required node-affinity term: gpu-slicer.io/slice-gpu-memory-mib Gt 6143 AND gpu-slicer.io/slice-share-milli Gt 249"),
        "{out}"
    );
    assert!(out.contains("slice-gpu-memory-mib Gt 2047"), "{out}");
    assert!(out.contains("slice-gpu-memory-mib Gt 9215"), "{out}");
    assert!(out.contains("gpu-slicer.io/replicas In 1"), "{out}");
    assert_eq!(out.lines().count(), 4, "{out}");
}

#[test]
fn admitted_yaml_plans_like_the_original_and_is_admitted_again_unchanged() {
    let (code, yaml, err) = run(&["admit", "-f", &root("examples/mixed"), "-o", "yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(yaml.contains("requiredDuringSchedulingIgnoredDuringExecution"));
    let plan = |args: &[&str], stdin: Option<&str>| {
        let (code, out, err) = match stdin {
            Some(text) => run_stdin(args, text),
            None => run(args),
        };
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&out).expect("plan JSON");
        v["summary"]["hourlyCost"].as_f64().expect("cost")
    };
    let before = plan(&["plan", "-f", &root("examples/mixed"), "-o", "json"], None);
    let after = plan(&["plan", "-f", "-", "-o", "json"], Some(&yaml));
    assert!((before - after).abs() < 1e-9, "{before} vs {after}");
    // The whisper Deployment's own affinity (A10G/L4 only) is kept beside the new term.
    assert!(yaml.contains("a10g"), "{yaml}");
    let (code, again, err) = run_stdin(&["admit", "-f", "-"], &yaml);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        again
            .matches("unchanged: its affinity already has the slice terms")
            .count(),
        4,
        "{again}"
    );
}

#[test]
fn json_records_carry_the_patch() {
    let (code, out, err) = run(&["admit", "-f", &root("examples/mixed"), "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    let records = v.as_array().expect("array");
    assert_eq!(records.len(), 4);
    let chat = &records[0];
    assert_eq!(chat["object"], "Deployment ml/chat-small");
    assert_eq!(chat["verdict"], "patched");
    assert_eq!(chat["patch"][0]["path"], "/spec/template/spec/affinity");
}

#[test]
fn a_rejected_pod_fails_the_command_with_the_webhooks_message() {
    let pod = r#"
apiVersion: v1
kind: Pod
metadata:
  name: bad
  namespace: ml
  annotations: {gpu-slicer.io/gpu-share: "1.5"}
spec:
  containers:
  - name: c
    image: i
    resources: {limits: {nvidia.com/gpu: 1}}
"#;
    let (code, out, err) = run_stdin(&["admit", "-f", "-"], pod);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("Pod ml/bad: rejected: pod ml/bad: field `metadata.annotations[\"gpu-slicer.io/gpu-share\"]`"), "{out}");
    assert!(
        err.contains("1 pod(s) or workload(s) would be rejected"),
        "{err}"
    );
    // Outside the served namespaces it is not looked at.
    let (code, out, err) = run_stdin(&["admit", "-f", "-", "--namespaces", "prod"], pod);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("unchanged: its namespace is not served"),
        "{out}"
    );
}

#[test]
fn more_slices_than_the_device_plugin_grants_are_refused_with_the_flag() {
    let pod = r#"{"apiVersion": "v1", "kind": "Pod",
      "metadata": {"name": "two", "namespace": "ml", "annotations": {"gpu-slicer.io/sharing": "shared"}},
      "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/gpu": 2}}}]}}"#;
    let (code, out, _) = run_stdin(&["admit", "-f", "-"], pod);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = run_stdin(
        &["admit", "-f", "-", "--fail-requests-greater-than-one"],
        pod,
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("failRequestsGreaterThanOne"), "{out}");
}

#[test]
fn unreadable_input_names_the_source() {
    let (code, _, err) = run(&["admit", "-f", "/nonexistent/x.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/x.yaml"), "{err}");
    let (code, _, err) = run_stdin(&["admit", "-f", "-"], "a: [unclosed\n");
    assert_eq!(code, 1);
    assert!(err.contains("<stdin>"), "{err}");
    let (code, _, _) = run(&["admit"]);
    assert_eq!(code, 2);
}

/// A LeaderWorkerSet is judged by both its templates: each gets its own verdict and, in
/// `-o yaml`, its own affinity; admitting the output again changes nothing.
#[test]
fn a_leader_worker_set_is_judged_by_its_leader_and_worker_templates() {
    let lws = r#"
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {name: big-llm, namespace: ml}
spec:
  replicas: 2
  leaderWorkerTemplate:
    size: 3
    leaderTemplate:
      metadata:
        annotations: {gpu-slicer.io/gpu-memory: 20Gi}
      spec:
        containers:
        - name: leader
          resources: {limits: {nvidia.com/gpu: "1"}}
    workerTemplate:
      metadata:
        annotations: {gpu-slicer.io/isolation: memory}
      spec:
        containers:
        - name: worker
          resources: {limits: {nvidia.com/gpu: "1"}}
"#;
    let (code, out, err) = run_stdin(&["admit", "-f", "-"], lws);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("LeaderWorkerSet ml/big-llm (leader): patched: adds to every required node-affinity term: gpu-slicer.io/slice-gpu-memory-mib Gt 20479"),
        "{out}"
    );
    assert!(
        // The workers declare no memory: their CUDA context (618 MiB by default) is the need.
        out.contains("LeaderWorkerSet ml/big-llm (workers): patched: adds to every required node-affinity term: gpu-slicer.io/slice-gpu-memory-mib Gt 617 AND gpu-slicer.io/sharing-strategy In fractional,mps,none"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 2, "{out}");
    let (code, yaml, err) = run_stdin(&["admit", "-f", "-", "-o", "yaml"], lws);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_saphyr::from_str(&yaml).expect("one YAML document");
    let terms = |t: &str| {
        v.pointer(&format!(
            "/spec/leaderWorkerTemplate/{t}/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchExpressions/0/key"
        ))
        .and_then(Value::as_str)
        .map(str::to_string)
    };
    assert_eq!(
        terms("leaderTemplate").as_deref(),
        Some("gpu-slicer.io/slice-gpu-memory-mib")
    );
    assert_eq!(
        terms("workerTemplate").as_deref(),
        Some("gpu-slicer.io/slice-gpu-memory-mib")
    );
    let (code, again, err) = run_stdin(&["admit", "-f", "-"], &yaml);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        again
            .matches("unchanged: its affinity already has the slice terms")
            .count(),
        2,
        "{again}"
    );
    // Without a leader template the leader is a worker: one verdict.
    let no_leader = lws.replace("    leaderTemplate:\n      metadata:\n        annotations: {gpu-slicer.io/gpu-memory: 20Gi}\n      spec:\n        containers:\n        - name: leader\n          resources: {limits: {nvidia.com/gpu: \"1\"}}\n", "");
    assert_ne!(no_leader, lws);
    let (code, out, err) = run_stdin(&["admit", "-f", "-"], &no_leader);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("(workers)"), "{out}");
}

/// The probe Job (`examples/gpu-probe`, issue 19 item 5): the ConfigMap carries
/// `probe.py` byte for byte, the annotations it prints are NodePool annotations
/// gpu-slicer reads, and admission gives the Job a whole, unshared GPU (the measurement
/// needs the GPU to itself).
#[test]
fn the_probe_job_embeds_the_script_and_gets_a_whole_gpu() {
    let job = std::fs::read_to_string(root("examples/gpu-probe/job.yaml")).unwrap();
    let script = std::fs::read_to_string(root("examples/gpu-probe/probe.py")).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&job).expect("job.yaml is YAML");
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("a ConfigMap");
    assert_eq!(
        cm["data"]["probe.py"].as_str(),
        Some(script.as_str()),
        "job.yaml's probe.py differs from probe.py: python3 examples/gpu-probe/sync-check.py --write"
    );
    for key in [
        "gpu-slicer.io/context-memory",
        "gpu-slicer.io/time-slicing-efficiency",
        "gpu-slicer.io/mps-efficiency",
    ] {
        assert!(script.contains(key), "probe.py prints {key}");
        assert!(
            gpu_slicer::model::contract::NODEPOOL_ANNOTATIONS.contains(&key),
            "{key} is a NodePool annotation"
        );
    }
    let (code, out, err) = run(&["admit", "-f", &root("examples/gpu-probe/job.yaml")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Job default/gpu-probe: patched"), "{out}");
    assert!(
        out.contains("gpu-slicer.io/replicas In 1")
            && out.contains("gpu-slicer.io/sharing-strategy In none"),
        "{out}"
    );
}
