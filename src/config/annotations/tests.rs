use super::*;

#[test]
fn isolation_values() {
    assert_eq!(parse_isolation("memory").ok(), Some(Isolation::Memory));
    assert_eq!(parse_isolation("none").ok(), Some(Isolation::None));
    let e = parse_isolation("Memory").err().map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| e.contains("gpu-slicer.io/isolation")
                && e.contains("\"none\" or \"memory\"")
                && e.contains("Memory")),
        "{e:?}"
    );
}

#[test]
fn share_values() {
    for (s, want) in [
        ("0.25", 250),
        ("250m", 250),
        ("1", 1000),
        ("1.0", 1000),
        ("1000m", 1000),
        (".5", 500),
        ("0.001", 1),
        ("1m", 1),
        ("0.2500", 250),
        ("0.0010", 1),
        ("0.1", 100),
        ("001", 1000),
        ("0.999", 999),
    ] {
        assert_eq!(parse_share(s), Ok(want), "{s}");
    }
}

#[test]
fn share_errors() {
    let field = r#"metadata.annotations["gpu-slicer.io/gpu-share"]"#;
    for (s, msg) in [
        ("0", "must be greater than 0, got \"0\""),
        ("0m", "must be greater than 0, got \"0m\""),
        ("0.000", "must be greater than 0, got \"0.000\""),
        ("2", "must be at most 1 (a whole GPU), got \"2\""),
        ("1.5", "must be at most 1 (a whole GPU), got \"1.5\""),
        ("1001m", "must be at most 1 (a whole GPU), got \"1001m\""),
        (
            "99999999999999999999",
            "must be at most 1 (a whole GPU), got \"99999999999999999999\"",
        ),
        ("-0.5", "must be greater than 0, got \"-0.5\""),
        (
            "0.0001",
            "is finer than the resolution of 1/1000 (0.001 or 1m), got \"0.0001\"",
        ),
        (
            "2.5m",
            "is finer than the resolution of 1/1000 (0.001 or 1m), got \"2.5m\"",
        ),
        (
            "abc",
            "must be a decimal in (0, 1] such as 0.25, or thousandths such as 250m, got \"abc\"",
        ),
    ] {
        assert_eq!(
            parse_share(s),
            Err(FieldError::new(field, msg)),
            "input {s:?}"
        );
    }
    for bad in [
        "", ".", "m", "0.2.5", "1e-1", "25%", "0,25", "--1", "-", "1/4", "0.25mm",
    ] {
        assert!(parse_share(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn gpu_memory_values() {
    assert_eq!(parse_gpu_memory_mib("4Gi"), Ok(4096));
    assert_eq!(parse_gpu_memory_mib("512Mi"), Ok(512));
    assert_eq!(
        parse_gpu_memory_mib("1G"),
        Ok(954),
        "1e9 bytes rounds up to 954 MiB"
    );
    assert_eq!(
        parse_gpu_memory_mib("1"),
        Ok(1),
        "one byte rounds up to 1 MiB"
    );
    assert_eq!(parse_gpu_memory_mib("1.5Gi"), Ok(1536));
}

#[test]
fn gpu_memory_errors() {
    let field = r#"metadata.annotations["gpu-slicer.io/gpu-memory"]"#;
    assert_eq!(
        parse_gpu_memory_mib("-1Gi"),
        Err(FieldError::new(field, "must be positive, got \"-1Gi\""))
    );
    assert_eq!(
        parse_gpu_memory_mib("0"),
        Err(FieldError::new(field, "must be positive, got \"0\""))
    );
    assert_eq!(
        parse_gpu_memory_mib("4GB"),
        Err(FieldError::new(
            field,
            "must be a Kubernetes quantity such as 4Gi or 512Mi, got \"4GB\" (unknown suffix \"GB\")"
        )
        .caused_by(quantity::parse("4GB").unwrap_err()))
    );
    assert_eq!(
        parse_gpu_memory_mib("9Ei"),
        Err(FieldError::new(field, "is out of range, got \"9Ei\""))
    );
    for bad in ["", "abc", "4 Gi", "Gi", "1e99"] {
        assert!(parse_gpu_memory_mib(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn sharing_values() {
    assert_eq!(parse_sharing("shared"), Ok(Sharing::Shared));
    assert_eq!(parse_sharing("exclusive"), Ok(Sharing::Exclusive));
    assert_eq!(
        parse_sharing("Shared").unwrap_err().message,
        "must be \"shared\" or \"exclusive\", got \"Shared\""
    );
}

#[test]
fn headroom_helper() {
    assert_eq!(quantity_mib_non_negative("0"), Ok(0));
    assert_eq!(quantity_mib_non_negative("1Gi"), Ok(1024));
    assert_eq!(
        quantity_mib_non_negative("-1Mi").map_err(|e| e.to_string()),
        Err("must not be negative, got \"-1Mi\"".to_string())
    );
}

#[test]
fn quantity_mib_errors_keep_the_quantity_error() {
    use std::error::Error as _;
    let e = quantity_mib_non_negative("4Xi").unwrap_err();
    let q = quantity::parse("4Xi").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "must be a Kubernetes quantity such as 512Mi or 1Gi, got \"4Xi\" ({})",
            q.reason
        )
    );
    assert_eq!(e.source().map(ToString::to_string), Some(q.to_string()));
    let f = e.in_field("f");
    assert_eq!(f.message, f.to_string().trim_start_matches("field `f`: "));
    assert_eq!(f.cause, Some(Box::new(q)));
    let e = quantity_mib_non_negative("9Ei").unwrap_err();
    assert_eq!(e.to_string(), "is out of range, got \"9Ei\"");
    assert!(e.source().is_none());
    let e = parse_gpu_memory_mib("4Xi").unwrap_err();
    assert!(e.source().is_some());
    assert!(
        e.message
            .starts_with("must be a Kubernetes quantity such as 4Gi or 512Mi, got \"4Xi\" (")
    );
}
