//! Kubernetes resource quantities (`500m`, `1.5`, `4Gi`, `1e3`, `16G`), parsed exactly.
//!
//! A quantity is kept as an exact rational `mantissa × 10^exp10 × 2^exp2` with a
//! signed 128-bit mantissa, so `0.1`, `100m` and `1Gi` convert without rounding error
//! and conversions round up the way the scheduler does (`MilliValue`, `Value`).

/// Why a quantity string is not a valid Kubernetes quantity, or is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {input:?}: {reason}")]
pub struct QuantityError {
    pub input: String,
    pub reason: String,
}

/// An exact quantity value: `mantissa × 10^exp10 × 2^exp2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exp10: i32,
    exp2: u32,
}

/// Largest value any conversion returns: 2^62, far above any real node or pod.
const LIMIT: i128 = 1 << 62;

fn err(input: &str, reason: impl Into<String>) -> QuantityError {
    QuantityError {
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// Parses a quantity in the Kubernetes grammar:
/// `<sign><digits>[.<digits>]<suffix>` with suffix one of the binary SI
/// (`Ki Mi Gi Ti Pi Ei`), decimal SI (`n u m "" k M G T P E`) or a decimal exponent
/// (`e3`, `E-2`).
pub fn parse(input: &str) -> Result<Quantity, QuantityError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(err(input, "empty"));
    }
    let (neg, rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (num, suffix) = rest.split_at(num_end);
    if num.is_empty() || num == "." {
        return Err(err(input, "no number"));
    }
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if frac_part.contains('.') {
        return Err(err(input, "more than one decimal point"));
    }
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return Err(err(input, "too many digits"));
    }
    let mut mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| err(input, "bad digits"))?
    };
    let frac_len = i32::try_from(frac_part.len()).map_err(|_| err(input, "too long"))?;
    let mut exp10: i32 = -frac_len;
    let mut exp2: u32 = 0;
    match suffix {
        "" => {}
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        _ => {
            let exp = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .ok_or_else(|| err(input, format!("unknown suffix {suffix:?}")))?;
            let e: i32 = exp
                .parse()
                .map_err(|_| err(input, format!("unknown suffix {suffix:?}")))?;
            if !(-40..=40).contains(&e) {
                return Err(err(input, "exponent out of range"));
            }
            exp10 += e;
        }
    }
    if neg {
        mantissa = -mantissa;
    }
    Ok(Quantity {
        mantissa,
        exp10,
        exp2,
    })
}

impl Quantity {
    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// The value times `10^scale`, rounded up (towards +infinity), or `None` if it
    /// exceeds 2^62 in magnitude. Any `scale` is fine: one that takes the exponent out
    /// of `i32` is `None`, and one that makes the value a fraction of a unit rounds it.
    pub fn scaled_ceil(&self, scale: i32) -> Option<i128> {
        if self.mantissa == 0 {
            return Some(0);
        }
        let mut num: i128 = self.mantissa;
        for _ in 0..self.exp2 {
            num = num.checked_mul(2)?;
        }
        let e10 = self.exp10.checked_add(scale)?;
        if e10 >= 0 {
            for _ in 0..e10 {
                num = num.checked_mul(10)?;
                if num.abs() > LIMIT << 64 {
                    return None;
                }
            }
            return (num.abs() <= LIMIT).then_some(num);
        }
        let mut den: i128 = 1;
        for _ in 0..e10.unsigned_abs() {
            match den.checked_mul(10) {
                Some(d) => den = d,
                // 10^39 and up is more than any i128: the value is within (−1, 1), and
                // not zero, so it rounds up to 1 or to 0.
                None => return Some(i128::from(num > 0)),
            }
        }
        let q = num.div_euclid(den) + i128::from(num.rem_euclid(den) != 0);
        (q.abs() <= LIMIT).then_some(q)
    }

    /// Value in thousandths, rounded up (Kubernetes `MilliValue` for CPU).
    pub fn milli_ceil(&self) -> Option<i128> {
        self.scaled_ceil(3)
    }

    /// Value in whole units, rounded up (Kubernetes `Value` for bytes and counts).
    pub fn units_ceil(&self) -> Option<i128> {
        self.scaled_ceil(0)
    }

    /// True when the value is a whole number.
    pub fn is_integer(&self) -> bool {
        self.scaled_ceil(0)
            .zip(self.floor_units())
            .is_some_and(|(c, f)| c == f)
    }

    fn floor_units(&self) -> Option<i128> {
        let neg = Quantity {
            mantissa: -self.mantissa,
            ..*self
        };
        neg.scaled_ceil(0).map(|v| -v)
    }
}

/// A non-negative CPU quantity in millicores (rounded up like the scheduler).
pub fn cpu_milli(s: &str) -> Result<u64, QuantityError> {
    non_negative(s, parse(s)?.milli_ceil())
}

/// A non-negative memory (or any byte) quantity in bytes, rounded up.
pub fn bytes(s: &str) -> Result<u64, QuantityError> {
    non_negative(s, parse(s)?.units_ceil())
}

