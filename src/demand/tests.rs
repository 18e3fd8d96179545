//! The loader's tests, one per workload kind and per malformed field, sharing the
//! manifest builders at the top (~690 code lines; the engine flags' tests are
//! `engines/tests.rs`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::model::{
    MIB, Operator, Requirement, Resources, Sharing, TaintEffect, Toleration, TolerationOperator,
};

fn load(text: &str) -> Result<Inputs, InputError> {
    let mut inputs = Inputs::default();
    load_str(&mut inputs, "t.yaml", text, &LoadOptions::default())?;
    Ok(inputs)
}

fn load_err(text: &str) -> String {
    match load(text) {
        Ok(i) => panic!("accepted: {:?}", i.items),
        Err(e) => e.to_string(),
    }
}

fn spec(v: Value) -> PodRequests {
    effective_requests(&v, "spec").unwrap()
}

fn container(cpu: &str, mem: &str) -> Value {
    json!({"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}})
}

fn item(annotations: &[(&str, &str)], spec: Value) -> Result<Option<DemandItem>, FieldError> {
    let ann: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    demand_from_pod_spec("default/p".to_string(), &ann, &spec)
}

fn gpu_spec(extra: Value) -> Value {
    let mut s =
        json!({"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": 1}}}]});
    if let (Value::Object(s), Value::Object(e)) = (&mut s, extra) {
        s.extend(e);
    }
    s
}

// ---------- request maths ----------

#[test]
fn sums_regular_containers() {
    let r = spec(json!({"containers": [container("500m", "1Gi"), container("1", "512Mi")]}));
    assert_eq!(r.cpu_milli, 1500);
    assert_eq!(r.memory_bytes, 1536 * MIB);
    assert_eq!(r.gpus, 0);
}

#[test]
fn limit_used_when_request_absent() {
    let r = spec(json!({"containers": [
        {"name": "a", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}},
        {"name": "b", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "4", "memory": "2Gi"}}},
        {"name": "c"}
    ]}));
    assert_eq!(r.cpu_milli, 2000 + 100);
    assert_eq!(r.memory_bytes, 3 * 1024 * MIB);
}

#[test]
fn init_containers_take_the_max() {
    // Regular: 1 cpu. Init: 3 cpu → the init container dominates cpu; memory from regular.
    let r = spec(json!({
        "initContainers": [container("3", "100Mi"), container("2", "50Mi")],
        "containers": [container("1", "1Gi")]
    }));
    assert_eq!(r.cpu_milli, 3000);
    assert_eq!(r.memory_bytes, 1024 * MIB);
}

#[test]
fn sidecars_add_to_containers_and_to_later_inits() {
    let sidecar = json!({"name": "s", "restartPolicy": "Always",
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}});
    let r = spec(json!({
        // init0 before the sidecar: 2 cpu; sidecar 1 cpu; init2 after it: 2 + 1 = 3 cpu.
        "initContainers": [container("2", "0"), sidecar, container("2", "0")],
        "containers": [container("500m", "1Gi")]
    }));
    // max(0.5 + 1, 2, 2 + 1) = 3 cpu; memory max(1Gi + 1Gi, 0, 0 + 1Gi) = 2Gi.
    assert_eq!(r.cpu_milli, 3000);
    assert_eq!(r.memory_bytes, 2048 * MIB);

    let r = spec(json!({
        "initContainers": [{"name": "s", "restartPolicy": "Always",
            "resources": {"requests": {"cpu": "1"}}}],
        "containers": [container("500m", "0")]
    }));
    assert_eq!(r.cpu_milli, 1500);
}

#[test]
fn overhead_is_added() {
    let r = spec(json!({
        "containers": [container("1", "1Gi")],
        "overhead": {"cpu": "250m", "memory": "120Mi"}
    }));
    assert_eq!(r.cpu_milli, 1250);
    assert_eq!(r.memory_bytes, 1144 * MIB);
}

