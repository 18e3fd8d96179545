//! Live AWS data (EC2 instance types, offerings, spot price history, Pricing API
//! on-demand prices) and how it is merged into a catalog.
//!
//! Pure: the I/O lives in `crate::aws`; this module gets plain values and the clock as
//! an argument (`now`, Unix seconds). Each kind of data carries the time it was fetched,
//! so a caller can tell fresh from stale by its TTL; stale data is still used (and
//! flagged) rather than dropped, and a kind that was never fetched falls back to the
//! base catalog (embedded or `--catalog`).
//!
//! ## Merge rules
//!
//! 1. **Which types.** With live instance data, the types are the NVIDIA GPU types EC2
//!    returns whose family is a family of the base catalog: new sizes of known families
//!    are picked up, unknown families (p2, g3, …) are not planned until a catalog row
//!    names the family. Fractional types (g6f, gr6f: a count of 0 and the slice's
//!    memory, or a partition size below 1) become one device of that share. Their shape
//!    (vCPU, memory, GPUs, GPU memory, ENI limits → max pods, architecture) comes from
//!    EC2. Without it, the base types.
//! 2. **Where.** With offerings, a type offered in no availability zone of the region is
//!    dropped.
//! 3. **On-demand price:** the Pricing API's, else the base catalog's; a type with neither
//!    is dropped (it cannot be priced).
//! 4. **Spot price:** the lowest latest spot price over the zones that offer the type,
//!    else the base catalog's, else unknown.
//!
//! Every drop is reported as a note, never silently.
//!
//! `DataKind` has the `as_str` + `Display` shape of `model::CapacityType` (and of the other
//! closed label sets): each is a few lines over its own variants, clearer than a macro.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::karpenter_allocatable_for_arch;
use crate::model::{Catalog, InstanceType, PriceSource};

/// The kinds of live data, each with its own TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataKind {
    /// Pricing API `GetProducts`.
    OnDemandPrices,
    /// EC2 `DescribeSpotPriceHistory`.
    SpotPrices,
    /// EC2 `DescribeInstanceTypes`.
    InstanceTypes,
    /// EC2 `DescribeInstanceTypeOfferings` (availability zones).
    Offerings,
}

impl DataKind {
    pub const ALL: [DataKind; 4] = [
        DataKind::InstanceTypes,
        DataKind::Offerings,
        DataKind::OnDemandPrices,
        DataKind::SpotPrices,
    ];

    /// The metric label and the name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            DataKind::OnDemandPrices => "on-demand-prices",
            DataKind::SpotPrices => "spot-prices",
            DataKind::InstanceTypes => "instance-types",
            DataKind::Offerings => "offerings",
        }
    }
}

impl std::fmt::Display for DataKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long each kind of data counts as fresh, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttls {
    pub on_demand: i64,
    pub spot: i64,
    pub instances: i64,
}

impl Default for Ttls {
    /// On-demand prices 12 h, spot prices 5 min, instance data and offerings 24 h.
    fn default() -> Self {
        Ttls {
            on_demand: 12 * 3600,
            spot: 5 * 60,
            instances: 24 * 3600,
        }
    }
}

impl Ttls {
    pub fn of(&self, kind: DataKind) -> i64 {
        match kind {
            DataKind::OnDemandPrices => self.on_demand,
            DataKind::SpotPrices => self.spot,
            DataKind::InstanceTypes | DataKind::Offerings => self.instances,
        }
    }
}

/// One kind of data and when it was fetched (Unix seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fetched<T> {
    pub fetched_at: i64,
    pub data: T,
}

