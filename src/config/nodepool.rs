//! Annotated Karpenter NodePools (`karpenter.sh/v1` and `v1beta1` NodePool, `v1alpha5`
//! Provisioner) as gpu-slicer pools, and the `--replicas` flag.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::model::{Operator, Pool, ReplicaPolicy, Requirement, SharingChoice, Taint, TaintEffect};

use super::FieldError;
use super::annotations::{
    ANNOTATION_PREFIX, EMISSION, EMISSION_MODES, ENABLED, GPU_MEMORY_HEADROOM, MAX_HOURLY_COST,
    MAX_REPLICAS, NODEPOOL_ANNOTATIONS, POD_ANNOTATIONS, REPACK, REPLICAS, SHARING_STRATEGY,
    annotation_field, quantity_mib_non_negative,
};
use super::value::{
    as_map, describe, index, join, opt_list, opt_map, opt_str, parse_digits, req_str, show,
    string_map, suggest,
};

/// `gpu-slicer.io/max-replicas` when absent.
pub const DEFAULT_MAX_REPLICAS: u32 = 10;

const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Which object shape holds the requirements, labels and taints.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// NodePool v1/v1beta1: `spec.template.metadata.labels`, `spec.template.spec.*`.
    Template,
    /// Provisioner v1alpha5: `spec.labels`, `spec.requirements`, `spec.taints`.
    Flat,
}

fn shape_of(obj: &Map<String, Value>) -> Result<Shape, FieldError> {
    let kind = opt_str(obj, "kind", "kind")?;
    let api = opt_str(obj, "apiVersion", "apiVersion")?;
    match kind {
        Some("NodePool") => {
            if let Some(a) = api
                && a != "karpenter.sh/v1"
                && a != "karpenter.sh/v1beta1"
            {
                return Err(FieldError::new(
                    "apiVersion",
                    format!(
                        "a NodePool must be karpenter.sh/v1 or karpenter.sh/v1beta1, got {}",
                        show(a)
                    ),
                ));
            }
            Ok(Shape::Template)
        }
        Some("Provisioner") => {
            if let Some(a) = api
                && a != "karpenter.sh/v1alpha5"
            {
                return Err(FieldError::new(
                    "apiVersion",
                    format!(
                        "a Provisioner must be karpenter.sh/v1alpha5, got {}",
                        show(a)
                    ),
                ));
            }
            Ok(Shape::Flat)
        }
        Some(other) => Err(FieldError::new(
            "kind",
            format!(
                "must be NodePool (karpenter.sh/v1, v1beta1) or Provisioner (karpenter.sh/v1alpha5), got {}",
                show(other)
            ),
        )),
        None if api == Some("karpenter.sh/v1alpha5") => Ok(Shape::Flat),
        None => Ok(Shape::Template),
    }
}

/// Reads a NodePool (or legacy Provisioner) as a pool gpu-slicer plans inside.
///
/// `Ok(None)` when the object has not opted in (`gpu-slicer.io/enabled` absent or
/// `"false"`), and for gpu-slicer's own output (label `app.kubernetes.io/managed-by:
/// gpu-slicer`), which is a plan, not a configuration.
///
/// Every `gpu-slicer.io/*` annotation key is checked even when the object has not opted
/// in, so a typo such as `gpu-slicer.io/enable` is an error rather than a silent opt-out;
/// the values are checked only when it has opted in. The pool takes the object's
/// requirements, template labels and taints (`startupTaints` do not block scheduling and
/// are ignored). Karpenter's `Gte n`/`Lte n` operators become the equivalent `Gt n-1`/`Lt n+1`.
/// The `gpu-slicer.io/*` annotations of a NodePool (or Provisioner) that has not opted in
/// at all (no `gpu-slicer.io/enabled`, not gpu-slicer's own object), sorted: a pool
/// configured for gpu-slicer but never enabled, which is ignored. Empty otherwise.
pub fn annotations_without_enabled(np: &Value) -> Vec<String> {
    let meta = np.get("metadata");
    let owned = meta
        .and_then(|m| m.get("labels"))
        .and_then(|l| l.get(MANAGED_BY))
        .and_then(Value::as_str)
        == Some("gpu-slicer");
    let Some(ann) = meta
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    if owned || ann.contains_key(ENABLED) {
        return Vec::new();
    }
    let mut keys: Vec<String> = ann
        .keys()
        .filter(|k| k.starts_with(ANNOTATION_PREFIX))
        .cloned()
        .collect();
    keys.sort();
    keys
}

