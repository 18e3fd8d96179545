//! Live AWS data through the real SDKs over HTTP on 127.0.0.1:
//! - EC2 against a real moto server (`tests/support/moto.rs`; moto's instance data is a
//!   real scrape, its spot prices are placeholders, so spot tests check the plumbing);
//! - the Pricing API against a stub that answers the real awsJson1.1 wire format with
//!   recorded-shape documents (`tests/support/pricing_stub.rs`), because moto answers
//!   500 for pricing;
//! - faults (throttling, 500s, timeouts, dropped connections) injected by a proxy in front
//!   of moto (`tests/support/fault_proxy.rs`), and connection refused on a closed port.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "aws")]

#[path = "support/fault_proxy.rs"]
mod fault_proxy;
#[path = "support/moto.rs"]
mod moto;
#[path = "support/pricing_stub.rs"]
mod pricing_stub;

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gpu_slicer::aws::{self, AwsSettings, Clients, Counts, LiveSource, Reason};
use gpu_slicer::catalog::live::{DataKind, Origin, Ttls};
use gpu_slicer::catalog::{self, find};
use gpu_slicer::model::Catalog;
use pricing_stub::{PricingStub, Product};

const REGION: &str = "us-east-1";

fn settings(ec2: &str, pricing: &str) -> AwsSettings {
    AwsSettings {
        region: Some(REGION.to_string()),
        endpoint_url: Some(ec2.to_string()),
        pricing_endpoint_url: Some(pricing.to_string()),
        requests_per_second: NonZeroU32::new(100).expect("non-zero"),
        burst: NonZeroU32::new(100).expect("non-zero"),
        attempt_timeout: Duration::from_secs(5),
        max_attempts: 3,
        base_backoff: Duration::from_millis(10),
        throttle_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ..AwsSettings::default()
    }
}

/// Static test credentials and an explicit region: the tests never consult the
/// environment's chain (and `.ci/test` disables IMDS besides).
async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(aws::https_client())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "static",
        ))
        .load()
        .await
}

async fn clients(s: &AwsSettings) -> (Clients, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let c = Clients::from_sdk_config(&sdk_config().await, s)
        .expect("clients")
        .observe(counts.clone());
    (c, counts)
}

fn base() -> Catalog {
    catalog::embedded().expect("embedded catalog")
}

/// Pricing products for every embedded type at 1.5 × the embedded price (so a live
/// price is told apart from the embedded one), plus products the filters must reject.
fn products(base: &Catalog) -> Vec<Product> {
    let mut v: Vec<Product> = base
        .types
        .iter()
        .map(|t| Product::new(&t.name, REGION, t.on_demand_price * 1.5))
        .collect();
    v.push(Product::new("g4dn.xlarge", "eu-west-1", 0.01));
    let mut unused = Product::new("g5.xlarge", REGION, 0.02);
    unused.capacitystatus = "UnusedCapacityReservation".into();
    v.push(unused);
    let mut windows = Product::new("g6.xlarge", REGION, 0.03);
    windows.operating_system = "Windows".into();
    v.push(windows);
    v
}

