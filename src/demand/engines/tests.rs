use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::demand::{Inputs, LoadOptions, demand_from_pod_spec, load_str};

/// A container asking for one GPU, with `extra` fields (`args`, `env`, `image`, ...).
fn gpu(name: &str, extra: Value) -> Value {
    let mut c = json!({"name": name, "resources": {"limits": {"nvidia.com/gpu": 1}}});
    if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
        c.extend(e);
    }
    c
}

fn stated(containers: Value) -> Result<StatedMemory, FieldError> {
    let spec = json!({ "containers": containers });
    let Value::Object(m) = &spec else {
        unreachable!()
    };
    stated_gpu_memory(m, "spec")
}

/// The fraction one GPU container states.
fn milli(extra: Value) -> Option<u32> {
    stated(json!([gpu("c", extra)])).unwrap().fraction_milli
}

fn err(containers: Value) -> FieldError {
    stated(containers).expect_err("accepted")
}

// ---------- vLLM ----------

#[test]
fn vllm_flag_in_both_forms_and_with_underscores() {
    for args in [
        json!(["--model", "m", "--gpu-memory-utilization=0.45"]),
        json!(["--model", "m", "--gpu-memory-utilization", "0.45"]),
        json!(["--gpu_memory_utilization", "0.45"]),
        json!(["--gpu-memory-utilization", ".45"]),
        json!(["--gpu-memory-utilization=\"0.45\""]),
        json!(["-gmu", "0.45"]),
        json!(["-gmu=0.45"]),
    ] {
        assert_eq!(milli(json!({"args": args})), Some(450), "{args}");
    }
    // In `command` too, and the last one counts.
    let m = milli(json!({
        "command": ["vllm", "serve", "m", "--gpu-memory-utilization", "0.3"],
        "args": ["--gpu-memory-utilization=0.6"],
    }));
    assert_eq!(m, Some(600));
}

#[test]
fn vllm_in_a_shell_string() {
    for script in [
        "vllm serve m --gpu-memory-utilization 0.85",
        "exec vllm serve m --gpu-memory-utilization=0.85 --port 8000",
        "pip install x && vllm serve m --gpu-memory-utilization '0.85';",
        "vllm serve m \\\n  --gpu-memory-utilization \"0.85\" \\\n  --max-model-len 4096",
    ] {
        let m = milli(json!({"command": ["sh", "-c"], "args": [script]}));
        assert_eq!(m, Some(850), "{script}");
        let m = milli(json!({"command": ["/bin/bash", "-c", script]}));
        assert_eq!(m, Some(850), "{script}");
    }
}

#[test]
fn vllm_default_when_it_runs_without_the_flag() {
    for c in [
        json!({"command": ["vllm", "serve", "m"]}),
        json!({"command": ["/usr/local/bin/vllm", "serve"], "args": ["m"]}),
        json!({"command": ["python3", "-m", "vllm.entrypoints.openai.api_server"]}),
        json!({"command": ["sh", "-c", "python -m vllm.entrypoints.openai.api_server --model m"]}),
        json!({"image": "vllm/vllm-openai:v0.6.3", "args": ["--model", "m"]}),
        json!({"image": "docker.io/vllm/vllm-openai@sha256:0123abcd"}),
        json!({"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/vllm-server:1"}),
    ] {
        let s = stated(json!([gpu("vllm", c.clone())])).unwrap();
        assert_eq!(s.fraction_milli, Some(900), "{c}");
        assert_eq!(s.mib, None);
        assert_eq!(
            s.sources[0].amount,
            Amount::Fraction {
                engine: Engine::Vllm,
                milli: 900,
                how: How::Default
            }
        );
    }
    // `vllm` only in the registry host or in an unrelated word does not count.
    for c in [
        json!({"image": "vllm.example.com/app/server:1"}),
        json!({"image": "localhost:5000/app/server"}),
        json!({"command": ["echo", "vllm"]}),
        json!({"command": ["python", "serve.py"], "image": "python:3.12"}),
    ] {
        assert_eq!(milli(c.clone()), None, "{c}");
    }
}

// ---------- TGI ----------