pub fn pool_from_nodepool(np: &Value) -> Result<Option<Pool>, FieldError> {
    let obj = np.as_object().ok_or_else(|| {
        FieldError::new(
            "",
            format!(
                "must be a mapping (a Karpenter NodePool), got {}",
                describe(np)
            ),
        )
    })?;
    let shape = shape_of(obj)?;
    let meta = opt_map(obj, "metadata", "metadata")?;
    let empty = Map::new();
    let meta = meta.unwrap_or(&empty);
    if let Some(labels) = opt_map(meta, "labels", "metadata.labels")?
        && labels.get(MANAGED_BY).and_then(Value::as_str) == Some("gpu-slicer")
    {
        return Ok(None);
    }
    let ann = gpu_slicer_annotations(meta)?;
    match ann.get(ENABLED).copied() {
        None | Some("false") => return Ok(None),
        Some("true") => {}
        Some(other) => {
            return Err(FieldError::new(
                annotation_field(ENABLED),
                format!("must be \"true\" or \"false\", got {}", show(other)),
            ));
        }
    }
    let name = req_str(meta, "name", "metadata.name")?.to_string();
    let replicas = replicas_policy(&ann)?;
    let gpu_memory_headroom_mib = match ann.get(GPU_MEMORY_HEADROOM) {
        None => 0,
        Some(s) => quantity_mib_non_negative(s)
            .map_err(|m| FieldError::new(annotation_field(GPU_MEMORY_HEADROOM), m))?,
    };
    let max_hourly_cost = ann
        .get(MAX_HOURLY_COST)
        .map(|s| parse_cost(s))
        .transpose()?;
    let emission = match ann.get(EMISSION) {
        None => None,
        Some(s) if EMISSION_MODES.contains(s) => Some((*s).to_string()),
        Some(s) => {
            return Err(FieldError::new(
                annotation_field(EMISSION),
                format!(
                    "must be one of {}, got {}",
                    EMISSION_MODES.join(", "),
                    show(s)
                ),
            ));
        }
    };

    let repack = match ann.get(REPACK).copied() {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(FieldError::new(
                annotation_field(REPACK),
                format!("must be \"true\" or \"false\", got {}", show(other)),
            ));
        }
    };

    let sharing_strategy = match ann.get(SHARING_STRATEGY).copied() {
        None => SharingChoice::Auto,
        Some(s) => SharingChoice::parse(s).ok_or_else(|| {
            FieldError::new(
                annotation_field(SHARING_STRATEGY),
                format!(
                    "must be one of {}, got {}",
                    SharingChoice::VALUES.join(", "),
                    show(s)
                ),
            )
        })?,
    };

    let spec = opt_map(obj, "spec", "spec")?.unwrap_or(&empty);
    let (spec_path, pod_spec, labels_parent, labels_path) = match shape {
        Shape::Template => {
            let template = opt_map(spec, "template", "spec.template")?.unwrap_or(&empty);
            let tspec = opt_map(template, "spec", "spec.template.spec")?.unwrap_or(&empty);
            let tmeta = opt_map(template, "metadata", "spec.template.metadata")?.unwrap_or(&empty);
            (
                "spec.template.spec",
                tspec,
                tmeta,
                "spec.template.metadata.labels",
            )
        }
        Shape::Flat => ("spec", spec, spec, "spec.labels"),
    };
    let requirements = match opt_list(pod_spec, "requirements", &join(spec_path, "requirements"))? {
        None => Vec::new(),
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, r)| parse_requirement(r, &index(&join(spec_path, "requirements"), i)))
            .collect::<Result<_, _>>()?,
    };
    let labels: BTreeMap<String, String> = string_map(labels_parent, "labels", labels_path)?
        .into_iter()
        .collect();
    let taints = match opt_list(pod_spec, "taints", &join(spec_path, "taints"))? {
        None => Vec::new(),
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, t)| parse_taint(t, &index(&join(spec_path, "taints"), i)))
            .collect::<Result<_, _>>()?,
    };
    Ok(Some(Pool {
        name,
        replicas,
        gpu_memory_headroom_mib,
        max_hourly_cost,
        requirements,
        labels,
        taints,
        emission,
        repack,
        sharing_strategy,
    }))
}

