//! The console engine's suites, in one test executable: the action desk (`actions`), the
//! canary verdict (`canary`), the fleet board (`fleet`), the rollout guard (`guard`), ingest from a live stream
//! (`ingest`), recording in batches (`recording`), runbooks (`runbooks`), objectives and burn rates (`slo`), the watchlist
//! and the keychain (`watchlist`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

use firebreak_test_support as support;

mod actions;
mod canary;
mod fleet;
mod guard;
mod ingest;
mod recording;
mod runbooks;
mod slo;
mod watchlist;