#[test]
fn gpus_follow_the_same_rule() {
    let g = |n: u64| json!({"name": "g", "resources": {"limits": {"nvidia.com/gpu": n}}});
    let r = spec(json!({"containers": [g(1), g(2)]}));
    assert_eq!(r.gpus, 3);
    let r = spec(json!({"initContainers": [g(4)], "containers": [g(1)]}));
    assert_eq!(r.gpus, 4);
    // A request equal to the limit is fine; numbers and strings both work.
    let r = spec(json!({"containers": [{"name": "g", "resources": {
        "requests": {"nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": 2}}}]}));
    assert_eq!(r.gpus, 2);
}

#[test]
fn request_errors_name_the_field() {
    let e = effective_requests(
        &json!({"containers": [{"name": "g", "resources": {"limits": {"nvidia.com/gpu": "1.5"}}}]}),
        "spec",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "field `spec.containers[0].resources.limits[\"nvidia.com/gpu\"]`: invalid quantity \"1.5\": must be a whole number"
    );
    let e = effective_requests(
        &json!({"containers": [{"name": "g", "resources": {"requests": {"nvidia.com/gpu": 1}}}]}),
        "spec",
    )
    .unwrap_err();
    assert_eq!(
        e.field,
        "spec.containers[0].resources.requests[\"nvidia.com/gpu\"]"
    );
    let e = effective_requests(&json!({"containers": []}), "spec").unwrap_err();
    assert_eq!(
        e.to_string(),
        "field `spec.containers`: a pod needs at least one container"
    );
    let e = effective_requests(
        &json!({"containers": [container("1", "1Gi")], "initContainers": [
            {"name": "x", "restartPolicy": "OnFailure"}]}),
        "spec",
    )
    .unwrap_err();
    assert_eq!(e.field, "spec.initContainers[0].restartPolicy");
    let e = effective_requests(
        &json!({"containers": [container("60000", "1Gi"), container("60000", "1Gi")]}),
        "spec",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "field `spec`: the pod requests 120000 cores in total, more than 100000"
    );
    let e = effective_requests(
        &json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": true}}}]}),
        "spec",
    )
    .unwrap_err();
    assert_eq!(e.message, "expected a quantity, found the boolean true");
}

// ---------- annotations and sharing ----------

