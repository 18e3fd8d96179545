//! One pod spec → one [`DemandItem`]: the scheduler's effective requests, the GPU
//! request, the gpu-slicer annotations and the scheduling constraints.
//!
//! Works on `serde_json::Value` rather than k8s-openapi's typed `PodSpec` so that
//! manifests written by hand (`nvidia.com/gpu: 1` as a YAML integer, `cpu: 0.5`) are
//! accepted the way kubectl accepts them, and so that every error names the exact field.
//! [`super::demand_from_pod`] adapts a typed `Pod` from a watch.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::engines::{StatedMemory, stated_gpu_memory};
use super::requests::{effective_requests, scalar_string};
use crate::config::value::{describe, join, list, opt_map, opt_str};
use crate::config::{self, FieldError};
use crate::model::{
    DemandItem, Isolation, NVIDIA_GPU, Operator, Requirement, Sharing, TaintEffect, Toleration,
    TolerationOperator,
};

/// The requirement used for a required node affinity whose terms are all empty: an
/// empty term matches no node in Kubernetes, so the pod can never be scheduled.
/// `In` with no values never matches (see [`Requirement::matches`]).
pub fn never_matching_requirement() -> Requirement {
    Requirement {
        key: "metadata.name".to_string(),
        operator: Operator::In,
        values: Vec::new(),
    }
}

/// A map of string-ish scalars (annotations, labels, nodeSelector).
pub(crate) fn string_map(
    parent: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<BTreeMap<String, String>, FieldError> {
    let mut out = BTreeMap::new();
    if let Some(m) = opt_map(parent, key, path)? {
        for (k, v) in m {
            let s = scalar_string(v).ok_or_else(|| {
                FieldError::new(
                    join(path, k),
                    format!("must be a string, got {}", describe(v)),
                )
            })?;
            out.insert(k.clone(), s);
        }
    }
    Ok(out)
}

/// Required node affinity → OR of terms, each an AND of requirements.
fn affinity_terms(
    spec: &Map<String, Value>,
    path: &str,
) -> Result<Vec<Vec<Requirement>>, FieldError> {
    let aff_path = format!("{path}.affinity");
    let Some(aff) = opt_map(spec, "affinity", &aff_path)? else {
        return Ok(Vec::new());
    };
    let na_path = format!("{aff_path}.nodeAffinity");
    let Some(na) = opt_map(aff, "nodeAffinity", &na_path)? else {
        return Ok(Vec::new());
    };
    let req_path = format!("{na_path}.requiredDuringSchedulingIgnoredDuringExecution");
    let Some(required) = opt_map(
        na,
        "requiredDuringSchedulingIgnoredDuringExecution",
        &req_path,
    )?
    else {
        return Ok(Vec::new());
    };
    let terms_path = format!("{req_path}.nodeSelectorTerms");
    let terms = list(required, "nodeSelectorTerms", &terms_path)?;
    if terms.is_empty() {
        return Err(FieldError::new(
            terms_path,
            "must have at least one node selector term",
        ));
    }
    let mut out = Vec::new();
    for (t, term) in terms.iter().enumerate() {
        let tpath = format!("{terms_path}[{t}]");
        let term = match term {
            Value::Object(m) => m,
            Value::Null => {
                // A null term matches no node; it only drops out of the OR.
                continue;
            }
            other => {
                return Err(FieldError::new(
                    tpath,
                    format!("expected a mapping, found {}", describe(other)),
                ));
            }
        };
        let mut reqs = Vec::new();
        let me_path = format!("{tpath}.matchExpressions");
        for (i, e) in list(term, "matchExpressions", &me_path)?.iter().enumerate() {
            reqs.push(requirement(e, &format!("{me_path}[{i}]"), false)?);
        }
        let mf_path = format!("{tpath}.matchFields");
        for (i, e) in list(term, "matchFields", &mf_path)?.iter().enumerate() {
            reqs.push(requirement(e, &format!("{mf_path}[{i}]"), true)?);
        }
        // An empty term matches no node: it contributes nothing to the OR.
        if !reqs.is_empty() {
            out.push(reqs);
        }
    }
    if out.is_empty() {
        // Every term was empty: Kubernetes matches no node at all.
        out.push(vec![never_matching_requirement()]);
    }
    Ok(out)
}

/// One `NodeSelectorRequirement`, validated like the API server does.
fn requirement(v: &Value, path: &str, field: bool) -> Result<Requirement, FieldError> {
    let Value::Object(m) = v else {
        return Err(FieldError::new(
            path,
            format!("expected a mapping, found {}", describe(v)),
        ));
    };
    let key_p = format!("{path}.key");
    let key = opt_str(m, "key", &key_p)?.unwrap_or("");
    if key.is_empty() {
        return Err(FieldError::new(key_p, "required field is missing"));
    }
    if field && key != "metadata.name" {
        return Err(FieldError::new(
            key_p,
            format!("matchFields supports only \"metadata.name\", not {key:?}"),
        ));
    }
    let op_p = format!("{path}.operator");
    let op_s = opt_str(m, "operator", &op_p)?
        .ok_or_else(|| FieldError::new(&op_p, "required field is missing"))?;
    let operator = Operator::parse(op_s).ok_or_else(|| {
        FieldError::new(
            &op_p,
            format!(
                "unknown operator {op_s:?} (expected In, NotIn, Exists, DoesNotExist, Gt or Lt)"
            ),
        )
    })?;
    let vals_p = format!("{path}.values");
    let mut values = Vec::new();
    for (i, x) in list(m, "values", &vals_p)?.iter().enumerate() {
        values.push(scalar_string(x).ok_or_else(|| {
            FieldError::new(
                format!("{vals_p}[{i}]"),
                format!("expected a string, found {}", describe(x)),
            )
        })?);
    }
    match operator {
        Operator::In | Operator::NotIn if values.is_empty() => {
            return Err(FieldError::new(
                vals_p,
                format!("{op_s} needs at least one value"),
            ));
        }
        Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
            return Err(FieldError::new(vals_p, format!("{op_s} takes no values")));
        }
        Operator::Gt | Operator::Lt
            if values.len() != 1 || values[0].trim().parse::<i64>().is_err() =>
        {
            return Err(FieldError::new(
                vals_p,
                format!("{op_s} needs exactly one integer value"),
            ));
        }
        _ => {}
    }
    if matches!(operator, Operator::Gt | Operator::Lt) {
        values = values.into_iter().map(|v| v.trim().to_string()).collect();
    }
    Ok(Requirement {
        key: key.to_string(),
        operator,
        values,
    })
}

