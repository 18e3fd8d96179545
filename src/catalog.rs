//! The instance-type catalog: the embedded AWS GPU table, a CSV loader for user-supplied
//! tables in the same columns, and Karpenter's allocatable model.
//!
//! Pure: no I/O, no clock, no environment. Provenance of the embedded data is in
//! `src/catalog/SOURCES.md`.
//!
//! ## CSV format
//!
//! A header row names the columns; columns are found by name (any order, extra columns
//! ignored). Required: `instance_type`, `family`, `vcpus`, `memory_gib`, `gpu_count`,
//! `gpu_model`, `gpu_memory_mib_per_gpu`, `on_demand_usd_per_hour_us_east_1`,
//! `eni_max_pods`, `mig_supported`. Optional: `spot_usd_per_hour` (empty cell = unknown),
//! `arch` (default `amd64`), `gpu_fraction` (the share of one physical GPU the type
//! gets, in (0, 1] with at most three decimals; default `1`; below 1 only with one GPU)
//! and `gpu_label_count` (Karpenter's `instance-gpu-count` label, at most `gpu_count`;
//! default `gpu_count`; 0 for AWS's fractional g6f/gr6f). Cells are plain (no quoting);
//! surrounding whitespace is trimmed; blank lines are skipped. Allocatable is always computed with
//! [`karpenter_allocatable`], never read from the file.

pub mod live;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::model::{Catalog, InstanceType, MIB, PriceSource, Resources};

/// The embedded catalog (67 AWS NVIDIA instance types, us-east-1 on-demand prices).
pub const EMBEDDED_CSV: &str = include_str!("catalog/aws-gpu-instances.csv");

/// The name the embedded CSV has in error messages.
pub const EMBEDDED_SOURCE_NAME: &str = "<embedded aws-gpu-instances.csv>";

/// The date the embedded prices were observed.
pub const EMBEDDED_OBSERVED: &str = "2026-07-20";

/// Karpenter's default `memory.available` hard-eviction threshold, MiB.
pub const EVICTION_THRESHOLD_MIB: u64 = 100;

/// Memory Karpenter subtracts on arm64 (Graviton) for CMA reservation before the VM
/// overhead, MiB.
pub const ARM64_CMA_RESERVED_MIB: u64 = 64;

/// Column names of the CSV.
pub mod columns {
    pub const INSTANCE_TYPE: &str = "instance_type";
    pub const FAMILY: &str = "family";
    pub const VCPUS: &str = "vcpus";
    pub const MEMORY_GIB: &str = "memory_gib";
    pub const GPU_COUNT: &str = "gpu_count";
    pub const GPU_MODEL: &str = "gpu_model";
    pub const GPU_MEMORY_MIB: &str = "gpu_memory_mib_per_gpu";
    pub const ON_DEMAND: &str = "on_demand_usd_per_hour_us_east_1";
    pub const MAX_PODS: &str = "eni_max_pods";
    pub const MIG: &str = "mig_supported";
    pub const SPOT: &str = "spot_usd_per_hour";
    pub const ARCH: &str = "arch";
    pub const GPU_FRACTION: &str = "gpu_fraction";
    pub const GPU_LABEL_COUNT: &str = "gpu_label_count";

    /// Columns every CSV must have, in the order they are checked.
    pub const REQUIRED: [&str; 10] = [
        INSTANCE_TYPE,
        FAMILY,
        VCPUS,
        MEMORY_GIB,
        GPU_COUNT,
        GPU_MODEL,
        GPU_MEMORY_MIB,
        ON_DEMAND,
        MAX_PODS,
        MIG,
    ];
}

/// PriceSource of the embedded data.
pub fn embedded_price_source() -> PriceSource {
    PriceSource {
        name: "embedded: Karpenter's on-demand price table (us-east-1)".to_string(),
        observed: EMBEDDED_OBSERVED.to_string(),
    }
}

/// The embedded catalog (67 types, in file order).
pub fn embedded() -> Result<Catalog, CatalogError> {
    parse_csv(EMBEDDED_SOURCE_NAME, EMBEDDED_CSV, embedded_price_source())
}

/// The first instance type with this exact name.
pub fn find<'a>(c: &'a Catalog, name: &str) -> Option<&'a InstanceType> {
    c.types.iter().find(|t| t.name == name)
}

