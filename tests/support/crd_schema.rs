//! Test support: validate Kubernetes objects (as `serde_json::Value`) the way the API server
//! would on `kubectl apply --validate=strict`, against the `openAPIV3Schema` of the Karpenter
//! CRDs in `src/karpenter/crds/`.
//!
//! Include it from an integration test with
//! `#[path = "support/crd_schema.rs"] mod crd_schema;` and call [`validate`] or
//! [`validate_all`]. Errors are `"<JSON pointer>: <reason>"` strings.
//!
//! # What is checked
//!
//! * The CRD's structural schema, converted once per CRD version (cached in a `OnceLock`) to
//!   JSON Schema 2020-12 and run by the `jsonschema` crate, offline:
//!   `x-kubernetes-int-or-string` allows integer and string; `nullable: true` allows null;
//!   `x-kubernetes-list-type: set` becomes `uniqueItems`; every object schema with
//!   `properties` but no `additionalProperties` and no `x-kubernetes-preserve-unknown-fields`
//!   gets `additionalProperties: false` (strict field validation); the other `x-kubernetes-*`
//!   keywords are dropped. `format` is not checked (Kubernetes ignores `int32`/`int64` and
//!   its `date-time` accepts more than RFC 3339).
//! * Schema `default`s are applied first, as the API server does before validating (so a
//!   NodePool budget without `nodes` passes: `nodes` defaults to `10%`).
//! * `metadata` (the CRDs only say `type: object`): only `ObjectMeta` fields; `name` present
//!   and a DNS-1123 subdomain; `labels` / `annotations` maps of strings with qualified-name
//!   keys; label values valid. For NodePool (v1, v1beta1) and Provisioner the name must also
//!   be a label value (at most 63 characters): Karpenter copies it into the
//!   `karpenter.sh/nodepool` / `karpenter.sh/provisioner-name` node label.
//! * Core `v1` `ConfigMap`, by hand: top-level fields, metadata as above, `data` and
//!   `binaryData` maps of strings with valid keys, `immutable` a boolean.
//!
//! # CEL rules (`x-kubernetes-validations`)
//!
//! The `jsonschema` crate does not evaluate CEL, so each rule is matched by its text (see
//! [`compile_rule`]) to a small Rust check. A rule whose text no check recognises is not
//! enforced; [`cel_rules`] lists every rule of every loaded CRD with its status, and the
//! self-test pins the set of unenforced rules.
//!
//! Enforced (rule text quoted in the code next to each check):
//! * label and key restrictions, read from the rule text itself: `label domain
//!   "karpenter.sh"` / `"karpenter.k8s.aws"` / `"kubernetes.io"` (v1beta1) / `"k8s.io"`
//!   (v1beta1) `is restricted`, `label "karpenter.sh/nodepool"` and
//!   `"kubernetes.io/hostname"` `is restricted` (requirement keys and template labels);
//!   NodeOverlay `spec.capacity` not cpu, memory, ephemeral-storage or pods; kubelet
//!   `evictionHard`/`evictionSoft`/`evictionSoftGracePeriod`/`kubeReserved`/`systemReserved`
//!   key lists; EC2NodeClass tag keys (`empty`, `eks:eks-cluster-name`,
//!   `kubernetes.io/cluster`, `karpenter.sh/nodepool`, `karpenter.sh/nodeclaim`,
//!   `karpenter.sh/managed-by`, `karpenter.k8s.aws/ec2nodeclass`); `self != ''`;
//! * requirements: `In` (and NodeOverlay `NotIn`) need values; `Gt`/`Lt`(/`Gte`/`Lte`) one
//!   non-negative integer value; `minValues` at most the number of `In` values;
//! * field presence: NodeOverlay not both `price` and `priceAdjustment`; EC2NodeClass exactly
//!   one of `role`/`instanceProfile`; selector-term "expected at least one" and "is mutually
//!   exclusive" rules; `snapshotID or volumeSize`; connectionTracking and
//!   placementGroupSelector presence rules; budgets `schedule` with `duration`; static
//!   NodePools (`replicas`) without `weight` and with only `limits.nodes`;
//! * EC2NodeClass `amiSelectorTerms`: alias format `family@version`, family in the CRD's list
//!   (al2, al2023, bottlerocket, windows2019, windows2022, windows2025), windows only
//!   `@latest`, an alias excludes other terms and other fields, `amiFamily` consistent with
//!   the alias family, `amiFamily` required without an alias; v1beta1 `Custom` needs terms;
//! * kubelet `imageGCHighThresholdPercent > imageGCLowThresholdPercent`, evictionSoft and
//!   evictionSoftGracePeriod keys matching, reserved quantities not negative; at most one
//!   root volume; `volumeInitializationRate` needs `snapshotID`; networkInterfaces primary
//!   interface, no duplicates, one EFA device per card; v1beta1 NodePool
//!   consolidateAfter/consolidationPolicy rules.
//!
//! Skipped: the transition rules that read `oldSelf` (`spec is immutable`, `nodeClassRef.group
//! is immutable`, `nodeClassRef.kind is immutable`, `Cannot transition NodePool between static
//! and dynamic`, v1beta1 `role` `immutable field changed` and `changing from
//! 'instanceProfile' to 'role'`): the API server does not run them on create, and there is no
//! old object here.
//!
//! Where a rule would fail with a CEL evaluation error (a missing field), the check reports a
//! failure too, as the API server rejects the object then; when the schema already rejects
//! the object (a missing required field, a wrong type) this is approximate.
//!
//! Beyond the CRDs, from the `values` field description of NodePool v1 and NodeClaim v1
//! requirements (not a CEL rule, the API server accepts these): `NotIn` needs values and
//! `Exists`/`DoesNotExist` take none. Not checked: Karpenter's runtime-only validation (the
//! `kubernetes.io` restricted label domain of v1 NodePools, label-value syntax of requirement
//! values, which the CRDs put on the array, where `maxLength`/`pattern` do nothing), and
//! `x-kubernetes-list-type: map` key uniqueness (only in `status`).

#![allow(dead_code)]

use jsonschema::error::ValidationErrorKind;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

/// The CRD files, relative to `src/karpenter/crds/`.
const CRD_FILES: [&str; 8] = [
    "karpenter.sh_nodepools.yaml",
    "karpenter.sh_nodeclaims.yaml",
    "karpenter.k8s.aws_ec2nodeclasses.yaml",
    "karpenter.sh_nodeoverlays.yaml",
    "karpenter.sh_provisioners.yaml",
    "karpenter.k8s.aws_awsnodetemplates.yaml",
    "v1beta1/karpenter.sh_nodepools.yaml",
    "v1beta1/karpenter.k8s.aws_ec2nodeclasses.yaml",
];

/// Kinds whose `metadata.name` Karpenter puts into a node label value
/// (`karpenter.sh/nodepool`, `karpenter.sh/provisioner-name`).
const NAME_IS_LABEL_VALUE: [(&str, &str); 3] = [
    ("karpenter.sh/v1", "NodePool"),
    ("karpenter.sh/v1beta1", "NodePool"),
    ("karpenter.sh/v1alpha5", "Provisioner"),
];

