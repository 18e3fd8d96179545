//! Admission: what gpu-slicer's mutating webhook does to a pod, as a pure function.
//!
//! A pod (or a workload's pod template) that requests `nvidia.com/gpu` in a namespace
//! gpu-slicer serves is read with the same parser as `plan` ([`demand_from_pod_spec`]),
//! so a malformed `gpu-slicer.io/*` annotation is rejected with the message `plan` would
//! print. Otherwise the slice-fit rule ([`SliceNeed::requirements`], `model::slice`)
//! gives the node-selector requirements that match only nodes whose slice is safe for the
//! pod, and they are ANDed into every term of the pod's required node affinity (one new
//! term when it has none). With them the kube-scheduler binds the pod only to a safe
//! slice, and Karpenter's provisioning and consolidation only consider safe nodes.
//!
//! A shared pod that asks for more than one slice is rejected when the device plugin is
//! configured with `failRequestsGreaterThanOne` (the kubelet would reject it after
//! binding). Admission is idempotent: a requirement the term already has is not added
//! again, so a pod that went through `gpu-slicer admit` or the webhook once is unchanged.
//!
//! Pure: values in, a [`Verdict`] (or an `AdmissionResponse`) out. The webhook's HTTPS
//! server is `controller::webhook`; `gpu-slicer admit` prints verdicts offline.

use std::collections::BTreeMap;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, ReplaceOperation};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use serde_json::{Map, Value, json};

use crate::config::FieldError;
use crate::demand::{demand_from_pod_spec, effective_requests};
use crate::guard::Namespaces;
use crate::model::slice::{FitRules, ShareModel, SliceNeed};
use crate::model::{NVIDIA_GPU, Requirement, Sharing};

/// What admission is configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// The namespaces gpu-slicer serves (`run --namespaces` / `--exclude-namespaces`).
    pub namespaces: Namespaces,
    /// The device plugin fails requests of more than one slice (`failRequestsGreaterThanOne`).
    pub fail_requests_greater_than_one: bool,
    /// The CUDA context every pod holds, MiB (`--context-memory`): part of the GPU memory
    /// term admission adds, so a pod that declares none still needs a slice with room for
    /// its context.
    pub context_memory_mib: u64,
    /// How `gpu-share` is read (`--share-model`): `time` adds a `slice-share-milli` term,
    /// `throughput` a `slice-throughput-milli` term.
    pub share_model: ShareModel,
}

/// Why a pod is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// It requests no `nvidia.com/gpu`.
    NoGpu,
    /// Its namespace is not served.
    Namespace,
    /// Every slice is safe for it: it declares no memory or share and is shared.
    AnySlice,
    /// Its affinity already has every term (admitted before), or matches no node anyway.
    AlreadyAdmitted,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NoGpu => "no-gpu",
            Skip::Namespace => "namespace-not-served",
            Skip::AnySlice => "any-slice",
            Skip::AlreadyAdmitted => "already-admitted",
        }
    }
}

/// The outcome for one pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Admitted unchanged.
    Skip(Skip),
    /// Admitted with the slice requirements added to its required node affinity.
    Mutate {
        /// The requirements ANDed into every term.
        requirements: Vec<Requirement>,
        /// The JSON patch, with paths relative to the object given to [`admit`].
        patch: Patch,
    },
    /// Refused; the message names the field, like `plan`'s errors.
    Reject(String),
}

impl Verdict {
    /// A short label for metrics and `admit` output.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Skip(_) => "allowed",
            Verdict::Mutate { .. } => "patched",
            Verdict::Reject(_) => "rejected",
        }
    }
}

/// Where the pod is inside the object given to [`admit`]: `""` for a Pod,
/// `"spec.template."` for a workload's template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    Pod,
    Workload,
    /// A LeaderWorkerSet's `spec.leaderWorkerTemplate.leaderTemplate`.
    LwsLeader,
    /// A LeaderWorkerSet's `spec.leaderWorkerTemplate.workerTemplate`.
    LwsWorker,
}

impl Template {
    fn tokens(self) -> &'static [&'static str] {
        match self {
            Template::Pod => &[],
            Template::Workload => &["spec", "template"],
            Template::LwsLeader => &["spec", "leaderWorkerTemplate", "leaderTemplate"],
            Template::LwsWorker => &["spec", "leaderWorkerTemplate", "workerTemplate"],
        }
    }

    fn field_prefix(self) -> &'static str {
        match self {
            Template::Pod => "",
            Template::Workload => "spec.template.",
            Template::LwsLeader => "spec.leaderWorkerTemplate.leaderTemplate.",
            Template::LwsWorker => "spec.leaderWorkerTemplate.workerTemplate.",
        }
    }
}

