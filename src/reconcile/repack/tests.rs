use super::*;
use crate::catalog;
use crate::model::slice::{Slice, SliceNeed};
use crate::model::{CapacityType, ReplicaPolicy, Resources};
use crate::planner::Effort;
use crate::reconcile::round::Used;
use serde_json::json;

fn cat() -> Catalog {
    catalog::embedded().expect("catalog")
}

fn pod(id: &str, gib: u64, age_s: u64) -> RunningPod {
    let mut d = DemandItem::shared(id, Resources::new(500, 1 << 30));
    d.gpu_memory_mib = Some(gib * 1024);
    RunningPod {
        item: d,
        age_s,
        do_not_disrupt: false,
        unmovable: None,
    }
}

fn node(name: &str, ty: &str, r: u32, pods: Vec<RunningPod>) -> Node {
    let mut used = Used::default();
    for p in &pods {
        used.slices += u64::from(p.item.gpus);
        used.requests = used.requests.saturating_add(p.item.requests);
        used.pods += 1;
    }
    Node {
        fleet: crate::reconcile::round::tests::fleet_node(name, ty, r, false, used),
        claim: Some(format!("claim-{name}")),
        nodepool: Some("np".into()),
        pods,
        moving: false,
    }
}

fn opts() -> PlanOptions {
    PlanOptions {
        default_replicas: ReplicaPolicy::Auto { max: 10 },
        dedicated: false,
        effort: Effort::Fast,
        ..PlanOptions::default()
    }
}

fn propose_on(nodes: &[Node], budgets: &BTreeMap<String, u32>, allowance: usize) -> Proposal {
    let c = cat();
    let pools = vec![Pool::default_pool(ReplicaPolicy::Auto { max: 10 })];
    let o = opts();
    propose(
        &RepackInputs {
            catalog: &c,
            nodes,
            pools: &pools,
            plan: &o,
            budgets,
            allowance,
        },
        &Settings::default(),
    )
}

/// Every pod of the replaced nodes is placed exactly once, onto a kept node or a new one,
/// and every new node holds its pods under the slice-fit rule.
fn assert_valid(m: &Move, nodes: &[Node]) {
    let c = cat();
    let moved: BTreeSet<String> = nodes
        .iter()
        .filter(|n| m.replaced.contains(&n.fleet.name))
        .flat_map(|n| n.pods.iter().map(|p| p.item.id.clone()))
        .collect();
    let mut placed: Vec<String> = m.onto_kept.iter().map(|(p, _)| p.clone()).collect();
    placed.extend(m.plan.nodes.iter().flat_map(|n| n.pods.iter().cloned()));
    placed.sort();
    let as_set: BTreeSet<String> = placed.iter().cloned().collect();
    assert_eq!(placed.len(), as_set.len(), "a pod placed twice: {placed:?}");
    assert_eq!(as_set, moved);
    for (p, to) in &m.onto_kept {
        assert!(!m.replaced.contains(to), "{p} kept on a replaced node");
    }
    let items: BTreeMap<String, &DemandItem> = nodes
        .iter()
        .flat_map(|n| n.pods.iter().map(|p| (p.item.id.clone(), &p.item)))
        .collect();
    for n in &m.plan.nodes {
        let t = catalog::find(&c, &n.instance_type).expect("type");
        let slice = Slice::new(t.gpu_memory_mib, n.replicas_per_gpu);
        for p in &n.pods {
            assert!(
                SliceNeed::of(
                    items[p],
                    crate::model::slice::FitRules::time(crate::model::DEFAULT_CONTEXT_MEMORY_MIB)
                )
                .fits(&slice),
                "{p} on {n:?}"
            );
        }
    }
    assert_eq!(m.pods_restarted, moved.len());
    let new: f64 = m.plan.nodes.iter().map(|n| n.hourly_price).sum();
    assert!((new - m.new_hourly_cost).abs() < 1e-9);
}