/// Requirement lists whose `values` contract (from the field description) is also checked.
const REQUIREMENT_LISTS: [(&str, &str, &str); 2] = [
    (
        "karpenter.sh/v1",
        "NodePool",
        "/spec/template/spec/requirements",
    ),
    ("karpenter.sh/v1", "NodeClaim", "/spec/requirements"),
];

/// The fields of `ObjectMeta`.
const OBJECT_META_FIELDS: [&str; 15] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Kubernetes' limit on the total size of an object's annotations.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// Validates one object, chosen by its `apiVersion` and `kind`: a Karpenter CRD kind or a core
/// `v1` `ConfigMap`. Any other apiVersion/kind is an error.
pub fn validate(obj: &Value) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    match obj {
        Value::Object(map) => {
            let api_version = map.get("apiVersion").and_then(Value::as_str);
            let kind = map.get("kind").and_then(Value::as_str);
            match (api_version, kind) {
                (Some("v1"), Some("ConfigMap")) => validate_config_map(map, &mut errors),
                (Some(api_version), Some(kind)) => {
                    match registry()
                        .crds
                        .get(&(api_version.to_string(), kind.to_string()))
                    {
                        Some(crd) => validate_custom(crd, api_version, kind, obj, &mut errors),
                        None => errors.push(format!(
                            "/kind: no schema for apiVersion {api_version:?}, kind {kind:?} \
                             (known: {}, v1/ConfigMap)",
                            known_kinds().join(", ")
                        )),
                    }
                }
                _ => errors.push("(root): apiVersion and kind must be strings".to_string()),
            }
        }
        other => errors.push(format!(
            "(root): a Kubernetes object must be a JSON object, got {}",
            type_name(other)
        )),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Validates every object; each error is prefixed with `"<Kind> <name>: "`.
pub fn validate_all(objs: &[Value]) -> Result<(), Vec<String>> {
    let mut all = Vec::new();
    for obj in objs {
        if let Err(errors) = validate(obj) {
            let kind = obj
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("<no kind>");
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("<no name>");
            all.extend(errors.into_iter().map(|e| format!("{kind} {name}: {e}")));
        }
    }
    if all.is_empty() { Ok(()) } else { Err(all) }
}

/// The CRD kinds [`validate`] knows, as `"group/version/Kind"`.
pub fn known_kinds() -> Vec<String> {
    registry()
        .crds
        .keys()
        .map(|(api_version, kind)| format!("{api_version}/{kind}"))
        .collect()
}

/// The converted JSON Schema used for `apiVersion`/`kind`, if it is a known CRD kind.
pub fn json_schema(api_version: &str, kind: &str) -> Option<&'static Value> {
    registry()
        .crds
        .get(&(api_version.to_string(), kind.to_string()))
        .map(|crd| &crd.schema)
}

/// One `x-kubernetes-validations` rule of a loaded CRD, and whether [`validate`] enforces it.
#[derive(Debug, Clone)]
pub struct CelRule {
    pub api_version: String,
    pub kind: String,
    /// Schema location, dotted (`[]` is an array item, `*` a map value).
    pub path: String,
    pub rule: String,
    pub message: String,
    pub enforced: bool,
}

