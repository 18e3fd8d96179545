use serde_json::json;

use super::*;
use crate::config::pool_from_nodepool;
use crate::model::{DemandItem, ReplicaPolicy, Resources};
use crate::planner::{self, PlanOptions};

fn catalog() -> Catalog {
    crate::catalog::embedded().expect("catalog")
}

fn plan(n: usize) -> Plan {
    let items: Vec<DemandItem> = (0..n)
        .map(|i| DemandItem::shared(format!("ns/p{i}"), Resources::new(100, 1 << 28)))
        .collect();
    let opts = PlanOptions {
        default_replicas: ReplicaPolicy::Fixed(2),
        dedicated: false,
        ..PlanOptions::default()
    };
    planner::plan(&catalog(), &items, &opts)
}

/// What runs in `pool` already.
fn existing(pool: &str, usage: Usage) -> Existing {
    Existing {
        per_pool: BTreeMap::from([(pool.to_string(), usage)]),
    }
}

/// The implicit pool's name with the annotations and `spec` of an annotated NodePool.
fn pool(annotations: serde_json::Value, spec: serde_json::Value) -> Pool {
    let mut ann = json!({"gpu-slicer.io/enabled": "true"});
    if let (Some(a), Some(extra)) = (ann.as_object_mut(), annotations.as_object()) {
        a.extend(extra.clone());
    }
    let np = json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": "gpu-slicer", "annotations": ann},
        "spec": spec,
    });
    pool_from_nodepool(&np).expect("valid").expect("annotated")
}

#[test]
fn global_and_pool_budgets() {
    let cat = catalog();
    let p = plan(6);
    let cost = p.summary.hourly_cost;
    let nodes = p.nodes.len();
    assert!(check(&p, &[], &cat, &Budget::default(), &Existing::default()).is_ok());
    let tight = Budget {
        max_hourly_cost: Some(cost - 0.01),
        max_nodes: Some(nodes),
    };
    let e = check(&p, &[], &cat, &tight, &Existing::default()).expect_err("cost");
    assert_eq!(e.len(), 1);
    assert!(matches!(e[0], Refusal::Cost { .. }));
    assert!(e[0].to_string().contains("--max-hourly-cost"));

    // Existing nodes count towards the node cap.
    let existing = existing(
        "gpu-slicer",
        Usage {
            hourly_cost: 1.0,
            nodes: 1,
            ..Usage::default()
        },
    );
    let nodes_cap = Budget {
        max_hourly_cost: None,
        max_nodes: Some(nodes),
    };
    let e = check(&p, &[], &cat, &nodes_cap, &existing).expect_err("nodes");
    assert!(matches!(e[0], Refusal::Nodes { total, .. } if total == nodes + 1));

    let mut pool = Pool::default_pool(ReplicaPolicy::Fixed(2));
    pool.max_hourly_cost = Some(cost / 2.0);
    let e = check(
        &p,
        std::slice::from_ref(&pool),
        &cat,
        &Budget::default(),
        &Existing::default(),
    )
    .expect_err("pool");
    assert_eq!(e[0].pool(), Some("gpu-slicer"));
    assert_eq!(
        e[0].field().as_deref(),
        Some("metadata.annotations[\"gpu-slicer.io/max-hourly-cost\"]")
    );
    pool.max_hourly_cost = Some(cost + 1.0);
    assert!(check(&p, &[pool], &cat, &Budget::default(), &Existing::default()).is_ok());
}

#[test]
fn pool_limits_count_existing_and_planned_nodes() {
    let cat = catalog();
    let p = plan(6);
    let mut cpu = 0u64;
    let mut mem = 0u64;
    for n in &p.nodes {
        let t = crate::catalog::find(&cat, &n.instance_type).expect("listed");
        cpu += u64::from(t.vcpus);
        mem += t.memory_mib * MIB;
    }
    // At the plan's own cpu and memory: allowed.
    let at = pool(
        json!({}),
        json!({"limits": {"cpu": cpu.to_string(), "memory": mem.to_string(), "nvidia.com/gpu": 0}}),
    );
    assert_eq!(at.limits.cpu_milli, Some(cpu * 1000));
    assert!(
        check(
            &p,
            std::slice::from_ref(&at),
            &cat,
            &Budget::default(),
            &Existing::default()
        )
        .is_ok()
    );
    // One existing vCPU and byte more: both refused, each naming its limit.
    let one_more = existing(
        "gpu-slicer",
        Usage {
            cpu_milli: 1000,
            memory_bytes: 1,
            ..Usage::default()
        },
    );
    let e = check(
        &p,
        std::slice::from_ref(&at),
        &cat,
        &Budget::default(),
        &one_more,
    )
    .expect_err("over");
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0].field().as_deref(), Some("spec.limits.cpu"));
    assert!(
        e[0].to_string().contains(&format!("{} vCPUs", cpu + 1)),
        "{}",
        e[0]
    );
    assert_eq!(e[1].field().as_deref(), Some("spec.limits.memory"));
    // A pool the plan adds nothing to is not refused for what already runs there.
    let other = Pool {
        name: "other".into(),
        ..at.clone()
    };
    let busy = existing(
        "other",
        Usage {
            cpu_milli: 10_000_000,
            ..Usage::default()
        },
    );
    assert!(check(&p, &[at, other], &cat, &Budget::default(), &busy).is_ok());
}

#[test]
fn a_provisioners_limits_are_read_from_their_resources() {
    let np = json!({
        "apiVersion": "karpenter.sh/v1alpha5", "kind": "Provisioner",
        "metadata": {"name": "old", "annotations": {"gpu-slicer.io/enabled": "true"}},
        "spec": {"providerRef": {"name": "tmpl"}, "limits": {"resources": {"cpu": "64"}}}
    });
    let p = pool_from_nodepool(&np).expect("valid").expect("annotated");
    assert_eq!(p.limits.cpu_milli, Some(64_000));
    assert_eq!(p.limits.field, "spec.limits.resources");
    let cat = catalog();
    let mut plan = plan(6);
    for n in &mut plan.nodes {
        n.node_pool = "old".into();
    }
    let small = Pool {
        limits: PoolLimits {
            cpu_milli: Some(1000),
            written: BTreeMap::from([("cpu".to_string(), "1".to_string())]),
            ..p.limits.clone()
        },
        ..p
    };
    let e = check(
        &plan,
        &[small],
        &cat,
        &Budget::default(),
        &Existing::default(),
    )
    .expect_err("cpu");
    assert_eq!(e[0].field().as_deref(), Some("spec.limits.resources.cpu"));
    assert!(e[0].to_string().ends_with("above its limit 1"), "{}", e[0]);
}

#[test]
fn a_malformed_limit_names_its_field() {
    let np = json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": "gpu", "annotations": {"gpu-slicer.io/enabled": "true"}},
        "spec": {"limits": {"memory": "lots"}}
    });
    let e = pool_from_nodepool(&np).expect_err("bad quantity");
    assert_eq!(e.field, "spec.limits.memory");
    let np = json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": "gpu", "annotations": {"gpu-slicer.io/enabled": "true"}},
        "spec": {"limits": {"cpu": ["1"]}}
    });
    let e = pool_from_nodepool(&np).expect_err("not a quantity");
    assert_eq!(e.field, "spec.limits.cpu");
}

#[test]
fn namespace_lists() {
    let all = Namespaces::default();
    assert!(all.allows("a"));
    let n = Namespaces {
        allow: vec!["ml".into(), "infer".into()],
        deny: vec!["infer".into()],
    };
    assert!(n.allows("ml"));
    assert!(!n.allows("infer"));
    assert!(!n.allows("default"));
}
