//! Self-test of `support/crd_schema.rs`: minimal valid objects of every kind pass, and each
//! kind of mistake is rejected with an error at the offending field's JSON pointer.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/crd_schema.rs"]
mod crd_schema;

use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Minimal valid objects, from the CRDs' required fields
// ---------------------------------------------------------------------------------------------

fn requirement() -> Value {
    json!({ "key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g5"] })
}

fn node_pool_v1() -> Value {
    json!({
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": { "name": "gpu" },
        "spec": {
            "template": {
                "spec": {
                    "nodeClassRef": {
                        "group": "karpenter.k8s.aws",
                        "kind": "EC2NodeClass",
                        "name": "default"
                    },
                    "requirements": [requirement()]
                }
            }
        }
    })
}

fn node_claim_v1() -> Value {
    json!({
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodeClaim",
        "metadata": { "name": "gpu-abcde" },
        "spec": {
            "nodeClassRef": { "group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default" },
            "requirements": [requirement()]
        }
    })
}

fn ec2_node_class_v1() -> Value {
    json!({
        "apiVersion": "karpenter.k8s.aws/v1",
        "kind": "EC2NodeClass",
        "metadata": { "name": "default" },
        "spec": {
            "role": "KarpenterNodeRole-demo",
            "amiSelectorTerms": [{ "alias": "al2023@latest" }],
            "subnetSelectorTerms": [{ "tags": { "karpenter.sh/discovery": "demo" } }],
            "securityGroupSelectorTerms": [{ "tags": { "karpenter.sh/discovery": "demo" } }]
        }
    })
}

fn node_overlay() -> Value {
    json!({
        "apiVersion": "karpenter.sh/v1alpha1",
        "kind": "NodeOverlay",
        "metadata": { "name": "gpu-slices" },
        "spec": {
            "requirements": [
                { "key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g5.xlarge"] }
            ]
        }
    })
}

fn provisioner() -> Value {
    json!({
        "apiVersion": "karpenter.sh/v1alpha5",
        "kind": "Provisioner",
        "metadata": { "name": "gpu" },
        "spec": { "providerRef": { "name": "default" } }
    })
}

fn aws_node_template() -> Value {
    json!({
        "apiVersion": "karpenter.k8s.aws/v1alpha1",
        "kind": "AWSNodeTemplate",
        "metadata": { "name": "default" },
        "spec": {
            "subnetSelector": { "karpenter.sh/discovery": "demo" },
            "securityGroupSelector": { "karpenter.sh/discovery": "demo" }
        }
    })
}

fn node_pool_v1beta1() -> Value {
    json!({
        "apiVersion": "karpenter.sh/v1beta1",
        "kind": "NodePool",
        "metadata": { "name": "gpu" },
        "spec": {
            "template": {
                "spec": {
                    "nodeClassRef": { "name": "default" },
                    "requirements": [requirement()]
                }
            }
        }
    })
}

fn ec2_node_class_v1beta1() -> Value {
    json!({
        "apiVersion": "karpenter.k8s.aws/v1beta1",
        "kind": "EC2NodeClass",
        "metadata": { "name": "default" },
        "spec": {
            "amiFamily": "AL2023",
            "role": "KarpenterNodeRole-demo",
            "subnetSelectorTerms": [{ "tags": { "karpenter.sh/discovery": "demo" } }],
            "securityGroupSelectorTerms": [{ "tags": { "karpenter.sh/discovery": "demo" } }]
        }
    })
}

fn config_map() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": "time-slicing-config", "namespace": "kube-system" },
        "data": { "any": "version: v1\nsharing:\n  timeSlicing: {}\n" }
    })
}