/// Every CEL rule of every loaded CRD version.
pub fn cel_rules() -> Vec<CelRule> {
    let mut out = Vec::new();
    for ((api_version, kind), crd) in &registry().crds {
        for site in &crd.cel {
            let path = site
                .path
                .iter()
                .map(|step| match step {
                    Step::Field(f) => f.as_str(),
                    Step::Item => "[]",
                    Step::Value => "*",
                })
                .collect::<Vec<_>>()
                .join(".");
            out.push(CelRule {
                api_version: api_version.clone(),
                kind: kind.clone(),
                path,
                rule: site.rule.clone(),
                message: site.message.clone(),
                enforced: site.check.is_some(),
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Registry: CRDs loaded and converted once
// ---------------------------------------------------------------------------------------------

/// A step from a schema node to a child: a property, an array item, a map value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Item,
    Value,
}

/// Failures of a check: (JSON pointer suffix below the checked node, detail).
type Failures = Vec<(String, String)>;
type Check = Box<dyn Fn(&Value) -> Failures + Send + Sync>;

/// One `x-kubernetes-validations` entry and where it sits in the schema.
struct CelSite {
    path: Vec<Step>,
    rule: String,
    message: String,
    check: Option<Check>,
}

struct Crd {
    /// The converted JSON Schema (keeps `default`s, used for defaulting too).
    schema: Value,
    validator: jsonschema::Validator,
    cel: Vec<CelSite>,
}

struct Registry {
    /// Keyed by (apiVersion = group/version, kind).
    crds: BTreeMap<(String, String), Crd>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| match load_registry() {
        Ok(registry) => registry,
        Err(e) => panic!("crd_schema: cannot load the Karpenter CRDs: {e}"),
    })
}

fn load_registry() -> Result<Registry, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/karpenter/crds");
    let mut crds = BTreeMap::new();
    for file in CRD_FILES {
        let path = dir.join(file);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let crd: Value =
            serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let str_at = |pointer: &str| {
            crd.pointer(pointer)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{file}: no string at {pointer}"))
        };
        let group = str_at("/spec/group")?;
        let kind = str_at("/spec/names/kind")?;
        let versions = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{file}: no /spec/versions list"))?;
        for version in versions {
            if version.get("served").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let name = version
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{file}: a version without a name"))?;
            let raw = version
                .pointer("/schema/openAPIV3Schema")
                .ok_or_else(|| format!("{file} {name}: no openAPIV3Schema"))?;
            let schema = to_json_schema(raw);
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(false)
                .offline()
                .build(&schema)
                .map_err(|e| format!("{file} {name}: the converted schema does not build: {e}"))?;
            let mut cel = Vec::new();
            collect_cel(raw, &mut Vec::new(), &mut cel);
            let key = (format!("{group}/{name}"), kind.to_string());
            let entry = Crd {
                schema,
                validator,
                cel,
            };
            if crds.insert(key.clone(), entry).is_some() {
                return Err(format!("{file}: {key:?} is defined twice"));
            }
        }
    }
    Ok(Registry { crds })
}

/// Kubernetes structural schema -> JSON Schema 2020-12 (see the module docs).
fn to_json_schema(node: &Value) -> Value {
    let Value::Object(src) = node else {
        return node.clone();
    };
    let flag = |name: &str| src.get(name).and_then(Value::as_bool) == Some(true);
    let mut out = Map::new();
    for (key, value) in src {
        let converted = match key.as_str() {
            "properties" | "patternProperties" | "$defs" | "definitions" => match value {
                Value::Object(props) => Value::Object(
                    props
                        .iter()
                        .map(|(k, v)| (k.clone(), to_json_schema(v)))
                        .collect(),
                ),
                other => other.clone(),
            },
            "items" | "additionalProperties" | "not" => to_json_schema(value),
            "anyOf" | "allOf" | "oneOf" => match value {
                Value::Array(list) => Value::Array(list.iter().map(to_json_schema).collect()),
                other => other.clone(),
            },
            "nullable" => continue,
            k if k.starts_with("x-kubernetes-") => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    if flag("x-kubernetes-int-or-string") {
        out.remove("type");
        if !out.contains_key("anyOf") {
            out.insert(
                "anyOf".into(),
                json!([{ "type": "integer" }, { "type": "string" }]),
            );
        }
    }
    if flag("nullable") {
        match out.get_mut("type") {
            Some(Value::String(t)) => {
                let t = t.clone();
                out.insert("type".into(), json!([t, "null"]));
            }
            Some(Value::Array(types)) => types.push(json!("null")),
            _ => {}
        }
        if let Some(Value::Array(any_of)) = out.get_mut("anyOf") {
            any_of.push(json!({ "type": "null" }));
        }
        if let Some(Value::Array(values)) = out.get_mut("enum") {
            values.push(Value::Null);
        }
    }
    if src.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set") {
        out.insert("uniqueItems".into(), Value::Bool(true));
    }
    if out.contains_key("properties")
        && !out.contains_key("additionalProperties")
        && !flag("x-kubernetes-preserve-unknown-fields")
    {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

fn collect_cel(node: &Value, path: &mut Vec<Step>, out: &mut Vec<CelSite>) {
    let Some(obj) = node.as_object() else {
        return;
    };
    if let Some(rules) = obj
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for entry in rules {
            let text = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or_default();
            let rule = text("rule").to_string();
            out.push(CelSite {
                path: path.clone(),
                check: compile_rule(&rule),
                message: text("message").to_string(),
                rule,
            });
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            path.push(Step::Field(name.clone()));
            collect_cel(child, path, out);
            path.pop();
        }
    }
    if let Some(items) = obj.get("items") {
        path.push(Step::Item);
        collect_cel(items, path, out);
        path.pop();
    }
    if let Some(values) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        path.push(Step::Value);
        collect_cel(values, path, out);
        path.pop();
    }
}

// ---------------------------------------------------------------------------------------------
// Validation of a custom resource
// ---------------------------------------------------------------------------------------------

fn validate_custom(
    crd: &Crd,
    api_version: &str,
    kind: &str,
    obj: &Value,
    errors: &mut Vec<String>,
) {
    let mut obj = obj.clone();
    apply_defaults(&mut obj, &crd.schema);

    for error in crd.validator.iter_errors(&obj) {
        errors.extend(describe_schema_error(&error));
    }

    let name_is_label_value = NAME_IS_LABEL_VALUE.contains(&(api_version, kind));
    check_metadata(obj.get("metadata"), name_is_label_value, errors);

    for site in &crd.cel {
        let Some(check) = &site.check else {
            continue;
        };
        let mut nodes = Vec::new();
        locate(&obj, &site.path, String::new(), &mut nodes);
        for (pointer, node) in nodes {
            for (suffix, detail) in check(node) {
                let detail = if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({detail})")
                };
                errors.push(format!(
                    "{}: {}{detail} [x-kubernetes-validations rule: {}]",
                    show_pointer(&format!("{pointer}{suffix}")),
                    site.message,
                    shorten(&site.rule, 120),
                ));
            }
        }
    }

    for (av, k, pointer) in REQUIREMENT_LISTS {
        if (av, k) == (api_version, kind) {
            check_requirement_values_contract(&obj, pointer, errors);
        }
    }
}

/// Applies schema defaults the way the API server's structural defaulting does: a missing
/// property (or a null one that may not be null) gets its default, then defaulting recurses
/// into every present value, defaults included.
fn apply_defaults(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(props) = props {
                for (name, prop) in props {
                    let Some(default) = prop.get("default") else {
                        continue;
                    };
                    let missing = match map.get(name) {
                        None => true,
                        Some(Value::Null) => !allows_null(prop),
                        Some(_) => false,
                    };
                    if missing {
                        map.insert(name.clone(), default.clone());
                    }
                }
            }
            let extra = schema.get("additionalProperties").filter(|s| s.is_object());
            for (name, child) in map.iter_mut() {
                if let Some(prop) = props.and_then(|p| p.get(name)) {
                    apply_defaults(child, prop);
                } else if let Some(extra) = extra {
                    apply_defaults(child, extra);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply_defaults(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

fn allows_null(schema: &Value) -> bool {
    let null_type = |s: &Value| match s.get("type") {
        Some(Value::String(t)) => t == "null",
        Some(Value::Array(types)) => types.iter().any(|t| t == "null"),
        _ => false,
    };
    null_type(schema)
        || schema
            .get("anyOf")
            .and_then(Value::as_array)
            .is_some_and(|list| list.iter().any(null_type))
}

/// All instance nodes at a schema path, with their JSON pointers. Absent and null values are
/// skipped: CEL rules run only on present values.
fn locate<'a>(
    value: &'a Value,
    path: &[Step],
    pointer: String,
    out: &mut Vec<(String, &'a Value)>,
) {
    let Some((step, rest)) = path.split_first() else {
        out.push((pointer, value));
        return;
    };
    match step {
        Step::Field(name) => {
            if let Some(child) = value.get(name).filter(|c| !c.is_null()) {
                locate(child, rest, format!("{pointer}/{}", escape(name)), out);
            }
        }
        Step::Item => {
            for (i, child) in value.as_array().into_iter().flatten().enumerate() {
                locate(child, rest, format!("{pointer}/{i}"), out);
            }
        }
        Step::Value => {
            for (key, child) in value.as_object().into_iter().flatten() {
                locate(child, rest, format!("{pointer}/{}", escape(key)), out);
            }
        }
    }
}

/// One JSON Schema error as messages. An unknown or a missing property is reported at the
/// property's own pointer, not at its parent object.
fn describe_schema_error(error: &jsonschema::ValidationError<'_>) -> Vec<String> {
    let at = error.instance_path().as_str();
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|field| {
                format!(
                    "{at}/{}: unknown field {field:?} (not in the CRD schema)",
                    escape(field)
                )
            })
            .collect(),
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_string);
            vec![format!(
                "{at}/{}: required field {name:?} is missing",
                escape(&name)
            )]
        }
        _ => vec![format!(
            "{}: {}",
            show_pointer(at),
            shorten(&error.to_string(), 300)
        )],
    }
}

/// `values` contract from the requirement field description ("If the operator is In or NotIn,
/// the values array must be non-empty. If the operator is Exists or DoesNotExist, the values
/// array must be empty."). `In` is left to the CEL rule, to avoid reporting it twice.
fn check_requirement_values_contract(obj: &Value, pointer: &str, errors: &mut Vec<String>) {
    let Some(requirements) = obj.pointer(pointer).and_then(Value::as_array) else {
        return;
    };
    for (i, requirement) in requirements.iter().enumerate() {
        let operator = requirement.get("operator").and_then(Value::as_str);
        let count = requirement
            .get("values")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let problem = match operator {
            Some("NotIn") if count == 0 => "operator NotIn needs at least one value",
            Some("Exists" | "DoesNotExist") if count != 0 => {
                "operator Exists/DoesNotExist takes no values"
            }
            _ => continue,
        };
        errors.push(format!(
            "{pointer}/{i}/values: {problem} (requirement values contract from the CRD's \
             field description; not a CEL rule)"
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// metadata and ConfigMap
// ---------------------------------------------------------------------------------------------

fn check_metadata(meta: Option<&Value>, name_is_label_value: bool, errors: &mut Vec<String>) {
    let meta = match meta {
        None => {
            errors.push("/metadata: required field \"metadata\" is missing".to_string());
            return;
        }
        Some(Value::Object(meta)) => meta,
        Some(other) => {
            errors.push(format!(
                "/metadata: must be an object, got {}",
                type_name(other)
            ));
            return;
        }
    };
    for key in meta.keys() {
        if !OBJECT_META_FIELDS.contains(&key.as_str()) {
            errors.push(format!(
                "/metadata/{}: unknown field {key:?} (not an ObjectMeta field)",
                escape(key)
            ));
        }
    }
    match meta.get("name") {
        None => errors.push("/metadata/name: required field \"name\" is missing".to_string()),
        Some(Value::String(name)) => {
            if let Err(why) = dns1123_subdomain(name) {
                errors.push(format!(
                    "/metadata/name: {name:?} is not a valid name: {why}"
                ));
            }
            if name_is_label_value && let Err(why) = label_value(name) {
                errors.push(format!(
                    "/metadata/name: {name:?} must also be a valid label value, because \
                     Karpenter puts it in a node label: {why}"
                ));
            }
        }
        Some(other) => errors.push(format!(
            "/metadata/name: must be a string, got {}",
            type_name(other)
        )),
    }
    if let Some(labels) = string_map(meta.get("labels"), "/metadata/labels", errors) {
        for (key, value) in labels {
            let at = format!("/metadata/labels/{}", escape(key));
            if let Err(why) = qualified_name(key) {
                errors.push(format!("{at}: invalid label key {key:?}: {why}"));
            }
            if let Some(value) = value.as_str()
                && let Err(why) = label_value(value)
            {
                errors.push(format!("{at}: invalid label value {value:?}: {why}"));
            }
        }
    }
    if let Some(annotations) = string_map(meta.get("annotations"), "/metadata/annotations", errors)
    {
        let mut size = 0;
        for (key, value) in annotations {
            // The API server checks annotation keys lower-cased.
            if let Err(why) = qualified_name(&key.to_lowercase()) {
                errors.push(format!(
                    "/metadata/annotations/{}: invalid annotation key {key:?}: {why}",
                    escape(key)
                ));
            }
            size += key.len() + value.as_str().map_or(0, str::len);
        }
        if size > ANNOTATIONS_MAX_BYTES {
            errors.push(format!(
                "/metadata/annotations: {size} bytes, more than the {ANNOTATIONS_MAX_BYTES} allowed"
            ));
        }
    }
}

/// A map of strings at `at`, or None (after reporting) when it is something else.
/// Absent and null count as empty.
fn string_map<'a>(
    value: Option<&'a Value>,
    at: &str,
    errors: &mut Vec<String>,
) -> Option<&'a Map<String, Value>> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => {
            for (key, v) in map {
                if !v.is_string() {
                    errors.push(format!(
                        "{at}/{}: must be a string, got {}",
                        escape(key),
                        type_name(v)
                    ));
                }
            }
            Some(map)
        }
        Some(other) => {
            errors.push(format!(
                "{at}: must be a map of strings, got {}",
                type_name(other)
            ));
            None
        }
    }
}

fn validate_config_map(obj: &Map<String, Value>, errors: &mut Vec<String>) {
    const FIELDS: [&str; 6] = [
        "apiVersion",
        "kind",
        "metadata",
        "data",
        "binaryData",
        "immutable",
    ];
    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            errors.push(format!(
                "/{}: unknown field {key:?} (a ConfigMap has {FIELDS:?})",
                escape(key)
            ));
        }
    }
    check_metadata(obj.get("metadata"), false, errors);
    let data = string_map(obj.get("data"), "/data", errors);
    let binary = string_map(obj.get("binaryData"), "/binaryData", errors);
    for (field, map) in [("data", data), ("binaryData", binary)] {
        for (key, value) in map.into_iter().flatten() {
            let at = format!("/{field}/{}", escape(key));
            if let Err(why) = config_map_key(key) {
                errors.push(format!("{at}: invalid key {key:?}: {why}"));
            }
            if field == "binaryData" && value.as_str().is_some_and(|s| !is_base64(s)) {
                errors.push(format!("{at}: binaryData values must be base64"));
            }
        }
    }
    if let (Some(data), Some(binary)) = (data, binary) {
        for key in data.keys().filter(|k| binary.contains_key(*k)) {
            errors.push(format!(
                "/binaryData/{}: key {key:?} is also in data",
                escape(key)
            ));
        }
    }
    if let Some(immutable) = obj
        .get("immutable")
        .filter(|v| !v.is_null() && !v.is_boolean())
    {
        errors.push(format!(
            "/immutable: must be a boolean, got {}",
            type_name(immutable)
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Name syntax (k8s.io/apimachinery/pkg/util/validation)
// ---------------------------------------------------------------------------------------------

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`, at most 253 characters.
fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 253 {
        return Err(format!("must be at most 253 characters, is {}", s.len()));
    }
    for part in s.split('.') {
        let ok = part.starts_with(is_lower_alnum)
            && part.ends_with(is_lower_alnum)
            && part.chars().all(|c| is_lower_alnum(c) || c == '-');
        if !ok {
            return Err(
                "must be a DNS-1123 subdomain: lowercase alphanumerics, '-' and '.', each \
                 dot-separated part starting and ending with an alphanumeric"
                    .into(),
            );
        }
    }
    Ok(())
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters (the name part of a
/// qualified name, and a non-empty label value).
fn label_name(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err(format!("must be at most 63 characters, is {}", s.len()));
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    let ok = s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(
            "must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
                .into(),
        )
    }
}

/// A label value: empty, or [`label_name`].
fn label_value(s: &str) -> Result<(), String> {
    if s.is_empty() { Ok(()) } else { label_name(s) }
}

/// A label or annotation key: an optional DNS-subdomain prefix and '/', then a name.
fn qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    if let Some(prefix) = prefix {
        dns1123_subdomain(prefix).map_err(|why| format!("prefix {prefix:?}: {why}"))?;
    }
    if name.is_empty() {
        return Err("the name part must not be empty".into());
    }
    label_name(name).map_err(|why| format!("name part {name:?}: {why}"))
}

/// A ConfigMap key: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.`, `..` or `..*`.
fn config_map_key(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 {
        return Err("must be 1 to 253 characters".into());
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("must consist of alphanumerics, '-', '_' or '.'".into());
    }
    if s.starts_with("..") || s == "." {
        return Err("must not be '.' or start with '..'".into());
    }
    Ok(())
}

fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    s.len().is_multiple_of(4)
        && s.len() - body.len() <= 2
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
}

// ---------------------------------------------------------------------------------------------
// CEL rules as Rust checks
// ---------------------------------------------------------------------------------------------

/// The Rust check for a CEL rule, recognised by its text (whitespace-normalised), or None when
/// no check implements it.
fn compile_rule(rule: &str) -> Option<Check> {
    let rule = rule
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" )", ")");
    if rule.contains("oldSelf") {
        // Transition rules: not evaluated on create, and there is no old object here.
        return None;
    }
    key_rule(&rule)
        .or_else(|| presence_rule(&rule))
        .or_else(|| requirements_rule(&rule))
        .or_else(|| ami_rule(&rule))
        .or_else(|| other_rule(&rule))
}

/// Matches `s` against `parts[0] HOLE parts[1] HOLE ... parts[n]`; returns the holes. A hole
/// ends at the first occurrence of the next part (the last part must end `s`).
fn holes<'a>(s: &'a str, parts: &[&str]) -> Option<Vec<&'a str>> {
    let (first, rest) = parts.split_first()?;
    let mut s = s.strip_prefix(first)?;
    let mut out = Vec::new();
    for (i, part) in rest.iter().enumerate() {
        if i + 1 == rest.len() {
            out.push(s.strip_suffix(part)?);
        } else {
            let at = s.find(part)?;
            out.push(&s[..at]);
            s = &s[at + part.len()..];
        }
    }
    Some(out)
}

