//! A stub of the AWS Price List Query API (`AWSPriceListService.GetProducts`) on 127.0.0.1.
//!
//! moto does not implement the Pricing API (it answers HTTP 500 for it), so the live-price
//! tests talk to this stub instead. It answers the real wire format (awsJson1.1: `POST /`,
//! `X-Amz-Target: AWSPriceListService.GetProducts`,
//! `Content-Type: application/x-amz-json-1.1`) with recorded-shape responses: every
//! `PriceList` element is a JSON *string* holding a document in the real price-list shape
//! (`product.attributes`, `terms.OnDemand.<sku>.<offer term>.priceDimensions...pricePerUnit.USD`,
//! ...), built from the [`Product`]s the test gives; the values are hand-made (fake SKUs,
//! vCPU/memory/GPU counts from a small table of common GPU types, omitted for others).
//!
//! Behaviour:
//! * `Filters` of type `TERM_MATCH` are applied to every product; a filter's `Field` may be
//!   any attribute of the document (`regionCode`, `instanceType`, `tenancy`,
//!   `operatingSystem`, `capacitystatus`, `preInstalledSw` = `NA`, `marketoption` =
//!   `OnDemand`, `licenseModel`, `location`, `usagetype`, ...), `productFamily`
//!   (`Compute Instance`) or `serviceCode`/`servicecode` (`AmazonEC2`). Field names match
//!   case-insensitively, values exactly. Another field or filter type answers 400
//!   `InvalidParameterException`.
//! * A `ServiceCode` other than `AmazonEC2` gets an empty `PriceList`.
//! * Pagination: at most `min(MaxResults, page_size)` products a page (`MaxResults` defaults to
//!   `page_size`; outside 1..=100 it answers 400); `NextToken` is an opaque string encoding
//!   the next offset, omitted on the last page; a bad token answers 400
//!   `InvalidNextTokenException`.
//! * [`PricingStub::extra_items`] strings are appended, raw, to every first page.
//! * Queued [`Fault`]s are consumed one per request (FIFO) before the normal answer.
//! * Any other `X-Amz-Target` (or method) answers 400 `{"__type":"UnknownOperationException"}`.
//!
//! Every request is recorded ([`PricingStub::requests`]). Dropping the stub aborts the
//! server task and its connections. It needs a tokio runtime (`start` spawns onto the
//! current one), e.g. `#[tokio::test(flavor = "multi_thread")]`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const GET_PRODUCTS: &str = "AWSPriceListService.GetProducts";
const JSON_1_1: &str = "application/x-amz-json-1.1";
/// The OnDemand offer term code and price dimension rate code of the real price list.
const ON_DEMAND_TERM: &str = "JRTCKXETXF";
const HOURLY_RATE: &str = "6YS6EN2CT7";

/// One EC2 OnDemand price-list product.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub instance_type: String,
    /// The region code, e.g. `us-east-1`.
    pub region: String,
    pub usd_per_hour: f64,
    /// `Used`, `UnusedCapacityReservation` or `AllocatedCapacityReservation`.
    pub capacitystatus: String,
    /// `Shared`, `Dedicated` or `Host`.
    pub tenancy: String,
    /// `Linux`, `Windows`, `RHEL`, ...
    pub operating_system: String,
}

impl Product {
    /// A `Used`, `Shared`, `Linux` product.
    pub fn new(instance_type: &str, region: &str, usd: f64) -> Product {
        Product {
            instance_type: instance_type.to_string(),
            region: region.to_string(),
            usd_per_hour: usd,
            capacitystatus: "Used".to_string(),
            tenancy: "Shared".to_string(),
            operating_system: "Linux".to_string(),
        }
    }

    /// A stable fake 16-character SKU derived from the product's identity (type, region,
    /// tenancy, operating system, capacity status).
    pub fn sku(&self) -> String {
        let key = format!(
            "{}|{}|{}|{}|{}",
            self.instance_type,
            self.region,
            self.tenancy,
            self.operating_system,
            self.capacitystatus
        );
        fake_id(&key, 16)
    }