/// A CSV that could not be loaded: where and why. Displays as
/// `{source}:{line}: column `{column}`: {message}` (without the column part when the error
/// is not about one column). A cell that does not parse keeps its [`CellError`] as the
/// [`source`](std::error::Error::source); the message is what it says.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{source}:{line}: {}{message}",
    column.as_ref().map(|c| format!("column `{c}`: ")).unwrap_or_default()
)]
pub struct CatalogError {
    /// The file (or other source) name given to [`parse_csv`].
    pub source: String,
    /// 1-based line number; the header is line 1 unless blank lines precede it.
    pub line: usize,
    /// The header name of the offending column, if the error is about one column.
    pub column: Option<String>,
    pub message: String,
    /// The cell's error, when the error is about a cell of a data row.
    #[source]
    pub cell: Option<Box<CellError>>,
}

/// Why a cell of a data row is not valid. `found` is the cell as shown in messages:
/// escaped, at most 40 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CellError {
    #[error("missing value")]
    Missing,
    #[error("expected `<family>.<size>` such as `g4dn.xlarge`, found `{found}`")]
    InstanceType { found: String },
    #[error("`{found}` does not match instance type `{instance_type}` (expected `{expected}`)")]
    FamilyMismatch {
        found: String,
        instance_type: String,
        expected: String,
    },
    #[error("must not be negative, found `{found}`")]
    Negative { found: String },
    #[error("expected a whole number, found `{found}`")]
    NotWhole { found: String },
    #[error("`{found}` is out of range (at most {max})")]
    AboveMax { found: String, max: u64 },
    #[error("`{found}` is out of range")]
    NotU32 {
        found: String,
        #[source]
        source: std::num::TryFromIntError,
    },
    #[error("must be greater than 0")]
    Zero,
    #[error("must be at least 1 (the catalog lists GPU instance types)")]
    NoGpus,
    #[error("expected a decimal number of GiB such as `16` or `0.5`, found `{found}`")]
    NotGib { found: String },
    #[error("`{found}` GiB is out of range")]
    GibOutOfRange { found: String },
    #[error("`{found}` GiB is not a whole number of MiB")]
    NotWholeMib { found: String },
    #[error("expected a price in USD per hour, found `{found}`")]
    NotPrice {
        found: String,
        #[source]
        source: std::num::ParseFloatError,
    },
    #[error("must be a finite price greater than 0, found `{found}`")]
    NotPositivePrice { found: String },
    #[error(
        "expected a fraction of a GPU in (0, 1] with at most three decimals, such as \
         `0.125`, found `{found}`"
    )]
    NotFraction { found: String },
    #[error("a fraction of a GPU ({found}) needs `gpu_count` 1, found {gpu_count}")]
    FractionOfMany { found: String, gpu_count: u32 },
    #[error("{label_count} is more than `gpu_count` ({gpu_count})")]
    LabelCountAboveGpus { label_count: u32, gpu_count: u32 },
    #[error("expected `true` or `false`, found `{found}`")]
    NotBool { found: String },
    #[error("expected `<manufacturer> <model>` such as `NVIDIA T4`, found `{found}`")]
    NotGpuModel { found: String },
    #[error("`{found}` does not give valid label values (`{manufacturer}`, `{name}`)")]
    GpuLabels {
        found: String,
        manufacturer: String,
        name: String,
    },
    #[error("`{found}` is not a valid label value")]
    NotLabelValue { found: String },
}

/// Per-node overhead of DaemonSets (requests and pod slots), subtracted from allocatable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonSetOverhead {
    pub resources: Resources,
    pub pods: u32,
}

impl DaemonSetOverhead {
    /// What is left on a node of type `it` for workload pods after the DaemonSets:
    /// resources (saturating at zero) and pod slots (saturating at zero).
    pub fn remaining(&self, it: &InstanceType) -> (Resources, u32) {
        (
            it.allocatable.saturating_sub(self.resources),
            it.max_pods.saturating_sub(self.pods),
        )
    }
}

