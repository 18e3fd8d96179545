//! Batching of pending-pod events, as Karpenter does it: a batch opens with the first
//! event, and is due once no event came for `idle` (default 1 s) or `max` (default 10 s)
//! after it opened, whichever comes first. Time is a monotonic `Duration` given by the
//! caller.

use std::time::Duration;

/// The batch window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batcher {
    idle: Duration,
    max: Duration,
    opened: Option<Duration>,
    last: Option<Duration>,
}

impl Batcher {
    /// Karpenter's defaults are `idle` 1 s and `max` 10 s.
    pub fn new(idle: Duration, max: Duration) -> Self {
        Batcher {
            idle,
            max: max.max(idle),
            opened: None,
            last: None,
        }
    }

    /// A pending pod appeared or changed at `now`.
    pub fn observe(&mut self, now: Duration) {
        if self.opened.is_none() {
            self.opened = Some(now);
        }
        self.last = Some(now);
    }

    /// When the open batch is due, if one is open.
    pub fn deadline(&self) -> Option<Duration> {
        match (self.opened, self.last) {
            (Some(o), Some(l)) => Some((l + self.idle).min(o + self.max)),
            _ => None,
        }
    }

    pub fn is_due(&self, now: Duration) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }

    /// Closes the batch (the planning round starts); events from now on open a new one.
    pub fn take(&mut self) {
        self.opened = None;
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64) -> Duration {
        Duration::from_secs_f64(x)
    }

    #[test]
    fn idle_window_closes_a_quiet_batch() {
        let mut b = Batcher::new(s(1.0), s(10.0));
        assert_eq!(b.deadline(), None);
        b.observe(s(5.0));
        b.observe(s(5.4));
        assert!(!b.is_due(s(6.3)));
        assert!(b.is_due(s(6.4)));
        b.take();
        assert_eq!(b.deadline(), None);
    }

    #[test]
    fn max_window_caps_a_busy_batch() {
        let mut b = Batcher::new(s(1.0), s(10.0));
        let mut t = 0.0;
        while t < 12.0 {
            b.observe(s(t));
            t += 0.5;
        }
        assert_eq!(b.deadline(), Some(s(10.0)));
        assert!(b.is_due(s(10.0)));
    }

    #[test]
    fn max_below_idle_is_raised() {
        let mut b = Batcher::new(s(2.0), s(1.0));
        b.observe(s(0.0));
        assert_eq!(b.deadline(), Some(s(2.0)));
    }
}
