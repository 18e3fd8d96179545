//! Documentation, chart metadata, the image and the IAM policy.

use super::*;

// ---------------------------------------------------------------------------------------
// Documentation, metadata, image, IAM
// ---------------------------------------------------------------------------------------

/// Every value in values.yaml that the schema defines (not the contents of free-form
/// Kubernetes objects such as securityContext) has a comment right above it, and every
/// such value has a description in values.schema.json.
#[test]
fn every_value_is_documented() {
    let values =
        std::fs::read_to_string(helm::chart_dir().join("values.yaml")).expect("values.yaml");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(helm::chart_dir().join("values.schema.json")).expect("schema"),
    )
    .expect("values.schema.json is JSON");
    assert_eq!(
        str_at(&schema, "/$schema"),
        "http://json-schema.org/draft-07/schema#",
        "values.schema.json: JSON Schema draft-07"
    );
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut prev_comment = false;
    let mut undocumented = Vec::new();
    let mut seen = 0;
    for line in values.lines() {
        let t = line.trim_start();
        if t.is_empty() {
            prev_comment = false;
            continue;
        }
        if t.starts_with('#') {
            prev_comment = true;
            continue;
        }
        let indent = line.len() - t.len();
        let key = t
            .split_once(':')
            .map(|(k, _)| k)
            .filter(|k| !k.starts_with('-') && k.chars().all(|c| c.is_ascii_alphanumeric()));
        let Some(key) = key else {
            prev_comment = false;
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_string()));
        // Walk the schema; stop inside free-form objects.
        let mut node = &schema;
        let mut defined = true;
        for (_, k) in &stack {
            match node.pointer(&format!("/properties/{k}")) {
                Some(n) => node = n,
                None => {
                    defined = false;
                    break;
                }
            }
        }
        if defined {
            seen += 1;
            let is_group = node.get("properties").is_some();
            let path: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
            if !is_group && !prev_comment {
                undocumented.push(format!("{} (no comment above it)", path.join(".")));
            }
            if node
                .get("description")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                undocumented.push(format!("{} (no description in the schema)", path.join(".")));
            }
        }
        prev_comment = false;
    }
    assert!(seen > 80, "read only {seen} values from values.yaml");
    assert!(
        undocumented.is_empty(),
        "undocumented values:\n  {}",
        undocumented.join("\n  ")
    );
}

/// The documented values of values.yaml as dotted paths: each key whose line follows a
/// comment block that opens with `# --` (helm-docs' convention; every_value_is_documented
/// checks that every value has one), and the top-level keys.
fn documented_values(values: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut stack: Vec<(usize, String)> = Vec::new();
    // None outside a comment block; else whether the block opened with `# --`.
    let mut block: Option<bool> = None;
    let (mut documented, mut top) = (BTreeSet::new(), BTreeSet::new());
    for line in values.lines() {
        let t = line.trim_start();
        if t.is_empty() {
            block = None;
            continue;
        }
        if t.starts_with('#') {
            block.get_or_insert(t.starts_with("# --"));
            continue;
        }
        let is_doc = block.take() == Some(true);
        let indent = line.len() - t.len();
        let Some(key) = t
            .split_once(':')
            .map(|(k, _)| k)
            .filter(|k| k.chars().next().is_some_and(|c| c.is_ascii_alphabetic()))
            .filter(|k| k.chars().all(|c| c.is_ascii_alphanumeric()))
        else {
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_string()));
        if indent == 0 {
            top.insert(key.to_string());
        }
        if is_doc {
            let path: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
            documented.insert(path.join("."));
        }
    }
    (documented, top)
}

