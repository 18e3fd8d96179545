//! The `gpu-slicer.io/*` annotation keys and the parsers of their values that pods and
//! NodePools share (CONTRACT.md, "Pod annotations" and "NodePool annotations").

use crate::model::quantity::QuantityError;
use crate::model::{Isolation, MIB, Sharing, quantity};

use super::FieldError;
use super::value::show;
/// The annotation keys are contract names, kept in [`crate::model::contract`].
pub use crate::model::contract::{
    ANNOTATION_PREFIX, CONTEXT_MEMORY, EMISSION, EMISSION_MODES, ENABLED, GPU_MEMORY,
    GPU_MEMORY_CONTEXT, GPU_MEMORY_HEADROOM, GPU_SHARE, ISOLATION, MAX_HOURLY_COST, MAX_REPLICAS,
    MPS_EFFICIENCY, NODEPOOL_ANNOTATIONS, POD_ANNOTATIONS, REPACK, REPLICAS, SHARE_MODEL, SHARING,
    SHARING_STRATEGY, TIME_SLICING_EFFICIENCY,
};

/// The field path of an annotation: `metadata.annotations["gpu-slicer.io/gpu-share"]`.
pub fn annotation_field(key: &str) -> String {
    format!("metadata.annotations[{key:?}]")
}

/// Parses `gpu-slicer.io/gpu-share`: a decimal in (0, 1] (`0.25`, `.5`, `1`) or thousandths
/// with the `m` suffix (`250m`), returned in thousandths of a GPU, 1..=1000.
///
/// The resolution is 1/1000: `0.0001` is an error, not rounded; `0.2500` is fine.
/// The error's field is the annotation on a pod's metadata.
pub fn parse_share(s: &str) -> Result<u32, FieldError> {
    Thousandths {
        field: annotation_field(GPU_SHARE),
        max_milli: 1000,
        examples: ("0.25", "250m"),
        max_text: "1 (a whole GPU)",
    }
    .parse(s)
}

/// Parses an efficiency (`gpu-slicer.io/time-slicing-efficiency`, at most 1, and
/// `gpu-slicer.io/mps-efficiency`, at most 2; `model::slice::Efficiency`): a decimal or
/// thousandths, as [`parse_share`], in thousandths; `field` names where it was read.
pub fn parse_efficiency(s: &str, field: String, max_milli: u32) -> Result<u32, FieldError> {
    Thousandths {
        field,
        max_milli: u64::from(max_milli),
        examples: ("0.73", "730m"),
        max_text: if max_milli == 1000 {
            "1 (the GPU alone)"
        } else {
            "2 (twice the GPU alone)"
        },
    }
    .parse(s)
}

/// A decimal in (0, max] or thousandths with the `m` suffix, exact to 1/1000.
struct Thousandths<'a> {
    field: String,
    max_milli: u64,
    /// A decimal and a milli example, for the grammar message.
    examples: (&'a str, &'a str),
    /// The largest value in words, for the message of a value above it.
    max_text: &'a str,
}

impl Thousandths<'_> {
    fn parse(&self, s: &str) -> Result<u32, FieldError> {
        let err = |m: String| FieldError::new(self.field.clone(), m);
        let t = s.trim();
        let grammar = || {
            err(format!(
                "must be a decimal in (0, {}] such as {}, or thousandths such as {}, got {}",
                self.max_milli / 1000,
                self.examples.0,
                self.examples.1,
                show(s)
            ))
        };
        if let Some(rest) = t.strip_prefix('-') {
            if !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b'm')
            {
                return Err(err(format!("must be greater than 0, got {}", show(s))));
            }
            return Err(grammar());
        }
        // Split off the milli suffix; the number is then `int[.frac]` in units of 10^-scale.
        let (num, milli) = match t.strip_suffix('m') {
            Some(n) => (n, true),
            None => (t, false),
        };
        let (int_part, frac_part) = match num.split_once('.') {
            Some((i, f)) => (i, f),
            None => (num, ""),
        };
        let digits_ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (int_part.is_empty() && frac_part.is_empty())
            || !digits_ok(int_part)
            || !digits_ok(frac_part)
        {
            return Err(grammar());
        }
        // Value in thousandths = int * k + first (3 - m) fraction digits, where k is 1000 for
        // a plain decimal and 1 for milli; fraction digits past the resolution must be zero.
        let (scale_digits, unit) = if milli {
            (0usize, 1u64)
        } else {
            (3usize, 1000u64)
        };
        let (kept, rest) = frac_part.split_at(frac_part.len().min(scale_digits));
        if rest.bytes().any(|b| b != b'0') {
            return Err(err(format!(
                "is finer than the resolution of 1/1000 (0.001 or 1m), got {}",
                show(s)
            )));
        }
        let int_trim = int_part.trim_start_matches('0');
        let too_big = || {
            err(format!(
                "must be at most {}, got {}",
                self.max_text,
                show(s)
            ))
        };
        if int_trim.len() > 7 {
            return Err(too_big());
        }
        let int_val: u64 = if int_trim.is_empty() {
            0
        } else {
            int_trim.parse().map_err(|_| grammar())?
        };
        let mut frac_val: u64 = 0;
        for i in 0..scale_digits {
            let d = kept.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
            frac_val = frac_val * 10 + d;
        }
        let thousandths = int_val * unit + frac_val;
        if thousandths == 0 {
            return Err(err(format!("must be greater than 0, got {}", show(s))));
        }
        if thousandths > self.max_milli {
            return Err(too_big());
        }
        // thousandths is in 1..=max_milli (≤ 2000) here, so the conversion cannot fail.
        u32::try_from(thousandths).map_err(|_| too_big())
    }
}