fn all_minimal() -> Vec<Value> {
    vec![
        node_pool_v1(),
        node_claim_v1(),
        ec2_node_class_v1(),
        node_overlay(),
        provisioner(),
        aws_node_template(),
        node_pool_v1beta1(),
        ec2_node_class_v1beta1(),
        config_map(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Sets `value` at a JSON pointer, creating missing objects on the way.
fn set(obj: &mut Value, pointer: &str, value: Value) {
    let (parent, last) = pointer.rsplit_once('/').expect("a pointer with a '/'");
    let mut node = obj;
    for token in parent.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        node = match node {
            Value::Array(list) => {
                let i: usize = token.parse().expect("an array index");
                list.get_mut(i).expect("index in range")
            }
            Value::Object(map) => map.entry(token).or_insert_with(|| json!({})),
            other => panic!("cannot descend into {other} at {pointer}"),
        };
    }
    let last = last.replace("~1", "/").replace("~0", "~");
    match node {
        Value::Array(list) => list[last.parse::<usize>().expect("an array index")] = value,
        Value::Object(map) => {
            map.insert(last, value);
        }
        other => panic!("cannot set a field of {other} at {pointer}"),
    }
}

fn remove(obj: &mut Value, pointer: &str) {
    let (parent, last) = pointer.rsplit_once('/').expect("a pointer with a '/'");
    obj.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove(last))
        .unwrap_or_else(|| panic!("nothing to remove at {pointer}"));
}

fn with(mut obj: Value, pointer: &str, value: Value) -> Value {
    set(&mut obj, pointer, value);
    obj
}

#[track_caller]
fn assert_valid(obj: &Value) {
    if let Err(errors) = crd_schema::validate(obj) {
        panic!(
            "expected valid, got:\n  {}\nobject: {obj:#}",
            errors.join("\n  ")
        );
    }
}

/// Asserts the object is rejected with an error at exactly `pointer` (the error starts with
/// `"<pointer>: "`) whose text contains `reason`.
#[track_caller]
fn assert_rejected(obj: &Value, pointer: &str, reason: &str) -> Vec<String> {
    let errors = match crd_schema::validate(obj) {
        Ok(()) => panic!("expected an error at {pointer}, but the object is valid: {obj:#}"),
        Err(errors) => errors,
    };
    let prefix = format!("{pointer}: ");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&prefix) && e.contains(reason)),
        "no error at {pointer} mentioning {reason:?}; got:\n  {}",
        errors.join("\n  ")
    );
    errors
}

// ---------------------------------------------------------------------------------------------
// Valid objects
// ---------------------------------------------------------------------------------------------

#[test]
fn minimal_objects_of_every_kind_pass() {
    for obj in all_minimal() {
        assert_valid(&obj);
    }
    assert!(crd_schema::validate_all(&all_minimal()).is_ok());
}

#[test]
fn every_crd_version_is_loaded() {
    let kinds = crd_schema::known_kinds();
    for expected in [
        "karpenter.sh/v1/NodePool",
        "karpenter.sh/v1/NodeClaim",
        "karpenter.k8s.aws/v1/EC2NodeClass",
        "karpenter.sh/v1alpha1/NodeOverlay",
        "karpenter.sh/v1alpha5/Provisioner",
        "karpenter.k8s.aws/v1alpha1/AWSNodeTemplate",
        "karpenter.sh/v1beta1/NodePool",
        "karpenter.k8s.aws/v1beta1/EC2NodeClass",
    ] {
        assert!(
            kinds.iter().any(|k| k == expected),
            "{expected} missing from {kinds:?}"
        );
    }
    assert_eq!(kinds.len(), 8, "{kinds:?}");
}

