//! The loader end to end: a multi-document YAML of every kind it reads, and a JSON List.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

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
            "serving/llama-0",
            "serving/llama-0-1",
            "serving/llama-0-2",
            "serving/llama-0-3",
            "serving/llama-1",
            "serving/llama-1-1",
            "serving/llama-1-2",
            "serving/llama-1-3",
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

    // LeaderWorkerSet: each group's leader from leaderTemplate, its workers from workerTemplate.
    let leader = &inputs.items[6];
    assert_eq!(leader.requests, Resources::new(4000, 16 * 1024 * MIB));
    assert_eq!(leader.gpu_memory_mib, Some(14 * 1024));
    let worker = &inputs.items[7];
    assert_eq!(worker.requests, Resources::new(2000, 8 * 1024 * MIB));
    assert_eq!(worker.gpus, 1);
    assert_eq!(worker.gpu_memory_mib, None);
    for (k, it) in inputs.items[6..].iter().enumerate() {
        let expected = if k % 4 == 0 { leader } else { worker };
        assert_eq!(it.requests, expected.requests, "{}", it.id);
        assert_eq!(it.gpu_memory_mib, expected.gpu_memory_mib, "{}", it.id);
    }

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
    assert_eq!(inputs.items.len(), 17);
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
        ..LoadOptions::default()
    };
    load_str(&mut inputs, "mixed.yaml", MIXED, &opts).unwrap();
    assert!(inputs.device_plugin.is_none());
}

/// A LeaderWorkerSet with `spec` spliced in (`leaderWorkerTemplate` and `replicas`).
fn lws(api: &str, spec: &str) -> String {
    format!(
        "apiVersion: {api}\nkind: LeaderWorkerSet\nmetadata: {{name: lws, namespace: ml}}\nspec:\n{spec}"
    )
}

fn template(role: &str, cpu: &str, gpus: u32) -> String {
    format!(
        "    {role}:
      spec:
        containers:
        - name: c
          resources:
            requests: {{cpu: {cpu}}}
            limits: {{nvidia.com/gpu: {gpus}}}
"
    )
}

fn load_lws(spec: &str) -> Result<Inputs, String> {
    let mut inputs = Inputs::default();
    let text = lws("leaderworkerset.x-k8s.io/v1", spec);
    load_str(&mut inputs, "lws.yaml", &text, &LoadOptions::default()).map_err(|e| e.to_string())?;
    Ok(inputs)
}

#[test]
fn leader_worker_set_templates_and_sizes() {
    let worker = template("workerTemplate", "\"2\"", 1);
    let leader = template("leaderTemplate", "\"1\"", 1);

    // No leaderTemplate: the leader is a worker; no replicas: one group.
    let i = load_lws(&format!("  leaderWorkerTemplate:\n    size: 3\n{worker}")).unwrap();
    assert_eq!(ids(&i), ["ml/lws-0", "ml/lws-0-1", "ml/lws-0-2"]);
    assert!(i.items.iter().all(|x| x.requests.cpu_milli == 2000));
    assert!(i.warnings.is_empty(), "{:?}", i.warnings);

    // Size 1 (the default): leaders only, from the leaderTemplate.
    for size in ["", "    size: 1\n"] {
        let i = load_lws(&format!(
            "  replicas: 3\n  leaderWorkerTemplate:\n{size}{leader}{worker}"
        ))
        .unwrap();
        assert_eq!(ids(&i), ["ml/lws-0", "ml/lws-1", "ml/lws-2"]);
        assert!(i.items.iter().all(|x| x.requests.cpu_milli == 1000));
    }

    // Zero groups: nothing.
    let i = load_lws(&format!("  replicas: 0\n  leaderWorkerTemplate:\n{worker}")).unwrap();
    assert!(i.items.is_empty());

    // A leader without a GPU gives no item; its workers do.
    let cpu_leader = template("leaderTemplate", "\"1\"", 0);
    let i = load_lws(&format!(
        "  replicas: 2\n  leaderWorkerTemplate:\n    size: 2\n{cpu_leader}{worker}"
    ))
    .unwrap();
    assert_eq!(ids(&i), ["ml/lws-0-1", "ml/lws-1-1"]);
    assert_eq!(
        i.warnings,
        [
            "lws.yaml: document 1 (LeaderWorkerSet ml/lws): skipped its leader pods: they request no nvidia.com/gpu"
        ]
    );
}