#[test]
fn tgi_flag_env_and_default() {
    let image = "ghcr.io/huggingface/text-generation-inference:3.3.4";
    assert_eq!(
        milli(json!({"image": image, "args": ["--cuda-memory-fraction", "0.5"]})),
        Some(500)
    );
    assert_eq!(
        milli(json!({"args": ["--cuda-memory-fraction=0.25"]})),
        Some(250)
    );
    let env = json!([{"name": "CUDA_MEMORY_FRACTION", "value": "0.4"}]);
    let s = stated(json!([gpu("tgi", json!({"image": image, "env": env}))])).unwrap();
    assert_eq!(s.fraction_milli, Some(400));
    assert_eq!(
        s.sources[0].to_string(),
        "TGI's CUDA_MEMORY_FRACTION=0.4 (container tgi)"
    );
    // The flag beats the env (clap's precedence).
    assert_eq!(
        milli(json!({"env": env, "args": ["--cuda-memory-fraction=0.3"]})),
        Some(300)
    );
    // TGI's default is 1.0: the image or the launcher without the flag.
    assert_eq!(milli(json!({"image": image})), Some(1000));
    assert_eq!(
        milli(json!({"command": ["text-generation-launcher", "--model-id", "m"]})),
        Some(1000)
    );
    // An empty variable is no statement.
    let empty = json!([{"name": "CUDA_MEMORY_FRACTION", "value": ""}]);
    assert_eq!(milli(json!({"env": empty})), None);
}

// ---------- SGLang ----------

#[test]
fn sglang_flag_and_default() {
    assert_eq!(
        milli(json!({
            "command": ["python3", "-m", "sglang.launch_server"],
            "args": ["--model-path", "m", "--mem-fraction-static", "0.7"],
        })),
        Some(700)
    );
    for c in [
        json!({"command": ["python3", "-m", "sglang.launch_server", "--model-path", "m"]}),
        json!({"command": ["sglang", "serve"], "args": ["--model-path", "m"]}),
        json!({"image": "lmsysorg/sglang:v0.5.3-cu126"}),
        json!({"command": ["python", "-m", "sglang_router.launch_server"]}),
    ] {
        assert_eq!(milli(c.clone()), Some(1000), "{c}");
    }
    let s = stated(json!([gpu("sgl", json!({"image": "lmsysorg/sglang"}))])).unwrap();
    assert_eq!(
        s.note().as_deref(),
        Some(
            "GPU memory 1.00 of the GPU, from SGLang's default --mem-fraction-static \
             (sized to fill the GPU) (container sgl)"
        )
    );
}

// ---------- MPS ----------

#[test]
fn mps_limit_forms() {
    for (v, want) in [
        ("0=4G", 4096),
        ("4096M", 4096),
        ("4G", 4096),
        ("4Gi", 4096),
        ("4GB", 4096),
        ("4gib", 4096),
        ("0=1G,1=512MB", 1024),
        ("0=512M, 1=2G", 2048),
        ("1500K", 2),
        ("1T", 1 << 20),
        ("GPU-0b2c=3G", 3072),
    ] {
        assert_eq!(parse_mps_limit(v), Ok(want), "{v}");
    }
    for v in [
        "4096", "0=0G", "=4G", "abc", "4X", "", "0=4G,", "4.5G", "-4G",
    ] {
        assert!(parse_mps_limit(v).is_err(), "{v}");
    }
    assert!(
        parse_mps_limit("4096")
            .unwrap_err()
            .to_string()
            .contains("needs a unit (M or G)")
    );

    let env = json!([{"name": "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", "value": "0=4G"}]);
    let s = stated(json!([gpu("c", json!({"env": env}))])).unwrap();
    assert_eq!((s.fraction_milli, s.mib), (None, Some(4096)));
    assert_eq!(
        s.note().as_deref(),
        Some("GPU memory 4096 MiB, from CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=4G (container c)")
    );
    // From the cluster only (valueFrom): nothing to read.
    let env = json!([{"name": "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT",
                      "valueFrom": {"configMapKeyRef": {"name": "x", "key": "y"}}}]);
    assert_eq!(
        stated(json!([gpu("c", json!({"env": env}))])).unwrap(),
        StatedMemory::default()
    );
}

// ---------- pods with several containers ----------

