//! `gpu-slicer simulate` as a user runs it: a small trace in our CSV format, the report
//! folder it writes, bad input naming the file and line, bad flags naming the flag (exit
//! 2), `--time-scale` and `--sweep`.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "plots")]

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
            "dedicated+multi",
            "slicing-unaware-r4",
            "overlay-r4",
            "overlay-safe",
            "overlay-safe+multi",
            "gpu-slicer"
        ]
    );
    let floor = report["lowerBoundCost"].as_f64().expect("floor");
    // Floor ≥ weak floor is no theorem: here the pods arrive 30 s apart, so the first
    // 600 s window counts only the first pod, where the weak floor counts each from its
    // arrival. tests/sim_engine.rs checks it on samples of the real traces.
    let weak = report["weakLowerBoundCost"].as_f64().expect("weak");
    assert!(
        floor > 0.0 && weak > 0.0 && floor < weak * 1.1,
        "{floor} {weak}"
    );
    let mut ranks: Vec<u64> = report["strategies"]
        .as_array()
        .expect("strategies")
        .iter()
        .map(|s| s["rank"].as_u64().expect("rank"))
        .collect();
    ranks.sort_unstable();
    assert_eq!(ranks, [1, 2, 3, 4, 5, 6, 7]);
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
        summary.contains("gpu-slicer") && summary.contains("weak floor"),
        "{summary}"
    );
    // Shares of 0.25 fit every strategy's R = 4: all safe, and the table says so.
    assert!(
        summary.contains("SHARE VIOL") && !summary.contains("UNSAFE"),
        "{summary}"
    );

    // --time-scale 10: arrivals 0, 30, ... 210 become 0, 3, ... 21; each job still runs
    // 3600 s, so the horizon is 21 + 3600 s.
    let (code, stdout, stderr) = run(&[
        "simulate",
        "--trace",
        trace.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "--strategies",
        "dedicated,gpu-slicer",
        "--time-scale",
        "10",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let scaled: serde_json::Value = serde_json::from_str(&stdout).expect("report JSON");
    assert_eq!(scaled["horizonS"], 3621);
    assert_eq!(scaled["workload"], "w-x10");

    // --sweep: one row per combination, each strategy's cost ÷ floor and rank.
    let (code, stdout, stderr) = run(&[
        "simulate",
        "--trace",
        trace.to_str().expect("utf-8"),
        "--strategies",
        "dedicated,overlay-safe,gpu-slicer",
        "--sweep",
        "launch-delay=45s,90s",
        "consolidate-after=0s,30s",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<&str> = stdout.lines().filter(|l| l.contains('#')).collect();
    assert_eq!(rows.len(), 1 + 4, "{stdout}");
    assert!(
        stdout.contains("LAUNCH-DELAY") && stdout.contains("overlay-safe"),
        "{stdout}"
    );
    assert!(
        rows[1].starts_with("45s") && rows[1].contains("#1"),
        "{stdout}"
    );
    assert!(
        rows[4].starts_with("90s") && rows[4].contains("30s"),
        "{stdout}"
    );

    std::fs::write(&trace, "name,arrival,cpu,memory,gpus\np0,soon,1,1Gi,1\n").expect("write");
    let (code, _, stderr) = run(&["simulate", "--trace", trace.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("w.csv:2: field `arrival`"), "{stderr}");
    for (flag, value, says) in [
        ("--sample-every", "0s", "--sample-every must be at least 1s"),
        ("--days", "0", "--days must be at least 1"),
        ("--time-scale", "0", "--time-scale"),
        ("--time-scale", "fast", "--time-scale"),
        ("--binding", "strict", "--binding"),
        ("--consolidation", "always", "--consolidation"),
        ("--floor-window", "0s", "--floor-window must be at least 1s"),
        (
            "--strategies",
            "dedicated,cheapest",
            "--strategies: \"cheapest\" is not a strategy",
        ),
        (
            "--strategies",
            "gpu-slicer+multi",
            "--strategies: \"gpu-slicer+multi\"",
        ),
        (
            "--strategies",
            "overlay-r99",
            "--strategies: \"overlay-r99\": replicas must be 2..48",
        ),
        (
            "--strategies",
            "dedicated+sometimes",
            "--strategies: \"dedicated+sometimes\"",
        ),
        ("--sweep", "launch-delay", "--sweep"),
        ("--sweep", "colour=red", "--sweep: unknown key"),
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

/// The gpu-slicer row of a report.
fn gpu_slicer(report: &serde_json::Value) -> &serde_json::Value {
    report["strategies"]
        .as_array()
        .expect("strategies")
        .iter()
        .find(|s| s["strategy"] == "gpu-slicer")
        .expect("gpu-slicer row")
}

#[test]
fn repack_flags_reach_the_replay() {
    let dir = std::env::temp_dir().join(format!("gpu-slicer-sim-repack-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    // Eight pods at once get one node planned for all of them; seven leave at 600 s and
    // the survivor (until 20,000 s) is left on a node sized for eight: the first repack
    // round (3,600 s) replaces it by a smaller one.
    let trace = dir.join("w.csv");
    let mut csv = String::from("name,arrival,departure,cpu,memory,gpus,gpu_share\n");
    for i in 0..8 {
        let leave = if i == 0 { 20_000 } else { 600 };
        csv.push_str(&format!("p{i},0,{leave},3,8Gi,1,0.1\n"));
    }
    std::fs::write(&trace, csv).expect("write");
    let out = dir.join("out");
    let replay = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "simulate",
            "--trace",
            trace.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
            "--strategies",
            "gpu-slicer",
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 0, "{extra:?}: {stderr}");
        serde_json::from_str(&stdout).expect("report JSON")
    };
    let on = replay(&[]);
    let on = gpu_slicer(&on);
    assert_eq!(on["repackMoves"], 1, "{on}");
    assert_eq!(on["podsRestarted"], 1, "{on}");
    assert!(
        on["overlapNodeHours"].as_f64().expect("overlap") > 0.0,
        "{on}"
    );
    assert_eq!(
        (
            on["shareViolations"].clone(),
            on["memoryViolations"].clone()
        ),
        (0.into(), 0.into())
    );
    let summary = std::fs::read_to_string(out.join("summary.txt")).expect("summary");
    assert!(
        summary.contains("gpu-slicer repack: every 3600 s, min saving 5 %")
            && summary.contains("RESTARTS/DAY"),
        "{summary}"
    );
    let off = replay(&["--repack-interval", "0s"]);
    let off = gpu_slicer(&off);
    assert_eq!(off["repackMoves"], 0, "{off}");
    assert!(
        on["cost"].as_f64().expect("cost") < off["cost"].as_f64().expect("cost"),
        "{on} {off}"
    );
    // A minimum pod age of 6 h: the survivor (bound at 91 s) is too young at every round
    // before it leaves (20,000 s). Rounds every 5 h: the move comes at 18,000 s instead.
    let old = replay(&["--repack-min-pod-age", "6h"]);
    assert_eq!(gpu_slicer(&old)["repackMoves"], 0);
    let late = replay(&["--repack-interval", "5h"]);
    let late = gpu_slicer(&late);
    assert_eq!(late["repackMoves"], 1);
    assert!(late["cost"].as_f64() > on["cost"].as_f64(), "{late} {on}");
    // A saving threshold above any move on offer.
    let strict = replay(&["--repack-min-saving", "0.99"]);
    assert_eq!(gpu_slicer(&strict)["repackMoves"], 0);
    // A rate limit of one node an hour still allows the one move.
    let slow = replay(&["--repack-max-nodes-per-hour", "1"]);
    assert_eq!(gpu_slicer(&slow)["repackMoves"], 1);
    for (flag, value, says) in [
        (
            "--repack-min-saving",
            "1.5",
            "--repack-min-saving must be a fraction",
        ),
        ("--repack-min-saving", "lots", "--repack-min-saving"),
        (
            "--repack-max-nodes-per-hour",
            "0",
            "--repack-max-nodes-per-hour must be at least 1",
        ),
        ("--repack-interval", "soon", "--repack-interval"),
        ("--repack-min-pod-age", "old", "--repack-min-pod-age"),
        (
            "--repack-budget",
            "101",
            "--repack-budget must be a percentage",
        ),
    ] {
        let (code, _, stderr) = run(&[
            "simulate",
            "--trace",
            trace.to_str().expect("utf-8"),
            flag,
            value,
        ]);
        assert_eq!(code, 2, "{flag}: {stderr}");
        assert!(stderr.contains(says), "{flag}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 17: a replay is bounded: `--days` and the workload's span by
/// `--max-replay-days`, and a time past a century is an error naming its line.
#[test]
fn replay_length_is_bounded_and_named() {
    let dir = std::env::temp_dir().join(format!("gpu-slicer-sim-limits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed");
    let (code, _, err) = run(&[
        "simulate",
        "-f",
        seed,
        "--pattern",
        "diurnal",
        "--days",
        "100000",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--days 100000 is more than --max-replay-days 400"),
        "{err}"
    );
    // 500 days between the first arrival and the last departure.
    let long = dir.join("long.csv");
    std::fs::write(
        &long,
        "name,arrival,departure,cpu,memory,gpus\na,0,43200000,1,1Gi,1\n",
    )
    .expect("write");
    let (code, _, err) = run(&["simulate", "--trace", long.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the workload spans 500.0 days (first arrival to last departure), more than --max-replay-days 400"),
        "{err}"
    );
    // 2^64 - 1 as "never leaves".
    let never = dir.join("never.csv");
    std::fs::write(
        &never,
        "name,arrival,departure,cpu,memory,gpus\na,0,60,1,1Gi,1\nb,0,18446744073709551615,1,1Gi,1\n",
    )
    .expect("write");
    let (code, _, err) = run(&["simulate", "--trace", never.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "never.csv:3: field `departure`: 18446744073709551615 s is more than 100 years"
        ),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