#[test]
fn half_empty_nodes_are_merged() {
    // Three g4dn.2xlarge at R=4, one 2 GiB pod each: all fit one node.
    let nodes: Vec<Node> = (0..3)
        .map(|i| {
            node(
                &format!("n{i}"),
                "g4dn.2xlarge",
                4,
                vec![pod(&format!("ml/p{i}"), 2, 3600)],
            )
        })
        .collect();
    let p = propose_on(&nodes, &BTreeMap::new(), 10);
    let m = p.chosen.expect("a move");
    assert_valid(&m, &nodes);
    // The best move removes two of the three nodes' cost at least.
    let price = catalog::find(&cat(), "g4dn.2xlarge")
        .and_then(|t| t.price(CapacityType::OnDemand))
        .expect("price");
    assert!(m.saving_per_hour() >= 2.0 * price - 1e-9, "{m:?}");
    assert!(m.saving_per_hour() >= 0.05 * m.old_hourly_cost);
    assert_eq!(m.id().len(), 16);
}

#[test]
fn the_planners_own_node_is_not_moved() {
    // Four 3 GiB pods planned by the planner itself: nothing cheaper to find.
    let c = cat();
    let items: Vec<DemandItem> = (0..4)
        .map(|i| pod(&format!("ml/p{i}"), 3, 3600).item)
        .collect();
    let plan = planner::plan(&c, &items, &opts());
    assert!(plan.unplaced.is_empty());
    let nodes: Vec<Node> = plan
        .nodes
        .iter()
        .enumerate()
        .map(|(i, pn)| {
            let pods = pn
                .pods
                .iter()
                .map(|id| pod(id, 3, 3600))
                .collect::<Vec<_>>();
            node(
                &format!("n{i}"),
                &pn.instance_type,
                pn.replicas_per_gpu,
                pods,
            )
        })
        .collect();
    let p = propose_on(&nodes, &BTreeMap::new(), 10);
    assert!(p.chosen.is_none(), "{:?}", p.chosen);
    assert!(!p.tried.is_empty());
}

fn two_half_empty() -> Vec<Node> {
    (0..2)
        .map(|i| {
            node(
                &format!("n{i}"),
                "g4dn.2xlarge",
                4,
                vec![pod(&format!("ml/p{i}"), 2, 3600)],
            )
        })
        .collect()
}

#[test]
fn do_not_disrupt_and_young_pods_pin_their_node() {
    let mut nodes = two_half_empty();
    nodes[0].pods[0].do_not_disrupt = true;
    nodes[1].pods[0].age_s = 10;
    let p = propose_on(&nodes, &BTreeMap::new(), 10);
    assert!(p.chosen.is_none());
    assert_eq!(p.candidates, 0);
    let reasons: Vec<&str> = p.blocked.iter().map(|(_, b)| b.reason()).collect();
    assert_eq!(reasons, ["do_not_disrupt", "young_pod"]);
    // Only the young pod's node pinned: the other one moves onto it.
    let mut nodes = two_half_empty();
    nodes[1].pods[0].age_s = 10;
    let m = propose_on(&nodes, &BTreeMap::new(), 10)
        .chosen
        .expect("a move");
    assert_eq!(m.replaced, ["n0"]);
    assert_eq!(m.onto_kept, [("ml/p0".to_string(), "n1".to_string())]);
    assert!(m.plan.nodes.is_empty());
    assert_valid(&m, &nodes);
}

#[test]
fn budgets_rate_limit_and_opt_out_are_honoured() {
    let nodes = two_half_empty();
    let zero = BTreeMap::from([("np".to_string(), 0)]);
    let p = propose_on(&nodes, &zero, 10);
    assert!(p.chosen.is_none());
    assert!(
        p.blocked
            .iter()
            .all(|(_, b)| *b == Blocked::Budget("np".into()))
    );
    // One allowed: the move is not capped (its deletions are paced), both may go.
    let one = BTreeMap::from([("np".to_string(), 1)]);
    let m = propose_on(&nodes, &one, 10).chosen.expect("a move");
    assert!(!m.replaced.is_empty());
    // The rate limit caps the move: one node this hour.
    let m = propose_on(&nodes, &BTreeMap::new(), 1)
        .chosen
        .expect("a move");
    assert_eq!(m.replaced.len(), 1);
    // The rate limit: nothing this hour.
    assert!(propose_on(&nodes, &BTreeMap::new(), 0).chosen.is_none());
    // A pool annotated gpu-slicer.io/repack: "false".
    let c = cat();
    let mut pool = Pool::default_pool(ReplicaPolicy::Auto { max: 10 });
    pool.repack = false;
    let o = opts();
    let p = propose(
        &RepackInputs {
            catalog: &c,
            nodes: &nodes,
            pools: &[pool],
            plan: &o,
            budgets: &BTreeMap::new(),
            allowance: 10,
        },
        &Settings::default(),
    );
    assert!(p.chosen.is_none());
    assert!(p.blocked.iter().all(|(_, b)| *b == Blocked::PoolOptedOut));
}