#[test]
fn converted_schemas_are_strict_and_free_of_kubernetes_extensions() {
    /// Walks every subschema; returns how many objects with `properties` it saw.
    fn walk(node: &Value, at: &str, kind: &str) -> usize {
        let Some(map) = node.as_object() else {
            return 0;
        };
        for key in map.keys() {
            assert!(
                !key.starts_with("x-kubernetes-") && key != "nullable",
                "{kind}: {key} left at {at}"
            );
        }
        let mut strict = 0;
        if let Some(props) = map.get("properties").and_then(Value::as_object) {
            assert_eq!(
                map.get("additionalProperties"),
                Some(&Value::Bool(false)),
                "{kind}: {at} is not strict"
            );
            strict += 1;
            for (name, child) in props {
                strict += walk(child, &format!("{at}/properties/{name}"), kind);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = map.get(key) {
                strict += walk(child, &format!("{at}/{key}"), kind);
            }
        }
        if map.contains_key("anyOf") {
            // int-or-string: no `type` next to the integer/string alternatives.
            assert!(
                !map.contains_key("type"),
                "{kind}: type beside anyOf at {at}"
            );
        }
        strict
    }
    for kind in crd_schema::known_kinds() {
        let (api_version, name) = kind.rsplit_once('/').expect("group/version/Kind");
        let schema = crd_schema::json_schema(api_version, name).expect("a known kind has a schema");
        assert!(
            walk(schema, "", &kind) >= 3,
            "{kind}: too few object schemas"
        );
    }
}

#[test]
fn int_or_string_quantities_accept_integers_and_strings() {
    for quantity in [json!(8), json!("8"), json!("500m"), json!("16Gi")] {
        let obj = with(
            node_pool_v1(),
            "/spec/limits/nvidia.com~1gpu",
            quantity.clone(),
        );
        assert_valid(&obj);
        let obj = with(node_overlay(), "/spec/capacity/nvidia.com~1gpu", quantity);
        assert_valid(&obj);
    }
    // The quantity pattern still applies to strings, at the escaped pointer of the key.
    let obj = with(
        node_pool_v1(),
        "/spec/limits/nvidia.com~1gpu",
        json!("8 GPUs"),
    );
    assert_rejected(&obj, "/spec/limits/nvidia.com~1gpu", "");
}

#[test]
fn schema_defaults_are_applied_before_validation() {
    // `nodes` is required in a budget but defaults to "10%", as the API server fills it in.
    let obj = with(
        node_pool_v1(),
        "/spec/disruption",
        json!({ "consolidateAfter": "30s", "budgets": [{ "reasons": ["Empty"] }] }),
    );
    assert_valid(&obj);
    // v1beta1: consolidationPolicy defaults to WhenUnderutilized, so consolidateAfter alone
    // breaks "consolidateAfter cannot be combined with consolidationPolicy=WhenUnderutilized".
    let obj = with(
        node_pool_v1beta1(),
        "/spec/disruption",
        json!({ "consolidateAfter": "30s" }),
    );
    assert_rejected(
        &obj,
        "/spec/disruption",
        "consolidateAfter cannot be combined",
    );
}

#[test]
fn a_fuller_gpu_node_pool_passes() {
    let obj = json!({
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": { "name": "gpu-timeslice", "labels": { "app.kubernetes.io/managed-by": "gpu-slicer" } },
        "spec": {
            "weight": 10,
            "limits": { "cpu": "64", "memory": "256Gi", "nvidia.com/gpu": 8 },
            "disruption": { "consolidationPolicy": "WhenEmpty", "consolidateAfter": "5m" },
            "template": {
                "metadata": {
                    "labels": { "nvidia.com/device-plugin.config": "g5-xlarge", "karpenter.sh/capacity-type": "on-demand" }
                },
                "spec": {
                    "nodeClassRef": { "group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu" },
                    "expireAfter": "720h",
                    "taints": [{ "key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule" }],
                    "requirements": [
                        { "key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g5.xlarge", "g5.2xlarge"], "minValues": 2 },
                        { "key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"] },
                        { "key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["0"] },
                        { "key": "example.com/no-spot", "operator": "DoesNotExist" }
                    ]
                }
            }
        }
    });
    assert_valid(&obj);
}

// ---------------------------------------------------------------------------------------------
// Schema rejections
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_field_is_rejected() {
    let mut obj = node_pool_v1();
    let requirements = obj
        .pointer_mut("/spec/template/spec")
        .and_then(Value::as_object_mut)
        .and_then(|spec| spec.remove("requirements"))
        .expect("the minimal NodePool has requirements");
    set(&mut obj, "/spec/template/spec/requirement", requirements);
    assert_rejected(&obj, "/spec/template/spec/requirement", "unknown field");
    assert_rejected(&obj, "/spec/template/spec/requirements", "required field");

    // Also a top-level typo, and one inside metadata.
    assert_rejected(
        &with(node_pool_v1(), "/sepc", json!({})),
        "/sepc",
        "unknown field",
    );
    assert_rejected(
        &with(node_pool_v1(), "/metadata/lables", json!({})),
        "/metadata/lables",
        "unknown field",
    );
}

#[test]
fn bad_enum_is_rejected() {
    let obj = with(
        node_pool_v1(),
        "/spec/template/spec/requirements/0/operator",
        json!("Inside"),
    );
    assert_rejected(
        &obj,
        "/spec/template/spec/requirements/0/operator",
        "Inside",
    );
}

