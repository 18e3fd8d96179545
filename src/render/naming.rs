//! Object names: stable, valid and short enough for the label values Karpenter copies
//! them into.

use serde_json::Value;

/// A valid object name of at most `max` characters: lowercase, `[a-z0-9-]`, and when
/// shortened, a hash of the full name at the end so distinct names stay distinct.
pub fn fit_name(base: &str, max: usize) -> String {
    let mut s: String = base
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-').to_string();
    if s.len() <= max && !s.is_empty() {
        return s;
    }
    let hash = format!("{:016x}", fnv1a(base.as_bytes()));
    let keep = max.saturating_sub(9);
    let head: String = s.chars().take(keep).collect();
    let head = head.trim_end_matches('-');
    if head.is_empty() {
        hash[..8].to_string()
    } else {
        format!("{head}-{}", &hash[..8])
    }
}

/// FNV-1a, 64 bit: a stable, dependency-free hash for names.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Karpenter puts NodePool and NodeClaim names into a label value: at most 63
/// characters.
pub const NAME_MAX: usize = 63;

/// `Kind name` (`Kind namespace/name`) of a rendered object.
pub fn describe_object(o: &Value) -> String {
    let kind = o.get("kind").and_then(Value::as_str).unwrap_or("object");
    let meta = o.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    match meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}
