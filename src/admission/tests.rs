//! Admission tests: the verdicts, the patch applied to real pod JSON, idempotence, the
//! webhook's `review`, and the property that the admitted affinity matches a node exactly
//! when the pod's own affinity does and the node's slice is safe.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::model::slice::{REPLICAS_LABEL, SLICE_GPU_MEMORY_LABEL, SLICE_SHARE_LABEL, Slice};

fn pod(annotations: Value, gpus: u32, affinity: Option<Value>) -> Value {
    let mut spec = json!({
        "containers": [{"name": "c", "image": "i",
            "resources": {"limits": {"nvidia.com/gpu": gpus.to_string()}}}]
    });
    if let Some(a) = affinity {
        spec["affinity"] = a;
    }
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ml", "annotations": annotations},
        "spec": spec})
}

fn admit_pod(p: &Value, policy: &Policy) -> Verdict {
    admit("ml/p", "ml", p, Template::Pod, policy)
}

/// The pod after the verdict's patch.
fn patched(p: &Value, v: &Verdict) -> Value {
    let mut out = p.clone();
    if let Verdict::Mutate { patch, .. } = v {
        json_patch::patch(&mut out, patch).expect("the patch applies");
    }
    out
}

/// The pod's demand as `plan` reads it.
fn demand(p: &Value) -> crate::model::DemandItem {
    let ann: BTreeMap<String, String> =
        serde_json::from_value(p["metadata"]["annotations"].clone()).unwrap_or_default();
    demand_from_pod_spec("ml/p".into(), &ann, &p["spec"])
        .expect("valid")
        .expect("gpu pod")
}

fn node_labels(s: &Slice, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = s
        .labels()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    for (k, v) in extra {
        l.insert(k.to_string(), v.to_string());
    }
    l
}

fn matches(p: &Value, labels: &BTreeMap<String, String>) -> bool {
    demand(p).matches_labels(&|k| labels.get(k).cloned())
}

#[test]
fn a_memory_pod_gets_a_new_required_affinity() {
    let p = pod(json!({"gpu-slicer.io/gpu-memory": "6Gi"}), 1, None);
    let v = admit_pod(&p, &Policy::default());
    let Verdict::Mutate { requirements, .. } = &v else {
        panic!("expected a mutation, got {v:?}");
    };
    assert_eq!(requirements.len(), 1);
    assert_eq!(requirements[0].key, SLICE_GPU_MEMORY_LABEL);
    assert_eq!(requirements[0].values, ["6143"]);
    let after = patched(&p, &v);
    let terms = &after["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"];
    assert_eq!(terms.as_array().map(Vec::len), Some(1));
    // 24 GiB at R = 4 is 6 GiB a slice (fits); at R = 5 it is not.
    assert!(matches(&after, &node_labels(&Slice::new(24576, 4), &[])));
    assert!(!matches(&after, &node_labels(&Slice::new(24576, 5), &[])));
    // A GPU node without slice labels never matches.
    assert!(!matches(&after, &BTreeMap::new()));
}