/// Admission of one pod (`template = Pod`, `object` a Pod) or of a workload's pod
/// template (`Workload`, `object` a Deployment, Job, ...). `id` names it in messages
/// (`namespace/name`); `namespace` is the one it is created in.
pub fn admit(
    id: &str,
    namespace: &str,
    object: &Value,
    template: Template,
    policy: &Policy,
) -> Verdict {
    let mut pod = object;
    for t in template.tokens() {
        pod = pod.get(*t).unwrap_or(&Value::Null);
    }
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let prefix = template.field_prefix();
    if !policy.namespaces.allows(namespace) {
        return Verdict::Skip(Skip::Namespace);
    }
    // Pods without GPUs are not looked at further. A spec whose requests cannot be read
    // is judged only when it names `nvidia.com/gpu` somewhere: for any other pod the API
    // server's own validation speaks.
    match effective_requests(spec, "spec") {
        Ok(r) if r.gpus == 0 => return Verdict::Skip(Skip::NoGpu),
        Ok(_) => {}
        Err(_) if !mentions_gpu(spec) => return Verdict::Skip(Skip::NoGpu),
        Err(e) => return Verdict::Reject(reject_text(id, prefix, &e)),
    }
    let annotations = match annotations_of(pod) {
        Ok(a) => a,
        Err(e) => return Verdict::Reject(reject_text(id, prefix, &e)),
    };
    let item = match demand_from_pod_spec(id.to_string(), &annotations, spec) {
        Ok(Some(item)) => item,
        Ok(None) => return Verdict::Skip(Skip::NoGpu),
        Err(e) => return Verdict::Reject(reject_text(id, prefix, &e)),
    };
    if policy.fail_requests_greater_than_one && item.sharing == Sharing::Shared && item.gpus > 1 {
        return Verdict::Reject(format!(
            "pod {id}: it requests {} {NVIDIA_GPU} slices, and the device plugin is configured \
             with failRequestsGreaterThanOne, so the kubelet would reject it after binding; \
             request 1, or annotate gpu-slicer.io/sharing: exclusive for whole GPUs",
            item.gpus
        ));
    }
    let rules = FitRules::new(policy.context_memory_mib, policy.share_model);
    let requirements = SliceNeed::of(&item, rules).requirements();
    if requirements.is_empty() {
        return Verdict::Skip(Skip::AnySlice);
    }
    let mut base = PointerBuf::from_tokens(template.tokens().iter().copied());
    base.push_back("spec");
    match affinity_patch(spec, &requirements, base) {
        Some(patch) => Verdict::Mutate {
            requirements,
            patch,
        },
        None => Verdict::Skip(Skip::AlreadyAdmitted),
    }
}

/// Does any container name `nvidia.com/gpu` at all? (A pod with an unreadable spec that
/// does not is left to the API server.)
fn mentions_gpu(spec: &Value) -> bool {
    spec.to_string().contains(NVIDIA_GPU)
}

fn reject_text(id: &str, prefix: &str, e: &FieldError) -> String {
    format!("pod {id}: field `{prefix}{}`: {}", e.field, e.message)
}

fn annotations_of(pod: &Value) -> Result<BTreeMap<String, String>, FieldError> {
    let Some(a) = pod.get("metadata").and_then(|m| m.get("annotations")) else {
        return Ok(BTreeMap::new());
    };
    let Value::Object(m) = a else {
        if a.is_null() {
            return Ok(BTreeMap::new());
        }
        return Err(FieldError::new(
            "metadata.annotations",
            "expected a mapping of strings",
        ));
    };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        match v {
            Value::String(s) => {
                out.insert(k.clone(), s.clone());
            }
            _ => {
                return Err(FieldError::new(
                    format!("metadata.annotations[{k:?}]"),
                    "expected a string",
                ));
            }
        }
    }
    Ok(out)
}

fn requirement_json(r: &Requirement) -> Value {
    json!({"key": r.key, "operator": r.operator.as_str(), "values": r.values})
}

fn same_requirement(v: &Value, r: &Requirement) -> bool {
    v == &requirement_json(r)
}

