//! Binary-level tests of `gpu-slicer plan` and `gpu-slicer catalog`: output formats,
//! the contract's plan JSON shape, exit codes and error messages.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/cli.rs"]
mod cli_support;

use cli_support::{root, run, run_stdin};

#[test]
fn seed_plan_table() {
    let (code, out, err) = run(&["plan", "-f", &root("examples/seed")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("g4dn.xlarge"), "{out}");
    assert!(out.contains("ts-r10"), "{out}");
    assert!(out.contains("savings vs dedicated"), "{out}");
    assert!(out.contains("90.0%"), "{out}");
}

#[test]
fn seed_plan_json_follows_the_contract() {
    let (code, out, err) = run(&["plan", "-f", &root("examples/seed"), "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    let nodes = v["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1);
    let n = &nodes[0];
    for key in [
        "instanceType",
        "capacityType",
        "gpus",
        "gpuModel",
        "gpuMemoryMiB",
        "replicasPerGpu",
        "profile",
        "hourlyPrice",
        "pods",
    ] {
        assert!(n.get(key).is_some(), "node lacks {key}: {n}");
    }
    assert_eq!(n["instanceType"], "g4dn.xlarge");
    assert_eq!(n["capacityType"], "on-demand");
    assert_eq!(n["gpuModel"], "t4");
    assert_eq!(n["gpuMemoryMiB"], 16384);
    assert_eq!(n["replicasPerGpu"], 10);
    assert_eq!(n["profile"], "ts-r10");
    assert_eq!(n["pods"][0], "default/gpu-timeslice-test-0");
    assert_eq!(n["pods"].as_array().map(Vec::len), Some(10));
    assert!(v["unplaced"].as_array().is_some_and(Vec::is_empty));
    let s = &v["summary"];
    assert_eq!(s["pods"], 10);
    assert_eq!(s["placedPods"], 10);
    assert_eq!(s["nodes"], 1);
    assert_eq!(s["hourlyCost"], 0.526);
    assert_eq!(s["dedicatedHourlyCost"], 5.26);
    let lb = s["lowerBoundHourlyCost"].as_f64().expect("bound");
    assert!(lb <= 0.526 && lb > 0.52, "{lb}");
}

#[test]
fn yaml_output_parses() {
    let (code, out, err) = run(&["plan", "-f", &root("examples/mixed"), "-o", "yaml"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_saphyr::from_str(&out).expect("valid YAML");
    assert_eq!(v["summary"]["pods"], 39);
    assert_eq!(v["summary"]["placedPods"], 39);
}

#[test]
fn stdin_and_flags() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a}\nspec:\n  containers:\n  - name: c\n    image: x\n    resources: {limits: {nvidia.com/gpu: 1}}\n";
    let (code, out, err) = run_stdin(&["plan", "-f", "-", "--families", "g5", "-o", "json"], pod);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["nodes"][0]["instanceType"], "g5.xlarge");
    assert_eq!(v["nodes"][0]["pods"][0], "a/p");
}

#[test]
fn unplaced_pods_are_listed_with_exit_zero() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\n  annotations: {gpu-slicer.io/gpu-memory: 300Gi}\nspec:\n  containers:\n  - name: c\n    image: x\n    resources: {limits: {nvidia.com/gpu: 1}}\n";
    let (code, out, err) = run_stdin(&["plan", "-f", "-"], pod);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("default/big: needs 300 GiB GPU memory; largest GPU allowed has 268.59 GiB"),
        "{out}"
    );
}

#[test]
fn bad_input_exits_1_and_names_file_object_field() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: x\n    resources: {limits: {nvidia.com/gpu: abc}}\n";
    let (code, _, err) = run_stdin(&["plan", "-f", "-"], pod);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "error: <stdin>: document 1 (Pod default/p): field \
         `spec.containers[0].resources.limits[\"nvidia.com/gpu\"]`: invalid quantity \"abc\": no number"
    );
    let (code, _, err) = run(&["plan", "-f", "/nonexistent/x.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/x.yaml"), "{err}");
    let (code, _, err) = run_stdin(&["plan", "-f", "-"], "");
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "error: <stdin>: no Kubernetes objects found");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["plan"],
        vec!["plan", "-f", "x", "--replicas", "0"],
        vec!["plan", "-f", "x", "--max-replicas", "99"],
        vec!["plan", "-f", "x", "--instance-types", "z9.huge"],
        vec!["plan", "-f", "x", "--capacity-type", "spot"],
        vec!["plan", "-f", "x", "--daemonset-overhead", "gpu=1"],
        vec!["frobnicate"],
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    let (_, _, err) = run(&["plan", "-f", "x", "--replicas", "0"]);
    assert_eq!(
        err.trim(),
        "error: field `--replicas`: must be \"auto\" or an integer from 1 to 48, got \"0\""
    );
}