/// The object's `gpu-slicer.io/*` annotations; an unknown key or a non-string value is an error.
fn gpu_slicer_annotations(meta: &Map<String, Value>) -> Result<BTreeMap<&str, &str>, FieldError> {
    let mut out = BTreeMap::new();
    let Some(ann) = opt_map(meta, "annotations", "metadata.annotations")? else {
        return Ok(out);
    };
    for (k, v) in ann {
        if !k.starts_with(ANNOTATION_PREFIX) {
            continue;
        }
        let field = annotation_field(k);
        if !NODEPOOL_ANNOTATIONS.contains(&k.as_str()) {
            let known = NODEPOOL_ANNOTATIONS.join(", ");
            let message = if POD_ANNOTATIONS.contains(&k.as_str()) {
                format!("{k} is a pod annotation, not a NodePool one; a NodePool takes: {known}")
            } else if let Some(s) = suggest(k, NODEPOOL_ANNOTATIONS) {
                format!("unknown gpu-slicer annotation; did you mean {s}? (known: {known})")
            } else {
                format!("unknown gpu-slicer annotation (known: {known})")
            };
            return Err(FieldError::new(field, message));
        }
        let Value::String(s) = v else {
            return Err(FieldError::new(
                field,
                format!(
                    "must be a string, got {} (quote the value in YAML)",
                    describe(v)
                ),
            ));
        };
        out.insert(k.as_str(), s.as_str());
    }
    Ok(out)
}

fn int_in_range(s: &str, lo: u32, hi: u32) -> Option<u32> {
    parse_digits(s)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (lo..=hi).contains(n))
}

fn replicas_policy(ann: &BTreeMap<&str, &str>) -> Result<ReplicaPolicy, FieldError> {
    let (lo, hi) = (ReplicaPolicy::MIN_SLICED, ReplicaPolicy::MAX);
    let max = match ann.get(MAX_REPLICAS) {
        None => None,
        Some(s) => Some(int_in_range(s, lo, hi).ok_or_else(|| {
            FieldError::new(
                annotation_field(MAX_REPLICAS),
                format!("must be an integer from {lo} to {hi}, got {}", show(s)),
            )
        })?),
    };
    match ann.get(REPLICAS).copied() {
        None | Some("auto") => Ok(ReplicaPolicy::Auto {
            max: max.unwrap_or(DEFAULT_MAX_REPLICAS),
        }),
        Some(s) => {
            let n = int_in_range(s, lo, hi).ok_or_else(|| {
                FieldError::new(
                    annotation_field(REPLICAS),
                    format!(
                        "must be \"auto\" or an integer from {lo} to {hi}, got {}",
                        show(s)
                    ),
                )
            })?;
            if let Some(m) = max
                && m < n
            {
                return Err(FieldError::new(
                    annotation_field(MAX_REPLICAS),
                    format!(
                        "is {m}, below the fixed replicas {n}; max-replicas only caps \"auto\", \
                         so remove it or raise it to at least {n}"
                    ),
                ));
            }
            Ok(ReplicaPolicy::Fixed(n))
        }
    }
}

/// `gpu-slicer.io/max-hourly-cost`: a plain decimal (`12`, `12.5`, `.5`) greater than zero.
fn parse_cost(s: &str) -> Result<f64, FieldError> {
    let field = annotation_field(MAX_HOURLY_COST);
    let (int_part, frac_part) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let well_formed = !(int_part.is_empty() && frac_part.is_empty())
        && digits(int_part)
        && digits(frac_part)
        && !(s.contains('.') && frac_part.is_empty())
        && s.len() <= 30;
    let value = if well_formed {
        s.parse::<f64>().ok()
    } else {
        None
    };
    match value {
        Some(v) if v.is_finite() && v > 0.0 => Ok(v),
        Some(_) => Err(FieldError::new(
            field,
            format!("must be greater than 0, got {}", show(s)),
        )),
        None => Err(FieldError::new(
            field,
            format!(
                "must be a positive decimal number of USD per hour such as 12.5, got {}",
                show(s)
            ),
        )),
    }
}

