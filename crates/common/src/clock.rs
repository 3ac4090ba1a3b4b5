//! The console's clock: the one source of "now" for everything Firebreak records (when an
//! event arrived, when an incident was opened, acknowledged or acted on, when a report was
//! made). Durations that only pace work (timeouts, backoff, polling) use `Instant` instead.
//!
//! A recording can run on a manual clock that only moves when told to: the golden-file
//! tests record a simulator run step by step with the clock set to the simulator's time,
//! so every time in the report is the same on every run. The manual clock is process-wide;
//! a test that sets it runs in its own test binary.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
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
    let _waiting = Waiting::new(until);
    loop {
        match MANUAL_MS.load(Ordering::SeqCst) {
            i64::MIN => return, // back on the system clock: stop waiting on the manual one
            now if now >= until => return,
            _ => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
}

/// Tasks waiting on the manual clock: each one's wake-up time, by a number of its own.
static WAITING: Mutex<BTreeMap<u64, i64>> = Mutex::new(BTreeMap::new());
static NEXT_WAITER: AtomicU64 = AtomicU64::new(0);

/// A task's place in [`WAITING`], for as long as its sleep lasts (or until it is dropped).
struct Waiting(u64);

impl Waiting {
    fn new(until: i64) -> Waiting {
        let id = NEXT_WAITER.fetch_add(1, Ordering::SeqCst);
        WAITING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, until);
        Waiting(id)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

/// On a manual clock: exactly `tasks` tasks are waiting on it, none of them on a time
/// already reached. A stepped recording moves the clock, then waits for this: every task
/// the move woke has taken its step and waits again (or is done), so the next move finds
/// them all where one step leaves them, on every run.
pub fn settled(tasks: usize) -> bool {
    let now = MANUAL_MS.load(Ordering::SeqCst);
    let waiting = WAITING.lock().unwrap_or_else(|e| e.into_inner());
    waiting.len() == tasks && waiting.values().all(|until| *until > now)
}
