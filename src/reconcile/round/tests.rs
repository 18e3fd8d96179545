use super::*;
use crate::model::ReplicaPolicy;

fn cat() -> Catalog {
    catalog::embedded().expect("catalog")
}

fn inflight(name: &str, ty: &str, r: u32) -> FleetNode {
    fleet_node(name, ty, r, true, Used::default())
}

/// An on-demand node of pool `gpu-slicer`, no zone, labels or taints (shared with the
/// repack tests).
pub(crate) fn fleet_node(name: &str, ty: &str, r: u32, in_flight: bool, used: Used) -> FleetNode {
    FleetNode {
        name: name.into(),
        pool: "gpu-slicer".into(),
        instance_type: ty.into(),
        capacity_type: CapacityType::OnDemand,
        replicas: r,
        zone: None,
        in_flight,
        used,
        labels: BTreeMap::new(),
        taints: Vec::new(),
    }
}

fn pods(n: usize, gib: u64) -> Vec<DemandItem> {
    (0..n)
        .map(|i| {
            let mut d = DemandItem::shared(format!("ml/p{i}"), Resources::new(500, 1 << 30));
            d.gpu_memory_mib = Some(gib * 1024);
            d
        })
        .collect()
}

#[test]
fn in_flight_capacity_is_used_first_and_safely() {
    let c = cat();
    let pools = vec![Pool::default_pool(ReplicaPolicy::Fixed(4))];
    // g4dn.xlarge at R=4: 4 slices of 4 GiB (16 GiB T4).
    let fleet = [inflight("n1", "g4dn.xlarge", 4)];
    let (left, onto) = assign_in_flight(&pods(6, 4), &fleet, &c, &pools, &PlanOptions::default());
    assert_eq!(onto.len(), 4);
    assert_eq!(left.len(), 2);
    // 5 GiB pods do not fit a 4 GiB slice.
    let (left, onto) = assign_in_flight(&pods(3, 5), &fleet, &c, &pools, &PlanOptions::default());
    assert!(onto.is_empty());
    assert_eq!(left.len(), 3);
    // Ready nodes are not in flight: the scheduler already found them full.
    let mut ready = fleet.clone();
    ready[0].in_flight = false;
    let (left, _) = assign_in_flight(&pods(2, 1), &ready, &c, &pools, &PlanOptions::default());
    assert_eq!(left.len(), 2);
    // Taints and affinity are honoured.
    let mut tainted = fleet.clone();
    tainted[0].taints.push(Taint {
        key: "nvidia.com/gpu".into(),
        value: None,
        effect: crate::model::TaintEffect::NoSchedule,
    });
    let (left, _) = assign_in_flight(&pods(2, 1), &tainted, &c, &pools, &PlanOptions::default());
    assert_eq!(left.len(), 2);
}

fn settings() -> Settings {
    Settings {
        plan: PlanOptions {
            default_replicas: ReplicaPolicy::Fixed(4),
            dedicated: false,
            ..PlanOptions::default()
        },
        render: RenderOptions::default(),
        budget: Budget::default(),
    }
}

#[test]
fn round_plans_the_rest_and_keeps_the_fleet_in_limits() {
    let c = cat();
    let fleet = [inflight("n1", "g4dn.xlarge", 4)];
    let pending = pods(6, 2);
    let inp = RoundInputs {
        catalog: &c,
        pending: &pending,
        fleet: &fleet,
        pools: &[],
        ec2nodeclasses: &[],
        device_plugin: None,
        live: &[],
        nodes_of: &|_| 0,
    };
    let out = round(&inp, &settings());
    assert_eq!(out.onto_fleet.len(), 4);
    assert_eq!(out.plan.summary.pods, 2);
    assert!(out.refusals.is_empty() && out.error.is_none());
    // The NodePools' limits count the in-flight node's slices too (the two pods
    // left may go to another NodePool, e.g. of fractional g6f.large nodes).
    let limit: u64 = out
        .actions
        .apply
        .iter()
        .filter(|o| o["kind"] == "NodePool")
        .map(|np| {
            np["spec"]["limits"]["nvidia.com/gpu"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .expect("limit")
        })
        .sum();
    let planned: u64 = out
        .plan
        .nodes
        .iter()
        .map(|n| u64::from(n.gpus * n.replicas_per_gpu))
        .sum();
    assert_eq!(limit, 4 + planned);
}

#[test]
fn refused_plans_write_nothing() {
    let c = cat();
    let pending = pods(20, 2);
    let inp = RoundInputs {
        catalog: &c,
        pending: &pending,
        fleet: &[],
        pools: &[],
        ec2nodeclasses: &[],
        device_plugin: None,
        live: &[],
        nodes_of: &|_| 0,
    };
    let mut s = settings();
    s.budget.max_hourly_cost = Some(0.01);
    let out = round(&inp, &s);
    assert_eq!(out.refusals.len(), 1);
    assert!(out.actions.is_empty());
}