#[test]
fn existing_terms_each_get_the_requirements_and_empty_terms_stay_empty() {
    let aff = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
            {}
        ]}}, "podAntiAffinity": {"x": 1}});
    let p = pod(json!({"gpu-slicer.io/gpu-share": "0.5"}), 1, Some(aff));
    let v = admit_pod(&p, &Policy::default());
    let after = patched(&p, &v);
    let terms =
        after["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"]
            .as_array()
            .cloned()
            .expect("terms");
    assert_eq!(terms.len(), 3);
    assert_eq!(
        terms[0]["matchExpressions"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(terms[0]["matchExpressions"][1]["key"], SLICE_SHARE_LABEL);
    assert_eq!(terms[1]["matchExpressions"][0]["values"][0], "499");
    assert_eq!(terms[2], json!({}));
    // Other affinity kinds are untouched.
    assert_eq!(
        after["spec"]["affinity"]["podAntiAffinity"],
        json!({"x": 1})
    );
    // The zone term still decides: R = 2 in zone a matches, R = 3 or zone b does not.
    assert!(matches(
        &after,
        &node_labels(&Slice::new(16000, 2), &[("zone", "a")])
    ));
    assert!(!matches(
        &after,
        &node_labels(&Slice::new(16000, 3), &[("zone", "a")])
    ));
    assert!(!matches(
        &after,
        &node_labels(&Slice::new(16000, 2), &[("zone", "b")])
    ));
}

#[test]
fn admission_is_idempotent() {
    let p = pod(
        json!({"gpu-slicer.io/gpu-memory": "4Gi", "gpu-slicer.io/gpu-share": "250m"}),
        1,
        None,
    );
    let once = patched(&p, &admit_pod(&p, &Policy::default()));
    assert_eq!(
        admit_pod(&once, &Policy::default()),
        Verdict::Skip(Skip::AlreadyAdmitted)
    );
}

#[test]
fn exclusive_pods_are_held_to_unsliced_nodes() {
    let p = pod(json!({}), 2, None);
    let v = admit_pod(&p, &Policy::default());
    let Verdict::Mutate { requirements, .. } = &v else {
        panic!("expected a mutation, got {v:?}");
    };
    assert_eq!(requirements[0].key, REPLICAS_LABEL);
    let after = patched(&p, &v);
    assert!(matches(&after, &node_labels(&Slice::new(81920, 1), &[])));
    assert!(!matches(&after, &node_labels(&Slice::new(81920, 2), &[])));
}

#[test]
fn bad_annotations_are_rejected_with_plans_message() {
    let p = pod(json!({"gpu-slicer.io/gpu-memory": "lots"}), 1, None);
    let Verdict::Reject(msg) = admit_pod(&p, &Policy::default()) else {
        panic!("expected a rejection");
    };
    assert!(
        msg.contains(r#"metadata.annotations["gpu-slicer.io/gpu-memory"]"#),
        "{msg}"
    );
    // `plan` reports the same field and message for the same pod.
    let ann = BTreeMap::from([("gpu-slicer.io/gpu-memory".to_string(), "lots".to_string())]);
    let plan_err = demand_from_pod_spec("ml/p".into(), &ann, &p["spec"]).expect_err("bad");
    assert!(
        msg.ends_with(&plan_err.message),
        "{msg} vs {}",
        plan_err.message
    );
    // A typo in the key is refused too.
    let typo = pod(json!({"gpu-slicer.io/gpu-memroy": "4Gi"}), 1, None);
    assert!(matches!(
        admit_pod(&typo, &Policy::default()),
        Verdict::Reject(_)
    ));
    // A malformed GPU quantity is the pod's error, named by its field.
    let mut q = pod(json!({}), 1, None);
    q["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = json!("1.5");
    let Verdict::Reject(m) = admit_pod(&q, &Policy::default()) else {
        panic!("expected a rejection");
    };
    assert!(m.contains("spec.containers[0].resources.limits"), "{m}");
}

#[test]
fn more_than_one_slice_is_refused_when_the_device_plugin_would_fail_it() {
    let p = pod(json!({"gpu-slicer.io/sharing": "shared"}), 2, None);
    let strict = Policy {
        fail_requests_greater_than_one: true,
        ..Policy::default()
    };
    assert!(
        matches!(admit_pod(&p, &strict), Verdict::Reject(m) if m.contains("failRequestsGreaterThanOne"))
    );
    // Allowed by time-slicing, but never onto MPS, which refuses such requests itself.
    let Verdict::Mutate { requirements, .. } = admit_pod(&p, &Policy::default()) else {
        panic!("expected a mutation");
    };
    assert_eq!(requirements.len(), 1);
    assert_eq!(requirements[0].key, "gpu-slicer.io/sharing-strategy");
    assert_eq!(
        requirements[0].values,
        ["fractional", "none", "time-slicing"]
    );
    // Exclusive pods take whole GPUs and are not affected.
    assert!(matches!(
        admit_pod(&pod(json!({}), 2, None), &strict),
        Verdict::Mutate { .. }
    ));
}

#[test]
fn pods_that_are_not_ours_pass_unchanged() {
    let mut cpu = pod(json!({}), 1, None);
    cpu["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "1"}});
    assert_eq!(
        admit_pod(&cpu, &Policy::default()),
        Verdict::Skip(Skip::NoGpu)
    );
    let p = pod(json!({"gpu-slicer.io/gpu-memory": "lots"}), 1, None);
    let only_prod = Policy {
        namespaces: Namespaces {
            allow: vec!["prod".into()],
            deny: vec![],
        },
        ..Policy::default()
    };
    assert_eq!(admit_pod(&p, &only_prod), Verdict::Skip(Skip::Namespace));
    assert_eq!(
        admit_pod(&pod(json!({}), 1, None), &Policy::default()),
        Verdict::Skip(Skip::AnySlice)
    );
}

#[test]
fn workload_templates_are_patched_at_their_template() {
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "ml"},
        "spec": {"replicas": 2, "template": pod(json!({"gpu-slicer.io/gpu-memory": "2Gi"}), 1, None)}});
    let v = admit("ml/d", "ml", &d, Template::Workload, &Policy::default());
    let Verdict::Mutate { patch, .. } = &v else {
        panic!("expected a mutation, got {v:?}");
    };
    let text = serde_json::to_string(patch).expect("json");
    assert!(text.contains("\"/spec/template/spec/affinity\""), "{text}");
    let mut after = d.clone();
    json_patch::patch(&mut after, patch).expect("applies");
    assert!(after["spec"]["template"]["spec"]["affinity"].is_object());
}

fn review_json(operation: &str, object: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "ml", "operation": operation,
            "userInfo": {"username": "admin"},
            "object": object, "oldObject": null, "dryRun": false}})
}