/// Karpenter's kube-reserved CPU in millicores for a node with `vcpus` vCPUs:
/// 6% of the first core, 1% of the second, 0.5% of cores 3–4 and 0.25% of the rest,
/// each band truncated to whole millicores as Karpenter's `int64(r*percentage)` does
/// (band end 2^31 m as in Karpenter).
pub fn kube_reserved_cpu_milli(vcpus: u32) -> u64 {
    let cpu = u64::from(vcpus) * 1000;
    // (start, end, numerator, denominator): percentage = numerator / denominator.
    const BANDS: [(u64, u64, u64, u64); 4] = [
        (0, 1000, 6, 100),
        (1000, 2000, 1, 100),
        (2000, 4000, 5, 1000),
        (4000, 1 << 31, 25, 10_000),
    ];
    BANDS
        .iter()
        .filter(|(start, _, _, _)| cpu >= *start)
        .map(|&(start, end, num, den)| (cpu.min(end) - start) * num / den)
        .sum()
}

/// Karpenter's kube-reserved memory in MiB: `11 × max_pods + 255`.
pub fn kube_reserved_memory_mib(max_pods: u32) -> u64 {
    11 * u64::from(max_pods) + 255
}

/// Karpenter's VM memory overhead in MiB for the default `VM_MEMORY_OVERHEAD_PERCENT`
/// of 7.5%: `ceil(memory_mib × 0.075)`, computed exactly in integers as
/// `(memory_mib × 75 + 999) / 1000`. (Karpenter computes it in float64 as
/// `ceil(bytes × 0.075 / 1024 / 1024)`; the two agree for every size up to 4 TiB.)
pub fn vm_memory_overhead_mib(memory_mib: u64) -> u64 {
    let ceil = (u128::from(memory_mib) * 75).div_ceil(1000);
    // ceil ≤ memory_mib for every memory_mib ≥ 1 (and 0 for 0), so it fits in u64.
    u64::try_from(ceil).unwrap_or(memory_mib)
}

/// Karpenter's AWS allocatable model for a node of this shape, before DaemonSets.
///
/// CPU: `vcpus × 1000 − kube_reserved_cpu_milli(vcpus)` millicores.
/// Memory: `memory_mib − vm_memory_overhead_mib − kube_reserved_memory_mib(max_pods) −
/// EVICTION_THRESHOLD_MIB` MiB, in bytes. Both saturate at zero. (For arm64 Karpenter
/// first subtracts [`ARM64_CMA_RESERVED_MIB`]; [`parse_csv`] does that before calling
/// this function.)
pub fn karpenter_allocatable(vcpus: u32, memory_mib: u64, max_pods: u32) -> Resources {
    let cpu_milli = (u64::from(vcpus) * 1000).saturating_sub(kube_reserved_cpu_milli(vcpus));
    let memory_mib = memory_mib
        .saturating_sub(vm_memory_overhead_mib(memory_mib))
        .saturating_sub(kube_reserved_memory_mib(max_pods))
        .saturating_sub(EVICTION_THRESHOLD_MIB);
    Resources::new(cpu_milli, memory_mib.saturating_mul(MIB))
}

/// Allocatable for an instance of this architecture: like [`karpenter_allocatable`], but
/// with the 64 MiB arm64 CMA reservation Karpenter subtracts first.
pub fn karpenter_allocatable_for_arch(
    arch: &str,
    vcpus: u32,
    memory_mib: u64,
    max_pods: u32,
) -> Resources {
    let memory_mib = if arch == "arm64" {
        memory_mib.saturating_sub(ARM64_CMA_RESERVED_MIB)
    } else {
        memory_mib
    };
    karpenter_allocatable(vcpus, memory_mib, max_pods)
}