const REQUIREMENT_KEYS: &[&str] = &["key", "operator", "values", "minValues"];
const TAINT_KEYS: &[&str] = &["key", "value", "effect", "timeAdded"];

fn check_entry_keys(
    map: &Map<String, Value>,
    here: &str,
    known: &[&str],
    what: &str,
) -> Result<(), FieldError> {
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => {
            let hint = suggest(k, known)
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            Err(FieldError::new(
                join(here, k),
                format!(
                    "unknown key `{k}` in a {what}; {hint}(expected one of: {})",
                    known.join(", ")
                ),
            ))
        }
    }
}

fn parse_requirement(v: &Value, here: &str) -> Result<Requirement, FieldError> {
    let map = as_map(v, here)?;
    check_entry_keys(map, here, REQUIREMENT_KEYS, "requirement")?;
    let key = req_str(map, "key", &join(here, "key"))?.to_string();
    let op_field = join(here, "operator");
    let op_name = req_str(map, "operator", &op_field)?;
    let values_field = join(here, "values");
    let values: Vec<String> = match opt_list(map, "values", &values_field)? {
        None => Vec::new(),
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, x)| match x {
                Value::String(s) => Ok(s.clone()),
                other => Err(FieldError::new(
                    index(&values_field, i),
                    format!(
                        "must be a string, got {} (quote the value in YAML)",
                        describe(other)
                    ),
                )),
            })
            .collect::<Result<_, _>>()?,
    };
    // Karpenter v1.x also has Gte/Lte; over integers they are Gt/Lt with the bound moved by one.
    let (operator, shift) = match op_name {
        "Gte" => (Operator::Gt, -1i64),
        "Lte" => (Operator::Lt, 1i64),
        other => match Operator::parse(other) {
            Some(op) => (op, 0),
            None => {
                return Err(FieldError::new(
                    op_field,
                    format!(
                        "unknown operator {}; expected one of In, NotIn, Exists, DoesNotExist, Gt, Lt, Gte, Lte",
                        show(other)
                    ),
                ));
            }
        },
    };
    let values = match operator {
        Operator::In | Operator::NotIn => {
            if values.is_empty() {
                return Err(FieldError::new(
                    values_field,
                    format!("operator {op_name} requires at least one value"),
                ));
            }
            values
        }
        Operator::Exists | Operator::DoesNotExist => {
            if !values.is_empty() {
                return Err(FieldError::new(
                    values_field,
                    format!("operator {op_name} takes no values, got {}", values.len()),
                ));
            }
            values
        }
        Operator::Gt | Operator::Lt => {
            let bound = match values.as_slice() {
                [one] => one.parse::<i64>().ok(),
                _ => None,
            };
            let shifted = bound.and_then(|b| b.checked_add(shift));
            match shifted {
                Some(b) => vec![b.to_string()],
                None => {
                    let got = match values.as_slice() {
                        [one] => show(one),
                        _ => format!("{} values", values.len()),
                    };
                    return Err(FieldError::new(
                        values_field,
                        format!("operator {op_name} requires exactly one integer value, got {got}"),
                    ));
                }
            }
        }
    };
    if let Some(mv) = map.get("minValues").filter(|v| !v.is_null()) {
        let mv_field = join(here, "minValues");
        let n = mv
            .as_u64()
            .filter(|n| (1..=50).contains(n))
            .ok_or_else(|| {
                FieldError::new(
                    mv_field.clone(),
                    format!("must be an integer from 1 to 50, got {}", describe(mv)),
                )
            })?;
        let count = u64::try_from(values.len()).unwrap_or(u64::MAX);
        if operator == Operator::In && count < n {
            return Err(FieldError::new(
                mv_field,
                format!("is {n} but the requirement lists only {count} values"),
            ));
        }
    }
    Ok(Requirement {
        key,
        operator,
        values,
    })
}