/// `spec.tolerations` → model tolerations.
fn tolerations(spec: &Map<String, Value>, path: &str) -> Result<Vec<Toleration>, FieldError> {
    let tols_path = format!("{path}.tolerations");
    let mut out = Vec::new();
    for (i, t) in list(spec, "tolerations", &tols_path)?.iter().enumerate() {
        let tpath = format!("{tols_path}[{i}]");
        let Value::Object(m) = t else {
            return Err(FieldError::new(
                tpath,
                format!("expected a mapping, found {}", describe(t)),
            ));
        };
        let key = opt_str(m, "key", &format!("{tpath}.key"))?
            .filter(|k| !k.is_empty())
            .map(str::to_string);
        let op_p = format!("{tpath}.operator");
        let operator = match opt_str(m, "operator", &op_p)? {
            None | Some("") | Some("Equal") => TolerationOperator::Equal,
            Some("Exists") => TolerationOperator::Exists,
            Some(other) => {
                return Err(FieldError::new(
                    op_p,
                    format!("unknown operator {other:?} (expected Equal or Exists)"),
                ));
            }
        };
        let val_p = format!("{tpath}.value");
        let value = match m.get("value") {
            None | Some(Value::Null) => None,
            Some(v) => Some(scalar_string(v).ok_or_else(|| {
                FieldError::new(&val_p, format!("expected a string, found {}", describe(v)))
            })?),
        }
        .filter(|v| !v.is_empty());
        if operator == TolerationOperator::Exists && value.is_some() {
            return Err(FieldError::new(
                val_p,
                "must be empty when operator is Exists",
            ));
        }
        if key.is_none() && operator == TolerationOperator::Equal {
            return Err(FieldError::new(op_p, "must be Exists when key is empty"));
        }
        let eff_p = format!("{tpath}.effect");
        let effect = match opt_str(m, "effect", &eff_p)? {
            None | Some("") => None,
            Some(e) => Some(TaintEffect::parse(e).ok_or_else(|| {
                FieldError::new(
                    &eff_p,
                    format!(
                        "unknown effect {e:?} (expected NoSchedule, PreferNoSchedule or NoExecute)"
                    ),
                )
            })?),
        };
        out.push(Toleration {
            key,
            operator,
            value,
            effect,
        });
    }
    Ok(out)
}

