//! The four fetches, each paginated by hand (`Clients::paginate`) so that every page
//! goes through [`Clients::call`] (rate limit, timeout, retries).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{Filter as Ec2Filter, InstanceType as Ec2InstanceType, LocationType};
use aws_sdk_pricing::types::{Filter as PriceFilter, FilterType};

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

use super::{CallError, Clients, HttpResponse, Reason};
use crate::catalog::live::{Ec2Type, PRICE_FILTERS, PriceItemError, parse_price_item};

/// Pages longer than this are a server bug; stop rather than loop forever.
const MAX_PAGES: usize = 500;

fn bad(api: &'static str, message: String) -> CallError {
    CallError {
        api,
        reason: Reason::BadResponse,
        attempts: 1,
        message,
        cause: None,
    }
}

fn next(token: Option<&str>, pages: usize, api: &'static str) -> Result<Option<String>, CallError> {
    match token.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(_) if pages >= MAX_PAGES => {
            Err(bad(api, format!("more than {MAX_PAGES} pages; giving up")))
        }
        Some(t) => Ok(Some(t.to_string())),
    }
}

fn count(v: Option<i32>) -> u32 {
    v.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

/// An `instance-type` filter matching every size of the given families (`g5.*`, …).
fn family_filter(families: &[String]) -> Ec2Filter {
    Ec2Filter::builder()
        .name("instance-type")
        .set_values(Some(families.iter().map(|f| format!("{f}.*")).collect()))
        .build()
}

impl Clients {
    /// Every page of a paginated call: `request(token)` sends one page's request through
    /// [`Clients::call`]; `take(page)` consumes the page and returns its next token.
    async fn paginate<O, E, F, Fut>(
        &self,
        api: &'static str,
        mut request: F,
        mut take: impl FnMut(O) -> Option<String>,
    ) -> Result<(), CallError>
    where
        F: FnMut(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<O, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = self.call(api, || request(token.clone())).await?;
            pages += 1;
            match next(take(page).as_deref(), pages, api)? {
                Some(t) => token = Some(t),
                None => return Ok(()),
            }
        }
    }

    /// `DescribeInstanceTypes` for every size of `families`; types without an NVIDIA GPU
    /// are kept out by the merge, not here.
    pub async fn instance_types(&self, families: &[String]) -> Result<Vec<Ec2Type>, CallError> {
        let mut out = Vec::new();
        self.paginate(
            "ec2:DescribeInstanceTypes",
            |token| {
                self.ec2
                    .describe_instance_types()
                    .filters(family_filter(families))
                    .max_results(100)
                    .set_next_token(token)
                    .send()
            },
            |page| {
                out.extend(page.instance_types().iter().filter_map(ec2_type));
                page.next_token().map(str::to_string)
            },
        )
        .await?;
        Ok(out)
    }

    /// `DescribeInstanceTypeOfferings` by availability zone for the named types (exact
    /// names: wildcards are not documented for this API): type → zones.
    pub async fn offerings(
        &self,
        types: &[String],
    ) -> Result<BTreeMap<String, BTreeSet<String>>, CallError> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for chunk in types.chunks(100) {
            let filter = Ec2Filter::builder()
                .name("instance-type")
                .set_values(Some(chunk.to_vec()))
                .build();
            self.paginate(
                "ec2:DescribeInstanceTypeOfferings",
                |token| {
                    self.ec2
                        .describe_instance_type_offerings()
                        .location_type(LocationType::AvailabilityZone)
                        .filters(filter.clone())
                        .max_results(1000)
                        .set_next_token(token)
                        .send()
                },
                |page| {
                    for o in page.instance_type_offerings() {
                        if let (Some(t), Some(z)) = (o.instance_type(), o.location()) {
                            out.entry(t.as_str().to_string())
                                .or_default()
                                .insert(z.to_string());
                        }
                    }
                    page.next_token().map(str::to_string)
                },
            )
            .await?;
        }
        Ok(out)
    }

    /// `DescribeSpotPriceHistory` from now (the latest price of each type and zone), Linux
    /// only: type → zone → USD per hour. Unparsable rows are skipped and counted in the
    /// returned note.
    pub async fn spot_prices(
        &self,
        types: &[String],
    ) -> Result<(BTreeMap<String, BTreeMap<String, f64>>, Option<String>), CallError> {
        let now = aws_sdk_ec2::primitives::DateTime::from_secs(super::now_unix());
        // type → zone → (timestamp, price): the latest row wins.
        let mut latest: BTreeMap<String, BTreeMap<String, (i64, f64)>> = BTreeMap::new();
        let mut skipped = 0usize;
        for chunk in types.chunks(100) {
            self.paginate(
                "ec2:DescribeSpotPriceHistory",
                |token| {
                    self.ec2
                        .describe_spot_price_history()
                        .set_instance_types(Some(
                            chunk
                                .iter()
                                .map(|t| Ec2InstanceType::from(t.as_str()))
                                .collect(),
                        ))
                        .product_descriptions("Linux/UNIX")
                        .product_descriptions("Linux/UNIX (Amazon VPC)")
                        .start_time(now)
                        .max_results(1000)
                        .set_next_token(token)
                        .send()
                },
                |page| {
                    for row in page.spot_price_history() {
                        let (Some(t), Some(z), Some(p), Some(ts)) = (
                            row.instance_type(),
                            row.availability_zone(),
                            row.spot_price(),
                            row.timestamp(),
                        ) else {
                            skipped += 1;
                            continue;
                        };
                        let Ok(price) = p.trim().parse::<f64>() else {
                            skipped += 1;
                            continue;
                        };
                        let slot = latest
                            .entry(t.as_str().to_string())
                            .or_default()
                            .entry(z.to_string())
                            .or_insert((i64::MIN, price));
                        if ts.secs() >= slot.0 {
                            *slot = (ts.secs(), price);
                        }
                    }
                    page.next_token().map(str::to_string)
                },
            )
            .await?;
        }
        let prices = latest
            .into_iter()
            .map(|(t, zones)| (t, zones.into_iter().map(|(z, (_, p))| (z, p)).collect()))
            .collect();
        let note = (skipped > 0)
            .then(|| format!("{skipped} spot price row(s) without type, zone, price or time"));
        Ok((prices, note))
    }

    /// Pricing `GetProducts` for shared-tenancy Linux on-demand instances in the region:
    /// type → USD per hour. A price-list entry that does not parse is skipped and counted
    /// in the returned note.
    pub async fn on_demand_prices(
        &self,
    ) -> Result<(BTreeMap<String, f64>, Option<String>), CallError> {
        const API: &str = "pricing:GetProducts";
        let mut filters = Vec::new();
        let region = self.region.clone();
        for (field, value) in PRICE_FILTERS
            .iter()
            .copied()
            .chain(std::iter::once(("regionCode", region.as_str())))
        {
            let f = PriceFilter::builder()
                .r#type(FilterType::TermMatch)
                .field(field)
                .value(value)
                .build()
                .map_err(|e| {
                    let message = format!("filter {field}: {e}");
                    CallError {
                        cause: Some(std::sync::Arc::new(e)),
                        ..bad(API, message)
                    }
                })?;
            filters.push(f);
        }
        let mut prices = BTreeMap::new();
        let mut problems: Vec<PriceItemError> = Vec::new();
        self.paginate(
            API,
            |token| {
                self.pricing
                    .get_products()
                    .service_code("AmazonEC2")
                    .format_version("aws_v1")
                    .set_filters(Some(filters.clone()))
                    .max_results(100)
                    .set_next_token(token)
                    .send()
            },
            |page| {
                for item in page.price_list() {
                    match parse_price_item(item, &region) {
                        Ok(Some((t, p))) => {
                            prices.insert(t, p);
                        }
                        Ok(None) => {}
                        Err(e) => problems.push(e),
                    }
                }
                page.next_token().map(str::to_string)
            },
        )
        .await?;
        let note = problems.first().map(|first| {
            format!(
                "{} price-list entr(ies) did not parse, first: {first}",
                problems.len()
            )
        });
        Ok((prices, note))
    }
}