#[test]
fn slices_too_small_for_a_pod_are_never_its_target() {
    // n1 is a T4 at R=8 (2 GiB slices) with room; n0's pod needs 3 GiB: it cannot go onto
    // n1's free slices.
    let nodes = vec![
        node("n0", "g4dn.2xlarge", 4, vec![pod("ml/big", 3, 3600)]),
        node("n1", "g4dn.2xlarge", 8, vec![pod("ml/small", 1, 3600)]),
    ];
    let p = propose_on(&nodes, &BTreeMap::new(), 10);
    if let Some(m) = &p.chosen {
        assert_valid(m, &nodes);
        assert!(
            !m.onto_kept
                .iter()
                .any(|(p, to)| p == "ml/big" && to == "n1"),
            "{m:?}"
        );
    }
    // Two half-empty nodes: some move saves (both onto one cheaper node, or the small
    // pod onto n0's 4 GiB slices).
    assert!(p.chosen.is_some());
}

#[test]
fn budgets_follow_karpenters_rules() {
    let np = |b: Value| json!({"spec": {"disruption": {"budgets": b}}});
    // Default 10 %, rounded up.
    assert_eq!(allowed_disruptions(&json!({"spec": {}}), 25, 0), Ok(3));
    assert_eq!(allowed_disruptions(&json!({"spec": {}}), 25, 3), Ok(0));
    assert_eq!(
        allowed_disruptions(&np(json!([{"nodes": "0"}])), 25, 0),
        Ok(0)
    );
    // The least of the applicable budgets; a Drifted-only budget does not apply.
    let b = json!([{"nodes": "5"}, {"nodes": "20%"}, {"nodes": "0", "reasons": ["Drifted"]}]);
    assert_eq!(allowed_disruptions(&np(b), 10, 1), Ok(1));
    let b = json!([{"nodes": "0", "reasons": ["Underutilized"], "schedule": "0 9 * * *", "duration": "8h"}]);
    assert_eq!(allowed_disruptions(&np(b), 10, 0), Ok(0));
    assert!(
        allowed_disruptions(&np(json!([{"nodes": "ten"}])), 10, 0)
            .unwrap_err()
            .to_string()
            .starts_with("field `spec.disruption.budgets[0].nodes`: \"ten\"")
    );
    assert!(allowed_disruptions(&np(json!([{"nodes": "200%"}])), 10, 0).is_err());
    assert!(allowed_disruptions(&np(json!({"nodes": 1})), 10, 0).is_err());
}

fn claim(name: &str, owned: bool, labels: Value, ann: Value) -> Value {
    let mut l = labels.as_object().cloned().unwrap_or_default();
    if owned {
        l.insert(
            crate::model::contract::MANAGED_BY.into(),
            json!(crate::model::contract::MANAGER),
        );
    }
    json!({"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
           "metadata": {"name": name, "uid": format!("uid-{name}"), "labels": l, "annotations": ann}})
}

fn replacement(name: &str, id: &str, replaces: &str, size: usize) -> Value {
    claim(
        name,
        true,
        json!({MOVE_LABEL: id}),
        json!({REPLACES_ANNOTATION: replaces, MOVE_SIZE_ANNOTATION: size.to_string()}),
    )
}

