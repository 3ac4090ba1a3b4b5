//! End to end through the `firebreak` binary, in one test executable. The window's suite
//! (`desktop_e2e`, one window at a time) and `history` (on the manual clock) have their
//! own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

use firebreak_test_support as support;

mod act;
mod bindings;
mod cli;
mod crash;
mod export;
mod hostile;
mod prometheus;
mod team;
