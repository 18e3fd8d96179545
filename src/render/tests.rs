use serde_json::json;

use super::*;
use crate::config::pool_from_nodepool;
use crate::model::contract::{MANAGED_BY, MANAGER, REPLICAS_LABEL};
use crate::model::{DemandItem, ReplicaPolicy, Resources};
use crate::planner::{self, PlanOptions};

fn catalog() -> Catalog {
    crate::catalog::embedded().expect("embedded catalog parses")
}

/// `n` one-slice pods using `mem_gib` of GPU memory each.
fn pods(prefix: &str, n: usize, mem_gib: u64) -> Vec<DemandItem> {
    (0..n)
        .map(|i| {
            let mut d = DemandItem::shared(
                format!("default/{prefix}-{i}"),
                Resources::new(500, 1 << 30),
            );
            d.gpu_memory_mib = Some(mem_gib * 1024);
            d
        })
        .collect()
}

fn plan_for(items: &[DemandItem], pools: Vec<Pool>) -> Plan {
    let opts = PlanOptions {
        pools,
        dedicated: false,
        ..PlanOptions::default()
    };
    planner::plan(&catalog(), items, &opts)
}

/// `plan` rendered for one annotated pool and these EC2NodeClasses, default options.
fn render_with_classes(plan: &Plan, pool: (Pool, Value), classes: &[Value]) -> Rendered {
    let pools = [pool];
    let frame = Frame {
        pools: &pools,
        ec2nodeclasses: classes,
        device_plugin: None,
        fleet: &[],
    };
    render(plan, &catalog(), frame, &RenderOptions::default()).expect("renders")
}

/// `plan` rendered without a frame, with the default options.
fn render_default(plan: &Plan) -> Rendered {
    render(
        plan,
        &catalog(),
        Frame::default(),
        &RenderOptions::default(),
    )
    .expect("renders")
}

fn kinds(r: &Rendered) -> Vec<String> {
    r.objects.iter().map(describe_object).collect()
}

fn find<'a>(r: &'a Rendered, kind: &str) -> Vec<&'a Value> {
    r.objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
fn versions_pick_modes() {
    let v = |s: &str| KarpenterVersion::parse(s).expect("version");
    assert_eq!(Emission::for_version(v("0.32.10")), Emission::V1alpha5);
    assert_eq!(Emission::for_version(v("v0.33")), Emission::V1beta1);
    assert_eq!(Emission::for_version(v("0.37.0")), Emission::V1beta1);
    assert_eq!(Emission::for_version(v("1.0")), Emission::NodeClaim);
    assert_eq!(Emission::for_version(v("1.6.3")), Emission::NodeClaim);
    assert_eq!(Emission::for_version(v("1.7")), Emission::Overlay);
    assert_eq!(Emission::for_version(v("1.14.1")), Emission::Overlay);
    for bad in ["", "1", "one.two", "1.2.3.4", "1.x", "1.2.beta"] {
        assert_eq!(KarpenterVersion::parse(bad), None, "{bad:?}");
    }
    for e in Emission::ALL {
        assert_eq!(Emission::parse(e.as_str()), Some(e));
    }
    assert_eq!(Emission::parse("overlays"), None);
}

#[test]
fn served_apis_pick_modes() {
    let set = |v: &[(&str, &str, &str)]| -> BTreeSet<(String, String, String)> {
        v.iter()
            .map(|(g, ver, k)| (g.to_string(), ver.to_string(), k.to_string()))
            .collect()
    };
    let np1 = ("karpenter.sh", "v1", "NodePool");
    let ov = ("karpenter.sh", "v1alpha1", "NodeOverlay");
    let np_b = ("karpenter.sh", "v1beta1", "NodePool");
    let prov = ("karpenter.sh", "v1alpha5", "Provisioner");
    assert_eq!(
        emission_for_served(&set(&[np1, ov])),
        Some(Emission::Overlay)
    );
    assert_eq!(
        emission_for_served(&set(&[np1, np_b])),
        Some(Emission::NodeClaim)
    );
    assert_eq!(
        emission_for_served(&set(&[np_b, prov])),
        Some(Emission::V1beta1)
    );
    assert_eq!(emission_for_served(&set(&[prov])), Some(Emission::V1alpha5));
    assert_eq!(emission_for_served(&set(&[])), None);
    // Discovery decides `auto`, but an annotation or a forced flag still wins.
    let opts = RenderOptions {
        discovered: Some(Emission::V1beta1),
        ..RenderOptions::default()
    };
    assert_eq!(
        resolve_mode(&opts, &frame::PoolFrame::default()),
        Emission::V1beta1
    );
    let annotated = frame::PoolFrame {
        emission: Some(Emission::Static),
        ..frame::PoolFrame::default()
    };
    assert_eq!(resolve_mode(&opts, &annotated), Emission::Static);
}

