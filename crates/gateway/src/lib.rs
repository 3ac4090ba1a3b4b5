//! The gateway: a headless process beside a real cluster that speaks protocol v1 for it,
//! from what its Prometheus, Alertmanager and Kubernetes API say (PROTOCOL.md).
//!
//! The configuration and its check (`config.rs`, `firebreak gateway --check FILE`), the
//! durable journal (`journal.rs`), and the server (`serve.rs`, wss/https itself): the
//! event stream from the journal, Alertmanager's webhook (`alertmanager.rs`), Prometheus
//! queries (`prometheus.rs`, with figures by revision while a rollout runs, its revisions
//! from the Kubernetes watcher through `revisions.rs`), and the action API (`server::actions`) over the services'
//! action hooks (`actions.rs`, `hooks.rs`). Kubernetes is being built: its configuration
//! is checked, and `kubernetes.rs` lists the API calls the RBAC manifests grant.

pub mod actions;
pub mod alertmanager;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod gpu;
pub mod hooks;
pub mod init;
pub mod journal;
pub mod kubernetes;
pub mod presets;
pub mod prometheus;
pub mod revisions;
pub mod serve;
pub mod slo;
