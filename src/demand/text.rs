//! Text → JSON values, one per document.
//!
//! YAML is split into documents at `---` / `...` marker lines (column 0, as the YAML
//! spec defines them) and each document is parsed on its own, so an error names its
//! document and the line in the whole input. Text whose first character is `{` or `[`
//! is read as a stream of JSON values first (one value = one document), falling back
//! to YAML (JSON-like flow YAML such as `{a: 1}`). A long stream's documents are parsed
//! on every core (15,000 Pod documents, 3.9 MB: 0.80 → 0.51–0.71 s for a whole `plan
//! --effort fast` on 2 cores), with the same result and the same first error, and a
//! batch at a time: each value is handed to the loader and dropped while the next batch
//! is parsed, so the values of a whole input never coexist.

use serde_json::Value;
use serde_saphyr::MessageFormatter;

/// A parse failure: the document it is in (1-based; `None` when unknown) and a message
/// that names the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextError {
    pub document: Option<usize>,
    pub message: String,
}

/// One YAML document's text and where it is.
struct Chunk<'a> {
    number: usize,
    /// 1-based line of the chunk's first line in the whole input.
    start_line: usize,
    text: &'a str,
}

/// True for a line that is a YAML document marker (`---` or `...` followed by a
/// blank, or alone on its line).
fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// True for a line that carries content: not blank, not a comment, not a directive.
fn is_content(line: &str) -> bool {
    let t = line.trim();
    !(t.is_empty() || t.starts_with('#') || line.starts_with('%'))
}

/// Splits YAML text into documents. A document is numbered when it starts with a `---`
/// marker or has content; the comments and directives before the first `---` belong to
/// that document.
fn split_yaml<'a>(text: &'a str) -> Vec<Chunk<'a>> {
    let mut chunks = Vec::new();
    let mut number = 0;
    let mut start = 0usize; // byte offset of the current chunk
    let mut start_line = 1usize;
    let mut has_content = false;
    let mut explicit = false; // started by (or adopted) a `---` marker
    let mut offset = 0usize;
    let mut line_no = 0usize;
    let mut close = |chunks: &mut Vec<Chunk<'a>>, from: usize, to: usize, line: usize| {
        number += 1;
        chunks.push(Chunk {
            number,
            start_line: line,
            // `from` and `to` are line boundaries of `text`, hence char boundaries.
            text: text.get(from..to).unwrap_or_default(),
        });
    };
    for line in text.split_inclusive('\n') {
        line_no += 1;
        let line_start = offset;
        offset += line.len();
        if is_marker(line, "---") {
            if has_content || explicit {
                close(&mut chunks, start, line_start, start_line);
                start = line_start;
                start_line = line_no;
            }
            // else: only comments/directives so far; they stay with this document.
            explicit = true;
            has_content = is_content(&line[3..]);
        } else if is_marker(line, "...") {
            if has_content || explicit {
                close(&mut chunks, start, offset, start_line);
            }
            start = offset;
            start_line = line_no + 1;
            has_content = false;
            explicit = false;
        } else if is_content(line) {
            has_content = true;
        }
    }
    if has_content || explicit {
        close(&mut chunks, start, text.len(), start_line);
    }
    chunks
}

/// What a breached YAML budget means, in the user's words (the parser's own text is its
/// Rust debug form, `budget breached: Nodes { nodes: 250001 }`).
fn budget_message(b: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    let what = match b {
        B::Nodes { nodes } => format!("more than {} nodes", nodes.saturating_sub(1)),
        B::Events { events } => format!(
            "more than {} parser events (one per four bytes of the document, at least 1024)",
            events.saturating_sub(1)
        ),
        B::Aliases { aliases } => format!("more than {} aliases", aliases.saturating_sub(1)),
        B::Anchors { anchors } => format!("more than {} anchors", anchors.saturating_sub(1)),
        B::Depth { depth } => format!("nesting deeper than {}", depth.saturating_sub(1)),
        B::Documents { documents } => {
            format!("more than {} documents", documents.saturating_sub(1))
        }
        B::ScalarBytes { total_scalar_bytes } => {
            format!("more than {total_scalar_bytes} bytes of scalar text")
        }
        B::MergeKeys { merge_keys } => {
            format!("more than {} merge keys", merge_keys.saturating_sub(1))
        }
        B::AliasAnchorRatio { aliases, anchors } => {
            format!("{aliases} aliases for {anchors} anchors (an alias bomb)")
        }
        _ => "more than the parser's limits allow".to_string(),
    };
    format!(
        "the document is too large to read: {what} (YAML anchors and aliases count each time \
         they are used); split it or remove the aliases"
    )
}