/// One instance type as `DescribeInstanceTypes` reports it (the fields gpu-slicer uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ec2Type {
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// GPUs of the first (only, on every EC2 GPU type) GPU device entry; 0 without GPUs.
    pub gpu_count: u32,
    /// As EC2 spells it (`T4`, `A10G`, `L40S`).
    pub gpu_name: String,
    /// As EC2 spells it (`NVIDIA`).
    pub gpu_manufacturer: String,
    /// Memory of one GPU, MiB.
    pub gpu_memory_mib: u64,
    /// `GpuInfo.Gpus[0].GpuPartitionSize`: the share of one physical GPU, where EC2 gives
    /// it (below 1 on the fractional g6f/gr6f).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_partition_size: Option<f64>,
    /// ENIs of the default network card (`NetworkCards[DefaultNetworkCardIndex]
    /// .MaximumNetworkInterfaces`, else `NetworkInfo.MaximumNetworkInterfaces`), as
    /// Karpenter counts them.
    pub max_enis: u32,
    /// `NetworkInfo.Ipv4AddressesPerInterface`.
    pub ipv4_per_eni: u32,
    /// `ProcessorInfo.SupportedArchitectures` (`x86_64`, `arm64`, …).
    pub architectures: Vec<String>,
}

impl Ec2Type {
    /// EKS max pods with the VPC CNI and no prefix delegation:
    /// `ENIs × (IPv4 addresses per ENI − 1) + 2` (the formula of `eni-max-pods.txt`).
    pub fn eni_max_pods(&self) -> u32 {
        self.max_enis
            .saturating_mul(self.ipv4_per_eni.saturating_sub(1))
            .saturating_add(2)
    }

    /// Kubernetes architecture (`amd64` or `arm64`), `None` for anything else.
    pub fn kube_arch(&self) -> Option<&'static str> {
        if self.architectures.iter().any(|a| a == "x86_64") {
            Some("amd64")
        } else if self.architectures.iter().any(|a| a == "arm64") {
            Some("arm64")
        } else {
            None
        }
    }

    /// An NVIDIA device of some kind: a whole GPU, or a fractional one, which EC2 reports
    /// with a count of 0 and the slice's memory.
    pub fn has_gpu(&self) -> bool {
        self.gpu_count > 0 || self.gpu_memory_mib > 0
    }

    /// The share of a physical GPU, thousandths, for a fractional type: EC2's partition
    /// size where it gives one, else the base catalog's row, else the slice's memory over
    /// the memory of a whole GPU of the same model in the base catalog (2861 / 22888 MiB
    /// = 1/8 for g6f.large). `Some(1000)` for a whole GPU; `None` when it cannot be told.
    fn fraction_milli(&self, base: &Catalog) -> Option<u32> {
        let partition = self
            .gpu_partition_size
            .filter(|p| p.is_finite() && *p > 0.0 && *p < 1.0);
        if self.gpu_count > 0 && partition.is_none() {
            return Some(1000);
        }
        if let Some(p) = partition {
            // p ∈ (0, 1): the product is in (0, 1000).
            return Some(((p * 1000.0).round() as u32).clamp(1, 999));
        }
        if let Some(b) = base.types.iter().find(|t| t.name == self.name) {
            return Some(b.gpu_fraction_milli);
        }
        let name = label_value(&self.gpu_name);
        let whole = base
            .types
            .iter()
            .filter(|t| t.gpu_name == name && !t.is_fractional())
            .map(|t| t.gpu_memory_mib)
            .max()?;
        let milli = u128::from(self.gpu_memory_mib) * 1000 / u128::from(whole);
        u32::try_from(milli).ok().filter(|m| (1..1000).contains(m))
    }

    fn family(&self) -> &str {
        self.name.split_once('.').map_or(&self.name, |(f, _)| f)
    }
}

/// Everything fetched for one region. Serialisable: the CLI keeps it as its on-disk cache.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveData {
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Fetched<Vec<Ec2Type>>>,
    /// Instance type → availability zones that offer it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offerings: Option<Fetched<BTreeMap<String, BTreeSet<String>>>>,
    /// Instance type → on-demand USD per hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand: Option<Fetched<BTreeMap<String, f64>>>,
    /// Instance type → zone → latest spot USD per hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot: Option<Fetched<BTreeMap<String, BTreeMap<String, f64>>>>,
}

impl LiveData {
    pub fn new(region: &str) -> Self {
        LiveData {
            region: region.to_string(),
            ..LiveData::default()
        }
    }

    /// When a kind was fetched, if ever.
    pub fn fetched_at(&self, kind: DataKind) -> Option<i64> {
        match kind {
            DataKind::InstanceTypes => self.instances.as_ref().map(|f| f.fetched_at),
            DataKind::Offerings => self.offerings.as_ref().map(|f| f.fetched_at),
            DataKind::OnDemandPrices => self.on_demand.as_ref().map(|f| f.fetched_at),
            DataKind::SpotPrices => self.spot.as_ref().map(|f| f.fetched_at),
        }
    }

