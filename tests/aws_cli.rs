//! `gpu-slicer plan|catalog --live-prices` as a user runs them: the binary, its flags and
//! exit codes, against moto (EC2) and the Pricing API stub on 127.0.0.1, and with nothing
//! listening at all.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "aws")]

#[path = "support/moto.rs"]
mod moto;
#[path = "support/pricing_stub.rs"]
mod pricing_stub;

use std::path::{Path, PathBuf};
use std::process::Command;

use gpu_slicer::catalog;
use pricing_stub::{PricingStub, Product};
use serde_json::Value;

const DOWN: &str = "http://127.0.0.1:9";

fn root(p: &str) -> String {
    format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory, also the HOME of the child (so no real cache is touched).
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gpu-slicer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Runs the binary off the async runtime's workers (the stub serves on them).
async fn run(args: Vec<String>, home: &Path) -> (i32, String, String) {
    let home = home.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_gpu-slicer"))
            .args(&args)
            .env_clear()
            .env("HOME", &home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .expect("binary runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("join")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Every embedded type priced at 2 × its embedded price.
fn products() -> Vec<Product> {
    catalog::embedded()
        .expect("catalog")
        .types
        .iter()
        .map(|t| Product::new(&t.name, "us-east-1", t.on_demand_price * 2.0))
        .collect()
}

fn embedded_price(t: &str) -> f64 {
    let c = catalog::embedded().expect("catalog");
    catalog::find(&c, t).expect("known type").on_demand_price
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_uses_live_prices_from_moto_and_the_pricing_api() {
    let moto = moto::Moto::start();
    let stub = PricingStub::start(products(), 100).await;
    let home = scratch("plan-live");
    let live = [
        "--live-prices",
        "--region",
        "us-east-1",
        "--endpoint-url",
        &moto.url(),
        "--pricing-endpoint-url",
        &stub.url(),
        "--no-price-cache",
    ];
    let mut a = args(&["plan", "-f", &root("examples/seed"), "-o", "json"]);
    a.extend(args(&live));
    let (code, out, err) = run(a, &home).await;
    assert_eq!(code, 0, "{err}");
    // The seed guide's pods state no GPU memory: that warning is expected, no other.
    assert!(
        err.lines()
            .all(|l| !l.contains("warning") || l.contains("declares no GPU memory")),
        "{err}"
    );
    let plan: Value = serde_json::from_str(&out).expect("plan JSON");
    let nodes = plan["nodes"].as_array().expect("nodes");
    assert!(!nodes.is_empty());
    for n in nodes {
        let t = n["instanceType"].as_str().expect("type");
        let p = n["hourlyPrice"].as_f64().expect("price");
        assert!((p - 2.0 * embedded_price(t)).abs() < 1e-6, "{t}: {p}");
    }

    // Spot needs spot prices, which only the live data has here.
    let mut a = args(&[
        "plan",
        "-f",
        &root("examples/seed"),
        "-o",
        "json",
        "--capacity-type",
        "spot",
    ]);
    a.extend(args(&live));
    let (code, out, err) = run(a, &home).await;
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_str(&out).expect("plan JSON");
    assert!(
        plan["nodes"]
            .as_array()
            .is_some_and(|n| !n.is_empty() && n.iter().all(|n| n["capacityType"] == "spot")),
        "{out}"
    );

    // The table says where prices came from and shows moto's (placeholder) spot prices.
    let mut a = args(&["plan", "-f", &root("examples/seed")]);
    a.extend(args(&live));
    let (code, out, err) = run(a, &home).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("prices: live AWS us-east-1 (on-demand"),
        "{out}"
    );
    assert!(out.contains("sliced at spot prices"), "{out}");

    // catalog shows each price's source.
    let mut a = args(&["catalog", "-o", "json"]);
    a.extend(args(&live));
    let (code, out, err) = run(a, &home).await;
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).expect("catalog JSON");
    let g4 = &doc["live"]["origins"]["g4dn.xlarge"];
    assert_eq!(g4["onDemand"]["from"], "live", "{g4}");
    assert_eq!(g4["spot"]["from"], "live", "{g4}");
    assert!(
        doc["types"]
            .as_array()
            .expect("types")
            .iter()
            .all(|t| t["name"] != "p3.8xlarge")
    );
    let mut a = args(&["catalog"]);
    a.extend(args(&live));
    let (code, out, _) = run(a, &home).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("ON-DEMAND FROM") && out.contains("live 0s"),
        "{out}"
    );
    assert!(
        out.contains("not returned by DescribeInstanceTypes"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_down_still_plans_with_the_embedded_prices_and_says_why() {
    let home = scratch("plan-down");
    let (code, offline, err) = run(
        args(&["plan", "-f", &root("examples/seed"), "-o", "json"]),
        &home,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(
        args(&[
            "plan",
            "-f",
            &root("examples/seed"),
            "-o",
            "json",
            "--live-prices",
            "--region",
            "us-east-1",
            "--endpoint-url",
            DOWN,
            "--pricing-endpoint-url",
            DOWN,
            "--aws-max-attempts",
            "2",
        ]),
        &home,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    // The same plan as offline, all but the time it took to make.
    let timeless = |json: &str| {
        let mut v: Value = serde_json::from_str(json).expect("plan JSON");
        v["solver"]["elapsedSeconds"] = 0.into();
        v
    };
    assert_eq!(
        timeless(&out),
        timeless(&offline),
        "the same plan as offline"
    );
    assert!(err.contains("(connect)"), "{err}");
    assert!(
        err.contains("no on-demand-prices from AWS; using embedded"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_price_cache_serves_a_second_run_without_aws() {
    let home = scratch("plan-cache");
    let cache = home.join("cache");
    let (moto_url, stub_url, first) = {
        let moto = moto::Moto::start();
        let stub = PricingStub::start(products(), 100).await;
        let a = args(&[
            "catalog",
            "-o",
            "json",
            "--live-prices",
            "--region",
            "us-east-1",
            "--endpoint-url",
            &moto.url(),
            "--pricing-endpoint-url",
            &stub.url(),
            "--price-cache",
            cache.to_str().expect("utf-8"),
        ]);
        let (code, out, err) = run(a, &home).await;
        assert_eq!(code, 0, "{err}");
        (moto.url(), stub.url(), out)
    };
    // moto and the stub are gone; the data is within its TTLs, so nothing is asked.
    let a = args(&[
        "catalog",
        "-o",
        "json",
        "--live-prices",
        "--region",
        "us-east-1",
        "--endpoint-url",
        &moto_url,
        "--pricing-endpoint-url",
        &stub_url,
        "--price-cache",
        cache.to_str().expect("utf-8"),
    ]);
    let (code, out, err) = run(a, &home).await;
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
    let a: Value = serde_json::from_str(&first).expect("json");
    let b: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(a["types"], b["types"]);
    let files: Vec<_> = std::fs::read_dir(&cache).expect("cache dir").collect();
    assert_eq!(files.len(), 1, "one cache file for these endpoints");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_live_flags_are_usage_errors() {
    let home = scratch("flags");
    for (flag, value, says) in [
        ("--aws-requests-per-second", "0", "at least 1"),
        ("--endpoint-url", "ftp://x", "not an http(s) URL"),
        ("--aws-timeout", "soon", "not a duration"),
        ("--live-prices", "maybe", "invalid value"),
    ] {
        let mut a = args(&["catalog", flag, value]);
        if flag != "--live-prices" {
            a.push("--live-prices=true".to_string());
        }
        let (code, _, err) = run(a, &home).await;
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_without_credentials_is_the_embedded_catalog_quietly() {
    let home = scratch("auto");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_gpu-slicer"))
            .args([
                "catalog",
                "-o",
                "json",
                "--live-prices=auto",
                "--region",
                "us-east-1",
            ])
            .args(["--endpoint-url", DOWN, "--pricing-endpoint-url", DOWN])
            .env_clear()
            .env("HOME", &home)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .expect("binary runs")
    })
    .await
    .expect("join");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("no AWS credentials found"), "{err}");
    assert!(!err.contains("(connect)"), "no request was sent: {err}");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    let embedded = serde_json::to_value(catalog::embedded().expect("catalog")).expect("json");
    assert_eq!(doc, embedded);
}