#[test]
fn sharing_defaults_by_gpu_count() {
    let one = item(&[], gpu_spec(json!({}))).unwrap().unwrap();
    assert_eq!(one.gpus, 1);
    assert_eq!(one.sharing, Sharing::Shared);
    let two = item(
        &[],
        json!({"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "2"}}}]}),
    )
    .unwrap()
    .unwrap();
    assert_eq!(two.sharing, Sharing::Exclusive);
    let forced = item(
        &[("gpu-slicer.io/sharing", "exclusive")],
        gpu_spec(json!({})),
    )
    .unwrap()
    .unwrap();
    assert_eq!(forced.sharing, Sharing::Exclusive);
}

#[test]
fn annotations_are_read() {
    let it = item(
        &[
            ("gpu-slicer.io/gpu-memory", "4Gi"),
            ("gpu-slicer.io/gpu-share", "0.25"),
            ("other.io/x", "y"),
        ],
        gpu_spec(json!({})),
    )
    .unwrap()
    .unwrap();
    assert_eq!(it.gpu_memory_mib, Some(4096));
    assert_eq!(it.gpu_share_milli, Some(250));
    assert_eq!(it.id, "default/p");
}

#[test]
fn annotation_errors() {
    let e = item(
        &[
            ("gpu-slicer.io/sharing", "exclusive"),
            ("gpu-slicer.io/gpu-share", "0.5"),
        ],
        gpu_spec(json!({})),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "field `metadata.annotations[\"gpu-slicer.io/gpu-share\"]`: not allowed on an exclusive pod, which gets whole GPUs"
    );
    let e = item(&[("gpu-slicer.io/gpu-mem", "4Gi")], gpu_spec(json!({}))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "field `metadata.annotations[\"gpu-slicer.io/gpu-mem\"]`: unknown gpu-slicer.io annotation on a pod (known: gpu-slicer.io/gpu-memory, gpu-slicer.io/gpu-memory-context, gpu-slicer.io/gpu-share, gpu-slicer.io/sharing, gpu-slicer.io/isolation)"
    );
    assert!(
        item(
            &[("gpu-slicer.io/sharing", "sometimes")],
            gpu_spec(json!({}))
        )
        .is_err()
    );
    // Unknown keys are caught even on a pod without GPUs.
    assert!(
        item(
            &[("gpu-slicer.io/x", "1")],
            json!({"containers": [{"name": "c"}]})
        )
        .is_err()
    );
    // Values are only read on GPU pods.
    assert_eq!(
        item(
            &[("gpu-slicer.io/sharing", "sometimes")],
            json!({"containers": [{"name": "c"}]})
        ),
        Ok(None)
    );
}

// ---------- constraints ----------

#[test]
fn node_selector_affinity_and_tolerations() {
    let it = item(
        &[],
        gpu_spec(json!({
            "nodeSelector": {"karpenter.k8s.aws/instance-gpu-name": "t4", "gpu": true},
            "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
                        {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["1"]}
                    ]},
                    {"matchExpressions": [{"key": "x", "operator": "Exists"}],
                     "matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}
                ]},
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {}}]
            }},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "dedicated", "value": "gpu"},
                {"operator": "Exists"}
            ]
        })),
    )
    .unwrap()
    .unwrap();
    assert_eq!(it.node_selector.len(), 2);
    assert_eq!(it.node_selector["gpu"], "true");
    assert_eq!(
        it.affinity_terms,
        vec![
            vec![
                Requirement {
                    key: "karpenter.sh/capacity-type".into(),
                    operator: Operator::In,
                    values: vec!["spot".into()]
                },
                Requirement {
                    key: "karpenter.k8s.aws/instance-gpu-count".into(),
                    operator: Operator::Gt,
                    values: vec!["1".into()]
                },
            ],
            vec![
                Requirement {
                    key: "x".into(),
                    operator: Operator::Exists,
                    values: vec![]
                },
                Requirement {
                    key: "metadata.name".into(),
                    operator: Operator::NotIn,
                    values: vec!["n1".into()]
                },
            ],
        ]
    );
    assert_eq!(
        it.tolerations,
        vec![
            Toleration {
                key: Some("nvidia.com/gpu".into()),
                operator: TolerationOperator::Exists,
                value: None,
                effect: Some(TaintEffect::NoSchedule)
            },
            Toleration {
                key: Some("dedicated".into()),
                operator: TolerationOperator::Equal,
                value: Some("gpu".into()),
                effect: None
            },
            Toleration {
                key: None,
                operator: TolerationOperator::Exists,
                value: None,
                effect: None
            },
        ]
    );
}

#[test]
fn empty_affinity_terms_match_nothing() {
    let aff = |terms: Value| {
        gpu_spec(json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}))
    };
    // One empty term next to a real one: the empty one drops out of the OR.
    let it = item(
        &[],
        aff(json!([{}, {"matchExpressions": [{"key": "a", "operator": "Exists"}]}])),
    )
    .unwrap()
    .unwrap();
    assert_eq!(it.affinity_terms.len(), 1);
    // Only empty terms: nothing matches.
    let it = item(&[], aff(json!([{"matchExpressions": []}])))
        .unwrap()
        .unwrap();
    assert_eq!(it.affinity_terms, vec![vec![never_matching_requirement()]]);
    assert!(!it.matches_labels(&|_| Some("x".to_string())));
    // No terms at all is invalid in Kubernetes.
    assert!(item(&[], aff(json!([]))).is_err());
}