    /// Whether a kind is missing or older than its TTL at `now`.
    pub fn needs_refresh(&self, kind: DataKind, now: i64, ttls: &Ttls) -> bool {
        self.fetched_at(kind)
            .is_none_or(|at| now.saturating_sub(at) >= ttls.of(kind))
    }

    /// The status of every kind at `now`.
    pub fn status(&self, now: i64, ttls: &Ttls) -> Vec<KindStatus> {
        DataKind::ALL
            .iter()
            .map(|&kind| {
                let at = self.fetched_at(kind);
                KindStatus {
                    kind,
                    fetched_at: at,
                    age_seconds: at.map(|a| now.saturating_sub(a).max(0)),
                    stale: self.needs_refresh(kind, now, ttls) && at.is_some(),
                }
            })
            .collect()
    }
}

/// Freshness of one kind of data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindStatus {
    pub kind: DataKind,
    pub fetched_at: Option<i64>,
    pub age_seconds: Option<i64>,
    /// Fetched, but older than its TTL (still used).
    pub stale: bool,
}

/// Where one price (or shape) of the merged catalog came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "from", rename_all = "camelCase")]
pub enum Origin {
    /// The base catalog (`Catalog::source` says which, with its date).
    Catalog,
    /// AWS, fetched at `fetched_at` (Unix seconds), `age_seconds` old at merge time.
    #[serde(rename_all = "camelCase")]
    Live {
        fetched_at: i64,
        age_seconds: i64,
        stale: bool,
    },
}

/// Origins of one merged instance type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeOrigin {
    pub shape: Origin,
    pub on_demand: Origin,
    /// `None` where no spot price is known.
    pub spot: Option<Origin>,
    /// Zones offering the type, where offerings are known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zones: Option<Vec<String>>,
}

/// A merged catalog, where each value came from, and what was dropped or ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub catalog: Catalog,
    pub origins: BTreeMap<String, TypeOrigin>,
    pub status: Vec<KindStatus>,
    pub notes: Vec<String>,
}

/// The base catalog's entry for an EC2 GPU name, e.g. `A10G` → `a10g`.
fn label_value(ec2_name: &str) -> String {
    ec2_name.trim().to_ascii_lowercase()
}

/// NVIDIA GPUs with Multi-Instance GPU, by Karpenter's `instance-gpu-name` value.
fn mig_capable(gpu_name: &str) -> bool {
    matches!(
        gpu_name,
        "a100" | "a30" | "h100" | "h200" | "b200" | "gh200"
    )
}

fn origin(fetched_at: i64, now: i64, ttl: i64) -> Origin {
    let age = now.saturating_sub(fetched_at).max(0);
    Origin::Live {
        fetched_at,
        age_seconds: age,
        stale: age >= ttl,
    }
}

/// Whether a price read from AWS can be used.
fn usable_price(p: f64) -> bool {
    p.is_finite() && p > 0.0
}

