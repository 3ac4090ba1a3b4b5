//! The burn-rate conditions a console and a gateway share: the console opens incidents on
//! them, and `firebreak gateway slo-rules` writes them as Prometheus alerting rules, so an
//! on-call engineer is paged on the same conditions by either (the Google SRE workbook's
//! multiwindow, multi-burn-rate alerts).

/// A condition fires when the error budget burns faster than `factor` over both windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    pub long_s: i64,
    pub short_s: i64,
    pub factor: f64,
}

impl Condition {
    /// The bad share above which a window burns faster than the condition allows, for an
    /// objective of `target` (0.995): what both sides compare with, computed once.
    pub fn threshold(&self, target: f64) -> f64 {
        // Rounded to 12 decimals, so the rules read 0.072 and not 0.07200000000000006.
        (self.factor * (1.0 - target) * 1e12).round() / 1e12
    }
}

/// "1h", "5m": a window as Prometheus writes a range.
pub fn range(seconds: i64) -> String {
    if seconds % 3600 == 0 {
        format!("{}h", seconds / 3600)
    } else if seconds % 60 == 0 {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

/// The conditions that page (and open an incident): 2 % of a 30-day budget spent in an
/// hour, 5 % in six hours.
pub const PAGE: [Condition; 2] = [
    Condition {
        long_s: 3600,
        short_s: 300,
        factor: 14.4,
    },
    Condition {
        long_s: 6 * 3600,
        short_s: 1800,
        factor: 6.0,
    },
];

/// The period an error budget is counted over (30 days).
pub const BUDGET_PERIOD_S: i64 = 30 * 24 * 3600;
