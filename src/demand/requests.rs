//! A pod's resource requests: each container's cpu, memory and `nvidia.com/gpu` from its
//! `resources`, and the pod's effective requests as the scheduler adds them up (init
//! containers, sidecars, overhead). Read by the pod loader (`pod.rs`) and by the engine
//! readers (`engines.rs`, which look only at containers that ask for GPUs).

use serde_json::{Map, Value};

use crate::config::FieldError;
use crate::config::value::{describe, join, list, opt_map, opt_str};
use crate::model::quantity::{self, QuantityError};
use crate::model::{NVIDIA_GPU, Resources};

/// Sanity limit on a CPU quantity: 100 000 cores, in millicores.
pub const MAX_CPU_MILLI: u64 = 100_000 * 1000;
/// Sanity limit on a memory quantity: 1 PiB.
pub const MAX_MEMORY_BYTES: u64 = 1 << 50;
/// Sanity limit on `nvidia.com/gpu` per pod.
pub const MAX_GPUS: u64 = 64;

/// A scalar as Kubernetes would read it from a manifest: strings as they are, numbers
/// and booleans in their YAML spelling (`nvidia.com/gpu: 1`, `gpu-share: 0.25`).
pub(crate) fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A resource quantity field (string or number) as its text.
fn quantity_text(v: &Value, path: &str) -> Result<String, FieldError> {
    scalar_string(v)
        .filter(|_| !v.is_boolean())
        .ok_or_else(|| FieldError::new(path, format!("expected a quantity, found {}", describe(v))))
}

fn qerr(path: &str, e: QuantityError) -> FieldError {
    FieldError::new(path, e.to_string()).caused_by(e)
}

fn too_big(path: &str, text: &str, what: &str) -> FieldError {
    FieldError::new(path, format!("invalid quantity {text:?}: more than {what}"))
}

fn parse_cpu(v: &Value, path: &str) -> Result<u64, FieldError> {
    let t = quantity_text(v, path)?;
    let m = quantity::cpu_milli(&t).map_err(|e| qerr(path, e))?;
    if m > MAX_CPU_MILLI {
        return Err(too_big(path, &t, "100000 cores"));
    }
    Ok(m)
}

fn parse_memory(v: &Value, path: &str) -> Result<u64, FieldError> {
    let t = quantity_text(v, path)?;
    let b = quantity::bytes(&t).map_err(|e| qerr(path, e))?;
    if b > MAX_MEMORY_BYTES {
        return Err(too_big(path, &t, "1Pi of memory"));
    }
    Ok(b)
}

fn parse_gpus(v: &Value, path: &str) -> Result<u64, FieldError> {
    let t = quantity_text(v, path)?;
    let n = quantity::count(&t).map_err(|e| qerr(path, e))?;
    if n > MAX_GPUS {
        return Err(too_big(path, &t, "64 GPUs per pod"));
    }
    Ok(n)
}

/// Effective requests of one container, or of a whole pod: cpu in millicores, memory in
/// bytes, `nvidia.com/gpu` as a count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodRequests {
    pub cpu_milli: u64,
    pub memory_bytes: u64,
    pub gpus: u64,
}

impl PodRequests {
    fn add(self, o: PodRequests) -> PodRequests {
        PodRequests {
            cpu_milli: self.cpu_milli.saturating_add(o.cpu_milli),
            memory_bytes: self.memory_bytes.saturating_add(o.memory_bytes),
            gpus: self.gpus.saturating_add(o.gpus),
        }
    }

    fn max(self, o: PodRequests) -> PodRequests {
        PodRequests {
            cpu_milli: self.cpu_milli.max(o.cpu_milli),
            memory_bytes: self.memory_bytes.max(o.memory_bytes),
            gpus: self.gpus.max(o.gpus),
        }
    }

    /// CPU and memory only.
    pub fn resources(&self) -> Resources {
        Resources::new(self.cpu_milli, self.memory_bytes)
    }
}

