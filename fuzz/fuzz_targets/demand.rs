//! The demand loader: YAML or JSON manifests (Pods, workloads, NodePools, ConfigMaps, …)
//! → demand, as `plan` and `render` read their files (`demand::load_str`).
//!
//! The 64× rule counts the pods the input asks for: a workload's `replicas: 100000` is
//! 15 bytes that ask for 100,000 pods (about 410 bytes of demand each), so each pod the
//! input expanded to (`Inputs::expanded_pods`) allows `FUZZ_DEMAND_POD_BYTES` more bytes (4096
//! unless set: ten times a minimal pod, room for a template of a few KiB copied into
//! each; 0 is the text-only rule, which any large `replicas` breaks, finding F1 in
//! `fuzz/regressions/demand/`). What bounds the whole input is `--max-pods`
//! (`LoadOptions::max_pods`), checked before a workload is expanded; here it is 100,000
//! so that an input at the limit still loads within the 1 s timeout (the CLI's default
//! of 1,000,000 takes ~4 s and 410 MB, by design). Pods made and then dropped by a later
//! error count too (`Inputs::expanded_pods`): their memory was taken.
#![no_main]

use std::sync::OnceLock;

use fuzz_common::{measured_plus, text};
use gpu_slicer::demand::{Inputs, LoadOptions, load_str};
use libfuzzer_sys::fuzz_target;

fn pod_bytes() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("FUZZ_DEMAND_POD_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4096)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(s) = text(data) else { return };
    let opts = LoadOptions {
        max_pods: 100_000,
        ..LoadOptions::default()
    };
    let per_pod = pod_bytes();
    measured_plus(
        "demand::load_str",
        s.len(),
        |inputs: &Inputs| per_pod.saturating_mul(inputs.expanded_pods),
        || {
            let mut inputs = Inputs::default();
            let _ = load_str(&mut inputs, "fuzz.yaml", s, &opts);
            inputs
        },
    );
});