pub(crate) fn parse_taint(v: &Value, here: &str) -> Result<Taint, FieldError> {
    let map = as_map(v, here)?;
    check_entry_keys(map, here, TAINT_KEYS, "taint")?;
    let key = req_str(map, "key", &join(here, "key"))?.to_string();
    let value = opt_str(map, "value", &join(here, "value"))?
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let effect_field = join(here, "effect");
    let effect_name = req_str(map, "effect", &effect_field)?;
    let effect = TaintEffect::parse(effect_name).ok_or_else(|| {
        FieldError::new(
            effect_field,
            format!(
                "must be one of NoSchedule, PreferNoSchedule, NoExecute, got {}",
                show(effect_name)
            ),
        )
    })?;
    Ok(Taint { key, value, effect })
}

/// Parses the `--replicas` flag: `auto` (R chosen per node in 1..=`max`, where `max` comes
/// from `--max-replicas` and must be 2..=48), an integer 2..=48 (`Fixed`), or `1`, which
/// means no sharing at all and maps to `ReplicaPolicy::OneOf(vec![])`: the only allowed R
/// is 1. With a fixed value, `max` is not consulted (it only caps `auto`).
pub fn parse_replicas_flag(s: &str, max: u32) -> Result<ReplicaPolicy, FieldError> {
    let (lo, hi) = (ReplicaPolicy::MIN_SLICED, ReplicaPolicy::MAX);
    if s == "auto" {
        if !(lo..=hi).contains(&max) {
            return Err(FieldError::new(
                "--max-replicas",
                format!("must be an integer from {lo} to {hi}, got {max}"),
            ));
        }
        return Ok(ReplicaPolicy::Auto { max });
    }
    match parse_digits(s) {
        Some(1) => Ok(ReplicaPolicy::OneOf(Vec::new())),
        _ => int_in_range(s, lo, hi)
            .map(ReplicaPolicy::Fixed)
            .ok_or_else(|| {
                FieldError::new(
                    "--replicas",
                    format!(
                        "must be \"auto\" or an integer from 1 to {hi}, got {}",
                        show(s)
                    ),
                )
            }),
    }
}

#[cfg(test)]
mod tests {
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
                "unknown gpu-slicer annotation; did you mean gpu-slicer.io/replicas? (known: gpu-slicer.io/enabled, gpu-slicer.io/replicas, gpu-slicer.io/max-replicas, gpu-slicer.io/gpu-memory-headroom, gpu-slicer.io/max-hourly-cost, gpu-slicer.io/emission, gpu-slicer.io/repack, gpu-slicer.io/sharing-strategy)",
            ),
            (
                json!({"gpu-slicer.io/enable": "true"}),
                f("gpu-slicer.io/enable"),
                "unknown gpu-slicer annotation; did you mean gpu-slicer.io/enabled? (known: gpu-slicer.io/enabled, gpu-slicer.io/replicas, gpu-slicer.io/max-replicas, gpu-slicer.io/gpu-memory-headroom, gpu-slicer.io/max-hourly-cost, gpu-slicer.io/emission, gpu-slicer.io/repack, gpu-slicer.io/sharing-strategy)",
            ),
            (
                json!({"gpu-slicer.io/enabled": "true", "gpu-slicer.io/colour": "blue"}),
                f("gpu-slicer.io/colour"),
                "unknown gpu-slicer annotation (known: gpu-slicer.io/enabled, gpu-slicer.io/replicas, gpu-slicer.io/max-replicas, gpu-slicer.io/gpu-memory-headroom, gpu-slicer.io/max-hourly-cost, gpu-slicer.io/emission, gpu-slicer.io/repack, gpu-slicer.io/sharing-strategy)",
            ),
            (
                json!({"gpu-slicer.io/enabled": "true", "gpu-slicer.io/gpu-memory": "4Gi"}),
                f("gpu-slicer.io/gpu-memory"),
                "gpu-slicer.io/gpu-memory is a pod annotation, not a NodePool one; a NodePool takes: gpu-slicer.io/enabled, gpu-slicer.io/replicas, gpu-slicer.io/max-replicas, gpu-slicer.io/gpu-memory-headroom, gpu-slicer.io/max-hourly-cost, gpu-slicer.io/emission, gpu-slicer.io/repack, gpu-slicer.io/sharing-strategy",
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
        let base =
            nodepool(json!({"gpu-slicer.io/enabled": "true", "gpu-slicer.io/replicas": "4"}));
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
                let _ = pool_from_nodepool(&nodepool(
                    json!({"gpu-slicer.io/enabled": "true", *key: s}),
                ));
            }
        }
    }
}