#[test]
fn requirement_and_toleration_errors() {
    let base = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0]";
    let req = |r: Value| {
        item(
            &[],
            gpu_spec(json!({"affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [r]}]}}}})),
        )
        .unwrap_err()
        .to_string()
    };
    assert_eq!(
        req(json!({"key": "a", "operator": "Bogus", "values": ["x"]})),
        format!(
            "field `{base}.operator`: unknown operator \"Bogus\" (expected In, NotIn, Exists, DoesNotExist, Gt or Lt)"
        )
    );
    assert_eq!(
        req(json!({"key": "a", "operator": "In"})),
        format!("field `{base}.values`: In needs at least one value")
    );
    assert_eq!(
        req(json!({"key": "a", "operator": "Exists", "values": ["x"]})),
        format!("field `{base}.values`: Exists takes no values")
    );
    assert_eq!(
        req(json!({"key": "a", "operator": "Lt", "values": ["x"]})),
        format!("field `{base}.values`: Lt needs exactly one integer value")
    );
    assert_eq!(
        req(json!({"operator": "Exists"})),
        format!("field `{base}.key`: required field is missing")
    );

    let tol = |t: Value| {
        item(&[], gpu_spec(json!({"tolerations": [t]})))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        tol(json!({"key": "a", "operator": "Exists", "value": "x"})),
        "field `spec.tolerations[0].value`: must be empty when operator is Exists"
    );
    assert_eq!(
        tol(json!({"key": "a", "effect": "NoWay"})),
        "field `spec.tolerations[0].effect`: unknown effect \"NoWay\" (expected NoSchedule, PreferNoSchedule or NoExecute)"
    );
    assert_eq!(
        tol(json!({"key": "a", "operator": "Like"})),
        "field `spec.tolerations[0].operator`: unknown operator \"Like\" (expected Equal or Exists)"
    );
    assert_eq!(
        tol(json!({"value": "a"})),
        "field `spec.tolerations[0].operator`: must be Exists when key is empty"
    );
}

// ---------- loader ----------

const GPU_TEMPLATE: &str = "
  template:
    metadata:
      annotations:
        gpu-slicer.io/gpu-memory: 2Gi
    spec:
      containers:
      - name: c
        resources:
          requests: {cpu: 500m, memory: 1Gi}
          limits: {nvidia.com/gpu: 1}
";

#[test]
fn pod_ids_and_pending() {
    let i = load(
        "apiVersion: v1
kind: Pod
metadata: {name: a, namespace: ml}
spec: {containers: [{name: c, resources: {limits: {nvidia.com/gpu: 1}}}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b}
spec: {containers: [{name: c, resources: {limits: {nvidia.com/gpu: 1}}}]}
---
apiVersion: v1
kind: Pod
metadata: {generateName: job-}
spec: {containers: [{name: c, resources: {limits: {nvidia.com/gpu: 1}}}]}
---
apiVersion: v1
kind: Pod
metadata: {generateName: job-}
spec: {containers: [{name: c, resources: {limits: {nvidia.com/gpu: 1}}}]}
---
apiVersion: v1
kind: Pod
metadata: {name: bound}
spec: {nodeName: n1, containers: [{name: c, resources: {limits: {nvidia.com/gpu: 1}}}]}
---
apiVersion: v1
kind: Pod
metadata: {name: running}
spec: {containers: [{name: c, resources: {limits: {nvidia.com/gpu: 1}}}]}
status: {phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: cpu-only}
spec: {containers: [{name: c}]}
",
    )
    .unwrap();
    let ids: Vec<&str> = i.items.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(ids, ["ml/a", "default/b", "default/job-0", "default/job-1"]);
    assert_eq!(
        i.warnings,
        [
            "t.yaml: document 5 (Pod default/bound): skipped: not pending (bound to node n1)",
            "t.yaml: document 6 (Pod default/running): skipped: not pending (phase Running)",
            "t.yaml: document 7 (Pod default/cpu-only): skipped: requests no nvidia.com/gpu (not a GPU pod)",
        ]
    );
}

#[test]
fn replicas_expansion() {
    let i = load(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: ml}}\nspec:\n  replicas: 3\n{GPU_TEMPLATE}---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db}}\nspec:\n{GPU_TEMPLATE}---\napiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {{name: zero}}\nspec:\n  replicas: 0\n{GPU_TEMPLATE}"
    ))
    .unwrap();
    let ids: Vec<&str> = i.items.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(ids, ["ml/web-0", "ml/web-1", "ml/web-2", "default/db-0"]);
    let it = &i.items[0];
    assert_eq!(it.requests, Resources::new(500, 1024 * MIB));
    assert_eq!(it.gpu_memory_mib, Some(2048));
    assert!(i.warnings.is_empty(), "{:?}", i.warnings);
}