fn yaml_error(e: &serde_saphyr::Error, chunk: &Chunk<'_>) -> TextError {
    // The budget error may come wrapped (the alias it was reached through, a snippet).
    let mut inner = e;
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = inner
    {
        inner = error;
    }
    let mut msg = match inner {
        serde_saphyr::Error::Budget { breach, .. } => budget_message(breach),
        _ => serde_saphyr::DefaultMessageFormatter
            .format_message(e)
            .into_owned(),
    };
    // The parser's hint is for Rust callers, not for users of the CLI.
    if let Some(i) = msg.find(", set DuplicateKeyPolicy") {
        msg.truncate(i);
    }
    match e.location() {
        Some(loc) if loc.line() > 0 => invalid_at(chunk, loc.line(), loc.column(), &msg),
        _ => TextError {
            document: Some(chunk.number),
            message: format!("invalid YAML: {msg}"),
        },
    }
}

/// The error for invalid YAML at `line` (from 1, within the chunk) and `column`: the line
/// counted in the whole input.
fn invalid_at(chunk: &Chunk<'_>, line: u64, column: u64, msg: &str) -> TextError {
    let line = u64::try_from(chunk.start_line)
        .unwrap_or(u64::MAX)
        .saturating_add(line.saturating_sub(1));
    TextError {
        document: Some(chunk.number),
        message: format!("invalid YAML at line {line}, column {column}: {msg}"),
    }
}

/// Documents below this count are parsed on the caller's thread (threads cost more than
/// they save on a handful of manifests).
const PARALLEL_DOCUMENTS: usize = 256;

fn parse_chunk(chunk: &Chunk<'_>) -> Result<Option<(usize, Value)>, TextError> {
    if let Some((line, column)) = crate::config::value::complex_key(chunk.text) {
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        return Err(invalid_at(
            chunk,
            wide(line),
            wide(column),
            crate::config::value::COMPLEX_KEY,
        ));
    }
    let options = crate::config::value::yaml_options(chunk.text.len());
    let v: Value = serde_saphyr::from_str_with_options(chunk.text, options)
        .map_err(|e| yaml_error(&e, chunk))?;
    Ok((!v.is_null()).then_some((chunk.number, v)))
}

/// Documents parsed at a time: their values are handed on and dropped while the next
/// batch is parsed, so memory follows two batches, not the input (50 MB of small Pod
/// documents held ~29× the input as values when every document was parsed first).
const BATCH_DOCUMENTS: usize = 4096;