    /// The product's `product.attributes` as the real price list has them.
    pub fn attributes(&self) -> Map<String, Value> {
        let mut a = Map::new();
        let mut put = |k: &str, v: String| {
            a.insert(k.to_string(), Value::String(v));
        };
        put("servicecode", "AmazonEC2".into());
        put("location", location_name(&self.region));
        put("locationType", "AWS Region".into());
        put("instanceType", self.instance_type.clone());
        put(
            "instanceFamily",
            instance_family(&self.instance_type).into(),
        );
        if let Some((vcpu, mem_gib, gpus)) = known_shape(&self.instance_type) {
            put("vcpu", vcpu.to_string());
            put("memory", format!("{mem_gib} GiB"));
            put("gpu", gpus.to_string());
        }
        put("operatingSystem", self.operating_system.clone());
        put("tenancy", self.tenancy.clone());
        put("preInstalledSw", "NA".into());
        put("capacitystatus", self.capacitystatus.clone());
        put(
            "licenseModel",
            if self.operating_system == "Windows" {
                "License Included".into()
            } else {
                "No License required".into()
            },
        );
        put("marketoption", "OnDemand".into());
        put("operation", operation(&self.operating_system).into());
        put("regionCode", self.region.clone());
        put("usagetype", self.usagetype());
        a
    }

    fn usagetype(&self) -> String {
        let kind = match (self.tenancy.as_str(), self.capacitystatus.as_str()) {
            (_, "UnusedCapacityReservation") => "UnusedBox",
            (_, "AllocatedCapacityReservation") => "Reservation",
            ("Dedicated", _) => "DedicatedUsage",
            ("Host", _) => "HostUsage",
            _ => "BoxUsage",
        };
        format!(
            "{}{kind}:{}",
            usage_prefix(&self.region),
            self.instance_type
        )
    }

    /// The full price-list document (what a `PriceList` element's string holds).
    pub fn document(&self) -> Value {
        let sku = self.sku();
        let term = format!("{sku}.{ON_DEMAND_TERM}");
        let rate = format!("{term}.{HOURLY_RATE}");
        let os = &self.operating_system;
        json!({
            "product": {
                "productFamily": "Compute Instance",
                "attributes": Value::Object(self.attributes()),
                "sku": sku,
            },
            "serviceCode": "AmazonEC2",
            "terms": {
                "OnDemand": {
                    term.clone(): {
                        "priceDimensions": {
                            rate.clone(): {
                                "unit": "Hrs",
                                "endRange": "Inf",
                                "description": format!(
                                    "${} per On Demand {os} {} Instance Hour",
                                    self.usd_per_hour, self.instance_type
                                ),
                                "appliesTo": [],
                                "rateCode": rate,
                                "beginRange": "0",
                                "pricePerUnit": { "USD": format!("{:.10}", self.usd_per_hour) },
                            }
                        },
                        "sku": sku,
                        "effectiveDate": "2026-11-01T00:00:00Z",
                        "offerTermCode": ON_DEMAND_TERM,
                        "termAttributes": {},
                    }
                }
            },
            "version": "20261120000000",
            "publicationDate": "2026-11-20T00:00:00Z",
        })
    }

    /// The `PriceList` element: the document as a JSON string.
    pub fn price_list_item(&self) -> String {
        serde_json::to_string(&self.document()).expect("a price-list document serialises")
    }
}

/// A fault answered instead of the normal response (one per request, FIFO).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 400, `x-amzn-ErrorType: ThrottlingException`,
    /// `{"__type":"ThrottlingException","message":"Rate exceeded"}`.
    Throttle,
    /// 500, `{"__type":"InternalErrorException","message":"boom"}`.
    ServerError,
    /// Sleeps, then answers normally.
    Delay(Duration),
    /// Drops the connection without answering.
    Close,
    /// This status and body (`application/x-amz-json-1.1`).
    Raw(u16, String),
}

/// One request the stub saw.
#[derive(Debug, Clone)]
pub struct StubRequest {
    /// When it arrived.
    pub time: Instant,
    pub method: String,
    pub path: String,
    /// The `X-Amz-Target` header.
    pub target: Option<String>,
    pub content_type: Option<String>,
    /// The parsed body (`Value::Null` when it was not JSON).
    pub body: Value,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
    /// The status answered (`None` while in flight or when the connection was dropped).
    pub status: Option<u16>,
}

impl StubRequest {
    /// The `NextToken` the request carried.
    pub fn next_token(&self) -> Option<&str> {
        self.body.get("NextToken").and_then(Value::as_str)
    }

    /// The value of the `TERM_MATCH` filter on `field` (case-insensitive), if any.
    pub fn filter(&self, field: &str) -> Option<&str> {
        self.body
            .get("Filters")?
            .as_array()?
            .iter()
            .find(|f| {
                f.get("Field")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(field))
            })?
            .get("Value")?
            .as_str()
    }
}

