//! Kubernetes quantities (`model::quantity`): the grammar, and the conversions the
//! loader uses for CPU, memory and counts.
#![no_main]

use fuzz_common::{measured, text};
use gpu_slicer::model::quantity;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(s) = text(data) else { return };
    measured("model::quantity", s.len(), || {
        if let Ok(q) = quantity::parse(s) {
            let _ = (q.is_negative(), q.is_zero(), q.is_integer());
            let _ = (q.milli_ceil(), q.units_ceil());
            // The scales callers use (0: bytes and counts, 3: millicores), a few more,
            // and i32's ends.
            for scale in [i32::MIN, -40, -9, -3, 0, 3, 6, 9, 18, 40, i32::MAX] {
                let _ = q.scaled_ceil(scale);
            }
        }
        let _ = quantity::cpu_milli(s);
        let _ = quantity::bytes(s);
        let _ = quantity::count(s);
    });
});
