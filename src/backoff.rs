//! Exponential backoff with jitter, shared by the Kubernetes writer and the AWS client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `base × 2^(attempt−1)`, capped at `cap`, times a jitter factor in [0.5, 1).
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    state: AtomicU64,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            state: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
        }
    }

    /// The wait before retry number `attempt` (1 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_from(self.base, attempt)
    }

    /// Like [`Backoff::delay`] with another base (throttling backs off from a longer one).
    pub fn delay_from(&self, base: Duration, attempt: u32) -> Duration {
        let exp = base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.cap);
        // xorshift64: jitter only, not security.
        let mut x = self.state.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state.store(x, Ordering::Relaxed);
        let factor = 0.5 + (x % 1000) as f64 / 2000.0;
        exp.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_jittered() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut seen = std::collections::BTreeSet::new();
        for attempt in 1..=8 {
            let d = b.delay(attempt);
            let full = Duration::from_millis(100)
                .saturating_mul(1 << (attempt - 1))
                .min(Duration::from_secs(1));
            assert!(
                d >= full / 2 && d < full,
                "attempt {attempt}: {d:?} vs {full:?}"
            );
            seen.insert(d);
        }
        assert!(seen.len() > 4, "jitter varies the delays: {seen:?}");
    }
}