/// The fields gpu-slicer uses; `None` for an entry without a type name.
fn ec2_type(info: &aws_sdk_ec2::types::InstanceTypeInfo) -> Option<Ec2Type> {
    let name = info.instance_type()?.as_str().to_string();
    let gpu = info.gpu_info().and_then(|g| g.gpus().first());
    let net = info.network_info();
    // Karpenter counts the ENIs of the default network card (multi-card types such as
    // p4d and p5 report more in total than one card can attach for pods).
    let enis = net.map_or(0, |n| {
        let default_card = n.default_network_card_index().unwrap_or(0);
        n.network_cards()
            .iter()
            .find(|c| c.network_card_index() == Some(default_card))
            .and_then(|c| c.maximum_network_interfaces())
            .map_or_else(|| count(n.maximum_network_interfaces()), |v| count(Some(v)))
    });
    Some(Ec2Type {
        name,
        vcpus: count(info.v_cpu_info().and_then(|v| v.default_v_cpus())),
        memory_mib: info
            .memory_info()
            .and_then(|m| m.size_in_mib())
            .and_then(|m| u64::try_from(m).ok())
            .unwrap_or(0),
        gpu_count: count(gpu.and_then(|g| g.count())),
        gpu_name: gpu.and_then(|g| g.name()).unwrap_or("").to_string(),
        gpu_manufacturer: gpu.and_then(|g| g.manufacturer()).unwrap_or("").to_string(),
        gpu_memory_mib: u64::from(count(
            gpu.and_then(|g| g.memory_info())
                .and_then(|m| m.size_in_mib()),
        )),
        gpu_partition_size: gpu.and_then(|g| g.gpu_partition_size()),
        max_enis: enis,
        ipv4_per_eni: count(net.and_then(|n| n.ipv4_addresses_per_interface())),
        architectures: info
            .processor_info()
            .map(|p| {
                p.supported_architectures()
                    .iter()
                    .map(|a| a.as_str().to_string())
                    .collect()
            })
            .unwrap_or_default(),
    })
}
