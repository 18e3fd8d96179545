//! NodePool annotation tests: one per annotation and per malformed value, each
//! asserting the error names the NodePool and the field (~740 code lines, sharing the
//! NodePool builder at the top).

use super::*;
use serde_json::json;

fn nodepool(annotations: Value) -> Value {
    json!({
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": "gpu", "annotations": annotations},
        "spec": {
            "template": {
                "metadata": {"labels": {"team": "ml", "nvidia.com/device-plugin.config": "any"}},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
                    "requirements": [
                        {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g4dn", "g5"], "minValues": 2},
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                        {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gte", "values": ["1"]},
                        {"key": "karpenter.k8s.aws/instance-gpu-memory", "operator": "Lte", "values": ["24576"]},
                        {"key": "karpenter.k8s.aws/instance-size", "operator": "NotIn", "values": ["metal"]},
                        {"key": "topology.kubernetes.io/zone", "operator": "Exists"}
                    ],
                    "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
                    "startupTaints": [{"key": "gpu-slicer.io/slicing-pending", "value": "true", "effect": "NoSchedule"}]
                }
            },
            "limits": {"nvidia.com/gpu": "100"}
        }
    })
}

fn err_of(np: &Value) -> (String, String) {
    match pool_from_nodepool(np) {
        Ok(p) => panic!("accepted {np} as {p:?}"),
        Err(e) => (e.field, e.message),
    }
}

fn ann_err(annotations: Value) -> (String, String) {
    err_of(&nodepool(annotations))
}

#[test]
fn valid_nodepool() {
    let np = nodepool(json!({
        "gpu-slicer.io/enabled": "true",
        "gpu-slicer.io/replicas": "4",
        "gpu-slicer.io/gpu-memory-headroom": "512Mi",
        "gpu-slicer.io/max-hourly-cost": "12.5",
        "gpu-slicer.io/emission": "overlay",
        "gpu-slicer.io/repack": "false",
        "karpenter.sh/do-not-disrupt": "true"
    }));
    let pool = pool_from_nodepool(&np).unwrap().unwrap();
    assert_eq!(pool.name, "gpu");
    assert_eq!(pool.replicas, ReplicaPolicy::Fixed(4));
    assert_eq!(pool.gpu_memory_headroom_mib, 512);
    assert_eq!(pool.max_hourly_cost, Some(12.5));
    assert_eq!(pool.emission.as_deref(), Some("overlay"));
    assert!(!pool.repack);
    assert_eq!(pool.labels.get("team").map(String::as_str), Some("ml"));
    assert_eq!(pool.requirements.len(), 6);
    assert_eq!(
        pool.requirements[2],
        Requirement {
            key: "karpenter.k8s.aws/instance-gpu-count".into(),
            operator: Operator::Gt,
            values: vec!["0".into()],
        }
    );
    assert_eq!(
        pool.requirements[3],
        Requirement {
            key: "karpenter.k8s.aws/instance-gpu-memory".into(),
            operator: Operator::Lt,
            values: vec!["24577".into()],
        }
    );
    assert_eq!(pool.requirements[5].operator, Operator::Exists);
    assert_eq!(
        pool.taints,
        vec![Taint {
            key: "nvidia.com/gpu".into(),
            value: Some("true".into()),
            effect: TaintEffect::NoSchedule
        }],
        "startup taints are not part of the pool"
    );
}

#[test]
fn defaults() {
    let pool = pool_from_nodepool(&nodepool(json!({"gpu-slicer.io/enabled": "true"})))
        .unwrap()
        .unwrap();
    assert_eq!(pool.replicas, ReplicaPolicy::Auto { max: 10 });
    assert_eq!(pool.gpu_memory_headroom_mib, 0);
    assert_eq!(pool.max_hourly_cost, None);
    assert_eq!(pool.emission, None);
    assert!(pool.repack, "repacking is on unless the pool says false");
    assert_eq!(pool.sharing_strategy, SharingChoice::Auto);
    for (v, want) in [
        ("mps", SharingChoice::Mps),
        ("time-slicing", SharingChoice::TimeSlicing),
        ("auto", SharingChoice::Auto),
    ] {
        let p = pool_from_nodepool(&nodepool(json!({
            "gpu-slicer.io/enabled": "true",
            "gpu-slicer.io/sharing-strategy": v
        })))
        .unwrap()
        .unwrap();
        assert_eq!(p.sharing_strategy, want);
    }

    let pool = pool_from_nodepool(&nodepool(json!({
        "gpu-slicer.io/enabled": "true",
        "gpu-slicer.io/replicas": "auto",
        "gpu-slicer.io/max-replicas": "16",
        "gpu-slicer.io/gpu-memory-headroom": "0"
    })))
    .unwrap()
    .unwrap();
    assert_eq!(pool.replicas, ReplicaPolicy::Auto { max: 16 });

    let pool = pool_from_nodepool(&nodepool(json!({
        "gpu-slicer.io/enabled": "true",
        "gpu-slicer.io/replicas": "8",
        "gpu-slicer.io/max-replicas": "8"
    })))
    .unwrap()
    .unwrap();
    assert_eq!(pool.replicas, ReplicaPolicy::Fixed(8));
}

#[test]
fn configured_but_not_enabled_is_named() {
    let np = nodepool(
        json!({"gpu-slicer.io/replicas": "4", "gpu-slicer.io/sharing-strategy": "mps", "other": "x"}),
    );
    assert_eq!(pool_from_nodepool(&np), Ok(None));
    assert_eq!(
        annotations_without_enabled(&np),
        ["gpu-slicer.io/replicas", "gpu-slicer.io/sharing-strategy"]
    );
    // Explicitly off, opted in, or without gpu-slicer annotations: nothing to say.
    for a in [
        json!({"gpu-slicer.io/enabled": "false", "gpu-slicer.io/replicas": "4"}),
        json!({"gpu-slicer.io/enabled": "true", "gpu-slicer.io/replicas": "4"}),
        json!({"other": "x"}),
    ] {
        assert!(annotations_without_enabled(&nodepool(a)).is_empty());
    }
}

#[test]
fn not_opted_in() {
    assert_eq!(pool_from_nodepool(&nodepool(json!({}))), Ok(None));
    assert_eq!(pool_from_nodepool(&nodepool(Value::Null)), Ok(None));
    assert_eq!(
        pool_from_nodepool(&nodepool(
            json!({"gpu-slicer.io/enabled": "false", "gpu-slicer.io/replicas": "99"})
        )),
        Ok(None),
        "values of a disabled NodePool are not checked"
    );
    let mut own = nodepool(json!({"gpu-slicer.io/enabled": "true"}));
    own["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "gpu-slicer"});
    assert_eq!(pool_from_nodepool(&own), Ok(None));
}

#[test]
fn legacy_shapes() {
    let v1beta1 = json!({
        "apiVersion": "karpenter.sh/v1beta1",
        "kind": "NodePool",
        "metadata": {"name": "old", "annotations": {"gpu-slicer.io/enabled": "true", "gpu-slicer.io/emission": "v1beta1"}},
        "spec": {"template": {"spec": {"requirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g4dn.xlarge"]}]}}}
    });
    let pool = pool_from_nodepool(&v1beta1).unwrap().unwrap();
    assert_eq!(pool.requirements[0].values, vec!["g4dn.xlarge".to_string()]);

    let provisioner = json!({
        "apiVersion": "karpenter.sh/v1alpha5",
        "kind": "Provisioner",
        "metadata": {"name": "gpu", "annotations": {"gpu-slicer.io/enabled": "true", "gpu-slicer.io/replicas": "10"}},
        "spec": {
            "labels": {"gpu": "yes"},
            "requirements": [{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g4dn"]}],
            "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
            "startupTaints": [{"key": "x", "effect": "NoSchedule"}]
        }
    });
    let pool = pool_from_nodepool(&provisioner).unwrap().unwrap();
    assert_eq!(pool.replicas, ReplicaPolicy::Fixed(10));
    assert_eq!(pool.labels.get("gpu").map(String::as_str), Some("yes"));
    assert_eq!(pool.requirements.len(), 1);
    assert_eq!(pool.taints.len(), 1);
    assert_eq!(pool.taints[0].value, None);
}

#[test]
fn annotation_errors() {
    let on = |k: &str, v: &str| json!({"gpu-slicer.io/enabled": "true", k: v});
    let f = |k: &str| annotation_field(k);
    let cases = vec![
        (
            json!({"gpu-slicer.io/enabled": "yes"}),
            f(ENABLED),
            "must be \"true\" or \"false\", got \"yes\"",
        ),
        (
            on(REPACK, "off"),
            f(REPACK),
            "must be \"true\" or \"false\", got \"off\"",
        ),
        (
            on(SHARING_STRATEGY, "MPS"),
            f(SHARING_STRATEGY),
            "must be one of time-slicing, mps, auto, got \"MPS\"",
        ),
        (
            json!({"gpu-slicer.io/enabled": true}),
            f(ENABLED),
            "must be a string, got the boolean true (quote the value in YAML)",
        ),
        (
            on(REPLICAS, "1"),
            f(REPLICAS),
            "must be \"auto\" or an integer from 2 to 48, got \"1\"",
        ),
        (
            on(REPLICAS, "49"),
            f(REPLICAS),
            "must be \"auto\" or an integer from 2 to 48, got \"49\"",
        ),
        (
            on(REPLICAS, "four"),
            f(REPLICAS),
            "must be \"auto\" or an integer from 2 to 48, got \"four\"",
        ),
        (
            on(REPLICAS, "4.0"),
            f(REPLICAS),
            "must be \"auto\" or an integer from 2 to 48, got \"4.0\"",
        ),
        (
            on(REPLICAS, "Auto"),
            f(REPLICAS),
            "must be \"auto\" or an integer from 2 to 48, got \"Auto\"",
        ),
        (
            on(MAX_REPLICAS, "64"),
            f(MAX_REPLICAS),
            "must be an integer from 2 to 48, got \"64\"",
        ),
        (
            on(MAX_REPLICAS, "1"),
            f(MAX_REPLICAS),
            "must be an integer from 2 to 48, got \"1\"",
        ),
        (
            json!({"gpu-slicer.io/enabled": "true", "gpu-slicer.io/replicas": "8", "gpu-slicer.io/max-replicas": "4"}),
            f(MAX_REPLICAS),
            "is 4, below the fixed replicas 8; max-replicas only caps \"auto\", so remove it or raise it to at least 8",
        ),
        (
            on(GPU_MEMORY_HEADROOM, "-1Gi"),
            f(GPU_MEMORY_HEADROOM),
            "must not be negative, got \"-1Gi\"",
        ),
        (
            on(GPU_MEMORY_HEADROOM, "lots"),
            f(GPU_MEMORY_HEADROOM),
            "must be a Kubernetes quantity such as 512Mi or 1Gi, got \"lots\" (no number)",
        ),
        (
            on(MAX_HOURLY_COST, "0"),
            f(MAX_HOURLY_COST),
            "must be greater than 0, got \"0\"",
        ),
        (
            on(MAX_HOURLY_COST, "0.00"),
            f(MAX_HOURLY_COST),
            "must be greater than 0, got \"0.00\"",
        ),
        (
            on(MAX_HOURLY_COST, "-5"),
            f(MAX_HOURLY_COST),
            "must be a positive decimal number of USD per hour such as 12.5, got \"-5\"",
        ),
        (
            on(MAX_HOURLY_COST, "$12"),
            f(MAX_HOURLY_COST),
            "must be a positive decimal number of USD per hour such as 12.5, got \"$12\"",
        ),
        (
            on(MAX_HOURLY_COST, "inf"),
            f(MAX_HOURLY_COST),
            "must be a positive decimal number of USD per hour such as 12.5, got \"inf\"",
        ),
        (
            on(MAX_HOURLY_COST, "NaN"),
            f(MAX_HOURLY_COST),
            "must be a positive decimal number of USD per hour such as 12.5, got \"NaN\"",
        ),
        (
            on(MAX_HOURLY_COST, "1e3"),
            f(MAX_HOURLY_COST),
            "must be a positive decimal number of USD per hour such as 12.5, got \"1e3\"",
        ),
        (
            on(EMISSION, "overlays"),
            f(EMISSION),
            "must be one of auto, overlay, static, nodeclaim, v1beta1, v1alpha5, got \"overlays\"",
        ),
        (
            json!({"gpu-slicer.io/enabled": "true", "gpu-slicer.io/replica": "4"}),
            f("gpu-slicer.io/replica"),
            "unknown gpu-slicer annotation; did you mean gpu-slicer.io/replicas? (known: gpu-slicer.io/enabled, gpu-slicer.io/replicas, gpu-slicer.io/max-replicas, gpu-slicer.io/gpu-memory-headroom, gpu-slicer.io/max-hourly-cost, gpu-slicer.io/emission, gpu-slicer.io/repack, gpu-slicer.io/sharing-strategy, gpu-slicer.io/context-memory, gpu-slicer.io/share-model, gpu-slicer.io/time-slicing-efficiency, gpu-slicer.io/mps-efficiency)",
        ),
        (
            json!({"gpu-slicer.io/enable": "true"}),
            f("gpu-slicer.io/enable"),
            "unknown gpu-slicer annotation; did you mean gpu-slicer.io/enabled? (known: gpu-slicer.io/enabled, gpu-slicer.io/replicas, gpu-slicer.io/max-replicas, gpu-slicer.io/gpu-memory-headroom, gpu-slicer.io/max-hourly-cost, gpu-slicer.io/emission, gpu-slicer.io/repack, gpu-slicer.io/sharing-strategy, gpu-slicer.io/context-memory, gpu-slicer.io/share-model, gpu-slicer.io/time-slicing-efficiency, gpu-slicer.io/mps-efficiency)",
        ),
        (
            json!({"gpu-slicer.io/enabled": "true", "gpu-slicer.io/colour": "blue"}),
            f("gpu-slicer.io/colour"),
            "unknown gpu-slicer annotation (known: gpu-slicer.io/enabled, gpu-slicer.io/replicas, gpu-slicer.io/max-replicas, gpu-slicer.io/gpu-memory-headroom, gpu-slicer.io/max-hourly-cost, gpu-slicer.io/emission, gpu-slicer.io/repack, gpu-slicer.io/sharing-strategy, gpu-slicer.io/context-memory, gpu-slicer.io/share-model, gpu-slicer.io/time-slicing-efficiency, gpu-slicer.io/mps-efficiency)",
        ),
        (
            json!({"gpu-slicer.io/enabled": "true", "gpu-slicer.io/gpu-memory": "4Gi"}),
            f("gpu-slicer.io/gpu-memory"),
            "gpu-slicer.io/gpu-memory is a pod annotation, not a NodePool one; a NodePool takes: gpu-slicer.io/enabled, gpu-slicer.io/replicas, gpu-slicer.io/max-replicas, gpu-slicer.io/gpu-memory-headroom, gpu-slicer.io/max-hourly-cost, gpu-slicer.io/emission, gpu-slicer.io/repack, gpu-slicer.io/sharing-strategy, gpu-slicer.io/context-memory, gpu-slicer.io/share-model, gpu-slicer.io/time-slicing-efficiency, gpu-slicer.io/mps-efficiency",
        ),
        (
            json!({"gpu-slicer.io/enabled": "true", "gpu-slicer.io/replicas": 4}),
            f(REPLICAS),
            "must be a string, got the number 4 (quote the value in YAML)",
        ),
    ];
    for (ann, field, message) in cases {
        assert_eq!(
            ann_err(ann.clone()),
            (field.clone(), message.to_string()),
            "annotations {ann}"
        );
    }
    assert_eq!(
        FieldError::new(f(REPLICAS), "x").to_string(),
        "field `metadata.annotations[\"gpu-slicer.io/replicas\"]`: x"
    );
}

#[test]
fn spec_errors() {
    let with_req = |r: Value| {
        let mut np = nodepool(json!({"gpu-slicer.io/enabled": "true"}));
        np["spec"]["template"]["spec"]["requirements"] = json!([r]);
        err_of(&np)
    };
    let rf = |s: &str| format!("spec.template.spec.requirements[0].{s}");
    let cases = vec![
        (
            json!({"key": "k", "operator": "Equals", "values": ["a"]}),
            rf("operator"),
            "unknown operator \"Equals\"; expected one of In, NotIn, Exists, DoesNotExist, Gt, Lt, Gte, Lte",
        ),
        (
            json!({"key": "k", "operator": "In"}),
            rf("values"),
            "operator In requires at least one value",
        ),
        (
            json!({"key": "k", "operator": "NotIn", "values": []}),
            rf("values"),
            "operator NotIn requires at least one value",
        ),
        (
            json!({"key": "k", "operator": "Exists", "values": ["a"]}),
            rf("values"),
            "operator Exists takes no values, got 1",
        ),
        (
            json!({"key": "k", "operator": "DoesNotExist", "values": ["a", "b"]}),
            rf("values"),
            "operator DoesNotExist takes no values, got 2",
        ),
        (
            json!({"key": "k", "operator": "Gt", "values": ["a"]}),
            rf("values"),
            "operator Gt requires exactly one integer value, got \"a\"",
        ),
        (
            json!({"key": "k", "operator": "Lt", "values": ["1", "2"]}),
            rf("values"),
            "operator Lt requires exactly one integer value, got 2 values",
        ),
        (
            json!({"key": "k", "operator": "Gt"}),
            rf("values"),
            "operator Gt requires exactly one integer value, got 0 values",
        ),
        (
            json!({"key": "k", "operator": "In", "values": [4]}),
            rf("values[0]"),
            "must be a string, got the number 4 (quote the value in YAML)",
        ),
        (
            json!({"operator": "In", "values": ["a"]}),
            rf("key"),
            "is required",
        ),
        (
            json!({"key": "k", "values": ["a"]}),
            rf("operator"),
            "is required",
        ),
        (
            json!({"key": "k", "operator": "In", "values": ["a"], "minValues": 2}),
            rf("minValues"),
            "is 2 but the requirement lists only 1 values",
        ),
        (
            json!({"key": "k", "operator": "In", "values": ["a"], "minValues": 0}),
            rf("minValues"),
            "must be an integer from 1 to 50, got the number 0",
        ),
        (
            json!({"key": "k", "operator": "In", "values": ["a"], "value": "b"}),
            rf("value"),
            "unknown key `value` in a requirement; did you mean `values`? (expected one of: key, operator, values, minValues)",
        ),
        (
            json!("k In a"),
            "spec.template.spec.requirements[0]".to_string(),
            "must be a mapping, got the string \"k In a\"",
        ),
    ];
    for (r, field, message) in cases {
        assert_eq!(
            with_req(r.clone()),
            (field, message.to_string()),
            "requirement {r}"
        );
    }

    let with_taint = |t: Value| {
        let mut np = nodepool(json!({"gpu-slicer.io/enabled": "true"}));
        np["spec"]["template"]["spec"]["taints"] = json!([t]);
        err_of(&np)
    };
    assert_eq!(
        with_taint(json!({"key": "a", "effect": "NoScheduel"})),
        (
            "spec.template.spec.taints[0].effect".to_string(),
            "must be one of NoSchedule, PreferNoSchedule, NoExecute, got \"NoScheduel\""
                .to_string()
        )
    );
    assert_eq!(
        with_taint(json!({"key": "a"})),
        (
            "spec.template.spec.taints[0].effect".to_string(),
            "is required".to_string()
        )
    );
    assert_eq!(
        with_taint(json!({"key": "a", "effect": "NoSchedule", "operator": "Exists"})).1,
        "unknown key `operator` in a taint; (expected one of: key, value, effect, timeAdded)"
    );

    let mut np = nodepool(json!({"gpu-slicer.io/enabled": "true"}));
    np["spec"]["template"]["metadata"]["labels"] = json!({"gpu": 1});
    assert_eq!(
        err_of(&np),
        (
            "spec.template.metadata.labels.gpu".to_string(),
            "must be a string, got the number 1 (quote the value in YAML)".to_string()
        )
    );
    let mut np = nodepool(json!({"gpu-slicer.io/enabled": "true"}));
    np["metadata"].as_object_mut().unwrap().remove("name");
    assert_eq!(
        err_of(&np),
        ("metadata.name".to_string(), "is required".to_string())
    );
    let mut np = nodepool(json!({"gpu-slicer.io/enabled": "true"}));
    np["spec"]["template"]["spec"]["requirements"] = json!({"key": "a"});
    assert_eq!(
        err_of(&np),
        (
            "spec.template.spec.requirements".to_string(),
            "must be a list, got a mapping".to_string()
        )
    );
    let mut np = nodepool(json!({"gpu-slicer.io/enabled": "true"}));
    np["kind"] = json!("Deployment");
    assert_eq!(
        err_of(&np),
        (
            "kind".to_string(),
            "must be NodePool (karpenter.sh/v1, v1beta1) or Provisioner (karpenter.sh/v1alpha5), got \"Deployment\"".to_string()
        )
    );
    let mut np = nodepool(json!({"gpu-slicer.io/enabled": "true"}));
    np["apiVersion"] = json!("karpenter.sh/v1alpha5");
    assert_eq!(
        err_of(&np),
        (
            "apiVersion".to_string(),
            "a NodePool must be karpenter.sh/v1 or karpenter.sh/v1beta1, got \"karpenter.sh/v1alpha5\"".to_string()
        )
    );
}

#[test]
fn replicas_flag() {
    assert_eq!(
        parse_replicas_flag("auto", 10),
        Ok(ReplicaPolicy::Auto { max: 10 })
    );
    assert_eq!(parse_replicas_flag("4", 10), Ok(ReplicaPolicy::Fixed(4)));
    assert_eq!(parse_replicas_flag("48", 10), Ok(ReplicaPolicy::Fixed(48)));
    assert_eq!(
        parse_replicas_flag("1", 10),
        Ok(ReplicaPolicy::OneOf(vec![]))
    );
    assert_eq!(parse_replicas_flag("1", 10).unwrap().allowed(), vec![1]);
    for bad in [
        "0",
        "49",
        "-2",
        "two",
        "",
        " 4",
        "4 ",
        "+4",
        "AUTO",
        "99999999999999999999",
    ] {
        let e = parse_replicas_flag(bad, 10).unwrap_err();
        assert_eq!(e.field, "--replicas");
        assert_eq!(
            e.message,
            format!("must be \"auto\" or an integer from 1 to 48, got {bad:?}")
        );
    }
    assert_eq!(
        parse_replicas_flag("auto", 64),
        Err(FieldError::new(
            "--max-replicas",
            "must be an integer from 2 to 48, got 64"
        ))
    );
    assert_eq!(
        parse_replicas_flag("auto", 1).unwrap_err().field,
        "--max-replicas"
    );
}

#[test]
fn no_panic_on_malformed_nodepools() {
    let base = nodepool(json!({"gpu-slicer.io/enabled": "true", "gpu-slicer.io/replicas": "4"}));
    let junk = [
        Value::Null,
        json!(true),
        json!(-1),
        json!(1.5),
        json!(""),
        json!("x"),
        json!([]),
        json!([null, 1, "a", {}]),
        json!({}),
        json!({"": null}),
        json!(u64::MAX),
        json!(i64::MIN),
    ];
    // Replace every value in the object, at every depth, with each piece of junk.
    fn paths(v: &Value, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(prefix.clone());
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    let mut p = prefix.clone();
                    p.push(k.clone());
                    paths(c, p, out);
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    let mut p = prefix.clone();
                    p.push(i.to_string());
                    paths(c, p, out);
                }
            }
            _ => {}
        }
    }
    let mut all = Vec::new();
    paths(&base, Vec::new(), &mut all);
    let mut tried = 0;
    for p in &all {
        for j in &junk {
            let mut v = base.clone();
            let mut cur = &mut v;
            for seg in p {
                cur = if cur.is_array() {
                    &mut cur[seg.parse::<usize>().unwrap()]
                } else {
                    &mut cur[seg.as_str()]
                };
            }
            *cur = j.clone();
            let _ = pool_from_nodepool(&v);
            tried += 1;
        }
    }
    assert!(tried > 300);
    for s in [
        "",
        " ",
        "-",
        "+",
        ".",
        "..",
        "1.",
        ".1",
        "1e9",
        "0x10",
        "４",
        "٣",
        "1_000",
        "∞",
        "99999999999999999999999999999999",
        "-0",
        "00",
        "0.0000000001",
        "1/2",
        "½",
    ] {
        let _ = parse_replicas_flag(s, 10);
        let _ = super::super::parse_share(s);
        let _ = super::super::parse_gpu_memory_mib(s);
        let _ = parse_cost(s);
        for key in NODEPOOL_ANNOTATIONS {
            let _ =
                pool_from_nodepool(&nodepool(json!({"gpu-slicer.io/enabled": "true", *key: s})));
        }
    }
}