#[test]
fn wrong_types_are_rejected() {
    let obj = with(node_pool_v1(), "/spec/limits/cpu", json!([1]));
    assert_rejected(&obj, "/spec/limits/cpu", "");
    let obj = with(node_overlay(), "/spec/weight", json!("x"));
    assert_rejected(&obj, "/spec/weight", "integer");
    let obj = with(node_pool_v1(), "/spec/weight", json!(101));
    assert_rejected(&obj, "/spec/weight", "100");
}

#[test]
fn missing_required_field_is_rejected() {
    let mut obj = ec2_node_class_v1();
    remove(&mut obj, "/spec/amiSelectorTerms");
    assert_rejected(&obj, "/spec/amiSelectorTerms", "required field");
}

#[test]
fn unknown_kind_is_rejected() {
    let obj = with(node_pool_v1(), "/kind", json!("NodePoool"));
    assert_rejected(&obj, "/kind", "NodePoool");
    let obj = with(node_pool_v1(), "/apiVersion", json!("karpenter.sh/v2"));
    assert_rejected(&obj, "/kind", "karpenter.sh/v2");
    let obj = with(config_map(), "/kind", json!("Secret"));
    assert_rejected(&obj, "/kind", "Secret");
}

// ---------------------------------------------------------------------------------------------
// metadata
// ---------------------------------------------------------------------------------------------

#[test]
fn node_pool_name_must_fit_a_label_value() {
    let long = "g".repeat(70);
    // A valid object name (DNS subdomain, up to 253) ...
    assert_valid(&with(ec2_node_class_v1(), "/metadata/name", json!(long)));
    // ... but not for the kinds whose name becomes a node label value.
    for obj in [node_pool_v1(), node_pool_v1beta1(), provisioner()] {
        let obj = with(obj, "/metadata/name", json!(long));
        assert_rejected(&obj, "/metadata/name", "63");
    }
    assert_valid(&with(
        node_pool_v1(),
        "/metadata/name",
        json!("g".repeat(63)),
    ));
}

#[test]
fn metadata_is_checked() {
    let mut obj = node_pool_v1();
    remove(&mut obj, "/metadata/name");
    assert_rejected(&obj, "/metadata/name", "required");
    assert_rejected(
        &with(node_pool_v1(), "/metadata/name", json!("GPU")),
        "/metadata/name",
        "DNS-1123",
    );
    assert_rejected(
        &with(node_pool_v1(), "/metadata/name", json!("a..b")),
        "/metadata/name",
        "DNS-1123",
    );
    assert_rejected(
        &with(
            node_pool_v1(),
            "/metadata/labels",
            json!({ "bad key!": "x" }),
        ),
        "/metadata/labels/bad key!",
        "label key",
    );
    assert_rejected(
        &with(node_pool_v1(), "/metadata/labels", json!({ "team": "a b" })),
        "/metadata/labels/team",
        "label value",
    );
    assert_rejected(
        &with(node_pool_v1(), "/metadata/labels", json!({ "team": 1 })),
        "/metadata/labels/team",
        "string",
    );
    assert_rejected(
        &with(
            node_pool_v1(),
            "/metadata/annotations",
            json!({ "example.com/": "x" }),
        ),
        "/metadata/annotations/example.com~1",
        "annotation key",
    );
    assert_valid(&with(
        node_pool_v1(),
        "/metadata",
        json!({ "name": "gpu", "labels": { "example.com/team": "ml", "empty": "" }, "annotations": { "Example.com/Note": "any text" } }),
    ));
}

// ---------------------------------------------------------------------------------------------
// CEL rules
// ---------------------------------------------------------------------------------------------

#[test]
fn node_overlay_capacity_may_not_override_standard_resources() {
    let obj = with(node_overlay(), "/spec/capacity", json!({ "cpu": "1" }));
    assert_rejected(&obj, "/spec/capacity/cpu", "invalid resource restricted");
    for resource in ["memory", "ephemeral-storage", "pods"] {
        let obj = with(node_overlay(), "/spec/capacity", json!({ resource: "1" }));
        assert_rejected(&obj, &format!("/spec/capacity/{resource}"), "restricted");
    }
}