#[derive(Default)]
struct State {
    products: Vec<Product>,
    page_size: usize,
    faults: VecDeque<Fault>,
    extra: Vec<String>,
    requests: Vec<StubRequest>,
}

/// The running stub. Dropping it stops the server.
pub struct PricingStub {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl PricingStub {
    /// Binds 127.0.0.1:0 and spawns the server onto the current tokio runtime.
    pub async fn start(products: Vec<Product>, page_size: usize) -> PricingStub {
        assert!(page_size > 0, "PricingStub page_size must be at least 1");
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("PricingStub: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("PricingStub: local_addr");
        let state = Arc::new(Mutex::new(State {
            products,
            page_size,
            ..State::default()
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            // Owned by the accept task: aborting it aborts every connection too.
            let mut conns = JoinSet::new();
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                while conns.try_join_next().is_some() {}
                let state = shared.clone();
                conns.spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        PricingStub { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues a fault for the next request that has none (FIFO, one per request).
    pub fn push_fault(&self, f: Fault) {
        self.lock().faults.push_back(f);
    }

    /// Drops the faults not yet consumed.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<StubRequest> {
        self.lock().requests.clone()
    }

    /// Raw `PriceList` strings appended to every first page (for bad-entry tests).
    pub fn extra_items(&self, raw: Vec<String>) {
        self.lock().extra.extend(raw);
    }

    /// Replaces the products answered from now on.
    pub fn set_products(&self, products: Vec<Product>) {
        self.lock().products = products;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for PricingStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let time = Instant::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let target = header("x-amz-target");
    let content_type = header("content-type");
    let bytes = req.into_body().collect().await?.to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);

    let (index, fault) = {
        let mut s = lock(&state);
        let fault = s.faults.pop_front();
        s.requests.push(StubRequest {
            time,
            method: method.clone(),
            path: path.clone(),
            target: target.clone(),
            content_type: content_type.clone(),
            body: body.clone(),
            fault: fault.clone(),
            status: None,
        });
        (s.requests.len() - 1, fault)
    };

    let response = match fault {
        Some(Fault::Close) => return Err("PricingStub: injected Close fault".into()),
        Some(Fault::Throttle) => aws_error(400, "ThrottlingException", Some("Rate exceeded")),
        Some(Fault::ServerError) => aws_error(500, "InternalErrorException", Some("boom")),
        Some(Fault::Raw(status, text)) => json_response(status, text, None),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            answer(&state, &method, &path, target.as_deref(), &bytes, &body)
        }
        None => answer(&state, &method, &path, target.as_deref(), &bytes, &body),
    };
    lock(&state).requests[index].status = Some(response.status().as_u16());
    Ok(response)
}

/// The normal answer.
fn answer(
    state: &Mutex<State>,
    method: &str,
    path: &str,
    target: Option<&str>,
    raw: &[u8],
    body: &Value,
) -> Response<Full<Bytes>> {
    if method != "POST" || path != "/" || target != Some(GET_PRODUCTS) {
        return json_response(
            400,
            r#"{"__type":"UnknownOperationException"}"#.into(),
            None,
        );
    }
    let Some(body) = body.as_object() else {
        return aws_error(
            400,
            "SerializationException",
            Some(&format!(
                "request body is not a JSON object: {}",
                String::from_utf8_lossy(raw)
            )),
        );
    };
    match get_products(&lock(state), body) {
        Ok(page) => json_response(200, page.to_string(), None),
        Err((kind, message)) => aws_error(400, kind, Some(&message)),
    }
}

type Reject = (&'static str, String);

fn invalid(message: String) -> Reject {
    ("InvalidParameterException", message)
}

fn get_products(s: &State, body: &Map<String, Value>) -> Result<Value, Reject> {
    let service = match body.get("ServiceCode") {
        Some(Value::String(v)) => v.as_str(),
        None => return Err(invalid("ServiceCode is required".into())),
        Some(other) => return Err(invalid(format!("ServiceCode must be a string: {other}"))),
    };
    match body.get("FormatVersion") {
        None => {}
        Some(Value::String(v)) if v == "aws_v1" => {}
        Some(other) => return Err(invalid(format!("unsupported FormatVersion {other}"))),
    }

    let mut filters = Vec::new();
    match body.get("Filters") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for f in list {
                let get = |k: &str| f.get(k).and_then(Value::as_str);
                let (Some(kind), Some(field), Some(value)) =
                    (get("Type"), get("Field"), get("Value"))
                else {
                    return Err(invalid(format!(
                        "a filter needs string Type, Field and Value: {f}"
                    )));
                };
                if kind != "TERM_MATCH" {
                    return Err(invalid(format!(
                        "unsupported filter Type {kind:?} (the stub knows TERM_MATCH)"
                    )));
                }
                if !known_field(field) {
                    return Err(invalid(format!(
                        "Filter field {field:?} is not a valid attribute of AmazonEC2"
                    )));
                }
                filters.push((field.to_string(), value.to_string()));
            }
        }
        Some(other) => return Err(invalid(format!("Filters must be a list: {other}"))),
    }

    let max = match body.get("MaxResults") {
        None | Some(Value::Null) => s.page_size,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=100) => (n as usize).min(s.page_size),
            _ => {
                return Err(invalid(format!(
                    "MaxResults must be between 1 and 100: {v}"
                )));
            }
        },
    };

    let matched: Vec<&Product> = if service == "AmazonEC2" {
        s.products
            .iter()
            .filter(|p| {
                filters
                    .iter()
                    .all(|(f, v)| field_value(p, f).as_deref() == Some(v))
            })
            .collect()
    } else {
        Vec::new()
    };

    let offset = match body.get("NextToken") {
        None | Some(Value::Null) => 0,
        Some(Value::String(token)) => match decode_token(token) {
            Some(o) if o <= matched.len() => o,
            _ => {
                return Err((
                    "InvalidNextTokenException",
                    format!("The NextToken {token:?} is not valid"),
                ));
            }
        },
        Some(other) => return Err(invalid(format!("NextToken must be a string: {other}"))),
    };

    let end = (offset + max).min(matched.len());
    let mut items: Vec<Value> = matched[offset..end]
        .iter()
        .map(|p| Value::String(p.price_list_item()))
        .collect();
    if offset == 0 {
        items.extend(s.extra.iter().cloned().map(Value::String));
    }
    let mut page = json!({ "FormatVersion": "aws_v1", "PriceList": items });
    if end < matched.len() {
        page["NextToken"] = Value::String(encode_token(end));
    }
    Ok(page)
}

/// The attribute keys of the documents, plus `productFamily` and `serviceCode`.
const KNOWN_FIELDS: &[&str] = &[
    "productFamily",
    "serviceCode",
    "servicecode",
    "location",
    "locationType",
    "instanceType",
    "instanceFamily",
    "vcpu",
    "memory",
    "gpu",
    "operatingSystem",
    "tenancy",
    "preInstalledSw",
    "capacitystatus",
    "licenseModel",
    "marketoption",
    "operation",
    "regionCode",
    "usagetype",
];

fn known_field(field: &str) -> bool {
    KNOWN_FIELDS.iter().any(|k| k.eq_ignore_ascii_case(field))
}

fn field_value(p: &Product, field: &str) -> Option<String> {
    if field.eq_ignore_ascii_case("productFamily") {
        return Some("Compute Instance".into());
    }
    if field.eq_ignore_ascii_case("serviceCode") {
        return Some("AmazonEC2".into());
    }
    p.attributes()
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(field))
        .and_then(|(_, v)| v.as_str().map(str::to_string))
}

const TOKEN_KEY: u64 = 0x9E37_79B9_7F4A_7C15;

fn encode_token(offset: usize) -> String {
    format!("AAMA-{:016x}-stubpage", offset as u64 ^ TOKEN_KEY)
}

fn decode_token(token: &str) -> Option<usize> {
    let hex = token.strip_prefix("AAMA-")?.strip_suffix("-stubpage")?;
    if hex.len() != 16 {
        return None;
    }
    let v = u64::from_str_radix(hex, 16).ok()? ^ TOKEN_KEY;
    usize::try_from(v).ok()
}

fn json_response(status: u16, body: String, error_type: Option<&str>) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(status).expect("a valid HTTP status code"))
        .header("content-type", JSON_1_1)
        .header("x-amzn-requestid", request_id());
    if let Some(t) = error_type {
        b = b.header("x-amzn-errortype", t);
    }
    b.body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