/// A non-negative whole count (`nvidia.com/gpu`, `pods`); fractions are an error.
pub fn count(s: &str) -> Result<u64, QuantityError> {
    let q = parse(s)?;
    if !q.is_integer() {
        // Too large to be held exactly is out of range, not a fraction.
        if q.units_ceil().is_none_or(|v| v > i128::from(u64::MAX)) {
            return Err(err(s, "out of range"));
        }
        return Err(err(s, "must be a whole number"));
    }
    non_negative(s, q.units_ceil())
}

fn non_negative(s: &str, v: Option<i128>) -> Result<u64, QuantityError> {
    let v = v.ok_or_else(|| err(s, "out of range"))?;
    if v < 0 {
        return Err(err(s, "must not be negative"));
    }
    u64::try_from(v).map_err(|_| err(s, "out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display() {
        let e = parse("4Xi").unwrap_err();
        assert_eq!(e.input, "4Xi");
        assert_eq!(
            e.to_string(),
            format!("invalid quantity \"4Xi\": {}", e.reason)
        );
        let e = err("", "empty");
        assert_eq!(e.to_string(), "invalid quantity \"\": empty");
        assert!(std::error::Error::source(&e).is_none());
    }

    #[test]
    fn cpu_forms() {
        assert_eq!(cpu_milli("500m").unwrap(), 500);
        assert_eq!(cpu_milli("1").unwrap(), 1000);
        assert_eq!(cpu_milli("1.5").unwrap(), 1500);
        assert_eq!(cpu_milli("0.1").unwrap(), 100);
        assert_eq!(cpu_milli("100u").unwrap(), 1, "rounds up");
        assert_eq!(cpu_milli("2e3").unwrap(), 2_000_000);
        assert_eq!(cpu_milli("+2").unwrap(), 2000);
    }

    /// Any scale: the exponent's overflow is `None`, and a value scaled to a fraction of
    /// a unit rounds up (1 above zero, 0 below), however small.
    #[test]
    fn scales_at_the_ends_of_i32() {
        let one = parse("1").unwrap();
        let minus = parse("-1500m").unwrap();
        let big = parse("1e9").unwrap();
        assert_eq!(one.scaled_ceil(i32::MAX), None);
        assert_eq!(big.scaled_ceil(i32::MAX), None);
        assert_eq!(one.scaled_ceil(i32::MIN), Some(1));
        // −1500m is −1500 × 10^−3: i32::MIN takes the exponent out of i32,
        // i32::MIN + 3 does not.
        assert_eq!(minus.scaled_ceil(i32::MIN), None);
        assert_eq!(minus.scaled_ceil(i32::MIN + 3), Some(0));
        assert_eq!(one.scaled_ceil(-38), Some(1));
        assert_eq!(one.scaled_ceil(-39), Some(1));
        assert_eq!(parse("2Ki").unwrap().scaled_ceil(-3), Some(3));
        assert_eq!(minus.scaled_ceil(-1), Some(0));
        assert_eq!(minus.scaled_ceil(0), Some(-1));
        assert_eq!(minus.scaled_ceil(3), Some(-1500));
        assert_eq!(parse("1e-5").unwrap().scaled_ceil(i32::MAX), None);
        assert_eq!(parse("1e-5").unwrap().scaled_ceil(5), Some(1));
    }

    #[test]
    fn memory_forms() {
        assert_eq!(bytes("4Gi").unwrap(), 4 << 30);
        assert_eq!(bytes("1.5Gi").unwrap(), 3 << 29);
        assert_eq!(bytes("16G").unwrap(), 16_000_000_000);
        assert_eq!(bytes("128974848").unwrap(), 128_974_848);
        assert_eq!(bytes("129e6").unwrap(), 129_000_000);
        assert_eq!(bytes("123Mi").unwrap(), 123 << 20);
        assert_eq!(bytes("1k").unwrap(), 1000);
        assert_eq!(bytes("0").unwrap(), 0);
        assert_eq!(bytes("100m").unwrap(), 1, "0.1 byte rounds up");
    }

    #[test]
    fn rejects() {
        for bad in [
            "", "abc", "1.2.3", "Gi", "4GB", "4gi", "1e99", "--1", ".", "1 Gi",
        ] {
            assert!(bytes(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(bytes("-1Gi").unwrap_err().reason, "must not be negative");
        assert_eq!(bytes("9Ei").unwrap_err().reason, "out of range");
        assert_eq!(count("1.5").unwrap_err().reason, "must be a whole number");
        // YAML reads 99999999999999999999 as the float 1e+20.
        for huge in ["1e+20", "99999999999999999999", "18446744073709551616"] {
            assert_eq!(count(huge).unwrap_err().reason, "out of range", "{huge}");
        }
        assert_eq!(count("4611686018427387904").ok(), Some(1 << 62));
        assert_eq!(count("2").unwrap(), 2);
        assert_eq!(count("2000m").unwrap(), 2);
    }
}