/// Merges live data into `base` (see the module docs for the rules). `now` is Unix
/// seconds. Types keep the base catalog's order, then new types by name.
pub fn merge(base: &Catalog, live: &LiveData, now: i64, ttls: &Ttls) -> Merged {
    let mut notes = Vec::new();
    let region = &live.region;
    let families: BTreeSet<&str> = base.types.iter().map(|t| t.family.as_str()).collect();
    let base_by_name: BTreeMap<&str, &InstanceType> =
        base.types.iter().map(|t| (t.name.as_str(), t)).collect();

    // 1. Shapes.
    let mut candidates: Vec<(InstanceType, Origin)> = Vec::new();
    match &live.instances {
        Some(f) => {
            let shape_origin = origin(f.fetched_at, now, ttls.instances);
            let mut seen = BTreeSet::new();
            let mut fresh: Vec<(InstanceType, Origin)> = Vec::new();
            for e in &f.data {
                if !families.contains(e.family())
                    || !e.has_gpu()
                    || !e.gpu_manufacturer.eq_ignore_ascii_case("nvidia")
                {
                    continue;
                }
                let Some(gpu_fraction_milli) = e.fraction_milli(base) else {
                    notes.push(format!(
                        "{}: a fractional GPU of unknown size (no partition size, and no \
                         whole {} in the catalog to compare its memory with); skipped",
                        e.name, e.gpu_name
                    ));
                    continue;
                };
                let Some(arch) = e.kube_arch() else {
                    notes.push(format!(
                        "{}: architectures {:?} are neither x86_64 nor arm64; skipped",
                        e.name, e.architectures
                    ));
                    continue;
                };
                if e.gpu_memory_mib == 0 || e.vcpus == 0 || e.memory_mib == 0 {
                    notes.push(format!(
                        "{}: DescribeInstanceTypes gave no vCPU, memory or GPU memory; skipped",
                        e.name
                    ));
                    continue;
                }
                let gpu_name = label_value(&e.gpu_name);
                let max_pods = e.eni_max_pods();
                let base_row = base_by_name.get(e.name.as_str());
                let it = InstanceType {
                    name: e.name.clone(),
                    family: e.family().to_string(),
                    vcpus: e.vcpus,
                    memory_mib: e.memory_mib,
                    // A fractional type is one device to the guest, whatever EC2 counts.
                    gpu_count: e.gpu_count.max(1),
                    gpu_fraction_milli,
                    gpu_label_count: e.gpu_count,
                    mig_supported: base_row
                        .map_or_else(|| mig_capable(&gpu_name), |b| b.mig_supported),
                    gpu_name,
                    gpu_manufacturer: "nvidia".to_string(),
                    gpu_memory_mib: e.gpu_memory_mib,
                    max_pods,
                    arch: arch.to_string(),
                    on_demand_price: base_row.map_or(0.0, |b| b.on_demand_price),
                    spot_price: base_row.and_then(|b| b.spot_price),
                    allocatable: karpenter_allocatable_for_arch(
                        arch,
                        e.vcpus,
                        e.memory_mib,
                        max_pods,
                    ),
                };
                if seen.insert(it.name.clone()) {
                    fresh.push((it, shape_origin.clone()));
                }
            }
            let missing: Vec<&str> = base
                .types
                .iter()
                .map(|t| t.name.as_str())
                .filter(|n| !seen.contains(*n))
                .collect();
            if !missing.is_empty() {
                notes.push(format!(
                    "not returned by DescribeInstanceTypes in {region}, so not planned: {}",
                    missing.join(", ")
                ));
            }
            // Base order first, then new types by name.
            let rank: BTreeMap<&str, usize> = base
                .types
                .iter()
                .enumerate()
                .map(|(i, t)| (t.name.as_str(), i))
                .collect();
            fresh.sort_by(|(a, _), (b, _)| {
                let ka = rank.get(a.name.as_str()).copied().unwrap_or(usize::MAX);
                let kb = rank.get(b.name.as_str()).copied().unwrap_or(usize::MAX);
                ka.cmp(&kb).then_with(|| a.name.cmp(&b.name))
            });
            candidates = fresh;
        }
        None => {
            candidates.extend(base.types.iter().map(|t| (t.clone(), Origin::Catalog)));
        }
    }

    // 2. Offerings.
    let zones_of = |name: &str| -> Option<Vec<String>> {
        live.offerings.as_ref().map(|f| {
            f.data
                .get(name)
                .map(|z| z.iter().cloned().collect())
                .unwrap_or_default()
        })
    };
    if live.offerings.is_some() {
        let mut dropped = Vec::new();
        candidates.retain(|(t, _)| {
            let offered = zones_of(&t.name).is_some_and(|z| !z.is_empty());
            if !offered {
                dropped.push(t.name.clone());
            }
            offered
        });
        if !dropped.is_empty() {
            notes.push(format!(
                "not offered in any availability zone of {region}, so not planned: {}",
                dropped.join(", ")
            ));
        }
    }

    // 3–4. Prices.
    let mut types = Vec::with_capacity(candidates.len());
    let mut origins = BTreeMap::new();
    let mut unpriced = Vec::new();
    let mut live_on_demand = 0usize;
    let mut live_spot = 0usize;
    for (mut t, shape) in candidates {
        let in_base = base_by_name.contains_key(t.name.as_str());
        let live_od = live
            .on_demand
            .as_ref()
            .and_then(|f| f.data.get(&t.name).map(|p| (*p, f.fetched_at)))
            .filter(|(p, _)| usable_price(*p));
        let on_demand = match live_od {
            Some((p, at)) => {
                t.on_demand_price = p;
                live_on_demand += 1;
                origin(at, now, ttls.on_demand)
            }
            None if in_base => Origin::Catalog,
            None => {
                unpriced.push(t.name.clone());
                continue;
            }
        };
        let zones = zones_of(&t.name);
        let live_spot_price = live.spot.as_ref().and_then(|f| {
            let by_zone = f.data.get(&t.name)?;
            by_zone
                .iter()
                .filter(|(z, p)| {
                    usable_price(**p) && zones.as_ref().is_none_or(|zs| zs.contains(*z))
                })
                .map(|(_, p)| *p)
                .min_by(f64::total_cmp)
                .map(|p| (p, f.fetched_at))
        });
        let spot = match live_spot_price {
            Some((p, at)) => {
                t.spot_price = Some(p);
                live_spot += 1;
                Some(origin(at, now, ttls.spot))
            }
            None => t.spot_price.map(|_| Origin::Catalog),
        };
        origins.insert(
            t.name.clone(),
            TypeOrigin {
                shape,
                on_demand,
                spot,
                zones,
            },
        );
        types.push(t);
    }
    if !unpriced.is_empty() {
        notes.push(format!(
            "no on-demand price (neither the Pricing API nor the catalog has one), so not planned: {}",
            unpriced.join(", ")
        ));
    }

    let status = live.status(now, ttls);
    let catalog = Catalog {
        source: describe_source(
            base,
            region,
            types.len(),
            live_on_demand,
            live_spot,
            &status,
        ),
        types,
    };
    Merged {
        catalog,
        origins,
        status,
        notes,
    }
}

