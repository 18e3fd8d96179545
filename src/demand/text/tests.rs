use super::*;

fn numbers(text: &str) -> Vec<(usize, usize, String)> {
    split_yaml(text)
        .into_iter()
        .map(|c| (c.number, c.start_line, c.text.to_string()))
        .collect()
}

#[test]
fn splits_documents() {
    assert_eq!(
        numbers("a: 1\n---\nb: 2\n"),
        vec![
            (1, 1, "a: 1\n".to_string()),
            (2, 2, "---\nb: 2\n".to_string())
        ]
    );
    assert_eq!(
        numbers("# c\n%YAML 1.2\n---\na: 1\n---\n---\nb: 2"),
        vec![
            (1, 1, "# c\n%YAML 1.2\n---\na: 1\n".to_string()),
            (2, 5, "---\n".to_string()),
            (3, 6, "---\nb: 2".to_string())
        ]
    );
    assert_eq!(
        numbers("a: 1\n...\n---\nb: 2\n"),
        vec![
            (1, 1, "a: 1\n...\n".to_string()),
            (2, 3, "---\nb: 2\n".to_string())
        ]
    );
    assert!(numbers("").is_empty());
    assert!(numbers("# only a comment\n\n").is_empty());
    assert_eq!(numbers("--- {a: 1}\n").len(), 1);
    // `----` and `---x` are not markers.
    assert_eq!(numbers("a: |\n ---x\n----: 1\n").len(), 1);
}

#[test]
fn parses_yaml_and_json() {
    let docs = parse_documents("---\n---\nkind: Pod\n---\nkind: Job\n").unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].0, 2);
    assert_eq!(docs[1].0, 3);
    let docs = parse_documents("{\"kind\": \"Pod\"}\n{\"kind\": \"Job\"}").unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1].1["kind"], "Job");
    let docs = parse_documents("{kind: Pod}").unwrap();
    assert_eq!(docs[0].1["kind"], "Pod");
    assert!(parse_documents("").unwrap().is_empty());
}

#[test]
fn values_are_handed_on_a_batch_at_a_time_and_the_first_error_wins() {
    // Three batches and a bad last document: the first two batches were handed on
    // (and could be dropped) before the parser reached it, so the values of the
    // whole input never coexist.
    let n = 3 * BATCH_DOCUMENTS;
    let mut text: String = (0..n - 1).map(|i| format!("---\nname: d{i}\n")).collect();
    text.push_str("---\nname: [\n");
    let mut seen = 0usize;
    let e = for_each_document(
        &text,
        usize::MAX,
        "",
        &mut |_, _| {
            seen += 1;
            Ok::<(), TextError>(())
        },
        &|e| e,
    )
    .expect_err("the last document is bad");
    assert_eq!(e.document, Some(n));
    assert_eq!(seen, n - 1);
    // An error of the receiver's in an early document wins over a parse error far
    // later, and nothing after it is handed on.
    let mut last = 0usize;
    let e = for_each_document(
        &text,
        usize::MAX,
        "",
        &mut |number, _| {
            last = number;
            if number == 3 {
                Err(format!("document {number}: refused"))
            } else {
                Ok(())
            }
        },
        &|e| e.message,
    )
    .expect_err("refused");
    assert_eq!((e.as_str(), last), ("document 3: refused", 3));
}

#[test]
fn a_document_has_at_most_one_parser_event_per_four_bytes() {
    // A list of 32,000 one-letter items: 64 KB of text and as many events.
    let items = vec!["a"; 32_000].join(",");
    let e = parse_documents(&format!("a: [{items}]\n")).expect_err("too many events");
    assert!(
        e.message.contains("parser events (one per four bytes"),
        "{}",
        e.message
    );
    // Small documents are never refused for it, however dense.
    let dense = format!("a: [{}]\n", vec!["1"; 400].join(","));
    assert_eq!(parse_documents(&dense).map(|d| d.len()), Ok(1));
    // Real manifests are far below the rule.
    let pods: String = (0..200)
        .map(|i| format!("kind: Pod\nmetadata: {{name: p{i}, labels: {{a: b}}}}\n---\n"))
        .collect();
    assert_eq!(parse_documents(&pods).map(|d| d.len()), Ok(200));
}

