//! The warning `plan` and `render` print about pods that share a GPU without saying how much
//! GPU memory they use (`planner::undeclared`), one line per workload.
//!
//! Pure: the demand and the plan in, lines for stderr out (never the plan JSON).

use std::collections::BTreeMap;

use crate::model::DemandItem;
use crate::planner::PlannedNode;
use crate::planner::undeclared::{message, undeclared_memory};

/// One line per pod that declares no GPU memory and is placed on a time-sliced node
/// (`planner::undeclared`): `ml/a: shares a GPU with up to 3 pods and declares no GPU
/// memory` (3 = R − 1, the largest over its pods). The pods of one workload (ids
/// `<namespace>/<name>-<index>`, `<name>-<group>-<worker>` for a LeaderWorkerSet) make one
/// line: `ml/web-* (100 pods): each shares a GPU with …`.
pub(super) fn undeclared_memory_warnings(
    items: &[DemandItem],
    nodes: &[PlannedNode],
) -> Vec<String> {
    // workload → (its first pod, pods, largest R − 1)
    let mut groups: BTreeMap<&str, (&str, usize, u32)> = BTreeMap::new();
    for (p, others) in undeclared_memory(items, nodes) {
        let g = groups.entry(workload(p)).or_insert((p, 0, 0));
        g.1 += 1;
        g.2 = g.2.max(others);
    }
    groups
        .into_iter()
        .map(|(w, (first, count, others))| {
            if count == 1 {
                format!("{first}: {}", message(others))
            } else {
                format!("{w}-* ({count} pods): each {}", message(others))
            }
        })
        .collect()
}

/// The id without its trailing `-<digits>` parts: `ml/web-12` → `ml/web`, `ml/lws-0-3` →
/// `ml/lws`; an id without them is its own workload.
fn workload(id: &str) -> &str {
    let mut w = id;
    while let Some((stem, tail)) = w.rsplit_once('-') {
        if tail.is_empty() || !tail.bytes().all(|b| b.is_ascii_digit()) || stem.ends_with('/') {
            break;
        }
        w = stem;
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Resources;

    /// A node with `r` replicas per GPU (from JSON, so fields the test does not care
    /// about keep their serde defaults).
    fn node(r: u32, pods: &[&str]) -> PlannedNode {
        serde_json::from_value(serde_json::json!({
            "instanceType": "g5.xlarge",
            "capacityType": "on-demand",
            "gpus": 1,
            "gpuModel": "a10g",
            "gpuMemoryMiB": 22888,
            "replicasPerGpu": r,
            "profile": format!("ts-r{r}"),
            "hourlyPrice": 1.0,
            "pods": pods,
            "nodePool": "gpu-slicer",
        }))
        .expect("a planned node")
    }

    /// The same node under MPS, which caps each pod's memory.
    fn mps(r: u32, pods: &[&str]) -> PlannedNode {
        PlannedNode {
            sharing: "mps".into(),
            profile: format!("mps-r{r}"),
            ..node(r, pods)
        }
    }

    fn pod(id: &str) -> DemandItem {
        DemandItem::shared(id, Resources::ZERO)
    }

    #[test]
    fn one_line_per_pod_or_workload_and_only_on_shared_gpus() {
        let mut items: Vec<DemandItem> = (0..100).map(|i| pod(&format!("ml/web-{i}"))).collect();
        items.push(pod("ml/notebook"));
        items.push(pod("ml/alone"));
        let mut declared = pod("ml/sized");
        declared.gpu_memory_mib = Some(4096);
        items.push(declared);
        let mut stated = pod("ml/vllm-0");
        stated.gpu_memory_fraction_milli = Some(450);
        items.push(stated);
        items.push(pod("ml/under-mps"));

        let web: Vec<String> = (0..100).map(|i| format!("ml/web-{i}")).collect();
        let web: Vec<&str> = web.iter().map(String::as_str).collect();
        let nodes = vec![
            node(4, &web[..40]),
            node(10, &web[40..]),
            node(2, &["ml/notebook", "ml/sized"]),
            node(1, &["ml/alone"]),
            node(2, &["ml/vllm-0"]),
            mps(4, &["ml/under-mps"]),
        ];
        assert_eq!(
            undeclared_memory_warnings(&items, &nodes),
            [
                "ml/notebook: shares a GPU with up to 1 pod and declares no GPU memory",
                "ml/web-* (100 pods): each shares a GPU with up to 9 pods and declares no GPU memory",
            ]
        );
    }

    #[test]
    fn workload_names() {
        assert_eq!(workload("ml/web-12"), "ml/web");
        assert_eq!(workload("ml/lws-0-3"), "ml/lws");
        assert_eq!(workload("ml/notebook"), "ml/notebook");
        assert_eq!(workload("ml/a-b"), "ml/a-b");
        assert_eq!(workload("ml/-1"), "ml/-1");
        assert_eq!(workload("ml/x-"), "ml/x-");
    }
}