#[test]
fn node_overlay_price_and_price_adjustment_are_exclusive() {
    assert_valid(&with(node_overlay(), "/spec/price", json!("1.25")));
    assert_valid(&with(
        node_overlay(),
        "/spec/priceAdjustment",
        json!("-10%"),
    ));
    let obj = with(
        with(node_overlay(), "/spec/price", json!("1.25")),
        "/spec/priceAdjustment",
        json!("-10%"),
    );
    assert_rejected(
        &obj,
        "/spec",
        "cannot set both 'price' and 'priceAdjustment'",
    );
    // NodeOverlay (only) has a CEL rule for NotIn.
    let obj = with(
        node_overlay(),
        "/spec/requirements/0",
        json!({ "key": "node.kubernetes.io/instance-type", "operator": "NotIn", "values": [] }),
    );
    assert_rejected(
        &obj,
        "/spec/requirements/0/values",
        "operator 'NotIn' must have a value",
    );
}

#[test]
fn ec2_node_class_needs_exactly_one_of_role_and_instance_profile() {
    let obj = with(
        ec2_node_class_v1(),
        "/spec/instanceProfile",
        json!("KarpenterNodeInstanceProfile"),
    );
    assert_rejected(&obj, "/spec", "exactly one of ['role', 'instanceProfile']");
    let mut obj = ec2_node_class_v1();
    remove(&mut obj, "/spec/role");
    assert_rejected(&obj, "/spec", "exactly one of ['role', 'instanceProfile']");
    set(
        &mut obj,
        "/spec/instanceProfile",
        json!("KarpenterNodeInstanceProfile"),
    );
    assert_valid(&obj);
    // v1beta1 has the same rule.
    let obj = with(
        ec2_node_class_v1beta1(),
        "/spec/instanceProfile",
        json!("KarpenterNodeInstanceProfile"),
    );
    assert_rejected(&obj, "/spec", "exactly one of");
    // `self != ''`
    assert_rejected(
        &with(ec2_node_class_v1(), "/spec/role", json!("")),
        "/spec/role",
        "role cannot be empty",
    );
}

#[test]
fn ami_selector_term_alias_rules() {
    let terms = "/spec/amiSelectorTerms";
    for alias in ["bottlerocket@v1.20.0", "windows2022@latest", "al2@latest"] {
        assert_valid(&with(
            ec2_node_class_v1(),
            terms,
            json!([{ "alias": alias }]),
        ));
    }
    let obj = with(ec2_node_class_v1(), terms, json!([{ "alias": "al2023" }]));
    assert_rejected(&obj, "/spec/amiSelectorTerms/0/alias", "family@version");
    let obj = with(
        ec2_node_class_v1(),
        terms,
        json!([{ "alias": "ubuntu@latest" }]),
    );
    assert_rejected(
        &obj,
        "/spec/amiSelectorTerms/0/alias",
        "family is not supported",
    );
    let obj = with(
        ec2_node_class_v1(),
        terms,
        json!([{ "alias": "windows2019@v20240101" }]),
    );
    assert_rejected(
        &obj,
        "/spec/amiSelectorTerms/0/alias",
        "may only specify version 'latest'",
    );
    // An alias excludes other terms and other fields of its term.
    let obj = with(
        ec2_node_class_v1(),
        terms,
        json!([{ "alias": "al2023@latest" }, { "id": "ami-123" }]),
    );
    assert_rejected(&obj, terms, "combination of other amiSelectorTerms");
    let obj = with(
        ec2_node_class_v1(),
        terms,
        json!([{ "alias": "al2023@latest", "owner": "self" }]),
    );
    assert_rejected(
        &obj,
        "/spec/amiSelectorTerms/0",
        "'alias' is mutually exclusive",
    );
    // amiFamily must match an alias, and is required without one.
    let obj = with(
        ec2_node_class_v1(),
        "/spec/amiFamily",
        json!("Bottlerocket"),
    );
    assert_rejected(
        &obj,
        "/spec/amiFamily",
        "amiFamily must be 'AL2023' or 'Custom'",
    );
    assert_valid(&with(
        ec2_node_class_v1(),
        "/spec/amiFamily",
        json!("Custom"),
    ));
    let obj = with(
        ec2_node_class_v1(),
        terms,
        json!([{ "tags": { "Name": "my-ami" } }]),
    );
    assert_rejected(&obj, "/spec", "must specify amiFamily");
    assert_valid(&with(obj, "/spec/amiFamily", json!("AL2023")));
    // A term must select something.
    let obj = with(ec2_node_class_v1(), terms, json!([{ "owner": "self" }]));
    assert_rejected(&obj, "/spec/amiSelectorTerms/0", "expected at least one");
}