/// Parse a CSV in the columns of `aws-gpu-instances.csv`, with the one CSV reader
/// (`table::read`: quoted cells and a BOM as CSV means them). `source` names the file in
/// errors. Rows keep file order.
pub fn parse_csv(source: &str, text: &str, prices: PriceSource) -> Result<Catalog, CatalogError> {
    let err = |line: usize, column: Option<&str>, message: String| CatalogError {
        source: source.to_string(),
        line,
        column: column.map(str::to_string),
        message,
        cell: None,
    };

    let table =
        crate::table::read(text, false).map_err(|t| err(t.line, t.column.as_deref(), t.message))?;
    if table.header.is_empty() {
        return Err(err(
            1,
            None,
            "empty file: expected a header row".to_string(),
        ));
    }
    let header_line = table.header_line;
    let position: HashMap<&str, usize> = table
        .header
        .iter()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i))
        .collect();
    let required = |name: &str| {
        position.get(name).copied().ok_or_else(|| {
            err(
                header_line,
                Some(name),
                "missing required column".to_string(),
            )
        })
    };
    let cols = Columns {
        instance_type: required(columns::INSTANCE_TYPE)?,
        family: required(columns::FAMILY)?,
        vcpus: required(columns::VCPUS)?,
        memory_gib: required(columns::MEMORY_GIB)?,
        gpu_count: required(columns::GPU_COUNT)?,
        gpu_model: required(columns::GPU_MODEL)?,
        gpu_memory_mib: required(columns::GPU_MEMORY_MIB)?,
        on_demand: required(columns::ON_DEMAND)?,
        max_pods: required(columns::MAX_PODS)?,
        mig: required(columns::MIG)?,
        spot: position.get(columns::SPOT).copied(),
        arch: position.get(columns::ARCH).copied(),
        gpu_fraction: position.get(columns::GPU_FRACTION).copied(),
        gpu_label_count: position.get(columns::GPU_LABEL_COUNT).copied(),
    };

    let mut types: Vec<InstanceType> = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for (line, row) in &table.rows {
        let line = *line;
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let it = parse_row(&cols, &cells).map_err(|(col, cell)| CatalogError {
            message: cell.to_string(),
            cell: Some(Box::new(cell)),
            ..err(line, Some(col), String::new())
        })?;
        if let Some(first) = first_line.get(&it.name) {
            return Err(err(
                line,
                Some(columns::INSTANCE_TYPE),
                format!(
                    "duplicate instance type `{}` (first on line {first})",
                    it.name
                ),
            ));
        }
        first_line.insert(it.name.clone(), line);
        types.push(it);
    }
    if types.is_empty() {
        return Err(err(
            header_line,
            None,
            "no data rows after the header".to_string(),
        ));
    }
    Ok(Catalog {
        types,
        source: prices,
    })
}

/// Cell positions of the columns the loader uses.
struct Columns {
    instance_type: usize,
    family: usize,
    vcpus: usize,
    memory_gib: usize,
    gpu_count: usize,
    gpu_model: usize,
    gpu_memory_mib: usize,
    on_demand: usize,
    max_pods: usize,
    mig: usize,
    spot: Option<usize>,
    arch: Option<usize>,
    gpu_fraction: Option<usize>,
    gpu_label_count: Option<usize>,
}

