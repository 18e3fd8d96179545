//! Annotated Karpenter NodePools (`karpenter.sh/v1` and `v1beta1` NodePool, `v1alpha5`
//! Provisioner) as gpu-slicer pools, and the `--replicas` flag.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::model::contract::{MANAGED_BY, MANAGER};
use crate::model::quantity;
use crate::model::slice::ShareModel;
use crate::model::{
    Operator, Pool, PoolLimits, ReplicaPolicy, Requirement, SharingChoice, Taint, TaintEffect,
};

use super::FieldError;
use super::annotations::{
    ANNOTATION_PREFIX, CONTEXT_MEMORY, EMISSION, EMISSION_MODES, ENABLED, GPU_MEMORY_HEADROOM,
    MAX_HOURLY_COST, MAX_REPLICAS, MPS_EFFICIENCY, NODEPOOL_ANNOTATIONS, POD_ANNOTATIONS, REPACK,
    REPLICAS, SHARE_MODEL, SHARING_STRATEGY, TIME_SLICING_EFFICIENCY, annotation_field,
    parse_efficiency, quantity_mib_non_negative,
};
use super::value::{
    as_map, describe, index, join, opt_list, opt_map, opt_str, parse_digits, req_str, show,
    string_map, suggest,
};

/// `gpu-slicer.io/max-replicas` when absent.
pub const DEFAULT_MAX_REPLICAS: u32 = 10;

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
        && labels.get(MANAGED_BY).and_then(Value::as_str) == Some(MANAGER)
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
            .map_err(|e| e.in_field(annotation_field(GPU_MEMORY_HEADROOM)))?,
    };
    let context_memory_mib = match ann.get(CONTEXT_MEMORY) {
        None => None,
        Some(s) => Some(
            quantity_mib_non_negative(s)
                .map_err(|e| e.in_field(annotation_field(CONTEXT_MEMORY)))?,
        ),
    };
    let share_model = match ann.get(SHARE_MODEL).copied() {
        None => None,
        Some(s) => Some(ShareModel::parse(s).ok_or_else(|| {
            FieldError::new(
                annotation_field(SHARE_MODEL),
                format!(
                    "must be one of {}, got {}",
                    ShareModel::VALUES.join(", "),
                    show(s)
                ),
            )
        })?),
    };
    let efficiency = |key: &str, max_milli: u32| {
        ann.get(key)
            .map(|s| parse_efficiency(s, annotation_field(key), max_milli))
            .transpose()
    };
    let time_slicing_efficiency_milli = efficiency(TIME_SLICING_EFFICIENCY, 1000)?;
    let mps_efficiency_milli = efficiency(MPS_EFFICIENCY, 2000)?;
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
    let requirements = each(pod_spec, spec_path, "requirements", parse_requirement)?;
    let labels: BTreeMap<String, String> = string_map(labels_parent, "labels", labels_path)?
        .into_iter()
        .collect();
    let limits = pool_limits(spec, shape)?;
    let taints = each(pod_spec, spec_path, "taints", parse_taint)?;
    Ok(Some(Pool {
        name,
        replicas,
        gpu_memory_headroom_mib,
        context_memory_mib,
        share_model,
        time_slicing_efficiency_milli,
        mps_efficiency_milli,
        max_hourly_cost,
        requirements,
        labels,
        taints,
        emission,
        repack,
        sharing_strategy,
        limits,
    }))
}

/// Every entry of the list `key` under `parent` (at `path`), parsed; none when absent.
fn each<T>(
    parent: &Map<String, Value>,
    path: &str,
    key: &str,
    parse: impl Fn(&Value, &str) -> Result<T, FieldError>,
) -> Result<Vec<T>, FieldError> {
    let here = join(path, key);
    opt_list(parent, key, &here)?.map_or(Ok(Vec::new()), |list| {
        list.iter()
            .enumerate()
            .map(|(i, v)| parse(v, &index(&here, i)))
            .collect()
    })
}

/// `spec.limits` (a Provisioner's `spec.limits.resources`): every entry kept as written,
/// cpu and memory read as quantities.
fn pool_limits(spec: &Map<String, Value>, shape: Shape) -> Result<PoolLimits, FieldError> {
    let (limits, field) = match shape {
        Shape::Flat => match opt_map(spec, "limits", "spec.limits")? {
            Some(l) => (
                opt_map(l, "resources", "spec.limits.resources")?,
                "spec.limits.resources",
            ),
            None => (None, "spec.limits.resources"),
        },
        Shape::Template => (opt_map(spec, "limits", "spec.limits")?, "spec.limits"),
    };
    let mut out = PoolLimits {
        field: field.to_string(),
        ..PoolLimits::default()
    };
    for (k, v) in limits.into_iter().flatten() {
        let written = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(FieldError::new(join(field, k), "must be a quantity")),
        };
        let bad = |e: crate::model::quantity::QuantityError| {
            FieldError::new(join(field, k), e.to_string()).caused_by(e)
        };
        match k.as_str() {
            "cpu" => out.cpu_milli = Some(quantity::cpu_milli(&written).map_err(bad)?),
            "memory" => out.memory_bytes = Some(quantity::bytes(&written).map_err(bad)?),
            _ => {}
        }
        out.written.insert(k.clone(), written);
    }
    Ok(out)
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
mod tests;
