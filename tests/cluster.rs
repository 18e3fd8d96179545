//! Real-cluster tests: a kind cluster with Karpenter's KWOK provider (feature gate
//! `NodeOverlay=true`) and the current kubeconfig pointing at it. They cannot run here (no
//! API server can be installed on this machine); the README's "Testing against a real
//! cluster" section has the exact commands. Run with
//! `cargo test --test cluster -- --ignored --test-threads=1`.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "controller")]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};

use gpu_slicer::controller::writer::ApiResources;

const NS: &str = "default";

/// The seed guide's Deployment (`examples/seed/gpu-timeslice-test.yaml`) with `replicas`.
fn seed_deployment(replicas: i32) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "gpu-timeslice-test", "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "gpu-timeslice-test"}},
            "template": {
                "metadata": {"labels": {"app": "gpu-timeslice-test"}},
                "spec": {"containers": [{
                    "name": "workload", "image": "nvidia/cuda:11.8-base",
                    "command": ["nvidia-smi"],
                    "resources": {"limits": {"nvidia.com/gpu": "1"}}
                }]}
            }
        }
    }))
    .expect("a Deployment")
}

#[test]
fn the_seed_deployment_builds() {
    let d = seed_deployment(3);
    assert_eq!(d.spec.and_then(|s| s.replicas), Some(3));
}

struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(port: u16, extra: &[&str]) -> Controller {
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec![
        "run",
        "--cluster-name",
        "gpu-slicer-test",
        "--lease-namespace",
        "default",
        "--metrics-bind-address",
        &addr,
        "--resync-period",
        "5s",
        // The cluster suite tests the controller loop; the webhook has tests/webhook.rs.
        "--webhook-port",
        "0",
    ];
    args.extend_from_slice(extra);
    Controller(
        Command::new(env!("CARGO_BIN_EXE_gpu-slicer"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("controller starts"),
    )
}

fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.starts_with("HTTP/1.1 200")
        .then(|| out.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

async fn wait_for<F: FnMut() -> bool>(mut f: F, secs: u64) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    false
}

async fn owned_pools(client: &Client) -> Vec<DynamicObject> {
    let ar = ApiResources::default()
        .get("karpenter.sh/v1", "NodePool")
        .expect("resource");
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    api.list(&ListParams::default().labels("app.kubernetes.io/managed-by=gpu-slicer"))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn dry_run_serves_a_plan_and_writes_nothing() {
    let client = Client::try_default().await.expect("kubeconfig");
    let deps: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let pp = PatchParams::apply("gpu-slicer-test").force();
    deps.patch(
        "gpu-timeslice-test",
        &pp,
        &Patch::Apply(seed_deployment(10)),
    )
    .await
    .expect("deployment applied");
    let ctl = start(18080, &["--dry-run"]);
    let ready = wait_for(|| get(18080, "/readyz").is_some(), 60).await;
    assert!(ready, "never ready");
    let planned = wait_for(
        || get(18080, "/plan").is_some_and(|p| p.contains("gpu-timeslice-test")),
        60,
    )
    .await;
    assert!(planned, "no plan for the seed pods");
    assert!(
        owned_pools(&client).await.is_empty(),
        "dry-run wrote a NodePool"
    );
    drop(ctl);
    let _ = deps
        .delete("gpu-timeslice-test", &DeleteParams::default())
        .await;
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn live_run_creates_pools_and_overlays_then_drains_them() {
    let client = Client::try_default().await.expect("kubeconfig");
    let deps: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let pp = PatchParams::apply("gpu-slicer-test").force();
    deps.patch(
        "gpu-timeslice-test",
        &pp,
        &Patch::Apply(seed_deployment(10)),
    )
    .await
    .expect("deployment applied");
    let _ctl = start(18081, &["--replicas", "10"]);
    let t = Instant::now();
    let mut pools = Vec::new();
    while t.elapsed() < Duration::from_secs(120) && pools.is_empty() {
        pools = owned_pools(&client).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(!pools.is_empty(), "no NodePool created");
    let ov = ApiResources::default()
        .get("karpenter.sh/v1alpha1", "NodeOverlay")
        .expect("resource");
    let overlays: Api<DynamicObject> = Api::all_with(client.clone(), &ov);
    let list = overlays
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=gpu-slicer"))
        .await
        .expect("overlays listed");
    assert!(!list.items.is_empty(), "no NodeOverlay created");
    // Demand gone: the pools are drained (limit 0) or deleted once empty.
    deps.delete("gpu-timeslice-test", &DeleteParams::default())
        .await
        .expect("deployment deleted");
    let t = Instant::now();
    let mut drained = false;
    while t.elapsed() < Duration::from_secs(120) && !drained {
        drained = owned_pools(&client).await.iter().all(|p| {
            p.data
                .pointer("/spec/limits/nvidia.com~1gpu")
                .and_then(|v| v.as_str())
                == Some("0")
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(drained, "pools neither drained nor deleted");
}
