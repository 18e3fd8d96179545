//! `gpu-slicer simulate` as a user runs it: a small trace in our CSV format, the report
//! folder it writes, and bad input naming the file and line.
#![cfg(feature = "cli")]

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gpu-slicer"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_small_trace_writes_the_report_folder() {
    let dir = std::env::temp_dir().join(format!("gpu-slicer-sim-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let trace = dir.join("w.csv");
    let mut csv = String::from("name,arrival,departure,cpu,memory,gpus,gpu_share\n");
    for i in 0..8 {
        csv.push_str(&format!("p{i},{},{},1,4Gi,1,0.25\n", i * 30, 3600 + i * 30));
    }
    std::fs::write(&trace, csv).expect("write");
    let out = dir.join("out");
    let (code, stdout, stderr) = run(&[
        "simulate",
        "--trace",
        trace.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("report JSON");
    let names: Vec<&str> = report["strategies"]
        .as_array()
        .expect("strategies")
        .iter()
        .filter_map(|s| s["strategy"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "dedicated",
            "slicing-unaware-r4",
            "overlay-r4",
            "gpu-slicer"
        ]
    );
    let floor = report["lowerBoundCost"].as_f64().expect("floor");
    for s in report["strategies"].as_array().expect("strategies") {
        assert!(s["cost"].as_f64().expect("cost") >= floor * 0.99, "{s}");
        assert_eq!(s["neverPlaced"], 0, "{s}");
    }
    for f in [
        "report.json",
        "summary.txt",
        "cost.svg",
        "gpus.svg",
        "pending-cdf.svg",
    ] {
        let text = std::fs::read_to_string(out.join(f)).expect(f);
        assert!(!text.is_empty(), "{f}");
        if f.ends_with(".svg") {
            assert!(text.starts_with("<svg"), "{f}");
        }
    }
    let summary = std::fs::read_to_string(out.join("summary.txt")).expect("summary");
    assert!(
        summary.contains("gpu-slicer") && summary.contains("floor"),
        "{summary}"
    );

    std::fs::write(&trace, "name,arrival,cpu,memory,gpus\np0,soon,1,1Gi,1\n").expect("write");
    let (code, _, stderr) = run(&["simulate", "--trace", trace.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("w.csv:2: field `arrival`"), "{stderr}");
    for (flag, value, says) in [
        ("--sample-every", "0s", "--sample-every must be at least 1s"),
        ("--days", "0", "--days must be at least 1"),
    ] {
        let (code, _, stderr) = run(&[
            "simulate",
            "-f",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed"),
            "--pattern",
            "diurnal",
            flag,
            value,
        ]);
        assert_eq!(code, 2, "{flag}: {stderr}");
        assert!(stderr.contains(says), "{flag}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