#[test]
fn leader_worker_set_errors() {
    let worker = template("workerTemplate", "\"2\"", 1);
    let leader = template("leaderTemplate", "\"1\"", 1);
    let err = |spec: &str| load_lws(spec).unwrap_err();
    const AT: &str = "lws.yaml: document 1 (LeaderWorkerSet ml/lws)";

    assert_eq!(
        err(&format!("  leaderWorkerTemplate:\n    size: 2\n{leader}")),
        format!(
            "{AT}: field `spec.leaderWorkerTemplate.workerTemplate`: required field is missing"
        )
    );
    assert_eq!(
        err("  replicas: 1\n"),
        format!("{AT}: field `spec.leaderWorkerTemplate`: required field is missing")
    );
    assert_eq!(
        err(&format!("  leaderWorkerTemplate:\n    size: 0\n{worker}")),
        format!("{AT}: field `spec.leaderWorkerTemplate.size`: must be at least 1 (the leader)")
    );
    assert_eq!(
        err(&format!("  leaderWorkerTemplate:\n    size: -2\n{worker}")),
        format!("{AT}: field `spec.leaderWorkerTemplate.size`: must not be negative, got -2")
    );
    assert_eq!(
        err(&format!(
            "  replicas: 1000\n  leaderWorkerTemplate:\n    size: 1000\n{worker}"
        )),
        format!(
            "{AT}: field `spec.replicas`: 1000 groups of 1000 pods (spec.leaderWorkerTemplate.size) \
             is more than the limit of 100000 pods per workload"
        )
    );
    // replicas × size overflows u64.
    let huge = u64::MAX;
    assert!(
        err(&format!(
            "  replicas: {huge}\n  leaderWorkerTemplate:\n    size: 4\n{worker}"
        ))
        .starts_with(&format!(
            "{AT}: field `spec.replicas`: {huge} groups of 4 pods"
        ))
    );
    // Field paths inside either template are the real ones.
    let bad = "    workerTemplate:
      spec:
        containers:
        - name: c
          resources: {limits: {cpu: lots, nvidia.com/gpu: 1}}
";
    assert!(
        err(&format!("  leaderWorkerTemplate:\n    size: 2\n{leader}{bad}")).starts_with(&format!(
            "{AT}: field `spec.leaderWorkerTemplate.workerTemplate.spec.containers[0].resources.limits.cpu`:"
        ))
    );
    let bad_leader = "    leaderTemplate:
      metadata: {annotations: {gpu-slicer.io/gpu-memroy: 1Gi}}
      spec: {containers: [{name: c, resources: {limits: {nvidia.com/gpu: 1}}}]}
";
    assert!(
        err(&format!("  leaderWorkerTemplate:\n{bad_leader}{worker}")).starts_with(&format!(
            "{AT}: field `spec.leaderWorkerTemplate.leaderTemplate.metadata.annotations"
        ))
    );
}

#[test]
fn leader_worker_set_other_api_versions_are_skipped() {
    let mut inputs = Inputs::default();
    let text = lws(
        "leaderworkerset.x-k8s.io/v1alpha1",
        &format!(
            "  leaderWorkerTemplate:\n{}",
            template("workerTemplate", "1", 1)
        ),
    );
    load_str(&mut inputs, "lws.yaml", &text, &LoadOptions::default()).unwrap();
    assert!(inputs.items.is_empty());
    assert_eq!(
        inputs.warnings,
        [
            "lws.yaml: document 1 (LeaderWorkerSet ml/lws): skipped: apiVersion leaderworkerset.x-k8s.io/v1alpha1 of LeaderWorkerSet is not supported (supported: leaderworkerset.x-k8s.io/v1)"
        ]
    );
}

/// Issue 17: `--max-pods` bounds the pods of all inputs before a workload is expanded, and
/// `expanded_pods` counts the pods a failed load made and dropped (all or nothing).
#[test]
fn pods_are_bounded_over_all_inputs_and_counted_when_a_load_fails() {
    let deployment = |name: &str, replicas: u32| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: ml}}\n\
             spec:\n  replicas: {replicas}\n  template:\n    spec:\n      containers:\n      \
             - name: c\n        resources: {{limits: {{nvidia.com/gpu: 1}}}}\n"
        )
    };
    let opts = LoadOptions {
        max_pods: 10,
        ..LoadOptions::default()
    };
    let mut inputs = Inputs::default();
    load_str(&mut inputs, "a.yaml", &deployment("a", 6), &opts).unwrap();
    assert_eq!((inputs.items.len(), inputs.expanded_pods), (6, 6));
    // 6 + 5 > 10: refused before any of the 5 is made, naming the count and the flag.
    let e = load_str(&mut inputs, "b.yaml", &deployment("b", 5), &opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        "b.yaml: document 1 (Deployment ml/b): field `spec.replicas`: 5 more pods would take \
         the inputs past 10 pods, what --max-pods 10 allows; raise the limit if they are meant"
    );
    assert_eq!((inputs.items.len(), inputs.expanded_pods), (6, 6));
    // A load that made 4 pods and then failed keeps none of them, but counts them.
    let text = format!("{}---\nkind: Pod\n", deployment("c", 4));
    assert!(load_str(&mut inputs, "c.yaml", &text, &opts).is_err());
    assert_eq!((inputs.items.len(), inputs.expanded_pods), (6, 10));
    // A LeaderWorkerSet counts the pods it makes: 4 groups of 3 whose workers need no GPU
    // are 4 leader pods, not 12 (6 + 4 = 10 fits).
    let leader = template("leaderTemplate", "\"1\"", 1);
    let cpu_worker = template("workerTemplate", "\"1\"", 0);
    let text = lws(
        "leaderworkerset.x-k8s.io/v1",
        &format!("  replicas: 4\n  leaderWorkerTemplate:\n    size: 3\n{leader}{cpu_worker}"),
    );
    load_str(&mut inputs, "d.yaml", &text, &opts).unwrap();
    assert_eq!(inputs.items.len(), 10);
}