#[test]
fn requirement_rules() {
    let req = "/spec/template/spec/requirements/0";
    let np = |r: Value| with(node_pool_v1(), req, r);
    assert_rejected(
        &np(json!({ "key": "karpenter.sh/nodepool", "operator": "In", "values": ["other"] })),
        &format!("{req}/key"),
        "label \"karpenter.sh/nodepool\" is restricted",
    );
    assert_rejected(
        &np(json!({ "key": "karpenter.sh/custom", "operator": "Exists" })),
        &format!("{req}/key"),
        "label domain \"karpenter.sh\" is restricted",
    );
    assert_rejected(
        &np(json!({ "key": "karpenter.k8s.aws/made-up", "operator": "Exists" })),
        &format!("{req}/key"),
        "label domain \"karpenter.k8s.aws\" is restricted",
    );
    assert_rejected(
        &np(json!({ "key": "kubernetes.io/hostname", "operator": "Exists" })),
        &format!("{req}/key"),
        "\"kubernetes.io/hostname\" is restricted",
    );
    assert_rejected(
        &np(json!({ "key": "a", "operator": "In", "values": [] })),
        &format!("{req}/values"),
        "'In' must have a value",
    );
    assert_rejected(
        &np(json!({ "key": "a", "operator": "In" })),
        req,
        "'In' must have a value",
    );
    for values in [json!(["abc"]), json!(["-1"]), json!(["1", "2"]), json!([])] {
        let obj = np(json!({ "key": "a", "operator": "Gt", "values": values }));
        assert_rejected(&obj, &format!("{req}/values"), "single positive integer");
    }
    assert_valid(&np(
        json!({ "key": "a", "operator": "Lte", "values": ["+7"] }),
    ));
    assert_rejected(
        &np(json!({ "key": "a", "operator": "In", "values": ["x"], "minValues": 2 })),
        &format!("{req}/values"),
        "minValues",
    );
    // From the `values` description, not CEL: NotIn needs values, Exists takes none.
    assert_rejected(
        &np(json!({ "key": "a", "operator": "NotIn", "values": [] })),
        &format!("{req}/values"),
        "NotIn",
    );
    assert_rejected(
        &np(json!({ "key": "a", "operator": "Exists", "values": ["x"] })),
        &format!("{req}/values"),
        "Exists",
    );
    // NodeClaim has the same rules, but may name its NodePool.
    let obj = with(
        node_claim_v1(),
        "/spec/requirements/0",
        json!({ "key": "karpenter.sh/nodepool", "operator": "In", "values": ["gpu"] }),
    );
    assert_valid(&obj);
    let obj = with(
        node_claim_v1(),
        "/spec/requirements/0",
        json!({ "key": "a", "operator": "Gt", "values": ["x"] }),
    );
    assert_rejected(
        &obj,
        "/spec/requirements/0/values",
        "single positive integer",
    );
}