/// A row's error: the column's header name and the cell's error.
type ColumnError = (&'static str, CellError);

fn parse_row(cols: &Columns, cells: &[&str]) -> Result<InstanceType, ColumnError> {
    // The caller checked cells.len() == header length, so every index is in range; the
    // fallback to "" only keeps this function panic-free by construction.
    let cell = |i: usize| cells.get(i).copied().unwrap_or("");
    let at = |col: &'static str| move |e: CellError| (col, e);

    let name = cell(cols.instance_type);
    let (prefix, _) = parse_instance_type(name).map_err(at(columns::INSTANCE_TYPE))?;
    let family = cell(cols.family);
    if family.is_empty() {
        return Err((columns::FAMILY, CellError::Missing));
    }
    if family != prefix {
        return Err((
            columns::FAMILY,
            CellError::FamilyMismatch {
                found: shown(family),
                instance_type: name.to_string(),
                expected: prefix.to_string(),
            },
        ));
    }

    let vcpus = parse_u32(cell(cols.vcpus)).map_err(at(columns::VCPUS))?;
    if vcpus == 0 {
        return Err((columns::VCPUS, CellError::Zero));
    }
    let memory_mib = parse_gib_as_mib(cell(cols.memory_gib)).map_err(at(columns::MEMORY_GIB))?;
    let gpu_count = parse_u32(cell(cols.gpu_count)).map_err(at(columns::GPU_COUNT))?;
    if gpu_count == 0 {
        return Err((columns::GPU_COUNT, CellError::NoGpus));
    }
    let (gpu_manufacturer, gpu_name) =
        parse_gpu_model(cell(cols.gpu_model)).map_err(at(columns::GPU_MODEL))?;
    let gpu_memory_mib =
        parse_uint(cell(cols.gpu_memory_mib), u64::MAX).map_err(at(columns::GPU_MEMORY_MIB))?;
    if gpu_memory_mib == 0 {
        return Err((columns::GPU_MEMORY_MIB, CellError::Zero));
    }
    let on_demand_price = parse_price(cell(cols.on_demand)).map_err(at(columns::ON_DEMAND))?;
    let max_pods = parse_u32(cell(cols.max_pods)).map_err(at(columns::MAX_PODS))?;
    if max_pods == 0 {
        return Err((columns::MAX_PODS, CellError::Zero));
    }
    let mig_supported = parse_bool(cell(cols.mig)).map_err(at(columns::MIG))?;
    let spot_price = match cols.spot.map(cell) {
        None | Some("") => None,
        Some(s) => Some(parse_price(s).map_err(at(columns::SPOT))?),
    };
    let arch = match cols.arch.map(cell) {
        None | Some("") => crate::model::DEFAULT_ARCH.to_string(),
        Some(s) if is_label_value(s) => s.to_string(),
        Some(s) => {
            return Err((columns::ARCH, CellError::NotLabelValue { found: shown(s) }));
        }
    };

    let fraction = cols.gpu_fraction.map_or("", cell);
    let gpu_fraction_milli = if fraction.is_empty() {
        1000
    } else {
        parse_fraction_milli(fraction).map_err(at(columns::GPU_FRACTION))?
    };
    if gpu_fraction_milli < 1000 && gpu_count > 1 {
        return Err((
            columns::GPU_FRACTION,
            CellError::FractionOfMany {
                found: shown(fraction),
                gpu_count,
            },
        ));
    }
    let gpu_label_count = match cols.gpu_label_count.map(cell) {
        None | Some("") => gpu_count,
        Some(s) => parse_u32(s).map_err(at(columns::GPU_LABEL_COUNT))?,
    };
    if gpu_label_count > gpu_count {
        return Err((
            columns::GPU_LABEL_COUNT,
            CellError::LabelCountAboveGpus {
                label_count: gpu_label_count,
                gpu_count,
            },
        ));
    }
    let allocatable = karpenter_allocatable_for_arch(&arch, vcpus, memory_mib, max_pods);
    Ok(InstanceType {
        name: name.to_string(),
        family: family.to_string(),
        vcpus,
        memory_mib,
        gpu_count,
        gpu_name,
        gpu_manufacturer,
        gpu_memory_mib,
        max_pods,
        arch,
        gpu_fraction_milli,
        gpu_label_count,
        mig_supported,
        on_demand_price,
        spot_price,
        allocatable,
    })
}

/// A cell value for a message: escaped, at most 40 characters.
fn shown(s: &str) -> String {
    const MAX: usize = 40;
    let mut out: String = s.chars().take(MAX).collect::<String>();
    if s.chars().count() > MAX {
        out.push('…');
    }
    out.escape_debug().to_string()
}

/// A Kubernetes label value: 1–63 characters of `[A-Za-z0-9._-]`, starting and ending
/// with an alphanumeric.
fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// `family.size`, both parts non-empty `[A-Za-z0-9-]`, one dot, a valid label value.
fn parse_instance_type(s: &str) -> Result<(&str, &str), CellError> {
    if s.is_empty() {
        return Err(CellError::Missing);
    }
    let ok_part =
        |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
    match s.split_once('.') {
        Some((family, size)) if ok_part(family) && ok_part(size) && is_label_value(s) => {
            Ok((family, size))
        }
        _ => Err(CellError::InstanceType { found: shown(s) }),
    }
}

/// A non-negative decimal integer of plain ASCII digits, at most `max`.
fn parse_uint(s: &str, max: u64) -> Result<u64, CellError> {
    if s.is_empty() {
        return Err(CellError::Missing);
    }
    if let Some(rest) = s.strip_prefix('-')
        && !rest.is_empty()
        && rest.bytes().all(|c| c.is_ascii_digit() || c == b'.')
    {
        return Err(CellError::Negative { found: shown(s) });
    }
    if !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(CellError::NotWhole { found: shown(s) });
    }
    let mut v: u64 = 0;
    for c in s.bytes() {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .filter(|v| *v <= max)
            .ok_or_else(|| CellError::AboveMax {
                found: shown(s),
                max,
            })?;
    }
    Ok(v)
}

fn parse_u32(s: &str) -> Result<u32, CellError> {
    let v = parse_uint(s, u64::from(u32::MAX))?;
    u32::try_from(v).map_err(|source| CellError::NotU32 {
        found: shown(s),
        source,
    })
}

