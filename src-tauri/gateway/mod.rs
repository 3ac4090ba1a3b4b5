//! The gateway: a headless process beside a real cluster that speaks protocol v1 for it,
//! from what its Prometheus, Alertmanager and Kubernetes API say (PROTOCOL.md).
//!
//! Built so far: the configuration and its check (`firebreak gateway --check FILE`), the
//! durable journal, and the server (`serve.rs`): the event stream from the journal and
//! Alertmanager's webhook (`alertmanager.rs`), on a loopback address (TLS, Prometheus
//! queries, Kubernetes and actions come next).

pub mod alertmanager;
pub mod config;
pub mod journal;
pub mod prometheus;
pub mod serve;