#[test]
fn a_long_stream_parses_in_order_and_reports_its_first_error() {
    // Enough documents for the parallel path; empty ones keep their numbers.
    let n = 3 * PARALLEL_DOCUMENTS;
    let mut text = String::new();
    for i in 0..n {
        if i % 7 == 3 {
            text.push_str("---\n");
        } else {
            text.push_str(&format!("---\nname: d{i}\n"));
        }
    }
    let docs = parse_documents(&text).unwrap();
    assert_eq!(docs.len(), n - (0..n).filter(|i| i % 7 == 3).count());
    for (number, v) in &docs {
        assert_eq!(v["name"], format!("d{}", number - 1));
    }
    assert!(docs.windows(2).all(|w| w[0].0 < w[1].0));
    // Two bad documents, in different threads' runs: the earlier one is reported,
    // with its line in the whole input.
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let bad = |lines: &mut Vec<String>, doc: usize| {
        let i = lines
            .iter()
            .position(|l| l == &format!("name: d{doc}"))
            .unwrap();
        lines[i] = format!("name: [d{doc}");
        i + 1
    };
    let late = bad(&mut lines, n - 3);
    let early = bad(&mut lines, 9);
    assert!(early < late);
    let e = parse_documents(&(lines.join("\n") + "\n")).unwrap_err();
    assert_eq!(e.document, Some(10));
    assert!(
        e.message
            .starts_with(&format!("invalid YAML at line {early}, column 7:")),
        "{}",
        e.message
    );
}

#[test]
fn a_document_limit_is_checked_before_parsing() {
    let yaml = "kind: A\n---\nkind: B\n---\nkind: C\n";
    assert_eq!(
        parse_documents_at_most(yaml, 3, "--max-documents").map(|d| d.len()),
        Ok(3)
    );
    let e = parse_documents_at_most(yaml, 2, "--max-documents 2").expect_err("3 > 2");
    assert_eq!(
        e.message,
        "the inputs have more documents than --max-documents 2 allows; raise the limit if \
             they are meant"
    );
    let json = "{\"kind\": \"A\"} {\"kind\": \"B\"} {\"kind\": \"C\"}";
    assert!(parse_documents_at_most(json, 2, "x").is_err());
    assert_eq!(
        parse_documents_at_most(json, 3, "x").map(|d| d.len()),
        Ok(3)
    );
}

#[test]
fn duplicate_json_keys_and_yaml_bombs_are_refused_in_words() {
    let dup = r#"{"a": {"nvidia.com/gpu": "1", "nvidia.com/gpu": "8"}}"#;
    let e = parse_documents(dup).expect_err("duplicate key");
    assert_eq!(e.document, Some(1));
    assert!(
        e.message.starts_with("invalid JSON at line 1, column ")
            && e.message.contains("duplicate key \"nvidia.com/gpu\""),
        "{}",
        e.message
    );
    // The same key in two objects is fine, and values keep their types.
    let ok =
        parse_documents(r#"{"a": {"k": 1}, "b": {"k": [true, null, 1.5, "x"]}}"#).expect("valid");
    assert_eq!(ok[0].1["b"]["k"][2], 1.5);
    // An alias bomb: 10^8 nodes through 9 levels of aliases.
    let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
    let mut prev = "a".to_string();
    for i in 1..9 {
        let refs = vec![format!("*{prev}"); 10].join(",");
        bomb.push_str(&format!("b{i}: &b{i} [{refs}]\n"));
        prev = format!("b{i}");
    }
    // (The events budget, one per four bytes, now stops it before the node budget.)
    let e = parse_documents(&bomb).expect_err("budget");
    assert!(
        e.message
            .contains("the document is too large to read: more than 1024 parser events"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("Nodes {"), "{}", e.message);
}

#[test]
fn yaml_errors_name_document_and_line() {
    let e = parse_documents("a: 1\n---\nb: 2\n---\nc: [1, 2\n").unwrap_err();
    assert_eq!(e.document, Some(3));
    assert_eq!(
        e.message,
        "invalid YAML at line 5, column 4: unclosed bracket '['"
    );
    let e = parse_documents("a: 1\na: 2\n").unwrap_err();
    assert_eq!(
        e.message,
        "invalid YAML at line 2, column 1: duplicate mapping key: a"
    );
    // A collection as a key is refused before the document is read, where it is.
    let e = parse_documents("a: 1\n---\nkind: Pod\nmetadata:\n  ? [a, b]\n  : c\n").unwrap_err();
    assert_eq!(e.document, Some(2));
    assert_eq!(
        e.message,
        format!(
            "invalid YAML at line 5, column 5: {}",
            crate::config::value::COMPLEX_KEY
        )
    );
    let e = parse_documents("{\"a\": 1,\n \"b\": [}").unwrap_err();
    assert_eq!(e.document, Some(1));
    assert!(
        e.message.starts_with("invalid JSON at line 2, column"),
        "{}",
        e.message
    );
}
