//! Small helpers for walking `serde_json::Value`s with field paths and readable messages.

use serde_json::{Map, Value};

use super::FieldError;

/// `parent.key`, or `parent["key"]` when the key is not a plain identifier
/// (annotation and label keys with `/` or `.`).
pub(crate) fn join(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_string(),
        (true, false) => format!("[{key:?}]"),
        (false, true) => format!("{parent}.{key}"),
        (false, false) => format!("{parent}[{key:?}]"),
    }
}

/// `parent[i]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// A string shortened for an error message (long values are cut at 60 characters).
pub(crate) fn show(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut:?}…")
    }
}

/// What a value is, for "got …" in messages: `the string "10"`, `the number 2.5`, `a list`.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {}", show(s)),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
    }
}

/// The value as a mapping, or an error naming the field.
pub(crate) fn as_map<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, FieldError> {
    v.as_object()
        .ok_or_else(|| FieldError::new(field, format!("must be a mapping, got {}", describe(v))))
}

/// An optional mapping: absent and `null` are `None`.
pub(crate) fn opt_map<'a>(
    parent: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<&'a Map<String, Value>>, FieldError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_map(v, field).map(Some),
    }
}

/// An optional list: absent and `null` are `None`.
pub(crate) fn opt_list<'a>(
    parent: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<&'a Vec<Value>>, FieldError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(v) => Err(FieldError::new(
            field,
            format!("must be a list, got {}", describe(v)),
        )),
    }
}

/// An optional list read as a slice: absent and `null` are empty.
pub(crate) fn list<'a>(
    parent: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<&'a [Value], FieldError> {
    Ok(opt_list(parent, key, field)?.map_or(&[][..], Vec::as_slice))
}

/// An optional string: absent and `null` are `None`.
pub(crate) fn opt_str<'a>(
    parent: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<&'a str>, FieldError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(FieldError::new(
            field,
            format!("must be a string, got {}", describe(v)),
        )),
    }
}

/// A required, non-empty string.
pub(crate) fn req_str<'a>(
    parent: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<&'a str, FieldError> {
    match opt_str(parent, key, field)? {
        None => Err(FieldError::new(field, "is required")),
        Some("") => Err(FieldError::new(field, "must not be empty")),
        Some(s) => Ok(s),
    }
}

/// A `map[string]string` (labels, annotations): every value must be a string, as the
/// Kubernetes API requires (an unquoted YAML number is rejected there too).
pub(crate) fn string_map(
    parent: &Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Vec<(String, String)>, FieldError> {
    let Some(m) = opt_map(parent, key, field)? else {
        return Ok(Vec::new());
    };
    m.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            other => Err(FieldError::new(
                join(field, k),
                format!(
                    "must be a string, got {} (quote the value in YAML)",
                    describe(other)
                ),
            )),
        })
        .collect()
}

/// Levenshtein distance, for "did you mean" suggestions on short keys.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            let del = prev[j + 1] + 1;
            let ins = cur[j] + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known key closest to `key` (same letters ignoring case and `-`/`_`, or at most two
/// edits away), if any.
pub(crate) fn suggest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let nk = norm(key);
    if let Some(k) = known.iter().find(|k| norm(k) == nk) {
        return Some(k);
    }
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// A non-negative decimal integer written with ASCII digits only (no sign, no spaces).
pub(crate) fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parser events a YAML document may produce, at least: a small document is never
/// refused (a Pod manifest is a few hundred events).
const MIN_YAML_EVENTS: usize = 1_024;

/// Bytes of a YAML document per parser event it may produce (see [`yaml_options`]; the
/// loader's budget message, `demand::text::budget_message`, says "four").
const EVENT_BYTES: usize = 4;

/// The longest simple key read, in characters (see [`yaml_options`]).
const MAX_SIMPLE_KEY: usize = 512;

/// The parser's options for one YAML document of `len` bytes: no snippets in errors, and
/// at most one parser event per `EVENT_BYTES` bytes of the document (at least
/// `MIN_YAML_EVENTS`). The parser keeps ~200 bytes for each event it must buffer (every
/// event of a complex `? ` key, which no Kubernetes object has), so this holds its memory
/// to ~50× the document; without it `? [a,a,…]` cost 324×, 104× at one event per two
/// bytes, and 52–65× at one per four (fuzz/regressions/README.md, F2). Real manifests
/// have one event per 11 bytes or more (the densest document of 4 KB or more among the
/// repository's examples, fixtures, chart values and Karpenter CRDs: 10.9). A simple key
/// may be at most 512 characters long (YAML allows 1,024; a Kubernetes label or
/// annotation key is at most 317): the scanner queues ~300 bytes a character of
/// lookahead while a key may be pending, which took ~310 KB on 1 KB of `{a: [,,,…` (F2).
pub(crate) fn yaml_options(len: usize) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = event_budget(len);
    budget.simple_key_max_lookahead = budget.simple_key_max_lookahead.min(MAX_SIMPLE_KEY);
    serde_saphyr::options! { with_snippet: false, budget: Some(budget) }
}

/// The parser events a YAML document of `len` bytes may produce (see [`yaml_options`]).
fn event_budget(len: usize) -> usize {
    serde_saphyr::Budget::default()
        .max_events
        .min((len / EVENT_BYTES).max(MIN_YAML_EVENTS))
}

/// What is wrong with a document [`complex_key`] finds a key in.
pub(crate) const COMPLEX_KEY: &str = "a mapping key is a sequence or a mapping (or an alias \
     of one); Kubernetes objects have text keys only";

