//! The gateway's suites, in one test executable: configuration, journal, TLS and
//! Alertmanager (`gateway`), deploy hooks (`gateway_actions`), the Kubernetes API
//! (`kubernetes`), Prometheus (`prometheus`), and the binary as installed (`binary`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

use firebreak_test_support as support;

mod binary;
mod gateway;
mod gateway_actions;
mod kubernetes;
mod prometheus;
