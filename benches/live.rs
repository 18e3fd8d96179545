//! Live AWS data: what one refresh costs in requests and wall time, and what the merge
//! costs per round.
//!
//! `cargo bench --bench live` (needs moto: `bash .ci/test --test aws_cli` installs it,
//! or set MOTO_SERVER). EC2 answers come from a local moto server and the Pricing API from
//! the tests' stub, both on 127.0.0.1, so the numbers are gpu-slicer's own overhead plus
//! the default rate limit (5 requests/s, burst 5), not AWS's latency.
//!
//! Reports: a cold refresh (all four kinds) with the default quota, the requests it
//! sends, a warm refresh (everything within its TTL: no request), and the merge of the
//! embedded catalog with the live data (median of 200).

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/moto.rs"]
mod moto;
#[path = "../tests/support/pricing_stub.rs"]
mod pricing_stub;

use std::sync::Arc;
use std::time::{Duration, Instant};

use gpu_slicer::aws::{self, AwsSettings, Clients, Counts, LiveSource};
use gpu_slicer::catalog;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let base = catalog::embedded().expect("catalog");
        let moto = moto::Moto::start();
        // About as many products as the real answer for one region's shared Linux
        // on-demand instances (~900): the catalog's types plus filler types.
        let mut products: Vec<pricing_stub::Product> = base
            .types
            .iter()
            .map(|t| pricing_stub::Product::new(&t.name, "us-east-1", t.on_demand_price))
            .collect();
        for i in 0..860 {
            products.push(pricing_stub::Product::new(
                &format!("m9.size{i}"),
                "us-east-1",
                0.1,
            ));
        }
        let stub = pricing_stub::PricingStub::start(products, 100).await;
        let settings = AwsSettings {
            region: Some("us-east-1".into()),
            endpoint_url: Some(moto.url()),
            pricing_endpoint_url: Some(stub.url()),
            ..AwsSettings::default()
        };
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(aws::https_client())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "bench", "bench", None, None, "static",
            ))
            .load()
            .await;
        let mut cold = Vec::new();
        let mut requests = 0;
        for _ in 0..5 {
            let counts = Arc::new(Counts::default());
            let clients = Clients::from_sdk_config(&conf, &settings)
                .expect("clients")
                .observe(counts.clone());
            let (mut src, _) = LiveSource::new(clients, None);
            // Let the limiter's burst refill between runs.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let t = Instant::now();
            let r = src.refresh(&base, aws::now_unix(), false).await;
            cold.push(t.elapsed());
            assert!(r.failed.is_empty(), "{:?}", r.failed);
            requests = counts.snapshot().values().sum::<u64>();
        }
        let counts = Arc::new(Counts::default());
        let clients = Clients::from_sdk_config(&conf, &settings)
            .expect("clients")
            .observe(counts.clone());
        let (mut src, _) = LiveSource::new(clients, None);
        let now = aws::now_unix();
        src.refresh(&base, now, false).await;
        let mut warm = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let r = src.refresh(&base, now + 10, false).await;
            warm.push(t.elapsed());
            assert!(r.fetched.is_empty());
        }
        let mut merge = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            let m = src.merged(&base, now + 10);
            merge.push(t.elapsed());
            assert!(!m.catalog.types.is_empty());
        }
        println!("live data (moto + pricing stub on 127.0.0.1, default quota 5/s burst 5):");
        println!(
            "  cold refresh, 4 kinds: median {:?} of 5 ({} requests, {} pricing pages)",
            median(cold),
            requests,
            stub.requests().len() / 6
        );
        println!(
            "  warm refresh (within TTLs, no request): median {:?}",
            median(warm)
        );
        println!(
            "  merge into the embedded catalog: median {:?} of 200",
            median(merge)
        );
    });
}