fn respond(review_body: Value) -> Value {
    let r: kube::core::admission::AdmissionReview<DynamicObject> =
        serde_json::from_value(review_body).expect("review");
    let req: AdmissionRequest<DynamicObject> = r.try_into().expect("request");
    serde_json::to_value(review(&req, &Policy::default()).into_review()).expect("json")
}

#[test]
fn review_answers_real_admission_review_json() {
    let out = respond(review_json(
        "CREATE",
        pod(json!({"gpu-slicer.io/gpu-memory": "6Gi"}), 1, None),
    ));
    let r = &out["response"];
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(r["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(r["allowed"], true);
    assert_eq!(r["patchType"], "JSONPatch");
    // kube-core writes the patch bytes as a JSON array of numbers, which the API
    // server's decoder reads into its []byte like a base64 string.
    let bytes: Vec<u8> = serde_json::from_value(r["patch"].clone()).expect("patch bytes");
    let patch: Value = serde_json::from_slice(&bytes).expect("patch json");
    assert_eq!(patch[0]["op"], "add");
    assert_eq!(patch[0]["path"], "/spec/affinity");

    let bad = respond(review_json(
        "CREATE",
        pod(json!({"gpu-slicer.io/gpu-share": "2"}), 1, None),
    ));
    assert_eq!(bad["response"]["allowed"], false);
    let msg = bad["response"]["status"]["message"]
        .as_str()
        .expect("message");
    assert!(msg.contains("gpu-slicer.io/gpu-share"), "{msg}");

    let update = respond(review_json(
        "UPDATE",
        pod(json!({"gpu-slicer.io/gpu-share": "2"}), 1, None),
    ));
    assert_eq!(update["response"]["allowed"], true);
    assert!(update["response"].get("patch").is_none());
}

fn any_requirement() -> impl Strategy<Value = Value> {
    let keys = prop_oneof![
        Just("zone"),
        Just(SLICE_GPU_MEMORY_LABEL),
        Just(SLICE_SHARE_LABEL),
        Just(REPLICAS_LABEL)
    ];
    (keys, 0u8..4, 0u64..40_000).prop_map(|(k, op, n)| match op {
        0 => json!({"key": k, "operator": "In", "values": [if k == "zone" { "a".to_string() } else { n.to_string() }]}),
        1 => json!({"key": k, "operator": "Exists"}),
        2 => json!({"key": k, "operator": "Gt", "values": [n.to_string()]}),
        _ => json!({"key": k, "operator": "NotIn", "values": ["b"]}),
    })
}

proptest! {
    /// For random pods (memory, share, exclusive, and a random required affinity of their
    /// own) and random nodes (slice labels or none, zone), the admitted pod matches a node
    /// exactly when its own affinity did and the node's slice is safe for it.
    #[test]
    fn admitted_affinity_matches_exactly_the_safe_nodes(
        mem_mib in proptest::option::of(1u64..90_000),
        share in proptest::option::of(1u32..=1000),
        exclusive in any::<bool>(),
        terms in proptest::option::of(proptest::collection::vec(
            proptest::collection::vec(any_requirement(), 0..3), 1..3)),
        gpu_mem in 1u64..100_000,
        r in 1u32..=48,
        labelled in any::<bool>(),
        zone in prop_oneof![Just("a"), Just("b")],
        at_boundary in any::<bool>(),
        delta in -2i64..=2,
    ) {
        // Half the cases sit within 2 of the boundaries, where an off-by-one would show.
        let (gpu_mem, share) = if at_boundary {
            let m = mem_mib.map_or(gpu_mem, |m| (m as i64 * i64::from(r) + delta).max(1) as u64);
            (m, share.map(|_| (i64::from(1000 / r) + delta).clamp(1, 1000) as u32))
        } else {
            (gpu_mem, share)
        };
        let mut ann = serde_json::Map::new();
        if let Some(m) = mem_mib {
            ann.insert("gpu-slicer.io/gpu-memory".into(), json!(format!("{m}Mi")));
        }
        if exclusive {
            ann.insert("gpu-slicer.io/sharing".into(), json!("exclusive"));
        } else if let Some(s) = share {
            ann.insert("gpu-slicer.io/gpu-share".into(), json!(format!("{s}m")));
        }
        let affinity = terms.map(|ts| json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": ts.into_iter().map(|t| json!({"matchExpressions": t})).collect::<Vec<_>>()}}}));
        let p = pod(Value::Object(ann), 1, affinity);
        let before = demand(&p);
        let slice = Slice::new(gpu_mem, r);
        let mut labels = if labelled { node_labels(&slice, &[]) } else { BTreeMap::new() };
        labels.insert("zone".into(), zone.to_string());
        let own = before.matches_labels(&|k| labels.get(k).cloned());
        let need = SliceNeed::of(&before, FitRules::time(Policy::default().context_memory_mib));
        let safe = if labelled { need.fits(&slice) } else { need.is_unconstrained() };
        let v = admit_pod(&p, &Policy::default());
        prop_assert!(!matches!(v, Verdict::Reject(_)), "{:?}", v);
        let after = patched(&p, &v);
        prop_assert_eq!(matches(&after, &labels), own && safe);
    }
}

#[test]
fn the_context_reserve_gives_a_silent_pod_a_memory_term() {
    let silent = pod(json!({}), 1, None);
    let with_context = Policy {
        context_memory_mib: 618,
        ..Policy::default()
    };
    let Verdict::Mutate { requirements, .. } = admit_pod(&silent, &with_context) else {
        panic!("a silent pod needs room for its context");
    };
    assert_eq!(
        requirements,
        [Requirement {
            key: "gpu-slicer.io/slice-gpu-memory-mib".into(),
            operator: crate::model::Operator::Gt,
            values: vec!["617".into()],
        }]
    );
    // Without a reserve a silent shared pod fits every slice.
    assert!(matches!(
        admit_pod(&silent, &Policy::default()),
        Verdict::Skip(Skip::AnySlice)
    ));
    // 1 GiB without its context: 1,024 + 618 − 1.
    let excluded = pod(
        json!({"gpu-slicer.io/gpu-memory": "1Gi", "gpu-slicer.io/gpu-memory-context": "excluded"}),
        1,
        None,
    );
    let Verdict::Mutate { requirements, .. } = admit_pod(&excluded, &with_context) else {
        panic!("a memory need");
    };
    assert_eq!(requirements[0].values, ["1641"]);
}

#[test]
fn a_throughput_share_model_writes_the_throughput_term() {
    let quarter = pod(json!({"gpu-slicer.io/gpu-share": "0.25"}), 1, None);
    let keys = |policy: &Policy| {
        let Verdict::Mutate { requirements, .. } = admit_pod(&quarter, policy) else {
            panic!("a share needs a term");
        };
        requirements
            .iter()
            .map(|r| (r.key.clone(), r.values.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(&Policy::default()),
        vec![(SLICE_SHARE_LABEL.to_string(), vec!["249".to_string()])]
    );
    let throughput = Policy {
        share_model: ShareModel::Throughput,
        ..Policy::default()
    };
    assert_eq!(
        keys(&throughput),
        vec![(
            crate::model::slice::SLICE_THROUGHPUT_LABEL.to_string(),
            vec!["249".to_string()]
        )]
    );
    // The term admits exactly the slices the rule allows: a T4 time-sliced at R = 2
    // (365) and under MPS at R = 4 (252), not time-sliced at R = 3 (243) or 4 (182).
    let e = crate::model::slice::Efficiency::MEASURED;
    for (slice, ok) in [
        (Slice::new(16_384, 2), true),
        (Slice::new(16_384, 3), false),
        (Slice::new(16_384, 4), false),
        (Slice::new(16_384, 4).under_mps(e), true),
    ] {
        let after = patched(&quarter, &admit_pod(&quarter, &throughput));
        assert_eq!(matches(&after, &node_labels(&slice, &[])), ok, "{slice:?}");
    }
}