/// The values named in the first column of the tables under `## Values` of the chart's
/// README: the backquoted names outside parentheses, `.x` standing for a sibling of the
/// name before it (`a.b` / `.c` is `a.b` and `a.c`).
fn readme_table_values(readme: &str) -> BTreeSet<String> {
    let start = readme
        .find("\n## Values\n")
        .expect("the chart README has a `## Values` section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let is_name = |t: &str| {
        let t = t.strip_prefix('.').unwrap_or(t);
        t.split('.').all(|p| {
            p.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && p.chars().all(|c| c.is_ascii_alphanumeric())
        })
    };
    let mut names = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with('|')) {
        let cell = row.split('|').nth(1).unwrap_or_default().trim();
        if cell == "value" || cell.starts_with("---") {
            continue;
        }
        // Drop parenthesised remarks (`(empty: ...)`, `(list)`).
        let mut depth = 0usize;
        let outside: String = cell
            .chars()
            .filter(|c| {
                match c {
                    '(' => depth += 1,
                    ')' => depth = depth.saturating_sub(1),
                    _ => return depth == 0,
                }
                false
            })
            .collect();
        let mut last: Option<String> = None;
        for token in outside.split('`').skip(1).step_by(2) {
            if !is_name(token) {
                continue;
            }
            let full = match token.strip_prefix('.') {
                Some(rel) => {
                    let prev = last
                        .as_deref()
                        .unwrap_or_else(|| panic!("`{token}` with no name before it: {row}"));
                    match prev.rsplit_once('.') {
                        Some((parent, _)) => format!("{parent}.{rel}"),
                        None => rel.to_string(),
                    }
                }
                None => token.to_string(),
            };
            names.insert(full.clone());
            last = Some(full);
        }
    }
    names
}

/// The chart README's values tables and values.yaml name the same values.
#[test]
fn chart_readme_values_tables_match_values_yaml() {
    let values =
        std::fs::read_to_string(helm::chart_dir().join("values.yaml")).expect("values.yaml");
    let readme =
        std::fs::read_to_string(helm::chart_dir().join("README.md")).expect("chart README.md");
    let (documented, top) = documented_values(&values);
    let table = readme_table_values(&readme);
    assert!(
        documented.len() > 100 && table.len() > 100,
        "read only {} documented values and {} table entries",
        documented.len(),
        table.len()
    );
    let missing: Vec<&String> = documented.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "values.yaml documents values the chart README's tables do not list: {missing:?}"
    );
    let unknown: Vec<&String> = table.difference(&documented).collect();
    assert!(
        unknown.is_empty(),
        "the chart README's tables list values that values.yaml does not have: {unknown:?}"
    );
    for key in &top {
        assert!(
            table
                .iter()
                .any(|t| t == key || t.starts_with(&format!("{key}."))),
            "top-level value {key} is not in the chart README's tables"
        );
    }
    // The parsers bite: a value added to values.yaml, or a row naming none, is seen.
    let (more, _) = documented_values(&format!("{values}\n# -- New.\nnewValue: 1\n"));
    assert!(more.contains("newValue") && !table.contains("newValue"));
    let extra = readme.replace(
        "| `replicaCount` |",
        "| `replicaCount` / `.typo` / `image.tag` / `.nope` |",
    );
    let extra = readme_table_values(&extra);
    for bad in ["typo", "image.nope"] {
        assert!(extra.contains(bad), "{bad} not read from {extra:?}");
    }
}

/// The chart's README maps every flag of `gpu-slicer run` to its value.
#[test]
fn chart_readme_names_every_flag() {
    let readme =
        std::fs::read_to_string(helm::chart_dir().join("README.md")).expect("chart README.md");
    let missing: Vec<&String> = run_help_flags()
        .keys()
        .filter(|f| !readme.contains(&format!("`--{f}")))
        .collect();
    assert!(
        missing.is_empty(),
        "charts/gpu-slicer/README.md does not name {missing:?}"
    );
}

#[test]
fn chart_metadata() {
    let text = std::fs::read_to_string(helm::chart_dir().join("Chart.yaml")).expect("Chart.yaml");
    let chart: Value = serde_saphyr::from_str(&text).expect("Chart.yaml is YAML");
    assert_eq!(str_at(&chart, "/apiVersion"), "v2");
    assert_eq!(str_at(&chart, "/name"), "gpu-slicer");
    assert_eq!(str_at(&chart, "/version"), "0.1.0");
    assert_eq!(
        str_at(&chart, "/appVersion"),
        env!("CARGO_PKG_VERSION"),
        "appVersion = the crate's version"
    );
    assert_eq!(str_at(&chart, "/kubeVersion"), ">=1.25.0-0");
    // NOTES.txt renders (helm template --show-notes is not offline-stable; lint renders it).
    let notes =
        std::fs::read_to_string(helm::chart_dir().join("templates/NOTES.txt")).expect("NOTES.txt");
    for needle in ["/readyz", "/plan", "port-forward", "dryRun"] {
        assert!(notes.contains(needle), "NOTES.txt should mention {needle}");
    }
}