/// The patch that ANDs `reqs` into every term of the required node affinity of `spec`
/// (at `base`, the pointer of `spec`); `None` when nothing changes (every term has them,
/// or no term can match any node).
fn affinity_patch(spec: &Value, reqs: &[Requirement], base: PointerBuf) -> Option<Patch> {
    let exprs: Vec<Value> = reqs.iter().map(requirement_json).collect();
    let new_term = json!({"matchExpressions": exprs});
    let required = json!({"nodeSelectorTerms": [new_term]});
    let node_affinity = json!({"requiredDuringSchedulingIgnoredDuringExecution": required});
    let at = |tokens: &[&str]| {
        let mut p = base.clone();
        for t in tokens {
            p.push_back(*t);
        }
        p
    };
    let add = |path: PointerBuf, value: Value| {
        Some(Patch(vec![PatchOperation::Add(AddOperation {
            path,
            value,
        })]))
    };
    let affinity = match spec.get("affinity") {
        None | Some(Value::Null) => {
            return add(at(&["affinity"]), json!({"nodeAffinity": node_affinity}));
        }
        Some(a) => a,
    };
    let na = match affinity.get("nodeAffinity") {
        None | Some(Value::Null) => return add(at(&["affinity", "nodeAffinity"]), node_affinity),
        Some(n) => n,
    };
    let req_key = "requiredDuringSchedulingIgnoredDuringExecution";
    let terms = match na.get(req_key).and_then(|r| r.get("nodeSelectorTerms")) {
        Some(Value::Array(t)) => t,
        _ => return add(at(&["affinity", "nodeAffinity", req_key]), required),
    };
    // AND the requirements into every non-empty term; empty and null terms match no
    // node and stay as they are (adding expressions would make them match).
    let mut changed = false;
    let mut any_live = false;
    let new_terms: Vec<Value> = terms
        .iter()
        .map(|t| {
            let Value::Object(m) = t else {
                return t.clone();
            };
            let has = |k: &str| {
                m.get(k)
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
            };
            if !has("matchExpressions") && !has("matchFields") {
                return t.clone();
            }
            any_live = true;
            let mut m: Map<String, Value> = m.clone();
            let mut list = m
                .get("matchExpressions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for r in reqs {
                if !list.iter().any(|v| same_requirement(v, r)) {
                    list.push(requirement_json(r));
                    changed = true;
                }
            }
            m.insert("matchExpressions".to_string(), Value::Array(list));
            Value::Object(m)
        })
        .collect();
    if !any_live || !changed {
        return None;
    }
    Some(Patch(vec![PatchOperation::Replace(ReplaceOperation {
        path: at(&["affinity", "nodeAffinity", req_key, "nodeSelectorTerms"]),
        value: Value::Array(new_terms),
    })]))
}

/// One webhook request → its response. Only pod CREATE is judged; everything else (a
/// subresource, another operation or kind, which the webhook configuration does not
/// send) is allowed unchanged.
pub fn review(req: &AdmissionRequest<DynamicObject>, policy: &Policy) -> AdmissionResponse {
    let resp = AdmissionResponse::from(req);
    let is_pod = req.kind.kind == "Pod" && req.kind.group.is_empty();
    if req.operation != Operation::Create || !is_pod || req.sub_resource.is_some() {
        return resp;
    }
    let Some(obj) = &req.object else {
        return resp.deny("the request carries no pod");
    };
    let value = match serde_json::to_value(obj) {
        Ok(v) => v,
        Err(e) => return resp.deny(format!("cannot read the pod: {e}")),
    };
    let namespace = req
        .namespace
        .clone()
        .or_else(|| obj.metadata.namespace.clone())
        .unwrap_or_else(|| "default".to_string());
    let name = match (&obj.metadata.name, &obj.metadata.generate_name) {
        (Some(n), _) if !n.is_empty() => n.clone(),
        (_, Some(g)) => format!("{g}*"),
        _ if !req.name.is_empty() => req.name.clone(),
        _ => "<unnamed>".to_string(),
    };
    let id = format!("{namespace}/{name}");
    match admit(&id, &namespace, &value, Template::Pod, policy) {
        Verdict::Skip(_) => resp,
        Verdict::Reject(msg) => resp.deny(msg),
        Verdict::Mutate { patch, .. } => match resp.clone().with_patch(patch) {
            Ok(r) => r,
            Err(e) => resp.deny(format!("cannot write the patch: {e}")),
        },
    }
}

#[cfg(test)]
mod tests;
