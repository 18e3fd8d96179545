//! Plain-format logs carry no ANSI colour codes when stderr is not a terminal (here a
//! pipe, as under `kubectl logs`). `gpu-slicer run` sets up logging first; with no
//! kubeconfig and no in-cluster config it logs kube's config inference at trace level and
//! fails before any connection is made.

// Test code: an unwrap that fails is the failure being reported (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "controller")]

use std::process::{Command, Stdio};

#[test]
fn plain_logs_to_a_pipe_have_no_escape_codes() {
    let out = Command::new(env!("CARGO_BIN_EXE_gpu-slicer"))
        .args(["run", "--cluster-name", "test", "--log-format", "plain"])
        .env("RUST_LOG", "trace")
        .env("KUBECONFIG", "/nonexistent/gpu-slicer-test-kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(0),
        "run without a cluster failed: {stderr}"
    );
    assert!(
        stderr.contains("TRACE") && stderr.contains("no local config found"),
        "no log line to check: {stderr}"
    );
    assert!(
        !stderr.contains("\x1b["),
        "escape codes in the logs: {stderr:?}"
    );
}