fn families(c: &Catalog) -> Vec<String> {
    c.types
        .iter()
        .map(|t| t.family.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn moto_instance_types_agree_with_the_embedded_catalog() {
    let moto = moto::Moto::start();
    let (c, counts) = clients(&settings(&moto.url(), "http://127.0.0.1:9")).await;
    let base = base();
    let types = c
        .instance_types(&families(&base))
        .await
        .expect("DescribeInstanceTypes");
    assert!(counts.attempts("ec2:DescribeInstanceTypes") >= 1);
    let mut matched = 0;
    for b in &base.types {
        let Some(e) = types.iter().find(|t| t.name == b.name) else {
            continue;
        };
        matched += 1;
        assert_eq!(e.vcpus, b.vcpus, "{}", b.name);
        assert_eq!(e.memory_mib, b.memory_mib, "{}", b.name);
        // EC2's count is Karpenter's label: 0 on the fractional g6f/gr6f.
        assert_eq!(e.gpu_count, b.gpu_label_count, "{}", b.name);
        // Karpenter's label: lower case, words joined with `-` (`RTX PRO 4500`).
        assert_eq!(
            e.gpu_name.to_ascii_lowercase().replace(' ', "-"),
            b.gpu_name,
            "{}",
            b.name
        );
        assert_eq!(e.gpu_memory_mib, b.gpu_memory_mib, "{}", b.name);
        assert_eq!(e.eni_max_pods(), b.max_pods, "{}: ENI max pods", b.name);
        assert_eq!(e.kube_arch(), Some(b.arch.as_str()), "{}", b.name);
    }
    // moto's scrape lacks the older p3 sizes (p3.8xlarge among them); everything else is there.
    assert!(matched >= 34, "only {matched} embedded types found in moto");
    assert!(!types.iter().any(|t| t.name == "p3.8xlarge"));
    // Only the asked families come back (the instance-type filter with wildcards).
    let fams = families(&base);
    assert!(
        types
            .iter()
            .all(|t| fams.iter().any(|f| t.name.starts_with(&format!("{f}."))))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn moto_offerings_and_spot_price_plumbing() {
    let moto = moto::Moto::start();
    let (c, _) = clients(&settings(&moto.url(), "http://127.0.0.1:9")).await;
    let names: Vec<String> = ["g4dn.xlarge", "p4d.24xlarge", "g6e.xlarge", "no.such"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let offerings = c.offerings(&names).await.expect("offerings");
    assert!(offerings["p4d.24xlarge"].len() >= 2, "{offerings:?}");
    assert!(!offerings.contains_key("no.such"));
    for zones in offerings.values() {
        assert!(zones.iter().all(|z| z.starts_with(REGION)), "{zones:?}");
    }
    let (spot, note) = c.spot_prices(&names).await.expect("spot");
    assert_eq!(note, None);
    for (t, zones) in &spot {
        let offered = offerings.get(t).expect("spot only for offered types");
        for (z, p) in zones {
            assert!(offered.contains(z), "{t} {z}");
            // moto's placeholder price; the plumbing (string → f64 per type and zone) is
            // what is tested here.
            assert!(*p > 0.0 && *p < 1.0, "{t} {z} {p}");
        }
    }
    assert!(spot.contains_key("g4dn.xlarge"));
}

#[tokio::test(flavor = "multi_thread")]
async fn pricing_get_products_paginates_filters_and_parses() {
    let base = base();
    let stub = PricingStub::start(products(&base), 10).await;
    stub.extra_items(vec!["{not json".to_string()]);
    let (c, counts) = clients(&settings("http://127.0.0.1:9", &stub.url())).await;
    let (prices, note) = c.on_demand_prices().await.expect("GetProducts");
    // One matching product per catalog type (the stub applies the filters to 3 more),
    // 10 per page.
    assert_eq!(
        counts.attempts("pricing:GetProducts"),
        base.types.len().div_ceil(10) as u64
    );
    assert_eq!(prices.len(), base.types.len());
    for t in &base.types {
        let p = prices[&t.name];
        assert!(
            (p - t.on_demand_price * 1.5).abs() < 1e-6,
            "{}: {p}",
            t.name
        );
    }
    assert!(
        note.as_deref()
            .is_some_and(|n| n.contains("1 price-list entr")),
        "{note:?}"
    );
    // Every request carried Karpenter's filters and the region.
    let reqs = stub.requests();
    let body = &reqs[0].body;
    let fields: BTreeSet<&str> = body["Filters"]
        .as_array()
        .expect("filters")
        .iter()
        .map(|f| {
            assert_eq!(f["Type"], "TERM_MATCH");
            f["Field"].as_str().expect("field")
        })
        .collect();
    for f in [
        "regionCode",
        "tenancy",
        "operatingSystem",
        "preInstalledSw",
        "capacitystatus",
        "productFamily",
        "marketoption",
    ] {
        assert!(fields.contains(f), "{f} missing from {fields:?}");
    }
    assert_eq!(body["ServiceCode"], "AmazonEC2");
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_merges_live_data_and_respects_the_ttls() {
    let moto = moto::Moto::start();
    let base = base();
    let stub = PricingStub::start(products(&base), 100).await;
    let (c, counts) = clients(&settings(&moto.url(), &stub.url())).await;
    let (mut src, warning) = LiveSource::new(c, None);
    assert_eq!(warning, None);
    let t0 = 1_900_000_000;
    let r = src.refresh(&base, t0, false).await;
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(r.fetched.len(), 4, "{:?}", r.fetched);
    let m = src.merged(&base, t0);
    let g4 = find(&m.catalog, "g4dn.xlarge").expect("g4dn.xlarge");
    assert!((g4.on_demand_price - 0.526 * 1.5).abs() < 1e-6);
    assert!(g4.spot_price.is_some());
    assert!(matches!(
        m.origins["g4dn.xlarge"].on_demand,
        Origin::Live { age_seconds: 0, .. }
    ));
    assert!(
        find(&m.catalog, "p3.8xlarge").is_none(),
        "moto has no p3.8xlarge"
    );
    assert!(
        m.catalog.source.name.starts_with("live AWS us-east-1"),
        "{}",
        m.catalog.source.name
    );

    // The example IAM policy grants exactly the AWS actions a refresh calls.
    let called: BTreeSet<String> = counts
        .snapshot()
        .keys()
        .map(|(api, _)| api.to_string())
        .collect();
    let policy: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/iam/gpu-slicer-policy.json"
        ))
        .expect("policy"),
    )
    .expect("policy JSON");
    let granted: BTreeSet<String> = policy["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .flat_map(|st| match &st["Action"] {
            serde_json::Value::String(a) => vec![a.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(
        called, granted,
        "examples/iam/gpu-slicer-policy.json vs the calls made"
    );

    // Within every TTL nothing is asked again.
    let before = counts.snapshot().values().sum::<u64>();
    let r = src.refresh(&base, t0 + 60, false).await;
    assert!(r.fetched.is_empty() && r.failed.is_empty());
    assert_eq!(counts.snapshot().values().sum::<u64>(), before);

    // After 5 minutes only the spot prices are due.
    let ttls = Ttls::default();
    let r = src.refresh(&base, t0 + ttls.spot, false).await;
    assert_eq!(r.fetched, vec![DataKind::SpotPrices]);
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_and_server_errors_are_retried_and_counted() {
    let moto = moto::Moto::start();
    let proxy = fault_proxy::FaultProxy::start(&moto.url()).await;
    proxy.push_fault(fault_proxy::Fault::Throttle);
    proxy.push_fault(fault_proxy::Fault::ServerError);
    let (c, counts) = clients(&settings(&proxy.url(), "http://127.0.0.1:9")).await;
    let types = c
        .instance_types(&["g5".to_string()])
        .await
        .expect("third attempt");
    assert!(types.iter().any(|t| t.name == "g5.xlarge"));
    let snap = counts.snapshot();
    assert_eq!(
        snap.get(&("ec2:DescribeInstanceTypes", "throttled")),
        Some(&1),
        "{snap:?}"
    );
    assert_eq!(
        snap.get(&("ec2:DescribeInstanceTypes", "server-error")),
        Some(&1),
        "{snap:?}"
    );
    assert_eq!(
        snap.get(&("ec2:DescribeInstanceTypes", "ok")),
        Some(&1),
        "{snap:?}"
    );
    let actions: Vec<String> = proxy
        .requests()
        .iter()
        .filter_map(|r| r.action.clone())
        .collect();
    assert_eq!(actions, vec!["DescribeInstanceTypes"; 3]);

    // A persistent error gives up after max_attempts with the reason.
    proxy.fail_all(Some(fault_proxy::Fault::ServerError));
    let e = c
        .offerings(&["g5.xlarge".to_string()])
        .await
        .expect_err("500s");
    assert_eq!((e.reason, e.attempts), (Reason::ServerError, 3));
    proxy.fail_all(Some(fault_proxy::Fault::Throttle));
    let e = c
        .offerings(&["g5.xlarge".to_string()])
        .await
        .expect_err("throttled");
    assert_eq!((e.reason, e.attempts), (Reason::Throttled, 3));
}

#[tokio::test(flavor = "multi_thread")]
async fn timeouts_and_dropped_connections_fail_fast_with_their_reason() {
    let moto = moto::Moto::start();
    let proxy = fault_proxy::FaultProxy::start(&moto.url()).await;
    let mut s = settings(&proxy.url(), "http://127.0.0.1:9");
    s.attempt_timeout = Duration::from_millis(300);
    let (c, counts) = clients(&s).await;
    proxy.fail_all(Some(fault_proxy::Fault::Delay(Duration::from_secs(5))));
    let started = Instant::now();
    let e = c
        .instance_types(&["g5".to_string()])
        .await
        .expect_err("timeout");
    assert_eq!((e.reason, e.attempts), (Reason::Timeout, 3), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        counts
            .snapshot()
            .get(&("ec2:DescribeInstanceTypes", "timeout")),
        Some(&3)
    );

    proxy.fail_all(Some(fault_proxy::Fault::Close));
    let e = c
        .instance_types(&["g5".to_string()])
        .await
        .expect_err("closed");
    assert!(
        matches!(
            e.reason,
            Reason::Connect | Reason::BadResponse | Reason::Timeout
        ),
        "{e}"
    );
    assert_eq!(e.attempts, 3, "a dropped connection is retried: {e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_refused_still_gives_a_plannable_catalog() {
    // Nothing listens on port 9 (discard) on this machine's loopback.
    let base = base();
    let (c, counts) = clients(&settings("http://127.0.0.1:9", "http://127.0.0.1:9")).await;
    let (mut src, _) = LiveSource::new(c, None);
    let r = src.refresh(&base, 1_900_000_000, false).await;
    assert!(r.fetched.is_empty());
    let kinds: BTreeSet<DataKind> = r.failed.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds.len(), 4, "{:?}", r.failed);
    assert!(
        r.failed.iter().all(|(_, e)| e.reason == Reason::Connect),
        "{:?}",
        r.failed
    );
    assert!(
        counts
            .snapshot()
            .keys()
            .all(|(_, outcome)| *outcome == "connect")
    );
    let m = src.merged(&base, 1_900_000_000);
    assert_eq!(m.catalog, base, "the base catalog is used as it is");
    assert!(m.status.iter().all(|s| s.fetched_at.is_none()));
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_cache_is_used_when_aws_fails_later() {
    let moto = moto::Moto::start();
    let base = base();
    let stub = PricingStub::start(products(&base), 100).await;
    let proxy = fault_proxy::FaultProxy::start(&moto.url()).await;
    let dir = std::env::temp_dir().join(format!("gpu-slicer-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = settings(&proxy.url(), &stub.url());
    let t0 = 1_900_000_000;
    {
        let (c, _) = clients(&s).await;
        let (mut src, _) = LiveSource::new(c, Some(&dir));
        let r = src.refresh(&base, t0, false).await;
        assert_eq!(r.fetched.len(), 4, "{:?}", r.failed);
    }
    // A new process, a day later, with AWS failing: the cache is loaded, the refresh
    // fails, and the old data is used, flagged stale.
    proxy.fail_all(Some(fault_proxy::Fault::ServerError));
    stub.push_fault(pricing_stub::Fault::ServerError);
    stub.push_fault(pricing_stub::Fault::ServerError);
    stub.push_fault(pricing_stub::Fault::ServerError);
    let (c, _) = clients(&s).await;
    let (mut src, warning) = LiveSource::new(c, Some(&dir));
    assert_eq!(warning, None);
    let later = t0 + 25 * 3600;
    let r = src.refresh(&base, later, false).await;
    assert_eq!(r.failed.len(), 4, "{:?}", r.fetched);
    let m = src.merged(&base, later);
    let g4 = find(&m.catalog, "g4dn.xlarge").expect("from the cache");
    assert!((g4.on_demand_price - 0.526 * 1.5).abs() < 1e-6);
    assert!(m.status.iter().all(|st| st.stale), "{:?}", m.status);
    assert!(matches!(
        m.origins["g4dn.xlarge"].on_demand,
        Origin::Live { stale: true, .. }
    ));
    // The planner plans with it.
    let pod = gpu_slicer::model::DemandItem::shared(
        "default/p",
        gpu_slicer::model::Resources::new(1000, 1 << 30),
    );
    let plan = gpu_slicer::planner::plan(&m.catalog, &[pod], &Default::default());
    assert_eq!(plan.summary.placed_pods, 1);

    // A cache that does not parse is reported, not fatal.
    let file = aws::cache_file(
        &dir,
        REGION,
        s.endpoint_url.as_deref(),
        s.pricing_endpoint_url.as_deref(),
    );
    std::fs::write(&file, "{").expect("write");
    let (c, _) = clients(&s).await;
    let (_, warning) = LiveSource::new(c, Some(&dir));
    assert!(warning.is_some_and(|w| w.contains("not a gpu-slicer price cache")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_governor_quota_bounds_every_attempt() {
    let base = base();
    // One matching product per catalog type (3 more are filtered out), 5 per page, at 4
    // requests per second with a burst of 1.
    let stub = PricingStub::start(products(&base), 5).await;
    let mut s = settings("http://127.0.0.1:9", &stub.url());
    s.requests_per_second = NonZeroU32::new(4).expect("non-zero");
    s.burst = NonZeroU32::MIN;
    // Two throttled answers on the way: retries count against the quota too.
    stub.push_fault(pricing_stub::Fault::Throttle);
    stub.push_fault(pricing_stub::Fault::Throttle);
    let (c, counts) = clients(&s).await;
    let (prices, _) = c.on_demand_prices().await.expect("prices");
    assert_eq!(prices.len(), base.types.len());
    let times: Vec<Instant> = stub.requests().iter().map(|r| r.time).collect();
    // Every page, and the two throttled answers.
    let requests = base.types.len().div_ceil(5) + 2;
    assert_eq!(times.len(), requests);
    assert_eq!(counts.attempts("pricing:GetProducts"), requests as u64);
    // At 4/s with burst 1, request k+n comes at least (n) × 250 ms after request k
    // (a little slack for the clock).
    for i in 0..times.len() {
        for j in i + 1..times.len() {
            let gap = times[j] - times[i];
            let min = Duration::from_millis(250 * (j - i) as u64 - 20);
            assert!(gap >= min, "requests {i} and {j}: {gap:?} < {min:?}");
        }
    }
}

#[cfg(feature = "controller")]
async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(feature = "controller")]
#[tokio::test(flavor = "multi_thread")]
async fn the_controller_publishes_live_catalogs_and_falls_back_with_metrics() {
    use gpu_slicer::controller::prices::{self, LiveConfig};
    use gpu_slicer::controller::server::Shared;
    let base = base();
    let config = |s: AwsSettings, conf: aws_config::SdkConfig| LiveConfig {
        settings: s,
        only_with_credentials: false,
        cache_dir: None,
        tick: Duration::from_secs(3600),
        sdk_config: Some(conf),
    };

    // AWS unreachable at start: the base catalog stays in use, with a warning (logged)
    // and metrics.
    let shared = Arc::new(Shared::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let rx = prices::spawn(
        base.clone(),
        Some(config(
            settings("http://127.0.0.1:9", "http://127.0.0.1:9"),
            sdk_config().await,
        )),
        shared.clone(),
        stop_rx.clone(),
    );
    wait_for("refresh failures in the metrics", || {
        shared.metrics.encode().contains(
            "gpu_slicer_catalog_refresh_failures_total{kind=\"on-demand-prices\",reason=\"connect\"} 1",
        )
    })
    .await;
    let text = shared.metrics.encode();
    for kind in [
        "instance-types",
        "offerings",
        "on-demand-prices",
        "spot-prices",
    ] {
        assert!(
            text.contains(&format!("gpu_slicer_catalog_fallback{{kind=\"{kind}\"}} 1")),
            "{kind}: {text}"
        );
    }
    assert!(
        text.contains(
            "gpu_slicer_aws_requests_total{api=\"ec2:DescribeInstanceTypes\",outcome=\"connect\"} 3"
        ),
        "{text}"
    );
    assert_eq!(**rx.borrow(), base);

    // Reachable: the published catalog changes to the live one.
    let moto = moto::Moto::start();
    let stub = PricingStub::start(products(&base), 100).await;
    let shared = Arc::new(Shared::default());
    let mut rx = prices::spawn(
        base.clone(),
        Some(config(
            settings(&moto.url(), &stub.url()),
            sdk_config().await,
        )),
        shared.clone(),
        stop_rx,
    );
    tokio::time::timeout(Duration::from_secs(20), rx.changed())
        .await
        .expect("a live catalog within 20 s")
        .expect("sender alive");
    let live = rx.borrow().clone();
    let g4 = find(&live, "g4dn.xlarge").expect("g4dn.xlarge");
    assert!((g4.on_demand_price - 0.526 * 1.5).abs() < 1e-6);
    let text = shared.metrics.encode();
    assert!(
        text.contains("gpu_slicer_catalog_fallback{kind=\"on-demand-prices\"} 0"),
        "{text}"
    );
    assert!(
        text.contains(
            "gpu_slicer_aws_requests_total{api=\"pricing:GetProducts\",outcome=\"ok\"} 1"
        ),
        "{text}"
    );
    let _ = stop_tx.send(true);
}
