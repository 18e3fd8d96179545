//! Pods that share a GPU unprotected without saying how much GPU memory they use: no
//! `gpu-slicer.io/gpu-memory` annotation and nothing their containers state (vLLM, TGI,
//! SGLang flags, the MPS limit; `demand::engines`), placed on a time-sliced GPU. The
//! device plugin hands out time slices without looking at memory, so nothing keeps such a
//! pod within its share. (Under MPS each client is capped at GPU memory / R, so a pod there
//! can only run out of its own share.) `plan` and `render` print a warning per workload;
//! the controller posts an Event per pod.

use std::collections::{BTreeMap, HashSet};

use super::PlannedNode;
use crate::model::DemandItem;
use crate::model::slice::NodeSharing;

/// Each such pod with the most other pods it may share a GPU with (R − 1 of its node), in
/// pod order.
pub fn undeclared_memory<'a>(
    items: &[DemandItem],
    nodes: &'a [PlannedNode],
) -> Vec<(&'a str, u32)> {
    let silent: HashSet<&str> = items
        .iter()
        .filter(|i| i.gpu_memory_mib.is_none() && i.gpu_memory_fraction_milli.is_none())
        .map(|i| i.id.as_str())
        .collect();
    let mut out: BTreeMap<&str, u32> = BTreeMap::new();
    for n in nodes
        .iter()
        .filter(|n| n.replicas_per_gpu >= 2 && n.sharing != NodeSharing::Mps.as_str())
    {
        for p in n.pods.iter().filter(|p| silent.contains(p.as_str())) {
            let e = out.entry(p.as_str()).or_insert(0);
            *e = (*e).max(n.replicas_per_gpu - 1);
        }
    }
    out.into_iter().collect()
}

/// The message for one pod sharing with up to `others` pods.
pub fn message(others: u32) -> String {
    let pods = if others == 1 { "pod" } else { "pods" };
    format!("shares a GPU with up to {others} {pods} and declares no GPU memory")
}