/// GiB as a plain decimal (`16`, `0.5`, `22.35`) to an exact whole number of MiB.
fn parse_gib_as_mib(s: &str) -> Result<u64, CellError> {
    if s.is_empty() {
        return Err(CellError::Missing);
    }
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit());
    let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
    if let Some(rest) = int.strip_prefix('-')
        && digits(rest)
        && digits(frac)
    {
        return Err(CellError::Negative { found: shown(s) });
    }
    if !digits(int) || !digits(frac) {
        return Err(CellError::NotGib { found: shown(s) });
    }
    let out_of_range = || CellError::GibOutOfRange { found: shown(s) };
    // Whole part: checked, so any number of (leading-zero) digits is safe.
    let mut whole: u64 = 0;
    for c in int.bytes() {
        whole = whole
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or_else(out_of_range)?;
    }
    // Fraction f / 10^k is a whole number of MiB only if 1024·f / 10^k is an integer.
    // With trailing zeros removed f is not a multiple of 10, which forces k ≤ 10.
    let frac = frac.trim_end_matches('0');
    if frac.len() > 10 {
        return Err(CellError::NotWholeMib { found: shown(s) });
    }
    let f: u64 = frac
        .bytes()
        .fold(0u64, |acc, c| acc * 10 + u64::from(c - b'0')); // ≤ 10 digits: < 10^10
    let den = 10u64.pow(u32::try_from(frac.len()).unwrap_or(10)); // ≤ 10^10
    let num = f * 1024; // < 1.1e13
    if !num.is_multiple_of(den) {
        return Err(CellError::NotWholeMib { found: shown(s) });
    }
    let mib = whole
        .checked_mul(1024)
        .and_then(|w| w.checked_add(num / den))
        .filter(|m| m.checked_mul(MIB).is_some())
        .ok_or_else(out_of_range)?;
    if mib == 0 {
        return Err(CellError::Zero);
    }
    Ok(mib)
}

/// A price in USD per hour: finite and > 0.
fn parse_price(s: &str) -> Result<f64, CellError> {
    if s.is_empty() {
        return Err(CellError::Missing);
    }
    let v: f64 = s.parse().map_err(|source| CellError::NotPrice {
        found: shown(s),
        source,
    })?;
    if !v.is_finite() || v <= 0.0 {
        return Err(CellError::NotPositivePrice { found: shown(s) });
    }
    Ok(v)
}

/// A fraction of a GPU in (0, 1] with at most three decimals (`1`, `0.5`, `0.125`), in
/// thousandths.
fn parse_fraction_milli(s: &str) -> Result<u32, CellError> {
    let bad = || CellError::NotFraction { found: shown(s) };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit());
    let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
    if !digits(int) || !digits(frac) {
        return Err(bad());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 3 || int.len() > 3 {
        return Err(bad());
    }
    let int: u32 = int.parse().map_err(|_| bad())?;
    let frac_milli: u32 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    let milli = int * 1000 + frac_milli;
    if milli == 0 || milli > 1000 {
        return Err(bad());
    }
    Ok(milli)
}

fn parse_bool(s: &str) -> Result<bool, CellError> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        "" => Err(CellError::Missing),
        _ => Err(CellError::NotBool { found: shown(s) }),
    }
}

/// `"NVIDIA T4"` → (`nvidia`, `t4`): the first word is the manufacturer, the rest joined
/// with `-` is the name (Karpenter's `lowerKabobCase` of EC2's GPU name), lower case.
fn parse_gpu_model(s: &str) -> Result<(String, String), CellError> {
    if s.is_empty() {
        return Err(CellError::Missing);
    }
    let mut words = s.split_whitespace();
    let manufacturer = words.next().unwrap_or("").to_ascii_lowercase();
    let mut name = words.collect::<Vec<_>>().join("-").to_ascii_lowercase();
    // The table writes g7e's GPU as `RTX PRO 6000 Server`; EC2 calls it `RTX PRO Server
    // 6000`, so Karpenter's label is `rtx-pro-server-6000` (shared/data/README.md).
    if name == "rtx-pro-6000-server" {
        name = "rtx-pro-server-6000".to_string();
    }
    if name.is_empty() {
        return Err(CellError::NotGpuModel { found: shown(s) });
    }
    if !is_label_value(&manufacturer) || !is_label_value(&name) {
        return Err(CellError::GpuLabels {
            found: shown(s),
            manufacturer: shown(&manufacturer),
            name: shown(&name),
        });
    }
    Ok((manufacturer, name))
}