/// A CEL string literal, `'x'` or `"x"`.
fn lit(s: &str) -> Option<String> {
    let s = s.trim();
    let quote = s.chars().next().filter(|q| matches!(q, '\'' | '"'))?;
    let inner = s.strip_prefix(quote)?.strip_suffix(quote)?;
    (!inner.contains(quote)).then(|| inner.to_string())
}

/// A CEL list of string literals, `['a', 'b']`.
fn lit_list(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('[')?.strip_suffix(']')?;
    inner.split(',').map(lit).collect()
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `has(V.a) || has(V.b) ...` joined by `sep` -> `[a, b, ...]`.
fn has_list(s: &str, var: &str, sep: &str) -> Option<Vec<String>> {
    let prefix = format!("has({var}.");
    s.split(sep)
        .map(|term| {
            let h = holes(term.trim(), &[&prefix, ")"])?;
            is_ident(h[0]).then(|| h[0].to_string())
        })
        .collect()
}

fn strip_parens(s: &str) -> &str {
    s.strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(s)
}

/// CEL `has(v.field)`.
fn has(v: &Value, field: &str) -> bool {
    v.get(field).is_some_and(|f| !f.is_null())
}

fn fail(detail: impl Into<String>) -> Failures {
    vec![(String::new(), detail.into())]
}

fn no_such_key(field: &str) -> Failures {
    fail(format!("CEL evaluation error: no such key {field:?}"))
}

fn pass() -> Failures {
    Vec::new()
}

/// One alternative of a per-key rule.
#[derive(Debug)]
enum Atom {
    In(Vec<String>),
    NotIn(Vec<String>),
    Eq(String),
    Ne(String),
    NotStartsWith(String),
    DomainEndsWith(String),
    NotDomainEndsWith(String),
}

impl Atom {
    fn holds(&self, key: &str) -> bool {
        // CEL `key.find("^([^/]+)")`: the text before the first '/', "" when there is none.
        let domain = key.split('/').next().unwrap_or_default();
        match self {
            Atom::In(list) => list.iter().any(|x| x == key),
            Atom::NotIn(list) => !list.iter().any(|x| x == key),
            Atom::Eq(s) => key == s,
            Atom::Ne(s) => key != s,
            Atom::NotStartsWith(p) => !key.starts_with(p.as_str()),
            Atom::DomainEndsWith(d) => domain.ends_with(d.as_str()),
            Atom::NotDomainEndsWith(d) => !domain.ends_with(d.as_str()),
        }
    }
}

fn parse_atom(atom: &str, var: &str) -> Option<Atom> {
    let find = format!("{var}.find(\"^([^/]+)\").endsWith(");
    if let Some(negated) = atom.strip_prefix('!') {
        if let Some(h) = holes(negated, &[&find, ")"]) {
            return lit(h[0]).map(Atom::NotDomainEndsWith);
        }
        if let Some(h) = holes(negated, &[&format!("{var}.startsWith("), ")"]) {
            return lit(h[0]).map(Atom::NotStartsWith);
        }
        let h = holes(negated, &[&format!("({var} in "), ")"])?;
        return lit_list(h[0]).map(Atom::NotIn);
    }
    if let Some(h) = holes(atom, &[&find, ")"]) {
        return lit(h[0]).map(Atom::DomainEndsWith);
    }
    let rest = atom.strip_prefix(var)?.trim_start();
    if let Some(l) = rest.strip_prefix("!=") {
        return lit(l).map(Atom::Ne);
    }
    if let Some(l) = rest.strip_prefix("==") {
        return lit(l).map(Atom::Eq);
    }
    lit_list(rest.strip_prefix("in ")?).map(Atom::In)
}

/// Rules on a string, or on every key of a map (`self.all(V, ...)`), that are a disjunction of
/// simple tests on the string. Covers, with the lists read from the rule text:
/// * `self in ["karpenter.sh/capacity-type", "karpenter.sh/nodepool"] ||
///   !self.find("^([^/]+)").endsWith("karpenter.sh")` (label domain "karpenter.sh" is
///   restricted), the same for "karpenter.k8s.aws", and the `self.all(x, x in [...] || ...)`
///   forms on template labels;
/// * v1beta1 `self in [...] || self.find("^([^/]+)").endsWith("node.kubernetes.io") || ... ||
///   !self.find("^([^/]+)").endsWith("kubernetes.io")` and
///   `self.find("^([^/]+)").endsWith("kops.k8s.io") || !self.find("^([^/]+)").endsWith("k8s.io")`;
/// * `self != "karpenter.sh/nodepool"`, `self != "kubernetes.io/hostname"`, `self != ''`;
/// * `self.all(x, !(x in ['cpu', 'memory', 'ephemeral-storage', 'pods']))` (NodeOverlay
///   capacity: invalid resource restricted);
/// * `self.all(x, x in ['memory.available', ...])`, `self.all(x, x=='cpu' || x=='memory' ||
///   ...)` (kubelet maps);
/// * `self.all(k, k != '')`, `self.all(k, k !='eks:eks-cluster-name')`,
///   `self.all(k, !k.startsWith('kubernetes.io/cluster') )` and the other tag-key rules.
fn key_rule(rule: &str) -> Option<Check> {
    if let Some(h) = holes(rule, &["self.all(", ", ", ")"]) {
        let var = h[0];
        if !is_ident(var) {
            return None;
        }
        let atoms = rule_atoms(h[1], var)?;
        return Some(Box::new(move |v: &Value| {
            let keys: Vec<(String, &str)> = match v {
                Value::Object(map) => map.keys().map(|k| (escape(k), k.as_str())).collect(),
                Value::Array(list) => list
                    .iter()
                    .enumerate()
                    .filter_map(|(i, x)| Some((i.to_string(), x.as_str()?)))
                    .collect(),
                _ => return pass(),
            };
            keys.into_iter()
                .filter(|(_, key)| !atoms.iter().any(|a| a.holds(key)))
                .map(|(at, key)| (format!("/{at}"), format!("key {key:?}")))
                .collect()
        }));
    }
    let atoms = rule_atoms(rule, "self")?;
    Some(Box::new(move |v: &Value| match v.as_str() {
        Some(s) if !atoms.iter().any(|a| a.holds(s)) => fail(format!("value {s:?}")),
        _ => pass(),
    }))
}

fn rule_atoms(body: &str, var: &str) -> Option<Vec<Atom>> {
    body.split(" || ")
        .map(|a| parse_atom(a.trim(), var))
        .collect()
}

/// Rules about which fields are set.
fn presence_rule(rule: &str) -> Option<Check> {
    // `has(self.snapshotID) || has(self.volumeSize)`,
    // `has(self.tcpEstablishedTimeout) || has(self.udpStreamTimeout) || has(self.udpTimeout)`,
    // `has(self.name) || has(self.id)`: at least one is set.
    if let Some(fields) = has_list(rule, "self", " || ") {
        return Some(Box::new(move |v: &Value| {
            if !v.is_object() || fields.iter().any(|f| has(v, f)) {
                pass()
            } else {
                fail("")
            }
        }));
    }
    // `self.all(x, has(x.tags) || has(x.id) || has(x.name))` and the other "expected at
    // least one, got none" rules: every item sets at least one.
    if let Some(h) = holes(rule, &["self.all(x, ", ")"])
        && let Some(fields) = has_list(h[0], "x", " || ")
    {
        return Some(Box::new(move |v: &Value| {
            items(v)
                .filter(|(_, x)| !fields.iter().any(|f| has(x, f)))
                .map(|(i, _)| (format!("/{i}"), String::new()))
                .collect()
        }));
    }
    // `!self.exists(x, has(x.id) && (has(x.alias) || has(x.tags) || has(x.name) ||
    // has(x.owner)))` and the same for alias: no item sets the first with any of the others.
    if let Some(h) = holes(rule, &["!self.exists(x, has(x.", ") && ", ")"]) {
        let first = h[0].to_string();
        let others = has_list(strip_parens(h[1]), "x", " || ")?;
        return Some(Box::new(move |v: &Value| {
            items(v)
                .filter(|(_, x)| has(x, &first) && others.iter().any(|f| has(x, f)))
                .map(|(i, _)| (format!("/{i}"), String::new()))
                .collect()
        }));
    }
    // `!self.all(x, has(x.id) && (has(x.tags) || has(x.name)))`,
    // `!self.all(x, has(x.id) && has(x.tags))`, ...: as written, this fails only when *every*
    // item (vacuously, when there is none) combines the first field with another.
    if let Some(h) = holes(rule, &["!self.all(x, has(x.", ") && ", ")"]) {
        let first = h[0].to_string();
        let others = has_list(strip_parens(h[1]), "x", " || ")?;
        return Some(Box::new(move |v: &Value| {
            let Some(list) = v.as_array() else {
                return pass();
            };
            let combined = |x: &Value| has(x, &first) && others.iter().any(|f| has(x, f));
            if list.iter().all(combined) {
                fail(if list.is_empty() {
                    "the list is empty"
                } else {
                    ""
                })
            } else {
                pass()
            }
        }));
    }
    // `!has(self.price) || !has(self.priceAdjustment)`, `!has(self.replicas) ||
    // !has(self.weight)` and `!(has(self.name) && has(self.id))`: not both.
    let pair = holes(rule, &["!has(self.", ") || !has(self.", ")"])
        .or_else(|| holes(rule, &["!(has(self.", ") && has(self.", "))"]));
    if let Some(h) = pair {
        let (a, b) = (h[0].to_string(), h[1].to_string());
        if !is_ident(&a) || !is_ident(&b) {
            return None;
        }
        return Some(Box::new(move |v: &Value| {
            if has(v, &a) && has(v, &b) {
                fail(format!("both {a:?} and {b:?} are set"))
            } else {
                pass()
            }
        }));
    }
    // `(has(self.role) && !has(self.instanceProfile)) || (!has(self.role) &&
    // has(self.instanceProfile))`: exactly one.
    if let Some(h) = holes(
        rule,
        &[
            "(has(self.",
            ") && !has(self.",
            ")) || (!has(self.",
            ") && has(self.",
            "))",
        ],
    ) {
        let (a, b) = (h[0].to_string(), h[1].to_string());
        if h[2] != a || h[3] != b || !is_ident(&a) || !is_ident(&b) {
            return None;
        }
        return Some(Box::new(move |v: &Value| {
            if has(v, &a) == has(v, &b) {
                fail(if has(v, &a) {
                    "both are set"
                } else {
                    "neither is set"
                })
            } else {
                pass()
            }
        }));
    }
    // `self.all(x, has(x.schedule) == has(x.duration))` (budgets).
    if let Some(h) = holes(rule, &["self.all(x, has(x.", ") == has(x.", "))"]) {
        let (a, b) = (h[0].to_string(), h[1].to_string());
        return Some(Box::new(move |v: &Value| {
            items(v)
                .filter(|(_, x)| has(x, &a) != has(x, &b))
                .map(|(i, _)| (format!("/{i}"), String::new()))
                .collect()
        }));
    }
    None
}

/// Array items with their indices (nothing for a non-array).
fn items(v: &Value) -> impl Iterator<Item = (usize, &Value)> {
    v.as_array().into_iter().flatten().enumerate()
}

/// Node-selector requirement list rules.
fn requirements_rule(rule: &str) -> Option<Check> {
    // `self.all(x, x.operator == 'In' ? x.values.size() != 0 : true)` (and 'NotIn' in
    // NodeOverlay): "requirements with operator 'In' must have a value defined".
    if let Some(h) = holes(
        rule,
        &[
            "self.all(x, x.operator == ",
            " ? x.values.size() != 0 : true)",
        ],
    ) {
        let operator = lit(h[0])?;
        return Some(Box::new(move |v: &Value| {
            items(v)
                .filter(|(_, x)| {
                    x.get("operator").and_then(Value::as_str) == Some(operator.as_str())
                })
                .filter_map(|(i, x)| match x.get("values") {
                    None => Some((
                        format!("/{i}"),
                        "CEL evaluation error: no such key \"values\"".into(),
                    )),
                    Some(values) if values.as_array().is_some_and(Vec::is_empty) => {
                        Some((format!("/{i}/values"), String::new()))
                    }
                    Some(_) => None,
                })
                .collect()
        }));
    }
    // `self.all(x, (x.operator == 'Gt' || x.operator == 'Lt' || x.operator == 'Gte' ||
    // x.operator == 'Lte') ? (x.values.size() == 1 && int(x.values[0]) >= 0) : true)` and the
    // v1beta1 Gt/Lt-only form: a single non-negative integer.
    if let Some(h) = holes(
        rule,
        &[
            "self.all(x, (",
            ") ? (x.values.size() == 1 && int(x.values[0]) >= 0) : true)",
        ],
    ) {
        let operators = h[0]
            .split(" || ")
            .map(|t| lit(t.trim().strip_prefix("x.operator == ")?))
            .collect::<Option<Vec<_>>>()?;
        return Some(Box::new(move |v: &Value| {
            items(v)
                .filter(|(_, x)| {
                    let op = x.get("operator").and_then(Value::as_str);
                    operators.iter().any(|o| Some(o.as_str()) == op)
                })
                .filter_map(|(i, x)| {
                    let values = x.get("values").and_then(Value::as_array);
                    let ok = match values.map(Vec::as_slice) {
                        // CEL int(string) parses like Go's strconv.ParseInt(s, 10, 64).
                        Some([Value::String(s)]) => s.parse::<i64>().is_ok_and(|n| n >= 0),
                        _ => false,
                    };
                    (!ok).then(|| {
                        (
                            format!("/{i}/values"),
                            format!(
                                "values {}",
                                x.get("values")
                                    .map_or_else(|| "missing".into(), Value::to_string)
                            ),
                        )
                    })
                })
                .collect()
        }));
    }
    // `self.all(x, (x.operator == 'In' && has(x.minValues)) ? x.values.size() >= x.minValues :
    // true)`.
    if rule
        == "self.all(x, (x.operator == 'In' && has(x.minValues)) ? x.values.size() >= x.minValues : true)"
    {
        return Some(Box::new(|v: &Value| {
            items(v)
                .filter(|(_, x)| {
                    x.get("operator").and_then(Value::as_str) == Some("In") && has(x, "minValues")
                })
                .filter_map(|(i, x)| {
                    let min = x.get("minValues").and_then(Value::as_u64)?;
                    let count = x.get("values").and_then(Value::as_array).map(Vec::len);
                    match count {
                        None => Some((
                            format!("/{i}"),
                            "CEL evaluation error: no such key \"values\"".into(),
                        )),
                        Some(n) if (n as u64) < min => Some((
                            format!("/{i}/values"),
                            format!("{n} values, minValues {min}"),
                        )),
                        Some(_) => None,
                    }
                })
                .collect()
        }));
    }
    None
}

/// EC2NodeClass `amiSelectorTerms` / `amiFamily` rules.
fn ami_rule(rule: &str) -> Option<Check> {
    // `self.matches('^[a-zA-Z0-9]+@.+$')`: "'alias' is improperly formatted, must match the
    // format 'family@version'".
    if rule == "self.matches('^[a-zA-Z0-9]+@.+$')" {
        return Some(Box::new(|v: &Value| {
            let Some(s) = v.as_str() else {
                return pass();
            };
            let ok = s.split_once('@').is_some_and(|(family, version)| {
                !family.is_empty()
                    && family.chars().all(|c| c.is_ascii_alphanumeric())
                    && !version.is_empty()
                    && !version.contains('\n')
            });
            if ok {
                pass()
            } else {
                fail(format!("value {s:?}"))
            }
        }));
    }
    // `self.split('@')[0] in ['windows2019','windows2022','windows2025'] ?
    // self.split('@')[1] == 'latest' : true`: "windows families may only specify version
    // 'latest'".
    if let Some(h) = holes(
        rule,
        &[
            "self.split('@')[0] in ",
            " ? self.split('@')[1] == ",
            " : true",
        ],
    ) {
        let families = lit_list(h[0])?;
        let version = lit(h[1])?;
        return Some(Box::new(move |v: &Value| {
            let Some(s) = v.as_str() else {
                return pass();
            };
            let parts: Vec<&str> = s.split('@').collect();
            if !families.iter().any(|f| f == parts[0]) {
                return pass();
            }
            match parts.get(1) {
                Some(p) if *p == version => pass(),
                Some(_) => fail(format!("value {s:?}")),
                None => fail(format!("CEL evaluation error: index out of range in {s:?}")),
            }
        }));
    }
    // `self.split('@')[0] in ['al2','al2023','bottlerocket','windows2019','windows2022',
    // 'windows2025']`: "family is not supported".
    if let Some(h) = holes(rule, &["self.split('@')[0] in ", ""]) {
        let families = lit_list(h[0])?;
        return Some(Box::new(move |v: &Value| match v.as_str() {
            Some(s)
                if !families
                    .iter()
                    .any(|f| Some(f.as_str()) == s.split('@').next()) =>
            {
                fail(format!("value {s:?}"))
            }
            _ => pass(),
        }));
    }
    // `!(self.exists(x, has(x.alias)) && self.size() != 1)`: "'alias' is mutually exclusive,
    // cannot be set with a combination of other amiSelectorTerms".
    if rule == "!(self.exists(x, has(x.alias)) && self.size() != 1)" {
        return Some(Box::new(|v: &Value| match v.as_array() {
            Some(list) if list.len() != 1 && list.iter().any(|x| has(x, "alias")) => {
                fail(format!("{} terms", list.len()))
            }
            _ => pass(),
        }));
    }
    // `!has(self.amiFamily) || (self.amiSelectorTerms.exists(x, has(x.alias) &&
    // x.alias.find('^[^@]+') == 'al2') ? (self.amiFamily == 'Custom' || self.amiFamily ==
    // 'AL2') : true)` and the same for al2023, bottlerocket, windows2019/2022/2025.
    if let Some(h) = holes(
        rule,
        &[
            "!has(self.amiFamily) || (self.amiSelectorTerms.exists(x, has(x.alias) && x.alias.find('^[^@]+') == ",
            ") ? (self.amiFamily == 'Custom' || self.amiFamily == ",
            ") : true)",
        ],
    ) {
        let alias_family = lit(h[0])?;
        let ami_family = lit(h[1])?;
        return Some(Box::new(move |v: &Value| {
            let Some(family) = v.get("amiFamily").filter(|f| !f.is_null()) else {
                return pass();
            };
            let Some(terms) = v.get("amiSelectorTerms") else {
                return no_such_key("amiSelectorTerms");
            };
            let uses_alias = items(terms).any(|(_, x)| {
                x.get("alias")
                    .and_then(Value::as_str)
                    .is_some_and(|a| a.split('@').next() == Some(alias_family.as_str()))
            });
            let family = family.as_str().unwrap_or_default();
            if uses_alias && family != "Custom" && family != ami_family {
                vec![("/amiFamily".into(), format!("amiFamily {family:?}"))]
            } else {
                pass()
            }
        }));
    }
    // `self.amiSelectorTerms.exists(x, has(x.alias)) ? true : has(self.amiFamily)`: "must
    // specify amiFamily if amiSelectorTerms does not contain an alias".
    if rule == "self.amiSelectorTerms.exists(x, has(x.alias)) ? true : has(self.amiFamily)" {
        return Some(Box::new(|v: &Value| {
            let Some(terms) = v.get("amiSelectorTerms") else {
                return no_such_key("amiSelectorTerms");
            };
            if items(terms).any(|(_, x)| has(x, "alias")) || has(v, "amiFamily") {
                pass()
            } else {
                fail("")
            }
        }));
    }
    // v1beta1 `self.amiFamily == 'Custom' ? self.amiSelectorTerms.size() != 0 : true`:
    // "amiSelectorTerms is required when amiFamily == 'Custom'".
    if rule == "self.amiFamily == 'Custom' ? self.amiSelectorTerms.size() != 0 : true" {
        return Some(Box::new(|v: &Value| {
            match v.get("amiFamily").and_then(Value::as_str) {
                None if !has(v, "amiFamily") => no_such_key("amiFamily"),
                Some("Custom") => match v
                    .get("amiSelectorTerms")
                    .map(|t| t.as_array().map(Vec::len))
                {
                    None => no_such_key("amiSelectorTerms"),
                    Some(Some(0)) => fail("amiSelectorTerms is empty"),
                    Some(_) => pass(),
                },
                _ => pass(),
            }
        }));
    }
    None
}

/// The remaining rules, each recognised by its exact text.
fn other_rule(rule: &str) -> Option<Check> {
    let check: Check = match rule {
        // "securityGroupSelectorTerms cannot be empty", "subnetSelectorTerms cannot be empty".
        "self.size() != 0" => Box::new(|v: &Value| {
            let empty = match v {
                Value::Array(list) => list.is_empty(),
                Value::Object(map) => map.is_empty(),
                Value::String(s) => s.is_empty(),
                _ => false,
            };
            if empty { fail("") } else { pass() }
        }),
        // "empty tag keys or values aren't supported".
        "self.all(k, k != '' && self[k] != '')" => Box::new(|v: &Value| {
            v.as_object()
                .into_iter()
                .flatten()
                .filter(|(k, val)| k.is_empty() || val.as_str() == Some(""))
                .map(|(k, _)| (format!("/{}", escape(k)), format!("key {k:?}")))
                .collect()
        }),
        // "kubeReserved value cannot be a negative resource quantity" (and systemReserved).
        "self.all(x, !self[x].startsWith('-'))" => Box::new(|v: &Value| {
            v.as_object()
                .into_iter()
                .flatten()
                .filter(|(_, val)| val.as_str().is_some_and(|s| s.starts_with('-')))
                .map(|(k, _)| (format!("/{}", escape(k)), String::new()))
                .collect()
        }),
        // "must have only one blockDeviceMappings with rootVolume".
        "self.filter(x, has(x.rootVolume)?x.rootVolume==true:false).size() <= 1" => {
            Box::new(|v: &Value| {
                let roots = items(v)
                    .filter(|(_, x)| x.get("rootVolume") == Some(&Value::Bool(true)))
                    .count();
                if roots <= 1 {
                    pass()
                } else {
                    fail(format!("{roots} root volumes"))
                }
            })
        }
        // "snapshotID must be set when volumeInitializationRate is set".
        "!has(self.volumeInitializationRate) || (has(self.snapshotID) && self.snapshotID != '')" => {
            Box::new(|v: &Value| {
                let snapshot = v
                    .get("snapshotID")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if has(v, "volumeInitializationRate") && snapshot.is_empty() {
                    fail("")
                } else {
                    pass()
                }
            })
        }
        // "imageGCHighThresholdPercent must be greater than imageGCLowThresholdPercent".
        "has(self.imageGCHighThresholdPercent) && has(self.imageGCLowThresholdPercent) ? self.imageGCHighThresholdPercent > self.imageGCLowThresholdPercent : true" => {
            Box::new(|v: &Value| {
                let get = |f: &str| v.get(f).and_then(Value::as_f64);
                match (
                    get("imageGCHighThresholdPercent"),
                    get("imageGCLowThresholdPercent"),
                ) {
                    (Some(high), Some(low)) if high <= low => {
                        fail(format!("high {high}, low {low}"))
                    }
                    _ => pass(),
                }
            })
        }
        // "networkInterfaces must include a primary interface with interfaceType='interface'".
        "self.size() == 0 || self.exists(x, x.deviceIndex == 0 && x.networkCardIndex == 0 && x.interfaceType == 'interface')" => {
            Box::new(|v: &Value| {
                let Some(list) = v.as_array() else {
                    return pass();
                };
                let primary = |x: &Value| {
                    x.get("deviceIndex").and_then(Value::as_i64) == Some(0)
                        && x.get("networkCardIndex").and_then(Value::as_i64) == Some(0)
                        && x.get("interfaceType").and_then(Value::as_str) == Some("interface")
                };
                if list.is_empty() || list.iter().any(primary) {
                    pass()
                } else {
                    fail("")
                }
            })
        }
        // "networkInterfaces must not have duplicate networkCardIndex and deviceIndex pairs,
        // and can have at most one efa device per network card".
        "self.all(x, self.filter(y, x.networkCardIndex == y.networkCardIndex && x.deviceIndex == y.deviceIndex).size() == 1 && (x.interfaceType != 'efa-only' || self.filter(y, x.networkCardIndex == y.networkCardIndex && y.interfaceType == 'efa-only').size() == 1))" => {
            Box::new(|v: &Value| {
                let Some(list) = v.as_array() else {
                    return pass();
                };
                let field = |x: &'_ Value, f: &str| x.get(f).cloned();
                let efa =
                    |x: &Value| x.get("interfaceType").and_then(Value::as_str) == Some("efa-only");
                list.iter()
                    .enumerate()
                    .filter(|(_, x)| {
                        let card = field(x, "networkCardIndex");
                        let same_pair = list
                            .iter()
                            .filter(|y| {
                                card == field(y, "networkCardIndex")
                                    && field(x, "deviceIndex") == field(y, "deviceIndex")
                            })
                            .count();
                        let efa_on_card = list
                            .iter()
                            .filter(|y| card == field(y, "networkCardIndex") && efa(y))
                            .count();
                        same_pair != 1 || (efa(x) && efa_on_card != 1)
                    })
                    .map(|(i, _)| (format!("/{i}"), String::new()))
                    .collect()
            })
        }
        // "only 'limits.nodes' is supported on static NodePools".
        "!has(self.replicas) || (!has(self.limits) || size(self.limits) == 0 || (size(self.limits) == 1 && 'nodes' in self.limits))" => {
            Box::new(|v: &Value| {
                let limits = v.get("limits").and_then(Value::as_object);
                let ok = !has(v, "replicas")
                    || limits
                        .is_none_or(|l| l.is_empty() || (l.len() == 1 && l.contains_key("nodes")));
                if ok { pass() } else { fail("") }
            })
        }
        // v1beta1 "consolidateAfter cannot be combined with consolidationPolicy=WhenUnderutilized".
        "has(self.consolidateAfter) ? self.consolidationPolicy != 'WhenUnderutilized' || self.consolidateAfter == 'Never' : true" => {
            Box::new(|v: &Value| {
                if !has(v, "consolidateAfter")
                    || v.get("consolidateAfter").and_then(Value::as_str) == Some("Never")
                {
                    return pass();
                }
                match v.get("consolidationPolicy").and_then(Value::as_str) {
                    None => no_such_key("consolidationPolicy"),
                    Some("WhenUnderutilized") => fail(""),
                    Some(_) => pass(),
                }
            })
        }
        // v1beta1 "consolidateAfter must be specified with consolidationPolicy=WhenEmpty".
        "self.consolidationPolicy == 'WhenEmpty' ? has(self.consolidateAfter) : true" => Box::new(
            |v: &Value| match v.get("consolidationPolicy").and_then(Value::as_str) {
                None => no_such_key("consolidationPolicy"),
                Some("WhenEmpty") if !has(v, "consolidateAfter") => fail(""),
                Some(_) => pass(),
            },
        ),
        _ => {
            // `has(self.evictionSoft) ? self.evictionSoft.all(e, (e in
            // self.evictionSoftGracePeriod)):true` and the reverse: every key of the first map
            // is a key of the second.
            let h = holes(
                rule,
                &["has(self.", ") ? self.", ".all(e, (e in self.", ")):true"],
            )?;
            let (a, b) = (h[0].to_string(), h[2].to_string());
            if h[1] != a {
                return None;
            }
            Box::new(move |v: &Value| {
                let Some(first) = v.get(&a).and_then(Value::as_object) else {
                    return pass();
                };
                if first.is_empty() {
                    return pass();
                }
                let Some(second) = v.get(&b).and_then(Value::as_object) else {
                    return no_such_key(&b);
                };
                first
                    .keys()
                    .filter(|k| !second.contains_key(*k))
                    .map(|k| {
                        (
                            format!("/{a}/{}", escape(k)),
                            format!("{k:?} is not in {b}"),
                        )
                    })
                    .collect()
            })
        }
    };
    Some(check)
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// Escapes one JSON pointer token (`~` -> `~0`, `/` -> `~1`).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn show_pointer(pointer: &str) -> &str {
    if pointer.is_empty() {
        "(root)"
    } else {
        pointer
    }
}

fn shorten(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max_chars).collect();
        format!("{cut}…")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