/// Parses a run of documents, stopping at the first error: the values before it, and
/// the error.
fn parse_run(part: &[Chunk<'_>]) -> Parsed {
    let mut out = Vec::with_capacity(part.len());
    for chunk in part {
        match parse_chunk(chunk) {
            Ok(v) => out.extend(v),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

type Parsed = (Vec<(usize, Value)>, Option<TextError>);

/// Parses `batch` on `threads` scoped threads, a contiguous run each.
fn spawn_parse<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    batch: &'env [Chunk<'env>],
    threads: usize,
) -> Vec<std::thread::ScopedJoinHandle<'scope, Parsed>> {
    let per = batch.len().div_ceil(threads);
    batch
        .chunks(per)
        .map(|part| scope.spawn(move || parse_run(part)))
        .collect()
}

/// Hands every document's value to `f` in order, parsing a batch at a time. A long
/// stream is parsed on every core, the next batch while `f` takes the values of this one:
/// documents are independent, so each thread takes a contiguous run of a batch. A
/// document that does not parse ends the stream after the documents before it were handed
/// on, so the error reported (by `f` or the parser) is the first in the input, with any
/// number of threads.
fn each_yaml<E>(
    chunks: &[Chunk<'_>],
    f: &mut dyn FnMut(usize, Value) -> Result<(), E>,
    text_error: &dyn Fn(TextError) -> E,
) -> Result<(), E> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut hand_on = |parts: Vec<Parsed>| {
        for (values, error) in parts {
            for (number, v) in values {
                f(number, v)?;
            }
            if let Some(e) = error {
                return Err(text_error(e));
            }
        }
        Ok(())
    };
    if threads < 2 || chunks.len() < PARALLEL_DOCUMENTS {
        return hand_on(vec![parse_run(chunks)]);
    }
    std::thread::scope(|scope| {
        let parse = |batch| spawn_parse(scope, batch, threads);
        let mut batches = chunks.chunks(BATCH_DOCUMENTS);
        let mut pending = batches.next().map(parse);
        while let Some(handles) = pending.take() {
            let parts = handles
                .into_iter()
                // A parsing thread only panics on a bug; re-raise it on the caller's
                // thread.
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect();
            pending = batches.next().map(parse);
            // On an error the batch being parsed is joined when the scope ends.
            hand_on(parts)?;
        }
        Ok(())
    })
}

/// A JSON value read strictly: an object with the same key twice is an error (serde_json
/// alone keeps the last one, so `"nvidia.com/gpu": "1"` then `"8"` would silently be 8;
/// the YAML parser already refuses duplicate keys).
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::Deserialize::deserialize(d).map(|Strict(v)| v)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(serde::de::Error::custom(format!("duplicate key {k:?}")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// A JSON parse error in the project's words.
fn json_error(e: &serde_json::Error, document: usize) -> TextError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&suffix).unwrap_or(&full);
    TextError {
        document: Some(document),
        message: format!(
            "invalid JSON at line {}, column {}: {msg}",
            e.line(),
            e.column()
        ),
    }
}

/// Checks a JSON stream without building its values (`IgnoredAny` allocates nothing):
/// `Ok(false)` when it has more than `max` values.
fn check_json(text: &str, max: usize) -> Result<bool, TextError> {
    let values = serde_json::Deserializer::from_str(text).into_iter::<serde::de::IgnoredAny>();
    for (i, v) in values.enumerate() {
        if i >= max {
            return Ok(false);
        }
        v.map_err(|e| json_error(&e, i + 1))?;
    }
    Ok(true)
}

/// Hands every value of a JSON stream that [`check_json`] passed to `f`, one at a time.
fn each_json<E>(
    text: &str,
    f: &mut dyn FnMut(usize, Value) -> Result<(), E>,
    text_error: &dyn Fn(TextError) -> E,
) -> Result<(), E> {
    let values = serde_json::Deserializer::from_str(text).into_iter::<Strict>();
    for (i, v) in values.enumerate() {
        match v {
            Ok(Strict(Value::Null)) => {}
            Ok(Strict(v)) => f(i + 1, v)?,
            Err(e) => return Err(text_error(json_error(&e, i + 1))),
        }
    }
    Ok(())
}

/// Parses the documents of one input. Returns `(document number, value)` for every
/// non-empty document, in order.
#[cfg(test)]
pub(crate) fn parse_documents(text: &str) -> Result<Vec<(usize, Value)>, TextError> {
    parse_documents_at_most(text, usize::MAX, "")
}

/// [`parse_documents`] with a document limit (see [`for_each_document`]).
#[cfg(test)]
pub(crate) fn parse_documents_at_most(
    text: &str,
    max: usize,
    flag: &str,
) -> Result<Vec<(usize, Value)>, TextError> {
    let mut docs = Vec::new();
    for_each_document(
        text,
        max,
        flag,
        &mut |n, v| {
            docs.push((n, v));
            Ok(())
        },
        &|e| e,
    )?;
    Ok(docs)
}

/// Hands `(document number, value)` of every non-empty document of one input to `f`, in
/// order, without holding more than a batch of values (`BATCH_DOCUMENTS`), and refuses an
/// input of more than `max` documents before parsing any (YAML: counted at the `---`
/// markers; JSON: by a check that builds no values). `flag` names the limit in the error
/// (`max` is what is left of it for this input). The first error in the input is
/// returned, whether `f` or the parser finds it; parse errors go through `text_error`.
pub(crate) fn for_each_document<E>(
    text: &str,
    max: usize,
    flag: &str,
    f: &mut dyn FnMut(usize, Value) -> Result<(), E>,
    text_error: &dyn Fn(TextError) -> E,
) -> Result<(), E> {
    let too_many = || TextError {
        document: None,
        message: format!(
            "the inputs have more documents than {flag} allows; raise the limit if they are \
             meant"
        ),
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // The YAML documents, counted before any is parsed.
    let chunks = || {
        let c = split_yaml(text);
        if c.len() > max {
            Err(text_error(too_many()))
        } else {
            Ok(c)
        }
    };
    if text.trim_start().starts_with(['{', '[']) {
        match check_json(text, max) {
            Ok(true) => each_json(text, f, text_error),
            Ok(false) => Err(text_error(too_many())),
            // Flow-style YAML starts with `{` too (`{a: 1}`, or `{"a": 1}` documents
            // between `---` markers); report the JSON error only when the text is not
            // YAML either. Nothing was handed on yet.
            Err(json_err) => {
                let chunks = chunks()?;
                if chunks.iter().all(|c| parse_chunk(c).is_ok()) {
                    each_yaml(&chunks, f, text_error)
                } else {
                    Err(text_error(json_err))
                }
            }
        }
    } else {
        each_yaml(&chunks()?, f, text_error)
    }
}

#[cfg(test)]
mod tests;