#[test]
fn names_fit_and_stay_distinct() {
    assert_eq!(fit_name("gpu-slicer-ts-r4", 63), "gpu-slicer-ts-r4");
    assert_eq!(fit_name("Team_A.GPU--pool", 63), "team-a-gpu-pool");
    let long_a = format!("{}-ts-r4", "a".repeat(70));
    let long_b = format!("{}-ts-r5", "a".repeat(70));
    let (a, b) = (fit_name(&long_a, 63), fit_name(&long_b, 63));
    assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
    assert_ne!(a, b);
    assert_eq!(a, fit_name(&long_a, 63), "stable");
    assert!(!fit_name("---", 63).is_empty());
}

#[test]
fn overlay_mode_pins_types_and_counts_slices() {
    // 12 pods of 3 GiB: replicas are chosen per node, every overlay must say count × R.
    let items = pods("infer", 12, 3);
    let plan = plan_for(&items, Vec::new());
    let rendered = render_default(&plan);
    let pools = find(&rendered, "NodePool");
    assert!(!pools.is_empty());
    let planned_slices: u64 = plan
        .nodes
        .iter()
        .map(|n| u64::from(n.gpus) * u64::from(n.replicas_per_gpu))
        .sum();
    let mut limit_sum = 0;
    for np in &pools {
        let labels = &np["spec"]["template"]["metadata"]["labels"];
        let r: u32 = labels[REPLICAS_LABEL]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("replicas label");
        assert_eq!(labels[DEVICE_PLUGIN_CONFIG_LABEL], format!("ts-r{r}"));
        assert_eq!(labels[PROFILE_LABEL], format!("ts-r{r}"));
        limit_sum += np["spec"]["limits"][NVIDIA_GPU]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .expect("gpu limit");
        let reqs = np["spec"]["template"]["spec"]["requirements"]
            .as_array()
            .expect("requirements");
        let types = reqs
            .iter()
            .find(|q| q["key"] == labels::INSTANCE_TYPE)
            .expect("type pin");
        let name = np["metadata"]["name"].as_str().expect("name");
        for t in types["values"].as_array().expect("values") {
            assert!(
                plan.nodes.iter().any(|n| n.instance_type == t.as_str().unwrap_or("")
                    && n.replicas_per_gpu == r),
                "{name} allows {t}, not planned with R={r}"
            );
        }
        let taints = np["spec"]["template"]["spec"]["startupTaints"].to_string();
        assert!(taints.contains(SLICING_PENDING_TAINT), "{taints}");
        if r > 1 {
            // Every planned type of this pool is covered by one overlay with count × R.
            for n in plan.nodes.iter().filter(|n| n.replicas_per_gpu == r) {
                let ov = find(&rendered, "NodeOverlay")
                    .into_iter()
                    .filter(|o| o["spec"]["requirements"][0]["values"][0] == name)
                    .find(|o| {
                        o["spec"]["requirements"][1]["values"]
                            .as_array()
                            .is_some_and(|v| v.iter().any(|t| t == &json!(n.instance_type)))
                    })
                    .cloned()
                    .expect("overlay for planned type");
                assert_eq!(
                    ov["spec"]["capacity"][NVIDIA_GPU],
                    json!((n.gpus * r).to_string())
                );
            }
        }
    }
    assert_eq!(limit_sum, planned_slices);
}

