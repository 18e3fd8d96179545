//! The trace readers, each on the whole input: the Alibaba pod list
//! (`trace::parse_alibaba_pods`, then `sim::workload::from_alibaba`), the Alibaba node list
//! (`sim::fgd::parse_alibaba_nodes`) and the workload formats
//! (`sim::workload::parse_csv`, `parse_jsonl`).
#![no_main]

use fuzz_common::{measured, text};
use gpu_slicer::sim::{fgd, workload};
use gpu_slicer::trace::parse_alibaba_pods;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(s) = text(data) else { return };
    measured("trace readers", s.len(), || {
        if let Ok(pods) = parse_alibaba_pods("pods.csv", s) {
            let _ = workload::from_alibaba("pods.csv", "fuzz", &pods);
        }
        let _ = fgd::parse_alibaba_nodes("nodes.csv", s);
        let _ = workload::parse_csv("w.csv", "fuzz", s);
        let _ = workload::parse_jsonl("w.jsonl", "fuzz", s);
    });
});
