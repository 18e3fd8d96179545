//! GPU memory the manifests state (vLLM's `--gpu-memory-utilization` and the like), end to
//! end: through the loader, and through `gpu-slicer plan`, where it decides how many pods
//! share a GPU.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/cli.rs"]
mod cli_support;

use cli_support::run_stdin;
use gpu_slicer::demand::{Inputs, LoadOptions, load_str};

/// A vLLM Deployment of `replicas` pods; `annotations` goes into the pod template and
/// `args` after the model.
fn vllm(replicas: u32, annotations: &str, args: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: vllm, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: vllm}}}}
  template:
    metadata:
      labels: {{app: vllm}}
      annotations: {{{annotations}}}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.6.3
        args: ["--model", "Qwen/Qwen2.5-0.5B-Instruct"{args}]
        resources:
          requests: {{cpu: 100m, memory: 1Gi}}
          limits: {{nvidia.com/gpu: 1}}
"#
    )
}

#[test]
fn a_vllm_deployment_states_its_fraction() {
    let mut inputs = Inputs::default();
    let text = vllm(2, "", r#", "--gpu-memory-utilization=0.45""#);
    load_str(&mut inputs, "vllm.yaml", &text, &LoadOptions::default()).expect("loads");
    assert_eq!(inputs.items.len(), 2);
    for it in &inputs.items {
        assert_eq!(it.gpu_memory_fraction_milli, Some(450), "{}", it.id);
        assert_eq!(it.gpu_memory_mib, None);
    }
    assert_eq!(
        inputs.notes,
        [
            "Deployment default/vllm: GPU memory 0.45 of the GPU, from vLLM's \
          --gpu-memory-utilization 0.45 (container vllm)"
        ]
    );

    // A malformed value is an error naming the field of the Deployment.
    let text = vllm(2, "", r#", "--gpu-memory-utilization=abc""#);
    let e = load_str(
        &mut Inputs::default(),
        "vllm.yaml",
        &text,
        &LoadOptions::default(),
    )
    .expect_err("rejected");
    assert_eq!(
        e.field.as_deref(),
        Some("spec.template.spec.containers[0].args[2]")
    );
    assert!(e.to_string().starts_with(
        "vllm.yaml: document 1 (Deployment default/vllm): field \
         `spec.template.spec.containers[0].args[2]`: vLLM's --gpu-memory-utilization must be"
    ));
}

/// `(replicasPerGpu, pods)` of every node of `plan -o json` on `text`, and stderr.
fn plan(text: &str) -> (Vec<(u64, usize)>, String) {
    let (code, out, err) = run_stdin(&["plan", "-f", "-", "-o", "json"], text);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("only the plan JSON on stdout");
    assert_eq!(v["summary"]["placedPods"], 4, "{out}");
    let nodes = v["nodes"].as_array().expect("nodes");
    let shape = nodes
        .iter()
        .map(|n| {
            let r = n["replicasPerGpu"].as_u64().expect("replicasPerGpu");
            let gpus = n["gpus"].as_u64().expect("gpus");
            let pods = n["pods"].as_array().map_or(0, Vec::len);
            assert!(pods as u64 <= r * gpus, "{n}");
            (r, pods)
        })
        .collect();
    (shape, err)
}

#[test]
fn plan_keeps_vllm_alone_on_its_gpu_unless_annotated() {
    // vLLM's default 0.9 of the GPU: one pod per GPU (0.9 × 2 > 1).
    let (nodes, err) = plan(&vllm(4, "", ""));
    assert!(!nodes.is_empty());
    assert!(nodes.iter().all(|&(r, _)| r == 1), "{nodes:?}");
    assert!(
        err.contains(
            "note: Deployment default/vllm: GPU memory 0.90 of the GPU, from vLLM's default \
             --gpu-memory-utilization 0.9 (container vllm)"
        ),
        "{err}"
    );
    assert!(!err.contains("declares no GPU memory"), "{err}");

    // The annotation wins: 4Gi pods share a GPU.
    let (nodes, err) = plan(&vllm(4, "gpu-slicer.io/gpu-memory: 4Gi", ""));
    assert!(
        nodes.iter().any(|&(r, pods)| r >= 2 && pods >= 2),
        "{nodes:?}"
    );
    assert!(!err.contains("note:"), "{err}");
}

#[test]
fn plan_warns_once_per_workload_about_shared_pods_without_gpu_memory() {
    let text = vllm(4, "", "").replace("vllm/vllm-openai:v0.6.3", "example/server:1");
    let (nodes, err) = plan(&text);
    let r = nodes.iter().map(|&(r, _)| r).max().unwrap_or(0);
    assert!(r >= 2, "{nodes:?}");
    let want = format!(
        "warning: default/vllm-* (4 pods): each shares a GPU with up to {} pod",
        r - 1
    );
    assert_eq!(err.matches("declares no GPU memory").count(), 1, "{err}");
    assert!(err.contains(&want), "{err}");
}
