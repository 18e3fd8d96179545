//! The NodePool frame: a user's annotated NodePools / Provisioners and EC2NodeClasses (a
//! JSON stream of objects) read as `render` reads them: `config::pool_from_nodepool`,
//! `render::settle_sharing` (the node classes' AMI families against each pool's sharing
//! strategy), then `render::render` of a plan with one time-sliced g5.xlarge per pool,
//! which reads each pool's frame (nodeClassRef, taints, expiry, disruption, weight,
//! limits, emission) and writes the objects. The emission mode is the input's length
//! modulo 6, so every mode is reached.
#![no_main]

use std::sync::OnceLock;

use fuzz_common::measured;
use gpu_slicer::config::pool_from_nodepool;
use gpu_slicer::model::{CapacityType, Catalog, Pool};
use gpu_slicer::planner::{Plan, PlannedNode, SolverStats, Summary};
use gpu_slicer::render::{AmiFamily, Emission, Frame, RenderOptions, render, settle_sharing};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Parsed once, outside the measured call (the same for every input).
fn catalog() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(|| gpu_slicer::catalog::embedded().expect("the embedded catalog parses"))
}

fn node(pool: &str) -> PlannedNode {
    PlannedNode {
        instance_type: "g5.xlarge".to_string(),
        capacity_type: CapacityType::OnDemand,
        gpus: 1,
        gpu_model: "NVIDIA A10G".to_string(),
        gpu_memory_mib: 22888,
        replicas_per_gpu: 2,
        slice_gpu_memory_mib: 11444,
        slice_share_milli: 500,
        slice_throughput_milli: 365,
        sharing: "time-slicing".to_string(),
        profile: "ts-r2".to_string(),
        hourly_price: 1.006,
        pods: vec!["default/a".to_string(), "default/b".to_string()],
        node_pool: pool.to_string(),
        zone: None,
        spot_hourly_price: None,
    }
}

fn plan(nodes: Vec<PlannedNode>) -> Plan {
    let n = nodes.len();
    Plan {
        nodes,
        unplaced: Vec::new(),
        summary: Summary {
            pods: 2 * n,
            placed_pods: 2 * n,
            nodes: n,
            hourly_cost: 1.006 * n as f64,
            lower_bound_hourly_cost: 1.006 * n as f64,
            dedicated_hourly_cost: 2.012 * n as f64,
            dedicated_nodes: 2 * n,
            spot_hourly_cost: None,
            dedicated_spot_hourly_cost: None,
            gpus: n as u32,
            dedicated_gpus: 2 * n as u32,
        },
        solver: SolverStats::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    let catalog = catalog();
    measured("render frame", data.len(), || {
        let mut pools: Vec<(Pool, Value)> = Vec::new();
        let mut classes: Vec<Value> = Vec::new();
        for v in serde_json::Deserializer::from_slice(data).into_iter::<Value>() {
            let Ok(v) = v else { return };
            if v.get("kind").and_then(Value::as_str) == Some("EC2NodeClass") {
                classes.push(v);
            } else if let Ok(Some(p)) = pool_from_nodepool(&v) {
                pools.push((p, v));
            }
        }
        let mut settled: Vec<Pool> = pools.iter().map(|(p, _)| p.clone()).collect();
        if settle_sharing(
            &mut settled,
            &pools,
            &classes,
            Some((AmiFamily::Bottlerocket, "1.50.0")),
        )
        .is_err()
        {
            return;
        }
        let p = plan(pools.iter().map(|(p, _)| node(&p.name)).collect());
        let opts = RenderOptions {
            emission: Emission::ALL[data.len() % Emission::ALL.len()],
            ..RenderOptions::default()
        };
        let frame = Frame {
            pools: &pools,
            ec2nodeclasses: &classes,
            device_plugin: None,
            fleet: &[],
        };
        let _ = render(&p, catalog, frame, &opts);
    });
});
