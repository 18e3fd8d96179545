use std::collections::BTreeSet;

use super::*;

#[test]
fn undeclared_gpu_memory_gets_a_warning_on_time_slicing_only() {
    use crate::model::Resources;
    let node = |r: u32, sharing: &str, pods: &[&str]| -> crate::planner::PlannedNode {
        serde_json::from_value(serde_json::json!({
            "instanceType": "g5.xlarge", "capacityType": "on-demand", "gpus": 1,
            "gpuModel": "a10g", "gpuMemoryMiB": 22888, "replicasPerGpu": r,
            "sharing": sharing, "profile": "x", "hourlyPrice": 1.0,
            "pods": pods, "nodePool": "gpu-slicer",
        }))
        .expect("a planned node")
    };
    let mut sized = DemandItem::shared("ml/sized", Resources::ZERO);
    sized.gpu_memory_mib = Some(4096);
    let pending = vec![
        DemandItem::shared("ml/silent", Resources::ZERO),
        sized,
        DemandItem::shared("ml/capped", Resources::ZERO),
    ];
    let plan = crate::planner::plan(
        &crate::catalog::embedded().expect("catalog"),
        &[],
        &crate::planner::PlanOptions::default(),
    );
    let out = Outcome {
        plan: crate::planner::Plan {
            nodes: vec![
                node(4, "time-slicing", &["ml/silent", "ml/sized"]),
                node(4, "mps", &["ml/capped"]),
            ],
            ..plan
        },
        onto_fleet: Vec::new(),
        refusals: Vec::new(),
        error: None,
        actions: Default::default(),
        conflicts: Vec::new(),
        modes: std::collections::BTreeMap::new(),
        notes: Vec::new(),
    };
    let warnings: Vec<(Subject, Reason, String)> = pod_notes(&out, &pending)
        .into_iter()
        .filter(|n| n.reason.is_warning())
        .map(|n| (n.subject, n.reason, n.text))
        .collect();
    assert_eq!(
        warnings,
        [(
            Subject::Pod("ml/silent".into()),
            Reason::UndeclaredGpuMemory,
            "shares a GPU with up to 3 pods and declares no GPU memory".to_string()
        )]
    );
    // Each pod still gets its placement note, in a slot of its own.
    let notes = pod_notes(&out, &pending);
    let planned: Vec<_> = notes
        .iter()
        .filter(|n| n.reason == Reason::Planned)
        .collect();
    assert_eq!(planned.len(), 3);
    let silent = Subject::Pod("ml/silent".into());
    let slots: BTreeSet<_> = notes
        .iter()
        .filter(|n| n.subject == silent)
        .map(Note::slot)
        .collect();
    assert_eq!(
        slots.len(),
        2,
        "placement and warning do not replace each other"
    );
}

#[test]
fn a_pods_fate_is_one_slot_and_pools_are_named_by_their_kind() {
    let planned = Note::new(Subject::Pod("ml/a".into()), Reason::Planned, "x");
    let unplaced = Note::new(Subject::Pod("ml/a".into()), Reason::Unplaced, "y");
    let unreadable = Note::new(Subject::Pod("ml/a".into()), Reason::InvalidInput, "z");
    assert_eq!(planned.slot(), unplaced.slot());
    assert_eq!(planned.slot(), unreadable.slot());
    assert!(unplaced.reason.is_warning() && !planned.reason.is_warning());
    // A Provisioner that is not cached (its error is why) still gets its own group.
    assert_eq!(
        Subject::pool("Provisioner gpu", &[]),
        Some(Subject::Object {
            api_version: "karpenter.sh/v1alpha5".into(),
            kind: "Provisioner".into(),
            name: "gpu".into()
        })
    );
    assert_eq!(Subject::pool("no-kind", &[]), None);
    let note = slicing_timeout("ip-1", 8, 1, Duration::from_secs(300));
    assert!(
        note.text
            .contains("advertises 1 nvidia.com/gpu after 300s, expected 8")
    );
    assert_eq!(note.subject, Subject::node("ip-1"));
}

#[test]
fn a_fleet_wide_refusal_reaches_every_pool_and_a_pools_only_that_pool() {
    use crate::guard::Refusal;
    let pool = |name: &str, kind: &str, api: &str| {
        let raw = serde_json::json!({"apiVersion": api, "kind": kind,
                                     "metadata": {"name": name}});
        let mut p = Pool::default_pool(crate::model::ReplicaPolicy::Auto { max: 10 });
        p.name = name.into();
        (p, raw)
    };
    let snap = Snapshot {
        pools: vec![
            pool("a", "NodePool", "karpenter.sh/v1"),
            pool("b", "Provisioner", "karpenter.sh/v1alpha5"),
        ],
        ..Snapshot::default()
    };
    let plan = crate::planner::plan(
        &crate::catalog::embedded().expect("catalog"),
        &[],
        &crate::planner::PlanOptions::default(),
    );
    let out = |refusals: Vec<Refusal>| Outcome {
        plan: plan.clone(),
        onto_fleet: Vec::new(),
        refusals,
        error: None,
        actions: Default::default(),
        conflicts: Vec::new(),
        modes: std::collections::BTreeMap::new(),
        notes: Vec::new(),
    };
    let refused = |o: &Outcome| -> Vec<Subject> {
        round_notes(&snap, o)
            .into_iter()
            .filter(|n| n.reason == Reason::PlanRefused)
            .map(|n| n.subject)
            .collect()
    };
    let fleet = out(vec![Refusal::Nodes { total: 9, max: 3 }]);
    assert_eq!(refused(&fleet).len(), 2);
    let pools = out(vec![Refusal::PoolCost {
        pool: "b".into(),
        total: 9.0,
        max: 1.0,
    }]);
    assert_eq!(
        refused(&pools),
        [Subject::Object {
            api_version: "karpenter.sh/v1alpha5".into(),
            kind: "Provisioner".into(),
            name: "b".into()
        }]
    );
}