#[test]
fn context_memory_is_a_non_negative_quantity_of_the_pool() {
    let pool = |v: &str| {
        pool_from_nodepool(&nodepool(json!({
            "gpu-slicer.io/enabled": "true",
            "gpu-slicer.io/context-memory": v
        })))
    };
    assert_eq!(
        pool("1Gi")
            .expect("reads")
            .expect("a pool")
            .context_memory_mib,
        Some(1024)
    );
    assert_eq!(
        pool("0")
            .expect("reads")
            .expect("a pool")
            .context_memory_mib,
        Some(0)
    );
    let plain = pool_from_nodepool(&nodepool(json!({"gpu-slicer.io/enabled": "true"})))
        .expect("reads")
        .expect("a pool");
    assert_eq!(plain.context_memory_mib, None);
    for bad in ["-1Gi", "lots"] {
        let (field, _) = ann_err(json!({
            "gpu-slicer.io/enabled": "true",
            "gpu-slicer.io/context-memory": bad
        }));
        assert_eq!(
            field, "metadata.annotations[\"gpu-slicer.io/context-memory\"]",
            "{bad}"
        );
    }
}

#[test]
fn share_model_and_efficiencies_are_the_pools() {
    let pool = |ann: Value| {
        let mut a = json!({"gpu-slicer.io/enabled": "true"});
        if let (Some(m), Some(extra)) = (a.as_object_mut(), ann.as_object()) {
            m.extend(extra.clone());
        }
        pool_from_nodepool(&nodepool(a))
            .expect("reads")
            .expect("a pool")
    };
    let p = pool(json!({
        "gpu-slicer.io/share-model": "throughput",
        "gpu-slicer.io/time-slicing-efficiency": "0.6",
        "gpu-slicer.io/mps-efficiency": "1250m"
    }));
    assert_eq!(p.share_model, Some(ShareModel::Throughput));
    assert_eq!(
        (p.time_slicing_efficiency_milli, p.mps_efficiency_milli),
        (Some(600), Some(1250))
    );
    let plain = pool(json!({}));
    assert_eq!(
        (
            plain.share_model,
            plain.time_slicing_efficiency_milli,
            plain.mps_efficiency_milli
        ),
        (None, None, None)
    );
    let cases = [
        (
            "gpu-slicer.io/share-model",
            "speed",
            "must be one of time, throughput, got \"speed\"",
        ),
        (
            "gpu-slicer.io/time-slicing-efficiency",
            "1.1",
            "must be at most 1 (the GPU alone), got \"1.1\"",
        ),
        (
            "gpu-slicer.io/mps-efficiency",
            "3",
            "must be at most 2 (twice the GPU alone), got \"3\"",
        ),
        (
            "gpu-slicer.io/mps-efficiency",
            "fast",
            "must be a decimal in (0, 2] such as 0.73, or thousandths such as 730m, got \"fast\"",
        ),
        (
            "gpu-slicer.io/time-slicing-efficiency",
            "0",
            "must be greater than 0, got \"0\"",
        ),
    ];
    for (key, value, message) in cases {
        let got = ann_err(json!({"gpu-slicer.io/enabled": "true", key: value}));
        assert_eq!(
            got,
            (
                format!("metadata.annotations[{key:?}]"),
                message.to_string()
            ),
            "{key}: {value}"
        );
    }
}