/// Where a YAML document uses a sequence or a mapping as a mapping key, or an alias of
/// one: `(line, column)`, both from 1. Kubernetes objects (JSON) have text keys only,
/// and serde-saphyr keeps every event of such a key to compare it with its siblings
/// (~200 bytes an event: 65× a 16 KB document of `? [a,a,…]`, F2), so these keys are
/// refused before the document is read. `None` also when the parser stops on an error
/// or at the event budget: reading the document then reports that.
///
/// Only documents that can hold such a key are parsed for it (an explicit `?` key, an
/// alias, or a flow collection closed before a `:`), so other documents are parsed once.
pub(crate) fn complex_key(text: &str) -> Option<(usize, usize)> {
    if !may_have_complex_key(text) {
        return None;
    }
    let mut options = granit_parser::Options::default();
    options.simple_key_max_lookahead = MAX_SIMPLE_KEY;
    options.set_emit_comments(false);
    let mut parser = granit_parser::Parser::new_from_str_with_options(text, options);
    // Per open collection: `Some(next is a key)` for a mapping, `None` for a sequence.
    let mut open: Vec<Option<bool>> = Vec::new();
    let mut collection_anchors = std::collections::HashSet::new();
    for _ in 0..event_budget(text.len()) {
        let (event, span) = parser.next_event()?.ok()?;
        if !event.is_node() {
            match event {
                granit_parser::Event::SequenceEnd | granit_parser::Event::MappingEnd => {
                    open.pop();
                }
                granit_parser::Event::DocumentStart(..) => open.clear(),
                granit_parser::Event::StreamEnd => return None,
                _ => {}
            }
            continue;
        }
        let collection = matches!(
            event,
            granit_parser::Event::SequenceStart(..) | granit_parser::Event::MappingStart(..)
        );
        let complex = collection
            || event
                .alias_id()
                .is_some_and(|id| collection_anchors.contains(&id));
        if let Some(Some(key)) = open.last_mut() {
            if *key && complex {
                return Some((span.start.line(), span.start.col() + 1));
            }
            *key = !*key;
        }
        if collection {
            if let Some(id) = event.anchor_id() {
                collection_anchors.insert(id);
            }
            open.push(matches!(event, granit_parser::Event::MappingStart(..)).then_some(true));
        }
    }
    None
}

/// Whether `text` has what a collection or alias key needs: a `?`, a `*`, or a `]` or
/// `}` followed on its line by blanks and a `:`.
fn may_have_complex_key(text: &str) -> bool {
    let b = text.as_bytes();
    if b.contains(&b'?') || b.contains(&b'*') {
        return true;
    }
    b.iter().enumerate().any(|(i, c)| {
        (*c == b']' || *c == b'}')
            && b[i + 1..].iter().find(|x| **x != b' ' && **x != b'\t') == Some(&b':')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collections and aliases of collections as keys are found, with their place;
    /// scalar keys (explicit `?` ones and aliases of scalars too), collections as
    /// values and text that only looks like a key are not.
    #[test]
    fn complex_keys_are_found_and_nothing_else() {
        assert_eq!(complex_key("? [a, b]\n: c\n"), Some((1, 3)));
        assert_eq!(complex_key("x: 1\n[a, b]: c\n"), Some((2, 1)));
        assert_eq!(complex_key("x:\n  {a: 1}: 2\n"), Some((2, 3)));
        assert_eq!(complex_key("{[a]: b}"), Some((1, 2)));
        assert_eq!(complex_key("[{a: 1}: b]"), Some((1, 2)));
        assert_eq!(complex_key("? - a\n  - b\n: c\n"), Some((1, 3)));
        assert_eq!(complex_key("a: &x [1]\n*x : 2\n"), Some((2, 1)));
        // The second document only.
        assert_eq!(complex_key("a: 1\n---\n[b]: 2\n"), Some((3, 1)));
        for fine in [
            "? a\n: b\n",
            "a: &x name\n*x : 2\n",
            "args: [\"--x\", \"y\"]\nenv: {a: b}\n",
            "url: http://x?y=z\ncron: \"*/5 * * * *\"\n",
            "a: \"[b]: c\"\n",
            "a: |\n  [b]: c\n",
            "- [a]\n- {b: c}\n",
            "",
        ] {
            assert_eq!(complex_key(fine), None, "{fine:?}");
        }
        // Broken YAML is left to the reader's own error.
        assert_eq!(complex_key("? [a, b\n"), None);
    }

    #[test]
    fn paths() {
        assert_eq!(join("", "data"), "data");
        assert_eq!(join("data", "any"), "data.any");
        assert_eq!(
            join("metadata.annotations", "gpu-slicer.io/replicas"),
            r#"metadata.annotations["gpu-slicer.io/replicas"]"#
        );
        assert_eq!(index("resources", 2), "resources[2]");
    }

    #[test]
    fn suggestions() {
        let known = ["timeSlicing", "mps"];
        assert_eq!(suggest("timeslicing", &known), Some("timeSlicing"));
        assert_eq!(suggest("time-slicing", &known), Some("timeSlicing"));
        assert_eq!(suggest("timeSlcing", &known), Some("timeSlicing"));
        assert_eq!(suggest("mpss", &known), Some("mps"));
        assert_eq!(suggest("other", &known), None);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn digits() {
        assert_eq!(parse_digits("10"), Some(10));
        assert_eq!(parse_digits("+1"), None);
        assert_eq!(parse_digits(" 1"), None);
        assert_eq!(parse_digits(""), None);
        assert_eq!(parse_digits("9999999999999999999999"), None);
    }

    #[test]
    fn show_cuts_long_values() {
        let long = "x".repeat(100);
        assert!(show(&long).ends_with('…'));
        assert_eq!(show("ab"), "\"ab\"");
    }
}
