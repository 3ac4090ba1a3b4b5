//! Reconnect delays: exponential with full jitter, capped.
//!
//! tokio-console once capped its backoff with `max` where `min` was meant, so it always
//! waited the maximum. The cap here is tested.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The ceiling for attempt `attempt` (0 for the first retry): base · 2^attempt, at most `cap`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Full jitter: uniform in [0, ceiling]. `unit` is a random number in [0, 1).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        self.ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_then_stops_at_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        // The cap is a ceiling, not a floor: early attempts stay short...
        assert!(b.ceiling(1) < b.cap, "an early retry must not wait the cap");
        // ...and late ones never exceed it, even when 2^attempt overflows.
        assert_eq!(b.ceiling(10), b.cap);
        assert_eq!(b.ceiling(u32::MAX), b.cap);
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let b = Backoff::default();
        assert_eq!(b.delay(4, 0.0), Duration::ZERO);
        assert!(b.delay(4, 0.999) <= b.ceiling(4));
        assert!(
            b.delay(40, 0.999) <= b.cap,
            "jitter never pushes past the cap"
        );
        assert_eq!(b.delay(2, 0.5), b.ceiling(2) / 2);
    }
}