/// `Catalog::source` of a merged catalog: the plan table prints it as
/// "prices: NAME (observed OBSERVED)".
fn describe_source(
    base: &Catalog,
    region: &str,
    types: usize,
    live_on_demand: usize,
    live_spot: usize,
    status: &[KindStatus],
) -> PriceSource {
    if live_on_demand == 0 && live_spot == 0 {
        return base.source.clone();
    }
    let fetched = |k: DataKind| {
        status
            .iter()
            .find(|s| s.kind == k)
            .and_then(|s| s.fetched_at)
    };
    let live_at = fetched(DataKind::OnDemandPrices)
        .filter(|_| live_on_demand > 0)
        .or(fetched(DataKind::SpotPrices))
        .map(format_unix)
        .unwrap_or_default();
    let mut name = format!(
        "live AWS {region} (on-demand {live_on_demand}/{types} types, spot {live_spot}/{types})"
    );
    let observed = if live_on_demand < types {
        name.push_str(&format!(" + {}", base.source.name));
        format!("live {live_at}, catalog {}", base.source.observed)
    } else {
        live_at
    };
    PriceSource { name, observed }
}

/// The region of the Pricing API endpoint used unless `--pricing-region` says otherwise
/// (the API is served from us-east-1, eu-central-1 and ap-south-1 only; its data covers
/// every region).
pub const DEFAULT_PRICING_REGION: &str = "us-east-1";

/// `2026-11-26T01:50:25Z` for Unix seconds (falls back to the number itself if out of
/// range).
pub fn format_unix(secs: i64) -> String {
    match k8s_openapi::jiff::Timestamp::from_second(secs) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => format!("@{secs}"),
    }
}

/// A Pricing API filter: `(field, value)` pairs sent as `TERM_MATCH`, the ones Karpenter
/// uses for shared-tenancy Linux on-demand instances; `regionCode` is added by the caller.
pub const PRICE_FILTERS: [(&str, &str); 7] = [
    ("serviceCode", "AmazonEC2"),
    ("tenancy", "Shared"),
    ("productFamily", "Compute Instance"),
    ("preInstalledSw", "NA"),
    ("operatingSystem", "Linux"),
    ("capacitystatus", "Used"),
    ("marketoption", "OnDemand"),
];