#[test]
fn template_label_rules() {
    let labels = "/spec/template/metadata/labels";
    let obj = with(
        node_pool_v1(),
        labels,
        json!({ "karpenter.sh/nodepool": "x" }),
    );
    assert_rejected(
        &obj,
        &format!("{labels}/karpenter.sh~1nodepool"),
        "is restricted",
    );
    let obj = with(
        node_pool_v1(),
        labels,
        json!({ "karpenter.k8s.aws/instance-family": "g5", "karpenter.k8s.aws/other": "x" }),
    );
    let errors = assert_rejected(
        &obj,
        &format!("{labels}/karpenter.k8s.aws~1other"),
        "karpenter.k8s.aws",
    );
    assert_eq!(
        errors.len(),
        1,
        "only the unknown key is restricted: {errors:?}"
    );
    // v1beta1 also restricts kubernetes.io and k8s.io, except well-known labels.
    let obj = with(
        node_pool_v1beta1(),
        labels,
        json!({ "kubernetes.io/arch": "amd64", "node.kubernetes.io/role": "gpu" }),
    );
    assert_valid(&obj);
    let obj = with(
        node_pool_v1beta1(),
        labels,
        json!({ "kubernetes.io/custom": "x" }),
    );
    assert_rejected(
        &obj,
        &format!("{labels}/kubernetes.io~1custom"),
        "label domain \"kubernetes.io\" is restricted",
    );
    let obj = with(
        node_pool_v1beta1(),
        labels,
        json!({ "example.k8s.io/x": "y" }),
    );
    assert_rejected(
        &obj,
        &format!("{labels}/example.k8s.io~1x"),
        "label domain \"k8s.io\" is restricted",
    );
    // v1 leaves kubernetes.io to Karpenter's runtime validation: the CRD accepts it.
    assert_valid(&with(
        node_pool_v1(),
        labels,
        json!({ "kubernetes.io/custom": "x" }),
    ));
}

#[test]
fn other_cel_rules() {
    // Static NodePools.
    let obj = with(
        with(node_pool_v1(), "/spec/replicas", json!(2)),
        "/spec/weight",
        json!(5),
    );
    assert_rejected(
        &obj,
        "/spec",
        "'weight' is not supported on static NodePools",
    );
    let obj = with(
        with(node_pool_v1(), "/spec/replicas", json!(2)),
        "/spec/limits",
        json!({ "cpu": 4 }),
    );
    assert_rejected(&obj, "/spec", "only 'limits.nodes'");
    assert_valid(&with(
        with(node_pool_v1(), "/spec/replicas", json!(2)),
        "/spec/limits",
        json!({ "nodes": 4 }),
    ));
    // Budgets.
    let obj = with(
        node_pool_v1(),
        "/spec/disruption",
        json!({ "consolidateAfter": "0s", "budgets": [{ "nodes": "1", "schedule": "@daily" }] }),
    );
    assert_rejected(
        &obj,
        "/spec/disruption/budgets/0",
        "'schedule' must be set with 'duration'",
    );
    // EC2NodeClass selectors, tags, block devices, kubelet.
    let obj = with(ec2_node_class_v1(), "/spec/subnetSelectorTerms", json!([]));
    assert_rejected(&obj, "/spec/subnetSelectorTerms", "cannot be empty");
    let obj = with(
        ec2_node_class_v1(),
        "/spec/securityGroupSelectorTerms",
        json!([{ "id": "sg-1", "name": "x" }]),
    );
    assert_rejected(
        &obj,
        "/spec/securityGroupSelectorTerms",
        "'id' is mutually exclusive",
    );
    let obj = with(
        ec2_node_class_v1(),
        "/spec/tags",
        json!({ "kubernetes.io/cluster/demo": "owned" }),
    );
    assert_rejected(
        &obj,
        "/spec/tags/kubernetes.io~1cluster~1demo",
        "restricted tag",
    );
    let obj = with(
        ec2_node_class_v1(),
        "/spec/subnetSelectorTerms/0/tags",
        json!({ "Name": "" }),
    );
    assert_rejected(
        &obj,
        "/spec/subnetSelectorTerms/0/tags/Name",
        "empty tag keys or values",
    );
    let obj = with(
        ec2_node_class_v1(),
        "/spec/blockDeviceMappings",
        json!([
            { "deviceName": "/dev/xvda", "rootVolume": true, "ebs": { "volumeSize": "100Gi" } },
            { "deviceName": "/dev/xvdb", "rootVolume": true, "ebs": { "volumeType": "gp3" } }
        ]),
    );
    assert_rejected(
        &obj,
        "/spec/blockDeviceMappings",
        "only one blockDeviceMappings with rootVolume",
    );
    assert_rejected(
        &obj,
        "/spec/blockDeviceMappings/1/ebs",
        "snapshotID or volumeSize",
    );
    let obj = with(
        ec2_node_class_v1(),
        "/spec/kubelet",
        json!({ "imageGCHighThresholdPercent": 50, "imageGCLowThresholdPercent": 60, "evictionSoft": { "memory.available": "5%" }, "kubeReserved": { "cpu": "-1", "gpu": "1" } }),
    );
    assert_rejected(
        &obj,
        "/spec/kubelet",
        "imageGCHighThresholdPercent must be greater",
    );
    assert_rejected(&obj, "/spec/kubelet", "evictionSoft OwnerKey");
    assert_rejected(&obj, "/spec/kubelet/kubeReserved/cpu", "negative");
    assert_rejected(
        &obj,
        "/spec/kubelet/kubeReserved/gpu",
        "valid keys for kubeReserved",
    );
    let obj = with(
        ec2_node_class_v1(),
        "/spec/networkInterfaces",
        json!([
            { "networkCardIndex": 0, "deviceIndex": 0, "interfaceType": "interface" },
            { "networkCardIndex": 1, "deviceIndex": 0, "interfaceType": "efa-only" },
            { "networkCardIndex": 1, "deviceIndex": 1, "interfaceType": "efa-only" }
        ]),
    );
    assert_rejected(
        &obj,
        "/spec/networkInterfaces/1",
        "at most one efa device per network card",
    );
}

