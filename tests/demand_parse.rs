//! The loader end to end: a multi-document YAML of every kind it reads, and a JSON List.

use gpu_slicer::demand::{Inputs, LoadOptions, load_str};
use gpu_slicer::model::{MIB, Operator, ReplicaPolicy, Requirement, Resources, Sharing};

const MIXED: &str = include_str!("fixtures/demand/mixed.yaml");
const LIST: &str = include_str!("fixtures/demand/list.json");

fn ids(inputs: &Inputs) -> Vec<&str> {
    inputs.items.iter().map(|i| i.id.as_str()).collect()
}

#[test]
fn multi_document_yaml() {
    let mut inputs = Inputs::default();
    load_str(&mut inputs, "mixed.yaml", MIXED, &LoadOptions::default()).unwrap();

    assert_eq!(
        ids(&inputs),
        [
            "ml/notebook",
            "default/gpu-timeslice-test-0",
            "default/gpu-timeslice-test-1",
            "default/gpu-timeslice-test-2",
            "ml/train-0",
            "ml/train-1",
        ]
    );

    // Pod: init container 2 cpu dominates cpu; memory = container + sidecar.
    let nb = &inputs.items[0];
    assert_eq!(nb.requests, Resources::new(2000, (4096 + 64) * MIB));
    assert_eq!(nb.gpus, 1);
    assert_eq!(nb.sharing, Sharing::Shared);
    assert_eq!(nb.gpu_memory_mib, Some(6144));
    assert_eq!(nb.gpu_share_milli, Some(250));
    assert_eq!(
        nb.node_selector["karpenter.k8s.aws/instance-gpu-name"],
        "t4"
    );
    assert_eq!(nb.tolerations.len(), 1);

    // The seed guide's Deployment: only a GPU limit.
    let d = &inputs.items[1];
    assert_eq!(d.requests, Resources::ZERO);
    assert_eq!(d.gpus, 1);
    assert_eq!(d.sharing, Sharing::Shared);
    assert_eq!(d.gpu_memory_mib, None);
    assert_eq!(
        d.affinity_terms,
        vec![vec![Requirement {
            key: "karpenter.sh/capacity-type".into(),
            operator: Operator::In,
            values: vec!["on-demand".into(), "spot".into()],
        }]]
    );
    assert_eq!(inputs.items[3], {
        let mut x = d.clone();
        x.id = "default/gpu-timeslice-test-2".into();
        x
    });

    // Job: min(parallelism 4, completions 2) pods of 2 whole GPUs.
    let j = &inputs.items[4];
    assert_eq!(j.requests, Resources::new(8000, 32 * 1024 * MIB));
    assert_eq!(j.gpus, 2);
    assert_eq!(j.sharing, Sharing::Exclusive);
    assert_eq!(j.gpu_memory_mib, Some(20 * 1024));

    // DaemonSet overhead.
    assert_eq!(inputs.daemonset_overhead.pods, 1);
    assert_eq!(
        inputs.daemonset_overhead.resources,
        Resources::new(50, 100 * MIB)
    );

    // NodePool.
    assert_eq!(inputs.pools.len(), 1);
    assert_eq!(inputs.pools[0].0.name, "gpu");
    assert_eq!(inputs.pools[0].0.replicas, ReplicaPolicy::Fixed(4));
    assert_eq!(inputs.pools[0].1["kind"], "NodePool");

    // The seed ConfigMap.
    let dp = inputs.device_plugin.as_ref().expect("device plugin config");
    assert_eq!(dp.name, "nvidia-device-plugin");
    assert_eq!(dp.replica_policy(), Some(ReplicaPolicy::Fixed(10)));

    assert!(inputs.ec2nodeclasses.is_empty());
    assert_eq!(
        inputs.warnings,
        [
            "mixed.yaml: document 7 (Service ml/notebook): skipped: kind Service (v1) is not read by gpu-slicer"
        ]
    );
}

#[test]
fn json_list() {
    let mut inputs = Inputs::default();
    load_str(&mut inputs, "list.json", LIST, &LoadOptions::default()).unwrap();
    assert_eq!(
        ids(&inputs),
        ["serving/infer-a", "serving/vllm-0", "serving/vllm-1"]
    );

    let a = &inputs.items[0];
    assert_eq!(a.requests, Resources::new(600, (2048 + 64) * MIB));
    assert_eq!(a.sharing, Sharing::Exclusive);
    assert_eq!(a.gpus, 1);

    let v = &inputs.items[2];
    assert_eq!(v.requests, Resources::new(4000, 16 * 1024 * MIB));
    assert_eq!(v.gpu_memory_mib, Some(12 * 1024));
    assert_eq!(v.sharing, Sharing::Shared);

    assert_eq!(inputs.ec2nodeclasses.len(), 1);
    assert_eq!(inputs.ec2nodeclasses[0]["metadata"]["name"], "default");
    assert_eq!(
        inputs.warnings,
        [
            "list.json: document 1 (Pod serving/web): skipped: requests no nvidia.com/gpu (not a GPU pod)"
        ]
    );
}

#[test]
fn sources_accumulate() {
    let mut inputs = Inputs::default();
    let opts = LoadOptions::default();
    load_str(&mut inputs, "mixed.yaml", MIXED, &opts).unwrap();
    load_str(&mut inputs, "list.json", LIST, &opts).unwrap();
    assert_eq!(inputs.items.len(), 9);
    assert_eq!(inputs.warnings.len(), 2);
    // The same device-plugin ConfigMap twice is an error.
    let e = load_str(&mut inputs, "again.yaml", MIXED, &opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        "again.yaml: document 1 (Pod ml/notebook): pod \"ml/notebook\" is defined twice (ids must be unique across all inputs)"
    );
}

#[test]
fn device_plugin_configmap_name_is_an_option() {
    let mut inputs = Inputs::default();
    let opts = LoadOptions {
        device_plugin_configmap: "time-slicing-config".into(),
    };
    load_str(&mut inputs, "mixed.yaml", MIXED, &opts).unwrap();
    assert!(inputs.device_plugin.is_none());
}
