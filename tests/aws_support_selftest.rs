//! Self-tests of the AWS test support: a real moto server, the Pricing API stub and the
//! fault-injecting proxy (all on 127.0.0.1).

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "aws")]

#[path = "support/fault_proxy.rs"]
mod fault_proxy;
#[path = "support/moto.rs"]
mod moto;
#[path = "support/pricing_stub.rs"]
mod pricing_stub;

use std::time::Duration;

use fault_proxy::{FaultProxy, http_request};
use moto::Moto;
use pricing_stub::{PricingStub, Product};
use serde_json::{Value, json};

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
const AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000";
const DESCRIBE_REGIONS: &str = "Action=DescribeRegions&Version=2016-11-15";

fn ec2_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("content-type", FORM),
        ("authorization", AUTH),
        ("x-amz-date", "20260101T000000Z"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn moto_answers_describe_regions() {
    let moto = Moto::start();
    assert!(moto.url().starts_with("http://127.0.0.1:"));
    let resp = http_request("POST", &moto.url(), &ec2_headers(), DESCRIBE_REGIONS)
        .await
        .expect("moto answers");
    assert_eq!(resp.status, 200, "body: {}", resp.body);
    assert!(
        resp.body.contains("<DescribeRegionsResponse") && resp.body.contains("us-east-1"),
        "unexpected body: {}",
        resp.body
    );
}

#[test]
fn moto_starts_from_a_sync_test_and_two_run_side_by_side() {
    let a = Moto::start();
    let b = Moto::start();
    assert_ne!(a.port, b.port);
    let port = a.port;
    drop(a);
    // The killed server no longer accepts connections.
    std::thread::sleep(Duration::from_millis(200));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    drop(b);
}

async fn get_products(stub: &PricingStub, body: Value) -> (u16, Value) {
    let resp = http_request(
        "POST",
        &stub.url(),
        &[
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "AWSPriceListService.GetProducts"),
        ],
        &body.to_string(),
    )
    .await
    .expect("the stub answers");
    assert_eq!(
        resp.header("content-type"),
        Some("application/x-amz-json-1.1")
    );
    let json = serde_json::from_str(&resp.body)
        .unwrap_or_else(|e| panic!("stub body is not JSON ({e}): {}", resp.body));
    (resp.status, json)
}