#[test]
fn job_parallelism_and_completions() {
    let job = |spec: &str| {
        load(&format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: j}}\nspec:\n{spec}{GPU_TEMPLATE}"
        ))
        .unwrap()
    };
    assert_eq!(job("").items.len(), 1);
    assert_eq!(job("  parallelism: 4\n").items.len(), 4);
    assert_eq!(job("  parallelism: 4\n  completions: 2\n").items.len(), 2);
    assert_eq!(job("  completions: 5\n").items.len(), 1);
    assert_eq!(job("  parallelism: 0\n").items.len(), 0);
    let s = job("  parallelism: 2\n  suspend: true\n");
    assert!(s.items.is_empty());
    assert_eq!(s.warnings.len(), 1);
    assert_eq!(job("  parallelism: 3\n").items[2].id, "default/j-2");
}

#[test]
fn daemonsets_add_overhead() {
    let i = load(
        "apiVersion: apps/v1
kind: DaemonSet
metadata: {name: a, namespace: kube-system}
spec:
  template:
    spec:
      containers: [{name: c, resources: {requests: {cpu: 100m, memory: 128Mi}}}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: b, namespace: kube-system}
spec:
  template:
    spec:
      initContainers: [{name: i, resources: {requests: {cpu: '1'}}}]
      containers: [{name: c, resources: {limits: {cpu: 50m, memory: 64Mi}}}]
",
    )
    .unwrap();
    assert_eq!(i.daemonset_overhead.pods, 2);
    assert_eq!(
        i.daemonset_overhead.resources,
        Resources::new(100 + 1000, 192 * MIB)
    );
    assert!(i.items.is_empty());
}

#[test]
fn lists_and_typed_lists() {
    let i = load(
        r#"{"apiVersion": "v1", "kind": "PodList", "items": [
            {"metadata": {"name": "a"}, "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}},
            {"metadata": {"name": "b"}, "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}
        ]}"#,
    )
    .unwrap();
    assert_eq!(i.items.len(), 2);
    assert_eq!(i.items[1].id, "default/b");
}

#[test]
fn loading_is_all_or_nothing_and_ids_unique() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, resources: {limits: {nvidia.com/gpu: 1}}}]}\n";
    let mut inputs = Inputs::default();
    let opts = LoadOptions::default();
    load_str(&mut inputs, "a.yaml", pod, &opts).unwrap();
    let bad = format!(
        "{pod}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: b}}\nspec: {{containers: []}}\n"
    );
    assert!(load_str(&mut inputs, "b.yaml", &bad, &opts).is_err());
    assert_eq!(inputs.items.len(), 1);
    let e = load_str(&mut inputs, "c.yaml", pod, &opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        "c.yaml: document 1 (Pod default/a): pod \"default/a\" is defined twice (ids must be unique across all inputs)"
    );
}

#[test]
fn missing_identity_fields() {
    assert_eq!(
        load_err("apiVersion: v1\nmetadata: {name: a}\n"),
        "t.yaml: document 1: field `kind`: required field is missing"
    );
    assert_eq!(
        load_err("kind: Pod\nmetadata: {name: a}\n"),
        "t.yaml: document 1 (Pod default/a): field `apiVersion`: required field is missing"
    );
    assert_eq!(
        load_err("apiVersion: apps/v1\nkind: Deployment\nmetadata: {namespace: x}\n"),
        "t.yaml: document 1 (Deployment): field `metadata.name`: required field is missing"
    );
    assert_eq!(
        load_err("- a\n- b\n"),
        "t.yaml: document 1: expected a Kubernetes object (a mapping), found a list"
    );
}

#[test]
fn error_display_leaves_out_absent_parts() {
    let mut e = InputError::new("<stdin>", "no Kubernetes objects found");
    assert_eq!(e.to_string(), "<stdin>: no Kubernetes objects found");
    e.document = Some(2);
    assert_eq!(
        e.to_string(),
        "<stdin>: document 2: no Kubernetes objects found"
    );
    e.object = Some("Pod default/a".into());
    e.field = Some("spec".into());
    assert_eq!(
        e.to_string(),
        "<stdin>: document 2 (Pod default/a): field `spec`: no Kubernetes objects found"
    );
    e.document = None;
    e.field = None;
    assert_eq!(
        e.to_string(),
        "<stdin> (Pod default/a): no Kubernetes objects found"
    );
    assert!(std::error::Error::source(&e).is_none());
}

