//! What every fuzz target shares: a counting global allocator and the 64× rule.
//!
//! [`measured`] runs the call under test and panics (a crash to libFuzzer, so a finding
//! with its input saved under `fuzz/artifacts/`) when the peak of live heap bytes during
//! the call rose above the live bytes before it by more than
//! `max(64 × input length, FLOOR)`.
//!
//! Only Rust allocations are counted (libFuzzer's own C++ heap is not ours to judge).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Live-byte growth any input may cause, however short it is: 512 KiB.
///
/// Measured on 2026-12-07 with `FUZZ_ALLOC_REPORT=only` over every target's corpus after
/// 300 s of fuzzing each (the largest growth on an input under 4 KiB, where 64× is under
/// this floor): frame 144 KB (the rendered objects of one planned node per pool, a
/// device-plugin ConfigMap: fixed, not input-sized), annotations 116 KB, admission 79 KB
/// (kube's AdmissionRequest/Response), catalog 66 KB and trace 34 KB (the csv crate's
/// buffers), quantity 12 KB; a 1-byte input costs at most 16 KB anywhere. The YAML
/// scanner's token queue (granit-parser, under serde-saphyr) is the largest fixed cost:
/// 311 KB on 2 KB of `{a: [,,,…`, 331 KB on 3.9 KB of carriage returns in a broken JSON
/// that falls back to YAML, and it levels off (374 KB at 64 KB, 822 KB at 512 KB, 1.6×
/// the input). 512 KiB covers it with ~50 % to spare, so a blow-up on a short input
/// still fails.
pub const FLOOR: usize = 512 << 10;

/// How many times larger than its input the live heap may grow during one call.
pub const FACTOR: usize = 64;

/// Counts live heap bytes and their peak.
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(by: usize) {
    LIVE.fetch_sub(by, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the same arguments; the counters are
// plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Counted as if the new block were taken before the old one is given back,
            // as a moving realloc does.
            grew(new_size);
            shrank(layout.size());
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Live heap bytes now.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The most bytes `input_len` bytes of input may make the heap grow by.
pub fn allowance(input_len: usize) -> usize {
    FACTOR.saturating_mul(input_len).max(FLOOR)
}

/// Runs `f` (the call under test on an input of `input_len` bytes) and panics when the
/// heap grew during it by more than [`allowance`]. With `FUZZ_ALLOC_REPORT` set in the
/// environment it prints every call's growth to stderr (for measuring the floor: run a
/// corpus with `-runs=0`); set to `only`, it prints and never panics.
pub fn measured<R>(what: &str, input_len: usize, f: impl FnOnce() -> R) -> R {
    measured_plus(what, input_len, |_| 0, f)
}

/// [`measured`], with `extra(&result)` bytes allowed on top of [`allowance`] (the demand
/// target's allowance per expanded pod, see there).
pub fn measured_plus<R>(
    what: &str,
    input_len: usize,
    extra: impl FnOnce(&R) -> usize,
    f: impl FnOnce() -> R,
) -> R {
    let before = live();
    PEAK.store(before, Ordering::Relaxed);
    let out = f();
    let growth = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    let extra = extra(&out);
    if let Some(report) = std::env::var_os("FUZZ_ALLOC_REPORT") {
        eprintln!("alloc {what}: input {input_len} B, heap growth {growth} B, extra {extra} B");
        if report == "only" {
            return out;
        }
    }
    let limit = allowance(input_len).saturating_add(extra);
    assert!(
        growth <= limit,
        "{what}: the heap grew by {growth} bytes on an input of {input_len} bytes \
         (allowed: max({FACTOR} × input, {FLOOR}) + {extra} = {limit})"
    );
    out
}

/// The input as text, or `None` (every parser here takes `&str`: the CLI and the
/// controller read UTF-8).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}