#[test]
fn static_and_nodeclaim_modes_count_nodes() {
    let items = pods("infer", 40, 2);
    let plan = plan_for(&items, Vec::new());
    let cat = catalog();
    let st = render(
        &plan,
        &cat,
        Frame::default(),
        &RenderOptions {
            emission: Emission::Static,
            ..RenderOptions::default()
        },
    )
    .expect("static");
    let replicas: i64 = find(&st, "NodePool")
        .iter()
        .map(|p| {
            p["spec"]["replicas"]
                .as_i64()
                .expect("static pool has replicas")
        })
        .sum();
    assert_eq!(replicas, plan.nodes.len() as i64);
    for p in find(&st, "NodePool") {
        assert_eq!(p["spec"]["limits"].as_object().map(|m| m.len()), Some(1));
        assert!(p["spec"]["limits"]["nodes"].is_string());
        assert!(p["spec"].get("weight").is_none());
    }
    let nc = render(
        &plan,
        &cat,
        Frame::default(),
        &RenderOptions {
            emission: Emission::NodeClaim,
            ..RenderOptions::default()
        },
    )
    .expect("nodeclaim");
    let claims = find(&nc, "NodeClaim");
    assert_eq!(claims.len(), plan.nodes.len());
    for c in claims {
        assert_eq!(c["spec"]["expireAfter"], "Never");
        assert!(c["metadata"]["labels"][DEVICE_PLUGIN_CONFIG_LABEL].is_string());
    }
    assert!(find(&nc, "NodePool").is_empty());
}

#[test]
fn legacy_modes_limit_physical_gpus() {
    let items = pods("infer", 10, 1);
    let mut pool = Pool::default_pool(ReplicaPolicy::Fixed(10));
    pool.name = "gpu-slicer".into();
    let plan = plan_for(&items, vec![pool]);
    let gpus: u32 = plan.nodes.iter().map(|n| n.gpus).sum();
    let cat = catalog();
    for (mode, kind, limit) in [
        (
            Emission::V1beta1,
            "NodePool",
            "/spec/limits/nvidia.com~1gpu",
        ),
        (
            Emission::V1alpha5,
            "Provisioner",
            "/spec/limits/resources/nvidia.com~1gpu",
        ),
    ] {
        let r = render(
            &plan,
            &cat,
            Frame::default(),
            &RenderOptions {
                emission: mode,
                ..RenderOptions::default()
            },
        )
        .expect("renders");
        let objs = find(&r, kind);
        assert_eq!(objs.len(), 1, "{mode}");
        assert_eq!(
            objs[0].pointer(limit),
            Some(&json!(gpus.to_string())),
            "{mode}"
        );
        assert!(find(&r, "NodeOverlay").is_empty());
        assert!(
            r.notes.iter().any(|n| n.contains("physical GPUs")),
            "{:?}",
            r.notes
        );
    }
}

fn annotated(extra: Value) -> (Pool, Value) {
    let mut np = json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": "team-a", "annotations": {"gpu-slicer.io/enabled": "true"}},
        "spec": {
            "template": {
                "metadata": {"labels": {"team": "a"}},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "br"},
                    "requirements": [{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g5", "g6"]}],
                    "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
                }
            }
        }
    });
    merge(&mut np, extra);
    let pool = pool_from_nodepool(&np).expect("valid").expect("opted in");
    (pool, np)
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn tolerant(items: &mut [DemandItem]) {
    for d in items {
        d.tolerations.push(crate::model::Toleration {
            key: Some("nvidia.com/gpu".into()),
            operator: crate::model::TolerationOperator::Exists,
            value: None,
            effect: None,
        });
    }
}