#[test]
fn every_cel_rule_is_enforced_except_transition_rules() {
    let rules = crd_schema::cel_rules();
    assert!(rules.len() > 100, "only {} CEL rules found", rules.len());
    let skipped: Vec<_> = rules.iter().filter(|r| !r.enforced).collect();
    for rule in &skipped {
        assert!(
            rule.rule.contains("oldSelf"),
            "CEL rule not enforced: {} {} at {}: {} ({})",
            rule.api_version,
            rule.kind,
            rule.path,
            rule.rule,
            rule.message
        );
    }
    assert_eq!(skipped.len(), 6, "{skipped:#?}");
}

// ---------------------------------------------------------------------------------------------
// ConfigMap and validate_all
// ---------------------------------------------------------------------------------------------

#[test]
fn config_map_checks() {
    assert_rejected(
        &with(config_map(), "/spec", json!({})),
        "/spec",
        "unknown field",
    );
    assert_rejected(
        &with(config_map(), "/data/any", json!(1)),
        "/data/any",
        "string",
    );
    assert_rejected(
        &with(config_map(), "/data/a b", json!("x")),
        "/data/a b",
        "invalid key",
    );
    assert_rejected(
        &with(config_map(), "/immutable", json!("yes")),
        "/immutable",
        "boolean",
    );
    assert_rejected(
        &with(config_map(), "/metadata/name", json!("Time_Slicing")),
        "/metadata/name",
        "DNS-1123",
    );
    assert_valid(&with(
        with(config_map(), "/binaryData/blob", json!("AAEC")),
        "/immutable",
        json!(true),
    ));
}

#[test]
fn validate_all_prefixes_kind_and_name() {
    let bad = with(node_overlay(), "/spec/capacity", json!({ "cpu": "1" }));
    let errors =
        crd_schema::validate_all(&[node_pool_v1(), bad]).expect_err("the overlay is invalid");
    assert!(!errors.is_empty());
    for e in &errors {
        assert!(
            e.starts_with("NodeOverlay gpu-slices: /spec/capacity/cpu: "),
            "{e}"
        );
    }
}

/// The generated Karpenter types were made from the CRDs now in `src/karpenter/crds/`:
/// each generated file records the sha256 of its CRD (`src/karpenter/generate.sh` writes
/// it), so a CRD changed without rerunning the script fails here (CI has no kopium).
#[test]
fn generated_types_match_their_crds() {
    use sha2::{Digest, Sha256};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/karpenter");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir.join("generated")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("mod.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let crd = text
            .lines()
            .find_map(|l| l.strip_prefix("// kopium command: kopium -f "))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("{}: no kopium command line", path.display()));
        let recorded = text
            .lines()
            .find_map(|l| l.strip_prefix("// crd sha256: "))
            .unwrap_or_else(|| panic!("{}: no `// crd sha256:` line", path.display()));
        let bytes = std::fs::read(dir.join(crd)).unwrap();
        let actual: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            recorded,
            actual,
            "{} was generated from another {crd}: run src/karpenter/generate.sh",
            path.display()
        );
        seen += 1;
    }
    assert_eq!(seen, 8, "one generated file per CRD version");
}