#[test]
fn a_move_waits_finishes_rolls_back_and_ends() {
    let old_a = claim(
        "a",
        false,
        json!({labels::NODEPOOL: "gpu-slicer-ts-r4"}),
        json!({}),
    );
    let old_b = claim(
        "b",
        false,
        json!({labels::NODEPOOL: "gpu-slicer-ts-r4"}),
        json!({}),
    );
    let r1 = replacement("r1", "m1", "a,b", 1);
    let all = vec![old_a.clone(), old_b.clone(), r1.clone()];
    let young = |_: &Value| 10;
    let old_age = |_: &Value| 10_000;
    // Launching.
    let steps = progress(&all, &|_| ClaimNode::NotReady, &young, 900);
    assert_eq!(steps, [Step::Wait { id: "m1".into() }]);
    let steps = progress(&all, &|_| ClaimNode::Unsliced, &young, 900);
    assert_eq!(steps, [Step::Wait { id: "m1".into() }]);
    // Ready and sliced: the old claims go, uid preconditions included.
    let steps = progress(&all, &|_| ClaimNode::Ready, &young, 900);
    let Step::Finish { delete, .. } = &steps[0] else {
        panic!("{steps:?}")
    };
    let names: Vec<&str> = delete.iter().map(|d| d.key.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(delete[0].uid.as_deref(), Some("uid-a"));
    // Never Ready: roll back, delete the replacement, keep the old.
    let steps = progress(&all, &|_| ClaimNode::Unsliced, &old_age, 900);
    let Step::RollBack { delete, why, .. } = &steps[0] else {
        panic!("{steps:?}")
    };
    assert_eq!(delete.len(), 1);
    assert_eq!(delete[0].key.name, "r1");
    assert!(why.contains("r1"), "{why}");
    // A replacement vanished (Karpenter could not launch it): roll back the rest.
    let r2 = replacement("r2", "m2", "c", 2);
    let c = claim("c", false, json!({}), json!({}));
    let steps = progress(&[c.clone(), r2], &|_| ClaimNode::Ready, &young, 900);
    assert!(matches!(&steps[0], Step::RollBack { delete, .. } if delete.len() == 1));
    // The old claims are gone: done.
    let steps = progress(
        std::slice::from_ref(&r1),
        &|_| ClaimNode::Ready,
        &young,
        900,
    );
    assert_eq!(steps, [Step::Done { id: "m1".into() }]);
    // A label on a claim gpu-slicer does not own is not a move.
    let foreign = claim(
        "x",
        false,
        json!({MOVE_LABEL: "m9"}),
        json!({REPLACES_ANNOTATION: "c"}),
    );
    assert!(progress(&[c, foreign], &|_| ClaimNode::Ready, &young, 900).is_empty());
}

#[test]
fn only_owned_claims_or_claims_of_owned_nodepools_may_be_deleted() {
    let owned_np = json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": "gpu-slicer-ts-r4", "labels": {crate::model::contract::MANAGED_BY: crate::model::contract::MANAGER}}});
    let users_np = json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": "default"}});
    let live = [owned_np, users_np];
    let ours = claim(
        "a",
        false,
        json!({labels::NODEPOOL: "gpu-slicer-ts-r4"}),
        json!({}),
    );
    let theirs = claim("b", false, json!({labels::NODEPOOL: "default"}), json!({}));
    let standalone = claim("c", true, json!({}), json!({}));
    assert!(may_delete(&ours, &live));
    assert!(!may_delete(&theirs, &live));
    assert!(may_delete(&standalone, &live));
    assert!(!may_delete(&claim("d", false, json!({}), json!({})), &live));
}

#[test]
fn deletions_are_paced_by_each_nodepools_budget() {
    let claims = vec![
        claim("a", false, json!({labels::NODEPOOL: "np1"}), json!({})),
        claim("b", false, json!({labels::NODEPOOL: "np1"}), json!({})),
        claim("c", false, json!({labels::NODEPOOL: "np1"}), json!({})),
        claim("d", false, json!({labels::NODEPOOL: "np2"}), json!({})),
        claim("e", true, json!({}), json!({})),
    ];
    let del: Vec<Deletion> = claims.iter().filter_map(Deletion::of).collect();
    let budgets = BTreeMap::from([("np1".to_string(), 2), ("np2".to_string(), 0)]);
    let names: Vec<String> = pace(del.clone(), &claims, &budgets)
        .into_iter()
        .map(|d| d.key.name)
        .collect();
    // Two of np1's, none of np2's, the standalone claim (no NodePool budget).
    assert_eq!(names, ["a", "b", "e"]);
    assert_eq!(pace(del, &claims, &BTreeMap::new()).len(), 5);
}