#[test]
fn catalog_lists_67_types_and_rejects_bad_csv() {
    let (code, out, err) = run(&["catalog", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["types"].as_array().map(Vec::len), Some(67));
    assert_eq!(v["source"]["observed"], "2026-07-20");
    let (code, out, _) = run(&["catalog"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("p4d.24xlarge") && out.contains("2026-07-20"),
        "{out}"
    );

    let dir = std::env::temp_dir().join(format!("gpu-slicer-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let bad = dir.join("bad.csv");
    let mut csv = String::from(gpu_slicer::catalog::EMBEDDED_CSV);
    csv = csv.replacen("g4dn.xlarge,g4dn,4,", "g4dn.xlarge,g4dn,four,", 1);
    std::fs::write(&bad, csv).expect("write");
    let (code, _, err) = run(&["catalog", "--catalog", &bad.display().to_string()]);
    assert_eq!(code, 1);
    let line = gpu_slicer::catalog::EMBEDDED_CSV
        .lines()
        .position(|l| l.starts_with("g4dn.xlarge,"))
        .expect("g4dn.xlarge row")
        + 1;
    assert!(
        err.contains(&format!("bad.csv:{line}: column `vcpus`")),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn headroom_flag_overrides_annotated_pools() {
    let input = r#"apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: gpu
  annotations: {gpu-slicer.io/enabled: "true"}
spec:
  template:
    spec:
      requirements:
      - {key: karpenter.k8s.aws/instance-family, operator: In, values: [g4dn]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: infer, namespace: ml}
spec:
  replicas: 2
  template:
    metadata:
      annotations: {gpu-slicer.io/gpu-memory: 8Gi}
    spec:
      containers:
      - name: c
        image: x
        resources: {limits: {nvidia.com/gpu: 1}}
"#;
    let replicas = |extra: &[&str]| {
        let mut args = vec!["plan", "-f", "-", "-o", "json"];
        args.extend_from_slice(extra);
        let (code, out, err) = run_stdin(&args, input);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        let n = &v["nodes"][0];
        assert_eq!(n["nodePool"], "gpu");
        n["replicasPerGpu"].as_u64().expect("R")
    };
    // 8 GiB per pod on a 16 GiB T4: R = 2; with 1 GiB headroom only 15 GiB are usable: R = 1.
    assert_eq!(replicas(&[]), 2);
    assert_eq!(replicas(&["--gpu-memory-headroom", "1Gi"]), 1);
}

#[test]
fn small_examples_are_proven_optimal_and_the_json_says_how() {
    // The seed, examples/mixed and the 22 vLLM/TGI/TEI pods of examples/genai are the
    // controller's common case: small enough for the exact integer programme.
    for ex in ["examples/seed", "examples/mixed", "examples/genai"] {
        let (code, out, err) = run(&["plan", "-f", &root(ex), "-o", "json"]);
        assert_eq!(code, 0, "{ex}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        let solver = &v["solver"];
        assert_eq!(solver["provenOptimal"], true, "{ex}: {solver}");
        assert_eq!(solver["boundKind"], "optimal", "{ex}: {solver}");
        assert_eq!(solver["stoppedBy"], "optimal", "{ex}: {solver}");
        assert_eq!(solver["gap"], 0.0, "{ex}: {solver}");
        assert!(solver["elapsedSeconds"].as_f64().is_some_and(|t| t >= 0.0));
        let s = &v["summary"];
        let (cost, lb) = (
            s["hourlyCost"].as_f64().expect("cost"),
            s["lowerBoundHourlyCost"].as_f64().expect("bound"),
        );
        assert!(lb <= cost && cost - lb < 1e-5, "{ex}: {cost} vs bound {lb}");
    }
}

/// Issue 16: the GenAI kit's pods as a new user brings them. vLLM and TGI state their GPU
/// memory in their flags (0.90–1.0 of the GPU), so each gets its GPU alone; the small,
/// isolated embedding server never lands on a time-sliced GPU: by default (`auto`) it
/// shares a T4 under MPS, which caps every client's memory; in a pool that says
/// `sharing-strategy: time-slicing` it gets a fractional L4 (g6f).
#[test]
fn stated_memory_fractional_gpus_and_isolation_in_the_genai_example() {
    let ex = root("examples/genai-stated");
    let ts_pool = root("tests/fixtures/nodepool-time-slicing.yaml");
    for time_slicing in [false, true] {
        let mut args = vec!["plan", "-f", ex.as_str(), "-o", "json"];
        if time_slicing {
            args.extend(["-f", ts_pool.as_str()]);
        }
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains("GPU memory 0.90 of the GPU, from vLLM's --gpu-memory-utilization"),
            "{err}"
        );
        let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(v["solver"]["provenOptimal"], true, "{}", v["solver"]);
        let nodes = v["nodes"].as_array().expect("nodes");
        let mut seen = 0;
        for n in nodes {
            let pods: Vec<&str> = n["pods"]
                .as_array()
                .expect("pods")
                .iter()
                .filter_map(|p| p.as_str())
                .collect();
            let servers = pods
                .iter()
                .filter(|p| p.starts_with("genai/vllm-") || p.starts_with("genai/tgi-"))
                .count();
            if servers > 0 {
                // Routed by stated memory: alone on unshared L40S GPUs.
                assert_eq!(n["replicasPerGpu"], 1, "{n}");
                assert_eq!(n["sharing"], "none", "{n}");
                assert_eq!(n["gpuModel"], "l40s", "{n}");
                assert!(
                    pods.len() as u64 <= n["gpus"].as_u64().expect("gpus"),
                    "{n}"
                );
                seen += servers;
            }
            let isolated = pods
                .iter()
                .any(|p| p.starts_with("genai/tei-qwen3-embedding-06b-bf16"));
            if isolated && time_slicing {
                // isolation: memory, and a 3 GiB pod: a quarter of an L4 (5,722 MiB,
                // $0.475/h) beats a whole L4 ($0.805/h).
                assert_eq!(n["sharing"], "fractional", "{n}");
                assert_eq!(n["instanceType"], "g6f.2xlarge", "{n}");
            } else if isolated {
                assert_eq!(n["sharing"], "mps", "{n}");
                assert_eq!(n["profile"], format!("mps-r{}", n["replicasPerGpu"]), "{n}");
            } else {
                // MPS only where an isolated pod needs it.
                assert_ne!(n["sharing"], "mps", "{n}");
            }
            assert!(
                !(isolated && n["sharing"] == "time-slicing"),
                "an isolated pod on time-slicing: {n}"
            );
        }
        assert_eq!(seen, 17, "every vLLM and TGI pod placed");
        if time_slicing {
            assert!(nodes.iter().any(|n| n["sharing"] == "fractional"));
            assert!(nodes.iter().all(|n| n["nodePool"] == "gpu"));
        }
    }
}

#[test]
fn gap_and_deadline_flags_are_checked() {
    let seed = root("examples/seed");
    for bad in [
        ["--gap", "1.5"],
        ["--gap", "x"],
        ["--plan-deadline", "soon"],
    ] {
        let (code, _, err) = run(&["plan", "-f", &seed, bad[0], bad[1]]);
        assert_eq!(code, 2, "{bad:?}: {err}");
    }
    let (code, out, err) = run(&[
        "plan",
        "-f",
        &seed,
        "--gap",
        "0.05",
        "--plan-deadline",
        "200ms",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["summary"]["hourlyCost"], 0.526);
}

/// Issue 17: what a one-shot command reads is capped, with errors naming the limit, the
/// flag and the source; the defaults take the examples.
#[test]
fn input_size_and_document_limits_name_their_flags() {
    let seed = root("examples/seed");
    let (code, _, err) = run(&["plan", "-f", &seed, "--max-input-size", "100"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the inputs are larger than --max-input-size (100 bytes); raise the limit if they are meant"),
        "{err}"
    );
    assert!(err.contains("examples/seed/"), "names the file: {err}");
    let (code, _, err) = run(&["plan", "-f", &seed, "--max-documents", "1"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("nvidia-device-plugin.yaml: the inputs have more documents than --max-documents 1 allows"),
        "{err}"
    );
    let (code, _, err) = run(&["admit", "-f", &seed, "--max-documents", "1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--max-documents 1"), "{err}");
    for bad in ["0", "lots", "1.5.5Mi"] {
        let flag = format!("--max-input-size={bad}");
        let (code, _, err) = run(&["plan", "-f", &seed, &flag]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("--max-input-size"), "{bad}: {err}");
    }
    let (code, _, err) = run(&["plan", "-f", &seed]);
    assert_eq!(code, 0, "{err}");
    // A workload's replicas count against --max-pods before it is expanded (fuzzing found
    // 40 Deployments of 100,000 replicas in 7.7 KB taking 1.6 GB).
    let deployment = |name: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: ml}}\n\
             spec:\n  replicas: 100000\n  template:\n    spec:\n      containers:\n      \
             - name: c\n        resources: {{limits: {{nvidia.com/gpu: 1}}}}\n---\n"
        )
    };
    let text: String = (0..11).map(|i| deployment(&format!("d{i}"))).collect();
    let (code, _, err) = run_stdin(&["plan", "-f", "-", "--effort", "fast"], &text);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("document 11 (Deployment ml/d10): field `spec.replicas`: 100000 more pods would take the inputs past 1000000 pods, what --max-pods 1000000 allows"),
        "{err}"
    );
    let (code, _, err) = run(&["plan", "-f", &seed, "--max-pods", "0"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--max-pods 0"), "{err}");
}

/// `render` runs the budget guard before it renders: a pool's budget annotation and its
/// NodePool's cpu limit each refuse the plan, naming the object and field, exit 1.
#[test]
fn render_refuses_a_plan_over_a_pools_budget_or_limits() {
    let input = |extra_annotation: &str, limits: &str| {
        format!(
            "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata:\n  name: team-a\n  annotations:\n    gpu-slicer.io/enabled: \"true\"\n{extra_annotation}spec:\n  limits: {limits}\n  template:\n    spec:\n      nodeClassRef: {{group: karpenter.k8s.aws, kind: EC2NodeClass, name: gpu}}\n      requirements: []\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: a}}\nspec:\n  containers:\n  - name: c\n    image: x\n    resources: {{limits: {{nvidia.com/gpu: 1}}}}\n"
        )
    };
    let (code, out, err) = run_stdin(&["render", "-f", "-"], &input("", "{cpu: \"1000\"}"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kind: NodePool"), "{out}");

    let (code, out, err) = run_stdin(
        &["render", "-f", "-"],
        &input(
            "    gpu-slicer.io/max-hourly-cost: \"0.01\"\n",
            "{cpu: \"1000\"}",
        ),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("NodePool team-a: field `metadata.annotations[\"gpu-slicer.io/max-hourly-cost\"]`: plan refused: pool team-a would cost"),
        "{err}"
    );
    assert!(out.is_empty(), "nothing is rendered: {out}");

    let (code, _, err) = run_stdin(&["render", "-f", "-"], &input("", "{cpu: \"1\"}"));
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "NodePool team-a: field `spec.limits.cpu`: plan refused: pool team-a would hold"
        ),
        "{err}"
    );
    assert!(err.contains("above its limit 1"), "{err}");
}

/// A build without the `aws` feature (`--no-default-features --features cli`, as
/// `.ci/run` tests it) plans offline and says how to get live prices when asked for them.
#[cfg(not(feature = "aws"))]
#[test]
fn without_aws_live_prices_are_a_usage_error_that_names_the_feature() {
    let (code, out, err) = run(&["plan", "-f", &root("examples/seed")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("g4dn.xlarge"), "{out}");
    let (code, _, err) = run(&["plan", "-f", &root("examples/seed"), "--live-prices"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("built without the `aws` feature"), "{err}");
}

/// Without the `controller` feature there is no `run` and no `--from-cluster`.
#[cfg(not(feature = "controller"))]
#[test]
fn without_the_controller_run_and_from_cluster_are_usage_errors() {
    let (code, _, err) = run(&["plan", "--from-cluster"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("built without the `controller` feature"),
        "{err}"
    );
    let (code, _, err) = run(&["run", "--cluster-name", "c"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unrecognized subcommand"), "{err}");
}

/// `run` with no cluster to talk to is the environment failing (exit 3), not bad input
/// (1); a bad flag is still a usage error (2).
#[cfg(feature = "controller")]
#[test]
fn run_without_a_cluster_exits_3_and_a_bad_flag_2() {
    let run_env = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--cluster-name",
            "c",
            "--live-prices=false",
            "--webhook-port",
            "0",
            "--metrics-bind-address",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpu-slicer"))
            .args(&args)
            .env("KUBECONFIG", "/nonexistent/gpu-slicer-test/kubeconfig")
            .env("HOME", "/nonexistent/gpu-slicer-test")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .output()
            .expect("binary runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run_env(&[]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("no usable in-cluster config or kubeconfig"),
        "{err}"
    );
    let (code, err) = run_env(&["--writes-per-second", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--writes-per-second"), "{err}");
}
