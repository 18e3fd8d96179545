//! `gpu-slicer.io/*` annotation values: each value parser on the whole input, then the
//! input's lines as `key=value` annotations (a key without `/` gets the
//! `gpu-slicer.io/` prefix) on a GPU pod (`demand_from_pod_spec`) and on an opted-in
//! NodePool (`pool_from_nodepool`, `annotations_without_enabled`).
#![no_main]

use std::collections::BTreeMap;

use fuzz_common::{measured, text};
use gpu_slicer::config::{
    ANNOTATION_PREFIX, ENABLED, annotations_without_enabled, parse_gpu_memory_mib, parse_isolation,
    parse_replicas_flag, parse_share, parse_sharing, pool_from_nodepool,
};
use gpu_slicer::demand::demand_from_pod_spec;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Some(s) = text(data) else { return };
    measured("config annotations", s.len(), || {
        let _ = parse_share(s);
        let _ = parse_gpu_memory_mib(s);
        let _ = parse_sharing(s);
        let _ = parse_isolation(s);
        let _ = parse_replicas_flag(s, 64);

        let mut ann = BTreeMap::new();
        for line in s.lines() {
            let (k, v) = line.split_once('=').unwrap_or((line, ""));
            let k = if k.contains('/') {
                k.to_string()
            } else {
                format!("{ANNOTATION_PREFIX}{k}")
            };
            ann.insert(k, v.to_string());
        }
        let spec = json!({
            "containers": [{
                "name": "app",
                "resources": {
                    "requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
                    "limits": {"nvidia.com/gpu": "1"}
                }
            }]
        });
        let _ = demand_from_pod_spec("default/fuzz".to_string(), &ann, &spec);

        let np = json!({
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "metadata": {"name": "gpu", "annotations": ann},
            "spec": {"template": {"spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                "requirements": []
            }}}
        });
        let _ = annotations_without_enabled(&np);
        let _ = pool_from_nodepool(&np);
        if !ann.contains_key(ENABLED) {
            let mut opted = ann.clone();
            opted.insert(ENABLED.to_string(), "true".to_string());
            let mut np = np;
            np["metadata"]["annotations"] = json!(opted);
            let _ = pool_from_nodepool(&np);
        }
    });
});
