//! Exponential backoff with jitter, shared by the Kubernetes writer and the AWS client, and
//! the `Retry-After` rule both follow. Pure apart from the per-instance random seed (read
//! once in [`Backoff::new`]); `now` is passed in where a date is read. Units: `Duration`.
//!
//! Hand-rolled rather than `backon`: the two retry loops classify each failure themselves
//! (throttling backs off from a longer base, `Retry-After` replaces the computed delay), so
//! only the delay arithmetic would be shared, and `backon` is not a direct dependency.
//!
//! Jitter: each instance draws its seed from std's [`RandomState`] (random keys per
//! process, fresh per instance), so replicas and clusters do not retry a throttle in
//! lockstep. The generator state is advanced with one atomic read-modify-write
//! (`fetch_update`), so concurrent callers never draw the same value.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// The longest `Retry-After` honoured: a server asking for more is waited on for this long
/// (the retry then fails or succeeds as usual), so a bad header cannot stall a round.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// `base × 2^(attempt−1)`, capped at `cap`, times a jitter factor in [0.5, 1).
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    state: AtomicU64,
}

impl Backoff {
    /// A backoff with a random jitter seed of its own.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self::with_seed(base, cap, random_seed())
    }

    /// A backoff with a fixed seed (tests). A zero seed, the one state xorshift never
    /// leaves, is replaced.
    pub fn with_seed(base: Duration, cap: Duration, seed: u64) -> Self {
        Backoff {
            base,
            cap,
            state: AtomicU64::new(if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            }),
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
        let factor = 0.5 + (self.next() % 1000) as f64 / 2000.0;
        exp.mul_f64(factor)
    }

    /// Advances the generator atomically and returns the new state.
    fn next(&self) -> u64 {
        let prev = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| Some(xorshift(x)));
        // `fetch_update` only fails when the closure returns `None`; it never does.
        xorshift(prev.unwrap_or_else(|x| x))
    }
}

/// xorshift64: jitter only, not security. Never maps a non-zero state to zero.
fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// A seed from std's randomly keyed hasher over the time, the process id and a counter.
fn random_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(t) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

/// The wait a `Retry-After` header value asks for, at `now`: delta-seconds (`"3"`) or an
/// IMF-fixdate HTTP date (`"Wed, 21 Oct 2015 07:28:00 GMT"`; a date in the past is zero).
/// `None` when the value is neither (the obsolete RFC 850 and asctime date forms included).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than u64 holds: longer than any cap.
        return Some(
            value
                .parse::<u64>()
                .map_or(Duration::MAX, Duration::from_secs),
        );
    }
    use aws_sdk_ec2::primitives::{DateTime, DateTimeFormat};
    let at = DateTime::from_str(value, DateTimeFormat::HttpDate).ok()?;
    let at = SystemTime::try_from(at).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait before a retry: what the server asked for (`Retry-After`), capped at
/// [`MAX_RETRY_AFTER`], when it asked; the computed backoff otherwise.
pub fn retry_delay(retry_after: Option<Duration>, computed: Duration) -> Duration {
    match retry_after {
        Some(d) => d.min(MAX_RETRY_AFTER),
        None => computed,
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

    #[test]
    fn instances_draw_different_jitter() {
        let base = Duration::from_secs(1);
        let a = Backoff::new(base, Duration::from_secs(60));
        let b = Backoff::new(base, Duration::from_secs(60));
        let seq = |x: &Backoff| (0..16).map(|_| x.next()).collect::<Vec<_>>();
        let (sa, sb) = (seq(&a), seq(&b));
        assert_ne!(sa, sb, "two instances share a jitter sequence");
        // And the delays themselves differ (1000 jitter steps, 8 draws).
        let da: Vec<_> = (1..=8).map(|_| a.delay(1)).collect();
        let db: Vec<_> = (1..=8).map(|_| b.delay(1)).collect();
        assert_ne!(da, db);
    }

    #[test]
    fn fixed_seeds_repeat_and_zero_is_replaced() {
        let a = Backoff::with_seed(Duration::from_secs(1), Duration::from_secs(8), 42);
        let b = Backoff::with_seed(Duration::from_secs(1), Duration::from_secs(8), 42);
        assert_eq!(a.next(), b.next());
        let z = Backoff::with_seed(Duration::from_secs(1), Duration::from_secs(8), 0);
        assert_ne!(z.next(), 0);
    }

    /// Concurrent draws never lose an update: with xorshift's full period every draw is a
    /// distinct state, and the final state is the seed advanced once per draw.
    #[test]
    fn concurrent_draws_never_lose_an_update() {
        const THREADS: usize = 8;
        const DRAWS: usize = 5_000;
        let seed = 7;
        let b = Backoff::with_seed(Duration::from_millis(1), Duration::from_secs(1), seed);
        let drawn: Vec<u64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..THREADS)
                .map(|_| s.spawn(|| (0..DRAWS).map(|_| b.next()).collect::<Vec<_>>()))
                .collect();
            hs.into_iter()
                .flat_map(|h| h.join().expect("thread"))
                .collect()
        });
        let distinct: std::collections::HashSet<_> = drawn.iter().copied().collect();
        assert_eq!(distinct.len(), THREADS * DRAWS, "a draw was repeated");
        let mut x = seed;
        for _ in 0..THREADS * DRAWS {
            x = xorshift(x);
        }
        assert_eq!(b.state.load(Ordering::SeqCst), x, "an update was lost");
        assert!(distinct.contains(&x));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        // 2015-10-21T07:28:00Z
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:07 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO),
            "a past date means now"
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::MAX)
        );
        for bad in ["", "-1", "1.5", "soon", "Wednesday, 21-Oct-15 07:28:07 GMT"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_replaces_the_backoff_up_to_the_cap() {
        let computed = Duration::from_millis(250);
        assert_eq!(
            retry_delay(Some(Duration::from_secs(3)), computed),
            Duration::from_secs(3)
        );
        assert_eq!(retry_delay(Some(Duration::ZERO), computed), Duration::ZERO);
        assert_eq!(
            retry_delay(Some(Duration::from_secs(3600)), computed),
            MAX_RETRY_AFTER
        );
        assert_eq!(retry_delay(None, computed), computed);
    }
}