fn aws_error(status: u16, kind: &str, message: Option<&str>) -> Response<Full<Bytes>> {
    let mut body = json!({ "__type": kind });
    if let Some(m) = message {
        body["message"] = Value::String(m.to_string());
    }
    json_response(status, body.to_string(), Some(kind))
}

fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(1);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// FNV-1a based, stable, `len` characters of `[A-Z2-7]`.
fn fake_id(key: &str, len: usize) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(len);
    let mut seed: u64 = 0;
    while out.len() < len {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
        for b in key.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for i in 0..12 {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[((h >> (i * 5)) & 31) as usize] as char);
        }
        seed += 1;
    }
    out
}

fn location_name(region: &str) -> String {
    match region {
        "us-east-1" => "US East (N. Virginia)",
        "us-east-2" => "US East (Ohio)",
        "us-west-1" => "US West (N. California)",
        "us-west-2" => "US West (Oregon)",
        "ca-central-1" => "Canada (Central)",
        "eu-west-1" => "EU (Ireland)",
        "eu-west-2" => "EU (London)",
        "eu-central-1" => "EU (Frankfurt)",
        "ap-northeast-1" => "Asia Pacific (Tokyo)",
        "ap-southeast-1" => "Asia Pacific (Singapore)",
        "ap-southeast-2" => "Asia Pacific (Sydney)",
        "ap-south-1" => "Asia Pacific (Mumbai)",
        "sa-east-1" => "South America (Sao Paulo)",
        other => return other.to_string(),
    }
    .to_string()
}

