//! The console's clock: the one source of "now" for everything Firebreak records (when an
//! event arrived, when an incident was opened, acknowledged or acted on, when a report was
//! made). Durations that only pace work (timeouts, backoff, polling) use `Instant` instead.
//!
//! A recording can run on a manual clock that only moves when told to: the golden-file
//! tests record a simulator run step by step with the clock set to the simulator's time,
//! so every time in the report is the same on every run. The manual clock is process-wide;
//! a test that sets it runs in its own test binary.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// `i64::MIN`: the system clock.
static MANUAL_MS: AtomicI64 = AtomicI64::new(i64::MIN);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    match MANUAL_MS.load(Ordering::SeqCst) {
        i64::MIN => Utc::now().timestamp_millis(),
        ms => ms,
    }
}

pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(now_ms()).unwrap_or_default()
}

/// Sets the manual clock to `ms` (the clock stays there until set again), or with `None`
/// returns to the system clock.
pub fn set_manual(ms: Option<i64>) {
    MANUAL_MS.store(ms.unwrap_or(i64::MIN), Ordering::SeqCst);
}

/// Waits `d` by the console's clock: real time, or on a manual clock until the clock has
/// been moved on by `d`. Waits the console measures (an action's grace period, polling a
/// running action, the verification window) use this, so a recording on a manual clock
/// takes each of those steps at a known clock time.
pub async fn sleep(d: Duration) {
    let start = MANUAL_MS.load(Ordering::SeqCst);
    if start == i64::MIN {
        tokio::time::sleep(d).await;
        return;
    }
    let until = start.saturating_add(d.as_millis() as i64);
    loop {
        match MANUAL_MS.load(Ordering::SeqCst) {
            i64::MIN => return, // back on the system clock: stop waiting on the manual one
            now if now >= until => return,
            _ => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
}