#[test]
fn frame_gives_class_labels_taints_and_derives_bottlerocket() {
    let (pool, raw) = annotated(json!({}));
    let mut items = pods("infer", 8, 4);
    tolerant(&mut items);
    let plan = plan_for(&items, vec![pool.clone()]);
    assert!(plan.unplaced.is_empty(), "{:?}", plan.unplaced);
    let classes = [json!({
        "apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass",
        "metadata": {"name": "br", "uid": "123", "resourceVersion": "9"},
        "spec": {"amiSelectorTerms": [{"alias": "bottlerocket@latest"}], "role": "R",
                 "subnetSelectorTerms": [{"tags": {"k": "v"}}], "securityGroupSelectorTerms": [{"tags": {"k": "v"}}],
                 "userData": "[settings.kubernetes]\nmax-pods = 110\n"}
    })];
    let r = render_with_classes(&plan, (pool, raw), &classes);
    let np = find(&r, "NodePool")[0];
    assert!(
        np["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .starts_with("team-a-ts-r")
    );
    assert_eq!(np["spec"]["template"]["metadata"]["labels"]["team"], "a");
    let spec = &np["spec"]["template"]["spec"];
    assert_eq!(spec["taints"][0]["key"], "nvidia.com/gpu");
    assert!(
        spec["requirements"].to_string().contains("instance-family"),
        "frame requirement kept"
    );
    let class_name = spec["nodeClassRef"]["name"].as_str().expect("class");
    assert_ne!(
        class_name, "br",
        "a Bottlerocket class is derived, not edited"
    );
    let derived = find(&r, "EC2NodeClass")
        .into_iter()
        .find(|c| c["metadata"]["name"] == class_name)
        .expect("derived class emitted");
    let ud = derived["spec"]["userData"].as_str().expect("userData");
    assert!(
        ud.starts_with("[settings.kubernetes]\nmax-pods = 110"),
        "{ud}"
    );
    assert!(ud.contains("rename-by-default = false"));
    assert_eq!(derived["spec"]["role"], "R");
    assert!(derived["metadata"].get("uid").is_none());
    assert_eq!(derived["metadata"]["labels"][MANAGED_BY], MANAGER);
    // The user's class itself is not among the output.
    assert!(!kinds(&r).contains(&"EC2NodeClass br".to_string()));
}

#[test]
fn frame_with_al2023_class_is_referenced_not_copied() {
    let (pool, raw) = annotated(json!({}));
    let mut items = pods("infer", 4, 4);
    tolerant(&mut items);
    let plan = plan_for(&items, vec![pool.clone()]);
    let classes = [json!({
        "apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "br"},
        "spec": {"amiSelectorTerms": [{"alias": "al2023@latest"}]}
    })];
    let r = render_with_classes(&plan, (pool, raw), &classes);
    assert!(find(&r, "EC2NodeClass").is_empty());
    assert_eq!(
        find(&r, "NodePool")[0]["spec"]["template"]["spec"]["nodeClassRef"]["name"],
        "br"
    );
}

#[test]
fn annotation_picks_mode_unless_the_flag_forces_one() {
    let (pool, raw) =
        annotated(json!({"metadata": {"annotations": {"gpu-slicer.io/emission": "nodeclaim"}}}));
    let mut items = pods("infer", 4, 4);
    tolerant(&mut items);
    let plan = plan_for(&items, vec![pool.clone()]);
    let pools = [(pool, raw)];
    let frame = Frame {
        pools: &pools,
        ..Frame::default()
    };
    let r = render(&plan, &catalog(), frame, &RenderOptions::default()).expect("auto");
    assert_eq!(r.modes["team-a"], Emission::NodeClaim);
    assert!(!find(&r, "NodeClaim").is_empty());
    let forced = RenderOptions {
        emission: Emission::Overlay,
        ..RenderOptions::default()
    };
    let r = render(&plan, &catalog(), frame, &forced).expect("forced");
    assert_eq!(r.modes["team-a"], Emission::Overlay);
    assert!(find(&r, "NodeClaim").is_empty());
}

#[test]
fn bad_configuration_is_refused_with_object_and_field() {
    let mut items = pods("infer", 4, 4);
    tolerant(&mut items);
    let cat = catalog();

    // A frame that sets a label gpu-slicer owns.
    let (pool, raw) = annotated(
        json!({"spec": {"template": {"metadata": {"labels": {"nvidia.com/device-plugin.config": "mine"}}}}}),
    );
    let plan = plan_for(&items, vec![pool.clone()]);
    let pools = [(pool, raw)];
    let e = render(
        &plan,
        &cat,
        Frame {
            pools: &pools,
            ..Frame::default()
        },
        &RenderOptions::default(),
    )
    .expect_err("reserved label");
    assert_eq!(e.object, "NodePool team-a");
    assert_eq!(
        e.field,
        "spec.template.metadata.labels[\"nvidia.com/device-plugin.config\"]"
    );
    // The pool's budget and limits are the guard's (`guard::tests`): render renders.
}

#[test]
fn profile_labels_must_name_configmap_keys() {
    let items = pods("infer", 4, 4);
    let plan = plan_for(&items, Vec::new());
    let mut r = render_default(&plan);
    check_profiles(&r.objects).expect("own output is consistent");
    // Drop the key a NodePool names: the check must catch it.
    let np = find(&r, "NodePool")[0].clone();
    let profile = np["spec"]["template"]["metadata"]["labels"][DEVICE_PLUGIN_CONFIG_LABEL]
        .as_str()
        .expect("label")
        .to_string();
    if let Some(data) = r.objects[0]["data"].as_object_mut() {
        data.remove(&profile);
    }
    let e = check_profiles(&r.objects).expect_err("missing key");
    assert!(e.object.starts_with("NodePool "), "{e}");
    assert!(e.message.contains(&profile), "{e}");
}

#[test]
fn yaml_is_multi_document_and_parses_back() {
    let items = pods("infer", 6, 4);
    let plan = plan_for(&items, Vec::new());
    let r = render_default(&plan);
    let text = r.to_yaml().expect("yaml");
    assert!(text.contains("config.name=gpu-slicer-device-plugin"));
    let docs: Vec<&str> = text.split("\n---\n").skip(1).collect();
    assert_eq!(docs.len(), r.objects.len());
    for (doc, obj) in docs.iter().zip(&r.objects) {
        let back: Value = serde_saphyr::from_str(doc).expect("document parses");
        assert_eq!(&back, obj);
    }
}

#[test]
fn render_errors_leave_out_empty_parts_and_keep_their_cause() {
    use std::error::Error as _;
    let e = RenderError::new(
        "NodePool gpu",
        "spec.weight",
        "must be an integer from 1 to 100",
    );
    assert_eq!(
        e.to_string(),
        "NodePool gpu: field `spec.weight`: must be an integer from 1 to 100"
    );
    assert!(e.source().is_none());
    assert_eq!(
        RenderError::new("", "--emission", "unknown").to_string(),
        "field `--emission`: unknown"
    );
    assert_eq!(
        RenderError::new("NodePool gpu", "", "boom").to_string(),
        "NodePool gpu: boom"
    );
    assert_eq!(RenderError::new("", "", "boom").to_string(), "boom");

    // Made from a serde error: the message quotes it, the source is it.
    let e = v1::typed::<Vec<u32>>(json!("x"), "spec.disruption")
        .expect_err("not a list")
        .of("NodePool gpu");
    assert!(
        e.to_string()
            .starts_with("NodePool gpu: field `spec.disruption`: cannot be converted: "),
        "{e}"
    );
    let cause = e.cause.as_deref().expect("the serde error");
    assert!(cause.is::<serde_json::Error>());
    assert_eq!(e.source().map(ToString::to_string), Some(cause.to_string()));

    // Made from a field error of the frame.
    let field = crate::config::FieldError::new("spec.limits", "must be a map");
    let e = RenderError::new("NodePool gpu", field.field.clone(), field.message.clone())
        .caused_by(field.clone());
    assert_eq!(
        e.to_string(),
        "NodePool gpu: field `spec.limits`: must be a map"
    );
    assert_eq!(e.source().map(ToString::to_string), Some(field.to_string()));
}
