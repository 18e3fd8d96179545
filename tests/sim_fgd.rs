//! The FGD paper's fixed-cluster experiment (`gpu_slicer::sim::fgd`): node-list parsing,
//! hand-worked tiny clusters for both policies, `gpu_spec`, the capacity invariants
//! after every placement of a full-trace run, and the `default` trace's numbers
//! (printed; run with `--nocapture` to see them).

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Instant;

use gpu_slicer::sim::fgd::{
    ClusterNode, FGD_PUBLISHED_DEFAULT_BESTFIT_UNALLOCATED_PCT,
    FGD_PUBLISHED_DEFAULT_UNALLOCATED_PCT, FgdCluster, FgdConfig, FgdPolicy, FgdReport,
    fgd_arrivals, gpu_request_milli, parse_alibaba_nodes, replay, run,
};
use gpu_slicer::trace::{AlibabaPod, parse_alibaba_pods};

const EPS: f64 = 1e-9;

fn data(file: &str) -> (String, String) {
    let path = format!(
        "{}/simulations/data/alibaba-gpu-2023/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("data file");
    (path, text)
}

fn openb() -> (Vec<ClusterNode>, Vec<AlibabaPod>) {
    let (p, t) = data("openb_node_list_gpu_node.csv");
    let nodes = parse_alibaba_nodes(&p, &t).expect("node list parses");
    let (p, t) = data("openb_pod_list_default.csv");
    let pods = parse_alibaba_pods(&p, &t).expect("pod list parses");
    (nodes, pods)
}

fn node(name: &str, cpu: u64, gpus: u32, model: &str) -> ClusterNode {
    ClusterNode {
        name: name.into(),
        cpu_milli: cpu,
        memory_mib: 1 << 20,
        gpus,
        model: model.into(),
    }
}

fn pod(cpu: u64, n: u32, m: u32) -> AlibabaPod {
    AlibabaPod {
        name: format!("p-{cpu}-{n}-{m}"),
        cpu_milli: cpu,
        memory_mib: 1024,
        num_gpu: n,
        gpu_milli: m,
        gpu_spec: Vec::new(),
        creation_time: None,
        deletion_time: None,
    }
}

fn spec(mut p: AlibabaPod, models: &[&str]) -> AlibabaPod {
    p.gpu_spec = models.iter().map(|m| m.to_string()).collect();
    p
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

/// Replays `pods` in order with no cut-off.
fn all(nodes: &[ClusterNode], pods: &[AlibabaPod], policy: FgdPolicy) -> FgdReport {
    replay(nodes, pods, policy, 1000.0)
}

#[test]
fn parses_the_openb_node_list() {
    let (p, t) = data("openb_node_list_gpu_node.csv");
    let nodes = parse_alibaba_nodes(&p, &t).unwrap();
    assert_eq!(nodes.len(), 1213);
    assert_eq!(nodes.iter().map(|n| n.gpus).sum::<u32>(), 6212);
    assert_eq!(
        nodes.iter().map(|n| n.cpu_milli).sum::<u64>(),
        107_018_000,
        "107,018 vCPU (data README)"
    );
    assert_eq!(
        nodes[0],
        ClusterNode {
            name: "openb-node-0000".into(),
            cpu_milli: 64000,
            memory_mib: 262144,
            gpus: 2,
            model: "P100".into(),
        }
    );
    let mut by_model: HashMap<&str, u32> = HashMap::new();
    for n in &nodes {
        *by_model.entry(n.model.as_str()).or_default() += n.gpus;
    }
    let want = [
        ("G2", 4392),
        ("T4", 842),
        ("G3", 312),
        ("P100", 265),
        ("V100M32", 204),
        ("V100M16", 195),
        ("A10", 2),
    ];
    for (m, g) in want {
        assert_eq!(by_model.get(m), Some(&g), "{m}");
    }
}

#[test]
fn node_list_errors_name_line_and_column() {
    let h = "sn,cpu_milli,memory_mib,gpu,model\n";
    let bad = format!("{h}n0,64000,262144,2,P100\nn1,64000,lots,2,P100\n");
    let err = parse_alibaba_nodes("nodes.csv", &bad).unwrap_err();
    assert_eq!((err.source.as_str(), err.line), ("nodes.csv", 3));
    assert_eq!(
        err.to_string(),
        "nodes.csv:3: column `memory_mib`: not a whole number: \"lots\""
    );
    let err = parse_alibaba_nodes("nodes.csv", &format!("{h}n0,64000,262144,2\n")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "nodes.csv:2: expected 5 cells (as in the header), found 4"
    );
    let err = parse_alibaba_nodes("nodes.csv", &format!("{h}n0,-1,262144,2,T4\n")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "nodes.csv:2: column `cpu_milli`: not a whole number: \"-1\""
    );
    let err = parse_alibaba_nodes("nodes.csv", "sn,cpu_milli,memory_mib,model\n").unwrap_err();
    assert_eq!(err.to_string(), "nodes.csv:1: missing column `gpu`");
    // Columns are found by name, in any order.
    let ok = parse_alibaba_nodes(
        "nodes.csv",
        "model,gpu,sn,memory_mib,cpu_milli\nT4,2,x,9,8\n",
    )
    .unwrap();
    assert_eq!(ok, vec![node_with_mem("x", 8, 9, 2, "T4")]);
}

fn node_with_mem(name: &str, cpu: u64, mem: u64, gpus: u32, model: &str) -> ClusterNode {
    ClusterNode {
        name: name.into(),
        cpu_milli: cpu,
        memory_mib: mem,
        gpus,
        model: model.into(),
    }
}

/// One node with 2 GPUs; pods of 500, 500, 600 and 400 milli, in that order.
///
/// BestFit: 500 → GPU0; 500 → GPU0 (full); 600 → GPU1; 400 → GPU1 (full). Nothing
/// unallocated, nothing failed.
///
/// GpuSlicer: 500 slices GPU0 in 2 (500 each), 500 takes its second slice; 600 slices
/// GPU1 in 1 (a whole GPU, 400 idle in it); 400 finds no slice (GPU0's are taken,
/// GPU1's only one is) and fails. Unallocated 0 %, idle in slices 400/2000 = 20 %.
#[test]
fn hand_worked_two_gpus() {
    let nodes = vec![node("n", 64000, 2, "T4")];
    let pods: Vec<_> = [500, 500, 600, 400]
        .iter()
        .map(|&m| pod(1000, 1, m))
        .collect();

    let bf = all(&nodes, &pods, FgdPolicy::BestFit);
    assert_eq!(bf.policy, "best-fit");
    assert!(close(bf.arrived_gpu_pct, 100.0));
    assert_eq!((bf.placed_pods, bf.failed_pods), (4, 0));
    assert!(close(bf.unallocated_gpu_pct, 0.0));
    assert!(close(bf.idle_in_slices_gpu_pct, 0.0));

    let gs = all(&nodes, &pods, FgdPolicy::GpuSlicer);
    assert_eq!(gs.policy, "gpu-slicer");
    assert_eq!((gs.placed_pods, gs.failed_pods), (3, 1));
    assert!(close(gs.unallocated_gpu_pct, 0.0));
    assert!(close(gs.idle_in_slices_gpu_pct, 20.0));
    assert!(close(gs.failed_gpu_pct, 20.0));

    // Only the first three: BestFit leaves 400 of GPU1 free (20 %); GpuSlicer none.
    let bf3 = all(&nodes, &pods[..3], FgdPolicy::BestFit);
    assert!(close(bf3.unallocated_gpu_pct, 20.0));
    assert!(close(bf3.arrived_gpu_pct, 80.0));
    let gs3 = all(&nodes, &pods[..3], FgdPolicy::GpuSlicer);
    assert!(close(gs3.unallocated_gpu_pct, 0.0));
    assert!(close(gs3.idle_in_slices_gpu_pct, 20.0));
    assert_eq!(gs3.failed_pods, 0);
}

/// Pods of 300, 300, 600, 600 milli on one 2-GPU node.
///
/// BestFit: 300, 300 → GPU0 (400 left); 600 → GPU1 (400 left); 600 fits neither.
/// Unallocated 800/2000 = 40 %, one failure (30 % of capacity).
///
/// GpuSlicer: 300 slices GPU0 in 3 (333⅓ each); the second 300 takes another slice;
/// 600 takes GPU1 whole (R = 1); the last 600 is not share-safe on GPU0's ⅓ slices.
/// Unallocated: one slice, 333⅓/2000 = 16⅔ %; idle in slices: 2 × 33⅓ + 400 =
/// 466⅔ → 23⅓ %.
#[test]
fn hand_worked_share_safety() {
    let nodes = vec![node("n", 64000, 2, "T4")];
    let pods: Vec<_> = [300, 300, 600, 600]
        .iter()
        .map(|&m| pod(1000, 1, m))
        .collect();
    let bf = all(&nodes, &pods, FgdPolicy::BestFit);
    assert_eq!((bf.placed_pods, bf.failed_pods), (3, 1));
    assert!(close(bf.unallocated_gpu_pct, 40.0));
    assert!(close(bf.failed_gpu_pct, 30.0));
    let gs = all(&nodes, &pods, FgdPolicy::GpuSlicer);
    assert_eq!((gs.placed_pods, gs.failed_pods), (3, 1));
    assert!(close(gs.unallocated_gpu_pct, 100.0 / 6.0));
    assert!(close(gs.idle_in_slices_gpu_pct, 70.0 / 3.0));
    // 100 − unallocated = placed requests + idle in slices.
    for r in [&bf, &gs] {
        assert!(close(
            100.0 - r.unallocated_gpu_pct,
            r.arrived_gpu_pct - r.failed_gpu_pct + r.idle_in_slices_gpu_pct
        ));
    }
}

/// The cut-off and the curve: 4 pods of 500 on 2 GPUs with the cut-off at 50 % stop
/// after the second pod; the curve has a point per whole percent.
#[test]
fn cut_off_and_curve() {
    let nodes = vec![node("n", 64000, 2, "T4")];
    let pods = vec![pod(1000, 1, 500); 4];
    let r = replay(&nodes, &pods, FgdPolicy::BestFit, 50.0);
    assert_eq!(r.arrived_pods, 2);
    assert!(close(r.arrived_gpu_pct, 50.0));
    assert!(close(r.unallocated_gpu_pct, 50.0));
    assert_eq!(r.curve.len(), 51);
    assert_eq!(r.curve[0], (0.0, 100.0));
    // 1..=25 % are first reached after pod 1 (75 % unallocated), 26..=50 after pod 2.
    assert_eq!(r.curve[25], (25.0, 75.0));
    assert_eq!(r.curve[26], (26.0, 50.0));
    assert_eq!(r.curve[50], (50.0, 50.0));
    // A cut-off between pods lets the crossing pod arrive, and no more.
    let r = replay(&nodes, &pods, FgdPolicy::BestFit, 30.0);
    assert_eq!(r.arrived_pods, 2);
    assert_eq!(r.curve.len(), 31);
}

/// CPU and memory are node resources; CPU-only pods count nothing toward the GPU
/// target but take CPU, and best fit sends them to the node with the least free GPU.
#[test]
fn cpu_memory_and_cpu_only_pods() {
    let nodes = vec![node("a", 4000, 1, "T4"), node("b", 4000, 2, "T4")];
    // The 1000-milli pod goes to `a` (0 GPU left vs 1 on `b`), the CPU-only pod
    // joins it (least free GPU), and the third finds `a` out of CPU: it goes to `b`.
    let pods = vec![pod(2000, 1, 1000), pod(2000, 0, 0), pod(1000, 1, 200)];
    let mut c = FgdCluster::new(&nodes, FgdPolicy::BestFit);
    assert_eq!(c.place(&pods[0]).unwrap().node, 0);
    assert_eq!(c.place(&pods[1]).unwrap().node, 0);
    assert_eq!(c.node_free(0), Some((0, (1 << 20) - 2048)));
    assert_eq!(c.place(&pods[2]).unwrap().node, 1);
    let r = all(&nodes, &pods, FgdPolicy::BestFit);
    assert!(close(r.arrived_gpu_pct, 1200.0 / 30.0));
    assert_eq!((r.arrived_pods, r.placed_pods), (3, 3));
    // Memory: a pod asking more than any node has fails.
    let mut big = pod(1, 1, 100);
    big.memory_mib = (1 << 20) + 1;
    assert!(
        FgdCluster::new(&nodes, FgdPolicy::GpuSlicer)
            .place(&big)
            .is_none()
    );
}

#[test]
fn gpu_spec_is_respected() {
    let nodes = vec![
        node("t4", 64000, 1, "T4"),
        node("v100", 64000, 4, "V100M32"),
    ];
    for policy in [FgdPolicy::BestFit, FgdPolicy::GpuSlicer] {
        let mut c = FgdCluster::new(&nodes, policy);
        // Tighter on `t4`, but the spec allows only V100s.
        let v = spec(pod(1000, 1, 1000), &["V100M16", "V100M32"]);
        assert_eq!(c.place(&v).unwrap().node, 1, "{policy:?}");
        // No P100 in the cluster.
        assert!(c.place(&spec(pod(1000, 1, 500), &["P100"])).is_none());
        // Unconstrained: best fit picks `t4` (0 left vs 2 GPUs on `v100`).
        assert_eq!(c.place(&pod(1000, 1, 1000)).unwrap().node, 0);
        // T4 only, and the T4 is full.
        assert!(c.place(&spec(pod(1000, 1, 100), &["T4"])).is_none());
    }
}

#[test]
fn multi_gpu_pods_take_whole_gpus_on_one_node() {
    let nodes = vec![node("a", 64000, 8, "G2"), node("b", 64000, 4, "G2")];
    for policy in [FgdPolicy::BestFit, FgdPolicy::GpuSlicer] {
        let mut c = FgdCluster::new(&nodes, policy);
        let s = c.place(&pod(1000, 1, 250)).unwrap();
        assert_eq!((s.node, s.gpus.clone()), (1, vec![0]), "{policy:?}");
        // 4 whole GPUs: `b` has 3 left, `a` 8.
        let p = c.place(&pod(1000, 4, 1000)).unwrap();
        assert_eq!((p.node, p.gpus.len()), (0, 4));
        // 8 whole GPUs: nowhere.
        assert!(c.place(&pod(1000, 8, 1000)).is_none());
        let q = c.place(&pod(1000, 3, 1000)).unwrap();
        assert_eq!(q.node, 1);
        assert!(!q.gpus.contains(&0), "GPU0 of `b` is shared: {q:?}");
    }
}

#[test]
fn runs_are_deterministic_in_the_seed() {
    let (nodes, pods) = openb();
    let pods = &pods[..600];
    let cfg = |seed| FgdConfig {
        policy: FgdPolicy::BestFit,
        seed,
        arrived_until_pct: 100.0,
    };
    assert_eq!(run(&nodes, pods, &cfg(5)), run(&nodes, pods, &cfg(5)));
    assert_ne!(
        fgd_arrivals(pods, 6212, 5, 100.0),
        fgd_arrivals(pods, 6212, 6, 100.0)
    );
}

/// Every placement of a full `default` run (both policies) is checked against an
/// independent tally: no GPU above 1000 milli (GpuSlicer: no more pods than slices,
/// each within its slice), no node above its CPU or memory, the `gpu_spec` honoured,
/// `num_gpu` distinct GPUs; and the cluster's own reading agrees with the tally.
#[test]
fn capacities_hold_after_every_placement() {
    let (nodes, pods) = openb();
    for policy in [FgdPolicy::BestFit, FgdPolicy::GpuSlicer] {
        let order = fgd_arrivals(&pods, 6212, 1, 100.0);
        let mut c = FgdCluster::new(&nodes, policy);
        let mut cpu = vec![0u64; nodes.len()];
        let mut mem = vec![0u64; nodes.len()];
        // Per GPU: pods' milli and pod count.
        let mut milli: Vec<Vec<u64>> = nodes.iter().map(|n| vec![0; n.gpus as usize]).collect();
        let mut count: Vec<Vec<u32>> = nodes.iter().map(|n| vec![0; n.gpus as usize]).collect();
        let (mut arrived, mut placed) = (0u64, 0usize);
        for &i in &order {
            if arrived >= 6_212_000 {
                break;
            }
            let p = &pods[i];
            arrived += gpu_request_milli(p);
            let Some(pl) = c.place(p) else { continue };
            placed += 1;
            let (k, n) = (pl.node, &nodes[pl.node]);
            cpu[k] += p.cpu_milli;
            mem[k] += p.memory_mib;
            assert!(cpu[k] <= n.cpu_milli && mem[k] <= n.memory_mib, "{n:?}");
            assert_eq!(
                c.node_free(k),
                Some((n.cpu_milli - cpu[k], n.memory_mib - mem[k]))
            );
            assert_eq!(pl.gpus.len(), p.num_gpu as usize, "{p:?}");
            let mut g = pl.gpus.clone();
            g.sort_unstable();
            g.dedup();
            assert_eq!(g.len(), pl.gpus.len(), "distinct GPUs: {pl:?}");
            if p.num_gpu > 0 && !p.gpu_spec.is_empty() {
                assert!(p.gpu_spec.contains(&n.model), "{p:?} on {n:?}");
            }
            for &j in &pl.gpus {
                milli[k][j] += u64::from(p.gpu_milli);
                count[k][j] += 1;
                assert!(milli[k][j] <= 1000, "{} GPU {j}: {}", n.name, milli[k][j]);
                let alloc = c.gpu_allocated_milli(k, j).unwrap();
                assert!(alloc <= 1000.0 + EPS);
                match policy {
                    FgdPolicy::BestFit => assert!((alloc - milli[k][j] as f64).abs() < EPS),
                    FgdPolicy::GpuSlicer => {
                        let r = c.gpu_slices(k, j).unwrap();
                        if r == 0 {
                            // Exclusive: one pod, the whole GPU.
                            assert_eq!((count[k][j], alloc), (1, 1000.0));
                        } else {
                            assert!(count[k][j] <= r);
                            assert!(u64::from(p.gpu_milli) * u64::from(r) <= 1000);
                            let slice = 1000.0 / f64::from(r);
                            assert!((alloc - slice * f64::from(count[k][j])).abs() < 1e-6);
                        }
                    }
                }
            }
        }
        assert!(placed > 7000, "{policy:?}: {placed}");
        // The whole cluster agrees with the tally at the end.
        for (k, n) in nodes.iter().enumerate() {
            assert_eq!(
                c.node_free(k),
                Some((n.cpu_milli - cpu[k], n.memory_mib - mem[k]))
            );
            for (j, &m) in milli[k].iter().enumerate() {
                let alloc = c.gpu_allocated_milli(k, j).unwrap();
                assert!(alloc + EPS >= m as f64 && alloc <= 1000.0 + EPS);
            }
            assert_eq!(c.gpu_allocated_milli(k, n.gpus as usize), None);
        }
    }
}

/// The headline: `default` on the 1,213-node cluster at 100 % arrived, both
/// policies, seeds 1 and 2.
#[test]
fn default_trace_numbers() {
    let (nodes, pods) = openb();
    println!(
        "FGD published (default, 100 % arrived): FGD {FGD_PUBLISHED_DEFAULT_UNALLOCATED_PCT} %, \
         BestFit {FGD_PUBLISHED_DEFAULT_BESTFIT_UNALLOCATED_PCT} %"
    );
    for policy in [FgdPolicy::BestFit, FgdPolicy::GpuSlicer] {
        for seed in [1, 2] {
            let t = Instant::now();
            let r = run(
                &nodes,
                &pods,
                &FgdConfig {
                    policy,
                    seed,
                    arrived_until_pct: 100.0,
                },
            );
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{:<10} seed {seed}: unallocated {:.2} %, idle in slices {:.2} %, \
                 failed {} pods ({:.2} % of GPUs), placed {}, arrived {:.3} % in {} pods ({secs:.2} s)",
                r.policy,
                r.unallocated_gpu_pct,
                r.idle_in_slices_gpu_pct,
                r.failed_pods,
                r.failed_gpu_pct,
                r.placed_pods,
                r.arrived_gpu_pct,
                r.arrived_pods,
            );
            let at = |k: usize| r.curve[k].1;
            println!(
                "           curve: 50 % → {:.2}, 80 % → {:.2}, 90 % → {:.2}, 95 % → {:.2}, 100 % → {:.2}",
                at(50),
                at(80),
                at(90),
                at(95),
                at(100)
            );
            assert_eq!(r.total_gpus, 6212);
            assert!(r.arrived_gpu_pct >= 100.0 && r.arrived_gpu_pct < 100.2);
            assert_eq!(r.curve.len(), 101);
            for (k, &(x, u)) in r.curve.iter().enumerate() {
                assert_eq!(x, k as f64);
                assert!((0.0..=100.0).contains(&u));
            }
            // Unallocated never rises as pods arrive (no departures).
            assert!(r.curve.windows(2).all(|w| w[1].1 <= w[0].1 + EPS));
            assert!(close(
                100.0 - r.unallocated_gpu_pct,
                r.arrived_gpu_pct - r.failed_gpu_pct + r.idle_in_slices_gpu_pct
            ));
            assert_eq!(r.arrived_pods, r.placed_pods + r.failed_pods);
            assert!(r.unallocated_gpu_pct < 20.0, "{r:?}");
            if policy == FgdPolicy::BestFit {
                assert_eq!(r.idle_in_slices_gpu_pct, 0.0);
            }
        }
    }
}

/// FGD reports the mean of 10 seeds: the same here (seeds 1–10; ~0.2 s a run).
#[test]
fn default_trace_ten_seed_means() {
    let (nodes, pods) = openb();
    for policy in [FgdPolicy::BestFit, FgdPolicy::GpuSlicer] {
        let runs: Vec<FgdReport> = (1..=10)
            .map(|seed| {
                run(
                    &nodes,
                    &pods,
                    &FgdConfig {
                        policy,
                        seed,
                        arrived_until_pct: 100.0,
                    },
                )
            })
            .collect();
        let mean = |f: fn(&FgdReport) -> f64| runs.iter().map(f).sum::<f64>() / 10.0;
        let (lo, hi) = runs.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| {
            (lo.min(r.unallocated_gpu_pct), hi.max(r.unallocated_gpu_pct))
        });
        println!(
            "{:<10} seeds 1-10: unallocated {:.2} % (min {lo:.2}, max {hi:.2}), \
             idle in slices {:.2} %, failed {:.2} % of GPUs",
            policy.name(),
            mean(|r| r.unallocated_gpu_pct),
            mean(|r| r.idle_in_slices_gpu_pct),
            mean(|r| r.failed_gpu_pct),
        );
        assert!(hi - lo < 5.0);
    }
}