/// Rejects unknown `gpu-slicer.io/*` annotation keys (typo protection).
pub(crate) fn check_annotation_keys(
    annotations: &BTreeMap<String, String>,
) -> Result<(), FieldError> {
    for k in annotations.keys() {
        if k.starts_with(config::ANNOTATION_PREFIX)
            && !config::POD_ANNOTATIONS.contains(&k.as_str())
        {
            return Err(FieldError::new(
                config::annotation_field(k),
                format!(
                    "unknown gpu-slicer.io annotation on a pod (known: {})",
                    config::POD_ANNOTATIONS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Converts one pod into a demand item.
///
/// - `id`: the item id (`namespace/name`), copied verbatim.
/// - `annotations`: the pod's `metadata.annotations` (a workload's template annotations).
/// - `spec`: the pod spec as JSON (`Pod.spec`, or a workload's `spec.template.spec`).
///
/// Returns `Ok(None)` for a pod that requests no `nvidia.com/gpu` (Karpenter provisions
/// it without gpu-slicer). Errors name the field relative to the pod object:
/// `spec.containers[0].resources.limits["nvidia.com/gpu"]`,
/// `metadata.annotations["gpu-slicer.io/sharing"]`; a caller converting a workload
/// prefixes `spec.template.`.
///
/// Unknown `gpu-slicer.io/*` annotation keys are an error even on a non-GPU pod.
///
/// GPU memory: the `gpu-slicer.io/gpu-memory` annotation, else what the GPU containers
/// state (`demand::engines`: vLLM, TGI, SGLang flags, the MPS memory limit).
pub fn demand_from_pod_spec(
    id: String,
    annotations: &BTreeMap<String, String>,
    spec: &Value,
) -> Result<Option<DemandItem>, FieldError> {
    Ok(demand_and_memory(id, annotations, spec)?.map(|(item, _)| item))
}

/// [`demand_from_pod_spec`], and what the GPU containers state of GPU memory (empty when
/// the annotation says it), for the loader's notes.
pub(crate) fn demand_and_memory(
    id: String,
    annotations: &BTreeMap<String, String>,
    spec: &Value,
) -> Result<Option<(DemandItem, StatedMemory)>, FieldError> {
    check_annotation_keys(annotations)?;
    let requests = effective_requests(spec, "spec")?;
    if requests.gpus == 0 {
        return Ok(None);
    }
    let Value::Object(spec_map) = spec else {
        // effective_requests has already rejected anything but a mapping.
        return Err(FieldError::new("spec", "expected a pod spec (a mapping)"));
    };
    // MAX_GPUS (64) fits in u32; the conversion cannot fail after effective_requests.
    let gpus = u32::try_from(requests.gpus)
        .map_err(|_| FieldError::new("spec", format!("too many {NVIDIA_GPU}")))?;

    // The config parsers name the annotation field (`metadata.annotations["…"]`).
    let sharing = match annotations.get(config::SHARING) {
        None if gpus == 1 => Sharing::Shared,
        None => Sharing::Exclusive,
        Some(s) => config::parse_sharing(s)?,
    };
    // The annotation wins; the containers are read only without it.
    let (gpu_memory_mib, stated) = match annotations.get(config::GPU_MEMORY) {
        None => {
            let stated = stated_gpu_memory(spec_map, "spec")?;
            (stated.mib, stated)
        }
        Some(s) => (
            Some(config::parse_gpu_memory_mib(s)?),
            StatedMemory::default(),
        ),
    };
    // An MPS client limit caps allocations, not the context; the annotation says itself.
    let gpu_memory_excludes_context = match annotations.get(config::GPU_MEMORY_CONTEXT) {
        Some(s) => {
            let excluded = config::parse_gpu_memory_context(s)?;
            if annotations.get(config::GPU_MEMORY).is_none() {
                return Err(FieldError::new(
                    config::annotation_field(config::GPU_MEMORY_CONTEXT),
                    format!(
                        "says what {} includes, and the pod has none",
                        config::GPU_MEMORY
                    ),
                ));
            }
            excluded
        }
        None => annotations.get(config::GPU_MEMORY).is_none() && stated.mib.is_some(),
    };
    let gpu_share_milli = match annotations.get(config::GPU_SHARE) {
        None => None,
        Some(s) => {
            let v = config::parse_share(s)?;
            if sharing == Sharing::Exclusive {
                return Err(FieldError::new(
                    config::annotation_field(config::GPU_SHARE),
                    "not allowed on an exclusive pod, which gets whole GPUs",
                ));
            }
            Some(v)
        }
    };

    let isolation = match annotations.get(config::ISOLATION) {
        None => Isolation::None,
        Some(s) => config::parse_isolation(s)?,
    };

    let item = DemandItem {
        id,
        requests: requests.resources(),
        gpus,
        sharing,
        gpu_memory_mib,
        gpu_memory_excludes_context,
        gpu_share_milli,
        gpu_memory_fraction_milli: stated.fraction_milli,
        isolation,
        node_selector: string_map(spec_map, "nodeSelector", "spec.nodeSelector")?,
        affinity_terms: affinity_terms(spec_map, "spec")?,
        tolerations: tolerations(spec_map, "spec")?,
    };
    Ok(Some((item, stated)))
}