#[test]
fn only_gpu_containers_count_and_several_add_up() {
    let no_gpu = json!({"name": "proxy", "image": "vllm/vllm-openai", "args": ["--gpu-memory-utilization=0.9"]});
    let s = stated(json!([
        no_gpu,
        gpu("a", json!({"args": ["--gpu-memory-utilization=0.45"]})),
        gpu(
            "b",
            json!({"args": ["--cuda-memory-fraction", "0.3"],
                        "env": [{"name": "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", "value": "2G"}]})
        ),
        gpu(
            "c",
            json!({"env": [{"name": "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", "value": "0=1G"}]})
        ),
    ]))
    .unwrap();
    assert_eq!(s.fraction_milli, Some(750));
    assert_eq!(s.mib, Some(3072));
    assert_eq!(
        s.note().as_deref(),
        Some(
            "GPU memory 0.75 of the GPU and 3072 MiB, from vLLM's --gpu-memory-utilization 0.45 \
             (container a); TGI's --cuda-memory-fraction 0.3 (container b); \
             CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=2G (container b); \
             CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=1G (container c)"
        )
    );

    // More than the whole GPU in all: capped, and the note says so.
    let s = stated(json!([
        gpu("a", json!({"image": "vllm/vllm-openai"})),
        gpu("b", json!({"image": "vllm/vllm-openai"})),
    ]))
    .unwrap();
    assert_eq!(s.fraction_milli, Some(1000));
    let note = s.note().unwrap_or_default();
    assert!(
        note.starts_with(
            "GPU memory 1.00 of the GPU (1.80 stated in all, capped at the whole GPU)"
        ),
        "{note}"
    );

    // Nothing stated: nothing to note.
    let s = stated(json!([gpu(
        "c",
        json!({"image": "nvidia/cuda:12.4.0-base"})
    )]))
    .unwrap();
    assert_eq!(s, StatedMemory::default());
    assert_eq!(s.note(), None);
}

// ---------- references ----------

