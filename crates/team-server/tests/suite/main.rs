//! The team server's suites, in one test executable: the sync contract against a real
//! PostgreSQL (`team`) and the binary as installed (`binary`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

use firebreak_test_support as support;

mod binary;
mod team;
