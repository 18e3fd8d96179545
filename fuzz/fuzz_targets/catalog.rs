//! The instance catalog CSV (`catalog::parse_csv`, the columns of
//! `src/catalog/aws-gpu-instances.csv`).
#![no_main]

use fuzz_common::{measured, text};
use gpu_slicer::catalog::parse_csv;
use gpu_slicer::model::PriceSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(s) = text(data) else { return };
    let _ = measured("catalog::parse_csv", s.len(), || {
        let prices = PriceSource {
            name: "fuzz".to_string(),
            observed: "2026-12-07".to_string(),
        };
        parse_csv("fuzz.csv", s, prices)
    });
});