fn usage_prefix(region: &str) -> String {
    match region {
        "us-east-1" => "",
        "us-east-2" => "USE2-",
        "us-west-1" => "USW1-",
        "us-west-2" => "USW2-",
        "ca-central-1" => "CAN1-",
        "eu-west-1" => "EU-",
        "eu-west-2" => "EUW2-",
        "eu-central-1" => "EUC1-",
        "ap-northeast-1" => "APN1-",
        "ap-southeast-1" => "APS1-",
        "ap-southeast-2" => "APS2-",
        "ap-south-1" => "APS3-",
        "sa-east-1" => "SAE1-",
        other => return format!("{}-", other.to_ascii_uppercase()),
    }
    .to_string()
}

fn instance_family(instance_type: &str) -> &'static str {
    let family = instance_type.split('.').next().unwrap_or_default();
    if family.starts_with('g') || family.starts_with('p') {
        "GPU instance"
    } else if family.starts_with("inf") || family.starts_with("trn") {
        "Machine Learning ASIC Instances"
    } else {
        "General purpose"
    }
}

fn operation(os: &str) -> &'static str {
    match os {
        "Windows" => "RunInstances:0002",
        "RHEL" => "RunInstances:0010",
        "SUSE" => "RunInstances:000g",
        _ => "RunInstances",
    }
}

/// (vCPUs, memory GiB, GPUs) of a few common GPU types; others get no such attributes.
fn known_shape(instance_type: &str) -> Option<(u32, u32, u32)> {
    Some(match instance_type {
        "g4dn.xlarge" | "g5.xlarge" | "g6.xlarge" => (4, 16, 1),
        "g4dn.2xlarge" | "g5.2xlarge" | "g6.2xlarge" => (8, 32, 1),
        "g4dn.4xlarge" | "g5.4xlarge" | "g6.4xlarge" => (16, 64, 1),
        "g4dn.8xlarge" | "g5.8xlarge" | "g6.8xlarge" => (32, 128, 1),
        "g4dn.12xlarge" | "g5.12xlarge" | "g6.12xlarge" => (48, 192, 4),
        "g4dn.16xlarge" | "g5.16xlarge" | "g6.16xlarge" => (64, 256, 1),
        "g4dn.metal" | "g5.24xlarge" | "g6.24xlarge" => {
            (96, 384, if instance_type == "g4dn.metal" { 8 } else { 4 })
        }
        "g5.48xlarge" | "g6.48xlarge" => (192, 768, 8),
        "g6e.xlarge" => (4, 32, 1),
        "g6e.2xlarge" => (8, 64, 1),
        "g6e.12xlarge" => (48, 384, 4),
        "g6e.48xlarge" => (192, 1536, 8),
        "p3.2xlarge" => (8, 61, 1),
        "p3.8xlarge" => (32, 244, 4),
        "p3.16xlarge" => (64, 488, 8),
        "p4d.24xlarge" => (96, 1152, 8),
        "p5.48xlarge" => (192, 2048, 8),
        _ => return None,
    })
}
