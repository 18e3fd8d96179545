//! `gpu-slicer render`: every emitted object validates against its CRD's openAPIV3Schema
//! (for the examples and for property-generated plans, in every mode), the seed scenario
//! matches golden YAML in all five modes, and bad configuration fails with the object and
//! field named.
//!
//! Regenerate the golden files after an intended change with
//! `UPDATE_GOLDEN=1 cargo test --test render golden` and review the diff.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/crd_schema.rs"]
mod crd_schema;

use std::process::Command;

use gpu_slicer::model::slice::{NodeSharing, Slice};
use gpu_slicer::model::{
    CapacityType, DemandItem, MIB, Operator, Pool, ReplicaPolicy, Requirement, Resources, Sharing,
    Toleration, TolerationOperator, labels,
};
use gpu_slicer::planner::{self, PlanOptions};
use gpu_slicer::render::{
    self, AmiFamily, Emission, Frame, KarpenterVersion, RenderOptions, check_profiles,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const MODES: [&str; 5] = ["overlay", "static", "nodeclaim", "v1beta1", "v1alpha5"];

fn root(p: &str) -> String {
    format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gpu-slicer"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The documents of a render, parsed.
fn documents(yaml: &str) -> Vec<Value> {
    yaml.split("\n---\n")
        .skip(1)
        .map(|d| serde_saphyr::from_str::<Value>(d).expect("each document is YAML"))
        .collect()
}

fn assert_schema_valid(objs: &[Value], what: &str) {
    if let Err(errs) = crd_schema::validate_all(objs) {
        panic!("{what}: objects fail their schemas:\n{}", errs.join("\n"));
    }
}

#[test]
fn golden_seed_in_every_mode() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for mode in MODES {
        let (code, out, err) = run(&[
            "render",
            "-f",
            &root("examples/seed"),
            "--emission",
            mode,
            "--cluster-name",
            "demo",
        ]);
        assert_eq!(code, 0, "{mode}: {err}");
        let path = root(&format!("tests/golden/seed-{mode}.yaml"));
        if update {
            std::fs::write(&path, &out).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e} (run with UPDATE_GOLDEN=1 to create it)"));
        assert_eq!(out, want, "{mode}: output differs from {path}");
        assert_schema_valid(&documents(&out), mode);
    }
}

#[test]
fn seed_v1alpha5_corrects_the_guide() {
    let (code, out, err) = run(&[
        "render",
        "-f",
        &root("examples/seed"),
        "--emission",
        "v1alpha5",
        "--cluster-name",
        "demo",
    ]);
    assert_eq!(code, 0, "{err}");
    let docs = documents(&out);
    let prov = docs
        .iter()
        .find(|d| d["kind"] == "Provisioner")
        .expect("a Provisioner");
    let reqs = prov["spec"]["requirements"]
        .as_array()
        .expect("requirements");
    // The guide wrote `key: "instance-type"`, which is not the well-known label.
    assert!(reqs.iter().all(|r| r["key"] != "instance-type"));
    assert!(reqs.iter().any(|r| r["key"] == labels::INSTANCE_TYPE));
    // The guide limited cpu and memory only; the GPU count is what must be capped.
    assert_eq!(prov["spec"]["limits"]["resources"]["nvidia.com/gpu"], "1");
    // A providerRef to an AWSNodeTemplate instead of the deprecated inline provider.
    assert!(prov["spec"].get("provider").is_none());
    let tmpl = prov["spec"]["providerRef"]["name"]
        .as_str()
        .expect("providerRef");
    assert!(
        docs.iter()
            .any(|d| d["kind"] == "AWSNodeTemplate" && d["metadata"]["name"] == tmpl)
    );
    assert_eq!(
        prov["spec"]["labels"]["nvidia.com/device-plugin.config"],
        "ts-r10"
    );
    // The guide's ConfigMap key `any` is kept, with the sharing settings made explicit.
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("ConfigMap");
    let any = cm["data"]["any"].as_str().expect("key any");
    assert!(any.contains("renameByDefault: false"), "{any}");
    assert!(any.contains("replicas: 10"), "{any}");
    assert_ne!(
        cm["metadata"]["name"], "nvidia-device-plugin",
        "never overwrite the user's"
    );
}

#[test]
fn examples_validate_in_every_mode_and_family() {
    for example in ["examples/seed", "examples/mixed", "examples/frame"] {
        for mode in MODES {
            for fam in ["al2023", "bottlerocket", "al2"] {
                let (code, out, err) = run(&[
                    "render",
                    "-f",
                    &root(example),
                    "--emission",
                    mode,
                    "--ami-family",
                    fam,
                    "--cluster-name",
                    "demo",
                ]);
                if example == "examples/frame" && mode == "v1beta1" {
                    // The frame's Bottlerocket class is karpenter.k8s.aws/v1: a v1beta1
                    // copy cannot be derived from it, and render says so.
                    assert_eq!(code, 1, "{example} {mode}: {out}");
                    assert!(
                        err.contains("EC2NodeClass gpu-bottlerocket: field `apiVersion`"),
                        "{err}"
                    );
                    continue;
                }
                assert_eq!(code, 0, "{example} {mode} {fam}: {err}");
                let docs = documents(&out);
                assert!(docs.len() >= 3, "{example} {mode}: {out}");
                assert_schema_valid(&docs, &format!("{example} {mode} {fam}"));
                check_profiles(&docs).expect("profiles exist");
                for d in &docs {
                    assert_eq!(
                        d["metadata"]["labels"]["app.kubernetes.io/managed-by"], "gpu-slicer",
                        "{}",
                        d["metadata"]["name"]
                    );
                }
            }
        }
    }
}

#[test]
fn cli_rejects_bad_configuration() {
    let seed = root("examples/seed");
    // Unknown emission: a usage error naming the flag's values.
    let (code, _, err) = run(&["render", "-f", &seed, "--emission", "overlays"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("overlay"), "{err}");
    let (code, _, err) = run(&["render", "-f", &seed, "--karpenter-version", "latest"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--karpenter-version"), "{err}");

    let dir = std::env::temp_dir().join(format!("gpu-slicer-render-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let pod = write(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    resources: {limits: {nvidia.com/gpu: 1}}\n",
    );
    let cases = [
        (
            "replicas 1 in the annotation",
            "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata:\n  name: gpu\n  annotations: {gpu-slicer.io/enabled: \"true\", gpu-slicer.io/replicas: \"1\"}\nspec: {template: {spec: {nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: x}, requirements: []}}}\n",
            "gpu-slicer.io/replicas",
        ),
        (
            "replicas 49",
            "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata:\n  name: gpu\n  annotations: {gpu-slicer.io/enabled: \"true\", gpu-slicer.io/replicas: \"49\"}\nspec: {template: {spec: {nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: x}, requirements: []}}}\n",
            "gpu-slicer.io/replicas",
        ),
        (
            "unknown emission in the annotation",
            "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata:\n  name: gpu\n  annotations: {gpu-slicer.io/enabled: \"true\", gpu-slicer.io/emission: overlays}\nspec: {template: {spec: {nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: x}, requirements: []}}}\n",
            "gpu-slicer.io/emission",
        ),
        (
            "an annotation that does not parse",
            "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata:\n  name: gpu\n  annotations: {gpu-slicer.io/enabled: \"true\", gpu-slicer.io/max-hourly-cost: cheap}\nspec: {template: {spec: {nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: x}, requirements: []}}}\n",
            "gpu-slicer.io/max-hourly-cost",
        ),
        (
            "an unknown sharing strategy",
            "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata:\n  name: gpu\n  annotations: {gpu-slicer.io/enabled: \"true\", gpu-slicer.io/sharing-strategy: mig}\nspec: {template: {spec: {nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: x}, requirements: []}}}\n",
            "NodePool gpu): field `metadata.annotations[\"gpu-slicer.io/sharing-strategy\"]`: must be one of time-slicing, mps, auto, got \"mig\"",
        ),
        (
            "mps with a Bottlerocket class that cannot express it",
            "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata:\n  name: gpu\n  annotations: {gpu-slicer.io/enabled: \"true\", gpu-slicer.io/sharing-strategy: mps}\nspec: {template: {spec: {nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: br}, requirements: []}}}\n---\napiVersion: karpenter.k8s.aws/v1\nkind: EC2NodeClass\nmetadata: {name: br}\nspec: {role: R, amiSelectorTerms: [{alias: bottlerocket@v1.50.0}], subnetSelectorTerms: [{tags: {a: b}}], securityGroupSelectorTerms: [{tags: {a: b}}]}\n",
            "NodePool gpu: field `metadata.annotations[\"gpu-slicer.io/sharing-strategy\"]`: is \"mps\", but EC2NodeClass br runs Bottlerocket v1.50.0, whose settings cannot express MPS (settings.kubelet-device-plugins.nvidia.mps, from Bottlerocket 1.54); use time-slicing or a newer AMI",
        ),
        (
            "renameByDefault true",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nvidia-device-plugin, namespace: kube-system}\ndata:\n  any: |\n    version: v1\n    sharing:\n      timeSlicing:\n        renameByDefault: true\n        resources:\n        - name: nvidia.com/gpu\n          replicas: 4\n",
            "renameByDefault",
        ),
    ];
    for (what, text, needle) in cases {
        let f = write("config.yaml", text);
        let (code, out, err) = run(&["render", "-f", &pod, "-f", &f]);
        assert_eq!(code, 1, "{what}: exit {code}\n{out}\n{err}");
        assert!(err.contains(needle), "{what}: {err}");
        assert!(
            err.contains("NodePool gpu") || err.contains("ConfigMap"),
            "{what}: object not named: {err}"
        );
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// Property: random demands, pools and modes → every object valid, the profile labels
// exist as ConfigMap keys, and the emitted capacity equals the plan's.

fn arb_item() -> impl Strategy<Value = DemandItem> {
    (
        0u64..8_000,
        0u64..48,
        prop::sample::select(vec![1u32, 1, 1, 1, 2, 4]),
        any::<bool>(),
        prop::option::of(1u64..30_000),
        prop::option::of(prop::sample::select(vec!["t4", "a10g", "l4", "v100"])),
        prop::option::of(prop::sample::select(vec!["us-east-1a", "us-east-1b"])),
        prop::sample::select(vec![false, false, true]),
    )
        .prop_map(
            |(cpu, mem_gib, gpus, excl, gmem, gpu_name, zone, isolated)| {
                let mut d = DemandItem::shared("x", Resources::new(cpu, mem_gib * 1024 * MIB));
                d.gpus = gpus;
                if excl || gpus > 1 {
                    d.sharing = Sharing::Exclusive;
                }
                if isolated {
                    d.isolation = gpu_slicer::model::Isolation::Memory;
                }
                d.gpu_memory_mib = gmem;
                let mut term = Vec::new();
                if let Some(g) = gpu_name {
                    term.push(Requirement {
                        key: labels::INSTANCE_GPU_NAME.into(),
                        operator: Operator::In,
                        values: vec![g.into()],
                    });
                }
                if let Some(z) = zone {
                    term.push(Requirement {
                        key: labels::ZONE.into(),
                        operator: Operator::In,
                        values: vec![z.into()],
                    });
                }
                if !term.is_empty() {
                    d.affinity_terms = vec![term];
                }
                d.tolerations.push(Toleration {
                    key: None,
                    operator: TolerationOperator::Exists,
                    value: None,
                    effect: None,
                });
                d
            },
        )
}

fn arb_pool() -> impl Strategy<Value = Option<(Pool, Value)>> {
    prop::option::of((
        prop::sample::select(vec!["auto", "2", "4", "7"]),
        prop::sample::select(vec!["auto", "overlay", "static", "nodeclaim", "v1beta1", "v1alpha5"]),
        any::<bool>(),
        prop::sample::select(vec!["auto", "mps", "time-slicing"]),
    ))
    .prop_map(|o| {
        o.map(|(replicas, emission, spot, sharing)| {
            let capacity = if spot {
                json!(["on-demand", "spot"])
            } else {
                json!(["on-demand"])
            };
            let np = json!({
                "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
                "metadata": {"name": "team-gpu", "annotations": {
                    "gpu-slicer.io/enabled": "true",
                    "gpu-slicer.io/replicas": replicas,
                    "gpu-slicer.io/emission": emission,
                    "gpu-slicer.io/sharing-strategy": sharing}},
                "spec": {"template": {
                    "metadata": {"labels": {"team": "ml"}},
                    "spec": {
                        "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
                        "requirements": [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": capacity}],
                        "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
                    }}}
            });
            let pool = gpu_slicer::config::pool_from_nodepool(&np)
                .expect("valid")
                .expect("opted in");
            (pool, np)
        })
    })
}

fn planned_capacity(plan: &planner::Plan) -> (u64, u64) {
    let gpus = plan.nodes.iter().map(|n| u64::from(n.gpus)).sum();
    let slices = plan
        .nodes
        .iter()
        .map(|n| u64::from(n.gpus) * u64::from(n.replicas_per_gpu))
        .sum();
    (gpus, slices)
}

fn num(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().expect("integer quantity"),
        Value::Number(n) => n.as_u64().expect("integer"),
        other => panic!("not a quantity: {other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn rendered_objects_are_valid_and_match_the_plan(
        items in prop::collection::vec(arb_item(), 1..30),
        pool in arb_pool(),
        mode in prop::sample::select(vec!["auto", "overlay", "static", "nodeclaim", "v1beta1", "v1alpha5"]),
        family in prop::sample::select(vec![AmiFamily::Al2023, AmiFamily::Bottlerocket, AmiFamily::Al2]),
        version in prop::sample::select(vec!["0.32", "0.37", "1.3", "1.14"]),
    ) {
        let items: Vec<DemandItem> = items
            .into_iter()
            .enumerate()
            .map(|(i, mut d)| { d.id = format!("default/p-{i}"); d })
            .collect();
        let cat = gpu_slicer::catalog::embedded().expect("catalog");
        let pools: Vec<(Pool, Value)> = pool.into_iter().collect();
        let opts = PlanOptions {
            pools: pools.iter().map(|(p, _)| p.clone()).collect(),
            default_replicas: ReplicaPolicy::Auto { max: 10 },
            capacity_types: vec![CapacityType::OnDemand],
            dedicated: false,
            ..PlanOptions::default()
        };
        let plan = planner::plan(&cat, &items, &opts);
        let ropts = RenderOptions {
            emission: Emission::parse(mode).expect("mode"),
            karpenter_version: KarpenterVersion::parse(version).expect("version"),
            ami_family: family,
            cluster_name: "demo".into(),
            ..RenderOptions::default()
        };
        let frame = Frame { pools: &pools, ..Frame::default() };
        let r = render::render(&plan, &cat, frame, &ropts).expect("renders");
        assert_schema_valid(&r.objects, "property");
        check_profiles(&r.objects).expect("profiles");
        // The YAML reads back as the same objects.
        let back = documents(&r.to_yaml().expect("yaml"));
        prop_assert_eq!(&back, &r.objects);

        let (_, slices) = planned_capacity(&plan);
        // v1beta1 and v1alpha5 cannot launch fractional types: they are left out, with a note.
        let whole_gpus: u64 = plan.nodes.iter().filter(|n| n.sharing != "fractional")
            .map(|n| u64::from(n.gpus)).sum();
        if plan.nodes.iter().any(|n| n.sharing == "fractional")
            && r.modes.values().any(|m| matches!(m, Emission::V1beta1 | Emission::V1alpha5))
        {
            prop_assert!(r.notes.iter().any(|n| n.contains("fractional-GPU node(s)")), "{:?}", r.notes);
        }
        let count = |kind: &str| r.objects.iter().filter(|o| o["kind"] == kind).count();
        for pool_name in r.modes.keys() {
            prop_assert!(plan.nodes.iter().any(|n| &n.node_pool == pool_name));
        }
        let modes: std::collections::BTreeSet<Emission> = r.modes.values().copied().collect();
        if modes.len() == 1 {
            match modes.iter().next().copied() {
                Some(Emission::Overlay) => {
                    let lim: u64 = r.objects.iter().filter(|o| o["kind"] == "NodePool")
                        .map(|o| num(&o["spec"]["limits"]["nvidia.com/gpu"])).sum();
                    prop_assert_eq!(lim, slices);
                }
                Some(Emission::Static) => {
                    let n: u64 = r.objects.iter().filter(|o| o["kind"] == "NodePool")
                        .map(|o| o["spec"]["replicas"].as_u64().expect("replicas")).sum();
                    prop_assert_eq!(n as usize, plan.nodes.len());
                }
                Some(Emission::NodeClaim) => prop_assert_eq!(count("NodeClaim"), plan.nodes.len()),
                Some(Emission::V1beta1) => {
                    let lim: u64 = r.objects.iter().filter(|o| o["kind"] == "NodePool")
                        .map(|o| num(&o["spec"]["limits"]["nvidia.com/gpu"])).sum();
                    prop_assert_eq!(lim, whole_gpus);
                }
                Some(Emission::V1alpha5) => {
                    let lim: u64 = r.objects.iter().filter(|o| o["kind"] == "Provisioner")
                        .map(|o| num(&o["spec"]["limits"]["resources"]["nvidia.com/gpu"])).sum();
                    prop_assert_eq!(lim, whole_gpus);
                }
                _ => {}
            }
        }
        // Every node gpu-slicer launches carries the slice labels, and they hold for
        // every type its NodePool, NodeClaim or Provisioner may launch.
        let headroom = pools.first().map_or(0, |(p, _)| p.gpu_memory_headroom_mib);
        let mut launchers = 0;
        for o in &r.objects {
            let (labels, reqs) = match o["kind"].as_str() {
                Some("NodePool") => (&o["spec"]["template"]["metadata"]["labels"], &o["spec"]["template"]["spec"]["requirements"]),
                Some("NodeClaim") => (&o["metadata"]["labels"], &o["spec"]["requirements"]),
                Some("Provisioner") => (&o["spec"]["labels"], &o["spec"]["requirements"]),
                _ => continue,
            };
            launchers += 1;
            let label = |k: &str| labels[k].as_str().map(str::to_string);
            let slice = Slice::from_labels(&label).expect("all the slice labels");
            let types: Vec<&str> = reqs.as_array().expect("requirements").iter()
                .filter(|q| q["key"] == labels::INSTANCE_TYPE)
                .flat_map(|q| q["values"].as_array().expect("values").iter().filter_map(Value::as_str))
                .collect();
            prop_assert!(!types.is_empty());
            for t in types {
                let ty = gpu_slicer::catalog::find(&cat, t).expect("known type");
                // The type's slice at R, under MPS where the labels say so.
                let own = ty.slice(headroom, slice.replicas);
                let own = if slice.sharing == NodeSharing::Mps { own.under_mps(gpu_slicer::model::slice::Efficiency::MEASURED) } else { own };
                prop_assert_eq!(slice, own);
                // MPS nodes run the MPS profile.
                prop_assert_eq!(label("nvidia.com/device-plugin.config"), Some(slice.profile()));
            }
        }
        prop_assert!(launchers > 0 || whole_gpus == 0);
        // Every overlay's capacity is GPUs × R of the types it names, for its pool's R
        // (1 for a fractional type, which EC2 reports without a GPU).
        for o in r.objects.iter().filter(|o| o["kind"] == "NodeOverlay") {
            let cap = num(&o["spec"]["capacity"]["nvidia.com/gpu"]);
            let types = o["spec"]["requirements"][1]["values"].as_array().expect("types");
            let pool_name = o["spec"]["requirements"][0]["values"][0].as_str().expect("pool");
            let np = r.objects.iter()
                .find(|p| p["kind"] == "NodePool" && p["metadata"]["name"] == pool_name)
                .expect("overlay's NodePool is emitted");
            let rep: u64 = np["spec"]["template"]["metadata"]["labels"]["gpu-slicer.io/replicas"]
                .as_str().and_then(|s| s.parse().ok()).expect("replicas label");
            for t in types {
                let ty = gpu_slicer::catalog::find(&cat, t.as_str().expect("type")).expect("known type");
                prop_assert_eq!(cap, u64::from(ty.gpu_count) * rep);
            }
        }
    }
}
