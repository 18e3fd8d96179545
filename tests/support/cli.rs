//! Running the `gpu-slicer` binary from binary-level tests: arguments (and optionally
//! standard input) in, `(exit code, stdout, stderr)` out.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

/// A path under the crate root.
pub fn root(p: &str) -> String {
    format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary with `args` and no input.
pub fn run(args: &[&str]) -> (i32, String, String) {
    run_with(args, None)
}

/// Runs the binary with `args` and `input` on standard input.
pub fn run_stdin(args: &[&str], input: &str) -> (i32, String, String) {
    run_with(args, Some(input))
}

fn run_with(args: &[&str], input: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpu-slicer"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(text) = input {
        stdin.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