#[test]
fn dockerfile_builds_what_the_chart_runs() {
    let repo = helm::repo();
    let docker = std::fs::read_to_string(repo.join("Dockerfile")).expect("Dockerfile");
    let cargo = std::fs::read_to_string(repo.join("Cargo.toml")).expect("Cargo.toml");
    for needle in [
        "cargo build --release --locked --bin gpu-slicer",
        "ca-certificates",
        "USER 65532:65532",
        "ENTRYPOINT [\"/gpu-slicer\"]",
        "CMD [\"run\"]",
        // The image's copy is stripped (the release profile keeps line tables for the
        // benches, so stripping there is not an option).
        "ARG STRIP_FLAGS=--strip-all",
        "strip ${STRIP_FLAGS} /out/gpu-slicer",
    ] {
        assert!(docker.contains(needle), "Dockerfile lacks {needle:?}");
    }
    // The Rust image is at least the crate's rust-version.
    let rust_version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("rust-version in Cargo.toml");
    let image_version = docker
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_IMAGE=rust:"))
        .and_then(|v| v.split('-').next())
        .expect("ARG RUST_IMAGE=rust:X.Y-...");
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    assert!(
        parse(image_version) >= parse(&rust_version),
        "rust:{image_version} is older than rust-version {rust_version}"
    );
    // The dependency layer stubs every bench Cargo.toml names (cargo checks their paths).
    let benches: Vec<String> = cargo
        .split("[[bench]]")
        .skip(1)
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.trim().strip_prefix("name = "))
                .map(|n| n.trim_matches('"').to_string())
        })
        .collect();
    assert!(!benches.is_empty());
    let stub_line = docker
        .lines()
        .find(|l| l.contains("for b in "))
        .expect("the bench stub loop");
    for b in &benches {
        assert!(
            stub_line
                .split_whitespace()
                .any(|w| w == b || w == format!("{b};")),
            "Dockerfile's dependency layer does not stub bench {b}: {stub_line}"
        );
    }
    // The image's user is the one the chart runs as.
    let values = std::fs::read_to_string(helm::chart_dir().join("values.yaml")).expect("values");
    assert!(values.contains("runAsUser: 65532"));
    // The build context keeps what the build needs.
    let ignore = std::fs::read_to_string(repo.join(".dockerignore")).expect(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(ignored.contains(&"target/") && ignored.contains(&".git/"));
    for needed in [
        "src",
        "src/",
        "benches",
        "benches/",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        assert!(
            !ignored.contains(&needed),
            ".dockerignore excludes {needed}"
        );
    }
}

#[test]
fn iam_policy_allows_exactly_what_live_prices_call() {
    let path: PathBuf = helm::repo().join("examples/iam/gpu-slicer-policy.json");
    let policy: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("policy"))
        .expect("policy JSON");
    assert_eq!(str_at(&policy, "/Version"), "2012-10-17");
    let mut actions = BTreeSet::new();
    for s in policy["Statement"].as_array().expect("Statement") {
        assert_eq!(str_at(s, "/Effect"), "Allow");
        assert_eq!(
            s["Resource"],
            json!("*"),
            "these actions have no resource-level permissions"
        );
        assert!(s.get("NotAction").is_none() && s.get("NotResource").is_none());
        for a in strings(s.get("Action")) {
            assert!(!a.contains('*'), "wildcard action {a}");
            actions.insert(a);
        }
    }
    let expected: BTreeSet<String> = [
        "ec2:DescribeInstanceTypes",
        "ec2:DescribeInstanceTypeOfferings",
        "ec2:DescribeSpotPriceHistory",
        "pricing:GetProducts",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(actions, expected);
    // The project README lists the same actions.
    let readme = std::fs::read_to_string(helm::repo().join("README.md")).expect("README");
    for a in &expected {
        assert!(
            readme.contains(&format!("`{a}`")),
            "README.md does not name {a}"
        );
    }
}