fn request(region: &str, token: Option<&str>) -> Value {
    let mut body = json!({
        "ServiceCode": "AmazonEC2",
        "Filters": [
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
            {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
            {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
            {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
            {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
            {"Type": "TERM_MATCH", "Field": "productFamily", "Value": "Compute Instance"},
            {"Type": "TERM_MATCH", "Field": "marketoption", "Value": "OnDemand"},
        ],
        "FormatVersion": "aws_v1",
        "MaxResults": 100,
    });
    if let Some(t) = token {
        body["NextToken"] = json!(t);
    }
    body
}

fn items(page: &Value) -> Vec<Value> {
    page["PriceList"]
        .as_array()
        .expect("PriceList is a list")
        .iter()
        .map(|s| {
            let s = s.as_str().expect("a PriceList element is a JSON string");
            serde_json::from_str(s).expect("a PriceList string holds JSON")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn pricing_stub_paginates_and_filters() {
    let products = vec![
        Product::new("g4dn.xlarge", "us-east-1", 0.526),
        Product::new("g4dn.2xlarge", "us-east-1", 0.752),
        Product::new("g5.xlarge", "us-east-1", 1.006),
        Product::new("g5.2xlarge", "us-east-1", 1.212),
        Product::new("g6.xlarge", "us-east-1", 0.8048),
        Product::new("g4dn.xlarge", "us-west-2", 0.526),
    ];
    let stub = PricingStub::start(products, 2).await;

    let mut types = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let (status, page) = get_products(&stub, request("us-east-1", token.as_deref())).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["FormatVersion"], "aws_v1");
        pages += 1;
        for doc in items(&page) {
            assert_eq!(doc["product"]["attributes"]["regionCode"], "us-east-1");
            let sku = doc["product"]["sku"].as_str().unwrap().to_string();
            assert_eq!(sku.len(), 16);
            let term = &doc["terms"]["OnDemand"][format!("{sku}.JRTCKXETXF")];
            let dim = &term["priceDimensions"][format!("{sku}.JRTCKXETXF.6YS6EN2CT7")];
            assert_eq!(dim["unit"], "Hrs");
            let usd: f64 = dim["pricePerUnit"]["USD"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let ty = doc["product"]["attributes"]["instanceType"]
                .as_str()
                .unwrap()
                .to_string();
            if ty == "g4dn.xlarge" {
                assert_eq!(dim["pricePerUnit"]["USD"], "0.5260000000");
                assert_eq!(doc["product"]["attributes"]["gpu"], "1");
                assert_eq!(
                    doc["product"]["attributes"]["location"],
                    "US East (N. Virginia)"
                );
            }
            assert!(usd > 0.0);
            types.push(ty);
        }
        token = page["NextToken"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(
        types,
        [
            "g4dn.xlarge",
            "g4dn.2xlarge",
            "g5.xlarge",
            "g5.2xlarge",
            "g6.xlarge"
        ]
    );

    // Another region, MaxResults below the page size.
    let mut body = request("us-west-2", None);
    body["MaxResults"] = json!(1);
    let (status, page) = get_products(&stub, body).await;
    assert_eq!(status, 200);
    assert_eq!(items(&page).len(), 1);
    assert!(page.get("NextToken").is_none());

    let reqs = stub.requests();
    assert_eq!(reqs.len(), 4);
    assert_eq!(
        reqs[0].target.as_deref(),
        Some("AWSPriceListService.GetProducts")
    );
    assert!(reqs[0].next_token().is_none());
    assert!(reqs[1].next_token().is_some() && reqs[2].next_token().is_some());
    assert_eq!(reqs[3].filter("regioncode"), Some("us-west-2"));
    assert!(
        reqs.iter()
            .all(|r| r.status == Some(200) && r.fault.is_none())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pricing_stub_errors_and_faults() {
    let stub = PricingStub::start(vec![Product::new("g5.xlarge", "us-east-1", 1.006)], 100).await;

    // Unknown filter field.
    let mut body = request("us-east-1", None);
    body["Filters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Type": "TERM_MATCH", "Field": "nonsense", "Value": "x"}));
    let (status, err) = get_products(&stub, body).await;
    assert_eq!(status, 400);
    assert_eq!(err["__type"], "InvalidParameterException");

    // Bad token.
    let (status, err) = get_products(&stub, request("us-east-1", Some("garbage"))).await;
    assert_eq!(status, 400);
    assert_eq!(err["__type"], "InvalidNextTokenException");

    // Unknown operation.
    let resp = http_request(
        "POST",
        &stub.url(),
        &[
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "AWSPriceListService.DescribeServices"),
        ],
        "{}",
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(resp.body, r#"{"__type":"UnknownOperationException"}"#);

    // Faults, FIFO, then normal answers; extra items on the first page.
    stub.push_fault(pricing_stub::Fault::Throttle);
    stub.push_fault(pricing_stub::Fault::ServerError);
    stub.push_fault(pricing_stub::Fault::Close);
    stub.push_fault(pricing_stub::Fault::Delay(Duration::from_millis(300)));
    stub.push_fault(pricing_stub::Fault::Raw(418, "{\"x\":1}".into()));
    stub.extra_items(vec!["not json".into()]);

    let headers = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "AWSPriceListService.GetProducts"),
    ];
    let body = request("us-east-1", None).to_string();
    let r = http_request("POST", &stub.url(), &headers, &body)
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-amzn-errortype"), Some("ThrottlingException"));
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap(),
        json!({"__type": "ThrottlingException", "message": "Rate exceeded"})
    );
    let r = http_request("POST", &stub.url(), &headers, &body)
        .await
        .unwrap();
    assert_eq!(r.status, 500);
    assert!(r.body.contains("InternalErrorException"), "{}", r.body);
    let closed = http_request("POST", &stub.url(), &headers, &body).await;
    assert!(closed.is_err(), "Close answered: {closed:?}");
    let t0 = std::time::Instant::now();
    let r = http_request("POST", &stub.url(), &headers, &body)
        .await
        .unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.status, 200);
    let page: Value = serde_json::from_str(&r.body).unwrap();
    let list = page["PriceList"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1], "not json");
    let r = http_request("POST", &stub.url(), &headers, &body)
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (418, "{\"x\":1}"));
    let r = http_request("POST", &stub.url(), &headers, &body)
        .await
        .unwrap();
    assert_eq!(r.status, 200);

    let faults: Vec<_> = stub.requests().into_iter().map(|r| r.fault).collect();
    assert_eq!(faults.iter().filter(|f| f.is_some()).count(), 5);
    assert_eq!(faults[3], Some(pricing_stub::Fault::Throttle));
    assert_eq!(faults[5], Some(pricing_stub::Fault::Close));

    // Dropping the stub stops it.
    let url = stub.url();
    drop(stub);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(http_request("POST", &url, &headers, &body).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_forwards_to_moto_and_injects_faults() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url()).await;

    let ok = http_request("POST", &proxy.url(), &ec2_headers(), DESCRIBE_REGIONS)
        .await
        .expect("proxy answers");
    assert_eq!(ok.status, 200, "body: {}", ok.body);
    assert!(ok.body.contains("<DescribeRegionsResponse"), "{}", ok.body);

    proxy.push_fault(fault_proxy::Fault::Throttle);
    let throttled = http_request(
        "POST",
        &proxy.url(),
        &ec2_headers(),
        "Action=DescribeInstanceTypes&Version=2016-11-15&InstanceType.1=g5.xlarge",
    )
    .await
    .expect("proxy answers");
    assert_eq!(throttled.status, 503);
    assert!(
        throttled.body.contains("<Code>RequestLimitExceeded</Code>"),
        "{}",
        throttled.body
    );

    // The queue is empty again: forwarded.
    let again = http_request("POST", &proxy.url(), &ec2_headers(), DESCRIBE_REGIONS)
        .await
        .unwrap();
    assert_eq!(again.status, 200);

    // A standing fault, a close, then cleared.
    proxy.fail_all(Some(fault_proxy::Fault::ServerError));
    for _ in 0..2 {
        let r = http_request("POST", &proxy.url(), &ec2_headers(), DESCRIBE_REGIONS)
            .await
            .unwrap();
        assert_eq!(r.status, 500);
        assert!(r.body.contains("<Code>InternalError</Code>"), "{}", r.body);
    }
    proxy.fail_all(None);
    proxy.push_fault(fault_proxy::Fault::Close);
    assert!(
        http_request("POST", &proxy.url(), &ec2_headers(), DESCRIBE_REGIONS)
            .await
            .is_err()
    );
    proxy.push_fault(fault_proxy::Fault::Delay(Duration::from_millis(200)));
    let t0 = std::time::Instant::now();
    let r = http_request("POST", &proxy.url(), &ec2_headers(), DESCRIBE_REGIONS)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(200));

    let reqs = proxy.requests();
    assert_eq!(
        proxy.actions(),
        [
            "DescribeRegions",
            "DescribeInstanceTypes",
            "DescribeRegions",
            "DescribeRegions",
            "DescribeRegions",
            "DescribeRegions",
            "DescribeRegions",
        ]
    );
    assert_eq!(reqs[1].fault, Some(fault_proxy::Fault::Throttle));
    assert_eq!(reqs[1].status, Some(503));
    assert_eq!(reqs[1].param("InstanceType.1"), Some("g5.xlarge"));
    assert_eq!(reqs[1].method, "POST");
    assert_eq!(reqs[1].path, "/");
    assert_eq!(reqs[0].fault, None);
    assert_eq!(reqs[0].status, Some(200));
    assert_eq!(reqs[5].status, None);
    assert!(reqs.windows(2).all(|w| w[0].time <= w[1].time));

    // Moto down: 502 from the proxy.
    drop(moto);
    let r = http_request("POST", &proxy.url(), &ec2_headers(), DESCRIBE_REGIONS)
        .await
        .unwrap();
    assert_eq!(r.status, 502, "{}", r.body);
}

#[test]
fn form_parsing() {
    assert_eq!(
        fault_proxy::parse_form("Action=Describe%20X&Filter.1.Name=a+b&empty=&bad=%zz"),
        [
            ("Action".to_string(), "Describe X".to_string()),
            ("Filter.1.Name".to_string(), "a b".to_string()),
            ("empty".to_string(), String::new()),
            ("bad".to_string(), "%zz".to_string()),
        ]
    );
}