/// One container's requests: cpu and memory from `requests`, else from `limits`;
/// `nvidia.com/gpu` from `limits` (a request, if given, must equal the limit).
pub(super) fn container_requests(c: &Value, path: &str) -> Result<PodRequests, FieldError> {
    let Value::Object(c) = c else {
        return Err(FieldError::new(
            path,
            format!("expected a container (a mapping), found {}", describe(c)),
        ));
    };
    let res_path = format!("{path}.resources");
    let Some(res) = opt_map(c, "resources", &res_path)? else {
        return Ok(PodRequests::default());
    };
    let req_path = format!("{res_path}.requests");
    let lim_path = format!("{res_path}.limits");
    let empty = Map::new();
    let requests = opt_map(res, "requests", &req_path)?.unwrap_or(&empty);
    let limits = opt_map(res, "limits", &lim_path)?.unwrap_or(&empty);

    let mut out = PodRequests::default();
    // cpu and memory: the request, or the limit when the request is absent (API defaulting).
    // Both are validated when both are present.
    let cpu_lim = match limits.get("cpu") {
        Some(v) if !v.is_null() => Some(parse_cpu(v, &join(&lim_path, "cpu"))?),
        _ => None,
    };
    let cpu_req = match requests.get("cpu") {
        Some(v) if !v.is_null() => Some(parse_cpu(v, &join(&req_path, "cpu"))?),
        _ => None,
    };
    out.cpu_milli = cpu_req.or(cpu_lim).unwrap_or(0);
    let mem_lim = match limits.get("memory") {
        Some(v) if !v.is_null() => Some(parse_memory(v, &join(&lim_path, "memory"))?),
        _ => None,
    };
    let mem_req = match requests.get("memory") {
        Some(v) if !v.is_null() => Some(parse_memory(v, &join(&req_path, "memory"))?),
        _ => None,
    };
    out.memory_bytes = mem_req.or(mem_lim).unwrap_or(0);

    // nvidia.com/gpu is an extended resource: it cannot be overcommitted, so the limit is
    // what counts and a request, if present, must equal it.
    let gpu_lim_path = join(&lim_path, NVIDIA_GPU);
    let gpu_req_path = join(&req_path, NVIDIA_GPU);
    let gpu_lim = match limits.get(NVIDIA_GPU) {
        Some(v) if !v.is_null() => Some(parse_gpus(v, &gpu_lim_path)?),
        _ => None,
    };
    let gpu_req = match requests.get(NVIDIA_GPU) {
        Some(v) if !v.is_null() => Some(parse_gpus(v, &gpu_req_path)?),
        _ => None,
    };
    out.gpus = match (gpu_req, gpu_lim) {
        (None, None) => 0,
        (None, Some(l)) => l,
        (Some(r), None) => {
            return Err(FieldError::new(
                gpu_req_path,
                format!(
                    "{NVIDIA_GPU} is requested ({r}) without a limit; extended resources must be set in limits"
                ),
            ));
        }
        (Some(r), Some(l)) if r != l => {
            return Err(FieldError::new(
                gpu_req_path,
                format!("must equal the limit for {NVIDIA_GPU} (request {r}, limit {l})"),
            ));
        }
        (Some(_), Some(l)) => l,
    };
    Ok(out)
}

/// The pod's effective requests as the scheduler computes them:
/// `max(Σ containers + Σ sidecars, max over other init containers i of (init_i + Σ sidecars
/// declared before i)) + overhead`, per resource. Sidecars are init containers with
/// `restartPolicy: Always`. `spec` is the pod spec; `path` its field path (`spec`,
/// `spec.template.spec`).
pub fn effective_requests(spec: &Value, path: &str) -> Result<PodRequests, FieldError> {
    let Value::Object(spec) = spec else {
        return Err(FieldError::new(
            path,
            format!("expected a pod spec (a mapping), found {}", describe(spec)),
        ));
    };
    let containers_path = format!("{path}.containers");
    let containers = list(spec, "containers", &containers_path)?;
    if containers.is_empty() {
        return Err(FieldError::new(
            containers_path,
            "a pod needs at least one container",
        ));
    }
    let mut regular = PodRequests::default();
    for (i, c) in containers.iter().enumerate() {
        regular = regular.add(container_requests(c, &format!("{containers_path}[{i}]"))?);
    }

    let init_path = format!("{path}.initContainers");
    let mut sidecars = PodRequests::default();
    let mut init_peak = PodRequests::default();
    for (i, c) in list(spec, "initContainers", &init_path)?.iter().enumerate() {
        let cpath = format!("{init_path}[{i}]");
        let r = container_requests(c, &cpath)?;
        let policy = match c {
            Value::Object(m) => opt_str(m, "restartPolicy", &format!("{cpath}.restartPolicy"))?,
            _ => None,
        };
        match policy {
            Some("Always") => sidecars = sidecars.add(r),
            None => init_peak = init_peak.max(r.add(sidecars)),
            Some(other) => {
                return Err(FieldError::new(
                    format!("{cpath}.restartPolicy"),
                    format!("must be \"Always\" (a sidecar) or absent, not {other:?}"),
                ));
            }
        }
    }

    let mut total = regular.add(sidecars).max(init_peak);

    let overhead_path = format!("{path}.overhead");
    if let Some(o) = opt_map(spec, "overhead", &overhead_path)? {
        if let Some(v) = o.get("cpu").filter(|v| !v.is_null()) {
            total.cpu_milli = total
                .cpu_milli
                .saturating_add(parse_cpu(v, &join(&overhead_path, "cpu"))?);
        }
        if let Some(v) = o.get("memory").filter(|v| !v.is_null()) {
            total.memory_bytes = total
                .memory_bytes
                .saturating_add(parse_memory(v, &join(&overhead_path, "memory"))?);
        }
    }

    if total.cpu_milli > MAX_CPU_MILLI {
        return Err(FieldError::new(
            path,
            format!(
                "the pod requests {} cores in total, more than 100000",
                total.cpu_milli.div_ceil(1000)
            ),
        ));
    }
    if total.memory_bytes > MAX_MEMORY_BYTES {
        return Err(FieldError::new(
            path,
            "the pod requests more than 1Pi of memory in total",
        ));
    }
    if total.gpus > MAX_GPUS {
        return Err(FieldError::new(
            path,
            format!(
                "the pod requests {} {NVIDIA_GPU} in total, more than 64",
                total.gpus
            ),
        ));
    }
    Ok(total)
}
