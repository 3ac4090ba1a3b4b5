//! The gateway: a headless process beside a real cluster that speaks protocol v1 for it,
//! from what its Prometheus, Alertmanager and Kubernetes API say (PROTOCOL.md).
//!
//! Built so far: the configuration and its check (`firebreak gateway --check FILE`), and
//! the durable journal the stream will be served from.

pub mod config;
pub mod journal;