#[test]
fn references_to_literal_env_are_resolved_others_count_as_the_whole_gpu() {
    let env = json!([{"name": "UTIL", "value": "0.5"},
                     {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]);
    for args in [
        json!(["--gpu-memory-utilization=$(UTIL)"]),
        json!(["--gpu-memory-utilization", "$(UTIL)"]),
    ] {
        assert_eq!(
            milli(json!({"env": env, "args": args})),
            Some(500),
            "{args}"
        );
    }
    for script in [
        "vllm serve m --gpu-memory-utilization $UTIL",
        "vllm serve m --gpu-memory-utilization=${UTIL}",
    ] {
        let m = milli(json!({"env": env, "command": ["sh", "-c", script]}));
        assert_eq!(m, Some(500), "{script}");
    }
    for args in [
        json!(["--gpu-memory-utilization=$(SECRET)"]),
        json!(["--gpu-memory-utilization=$(MISSING)"]),
    ] {
        let s = stated(json!([gpu("v", json!({"env": env, "args": args}))])).unwrap();
        assert_eq!(s.fraction_milli, Some(1000), "{args}");
        assert!(
            s.note()
                .unwrap_or_default()
                .contains("not a literal value, counted as the whole GPU"),
            "{s:?}"
        );
    }
    let env = json!([{"name": "CUDA_MEMORY_FRACTION",
                      "valueFrom": {"configMapKeyRef": {"name": "x", "key": "y"}}}]);
    assert_eq!(milli(json!({"env": env})), Some(1000));
}

// ---------- bad values ----------

#[test]
fn bad_values_are_errors_naming_the_field() {
    let args = |a: Value| json!([gpu("vllm", json!({"args": a}))]);
    let e = err(args(json!([
        "--model",
        "m",
        "--port",
        "8000",
        "--gpu-memory-utilization=abc"
    ])));
    assert_eq!(e.field, "spec.containers[0].args[4]");
    assert!(
        e.message
            .contains("vLLM's --gpu-memory-utilization must be a fraction of the GPU in (0, 1]"),
        "{e}"
    );
    for (a, want) in [
        (json!(["--gpu-memory-utilization", "1.5"]), "at most 1"),
        (json!(["--gpu-memory-utilization=0"]), "greater than 0"),
        (
            json!(["--gpu-memory-utilization", "-0.5"]),
            "greater than 0",
        ),
        (json!(["--gpu-memory-utilization", "0.9.1"]), "such as 0.9"),
        (json!(["--mem-fraction-static=2"]), "at most 1"),
        (json!(["--cuda-memory-fraction=NaN"]), "such as 0.9"),
    ] {
        let e = err(args(a.clone()));
        assert!(e.message.contains(want), "{a}: {e}");
        assert!(e.field.starts_with("spec.containers[0].args["), "{e}");
    }
    // A flag without its value names the flag's word.
    let e = err(args(json!(["--model", "m", "--gpu-memory-utilization"])));
    assert_eq!(e.field, "spec.containers[0].args[2]");
    assert!(e.message.contains("needs a value"), "{e}");
    // In a shell string, the item that holds it.
    let e = err(json!([gpu(
        "v",
        json!({"command": ["sh", "-c", "vllm serve m --gpu-memory-utilization 7"]})
    )]));
    assert_eq!(e.field, "spec.containers[0].command[2]");
    // The env forms name the value.
    let e = err(json!([gpu(
        "t",
        json!({"env": [{"name": "A", "value": "1"},
                                                 {"name": "CUDA_MEMORY_FRACTION", "value": "1.2"}]})
    )]));
    assert_eq!(e.field, "spec.containers[0].env[1].value");
    assert!(
        e.message
            .contains("TGI's CUDA_MEMORY_FRACTION must be at most 1"),
        "{e}"
    );
    let e = err(json!([gpu(
        "m",
        json!({"env": [{"name": "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", "value": "lots"}]})
    )]));
    assert_eq!(e.field, "spec.containers[0].env[0].value");
    assert!(
        e.message
            .starts_with("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT must be a limit"),
        "{e}"
    );
    // Malformed lists and items.
    let e = err(json!([gpu(
        "m",
        json!({"args": "--gpu-memory-utilization=0.5"})
    )]));
    assert_eq!(e.field, "spec.containers[0].args");
    let e = err(json!([gpu("m", json!({"args": [{"a": 1}]}))]));
    assert_eq!(e.field, "spec.containers[0].args[0]");
    let e = err(json!([gpu("m", json!({"env": ["A=1"]}))]));
    assert_eq!(e.field, "spec.containers[0].env[0]");
}

#[test]
fn fractions_are_exact_and_round_up() {
    for (s, want) in [
        ("0.9", 900),
        ("0.90", 900),
        (".5", 500),
        ("1", 1000),
        ("1.0", 1000),
        ("1.000", 1000),
        ("+0.25", 250),
        ("0.8505", 851),
        ("0.0001", 1),
        (" 0.45 ", 450),
        ("00.5", 500),
    ] {
        assert_eq!(parse_fraction(s), Ok(want), "{s}");
    }
    for s in [
        "", ".", "0", "0.0", "1.0001", "2", "10", "-0.1", "abc", "0.5x", "1e-1", "inf",
    ] {
        assert!(parse_fraction(s).is_err(), "{s}");
    }
}

#[test]
fn value_errors_are_the_rest_of_a_sentence() {
    let text = |r: Result<u64, ValueError>| r.map_err(|e| e.to_string());
    assert_eq!(
        parse_fraction("2").map_err(|e| e.to_string()),
        Err("must be at most 1 (the whole GPU), got \"2\"".to_string())
    );
    assert_eq!(
        parse_fraction("0"),
        Err(ValueError::NotPositive {
            shown: "\"0\"".to_string()
        })
    );
    assert_eq!(
        parse_fraction("abc").map_err(|e| e.to_string()),
        Err("must be a fraction of the GPU in (0, 1] such as 0.9, got \"abc\"".to_string())
    );
    assert_eq!(
        text(parse_mps_limit("4096")),
        Err("needs a unit (M or G) after \"4096\", got \"4096\"".to_string())
    );
    assert_eq!(
        text(parse_mps_limit("4X")),
        Err("must be a limit such as 0=4G, 4096M or 0=1G,1=512MB, got \"4X\"".to_string())
    );
    assert_eq!(
        text(parse_mps_limit("0=0G")),
        Err("must be greater than 0, got \"0=0G\"".to_string())
    );
    assert!(
        std::error::Error::source(&ValueError::NotMpsLimit {
            shown: String::new()
        })
        .is_none()
    );
}

#[test]
fn image_repositories() {
    for (image, want) in [
        ("vllm/vllm-openai:v0.6.3", "vllm/vllm-openai"),
        (
            "ghcr.io/huggingface/text-generation-inference:3.3.4",
            "huggingface/text-generation-inference",
        ),
        ("docker.io/LMSysOrg/SGLang@sha256:abc", "lmsysorg/sglang"),
        ("localhost:5000/app:1", "app"),
        ("ubuntu", "ubuntu"),
        ("", ""),
    ] {
        assert_eq!(repository(image), want, "{image}");
    }
}

// ---------- through the pod converter and the loader ----------

#[test]
fn the_annotation_wins() {
    let spec = json!({"containers": [gpu("vllm", json!({
        "image": "vllm/vllm-openai", "args": ["--gpu-memory-utilization=abc"]}))]});
    let ann: BTreeMap<String, String> =
        [("gpu-slicer.io/gpu-memory".to_string(), "4Gi".to_string())].into();
    let it = demand_from_pod_spec("d/p".into(), &ann, &spec)
        .unwrap()
        .unwrap();
    assert_eq!(it.gpu_memory_mib, Some(4096));
    assert_eq!(it.gpu_memory_fraction_milli, None);
    // Without it, the bad flag is an error and a good one is read.
    let e = demand_from_pod_spec("d/p".into(), &BTreeMap::new(), &spec).unwrap_err();
    assert_eq!(e.field, "spec.containers[0].args[0]");
    let spec = json!({"containers": [gpu("vllm", json!({"image": "vllm/vllm-openai"}))]});
    let it = demand_from_pod_spec("d/p".into(), &BTreeMap::new(), &spec)
        .unwrap()
        .unwrap();
    assert_eq!(it.gpu_memory_fraction_milli, Some(900));
    assert_eq!(it.gpu_memory_mib, None);
}

#[test]
fn the_loader_notes_each_object_once_and_prefixes_workload_errors() {
    let text = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: vllm-llama, namespace: default}
spec:
  replicas: 3
  template:
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.6.3
        args: ["--model", "meta-llama/Llama-3.1-8B"]
        resources: {limits: {nvidia.com/gpu: 1}}
---
apiVersion: v1
kind: Pod
metadata: {name: tgi, namespace: ml}
spec:
  containers:
  - name: tgi
    image: ghcr.io/huggingface/text-generation-inference:3.3.4
    env: [{name: CUDA_MEMORY_FRACTION, value: "0.5"}]
    resources: {limits: {nvidia.com/gpu: 1}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: annotated, namespace: default}
spec:
  replicas: 2
  template:
    metadata: {annotations: {gpu-slicer.io/gpu-memory: 4Gi}}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.6.3
        resources: {limits: {nvidia.com/gpu: 1}}
"#;
    let mut inputs = Inputs::default();
    load_str(&mut inputs, "t.yaml", text, &LoadOptions::default()).unwrap();
    assert_eq!(
        inputs.notes,
        [
            "Deployment default/vllm-llama: GPU memory 0.90 of the GPU, from vLLM's default \
             --gpu-memory-utilization 0.9 (container vllm)",
            "Pod ml/tgi: GPU memory 0.50 of the GPU, from TGI's CUDA_MEMORY_FRACTION=0.5 \
             (container tgi)",
        ]
    );
    let fr: Vec<Option<u32>> = inputs
        .items
        .iter()
        .map(|i| i.gpu_memory_fraction_milli)
        .collect();
    assert_eq!(fr, [Some(900), Some(900), Some(900), Some(500), None, None]);

    let bad = text.replace(
        r#"args: ["--model", "meta-llama/Llama-3.1-8B"]"#,
        r#"args: ["--model", "m", "--gpu-memory-utilization=1.5"]"#,
    );
    let mut inputs = Inputs::default();
    let e = load_str(&mut inputs, "t.yaml", &bad, &LoadOptions::default()).unwrap_err();
    assert_eq!(
        e.field.as_deref(),
        Some("spec.template.spec.containers[0].args[2]")
    );
    assert!(inputs.notes.is_empty() && inputs.items.is_empty());
}