/// Parses `gpu-slicer.io/gpu-memory`: a Kubernetes quantity greater than zero, in MiB
/// rounded up (`4Gi` → 4096, `1G` → 954). The error's field is the annotation on a pod.
pub fn parse_gpu_memory_mib(s: &str) -> Result<u64, FieldError> {
    let field = annotation_field(GPU_MEMORY);
    let q = quantity::parse(s).map_err(|source| {
        QuantityMibError::NotQuantity {
            example: "4Gi or 512Mi",
            shown: show(s),
            source,
        }
        .in_field(field.clone())
    })?;
    if q.is_negative() || q.is_zero() {
        return Err(FieldError::new(
            field,
            format!("must be positive, got {}", show(s)),
        ));
    }
    quantity_mib(&q, s).map_err(|e| e.in_field(field))
}

/// Why a quantity is not a usable amount of MiB: the rest of a sentence naming the field
/// (`<field> must not be negative, got "-1Mi"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QuantityMibError {
    /// Not a Kubernetes quantity; `example` names valid ones.
    #[error("must be a Kubernetes quantity such as {example}, got {shown} ({})", .source.reason)]
    NotQuantity {
        example: &'static str,
        shown: String,
        #[source]
        source: QuantityError,
    },
    #[error("must not be negative, got {shown}")]
    Negative { shown: String },
    #[error("is out of range, got {shown}")]
    OutOfRange { shown: String },
}

impl QuantityMibError {
    /// The error as a [`FieldError`] of `field`: this message, and the [`QuantityError`]
    /// as its cause when the value did not parse.
    pub(crate) fn in_field(self, field: impl Into<String>) -> FieldError {
        let e = FieldError::new(field, self.to_string());
        match self {
            QuantityMibError::NotQuantity { source, .. } => e.caused_by(source),
            QuantityMibError::Negative { .. } | QuantityMibError::OutOfRange { .. } => e,
        }
    }
}

/// A non-negative quantity in MiB, rounded up.
pub(crate) fn quantity_mib_non_negative(s: &str) -> Result<u64, QuantityMibError> {
    let q = quantity::parse(s).map_err(|source| QuantityMibError::NotQuantity {
        example: "512Mi or 1Gi",
        shown: show(s),
        source,
    })?;
    if q.is_negative() {
        return Err(QuantityMibError::Negative { shown: show(s) });
    }
    quantity_mib(&q, s)
}

fn quantity_mib(q: &quantity::Quantity, s: &str) -> Result<u64, QuantityMibError> {
    let bytes = q
        .units_ceil()
        .and_then(|b| u64::try_from(b).ok())
        .ok_or_else(|| QuantityMibError::OutOfRange { shown: show(s) })?;
    Ok(bytes.div_ceil(MIB))
}

/// Parses `gpu-slicer.io/sharing`: `shared` or `exclusive`.
pub fn parse_sharing(s: &str) -> Result<Sharing, FieldError> {
    match s {
        "shared" => Ok(Sharing::Shared),
        "exclusive" => Ok(Sharing::Exclusive),
        _ => Err(FieldError::new(
            annotation_field(SHARING),
            format!("must be \"shared\" or \"exclusive\", got {}", show(s)),
        )),
    }
}

/// `gpu-slicer.io/isolation`: `none` or `memory`.
pub fn parse_isolation(s: &str) -> Result<Isolation, FieldError> {
    match s {
        "none" => Ok(Isolation::None),
        "memory" => Ok(Isolation::Memory),
        _ => Err(FieldError::new(
            annotation_field(ISOLATION),
            format!("must be \"none\" or \"memory\", got {}", show(s)),
        )),
    }
}

/// `gpu-slicer.io/gpu-memory-context`: true when the declared `gpu-memory` leaves the
/// CUDA context out (`excluded`); `included` (the default) is the contract's convention.
pub fn parse_gpu_memory_context(s: &str) -> Result<bool, FieldError> {
    match s {
        "included" => Ok(false),
        "excluded" => Ok(true),
        _ => Err(FieldError::new(
            annotation_field(GPU_MEMORY_CONTEXT),
            format!("must be \"included\" or \"excluded\", got {}", show(s)),
        )),
    }
}

#[cfg(test)]
mod tests;