#[test]
fn a_field_error_is_the_source_of_its_input_error() {
    use std::error::Error as _;
    let Err(e) = load(
        "apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    resources: {limits: {nvidia.com/gpu: 1, cpu: 4Xi}}
",
    ) else {
        panic!("accepted");
    };
    assert_eq!(e.document, Some(1));
    assert_eq!(
        e.field.as_deref(),
        Some("spec.containers[0].resources.limits.cpu")
    );
    assert!(e.to_string().starts_with(
        "t.yaml: document 1 (Pod default/p): field `spec.containers[0].resources.limits.cpu`: invalid quantity \"4Xi\""
    ), "{e}");
    let field = e.cause.as_ref().expect("made from a field error");
    assert_eq!(field.message, e.message);
    let quantity = e.source().and_then(|s| s.source()).map(ToString::to_string);
    assert_eq!(
        quantity,
        Some(e.message.clone()),
        "the chain reaches the quantity"
    );
}

#[test]
fn typed_pod_adapter() {
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"name": "w", "namespace": "ml",
            "annotations": {"gpu-slicer.io/gpu-share": "500m"}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}
    }))
    .unwrap();
    let it = demand_from_pod(&pod).unwrap().unwrap();
    assert_eq!(it.id, "ml/w");
    assert_eq!(it.gpu_share_milli, Some(500));
}

#[test]
fn a_nodepool_configured_but_not_enabled_gets_a_warning() {
    let i = load(
        "apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: gpu
  annotations: {gpu-slicer.io/replicas: \"4\", gpu-slicer.io/emission: overlay}
spec: {template: {spec: {requirements: []}}}
",
    )
    .unwrap();
    assert!(i.pools.is_empty());
    assert_eq!(
        i.warnings,
        [
            "t.yaml: document 1 (NodePool gpu): has gpu-slicer.io/emission, gpu-slicer.io/replicas \
          but not gpu-slicer.io/enabled: \"true\", so gpu-slicer ignores it (add the annotation \
          to opt it in, or \"false\" to say it stays out)"
        ]
    );
}

#[test]
fn gpu_memory_context_says_whether_the_context_is_in_the_declared_memory() {
    let read = |ann: &[(&str, &str)], spec: Value| item(ann, spec).expect("reads").expect("GPU");
    let plain = read(&[("gpu-slicer.io/gpu-memory", "1Gi")], gpu_spec(json!({})));
    assert!(!plain.gpu_memory_excludes_context, "the contract: included");
    let excluded = read(
        &[
            ("gpu-slicer.io/gpu-memory", "1Gi"),
            ("gpu-slicer.io/gpu-memory-context", "excluded"),
        ],
        gpu_spec(json!({})),
    );
    assert!(excluded.gpu_memory_excludes_context);
    assert_eq!(excluded.gpu_memory_mib, Some(1024));
    // An MPS client limit caps allocations, not the context.
    let mps = read(
        &[],
        json!({"containers": [{"name": "c",
            "env": [{"name": "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", "value": "0=1G"}],
            "resources": {"limits": {"nvidia.com/gpu": 1}}}]}),
    );
    assert_eq!(mps.gpu_memory_mib, Some(1024));
    assert!(mps.gpu_memory_excludes_context);
    let field = "metadata.annotations[\"gpu-slicer.io/gpu-memory-context\"]";
    let e = item(
        &[
            ("gpu-slicer.io/gpu-memory", "1Gi"),
            ("gpu-slicer.io/gpu-memory-context", "sometimes"),
        ],
        gpu_spec(json!({})),
    )
    .expect_err("a bad value");
    assert_eq!(e.field, field);
    let e = item(
        &[("gpu-slicer.io/gpu-memory-context", "excluded")],
        gpu_spec(json!({})),
    )
    .expect_err("nothing to qualify");
    assert_eq!(e.field, field);
    assert!(
        e.message.contains("gpu-slicer.io/gpu-memory"),
        "{}",
        e.message
    );
}