/// A price-list product attribute that [`PRICE_FILTERS`] (or the region) rules out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attribute {name} is {have:?}, not {want:?}")]
pub struct AttributeMismatch {
    pub name: &'static str,
    pub have: String,
    pub want: String,
}

/// Attribute names of a price-list product that [`PRICE_FILTERS`] constrains, as they
/// appear in `product.attributes` (the filter names, except the service code which is
/// `servicecode` there).
fn attribute_matches(
    attrs: &serde_json::Map<String, Value>,
    region: &str,
) -> Result<(), AttributeMismatch> {
    let mut want: Vec<(&'static str, &str)> = PRICE_FILTERS
        .iter()
        .map(|&(k, v)| (if k == "serviceCode" { "servicecode" } else { k }, v))
        .collect();
    want.push(("regionCode", region));
    for (k, v) in want {
        // An attribute the product does not carry is not held against it (the API
        // filtered on it already); one that is there must match.
        if let Some(have) = attrs.get(k).and_then(Value::as_str)
            && have != v
        {
            return Err(AttributeMismatch {
                name: k,
                have: have.to_string(),
                want: v.to_string(),
            });
        }
    }
    Ok(())
}

/// A `PriceList` entry of `GetProducts` that does not parse: what is missing or wrong,
/// by its path in the document.
#[derive(Debug, thiserror::Error)]
pub enum PriceItemError {
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("missing product.attributes")]
    NoAttributes,
    #[error("missing terms.OnDemand")]
    NoOnDemandTerms,
    #[error("terms.OnDemand.{term}: missing priceDimensions")]
    NoPriceDimensions { term: String },
    #[error("terms.OnDemand.{term}.priceDimensions.{dimension}: missing pricePerUnit.USD")]
    NoUsdPrice { term: String, dimension: String },
    #[error(
        "terms.OnDemand.{term}.priceDimensions.{dimension}.pricePerUnit.USD: {usd:?} is not a number"
    )]
    NotANumber {
        term: String,
        dimension: String,
        usd: String,
        #[source]
        source: std::num::ParseFloatError,
    },
}

/// Parses one `PriceList` entry of `GetProducts` (a JSON document in a string):
/// `Ok(Some((instance type, USD per hour)))`, `Ok(None)` for a product that is not an
/// on-demand shared Linux price in `region` (or priced 0, as unused capacity
/// reservations are), `Err` naming the field for a document that does not parse.
pub fn parse_price_item(text: &str, region: &str) -> Result<Option<(String, f64)>, PriceItemError> {
    let doc: Value = serde_json::from_str(text).map_err(PriceItemError::NotJson)?;
    let attrs = doc
        .pointer("/product/attributes")
        .and_then(Value::as_object)
        .ok_or(PriceItemError::NoAttributes)?;
    let Some(instance_type) = attrs.get("instanceType").and_then(Value::as_str) else {
        return Ok(None);
    };
    if attribute_matches(attrs, region).is_err() {
        return Ok(None);
    }
    let terms = doc
        .pointer("/terms/OnDemand")
        .and_then(Value::as_object)
        .ok_or(PriceItemError::NoOnDemandTerms)?;
    let mut best: Option<f64> = None;
    for (code, term) in terms {
        let dims = term
            .get("priceDimensions")
            .and_then(Value::as_object)
            .ok_or_else(|| PriceItemError::NoPriceDimensions { term: code.clone() })?;
        for (dim, d) in dims {
            let usd = d
                .pointer("/pricePerUnit/USD")
                .and_then(Value::as_str)
                .ok_or_else(|| PriceItemError::NoUsdPrice {
                    term: code.clone(),
                    dimension: dim.clone(),
                })?;
            let p: f64 = usd
                .trim()
                .parse()
                .map_err(|source| PriceItemError::NotANumber {
                    term: code.clone(),
                    dimension: dim.clone(),
                    usd: usd.to_string(),
                    source,
                })?;
            if usable_price(p) {
                best = Some(best.map_or(p, |b: f64| b.max(p)));
            }
        }
    }
    Ok(best.map(|p| (instance_type.to_string(), p)))
}
